//! `traceflow flows FILTER`: random filters over the 205 conformance captures give exactly the flows a plain
//! Rust evaluation of the same filter picks, and the CLI's formats, sorting, counting and errors.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use rusqlite::Connection;
use traceflow::filter::{self, Cmp, Dir, Expr, Field, Flag, FlowFacts};
use traceflow::store::read::{self, FlowSort};
use traceflow::{ingest, store};

use super::util::{corpus, run};

/// The conformance corpus in one database, built once for the whole test binary.
fn corpus_db() -> &'static (tempfile::TempDir, PathBuf, Vec<FlowFacts>) {
    static DB: OnceLock<(tempfile::TempDir, PathBuf, Vec<FlowFacts>)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("corpus.db");
        let mut conn = store::open(&db).unwrap();
        let opts = ingest::Options {
            jobs: 2,
            quiet: true,
            ..Default::default()
        };
        let s = ingest::run(&mut conn, &[corpus()], &opts, &mut |_| {});
        assert!(s.indexed >= 200, "{s:?}");
        let facts = facts(&conn);
        assert!(facts.len() > 500, "{} flows", facts.len());
        (dir, db, facts)
    })
}

/// Every flow as the Rust evaluation sees it, read from the tables (not from the new columns under test).
fn facts(conn: &Connection) -> Vec<FlowFacts> {
    let mut st = conn
        .prepare(
            "SELECT f.capture_id, f.label, f.src, f.sport, f.dst, f.dport, f.first_ns, f.last_ns, f.packets, f.bytes,
                    f.payload_bytes, f.closed_frame IS NOT NULL, f.flow_no,
                    (SELECT group_concat(name, char(10)) FROM capture_paths p WHERE p.capture_id = f.capture_id)
             FROM flows f ORDER BY f.capture_id, f.flow_no",
        )
        .unwrap();
    let mut flags = conn
        .prepare("SELECT tcp_flags FROM frames WHERE capture_id = ?1 AND flow_no = ?2")
        .unwrap();
    st.query_map([], |r| {
        let (cid, flow_no): (i64, i64) = (r.get(0)?, r.get(12)?);
        let names: String = r.get(13)?;
        let f = flags
            .query_map([cid, flow_no], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|x| x.unwrap())
            .fold(0, |a, b| a | b);
        Ok(FlowFacts {
            capture_id: cid,
            capture_names: names.split('\n').map(String::from).collect(),
            label: r.get(1)?,
            src: r.get::<_, String>(2)?.parse().unwrap(),
            sport: r.get(3)?,
            dst: r.get::<_, String>(4)?.parse().unwrap(),
            dport: r.get(5)?,
            first_ns: r.get(6)?,
            last_ns: r.get(7)?,
            packets: r.get(8)?,
            bytes: r.get(9)?,
            payload: r.get(10)?,
            flags: f,
            closed: r.get(11)?,
            // Computed here from the key, not read from the column under test (the corpus is ingested with
            // seed 0).
            community_id: traceflow::conn::community_id(
                0,
                r.get::<_, String>(2)?.parse().unwrap(),
                r.get(3)?,
                r.get::<_, String>(4)?.parse().unwrap(),
                r.get(5)?,
            ),
        })
    })
    .unwrap()
    .map(|x| x.unwrap())
    .collect()
}

