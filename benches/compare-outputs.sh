#!/usr/bin/env bash
# Byte-for-byte comparison of two traceflow builds over the conformance corpus, for changes that must not change
# behaviour (a refactor, a move between modules).
#
# usage: bash benches/compare-outputs.sh [--pg URL] [--keep] OLD_BIN NEW_BIN
#
#   --pg URL   also compare on PostgreSQL: URL is a server's database as a superuser (default: $TRACEFLOW_TEST_PG
#              when set; `eval "$(bash scripts/pg-cluster.sh start)"` starts a private one). Two databases are
#              created beside it and dropped at the end
#   --keep     keep the work folder (printed) to look at the differences
#
# Each build ingests the same inputs into its own database: the corpus (../shared/conformance/captures, or
# $CONFORMANCE) plus one `traceflow sample` capture, once plainly on SQLite, once with --embed --connections on
# SQLite (frames from the database, connections made while reading), and plainly on PostgreSQL. Then, on each
# database, both builds run the same commands and their stdout, stderr-free exit status and written files are
# diffed byte for byte:
#   query (json, table, jsonl, csv), query --bidirectional, captures (json, ingested_at masked),
#   flows with 20 filters of the tests (json) and with --sort/--limit/--count/--group-by/csv/--pcapng,
#   connections (json, table, filters, --count, --sort), query --dump DIR for every dump format,
#   and the database itself: `sqlite3 .dump` (ingested_at masked) or a sorted pg_dump --data-only.
# Prints one line per comparison group and a final `compare: N/M identical`; exits 1 when anything differs.
# Takes a minute or two.

set -euo pipefail

