//! The TCP header: the last layer, and the fields of [`Tcp`].
use super::numbers::*;
use super::{Layer, Parser, Tcp};

/// TraceFlow's rule: a TCP header counts when its bytes up to the flags (14) are captured.
const TCP_MIN_CAPTURED: usize = 14;
/// The smallest valid TCP header (data offset 5).
const TCP_MIN_HDR_LEN: u8 = 20;
/// All nine flag bits, NS to FIN.
const TCP_FLAGS_MASK: u16 =
    TCP_NS | TCP_CWR | TCP_ECE | TCP_URG | TCP_ACK | TCP_PSH | TCP_RST | TCP_SYN | TCP_FIN;

impl Parser<'_> {
    pub(super) fn tcp(&mut self) {
        let off = self.off;
        let Some(h) = self.f.get(off..) else { return };
        if h.len() < TCP_MIN_CAPTURED {
            return;
        }
        let hdr_len = (h[12] >> 4) * 4;
        let span = (hdr_len.max(TCP_MIN_HDR_LEN) as usize).min(h.len());
        if !self.push(Layer::Tcp, span) {
            return;
        }
        // tshark's tcp.len: the reported length (from the IP lengths) less the header; the captured bytes when no
        // length field bounded the packet (IPv4 total length 0, IPv6 jumbogram).
        let end = if self.rep == usize::MAX {
            self.f.len()
        } else {
            self.rep
        };
        let payload_len = end
            .saturating_sub(off)
            .saturating_sub(hdr_len as usize)
            .min(u32::MAX as usize);
        // A data offset under 5 is a malformed header: the frame is kept (with its TCP layer, for dumps) but is
        // not a TCP packet of any flow. tshark would still show its ports; our issue's contract is "no flow".
        if hdr_len < TCP_MIN_HDR_LEN {
            return;
        }
        let flags = u16::from_be_bytes([h[12], h[13]]) & TCP_FLAGS_MASK;
        self.d.tcp = Some(Tcp {
            src: self.src,
            dst: self.dst,
            sport: u16::from_be_bytes([h[0], h[1]]),
            dport: u16::from_be_bytes([h[2], h[3]]),
            seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            flags,
            hdr_len,
            window: h.get(14..16).map(|w| u16::from_be_bytes([w[0], w[1]])),
            payload_len: payload_len as u32,
            offset: off as u32,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

    #[test]
    fn flags_and_options() {
        let f = eth(0x0800, &ip4(6, &tcp_seg(1234, 80, 0x1C7, 3, b"")));
        let t = decode(1, &f).tcp.unwrap();
        assert_eq!((t.flags, t.hdr_len, t.payload_len), (0x1C7, 32, 0));
        assert!(t.fin() && t.syn() && t.rst());
    }

    #[test]
    fn truncated_tcp_header() {
        let full = eth_ip4_tcp();
        no_tcp(1, &full[..34 + 13]);
        let t = decode(1, &full[..34 + 14])
            .tcp
            .expect("14 bytes are enough");
        assert_eq!(
            (t.sport, t.dport, t.flags, t.window, t.payload_len),
            (1234, 80, 0x018, None, 5)
        );
        let t = decode(1, &full[..34 + 16]).tcp.unwrap();
        assert_eq!(t.window, Some(512));
        assert_eq!(decode(1, &full[..34 + 16]).layers()[2].len, 16);
    }

    #[test]
    fn bogus_tcp_data_offset_is_no_flow() {
        let mut s = seg();
        s[12] = 0x40 | (s[12] & 0x0F);
        let d = decode(1, &eth(0x0800, &ip4(6, &s)));
        assert!(d.tcp.is_none(), "a data offset under 5 belongs to no flow");
        assert_eq!(d.layers().last().map(|l| l.layer), Some(Layer::Tcp));
    }
}
