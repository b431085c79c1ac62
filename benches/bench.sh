#!/usr/bin/env bash
# traceflow benchmark: ingest/query speed and peak memory against `tshark -z conv,tcp`.
#
# usage: bash benches/bench.sh [--connections N] [--keep] [--multi] [--scale K]
#                              [--repeat R] [--no-build] [--no-ref]
#
#   --connections N  connections in the synthetic capture (default 100000,
#                    about 1.28M frames / 582 MB; the capture is deterministic)
#   --keep           keep the databases and the extra captures afterwards
#                    (the main capture is always kept, to be reused next time)
#   --multi          also ingest two different captures (seed 1 and seed 2) into
#                    one database, to show multi-file scaling
#   --scale K[,K...] also ingest K-times larger captures (N*K connections), to
#                    show that peak RSS does not grow with the capture (e.g. 2,4)
#   --repeat R       run tshark and each ingest R times and report the median
#                    run (default 3: shared machines are noisy)
#   --no-build       skip `cargo build --release` (use the existing binary)
#   --no-ref         skip the reference runs (cat I/O floor, tshark -T fields)
#   --no-shapes      skip the two other shapes of ../shared/bench/shapes.py (long flows: `long --flows 100
#                    --frames-per-flow 10000`; SYN scan: `tiny --probes 500000`, 833k flows left open), each
#                    timed like the benchmark mix, side by side with tshark -z conv,tcp
#   --baseline BIN   also time another traceflow binary (e.g. the previous build) on the same capture, its runs
#                    interleaved with this build's, and print this build's median over the baseline's
#
# Environment: BENCH_DIR (work dir, default /tmp/traceflow-bench),
#              SYNTH_PCAP (generator, default ../shared/bench/synth_pcap.py),
#              SHAPES_PY (generator of the other shapes, default ../shared/bench/shapes.py).
# Results: a table on stdout and one JSON object in $BENCH_DIR/bench-result.json.
# A benchmark is not a test: this never fails on speed, only when a command
# errors (build, generation, tshark, ingest). The queries are allowed to fail
# (reported as n/a).

set -euo pipefail

CONNECTIONS=100000
KEEP=0
MULTI=0
SCALE=1
REPEAT=3
BUILD=1
REF=1
BASELINE=
SHAPES=1

usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "bench.sh: $*" >&2; exit 1; }
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --connections) [[ $# -ge 2 ]] || die "--connections needs a value"; CONNECTIONS=$2; shift 2 ;;
        --connections=*) CONNECTIONS=${1#*=}; shift ;;
        --scale) [[ $# -ge 2 ]] || die "--scale needs a value"; SCALE=$2; shift 2 ;;
        --scale=*) SCALE=${1#*=}; shift ;;
        --repeat) [[ $# -ge 2 ]] || die "--repeat needs a value"; REPEAT=$2; shift 2 ;;
        --repeat=*) REPEAT=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --multi) MULTI=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-ref) REF=0; shift ;;
        --no-shapes) SHAPES=0; shift ;;
        --baseline) [[ $# -ge 2 ]] || die "--baseline needs a binary"; BASELINE=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections must be a positive integer"
[[ $SCALE =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--scale must be positive integers, comma-separated"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SYNTH=${SYNTH_PCAP:-$ROOT/../shared/bench/synth_pcap.py}
WORK=${BENCH_DIR:-/tmp/traceflow-bench}
BIN=$ROOT/target/release/traceflow
PCAP=$WORK/bench.pcap
DB=$WORK/bench.db
RESULTS=$WORK/results.tsv    # key, wall s, peak RSS KiB, frames, exit code, load avg, CPU s, command
SCALARS=$WORK/scalars.tsv    # key, value
mkdir -p "$WORK"
# Two runs sharing a work folder would time each other and write into each other's results (it happened once:
# every row came out twice, the timings taken under double load). The second one stops instead.
exec 9>"$WORK/.bench.lock"
flock -n 9 || die "another bench.sh is running in $WORK; wait for it, or set BENCH_DIR to another folder"
: >"$RESULTS"
: >"$SCALARS"

scalar() { printf '%s\t%s\n' "$1" "$2" >>"$SCALARS"; }

# ---------------------------------------------------------------- tools
need_apt() {  # need_apt COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [[ $EUID -eq 0 ]] || die "$1 is missing: install the Debian package $2"
    log "installing $2"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$2" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null; } \
        || die "could not install $2"
}
if ! /usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null; then
    [[ $EUID -eq 0 ]] || die "GNU time (/usr/bin/time) is missing: install the Debian package time"
    rm -f /usr/bin/time 2>/dev/null || true
    need_apt /usr/bin/time time
fi
need_apt tshark tshark
need_apt capinfos wireshark-common
command -v python3 >/dev/null || die "python3 is required"
[[ -f $SYNTH ]] || die "generator not found: $SYNTH (set SYNTH_PCAP)"
HAVE_SQLITE=0; command -v sqlite3 >/dev/null 2>&1 && HAVE_SQLITE=1

# ---------------------------------------------------------------- helpers
# run_timed KEY FATAL FRAMES OUTFILE CMD...: time CMD (wall s, peak RSS KiB), record it.
# FRAMES is the number of frames the command reads ("-" if not meaningful).
LAST_RC=0
run_timed() {
    local key=$1 fatal=$2 frames=$3 out=$4; shift 4
    local tf=$WORK/$key.time ef=$WORK/$key.err rc=0 load wall rss usr sys cpu
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "$key: $*"
    local t0 t1 wall_e
    t0=$(date +%s%N)
    /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$out" 2>"$ef" || rc=$?
    t1=$(date +%s%N)
    read -r wall_e rss usr sys < <(tail -n1 "$tf") || true
    cpu=$(awk -v u="${usr:-0}" -v s="${sys:-0}" 'BEGIN { printf "%.2f", u + s }')
    # wall from the ns clock (GNU time's %e has only 10 ms resolution); peak RSS from time
    wall=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e9 }')
    [[ $rss =~ ^[0-9]+$ ]] || rss=0
    LAST_RC=$rc
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$wall" "$rss" "$frames" "$rc" "$load" "$cpu" "$*" >>"$RESULTS"
    if (( rc != 0 )); then
        echo "bench.sh: $key failed (exit $rc): $*" >&2
        tail -n 20 "$ef" | sed 's/^/    /' >&2
        (( fatal )) && exit 1
    else
        log "$key: ${wall}s wall, ${cpu}s CPU, peak RSS $((rss / 1024)) MB"
    fi
    return 0
}

. "$ROOT/benches/synth.sh"

count_frames() { capinfos -T -r -M -c "$1" | cut -f2; }
rm_db() { rm -f "$1" "$1-wal" "$1-shm" "$1-journal"; }
db_bytes() { local s=0 f; for f in "$1" "$1-wal"; do [[ -f $f ]] && s=$((s + $(stat -c %s "$f"))); done; echo $s; }

# run_median KEY DB FATAL FRAMES OUTFILE CMD...: run_timed REPEAT times (as KEY#1, KEY#2, ...; DB, if not "-",
# is deleted before each run) and record the run with the median wall time again as KEY. The database of the
# last run stays for the queries that follow.
run_median() {
    local key=$1 db=$2; shift 2
    local i
    for ((i = 1; i <= REPEAT; i++)); do
        [[ $db != - ]] && rm_db "$db"
        run_timed "$key#$i" "$@"
    done
    python3 - "$RESULTS" "$key" <<'EOF' || die "could not pick the median run of $key"
import sys
path, key = sys.argv[1:3]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
mine = [r for r in rows if r[0].startswith(key + "#")]
ok = [r for r in mine if r[4] == "0"] or mine
ok.sort(key=lambda r: float(r[1]))
pick = list(ok[(len(ok) - 1) // 2])
pick[0] = key
with open(path, "a") as f:
    f.write("\t".join(pick) + "\n")
EOF
}

# ---------------------------------------------------------------- build
scalar started_at "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
scalar loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
if (( BUILD )); then
    log "cargo build --release"
    cargo build --release >"$WORK/build.log" 2>&1 || { tail -n 30 "$WORK/build.log" >&2; die "cargo build --release failed"; }
fi
[[ -x $BIN ]] || die "$BIN not found"
"$BIN" ingest --help >/dev/null 2>&1 || die "$BIN has no working 'ingest' subcommand"
scalar traceflow_version "$("$BIN" --version 2>/dev/null | head -n1 || true)"

# ---------------------------------------------------------------- capture
gen_capture "$PCAP" "$CONNECTIONS" 1
PCAP_BYTES=$(stat -c %s "$PCAP")
FRAMES=$(count_frames "$PCAP")
[[ $FRAMES =~ ^[0-9]+$ ]] || die "capinfos could not count the frames of $PCAP"
scalar capture "$PCAP"; scalar connections "$CONNECTIONS"
scalar capture_bytes "$PCAP_BYTES"; scalar frames "$FRAMES"
log "capture: $FRAMES frames, $PCAP_BYTES bytes"

# Warm the page cache once so that every timed run reads from memory alike.
cat "$PCAP" >/dev/null

if (( REF )); then
    run_timed cat 1 "$FRAMES" /dev/null cat "$PCAP"
fi

# ---------------------------------------------------------------- peer
run_median tshark_conv - 1 "$FRAMES" "$WORK/tshark-conv.txt" tshark -q -z conv,tcp -r "$PCAP"
if (( REF )); then
    run_timed tshark_fields 1 "$FRAMES" /dev/null tshark -r "$PCAP" -T fields \
        -e frame.number -e tcp.srcport -e tcp.dstport -e tcp.flags -e frame.time_epoch
fi

# ---------------------------------------------------------------- traceflow
run_median ingest "$DB" 1 "$FRAMES" "$WORK/ingest.out" "$BIN" ingest --db "$DB" "$PCAP"
scalar db_bytes "$(db_bytes "$DB")"
scalar db_main_bytes "$( [[ -f $DB ]] && stat -c %s "$DB" || echo 0)"
scalar db_wal_bytes "$( [[ -f $DB-wal ]] && stat -c %s "$DB-wal" || echo 0)"
if [[ -n $BASELINE ]]; then
    [[ -x $BASELINE ]] || die "--baseline $BASELINE is not an executable"
    # Interleaved, so that a noisy minute slows both alike: baseline, current, baseline, current, ...
    BDB=$WORK/baseline.db
    for ((i = 1; i <= REPEAT; i++)); do
        rm -f "$BDB" "$BDB-wal" "$BDB-shm"
        run_timed "ingest_baseline#$i" 1 "$FRAMES" "$WORK/ingest-baseline.out" "$BASELINE" ingest --db "$BDB" "$PCAP"
        rm -f "$DB" "$DB-wal" "$DB-shm"
        run_timed "ingest_current#$i" 1 "$FRAMES" "$WORK/ingest-current.out" "$BIN" ingest --db "$DB" "$PCAP"
    done
    rm -f "$BDB" "$BDB-wal" "$BDB-shm"
fi

if "$BIN" captures --db "$DB" --format json >"$WORK/captures.json" 2>"$WORK/captures.err"; then
    tf_frames=$(python3 - "$WORK/captures.json" <<'EOF' || true
import json, sys
d = json.load(open(sys.argv[1]))
rows = d if isinstance(d, list) else d.get("captures", [d])
print(sum(int(r.get("frames", 0)) for r in rows))
EOF
)
    scalar traceflow_frames "${tf_frames:-}"
    if [[ -n ${tf_frames:-} && $tf_frames != "$FRAMES" ]]; then
        echo "bench.sh: warning: traceflow counts $tf_frames frames, capinfos $FRAMES" >&2
    fi
fi

run_timed query_capture 0 - /dev/null "$BIN" query --db "$DB" --capture "$PCAP" --format json

LABEL=
if (( HAVE_SQLITE )) && [[ -f $DB ]]; then
    LABEL=$(sqlite3 "$DB" "SELECT label FROM labels LIMIT 1 OFFSET 1000" 2>/dev/null || true)
    [[ -n $LABEL ]] || LABEL=$(sqlite3 "$DB" "SELECT label FROM labels LIMIT 1" 2>/dev/null || true)
fi
if [[ -z $LABEL ]]; then
    # Schema differs or no sqlite3: take the first label from the query output.
    if "$BIN" query --db "$DB" --capture "$PCAP" --format json >"$WORK/query.json" 2>/dev/null; then
        LABEL=$(python3 - "$WORK/query.json" <<'EOF' || true
import json, sys
def first(o):
    if isinstance(o, dict):
        if isinstance(o.get("label"), str):
            return o["label"]
        o = list(o.values())
    if isinstance(o, list):
        for v in o:
            r = first(v)
            if r:
                return r
    return None
text = open(sys.argv[1]).read()
try:
    docs = [json.loads(text)]
except ValueError:
    docs = [json.loads(l) for l in text.splitlines() if l.strip()]
print(first(docs) or "")
EOF
)
    fi
fi
scalar label "$LABEL"
if [[ -n $LABEL ]]; then
    # Written to a file, not -o /dev/null: a tool that writes atomically (temp file +
    # rename) would replace /dev/null itself when run as root.
    rm -f "$WORK/flow.pcap"
    run_timed query_flow 0 - /dev/null "$BIN" query --db "$DB" --flow "$LABEL" --format pcap -o "$WORK/flow.pcap"
    [[ -f $WORK/flow.pcap ]] && scalar flow_pcap_bytes "$(stat -c %s "$WORK/flow.pcap")"
else
    log "query_flow: no label found, skipped"
fi

# ---------------------------------------------------------------- optional
if (( MULTI )); then
    PCAP2=$WORK/bench-seed2.pcap
    gen_capture "$PCAP2" "$CONNECTIONS" 2
    FRAMES2=$(count_frames "$PCAP2")
    cat "$PCAP2" >/dev/null
    MDB=$WORK/multi.db
    run_median ingest_multi "$MDB" 1 $((FRAMES + FRAMES2)) "$WORK/ingest-multi.out" \
        "$BIN" ingest --db "$MDB" "$PCAP" "$PCAP2"
    scalar multi_db_bytes "$(db_bytes "$MDB")"
    scalar multi_capture_bytes $((PCAP_BYTES + $(stat -c %s "$PCAP2")))
fi

SCALES=()
for K in ${SCALE//,/ }; do
    (( K > 1 )) || continue
    SCALES+=("$K")
    PCAPS=$WORK/bench-x$K.pcap
    gen_capture "$PCAPS" $((CONNECTIONS * K)) 1
    FRAMESS=$(count_frames "$PCAPS")
    cat "$PCAPS" >/dev/null
    SDB=$WORK/scale.db
    run_median ingest_x$K "$SDB" 1 "$FRAMESS" "$WORK/ingest-x$K.out" "$BIN" ingest --db "$SDB" "$PCAPS"
    scalar "scale_${K}_db_bytes" "$(db_bytes "$SDB")"
    scalar "scale_${K}_capture_bytes" "$(stat -c %s "$PCAPS")"
    rm_db "$SDB"
done
scalar scale "$(IFS=,; echo "${SCALES[*]}")"

# ---------------------------------------------------------------- shapes
# The benchmark mix's connections mostly close; scans and long flows are the other shapes users ingest.
SHAPES_PY=${SHAPES_PY:-$ROOT/../shared/bench/shapes.py}
SHAPE_LIST=
if (( SHAPES )); then
    [[ -f $SHAPES_PY ]] || die "generator not found: $SHAPES_PY (set SHAPES_PY, or --no-shapes)"
    shapes_hash=$(sha1sum "$SHAPES_PY" | cut -c1-12)
    for spec in "long long --flows 100 --frames-per-flow 10000" "scan tiny --probes 500000"; do
        read -r name shape args <<<"$spec"
        out=$WORK/shape-$name.pcap want="shapes $shapes_hash $shape $args"
        if [[ ! -f $out || ! -f $out.meta || "$(cat "$out.meta")" != "$want size=$(stat -c %s "$out" 2>/dev/null)" ]]; then
            log "generating $out: $shape $args"
            # shellcheck disable=SC2086
            python3 "$SHAPES_PY" "$shape" "$out.tmp" $args || die "generation of the $name shape failed"
            mv "$out.tmp" "$out"
            echo "$want size=$(stat -c %s "$out")" >"$out.meta"
        fi
        sframes=$(count_frames "$out")
        cat "$out" >/dev/null
        scalar "shape_${name}_spec" "$shape $args"
        scalar "shape_${name}_capture_bytes" "$(stat -c %s "$out")"
        scalar "shape_${name}_frames" "$sframes"
        run_median "tshark_conv_$name" - 1 "$sframes" /dev/null tshark -q -z conv,tcp -r "$out"
        sdb=$WORK/shape-$name.db
        run_median "ingest_$name" "$sdb" 1 "$sframes" /dev/null "$BIN" ingest --db "$sdb" "$out"
        scalar "shape_${name}_db_bytes" "$(db_bytes "$sdb")"
        rm_db "$sdb"
        if [[ -n $BASELINE ]]; then
            for ((i = 1; i <= REPEAT; i++)); do
                rm_db "$WORK/baseline.db"
                run_timed "ingest_${name}_baseline#$i" 1 "$sframes" /dev/null "$BASELINE" ingest --db "$WORK/baseline.db" "$out"
                rm_db "$sdb"
                run_timed "ingest_${name}_current#$i" 1 "$sframes" /dev/null "$BIN" ingest --db "$sdb" "$out"
            done
            rm_db "$WORK/baseline.db"; rm_db "$sdb"
        fi
        SHAPE_LIST+="$name,"
    done
fi
scalar shapes "$SHAPE_LIST"

scalar loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
scalar nproc "$(nproc)"
scalar repeat "$REPEAT"
scalar cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
scalar mem_total_kib "$(awk '/MemTotal/ {print $2}' /proc/meminfo)"

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$SCALARS" "$WORK/bench-result.json" <<'EOF'
import json, sys

results_path, scalars_path, out_path = sys.argv[1:4]
S = {}
for line in open(scalars_path):
    k, _, v = line.rstrip("\n").partition("\t")
    S[k] = v
num = lambda k: int(S[k]) if S.get(k, "").isdigit() else None

runs, order = {}, []
repeats = {}
samples = {}  # every "#" run: wall and CPU seconds (None when it failed)
for line in open(results_path):
    key, wall, rss, frames, rc, load, cpu, cmd = line.rstrip("\n").split("\t", 7)
    if "#" in key:
        samples[key] = {"wall_s": float(wall) if rc == "0" else None, "cpu_s": float(cpu) if rc == "0" else None}
        # One of several runs of `key`; the median one is recorded again under `key` itself.
        repeats.setdefault(key.split("#")[0], []).append(float(wall) if rc == "0" else None)
        continue
    wall, rss, rc = float(wall), int(rss), int(rc)
    frames = int(frames) if frames.isdigit() else None
    ok = rc == 0
    runs[key] = {
        "command": cmd, "exit_code": rc, "ok": ok,
        "wall_s": wall if ok else None,
        "cpu_s": float(cpu) if ok else None,
        "peak_rss_mb": round(rss / 1024, 1) if ok else None,
        "frames": frames,
        "frames_per_s": round(frames / wall) if ok and frames and wall > 0 else None,
        "loadavg_before": float(load),
    }
    order.append(key)
for key, walls in repeats.items():
    if key in runs:
        runs[key]["repeats_wall_s"] = walls

names = {
    "cat": "cat bench.pcap > /dev/null (I/O floor)",
    "tshark_conv": "tshark -q -z conv,tcp",
    "tshark_fields": "tshark -T fields (5 fields)",
    "ingest": "traceflow ingest",
    "query_capture": "traceflow query --capture (json)",
    "query_flow": "traceflow query --flow (pcap)",
    "ingest_multi": "traceflow ingest, 2 captures",
}
for k in order:
    if k.startswith("ingest_x"):
        names[k] = "traceflow ingest, %sx capture" % k[len("ingest_x"):]

def fmt(v, f):
    return "n/a" if v is None else f.format(v)

frames, cap_bytes = num("frames"), num("capture_bytes")
print()
print("capture: %s  %s frames, %.1f MB, %s connections" % (
    S.get("capture"), f"{frames:,}", cap_bytes / 1e6, S.get("connections")))
w = max(len(names.get(k, k)) for k in order) if order else 10
print(f"{'tool':<{w}}  {'wall s':>8}  {'frames/s':>11}  {'peak RSS MB':>11}  {'CPU s':>7}")
print("-" * (w + 47))
for k in order:
    r = runs[k]
    fr = fmt(r["frames_per_s"], "{:,}") if r["frames"] else "-"
    note = "" if r["ok"] else f"   (failed, exit {r['exit_code']})"
    print(f"{names.get(k, k):<{w}}  {fmt(r['wall_s'], '{:.3f}'):>8}  {fr:>11}  "
          f"{fmt(r['peak_rss_mb'], '{:.1f}'):>11}  {fmt(r['cpu_s'], '{:.2f}'):>7}{note}")
print()

summary = {}
t, i = runs.get("tshark_conv"), runs.get("ingest")
if t and i and t["wall_s"] and i["wall_s"]:
    summary["tshark_conv_over_ingest"] = round(t["wall_s"] / i["wall_s"], 2)
    print("traceflow is %.1fx faster than tshark -z conv,tcp (%.3fs vs %.3fs)" % (
        t["wall_s"] / i["wall_s"], i["wall_s"], t["wall_s"]))
    if t["cpu_s"] and i["cpu_s"]:
        summary["tshark_conv_over_ingest_cpu"] = round(t["cpu_s"] / i["cpu_s"], 2)
        print("  by CPU time (less sensitive to load): %.1fx (%.2fs vs %.2fs)" % (
            t["cpu_s"] / i["cpu_s"], i["cpu_s"], t["cpu_s"]))
else:
    summary["tshark_conv_over_ingest"] = None
    print("traceflow vs tshark -z conv,tcp: n/a (wall time of 0 s or a failed run)")
pairs = [(samples.get("ingest_baseline#%d" % n), samples.get("ingest_current#%d" % n)) for n in range(1, 100)]
pairs = [(b, c) for b, c in pairs if b and c and b["wall_s"] and c["wall_s"]]
if pairs:
    med = lambda xs: sorted(xs)[len(xs) // 2]
    bw, cw = med([b["wall_s"] for b, _ in pairs]), med([c["wall_s"] for _, c in pairs])
    bc, cc = med([b["cpu_s"] for b, _ in pairs]), med([c["cpu_s"] for _, c in pairs])
    summary["ingest_over_baseline"] = round(cw / bw, 3)
    summary["ingest_over_baseline_cpu"] = round(cc / bc, 3) if bc else None
    print("this build / baseline, interleaved, median of %d each: wall %.3fs / %.3fs = %.3f; CPU %.2fs / %.2fs = %.3f"
          % (len(pairs), cw, bw, cw / bw, cc, bc, cc / bc if bc else float("nan")))
c = runs.get("cat")
if c and i and c["wall_s"] and i["wall_s"]:
    summary["ingest_over_cat"] = round(i["wall_s"] / c["wall_s"], 2)
db = num("db_bytes")
if db is not None and cap_bytes:
    summary["db_mb"] = round(db / 1e6, 1)
    summary["db_pct_of_capture"] = round(100 * db / cap_bytes, 1)
    print("database: %.1f MB = %.1f%% of the capture (%.1f MB)%s" % (
        db / 1e6, 100 * db / cap_bytes, cap_bytes / 1e6,
        "  [incl. %.1f MB WAL]" % (num("db_wal_bytes") / 1e6) if num("db_wal_bytes") else ""))
print("frames: %s (capinfos)%s" % (f"{frames:,}", "; traceflow captures says %s" % S["traceflow_frames"]
      if S.get("traceflow_frames") else ""))
print("flow label queried: %s" % (S.get("label") or "n/a"))
m = runs.get("ingest_multi")
if m and m["wall_s"] and i and i["wall_s"]:
    summary["multi_over_single"] = round(m["wall_s"] / i["wall_s"], 2)
    print("2 captures: %.2fs = %.2fx the 1-capture ingest; db %.1f MB" % (
        m["wall_s"], m["wall_s"] / i["wall_s"], num("multi_db_bytes") / 1e6))
scales = [k for k in S.get("scale", "").split(",") if k]
scale_out = []
for k in scales:
    s = runs.get("ingest_x" + k)
    if not (s and s["ok"] and i and i["ok"]):
        continue
    rss_ratio = round(s["peak_rss_mb"] / i["peak_rss_mb"], 2) if i["peak_rss_mb"] else None
    time_ratio = round(s["wall_s"] / i["wall_s"], 2) if i["wall_s"] else None
    scale_out.append({"factor": int(k), "capture_bytes": num("scale_%s_capture_bytes" % k),
                      "db_bytes": num("scale_%s_db_bytes" % k), "rss_ratio": rss_ratio, "time_ratio": time_ratio})
    print("%sx capture: %.2fs (%.2fx time), peak RSS %.1f MB vs %.1f MB (%.2fx); db %.1f MB" % (
        k, s["wall_s"], time_ratio or 0, s["peak_rss_mb"], i["peak_rss_mb"], rss_ratio or 0,
        (num("scale_%s_db_bytes" % k) or 0) / 1e6))
# The three shapes side by side: the mix's figures from above, the others from the shapes section.
rows = []
if i and t:
    rows.append(("benchmark mix (synth_pcap.py --connections %s)" % S.get("connections"), i, t, frames, cap_bytes, db))
for name in [n for n in S.get("shapes", "").split(",") if n]:
    si, st = runs.get("ingest_" + name), runs.get("tshark_conv_" + name)
    if si and st:
        rows.append(("%s (shapes.py %s)" % (name, S.get("shape_%s_spec" % name)), si, st,
                     num("shape_%s_frames" % name), num("shape_%s_capture_bytes" % name), num("shape_%s_db_bytes" % name)))
shape_out = []
if rows:
    w2 = max(len(r[0]) for r in rows)
    print()
    print(f"{'shape':<{w2}}  {'wall s':>7}  {'CPU s':>6}  {'frames/s':>10}  {'vs tshark':>9}  {'RSS MB':>6}  {'db/capture':>10}")
    for label, si, st, fr, cb, dbb in rows:
        ratio = st["wall_s"] / si["wall_s"] if si["wall_s"] and st["wall_s"] else None
        fps = fr / si["wall_s"] if si["wall_s"] and fr else None
        pct = 100 * dbb / cb if cb and dbb else None
        shape_out.append({"shape": label, "wall_s": si["wall_s"], "cpu_s": si["cpu_s"], "frames_per_s": fps,
                          "tshark_over_ingest": ratio, "peak_rss_mb": si["peak_rss_mb"], "db_pct_of_capture": pct})
        print(f"{label:<{w2}}  {fmt(si['wall_s'], '{:.2f}'):>7}  {fmt(si['cpu_s'], '{:.2f}'):>6}  "
              f"{fmt(fps, '{:,.0f}'):>10}  {fmt(ratio, '{:.1f}x'):>9}  {fmt(si['peak_rss_mb'], '{:.0f}'):>6}  "
              f"{fmt(pct, '{:.1f}%'):>10}")
    for name in [n for n in S.get("shapes", "").split(",") if n]:
        ps = [(samples.get("ingest_%s_baseline#%d" % (name, n)), samples.get("ingest_%s_current#%d" % (name, n)))
              for n in range(1, 100)]
        ps = [(b, c) for b, c in ps if b and c and b["wall_s"] and c["wall_s"]]
        if ps:
            med = lambda xs: sorted(xs)[len(xs) // 2]
            bw, cw = med([b["wall_s"] for b, _ in ps]), med([c["wall_s"] for _, c in ps])
            bc, cc = med([b["cpu_s"] for b, _ in ps]), med([c["cpu_s"] for _, c in ps])
            print("%s: this build / baseline, interleaved: wall %.3fs / %.3fs = %.3f; CPU %.2fs / %.2fs = %.3f"
                  % (name, cw, bw, cw / bw, cc, bc, cc / bc if bc else float("nan")))
    print()
print("tshark and ingest lines: the median of %s runs (each run's time: runs.*.repeats_wall_s in the JSON)"
      % S.get("repeat"))
print("machine: %s cores, %s; load avg %s at start, %s at end (timings are noisy under load)" % (
    S.get("nproc"), S.get("cpu"), S.get("loadavg_start"), S.get("loadavg_end")))

out = {
    "started_at": S.get("started_at"),
    "traceflow_version": S.get("traceflow_version") or None,
    "capture": {"path": S.get("capture"), "connections": num("connections"),
                "bytes": cap_bytes, "frames": frames,
                "traceflow_frames": int(S["traceflow_frames"]) if S.get("traceflow_frames", "").isdigit() else None},
    "runs": runs,
    "summary": summary,
    "database": {"bytes": db, "main_bytes": num("db_main_bytes"), "wal_bytes": num("db_wal_bytes")},
    "flow_label": S.get("label") or None,
    "flow_pcap_bytes": num("flow_pcap_bytes"),
    "multi": {"capture_bytes": num("multi_capture_bytes"), "db_bytes": num("multi_db_bytes")} if "ingest_multi" in runs else None,
    "scale": scale_out or None,
    "shapes": shape_out or None,
    "machine": {"nproc": num("nproc"), "cpu": S.get("cpu"), "mem_total_kib": num("mem_total_kib"),
                "loadavg_start": S.get("loadavg_start"), "loadavg_end": S.get("loadavg_end")},
}
with open(out_path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print("results: " + out_path)
EOF

# ---------------------------------------------------------------- cleanup
if (( ! KEEP )); then
    rm_db "$DB"; rm_db "$WORK/multi.db"; rm_db "$WORK/scale.db"
    rm -f "$WORK"/bench-seed2.pcap* "$WORK"/bench-x*.pcap* "$WORK/flow.pcap" "$WORK/query.json"
fi
