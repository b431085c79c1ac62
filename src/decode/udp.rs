//! UDP (and UDP-Lite), and the tunnels found by UDP port: VXLAN, VXLAN-GPE, Geneve, GTP-U, GRE over UDP, AYIYA
//! and Teredo.
use super::numbers::*;
use super::{Layer, Parser, Step};

impl Parser<'_> {
    pub(super) fn udp(&mut self, lite: bool) -> Step {
        let (Some(sport), Some(dport), Some(len)) = (self.be16(0), self.be16(2), self.be16(4))
        else {
            return Step::Done;
        };
        let under_ipv6 = self.d.n > 0
            && matches!(
                self.d.layers[self.d.n as usize - 1].layer,
                Layer::Ipv6 | Layer::Ipv6Ext
            );
        if !self.push(Layer::Udp, 8) {
            return Step::Done;
        }
        // A length below 8 is bogus (tshark dissects no payload); 0 is a jumbogram's under IPv6.
        let len = len as usize;
        if lite {
            // Checksum coverage, not a length.
        } else if len != 0 {
            if len < 8 {
                return Step::Done;
            }
            self.limit(self.off - 8 + len);
        } else if !under_ipv6 {
            return Step::Done;
        }
        // tshark tries the lower port first.
        let (lo, hi) = if sport <= dport {
            (sport, dport)
        } else {
            (dport, sport)
        };
        match udp_port(lo) {
            Step::Done => udp_port(hi),
            s => s,
        }
    }

    pub(super) fn vxlan_gpe(&mut self) -> Step {
        let next = match self.u8(3) {
            Some(VXLAN_GPE_NP_IPV4) => Step::Ip,
            Some(VXLAN_GPE_NP_IPV6) => Step::Ipv6,
            Some(VXLAN_GPE_NP_ETHERNET) => Step::Ethernet,
            Some(VXLAN_GPE_NP_NSH) => Step::Nsh,
            Some(VXLAN_GPE_NP_MPLS) => Step::Mpls,
            _ => return Step::Done,
        };
        self.fixed(Layer::VxlanGpe, 8, next)
    }

    pub(super) fn geneve(&mut self) -> Step {
        let (Some(b0), Some(proto)) = (self.u8(0), self.be16(2)) else {
            return Step::Done;
        };
        // tshark does not check the version (top 2 bits).
        let len = 8 + (b0 & 0x3F) as usize * 4;
        if !self.push(Layer::Geneve, len) {
            return Step::Done;
        }
        match proto {
            ETHERTYPE_TEB => Step::Ethernet,
            t => self.ethertype(t),
        }
    }

    pub(super) fn gtpu(&mut self) -> Step {
        // GTPv1 (version 1, PT 1), T-PDU only.
        let (Some(fl), Some(GTP_MSG_TPDU), Some(plen)) = (self.u8(0), self.u8(1), self.be16(2))
        else {
            return Step::Done;
        };
        if fl >> 5 != GTP_VERSION_1 || fl & 0x10 == 0 {
            return Step::Done;
        }
        let mut len = 8;
        if fl & 0x07 != 0 {
            len = 12;
            if fl & 0x04 != 0 {
                // Extension header chain: each is a length in 4-byte units (>= 1), its next type in its last byte.
                let mut next = self.u8(11);
                loop {
                    match next {
                        Some(GTP_EXT_NONE) => break,
                        Some(_) => {}
                        None => return Step::Done,
                    }
                    match self.u8(len) {
                        Some(l) if l > 0 => {
                            len += l as usize * 4;
                            next = self.u8(len - 1);
                        }
                        _ => return Step::Done,
                    }
                }
            }
        }
        if !self.push(Layer::GtpU, len) {
            return Step::Done;
        }
        // The length field counts the bytes after the 8-byte mandatory header.
        self.limit(self.off - len + 8 + plen as usize);
        Step::Ip
    }

    /// AYIYA: 8 bytes (identity length as a power of two, signature length in 4-byte words, opcode, next header,
    /// epoch), the identity and the signature; a forwarded packet of the next-header protocol follows (under
    /// the outer IP's addresses when that is TCP itself, as tshark).
    pub(super) fn ayiya(&mut self) -> Step {
        let (Some(b0), Some(b1), Some(b2), Some(nh)) =
            (self.u8(0), self.u8(1), self.u8(2), self.u8(3))
        else {
            return Step::Done;
        };
        let id_len = 1usize << (b0 >> 4);
        let sig_len = (b1 >> 4) as usize * 4;
        if !self.push(Layer::Ayiya, 8 + id_len + sig_len) || b2 & 0x0F != AYIYA_OP_FORWARD {
            return Step::Done;
        }
        Step::Next(nh)
    }

    /// Teredo (RFC 4380), as tshark's packet-teredo.c and Zeek's Teredo analyzer read it: an optional
    /// authentication header (type 1; client identifier length, authentication value length, the two, an
    /// 8-byte nonce and a confirmation byte), then an optional origin indication (type 0, 8 bytes), in that
    /// order and each at most once; then IPv6, found by its version nibble (anything else is not decoded).
    pub(super) fn teredo(&mut self) -> Step {
        let mut len = 0;
        if self.be16(0) == Some(TEREDO_AUTH) {
            let (Some(id_len), Some(au_len)) = (self.u8(2), self.u8(3)) else {
                return Step::Done;
            };
            len = 4 + id_len as usize + au_len as usize + 8 + 1;
        }
        if self.be16(len) == Some(TEREDO_ORIGIN) {
            len += 8;
        }
        match self.u8(len) {
            Some(b) if b >> 4 == IP_VERSION_6 => self.fixed(Layer::Teredo, len, Step::Ipv6),
            _ => Step::Done,
        }
    }
}

