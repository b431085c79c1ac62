#!/usr/bin/env bash
# traceflow search benchmark: `flows` on a database of several different synthetic captures.
#
# usage: bash benches/search.sh [--captures N] [--connections N] [--repeat R] [--no-build] [--reuse-db]
#                               [--baseline BIN]
#
#   --captures N     captures in the database, seeds 1..N of synth_pcap.py (default 10: about 11.7M frames
#                    and 2.9M flows)
#   --connections N  connections per capture (default 100000)
#   --repeat R       runs of each query; the median is reported (default 3; the first run warms the cache)
#   --no-build       use the existing target/release/traceflow
#   --reuse-db       keep an existing database from an earlier run instead of ingesting again
#   --baseline BIN   also time another traceflow binary (e.g. the previous build), its runs interleaved with this
#                    build's, and print its median and this build's speed-up beside each. The baseline reads a
#                    database it ingested itself ($WORK/search-base.db, same captures): a build may store what an
#                    older one does not read (e.g. the /16 lists, has_buckets = 2), so one shared database would
#                    time the older build on a capture it must read whole
#
# Environment: BENCH_DIR (default /tmp/traceflow-bench), SYNTH_PCAP (default ../shared/bench/synth_pcap.py).
# Prints one line per query (median wall ms, rows) and SQLite's query plan for each filter (`flows --explain`).
# A benchmark is not a test: it fails only when a command fails.

set -euo pipefail

CAPTURES=10
CONNECTIONS=100000
REPEAT=3
BUILD=1
REUSE=0
BASE=
die() { echo "search.sh: $*" >&2; exit 1; }
log() { printf '[search %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --captures) CAPTURES=${2:?}; shift 2 ;;
        --connections) CONNECTIONS=${2:?}; shift 2 ;;
        --repeat) REPEAT=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --reuse-db) REUSE=1; shift ;;
        --baseline) BASE=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
[[ $CAPTURES =~ ^[1-9][0-9]*$ && $CONNECTIONS =~ ^[1-9][0-9]*$ && $REPEAT =~ ^[1-9][0-9]*$ ]] \
    || die "--captures, --connections and --repeat take positive integers"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SYNTH=${SYNTH_PCAP:-$ROOT/../shared/bench/synth_pcap.py}
WORK=${BENCH_DIR:-/tmp/traceflow-bench}/search
BIN=$ROOT/target/release/traceflow
DB=$WORK/search.db
BASE_DB=$WORK/search-base.db
mkdir -p "$WORK"
command -v python3 >/dev/null || die "python3 is required"
[[ -f $SYNTH ]] || die "generator not found: $SYNTH (set SYNTH_PCAP)"
if (( BUILD )); then (cd "$ROOT" && cargo build --release); fi
[[ -x $BIN ]] || die "no binary at $BIN (run without --no-build)"

caps=()
for ((s = 1; s <= CAPTURES; s++)); do
    out=$WORK/cap$s.pcap
    want="connections=$CONNECTIONS seed=$s $(sha1sum "$SYNTH" | cut -c1-12)"
    if [[ ! -f $out || "$(cat "$out.meta" 2>/dev/null)" != "$want" ]]; then
        log "generating $out"
        python3 "$SYNTH" --connections "$CONNECTIONS" --seed "$s" "$out.tmp" >/dev/null
        mv "$out.tmp" "$out"
        echo "$want" >"$out.meta"
    fi
    caps+=("$out")
done

# build_db BIN DB WHO: a fresh database of the captures, ingested by BIN (unless --reuse-db finds one).
build_db() {
    (( !REUSE )) || [[ ! -f $2 ]] || return 0
    [[ -x $1 ]] || die "no binary at $1"
    rm -f "$2" "$2-wal" "$2-shm"
    log "ingesting ${#caps[@]} captures with $3"
    local t0 t1
    t0=$(date +%s%N)
    "$1" --db "$2" ingest -q "${caps[@]}"
    t1=$(date +%s%N)
    log "$3's ingest: $(( (t1 - t0) / 1000000 )) ms"
}
build_db "$BIN" "$DB" "this build"
[[ -z $BASE ]] || build_db "$BASE" "$BASE_DB" "the baseline"

