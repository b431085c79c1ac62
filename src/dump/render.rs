//! Decoded frames for the json, plist, tree and text dumps: one [`Node`] tree per frame, keyed as pcapkit's
//! `Frame N`, with `frame_info`, timing and lengths, then the layers nested outermost first down to TCP.
//!
//! Each layer's fields are parsed from its own header bytes (the spans [`crate::decode::decode`] reports), so
//! the values are the frame's real ones, not re-derived. Protocol numbers come from [`crate::decode::numbers`].

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::capture::Timestamp;
use crate::decode::numbers::*;
use crate::decode::{decode, Layer, LayerSpan};

/// A value in a decoded frame. Maps keep their insertion order in every output format.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// An unsigned number.
    U(u64),
    /// A signed number (a time before the epoch).
    I(i64),
    /// A boolean.
    B(bool),
    /// A string.
    S(String),
    /// Bytes shown as lowercase hex. Kept as bytes so that a large frame's payload costs its size once, not the
    /// three copies of hex text it took as `S` (the hex is written straight to the output).
    Hex(Vec<u8>),
    /// A list.
    List(Vec<Node>),
    /// A map, in insertion order.
    Map(Vec<(String, Node)>),
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::U(v) => s.serialize_u64(*v),
            Node::I(v) => s.serialize_i64(*v),
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
    /// A signed number, as `u` when it is not negative.
    fn i(mut self, k: &str, v: i64) -> Self {
        self.0
            .push((k.into(), u64::try_from(v).map_or(Node::I(v), Node::U)));
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
    /// Frame number in its capture (from 1).
    pub number: u64,
    /// Timestamp in ns since the Unix epoch.
    pub ts_ns: i64,
    /// Captured length.
    pub caplen: u32,
    /// Original (wire) length.
    pub origlen: u32,
    /// pcap LINKTYPE of the frame's interface.
    pub linktype: u32,
    /// pcapng `if_tsresol` byte of the frame's interface (6 = µs, 9 = ns).
    pub tsresol: u8,
}

impl FrameInfo {
    /// Decimal digits of the timestamp's fraction as the capture recorded it (at most 9: ns are stored).
    pub fn digits(&self) -> u8 {
        crate::capture::tsresol_digits(self.tsresol)
    }

    /// The exact decimal timestamp, as pcapkit's `time_epoch`.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_ns(self.ts_ns, self.digits())
    }
}

