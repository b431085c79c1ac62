//! Flow buckets: per capture, the flow numbers of each of 73,728 buckets (4,096 by address, 4,096 by port, 65,536
//! by IPv4 /16), stored as compressed lists in `flow_buckets`, so that `flows 'host A and port P'` reads the few
//! flows of A's and P's buckets instead of every flow, and `flows 'net A/16' --count` counts a list instead of
//! testing every flow.
//!
//! Why buckets and not SQL indexes: an index on `flows (capture_id, src_key)` and one on `dst_key` cost the
//! ingest 35-55% (each new flow's entries land all over the index B-trees), where these lists are built in the
//! reader thread and written as at most 8,192 rows per capture (more only for captures of millions of flows).
//! An address or port bucket holds several addresses or ports: its flows are candidates, and the filter's SQL
//! condition still decides each one. A /16 bucket is exact: it lists the flows with either end in that IPv4 /16
//! and no others (IPv4-mapped IPv6 addresses count as IPv4, as the filter compares them), so a count of `net`
//! terms from /8 to /16 needs no SQL at all (issue 12: 90% of the benchmark's flows are in one /16, and testing
//! each one in SQL took 270-480 ms where counting its list takes a few).

use std::net::IpAddr;

/// Buckets keyed by address: `0..ADDR_BUCKETS`.
pub const ADDR_BUCKETS: u32 = 4096;
/// Buckets keyed by port: `ADDR_BUCKETS..ADDR_BUCKETS + PORT_BUCKETS`.
pub const PORT_BUCKETS: u32 = 4096;
/// The first bucket keyed by IPv4 /16: `NET16_BASE + (a << 8 | b)` for a.b.0.0/16. Stored only by ingests that
/// set `captures.has_buckets` to 2 (or more); a capture with 1 was indexed before these buckets existed.
pub const NET16_BASE: u32 = ADDR_BUCKETS + PORT_BUCKETS;
/// `captures.has_buckets` of a capture whose lists include the /16 buckets.
pub const WITH_NET16: i64 = 2;
/// The shortest IPv4 prefix read through /16 buckets: a /8 is 256 lists; a shorter one is most of a capture.
pub const NET16_SHORTEST: u8 = 8;

/// Bytes of lists held by the reader before they are handed to the writer. The lists are kept encoded (1-3 bytes
/// a number in a scan, against 4 as `u32`s plus a growing `Vec`'s slack), which took 14 MB off the peak memory
/// of a scan that leaves 2.5M flows open (issue 17).
const MAX_HELD: usize = 8 << 20;

/// The bucket of an address: FNV-1a (32 bits) of its 16-byte key (IPv4 mapped into IPv6, as `flows.src_key`),
/// folded to 12 bits. Stored in databases: never change it without a migration that rebuilds the lists.
pub fn addr_bucket(a: &IpAddr) -> u32 {
    let key = crate::filter::addr_key(a);
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 12) ^ (h >> 24)) & (ADDR_BUCKETS - 1)
}

/// The bucket of a port: its low 12 bits (well-known ports then share a bucket only with a few ephemeral ones).
pub fn port_bucket(p: u16) -> u32 {
    ADDR_BUCKETS + (u32::from(p) & (PORT_BUCKETS - 1))
}

/// The /16 bucket of an IPv4 (or IPv4-mapped IPv6) address; None for other IPv6 addresses.
pub fn net16_bucket(a: &IpAddr) -> Option<u32> {
    let v4 = match a {
        IpAddr::V4(v4) => *v4,
        IpAddr::V6(v6) => v6.to_ipv4_mapped()?,
    };
    let [x, y, _, _] = v4.octets();
    Some(NET16_BASE + (u32::from(x) << 8 | u32::from(y)))
}

/// The /16 buckets that hold every flow with an end in `net`/`prefix` (as `filter::in_net` decides), when that
/// network is IPv4 (or IPv4-mapped) with a prefix of at least [`NET16_SHORTEST`] bits: one bucket for a /16 or
/// longer, 2^(16 - prefix) for a shorter one. The second value is true when their flows are exactly those with
/// an end in the network (a prefix of at most 16).
pub fn net16_buckets(net: &IpAddr, prefix: u8) -> Option<(Vec<u32>, bool)> {
    crate::filter::is_v4ish(net).then_some(())?;
    // The prefix in IPv4's 32 bits: an IPv4-mapped network counts its first 96 bits as the mapping.
    let bits = crate::filter::net_bits(net, prefix).saturating_sub(96);
    if bits < NET16_SHORTEST {
        return None;
    }
    let first = net16_bucket(net)? - NET16_BASE;
    let keep = u32::from(bits.min(16));
    let mask = (0xffff_u32 << (16 - keep)) & 0xffff;
    let lo = first & mask;
    let hi = lo | (!mask & 0xffff);
    Some(((lo..=hi).map(|b| NET16_BASE + b).collect(), bits <= 16))
}

/// One stored part of a bucket's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketRow {
    /// The bucket.
    pub bucket: u32,
    /// Which hand-on of the capture's reader it came from (a list may be stored in several parts).
    pub part: u32,
    /// The flow numbers, ascending, as LEB128 varints of the differences (the first from 0).
    pub flow_nos: Vec<u8>,
}

