//! Compiles a filter to a SQL condition on `flows f`: every value the user typed becomes a bound parameter.
//!
//! Addresses are compared through `flows.src_key`/`dst_key`, 16 bytes that sort as the address does (IPv4
//! mapped into IPv6 as ::ffff:a.b.c.d), so `net` is a byte range. They have no index yet (it cost the ingest
//! too much, see migrations/0003): a search scans `flows`.

use std::net::IpAddr;

use rusqlite::types::Value;

use super::{net_is_v4, Dir, Expr, Field};
use crate::key::{addr_key, net_bits};

/// A filter as SQL: `condition` holds `?N` placeholders numbered from 1, bound to `params` in order; a dialect
/// with other placeholders has the same condition written with its own ([`Compiled::condition_with`]).
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
    /// The filter, for writing the condition in another dialect.
    expr: Expr,
}

impl Compiled {
    /// The empty filter: every flow matches.
    pub fn is_everything(&self) -> bool {
        matches!(self.expr, Expr::All)
    }

    /// The condition with the placeholders `mark` writes for each parameter's number (from 1, bound to
    /// `params` in the same order as `condition`'s): `$N` for PostgreSQL.
    pub fn condition_with(&self, mark: fn(usize) -> String) -> String {
        emit(
            &self.expr,
            &mut Params {
                values: Vec::new(),
                mark,
            },
        )
        .sql
    }
}

/// The parameters bound so far, and how the dialect writes a placeholder.
struct Params {
    values: Vec<Value>,
    mark: fn(usize) -> String,
}

impl Params {
    fn sqlite() -> Params {
        Params {
            values: Vec::new(),
            mark: |n| format!("?{n}"),
        }
    }
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
        expr: e.clone(),
    };
    let mut p = Params::sqlite();
    c.condition = emit(e, &mut p).sql;
    c.params = p.values;
    c
}

/// The deepest condition [`compile`] makes: SQLite refuses an expression more than 1,000 deep
/// (SQLITE_MAX_EXPR_DEPTH), and inside the `EXISTS` of a connection search it takes half that (493 levels of
/// `NOT`, measured on the bundled 3.46).
const MAX_HEIGHT: usize = 480;

/// The most values one condition binds: SQLite numbers at most 32,766 parameters (PostgreSQL 65,535), and the
/// queries around the condition bind a few of their own.
const MAX_PARAMS: usize = 32_000;

/// How deep [`Emitted::height`] counts a term: at least as deep as the deepest SQL any one term becomes (a
/// `capture` term's subquery).
const TERM_HEIGHT: usize = 8;

/// Whether `e` compiles to SQL that both backends take: not too deep, not too many values. The message says
/// which.
pub(crate) fn fits(e: &Expr) -> Result<(), String> {
    let mut p = Params::sqlite();
    let out = emit(e, &mut p);
    let params = p.values;
    if out.height > MAX_HEIGHT {
        return Err(format!(
            "the filter is too deep for SQL (its condition would nest {} levels, at most {MAX_HEIGHT}): \
             use fewer levels of parentheses",
            out.height
        ));
    }
    if params.len() > MAX_PARAMS {
        return Err(format!(
            "the filter has too many values for SQL ({}, at most {MAX_PARAMS}): split it into several searches",
            params.len()
        ));
    }
    Ok(())
}

/// A condition, and an upper bound of how deep SQLite's parse of it nests (each `AND`/`OR`/`NOT` one level
/// above its operands, a term [`TERM_HEIGHT`]).
struct Emitted {
    sql: String,
    height: usize,
}

fn term(sql: String) -> Emitted {
    Emitted {
        sql,
        height: TERM_HEIGHT,
    }
}

fn param(params: &mut Params, v: Value) -> String {
    params.values.push(v);
    (params.mark)(params.values.len())
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

/// How a connection term finds the flow's connection: the one of its key (the Community ID, indexed) whose
/// frames span the flow's first frame (a key's connections follow each other, so that is at most one).
pub const FLOW_CONNECTION: &str =
    "k.community_id = f.community_id AND k.capture_id = f.capture_id \
     AND f.first_frame BETWEEN k.first_frame AND k.last_frame";

/// The same in a search of connections (`connections x`, whose flows are `f`): the connection itself, which a
/// flow spanning a port reuse (no FIN between) would otherwise not be.
pub const THE_CONNECTION: &str = "k.capture_id = x.capture_id AND k.conn_no = x.conn_no";

/// A condition on the flow's connection ([`FLOW_CONNECTION`]; a connection search puts [`THE_CONNECTION`] in
/// its place: the text is only ever ours).
fn conn_term(cond: &str) -> String {
    format!("EXISTS (SELECT 1 FROM connections k WHERE {FLOW_CONNECTION} AND {cond})")
}

/// `parts` joined by `op` as a balanced tree, each join parenthesised: SQLite parses `a OR b OR c ...` as a chain
/// as deep as it is long, and refuses one of 1,000.
fn join_balanced(mut parts: Vec<Emitted>, op: &str) -> Emitted {
    while parts.len() > 1 {
        let mut next = Vec::with_capacity(parts.len().div_ceil(2));
        let mut it = parts.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => Emitted {
                    sql: format!("({} {op} {})", a.sql, b.sql),
                    height: 1 + a.height.max(b.height),
                },
                None => a,
            });
        }
        parts = next;
    }
    parts.pop().unwrap_or_else(|| term("TRUE".into()))
}

/// `key IN (?a, ?b, ...)` for each end `d` names, the placeholders shared by both ends.
fn in_list(
    d: Dir,
    p: &mut Params,
    values: Vec<Value>,
    pick: for<'a> fn(&'a str, &'a str) -> &'a str,
) -> String {
    let list: Vec<String> = values.into_iter().map(|v| param(p, v)).collect();
    let list = list.join(", ");
    ends(d, |key, port| format!("{} IN ({list})", pick(key, port)))
}

