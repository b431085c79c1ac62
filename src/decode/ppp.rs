//! PPP (with or without HDLC-like framing) and PPPoE sessions.
use super::numbers::*;
use super::{Layer, Parser, Step};

impl Parser<'_> {
    pub(super) fn pppoe(&mut self) -> Step {
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

    pub(super) fn ppp(&mut self, hdlc: bool) -> Step {
        let mut len = 0;
        // HDLC-like framing: an FF address byte is followed by a control byte (tshark checks no more).
        if hdlc && self.u8(0) == Some(PPP_ADDRESS) {
            len = 2;
        }
        let Some(b) = self.u8(len) else {
            return Step::Done;
        };
        let proto = if b & 1 != 0 {
            len += 1;
            u16::from(b)
        } else {
            let Some(p) = self.be16(len) else {
                return Step::Done;
            };
            len += 2;
            p
        };
        let next = match proto {
            PPP_IP => Step::Ip,
            PPP_IPV6 => Step::Ipv6,
            PPP_MPLS_UNICAST | PPP_MPLS_MULTICAST => Step::Mpls,
            _ => return Step::Done,
        };
        self.fixed(Layer::Ppp, len, next)
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;

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
}
