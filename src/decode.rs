//! Packet decoder: walks a captured frame from its link-layer header down to the TCP header, without allocating.
//!
//! The reference is tshark with IPv4/IPv6 defragmentation off: a frame is TCP when its own captured bytes hold a
//! TCP header (at least the 14 bytes up to the flags) directly under an IPv4 header (unfragmented or first
//! fragment) or an IPv6 header (after its extension headers). ICMP errors and sFlow samples are never entered.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One protocol layer recognised in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Null,
    Loop,
    Ethernet,
    Llc,
    Vlan,
    Mpls,
    /// MPLS pseudowire control word (before an Ethernet pseudowire).
    PwCw,
    Pppoe,
    Ppp,
    Sll,
    Sll2,
    Nflog,
    Radiotap,
    Ppi,
    Ieee80211,
    CiscoHdlc,
    FrameRelay,
    IpoIb,
    /// IEEE 802.1ah (provider backbone bridging) I-TAG.
    Pbb,
    Nsh,
    Ipv4,
    Ipv6,
    Ipv6Ext,
    Ah,
    Gre,
    Erspan,
    EtherIp,
    Udp,
    Vxlan,
    VxlanGpe,
    Geneve,
    GtpU,
    Tcp,
}

impl Layer {
    /// Short display name, as used in [`Decoded::protocols`].
    pub fn name(self) -> &'static str {
        match self {
            Layer::Null => "Null",
            Layer::Loop => "Loop",
            Layer::Ethernet => "Ethernet",
            Layer::Llc => "LLC",
            Layer::Vlan => "VLAN",
            Layer::Mpls => "MPLS",
            Layer::PwCw => "PWCW",
            Layer::Pppoe => "PPPoE",
            Layer::Ppp => "PPP",
            Layer::Sll => "SLL",
            Layer::Sll2 => "SLL2",
            Layer::Nflog => "NFLOG",
            Layer::Radiotap => "Radiotap",
            Layer::Ppi => "PPI",
            Layer::Ieee80211 => "802.11",
            Layer::CiscoHdlc => "CHDLC",
            Layer::FrameRelay => "FR",
            Layer::IpoIb => "IPoIB",
            Layer::Pbb => "PBB",
            Layer::Nsh => "NSH",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Ipv6Ext => "IPv6Ext",
            Layer::Ah => "AH",
            Layer::Gre => "GRE",
            Layer::Erspan => "ERSPAN",
            Layer::EtherIp => "EtherIP",
            Layer::Udp => "UDP",
            Layer::Vxlan => "VXLAN",
            Layer::VxlanGpe => "VXLAN-GPE",
            Layer::Geneve => "Geneve",
            Layer::GtpU => "GTP-U",
            Layer::Tcp => "TCP",
        }
    }
}

/// The header bytes of one layer within the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpan {
    pub layer: Layer,
    pub offset: u32,
    pub len: u32,
}

const EMPTY_SPAN: LayerSpan = LayerSpan {
    layer: Layer::Null,
    offset: 0,
    len: 0,
};

/// The TCP header fields of a TCP frame, with the addresses of the IP header that directly carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// 9 bits: NS(0x100) CWR ECE URG ACK PSH RST SYN FIN(0x001). 0 when the data offset is below 5, as tshark
    /// then shows no flags.
    pub flags: u16,
    /// Data offset * 4, as in the header (may exceed the captured bytes, or be below 20 when bogus).
    pub hdr_len: u8,
    /// None when the captured bytes stop before the window field.
    pub window: Option<u16>,
    /// TCP segment length from the IP lengths (tshark's tcp.len), saturating at 0; from the captured bytes when
    /// the IPv4 total length or IPv6 payload length is 0.
    pub payload_len: u32,
    /// Byte offset of the TCP header in the frame.
    pub offset: u32,
}

impl Tcp {
    pub fn fin(&self) -> bool {
        self.flags & 0x001 != 0
    }
    pub fn syn(&self) -> bool {
        self.flags & 0x002 != 0
    }
    pub fn rst(&self) -> bool {
        self.flags & 0x004 != 0
    }
}

/// Most layers recorded for one frame; a frame nesting deeper yields no TCP.
pub const MAX_LAYERS: usize = 16;

