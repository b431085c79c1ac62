//! `traceflow flows FILTER`: random filters over the 205 conformance captures give exactly the flows a plain
//! Rust evaluation of the same filter picks, and the CLI's formats, sorting, counting and errors.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use traceflow::filter::{self, Cmp, Dir, Expr, Field, Flag, FlowFacts};
use traceflow::store::read::{self, FlowSort};
use traceflow::store::Db;
use traceflow::{ingest, store};

use super::util::{corpus, run};

/// The conformance corpus in one database, built once for the whole test binary.
fn corpus_db() -> &'static (tempfile::TempDir, PathBuf, Vec<FlowFacts>) {
    static DB: OnceLock<(tempfile::TempDir, PathBuf, Vec<FlowFacts>)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("corpus.db");
        let mut conn = store::Db::Sqlite(store::open(&db).unwrap());
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
pub(super) fn facts(conn: &Db) -> Vec<FlowFacts> {
    let mut st = conn.sqlite().unwrap()
        .prepare(
            "SELECT f.capture_id, f.label, f.src, f.sport, f.dst, f.dport, f.first_ns, f.last_ns, f.packets, f.bytes,
                    f.payload_bytes, f.closed_frame IS NOT NULL, f.flow_no,
                    (SELECT group_concat(name, char(10)) FROM capture_paths p WHERE p.capture_id = f.capture_id)
             FROM flows f ORDER BY f.capture_id, f.flow_no",
        )
        .unwrap();
    let mut flags = conn
        .sqlite()
        .unwrap()
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
            community_id: traceflow::key::community_id(
                0,
                r.get::<_, String>(2)?.parse().unwrap(),
                r.get(3)?,
                r.get::<_, String>(4)?.parse().unwrap(),
                r.get(5)?,
            ),
            conn: None,
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
        // Connection terms are checked in zeek.rs, against the connections themselves.
        Expr::ConnState(_)
        | Expr::History(..)
        | Expr::ConnCompare(..)
        | Expr::Conn(..)
        | Expr::Uid(..) => unreachable!(),
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
        // IPv6 prefixes of every length over IPv4-mapped addresses (an IPv4 network from /96 on, an IPv6 one
        // below), and over the corpus's own IPv6 addresses.
        (dir.clone(), any::<usize>(), 0u8..=128).prop_map(move |(d, i, p)| Expr::Net(
            d,
            mapped(pick(i).dst),
            p
        )),
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

/// An IPv4 address as IPv4-mapped IPv6 (`::ffff:a.b.c.d`); an IPv6 one as it is.
fn mapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

pub(super) fn by_sql(conn: &Db, e: &Expr) -> BTreeSet<(i64, i64)> {
    let mut got = BTreeSet::new();
    read::search_flows(conn, &filter::compile(e), FlowSort::Time, None, &mut |r| {
        got.insert((r.capture_id, r.flow_no));
        Ok(())
    })
    .unwrap();
    got
}

pub(super) fn by_rust(facts: &[FlowFacts], conn: &Db, e: &Expr) -> BTreeSet<(i64, i64)> {
    // flow_no is not in FlowFacts: facts are in (capture_id, flow_no) order, as the table is.
    let ids: Vec<(i64, i64)> = conn
        .sqlite()
        .unwrap()
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
        let conn = store::Db::Sqlite(store::open_read(db).unwrap());
        let typed = text(&e);
        let parsed = filter::parse(&typed, 0).unwrap_or_else(|err| panic!("{typed}: {err}"));
        let want = by_rust(facts, &conn, &parsed);
        let got = by_sql(&conn, &parsed);
        let counted = read::count_flows(&conn, &filter::compile(&parsed)).unwrap();
        prop_assert_eq!(counted, want.len() as i64, "count of: {}", typed);
        prop_assert_eq!(got, want, "filter: {}", typed);
    }
}

