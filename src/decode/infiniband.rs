//! IP over InfiniBand (LINKTYPE_IPOIB), as tshark 4.0's packet-ipoib.c reads it.
//!
//! RFC 4391 puts a 4-byte header (an EtherType and 2 reserved bytes) before the packet, and that is what
//! tcpdump.org's description of the link type says. tshark reads a 40-byte pseudo header before it (the Global
//! Route Header, or the destination queue pair and GID when its first 16 bits are 0, as Linux supplies them), so
//! the packet starts 44 bytes in; tshark is the reference. Only IPv4 (its ip dissector, which also takes IPv6)
//! and IPv6 are carried on; ARP and the rest are not.
use super::numbers::*;
use super::{Layer, Parser, Step};

/// The pseudo header (40 bytes) and the RFC 4391 header (type, reserved).
const IPOIB_LEN: usize = 44;

impl Parser<'_> {
    pub(super) fn ipoib(&mut self) -> Step {
        let Some(t) = self.be16(IPOIB_LEN - 4) else {
            return Step::Done;
        };
        let next = match t {
            ETHERTYPE_IPV4 => Step::Ip,
            ETHERTYPE_IPV6 => Step::Ipv6,
            _ => Step::Done,
        };
        self.fixed(Layer::Ipoib, IPOIB_LEN, next)
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

    fn ib(t: u16, body: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 40];
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn ipoib() {
        let f = ib(0x0800, &ip4(6, &seg()));
        check4(242, &f, "IPoIB:IPv4:TCP");
        assert_eq!(decode(242, &f).layers()[0].len, 44);
        check6(242, &ib(0x86DD, &ip6(6, &seg())), "IPoIB:IPv6:TCP");
        check6(242, &ib(0x0800, &ip6(6, &seg())), "IPoIB:IPv6:TCP");
        no_tcp(242, &ib(0x0806, &ip4(6, &seg())));
        // The bare RFC 4391 header is not what tshark reads.
        no_tcp(242, &cat(&[&[0x08, 0, 0, 0], &ip4(6, &seg())]));
    }
}