/// The lists being built for one capture, each already encoded as it is stored ([`encode`]), with the last
/// number it holds (the next difference is from it; 0 at the start of a part).
pub struct Buckets {
    /// The address and port buckets by number, then one entry per /16 met so far, in the order met.
    lists: Vec<(u32, Vec<u8>)>,
    /// Per /16, its entry in `lists` (0: none yet). A capture meets few /16s, so their lists are made when first
    /// needed: 65,536 ready lists would cost every small capture of a folder 2 MB to set up and to walk.
    net_slot: Vec<u32>,
    /// The bucket of each entry of `lists` past the address and port buckets.
    net_bucket: Vec<u32>,
    held: usize,
    part: u32,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            lists: vec![(0, Vec::new()); NET16_BASE as usize],
            net_slot: vec![0; 65_536],
            net_bucket: Vec::new(),
            held: 0,
            part: 0,
        }
    }
}

impl Buckets {
    /// A new flow (numbers come in ascending order): it goes into the buckets of both addresses, both ports and,
    /// for IPv4, both /16s.
    #[inline]
    pub fn add(&mut self, flow_no: u32, src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16) {
        let nets = [net16_bucket(src), net16_bucket(dst)].map(|b| b.map(|b| self.net_entry(b)));
        for i in [
            addr_bucket(src),
            addr_bucket(dst),
            port_bucket(sport),
            port_bucket(dport),
        ]
        .into_iter()
        .chain(nets.into_iter().flatten())
        {
            let (last, bytes) = &mut self.lists[i as usize];
            // A flow whose two ends share a bucket is listed once; numbers only grow.
            if bytes.is_empty() || *last != flow_no {
                let before = bytes.len();
                push_varint(bytes, flow_no.wrapping_sub(*last));
                *last = flow_no;
                self.held += bytes.len() - before;
            }
        }
    }

    /// The entry of `lists` for /16 bucket `b`, made on first use.
    #[inline]
    fn net_entry(&mut self, b: u32) -> u32 {
        let slot = &mut self.net_slot[(b - NET16_BASE) as usize];
        if *slot == 0 {
            *slot = self.lists.len() as u32;
            self.lists.push((0, Vec::new()));
            self.net_bucket.push(b);
        }
        *slot
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
        for (i, (last, bytes)) in self.lists.iter_mut().enumerate() {
            if !bytes.is_empty() {
                let bucket = match i.checked_sub(NET16_BASE as usize) {
                    None => i as u32,
                    Some(n) => self.net_bucket[n],
                };
                rows.push(BucketRow {
                    bucket,
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

    #[test]
    fn a_flow_is_in_the_16s_of_its_ipv4_ends() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut k = Buckets::default();
        k.add(1, &ip("10.1.2.3"), 1, &ip("10.1.9.9"), 2);
        k.add(2, &ip("10.1.2.3"), 1, &ip("192.168.0.1"), 2);
        k.add(3, &ip("::ffff:192.168.7.7"), 1, &ip("2001:db8::1"), 2);
        k.add(4, &ip("2001:db8::1"), 1, &ip("2001:db8::2"), 2);
        let rows = k.take();
        let find = |bucket| {
            rows.iter()
                .find(|r| r.bucket == bucket)
                .map(|r| r.flow_nos.clone())
        };
        let b = |s: &str| net16_bucket(&ip(s)).unwrap();
        assert_eq!(b("10.1.255.255"), NET16_BASE + 0x0a01);
        assert_eq!(find(b("10.1.0.0")), Some(encode(&[1, 2])));
        assert_eq!(find(b("192.168.0.0")), Some(encode(&[2, 3])));
        assert_eq!(rows.iter().filter(|r| r.bucket >= NET16_BASE).count(), 2);
        assert_eq!(net16_bucket(&ip("2001:db8::1")), None);
        // The next part starts its lists afresh, the /16s met before included.
        k.add(5, &ip("10.1.0.1"), 1, &ip("10.2.0.1"), 2);
        let rows = k.take();
        let net: Vec<(u32, Vec<u8>)> = rows
            .iter()
            .filter(|r| r.bucket >= NET16_BASE)
            .map(|r| (r.bucket, r.flow_nos.clone()))
            .collect();
        assert_eq!(
            net,
            [(b("10.1.0.0"), encode(&[5])), (b("10.2.0.0"), encode(&[5]))]
        );
        assert!(rows.iter().all(|r| r.part == 1));
    }

    #[test]
    fn networks_map_to_the_16s_that_cover_them() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let b = |s: &str| net16_bucket(&ip(s)).unwrap();
        assert_eq!(
            net16_buckets(&ip("10.1.2.3"), 16),
            Some((vec![b("10.1.0.0")], true))
        );
        assert_eq!(
            net16_buckets(&ip("10.1.2.3"), 24),
            Some((vec![b("10.1.0.0")], false))
        );
        let (v, exact) = net16_buckets(&ip("10.17.0.0"), 12).unwrap();
        assert!(exact);
        assert_eq!(v, (b("10.16.0.0")..=b("10.31.0.0")).collect::<Vec<_>>());
        let (v, _) = net16_buckets(&ip("10.0.0.0"), 8).unwrap();
        assert_eq!(v.len(), 256);
        assert_eq!(net16_buckets(&ip("10.0.0.0"), 7), None);
        assert_eq!(net16_buckets(&ip("2001:db8::"), 32), None);
        assert_eq!(
            net16_buckets(&ip("::ffff:10.1.0.0"), 112),
            Some((vec![b("10.1.0.0")], true))
        );
        assert_eq!(net16_buckets(&ip("::ffff:10.1.0.0"), 100), None);
    }
}
