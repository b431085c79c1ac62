//! Tallies the IP addresses of a capture, every protocol, for the `endpoint_protocols` table: flows are TCP only,
//! and "which captures hold host X" must also find a host that sent only UDP or ICMP.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::label::addr_text;
use crate::decode::Decoded;

/// Addresses and protocols held before the tally is handed on (the writer adds it to what is stored): a spoofed
/// scan may have millions of sources, and this keeps the tally to about 20 MiB.
const MAX_HELD: usize = 1 << 18;

/// One address under one IP protocol in one capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    /// Standard text form, as `flows.src`.
    pub address: String,
    /// IP protocol number.
    pub protocol: u8,
    /// Frames with the address in an IP header carrying the protocol.
    pub frames: u64,
    /// Their original lengths.
    pub bytes: u64,
}

/// The running tally of one capture.
#[derive(Default)]
pub struct Endpoints {
    held: FxHashMap<(IpAddr, u8), (u64, u64)>,
}

impl Endpoints {
    /// Counts one decoded frame: each IP header it holds, for its source and for its destination (a frame from
    /// an address to itself counts twice for it, as in tshark's endpoint statistics).
    #[inline]
    pub fn observe(&mut self, frame: &[u8], decoded: &Decoded, origlen: u32) {
        for h in decoded.ip_headers(frame) {
            for a in [h.src, h.dst] {
                let t = self.held.entry((a, h.proto)).or_default();
                t.0 += 1;
                t.1 += u64::from(origlen);
            }
        }
    }

    /// True when the tally should be handed on now.
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD
    }

    /// The tally so far, sorted by address and protocol, and a fresh start.
    pub fn take(&mut self) -> Vec<EndpointRow> {
        let mut rows: Vec<EndpointRow> = self
            .held
            .drain()
            .map(|((a, protocol), (frames, bytes))| EndpointRow {
                address: addr_text(&a),
                protocol,
                frames,
                bytes,
            })
            .collect();
        rows.sort_unstable_by(|a, b| (&a.address, a.protocol).cmp(&(&b.address, b.protocol)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode;

    fn frame(src: [u8; 4], dst: [u8; 4], proto: u8) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&[0; 8]);
        f
    }

    #[test]
    fn counts_both_ends_per_protocol_and_survives_a_hand_on() {
        let mut e = Endpoints::default();
        let a = frame([10, 0, 0, 1], [10, 0, 0, 2], 17);
        let b = frame([10, 0, 0, 2], [10, 0, 0, 1], 1);
        e.observe(&a, &decode(1, &a), 100);
        e.observe(&a, &decode(1, &a), 60);
        let first = e.take();
        e.observe(&b, &decode(1, &b), 42);
        let second = e.take();
        let row = |address: &str, protocol, frames, bytes| EndpointRow {
            address: address.into(),
            protocol,
            frames,
            bytes,
        };
        assert_eq!(
            first,
            [row("10.0.0.1", 17, 2, 160), row("10.0.0.2", 17, 2, 160)]
        );
        assert_eq!(
            second,
            [row("10.0.0.1", 1, 1, 42), row("10.0.0.2", 1, 1, 42)]
        );
        assert!(e.take().is_empty());
    }
}
