//! Decoded frames for the json, plist, tree and text dumps: one [`Node`] tree per frame, keyed as pcapkit's
//! `Frame N`, with `frame_info`, timing and lengths, then the layers nested outermost first down to TCP.
//!
//! Each layer's fields are parsed from its own header bytes (the spans [`crate::decode::decode`] reports), so
//! the values are the frame's real ones, not re-derived.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::decode::{decode, Layer, LayerSpan};
use crate::label::Timestamp;

/// A value in a decoded frame. Maps keep their insertion order in every output format.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    U(u64),
    B(bool),
    S(String),
    /// Bytes shown as lowercase hex. Kept as bytes so that a large frame's payload costs its size once, not the
    /// three copies of hex text it took as `S` (the hex is written straight to the output).
    Hex(Vec<u8>),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::U(v) => s.serialize_u64(*v),
            Node::B(v) => s.serialize_bool(*v),
            Node::S(v) => s.serialize_str(v),
            Node::Hex(b) => s.collect_str(&HexText(b)),
            Node::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Node::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Displays bytes as lowercase hex without building the string.
struct HexText<'a>(&'a [u8]);

impl std::fmt::Display for HexText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for x in self.0 {
            write!(f, "{x:02x}")?;
        }
        Ok(())
    }
}

/// Builder for a `Node::Map`.
#[derive(Default)]
struct M(Vec<(String, Node)>);

impl M {
    fn u(mut self, k: &str, v: impl Into<u64>) -> Self {
        self.0.push((k.into(), Node::U(v.into())));
        self
    }
    fn b(mut self, k: &str, v: bool) -> Self {
        self.0.push((k.into(), Node::B(v)));
        self
    }
    fn s(mut self, k: &str, v: impl Into<String>) -> Self {
        self.0.push((k.into(), Node::S(v.into())));
        self
    }
    fn x(mut self, k: &str, v: &[u8]) -> Self {
        self.0.push((k.into(), Node::Hex(v.to_vec())));
        self
    }
    fn n(mut self, k: &str, v: Node) -> Self {
        self.0.push((k.into(), v));
        self
    }
    fn opt_u(self, k: &str, v: Option<impl Into<u64>>) -> Self {
        match v {
            Some(v) => self.u(k, v),
            None => self,
        }
    }
    fn node(self) -> Node {
        Node::Map(self.0)
    }
}

/// What the dump knows of a frame besides its bytes (from the frames and interfaces tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub number: u64,
    pub ts_ns: i64,
    pub caplen: u32,
    pub origlen: u32,
    pub linktype: u32,
    /// pcapng `if_tsresol` byte of the frame's interface (6 = µs, 9 = ns).
    pub tsresol: u8,
}

impl FrameInfo {
    /// Decimal digits of the timestamp's fraction as the capture recorded it (at most 9: ns are stored).
    pub fn digits(&self) -> u8 {
        if self.tsresol & 0x80 != 0 {
            9
        } else {
            self.tsresol.min(9)
        }
    }

    /// The exact decimal timestamp, as pcapkit's `time_epoch`.
    pub fn timestamp(&self) -> Timestamp {
        let d = self.digits();
        let sub = self.ts_ns.rem_euclid(1_000_000_000) as u64;
        Timestamp::new(
            self.ts_ns.div_euclid(1_000_000_000),
            sub / 10u64.pow(9 - d as u32),
            d,
        )
    }
}

