//! Packet decoder: walks a captured frame from its link-layer header down to the TCP header, without allocating.
//!
//! The reference is tshark with IPv4/IPv6 defragmentation off: a frame is TCP when its own captured bytes hold a
//! TCP header (at least the 14 bytes up to the flags) directly under an IPv4 header (unfragmented or first
//! fragment) or an IPv6 header (after its extension headers). ICMP errors and sFlow samples are never entered.
//! Length fields bound the packet as tshark's reported length does: a header cut by one is not there.
//!
//! Why hand-written and not etherparse (which `tests/it/decode_oracle.rs` uses as an oracle for the plain
//! Ethernet/VLAN/IP/TCP case): etherparse drops the TCP header of an IPv4 first fragment (it gives the payload
//! of any fragmented packet as unparsed), needs all 20 bytes of a TCP header where TraceFlow's rule counts one
//! from 14 (up to the flags), reads an IPv6 payload length of 0 as "the rest of the frame" where tshark finds
//! no TCP, and has none of most encapsulations here (NULL/LOOP variants, NFLOG, PPI, FDDI, radiotap/802.11 with
//! A-MSDU, Cisco HDLC, Frame Relay, PPP/PPPoE, MPLS, VN-Tag, FabricPath, GRE/ERSPAN/WCCP/Aruba, GRE over UDP,
//! EtherIP, NSH, VXLAN, Geneve, GTP-U, AYIYA, Teredo, ARCNET, IPoIB, Juniper, IPv6 jumbograms). Matching tshark on those needs our own rules,
//! and this decoder also never allocates.
//!
//! Layout: this file holds the public types, the `Step` loop, and the bounds and reported-length handling
//! (`Parser`'s readers, `limit` and `push`); each protocol family has its file with its `impl Parser` methods,
//! and [`numbers`] names every protocol number they dispatch on.
use std::net::{IpAddr, Ipv4Addr};

pub mod numbers;

mod arcnet;
mod ethernet;
mod hdlc;
mod infiniband;
mod ip;
pub use ip::IpHeader;
mod juniper;
mod link;
mod mpls;
mod ppp;
mod tcp;
mod tunnel;
mod udp;
mod wifi;

#[cfg(test)]
mod testutil;

/// One protocol layer recognised in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// BSD loopback (LINKTYPE_NULL) header.
    Null,
    /// OpenBSD loopback (LINKTYPE_LOOP) header.
    Loop,
    /// Ethernet II / 802.3 header.
    Ethernet,
    /// IEEE 802.2 LLC (with SNAP when present).
    Llc,
    /// An 802.1Q / 802.1ad tag.
    Vlan,
    /// An MPLS label stack.
    Mpls,
    /// MPLS pseudowire control word (before an Ethernet pseudowire).
    PwCw,
    /// PPPoE session header.
    Pppoe,
    /// PPP header (address/control when present, protocol).
    Ppp,
    /// Linux cooked capture v1.
    Sll,
    /// Linux cooked capture v2.
    Sll2,
    /// NFLOG header and TLVs up to the payload.
    Nflog,
    /// Radiotap header.
    Radiotap,
    /// Per-Packet Information header.
    Ppi,
    /// IEEE 802.11 data frame header.
    Ieee80211,
    /// Cisco HDLC header.
    CiscoHdlc,
    /// Frame Relay address and encapsulation header.
    FrameRelay,
    /// IEEE 802.1ah (provider backbone bridging) I-TAG.
    Pbb,
    /// Network Service Header.
    Nsh,
    /// Cisco FabricPath: the FTag/TTL word after the outer Ethernet header (and its 802.1Q tag, if any).
    FabricPath,
    /// Cisco VN-Tag (the 4-byte tag and the next EtherType).
    VnTag,
    /// Cisco MetaData (TrustSec SGT) header and the next EtherType.
    Cmd,
    /// FDDI MAC header (frame control, destination, source).
    Fddi,
    /// ARCNET header as Linux captures it (RFC 1051 or RFC 1201 framing).
    Arcnet,
    /// IP over InfiniBand: tshark's 40-byte pseudo header and the 4-byte IPoIB header.
    Ipoib,
    /// Juniper capture header (magic, flags, extensions; the payload type when the link header was stripped).
    Juniper,
    /// IPv4 header with options.
    Ipv4,
    /// IPv6 fixed header.
    Ipv6,
    /// An IPv6 extension header (hop-by-hop, routing, fragment, destination options).
    Ipv6Ext,
    /// IP authentication header.
    Ah,
    /// GRE header with its optional fields.
    Gre,
    /// ERSPAN header (none for type I).
    Erspan,
    /// WCCPv2 redirect header (in GRE protocol type 0x883E).
    Wccp,
    /// EtherIP header.
    EtherIp,
    /// UDP or UDP-Lite header.
    Udp,
    /// VXLAN header.
    Vxlan,
    /// VXLAN-GPE header.
    VxlanGpe,
    /// Geneve header with its options.
    Geneve,
    /// GTPv1-U header with its optional fields and extension headers.
    GtpU,
    /// AYIYA header with its identity and signature.
    Ayiya,
    /// Teredo's authentication header and origin indication, when present (0 bytes when neither is).
    Teredo,
    /// An 802.11 A-MSDU subframe header (destination, source, length).
    AMsdu,
    /// TCP header (as much of it as is captured).
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
            Layer::FabricPath => "FabricPath",
            Layer::VnTag => "VN-Tag",
            Layer::Cmd => "CMD",
            Layer::Fddi => "FDDI",
            Layer::Arcnet => "ARCNET",
            Layer::Ipoib => "IPoIB",
            Layer::Juniper => "Juniper",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Ipv6Ext => "IPv6Ext",
            Layer::Ah => "AH",
            Layer::Gre => "GRE",
            Layer::Erspan => "ERSPAN",
            Layer::Wccp => "WCCP",
            Layer::EtherIp => "EtherIP",
            Layer::Udp => "UDP",
            Layer::Vxlan => "VXLAN",
            Layer::VxlanGpe => "VXLAN-GPE",
            Layer::Geneve => "Geneve",
            Layer::GtpU => "GTP-U",
            Layer::Ayiya => "AYIYA",
            Layer::Teredo => "Teredo",
            Layer::AMsdu => "A-MSDU",
            Layer::Tcp => "TCP",
        }
    }
}

