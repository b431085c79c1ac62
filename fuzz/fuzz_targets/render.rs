//! The dump renderer (tree, text and json) on arbitrary frame bytes.
//!
//! Input: byte 0 picks one of decode_linktype's 16 link types, byte 1 is the interface's if_tsresol, bytes 2..10
//! the timestamp (ns, i64 LE), 10..14 the original length (u32 LE); the rest is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traceflow::decode::decode;
use traceflow::dump::render::{frame_node, write_text, write_tree, FrameInfo, Node};

const LINKTYPES: [u32; 16] = [
    0, 1, 9, 12, 14, 50, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276,
];

/// Bytes of output a frame byte may cost, and the fixed part: every layer's header is shown once (its fields,
/// or its bytes in hex), and only the innermost layer shows a payload. The worst case is a 4-byte header
/// (VLAN, an MPLS entry) becoming several lines, each indented by up to 16 layers.
const PER_BYTE: usize = 256;
const FIXED: usize = 16 << 10;

/// (scalar leaves, nodes below the root); checks that no map repeats a key (JSON and plist would lose one).
fn count(n: &Node) -> (usize, usize) {
    match n {
        Node::U(_) | Node::B(_) | Node::S(_) | Node::Hex(_) => (1, 0),
        Node::List(items) => items.iter().fold((0, 0), |(l, c), v| {
            let (l2, c2) = count(v);
            (l + l2, c + c2 + 1)
        }),
        Node::Map(entries) => {
            let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            for w in keys.windows(2) {
                assert_ne!(w[0], w[1], "a map repeats the key {:?}", w[0]);
            }
            entries.iter().fold((0, 0), |(l, c), (_, v)| {
                let (l2, c2) = count(v);
                (l + l2, c + c2 + 1)
            })
        }
    }
}

fn get<'a>(n: &'a Node, k: &str) -> Option<&'a Node> {
    match n {
        Node::Map(e) => e.iter().find(|(kk, _)| kk == k).map(|(_, v)| v),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 14 {
        return;
    }
    let linktype = LINKTYPES[data[0] as usize % LINKTYPES.len()];
    let frame = &data[14..];
    let info = FrameInfo {
        number: 1 + data[1] as u64,
        ts_ns: i64::from_le_bytes(data[2..10].try_into().unwrap()),
        caplen: frame.len() as u32,
        origlen: u32::from_le_bytes(data[10..14].try_into().unwrap()),
        linktype,
        tsresol: data[1],
    };
    let node = frame_node(&info, frame);
    let bound = PER_BYTE * frame.len() + FIXED;

    assert_eq!(get(&node, "number"), Some(&Node::U(info.number)));
    assert_eq!(get(&node, "cap_len"), Some(&Node::U(info.caplen as u64)));
    assert_eq!(get(&node, "len"), Some(&Node::U(info.origlen as u64)));
    assert_eq!(
        get(&node, "protocols"),
        Some(&Node::S(decode(linktype, frame).protocols()))
    );
    let (leaves, nodes) = count(&node);

    let name = format!("Frame {}", info.number);
    let mut tree = Vec::new();
    write_tree(&mut tree, &name, &node).expect("writing to a Vec");
    assert!(tree.len() <= bound, "tree: {} bytes for a {}-byte frame", tree.len(), frame.len());
    let tree = std::str::from_utf8(&tree).expect("the tree is UTF-8");
    // The name, then one line per node below it.
    assert_eq!(tree.lines().count(), 1 + nodes, "tree lines");

    let mut text = Vec::new();
    write_text(&mut text, &name, &node).expect("writing to a Vec");
    assert!(text.len() <= bound, "text: {} bytes for a {}-byte frame", text.len(), frame.len());
    let text = std::str::from_utf8(&text).expect("the text is UTF-8");
    // One `path: value` line per scalar, each under the frame's name.
    assert_eq!(text.lines().count(), leaves, "text lines");
    for l in text.lines() {
        assert!(l.starts_with(&name), "text line outside the frame: {l:?}");
    }

    let json = serde_json::to_vec_pretty(&node).expect("the node serializes");
    assert!(json.len() <= bound, "json: {} bytes for a {}-byte frame", json.len(), frame.len());
    let back: serde_json::Value = serde_json::from_slice(&json).expect("the json parses back");
    assert_eq!(back, serde_json::to_value(&node).unwrap(), "json round trip");
});
