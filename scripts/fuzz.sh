#!/usr/bin/env bash
# Runs the cargo-fuzz targets one after another, one process each (the machine is shared), and prints one
# summary line per target.
#
#   bash scripts/fuzz.sh SECONDS [TARGET...]      (default: every target, the newest first)
#
# Installs cargo-fuzz if missing and builds with RUSTC_BOOTSTRAP=1 (only a stable toolchain is needed). Each
# target runs for SECONDS with -jobs=1 -workers=1 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1, on
# fuzz/corpus/TARGET (new inputs go there), fuzz/seeds/TARGET and, for targets that read captures, the
# conformance captures in ../shared/conformance/captures. libFuzzer's log goes to fuzz/logs/TARGET.log; crashes,
# timeouts and out-of-memory inputs to fuzz/artifacts/TARGET/ (copy the ones worth keeping to fuzz/findings/).
set -u -o pipefail

# Everything runs from main, which bash reads whole before it starts, and the line that calls it exits: editing
# this file during a run is safe.
main() {
usage() { echo "usage: bash scripts/fuzz.sh SECONDS [TARGET...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
secs=$1
shift
case $secs in '' | *[!0-9]*) usage ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz=$root/fuzz
captures=$(cd "$root/.." && pwd)/shared/conformance/captures
all=(trace_parking render ingest_compressed query_db store_roundtrip decode_linktype ingest_bytes)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz || exit 1
fi

cd "$fuzz" || exit 1
# One run at a time (the machine is shared, and libFuzzer's -jobs log is fuzz-0.log in this folder for every
# target): a second run waits here for the first to end.
exec 9>"$fuzz/.fuzz.lock"
if ! flock -n 9; then
    echo "another scripts/fuzz.sh run is going on; waiting for it to end" >&2
    flock 9
fi
for t in "${targets[@]}"; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "no target $t (see fuzz/fuzz_targets/)" >&2; exit 2; }
done
echo "building ${targets[*]}" >&2
for t in "${targets[@]}"; do
    cargo fuzz build -O "$t" || exit 1
done

# Largest input per target: a capture or a frame up to 64 KiB; a tracer run or a set of row changes is small.
max_len() {
    case $1 in
        trace_parking) echo 8192 ;;
        query_db) echo 4096 ;;
        *) echo 65536 ;;
    esac
}

# Captures of at most 64 KiB, for the corpora made from them.
small_captures() {
    [ -d "$captures" ] && find "$captures" -maxdepth 1 -type f -size -65537c | sort
}

# A first corpus for targets whose input is a capture or frame behind a header of their own.
seed_corpus() {
    local t=$1 dir=corpus/$1 f
    [ -z "$(ls -A "$dir" 2>/dev/null)" ] || return 0
    case $t in
        ingest_compressed)
            # Byte 0 picks gzip (even) or zstd (odd), and a split into two members (bit 1); then the capture.
            for f in seeds/ingest_bytes/*.pcap seeds/ingest_bytes/*.pcapng $(small_captures); do
                for p in 00 01 1a 1b; do
                    { printf "\\x$p"; cat "$f"; } >"$dir/$p-$(basename "$f")"
                done
            done
            ;;
        render)
            # decode_linktype's inputs (link type byte, frame) with render's 13 header bytes after the first.
            for f in seeds/decode_linktype/* corpus/decode_linktype/*; do
                [ -f "$f" ] || continue
                { head -c 1 "$f"; printf '\x06\x15\xcd\x5b\x07\x00\x00\x00\x00\x40\x00\x00\x00'; tail -c +2 "$f"; } \
                    >"$dir/$(basename "$f")"
            done
            ;;
    esac
}

mkdir -p logs
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seed_corpus "$t"
    dirs=("corpus/$t")
    [ -d "seeds/$t" ] && dirs+=("seeds/$t")
    case $t in
        ingest_bytes | store_roundtrip) [ -d "$captures" ] && dirs+=("$captures") ;;
    esac
    before=$(ls "artifacts/$t" | wc -l)
    log=logs/$t.log
    echo "== $t: ${secs}s on ${dirs[*]}" >&2
    start=$(date +%s)
    # -jobs=1 runs the fuzzer in one child process whose output libFuzzer writes to fuzz-0.log.
    rm -f fuzz-0.log
    cargo fuzz run -O "$t" "${dirs[@]}" -- \
        -jobs=1 -workers=1 -max_len="$(max_len "$t")" -rss_limit_mb=2048 -timeout=10 \
        -max_total_time="$secs" -print_final_stats=1 >"logs/$t.run.log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    if [ -f fuzz-0.log ]; then mv fuzz-0.log "$log"; else cp "logs/$t.run.log" "$log"; fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    new=$(($(ls "artifacts/$t" | wc -l) - before))
    err=$(grep -m1 -o 'ERROR: libFuzzer: [a-z-]*\|ERROR: AddressSanitizer: [a-z-]*\|ERROR: [A-Za-z]*Sanitizer: [a-z-]*' "$log")
    msg=$(grep -m1 -A1 'panicked at' "$log" | sed -n 2p | cut -c1-160)
    found="$err${msg:+: $msg}"
    line="$t: ${took}s, execs ${execs:-?}, ${cov:-cov ?}, new artifacts $new${found:+ ($found)}, exit $rc"
    echo "$line" >&2
    summary+=("$line")
done
echo
echo "summary (logs in fuzz/logs, artifacts in fuzz/artifacts):"
printf '%s\n' "${summary[@]}"
}

main "$@"; exit $?