/// ISO 8601 UTC time with as many fraction digits as the capture's resolution.
fn iso(ts: &Timestamp) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts.sec) {
        Ok(t) => {
            let mut s = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            if ts.digits > 0 {
                let _ = write!(s, ".{:0w$}", ts.frac, w = ts.digits as usize);
            }
            s.push('Z');
            s
        }
        Err(_) => ts.decimal(),
    }
}

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|v| u16::from_be_bytes([v[0], v[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

fn hex16(v: u16) -> String {
    format!("0x{v:04x}")
}

/// The key of a layer in the nested output: its display name in lower case, punctuation as `_`.
pub fn layer_key(layer: Layer) -> String {
    key_of(layer.name())
}

/// The nested-output key for a protocol name as `protocols` lists it (`802.11` → `802_11`).
pub fn key_of(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The decoded frame: the value of its `Frame N` entry.
pub fn frame_node(info: &FrameInfo, data: &[u8]) -> Node {
    let ts = info.timestamp();
    let sub_ns = info.ts_ns.rem_euclid(1_000_000_000) as u64;
    let frame_info = if info.digits() > 6 {
        M::default().u("ts_sec", ts.sec as u64).u("ts_nsec", sub_ns)
    } else {
        M::default()
            .u("ts_sec", ts.sec as u64)
            .u("ts_usec", sub_ns / 1000)
    }
    .u("incl_len", info.caplen)
    .u("orig_len", info.origlen);
    let d = decode(info.linktype, data);
    let mut m = M::default()
        .n("frame_info", frame_info.node())
        .s("time", iso(&ts))
        .u("number", info.number)
        .s("time_epoch", ts.decimal())
        .u("len", info.origlen)
        .u("cap_len", info.caplen)
        .s("protocols", d.protocols());
    let layers = d.layers();
    if let Some(first) = layers.first() {
        m = m.n(&layer_key(first.layer), nest(layers, data, d.tcp.as_ref()));
    } else if !data.is_empty() {
        m = m.x("data", data);
    }
    m.node()
}

/// The node of `layers[0]` with the following layers nested inside it.
fn nest(layers: &[LayerSpan], data: &[u8], tcp: Option<&crate::decode::Tcp>) -> Node {
    let span = layers[0];
    let start = span.offset as usize;
    let end = (start + span.len as usize).min(data.len());
    let h = data.get(start..end).unwrap_or(&[]);
    let mut m = layer_fields(span.layer, h, tcp);
    match layers.get(1) {
        Some(next) => m = m.n(&layer_key(next.layer), nest(&layers[1..], data, tcp)),
        None if span.layer != Layer::Tcp => {
            // The decoder stopped here: what follows is this layer's payload, undecoded.
            let rest = data.get(end..).unwrap_or(&[]);
            m = m.u("payload_len", rest.len() as u64).x("payload", rest);
        }
        None => {
            if let Some(t) = tcp {
                let from = t.offset as usize + t.hdr_len as usize;
                let captured = data.get(from..).unwrap_or(&[]);
                let payload = &captured[..captured.len().min(t.payload_len as usize)];
                m = m
                    .u("payload_len", t.payload_len)
                    .u("payload_captured", payload.len() as u64)
                    .x("payload", payload);
            }
        }
    }
    m.node()
}

/// The fields of one layer, parsed from its header bytes `h`.
fn layer_fields(layer: Layer, h: &[u8], tcp: Option<&crate::decode::Tcp>) -> M {
    let m = M::default();
    match layer {
        Layer::Ethernet if h.len() >= 14 => m
            .s("dst", mac(&h[0..6]))
            .s("src", mac(&h[6..12]))
            .s("type", hex16(be16(h, 12).unwrap_or(0))),
        Layer::Vlan if h.len() >= 4 => {
            let tci = be16(h, 0).unwrap_or(0);
            m.u("tci", tci)
                .u("pcp", tci >> 13)
                .b("dei", tci & 0x1000 != 0)
                .u("vid", tci & 0x0fff)
                .s("type", hex16(be16(h, 2).unwrap_or(0)))
        }
        Layer::Mpls => {
            let entries = h
                .chunks_exact(4)
                .map(|e| {
                    let v = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
                    M::default()
                        .u("label", v >> 12)
                        .u("tc", (v >> 9) & 7)
                        .b("s", v & 0x100 != 0)
                        .u("ttl", v & 0xff)
                        .node()
                })
                .collect();
            m.n("labels", Node::List(entries))
        }
        Layer::Pppoe if h.len() >= 6 => m
            .u("version", h[0] >> 4)
            .u("type", h[0] & 0x0f)
            .u("code", h[1])
            .u("session_id", be16(h, 2).unwrap_or(0))
            .u("length", be16(h, 4).unwrap_or(0)),
        Layer::Ppp => {
            let m = if h.len() >= 4 && h[0] == 0xff && h[1] == 0x03 {
                m.u("address", h[0]).u("control", h[1])
            } else {
                m
            };
            let proto = match h.len() {
                0 => 0,
                1 => h[0] as u16,
                n => be16(h, n - 2).unwrap_or(0),
            };
            m.s("protocol", hex16(proto))
        }
        Layer::Null | Layer::Loop if h.len() >= 4 => {
            let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            // NULL is in the capturing host's byte order, LOOP in network order.
            let family = if layer == Layer::Loop || be < 0x100 {
                be
            } else {
                le
            };
            m.u("family", family)
        }
        Layer::Sll if h.len() >= 16 => {
            let halen = be16(h, 4).unwrap_or(0).min(8) as usize;
            m.u("packet_type", be16(h, 0).unwrap_or(0))
                .u("hatype", be16(h, 2).unwrap_or(0))
                .u("halen", be16(h, 4).unwrap_or(0))
                .s("address", mac(&h[6..6 + halen]))
                .s("protocol", hex16(be16(h, 14).unwrap_or(0)))
        }
        Layer::Sll2 if h.len() >= 20 => {
            let halen = (h[11] as usize).min(8);
            m.s("protocol", hex16(be16(h, 0).unwrap_or(0)))
                .u("ifindex", be32(h, 4).unwrap_or(0))
                .u("hatype", be16(h, 8).unwrap_or(0))
                .u("packet_type", h[10])
                .u("halen", h[11])
                .s("address", mac(&h[12..12 + halen]))
        }
        Layer::Ipv4 if h.len() >= 20 => {
            let ihl = (h[0] & 0x0f) as usize * 4;
            let frag = be16(h, 6).unwrap_or(0);
            let mut m = m
                .u("version", h[0] >> 4)
                .u("hdr_len", ihl as u64)
                .u("dscp", h[1] >> 2)
                .u("ecn", h[1] & 3)
                .u("len", be16(h, 2).unwrap_or(0))
                .u("id", be16(h, 4).unwrap_or(0))
                .n(
                    "flags",
                    M::default()
                        .b("rb", frag & 0x8000 != 0)
                        .b("df", frag & 0x4000 != 0)
                        .b("mf", frag & 0x2000 != 0)
                        .node(),
                )
                .u("frag_offset", (frag & 0x1fff) as u64 * 8)
                .u("ttl", h[8])
                .u("proto", h[9])
                .s("checksum", hex16(be16(h, 10).unwrap_or(0)))
                .s("src", Ipv4Addr::new(h[12], h[13], h[14], h[15]).to_string())
                .s("dst", Ipv4Addr::new(h[16], h[17], h[18], h[19]).to_string());
            if ihl > 20 && h.len() > 20 {
                m = m.s("options", hex(&h[20..h.len().min(ihl)]));
            }
            m
        }
        Layer::Ipv6 if h.len() >= 40 => {
            let first = be32(h, 0).unwrap_or(0);
            let addr = |at: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&h[at..at + 16]);
                Ipv6Addr::from(a).to_string()
            };
            m.u("version", first >> 28)
                .u("traffic_class", (first >> 20) & 0xff)
                .u("flow_label", first & 0xfffff)
                .u("payload_len", be16(h, 4).unwrap_or(0))
                .u("next_header", h[6])
                .u("hop_limit", h[7])
                .s("src", addr(8))
                .s("dst", addr(24))
        }
        Layer::Ipv6Ext if h.len() >= 2 => m
            .u("next_header", h[0])
            .u("hdr_ext_len", h[1])
            .s("header", hex(h)),
        Layer::Udp if h.len() >= 8 => m
            .u("srcport", be16(h, 0).unwrap_or(0))
            .u("dstport", be16(h, 2).unwrap_or(0))
            .u("len", be16(h, 4).unwrap_or(0))
            .s("checksum", hex16(be16(h, 6).unwrap_or(0))),
        Layer::Gre if h.len() >= 4 => {
            let fv = be16(h, 0).unwrap_or(0);
            m.b("checksum_present", fv & 0x8000 != 0)
                .b("key_present", fv & 0x2000 != 0)
                .b("seq_present", fv & 0x1000 != 0)
                .u("version", fv & 7)
                .s("protocol", hex16(be16(h, 2).unwrap_or(0)))
                .s("header", hex(h))
        }
        Layer::Vxlan if h.len() >= 8 => m.u("flags", h[0]).u("vni", be32(h, 4).unwrap_or(0) >> 8),
        Layer::Geneve if h.len() >= 8 => m
            .u("version", h[0] >> 6)
            .u("opt_len", (h[0] & 0x3f) as u64 * 4)
            .s("protocol", hex16(be16(h, 2).unwrap_or(0)))
            .u("vni", be32(h, 4).unwrap_or(0) >> 8)
            .s("header", hex(h)),
        Layer::GtpU if h.len() >= 8 => m
            .u("version", h[0] >> 5)
            .u("message_type", h[1])
            .u("length", be16(h, 2).unwrap_or(0))
            .u("teid", be32(h, 4).unwrap_or(0))
            .s("header", hex(h)),
        Layer::Tcp => tcp_fields(h, tcp),
        _ => m.s("header", hex(h)),
    }
}

fn tcp_fields(h: &[u8], tcp: Option<&crate::decode::Tcp>) -> M {
    let off_flags = be16(h, 12).unwrap_or(0);
    let hdr_len = (off_flags >> 12) as usize * 4;
    let flag = |bit: u16| off_flags & bit != 0;
    let mut m = M::default()
        .u("srcport", be16(h, 0).unwrap_or(0))
        .u("dstport", be16(h, 2).unwrap_or(0))
        .u("seq", be32(h, 4).unwrap_or(0))
        .u("ack", be32(h, 8).unwrap_or(0))
        .u("hdr_len", hdr_len as u64)
        .n(
            "flags",
            M::default()
                .b("ns", flag(0x100))
                .b("cwr", flag(0x80))
                .b("ece", flag(0x40))
                .b("urg", flag(0x20))
                .b("ack", flag(0x10))
                .b("psh", flag(0x08))
                .b("rst", flag(0x04))
                .b("syn", flag(0x02))
                .b("fin", flag(0x01))
                .node(),
        )
        .opt_u("window", be16(h, 14));
    // Fields the capture cut off are left out rather than made up.
    if let Some(c) = be16(h, 16) {
        m = m.s("checksum", hex16(c));
    }
    m = m.opt_u("urgent_pointer", be16(h, 18));
    if hdr_len > 20 && h.len() > 20 {
        m = m.n(
            "options",
            Node::List(tcp_options(&h[20..h.len().min(hdr_len)])),
        );
    }
    if tcp.is_none() {
        m = m.b("not_a_tcp_packet", true);
    }
    m
}

/// The TCP options in `b`: MSS, window scale, SACK-permitted, SACK blocks, timestamps, the rest as kind + hex.
pub fn tcp_options(b: &[u8]) -> Vec<Node> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let kind = b[at];
        match kind {
            0 => {
                out.push(M::default().u("kind", 0u8).s("name", "eol").node());
                break;
            }
            1 => {
                out.push(M::default().u("kind", 1u8).s("name", "nop").node());
                at += 1;
                continue;
            }
            _ => {}
        }
        let len = b.get(at + 1).copied().unwrap_or(0) as usize;
        if len < 2 || at + len > b.len() {
            out.push(
                M::default()
                    .u("kind", kind)
                    .b("malformed", true)
                    .s("data", hex(&b[at..]))
                    .node(),
            );
            break;
        }
        let v = &b[at + 2..at + len];
        let m = M::default().u("kind", kind).u("len", len as u64);
        let node = match (kind, v.len()) {
            (2, 2) => m.s("name", "mss").u("mss", be16(v, 0).unwrap_or(0)),
            (3, 1) => m
                .s("name", "window_scale")
                .u("shift", v[0])
                .u("multiplier", 1u64 << v[0].min(14)),
            (4, 0) => m.s("name", "sack_permitted"),
            (5, n) if n % 8 == 0 => {
                let blocks = v
                    .chunks_exact(8)
                    .map(|c| {
                        M::default()
                            .u("left", be32(c, 0).unwrap_or(0))
                            .u("right", be32(c, 4).unwrap_or(0))
                            .node()
                    })
                    .collect();
                m.s("name", "sack").n("blocks", Node::List(blocks))
            }
            (8, 8) => m
                .s("name", "timestamps")
                .u("tsval", be32(v, 0).unwrap_or(0))
                .u("tsecr", be32(v, 4).unwrap_or(0)),
            _ => m.s("data", hex(v)),
        };
        out.push(node.node());
        at += len;
    }
    out
}

