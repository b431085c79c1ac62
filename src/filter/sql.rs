//! Compiles a filter to a SQL condition on `flows f`: every value the user typed becomes a bound parameter.
//!
//! Addresses are compared through `flows.src_key`/`dst_key`, 16 bytes that sort as the address does (IPv4
//! mapped into IPv6 as ::ffff:a.b.c.d), so `net` is a byte range. They have no index yet (it cost the ingest
//! too much, see migrations/0003): a search scans `flows`.

use std::net::IpAddr;

use rusqlite::types::Value;

use super::{Dir, Expr, Field};
use crate::key::{addr_key, is_v4ish, net_bits};

/// A filter as SQL: `condition` holds `?N` placeholders numbered from 1, bound to `params` in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The condition, to go after `WHERE`.
    pub condition: String,
    /// The values of its placeholders.
    pub params: Vec<Value>,
    /// The flow buckets every match is in ([`Expr::bucket_sets`]).
    pub buckets: Vec<Vec<u32>>,
    /// True when the flows in those buckets are exactly the matches ([`Expr::buckets_are_exact`]).
    pub exact: bool,
}

/// The lowest and highest key of a network.
fn net_range(net: &IpAddr, prefix: u8) -> ([u8; 16], [u8; 16]) {
    let bits = u32::from(net_bits(net, prefix));
    let k = u128::from_be_bytes(addr_key(net));
    let mask = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    ((k & mask).to_be_bytes(), (k | !mask).to_be_bytes())
}

/// Compiles `e` into a condition on `flows f`.
pub fn compile(e: &Expr) -> Compiled {
    let mut c = Compiled {
        condition: String::new(),
        params: Vec::new(),
        buckets: e.bucket_sets(),
        exact: e.buckets_are_exact(),
    };
    c.condition = emit(e, &mut c.params);
    c
}

fn param(params: &mut Vec<Value>, v: Value) -> String {
    params.push(v);
    format!("?{}", params.len())
}

fn ends(d: Dir, test: impl Fn(&str, &str) -> String) -> String {
    match d {
        Dir::Src => test("f.src_key", "f.sport"),
        Dir::Dst => test("f.dst_key", "f.dport"),
        Dir::Either => format!(
            "({} OR {})",
            test("f.src_key", "f.sport"),
            test("f.dst_key", "f.dport")
        ),
    }
}

