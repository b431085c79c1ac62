//! The whole reader -> decoder -> tracer path from arbitrary bytes (plain, gzip or zstd; pcap or pcapng).
#![no_main]

use libfuzzer_sys::fuzz_target;
use traceflow::capture::CaptureReader;
use traceflow::decode::decode;
use traceflow::trace::Tracer;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_reader(Box::new(std::io::Cursor::new(data.to_vec())))
    else {
        return;
    };
    let mut tracer = Tracer::new();
    let mut closed = 0usize;
    let mut last = 0u64;
    while let Some(f) = reader.next_frame() {
        assert_eq!(f.number, last + 1, "frame numbers are consecutive");
        last = f.number;
        assert_eq!(f.data.len(), f.caplen as usize);
        let _ = f.ts.as_ns();
        if let Some(tcp) = decode(f.linktype, f.data).tcp {
            tracer.observe(f.number, &f.ts, f.origlen, &tcp, &mut |_| closed += 1);
        }
    }
    let created = tracer.created() as usize;
    let mut open = 0usize;
    tracer.finish(&mut |_| open += 1).expect("parking open flows");
    assert_eq!(open + closed, created, "every flow is open or closed");
    let _ = reader.truncation();
    reader.drain();
    let _ = reader.content_hash();
});
