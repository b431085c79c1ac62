//! Address keys: the 16 bytes an address is stored and compared as (`flows.src_key`), IPv4 mapped into IPv6, so
//! that IPv4 and IPv4-mapped IPv6 are one host everywhere (the filter, the buckets, the store).

use std::net::IpAddr;

/// An address as the 16 bytes stored in `flows.src_key`/`dst_key`: IPv6 as is, IPv4 as ::ffff:a.b.c.d.
pub fn addr_key(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Whether an address is IPv4 (or IPv4-mapped IPv6, which traceflow treats as the same host).
pub fn is_v4ish(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    }
}

/// The prefix length in the 128-bit key space (IPv4 nets sit under ::ffff:0:0/96).
pub fn net_bits(net: &IpAddr, prefix: u8) -> u8 {
    match net {
        IpAddr::V4(_) => 96 + prefix.min(32),
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => prefix.min(128),
        IpAddr::V6(_) => prefix.min(128),
    }
}