fn emit(e: &Expr, p: &mut Vec<Value>) -> String {
    match e {
        Expr::All => "TRUE".into(),
        Expr::Host(d, a) => {
            let k = param(p, Value::Blob(addr_key(a).to_vec()));
            ends(*d, |key, _| format!("{key} = {k}"))
        }
        Expr::Net(d, n, bits) => {
            let (lo, hi) = net_range(n, *bits);
            let (lo, hi) = (
                param(p, Value::Blob(lo.to_vec())),
                param(p, Value::Blob(hi.to_vec())),
            );
            if !is_v4ish(n) && net_bits(n, *bits) < 96 {
                // An IPv6 network wide enough to span ::ffff:0:0/96 holds no IPv4 hosts (tcpdump's rule).
                let (v4lo, v4hi) = net_range(&IpAddr::from([0u8, 0, 0, 0]), 0);
                let (a, b) = (
                    param(p, Value::Blob(v4lo.to_vec())),
                    param(p, Value::Blob(v4hi.to_vec())),
                );
                ends(*d, |key, _| {
                    format!("({key} BETWEEN {lo} AND {hi} AND {key} NOT BETWEEN {a} AND {b})")
                })
            } else {
                ends(*d, |key, _| format!("{key} BETWEEN {lo} AND {hi}"))
            }
        }
        Expr::Port(d, lo, hi) => {
            if lo == hi {
                let v = param(p, Value::Integer(i64::from(*lo)));
                ends(*d, |_, port| format!("{port} = {v}"))
            } else {
                let (l, h) = (
                    param(p, Value::Integer(i64::from(*lo))),
                    param(p, Value::Integer(i64::from(*hi))),
                );
                ends(*d, |_, port| format!("{port} BETWEEN {l} AND {h}"))
            }
        }
        Expr::After(t) => format!("f.last_ns >= {}", param(p, Value::Integer(*t))),
        Expr::Before(t) => format!("f.first_ns <= {}", param(p, Value::Integer(*t))),
        Expr::Capture(c) => {
            let v = param(p, Value::Text(c.clone()));
            format!(
                "f.capture_id IN (SELECT capture_id FROM capture_paths WHERE name = {v} \
                 UNION SELECT id FROM captures WHERE name = {v} OR CAST(id AS TEXT) = {v})"
            )
        }
        // The label's time bounds first_ns: checked first, it spares building the labels of every other flow
        // (schema 9 derives most of them, 0.34 s for a scan's 833k flows against 0.07 s with the range).
        Expr::Label(l) => {
            let label = param(p, Value::Text(l.clone()));
            match crate::key::label::label_time_range(l) {
                Some((lo, hi)) => format!(
                    "(f.first_ns BETWEEN {} AND {} AND f.label = {label})",
                    param(p, Value::Integer(lo)),
                    param(p, Value::Integer(hi))
                ),
                None => format!("f.label = {label}"),
            }
        }
        Expr::CommunityId(c) => format!("f.community_id = {}", param(p, Value::Text(c.clone()))),
        Expr::Flag(fl) => format!("(f.flags & {}) <> 0", param(p, Value::Integer(fl.bit()))),
        Expr::Open(true) => "f.closed_frame IS NULL".into(),
        Expr::Open(false) => "f.closed_frame IS NOT NULL".into(),
        Expr::Compare(field, cmp, v) => {
            let col = match field {
                Field::Packets => "f.packets",
                Field::Bytes => "f.bytes",
                Field::Payload => "f.payload_bytes",
                Field::Duration => "(f.last_ns - f.first_ns)",
            };
            format!("{col} {} {}", cmp.sql(), param(p, Value::Integer(*v)))
        }
        Expr::And(a, b) => format!("({} AND {})", emit(a, p), emit(b, p)),
        Expr::Or(a, b) => format!("({} OR {})", emit(a, p), emit(b, p)),
        Expr::Not(a) => format!("(NOT {})", emit(a, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;

    #[test]
    fn values_are_parameters_never_text() {
        let c = compile(&parse("capture x';DROP-TABLE-flows;-- and label \"a' b\"", 0).unwrap());
        assert!(!c.condition.contains("DROP"), "{}", c.condition);
        assert!(!c.condition.contains('\''), "{}", c.condition);
        assert_eq!(c.params.len(), 2);
    }

    #[test]
    fn net_ranges() {
        let (lo, hi) = net_range(&"10.1.0.0".parse().unwrap(), 16);
        assert_eq!(lo, addr_key(&"10.1.0.0".parse().unwrap()));
        assert_eq!(hi, addr_key(&"10.1.255.255".parse().unwrap()));
        let (lo, hi) = net_range(&"2001:db8::".parse().unwrap(), 32);
        assert_eq!(lo, addr_key(&"2001:db8::".parse().unwrap()));
        assert_eq!(
            hi,
            addr_key(&"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap())
        );
        let (lo, hi) = net_range(&"0.0.0.0".parse().unwrap(), 0);
        assert_eq!(lo, addr_key(&"0.0.0.0".parse().unwrap()));
        assert_eq!(hi, addr_key(&"255.255.255.255".parse().unwrap()));
    }

    /// A label's time bounds `first_ns`, and comes first: schema 9 builds most labels when read, so without it a
    /// `label` filter built the label of every flow (0.34 s on a scan's 833k flows, 0.09 s with it).
    #[test]
    fn a_label_filter_bounds_first_ns_first() {
        let c = compile(&parse("label 10.0.0.1_1-10.0.0.2_2-1700000000.5", 0).unwrap());
        let at = |s: &str| {
            c.condition
                .find(s)
                .unwrap_or_else(|| panic!("{s} in {}", c.condition))
        };
        assert!(
            at("f.first_ns BETWEEN") < at("f.label ="),
            "{}",
            c.condition
        );
        let ints: Vec<i64> = c
            .params
            .iter()
            .filter_map(|v| match v {
                Value::Integer(i) => Some(*i),
                _ => None,
            })
            .collect();
        let t = 1_700_000_000_500_000_000i64;
        assert!(
            ints.len() == 2 && ints[0] <= t && t <= ints[1] && ints[1] - ints[0] < 1000,
            "{ints:?}"
        );
    }
}
