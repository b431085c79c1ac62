#!/usr/bin/env bash
# traceflow serve benchmark: server time of the page's requests on the search benchmark's database, and many
# concurrent clients against it.
#
# usage: bash benches/serve.sh [--db DB] [--repeat R] [--clients N] [--seconds S] [--no-build] [--bin BIN]
#
#   --db DB       the database (default: the one benches/search.sh builds, $BENCH_DIR/search/search.db: 10
#                 synthetic captures, 2.9M flows; run `bash benches/search.sh` first to make it). A PostgreSQL
#                 URL works too.
#   --repeat R    runs of each request; the median is reported (default 5; the first run warms the cache)
#   --clients N   concurrent clients of the load phase (default 50)
#   --seconds S   how long the load phase runs (default 30)
#   --no-build    use the existing target/release/traceflow
#   --bin BIN     the binary to time (default target/release/traceflow; implies --no-build): to compare two
#                 builds, run the script for each in turn, interleaved
#
# Prints the median server time (curl's time to the last byte on loopback) of: the first page of a
# host+port+time filter, the histogram of all flows, a group-by, one connection page; then requests per second,
# errors (any status but 200) and the server's peak RSS over the load phase. A benchmark is not a test.

set -euo pipefail

REPEAT=5
CLIENTS=50
SECONDS_=30
BUILD=1
DB=
BIN_=
die() { echo "serve.sh: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --db) DB=${2:?}; shift 2 ;;
        --repeat) REPEAT=${2:?}; shift 2 ;;
        --clients) CLIENTS=${2:?}; shift 2 ;;
        --seconds) SECONDS_=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN_=${2:?}; BUILD=0; shift 2 ;;
        -h|--help) sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN_:-$ROOT/target/release/traceflow}
DB=${DB:-${BENCH_DIR:-/tmp/traceflow-bench}/search/search.db}
if (( BUILD )); then (cd "$ROOT" && cargo build --release); fi
[[ -x $BIN ]] || die "no binary at $BIN (run without --no-build)"
[[ $DB == postgres* || -f $DB ]] || die "no database at $DB (bash benches/search.sh makes it)"
command -v curl >/dev/null || die "curl is required"
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" --db "$DB" serve --bind 127.0.0.1:0 --readers 8 >"$WORK/url" 2>"$WORK/err" &
PID=$!
for _ in $(seq 100); do [[ -s $WORK/url ]] && break; sleep 0.1; done
URL=$(head -1 "$WORK/url")
[[ $URL == http://* ]] || die "serve printed no URL: $(cat "$WORK/err")"
BASE=${URL%%/\?*}
PORT=${BASE##*:}
COOKIE="traceflow_$PORT=${URL##*token=}"

# A realistic "host A and port P in a window" filter: the source of the first flow, its port, its minute.
first=$(curl -s -b "$COOKIE" "$BASE/api/flows?limit=1")
[[ $first == *'"rows"'* ]] || die "the first page failed: $first"
read -r HOST PORT_ T0 < <(python3 -c '
import json, sys
r = json.loads(sys.argv[1])["rows"][0]
print(r["src"], r["dport"], r["first_time"][:16])' "$first")
FILTER="host $HOST and port $PORT_ and after $T0 and before ${T0}:59"
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
conn=$(curl -s -b "$COOKIE" "$BASE/api/connections?limit=1&filter=$(enc "host $HOST")")
CONN=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])["rows"]
print("capture=%d&conn=%d" % (r[0]["capture_id"], r[0]["conn"]) if r else "")' "$conn")

# median_ms PATH: the median of REPEAT requests' time to the last byte.
median_ms() {
    local t=()
    for ((i = 0; i < REPEAT; i++)); do
        t+=("$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -b "$COOKIE" "$BASE$1")")
    done
    printf '%s\n' "${t[@]}" | awk '$1 != 200 { bad = 1 } { print $2 * 1000 } END { if (bad) print "error" > "/dev/stderr" }' \
        | sort -n | sed -n "$(( (REPEAT + 1) / 2 ))p"
}
printf '%-60s %10s\n' request "median ms"
printf '%-60s %10.1f\n' "first page: $FILTER" "$(median_ms "/api/flows?filter=$(enc "$FILTER")")"
printf '%-60s %10.1f\n' "histogram of all flows (120 buckets)" "$(median_ms "/api/histogram?buckets=120")"
printf '%-60s %10.1f\n' "group-by dport (top 20)" "$(median_ms "/api/groups?by=dport")"
[[ -z $CONN ]] || printf '%-60s %10.1f\n' "connection page ($CONN)" "$(median_ms "/api/connection?$CONN")"

# The load phase: CLIENTS loops of the page's requests for SECONDS_ s, on loopback.
python3 - "$BASE" "$COOKIE" "$CLIENTS" "$SECONDS_" "$(enc "$FILTER")" "$CONN" >"$WORK/load" <<'EOF'
import http.client, sys, threading, time, urllib.parse
base, cookie, clients, seconds, filt, conn = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
host = urllib.parse.urlparse(base).netloc
paths = [f"/api/flows?filter={filt}", f"/api/count?filter={filt}", f"/api/histogram?filter={filt}", "/api/captures"]
if conn:
    paths.append(f"/api/connection?{conn}")
done, errors, lock = [0], [0], threading.Lock()
end = time.time() + seconds
def client(k):
    c = http.client.HTTPConnection(host, timeout=60)
    i = k
    while time.time() < end:
        try:
            c.request("GET", paths[i % len(paths)], headers={"Cookie": cookie})
            r = c.getresponse(); r.read()
            ok = r.status == 200
        except Exception:
            ok = False
            c = http.client.HTTPConnection(host, timeout=60)
        with lock:
            done[0] += 1
            errors[0] += 0 if ok else 1
        i += 1
threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
t0 = time.time()
[t.start() for t in threads]
[t.join() for t in threads]
print(done[0], errors[0], time.time() - t0)
EOF
read -r N ERR T <"$WORK/load"
RSS=$(awk '/VmHWM/ { print $2 / 1024 }' "/proc/$PID/status")
printf '%-60s %10s\n' "load: $CLIENTS clients for ${SECONDS_} s, requests/s" "$(python3 -c "print(round($N / $T, 1))")"
printf '%-60s %10s\n' "load: errors" "$ERR"
printf '%-60s %10.0f\n' "server peak RSS, MB" "$RSS"
