//! IPv4, IPv6, the IPv6 extension headers and AH, and the IP protocol / next header dispatch.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::numbers::*;
use super::{Layer, Parser, Step};

impl Parser<'_> {
    pub(super) fn ip(&mut self) -> Step {
        match self.u8(0).map(|b| b >> 4) {
            Some(IP_VERSION_4) => self.ipv4(),
            Some(IP_VERSION_6) => self.ipv6(),
            _ => Step::Done,
        }
    }

    pub(super) fn ipv4(&mut self) -> Step {
        let Some(h) = self.f.get(self.off..self.off.saturating_add(20)) else {
            return Step::Done;
        };
        if h.len() < 20 || h[0] >> 4 != IP_VERSION_4 {
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

    pub(super) fn ipv6(&mut self) -> Step {
        let Some(h) = self.f.get(self.off..self.off.saturating_add(40)) else {
            return Step::Done;
        };
        if h.len() < 40 || h[0] >> 4 != IP_VERSION_6 {
            return Step::Done;
        }
        let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
        let nh = h[6];
        let mut a = [0u8; 16];
        a.copy_from_slice(&h[8..24]);
        let src = Ipv6Addr::from(a);
        a.copy_from_slice(&h[24..40]);
        let dst = Ipv6Addr::from(a);
        // A payload length of 0 is a jumbogram's (RFC 2675) when a Hop-by-Hop header follows with a Jumbo Payload
        // option of at least 65,536 (anywhere among its options): that is the length after the fixed header.
        // Otherwise (TSO, no option, a smaller value) tshark has an empty payload: no TCP.
        let plen = match (plen, nh) {
            (0, IPPROTO_HOPOPTS) => self.jumbo_len(40).unwrap_or(0),
            _ => plen,
        };
        self.limit(self.off.saturating_add(40).saturating_add(plen));
        if !self.push(Layer::Ipv6, 40) {
            return Step::Done;
        }
        self.src = IpAddr::V6(src);
        self.dst = IpAddr::V6(dst);
        Step::Next(nh)
    }

    /// The Jumbo Payload length in the Hop-by-Hop header at `at`, when it has the option (length 4) and its value
    /// is at least 65,536 (the first such option; Pad1 and every other option are stepped over).
    fn jumbo_len(&self, at: usize) -> Option<usize> {
        let end = at + (self.u8(at + 1)? as usize + 1) * 8;
        let mut i = at + 2;
        // Every option is at least one byte: at most 2048 steps.
        while i < end {
            let t = self.u8(i)?;
            if t == IP6OPT_PAD1 {
                i += 1;
                continue;
            }
            let l = self.u8(i + 1)?;
            if t == IP6OPT_JUMBO && l == IP6OPT_JUMBO_LEN && i + 6 <= end {
                let v = self.be32(i + 2)?;
                return (v >= IP6_JUMBO_MIN).then_some(v as usize);
            }
            i += 2 + l as usize;
        }
        None
    }

    /// An IPv4 protocol or IPv6 next header value at the current offset.
    pub(super) fn next_header(&mut self, nh: u8) -> Step {
        match nh {
            IPPROTO_TCP => Step::Tcp,
            IPPROTO_UDP => Step::Udp(false),
            IPPROTO_UDPLITE => Step::Udp(true),
            IPPROTO_GRE => Step::Gre,
            IPPROTO_IPIP => Step::Ip,
            IPPROTO_IPV6 => Step::Ipv6,
            IPPROTO_ETHERIP => Step::EtherIp,
            IPPROTO_MPLS => Step::Mpls,
            // IPv6 extension headers (AH also under IPv4). tshark does not go past a mobility header
            // (IPPROTO_MOBILITY), nor into ESP.
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_FRAGMENT | IPPROTO_AH | IPPROTO_DSTOPTS => {
                let (Some(next), Some(l)) = (self.u8(0), self.u8(1)) else {
                    return Step::Done;
                };
                let (layer, len) = match nh {
                    IPPROTO_AH => (Layer::Ah, (l as usize + 2) * 4),
                    IPPROTO_FRAGMENT => {
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
}

/// One IP header of a decoded frame: its addresses and the protocol it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The upper-layer protocol: IPv4's protocol field, or the next header after IPv6's (and AH's) extension
    /// headers, as far as they were read (44 for a later IPv6 fragment).
    pub proto: u8,
}

impl super::Decoded {
    /// Every IP header the decoder read in `frame` (the frame it decoded), outermost first: a tunnel gives one per
    /// level, as tshark's IP endpoint statistics count them. Read back from the recorded layers, so the decoder's
    /// hot path carries nothing for it.
    pub fn ip_headers<'a>(&'a self, frame: &'a [u8]) -> impl Iterator<Item = IpHeader> + 'a {
        let layers = self.layers();
        layers.iter().enumerate().filter_map(move |(i, l)| {
            let o = l.offset as usize;
            let h = frame.get(o..o + l.len as usize)?;
            let (src, dst, mut proto) = match l.layer {
                Layer::Ipv4 if h.len() >= 20 => {
                    let a = |at: usize| {
                        IpAddr::V4(Ipv4Addr::new(h[at], h[at + 1], h[at + 2], h[at + 3]))
                    };
                    (a(12), a(16), h[9])
                }
                Layer::Ipv6 if h.len() >= 40 => {
                    let a = |at: usize| {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(&h[at..at + 16]);
                        IpAddr::V6(Ipv6Addr::from(b))
                    };
                    (a(8), a(24), h[6])
                }
                _ => return None,
            };
            // The extension headers (and AH) right after this header name the protocol they lead to.
            for ext in layers[i + 1..]
                .iter()
                .take_while(|e| matches!(e.layer, Layer::Ipv6Ext | Layer::Ah))
            {
                match frame.get(ext.offset as usize) {
                    Some(&next) => proto = next,
                    None => break,
                }
            }
            Some(IpHeader { src, dst, proto })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

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
    fn ip_version_by_ethertype() {
        // tshark's ip dissector (ethertype 0x0800) also takes IPv6; the IPv6 one takes only IPv6.
        check6(1, &eth(0x0800, &ip6(6, &seg())), "Ethernet:IPv6:TCP");
        no_tcp(1, &eth(0x86DD, &ip4(6, &seg())));
        let mut p = ip4(6, &seg());
        p[0] = 0x55;
        no_tcp(1, &eth(0x0800, &p));
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
    fn ip_headers_lists_every_level_with_its_upper_protocol() {
        let inner = ip4_full(
            17,
            &udp(1, 2, b"x"),
            [192, 168, 0, 1],
            [192, 168, 0, 2],
            0,
            0,
        );
        let f = eth(0x0800, &ip4(4, &inner));
        let got: Vec<_> = decode(1, &f).ip_headers(&f).collect();
        assert_eq!(
            got,
            [
                IpHeader {
                    src: v4(A4),
                    dst: v4(B4),
                    proto: 4
                },
                IpHeader {
                    src: v4([192, 168, 0, 1]),
                    dst: v4([192, 168, 0, 2]),
                    proto: 17
                },
            ]
        );
        // IPv6 through a destination-options header to ICMPv6; a later IPv4 fragment still has addresses.
        let f = eth(
            0x86DD,
            &ip6(60, &cat(&[&[58, 0, 1, 4, 0, 0, 0, 0], &[128, 0, 0, 0]])),
        );
        let got: Vec<_> = decode(1, &f).ip_headers(&f).map(|h| h.proto).collect();
        assert_eq!(got, [58]);
        let f = eth(0x0800, &ip4_full(6, &seg(), A4, B4, 0, 185));
        let got: Vec<_> = decode(1, &f).ip_headers(&f).collect();
        assert_eq!(
            got,
            [IpHeader {
                src: v4(A4),
                dst: v4(B4),
                proto: 6
            }]
        );
        assert!(decode(1, &eth(0x0806, &[0; 28]))
            .ip_headers(&[])
            .next()
            .is_none());
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
        p[4..6].copy_from_slice(&[0, 0]); // TSO, or a jumbogram without its option: tshark finds no TCP
        no_tcp(1, &eth(0x86DD, &p));
        // Lengths from the IP header, not the captured bytes (snaplen, Ethernet padding).
        let f = eth_ip4_tcp();
        assert_eq!(decode(1, &f[..56]).tcp.unwrap().payload_len, 5);
        let padded = cat(&[&f, &[0; 20]]);
        assert_eq!(decode(1, &padded).tcp.unwrap().payload_len, 5);
    }
}
