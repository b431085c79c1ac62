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
//! terms from /8 to /16 needs no SQL at all (when most flows are in one /16, testing each one in SQL takes hundreds
//! of milliseconds where counting its list takes a few).
//!
//! Here are the bucket numbers and the list encoding, which the reader (`trace::buckets`), the filter and the store
//! share; the numbers are stored in databases, so they never change without a migration.

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

/// The bucket of an address: FNV-1a (32 bits) of its 16-byte key (IPv4 mapped into IPv6, as `flows.src_key`),
/// folded to 12 bits. Stored in databases: never change it without a migration that rebuilds the lists.
pub fn addr_bucket(a: &IpAddr) -> u32 {
    let key = super::addr_key(a);
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
    super::is_v4ish(net).then_some(())?;
    // The prefix in IPv4's 32 bits: an IPv4-mapped network counts its first 96 bits as the mapping.
    let bits = super::net_bits(net, prefix).saturating_sub(96);
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

/// Appends `d` as a LEB128 varint.
pub(crate) fn push_varint(out: &mut Vec<u8>, mut d: u32) {
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