/// A scalar's text, borrowed where it can be: writing a large value never copies it.
enum Scalar<'a> {
    Text(std::borrow::Cow<'a, str>),
    Hex(&'a [u8]),
}

impl Scalar<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Scalar::Text(t) => t.is_empty(),
            Scalar::Hex(b) => b.is_empty(),
        }
    }
}

impl std::fmt::Display for Scalar<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Text(t) => f.write_str(t),
            Scalar::Hex(b) => HexText(b).fmt(f),
        }
    }
}

fn scalar(n: &Node) -> Option<Scalar<'_>> {
    use std::borrow::Cow;
    match n {
        Node::U(v) => Some(Scalar::Text(Cow::Owned(v.to_string()))),
        Node::B(v) => Some(Scalar::Text(Cow::Owned(v.to_string()))),
        Node::S(v) => Some(Scalar::Text(Cow::Borrowed(v))),
        Node::Hex(b) => Some(Scalar::Hex(b)),
        _ => None,
    }
}

fn children(n: &Node) -> Vec<(String, &Node)> {
    match n {
        Node::List(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("[{i}]"), v))
            .collect(),
        Node::Map(entries) => entries.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => Vec::new(),
    }
}

/// Writes `name` and its node as an indented tree for people.
pub fn write_tree(out: &mut dyn Write, name: &str, node: &Node) -> io::Result<()> {
    writeln!(out, "{name}")?;
    tree_children(out, node, "")
}

