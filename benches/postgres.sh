#!/usr/bin/env bash
# traceflow on PostgreSQL against SQLite, side by side in one run, on a private PostgreSQL cluster that this script
# starts and stops (scripts/pg-cluster.sh: Unix socket, fsync off, so the figures are the server's best case).
#
# usage: bash benches/postgres.sh [--connections N] [--repeat R] [--queries Q] [--only-connections] [--no-build]
#                                  [--keep]
#
#   --connections N  connections in the one big capture (default 100000, about 1.28M frames / 582 MB: the same
#                    capture as benches/bench.sh, reused from $BENCH_DIR when it is there); the four captures
#                    of the parallel runs have N/4 connections each (seeds 2 to 5), so they hold about as much
#   --repeat R       runs of each ingest, the median reported (default 3)
#   --queries Q      runs of each `query --flow` and `connections` query (default 10), the median reported
#   --only-connections  measure 1. and 4. only (what `connections` costs on the ingest's databases)
#   --no-build       skip `cargo build --release`
#   --keep           keep the SQLite databases afterwards (the captures are always kept, for the next run)
#
# What it measures:
#   1. one capture into SQLite and into PostgreSQL (`ingest`, default --jobs): wall time;
#   2. four captures into PostgreSQL: one process --jobs 1, one process --jobs 2, and two processes at once with
#      --jobs 1 and two captures each: throughput, and its ratio to --jobs 1;
#   3. `query --capture C --flow LABEL -o /dev/null` on both databases: latency;
#   4. `connections` (counts and listings, unfiltered and filtered) on both databases: latency, on PostgreSQL as
#      the ingest left it (analyzed) and without any statistics (as before the ingest analyzed: pg_statistic
#      emptied, reltuples -1, autovacuum off on the tables), each against SQLite.
# Environment: BENCH_DIR (work dir, default /tmp/traceflow-bench), TRACEFLOW_BIN (the binary, default the
# release build), SYNTH_PCAP (generator, default
# ../shared/bench/synth_pcap.py). A benchmark, not a test: it fails only when a command fails.
set -euo pipefail

