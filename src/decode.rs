//! Packet decoder: walks a captured frame from its link-layer header down to the TCP header, without allocating.
//!
//! The reference is tshark with IPv4/IPv6 defragmentation off: a frame is TCP when its own captured bytes hold a
//! TCP header (at least the 14 bytes up to the flags) directly under an IPv4 header (unfragmented or first
//! fragment) or an IPv6 header (after its extension headers). ICMP errors and sFlow samples are never entered.
//! Length fields bound the packet as tshark's reported length does: a header cut by one is not there.
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
    /// 9 bits: NS(0x100) CWR ECE URG ACK PSH RST SYN FIN(0x001).
    pub flags: u16,
    /// Data offset * 4, as in the header: at least 20 (a smaller one gives no `Tcp`), and may exceed the captured
    /// bytes.
    pub hdr_len: u8,
    /// None when the captured bytes stop before the window field.
    pub window: Option<u16>,
    /// TCP segment length (tshark's tcp.len): the packet length reported by the innermost length fields (IP,
    /// and any UDP/GTP/PPPoE/802.3 length around it) less the TCP header, saturating at 0; from the captured
    /// bytes when the IPv4 total length is 0 (TSO). (An IPv6 payload length of 0 gives no TCP, as in tshark.)
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
    /// UDP, or UDP-Lite (`true`: its length field is a checksum coverage).
    Udp(bool),
    Vxlan,
    VxlanGpe,
    Geneve,
    GtpU,
    Ieee80211(bool),
    Tcp,
}

struct Parser<'a> {
    /// The frame, cut short where a length field ends the reported packet (tshark's reported length): headers
    /// are read only from here.
    f: &'a [u8],
    off: usize,
    d: Decoded,
    src: IpAddr,
    dst: IpAddr,
    /// End of the packet as reported by the length fields seen so far (usize::MAX while none was seen).
    rep: usize,
}

