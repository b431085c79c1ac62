//! `--group-by` of `flows` and `connections`, every key with every sort, against a brute-force grouping of the
//! rows the same database lists (`flows`/`connections --format json`), on SQLite and PostgreSQL.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::{corpus, ingest, run};

/// The corpus, its connections built.
fn corpus_db() -> &'static (tempfile::TempDir, PathBuf) {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("corpus.db");
        assert_eq!(ingest(&db, &["--connections"], &[&corpus()]).code, 0);
        (dir, db)
    })
}

fn json(db: &Path, args: &[&str]) -> Vec<Value> {
    let r = run(db, args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

const FILTERS: [&str; 3] = ["", "port 80 or port 443", "syn and not conn-state SF"];
const KEYS: [&str; 7] = [
    "src",
    "dst",
    "pair",
    "sport",
    "dport",
    "capture",
    "conn-state",
];
const SORTS: [Option<&str>; 4] = [None, Some("bytes"), Some("packets"), Some("time")];

/// The 16 bytes an address sorts as (IPv4 mapped into IPv6), as the flows' `src_key`.
fn addr_key(s: &str) -> [u8; 16] {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Key values in the listings' order: numbers by value, text bytewise, null last.
fn key_cmp(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Greater,
            (_, Value::Null) => Ordering::Less,
            (Value::Number(m), Value::Number(n)) => m.as_i64().cmp(&n.as_i64()),
            (Value::String(m), Value::String(n)) => m.as_bytes().cmp(n.as_bytes()),
            _ => panic!("mixed keys {x} {y}"),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// One group's totals: count, packets, bytes, payload, earliest first and latest last time.
#[derive(Debug, Default, PartialEq, Clone)]
struct Totals(i64, i64, i64, i64, String, String);

/// The groups a brute force makes of `rows` (flows, or connections when `conns`) by `by`, in `sort`'s order,
/// each as its key columns (name, value) and totals. `state` gives a flow's connection's conn_state.
fn brute(
    rows: &[Value],
    conns: bool,
    by: &str,
    sort: Option<&str>,
    state: &HashMap<(String, String), String>,
) -> Vec<(Vec<(String, Value)>, Totals)> {
    let (src, dst, sport, dport) = if conns {
        ("orig_h", "resp_h", "orig_p", "resp_p")
    } else {
        ("src", "dst", "sport", "dport")
    };
    let mut groups: BTreeMap<String, (Vec<(String, Value)>, Totals)> = BTreeMap::new();
    for r in rows {
        let key: Vec<(String, Value)> = match by {
            "src" => vec![(src.into(), r[src].clone())],
            "dst" => vec![(dst.into(), r[dst].clone())],
            "pair" => {
                let (a, b) = (r[src].as_str().unwrap(), r[dst].as_str().unwrap());
                let (a, b) = if addr_key(a) <= addr_key(b) {
                    (a, b)
                } else {
                    (b, a)
                };
                vec![("a".into(), a.into()), ("b".into(), b.into())]
            }
            "sport" => vec![(sport.into(), r[sport].clone())],
            "dport" => vec![(dport.into(), r[dport].clone())],
            "capture" => vec![("capture".into(), r["capture"].clone())],
            _ if conns => vec![("conn_state".into(), r["conn_state"].clone())],
            _ => {
                let k = (
                    r["capture"].as_str().unwrap().to_string(),
                    r["label"].as_str().unwrap().to_string(),
                );
                vec![(
                    "conn_state".into(),
                    state.get(&k).map_or(Value::Null, |s| s.as_str().into()),
                )]
            }
        };
        let int = |c: &str| r[c].as_i64().unwrap();
        let (packets, bytes, payload) = if conns {
            (
                int("orig_pkts") + int("resp_pkts"),
                int("orig_frame_bytes") + int("resp_frame_bytes"),
                int("orig_payload_bytes") + int("resp_payload_bytes"),
            )
        } else {
            (int("packets"), int("bytes"), int("payload_bytes"))
        };
        let (first, last) = (
            r["first_time"].as_str().unwrap().to_string(),
            r["last_time"].as_str().unwrap().to_string(),
        );
        let g = groups
            .entry(serde_json::to_string(&key).unwrap())
            .or_insert_with(|| (key, Totals(0, 0, 0, 0, first.clone(), last.clone())));
        let t = &mut g.1;
        t.0 += 1;
        t.1 += packets;
        t.2 += bytes;
        t.3 += payload;
        // RFC 3339 UTC with nine places, years of four digits: text order is time order.
        t.4 = t.4.clone().min(first);
        t.5 = t.5.clone().max(last);
    }
    let mut v: Vec<(Vec<(String, Value)>, Totals)> = groups.into_values().collect();
    let vals = |k: &[(String, Value)]| k.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>();
    v.sort_by(|(ka, a), (kb, b)| {
        let first = match sort {
            None | Some("bytes") => b.2.cmp(&a.2),
            Some("packets") => b.1.cmp(&a.1),
            _ => a.4.cmp(&b.4),
        };
        first.then_with(|| key_cmp(&vals(ka), &vals(kb)))
    });
    v
}

/// The groups the command gives, as [`brute`] makes them.
fn listed(rows: &[Value], conns: bool, nkeys: usize) -> Vec<(Vec<(String, Value)>, Totals)> {
    let unit = if conns { "connections" } else { "flows" };
    rows.iter()
        .map(|r| {
            let m = r.as_object().unwrap();
            let key: Vec<(String, Value)> = m
                .iter()
                .take(nkeys)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let int = |c: &str| r[c].as_i64().unwrap();
            (
                key,
                Totals(
                    int(unit),
                    int("packets"),
                    int("bytes"),
                    int("payload_bytes"),
                    r["first_time"].as_str().unwrap().into(),
                    r["last_time"].as_str().unwrap().into(),
                ),
            )
        })
        .collect()
}

/// Every key with every sort, for flows and connections, equals the brute force over the listed rows; a
/// limit keeps the first groups; `--sort duration` is refused in one line.
fn every_key_and_sort(db: &Path) {
    // A flow's connection: the first listed that holds it (a key's connections follow each other, so the
    // flow's first frame is in the earliest one that has any of its frames).
    let mut state: HashMap<(String, String), String> = HashMap::new();
    for c in json(db, &["connections", "--format", "json"]) {
        for l in c["flows"].as_array().unwrap() {
            state
                .entry((
                    c["capture"].as_str().unwrap().into(),
                    l.as_str().unwrap().into(),
                ))
                .or_insert_with(|| c["conn_state"].as_str().unwrap().into());
        }
    }
    let mut seen_states = 0;
    for filter in FILTERS {
        for (view, conns) in [("flows", false), ("connections", true)] {
            let rows = json(db, &[view, filter, "--format", "json"]);
            assert!(!rows.is_empty(), "{view} {filter:?}");
            for by in KEYS {
                for sort in SORTS {
                    let want = brute(&rows, conns, by, sort, &state);
                    let mut args = vec![view, filter, "--group-by", by, "--format", "json"];
                    if let Some(s) = sort {
                        args.extend(["--sort", s]);
                    }
                    let nkeys = if by == "pair" { 2 } else { 1 };
                    let got = listed(&json(db, &args), conns, nkeys);
                    assert_eq!(got, want, "{args:?}");
                    if by == "conn-state" {
                        seen_states = seen_states.max(got.len());
                        // Each state's count is the filter term's: `conn-state S` finds the same connection.
                        for (k, t) in &got {
                            let st = k[0].1.as_str().unwrap();
                            let f = if filter.is_empty() {
                                format!("conn-state {st}")
                            } else {
                                format!("({filter}) and conn-state {st}")
                            };
                            let r = run(db, &[view, &f, "--count"]);
                            assert_eq!(r.stdout.trim(), t.0.to_string(), "{view} {f:?}");
                        }
                    }
                    args.extend(["--limit", "2"]);
                    let top = listed(&json(db, &args), conns, nkeys);
                    assert_eq!(top[..], want[..want.len().min(2)], "{args:?}");
                }
            }
        }
    }
    assert!(seen_states >= 5, "the corpus has several conn_states");
    for view in ["flows", "connections"] {
        let r = run(db, &[view, "--group-by", "dport", "--sort", "duration"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains("--sort duration"), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}

#[test]
fn group_by_every_key_and_sort_is_the_brute_force_of_the_listing() {
    every_key_and_sort(&corpus_db().1);
}

#[test]
fn pg_group_by_every_key_and_sort_is_the_brute_force_of_the_listing() {
    let db = crate::postgres::PgDb::new("group");
    let r = ingest(db.path(), &[], &[&corpus()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    every_key_and_sort(db.path());
}

/// The table of `connections --group-by` names its count column, and a conn.log of groups is refused.
#[test]
fn connection_groups_say_what_they_count() {
    let db = &corpus_db().1;
    let r = run(
        db,
        &[
            "connections",
            "--group-by",
            "conn-state",
            "--format",
            "table",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("CONN_STATE  CONNECTIONS  PACKETS  BYTES"),
        "{}",
        r.stdout
    );
    let r = run(
        db,
        &[
            "connections",
            "--group-by",
            "conn-state",
            "--format",
            "zeek",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// The API's groups are the command line's, for the connections view and each sort; a sort groups cannot take
/// and an unknown key are 400s with a line.
#[test]
fn the_apis_groups_are_the_command_lines() {
    use crate::serve::{enc, Server};
    let db = &corpus_db().1;
    let s = Server::start(db, &[]);
    for (view, sort) in [
        ("connections", None),
        ("connections", Some("packets")),
        ("flows", Some("time")),
    ] {
        for f in ["", "port 80 or port 443"] {
            let mut q = format!("/api/groups?by=conn-state&view={view}&filter={}", enc(f));
            let mut args = vec![view, f, "--group-by", "conn-state", "--format", "json"];
            args.extend(["--limit", "20"]);
            if let Some(s) = sort {
                q.push_str(&format!("&sort={s}"));
                args.extend(["--sort", s]);
            }
            let got = s.json(&q)["rows"].as_array().unwrap().clone();
            assert_eq!(got, json(db, &args), "{q}");
            assert!(!got.is_empty(), "{q}");
        }
    }
    for (q, says) in [
        (
            "/api/groups?by=conn-state&sort=duration",
            "--sort duration means nothing for groups",
        ),
        ("/api/groups?by=state", "conn-state"),
        ("/api/groups?by=src&view=zeek", "use flows or connections"),
    ] {
        let r = s.get(q);
        assert_eq!(r.status, 400, "{q}");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{q}: {body}"
        );
    }
}

/// Grouping flows by conn_state needs the connections: without them, one line naming the command that builds
/// them, and no rows.
#[test]
fn conn_state_groups_of_flows_need_the_connections_built() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bare.db");
    let cap = corpus().join("v6.pcap");
    assert_eq!(ingest(&db, &[], &[&cap]).code, 0);
    let r = run(&db, &["flows", "--group-by", "conn-state"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("ingest --connections`"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    // The other keys need nothing more.
    assert_eq!(run(&db, &["flows", "--group-by", "dport"]).code, 0);
}