/// The filter text of an expression, as a user would type it (parenthesised everywhere).
fn text(e: &Expr) -> String {
    let d = |d: &Dir| match d {
        Dir::Src => "src ",
        Dir::Dst => "dst ",
        Dir::Either => "",
    };
    match e {
        Expr::All => "(not (not syn or syn) or (syn or not syn))".into(),
        Expr::Host(dir, a) => format!("{}host {a}", d(dir)),
        Expr::Net(dir, a, p) => format!("{}net {a}/{p}", d(dir)),
        Expr::Port(dir, lo, hi) if lo == hi => format!("{}port {lo}", d(dir)),
        Expr::Port(dir, lo, hi) => format!("{}portrange {lo}-{hi}", d(dir)),
        Expr::After(t) => format!(
            "after {}.{:09}",
            t.div_euclid(1_000_000_000),
            t.rem_euclid(1_000_000_000)
        ),
        Expr::Before(t) => format!(
            "before {}.{:09}",
            t.div_euclid(1_000_000_000),
            t.rem_euclid(1_000_000_000)
        ),
        Expr::Capture(c) => format!("capture \"{c}\""),
        Expr::Label(l) => format!("label \"{l}\""),
        Expr::CommunityId(c) => format!("community-id {c}"),
        Expr::Flag(Flag::Syn) => "syn".into(),
        Expr::Flag(Flag::Fin) => "fin".into(),
        Expr::Flag(Flag::Rst) => "rst".into(),
        Expr::Open(true) => "open".into(),
        Expr::Open(false) => "closed".into(),
        Expr::Compare(f, c, v) => {
            let f = match f {
                Field::Packets => "packets",
                Field::Bytes => "bytes",
                Field::Payload => "payload",
                Field::Duration => "duration",
            };
            let c = match c {
                Cmp::Gt => ">",
                Cmp::Ge => ">=",
                Cmp::Lt => "<",
                Cmp::Le => "<=",
                Cmp::Eq => "=",
                Cmp::Ne => "!=",
            };
            if f == "duration" {
                format!("{f} {c} {}us", v / 1000)
            } else {
                format!("{f} {c} {v}")
            }
        }
        Expr::And(a, b) => format!("({} and {})", text(a), text(b)),
        Expr::Or(a, b) => format!("({} or {})", text(a), text(b)),
        Expr::Not(a) => format!("not {}", text(a)),
    }
}

/// Filters built from the corpus's own values (so that they match something) and from arbitrary ones.
fn expr(facts: &'static [FlowFacts]) -> impl Strategy<Value = Expr> {
    let pick = move |i: usize| &facts[i % facts.len()];
    let dir = prop_oneof![Just(Dir::Src), Just(Dir::Dst), Just(Dir::Either)];
    let leaf = prop_oneof![
        (dir.clone(), any::<usize>(), any::<bool>()).prop_map(move |(d, i, s)| {
            let f = pick(i);
            Expr::Host(d, if s { f.src } else { f.dst })
        }),
        (dir.clone(), any::<usize>(), 0u8..=32).prop_map(move |(d, i, p)| {
            let a = pick(i).src;
            Expr::Net(d, a, if a.is_ipv4() { p } else { p * 4 })
        }),
        (dir.clone(), any::<usize>(), 0u16..2000).prop_map(move |(d, i, w)| {
            let p = pick(i).dport;
            if w % 3 == 0 {
                Expr::Port(d, p, p)
            } else {
                Expr::Port(d, p.saturating_sub(w), p.saturating_add(w))
            }
        }),
        any::<usize>().prop_map(move |i| Expr::After(pick(i).first_ns)),
        any::<usize>().prop_map(move |i| Expr::Before(pick(i).last_ns)),
        any::<usize>().prop_map(move |i| Expr::Capture(pick(i).capture_names[0].clone())),
        any::<usize>().prop_map(move |i| Expr::Capture(pick(i).capture_id.to_string())),
        any::<usize>().prop_map(move |i| Expr::Label(pick(i).label.clone())),
        any::<usize>().prop_map(move |i| Expr::CommunityId(pick(i).community_id.clone())),
        prop_oneof![Just(Flag::Syn), Just(Flag::Fin), Just(Flag::Rst)].prop_map(Expr::Flag),
        any::<bool>().prop_map(Expr::Open),
        (
            prop_oneof![
                Just(Field::Packets),
                Just(Field::Bytes),
                Just(Field::Payload),
                Just(Field::Duration)
            ],
            prop_oneof![
                Just(Cmp::Gt),
                Just(Cmp::Ge),
                Just(Cmp::Lt),
                Just(Cmp::Le),
                Just(Cmp::Eq),
                Just(Cmp::Ne)
            ],
            any::<usize>()
        )
            .prop_map(move |(f, c, i)| {
                let x = pick(i);
                let v = match f {
                    Field::Packets => x.packets,
                    Field::Bytes => x.bytes,
                    Field::Payload => x.payload,
                    // Whole µs, as the filter text writes it.
                    Field::Duration => (x.last_ns - x.first_ns) / 1000 * 1000,
                };
                Expr::Compare(f, c, v)
            }),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Expr::Not(Box::new(a))),
        ]
    })
}

