//! `traceflow serve`'s limits, over HTTP as a client meets them: a query whose client goes away is interrupted
//! (SQLite's interrupt; PostgreSQL's cancel, seen in `pg_stat_activity`) and its reader is free again; at most so
//! many queries wait for a reader; a request too large is refused with its status and a line saying why. Also,
//! on the same large database, the reads split over every core (the histogram and the group-by of every flow)
//! against SQLite's own evaluation.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::serve::{http, Server};
use crate::util::ingest;

/// 200,000 flows of the repository's sample capture.
fn capture() -> &'static (tempfile::TempDir, PathBuf) {
    static CAP: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    CAP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("big.pcap");
        traceflow::synth::write_sample(&cap, 100_000).unwrap();
        (dir, cap)
    })
}

fn sqlite_db() -> &'static (tempfile::TempDir, PathBuf) {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("big.db");
        assert_eq!(ingest(&db, &[], &[&capture().1]).code, 0);
        (dir, db)
    })
}

/// A group-by whose filter every flow is tested against term by term (2,800 sizes): a second or more of work
/// on one reader, in a target under the request-size limit (`+` for the spaces).
fn slow_path() -> String {
    let terms: Vec<String> = (0..2800)
        .map(|i| format!("bytes+%3D+{}", 90_000 + i))
        .collect();
    let path = format!("/api/groups?by=dport&filter={}", terms.join("+or+"));
    assert!(path.len() < 60 * 1024, "{}", path.len());
    path
}

/// Sends a GET of `path` on a connection of its own and returns it unread.
fn send(s: &Server, path: &str) -> TcpStream {
    let mut c = TcpStream::connect(&s.addr).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\r\n",
        s.addr,
        s.cookie()
    );
    c.write_all(req.as_bytes()).unwrap();
    c
}

/// How long the slow query takes to its end, on a server of one reader.
fn full_time(s: &Server) -> Duration {
    let t = Instant::now();
    let r = s.get(&slow_path());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let full = t.elapsed();
    assert!(
        full >= Duration::from_millis(1000),
        "the slow query took only {full:?}: the fixture must be slower for this test to mean anything"
    );
    full
}

/// The client of a slow query goes away: the server's one reader answers the next request long before the
/// query would have ended.
#[test]
fn a_query_whose_client_goes_away_is_interrupted() {
    let s = Server::start(&sqlite_db().1, &["--readers", "1", "--deadline", "120"]);
    let full = full_time(&s);
    let c = send(&s, &slow_path());
    std::thread::sleep(Duration::from_millis(300));
    drop(c);
    let t = Instant::now();
    let r = s.get("/api/captures");
    let freed = t.elapsed();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        freed < full / 2,
        "the reader came free {freed:?} after the client left; the query takes {full:?}"
    );
}

