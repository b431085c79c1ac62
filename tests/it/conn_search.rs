//! Connection searches: the flow buckets with `connection_flows` for selective filters, the other captures'
//! connections tested one by one, and sorted listings with a limit walking an index, against the plain
//! evaluation (each connection of the database tested for a matching flow, in SQL written here, ordered as
//! `connections --sort` documents), on SQLite and PostgreSQL: rows, order (ties included) and counts. Databases
//! made by the schema before `connection_flows` are upgraded and searched alike.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use traceflow::filter::Compiled;
use traceflow::store::read::FlowSort;
use traceflow::store::rows::ConnRow;
use traceflow::store::{Db, Target};
use traceflow::synth::{eth_ipv4_tcp, Segment};

use super::postgres::PgDb;
use super::util::{corpus, ingest, pcap, run, T0};

/// The order of each sort, as docs/commands.md describes `connections --sort`: most first, then by first frame
/// time, capture and connection number.
fn order(sort: FlowSort) -> &'static str {
    match sort {
        FlowSort::Time => "x.first_ns, x.capture_id, x.conn_no",
        FlowSort::Bytes => {
            "(x.orig_frame_bytes + x.resp_frame_bytes) DESC, x.first_ns, x.capture_id, x.conn_no"
        }
        FlowSort::Packets => {
            "(x.orig_pkts + x.resp_pkts) DESC, x.first_ns, x.capture_id, x.conn_no"
        }
        FlowSort::Duration => "(x.last_ns - x.first_ns) DESC, x.first_ns, x.capture_id, x.conn_no",
    }
}

const SORTS: [FlowSort; 4] = [
    FlowSort::Time,
    FlowSort::Bytes,
    FlowSort::Packets,
    FlowSort::Duration,
];
const LIMITS: [Option<u64>; 5] = [None, Some(1), Some(7), Some(20), Some(100_000)];

/// The filters checked: selective ones (buckets of hosts, nets and ports), ones whose buckets hold most of
/// some capture's flows, and ones without buckets.
const FILTERS: [&str; 26] = [
    "",
    "host 10.9.9.9",
    "src host 10.9.9.9",
    "dst host 10.9.9.9",
    "port 443",
    "dst port 22",
    "port 443 or port 22",
    "host 10.9.9.9 and port 443",
    "host 10.9.9.9 or host 10.1.0.7",
    "net 10.9.0.0/16",
    "net 10.200.0.0/24 and port 8080",
    "portrange 20-25",
    "port 443 and not host 10.9.9.9",
    "host 10.9.9.9 and bytes > 300",
    "host 10.9.9.9 and rst",
    "port 80 and packets > 8",
    "capture c2.pcap and port 443",
    "capture c3.pcap",
    "not port 80",
    "rst",
    "syn and port 8080",
    "packets > 9",
    "duration > 1ms",
    "port 9999",
    "host 192.0.2.77",
    "host 10.0.0.80 or host 192.168.1.10 or port 21",
];

