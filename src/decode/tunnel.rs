//! Tunnels carried directly by IP or Ethernet: GRE (with PPTP's enhanced GRE, WCCP and Aruba's 802.11), ERSPAN,
//! EtherIP and NSH. GRE over UDP (RFC 8086) comes here from the UDP port.
use super::numbers::*;
use super::{Layer, Parser, Step};

impl Parser<'_> {
    pub(super) fn gre(&mut self) -> Step {
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
        if ver != GRE_VERSION_0 && proto == ETHERTYPE_PPP && flags & 0x0080 != 0 {
            len += 4; // acknowledgment number
        }
        if ver == GRE_VERSION_0 && flags & 0x4000 != 0 {
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
            ETHERTYPE_IPV4 => Step::Ip,
            ETHERTYPE_IPV6 => Step::Ipv6,
            ETHERTYPE_TEB => Step::Ethernet,
            ETHERTYPE_PPP => Step::Ppp(true),
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => Step::Mpls,
            // WCCP: IPv4 straight away when the first nibble says so, else a 4-byte WCCPv2 redirect header and
            // then IP (tshark's ip dissector, so IPv6 too).
            ETHERTYPE_WCCP => match self.u8(0) {
                Some(b) if b >> 4 == IP_VERSION_4 => Step::Ip,
                Some(_) => self.fixed(Layer::Wccp, 4, Step::Ip),
                None => Step::Done,
            },
            // Aruba: an 802.11 frame without FCS (tshark decodes every type from 0x8200 to 0x8370 in steps of 16).
            GRE_ARUBA_FIRST..=GRE_ARUBA_LAST
                if (proto - GRE_ARUBA_FIRST).is_multiple_of(GRE_ARUBA_STEP) =>
            {
                Step::Ieee80211(false)
            }
            // ERSPAN type I (ETHERTYPE_ERSPAN without a sequence number): no header at all.
            ETHERTYPE_ERSPAN if flags & 0x1000 == 0 => self.fixed(Layer::Erspan, 0, Step::Ethernet),
            // Otherwise the ERSPAN version decides: type II has 8 bytes; type III 12, + 8 with the
            // platform-specific subheader (O bit), and carries Ethernet only when its frame type says so.
            ETHERTYPE_ERSPAN | ETHERTYPE_ERSPAN_III => {
                match (self.u8(0).map(|b| b >> 4), self.u8(10), self.u8(11)) {
                    (Some(ERSPAN_VERSION_II), _, _) => self.fixed(Layer::Erspan, 8, Step::Ethernet),
                    (Some(ERSPAN_VERSION_III), Some(b10), Some(b11))
                        if (b10 >> 2) & 0x1F == ERSPAN_FT_ETHERNET =>
                    {
                        let len = if b11 & 1 != 0 { 20 } else { 12 };
                        self.fixed(Layer::Erspan, len, Step::Ethernet)
                    }
                    _ => Step::Done,
                }
            }
            _ => Step::Done,
        }
    }

    pub(super) fn etherip(&mut self) -> Step {
        match self.u8(0) {
            // tshark does not check the version nibble.
            Some(_) => self.fixed(Layer::EtherIp, 2, Step::Ethernet),
            _ => Step::Done,
        }
    }

    pub(super) fn nsh(&mut self) -> Step {
        let (Some(b1), Some(np)) = (self.u8(1), self.u8(3)) else {
            return Step::Done;
        };
        let len = (b1 & 0x3F) as usize * 4;
        let next = match np {
            NSH_NP_IPV4 => Step::Ip,
            NSH_NP_IPV6 => Step::Ipv6,
            NSH_NP_ETHERNET => Step::Ethernet,
            NSH_NP_MPLS => Step::Mpls,
            _ => return Step::Done,
        };
        if len < 8 {
            return Step::Done;
        }
        self.fixed(Layer::Nsh, len, next)
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

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
}