/// The tunnel a UDP port is the well-known port of.
fn udp_port(port: u16) -> Step {
    match port {
        PORT_VXLAN => Step::Vxlan,
        PORT_VXLAN_GPE => Step::VxlanGpe,
        PORT_GENEVE => Step::Geneve,
        PORT_GTP_U => Step::GtpU,
        PORT_GRE_UDP => Step::Gre,
        PORT_AYIYA => Step::Ayiya,
        PORT_TEREDO => Step::Teredo,
        _ => Step::Done,
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

    #[test]
    fn udp_tunnels() {
        let vx = udp(
            50000,
            4789,
            &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth_ip4_tcp()]),
        );
        check4(
            1,
            &eth(0x0800, &ip4(17, &vx)),
            "Ethernet:IPv4:UDP:VXLAN:Ethernet:IPv4:TCP",
        );
        let gn = udp(
            50000,
            6081,
            &cat(&[&[0x02, 0, 0x65, 0x58, 0, 0, 1, 0], &[0; 8], &eth_ip4_tcp()]),
        );
        let f = eth(0x0800, &ip4(17, &gn));
        check4(1, &f, "Ethernet:IPv4:UDP:Geneve:Ethernet:IPv4:TCP");
        assert_eq!(decode(1, &f).layers()[3].len, 16);
        let gn = udp(
            6081,
            50000,
            &cat(&[&[0, 0, 0x08, 0x00, 0, 0, 1, 0], &ip4(6, &seg())]),
        );
        check4(
            1,
            &eth(0x0800, &ip4(17, &gn)),
            "Ethernet:IPv4:UDP:Geneve:IPv4:TCP",
        );
        // GTP-U with sequence number and a PDU session container extension header.
        let gtp = gtpu(
            0x36,
            0xFF,
            &cat(&[&[0, 1, 0, 0x85], &[1, 0x10, 0x09, 0x00]]),
            &ip6(6, &seg()),
        );
        let f = eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp)));
        check6(1, &f, "Ethernet:IPv4:UDP:GTP-U:IPv6:TCP");
        assert_eq!(decode(1, &f).layers()[3].len, 16);
        let gtp = gtpu(0x30, 0xFF, &[], &ip4(6, &seg()));
        check4(
            1,
            &eth(0x0800, &ip4(17, &udp(40000, 2152, &gtp))),
            "Ethernet:IPv4:UDP:GTP-U:IPv4:TCP",
        );
        // Signalling (echo request), an extension header of length 0, or a GTP length of 0: no TCP.
        let gtp = gtpu(0x30, 0x01, &[], &ip4(6, &seg()));
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp))));
        let gtp = gtpu(
            0x34,
            0xFF,
            &cat(&[&[0, 0, 0, 0x85], &[0, 0, 0, 0]]),
            &ip4(6, &seg()),
        );
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp))));
        let mut gtp = gtpu(0x30, 0xFF, &[], &ip4(6, &seg()));
        gtp[2..4].copy_from_slice(&[0, 0]);
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(2152, 2152, &gtp))));
        // A UDP length below 8: no payload.
        let mut vx = udp(
            50000,
            4789,
            &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &eth_ip4_tcp()]),
        );
        vx[4..6].copy_from_slice(&4u16.to_be_bytes());
        no_tcp(1, &eth(0x0800, &ip4(17, &vx)));
        // Plain UDP, and sFlow (never entered).
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(5000, 53, &ip4(6, &seg())))));
        no_tcp(1, &eth(0x0800, &ip4(17, &udp(5000, 6343, &ip4(6, &seg())))));
    }

    #[test]
    fn teredo() {
        let p6 = ip6(6, &seg());
        let orig = [0, 0, 0xF0, 0x5F, 0x3F, 0xFF, 0xFD, 0xFE];
        let auth = |id: usize, au: usize| {
            let mut v = vec![0, 1, id as u8, au as u8];
            v.extend(std::iter::repeat_n(b'i', id));
            v.extend(std::iter::repeat_n(b'a', au));
            v.extend_from_slice(&[b'n'; 8]);
            v.push(0);
            v
        };
        let t = |sp: u16, dp: u16, body: &[u8]| eth(0x0800, &ip4(17, &udp(sp, dp, body)));
        let l = "Ethernet:IPv4:UDP:Teredo:IPv6:TCP";
        check6(1, &t(40000, 3544, &p6), l);
        check6(1, &t(3544, 40000, &p6), l);
        let f = t(40000, 3544, &cat(&[&orig, &p6]));
        check6(1, &f, l);
        assert_eq!(decode(1, &f).layers()[3].len, 8);
        check6(1, &t(40000, 3544, &cat(&[&auth(0, 0), &p6])), l);
        let f = t(40000, 3544, &cat(&[&auth(3, 5), &orig, &p6]));
        check6(1, &f, l);
        assert_eq!(decode(1, &f).layers()[3].len, 21 + 8);
        // The origin indication comes after the authentication header, each once; IPv4 is not carried.
        no_tcp(1, &t(40000, 3544, &cat(&[&orig, &auth(0, 0), &p6])));
        no_tcp(1, &t(40000, 3544, &cat(&[&auth(0, 0), &auth(0, 0), &p6])));
        no_tcp(1, &t(40000, 3544, &ip4(6, &seg())));
        no_tcp(1, &t(40000, 3544, &cat(&[&[0, 2], &p6])));
        no_tcp(1, &t(40000, 3544, &orig[..6]));
    }
}