CONNECTIONS=100000
REPEAT=3
QUERIES=10
BUILD=1
KEEP=0
ONLY_CONN=0
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "postgres.sh: $*" >&2; exit 1; }
log() { printf '[pg-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --connections) [[ $# -ge 2 ]] || die "--connections needs a value"; CONNECTIONS=$2; shift 2 ;;
        --repeat) [[ $# -ge 2 ]] || die "--repeat needs a value"; REPEAT=$2; shift 2 ;;
        --queries) [[ $# -ge 2 ]] || die "--queries needs a value"; QUERIES=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --only-connections) ONLY_CONN=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ && $CONNECTIONS -ge 4 ]] || die "--connections must be an integer >= 4"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer"
[[ $QUERIES =~ ^[1-9][0-9]*$ ]] || die "--queries must be a positive integer"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SYNTH=${SYNTH_PCAP:-$ROOT/../shared/bench/synth_pcap.py}
WORK=${BENCH_DIR:-/tmp/traceflow-bench}
BIN=${TRACEFLOW_BIN:-$ROOT/target/release/traceflow}
mkdir -p "$WORK"
command -v python3 >/dev/null || die "python3 is required"
[[ -f $SYNTH ]] || die "generator not found: $SYNTH (set SYNTH_PCAP)"

if (( BUILD )); then
    log "cargo build --release"
    cargo build --release >"$WORK/pg-build.log" 2>&1 || { tail -n 30 "$WORK/pg-build.log" >&2; die "cargo build --release failed"; }
fi
[[ -x $BIN ]] || die "$BIN not found"

# ---------------------------------------------------------------- captures (bench.sh's cache: file + .meta)
. "$ROOT/benches/synth.sh"
if (( CONNECTIONS == 100000 )); then PCAP=$WORK/bench.pcap; else PCAP=$WORK/bench-$CONNECTIONS.pcap; fi
gen_capture "$PCAP" "$CONNECTIONS" 1
QUARTER=$((CONNECTIONS / 4))
PARTS=()
for seed in 2 3 4 5; do
    (( ONLY_CONN )) && break
    gen_capture "$WORK/part-$QUARTER-s$seed.pcap" "$QUARTER" "$seed"
    PARTS+=("$WORK/part-$QUARTER-s$seed.pcap")
done

# ---------------------------------------------------------------- the cluster
PG_DIR=
SQLITE=$WORK/pg-bench-sqlite.db
cleanup() {
    [[ -n $PG_DIR ]] && bash "$ROOT/scripts/pg-cluster.sh" stop "$PG_DIR"
    (( KEEP )) || rm -f "$SQLITE" "$SQLITE-wal" "$SQLITE-shm"
}
trap cleanup EXIT
pg_env=$(bash "$ROOT/scripts/pg-cluster.sh" start) || die "could not start a PostgreSQL cluster"
eval "$pg_env"
PG_DIR=$TRACEFLOW_TEST_PG_DIR
PSQL=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | head -n1) || true
[[ -x $PSQL ]] || die "psql not found"
log "cluster in $PG_DIR ($("$PSQL" "$TRACEFLOW_TEST_PG" -Atc 'SHOW server_version'))"
export PGOPTIONS='-c client_min_messages=warning'  # no NOTICE from DROP DATABASE IF EXISTS
pg_url() { echo "${TRACEFLOW_TEST_PG/\/postgres?//$1?}"; }
fresh_pg() {  # fresh_pg NAME: an empty database NAME; prints its URL
    "$PSQL" "$TRACEFLOW_TEST_PG" -qAtc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
    "$PSQL" "$TRACEFLOW_TEST_PG" -qAtc "CREATE DATABASE $1" >/dev/null
    pg_url "$1"
}
rm_sqlite() { rm -f "$1" "$1-wal" "$1-shm" "$1-journal"; }

# ---------------------------------------------------------------- timing
now() { date +%s%N; }
secs() { awk -v d="$1" 'BEGIN { printf "%.3f", d / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# timed_ingest DB ARGS...: one ingest, its wall time in s on stdout
timed_ingest() {
    local db=$1 t0 t1; shift
    t0=$(now)
    "$BIN" --db "$db" ingest -q "$@" >/dev/null 2>"$WORK/pg-bench.err" || { cat "$WORK/pg-bench.err" >&2; die "ingest into $db failed"; }
    t1=$(now)
    secs $((t1 - t0))
}
frames_in() { "$BIN" --db "$1" captures --format json | python3 -c 'import json,sys; print(sum(c["frames"] for c in json.load(sys.stdin)))'; }

# 1. one capture
declare -a T_SQLITE=() T_PG=()
for ((i = 1; i <= REPEAT; i++)); do
    rm_sqlite "$SQLITE"
    T_SQLITE+=("$(timed_ingest "$SQLITE" "$PCAP")"); log "one capture, SQLite run $i: ${T_SQLITE[-1]} s"
    url=$(fresh_pg tf_bench_one)
    T_PG+=("$(timed_ingest "$url" "$PCAP")"); log "one capture, PostgreSQL run $i: ${T_PG[-1]} s"
done
PG_ONE=$(pg_url tf_bench_one)
FRAMES=$(frames_in "$SQLITE")
[[ $(frames_in "$PG_ONE") == "$FRAMES" ]] || die "PostgreSQL holds another number of frames than SQLite"
MB=$(awk -v b="$(stat -c %s "$PCAP")" 'BEGIN { printf "%.0f", b / 1e6 }')

# 2. four captures into PostgreSQL
declare -a T_J1=() T_J2=() T_P2=()
for ((i = 1; i <= REPEAT && ! ONLY_CONN; i++)); do
    url=$(fresh_pg tf_bench_four)
    T_J1+=("$(timed_ingest "$url" --jobs 1 "${PARTS[@]}")"); log "4 captures, --jobs 1, run $i: ${T_J1[-1]} s"
    url=$(fresh_pg tf_bench_four)
    T_J2+=("$(timed_ingest "$url" --jobs 2 "${PARTS[@]}")"); log "4 captures, --jobs 2, run $i: ${T_J2[-1]} s"
    url=$(fresh_pg tf_bench_four)
    t0=$(now)
    "$BIN" --db "$url" ingest -q --jobs 1 "${PARTS[0]}" "${PARTS[1]}" >/dev/null 2>"$WORK/pg-bench-a.err" & a=$!
    "$BIN" --db "$url" ingest -q --jobs 1 "${PARTS[2]}" "${PARTS[3]}" >/dev/null 2>"$WORK/pg-bench-b.err" & b=$!
    wait "$a" || { cat "$WORK/pg-bench-a.err" >&2; die "ingest process A failed"; }
    wait "$b" || { cat "$WORK/pg-bench-b.err" >&2; die "ingest process B failed"; }
    t1=$(now)
    T_P2+=("$(secs $((t1 - t0)))"); log "4 captures, 2 processes x 2, run $i: ${T_P2[-1]} s"
done
(( ONLY_CONN )) && T_J1=(1) T_J2=(1) T_P2=(1)
FRAMES4=1
(( ONLY_CONN )) || FRAMES4=$(frames_in "$(pg_url tf_bench_four)")
MB4=$( ((ONLY_CONN)) || stat -c %s "${PARTS[@]}" | awk '{ b += $1 } END { printf "%.0f", b / 1e6 }')

# 3. query --flow latency, on the databases of the last single-capture runs
LABEL=$("$BIN" --db "$SQLITE" query --capture "$(basename "$PCAP")" --format json \
    | python3 -c 'import json,sys; f = json.load(sys.stdin); print(f[len(f) // 2]["label"])')
declare -a Q_SQLITE=() Q_PG=()
(( ONLY_CONN )) && Q_SQLITE=(1) Q_PG=(1)
for ((i = 1; i <= QUERIES && ! ONLY_CONN; i++)); do
    for which in sqlite pg; do
        if [[ $which == sqlite ]]; then db=$SQLITE; else db=$PG_ONE; fi
        t0=$(now)
        "$BIN" --db "$db" query --capture "$(basename "$PCAP")" --flow "$LABEL" -o /dev/null 2>"$WORK/pg-bench.err" \
            || { cat "$WORK/pg-bench.err" >&2; die "query --flow on $which failed"; }
        t1=$(now)
        if [[ $which == sqlite ]]; then Q_SQLITE+=("$(secs $((t1 - t0)))"); else Q_PG+=("$(secs $((t1 - t0)))"); fi
    done
done

# 4. connections, on the databases of the last single-capture runs
conn_case() {  # conn_case N: the arguments of case N in CASE_ARGS (none past the last)
    case $1 in
        0) CASE_ARGS=(connections --count) ;;
        1) CASE_ARGS=(connections 'net 192.0.2.0/29' --count) ;;
        2) CASE_ARGS=(connections 'port 443' --count) ;;
        3) CASE_ARGS=(connections 'net 192.0.2.0/29' --format jsonl) ;;
        4) CASE_ARGS=(connections --format jsonl) ;;
        5) CASE_ARGS=(connections 'port 443' --sort bytes --limit 20 --format jsonl) ;;
        # Time terms: each connection's flows are found by key whatever the term.
        6) CASE_ARGS=(connections 'before 2000000000' --count) ;;
        7) CASE_ARGS=(connections 'after 1700000002 and before 1700000004' --count) ;;
        *) return 1 ;;
    esac
}
timed_conn() {  # timed_conn DB: the median wall time in s of QUERIES runs of CASE_ARGS on DB
    local db=$1 t0 t1 i; local -a t=()
    for ((i = 1; i <= QUERIES; i++)); do
        t0=$(now)
        timeout 900 "$BIN" --db "$db" "${CASE_ARGS[@]}" >"$WORK/pg-bench.out" 2>"$WORK/pg-bench.err" \
            || { cat "$WORK/pg-bench.err" >&2; die "${CASE_ARGS[*]} on $db failed (or took over 900 s)"; }
        t1=$(now)
        t+=("$(secs $((t1 - t0)))")
    done
    median "${t[@]}"
}
forget_statistics() {  # forget_statistics URL: the planner's view of the tables before any ANALYZE
    local t tables="flows connections captures interfaces frame_chunks capture_paths endpoint_protocols flow_buckets"
    for t in $tables; do "$PSQL" "$1" -qAtc "ALTER TABLE $t SET (autovacuum_enabled = false)" >/dev/null; done
    local list; list=$(printf "'%s'," $tables); list=${list%,}
    "$PSQL" "$1" -qAtc "DELETE FROM pg_statistic WHERE starelid IN (SELECT oid FROM pg_class WHERE relname IN ($list)
        AND relnamespace = 'public'::regnamespace);
        UPDATE pg_class SET reltuples = -1 WHERE relname IN ($list) AND relnamespace = 'public'::regnamespace" >/dev/null
}
t0=$(now)
"$BIN" --db "$SQLITE" connections --count >/dev/null  # SQLite builds its connections at their first use
t1=$(now); log "SQLite: connections built in $(secs $((t1 - t0))) s"
CONNS=$("$BIN" --db "$PG_ONE" connections --count)
declare -a C_NAME=() C_SQLITE=() C_PGA=() C_PGN=() C_ROWS=()
for ((c = 0; ; c++)); do
    conn_case "$c" || break
    C_NAME+=("${CASE_ARGS[*]}")
    C_SQLITE+=("$(timed_conn "$SQLITE")"); C_ROWS+=("$(wc -l <"$WORK/pg-bench.out")")
    C_PGA+=("$(timed_conn "$PG_ONE")")
    log "${CASE_ARGS[*]}: SQLite ${C_SQLITE[-1]} s, PostgreSQL analyzed ${C_PGA[-1]} s"