/// The header bytes of one layer within the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpan {
    /// Which layer.
    pub layer: Layer,
    /// Byte offset of its header in the frame.
    pub offset: u32,
    /// Length of its header (within the captured bytes).
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
    /// Source address of the IP header directly above the TCP header.
    pub src: IpAddr,
    /// Destination address of that IP header.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (whether or not ACK is set).
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
    /// bytes when the IPv4 total length is 0 (TSO). (An IPv6 payload length of 0 gives no TCP, as in tshark,
    /// unless a Hop-by-Hop Jumbo Payload option of at least 65,536 gives the length.)
    pub payload_len: u32,
    /// Byte offset of the TCP header in the frame.
    pub offset: u32,
}

impl Tcp {
    /// FIN is set.
    pub fn fin(&self) -> bool {
        self.flags & numbers::TCP_FIN != 0
    }
    /// SYN is set.
    pub fn syn(&self) -> bool {
        self.flags & numbers::TCP_SYN != 0
    }
    /// RST is set.
    pub fn rst(&self) -> bool {
        self.flags & numbers::TCP_RST != 0
    }
}

/// Most layers recorded for one frame; a frame nesting deeper yields no TCP.
pub const MAX_LAYERS: usize = 16;

/// The result of decoding one frame.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    layers: [LayerSpan; MAX_LAYERS],
    n: u8,
    /// The TCP header fields, when the frame is a TCP packet.
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
    FabricPath,
    VnTag,
    Cmd,
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
    Ayiya,
    Teredo,
    Ieee80211(bool),
    Tcp,
}

#[derive(Clone, Copy)]
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
    let step = p.link(linktype);
    p.run(step);
    p.d
}

impl Parser<'_> {
    /// Parse from `step` on until a step is done or TCP is read. An A-MSDU runs this again for each of its
    /// subframes (on a copy of the parser): every level records layers, so the layer table bounds the depth.
    fn run(&mut self, mut step: Step) {
        let p = self;
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
                Step::FabricPath => p.fabricpath(),
                Step::VnTag => p.vntag(),
                Step::Cmd => p.cmd(),
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
                Step::Ayiya => p.ayiya(),
                Step::Teredo => p.teredo(),
                Step::Ieee80211(pad) => p.ieee80211(pad),
                Step::Tcp => {
                    p.tcp();
                    break;
                }
            };
        }
    }
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
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

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
