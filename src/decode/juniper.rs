//! Juniper's Ethernet capture encapsulation (LINKTYPE_JUNIPER_ETHER), as tshark's packet-juniper.c reads it.
//!
//! The header is the magic "MGC", a flags byte, and, when the extensions flag is set, a 2-byte total length of
//! extension TLVs (interface index, name, media type, ...) that are skipped whole. Then the Ethernet frame,
//! unless the "no L2" flag says the link header was stripped: a 4-byte payload type (little-endian) and the
//! packet of that type follow. Without the magic (old JUNOS releases leave it out) tshark reads the whole frame
//! as Ethernet, and so does this.
use super::numbers::*;
use super::{Layer, Parser, Step};

/// Flags: the link-layer header was stripped; a payload type word follows the header.
const JUNIPER_FLAG_NO_L2: u8 = 0x02;
/// Flags: extension TLVs follow, after their 2-byte total length.
const JUNIPER_FLAG_EXT: u8 = 0x80;

impl Parser<'_> {
    pub(super) fn juniper_ether(&mut self) -> Step {
        // tshark reads the flags before it checks the magic: a frame under 4 bytes is nothing.
        let (Some(magic), Some(flags)) = (self.be32(0).map(|v| v >> 8), self.u8(3)) else {
            return Step::Done;
        };
        if magic != JUNIPER_MAGIC {
            return self.fixed(Layer::Juniper, 0, Step::Ethernet);
        }
        let mut len = 4;
        if flags & JUNIPER_FLAG_EXT != 0 {
            let Some(ext) = self.be16(4) else {
                return Step::Done;
            };
            len = 6 + ext as usize;
        }
        if flags & JUNIPER_FLAG_NO_L2 == 0 {
            return self.fixed(Layer::Juniper, len, Step::Ethernet);
        }
        let Some(proto) = self.be32(len).map(u32::swap_bytes) else {
            return Step::Done;
        };
        len += 4;
        // tshark's juniper.proto table, as the ip, ipv6, mpls, ppp, llc, osi, chdlc and fr dissectors fill it.
        let next = match proto {
            JUNIPER_PROTO_IP | JUNIPER_PROTO_MPLS_IP => Step::Ip,
            JUNIPER_PROTO_IP6 | JUNIPER_PROTO_MPLS_IP6 => Step::Ipv6,
            JUNIPER_PROTO_MPLS | JUNIPER_PROTO_IP_MPLS | JUNIPER_PROTO_IP6_MPLS => Step::Mpls,
            JUNIPER_PROTO_ETHER => Step::Ethernet,
            JUNIPER_PROTO_PPP => Step::Ppp(false),
            JUNIPER_PROTO_LLC | JUNIPER_PROTO_LLC_SNAP => Step::Llc,
            JUNIPER_PROTO_ISO => match self.u8(len) {
                // The OSI dissector hands the bytes after the NLPID to IP.
                Some(NLPID_IP) => return self.fixed(Layer::Juniper, len + 1, Step::Ip),
                Some(NLPID_IPV6) => return self.fixed(Layer::Juniper, len + 1, Step::Ipv6),
                _ => Step::Done,
            },
            JUNIPER_PROTO_CHDLC | JUNIPER_PROTO_FRELAY => {
                if !self.push(Layer::Juniper, len) {
                    return Step::Done;
                }
                return if proto == JUNIPER_PROTO_CHDLC {
                    self.chdlc()
                } else {
                    self.frame_relay()
                };
            }
            _ => Step::Done,
        };
        self.fixed(Layer::Juniper, len, next)
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

    fn no_l2(proto: u32, body: &[u8]) -> Vec<u8> {
        cat(&[b"MGC\x02", &proto.to_le_bytes(), body])
    }

    #[test]
    fn juniper_ether() {
        check4(
            178,
            &cat(&[b"MGC\x01", &eth_ip4_tcp()]),
            "Juniper:Ethernet:IPv4:TCP",
        );
        // Extension TLVs are skipped by their total length, whatever they hold.
        let tlvs = [1, 4, 7, 0, 0, 0, 3, 1, 1, 6, 1, 14];
        let f = cat(&[b"MGC\x80", &[0, 12], &tlvs, &eth_ip4_tcp()]);
        check4(178, &f, "Juniper:Ethernet:IPv4:TCP");
        assert_eq!(decode(178, &f).layers()[0].len, 18);
        let f = cat(&[b"MGC\x80", &[0, 3], &[1, 5, 0], &eth_ip4_tcp()]);
        check4(178, &f, "Juniper:Ethernet:IPv4:TCP");
        no_tcp(178, &cat(&[b"MGC\x80", &[0, 200], &eth_ip4_tcp()]));
        // No magic: all of it is Ethernet.
        check4(178, &eth_ip4_tcp(), "Juniper:Ethernet:IPv4:TCP");
        no_tcp(178, b"MG");
        // No L2 header: the payload type decides.
        check4(178, &no_l2(2, &ip4(6, &seg())), "Juniper:IPv4:TCP");
        check6(178, &no_l2(6, &ip6(6, &seg())), "Juniper:IPv6:TCP");
        check4(178, &no_l2(3, &ip4(6, &seg())), "Juniper:IPv4:TCP");
        check4(
            178,
            &no_l2(5, &cat(&[&[0, 1, 1, 0xFF], &ip4(6, &seg())])),
            "Juniper:MPLS:IPv4:TCP",
        );
        check4(
            178,
            &no_l2(204, &eth_ip4_tcp()),
            "Juniper:Ethernet:IPv4:TCP",
        );
        check4(
            178,
            &no_l2(201, &cat(&[&[0xCC], &ip4(6, &seg())])),
            "Juniper:IPv4:TCP",
        );
        check4(
            178,
            &no_l2(208, &cat(&[&[0x0F, 0, 8, 0], &ip4(6, &seg())])),
            "Juniper:CHDLC:IPv4:TCP",
        );
        // PPP without address and control; 0xA248 is not a type tshark 4.0 knows.
        no_tcp(
            178,
            &no_l2(200, &cat(&[&[0xFF, 3, 0, 0x21], &ip4(6, &seg())])),
        );
        check4(
            178,
            &no_l2(200, &cat(&[&[0, 0x21], &ip4(6, &seg())])),
            "Juniper:PPP:IPv4:TCP",
        );
        no_tcp(178, &no_l2(0xA248, &cat(&[&[0; 4], &ip4(6, &seg())])));
    }
}