PG=${TRACEFLOW_TEST_PG:-}
KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --pg) PG=${2:?--pg needs a URL}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) echo "compare-outputs.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[[ $# -eq 2 ]] || { echo "usage: compare-outputs.sh [--pg URL] [--keep] OLD_BIN NEW_BIN" >&2; exit 2; }
OLD=$(realpath "$1")
NEW=$(realpath "$2")
for b in "$OLD" "$NEW"; do [[ -x $b ]] || { echo "compare-outputs.sh: $b is not executable" >&2; exit 2; }; done
HERE=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=$(realpath "${CONFORMANCE:-$HERE/../shared/conformance}/captures")
[[ -d $CORPUS ]] || { echo "compare-outputs.sh: no corpus at $CORPUS (set CONFORMANCE)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/traceflow-compare.XXXXXX)
PGDBS=()
cleanup() {
    if [[ -n $PG ]]; then
        for d in "${PGDBS[@]}"; do psql -q "$PG" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true; done
    fi
    if [[ $KEEP = 1 ]]; then echo "compare: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# One extra capture with hosts and ports that the filters below pick out, made once and read by both builds.
mkdir -p "$WORK/inputs"
"$OLD" sample --conversations 300 "$WORK/inputs/sample.pcap" >/dev/null 2>&1 \
    || { echo "compare-outputs.sh: \`traceflow sample\` failed" >&2; exit 2; }
INPUTS=("$CORPUS" "$WORK/inputs")

FILTERS=(
    ""
    "port 80"
    "dst port 80"
    "port 443 or port 53"
    "syn"
    "not syn"
    "syn and not rst"
    "rst and not port 443"
    "open or closed"
    "closed"
    "net 10.0.0.0/8"
    "src net ::/0"
    "src net 0.0.0.0/0"
    "net 192.168.0.0/16 or host 10.0.0.1"
    "dst port 80 or src net 10.0.0.0/8"
    "dst port 80 and not fin"
    "port 80 and packets > 2"
    "bytes > 1000 and payload >= 100"
    "duration > 1s or portrange 1-1024"
    "after 2010-01-01 and before 2020-01-01"
)

TOTAL=0
SAME=0
FAILED=()

# run DIR NAME ARGS...: one command of one build, its stdout, stderr and exit status kept in DIR/NAME.*
run() {
    local dir=$1 name=$2 bin=$3; shift 3
    mkdir -p "$dir"
    local rc=0
    "$bin" "$@" >"$dir/$name.out" 2>"$dir/$name.err" || rc=$?
    echo "$rc" >"$dir/$name.rc"
}

# group LABEL: compares what both builds wrote under $WORK/{old,new}/$CUR/LABEL
group() {
    local label=$1 a="$WORK/old/$CUR/$1" b="$WORK/new/$CUR/$1"
    TOTAL=$((TOTAL + 1))
    # stderr names the database and temporary paths, which differ between the two runs: only stdout, files and
    # exit statuses are compared.
    if diff -r -q --exclude='*.err' "$a" "$b" >/dev/null 2>&1; then
        SAME=$((SAME + 1))
        printf 'compare %-9s %-28s identical (%s files)\n' "$CUR" "$label" "$(find "$a" -type f ! -name '*.err' | wc -l)"
    else
        FAILED+=("$CUR/$label")
        printf 'compare %-9s %-28s DIFFERS:\n' "$CUR" "$label"
        { diff -r -q --exclude='*.err' "$a" "$b" 2>&1 || true; } | head -5 | sed 's/^/    /'
    fi
}

# both LABEL CMD...: runs CMD (a function taking BIN DB DIR) for both builds
both() {
    local label=$1; shift
    "$@" "$OLD" "$DB_OLD" "$WORK/old/$CUR/$label"
    "$@" "$NEW" "$DB_NEW" "$WORK/new/$CUR/$label"
    group "$label"
}

c_ingest() {
    local bin=$1 db=$2 dir=$3
    run "$dir" ingest "$bin" ingest --db "$db" -q "${INGEST_FLAGS[@]}" "${INPUTS[@]}"
}
c_query() {
    local bin=$1 db=$2 dir=$3 f
    for f in json table jsonl csv; do run "$dir" "index-$f" "$bin" query --db "$db" --format "$f"; done
    run "$dir" one-capture "$bin" query --db "$db" --capture ftp.pcap --format json
    run "$dir" no-capture "$bin" query --db "$db" --capture no-such.pcap --format json
}
c_bidi() {
    local bin=$1 db=$2 dir=$3 f
    for f in json table; do run "$dir" "bidi-$f" "$bin" query --db "$db" --bidirectional --format "$f"; done
}
c_captures() {
    local bin=$1 db=$2 dir=$3
    run "$dir" captures "$bin" captures --db "$db" --format json
    sed -i -E 's/"ingested_at": ?"[^"]*"/"ingested_at":"-"/g' "$dir/captures.out"
}
c_flows() {
    local bin=$1 db=$2 dir=$3 i=0 f
    for f in "${FILTERS[@]}"; do
        run "$dir" "filter-$i" "$bin" flows --db "$db" --format json "$f"
        run "$dir" "count-$i" "$bin" flows --db "$db" --count "$f"
        i=$((i + 1))
    done
}
c_flows_opts() {
    local bin=$1 db=$2 dir=$3 by s
    for s in time bytes packets duration; do
        run "$dir" "sort-$s" "$bin" flows --db "$db" --format jsonl --sort "$s" --limit 25 "port 80 or syn"
    done
    for by in src dst pair sport dport capture; do
        run "$dir" "group-$by" "$bin" flows --db "$db" --format json --group-by "$by" ""
    done
    run "$dir" csv "$bin" flows --db "$db" --format csv "rst or fin"
    run "$dir" table "$bin" flows --db "$db" --format table --limit 40 ""
    run "$dir" bad-filter "$bin" flows --db "$db" "port 99999"
    run "$dir" pcapng "$bin" flows --db "$db" --pcapng "$dir/merged.pcapng" "port 80"
    run "$dir" pcap "$bin" flows --db "$db" --pcap "$dir/merged-sample.pcap" "capture sample.pcap"
}
c_connections() {
    local bin=$1 db=$2 dir=$3 s
    # A build whose read commands never write builds them with `ingest --connections` (no files); an older one
    # refuses that and builds them at the first `connections`, so the stored rows compare either way.
    "$bin" ingest --db "$db" -q --connections >/dev/null 2>&1 || true
    run "$dir" all-json "$bin" connections --db "$db" --format json
    run "$dir" all-table "$bin" connections --db "$db" --format table
    run "$dir" filtered "$bin" connections --db "$db" --format jsonl "host 10.0.0.1 or dst port 80"
    run "$dir" count "$bin" connections --db "$db" --count "syn"
    for s in bytes packets duration; do
        run "$dir" "sort-$s" "$bin" connections --db "$db" --format csv --sort "$s" --limit 30
    done
    run "$dir" bidi-after "$bin" query --db "$db" --bidirectional --format json
}
c_dump() {
    local bin=$1 db=$2 dir=$3 f
    for f in pcap pcapng json plist tree text; do
        run "$dir" "dump-$f" "$bin" query --db "$db" --dump "$dir/$f" --format "$f"
    done
    run "$dir" dump-both "$bin" query --db "$db" --dump "$dir/both" --both --format pcap
    run "$dir" dump-big "$bin" query --db "$db" --dump "$dir/big" --format pcap --byteorder big --nanosecond
    # One label's frames (--flow), one direction and both, in every format.
    local label
    label=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["label"])' "$dir/../query/one-capture.out")
    for f in pcap pcapng json plist tree text; do
        run "$dir" "flow-$f" "$bin" query --db "$db" --capture ftp.pcap --flow "$label" --format "$f"
        run "$dir" "flow-both-$f" "$bin" query --db "$db" --capture ftp.pcap --flow "$label" --both --format "$f"
    done
    # The index printed after a dump names the files, whose folder differs between the builds.
    sed -i "s#$dir#DIR#g" "$dir"/dump-*.out
}
c_dbdump() {
    local bin=$1 db=$2 dir=$3
    mkdir -p "$dir"
    case $db in
        postgres*)
            pg_dump --data-only --no-owner --no-privileges "$db" 2>"$dir/dump.err" \
                | sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/TIME/g' | grep -Ev '^(--|\\(un)?restrict )' | LC_ALL=C sort >"$dir/dump.out"
            pg_dump --schema-only --no-owner --no-privileges "$db" 2>>"$dir/dump.err" | grep -Ev '^(--|\\(un)?restrict )' >"$dir/schema.out"
            ;;
        *)
            if command -v sqlite3 >/dev/null 2>&1; then
                sqlite3 "$db" .dump
            else
                python3 -c 'import sqlite3,sys