/// The frames of synthetic capture `k` (1 to 4): `n` connections, each begun 1 ms after the previous one (so
/// that first times tie across captures), with payloads, packet counts and durations that repeat (ties in
/// every sort). Host 10.9.9.9 is 2% of the clients in captures 1 and 4 and 60% in capture 2 (whose buckets
/// then hold most of its flows), absent from capture 3; port 443 is rare except in capture 3. Every 97th
/// connection is reset after its handshake and opened again on the same ports: its client's flow is then in
/// two connections.
fn synth_frames(k: u32, n: u32) -> Vec<(i64, Vec<u8>)> {
    let mut frames = Vec::new();
    for i in 0..n {
        let busy = match k {
            1 | 4 => i % 50 == 0,
            2 => i % 5 < 3,
            _ => false,
        };
        let client = if busy {
            Ipv4Addr::new(10, 9, 9, 9)
        } else {
            Ipv4Addr::new(10, k as u8, (i / 200) as u8, (i % 200 + 1) as u8)
        };
        let server = Ipv4Addr::new(10, 200, 0, (i % 5 + 1) as u8);
        let ports = [80, 80, 22, 8080, 80, 25, 80, 80, 80, 443];
        let dport = if k == 3 && i % 5 != 0 {
            443
        } else {
            ports[((i * 7 + k) % 10) as usize]
        };
        let sport = 20000 + i as u16;
        let data = [b"x".repeat(100), b"y".repeat(200), Vec::new()];
        let payload = &data[(i % 3) as usize];
        let rounds = (i * 13 + k) % 4;
        let step = 50_000 * (1 + i64::from(i % 5));
        let mut t = T0 + i64::from(i) * 1_000_000;
        let c = |seq, ack, flags, payload: &[u8]| {
            eth_ipv4_tcp(&Segment {
                src: client,
                sport,
                dst: server,
                dport,
                seq,
                ack,
                flags,
                payload,
            })
        };
        let s = |seq, ack, flags, payload: &[u8]| {
            eth_ipv4_tcp(&Segment {
                src: server,
                sport: dport,
                dst: client,
                dport: sport,
                seq,
                ack,
                flags,
                payload,
            })
        };
        let mut push = |f: Vec<u8>| {
            frames.push((t, f));
            t += step;
        };
        if i % 97 == 3 {
            push(c(100, 0, 0x02, b""));
            push(s(900, 101, 0x12, b""));
            push(c(101, 901, 0x04, b""));
        }
        let len = payload.len() as u32;
        push(c(1000, 0, 0x02, b""));
        push(s(5000, 1001, 0x12, b""));
        push(c(1001, 5001, 0x10, b""));
        let mut seq = 1001;
        for _ in 0..rounds {
            push(c(seq, 5001, 0x18, payload));
            seq += len;
            push(s(5001, seq, 0x10, b""));
        }
        push(c(seq, 5001, 0x11, b""));
        push(s(5001, seq + 1, 0x11, b""));
        push(c(seq + 1, 5002, 0x10, b""));
    }
    frames.sort_by_key(|f| f.0);
    frames
}

/// The four synthetic captures, c1.pcap to c4.pcap, of 2,400 connections each (over 4,096 flows, so that the
/// planner's rule for large captures applies).
fn synth_captures(dir: &Path) -> Vec<PathBuf> {
    (1..=4)
        .map(|k| {
            let p = dir.join(format!("c{k}.pcap"));
            std::fs::write(&p, pcap(1, 65535, &synth_frames(k, 2400))).unwrap();
            p
        })
        .collect()
}

/// A SQLite database of `inputs` with its connections built.
fn sqlite_db(db: &Path, inputs: &[&Path]) {
    let r = ingest(db, &["--connections"], inputs);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// The listing of `filter` in `sort` order, at most `limit`.
fn listing(db: &Db, filter: &Compiled, sort: FlowSort, limit: Option<u64>) -> Vec<ConnRow> {
    let mut out = Vec::new();
    db.search_connections(filter, sort, limit, &mut |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    out
}

fn compile(filter: &str) -> Compiled {
    traceflow::filter::compile(&traceflow::filter::parse(filter, 0).unwrap())
}

/// The plain evaluation on SQLite: every connection tested for a flow that matches.
fn sqlite_oracle(db: &Path) -> impl Fn(&Compiled, Option<(FlowSort, Option<u64>)>) -> Vec<i64> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    move |f, listing| {
        let exists = format!(
            "FROM connections x WHERE EXISTS (SELECT 1 FROM json_each('[' || x.flows || ']') j
                 CROSS JOIN flows f WHERE f.capture_id = x.capture_id AND f.flow_no = j.value AND ({}))",
            f.condition
        );
        let p = rusqlite::params_from_iter(f.params.iter());
        match listing {
            None => vec![c
                .query_row(&format!("SELECT count(*) {exists}"), p, |r| r.get(0))
                .unwrap()],
            Some((sort, limit)) => {
                let limit = limit.map_or(-1, |l| l as i64);
                c.prepare(&format!(
                    "SELECT x.capture_id, x.conn_no {exists} ORDER BY {} LIMIT {limit}",
                    order(sort)
                ))
                .unwrap()
                .query_map(p, |r| Ok(r.get::<_, i64>(0)? << 32 | r.get::<_, i64>(1)?))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
        }
    }
}

/// A filter's parameters as PostgreSQL values.
fn pg_values(params: &[rusqlite::types::Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    use rusqlite::types::Value;
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Value::Null => Box::new(None::<i64>),
                Value::Integer(i) => Box::new(*i),
                Value::Real(f) => Box::new(*f),
                Value::Text(t) => Box::new(t.clone()),
                Value::Blob(b) => Box::new(b.clone()),
            }
        })
        .collect()
}

