//! Cisco HDLC and Frame Relay (RFC 2427 / Cisco encapsulation, as tshark's default FRF 3.2/Cisco HDLC).
use super::numbers::*;
use super::{Layer, Parser, Step};

impl Parser<'_> {
    pub(super) fn chdlc(&mut self) -> Step {
        match self.be16(2) {
            Some(t) if self.push(Layer::CiscoHdlc, 4) => chdlc_type(t),
            _ => Step::Done,
        }
    }

    /// Frame relay as tshark's default "FRF 3.2/Cisco HDLC" encapsulation: RFC 2427 (control, NLPID) when the
    /// control byte is UI or an NLPID it knows can be found, else Cisco HDLC by a known type, else raw Ethernet.
    pub(super) fn frame_relay(&mut self) -> Step {
        // Q.922 address, ended by the EA bit; a first byte with EA is a bogus 1-byte address (DLCI 0).
        let Some(a0) = self.u8(0) else {
            return Step::Done;
        };
        let (alen, dlci) = if a0 & 1 != 0 {
            (1, 0)
        } else {
            let Some(a1) = self.u8(1) else {
                return Step::Done;
            };
            let mut dlci = u32::from(a0 >> 2) << 4 | u32::from(a1 >> 4);
            let mut at = 2;
            if a1 & 1 == 0 {
                let Some(mut o) = self.u8(2) else {
                    return Step::Done;
                };
                if o & 1 == 0 {
                    dlci = dlci << 7 | u32::from(o >> 1);
                    at = 3;
                    // Bounded by the frame: every step reads one more byte.
                    loop {
                        match self.u8(at) {
                            Some(b) if b & 1 == 0 => at += 1,
                            Some(b) => {
                                o = b;
                                break;
                            }
                            None => return Step::Done,
                        }
                    }
                }
                if o & 0x02 == 0 {
                    dlci = dlci << 6 | u32::from(o >> 2);
                }
                at += 1;
            }
            (at, dlci)
        };
        let Some(ctrl) = self.u8(alen) else {
            return Step::Done;
        };
        let mut rfc2427 = ctrl == LLC_CONTROL_UI;
        if !rfc2427 {
            // DLCI 0 (LAPF signalling) and XID frames carry no IP.
            if dlci == 0 || ctrl == FR_CONTROL_XID {
                return Step::Done;
            }
            let Some(t) = self.be16(alen) else {
                return Step::Done;
            };
            let next = chdlc_type(t);
            if !matches!(next, Step::Done) {
                return self.fixed(Layer::FrameRelay, alen + 2, next);
            }
            // Guess the NLPID position the way tshark does (pad, then a 1- or 2-byte control field).
            let mut n = alen;
            let mut c = ctrl;
            if c == 0 {
                n += 1;
                let Some(b) = self.u8(n) else {
                    return Step::Done;
                };
                c = b;
            }
            n += if c & 0x03 == 0x03 { 1 } else { 2 };
            rfc2427 = self.u8(n).is_some_and(|nl| {
                matches!(
                    nl,
                    NLPID_NULL
                        | NLPID_Q933
                        | NLPID_SNAP
                        | NLPID_CLNP
                        | NLPID_ESIS
                        | NLPID_ISIS
                        | NLPID_IPV6
                        | NLPID_COMPRESSED
                        | NLPID_FRF12
                        | NLPID_IP
                        | NLPID_PPP
                )
            });
        }
        if !rfc2427 {
            // Raw Ethernet (with FCS) when the type/length field looks like one.
            return match self.be16(alen + 12) {
                Some(t)
                    if (t <= IEEE802_3_MAX_LEN || !matches!(self.ethertype(t), Step::Done))
                        && self.push(Layer::FrameRelay, alen) =>
                {
                    self.limit(self.f.len().saturating_sub(4));
                    Step::Ethernet
                }
                _ => Step::Done,
            };
        }
        // Control field (1 byte for U frames, 2 for I and S frames), optional pad, NLPID.
        let mut n = alen + if ctrl & 0x03 == 0x03 { 1 } else { 2 };
        if self.u8(n) == Some(0) {
            n += 1;
        }
        match self.u8(n) {
            Some(NLPID_IP) => self.fixed(Layer::FrameRelay, n + 1, Step::Ip),
            Some(NLPID_IPV6) => self.fixed(Layer::FrameRelay, n + 1, Step::Ipv6),
            // SNAP (only in UI frames): OUI + PID.
            Some(NLPID_SNAP) if ctrl == LLC_CONTROL_UI => {
                match (self.be32(n + 1), self.be16(n + 4)) {
                    (Some(oui), Some(pid)) if oui >> 8 == OUI_ENCAP_ETHER => {
                        self.fixed(Layer::FrameRelay, n + 6, Step::EtherType(pid))
                    }
                    _ => Step::Done,
                }
            }
            _ => Step::Done,
        }
    }
}

