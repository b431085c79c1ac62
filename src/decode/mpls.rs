//! MPLS label stacks and what follows them (IP by its version nibble, or an Ethernet pseudowire).
use super::numbers::*;
use super::{Layer, Parser, Step};

impl Parser<'_> {
    pub(super) fn mpls(&mut self) -> Step {
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
        // The generic associated channel label carries a PW ACH, not IP.
        if !self.push(Layer::Mpls, len) || label == MPLS_LABEL_GAL {
            return Step::Done;
        }
        // The payload by its first nibble only (tshark treats the explicit-null labels no differently).
        match self.u8(0).map(|b| b >> 4) {
            Some(IP_VERSION_4) => Step::Ipv4,
            Some(IP_VERSION_6) => Step::Ipv6,
            // tshark's pw_eth_heuristic: a plain Ethernet pseudowire when both MACs have known vendors (which
            // needs its OUI table), else one with a control word. Approximated by the ethertype positions.
            Some(PW_FIRST_NIBBLE) => {
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
}

/// The EtherTypes that tell where an Ethernet pseudowire's type field is (IP, VLAN tags, MPLS).
fn is_ip_ethertype(t: u16) -> bool {
    matches!(
        t,
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 | ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_MPLS
    )
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

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
}
