//! Community ID v1 (corelight/community-id-spec): the flow hash Zeek, Suricata and Arkime tag connections with,
//! so that a record in one tool can be found in another.
//!
//! SHA-1 comes from RustCrypto's `sha1` crate (small, maintained, no default features: it builds in seconds).
//! The base64 is written here: 20 bytes always make 28 characters, and the `base64` crate's engine setup is more
//! code than the encoding itself.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// IANA protocol number of TCP, the only transport traceflow traces.
const PROTO_TCP: u8 = 6;

/// The Community ID v1 of a TCP flow, `1:` and the base64 of the SHA-1 over seed, addresses, protocol, a zero
/// byte and ports, with the endpoints ordered so that both directions give the same ID: the pair (address,
/// port) that is smaller (addresses as bytes, then ports) goes first.
///
/// Addresses of two families cannot share one IP header; should they differ anyway, an IPv4 address is hashed
/// as its 4 bytes and an IPv6 one as its 16, each compared by those bytes, as the spec's reference does.
pub fn community_id(seed: u16, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> String {
    let mut out = String::with_capacity(30);
    push_community_id(&mut out, seed, src, sport, dst, dport);
    out
}

/// [`community_id`] appended to `out` (a flow record keeps its texts in one string).
pub fn push_community_id(
    out: &mut String,
    seed: u16,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) {
    let (a, b) = (octets(&src), octets(&dst));
    let (a, b) = (a.as_slice(), b.as_slice());
    let (first, second) = if (a, sport) <= (b, dport) {
        ((a, sport), (b, dport))
    } else {
        ((b, dport), (a, sport))
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(first.0);
    h.update(second.0);
    h.update([PROTO_TCP, 0]);
    h.update(first.1.to_be_bytes());
    h.update(second.1.to_be_bytes());
    let digest: [u8; 20] = h.finalize().into();
    out.push_str("1:");
    base64(&digest, out);
}

/// An address's bytes as they are on the wire: 4 for IPv4, 16 for IPv6 (without an allocation: this runs for
/// every connection).
fn octets(a: &IpAddr) -> Octets {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            Octets(b, 4)
        }
        IpAddr::V6(v6) => Octets(v6.octets(), 16),
    }
}

/// Up to 16 address bytes and how many are used.
struct Octets([u8; 16], usize);

impl Octets {
    fn as_slice(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

/// Standard base64 (RFC 4648 section 4) with `=` padding, appended to `out`.
fn base64(bytes: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= n {
                out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The spec's baseline vectors for TCP: corelight/community-id-spec `baseline/baseline_deflt.json` (seed 0)
    /// and `baseline/baseline_seed1.json` (seed 1), both directions of each.
    #[test]
    fn the_specs_tcp_baseline_vectors() {
        let v6a = "2001:470:e5bf:dead:4957:2174:e82c:4887";
        let v6b = "2607:f8b0:400c:c03::1a";
        let cases = [
            (
                0,
                "128.232.110.120",
                34855,
                "66.35.250.204",
                80,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                0,
                "66.35.250.204",
                80,
                "128.232.110.120",
                34855,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (0, v6a, 63943, v6b, 25, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
            (0, v6b, 25, v6a, 63943, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
            (
                1,
                "128.232.110.120",
                34855,
                "66.35.250.204",
                80,
                "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            ),
            (
                1,
                "66.35.250.204",
                80,
                "128.232.110.120",
                34855,
                "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            ),
            (1, v6a, 63943, v6b, 25, "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
            (1, v6b, 25, v6a, 63943, "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
        ];
        for (seed, s, sp, d, dp, want) in cases {
            assert_eq!(
                community_id(seed, ip(s), sp, ip(d), dp),
                want,
                "{s}:{sp} -> {d}:{dp} seed {seed}"
            );
        }
    }

    #[test]
    fn base64_pads_as_rfc_4648_says() {
        // RFC 4648 section 10's test vectors.
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = String::new();
            base64(input.as_bytes(), &mut out);
            assert_eq!(out, want);
        }
    }
}