/// The plain evaluation on PostgreSQL.
fn pg_oracle(url: &str) -> impl Fn(&Compiled, Option<(FlowSort, Option<u64>)>) -> Vec<i64> {
    let c = std::cell::RefCell::new(postgres::Client::connect(url, postgres::NoTls).unwrap());
    move |f, listing| {
        let exists = format!(
            "FROM connections x WHERE EXISTS (SELECT 1 FROM flows f
                 WHERE f.capture_id = x.capture_id AND f.flow_no = ANY (x.flow_nos) AND ({}) OFFSET 0)",
            f.condition_with(|n| format!("${n}"))
        );
        let vals = pg_values(&f.params);
        let p: Vec<&(dyn postgres::types::ToSql + Sync)> =
            vals.iter().map(|b| b.as_ref() as _).collect();
        let mut c = c.borrow_mut();
        match listing {
            None => vec![c
                .query_one(&format!("SELECT count(*) {exists}"), &p)
                .unwrap()
                .get(0)],
            Some((sort, limit)) => {
                let limit = limit.map_or("ALL".to_string(), |l| l.to_string());
                c.query(
                    &format!(
                        "SELECT x.capture_id, x.conn_no {exists} ORDER BY {} LIMIT {limit}",
                        order(sort)
                    ),
                    &p,
                )
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0) << 32 | r.get::<_, i64>(1))
                .collect()
            }
        }
    }
}

/// The plain evaluation: a filter's count (`None`), or its connections (`capture_id << 32 | conn_no`) in a
/// sort, at most a limit.
type Oracle = dyn Fn(&Compiled, Option<(FlowSort, Option<u64>)>) -> Vec<i64>;

/// Every filter, sort and limit gives the oracle's connections in the oracle's order, each row as the listing of
/// every connection has it, and the oracle's count. Returns how many listings were not empty.
fn agree(db: &Db, oracle: &Oracle, filters: &[&str], what: &str) -> usize {
    let all: BTreeMap<i64, ConnRow> = listing(db, &compile(""), FlowSort::Time, None)
        .into_iter()
        .map(|r| (r.capture_id << 32 | r.conn, r))
        .collect();
    assert!(all.len() > 100, "{what}: {} connections", all.len());
    let mut nonempty = 0;
    for f in filters {
        let c = compile(f);
        for sort in SORTS {
            for limit in LIMITS {
                let got = listing(db, &c, sort, limit);
                let keys: Vec<i64> = got.iter().map(|r| r.capture_id << 32 | r.conn).collect();
                assert_eq!(
                    keys,
                    oracle(&c, Some((sort, limit))),
                    "{what}: connections {f:?} --sort {sort:?} --limit {limit:?}"
                );
                for r in &got {
                    assert_eq!(
                        Some(r),
                        all.get(&(r.capture_id << 32 | r.conn)),
                        "{what}: {f:?}"
                    );
                }
                nonempty += usize::from(!got.is_empty());
            }
        }
        assert_eq!(
            vec![db.count_connections(&c).unwrap()],
            oracle(&c, None),
            "{what}: connections {f:?} --count"
        );
    }
    nonempty
}

/// Over the conformance corpus and four synthetic captures of 2,400 connections, on SQLite.
#[test]
fn sqlite_connection_searches_match_the_plain_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let synth = tmp.path().join("s.db");
    sqlite_db(
        &synth,
        &caps.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    // A flow in two connections (the reset ones): the mapping has more rows than the connections' flows.
    let shared = super::util::count(
        &synth,
        "SELECT count(*) FROM (SELECT 1 FROM connection_flows GROUP BY capture_id, flow_no HAVING count(*) > 1)",
    );
    assert!(shared >= 4 * 24, "{shared} flows in several connections");
    let db = Db::open_read(&Target::of(&synth)).unwrap();
    let n = agree(&db, &sqlite_oracle(&synth), &FILTERS, "synthetic");
    assert!(n > FILTERS.len() * 10, "{n} listings with rows");

    let c = tmp.path().join("c.db");
    sqlite_db(&c, &[&corpus()]);
    let db = Db::open_read(&Target::of(&c)).unwrap();
    let corpus_filters = [
        "",
        "port 80",
        "port 443",
        "host 192.168.1.1",
        "net 10.0.0.0/8",
        "dst port 80 or src port 22",
        "syn and not port 80",
        "packets > 5",
    ];
    agree(&db, &sqlite_oracle(&c), &corpus_filters, "corpus");
}