done
forget_statistics "$PG_ONE"
for ((c = 0; ; c++)); do
    conn_case "$c" || break
    C_PGN+=("$(timed_conn "$PG_ONE")")
    log "${CASE_ARGS[*]}: PostgreSQL without statistics ${C_PGN[-1]} s"
done

# ---------------------------------------------------------------- the table
s1=$(median "${T_SQLITE[@]}"); p1=$(median "${T_PG[@]}")
j1=$(median "${T_J1[@]}"); j2=$(median "${T_J2[@]}"); p2=$(median "${T_P2[@]}")
qs=$(median "${Q_SQLITE[@]}"); qp=$(median "${Q_PG[@]}")
echo
echo "traceflow: PostgreSQL against SQLite ($("$BIN" --version 2>/dev/null | head -n1), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "one capture: $(basename "$PCAP"), $MB MB, $FRAMES frames$( ((ONLY_CONN)) || echo "; four captures: $QUARTER connections each, $MB4 MB, $FRAMES4 frames")"
if (( ONLY_CONN )); then
    awk -v s1="$s1" -v p1="$p1" -v f="$FRAMES" -v r="$REPEAT" 'BEGIN {
    printf "%-52s %10s %14s %8s\n", "run (median of " r " ingests)", "wall s", "frames/s", "ratio"
    printf "%-52s %10.2f %14.0f %8s\n", "ingest 1 capture -> SQLite", s1, f / s1, "1.00"
    printf "%-52s %10.2f %14.0f %8.2f\n", "ingest 1 capture -> PostgreSQL", p1, f / p1, s1 / p1 }'