/// Decode one frame of the given pcap LINKTYPE. Never panics, never allocates, never loops unboundedly.
pub fn decode(linktype: u32, frame: &[u8]) -> Decoded {
    let mut p = Parser {
        f: frame,
        off: 0,
        d: Decoded::EMPTY,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        rep: usize::MAX,
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
            Step::Udp(lite) => p.udp(lite),
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

    /// Bytes captured (and within the reported length) from the current offset on.
    #[inline]
    fn avail(&self) -> usize {
        self.f.len().saturating_sub(self.off)
    }

    /// A length field says the packet ends at `end`: only ever shrinks the packet (tshark's set_actual_length).
    #[inline]
    fn limit(&mut self, end: usize) {
        if end < self.rep {
            self.rep = end;
            if end < self.f.len() {
                self.f = &self.f[..end];
            }
        }
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
            LT_NULL => {
                // A BSD address family in the capturing host's byte order, an IRIX 16-bit family, or a Linux
                // ethertype, told apart as tshark does (reading as a little-endian host); FF 03 is PPP.
                let Some(b) = self.f.get(0..4) else {
                    return Step::Done;
                };
                if b[0] == 0xFF && b[1] == 0x03 {
                    return Step::Ppp(true);
                }
                let mut fam = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if fam & 0xFFFF_0000 != 0 {
                    if fam & 0xFF00_0000 == 0 && fam & 0x00FF_0000 < 0x0006_0000 {
                        fam >>= 16;
                    } else {
                        fam = fam.swap_bytes();
                    }
                } else if fam & 0xFF == 0 && fam & 0xFF00 < 0x0600 {
                    fam = u32::from((fam as u16).swap_bytes());
                }
                if !self.push(Layer::Null, 4) {
                    return Step::Done;
                }
                match fam {
                    2 => Step::Ip,
                    24 | 28 | 30 => Step::Ipv6,
                    1501.. => Step::EtherType(fam as u16),
                    _ => Step::Done,
                }
            }
            LT_LOOP => {
                // The address family in network byte order, nothing else (as tshark).
                let Some(fam) = self.be32(0) else {
                    return Step::Done;
                };
                let next = match fam {
                    2 => Step::Ip,
                    24 | 28 | 30 => Step::Ipv6,
                    _ => return Step::Done,
                };
                self.fixed(Layer::Loop, 4, next)
            }
            LT_RAW | LT_RAW_12 | LT_RAW_14 => Step::Ip,
            // tshark reads LINKTYPE_IPV4 with its ip dissector, which also takes IPv6.
            LT_IPV4 => Step::Ip,
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
            LT_PPP | LT_PPP_HDLC => match self.u8(0) {
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
            _ => Step::Done,
        }
    }

    fn chdlc(&mut self) -> Step {
        match self.be16(2) {
            Some(t) if self.push(Layer::CiscoHdlc, 4) => chdlc_type(t),
            _ => Step::Done,
        }
    }

    /// Frame relay as tshark's default "FRF 3.2/Cisco HDLC" encapsulation: RFC 2427 (control, NLPID) when the
    /// control byte is UI or an NLPID it knows can be found, else Cisco HDLC by a known type, else raw Ethernet.
    fn frame_relay(&mut self) -> Step {
        // Q.922 address, ended by the EA bit; a first byte with EA is a bogus 1-byte address (DLCI 0).
        let Some(a0) = self.u8(0) else {
            return Step::Done;
        };
        let (alen, dlci) = if a0 & 1 != 0 {
            (1, 0)
        } else {
            let Some(a1) = self.u8(1) else {
                return Step::Done;
            };
            let mut dlci = u32::from(a0 >> 2) << 4 | u32::from(a1 >> 4);
            let mut at = 2;
            if a1 & 1 == 0 {
                let Some(mut o) = self.u8(2) else {
                    return Step::Done;
                };
                if o & 1 == 0 {
                    dlci = dlci << 7 | u32::from(o >> 1);
                    at = 3;
                    // Bounded by the frame: every step reads one more byte.
                    loop {
                        match self.u8(at) {
                            Some(b) if b & 1 == 0 => at += 1,
                            Some(b) => {
                                o = b;
                                break;
                            }
                            None => return Step::Done,
                        }
                    }
                }
                if o & 0x02 == 0 {
                    dlci = dlci << 6 | u32::from(o >> 2);
                }
                at += 1;
            }
            (at, dlci)
        };
        let Some(ctrl) = self.u8(alen) else {
            return Step::Done;
        };
        let mut rfc2427 = ctrl == 0x03;
        if !rfc2427 {
            // DLCI 0 (LAPF signalling) and XID frames carry no IP.
            if dlci == 0 || ctrl == 0xAF {
                return Step::Done;
            }
            let Some(t) = self.be16(alen) else {
                return Step::Done;
            };
            let next = chdlc_type(t);
            if !matches!(next, Step::Done) {
                return self.fixed(Layer::FrameRelay, alen + 2, next);
            }
            // Guess the NLPID position the way tshark does (pad, then a 1- or 2-byte control field).
            let mut n = alen;
            let mut c = ctrl;
            if c == 0 {
                n += 1;
                let Some(b) = self.u8(n) else {
                    return Step::Done;
                };
                c = b;
            }
            n += if c & 0x03 == 0x03 { 1 } else { 2 };
            rfc2427 = self.u8(n).is_some_and(|nl| {
                matches!(
                    nl,
                    0x00 | 0x08 | 0x80 | 0x81 | 0x82 | 0x83 | 0x8E | 0xB0 | 0xB1 | 0xCC | 0xCF
                )
            });
        }
        if !rfc2427 {
            // Raw Ethernet (with FCS) when the type/length field looks like one.
            return match self.be16(alen + 12) {
                Some(t)
                    if (t <= 1500 || !matches!(self.ethertype(t), Step::Done))
                        && self.push(Layer::FrameRelay, alen) =>
                {
                    self.limit(self.f.len().saturating_sub(4));
                    Step::Ethernet
                }
                _ => Step::Done,
            };
        }
        // Control field (1 byte for U frames, 2 for I and S frames), optional pad, NLPID.
        let mut n = alen + if ctrl & 0x03 == 0x03 { 1 } else { 2 };
        if self.u8(n) == Some(0) {
            n += 1;
        }
        match self.u8(n) {
            Some(0xCC) => self.fixed(Layer::FrameRelay, n + 1, Step::Ip),
            Some(0x8E) => self.fixed(Layer::FrameRelay, n + 1, Step::Ipv6),
            // SNAP (only in UI frames): OUI + PID.
            Some(0x80) if ctrl == 0x03 => match (self.be32(n + 1), self.be16(n + 4)) {
                (Some(oui), Some(pid)) if oui >> 8 == 0 => {
                    self.fixed(Layer::FrameRelay, n + 6, Step::EtherType(pid))
                }
                _ => Step::Done,
            },
            _ => Step::Done,
        }
    }

    fn nflog(&mut self) -> Step {
        let Some(family) = self.u8(0) else {
            return Step::Done;
        };
        // The payload is dispatched by the packet header's hardware protocol (an ethertype) when that is set, else
        // by the address family (as tshark).
        let mut hw_protocol = 0;
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
                self.limit(self.off + tl - 4);
                return match (hw_protocol, family) {
                    (0, 2) => Step::Ip,
                    (0, 10) => Step::Ipv6,
                    (0, _) => Step::Done,
                    (t, _) => Step::EtherType(t),
                };
            }
            if ty & 0x7FFF == 1 && tl >= 6 {
                // NFULA_PACKET_HDR: hw_protocol (network order), hook, padding.
                hw_protocol = self.be16(at + 4).unwrap_or(0);
            }
            at += (tl + 3) & !3;
        }
        Step::Done
    }

    fn radiotap(&mut self) -> Step {
        // tshark checks neither the version nor that the fields fit: only the header length matters, and the
        // Flags field when it can be found (after the chained present words and an 8-aligned TSFT).
        let (Some(len), Some(present)) = (self.le16(2), self.be32(4).map(u32::swap_bytes)) else {
            return Step::Done;
        };
        let len = len as usize;
        if len < 8 || len > self.f.len() {
            return Step::Done;
        }
        let mut i = 4usize;
        let mut flags = 0;
        let words_ok = loop {
            match self.be32(i).map(u32::swap_bytes) {
                Some(w) if i + 4 <= len => {
                    i += 4;
                    if w & 0x8000_0000 == 0 {
                        break true;
                    }
                }
                _ => break false,
            }
        };
        if words_ok && present & 0x2 != 0 {
            if present & 0x1 != 0 {
                i = ((i + 7) & !7) + 8;
            }
            if i < len {
                flags = self.u8(i).unwrap_or(0);
            }
        }
        if !self.push(Layer::Radiotap, len) {
            return Step::Done;
        }
        if flags & 0x10 != 0 {
            // The frame ends with the 4-byte FCS.
            self.limit(self.f.len().saturating_sub(4));
        }
        Step::Ieee80211(flags & 0x20 != 0)
    }

    fn ppi(&mut self) -> Step {
        let (Some(len), Some(dlt)) = (self.le16(2), self.be32(4).map(u32::swap_bytes)) else {
            return Step::Done;
        };
        let next = match dlt {
            LT_IEEE802_11 => Step::Ieee80211(false),
            LT_ETHERNET => Step::Ethernet,
            _ => return Step::Done,
        };
        // A header length below the 8 fixed bytes is taken as 8 (as tshark).
        self.fixed(Layer::Ppi, (len as usize).max(8), next)
    }

    fn ieee80211(&mut self, pad: bool) -> Step {
        let (Some(fc0), Some(fc1)) = (self.u8(0), self.u8(1)) else {
            return Step::Done;
        };
        // Version 0, data frames only, with a body, unprotected, not to be reassembled (more fragments). A
        // fragment number alone does not stop tshark (a lone last fragment is dissected as it is).
        if fc0 & 0x03 != 0 || (fc0 >> 2) & 0x03 != 2 || fc0 & 0x40 != 0 || fc1 & 0x44 != 0 {
            return Step::Done;
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
        // A mesh control field (From DS, valid flags), which tshark recognises by the LLC/SNAP header after it:
        // 6 bytes + 6 per extended address. Otherwise tshark skips two zero bytes before the payload
        // ("mysterious OLPC/Ruckus/Atheros stuff").
        let mesh = match self.u8(len) {
            Some(mf) if fc1 & 0x02 != 0 && mf & 0xFC == 0 && mf & 0x03 != 0x03 => {
                let ml = 6 + 6 * (mf & 0x03) as usize;
                if self.u8(len + ml) == Some(0xAA) && self.u8(len + ml + 1) == Some(0xAA) {
                    ml
                } else {
                    0
                }
            }
            _ => 0,
        };
        if mesh > 0 {
            len += mesh;
        } else if self.u8(len) == Some(0) && self.u8(len + 1) == Some(0) {
            len += 2;
        }
        // A body that starts with a known ethertype instead of an LLC header is taken as one (as tshark).
        match self.be16(len) {
            Some(t) if !matches!(self.ethertype(t), Step::Done) => {
                self.fixed(Layer::Ieee80211, len + 2, Step::EtherType(t))
            }
            _ => self.fixed(Layer::Ieee80211, len, Step::Llc),
        }
    }

    fn ethernet(&mut self) -> Step {
        match self.be16(12) {
            Some(t) if self.push(Layer::Ethernet, 14) => match t {
                0..=1500 => {
                    self.limit(self.off + t as usize);
                    Step::Llc
                }
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
            // DSAP 6 (IP), whatever the SSAP, in a UI frame or an I frame (2-byte control).
            (Some(0x06), Some(_), Some(0x03)) => self.fixed(Layer::Llc, 3, Step::Ip),
            (Some(0x06), Some(_), Some(c)) if c & 1 == 0 => self.fixed(Layer::Llc, 4, Step::Ip),
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
        // The generic associated channel label (13) carries a PW ACH, not IP.
        if !self.push(Layer::Mpls, len) || label == 13 {
            return Step::Done;
        }
        // The payload by its first nibble only (tshark treats the explicit-null labels no differently).
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
        // tshark checks neither version, type nor code; the length field bounds the payload.
        let Some(len) = self.be16(4) else {
            return Step::Done;
        };
        if !self.push(Layer::Pppoe, 6) {
            return Step::Done;
        }
        self.limit(self.off + len as usize);
        Step::Ppp(false)
    }

    fn ppp(&mut self, hdlc: bool) -> Step {
        let mut len = 0;
        // HDLC-like framing: an FF address byte is followed by a control byte (tshark checks no more).
        if hdlc && self.u8(0) == Some(0xFF) {
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
        // A total length of 0 (TSO) leaves the packet as long as it was.
        if total != 0 {
            if total < ihl {
                return Step::Done;
            }
            self.limit(self.off + total);
        }
        if !self.push(Layer::Ipv4, ihl) || frag_off != 0 {
            return Step::Done;
        }
        self.src = IpAddr::V4(src);
        self.dst = IpAddr::V4(dst);
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
        // A payload length of 0 (TSO, or a jumbogram) leaves tshark with an empty payload: no TCP.
        self.limit(self.off + 40 + plen);
        if !self.push(Layer::Ipv6, 40) {
            return Step::Done;
        }
        self.src = IpAddr::V6(src);
        self.dst = IpAddr::V6(dst);
        Step::Next(nh)
    }

    /// An IPv4 protocol or IPv6 next header value at the current offset.
    fn next_header(&mut self, nh: u8) -> Step {
        match nh {
            6 => Step::Tcp,
            17 => Step::Udp(false),
            136 => Step::Udp(true),
            47 => Step::Gre,
            4 => Step::Ip,
            41 => Step::Ipv6,
            97 => Step::EtherIp,
            137 => Step::Mpls,
            // IPv6 extension headers (AH also under IPv4). tshark does not go past a mobility header (135).
            0 | 43 | 44 | 51 | 60 => {
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
        // Enhanced GRE (PPTP): an acknowledgment number, when the version is not 0 and PPP is carried.
        if ver != 0 && proto == 0x880B && flags & 0x0080 != 0 {
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
        match proto {
            0x0800 => Step::Ip,
            0x86DD => Step::Ipv6,
            0x6558 => Step::Ethernet,
            0x880B => Step::Ppp(true),
            0x8847 | 0x8848 => Step::Mpls,
            // ERSPAN type I (0x88BE without a sequence number): no header at all.
            0x88BE if flags & 0x1000 == 0 => self.fixed(Layer::Erspan, 0, Step::Ethernet),
            // Otherwise the ERSPAN version decides: type II has 8 bytes; type III 12, + 8 with the
            // platform-specific subheader (O bit), and carries Ethernet only when its frame type is 0.
            0x88BE | 0x22EB => match (self.u8(0).map(|b| b >> 4), self.u8(10), self.u8(11)) {
                (Some(1), _, _) => self.fixed(Layer::Erspan, 8, Step::Ethernet),
                (Some(2), Some(b10), Some(b11)) if (b10 >> 2) & 0x1F == 0 => {
                    let len = if b11 & 1 != 0 { 20 } else { 12 };
                    self.fixed(Layer::Erspan, len, Step::Ethernet)
                }
                _ => Step::Done,
            },
            _ => Step::Done,
        }
    }

    fn etherip(&mut self) -> Step {
        match self.u8(0) {
            // tshark does not check the version nibble.
            Some(_) => self.fixed(Layer::EtherIp, 2, Step::Ethernet),
            _ => Step::Done,
        }
    }

    fn udp(&mut self, lite: bool) -> Step {
        let (Some(sport), Some(dport), Some(len)) = (self.be16(0), self.be16(2), self.be16(4))
        else {
            return Step::Done;
        };
        let under_ipv6 = self.d.n > 0
            && matches!(
                self.d.layers[self.d.n as usize - 1].layer,
                Layer::Ipv6 | Layer::Ipv6Ext
            );
        if !self.push(Layer::Udp, 8) {
            return Step::Done;
        }
        // A length below 8 is bogus (tshark dissects no payload); 0 is a jumbogram's under IPv6.
        let len = len as usize;
        if lite {
            // Checksum coverage, not a length.
        } else if len != 0 {
            if len < 8 {
                return Step::Done;
            }
            self.limit(self.off - 8 + len);
        } else if !under_ipv6 {
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
        // tshark does not check the version (top 2 bits).
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
        let (Some(fl), Some(0xFF), Some(plen)) = (self.u8(0), self.u8(1), self.be16(2)) else {
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
        if !self.push(Layer::GtpU, len) {
            return Step::Done;
        }
        // The length field counts the bytes after the 8-byte mandatory header.
        self.limit(self.off - len + 8 + plen as usize);
        Step::Ip
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
        // tshark's tcp.len: the reported length (from the IP lengths) less the header; the captured bytes when no
        // length field bounded the packet (IPv4 total length 0, IPv6 jumbogram).
        let end = if self.rep == usize::MAX {
            self.f.len()
        } else {
            self.rep
        };
        let payload_len = end
            .saturating_sub(off)
            .saturating_sub(hdr_len as usize)
            .min(u32::MAX as usize);
        // A data offset under 5 is a malformed header: the frame is kept (with its TCP layer, for dumps) but is
        // not a TCP packet of any flow. tshark would still show its ports; our issue's contract is "no flow".
        if hdr_len < 20 {
            return;
        }
        let flags = u16::from_be_bytes([h[12], h[13]]) & 0x01FF;
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
            payload_len: payload_len as u32,
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

/// What a Cisco HDLC protocol type carries (tshark's chdlc table, for IP).
fn chdlc_type(t: u16) -> Step {
    match t {
        0x0800 => Step::Ip,
        0x86DD => Step::Ipv6,
        0x6558 => Step::Ethernet,
        0x8847 | 0x8848 => Step::Mpls,
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
            0x0007 => Step::Ppp(true),
            0x0000..=0x05DC => Step::Done,
            t => Step::EtherType(t),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A4: [u8; 4] = [10, 0, 0, 1];
    const B4: [u8; 4] = [10, 0, 0, 2];
    const PAYLOAD: &[u8] = b"hello";

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    fn v6(last: u8) -> IpAddr {
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[1] = 0x01;
        a[15] = last;
        IpAddr::V6(Ipv6Addr::from(a))
    }

    /// A TCP header (data offset 5 + `opt_words`) with `payload`.
    fn tcp_seg(sport: u16, dport: u16, flags: u16, opt_words: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&1000u32.to_be_bytes());
        v.extend_from_slice(&2000u32.to_be_bytes());
        v.extend_from_slice(&((u16::from(5 + opt_words) << 12) | flags).to_be_bytes());
        v.extend_from_slice(&512u16.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend(std::iter::repeat_n(1u8, opt_words as usize * 4));
        v.extend_from_slice(payload);
        v
    }

    fn seg() -> Vec<u8> {
        tcp_seg(1234, 80, 0x018, 0, PAYLOAD)
    }

    fn ip4_full(
        proto: u8,
        body: &[u8],
        src: [u8; 4],
        dst: [u8; 4],
        opt_words: u8,
        frag: u16,
    ) -> Vec<u8> {
        let ihl = 5 + opt_words;
        let total = (ihl as usize * 4 + body.len()) as u16;
        let mut v = vec![0x40 | ihl, 0];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[0, 1]);
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&src);
        v.extend_from_slice(&dst);
        v.extend(std::iter::repeat_n(1u8, opt_words as usize * 4));
        v.extend_from_slice(body);
        v
    }

    fn ip4(proto: u8, body: &[u8]) -> Vec<u8> {
        ip4_full(proto, body, A4, B4, 0, 0)
    }

    fn ip6(nh: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(&[nh, 64]);
        for last in [1u8, 2] {
            if let IpAddr::V6(a) = v6(last) {
                v.extend_from_slice(&a.octets());
            }
        }
        v.extend_from_slice(body);
        v
    }

    fn eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
        let mut v = vec![
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x66, 0x77, 0x88, 0x99, 0xaa,
        ];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn udp(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(body);
        v
    }

    /// A GTPv1 header with flags `fl`, message type `mt`, optional fields + extension headers `opt`, and the
    /// length field set.
    fn gtpu(fl: u8, mt: u8, opt: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = vec![fl, mt];
        v.extend_from_slice(&((opt.len() + body.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 1]);
        v.extend_from_slice(opt);
        v.extend_from_slice(body);
        v
    }

    fn gre(flags: u16, proto: u16, extra: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&flags.to_be_bytes());
        v.extend_from_slice(&proto.to_be_bytes());
        v.extend_from_slice(extra);
        v.extend_from_slice(body);
        v
    }

    fn eth_ip4_tcp() -> Vec<u8> {
        eth(0x0800, &ip4(6, &seg()))
    }

    /// The frame is TCP 10.0.0.1:1234 -> 10.0.0.2:80 [PSH ACK] with 5 payload bytes, and its layers are `protos`.
    fn check4(linktype: u32, frame: &[u8], protos: &str) -> Tcp {
        check(linktype, frame, v4(A4), v4(B4), protos)
    }

    fn check6(linktype: u32, frame: &[u8], protos: &str) -> Tcp {
        check(linktype, frame, v6(1), v6(2), protos)
    }

    /// With DECODE_TEST_PCAP_DIR set, append the frame to DIR/TEST-LINKTYPE-tcp|none.pcap (for checking the
    /// expectations of these tests against tshark).
    fn record(linktype: u32, frame: &[u8], tcp: bool) {
        use std::io::Write;
        let Some(dir) = std::env::var_os("DECODE_TEST_PCAP_DIR") else {
            return;
        };
        let test = std::thread::current()
            .name()
            .unwrap_or("t")
            .replace("::", ".");
        let kind = if tcp { "tcp" } else { "none" };
        let path = std::path::Path::new(&dir).join(format!("{test}-{linktype}-{kind}.pcap"));
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        if new {
            let mut h = vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0];
            h.extend_from_slice(&[0; 8]);
            h.extend_from_slice(&65535u32.to_le_bytes());
            h.extend_from_slice(&linktype.to_le_bytes());
            f.write_all(&h).unwrap();
        }
        let mut r = vec![0u8; 8];
        r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        r.extend_from_slice(frame);
        f.write_all(&r).unwrap();
    }

    fn check(linktype: u32, frame: &[u8], src: IpAddr, dst: IpAddr, protos: &str) -> Tcp {
        record(linktype, frame, true);
        let d = decode(linktype, frame);
        assert_eq!(d.protocols(), protos);
        let t = d.tcp.expect("a TCP frame");
        assert_eq!((t.src, t.dst, t.sport, t.dport), (src, dst, 1234, 80));
        assert_eq!((t.flags, t.payload_len, t.hdr_len), (0x018, 5, 20));
        assert_eq!((t.seq, t.ack, t.window), (1000, 2000, Some(512)));
        assert_eq!(t.offset as usize, frame.len() - 25);
        let last = d.layers().last().unwrap();
        assert_eq!(
            (last.layer, last.offset, last.len),
            (Layer::Tcp, t.offset, 20)
        );
        t
    }

    fn no_tcp(linktype: u32, frame: &[u8]) -> Decoded {
        record(linktype, frame, false);
        let d = decode(linktype, frame);
        assert_eq!(d.tcp, None, "{}", d.protocols());
        d
    }

    #[test]
    fn frame_relay_encapsulations() {
        let ip = ip4(6, &seg());
        check4(107, &cat(&[&[0x18, 0x61, 0x03, 0xCC], &ip]), "FR:IPv4:TCP");
        // I frame (2-byte control) with a pad byte; SNAP in a UI frame; Cisco types; DLCI 0 is signalling.
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x04, 0x00, 0x00, 0xCC], &ip]),
            "FR:IPv4:TCP",
        );
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x03, 0x80, 0, 0, 0, 0x08, 0x00], &ip]),
            "FR:IPv4:TCP",
        );
        check4(107, &cat(&[&[0x18, 0x61, 0x08, 0x00], &ip]), "FR:IPv4:TCP");
        check6(
            107,
            &cat(&[&[0x18, 0x61, 0x86, 0xDD], &ip6(6, &seg())]),
            "FR:IPv6:TCP",
        );
        no_tcp(107, &cat(&[&[0x00, 0x01, 0x13, 0xCC], &ip]));
        no_tcp(
            107,
            &cat(&[&[0x18, 0x61, 0x81, 0x00, 0x00, 0x01, 0x08, 0x00], &ip]),
        );
        // 3-byte address.
        check4(
            107,
            &cat(&[&[0x18, 0x60, 0x01, 0x03, 0xCC], &ip]),
            "FR:IPv4:TCP",
        );
    }

    #[test]
    fn misc_tshark_quirks() {
        // MPLS: the explicit-null label does not decide; the first nibble does.
        let f = eth(
            0x8847,
            &cat(&[&[0, 0, 0x01, 0xFF], &[0, 0, 0, 0], &eth_ip4_tcp()]),
        );
        check4(1, &f, "Ethernet:MPLS:PWCW:Ethernet:IPv4:TCP");
        // The generic associated channel label (13): a PW ACH.
        no_tcp(
            1,
            &eth(0x8847, &cat(&[&[0, 0, 0xD1, 0xFF], &ip4(6, &seg())])),
        );
        // EtherIP whatever its version nibble.
        let f = eth(0x0800, &ip4(97, &cat(&[&[0, 0], &eth_ip4_tcp()])));
        check4(1, &f, "Ethernet:IPv4:EtherIP:Ethernet:IPv4:TCP");
        // UDP-Lite: the length field is a checksum coverage.
        let mut u = udp(2152, 2152, &gtpu(0x30, 0xFF, &[], &ip4(6, &seg())));
        u[4..6].copy_from_slice(&8u16.to_be_bytes());
        check4(
            1,
            &eth(0x0800, &ip4(136, &u)),
            "Ethernet:IPv4:UDP:GTP-U:IPv4:TCP",
        );
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let f = eth_ip4_tcp();
        let t = check4(1, &f, "Ethernet:IPv4:TCP");
        assert!(!t.fin() && !t.syn() && !t.rst());
        let d = decode(1, &f);
        let spans: Vec<(u32, u32)> = d.layers().iter().map(|l| (l.offset, l.len)).collect();
        assert_eq!(spans, [(0, 14), (14, 20), (34, 20)]);
    }

    #[test]
    fn flags_and_options() {
        let f = eth(0x0800, &ip4(6, &tcp_seg(1234, 80, 0x1C7, 3, b"")));
        let t = decode(1, &f).tcp.unwrap();
        assert_eq!((t.flags, t.hdr_len, t.payload_len), (0x1C7, 32, 0));
        assert!(t.fin() && t.syn() && t.rst());
    }

    #[test]
    fn ipv4_with_options() {
        let f = eth(0x0800, &ip4_full(6, &seg(), A4, B4, 3, 0));
        check4(1, &f, "Ethernet:IPv4:TCP");
        assert_eq!(decode(1, &f).layers()[1].len, 32);
    }

    #[test]
    fn ipv4_first_fragment_and_df() {
        check4(
            1,
            &eth(0x0800, &ip4_full(6, &seg(), A4, B4, 0, 0x2000)),
            "Ethernet:IPv4:TCP",
        );
        check4(
            1,
            &eth(0x0800, &ip4_full(6, &seg(), A4, B4, 0, 0x4000)),
            "Ethernet:IPv4:TCP",
        );
    }

    #[test]
    fn later_fragment_is_not_tcp() {
        let d = no_tcp(1, &eth(0x0800, &ip4_full(6, &seg(), A4, B4, 0, 0x2001)));
        assert_eq!(d.protocols(), "Ethernet:IPv4");
        no_tcp(
            1,
            &eth(
                0x86DD,
                &ip6(44, &cat(&[&[6, 0, 0x00, 0x08, 0, 0, 0, 1], &seg()])),
            ),
        );
    }

    #[test]
    fn ipv6_extension_headers() {
        let exts: &[&[u8]] = &[
            &[43, 0, 0, 0, 0, 0, 0, 0],       // hop-by-hop -> routing
            &[44, 2, 2, 1, 0, 0, 0, 0],       // routing type 2 (24 bytes) -> fragment
            &[0; 16],                         //
            &[60, 0, 0x00, 0x01, 0, 0, 0, 1], // fragment, offset 0, M -> dst opts
            &[51, 0, 0, 0, 0, 0, 0, 0],       // destination options -> AH
            &[6, 1, 0, 0, 0, 0, 0, 0, 0, 0],  // AH, 12 bytes -> TCP
            &[0, 0],                          //
        ];
        let body = cat(&[&exts.concat(), &seg()]);
        let f = eth(0x86DD, &ip6(0, &body));
        let t = check6(
            1,
            &f,
            "Ethernet:IPv6:IPv6Ext:IPv6Ext:IPv6Ext:IPv6Ext:AH:TCP",
        );
        assert_eq!(t.offset, 14 + 40 + 8 + 24 + 8 + 8 + 12);
        // tshark does not look past a mobility header.
        let mob = cat(&[&[6, 1, 0, 0, 0, 0, 0, 0], &[0; 8], &seg()]);
        no_tcp(1, &eth(0x86DD, &ip6(135, &mob)));
    }

    #[test]
    fn ipv6_esp_and_no_next_header_stop() {
        no_tcp(1, &eth(0x86DD, &ip6(50, &seg())));
        no_tcp(1, &eth(0x86DD, &ip6(59, &seg())));
    }

    #[test]
    fn vlan_qinq() {
        check4(
            1,
            &eth(0x8100, &cat(&[&[0, 5, 8, 0], &ip4(6, &seg())])),
            "Ethernet:VLAN:IPv4:TCP",
        );
        let f = eth(
            0x88A8,
            &cat(&[&[0, 5, 0x81, 0], &[0, 6, 8, 0], &ip4(6, &seg())]),
        );
        check4(1, &f, "Ethernet:VLAN:VLAN:IPv4:TCP");
        let f = eth(
            0x9100,
            &cat(&[&[0, 5, 0x81, 0], &[0, 6, 0x86, 0xDD], &ip6(6, &seg())]),
        );
        check6(1, &f, "Ethernet:VLAN:VLAN:IPv6:TCP");
    }

    #[test]
    fn too_many_layers_is_not_tcp() {
        let mut body = Vec::new();
        for _ in 0..15 {
            body.extend_from_slice(&[0, 5, 0x81, 0]);
        }
        body.extend_from_slice(&[0, 5, 8, 0]);
        body.extend_from_slice(&ip4(6, &seg()));
        let d = no_tcp(1, &eth(0x8100, &body));
        assert_eq!(d.layers().len(), MAX_LAYERS);
    }

    #[test]
    fn mpls_stack() {
        let f = eth(
            0x8847,
            &cat(&[
                &[
                    0, 0x01, 0x00, 0xFF, 0, 0x02, 0x00, 0xFF, 0, 0x03, 0x01, 0xFF,
                ],
                &ip4(6, &seg()),
            ]),
        );
        check4(1, &f, "Ethernet:MPLS:IPv4:TCP");
        assert_eq!(decode(1, &f).layers()[1].len, 12);
        check6(
            1,
            &eth(0x8848, &cat(&[&[0, 0x01, 0x01, 0xFF], &ip6(6, &seg())])),
            "Ethernet:MPLS:IPv6:TCP",
        );
        // Ethernet pseudowire with a control word.
        let f = eth(
            0x8847,
            &cat(&[&[0, 0x01, 0x01, 0xFF], &[0, 0, 0, 0], &eth_ip4_tcp()]),
        );
        check4(1, &f, "Ethernet:MPLS:PWCW:Ethernet:IPv4:TCP");
    }

    #[test]
    fn pppoe() {
        let sess = |code: u8, body: &[u8]| {
            let mut h = vec![0x11, code, 0, 1];
            h.extend_from_slice(&(body.len() as u16).to_be_bytes());
            eth(0x8864, &cat(&[&h, body]))
        };
        let f = sess(0, &cat(&[&[0, 0x21], &ip4(6, &seg())]));
        check4(1, &f, "Ethernet:PPPoE:PPP:IPv4:TCP");
        check6(
            1,
            &sess(0, &cat(&[&[0, 0x57], &ip6(6, &seg())])),
            "Ethernet:PPPoE:PPP:IPv6:TCP",
        );
        // tshark checks no code; it takes no HDLC address/control field here.
        check4(
            1,
            &sess(9, &cat(&[&[0x21], &ip4(6, &seg())])),
            "Ethernet:PPPoE:PPP:IPv4:TCP",
        );
        no_tcp(
            1,
            &sess(0, &cat(&[&[0xFF, 0x03, 0, 0x21], &ip4(6, &seg())])),
        );
        // The PPPoE length ends the packet: here inside the TCP header.
        let mut short = f.clone();
        short[18..20].copy_from_slice(&(2u16 + 20 + 2).to_be_bytes());
        no_tcp(1, &short);
    }

    #[test]
    fn null_and_loop() {
        check4(
            0,
            &cat(&[&2u32.to_le_bytes(), &ip4(6, &seg())]),
            "Null:IPv4:TCP",
        );
        check4(
            0,
            &cat(&[&2u32.to_be_bytes(), &ip4(6, &seg())]),
            "Null:IPv4:TCP",
        );
        for af in [24u32, 28, 30] {
            check6(
                0,
                &cat(&[&af.to_le_bytes(), &ip6(6, &seg())]),
                "Null:IPv6:TCP",
            );
            check6(
                0,
                &cat(&[&af.to_be_bytes(), &ip6(6, &seg())]),
                "Null:IPv6:TCP",
            );
            check6(
                108,
                &cat(&[&af.to_be_bytes(), &ip6(6, &seg())]),
                "Loop:IPv6:TCP",
            );
        }
        check4(
            108,
            &cat(&[&2u32.to_be_bytes(), &ip4(6, &seg())]),
            "Loop:IPv4:TCP",
        );
        no_tcp(0, &cat(&[&23u32.to_le_bytes(), &ip4(6, &seg())]));
        // NULL also takes an ethertype, and FF 03 as PPP; LOOP takes only network byte order families.
        check4(
            0,
            &cat(&[&0x0800u32.to_le_bytes(), &ip4(6, &seg())]),
            "Null:IPv4:TCP",
        );
        check4(
            0,
            &cat(&[&[0xFF, 0x03, 0x00, 0x21], &ip4(6, &seg())]),
            "PPP:IPv4:TCP",
        );
        // IRIX 16-bit families in either order, and a byte-swapped ethertype.
        for hdr in [[2, 0, 2, 0], [0, 2, 0, 0], [0, 0, 2, 0], [1, 0, 8, 0]] {
            check4(0, &cat(&[&hdr, &ip4(6, &seg())]), "Null:IPv4:TCP");
        }
        no_tcp(108, &cat(&[&2u32.to_le_bytes(), &ip4(6, &seg())]));
        no_tcp(108, &cat(&[&0x0800u32.to_be_bytes(), &ip4(6, &seg())]));
    }

    #[test]
    fn raw_ip() {
        for lt in [101, 12, 14] {
            check4(lt, &ip4(6, &seg()), "IPv4:TCP");
            check6(lt, &ip6(6, &seg()), "IPv6:TCP");
        }
        check4(228, &ip4(6, &seg()), "IPv4:TCP");
        check6(229, &ip6(6, &seg()), "IPv6:TCP");
        check6(228, &ip6(6, &seg()), "IPv6:TCP");
        no_tcp(229, &ip4(6, &seg()));
    }

    #[test]
    fn ip_version_by_ethertype() {
        // tshark's ip dissector (ethertype 0x0800) also takes IPv6; the IPv6 one takes only IPv6.
        check6(1, &eth(0x0800, &ip6(6, &seg())), "Ethernet:IPv6:TCP");
        no_tcp(1, &eth(0x86DD, &ip4(6, &seg())));
        let mut p = ip4(6, &seg());
        p[0] = 0x55;
        no_tcp(1, &eth(0x0800, &p));
    }

    #[test]
    fn linux_cooked() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
        sll.extend_from_slice(&0x0800u16.to_be_bytes());
        check4(113, &cat(&[&sll, &ip4(6, &seg())]), "SLL:IPv4:TCP");
        // ARPHRD_IPGRE with transparent Ethernet bridging.
        let mut gre_sll = sll.clone();
        gre_sll[2..4].copy_from_slice(&778u16.to_be_bytes());
        gre_sll[14..16].copy_from_slice(&0x6558u16.to_be_bytes());
        check4(
            113,
            &cat(&[&gre_sll, &eth_ip4_tcp()]),
            "SLL:Ethernet:IPv4:TCP",
        );
        // ARPHRD_NETLINK
        let mut nl = sll.clone();
        nl[2..4].copy_from_slice(&824u16.to_be_bytes());
        no_tcp(113, &cat(&[&nl, &ip4(6, &seg())]));

        // Linux PPP (protocol 7), and 802.2 LLC (protocol 4).
        let mut ppp = sll.clone();
        ppp[14..16].copy_from_slice(&7u16.to_be_bytes());
        check4(
            113,
            &cat(&[&ppp, &[0xFF, 0x03, 0x00, 0x21], &ip4(6, &seg())]),
            "SLL:PPP:IPv4:TCP",
        );
        let mut llc = sll.clone();
        llc[14..16].copy_from_slice(&4u16.to_be_bytes());
        let snap = [0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00];
        check4(
            113,
            &cat(&[&llc, &snap, &ip4(6, &seg())]),
            "SLL:LLC:IPv4:TCP",
        );

        let mut sll2 = vec![0x86, 0xDD, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
        check6(276, &cat(&[&sll2, &ip6(6, &seg())]), "SLL2:IPv6:TCP");
    }

    #[test]
    fn ppp_links() {
        check4(
            9,
            &cat(&[&[0xFF, 0x03, 0x00, 0x21], &ip4(6, &seg())]),
            "PPP:IPv4:TCP",
        );
        check4(9, &cat(&[&[0x00, 0x21], &ip4(6, &seg())]), "PPP:IPv4:TCP");
        check4(9, &cat(&[&[0x21], &ip4(6, &seg())]), "PPP:IPv4:TCP");
        check6(
            50,
            &cat(&[&[0xFF, 0x03, 0x00, 0x57], &ip6(6, &seg())]),
            "PPP:IPv6:TCP",
        );
        let mpls = cat(&[&[0xFF, 0x03, 0x02, 0x81], &[0, 1, 1, 0xFF], &ip4(6, &seg())]);
        check4(50, &mpls, "PPP:MPLS:IPv4:TCP");
        check4(
            50,
            &cat(&[&[0x0F, 0x00, 0x08, 0x00], &ip4(6, &seg())]),
            "CHDLC:IPv4:TCP",
        );
        no_tcp(9, &cat(&[&[0xC0, 0x21], &ip4(6, &seg())]));
        check4(
            9,
            &cat(&[&[0x8F, 0x00, 0x08, 0x00], &ip4(6, &seg())]),
            "CHDLC:IPv4:TCP",
        );
    }

    #[test]
    fn cisco_hdlc_frame_relay_and_llc() {
        check4(
            104,
            &cat(&[&[0x0F, 0x00, 0x08, 0x00], &ip4(6, &seg())]),
            "CHDLC:IPv4:TCP",
        );
        check6(
            104,
            &cat(&[&[0x8F, 0x00, 0x86, 0xDD], &ip6(6, &seg())]),
            "CHDLC:IPv6:TCP",
        );
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x08, 0x00], &ip4(6, &seg())]),
            "FR:IPv4:TCP",
        );
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x03, 0xCC], &ip4(6, &seg())]),
            "FR:IPv4:TCP",
        );
        // 802.3 length field, LLC/SNAP with an ethertype.
        let body = cat(&[&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00], &ip4(6, &seg())]);
        check4(1, &eth(body.len() as u16, &body), "Ethernet:LLC:IPv4:TCP");
        no_tcp(
            1,
            &eth(body.len() as u16, &cat(&[&[0x42, 0x42, 0x03], &body[3..]])),
        );
    }

    #[test]
    fn nflog() {
        let pkt = ip4(6, &seg());
        let mut f = vec![2, 0, 0, 1];
        f.extend_from_slice(&[8, 0, 1, 0, 0x08, 0x00, 3, 0]); // NFULA_PACKET_HDR
        f.extend_from_slice(&[7, 0, 10, 0, b'a', b'b', b'c', 0]); // NFULA_PREFIX, padded
        f.extend_from_slice(&((pkt.len() + 4) as u16).to_le_bytes());
        f.extend_from_slice(&9u16.to_le_bytes());
        f.extend_from_slice(&pkt);
        check4(239, &f, "NFLOG:IPv4:TCP");
        assert_eq!(decode(239, &f).layers()[0].len, 24);
        let pkt6 = ip6(6, &seg());
        let mut f: Vec<u8> = vec![10, 0, 0, 1];
        f.extend_from_slice(&((pkt6.len() + 4) as u16).to_le_bytes());
        f.extend_from_slice(&9u16.to_le_bytes());
        f.extend_from_slice(&pkt6);
        check6(239, &f, "NFLOG:IPv6:TCP");
        // The packet header's hardware protocol wins over the family; 0 defers to it.
        let pkt = ip4(6, &seg());
        let tlvs = |fam: u8, hw: u16, body: &[u8]| {
            let mut v = vec![fam, 0, 0, 1, 8, 0, 1, 0];
            v.extend_from_slice(&hw.to_be_bytes());
            v.extend_from_slice(&[3, 0]);
            v.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
            v.extend_from_slice(&9u16.to_le_bytes());
            v.extend_from_slice(body);
            v
        };
        check4(239, &tlvs(10, 0x0800, &pkt), "NFLOG:IPv4:TCP");
        check4(239, &tlvs(2, 0, &pkt), "NFLOG:IPv4:TCP");
        check4(
            239,
            &tlvs(0, 0x8100, &cat(&[&[0, 1, 8, 0], &pkt])),
            "NFLOG:VLAN:IPv4:TCP",
        );
        no_tcp(239, &tlvs(2, 0x2800, &pkt));
        // tshark ignores the version byte.
        f[1] = 1;
        check6(239, &f, "NFLOG:IPv6:TCP");
        // A zero TLV length stops the walk.
        no_tcp(239, &[2, 0, 0, 1, 0, 0, 9, 0, 0, 0, 9, 0]);
    }

    fn wlan_data(fc0: u8, fc1: u8, addrs: usize, extra: &[u8]) -> Vec<u8> {
        let mut v = vec![fc0, fc1, 0, 0];
        v.extend(std::iter::repeat_n(0x11u8, 6 * addrs));
        v.splice(22.min(v.len())..22.min(v.len()), [0x10, 0x00]); // sequence control, fragment 0
        v.extend_from_slice(extra);
        v.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00]);
        v.extend_from_slice(&ip4(6, &seg()));
        v
    }

    #[test]
    fn radiotap_80211() {
        // Radiotap with TSFT and Flags (no padding), then a data frame from the DS.
        let mut rt = vec![0, 0, 0, 0, 0x03, 0, 0, 0];
        rt.extend_from_slice(&[0; 8]); // TSFT
        rt.extend_from_slice(&[0x00, 0, 0, 0]); // flags + pad to the length
        let n = rt.len() as u16;
        rt[2..4].copy_from_slice(&n.to_le_bytes());
        let f = cat(&[&rt, &wlan_data(0x08, 0x02, 3, &[])]);
        check4(127, &f, "Radiotap:802.11:LLC:IPv4:TCP");
        // Plain 802.11: QoS data, ToDS+FromDS (4 addresses), HT control.
        let f = wlan_data(0x88, 0x83, 4, &[0, 0, 1, 2, 3, 4]);
        check4(105, &f, "802.11:LLC:IPv4:TCP");
        assert_eq!(decode(105, &f).layers()[0].len, 36);
        // Protected, management, null-data, or a later fragment: no TCP.
        no_tcp(105, &wlan_data(0x08, 0x42, 3, &[]));
        no_tcp(105, &wlan_data(0x80, 0x00, 3, &[]));
        no_tcp(105, &wlan_data(0x48, 0x01, 3, &[]));
        no_tcp(105, &wlan_data(0x08, 0x06, 3, &[]));
        // A fragment number without the more-fragments bit is dissected (as tshark does).
        let mut frag = wlan_data(0x08, 0x02, 3, &[]);
        frag[22] = 0x11;
        check4(105, &frag, "802.11:LLC:IPv4:TCP");
        // Radiotap Flags with the data-pad bit: the 26-byte QoS header is padded to 28.
        let rt = [0, 0, 12, 0, 0x02, 0, 0, 0, 0x20, 0, 0, 0];
        let f = cat(&[&rt, &wlan_data(0x88, 0x02, 3, &[0, 0, 0, 0])]);
        check4(127, &f, "Radiotap:802.11:LLC:IPv4:TCP");
    }

    #[test]
    fn wlan_mesh_and_padding_quirks() {
        // A mesh control field, found by tshark's heuristic (From DS, valid flags, LLC after it), QoS or not.
        let f = wlan_data(0x08, 0x02, 3, &[0, 0, 0, 0, 1, 2]);
        check4(105, &f, "802.11:LLC:IPv4:TCP");
        assert_eq!(decode(105, &f).layers()[0].len, 30);
        no_tcp(105, &wlan_data(0x08, 0x01, 3, &[0, 0, 0, 0, 1, 2]));
        // With an extended address: 6 bytes + 6 per extended address.
        let f = wlan_data(
            0x88,
            0x03,
            4,
            &[0x00, 0x01, 0x01, 5, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6],
        );
        check4(105, &f, "802.11:LLC:IPv4:TCP");
        assert_eq!(decode(105, &f).layers()[0].len, 32 + 12);
        // Two zero bytes are skipped instead of looking for a mesh header.
        let f = wlan_data(
            0x88,
            0x03,
            4,
            &[0x00, 0x01, 0, 0, 0x01, 5, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6],
        );
        no_tcp(105, &f);
        // Invalid mesh flags: no mesh header, so no LLC.
        no_tcp(
            105,
            &wlan_data(0x88, 0x03, 4, &[0x00, 0x01, 0x04, 5, 0, 0, 0, 0]),
        );
        // A bare ethertype instead of LLC/SNAP.
        let bare = cat(&[
            &wlan_data(0x08, 0x02, 3, &[])[..24],
            &[0x08, 0x00],
            &ip4(6, &seg()),
        ]);
        check4(105, &bare, "802.11:IPv4:TCP");
        // Two zero bytes before the LLC header are skipped, as tshark does; four are not.
        check4(
            105,
            &wlan_data(0x08, 0x02, 3, &[0, 0]),
            "802.11:LLC:IPv4:TCP",
        );
        no_tcp(105, &wlan_data(0x08, 0x02, 3, &[0, 0, 0, 0]));
        // Radiotap Flags with FCS: the last 4 bytes are not packet bytes.
        let rt = [0, 0, 9, 0, 0x02, 0, 0, 0, 0x10];
        let f = cat(&[&rt, &wlan_data(0x08, 0x02, 3, &[]), b"FCS!"]);
        let t = decode(127, &f).tcp.unwrap();
        assert_eq!(
            (t.payload_len, t.window, t.offset as usize),
            (5, Some(512), f.len() - 4 - 25)
        );
        let cut = &f[..f.len() - 4 - 5 - 2];
        let t = decode(127, cut).tcp.unwrap();
        assert_eq!(t.window, None);
    }

    #[test]
    fn gre_variants() {
        let inner = ip4_full(6, &seg(), [192, 168, 0, 1], [192, 168, 0, 2], 0, 0);
        let outer = |g: Vec<u8>| eth(0x0800, &ip4(47, &g));
        let d = decode(1, &outer(gre(0, 0x0800, &[], &inner)));
        assert_eq!(d.protocols(), "Ethernet:IPv4:GRE:IPv4:TCP");
        let t = d.tcp.unwrap();
        assert_eq!((t.src, t.dst), (v4([192, 168, 0, 1]), v4([192, 168, 0, 2])));
        // Checksum, key and sequence present.
        let f = outer(gre(0xB000, 0x0800, &[0; 12], &ip4(6, &seg())));
        check4(1, &f, "Ethernet:IPv4:GRE:IPv4:TCP");
        assert_eq!(decode(1, &f).layers()[2].len, 16);
        check6(
            1,
            &outer(gre(0, 0x86DD, &[], &ip6(6, &seg()))),
            "Ethernet:IPv4:GRE:IPv6:TCP",
        );
        check4(
            1,
            &outer(gre(0, 0x6558, &[], &eth_ip4_tcp())),
            "Ethernet:IPv4:GRE:Ethernet:IPv4:TCP",
        );
        // ERSPAN type I (no sequence number), II, III, III with the platform subheader.
        let f = outer(gre(0, 0x88BE, &[], &eth_ip4_tcp()));
        check4(1, &f, "Ethernet:IPv4:GRE:ERSPAN:Ethernet:IPv4:TCP");
        let f = outer(gre(
            0x1000,
            0x88BE,
            &[0, 0, 0, 1],
            &cat(&[&[0x10, 1, 0, 1, 0, 0, 0, 0], &eth_ip4_tcp()]),
        ));
        check4(1, &f, "Ethernet:IPv4:GRE:ERSPAN:Ethernet:IPv4:TCP");
        let e3 = [0x20, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let f = outer(gre(0, 0x22EB, &[], &cat(&[&e3, &eth_ip4_tcp()])));
        check4(1, &f, "Ethernet:IPv4:GRE:ERSPAN:Ethernet:IPv4:TCP");
        let mut e3o = e3;
        e3o[11] = 1;
        let f = outer(gre(
            0x1000,
            0x22EB,
            &[0, 0, 0, 1],
            &cat(&[&e3o, &[0; 8], &eth_ip4_tcp()]),
        ));
        check4(1, &f, "Ethernet:IPv4:GRE:ERSPAN:Ethernet:IPv4:TCP");
        // PPTP enhanced GRE (version 1) with key, sequence and ack, carrying PPP.
        let f = outer(gre(
            0x3081,
            0x880B,
            &[0; 12],
            &cat(&[&[0xFF, 0x03, 0, 0x21], &ip4(6, &seg())]),
        ));
        check4(1, &f, "Ethernet:IPv4:GRE:PPP:IPv4:TCP");
        check4(
            1,
            &outer(gre(
                0x2001,
                0x880B,
                &[0; 4],
                &cat(&[&[0x21], &ip4(6, &seg())]),
            )),
            "Ethernet:IPv4:GRE:PPP:IPv4:TCP",
        );
        check4(
            1,
            &outer(gre(
                0,
                0x8847,
                &[],
                &cat(&[&[0, 1, 1, 0xFF], &ip4(6, &seg())]),
            )),
            "Ethernet:IPv4:GRE:MPLS:IPv4:TCP",
        );
        // tshark takes any version; an unknown protocol type stops.
        check4(
            1,
            &outer(gre(0x0002, 0x0800, &[], &ip4(6, &seg()))),
            "Ethernet:IPv4:GRE:IPv4:TCP",
        );
        no_tcp(1, &outer(gre(0, 0x1234, &[], &ip4(6, &seg()))));
    }

    #[test]
    fn udp_tunnels() {
        let vx = udp(
            50000,
            4789,
            &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth_ip4_tcp()]),
        );
        check4(
            1,
            &eth(0x0800, &ip4(17, &vx)),
            "Ethernet:IPv4:UDP:VXLAN:Ethernet:IPv4:TCP",
        );
        let gn = udp(
            50000,
            6081,
            &cat(&[&[0x02, 0, 0x65, 0x58, 0, 0, 1, 0], &[0; 8], &eth_ip4_tcp()]),
        );
        let f = eth(0x0800, &ip4(17, &gn));
        check4(1, &f, "Ethernet:IPv4:UDP:Geneve:Ethernet:IPv4:TCP");
        assert_eq!(decode(1, &f).layers()[3].len, 16);
        let gn = udp(
            6081,
            50000,
            &cat(&[&[0, 0, 0x08, 0x00, 0, 0, 1, 0], &ip4(6, &seg())]),
        );
        check4(
            1,
            &eth(0x0800, &ip4(17, &gn)),
            "Ethernet:IPv4:UDP:Geneve:IPv4:TCP",
        );
        // GTP-U with sequence number and a PDU session container extension header.
        let gtp = gtpu(
            0x36,
            0xFF,
            &cat(&[&[0, 1, 0, 0x85], &[1, 0x10, 0x09, 0x00]]),
            &ip6(6, &seg()),
        );
        let f = eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp)));
        check6(1, &f, "Ethernet:IPv4:UDP:GTP-U:IPv6:TCP");
        assert_eq!(decode(1, &f).layers()[3].len, 16);
        let gtp = gtpu(0x30, 0xFF, &[], &ip4(6, &seg()));
        check4(
            1,
            &eth(0x0800, &ip4(17, &udp(40000, 2152, &gtp))),
            "Ethernet:IPv4:UDP:GTP-U:IPv4:TCP",
        );
        // Signalling (echo request), an extension header of length 0, or a GTP length of 0: no TCP.
        let gtp = gtpu(0x30, 0x01, &[], &ip4(6, &seg()));
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp))));
        let gtp = gtpu(
            0x34,
            0xFF,
            &cat(&[&[0, 0, 0, 0x85], &[0, 0, 0, 0]]),
            &ip4(6, &seg()),
        );
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp))));
        let mut gtp = gtpu(0x30, 0xFF, &[], &ip4(6, &seg()));
        gtp[2..4].copy_from_slice(&[0, 0]);
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp))));
        // A UDP length below 8: no payload.
        let mut vx = udp(
            50000,
            4789,
            &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth_ip4_tcp()]),
        );
        vx[4..6].copy_from_slice(&4u16.to_be_bytes());
        no_tcp(1, &eth(0x0800, &ip4(17, &vx)));
        // Plain UDP, and sFlow (never entered).
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(5000, 53, &ip4(6, &seg())))));
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(5000, 6343, &ip4(6, &seg())))));
    }

    #[test]
    fn ip_in_ip() {
        let inner = ip4_full(6, &seg(), [192, 168, 0, 1], [192, 168, 0, 2], 0, 0);
        let d = decode(1, &eth(0x0800, &ip4(4, &inner)));
        assert_eq!(d.protocols(), "Ethernet:IPv4:IPv4:TCP");
        assert_eq!(d.tcp.unwrap().src, v4([192, 168, 0, 1]));
        check6(
            1,
            &eth(0x0800, &ip4(41, &ip6(6, &seg()))),
            "Ethernet:IPv4:IPv6:TCP",
        );
        check4(
            1,
            &eth(0x86DD, &ip6(4, &ip4(6, &seg()))),
            "Ethernet:IPv6:IPv4:TCP",
        );
        check6(
            1,
            &eth(0x86DD, &ip6(41, &ip6(6, &seg()))),
            "Ethernet:IPv6:IPv6:TCP",
        );
    }

    #[test]
    fn icmp_error_quoting_tcp_is_not_tcp() {
        let quote = ip4(6, &seg()[..8]);
        let icmp = cat(&[&[3, 3, 0, 0, 0, 0, 0, 0], &quote]);
        let d = no_tcp(1, &eth(0x0800, &ip4(1, &icmp)));
        assert_eq!(d.protocols(), "Ethernet:IPv4");
        let icmp6 = cat(&[&[1, 4, 0, 0, 0, 0, 0, 0], &ip6(6, &seg())]);
        no_tcp(1, &eth(0x86DD, &ip6(58, &icmp6)));
    }

    #[test]
    fn truncated_tcp_header() {
        let full = eth_ip4_tcp();
        no_tcp(1, &full[..34 + 13]);
        let t = decode(1, &full[..34 + 14])
            .tcp
            .expect("14 bytes are enough");
        assert_eq!(
            (t.sport, t.dport, t.flags, t.window, t.payload_len),
            (1234, 80, 0x018, None, 5)
        );
        let t = decode(1, &full[..34 + 16]).tcp.unwrap();
        assert_eq!(t.window, Some(512));
        assert_eq!(decode(1, &full[..34 + 16]).layers()[2].len, 16);
    }

    #[test]
    fn bogus_tcp_data_offset_is_no_flow() {
        let mut s = seg();
        s[12] = 0x40 | (s[12] & 0x0F);
        let d = decode(1, &eth(0x0800, &ip4(6, &s)));
        assert!(d.tcp.is_none(), "a data offset under 5 belongs to no flow");
        assert_eq!(d.layers().last().map(|l| l.layer), Some(Layer::Tcp));
    }

    #[test]
    fn bad_ipv4_headers() {
        let mut p = ip4(6, &seg());
        p[0] = 0x44;
        no_tcp(1, &eth(0x0800, &p));
        let mut p = ip4(6, &seg());
        p[2..4].copy_from_slice(&10u16.to_be_bytes()); // total length below the header length
        no_tcp(1, &eth(0x0800, &p));
        let p = ip4_full(6, &seg(), A4, B4, 10, 0);
        no_tcp(1, &eth(0x0800, &p[..50])); // options not captured
        no_tcp(1, &eth(0x0800, &ip4(6, &seg())[..19]));
    }

    #[test]
    fn zero_lengths() {
        let mut p = ip4(6, &seg());
        p[2..4].copy_from_slice(&[0, 0]); // TSO
        let t = decode(1, &eth(0x0800, &p)).tcp.unwrap();
        assert_eq!(t.payload_len, 5);
        let mut p = ip6(6, &seg());
        p[4..6].copy_from_slice(&[0, 0]); // TSO or jumbogram: tshark finds no TCP in it
        no_tcp(1, &eth(0x86DD, &p));
        // Lengths from the IP header, not the captured bytes (snaplen, Ethernet padding).
        let f = eth_ip4_tcp();
        assert_eq!(decode(1, &f[..56]).tcp.unwrap().payload_len, 5);
        let padded = cat(&[&f, &[0; 20]]);
        assert_eq!(decode(1, &padded).tcp.unwrap().payload_len, 5);
    }

    #[test]
    fn empty_and_unknown() {
        for lt in [
            0, 1, 9, 12, 14, 50, 51, 101, 104, 105, 107, 108, 113, 127, 192, 228, 229, 239, 242,
            276, 9999,
        ] {
            let d = no_tcp(lt, &[]);
            assert!(d.layers().is_empty());
        }
        no_tcp(9999, &eth_ip4_tcp());
        no_tcp(1, &eth(0x0806, &ip4(6, &seg())));
    }

    #[test]
    fn random_bytes_do_not_panic() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let lts = [
            0, 1, 9, 12, 50, 51, 101, 104, 105, 107, 108, 113, 127, 192, 228, 229, 239, 242, 276,
        ];
        // Valid frames of many encapsulations, to be mutated so that deeper layers are reached.
        let gre_e3 = gre(
            0,
            0x22EB,
            &[],
            &cat(&[
                &[0x20, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
                &[0; 8],
                &eth_ip4_tcp(),
            ]),
        );
        let gtp = gtpu(
            0x36,
            0xFF,
            &cat(&[&[0, 1, 0, 0x85], &[1, 0x10, 0x09, 0x00]]),
            &ip6(6, &seg()),
        );
        let ext6 = cat(&[
            &[43, 0, 0, 0, 0, 0, 0, 0],
            &[44, 2, 2, 1, 0, 0, 0, 0],
            &[0; 16],
            &[6, 0, 0, 1, 0, 0, 0, 1],
            &seg(),
        ]);
        let mut nflog = vec![2, 0, 0, 1, 8, 0, 1, 0, 0x08, 0x00, 3, 0, 49, 0, 9, 0];
        nflog.extend_from_slice(&ip4(6, &seg()));
        let rt = [0, 0, 9, 0, 0x02, 0, 0, 0, 0x20];
        let seeds: Vec<(u32, Vec<u8>)> = vec![
            (1, eth_ip4_tcp()),
            (1, eth(0x0800, &ip4(17, &udp(1, 4789, &eth_ip4_tcp())))),
            (1, eth(0x0800, &ip4(47, &gre_e3))),
            (1, eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp)))),
            (1, eth(0x86DD, &ip6(0, &ext6))),
            (
                1,
                eth(
                    0x8847,
                    &cat(&[&[0, 1, 0, 0xFF, 0, 1, 1, 0xFF], &[0; 4], &eth_ip4_tcp()]),
                ),
            ),
            (
                1,
                eth(
                    0x8864,
                    &cat(&[&[0x11, 0, 0, 1, 0, 47], &[0, 0x21], &ip4(6, &seg())]),
                ),
            ),
            (239, nflog),
            (
                127,
                cat(&[
                    &rt,
                    &wlan_data(
                        0x88,
                        0x03,
                        4,
                        &[0, 0, 0, 0x01, 5, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6],
                    ),
                ]),
            ),
            (
                107,
                cat(&[
                    &[0x18, 0x60, 0x01, 0x03, 0x80, 0, 0, 0, 0x08, 0x00],
                    &ip4(6, &seg()),
                ]),
            ),
            (0, cat(&[&[2, 0, 0, 0], &ip4(4, &ip4(6, &seg()))])),
        ];
        let mut buf = [0u8; 256];
        let mut tcp = 0;
        for i in 0..40_000 {
            let len = (next() % 257) as usize;
            for b in buf.iter_mut() {
                *b = next() as u8;
            }
            let mut lt = lts[i % lts.len()];
            if i % 4 != 0 {
                let (slt, s) = &seeds[i % seeds.len()];
                let n = s.len().min(256);
                buf[..n].copy_from_slice(&s[..n]);
                for _ in 0..(1 + next() % 4) {
                    let at = (next() % n as u64) as usize;
                    buf[at] = next() as u8;
                }
                lt = *slt;
            }
            let d = decode(lt, &buf[..len]);
            for l in d.layers() {
                assert!(l.offset as usize + l.len as usize <= len);
            }
            if let Some(t) = d.tcp {
                assert!(t.offset as usize + 14 <= len);
                tcp += 1;
            }
        }
        // The seeds are valid and the mutations light: many frames still reach TCP.
        assert!(tcp > 5_000, "{tcp}");
    }
}