/// An `or` chain: the hosts of one end become one `IN` list, as do single ports and Community IDs, and the flags
/// one mask; the rest (and those) are joined as a balanced tree. A blocklist of 10,000 `host` terms is then two
/// `IN` lists, not a condition 10,000 deep.
fn emit_or(terms: &[&Expr], p: &mut Params) -> Emitted {
    use std::collections::HashSet;
    #[derive(PartialEq, Eq, Hash, Clone, Copy)]
    enum Kind {
        Host(u8),
        Port(u8),
        Cid,
    }
    let dir_no = |d: Dir| match d {
        Dir::Src => 0u8,
        Dir::Dst => 1,
        Dir::Either => 2,
    };
    let kind = |e: &Expr| match e {
        Expr::Host(d, _) => Some(Kind::Host(dir_no(*d))),
        Expr::Port(d, lo, hi) if lo == hi => Some(Kind::Port(dir_no(*d))),
        Expr::CommunityId(_) => Some(Kind::Cid),
        _ => None,
    };
    // Each list in the order its kind first appears, each value once.
    let mut lists: Vec<(Kind, Vec<&Expr>)> = Vec::new();
    let mut seen: HashSet<(Kind, Vec<u8>)> = HashSet::new();
    let mut mask = 0i64;
    let mut any_flag = false;
    let mut others = Vec::new();
    for &t in terms {
        let value = match t {
            Expr::Host(_, a) => addr_key(a).to_vec(),
            Expr::Port(_, lo, _) => lo.to_be_bytes().to_vec(),
            Expr::CommunityId(c) => c.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        match (kind(t), t) {
            (Some(k), _) => {
                if !seen.insert((k, value)) {
                    continue;
                }
                match lists.iter_mut().find(|(lk, _)| *lk == k) {
                    Some((_, v)) => v.push(t),
                    None => {
                        lists.push((k, vec![t]));
                        others.push((None, Some(lists.len() - 1)));
                    }
                }
            }
            (None, Expr::Flag(fl)) => {
                mask |= fl.bit();
                if !any_flag {
                    any_flag = true;
                    others.push((Some(t), None));
                }
            }
            (None, _) => others.push((Some(t), None)),
        }
    }
    // Each in the place of its kind's first term: a term, or the list of a kind.
    let mut parts = Vec::with_capacity(others.len());
    for (t, list) in others {
        parts.push(match (t, list) {
            (Some(Expr::Flag(_)), _) => term(format!(
                "(f.flags & {}) <> 0",
                param(p, Value::Integer(mask))
            )),
            (Some(t), _) => emit(t, p),
            (None, Some(l)) => {
                let (k, items) = &lists[l];
                if items.len() == 1 {
                    emit(items[0], p)
                } else {
                    let d = match items[0] {
                        Expr::Host(d, _) | Expr::Port(d, _, _) => *d,
                        _ => Dir::Src,
                    };
                    let values: Vec<Value> = items
                        .iter()
                        .map(|t| match t {
                            Expr::Host(_, a) => Value::Blob(addr_key(a).to_vec()),
                            Expr::Port(_, lo, _) => Value::Integer(i64::from(*lo)),
                            Expr::CommunityId(c) => Value::Text(c.clone()),
                            _ => Value::Null,
                        })
                        .collect();
                    term(match k {
                        Kind::Host(_) => in_list(d, p, values, |key, _| key),
                        Kind::Port(_) => in_list(d, p, values, |_, port| port),
                        Kind::Cid => {
                            let list: Vec<String> =
                                values.into_iter().map(|v| param(p, v)).collect();
                            format!("f.community_id IN ({})", list.join(", "))
                        }
                    })
                }
            }
            (None, None) => continue,
        });
    }
    join_balanced(parts, "OR")
}

fn emit(e: &Expr, p: &mut Params) -> Emitted {
    match e {
        Expr::Or(..) => emit_or(&e.chain(), p),
        Expr::And(..) => {
            let parts = e.chain().into_iter().map(|t| emit(t, p)).collect();
            join_balanced(parts, "AND")
        }
        Expr::Not(a) => {
            let inner = emit(a, p);
            Emitted {
                sql: format!("(NOT {})", inner.sql),
                height: inner.height + 1,
            }
        }
        _ => term(leaf(e, p)),
    }
}

/// The SQL of one term (not `and`, `or` or `not`).
fn leaf(e: &Expr, p: &mut Params) -> String {
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
            if !net_is_v4(n, *bits) && net_bits(n, *bits) < 96 {
                // An IPv6 network wide enough to span ::ffff:0:0/96 holds no IPv4 hosts (tcpdump's rule), even
                // one written with a mapped address (`in_net`).
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
        Expr::ConnState(states) => {
            let list: Vec<String> = states
                .iter()
                .map(|st| param(p, Value::Text(st.clone())))
                .collect();
            conn_term(&format!("k.conn_state IN ({})", list.join(", ")))
        }
        Expr::History(h, true) => {
            conn_term(&format!("k.history = {}", param(p, Value::Text(h.clone()))))
        }
        // A substring test without LIKE's wildcards, in SQL both dialects have (the letters are never empty).
        Expr::History(h, false) => conn_term(&format!(
            "replace(k.history, {}, '') <> k.history",
            param(p, Value::Text(h.clone()))
        )),
        Expr::ConnCompare(field, cmp, v) => conn_term(&format!(
            "k.{} {} {}",
            field.column(),
            cmp.sql(),
            param(p, Value::Integer(*v))
        )),
        Expr::And(..) | Expr::Or(..) | Expr::Not(_) => emit(e, p).sql,
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