/// The same on PostgreSQL, whose rows are also SQLite's.
#[test]
fn pg_connection_searches_match_the_plain_evaluation() {
    let pg = PgDb::new("conn_search");
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let inputs: Vec<&Path> = caps.iter().map(PathBuf::as_path).collect();
    let r = ingest(pg.path(), &[], &inputs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let db = Db::open_read(&Target::of(pg.path())).unwrap();
    let n = agree(&db, &pg_oracle(&pg.url), &FILTERS, "PostgreSQL");
    assert!(n > FILTERS.len() * 10, "{n} listings with rows");
    let lite = tmp.path().join("s.db");
    sqlite_db(&lite, &inputs);
    let lite = Db::open_read(&Target::of(&lite)).unwrap();
    for f in ["host 10.9.9.9", "port 443", ""] {
        for sort in SORTS {
            assert_eq!(
                listing(&db, &compile(f), sort, Some(50)),
                listing(&lite, &compile(f), sort, Some(50)),
                "{f:?} {sort:?}"
            );
        }
    }
}

/// Which path a search takes, seen in its results: a mapping row deleted by hand hides its connection from a
/// search that reads the mapping (a capture with bucket candidates) and from no other. Host 10.9.9.9 is 2% of
/// capture 1's flows (candidates) and 60% of capture 2's (read whole). The listing with a limit walks the index
/// of its order (the plan `explain_connections` shows for it).
fn the_bucket_path_is_taken_for_selective_filters(db: &Path, sql: &mut dyn FnMut(&str)) {
    let target = Target::of(db);
    let keys = |f: &str| -> Vec<(i64, i64)> {
        let d = Db::open_read(&target).unwrap();
        let mut k: Vec<(i64, i64)> = listing(&d, &compile(f), FlowSort::Time, None)
            .iter()
            .map(|r| (r.capture_id, r.conn))
            .collect();
        k.sort_unstable();
        k
    };
    let count = |f: &str| {
        Db::open_read(&target)
            .unwrap()
            .count_connections(&compile(f))
            .unwrap()
    };
    let before = keys("host 10.9.9.9");
    let first = |cid| before.iter().find(|k| k.0 == cid).copied().unwrap();
    let (one, two) = (first(1), first(2));
    let n = count("host 10.9.9.9");
    for (cid, conn) in [one, two] {
        sql(&format!(
            "DELETE FROM connection_flows WHERE capture_id = {cid} AND conn_no = {conn}"
        ));
    }
    let after = keys("host 10.9.9.9");
    assert!(
        !after.contains(&one),
        "capture 1 did not read connection_flows"
    );
    assert!(after.contains(&two), "capture 2 read connection_flows");
    assert_eq!(after.len() + 1, before.len());
    assert_eq!(count("host 10.9.9.9") + 1, n);
    // No bucket list for `packets > 0`: every capture tests its connections.
    assert_eq!(keys("packets > 0").len(), keys("").len());
    let d = Db::open_read(&target).unwrap();
    for sort in SORTS {
        let plans = d.explain_connections(&compile(""), sort).unwrap();
        let (sql, plan) = plans
            .iter()
            .find(|(s, _)| s.starts_with("-- with --limit"))
            .unwrap();
        let text = plan.join("\n");
        assert!(text.contains("connections_by_"), "{sort:?}: {sql}\n{text}");
        // SQLite: the outer loop is the index, and there is one sort fewer than in the listing without a limit
        // (the labels' own ORDER BY remains).
        if plan[0].starts_with("SCAN") {
            assert!(plan[0].contains("connections_by_"), "{sort:?}: {text}");
            let sorts = |p: &[String]| p.iter().filter(|l| l.contains("TEMP B-TREE")).count();
            let plain = &plans[plans.len() - 2].1;
            assert!(sorts(plan) < sorts(plain), "{sort:?}: {text}");
        }
    }
}

#[test]
fn sqlite_takes_the_bucket_path_for_selective_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let db = tmp.path().join("s.db");
    sqlite_db(&db, &[&caps[0], &caps[1]]);
    let c = rusqlite::Connection::open(&db).unwrap();
    the_bucket_path_is_taken_for_selective_filters(&db, &mut |sql| c.execute_batch(sql).unwrap());
}