for l in sqlite3.connect(sys.argv[1]).iterdump(): print(l)' "$db"
            fi | sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/TIME/g' >"$dir/dump.out"
            ;;
    esac
}

suite() {
    both ingest c_ingest
    both captures c_captures
    both query c_query
    both bidirectional c_bidi
    both flows-20-filters c_flows
    both flows-options c_flows_opts
    # Before the connections are built (when ingest did not), so that the stored state is compared too.
    both db-before-connections c_dbdump
    both connections c_connections
    both dump-all-formats c_dump
    both db-dump c_dbdump
}

CUR=sqlite
DB_OLD=$WORK/old.db DB_NEW=$WORK/new.db INGEST_FLAGS=()
suite

CUR=embed
DB_OLD=$WORK/old-embed.db DB_NEW=$WORK/new-embed.db INGEST_FLAGS=(--embed --connections)
suite

if [[ -n $PG ]]; then
    pgurl() { python3 -c 'import sys,urllib.parse as u
p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG" "$1"; }
    o=tfcmp_old_$$ n=tfcmp_new_$$
    PGDBS=("$o" "$n")
    for d in "$o" "$n"; do psql -q "$PG" -c "CREATE DATABASE $d" >/dev/null; done
    CUR=postgres
    DB_OLD=$(pgurl "$o") DB_NEW=$(pgurl "$n") INGEST_FLAGS=()
    suite
else
    echo "compare: PostgreSQL skipped (no --pg URL and no TRACEFLOW_TEST_PG)" >&2
fi

echo "compare: $SAME/$TOTAL identical"
[[ ${#FAILED[@]} -eq 0 ]]
