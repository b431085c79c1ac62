//! Ethernet II, 802.3 with LLC/SNAP, 802.1Q/802.1ad VLAN tags, Cisco VN-Tag and FabricPath, FDDI, and the
//! EtherType dispatch shared by every layer that names its payload by EtherType.
use super::numbers::*;
use super::{Layer, Parser, Step};

/// The Ethernet frame check sequence.
const FCS_LEN: usize = 4;

impl Parser<'_> {
    pub(super) fn ethernet(&mut self) -> Step {
        match self.be16(12) {
            Some(t) if self.push(Layer::Ethernet, 14) => match t {
                0..=IEEE802_3_MAX_LEN => {
                    self.limit(self.off + t as usize);
                    Step::Llc
                }
                ETHERTYPE_MIN.. => Step::EtherType(t),
                _ => Step::Done,
            },
            _ => Step::Done,
        }
    }

    pub(super) fn llc(&mut self) -> Step {
        match (self.u8(0), self.u8(1), self.u8(2)) {
            (Some(LLC_SAP_SNAP), Some(LLC_SAP_SNAP), Some(LLC_CONTROL_UI)) => {
                match (self.be32(3), self.be16(6)) {
                    (Some(oui), Some(pid))
                        if matches!(oui >> 8, OUI_ENCAP_ETHER | OUI_CISCO_90) =>
                    {
                        self.fixed(Layer::Llc, 8, Step::EtherType(pid))
                    }
                    _ => Step::Done,
                }
            }
            // DSAP 6 (IP), whatever the SSAP, in a UI frame or an I frame (2-byte control).
            (Some(LLC_SAP_IP), Some(_), Some(LLC_CONTROL_UI)) => {
                self.fixed(Layer::Llc, 3, Step::Ip)
            }
            (Some(LLC_SAP_IP), Some(_), Some(c)) if c & 1 == 0 => {
                self.fixed(Layer::Llc, 4, Step::Ip)
            }
            _ => Step::Done,
        }
    }

    pub(super) fn ethertype(&mut self, t: u16) -> Step {
        match t {
            ETHERTYPE_IPV4 => Step::Ip,
            ETHERTYPE_IPV6 => Step::Ipv6,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => Step::Vlan,
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => Step::Mpls,
            ETHERTYPE_PPPOE_SESSION => Step::Pppoe,
            ETHERTYPE_TEB => Step::Ethernet,
            ETHERTYPE_PBB => Step::Pbb,
            ETHERTYPE_NSH => Step::Nsh,
            ETHERTYPE_VNTAG => Step::VnTag,
            ETHERTYPE_CMD => Step::Cmd,
            // tshark finds FabricPath with a heuristic of its Ethernet dissector: the EtherType of the Ethernet
            // header itself, or the one after a single 802.1Q tag. It is not an EtherType anywhere else.
            ETHERTYPE_FABRICPATH if self.fabricpath_here() => Step::FabricPath,
            _ => Step::Done,
        }
    }

    /// The EtherType being dispatched is the outer Ethernet header's, or the one after its single 802.1Q tag.
    fn fabricpath_here(&self) -> bool {
        let l = &self.d.layers[..self.d.n as usize];
        match l {
            [.., last] if last.layer == Layer::Ethernet => true,
            [.., eth, vlan] if vlan.layer == Layer::Vlan && eth.layer == Layer::Ethernet => {
                let at = eth.offset as usize + 12;
                self.f.get(at..at + 2) == Some(&ETHERTYPE_VLAN.to_be_bytes()[..])
            }
            _ => false,
        }
    }

    /// Cisco FabricPath: the 16-bit FTag/TTL after the FabricPath EtherType, then the inner Ethernet frame, which
    /// tshark reads as ending with a 4-byte FCS.
    pub(super) fn fabricpath(&mut self) -> Step {
        if !self.push(Layer::FabricPath, 2) {
            return Step::Done;
        }
        self.limit(self.f.len().saturating_sub(FCS_LEN));
        Step::Ethernet
    }

    /// Cisco VN-Tag: 4 bytes of tag, then the next EtherType (or an 802.3 length), as a VLAN tag.
    pub(super) fn vntag(&mut self) -> Step {
        match self.be16(4) {
            Some(t) if self.push(Layer::VnTag, 6) => {
                if t <= IEEE802_3_MAX_LEN {
                    Step::Llc
                } else {
                    Step::EtherType(t)
                }
            }
            _ => Step::Done,
        }
    }

    /// Cisco MetaData (tshark's "cmd"): 6 bytes (version, length, option, SGT), then the next EtherType.
    pub(super) fn cmd(&mut self) -> Step {
        match self.be16(6) {
            Some(t) if self.push(Layer::Cmd, 8) => Step::EtherType(t),
            _ => Step::Done,
        }
    }

    /// FDDI (LINKTYPE_FDDI): frame control, destination, source; an asynchronous LLC frame (any priority) carries
    /// 802.2 LLC, every other frame control (synchronous LLC, SMT, MAC, implementer frames) nothing tshark reads.
    pub(super) fn fddi(&mut self) -> Step {
        match self.u8(0) {
            Some(fc) if self.push(Layer::Fddi, 13) && fc & 0xF0 == FDDI_FC_LLC_ASYNC => Step::Llc,
            _ => Step::Done,
        }
    }

    pub(super) fn vlan(&mut self) -> Step {
        match self.be16(2) {
            Some(t) if self.push(Layer::Vlan, 4) => {
                if t <= IEEE802_3_MAX_LEN {
                    Step::Llc
                } else {
                    Step::EtherType(t)
                }
            }
            _ => Step::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

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
}
