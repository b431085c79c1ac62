//! Tallies the IP addresses of a capture, every protocol, for the `endpoint_protocols` table: flows are TCP only,
//! and "which captures hold host X" must also find a host that sent only UDP or ICMP.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::decode::Decoded;
use crate::key::label::addr_text;

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

/// The running tally of one capture. IPv4 is keyed by one integer (address and protocol), IPv6 by the address's
/// bits and the protocol: integer keys hash in one step, and the IPv4 table's entries (24 bytes) stay small in
/// cache, which decides the cost when a capture has hundreds of thousands of addresses.
#[derive(Default)]
pub struct Endpoints {
    v4: FxHashMap<u64, (u64, u64)>,
    v6: FxHashMap<(u128, u8), (u64, u64)>,
}

impl Endpoints {
    /// Counts one decoded frame: each IP header it holds, for its source and for its destination (a frame from
    /// an address to itself counts twice for it, as in tshark's endpoint statistics). The IP header that
    /// carries a TCP segment is left out: its flow counts it, once per flow instead of once per frame
    /// ([`Endpoints::observe_flow_addrs`]), which was most of this tally's cost.
    #[inline]
    pub fn observe(&mut self, frame: &[u8], decoded: &Decoded, origlen: u32) {
        let mut headers = decoded.ip_headers(frame).peekable();
        while let Some(h) = headers.next() {
            if decoded.tcp.is_some() && headers.peek().is_none() {
                break;
            }
            self.count(&h.src, &h.dst, h.proto, 1, u64::from(origlen));
        }
    }

    /// Counts TCP frames of one flow, from its key's addresses: each frame once, when its flow's row is stored
    /// (when it closes, is parked, or is still open at the end; the ingest counts what an earlier row did not).
    pub fn observe_flow_addrs(&mut self, src: &IpAddr, dst: &IpAddr, packets: u64, bytes: u64) {
        self.count(src, dst, 6, packets, bytes);
    }

    #[inline]
    fn count(&mut self, src: &IpAddr, dst: &IpAddr, protocol: u8, frames: u64, bytes: u64) {
        for a in [src, dst] {
            let t = match a {
                IpAddr::V4(v4) => self
                    .v4
                    .entry(u64::from(u32::from(*v4)) << 8 | u64::from(protocol))
                    .or_default(),
                IpAddr::V6(v6) => self.v6.entry((u128::from(*v6), protocol)).or_default(),
            };
            t.0 += frames;
            t.1 += bytes;
        }
    }

    /// True when the tally should be handed on now.
    pub fn is_full(&self) -> bool {
        self.v4.len() + self.v6.len() >= MAX_HELD
    }

    /// The tally so far, sorted by address and protocol, and a fresh start.
    pub fn take(&mut self) -> Vec<EndpointRow> {
        let v4 = self.v4.drain().map(|(k, t)| {
            (
                IpAddr::V4(std::net::Ipv4Addr::from((k >> 8) as u32)),
                k as u8,
                t,
            )
        });
        let v6 = self
            .v6
            .drain()
            .map(|((a, p), t)| (IpAddr::V6(std::net::Ipv6Addr::from(a)), p, t));
        let mut rows: Vec<EndpointRow> = v4
            .chain(v6)
            .map(|(a, protocol, (frames, bytes))| EndpointRow {
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
