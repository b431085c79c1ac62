# Shared by the benchmark scripts (sourced, after they define SYNTH, log and die): the synthetic captures of
# ../shared/bench/synth_pcap.py, generated once and reused while the generator and the file are unchanged (a
# PATH.meta beside each names the generator's hash, the arguments and the size).
gen_hash=$(sha1sum "$SYNTH" | cut -c1-12)
# gen_capture PATH CONNECTIONS SEED: generate unless an identical file is already there.
gen_capture() {
    local out=$1 n=$2 seed=$3 want
    want="synth_pcap $gen_hash connections=$n seed=$seed"
    if [[ -f $out && -f $out.meta && "$(cat "$out.meta")" == "$want size=$(stat -c %s "$out")" ]]; then
        log "reusing $out ($(($(stat -c %s "$out") / 1000000)) MB)"
        return 0
    fi
    rm -f "$out" "$out.meta" "$out.tmp"
    log "generating $out: --connections $n --seed $seed"
    /usr/bin/time -f '%e %M' -o "$out.gen-time" \
        python3 "$SYNTH" "$out.tmp" --connections "$n" --seed "$seed" || die "generation failed"
    mv "$out.tmp" "$out"
    echo "$want size=$(stat -c %s "$out")" >"$out.meta"
    log "generated $out in $(cut -d' ' -f1 <"$out.gen-time" | tail -n1)s"
}
