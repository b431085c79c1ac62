//! The decoder alone: the first byte picks a common link type, the rest is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traceflow::decode::decode;

const LINKTYPES: [u32; 16] = [
    0, 1, 9, 12, 14, 50, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let linktype = LINKTYPES[pick as usize % LINKTYPES.len()];
    let d = decode(linktype, frame);
    let _ = d.protocols();
    for l in d.layers() {
        assert!(
            l.offset as usize + l.len as usize <= frame.len(),
            "layer {l:?} lies past the frame"
        );
    }
    if let Some(t) = d.tcp {
        assert!(
            t.offset as usize + 14 <= frame.len(),
            "TCP header past the frame"
        );
    }
});