fn tree_children(out: &mut dyn Write, node: &Node, prefix: &str) -> io::Result<()> {
    let kids = children(node);
    let n = kids.len();
    for (i, (k, v)) in kids.into_iter().enumerate() {
        let last = i + 1 == n;
        let branch = if last { "└── " } else { "├── " };
        match scalar(v) {
            Some(s) if s.is_empty() => writeln!(out, "{prefix}{branch}{k}:")?,
            Some(s) => writeln!(out, "{prefix}{branch}{k}: {s}")?,
            None => {
                writeln!(out, "{prefix}{branch}{k}")?;
                let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
                tree_children(out, v, &deeper)?;
            }
        }
    }
    Ok(())
}

/// Writes `name` and its node as flat `path: value` lines (`Frame 1.ethernet.ipv4.tcp.seq: 1000`).
pub fn write_text(out: &mut dyn Write, name: &str, node: &Node) -> io::Result<()> {
    match scalar(node) {
        Some(s) if s.is_empty() => writeln!(out, "{name}:"),
        Some(s) => writeln!(out, "{name}: {s}"),
        None => {
            for (k, v) in children(node) {
                let path = if k.starts_with('[') {
                    format!("{name}{k}")
                } else {
                    format!("{name}.{k}")
                };
                write_text(out, &path, v)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(n: &Node, k: &str) -> Option<Node> {
        match n {
            Node::Map(e) => e.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    #[test]
    fn tcp_options_decode() {
        let opts = [
            2, 4, 0x05, 0xb4, // MSS 1460
            1,    // NOP
            3, 3, 7, // WS 7
            4, 2, // SACK permitted
            8, 10, 0, 0, 0, 1, 0, 0, 0, 2, // TS 1 2
            5, 10, 0, 0, 0, 10, 0, 0, 0, 20, // SACK 10-20
            30, 4, 0xab, 0xcd, // unknown kind 30
            0,    // EOL
        ];
        let o = tcp_options(&opts);
        assert_eq!(o.len(), 8);
        assert_eq!(key_of(&o[0], "mss"), Some(Node::U(1460)));
        assert_eq!(key_of(&o[1], "name"), Some(Node::S("nop".into())));
        assert_eq!(key_of(&o[2], "multiplier"), Some(Node::U(128)));
        assert_eq!(
            key_of(&o[3], "name"),
            Some(Node::S("sack_permitted".into()))
        );
        assert_eq!(key_of(&o[4], "tsecr"), Some(Node::U(2)));
        let blocks = key_of(&o[5], "blocks").unwrap();
        assert_eq!(
            blocks,
            Node::List(vec![M::default().u("left", 10u8).u("right", 20u8).node()])
        );
        assert_eq!(key_of(&o[6], "kind"), Some(Node::U(30)));
        assert_eq!(key_of(&o[6], "data"), Some(Node::S("abcd".into())));
        assert_eq!(key_of(&o[7], "name"), Some(Node::S("eol".into())));
    }

    #[test]
    fn tcp_options_malformed_stop() {
        let o = tcp_options(&[2, 9, 1]);
        assert_eq!(o.len(), 1);
        assert_eq!(key_of(&o[0], "malformed"), Some(Node::B(true)));
        let o = tcp_options(&[8, 0]);
        assert_eq!(key_of(&o[0], "malformed"), Some(Node::B(true)));
    }

    #[test]
    fn time_epoch_keeps_resolution() {
        let f = FrameInfo {
            number: 1,
            ts_ns: 1_385_474_294_492_448_000,
            caplen: 0,
            origlen: 0,
            linktype: 1,
            tsresol: 6,
        };
        assert_eq!(f.timestamp().decimal(), "1385474294.492448");
        assert_eq!(iso(&f.timestamp()), "2013-11-26T13:58:14.492448Z");
        let f = FrameInfo { tsresol: 9, ..f };
        assert_eq!(f.timestamp().decimal(), "1385474294.492448000");
    }

    #[test]
    fn layer_keys() {
        assert_eq!(layer_key(Layer::Ipv4), "ipv4");
        assert_eq!(layer_key(Layer::GtpU), "gtp_u");
    }
}