/// What a Cisco HDLC protocol type carries (tshark's chdlc table, for IP).
fn chdlc_type(t: u16) -> Step {
    match t {
        ETHERTYPE_IPV4 => Step::Ip,
        ETHERTYPE_IPV6 => Step::Ipv6,
        ETHERTYPE_TEB => Step::Ethernet,
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => Step::Mpls,
        _ => Step::Done,
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;

    #[test]
    fn frame_relay_encapsulations() {
        let ip = ip4(6, &seg());
        check4(107, &cat(&[&[0x18, 0x61, 0x03, 0xCC], &ip]), "FR:IPv4:TCP");
        // I frame (2-byte control) with a pad byte; SNAP in a UI frame; Cisco types; DLCI 0 is signalling.
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x04, 0x00, 0x00, 0xCC], &ip]),
            "FR:IPv4:TCP",
        );
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x03, 0x80, 0, 0, 0, 0x08, 0x00], &ip]),
            "FR:IPv4:TCP",
        );
        check4(107, &cat(&[&[0x18, 0x61, 0x08, 0x00], &ip]), "FR:IPv4:TCP");
        check6(
            107,
            &cat(&[&[0x18, 0x61, 0x86, 0xDD], &ip6(6, &seg())]),
            "FR:IPv6:TCP",
        );
        no_tcp(107, &cat(&[&[0x00, 0x01, 0x13, 0xCC], &ip]));
        no_tcp(
            107,
            &cat(&[&[0x18, 0x61, 0x81, 0x00, 0x00, 0x01, 0x08, 0x00], &ip]),
        );
        // 3-byte address.
        check4(
            107,
            &cat(&[&[0x18, 0x60, 0x01, 0x03, 0xCC], &ip]),
            "FR:IPv4:TCP",
        );
    }

    #[test]
    fn cisco_hdlc_frame_relay_and_llc() {
        check4(
            104,
            &cat(&[&[0x0F, 0x00, 0x08, 0x00], &ip4(6, &seg())]),
            "CHDLC:IPv4:TCP",
        );
        check6(
            104,
            &cat(&[&[0x8F, 0x00, 0x86, 0xDD], &ip6(6, &seg())]),
            "CHDLC:IPv6:TCP",
        );
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x08, 0x00], &ip4(6, &seg())]),
            "FR:IPv4:TCP",
        );
        check4(
            107,
            &cat(&[&[0x18, 0x61, 0x03, 0xCC], &ip4(6, &seg())]),
            "FR:IPv4:TCP",
        );
        // 802.3 length field, LLC/SNAP with an ethertype.
        let body = cat(&[&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00], &ip4(6, &seg())]);
        check4(1, &eth(body.len() as u16, &body), "Ethernet:LLC:IPv4:TCP");
        no_tcp(
            1,
            &eth(body.len() as u16, &cat(&[&[0x42, 0x42, 0x03], &body[3..]])),
        );
    }
}
