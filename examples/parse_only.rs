//! Times the read → decode → trace stages alone (no SQLite), to see how much of an ingest is parsing.
//! Usage: cargo run --release --example parse_only -- CAPTURE

use std::time::Instant;

use traceflow::capture::CaptureReader;
use traceflow::decode::decode;
use traceflow::trace::Tracer;

fn main() {
    let path = std::env::args().nth(1).expect("usage: parse_only CAPTURE");
    let t0 = Instant::now();
    let mut r = CaptureReader::open(path.as_ref()).expect("open");
    let (mut frames, mut tcp, mut closed) = (0u64, 0u64, 0u64);
    let mut tracer = Tracer::new();
    while let Some(f) = r.next_frame() {
        frames += 1;
        if let Some(t) = decode(f.linktype, f.data).tcp {
            tcp += 1;
            tracer.observe(f.number, &f.ts, f.origlen, &t, &mut |_| closed += 1);
        }
    }
    let mut open = 0u64;
    tracer
        .finish(&mut |_| open += 1)
        .expect("parking open flows");
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{frames} frames ({tcp} TCP), {} flows in {s:.3}s: {:.0} ns/frame",
        open + closed,
        s * 1e9 / frames as f64
    );
}
