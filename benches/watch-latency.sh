#!/usr/bin/env bash
# How soon a capture written into a watched folder is queryable: `traceflow ingest --watch` on a folder into which
# N files are written over S seconds (each copied in whole, as a capture tool closes a finished file), once with
# inotify and once with --poll (the settle rule alone, as on a file system without events).
#
# usage: bash benches/watch-latency.sh [--files N] [--seconds S] [--settle D] [--no-build] [--no-poll]
#
#   --files N    files written (default 100), each a `traceflow sample` of 200+k conversations (~110 KB)
#   --seconds S  over how long (default 60)
#   --settle D   the watcher's --settle (default 5s, its default)
#   --no-build   skip `cargo build --release`
#   --no-poll    only the inotify run
#
# Latency is from the end of a file's copy to the first moment its capture is in the database (polled every
# 10 ms with Python's sqlite3); the script prints the median, 95th percentile and maximum per mode, with the
# load average. A benchmark, not a test: it fails only when a command fails.
set -euo pipefail
FILES=100
SECONDS_=60
SETTLE=5s
BUILD=1
POLL=1
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --no-poll) POLL=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
[ "$BUILD" = 1 ] && cargo build --release -q
TF=$PWD/target/release/traceflow
work=$(mktemp -d /tmp/traceflow-watch-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/staging"
for k in $(seq 1 "$FILES"); do
  "$TF" sample --conversations $((200 + k)) "$work/staging/$(printf 'cap-%04d.pcap' "$k")" 2>/dev/null
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
modes=(inotify)
[ "$POLL" = 1 ] && modes+=(poll)
for mode in "${modes[@]}"; do
  rm -rf "$work/watched" "$work/w.db"*
  mkdir "$work/watched"
  extra=()
  [ "$mode" = poll ] && extra=(--poll)
  python3 - "$TF" "$work" "$SECONDS_" "$SETTLE" "$mode" "${extra[@]}" <<'EOF'
import os, shutil, signal, sqlite3, statistics, subprocess, sys, threading, time
tf, work, seconds, settle, mode, *extra = sys.argv[1:]
staging = sorted(os.listdir(f"{work}/staging"))
db = f"{work}/w.db"
w = subprocess.Popen([tf, "--db", db, "ingest", "--watch", "--settle", settle, "-q", *extra, f"{work}/watched"],
                     stdin=subprocess.DEVNULL)
while not os.path.exists(db):
    time.sleep(0.01)
time.sleep(0.5)
done_at, seen_at = {}, {}
def writer():
    gap = float(seconds) / len(staging)
    start = time.monotonic()
    for k, name in enumerate(staging):
        time.sleep(max(0.0, start + k * gap - time.monotonic()))
        shutil.copy(f"{work}/staging/{name}", f"{work}/watched/{name}")
        done_at[f"{work}/watched/{name}"] = time.monotonic()
t = threading.Thread(target=writer)
t.start()
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
deadline = time.monotonic() + float(seconds) + 120
while len(seen_at) < len(staging) and time.monotonic() < deadline:
    try:
        for (p,) in con.execute("SELECT path FROM capture_paths"):
            seen_at.setdefault(p, time.monotonic())
    except sqlite3.OperationalError:
        pass
    time.sleep(0.01)
t.join()
w.send_signal(signal.SIGTERM)
w.wait(timeout=30)
lat = sorted(seen_at[p] - done_at[p] for p in done_at if p in seen_at)
if len(lat) < len(staging):
    sys.exit(f"only {len(lat)} of {len(staging)} files were indexed")
p95 = lat[int(0.95 * (len(lat) - 1))]
print(f"{mode:8} settle {settle}: {len(lat)} files over {seconds} s: latency median {statistics.median(lat):.3f} s, "
      f"p95 {p95:.3f} s, max {lat[-1]:.3f} s")
EOF
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