# The busiest source host and its time span pick a realistic "host A and port P in a 10 s window" query.
read -r HOST T0 < <(python3 - "$DB" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
host = c.execute("SELECT src FROM flows WHERE capture_id = 1 GROUP BY src ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
t0 = c.execute("SELECT min(first_ns) FROM flows").fetchone()[0] // 10**9
print(host, t0)
EOF
)
NET=$(python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1] + '/16', strict=False))" "$HOST")
TOTAL=$("$BIN" --db "$DB" flows --count)

# median_ms CMD...: the median wall time of REPEAT runs, stdout to $OUT (default $WORK/out). With --baseline, the
# baseline binary runs the same arguments between this build's runs: its median goes to $WORK/base_ms.
median_ms() {
    local times=() btimes=()
    for ((i = 0; i < REPEAT; i++)); do
        local t0 t1
        if [[ -n $BASE ]]; then
            local a bargs=()
            for a in "${@:2}"; do [[ $a == "$DB" ]] && bargs+=("$BASE_DB") || bargs+=("$a"); done
            t0=$(date +%s%N)
            "$BASE" "${bargs[@]}" >"${OUT:-$WORK/base_out}" 2>"$WORK/base_err"
            t1=$(date +%s%N)
            btimes+=($(( (t1 - t0) / 1000000 )))
        fi
        t0=$(date +%s%N)
        "$@" >"${OUT:-$WORK/out}" 2>"$WORK/err"
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000000 )))
    done
    if [[ -n $BASE ]]; then
        printf '%s\n' "${btimes[@]}" | sort -n | sed -n "$(( (REPEAT + 1) / 2 ))p" >"$WORK/base_ms"
    fi
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (REPEAT + 1) / 2 ))p"
}
# vs MS: the baseline's median and this build's speed-up over it, when there is a baseline.
vs() {
    [[ -n $BASE ]] || return 0
    local b
    b=$(cat "$WORK/base_ms")
    printf '   baseline %s ms, %sx' "$b" "$(python3 -c "print(round($b / max($1, 1), 2))")"
}

[[ -z $BASE || -x $BASE ]] || die "no binary at $BASE"
printf '%-64s %10s %10s\n' query "median ms" rows
run() {  # run NAME FILTER ARGS...
    local name=$1 filter=$2; shift 2
    local ms rows
    ms=$(median_ms "$BIN" --db "$DB" flows "$filter" "$@")
    rows=$(wc -l <"$WORK/out")
    printf '%-64s %10s %10s%s\n' "$name" "$ms" "$rows" "$(vs "$ms")"
}
Q1="host $HOST and port 443 and after $((T0 + 50)) and before $((T0 + 60))"
run "$Q1 (jsonl)" "$Q1" --format jsonl
run "net $NET --count" "net $NET" --count
# The target is to /dev/null: writing 0.9 GB to a file is the kernel's time, not traceflow's.
ms=$(OUT=/dev/null median_ms "$BIN" --db "$DB" flows --format jsonl)
printf '%-64s %10s %10s   (%s flows/s)%s\n' "every flow --format jsonl >/dev/null" "$ms" "$TOTAL" \
    "$(python3 -c "print(round($TOTAL / max($ms, 1) * 1000))")" "$(vs "$ms")"
ms=$(median_ms "$BIN" --db "$DB" flows "dst port 443" --limit 1000 --pcap "$WORK/merged.pcap")
printf '%-64s %10s %10s%s\n' "dst port 443 --limit 1000 --pcap FILE" "$ms" \
    "$(grep -o 'wrote [0-9]* frames' "$WORK/err" | cut -d' ' -f2) frames" "$(vs "$ms")"
