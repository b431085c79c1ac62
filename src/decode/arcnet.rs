//! ARCNET as Linux captures it (LINKTYPE_ARCNET_LINUX), in both framings, as tshark's packet-arcnet.c reads them.
//!
//! The header is source, destination, a 2-byte offset (the hardware packet's, kept by Linux) and the protocol
//! ID. RFC 1051 framing stops there; RFC 1201 framing adds a split flag and a 2-byte sequence number. tshark
//! takes the framing from the protocol ID alone: RFC 1051's IP and ARP, ANSI 878.1 diagnose and BACnet have no
//! fragmentation fields, every other ID has them. Linux hands over reassembled packets and never an exception
//! frame, so a split flag of 0xFF is a split flag here (as tshark, which reads exception frames only for BSD's
//! LINKTYPE_ARCNET).
use super::numbers::*;
use super::{Layer, Parser, Step};

/// Source, destination, offset and protocol ID.
const RFC1051_LEN: usize = 5;
/// Those and the split flag and sequence number.
const RFC1201_LEN: usize = 8;

impl Parser<'_> {
    pub(super) fn arcnet_linux(&mut self) -> Step {
        let Some(pid) = self.u8(4) else {
            return Step::Done;
        };
        let len = match pid {
            ARCNET_PROTO_IP_1051
            | ARCNET_PROTO_ARP_1051
            | ARCNET_PROTO_DIAGNOSE
            | ARCNET_PROTO_BACNET => RFC1051_LEN,
            _ => RFC1201_LEN,
        };
        // tshark's arcnet.protocol_id table: both IP IDs go to its ip dissector (which also takes IPv6).
        let next = match pid {
            ARCNET_PROTO_IP_1051 | ARCNET_PROTO_IP_1201 => Step::Ip,
            ARCNET_PROTO_IPV6 => Step::Ipv6,
            ARCNET_PROTO_BACNET => Step::Llc,
            _ => Step::Done,
        };
        self.fixed(Layer::Arcnet, len, next)
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

    fn arc(pid: u8, frag: bool, body: &[u8]) -> Vec<u8> {
        let mut v = vec![1, 2, 0, 0, pid];
        if frag {
            v.extend_from_slice(&[0, 0, 0]);
        }
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn both_framings() {
        let f = arc(240, false, &ip4(6, &seg()));
        check4(129, &f, "ARCNET:IPv4:TCP");
        assert_eq!(decode(129, &f).layers()[0].len, 5);
        let f = arc(212, true, &ip4(6, &seg()));
        check4(129, &f, "ARCNET:IPv4:TCP");
        assert_eq!(decode(129, &f).layers()[0].len, 8);
        check6(129, &arc(196, true, &ip6(6, &seg())), "ARCNET:IPv6:TCP");
        // Either IP ID takes IPv6 too; the IPv6 ID has the RFC 1201 fields.
        check6(129, &arc(240, false, &ip6(6, &seg())), "ARCNET:IPv6:TCP");
        check6(129, &arc(212, true, &ip6(6, &seg())), "ARCNET:IPv6:TCP");
        no_tcp(129, &arc(196, false, &ip6(6, &seg())));
        // BACnet: LLC.
        let snap = [0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00];
        check4(
            129,
            &arc(205, false, &cat(&[&snap, &ip4(6, &seg())])),
            "ARCNET:LLC:IPv4:TCP",
        );
        // Encapsulated Ethernet, ARP, IPX: no TCP.
        no_tcp(129, &arc(232, true, &eth_ip4_tcp()));
        no_tcp(129, &arc(241, false, &ip4(6, &seg())));
        no_tcp(129, &arc(250, true, &ip4(6, &seg())));
        no_tcp(129, &[1, 2, 0, 0]);
    }
}