else
awk -v s1="$s1" -v p1="$p1" -v j1="$j1" -v j2="$j2" -v p2="$p2" -v qs="$qs" -v qp="$qp" \
    -v f="$FRAMES" -v f4="$FRAMES4" -v r="$REPEAT" -v q="$QUERIES" -v label="$LABEL" 'BEGIN {
    printf "%-52s %10s %14s %8s\n", "run (median of " r " ingests, " q " queries)", "wall s", "frames/s", "ratio"
    printf "%-52s %10.2f %14.0f %8s\n", "ingest 1 capture -> SQLite", s1, f / s1, "1.00"
    printf "%-52s %10.2f %14.0f %8.2f\n", "ingest 1 capture -> PostgreSQL", p1, f / p1, s1 / p1
    printf "%-52s %10.2f %14.0f %8s\n", "ingest 4 captures -> PostgreSQL, --jobs 1", j1, f4 / j1, "1.00"
    printf "%-52s %10.2f %14.0f %8.2f\n", "ingest 4 captures -> PostgreSQL, --jobs 2", j2, f4 / j2, j1 / j2
    printf "%-52s %10.2f %14.0f %8.2f\n", "ingest 4 captures -> PostgreSQL, 2 processes x 2", p2, f4 / p2, j1 / p2
    printf "%-52s %10.1f %14s %8s\n", "query --flow -o /dev/null, SQLite (ms)", qs * 1000, "-", "1.00"
    printf "%-52s %10.1f %14s %8.2f\n", "query --flow -o /dev/null, PostgreSQL (ms)", qp * 1000, "-", qs / qp
    printf "(ratio: speed against the row marked 1.00 above it, above 1 is faster; query label %s)\n", label
}'
fi
echo
echo "connections of $(basename "$PCAP") ($CONNS connections; median of $QUERIES runs each; ratio: time against SQLite's, below 1 is faster)"
printf '%-58s %8s %10s %10s %6s %10s %6s\n' "command" "lines" "SQLite s" "PG anal. s" "ratio" "PG nost. s" "ratio"
for ((c = 0; c < ${#C_NAME[@]}; c++)); do
    awk -v n="${C_NAME[c]}" -v l="${C_ROWS[c]}" -v s="${C_SQLITE[c]}" -v a="${C_PGA[c]}" -v z="${C_PGN[c]}" 'BEGIN {
        printf "%-58s %8d %10.3f %10.3f %6.2f %10.3f %6.2f\n", n, l, s, a, a / s, z, z / s }'
done