/// The result of decoding one frame.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    layers: [LayerSpan; MAX_LAYERS],
    n: u8,
    pub tcp: Option<Tcp>,
}

impl Decoded {
    const EMPTY: Decoded = Decoded {
        layers: [EMPTY_SPAN; MAX_LAYERS],
        n: 0,
        tcp: None,
    };

    /// The layers recognised, outermost first.
    pub fn layers(&self) -> &[LayerSpan] {
        &self.layers[..self.n as usize]
    }

    /// The layer names joined by ':', e.g. "Ethernet:IPv4:TCP".
    pub fn protocols(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.layers().iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            s.push_str(l.layer.name());
        }
        s
    }
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded::EMPTY
    }
}

// Link types (pcap LINKTYPE_* values).
const LT_NULL: u32 = 0;
const LT_ETHERNET: u32 = 1;
const LT_PPP: u32 = 9;
const LT_RAW_12: u32 = 12;
const LT_RAW_14: u32 = 14;
const LT_PPP_HDLC: u32 = 50;
const LT_PPP_ETHER: u32 = 51;
const LT_RAW: u32 = 101;
const LT_C_HDLC: u32 = 104;
const LT_IEEE802_11: u32 = 105;
const LT_FRELAY: u32 = 107;
const LT_LOOP: u32 = 108;
const LT_LINUX_SLL: u32 = 113;
const LT_RADIOTAP: u32 = 127;
const LT_PPI: u32 = 192;
const LT_IPV4: u32 = 228;
const LT_IPV6: u32 = 229;
const LT_NFLOG: u32 = 239;
const LT_IPOIB: u32 = 242;
const LT_LINUX_SLL2: u32 = 276;

/// What to parse next, at the parser's current offset.
#[derive(Clone, Copy)]
enum Step {
    Done,
    Ethernet,
    EtherType(u16),
    Llc,
    Vlan,
    Mpls,
    PwCw,
    Pbb,
    Nsh,
    Pppoe,
    /// PPP protocol field; `true` when an FF 03 address/control prefix may precede it.
    Ppp(bool),
    /// IP by its version nibble (tshark's "ip" dissector also takes IPv6).
    Ip,
    Ipv4,
    Ipv6,
    /// IPv6 next header / IPv4 protocol.
    Next(u8),
    Gre,
    EtherIp,
    Udp,
    Vxlan,
    VxlanGpe,
    Geneve,
    GtpU,
    Ieee80211(bool),
    Tcp,
}

struct Parser<'a> {
    f: &'a [u8],
    off: usize,
    d: Decoded,
    src: IpAddr,
    dst: IpAddr,
    /// Bytes of IP payload left after the headers parsed so far (from the IP length fields).
    ip_rest: u32,
    /// GRE flags and version of the last GRE header (ERSPAN needs them).
    gre_flags: u16,
}

/// Decode one frame of the given pcap LINKTYPE. Never panics, never allocates, never loops unboundedly.
pub fn decode(linktype: u32, frame: &[u8]) -> Decoded {
    let mut p = Parser {
        f: frame,
        off: 0,
        d: Decoded::EMPTY,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ip_rest: 0,
        gre_flags: 0,
    };
    let mut step = p.link(linktype);
    // Every step but the dispatching ones records a layer, and recording fails once MAX_LAYERS are held, so
    // this bound is never the one that stops a real frame.
    for _ in 0..4 * MAX_LAYERS {
        step = match step {
            Step::Done => break,
            Step::Ethernet => p.ethernet(),
            Step::EtherType(t) => p.ethertype(t),
            Step::Llc => p.llc(),
            Step::Vlan => p.vlan(),
            Step::Mpls => p.mpls(),
            Step::PwCw => p.fixed(Layer::PwCw, 4, Step::Ethernet),
            Step::Pbb => p.fixed(Layer::Pbb, 4, Step::Ethernet),
            Step::Nsh => p.nsh(),
            Step::Pppoe => p.pppoe(),
            Step::Ppp(hdlc) => p.ppp(hdlc),
            Step::Ip => p.ip(),
            Step::Ipv4 => p.ipv4(),
            Step::Ipv6 => p.ipv6(),
            Step::Next(nh) => p.next_header(nh),
            Step::Gre => p.gre(),
            Step::EtherIp => p.etherip(),
            Step::Udp => p.udp(),
            Step::Vxlan => p.fixed(Layer::Vxlan, 8, Step::Ethernet),
            Step::VxlanGpe => p.vxlan_gpe(),
            Step::Geneve => p.geneve(),
            Step::GtpU => p.gtpu(),
            Step::Ieee80211(pad) => p.ieee80211(pad),
            Step::Tcp => {
                p.tcp();
                break;
            }
        };
    }
    p.d
}