run "host $HOST --group-by dst" "host $HOST" --group-by dst --format jsonl
# Connections are built at their first use: build them before timing.
"$BIN" --db "$DB" connections --count >/dev/null
[[ -z $BASE ]] || "$BASE" --db "$BASE_DB" connections --count >/dev/null
ms=$(median_ms "$BIN" --db "$DB" connections "port 443" --sort bytes --limit 20 --format jsonl)
printf '%-64s %10s %10s%s\n' "connections 'port 443' --sort bytes --limit 20" "$ms" "$(wc -l <"$WORK/out")" "$(vs "$ms")"
# A selective filter (the flow buckets of a host and a port) and sorted listings of every connection with a
# limit (an index walk), as rows and counts.
conn_rows() {  # conn_rows FILTER ARGS...
    local filter=$1; shift
    local ms
    ms=$(median_ms "$BIN" --db "$DB" connections "$filter" "$@" --format jsonl)
    printf '%-64s %10s %10s%s\n' "connections '$filter' $*" "$ms" "$(wc -l <"$WORK/out")" "$(vs "$ms")"
}
conn_rows "$Q1"
conn_rows "host $HOST and port 443"
conn_rows "host $HOST" --sort bytes --limit 20
conn_rows "" --sort bytes --limit 20
conn_rows "" --sort time --limit 20
conn_rows "" --sort duration --limit 20
# Time terms over connections: each connection's flows must be found by key, whatever the term (a `before T`
# once read every earlier flow of the capture for each connection).
conn_run() {  # conn_run FILTER ARGS...
    local filter=$1; shift
    local ms
    ms=$(median_ms "$BIN" --db "$DB" connections "$filter" "$@")
    printf '%-64s %10s %10s%s\n' "connections '$filter' $*" "$ms" "$(head -n 1 "$WORK/out")" "$(vs "$ms")"
}
conn_run "host $HOST and port 443" --count
conn_run "host $HOST" --count
conn_run "port 443" --count
conn_run "before $((T0 + 5))" --count
conn_run "before 2000000000" --count
conn_run "after $((T0 + 5))" --count
conn_run "after $((T0 + 2)) and before $((T0 + 4))" --count
ms=$(OUT=/dev/null median_ms "$BIN" --db "$DB" connections "before 2000000000" --format jsonl)
printf '%-64s %10s %10s%s\n' "connections 'before 2000000000' --format jsonl >/dev/null" "$ms" - "$(vs "$ms")"

echo
for f in "$Q1" "net $NET"; do
    echo "plan of: $f"
    "$BIN" --db "$DB" flows "$f" --explain | sed 's/^/  /'
done

# docs/schema.md's SQL examples (its "The index tuple in SQL" section), each timed warm through Python's sqlite3,
# with the tables or indexes its plan goes through.
echo
# (Connections were built above, before the connections query was timed.)
echo "docs/schema.md SQL (median of $REPEAT warm runs; :capture is the capture with most flows)"
python3 - "$DB" "$ROOT/docs/schema.md" "$REPEAT" <<'EOF2'
import re, sqlite3, sys, time
db, readme, repeat = sys.argv[1], open(sys.argv[2]).read(), int(sys.argv[3])
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
section = readme[readme.index("## The index tuple in SQL"):]
section = section[:section.index("\n## ", 4)]
capture = c.execute("SELECT id FROM captures ORDER BY flows DESC LIMIT 1").fetchone()[0]
params = {"capture": capture, "flow": 1, "conn": 1}
cid = c.execute("SELECT community_id FROM connections WHERE capture_id = ? LIMIT 1 OFFSET 5000", [capture]).fetchone()
for block in re.findall(r"```sql\n(.*?)```", section, re.S):
    for sql in block.split(";"):
        lines = [l for l in sql.strip().splitlines() if l.strip() and not l.strip().startswith("--")]
        if not lines:
            continue
        sql = "\n".join(lines)
        if cid:  # the page's Community ID is a corpus one: look up one of this database's
            sql = re.sub(r"'1:[A-Za-z0-9+/=]+'", f"'{cid[0]}'", sql)
        times = []
        try:
            for _ in range(repeat + 1):  # the first run warms the cache
                t0 = time.perf_counter()
                rows = len(c.execute(sql, params).fetchall())
                times.append((time.perf_counter() - t0) * 1000)
        except sqlite3.OperationalError as e:
            print(f"{'-':>9} ms {'-':>8} rows  {lines[0][:70]}\n{'':27}not run by SQLite {sqlite3.sqlite_version}: {e}")
            continue
        ms = sorted(times[1:])[len(times[1:]) // 2]
        plan = sorted({m.group(0) for r in c.execute("EXPLAIN QUERY PLAN " + sql, params)
                       for m in [re.search(r"(SCAN|SEARCH) \S+( USING (COVERING )?(INDEX|PRIMARY KEY|INTEGER PRIMARY KEY) ?\S*)?", r[3])] if m})
        print(f"{ms:9.1f} ms {rows:8d} rows  {lines[0][:70]}")
        print(f"{'':27}{'; '.join(plan)}")
EOF2
