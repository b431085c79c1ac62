//! Link-type dispatch: the pcap LINKTYPE of the capture picks the first header; NULL/LOOP, raw IP, Linux cooked
//! (SLL, SLL2), NFLOG and PPI are parsed here (ARCNET, IPoIB and Juniper have files of their own).
use super::numbers::*;
use super::{Layer, Parser, Step};

// The address families as the 32-bit NULL/LOOP header holds them.
const FAM_INET: u32 = AF_INET as u32;
const FAM_INET6_BSD: u32 = AF_INET6_BSD as u32;
const FAM_INET6_FREEBSD: u32 = AF_INET6_FREEBSD as u32;
const FAM_INET6_DARWIN: u32 = AF_INET6_DARWIN as u32;
/// A NULL header value from here on is a Linux EtherType (as tshark).
const FAM_ETHERTYPE_MIN: u32 = IEEE802_3_MAX_LEN as u32 + 1;

impl Parser<'_> {
    pub(super) fn link(&mut self, linktype: u32) -> Step {
        match linktype {
            LINKTYPE_ETHERNET => Step::Ethernet,
            LINKTYPE_FDDI => self.fddi(),
            LINKTYPE_NULL => {
                // A BSD address family in the capturing host's byte order, an IRIX 16-bit family, or a Linux
                // ethertype, told apart as tshark does (reading as a little-endian host); FF 03 is PPP.
                let Some(b) = self.f.get(0..4) else {
                    return Step::Done;
                };
                if b[0] == PPP_ADDRESS && b[1] == LLC_CONTROL_UI {
                    return Step::Ppp(true);
                }
                // The masks and bounds below are tshark's byte-order tests, not protocol numbers.
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
                    FAM_INET => Step::Ip,
                    FAM_INET6_BSD | FAM_INET6_FREEBSD | FAM_INET6_DARWIN => Step::Ipv6,
                    FAM_ETHERTYPE_MIN.. => Step::EtherType(fam as u16),
                    _ => Step::Done,
                }
            }
            LINKTYPE_LOOP => {
                // The address family in network byte order, nothing else (as tshark).
                let Some(fam) = self.be32(0) else {
                    return Step::Done;
                };
                let next = match fam {
                    FAM_INET => Step::Ip,
                    FAM_INET6_BSD | FAM_INET6_FREEBSD | FAM_INET6_DARWIN => Step::Ipv6,
                    _ => return Step::Done,
                };
                self.fixed(Layer::Loop, 4, next)
            }
            LINKTYPE_RAW | LINKTYPE_RAW_12 | LINKTYPE_RAW_14 => Step::Ip,
            // tshark reads LINKTYPE_IPV4 with its ip dissector, which also takes IPv6.
            LINKTYPE_IPV4 => Step::Ip,
            LINKTYPE_IPV6 => Step::Ipv6,
            LINKTYPE_LINUX_SLL => {
                let (Some(hatype), Some(proto)) = (self.be16(2), self.be16(14)) else {
                    return Step::Done;
                };
                if !self.push(Layer::Sll, 16) {
                    return Step::Done;
                }
                sll_payload(hatype, proto)
            }
            LINKTYPE_LINUX_SLL2 => {
                let (Some(proto), Some(hatype)) = (self.be16(0), self.be16(8)) else {
                    return Step::Done;
                };
                if !self.push(Layer::Sll2, 20) {
                    return Step::Done;
                }
                sll_payload(hatype, proto)
            }
            LINKTYPE_PPP | LINKTYPE_PPP_HDLC => match self.u8(0) {
                Some(CHDLC_ADDR_UNICAST | CHDLC_ADDR_MULTICAST) => self.chdlc(),
                _ => Step::Ppp(true),
            },
            LINKTYPE_PPP_ETHER => Step::Pppoe,
            LINKTYPE_C_HDLC => self.chdlc(),
            LINKTYPE_FRELAY => self.frame_relay(),
            LINKTYPE_NFLOG => self.nflog(),
            LINKTYPE_RADIOTAP => self.radiotap(),
            LINKTYPE_PPI => self.ppi(),
            LINKTYPE_IEEE802_11 => Step::Ieee80211(false),
            LINKTYPE_ARCNET_LINUX => self.arcnet_linux(),
            LINKTYPE_IPOIB => self.ipoib(),
            LINKTYPE_JUNIPER_ETHER => self.juniper_ether(),
            _ => Step::Done,
        }
    }

    pub(super) fn nflog(&mut self) -> Step {
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
            // The top bit is netlink's NLA_F_NESTED flag, not part of the type.
            if ty & 0x7FFF == NFULA_PAYLOAD {
                if !self.push(Layer::Nflog, at + 4) {
                    return Step::Done;
                }
                self.limit(self.off + tl - 4);
                return match (hw_protocol, family) {
                    (0, AF_INET) => Step::Ip,
                    (0, AF_INET6_LINUX) => Step::Ipv6,
                    (0, _) => Step::Done,
                    (t, _) => Step::EtherType(t),
                };
            }
            if ty & 0x7FFF == NFULA_PACKET_HDR && tl >= 6 {
                // NFULA_PACKET_HDR: hw_protocol (network order), hook, padding.
                hw_protocol = self.be16(at + 4).unwrap_or(0);
            }
            at += (tl + 3) & !3;
        }
        Step::Done
    }

    pub(super) fn ppi(&mut self) -> Step {
        let (Some(len), Some(dlt)) = (self.le16(2), self.be32(4).map(u32::swap_bytes)) else {
            return Step::Done;
        };
        let next = match dlt {
            LINKTYPE_IEEE802_11 => Step::Ieee80211(false),
            LINKTYPE_ETHERNET => Step::Ethernet,
            _ => return Step::Done,
        };
        // A header length below the 8 fixed bytes is taken as 8 (as tshark).
        self.fixed(Layer::Ppi, (len as usize).max(8), next)
    }
}

/// What follows a Linux cooked header, by ARPHRD type and protocol (as tshark's sll dissector).
pub(super) fn sll_payload(hatype: u16, proto: u16) -> Step {
    match hatype {
        ARPHRD_NETLINK => Step::Done,
        // The protocol is a GRE protocol type.
        ARPHRD_IPGRE => match proto {
            ETHERTYPE_TEB => Step::Ethernet,
            ETHERTYPE_IPV4 => Step::Ip,
            ETHERTYPE_IPV6 => Step::Ipv6,
            _ => Step::Done,
        },
        _ => match proto {
            LINUX_SLL_P_802_2 => Step::Llc,
            LINUX_SLL_P_PPPHDLC => Step::Ppp(true),
            0..=IEEE802_3_MAX_LEN => Step::Done,
            t => Step::EtherType(t),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

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
}