#[test]
fn some_filters_select_what_they_say() {
    let (_, db, facts) = corpus_db();
    let conn = store::Db::Sqlite(store::open_read(db).unwrap());
    let count = |s: &str| by_sql(&conn, &filter::parse(s, 0).unwrap()).len();
    // Every capture has its flow buckets, so host and port filters here go through them.
    let without: i64 = conn
        .sqlite()
        .unwrap()
        .query_row(
            "SELECT count(*) FROM captures WHERE has_buckets = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(without, 0);
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
    // --explain shows each query and SQLite's plan for it: the bucket lists by their key, exact for a /16.
    let r = tf_flows(db, &["net 10.1.0.0/16", "--explain"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("(--count: exact"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "SEARCH flow_buckets USING PRIMARY KEY (capture_id=? AND bucket>? AND bucket<?)"
        ),
        "{}",
        r.stdout
    );
    let r = tf_flows(db, &["net 10.1.0.0/24", "--explain"]);
    assert!(r.stdout.contains("-- the lists SELECT"), "{}", r.stdout);
    assert!(!r.stdout.contains("exact"), "{}", r.stdout);
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

/// `--group-by`: each group's totals equal a plain sum over the flows the Rust evaluation picks, every group is
/// there once, and groups come most bytes first.
#[test]
fn group_by_sums_what_a_brute_force_sums() {
    use std::collections::BTreeMap;
    let (_, db, facts) = corpus_db();
    let conn = store::Db::Sqlite(store::open_read(db).unwrap());
    let names: BTreeMap<i64, String> = conn
        .sqlite()
        .unwrap()
        .prepare("SELECT id, name FROM captures")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let key = |a: &IpAddr| match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    // The last two read flow buckets.
    for filter_text in [
        "",
        "syn and not rst",
        "dst port 80 or src net 10.0.0.0/8",
        "dst port 80 and not fin",
        "port 443 or port 53",
    ] {
        let e = filter::parse(filter_text, 0).unwrap();
        let picked: Vec<&FlowFacts> = facts.iter().filter(|f| e.matches(f)).collect();
        assert!(!picked.is_empty(), "{filter_text}");
        for by in ["src", "dst", "pair", "sport", "dport", "capture"] {
            let mut want: BTreeMap<Vec<String>, (i64, i64, i64, i64)> = BTreeMap::new();
            for f in &picked {
                let k = match by {
                    "src" => vec![f.src.to_string()],
                    "dst" => vec![f.dst.to_string()],
                    "pair" if key(&f.src) <= key(&f.dst) => {
                        vec![f.src.to_string(), f.dst.to_string()]
                    }
                    "pair" => vec![f.dst.to_string(), f.src.to_string()],
                    "sport" => vec![f.sport.to_string()],
                    "dport" => vec![f.dport.to_string()],
                    _ => vec![names[&f.capture_id].clone()],
                };
                let t = want.entry(k).or_default();
                t.0 += 1;
                t.1 += f.packets;
                t.2 += f.bytes;
                t.3 += f.payload;
            }
            let r = tf_flows(db, &[filter_text, "--group-by", by, "--format", "json"]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            let rows: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
            let cols: Vec<&str> = if by == "pair" {
                vec!["a", "b"]
            } else {
                vec![by]
            };
            let mut got: BTreeMap<Vec<String>, (i64, i64, i64, i64)> = BTreeMap::new();
            for row in &rows {
                let k: Vec<String> = cols
                    .iter()
                    .map(|c| match &row[*c] {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect();
                let t = (
                    row["flows"].as_i64().unwrap(),
                    row["packets"].as_i64().unwrap(),
                    row["bytes"].as_i64().unwrap(),
                    row["payload_bytes"].as_i64().unwrap(),
                );
                assert!(row["first_time"].as_str().unwrap() <= row["last_time"].as_str().unwrap());
                assert!(
                    got.insert(k.clone(), t).is_none(),
                    "{by}: group {k:?} twice"
                );
            }
            assert_eq!(got, want, "filter {filter_text:?} --group-by {by}");
            let bytes: Vec<i64> = rows.iter().map(|r| r["bytes"].as_i64().unwrap()).collect();
            assert!(
                bytes.windows(2).all(|w| w[0] >= w[1]),
                "{by}: not most bytes first"
            );
        }
    }
    // --limit keeps the biggest groups; a table has the key's column first.
    let r = tf_flows(
        db,
        &[
            "",
            "--group-by",
            "dport",
            "--limit",
            "2",
            "--format",
            "table",
        ],
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(
        lines[0].starts_with("DPORT  FLOWS  PACKETS  BYTES"),
        "{}",
        lines[0]
    );
    // Options that do not go together are usage errors.
    let r = tf_flows(db, &["", "--group-by", "src", "--count"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// Time order is mergecap's order of the flows' first frames: each capture's flows as they began in the file,
/// captures interleaved by the time of their next flow. Checked against that merge done by brute force, with
/// and without a filter and a limit.
#[test]
fn time_order_merges_captures_by_their_next_flow() {
    let (_, db, facts) = corpus_db();
    let conn = store::Db::Sqlite(store::open_read(db).unwrap());
    for (filter_text, limit) in [("", None), ("syn or port 80", None), ("", Some(50u64))] {
        let e = filter::parse(filter_text, 0).unwrap();
        let mut per_cap: std::collections::BTreeMap<i64, Vec<&FlowFacts>> = Default::default();
        for f in facts.iter().filter(|f| e.matches(f)) {
            per_cap.entry(f.capture_id).or_default().push(f);
        }
        let mut at: std::collections::BTreeMap<i64, usize> =
            per_cap.keys().map(|&k| (k, 0)).collect();
        let mut want = Vec::new();
        while let Some((_, cid)) = per_cap
            .iter()
            .filter_map(|(cid, fs)| fs.get(at[cid]).map(|f| (f.first_ns, *cid)))
            .min()
        {
            want.push((cid, per_cap[&cid][at[&cid]].label.clone()));
            *at.get_mut(&cid).unwrap() += 1;
        }
        if let Some(l) = limit {
            want.truncate(l as usize);
        }
        let mut got = Vec::new();
        read::search_flows(
            &conn,
            &filter::compile(&e),
            FlowSort::Time,
            limit,
            &mut |r| {
                got.push((r.capture_id, r.label().to_string()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got.len(), want.len(), "{filter_text:?}");
        assert_eq!(got, want, "{filter_text:?}");
    }
}

/// The `flow_list` and `capture_list` views (for sqlite3 and Datasette users) show what `traceflow flows` and
/// `captures` show: RFC 3339 times (here in ns) equal to the library's formatter, the same flag names and state.
#[test]
fn views_show_times_names_and_flags() {
    let (_, db, facts) = corpus_db();
    let conn = store::Db::Sqlite(store::open_read(db).unwrap());
    let mut st = conn.sqlite().unwrap()
        .prepare(
            "SELECT v.capture, v.capture_id, v.flow_no, v.first_time, v.last_time, v.duration_s, v.flags,
                    v.state, f.flags, f.first_ns, f.last_ns
             FROM flow_list v JOIN flows f ON f.capture_id = v.capture_id AND f.flow_no = v.flow_no",
        )
        .unwrap();
    let mut n = 0;
    let mut rows = st.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let (first_ns, last_ns): (i64, i64) = (r.get(9).unwrap(), r.get(10).unwrap());
        let ts = |ns| traceflow::capture::Timestamp::from_ns(ns, 9).rfc3339();
        assert_eq!(r.get::<_, String>(3).unwrap(), ts(first_ns));
        assert_eq!(r.get::<_, String>(4).unwrap(), ts(last_ns));
        let d: f64 = r.get(5).unwrap();
        assert!((d - (last_ns - first_ns) as f64 / 1e9).abs() < 1e-9);
        assert_eq!(
            r.get::<_, String>(6).unwrap(),
            read::flag_names(r.get(8).unwrap())
        );
        let cid: i64 = r.get(1).unwrap();
        let fact = facts
            .iter()
            .find(|f| f.capture_id == cid && f.first_ns == first_ns && f.last_ns == last_ns)
            .unwrap();
        assert_eq!(
            r.get::<_, String>(7).unwrap(),
            if fact.closed { "closed" } else { "open" }
        );
        assert!(fact.capture_names.contains(&r.get::<_, String>(0).unwrap()));
        n += 1;
    }
    assert_eq!(n, facts.len());
    // Times before 1970 too (floor division), checked on a computed value.
    let t: String = conn.sqlite().unwrap()
        .query_row(
            "SELECT strftime('%Y-%m-%dT%H:%M:%S', (?1 - ((?1 % 1000000000) + 1000000000) % 1000000000) / 1000000000, 'unixepoch')
                    || printf('.%09dZ', ((?1 % 1000000000) + 1000000000) % 1000000000)",
            [-1_500_000_000i64],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        t,
        traceflow::capture::Timestamp::from_ns(-1_500_000_000, 9).rfc3339()
    );
    let migration = include_str!("../../migrations/0004_views.sql");
    assert!(migration.contains(
        "(f.first_ns - ((f.first_ns % 1000000000) + 1000000000) % 1000000000) / 1000000000"
    ));
    let caps: i64 = conn.sqlite().unwrap()
        .query_row(
            "SELECT count(*) FROM capture_list v JOIN captures c ON c.id = v.id
             WHERE v.first_time IS NOT NULL AND substr(v.first_time, 1, 19) = strftime('%Y-%m-%dT%H:%M:%S', c.first_ns / 1000000000, 'unixepoch')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let with_time: i64 = conn
        .sqlite()
        .unwrap()
        .query_row(
            "SELECT count(*) FROM captures WHERE first_ns >= 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(caps, with_time);
}

/// Every SQL block of docs/schema.md's index tuple section runs on a real database (with `:capture` and `:flow` bound),
/// and its index-tuple queries give the index tuple.
#[test]
fn every_schema_page_query_runs() {
    let (_, db, _) = corpus_db();
    let conn = store::Db::Sqlite(store::open_read(db).unwrap());
    let readme = include_str!("../../docs/schema.md");
    let from = readme
        .find("## The index tuple in SQL")
        .expect("docs/schema.md has the SQL section");
    let section = &readme[from..];
    let section = &section[..section[4..].find("\n## ").map_or(section.len(), |i| i + 4)];
    let blocks: Vec<&str> = section
        .split("```sql")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    assert!(blocks.len() >= 3, "{} SQL blocks", blocks.len());
    let capture: i64 = conn
        .sqlite()
        .unwrap()
        .query_row(
            "SELECT capture_id FROM flows GROUP BY capture_id ORDER BY count(*) DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let want: Vec<(String, String)> = read::index(&conn, Some(capture))
        .unwrap()
        .into_iter()
        .map(|e| {
            let frames: Vec<String> = e.index.iter().map(u64::to_string).collect();
            (e.label, frames.join(","))
        })
        .collect();
    let mut ran = 0;
    for block in blocks {
        for sql in block.split(';').map(str::trim).filter(|s| {
            s.lines()
                .any(|l| !l.trim_start().starts_with("--") && !l.trim().is_empty())
        }) {
            let mut st = conn
                .sqlite()
                .unwrap()
                .prepare(sql)
                .unwrap_or_else(|e| panic!("docs/schema.md SQL fails: {e}\n{sql}"));
            for i in 1..=st.parameter_count() {
                let name = st.parameter_name(i).unwrap_or("").to_string();
                let v: i64 = if name == ":flow" { 1 } else { capture };
                st.raw_bind_parameter(i, v).unwrap();
            }
            let cols = st.column_count();
            let mut rows = st.raw_query();
            let mut got: Vec<(String, String)> = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                if cols == 2 {
                    if let (Ok(a), Ok(b)) = (r.get::<_, String>(0), r.get::<_, String>(1)) {
                        got.push((a, b));
                    }
                }
            }
            if sql.contains("frames FROM flow_index") || sql.contains("AS frames") {
                assert_eq!(
                    got, want,
                    "docs/schema.md index query gives another tuple:\n{sql}"
                );
            }
            ran += 1;
        }
    }
    assert!(ran >= 5, "only {ran} docs/schema.md queries");
}

/// `query --bidirectional` over the corpus: every TCP frame in exactly one two-way flow, each flow on one pair of
/// endpoints and labelled from its first frame's direction, never-closed flows first, closed ones in the order of
/// the FIN that finished their second side, and no flow opened by a frame without SYN on a pair whose flow had
/// closed (PR #435's stray flow for the final ACK).
#[test]
fn two_way_index_holds_every_frame_once_by_connection() {
    use std::collections::HashMap;
    let (_, db, _) = corpus_db();
    let conn = store::Db::Sqlite(store::open_read(db).unwrap());
    let ids: Vec<i64> = conn
        .sqlite()
        .unwrap()
        .prepare("SELECT id FROM captures ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut reused = 0;
    for id in ids {
        let frames: HashMap<u64, (String, u16, String, u16, i64)> = conn.sqlite().unwrap()
            .prepare(
                "SELECT fr.number, f.src, f.sport, f.dst, f.dport, fr.tcp_flags FROM frames fr
                 JOIN flows f ON f.capture_id = fr.capture_id AND f.flow_no = fr.flow_no WHERE fr.capture_id = ?1",
            )
            .unwrap()
            .query_map([id], |r| {
                Ok((r.get::<_, i64>(0)? as u64, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let idx = read::bidirectional_index(&conn, Some(id)).unwrap();
        let mut seen: Vec<u64> = idx.iter().flat_map(|e| e.index.clone()).collect();
        seen.sort_unstable();
        let mut all: Vec<u64> = frames.keys().copied().collect();
        all.sort_unstable();
        assert_eq!(seen, all, "capture {id}: every TCP frame once");
        let pair = |n: u64| {
            let (s, sp, d, dp, _) = &frames[&n];
            let (a, b) = ((s.clone(), *sp), (d.clone(), *dp));
            if a <= b {
                (a, b)
            } else {
                (b, a)
            }
        };
        // Per flow: (pair, first frame, closing frame if both sides sent FIN, frames).
        let mut closing: Vec<Option<u64>> = Vec::new();
        for e in &idx {
            assert!(e.index.windows(2).all(|w| w[0] < w[1]));
            let p = pair(e.index[0]);
            assert!(
                e.index.iter().all(|&n| pair(n) == p),
                "capture {id}: {} mixes pairs",
                e.label
            );
            let (s, sp, d, dp, _) = &frames[&e.index[0]];
            let prefix = format!("{}_{sp}-{}_{dp}-", s.replace(':', "."), d.replace(':', "."));
            assert!(
                e.label.starts_with(&prefix),
                "{} does not start {prefix}",
                e.label
            );
            let mut fin = (false, false);
            let mut closed = None;
            for &n in &e.index {
                let (fs, fsp, _, _, flags) = &frames[&n];
                if flags & 1 != 0 {
                    if (fs, fsp) == (s, sp) {
                        fin.0 = true
                    } else {
                        fin.1 = true
                    }
                    if fin.0 && fin.1 && closed.is_none() {
                        closed = Some(n);
                    }
                }
            }
            closing.push(closed);
        }
        // Index order: open first, then by closing frame.
        let keys: Vec<(bool, u64)> = idx
            .iter()
            .zip(&closing)
            .map(|(e, c)| (c.is_some(), c.unwrap_or(e.index[0])))
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] <= w[1]),
            "capture {id}: index order {keys:?}"
        );
        // A flow that starts on a pair used before starts with a SYN, after the earlier flow closed.
        let mut by_pair: HashMap<_, Vec<usize>> = HashMap::new();
        for (i, e) in idx.iter().enumerate() {
            by_pair.entry(pair(e.index[0])).or_default().push(i);
        }
        for flows in by_pair.values() {
            let mut flows = flows.clone();
            flows.sort_by_key(|&i| idx[i].index[0]);
            for w in flows.windows(2) {
                let (prev, next) = (w[0], w[1]);
                let start = idx[next].index[0];
                assert!(
                    frames[&start].4 & 2 != 0,
                    "capture {id}: {} opened without SYN",
                    idx[next].label
                );
                assert!(
                    closing[prev].is_some_and(|c| c < start),
                    "capture {id}: {} opened before the close",
                    idx[next].label
                );
                reused += 1;
            }
        }
    }
    assert!(
        reused > 0,
        "the corpus reuses some port pairs after a close"
    );
    // And the CLI prints it, as the one-way index is printed.
    let r = run(db, &["query", "--bidirectional", "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.lines().count() > 100);
    assert!(r.stdout.lines().next().unwrap().contains("\"capture\":"));
}

/// Captures indexed before flow buckets (schema 8), captures whose lists have no /16 buckets (indexed by a
/// release of schema 8), and captures whose bucket lists are damaged, are read whole: the same flows come out, by
/// listing and by count.
#[test]
fn captures_without_usable_buckets_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let mut conn = store::Db::Sqlite(store::open(&db).unwrap());
    let opts = ingest::Options {
        quiet: true,
        ..Default::default()
    };
    let s = ingest::run(&mut conn, &[corpus()], &opts, &mut |_| {});
    assert!(s.indexed >= 200, "{s:?}");
    let facts = facts(&conn);
    // Hosts and ports of some flows, with another condition that a bucket does not decide.
    let filters: Vec<String> = facts
        .iter()
        .step_by(97)
        .flat_map(|f| {
            [
                format!("host {} and not syn", f.src),
                format!("dst port {} or src host {}", f.dport, f.dst),
                format!("port {} and packets > 2", f.sport),
                format!("net {}/16", f.src),
                format!("net {}/12 or host {}", f.dst, f.src),
            ]
        })
        .collect();
    assert!(filters.len() > 20);
    let results = |conn: &Db| -> Vec<(usize, i64)> {
        filters
            .iter()
            .map(|t| {
                let e = filter::parse(t, 0).unwrap();
                (
                    by_sql(conn, &e).len(),
                    read::count_flows(conn, &filter::compile(&e)).unwrap(),
                )
            })
            .collect()
    };
    let want = results(&conn);
    assert!(want.iter().all(|(n, c)| *n as i64 == *c));
    assert!(want.iter().any(|(n, _)| *n > 0));
    // As an ingest of schema 8 left them: address and port lists only.
    conn.sqlite()
        .unwrap()
        .execute_batch(
            "DELETE FROM flow_buckets WHERE bucket >= 8192; UPDATE captures SET has_buckets = 1",
        )
        .unwrap();
    assert_eq!(results(&conn), want, "lists without /16s");
    conn.sqlite()
        .unwrap()
        .execute_batch("UPDATE flow_buckets SET flow_nos = x'ff'")
        .unwrap();
    assert_eq!(results(&conn), want, "damaged lists");
    conn.sqlite()
        .unwrap()
        .execute_batch("DELETE FROM flow_buckets; UPDATE captures SET has_buckets = 0")
        .unwrap();
    assert_eq!(results(&conn), want, "no buckets");
}

/// `--count` over more flows than one thread counts (200,000): the ranges the counting threads split the flows
/// into neither miss nor repeat a flow. Each count equals the number of flows listed (one connection, in
/// flow order) and the number the generator made to match.
#[test]
fn counting_threads_count_each_flow_once() {
    use std::net::Ipv4Addr;
    use traceflow::synth::{eth_ipv4_tcp, Segment};
    const FLOWS: u32 = 230_000;
    let dir = tempfile::tempdir().unwrap();
    let mut frames = Vec::with_capacity(FLOWS as usize);
    let (mut p443, mut net, mut rst) = (0, 0, 0);
    for i in 0..FLOWS {
        // One SYN (or RST) per flow, each from its own source, to 10.(i % 3).x.y on 443 or 80.
        let dport = if i % 5 == 0 { 443 } else { 80 };
        let flags = if i % 7 == 0 { 0x04 } else { 0x02 };
        let dst = Ipv4Addr::new(10, (i % 3) as u8, (i >> 8) as u8, i as u8);
        p443 += usize::from(dport == 443);
        net += usize::from(i % 3 == 1);
        rst += usize::from(flags == 0x04);
        let seg = Segment {
            src: Ipv4Addr::from(0xc000_0000 + i),
            sport: 1024 + (i % 60000) as u16,
            dst,
            dport,
            seq: i,
            ack: 0,
            flags,
            payload: b"",
        };
        frames.push((
            1_700_000_000_000_000_000 + i64::from(i) * 1000,
            eth_ipv4_tcp(&seg),
        ));
    }
    let cap = dir.path().join("many.pcap");
    std::fs::write(&cap, super::util::pcap(1, 65535, &frames)).unwrap();
    let db = dir.path().join("t.db");
    let r = super::util::ingest(&db, &["-q"], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The sources run from 192.0.0.0 up: 192.0/16 to 192.3/16. Flows of other /16s are what a /16 list must not
    // hold; `net` terms from /8 to /16 are counted from those lists alone.
    let src16 = |b: u32| {
        (0..FLOWS)
            .filter(|i| (0xc000_0000 + i) >> 16 == 0xc000 + b)
            .count()
    };
    for (filter, want) in [
        ("", FLOWS as usize),
        ("port 443", p443),
        ("dst net 10.1.0.0/16", net),
        ("net 10.1.0.0/16", net),
        ("net 10.0.0.0/8", FLOWS as usize),
        ("net 10.2.0.0/15", (0..FLOWS).filter(|i| i % 3 == 2).count()),
        ("net 192.1.0.0/16", src16(1)),
        ("net 192.2.0.0/15", src16(2) + src16(3)),
        // Longer than a /16: the /16's list gives candidates, and SQL decides each one.
        (
            "net 192.1.0.0/24",
            (0..FLOWS)
                .filter(|i| (0xc000_0000 + i) >> 8 == 0xc0_0100)
                .count(),
        ),
        (
            "net 10.1.0.0/20",
            (0..FLOWS)
                .filter(|i| i % 3 == 1 && (i >> 8) & 0xff < 16)
                .count(),
        ),
        (
            "net 192.1.0.0/16 or net 10.1.0.0/16",
            (0..FLOWS)
                .filter(|i| (0xc000_0000 + i) >> 16 == 0xc001 || i % 3 == 1)
                .count(),
        ),
        (
            "net 192.0.0.0/16 and net 10.0.0.0/16",
            (0..FLOWS)
                .filter(|i| (0xc000_0000 + i) >> 16 == 0xc000 && i % 3 == 0)
                .count(),
        ),
        (
            "net 10.1.0.0/16 and port 443",
            (0..FLOWS).filter(|i| i % 3 == 1 && i % 5 == 0).count(),
        ),
        (
            "rst and not port 443",
            (0..FLOWS).filter(|i| i % 7 == 0 && i % 5 != 0).count(),
        ),
        ("rst", rst),
    ] {
        let counted = run(&db, &["flows", filter, "--count"]);
        let listed = run(&db, &["flows", filter, "--format", "jsonl"]);
        assert_eq!(
            counted.stdout.trim(),
            want.to_string(),
            "--count of {filter:?}: {}",
            counted.stderr
        );
        assert_eq!(listed.stdout.lines().count(), want, "listing of {filter:?}");
    }
}

/// A time-ordered listing of captures of many pages each, interleaved in time: pages read ahead on the helper
/// thread (`store::prefetch`) and by the listing thread still come out as one merge by first time, each flow
/// once. The two captures' flows alternate, so a page taken out of turn or twice shows at once.
#[test]
fn pages_read_ahead_keep_time_order_across_captures() {
    use std::net::Ipv4Addr;
    use traceflow::synth::{eth_ipv4_tcp, Segment};
    const FLOWS: u32 = 5_000; // about five pages a capture
    let dir = tempfile::tempdir().unwrap();
    let mut caps = Vec::new();
    for c in 0..2u32 {
        let frames: Vec<_> = (0..FLOWS)
            .map(|i| {
                let seg = Segment {
                    src: Ipv4Addr::from(0x0a00_0000 + c * FLOWS + i),
                    sport: 2000,
                    dst: Ipv4Addr::new(192, 0, 2, 1),
                    dport: 80,
                    seq: i,
                    ack: 0,
                    flags: 0x02,
                    payload: b"",
                };
                // Capture 0 at even microseconds, capture 1 at odd ones.
                let t = 1_700_000_000_000_000_000 + i64::from(2 * i + c) * 1000;
                (t, eth_ipv4_tcp(&seg))
            })
            .collect();
        let cap = dir.path().join(format!("c{c}.pcap"));
        std::fs::write(&cap, super::util::pcap(1, 65535, &frames)).unwrap();
        caps.push(cap);
    }
    let db = dir.path().join("t.db");
    let r = super::util::ingest(&db, &["-q"], &[&caps[0], &caps[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want: Vec<String> = (0..FLOWS)
        .flat_map(|i| [i, FLOWS + i])
        .map(|n| Ipv4Addr::from(0x0a00_0000 + n).to_string())
        .collect();
    for args in [
        &["flows", "", "--format", "jsonl"][..],
        &["flows", "dst port 80", "--format", "jsonl"],
    ] {
        let out = run(&db, args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let got: Vec<String> = out
            .stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["src"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{args:?}");
        let first_wrong = got.iter().zip(&want).position(|(g, w)| g != w);
        assert_eq!(
            first_wrong, None,
            "{args:?}: order differs at row {first_wrong:?}"
        );
    }
}

/// 10,000-term filters (a host blocklist, its negation, an `and` of 10,000 `not host`, a chain of one flag, a mix
/// of every kind of term) and `net` over IPv4-mapped addresses at every prefix length 0 to 128: on `conn` (SQLite
/// or PostgreSQL), exactly the flows the Rust evaluation picks from `facts`, the flows of `sqlite` (the same
/// captures, numbered alike).
pub(super) fn long_and_mapped_filters_agree(conn: &Db, sqlite: &Db, facts: &[FlowFacts]) {
    let backend = if conn.sqlite().is_some() {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let count = |e: &Expr| read::count_flows(conn, &filter::compile(e)).unwrap();
    // Every other address of the captures, then made-up IPv4 and IPv6 ones.
    let seen: BTreeSet<IpAddr> = facts.iter().flat_map(|f| [f.src, f.dst]).collect();
    let mut addrs: Vec<IpAddr> = seen.iter().copied().step_by(2).collect();
    let mut i = 0u32;
    while addrs.len() < 10_000 {
        let a = if i.is_multiple_of(3) {
            IpAddr::from(std::net::Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i)))
        } else {
            IpAddr::from(std::net::Ipv4Addr::from(
                0x0a00_0000 | (i.wrapping_mul(7919) & 0xff_ffff),
            ))
        };
        if !seen.contains(&a) {
            addrs.push(a);
        }
        i += 1;
    }
    let hosts: Vec<String> = addrs.iter().map(|a| format!("host {a}")).collect();
    let blocklist = hosts.join(" or ");
    let not_each = hosts
        .iter()
        .map(|h| format!("not {h}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mixed = (0..10_000)
        .map(|i| {
            let f = &facts[i * 7 % facts.len()];
            match i % 6 {
                0 => format!("src host {}", f.src),
                1 => format!("dst port {}", f.dport),
                2 => ["syn", "fin", "rst"][i / 6 % 3].to_string(),
                3 => format!("packets = {}", f.packets),
                4 => format!("dst host {}", f.dst),
                _ => format!("(src port {} and bytes > {})", f.sport, f.bytes),
            }
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let flags = vec!["syn"; 10_000].join(" or ");
    let cases = [
        ("blocklist", blocklist.clone()),
        ("not blocklist", format!("not ({blocklist})")),
        ("and of not host", not_each),
        ("syn or syn ...", flags),
        ("mixed", mixed),
    ];
    for (name, text) in cases {
        let e = filter::parse(&text, 0).unwrap_or_else(|err| panic!("{name}: {err}"));
        let want = by_rust(facts, sqlite, &e);
        let t = std::time::Instant::now();
        let n = count(&e);
        let counted = t.elapsed();
        let t = std::time::Instant::now();
        let got = by_sql(conn, &e);
        let listed = t.elapsed();
        assert_eq!(n, want.len() as i64, "{name} on {backend}: count");
        assert_eq!(got, want, "{name} on {backend}: flows");
        eprintln!(
            "{name} (10,000 terms) on {backend}: {} of {} flows, count {counted:.2?}, listing {listed:.2?}",
            want.len(),
            facts.len()
        );
    }
    // The blocklist picks some flows and leaves others.
    let e = filter::parse(&blocklist, 0).unwrap();
    let picked = by_rust(facts, sqlite, &e).len();
    assert!(picked > 0 && picked < facts.len(), "{picked}");

    // `net` at every prefix over mapped addresses, the zero address and the corpus's own IPv6 addresses.
    let v4 = facts.iter().find(|f| f.src.is_ipv4()).unwrap().src;
    let v6 = facts.iter().find(|f| f.src.is_ipv6()).map(|f| f.src);
    let nets = [mapped(IpAddr::from([0u8, 0, 0, 0])), mapped(v4)];
    for net in nets.into_iter().chain(v6) {
        for p in 0..=128u8 {
            for d in [Dir::Either, Dir::Src] {
                let e = Expr::Net(d, net, p);
                let e = filter::parse(&text(&e), 0).unwrap();
                assert_eq!(
                    count(&e),
                    by_rust(facts, sqlite, &e).len() as i64,
                    "{} on {backend}",
                    text(&e)
                );
            }
        }
    }
    // As tcpdump, an IPv6 network short of /96 holds IPv6 hosts only, written mapped or not.
    let by_text = |s: &str| count(&filter::parse(s, 0).unwrap());
    let v6_in_0_8 = facts
        .iter()
        .filter(|f| {
            [f.src, f.dst]
                .iter()
                .any(|a| matches!(a, IpAddr::V6(x) if x.to_ipv4_mapped().is_none() && x.octets()[0] == 0))
        })
        .count() as i64;
    assert_eq!(by_text("net ::ffff:0.0.0.0/8"), v6_in_0_8, "{backend}");
    assert_eq!(by_text("net ::/8"), v6_in_0_8, "{backend}");
    // From /96 on, a mapped network is the IPv4 one.
    assert_eq!(
        by_text("net ::ffff:0.0.0.0/96"),
        by_text("net 0.0.0.0/0"),
        "{backend}"
    );
    assert_eq!(
        by_text(&format!("net {}/104", mapped(v4))),
        by_text(&format!("net {v4}/8")),
        "{backend}"
    );
}

#[test]
fn long_filters_and_mapped_networks_match_a_plain_evaluation() {
    let (_, db, facts) = corpus_db();
    let conn = store::Db::Sqlite(store::open_read(db).unwrap());
    long_and_mapped_filters_agree(&conn, &conn, facts);
}

/// A filter nested past the bound is refused with one line that says so (exit 2), not a stack overflow; one at
/// the bound runs, and gives what the same filter without the nesting gives.
#[test]
fn deep_nesting_is_refused_with_a_message() {
    let (_, db, _) = corpus_db();
    let deep = [
        format!("{}syn{}", "(".repeat(10_458), ")".repeat(10_458)),
        format!("{}syn", "!".repeat(20_896)),
        format!("{}syn{}", "not (".repeat(5_000), ")".repeat(5_000)),
        format!("{}syn{}", "(".repeat(257), ")".repeat(257)),
    ];
    for f in &deep {
        let r = tf_flows(db, &[f, "--count"]);
        assert_eq!(r.code, 2, "{}: {}", &f[..20], r.stderr);
        let first = r.stderr.lines().next().unwrap_or("");
        assert!(
            first.contains("nests too deeply") && first.contains("256"),
            "{first}"
        );
        // The filter is not echoed whole under the message.
        assert!(r.stderr.len() < 600, "{} bytes", r.stderr.len());
        assert!(r.stdout.is_empty());
    }
    let syn = tf_flows(db, &["syn", "--count"]);
    assert_eq!(syn.code, 0, "{}", syn.stderr);
    for f in [
        format!("{}syn{}", "(".repeat(256), ")".repeat(256)),
        format!("{}syn", "not ".repeat(256)),
        format!("{}syn{}", "not (".repeat(128), ")".repeat(128)),
    ] {
        let r = tf_flows(db, &[&f, "--count"]);
        assert_eq!((r.code, &r.stdout), (0, &syn.stdout), "{}", r.stderr);
    }
}

/// Deep SQL runs on SQLite for flows and connections (whose `EXISTS` halves the depth SQLite takes) and gives
/// what the Rust evaluation gives: 256 `not` (the nesting bound), 60 levels of `not (` around 63 other terms
/// each; 80 such levels, within the nesting bound, are refused as too deep for SQL before SQLite refuses them.
#[test]
fn the_deepest_accepted_filter_runs_in_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("c.pcap");
    std::fs::write(&cap, super::util::pcap_conversations(40, super::util::T0)).unwrap();
    let db = tmp.path().join("t.db");
    let r = super::util::ingest(&db, &["--connections"], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let nested = |levels: usize| {
        let mut f = "syn".to_string();
        for l in 0..levels {
            let others: Vec<String> = (0..63)
                .map(|i| format!("packets = {}", l * 64 + i))
                .collect();
            f = format!("not ({} or {f})", others.join(" or "));
        }
        f
    };
    let conn = store::Db::Sqlite(store::open_read(&db).unwrap());
    let facts = facts(&conn);
    let all = read::count_connections(&conn, &filter::compile(&Expr::All)).unwrap();
    assert!(all > 0);
    for text in [
        nested(60),
        format!("{}syn", "not ".repeat(256)),
        format!("{}syn{}", "not (".repeat(128), ")".repeat(128)),
    ] {
        let e = filter::parse(&text, 0).unwrap();
        let c = filter::compile(&e);
        let want = by_rust(&facts, &conn, &e);
        assert_eq!(read::count_flows(&conn, &c).unwrap(), want.len() as i64);
        assert_eq!(by_sql(&conn, &e), want);
        let n = read::count_connections(&conn, &c).unwrap();
        assert!(n <= all, "{n} of {all}");
    }
    let err = filter::parse(&nested(80), 0).unwrap_err();
    assert!(err.message.contains("too deep for SQL"), "{err}");
}
