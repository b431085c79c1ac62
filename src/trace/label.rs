//! Flow labels exactly as PyPCAPKit's TraceFlow writes them: `{src}_{srcport}-{dst}_{dstport}-{repr(float(ts))}`.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::capture::Timestamp;

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation with at least one decimal place for
/// exponents -4 <= e < 16, scientific (`1e-05`, `1.5e+16`) outside that range.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest round-trip mantissa digits, like Python's repr.
    let sci = format!("{:e}", x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(32);
    if neg {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// An address in standard text form (RFC 5952 for IPv6; IPv4-mapped as `::ffff:a.b.c.d`), as pcapkit (via Python's
/// `ipaddress`) and tshark print it. IPv4 is written by hand: through `Display` it was a tenth of the reader thread.
pub fn addr_text(addr: &IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let mut out = String::with_capacity(15);
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if o >= 100 {
                    out.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    out.push(char::from(b'0' + o / 10 % 10));
                }
                out.push(char::from(b'0' + o % 10));
            }
            out
        }
        IpAddr::V6(a) => a.to_string(),
    }
}

/// The flow label from the addresses' text (`addr_text`, as stored in `flows.src` and `flows.dst`): `:` is made
/// `.`, as pcapkit does for IPv6 so that the label can name a file.
pub fn label_from_text(src: &str, sport: u16, dst: &str, dport: u16, ts: &Timestamp) -> String {
    let mut s = String::with_capacity(src.len() + dst.len() + 32);
    s.extend(src.chars().map(|c| if c == ':' { '.' } else { c }));
    let _ = write!(s, "_{sport}-");
    s.extend(dst.chars().map(|c| if c == ':' { '.' } else { c }));
    let _ = write!(s, "_{dport}-{}", py_float_repr(ts.as_f64()));
    s
}

/// The flow label for a directed key and the timestamp of the flow's first frame.
pub fn flow_label(src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16, ts: &Timestamp) -> String {
    label_from_text(&addr_text(src), sport, &addr_text(dst), dport, ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_float_repr(1385391358.387631), "1385391358.387631");
        assert_eq!(py_float_repr(1737752403.0), "1737752403.0");
        assert_eq!(py_float_repr(0.0), "0.0");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(0.00001), "1e-05");
        assert_eq!(py_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(1234567890123456.0), "1234567890123456.0");
        assert_eq!(py_float_repr(12345678901234567.0), "1.2345678901234568e+16");
        assert_eq!(py_float_repr(-2.5), "-2.5");
        assert_eq!(py_float_repr(100.0), "100.0");
    }

    #[test]
    fn labels_round_decimal_ns_timestamps() {
        // 9 significant fractional digits do not fit an f64 near 1.5e9: Python prints the nearest double.
        let ts = Timestamp::new(1516186805, 600950123, 9);
        assert_eq!(py_float_repr(ts.as_f64()), "1516186805.6009502");
        // A tie-ish ns value must round from the exact decimal, not from a sum of two floats.
        let ts = Timestamp::new(1385391358, 387631499, 9);
        assert_eq!(py_float_repr(ts.as_f64()), "1385391358.3876314");
        let ts = Timestamp::new(1516186805, 600950000, 9);
        assert_eq!(py_float_repr(ts.as_f64()), "1516186805.60095");
        // Trailing zeros of µs vanish, a whole second keeps `.0`.
        assert_eq!(
            py_float_repr(Timestamp::new(1737752403, 0, 6).as_f64()),
            "1737752403.0"
        );
        assert_eq!(py_float_repr(Timestamp::new(0, 0, 6).as_f64()), "0.0");
        // A µs field past 10^6 carries into the seconds.
        assert_eq!(
            Timestamp::new(10, 1_500_000, 6),
            Timestamp::new(11, 500_000, 6)
        );
    }

    #[test]
    fn ipv6_and_mapped_labels() {
        let ts = Timestamp::new(1, 5, 1);
        let a: IpAddr = "2001:db8:0:0:0:0:0:1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            flow_label(&a, 80, &b, 443, &ts),
            "2001.db8..1_80-..ffff.192.0.2.1_443-1.5"
        );
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(flow_label(&v4, 1, &v4, 2, &ts), "10.0.0.1_1-10.0.0.1_2-1.5");
    }

    proptest::proptest! {
        #[test]
        fn ipv4_text_is_displays_text(a in proptest::prelude::any::<u32>()) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(a));
            proptest::prop_assert_eq!(addr_text(&ip), ip.to_string());
        }
    }
}
