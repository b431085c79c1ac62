//! Flow buckets: per capture, the flow numbers of each of 8,192 buckets (4,096 by address, 4,096 by port), stored
//! as compressed lists in `flow_buckets`, so that `flows 'host A and port P'` reads the few flows of A's and P's
//! buckets instead of every flow.
//!
//! Why buckets and not SQL indexes: an index on `flows (capture_id, src_key)` and one on `dst_key` cost the
//! ingest 35-55% (each new flow's entries land all over the index B-trees), where these lists are built in the
//! reader thread and written as at most 8,192 rows per capture (more only for captures of millions of flows).
//! A bucket holds several addresses or ports: its flows are candidates, and the filter's SQL condition still
//! decides each one.

use std::net::IpAddr;

/// Buckets keyed by address: `0..ADDR_BUCKETS`.
pub const ADDR_BUCKETS: u16 = 4096;
/// Buckets keyed by port: `ADDR_BUCKETS..ADDR_BUCKETS + PORT_BUCKETS`.
pub const PORT_BUCKETS: u16 = 4096;

/// Bytes of lists held by the reader before they are handed to the writer. The lists are kept encoded (1-3 bytes
/// a number in a scan, against 4 as `u32`s plus a growing `Vec`'s slack), which took 14 MB off the peak memory
/// of a scan that leaves 2.5M flows open (issue 17).
const MAX_HELD: usize = 8 << 20;

/// The bucket of an address: FNV-1a (32 bits) of its 16-byte key (IPv4 mapped into IPv6, as `flows.src_key`),
/// folded to 12 bits. Stored in databases: never change it without a migration that rebuilds the lists.
pub fn addr_bucket(a: &IpAddr) -> u16 {
    let key = crate::filter::addr_key(a);
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    ((h ^ (h >> 12) ^ (h >> 24)) & u32::from(ADDR_BUCKETS - 1)) as u16
}

/// The bucket of a port: its low 12 bits (well-known ports then share a bucket only with a few ephemeral ones).
pub fn port_bucket(p: u16) -> u16 {
    ADDR_BUCKETS + (p & (PORT_BUCKETS - 1))
}

/// One stored part of a bucket's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketRow {
    /// The bucket.
    pub bucket: u16,
    /// Which hand-on of the capture's reader it came from (a list may be stored in several parts).
    pub part: u32,
    /// The flow numbers, ascending, as LEB128 varints of the differences (the first from 0).
    pub flow_nos: Vec<u8>,
}

/// The lists being built for one capture, each already encoded as it is stored ([`encode`]), with the last
/// number it holds (the next difference is from it; 0 at the start of a part).
pub struct Buckets {
    lists: Vec<(u32, Vec<u8>)>,
    held: usize,
    part: u32,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            lists: vec![(0, Vec::new()); usize::from(ADDR_BUCKETS + PORT_BUCKETS)],
            held: 0,
            part: 0,
        }
    }
}

impl Buckets {
    /// A new flow (numbers come in ascending order): it goes into the buckets of both addresses and both ports.
    #[inline]
    pub fn add(&mut self, flow_no: u32, src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16) {
        for b in [
            addr_bucket(src),
            addr_bucket(dst),
            port_bucket(sport),
            port_bucket(dport),
        ] {
            let (last, bytes) = &mut self.lists[usize::from(b)];
            // A flow whose two ends share a bucket is listed once; numbers only grow.
            if bytes.is_empty() || *last != flow_no {
                let before = bytes.len();
                push_varint(bytes, flow_no.wrapping_sub(*last));
                *last = flow_no;
                self.held += bytes.len() - before;
            }
        }
    }

    /// True when the lists should be handed on now.
    pub fn is_full(&self) -> bool {
        self.held >= MAX_HELD
    }

    /// The lists so far as rows (non-empty buckets only), and a fresh start.
    pub fn take(&mut self) -> Vec<BucketRow> {
        let part = self.part;
        self.part += 1;
        self.held = 0;
        let mut rows = Vec::new();
        for (b, (last, bytes)) in self.lists.iter_mut().enumerate() {
            if !bytes.is_empty() {
                rows.push(BucketRow {
                    bucket: b as u16,
                    part,
                    flow_nos: std::mem::take(bytes),
                });
                *last = 0;
            }
        }
        rows
    }
}

/// Appends `d` as a LEB128 varint.
fn push_varint(out: &mut Vec<u8>, mut d: u32) {
    loop {
        let byte = (d & 0x7F) as u8;
        d >>= 7;
        if d == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Ascending numbers as LEB128 varints of their differences (the first from 0): a stored list.
pub fn encode(nos: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nos.len() * 2);
    let mut prev = 0u32;
    for &n in nos {
        push_varint(&mut out, n.wrapping_sub(prev));
        prev = n;
    }
    out
}

/// Appends the numbers of one stored list to `out`. None when the bytes are not such a list (a damaged database):
/// the caller then reads every flow instead.
pub fn decode_into(bytes: &[u8], out: &mut Vec<i64>) -> Option<()> {
    let (mut prev, mut d, mut shift) = (0u64, 0u64, 0u32);
    for &b in bytes {
        if shift > 28 {
            return None;
        }
        d |= u64::from(b & 0x7F) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            prev = prev.checked_add(d)?;
            if prev > u64::from(u32::MAX) {
                return None;
            }
            out.push(prev as i64);
            (d, shift) = (0, 0);
        }
    }
    (shift == 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn lists_decode_to_what_was_encoded(mut v in proptest::collection::vec(proptest::num::u32::ANY, 0..200)) {
            v.sort_unstable();
            v.dedup();
            let mut out = Vec::new();
            proptest::prop_assert!(decode_into(&encode(&v), &mut out).is_some());
            proptest::prop_assert_eq!(out, v.iter().map(|&n| i64::from(n)).collect::<Vec<_>>());
        }

        #[test]
        fn damaged_lists_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut out = Vec::new();
            let _ = decode_into(&bytes, &mut out);
        }
    }

    #[test]
    fn a_flow_is_in_its_four_buckets_once_each() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut k = Buckets::default();
        k.add(1, &a, 443, &a, 443);
        k.add(2, &a, 1000, &b, 443);
        let rows = k.take();
        let find = |bucket| {
            rows.iter()
                .find(|r| r.bucket == bucket)
                .map(|r| r.flow_nos.clone())
        };
        assert_eq!(find(addr_bucket(&a)), Some(encode(&[1, 2])));
        assert_eq!(find(port_bucket(443)), Some(encode(&[1, 2])));
        assert_eq!(find(port_bucket(1000)), Some(encode(&[2])));
        assert!(rows.iter().all(|r| r.part == 0));
        assert!(k.take().is_empty());
        assert_ne!(addr_bucket(&a), addr_bucket(&b));
    }
}