impl Parser<'_> {
    #[inline]
    fn u8(&self, i: usize) -> Option<u8> {
        self.f.get(self.off.checked_add(i)?).copied()
    }

    #[inline]
    fn be16(&self, i: usize) -> Option<u16> {
        let s = self.off.checked_add(i)?;
        let b = self.f.get(s..s.checked_add(2)?)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    #[inline]
    fn le16(&self, i: usize) -> Option<u16> {
        self.be16(i).map(u16::swap_bytes)
    }

    #[inline]
    fn be32(&self, i: usize) -> Option<u32> {
        let s = self.off.checked_add(i)?;
        let b = self.f.get(s..s.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Bytes captured from the current offset on.
    #[inline]
    fn avail(&self) -> usize {
        self.f.len().saturating_sub(self.off)
    }

    /// Record a layer of `len` header bytes at the current offset and move past it. False (nothing recorded) when
    /// the bytes are not all captured or the layer table is full.
    #[inline]
    fn push(&mut self, layer: Layer, len: usize) -> bool {
        let n = self.d.n as usize;
        if n >= MAX_LAYERS || len > self.avail() {
            return false;
        }
        self.d.layers[n] = LayerSpan {
            layer,
            offset: self.off as u32,
            len: len as u32,
        };
        self.d.n += 1;
        self.off += len;
        true
    }

    /// A header of fixed length followed by `next`.
    fn fixed(&mut self, layer: Layer, len: usize, next: Step) -> Step {
        if self.push(layer, len) {
            next
        } else {
            Step::Done
        }
    }

    fn link(&mut self, linktype: u32) -> Step {
        match linktype {
            LT_ETHERNET => Step::Ethernet,
            LT_NULL | LT_LOOP => {
                let Some(b) = self.f.get(0..4) else {
                    return Step::Done;
                };
                if linktype == LT_NULL && b[0] == 0xFF && b[1] == 0x03 {
                    return Step::Ppp(true);
                }
                let mut fam = if linktype == LT_LOOP {
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
                } else {
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                };
                if fam & 0xFFFF_0000 != 0 {
                    fam = fam.swap_bytes();
                }
                let layer = if linktype == LT_LOOP {
                    Layer::Loop
                } else {
                    Layer::Null
                };
                if !self.push(layer, 4) {
                    return Step::Done;
                }
                match fam {
                    2 => Step::Ip,
                    24 | 28 | 30 => Step::Ipv6,
                    1501..=0xFFFF => Step::EtherType(fam as u16),
                    _ => Step::Done,
                }
            }
            LT_RAW | LT_RAW_12 | LT_RAW_14 => Step::Ip,
            LT_IPV4 => Step::Ipv4,
            LT_IPV6 => Step::Ipv6,
            LT_LINUX_SLL => {
                let (Some(hatype), Some(proto)) = (self.be16(2), self.be16(14)) else {
                    return Step::Done;
                };
                if !self.push(Layer::Sll, 16) {
                    return Step::Done;
                }
                sll_payload(hatype, proto)
            }
            LT_LINUX_SLL2 => {
                let (Some(proto), Some(hatype)) = (self.be16(0), self.be16(8)) else {
                    return Step::Done;
                };
                if !self.push(Layer::Sll2, 20) {
                    return Step::Done;
                }
                sll_payload(hatype, proto)
            }
            LT_PPP => Step::Ppp(true),
            LT_PPP_HDLC => match self.u8(0) {
                Some(0x0F | 0x8F) => self.chdlc(),
                _ => Step::Ppp(true),
            },
            LT_PPP_ETHER => Step::Pppoe,
            LT_C_HDLC => self.chdlc(),
            LT_FRELAY => self.frame_relay(),
            LT_NFLOG => self.nflog(),
            LT_RADIOTAP => self.radiotap(),
            LT_PPI => self.ppi(),
            LT_IEEE802_11 => Step::Ieee80211(false),
            LT_IPOIB => match self.be16(0) {
                Some(t) if self.push(Layer::IpoIb, 4) => Step::EtherType(t),
                _ => Step::Done,
            },
            _ => Step::Done,
        }
    }

    fn chdlc(&mut self) -> Step {
        match self.be16(2) {
            Some(t) if self.push(Layer::CiscoHdlc, 4) => Step::EtherType(t),
            _ => Step::Done,
        }
    }

    fn frame_relay(&mut self) -> Step {
        // Q.922 address of 2 to 4 bytes, ended by the EA bit.
        let Some(a1) = self.u8(1) else {
            return Step::Done;
        };
        let alen = if a1 & 1 != 0 {
            2
        } else if self.u8(2).is_some_and(|b| b & 1 != 0) {
            3
        } else {
            4
        };
        match self.u8(alen) {
            Some(0x03) => {
                // RFC 2427: control, optional pad, NLPID.
                let (nl, len) = match self.u8(alen + 1) {
                    Some(0) => (self.u8(alen + 2), alen + 3),
                    v => (v, alen + 2),
                };
                let next = match nl {
                    Some(0xCC) => Step::Ip,
                    Some(0x8E) => Step::Ipv6,
                    Some(0x80) => {
                        // SNAP: OUI + PID.
                        return match (self.be32(len), self.be16(len + 3)) {
                            (Some(oui), Some(pid))
                                if oui >> 8 == 0 && self.push(Layer::FrameRelay, len + 5) =>
                            {
                                Step::EtherType(pid)
                            }
                            _ => Step::Done,
                        };
                    }
                    _ => return Step::Done,
                };
                self.fixed(Layer::FrameRelay, len, next)
            }
            Some(_) => match self.be16(alen) {
                // Cisco encapsulation: an ethertype.
                Some(t) if self.push(Layer::FrameRelay, alen + 2) => Step::EtherType(t),
                _ => Step::Done,
            },
            None => Step::Done,
        }
    }

    fn nflog(&mut self) -> Step {
        let (Some(family), Some(0)) = (self.u8(0), self.u8(1)) else {
            return Step::Done;
        };
        let mut at = 4usize;
        // Each TLV is at least 4 bytes long, so this walks at most len/4 TLVs.
        while at + 4 <= self.f.len() {
            let (Some(tl), Some(ty)) = (self.le16(at), self.le16(at + 2)) else {
                return Step::Done;
            };
            let tl = tl as usize;
            if tl < 4 {
                return Step::Done;
            }
            if ty & 0x7FFF == 9 {
                if !self.push(Layer::Nflog, at + 4) {
                    return Step::Done;
                }
                return match family {
                    2 => Step::Ip,
                    10 => Step::Ipv6,
                    _ => Step::Done,
                };
            }
            at += (tl + 3) & !3;
        }
        Step::Done
    }

    fn radiotap(&mut self) -> Step {
        let (Some(0), Some(len), Some(present)) =
            (self.u8(0), self.le16(2), self.be32(4).map(u32::swap_bytes))
        else {
            return Step::Done;
        };
        let len = len as usize;
        if len < 8 || len > self.f.len() {
            return Step::Done;
        }
        // Skip the chained present words, then find the Flags field (after TSFT, which is 8-aligned).
        let mut i = 4usize;
        loop {
            match self.be32(i).map(u32::swap_bytes) {
                Some(w) if i + 4 <= len => {
                    i += 4;
                    if w & 0x8000_0000 == 0 {
                        break;
                    }
                }
                _ => return Step::Done,
            }
        }
        let mut pad = false;
        if present & 0x2 != 0 {
            if present & 0x1 != 0 {
                i = ((i + 7) & !7) + 8;
            }
            if i < len {
                pad = self.u8(i).is_some_and(|fl| fl & 0x20 != 0);
            }
        }
        self.fixed(Layer::Radiotap, len, Step::Ieee80211(pad))
    }

    fn ppi(&mut self) -> Step {
        let (Some(0), Some(len), Some(dlt)) =
            (self.u8(0), self.le16(2), self.be32(4).map(u32::swap_bytes))
        else {
            return Step::Done;
        };
        let next = match dlt {
            LT_IEEE802_11 => Step::Ieee80211(false),
            LT_ETHERNET => Step::Ethernet,
            _ => return Step::Done,
        };
        let len = len as usize;
        if len < 8 {
            return Step::Done;
        }
        self.fixed(Layer::Ppi, len, next)
    }

    fn ieee80211(&mut self, pad: bool) -> Step {
        let (Some(fc0), Some(fc1)) = (self.u8(0), self.u8(1)) else {
            return Step::Done;
        };
        // Version 0, data frames only, with a body, unprotected, unfragmented.
        if fc0 & 0x03 != 0 || (fc0 >> 2) & 0x03 != 2 || fc0 & 0x40 != 0 || fc1 & 0x44 != 0 {
            return Step::Done;
        }
        match self.u8(22) {
            Some(sc) if sc & 0x0F == 0 => {}
            _ => return Step::Done,
        }
        let mut len = 24;
        if fc1 & 0x03 == 0x03 {
            len += 6;
        }
        if fc0 & 0x80 != 0 {
            // QoS data: an A-MSDU is not followed.
            match self.u8(len) {
                Some(q) if q & 0x80 == 0 => {}
                _ => return Step::Done,
            }
            len += 2;
            if fc1 & 0x80 != 0 {
                len += 4;
            }
        }
        if pad {
            len = (len + 3) & !3;
        }
        self.fixed(Layer::Ieee80211, len, Step::Llc)
    }

    fn ethernet(&mut self) -> Step {
        match self.be16(12) {
            Some(t) if self.push(Layer::Ethernet, 14) => match t {
                0..=1500 => Step::Llc,
                1536.. => Step::EtherType(t),
                _ => Step::Done,
            },
            _ => Step::Done,
        }
    }

    fn llc(&mut self) -> Step {
        match (self.u8(0), self.u8(1), self.u8(2)) {
            (Some(0xAA), Some(0xAA), Some(0x03)) => match (self.be32(3), self.be16(6)) {
                (Some(oui), Some(pid)) if matches!(oui >> 8, 0x00_0000 | 0x00_00F8) => {
                    self.fixed(Layer::Llc, 8, Step::EtherType(pid))
                }
                _ => Step::Done,
            },
            (Some(0x06), Some(0x06), Some(0x03)) => self.fixed(Layer::Llc, 3, Step::Ip),
            _ => Step::Done,
        }
    }

    fn ethertype(&mut self, t: u16) -> Step {
        match t {
            0x0800 => Step::Ip,
            0x86DD => Step::Ipv6,
            0x8100 | 0x88A8 | 0x9100 => Step::Vlan,
            0x8847 | 0x8848 => Step::Mpls,
            0x8864 => Step::Pppoe,
            0x6558 => Step::Ethernet,
            0x88E7 => Step::Pbb,
            0x894F => Step::Nsh,
            _ => Step::Done,
        }
    }

    fn vlan(&mut self) -> Step {
        match self.be16(2) {
            Some(t) if self.push(Layer::Vlan, 4) => {
                if t <= 1500 {
                    Step::Llc
                } else {
                    Step::EtherType(t)
                }
            }
            _ => Step::Done,
        }
    }

    fn mpls(&mut self) -> Step {
        // Label stack up to the bottom-of-stack bit; each entry is 4 bytes, so this is bounded by the frame.
        let mut len = 0;
        let label = loop {
            match self.be32(len) {
                Some(e) => {
                    len += 4;
                    if e & 0x100 != 0 {
                        break e >> 12;
                    }
                }
                None => return Step::Done,
            }
        };
        if !self.push(Layer::Mpls, len) {
            return Step::Done;
        }
        match label {
            0 => return Step::Ipv4,
            2 => return Step::Ipv6,
            _ => {}
        }
        match self.u8(0).map(|b| b >> 4) {
            Some(4) => Step::Ipv4,
            Some(6) => Step::Ipv6,
            // tshark's pw_eth_heuristic: a plain Ethernet pseudowire when both MACs have known vendors (which
            // needs its OUI table), else one with a control word. Approximated by the ethertype positions.
            Some(0) => {
                let plain = self.be16(12).is_some_and(is_ip_ethertype);
                let cw = self.be16(16).is_some_and(is_ip_ethertype);
                if plain && !cw {
                    Step::Ethernet
                } else {
                    Step::PwCw
                }
            }
            _ => Step::Done,
        }
    }

    fn nsh(&mut self) -> Step {
        let (Some(b1), Some(np)) = (self.u8(1), self.u8(3)) else {
            return Step::Done;
        };
        let len = (b1 & 0x3F) as usize * 4;
        let next = match np {
            1 => Step::Ip,
            2 => Step::Ipv6,
            3 => Step::Ethernet,
            5 => Step::Mpls,
            _ => return Step::Done,
        };
        if len < 8 {
            return Step::Done;
        }
        self.fixed(Layer::Nsh, len, next)
    }

    fn pppoe(&mut self) -> Step {
        // Version 1, type 1, code 0 (session data).
        match (self.u8(0), self.u8(1)) {
            (Some(0x11), Some(0)) => self.fixed(Layer::Pppoe, 6, Step::Ppp(false)),
            _ => Step::Done,
        }
    }

    fn ppp(&mut self, hdlc: bool) -> Step {
        let mut len = 0;
        if hdlc && self.u8(0) == Some(0xFF) && self.u8(1) == Some(0x03) {
            len = 2;
        }
        let Some(b) = self.u8(len) else {
            return Step::Done;
        };
        let proto = if b & 1 != 0 {
            len += 1;
            b as u16
        } else {
            let Some(p) = self.be16(len) else {
                return Step::Done;
            };
            len += 2;
            p
        };
        let next = match proto {
            0x0021 => Step::Ip,
            0x0057 => Step::Ipv6,
            0x0281 | 0x0283 => Step::Mpls,
            _ => return Step::Done,
        };
        self.fixed(Layer::Ppp, len, next)
    }

    fn ip(&mut self) -> Step {
        match self.u8(0).map(|b| b >> 4) {
            Some(4) => self.ipv4(),
            Some(6) => self.ipv6(),
            _ => Step::Done,
        }
    }

    fn ipv4(&mut self) -> Step {
        let Some(h) = self.f.get(self.off..self.off.saturating_add(20)) else {
            return Step::Done;
        };
        if h.len() < 20 || h[0] >> 4 != 4 {
            return Step::Done;
        }
        let ihl = (h[0] & 0x0F) as usize * 4;
        let total = u16::from_be_bytes([h[2], h[3]]) as usize;
        let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1FFF;
        let proto = h[9];
        let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
        let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
        if ihl < 20 || ihl > self.avail() {
            return Step::Done;
        }
        let rest = if total == 0 {
            self.avail() - ihl
        } else if total < ihl {
            return Step::Done;
        } else {
            total - ihl
        };
        if !self.push(Layer::Ipv4, ihl) || frag_off != 0 {
            return Step::Done;
        }
        self.src = IpAddr::V4(src);
        self.dst = IpAddr::V4(dst);
        self.ip_rest = rest as u32;
        Step::Next(proto)
    }

    fn ipv6(&mut self) -> Step {
        let Some(h) = self.f.get(self.off..self.off.saturating_add(40)) else {
            return Step::Done;
        };
        if h.len() < 40 || h[0] >> 4 != 6 {
            return Step::Done;
        }
        let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
        let nh = h[6];
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[8..24]);
        let src = Ipv6Addr::from(a);
        a.copy_from_slice(&h[24..40]);
        let dst = Ipv6Addr::from(a);
        let rest = if plen == 0 { self.avail() - 40 } else { plen };
        if !self.push(Layer::Ipv6, 40) {
            return Step::Done;
        }
        self.src = IpAddr::V6(src);
        self.dst = IpAddr::V6(dst);
        self.ip_rest = rest as u32;
        Step::Next(nh)
    }

    /// An IPv4 protocol or IPv6 next header value at the current offset.
    fn next_header(&mut self, nh: u8) -> Step {
        match nh {
            6 => Step::Tcp,
            17 => Step::Udp,
            47 => Step::Gre,
            4 => Step::Ip,
            41 => Step::Ipv6,
            97 => Step::EtherIp,
            137 => Step::Mpls,
            // IPv6 extension headers (AH also under IPv4).
            0 | 43 | 44 | 51 | 60 | 135 => {
                let (Some(next), Some(l)) = (self.u8(0), self.u8(1)) else {
                    return Step::Done;
                };
                let (layer, len) = match nh {
                    51 => (Layer::Ah, (l as usize + 2) * 4),
                    44 => {
                        // Fragment header: only the first fragment carries the upper-layer header.
                        match self.be16(2) {
                            Some(fo) if fo >> 3 == 0 => {}
                            _ => return Step::Done,
                        }
                        (Layer::Ipv6Ext, 8)
                    }
                    _ => (Layer::Ipv6Ext, (l as usize + 1) * 8),
                };
                if !self.push(layer, len) {
                    return Step::Done;
                }
                self.ip_rest = self.ip_rest.saturating_sub(len as u32);
                Step::Next(next)
            }
            _ => Step::Done,
        }
    }

    fn gre(&mut self) -> Step {
        let (Some(flags), Some(proto)) = (self.be16(0), self.be16(2)) else {
            return Step::Done;
        };
        let ver = flags & 0x7;
        if ver > 1 {
            return Step::Done;
        }
        let mut len = 4;
        if flags & 0xC000 != 0 {
            len += 4; // checksum (+ offset)
        }
        if flags & 0x2000 != 0 {
            len += 4; // key (PPTP: payload length + call id)
        }
        if flags & 0x1000 != 0 {
            len += 4; // sequence number
        }
        if ver == 1 && flags & 0x0080 != 0 {
            len += 4; // acknowledgment number
        }
        if ver == 0 && flags & 0x4000 != 0 {
            // Source route entries, ended by a NULL SRE; each is at least 4 bytes.
            loop {
                let (Some(af), Some(sl)) = (self.be16(len), self.u8(len + 3)) else {
                    return Step::Done;
                };
                len += 4 + sl as usize;
                if af == 0 && sl == 0 {
                    break;
                }
            }
        }
        if !self.push(Layer::Gre, len) {
            return Step::Done;
        }
        self.gre_flags = flags;
        match proto {
            0x0800 => Step::Ip,
            0x86DD => Step::Ipv6,
            0x6558 => Step::Ethernet,
            0x880B => Step::Ppp(true),
            0x8847 | 0x8848 => Step::Mpls,
            0x88BE => {
                if self.gre_flags & 0x1000 == 0 {
                    // ERSPAN type I: no header.
                    self.fixed(Layer::Erspan, 0, Step::Ethernet)
                } else {
                    self.fixed(Layer::Erspan, 8, Step::Ethernet)
                }
            }
            0x22EB => {
                // ERSPAN type III: 12 bytes, + 8 with the platform-specific subheader (O bit); Ethernet frames
                // only (FT 0).
                let Some(b10) = self.u8(10) else {
                    return Step::Done;
                };
                let Some(b11) = self.u8(11) else {
                    return Step::Done;
                };
                if (b10 >> 2) & 0x1F != 0 {
                    return Step::Done;
                }
                let len = if b11 & 1 != 0 { 20 } else { 12 };
                self.fixed(Layer::Erspan, len, Step::Ethernet)
            }
            _ => Step::Done,
        }
    }

    fn etherip(&mut self) -> Step {
        match self.u8(0) {
            Some(b) if b >> 4 == 3 => self.fixed(Layer::EtherIp, 2, Step::Ethernet),
            _ => Step::Done,
        }
    }

    fn udp(&mut self) -> Step {
        let (Some(sport), Some(dport)) = (self.be16(0), self.be16(2)) else {
            return Step::Done;
        };
        if !self.push(Layer::Udp, 8) {
            return Step::Done;
        }
        // tshark tries the lower port first.
        let (lo, hi) = if sport <= dport {
            (sport, dport)
        } else {
            (dport, sport)
        };
        match udp_port(lo) {
            Step::Done => udp_port(hi),
            s => s,
        }
    }

    fn vxlan_gpe(&mut self) -> Step {
        let next = match self.u8(3) {
            Some(1) => Step::Ip,
            Some(2) => Step::Ipv6,
            Some(3) => Step::Ethernet,
            Some(4) => Step::Nsh,
            Some(5) => Step::Mpls,
            _ => return Step::Done,
        };
        self.fixed(Layer::VxlanGpe, 8, next)
    }

    fn geneve(&mut self) -> Step {
        let (Some(b0), Some(proto)) = (self.u8(0), self.be16(2)) else {
            return Step::Done;
        };
        if b0 >> 6 != 0 {
            return Step::Done;
        }
        let len = 8 + (b0 & 0x3F) as usize * 4;
        if !self.push(Layer::Geneve, len) {
            return Step::Done;
        }
        match proto {
            0x6558 => Step::Ethernet,
            t => self.ethertype(t),
        }
    }

    fn gtpu(&mut self) -> Step {
        // GTPv1 (version 1, PT 1), T-PDU only.
        let (Some(fl), Some(0xFF)) = (self.u8(0), self.u8(1)) else {
            return Step::Done;
        };
        if fl >> 5 != 1 || fl & 0x10 == 0 {
            return Step::Done;
        }
        let mut len = 8;
        if fl & 0x07 != 0 {
            len = 12;
            if fl & 0x04 != 0 {
                // Extension header chain: each is a length in 4-byte units (>= 1), its next type in its last byte.
                let mut next = self.u8(11);
                loop {
                    match next {
                        Some(0) => break,
                        Some(_) => {}
                        None => return Step::Done,
                    }
                    match self.u8(len) {
                        Some(l) if l > 0 => {
                            len += l as usize * 4;
                            next = self.u8(len - 1);
                        }
                        _ => return Step::Done,
                    }
                }
            }
        }
        self.fixed(Layer::GtpU, len, Step::Ip)
    }

    fn tcp(&mut self) {
        let off = self.off;
        let Some(h) = self.f.get(off..) else { return };
        if h.len() < 14 {
            return;
        }
        let hdr_len = (h[12] >> 4) * 4;
        let span = (hdr_len.max(20) as usize).min(h.len());
        if !self.push(Layer::Tcp, span) {
            return;
        }
        let flags = if hdr_len < 20 {
            0
        } else {
            u16::from_be_bytes([h[12], h[13]]) & 0x01FF
        };
        self.d.tcp = Some(Tcp {
            src: self.src,
            dst: self.dst,
            sport: u16::from_be_bytes([h[0], h[1]]),
            dport: u16::from_be_bytes([h[2], h[3]]),
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            flags,
            hdr_len,
            window: h.get(14..16).map(|w| u16::from_be_bytes([w[0], w[1]])),
            payload_len: self.ip_rest.saturating_sub(hdr_len as u32),
            offset: off as u32,
        });
    }
}

fn is_ip_ethertype(t: u16) -> bool {
    matches!(t, 0x0800 | 0x86DD | 0x8100 | 0x88A8 | 0x8847)
}

fn udp_port(port: u16) -> Step {
    match port {
        4789 => Step::Vxlan,
        4790 => Step::VxlanGpe,
        6081 => Step::Geneve,
        2152 => Step::GtpU,
        _ => Step::Done,
    }
}

/// What follows a Linux cooked header, by ARPHRD type and protocol (as tshark's sll dissector).
fn sll_payload(hatype: u16, proto: u16) -> Step {
    match hatype {
        // ARPHRD_NETLINK
        824 => Step::Done,
        // ARPHRD_IPGRE: the protocol is a GRE protocol type.
        778 => match proto {
            0x6558 => Step::Ethernet,
            0x0800 => Step::Ip,
            0x86DD => Step::Ipv6,
            _ => Step::Done,
        },
        _ => match proto {
            0x0004 => Step::Llc,
            0x0000..=0x05DC => Step::Done,
            t => Step::EtherType(t),
        },
    }
}