/// The same on PostgreSQL, seen from the server's side, with two readers running the same slow query side by
/// side under the same load: the one whose client leaves is gone from `pg_stat_activity` while the one started
/// before it still runs. Without the cancel it would run to its end, after the first.
#[test]
fn pg_a_query_whose_client_goes_away_is_cancelled() {
    let pg = crate::postgres::PgDb::new("serve_gone");
    assert_eq!(ingest(pg.path(), &[], &[&capture().1]).code, 0);
    let s = Server::start(pg.path(), &["--readers", "2", "--deadline", "120"]);
    let mut watch = pg.client();
    let mut active = || -> Vec<i32> {
        watch
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%sum(f.packets)%'",
                // (the server shows a query's first 1 KiB: the grouping's totals come before its long filter)
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    // Waits for a running query other than `known`'s; its backend's pid.
    let mut seen = |known: &[i32]| -> i32 {
        let t = Instant::now();
        loop {
            if let Some(p) = active().into_iter().find(|p| !known.contains(p)) {
                return p;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the query never showed in pg_stat_activity"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let first = send(&s, &slow_path());
    let a = seen(&[]);
    let started = Instant::now();
    let second = send(&s, &slow_path());
    let b = seen(&[a]);
    drop(second);
    let t = Instant::now();
    loop {
        let now = active();
        if !now.contains(&b) {
            assert!(
                now.contains(&a),
                "the query whose client left ran on ({:?}) until the one started before it ({:?} ago) had ended",
                t.elapsed(),
                started.elapsed()
            );
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the query whose client left still runs after 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    while active().contains(&a) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let ran = started.elapsed();
    drop(first);
    assert!(
        ran >= Duration::from_millis(900),
        "the query ran only {ran:?}: the fixture must be slower for this test to mean anything"
    );
    let r = s.get("/api/captures");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

/// Every flow's (first_ns, last_ns) and group-by columns, read with SQLite's own SQL: the oracle of the reads
/// the server splits over threads.
fn every_flow(db: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// The histogram of every flow, tallied a range at a time on every core, is the flow-by-flow count of each
/// bucket; and the group-bys tallied likewise are SQLite's GROUP BY of the same flows.
#[test]
fn the_reads_of_every_flow_split_over_threads_are_sqlites_own() {
    let db = &sqlite_db().1;
    let c = every_flow(db);
    let total: i64 = c
        .query_row("SELECT count(*) FROM flow_rows", [], |r| r.get(0))
        .unwrap();
    assert!(
        total >= 200_000,
        "{total} flows: too few to split over threads"
    );
    let s = Server::start(db, &[]);
    let buckets = 97usize;
    let h = s.json(&format!("/api/histogram?buckets={buckets}"));
    let (lo, width) = (h["lo"].as_i64().unwrap(), h["width"].as_i64().unwrap());
    let got: Vec<i64> = h["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let mut want = vec![0i64; buckets];
    let mut st = c
        .prepare("SELECT first_ns, last_ns FROM flow_rows")
        .unwrap();
    let mut rows = st.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let (a, b): (i64, i64) = (r.get(0).unwrap(), r.get(1).unwrap());
        let top = buckets as i64 - 1;
        let (a, b) = (
            ((a - lo) / width).clamp(0, top),
            ((b - lo) / width).clamp(0, top),
        );
        for slot in &mut want[a as usize..=b as usize] {
            *slot += 1;
        }
    }
    assert_eq!(got, want);
    assert!(got.iter().any(|&n| n > 0));
    for (by, col) in [("src", "src"), ("dport", "dport"), ("sport", "sport")] {
        for sort in ["bytes", "packets", "time"] {
            let order = match sort {
                "bytes" => "sum(bytes) DESC",
                "packets" => "sum(packets) DESC",
                _ => "min(first_ns)",
            };
            let sql = format!(
                "SELECT {col}, count(*), sum(packets), sum(bytes) FROM flow_rows
                 GROUP BY 1 ORDER BY {order}, 1 LIMIT 40"
            );
            let want: Vec<(String, i64, i64, i64)> = c
                .prepare(&sql)
                .unwrap()
                .query_map([], |r| {
                    let k: rusqlite::types::Value = r.get(0)?;
                    let k = match k {
                        rusqlite::types::Value::Integer(i) => i.to_string(),
                        rusqlite::types::Value::Text(t) => t,
                        other => format!("{other:?}"),
                    };
                    Ok((k, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let g = s.json(&format!("/api/groups?by={by}&sort={sort}&limit=40"));
            let got: Vec<(String, i64, i64, i64)> = g["rows"]
                .as_array()
                .unwrap_or_else(|| panic!("{g}"))
                .iter()
                .map(|r| {
                    let k = match &r[by] {
                        serde_json::Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    let n = |f: &str| r[f].as_i64().unwrap();
                    (k, n("flows"), n("packets"), n("bytes"))
                })
                .collect();
            assert_eq!(got, want, "group by {by}, sort {sort}");
        }
    }
}

/// One reader runs a query and sixteen wait: the next is refused at once with 503 and a line, and when
/// their clients leave the server answers again.
#[test]
fn queries_beyond_the_waiting_limit_are_refused() {
    let s = Server::start(&sqlite_db().1, &["--readers", "1", "--deadline", "120"]);
    let running = send(&s, &slow_path());
    std::thread::sleep(Duration::from_millis(300));
    let waiting: Vec<TcpStream> = (0..16).map(|_| send(&s, "/api/captures")).collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let r = s.get("/api/captures");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.starts_with("busy: 1 queries are running and 16 waiting"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "refused at once, not after a wait"
    );
    drop(waiting);
    drop(running);
    // The server sees the clients leave as their connections close, a moment after: it answers again within
    // seconds, not after the slow query's own end.
    let t = Instant::now();
    loop {
        let r = s.get("/api/captures");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still busy 10 s after every client left: {}",
            String::from_utf8_lossy(&r.body)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A target past the limit, headers past theirs, and a body: each refused with its status and one line, before
/// any token is looked at; hyper's own bound past 64 KiB still holds.
#[test]
fn requests_too_large_are_refused_with_a_reason() {
    let (_d, db) = crate::serve::corpus_db();
    let s = Server::start(db, &[]);
    let cookie = s.cookie();
    let long = format!("/api/flows?filter={}", "a".repeat(61 * 1024));
    for (path, headers, status, says) in [
        (
            long.as_str(),
            vec![("Cookie", cookie.clone())],
            414,
            "more than the 61440 taken",
        ),
        (long.as_str(), vec![], 414, "shorten the filter"),
        (
            "/api/captures",
            vec![("Cookie", cookie.clone()), ("X-Pad", "p".repeat(70 * 1024))],
            431,
            "more than the 65536 taken",
        ),
        (
            "/api/captures",
            vec![("Cookie", cookie.clone()), ("Content-Length", "0".into())],
            200,
            "",
        ),
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = http(&s.addr, "GET", path, &h);
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, status, "{text}");
        assert!(text.contains(says), "{text}");
        if status != 200 {
            assert_eq!(text.trim_end().lines().count(), 1, "{text}");
        }
    }
    // A body, announced: refused without being read.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    let req = format!(
        "GET /api/captures HTTP/1.1\r\nHost: {}\r\nCookie: {cookie}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        s.addr
    );
    c.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut c, &mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("takes no request body"), "{raw}");
    // Past hyper's own bound of the target: refused all the same.
    let huge = format!("/api/flows?filter={}", "a".repeat(70 * 1024));
    assert_eq!(http(&s.addr, "GET", &huge, &[]).status, 414);
}
