//! What Zeek's connection fields need of a frame beyond the frame row: the IP packet's length (`orig_ip_bytes`
//! sums it) and whether the TCP header was captured whole (a segment without it counts nowhere).

use crate::decode::{Decoded, Layer};

/// The IP packet's total length as Zeek's `IP_Hdr::TotalLen` gives it (the IPv4 total length; the IPv6 payload
/// length plus its 40-byte header), read from the IP header directly above TCP; for an IPv4 total length of 0
/// (segmentation offload) the captured bytes from that header on. `None` when the frame is no TCP packet.
pub fn ip_len(frame: &[u8], d: &Decoded) -> Option<u32> {
    d.tcp?;
    let ip = d
        .layers()
        .iter()
        .rev()
        .find(|l| matches!(l.layer, Layer::Ipv4 | Layer::Ipv6))?;
    let off = ip.offset as usize;
    let be16 = |i: usize| {
        frame
            .get(off + i..off + i + 2)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    match ip.layer {
        Layer::Ipv4 => match be16(2)? {
            0 => Some(frame.len().saturating_sub(off) as u32),
            n => Some(n),
        },
        _ => Some(be16(4)? + 40),
    }
}

/// The TCP header's data offset claims more bytes than were captured, or than the IP packet holds: Zeek's
/// `TCPAnalyzer::ExtractTCP_Header` (`src/packet_analysis/protocol/tcp/TCP.cc`) drops such a segment ("truncated
/// header") before the connection sees it, so it moves no state, history, packet or byte count.
pub fn header_truncated(frame: &[u8], d: &Decoded) -> bool {
    let Some(t) = d.tcp else { return false };
    let end = t.offset as usize + usize::from(t.hdr_len);
    if end > frame.len() {
        return true;
    }
    // The IP packet's end, where its length field puts it.
    let ip = d
        .layers()
        .iter()
        .rev()
        .find(|l| matches!(l.layer, Layer::Ipv4 | Layer::Ipv6));
    match (ip, ip_len(frame, d)) {
        (Some(l), Some(n)) => end > l.offset as usize + n as usize,
        _ => false,
    }
}