/// Lower-case hex of `b`, no separators.
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
    // As PyPCAPKit's block2frame: `int(time_epoch)` and the rest, both toward zero (a time before the epoch has
    // both negative; they were wrapped to 2^64 - n).
    let (sec, sub_ns) = (info.ts_ns / 1_000_000_000, info.ts_ns % 1_000_000_000);
    let frame_info = if info.digits() > 6 {
        M::default().i("ts_sec", sec).i("ts_nsec", sub_ns)
    } else {
        M::default().i("ts_sec", sec).i("ts_usec", sub_ns / 1000)
    }
    .u("incl_len", info.caplen)
    .u("orig_len", info.origlen);
    let d = decode(info.linktype, data);
    let mut m = M::default()
        .n("frame_info", frame_info.node())
        .s("time", ts.rfc3339())
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
    if span.layer == Layer::Ipv6 && h.len() >= 40 && h[6] == IPPROTO_HOPOPTS {
        if let Some(hbh) = layers.get(1).filter(|l| l.layer == Layer::Ipv6Ext) {
            let at = hbh.offset as usize;
            let hb = data.get(at..at + hbh.len as usize).unwrap_or(&[]);
            if let Some(j) = jumbo_option(hb) {
                m = m.u("jumbo_payload_len", j);
            }
        }
    }
    match layers.get(1) {
        Some(next) => m = m.n(&layer_key(next.layer), nest(&layers[1..], data, tcp)),
        None if span.layer != Layer::Tcp => {
            // The decoder stopped here: what follows is this layer's payload, undecoded.
            let rest = data.get(end..).unwrap_or(&[]);
            // `data`, as for a frame with no layer at all: IPv6 already has a `payload_len` field of its own.
            m = m.u("data_len", rest.len() as u64).x("data", rest);
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

/// The value of the first Jumbo Payload option (RFC 2675) in the Hop-by-Hop header `h`, whatever it is (the
/// decoder takes it as the length only when the payload length is 0 and it is at least 65,536).
fn jumbo_option(h: &[u8]) -> Option<u32> {
    let mut i = 2;
    while i < h.len() {
        let t = h[i];
        if t == IP6OPT_PAD1 {
            i += 1;
            continue;
        }
        let l = *h.get(i + 1)? as usize;
        if t == IP6OPT_JUMBO && l == IP6OPT_JUMBO_LEN as usize {
            return be32(h, i + 2);
        }
        i += 2 + l;
    }
    None
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
            let m = if h.len() >= 4 && h[0] == PPP_ADDRESS && h[1] == LLC_CONTROL_UI {
                m.u("address", h[0]).u("control", h[1])
            } else {
                m
            };
            let proto = match h.len() {
                0 => 0,
                1 => u16::from(h[0]),
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
                .u("frag_offset", u64::from(frag & 0x1fff) * 8)
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
        Layer::Wccp if h.len() >= 4 => m
            .b("dynamic_service", h[0] & 0x01 != 0)
            .b("alt_bucket_used", h[0] & 0x02 != 0)
            .b("header_invalid", h[0] & 0x04 != 0)
            .u("service_id", h[1])
            .u("alt_bucket", h[2])
            .u("primary_bucket", h[3]),
        Layer::FabricPath if h.len() >= 2 => {
            let v = be16(h, 0).unwrap_or(0);
            m.u("ftag", v >> 6).u("ttl", v & 0x3f)
        }
        Layer::VnTag if h.len() >= 6 => {
            let v = be32(h, 0).unwrap_or(0);
            m.b("direction", v & 0x8000_0000 != 0)
                .b("pointer", v & 0x4000_0000 != 0)
                .u("dst_vif", (v >> 16) & 0x3fff)
                .b("looped", v & 0x8000 != 0)
                .u("version", (v >> 12) & 3)
                .u("src_vif", v & 0x0fff)
                .s("type", hex16(be16(h, 4).unwrap_or(0)))
        }
        Layer::Fddi if h.len() >= 13 => m
            .s("frame_control", format!("0x{:02x}", h[0]))
            .u("priority", h[0] & 0x07)
            .s("dst", mac(&h[1..7]))
            .s("src", mac(&h[7..13])),
        Layer::AMsdu if h.len() >= 14 => m
            .s("dst", mac(&h[0..6]))
            .s("src", mac(&h[6..12]))
            .u("length", be16(h, 12).unwrap_or(0)),
        Layer::Ayiya if h.len() >= 8 => {
            let id_len = 1usize << (h[0] >> 4);
            let sig_len = (h[1] >> 4) as usize * 4;
            let id = h.get(8..8 + id_len).unwrap_or(&[]);
            let sig = h.get(8 + id_len..8 + id_len + sig_len).unwrap_or(&[]);
            m.u("id_len", id_len as u64)
                .u("id_type", h[0] & 0x0f)
                .u("sig_len", sig_len as u64)
                .u("hash_method", h[1] & 0x0f)
                .u("auth_method", h[2] >> 4)
                .u("opcode", h[2] & 0x0f)
                .u("next_header", h[3])
                .u("epoch", be32(h, 4).unwrap_or(0))
                .x("identity", id)
                .x("signature", sig)
        }
        Layer::Teredo => teredo_fields(m, h),
        Layer::Arcnet if h.len() >= 5 => {
            let m = m
                .s("src", format!("0x{:02x}", h[0]))
                .s("dst", format!("0x{:02x}", h[1]))
                .u("protocol_id", h[4]);
            match (h.get(5), be16(h, 6)) {
                (Some(&split), Some(seq)) => m.u("split_flag", split).u("sequence", seq),
                _ => m,
            }
        }
        Layer::Ipoib if h.len() >= 44 => m
            .x("pseudo_header", &h[..40])
            .s("type", hex16(be16(h, 40).unwrap_or(0))),
        Layer::Juniper if h.len() >= 4 => {
            // A frame without the magic is Ethernet from its first byte: the layer is empty then.
            let mut m = m
                .s("magic", String::from_utf8_lossy(&h[..3]))
                .s("direction", if h[3] & 0x01 != 0 { "in" } else { "out" })
                .b("l2_header", h[3] & 0x02 == 0);
            let mut at = 4;
            if let Some(ext) = be16(h, 4).filter(|_| h[3] & 0x80 != 0) {
                m = m.u("ext_total_len", ext);
                at = 6 + ext as usize;
            }
            match h.get(at..at + 4).filter(|_| h[3] & 0x02 != 0) {
                Some(t) => m.u("payload_type", u32::from_le_bytes([t[0], t[1], t[2], t[3]])),
                None => m,
            }
        }
        Layer::Vxlan if h.len() >= 8 => m.u("flags", h[0]).u("vni", be32(h, 4).unwrap_or(0) >> 8),
        Layer::Geneve if h.len() >= 8 => m
            .u("version", h[0] >> 6)
            .u("opt_len", u64::from(h[0] & 0x3f) * 4)
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

/// Teredo's authentication header and origin indication (its port and address are sent complemented).
fn teredo_fields(m: M, h: &[u8]) -> M {
    let mut m = m;
    let mut at = 0;
    if be16(h, 0) == Some(TEREDO_AUTH) && h.len() >= 4 {
        let (id, au) = (h[2] as usize, h[3] as usize);
        m = m.n(
            "auth",
            M::default()
                .u("id_len", id as u64)
                .u("au_len", au as u64)
                .x("id", h.get(4..4 + id).unwrap_or(&[]))
                .x("nonce", h.get(4 + id + au..12 + id + au).unwrap_or(&[]))
                .u("confirmation", h.get(12 + id + au).copied().unwrap_or(0))
                .node(),
        );
        at = 13 + id + au;
    }
    if let (Some(TEREDO_ORIGIN), Some(o)) = (be16(h, at), h.get(at..at + 8)) {
        let a = Ipv4Addr::new(!o[4], !o[5], !o[6], !o[7]);
        m = m.n(
            "origin",
            M::default()
                .u("port", !u16::from_be_bytes([o[2], o[3]]))
                .s("addr", a.to_string())
                .node(),
        );
    }
    m
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
                .b("ns", flag(TCP_NS))
                .b("cwr", flag(TCP_CWR))
                .b("ece", flag(TCP_ECE))
                .b("urg", flag(TCP_URG))
                .b("ack", flag(TCP_ACK))
                .b("psh", flag(TCP_PSH))
                .b("rst", flag(TCP_RST))
                .b("syn", flag(TCP_SYN))
                .b("fin", flag(TCP_FIN))
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
            TCPOPT_EOL => {
                out.push(M::default().u("kind", TCPOPT_EOL).s("name", "eol").node());
                break;
            }
            TCPOPT_NOP => {
                out.push(M::default().u("kind", TCPOPT_NOP).s("name", "nop").node());
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
            (TCPOPT_MSS, 2) => m.s("name", "mss").u("mss", be16(v, 0).unwrap_or(0)),
            (TCPOPT_WINDOW_SCALE, 1) => m
                .s("name", "window_scale")
                .u("shift", v[0])
                .u("multiplier", 1u64 << v[0].min(14)),
            (TCPOPT_SACK_PERMITTED, 0) => m.s("name", "sack_permitted"),
            (TCPOPT_SACK, n) if n % 8 == 0 => {
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
            (TCPOPT_TIMESTAMPS, 8) => m
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
        Node::I(v) => Some(Scalar::Text(Cow::Owned(v.to_string()))),
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

    /// Fuzz finding (render-ipv6-payload-len-twice): an IPv6 header the decoder stops at kept its own
    /// `payload_len` and got the undecoded rest's under the same key, so JSON readers lost one.
    #[test]
    fn a_layer_the_decoder_stops_at_has_no_repeated_key() {
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 4, 59, 64];
        ip6.extend_from_slice(&[0; 32]);
        ip6.extend_from_slice(&[1, 2, 3, 4]);
        let info = FrameInfo {
            number: 1,
            ts_ns: 0,
            caplen: ip6.len() as u32,
            origlen: ip6.len() as u32,
            linktype: 101,
            tsresol: 6,
        };
        fn no_repeats(n: &Node) {
            if let Node::Map(entries) = n {
                let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
                keys.sort_unstable();
                let before = keys.len();
                keys.dedup();
                assert_eq!(keys.len(), before, "repeated key in {entries:?}");
                entries.iter().for_each(|(_, v)| no_repeats(v));
            }
        }
        let node = frame_node(&info, &ip6);
        no_repeats(&node);
        let ipv6 = key_of(&node, "ipv6").expect("an ipv6 layer");
        assert_eq!(key_of(&ipv6, "payload_len"), Some(Node::U(4)));
        assert_eq!(key_of(&ipv6, "data_len"), Some(Node::U(4)));
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
        assert_eq!(f.timestamp().rfc3339(), "2013-11-26T13:58:14.492448Z");
        let f = FrameInfo { tsresol: 9, ..f };
        assert_eq!(f.timestamp().decimal(), "1385474294.492448000");
    }

    #[test]
    fn layer_keys() {
        assert_eq!(layer_key(Layer::Ipv4), "ipv4");
        assert_eq!(layer_key(Layer::GtpU), "gtp_u");
    }
}