fn by_sql(conn: &Connection, e: &Expr) -> BTreeSet<(i64, i64)> {
    let mut got = BTreeSet::new();
    read::search_flows(conn, &filter::compile(e), FlowSort::Time, None, &mut |r| {
        got.insert((r.capture_id, r.flow_no));
        Ok(())
    })
    .unwrap();
    got
}

fn by_rust(facts: &[FlowFacts], conn: &Connection, e: &Expr) -> BTreeSet<(i64, i64)> {
    // flow_no is not in FlowFacts: facts are in (capture_id, flow_no) order, as the table is.
    let ids: Vec<(i64, i64)> = conn
        .prepare("SELECT capture_id, flow_no FROM flows ORDER BY capture_id, flow_no")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|x| x.unwrap())
        .collect();
    facts
        .iter()
        .zip(ids)
        .filter(|(f, _)| e.matches(f))
        .map(|(_, id)| id)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]
    /// SQL and the Rust evaluation agree on every random filter, and the filter text parses back to itself.
    #[test]
    fn random_filters_match_a_plain_evaluation(e in expr(&corpus_db().2)) {
        let (_, db, facts) = corpus_db();
        let conn = store::open_read(db).unwrap();
        let typed = text(&e);
        let parsed = filter::parse(&typed, 0).unwrap_or_else(|err| panic!("{typed}: {err}"));
        let want = by_rust(facts, &conn, &parsed);
        let got = by_sql(&conn, &parsed);
        prop_assert_eq!(got, want, "filter: {}", typed);
    }
}

#[test]
fn some_filters_select_what_they_say() {
    let (_, db, facts) = corpus_db();
    let conn = store::open_read(db).unwrap();
    let count = |s: &str| by_sql(&conn, &filter::parse(s, 0).unwrap()).len();
    assert_eq!(count(""), facts.len());
    assert_eq!(count("open or closed"), facts.len());
    assert_eq!(count("syn") + count("not syn"), facts.len());
    let v6 = facts.iter().filter(|f| f.src.is_ipv6()).count();
    assert!(v6 > 0);
    assert_eq!(count("src net ::/0"), v6);
    assert_eq!(count("src net 0.0.0.0/0"), facts.len() - v6);
    let a: IpAddr = facts[0].src;
    assert_eq!(
        count(&format!("host {a}")),
        facts.iter().filter(|f| f.src == a || f.dst == a).count()
    );
}

fn tf_flows(db: &Path, args: &[&str]) -> super::util::Run {
    let mut a = vec!["flows"];
    a.extend_from_slice(args);
    run(db, &a)
}

#[test]
fn the_cli_formats_sorts_counts_and_explains_errors() {
    let (_, db, facts) = corpus_db();
    let r = tf_flows(db, &["", "--count"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), facts.len().to_string());
    let r = tf_flows(
        db,
        &[
            "dst port 80",
            "--sort",
            "bytes",
            "--limit",
            "5",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let bytes: Vec<i64> = rows.iter().map(|r| r["bytes"].as_i64().unwrap()).collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
    assert!(rows.iter().all(|r| r["dport"] == 80));
    let r = tf_flows(db, &["rst", "--format", "csv", "--limit", "3"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "capture,label,src,sport,dst,dport,first_time,last_time,duration,packets,bytes,payload_bytes,flags,state");
    assert_eq!(lines.len(), 4);
    assert!(lines[1..].iter().all(|l| l.contains("RST")));
    let r = tf_flows(db, &["syn", "--format", "jsonl", "--limit", "2"]);
    assert_eq!(r.stdout.lines().count(), 2);
    for bad in [
        "port 99999",
        "net 10.0.0.0/33",
        "after yesterdayish",
        "(syn or fin",
        "hots 1.2.3.4",
    ] {
        let r = tf_flows(db, &[bad]);
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{bad}: {}", r.stderr);
        assert!(
            lines[0].starts_with("traceflow: bad filter at column"),
            "{}",
            r.stderr
        );
        assert!(lines[2].trim_start().starts_with('^'), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
}