#[test]
fn pg_takes_the_bucket_path_for_selective_filters() {
    let pg = PgDb::new("conn_path");
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let r = ingest(pg.path(), &[], &[&caps[0], &caps[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut c = pg.client();
    the_bucket_path_is_taken_for_selective_filters(pg.path(), &mut |sql| {
        c.batch_execute(sql).unwrap()
    });
}

/// `forget` takes a capture's mapping with it, and a connection deleted by hand its own rows.
#[test]
fn forget_and_a_deleted_connection_leave_no_mapping_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let db = tmp.path().join("s.db");
    sqlite_db(&db, &[&caps[0], &caps[1]]);
    let mapped = |cid: i64| {
        super::util::count(
            &db,
            &format!("SELECT count(*) FROM connection_flows WHERE capture_id = {cid}"),
        )
    };
    assert!(mapped(1) > 4800 && mapped(2) > 4800);
    let r = run(&db, &["forget", &caps[0].display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mapped(1), 0);
    let before = mapped(2);
    let its_flows = super::util::count(
        &db,
        "SELECT count(DISTINCT value) FROM connections x, json_each('[' || x.flows || ']')
         WHERE x.capture_id = 2 AND x.conn_no = 5",
    );
    assert!(its_flows >= 1);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "DELETE FROM connections WHERE capture_id = 2 AND conn_no = 5",
        [],
    )
    .unwrap();
    assert_eq!(mapped(2), before - its_flows);
    assert_eq!(
        super::util::count(
            &db,
            "SELECT count(*) FROM connection_flows m WHERE NOT EXISTS
                 (SELECT 1 FROM connections x WHERE x.capture_id = m.capture_id AND x.conn_no = m.conn_no)"
        ),
        0
    );
}

/// The same for `forget` on PostgreSQL.
#[test]
fn pg_forget_leaves_no_mapping() {
    let pg = PgDb::new("conn_forget");
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let r = ingest(pg.path(), &[], &[&caps[0], &caps[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mapped = |cid: i64| {
        pg.count(&format!(
            "SELECT count(*) FROM connection_flows WHERE capture_id = {cid}"
        ))
    };
    assert!(mapped(1) > 4800 && mapped(2) > 4800);
    let r = run(pg.path(), &["forget", &caps[0].display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mapped(1), 0);
    assert!(mapped(2) > 4800);
}

/// A SQLite database of schema 10 (made by its migrations, holding an ingest's rows) is upgraded by the next
/// writer, its connections mapped, and searched as the plain evaluation searches it.
#[test]
fn a_schema_10_sqlite_database_is_upgraded_and_searched() {
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let now = tmp.path().join("now.db");
    sqlite_db(&now, &[&caps[0], &caps[1]]);
    let old = tmp.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        // The functions 0003 and 0005 call on the rows they backfill (there are none here).
        for (name, n) in [("traceflow_addr_key", 1), ("traceflow_community_id", 5)] {
            c.create_scalar_function(
                name,
                n,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                |_| Ok(None::<i64>),
            )
            .unwrap();
        }
        for m in [
            include_str!("../../migrations/0001_init.sql"),
            include_str!("../../migrations/0002_label_in_flows.sql"),
            include_str!("../../migrations/0003_flow_search.sql"),
            include_str!("../../migrations/0004_views.sql"),
            include_str!("../../migrations/0005_connections.sql"),
            include_str!("../../migrations/0006_forget.sql"),
            include_str!("../../migrations/0007_endpoints.sql"),
            include_str!("../../migrations/0008_flow_buckets.sql"),
            include_str!("../../migrations/0009_label_derived.sql"),
            include_str!("../../migrations/0010_flow_index_by_capture.sql"),
        ] {
            c.execute_batch(m).unwrap();
        }
        c.pragma_update(None, "user_version", 10).unwrap();
        c.execute("ATTACH ?1 AS now", [now.display().to_string()])
            .unwrap();
        let tables: Vec<String> = c
            .prepare("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(tables.iter().any(|t| t == "connections"), "{tables:?}");
        assert!(
            !tables.iter().any(|t| t == "connection_flows"),
            "{tables:?}"
        );
        for t in tables {
            let cols: Vec<String> = c
                .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let cols = cols.join(", ");
            c.execute_batch(&format!(
                "INSERT INTO main.{t} ({cols}) SELECT {cols} FROM now.{t}"
            ))
            .unwrap();
        }
        c.execute_batch("DETACH now").unwrap();
    }
    // A read command does not upgrade; the next ingest does.
    let r = run(&old, &["connections", "--count"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    let r = ingest(&old, &["--connections"], &[&caps[2]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let version = super::util::count(&old, "SELECT user_version FROM pragma_user_version");
    assert_eq!(version as usize, traceflow::store::SCHEMA_VERSION);
    let db = Db::open_read(&Target::of(&old)).unwrap();
    agree(&db, &sqlite_oracle(&old), &FILTERS[..12], "upgraded");
    assert_eq!(
        super::util::count(
            &old,
            "SELECT count(DISTINCT capture_id) FROM connection_flows"
        ),
        3
    );
}

/// A PostgreSQL database of schema 3 (made by its migrations, holding an ingest's rows) is upgraded by the next
/// writer and searched as the plain evaluation searches it.
#[test]
fn a_schema_3_pg_database_is_upgraded_and_searched() {
    let now = PgDb::new("conn_up_now");
    let old = PgDb::new("conn_up_old");
    let tmp = tempfile::tempdir().unwrap();
    let caps = synth_captures(tmp.path());
    let r = ingest(now.path(), &[], &[&caps[0], &caps[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut from = now.client();
    let mut to = old.client();
    for m in [
        include_str!("../../migrations/postgres/0001_schema.sql"),
        include_str!("../../migrations/postgres/0002_frame_chunks.sql"),
        include_str!("../../migrations/postgres/0003_connection_flow_nos.sql"),
    ] {
        to.batch_execute(m).unwrap();
    }
    to.batch_execute(
        "CREATE TABLE traceflow_schema (version BIGINT NOT NULL); INSERT INTO traceflow_schema VALUES (3)",
    )
    .unwrap();
    let tables: Vec<String> = to
        .query(
            "SELECT table_name::TEXT FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'traceflow_schema'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !tables.iter().any(|t| t == "connection_flows"),
        "{tables:?}"
    );
    for t in &tables {
        use std::io::{Read, Write};
        let cols: String = to
            .query_one(
                "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
                 FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER'",
                &[t],
            )
            .unwrap()
            .get(0);
        let mut rows = Vec::new();
        from.copy_out(&format!("COPY (SELECT {cols} FROM {t}) TO STDOUT"))
            .unwrap()
            .read_to_end(&mut rows)
            .unwrap();
        let mut w = to
            .copy_in(&format!("COPY {t} ({cols}) FROM STDIN"))
            .unwrap();
        w.write_all(&rows).unwrap();
        w.finish().unwrap();
    }
    to.batch_execute(
        "SELECT setval(pg_get_serial_sequence('captures', 'id'), (SELECT max(id) FROM captures));
         SELECT setval('capture_paths_added', (SELECT max(added) FROM capture_paths))",
    )
    .unwrap();
    let r = ingest(old.path(), &[], &[&caps[2]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        old.count("SELECT max(version) FROM traceflow_schema") as usize,
        traceflow::store::PG_SCHEMA_VERSION
    );
    assert_eq!(
        old.count("SELECT count(DISTINCT capture_id) FROM connection_flows"),
        3
    );
    let db = Db::open_read(&Target::of(old.path())).unwrap();
    agree(&db, &pg_oracle(&old.url), &FILTERS[..12], "upgraded");
}
