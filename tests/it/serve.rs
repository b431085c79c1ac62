//! `traceflow serve` over HTTP: the server is started as a user starts it (`--bind 127.0.0.1:0`, the URL read
//! from its stdout) on a database of the conformance corpus, and asked with a minimal HTTP/1.1 client. Its
//! answers are checked against the command line's for the same filter (counts, rows, pcap bytes), the
//! histogram against a brute-force count, and every security point (token, cookie, Host, methods, headers).
//! The real-browser tests (tests/browser/, Playwright on Debian's chromium) run from here too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::util::{corpus, ingest, run, tf};

/// A running server, stopped (SIGINT, as Ctrl-C) when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    token: String,
}

impl Server {
    pub(crate) fn start(db: &Path, extra: &[&str]) -> Server {
        let mut child = tf(db)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim();
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("serve printed {url:?}, not a URL"));
        let (addr, q) = rest.split_once("/?token=").unwrap();
        assert_eq!(q.len(), 32, "a 128-bit token in hex: {url}");
        Server {
            child,
            addr: addr.to_string(),
            token: q.to_string(),
        }
    }

    pub(crate) fn cookie(&self) -> String {
        let port = self.addr.rsplit(':').next().unwrap();
        format!("traceflow_{port}={}", self.token)
    }

    /// GET `path` with the token cookie.
    pub(crate) fn get(&self, path: &str) -> Resp {
        http(&self.addr, "GET", path, &[("Cookie", &self.cookie())])
    }

    pub(crate) fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        serde_json::from_slice(&r.body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("serve did not stop within 10 s of Ctrl-C");
    }
}

/// An HTTP response.
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-encodes a query value.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One request on its own connection (`Connection: close`), the body de-chunked.
pub(crate) fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let nl = at + body[at..].windows(2).position(|w| w == b"\r\n").unwrap();
            let size_text = String::from_utf8_lossy(&body[at..nl]).into_owned();
            let size =
                usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&body[nl + 2..nl + 2 + size]);
            at = nl + 2 + size + 2;
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// The conformance corpus in one database, with its connections built (by the command line, before any server
/// opens it).
pub(crate) fn corpus_db() -> &'static (tempfile::TempDir, PathBuf) {
    static DB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("corpus.db");
        ingest(&db, &[], &[&corpus()]);
        assert_eq!(ingest(&db, &["--connections"], &[]).code, 0);
        (dir, db)
    })
}

fn cli_count(db: &Path, view: &str, filter: &str) -> i64 {
    let r = run(db, &[view, filter, "--count"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.trim().parse().unwrap()
}

fn cli_labels(db: &Path, filter: &str) -> Vec<String> {
    let r = run(db, &["flows", filter, "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut v: Vec<String> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["label"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

const FILTERS: [&str; 3] = [
    "port 80",
    "host 192.168.1.1 or rst",
    "packets > 10 and not port 443",
];

#[test]
fn the_token_is_swapped_for_a_strict_cookie_and_every_route_needs_it() {
    let (_d, db) = corpus_db();
    let s = Server::start(db, &[]);
    for path in [
        "/",
        "/api/flows",
        "/assets/app.js",
        "/api/captures",
        "/nowhere",
    ] {
        let r = http(&s.addr, "GET", path, &[]);
        assert_eq!(r.status, 401, "{path} without the token");
        let r = http(
            &s.addr,
            "GET",
            path,
            &[("Cookie", &format!("{}x", s.cookie()))],
        );
        assert_eq!(r.status, 401, "{path} with a wrong cookie");
    }
    let wrong = "0".repeat(32);
    assert_eq!(
        http(&s.addr, "GET", &format!("/?token={wrong}"), &[]).status,
        401
    );
    let r = http(
        &s.addr,
        "GET",
        &format!("/?view=connections&token={}", s.token),
        &[],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/?view=connections"),
        "the token leaves the URL"
    );
    let set = r.header("set-cookie").unwrap();
    assert!(set.starts_with(&format!("{}; ", s.cookie())), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("/assets/app.js"));
}

#[test]
fn only_get_and_head_from_an_allowed_host_with_strict_headers() {
    let (_d, db) = corpus_db();
    let s = Server::start(db, &[]);
    let c = s.cookie();
    for m in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = http(
            &s.addr,
            m,
            "/api/flows",
            &[("Cookie", &c), ("Content-Length", "0")],
        );
        assert_eq!(r.status, 405, "{m}");
    }
    assert_eq!(http(&s.addr, "HEAD", "/", &[("Cookie", &c)]).status, 200);
    // A page of another site whose name now resolves to 127.0.0.1 (DNS rebinding) sends its own Host.
    let r = http(
        &s.addr,
        "GET",
        "/api/flows",
        &[("Cookie", &c), ("Host", "attacker.example:80")],
    );
    assert_eq!(r.status, 421);
    let port = s.addr.rsplit(':').next().unwrap();
    let r = http(
        &s.addr,
        "GET",
        "/api/flows",
        &[("Cookie", &c), ("Host", &format!("localhost:{port}"))],
    );
    assert_eq!(r.status, 200);
    for path in ["/", "/api/flows?filter=port+80", "/assets/app.js"] {
        let r = s.get(path);
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
}

#[test]
fn counts_and_rows_are_the_command_lines_for_the_same_filter() {
    let (_d, db) = corpus_db();
    let s = Server::start(db, &[]);
    for f in FILTERS {
        let want = cli_count(db, "flows", f);
        assert!(want > 0 && want < 10_000, "{f}: {want}");
        let got = s.json(&format!("/api/count?filter={}", enc(f)));
        assert_eq!(got["count"], want, "{f}");
        assert_eq!(got["exact"], true);
        let got = s.json(&format!(
            "/api/count?view=connections&exact=1&filter={}",
            enc(f)
        ));
        assert_eq!(got["count"], cli_count(db, "connections", f), "{f}");
        // Every page, 7 rows at a time, for each order: together the command line's flows, each once.
        for sort in ["time", "bytes", "packets", "duration"] {
            let mut labels = Vec::new();
            let mut after = String::new();
            loop {
                let p = s.json(&format!(
                    "/api/flows?limit=7&sort={sort}&filter={}&after={}",
                    enc(f),
                    enc(&after)
                ));
                let rows = p["rows"].as_array().unwrap();
                labels.extend(
                    rows.iter()
                        .map(|r| r["label"].as_str().unwrap().to_string()),
                );
                match p["next"].as_str() {
                    Some(n) => after = n.to_string(),
                    None => break,
                }
            }
            assert_eq!(labels.len() as i64, want, "{f} by {sort}");
            labels.sort();
            assert_eq!(labels, cli_labels(db, f), "{f} by {sort}");
        }
    }
    // A sorted page is the command line's first rows.
    let cli = run(
        db,
        &[
            "flows", "port 80", "--sort", "bytes", "--limit", "10", "--format", "json",
        ],
    );
    let cli: serde_json::Value = serde_json::from_str(&cli.stdout).unwrap();
    let page = s.json("/api/flows?filter=port+80&sort=bytes&limit=10");
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("capture_id");
        v.as_object_mut().unwrap().remove("flow_no");
        v
    };
    let rows: Vec<_> = page["rows"].as_array().unwrap().iter().map(strip).collect();
    assert_eq!(serde_json::Value::Array(rows), cli);
}

#[test]
fn a_bad_filter_gives_the_parsers_message_and_caret() {
    let (_d, db) = corpus_db();
    let s = Server::start(db, &[]);
    let r = s.get(&format!(
        "/api/flows?filter={}",
        enc("host 10.0.0.1 and port x")
    ));
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let cli = run(db, &["flows", "host 10.0.0.1 and port x"]);
    assert_eq!(cli.code, 2);
    assert!(
        cli.stderr.contains(v["filter"]["caret"].as_str().unwrap()),
        "{}",
        cli.stderr
    );
    assert!(cli
        .stderr
        .contains(v["filter"]["message"].as_str().unwrap()));
    assert_eq!(v["filter"]["column"], 23);
    let r = s.get("/api/flows?limit=100000");
    assert_eq!(r.status, 400, "pages are bounded");
    let r = s.get("/api/flows?after=1;DROP");
    assert_eq!(r.status, 400);
}

#[test]
fn downloads_are_the_command_lines_pcaps_byte_for_byte() {
    let (_d, db) = corpus_db();
    let s = Server::start(db, &[]);
    for (f, fmt) in [
        ("port 80", "pcapng"),
        ("capture v6-http.pcap", "pcap"),
        ("port 21 or port 25", "pcapng"),
    ] {
        let r = s.get(&format!("/api/download?format={fmt}&filter={}", enc(f)));
        assert_eq!(r.status, 200);
        let out = tf(db)
            .args(["flows", f, &format!("--{fmt}"), "-"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(out.stdout.len() > 100);
        assert!(
            r.body == out.stdout,
            "{f} as {fmt}: {} bytes, the command line {}",
            r.body.len(),
            out.stdout.len()
        );
    }
    // CSV of chosen columns: the command line's rows, those columns.
    let r = s.get("/api/download?format=csv&filter=port+80&columns=label,bytes");
    let text = String::from_utf8(r.body).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.remove(0), "label,bytes");
    let cli = run(db, &["flows", "port 80", "--format", "jsonl"]);
    let want: Vec<String> = cli
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{},{}", v["label"].as_str().unwrap(), v["bytes"])
        })
        .collect();
    assert_eq!(lines, want);
    let check = s.json("/api/download/check?filter=port+80");
    assert_eq!(check["flows_without_source"], 0);
}

#[test]
fn the_histogram_counts_each_flow_in_every_bucket_it_overlaps() {
    let (_d, db) = corpus_db();
    let s = Server::start(db, &[]);
    let f = "port 80 or port 443";
    let h = s.json(&format!("/api/histogram?buckets=50&filter={}", enc(f)));
    let (lo, width) = (h["lo"].as_i64().unwrap(), h["width"].as_i64().unwrap());
    let counts: Vec<i64> = h["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    // Brute force over the command line's flows and their times.
    let cli = run(db, &["flows", f, "--format", "jsonl"]);
    let mut want = vec![0i64; 50];
    for l in cli.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let ns = |k: &str| traceflow::filter::parse_time(v[k].as_str().unwrap()).unwrap();
        let (a, b) = (
            (ns("first_time") - lo) / width,
            (ns("last_time") - lo) / width,
        );
        for slot in &mut want[a.clamp(0, 49) as usize..=b.clamp(0, 49) as usize] {
            *slot += 1;
        }
    }
    assert_eq!(counts, want);
    assert!(counts.iter().filter(|c| **c > 0).count() > 3);
}

#[test]
fn the_server_never_writes_and_says_which_command_builds_connections() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.db");
    // A capture name a page must show as text.
    let cap = dir.path().join("<script>alert(1)<\u{7}.pcap");
    traceflow::synth::write_sample(&cap, 3).unwrap();
    ingest(&db, &[], &[&cap]);
    let before = std::fs::read(&db).unwrap();
    {
        let s = Server::start(&db, &[]);
        let c = s.json("/api/connections");
        assert_eq!(c["rows"].as_array().unwrap().len(), 0);
        let msg = c["unbuilt"]["message"].as_str().unwrap();
        assert!(
            msg.contains("ingest --connections") && msg.contains("never"),
            "{msg}"
        );
        let caps = s.json("/api/captures");
        assert_eq!(caps["rows"][0]["name"], "<script>alert(1)<\u{7}.pcap");
        assert_eq!(caps["rows"][0]["connections_built"], false);
        let r = s.get("/api/captures");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let f = s.json("/api/flows");
        let first = &f["rows"][0];
        let one = s.json(&format!(
            "/api/flow?capture={}&label={}",
            first["capture_id"],
            enc(first["label"].as_str().unwrap())
        ));
        assert_eq!(
            one["frames"].as_array().unwrap().len() as i64,
            first["packets"].as_i64().unwrap()
        );
        assert!(one["tree"].as_str().unwrap().starts_with("Frame "));
    }
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database changed"
    );
}

#[test]
fn captures_ingested_while_it_runs_appear_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let (a, b) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"));
    traceflow::synth::write_sample(&a, 3).unwrap();
    std::fs::write(
        &b,
        crate::util::pcap_conversations(5, crate::util::T0 + 10_000_000_000),
    )
    .unwrap();
    ingest(&db, &[], &[&a]);
    let s = Server::start(&db, &["--readers", "1"]);
    assert_eq!(s.json("/api/captures")["rows"].as_array().unwrap().len(), 1);
    let before = s.json("/api/count")["count"].as_i64().unwrap();
    let r = ingest(&db, &[], &[&b]);
    assert_eq!(r.code, 0, "an ingest beside the server: {}", r.stderr);
    assert_eq!(s.json("/api/captures")["rows"].as_array().unwrap().len(), 2);
    assert_eq!(s.json("/api/count")["count"].as_i64().unwrap(), before + 10);
}

#[test]
fn a_query_past_its_deadline_is_stopped_and_the_server_goes_on() {
    // Enough flows that an exact count takes longer than the timer's millisecond.
    let dir = tempfile::tempdir().unwrap();
    let (cap, db) = (dir.path().join("big.pcap"), dir.path().join("big.db"));
    traceflow::synth::write_sample(&cap, 40_000).unwrap();
    ingest(&db, &[], &[&cap]);
    let s = Server::start(&db, &["--deadline", "0.000001"]);
    let r = s.get("/api/histogram?buckets=2000&filter=packets+%3E+0+or+bytes+%3E+1");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("narrow the filter"));
    // The connection it used is interrupted, not lost: the next query on it answers (or stops) cleanly.
    let r = s.get("/api/captures");
    assert!([200, 503].contains(&r.status));
}

/// The conformance corpus on PostgreSQL (its connections are built by the ingest).
pub(crate) fn pg_corpus() -> &'static crate::postgres::PgDb {
    static DB: OnceLock<crate::postgres::PgDb> = OnceLock::new();
    DB.get_or_init(|| {
        let db = crate::postgres::PgDb::new("serve");
        let r = ingest(db.path(), &[], &[&corpus()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        db
    })
}

#[test]
fn pg_serve_answers_as_on_sqlite() {
    let (_d, sq) = corpus_db();
    let pg = pg_corpus();
    let (a, b) = (Server::start(sq, &[]), Server::start(pg.path(), &[]));
    // Capture ids may differ between the two databases; everything else must not.
    let strip = |mut v: serde_json::Value| {
        fn walk(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    m.remove("capture_id");
                    m.remove("next");
                    m.values_mut().for_each(walk);
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
                _ => {}
            }
        }
        walk(&mut v);
        v
    };
    for f in FILTERS
        .iter()
        .chain(&["", "community-id 1:Y6I3JhgebNYJ7cm/dvZaIvCLNoU="])
    {
        for q in [
            format!("/api/count?exact=1&filter={}", enc(f)),
            format!("/api/count?view=connections&exact=1&filter={}", enc(f)),
            format!("/api/flows?sort=bytes&limit=1000&filter={}", enc(f)),
            format!("/api/flows?limit=1000&filter={}", enc(f)),
            format!("/api/connections?sort=packets&limit=1000&filter={}", enc(f)),
            format!("/api/histogram?buckets=300&filter={}", enc(f)),
            format!("/api/groups?by=pair&limit=1000&filter={}", enc(f)),
            format!(
                "/api/groups?by=conn-state&view=connections&sort=packets&filter={}",
                enc(f)
            ),
            format!("/api/groups?by=conn-state&sort=time&filter={}", enc(f)),
        ] {
            assert_eq!(strip(a.json(&q)), strip(b.json(&q)), "{q}");
        }
        let q = format!("/api/download?format=pcapng&filter={}", enc(f));
        assert!(a.get(&q).body == b.get(&q).body, "{q}");
    }
}

#[test]
fn pg_the_page_in_a_real_browser() {
    browser_run(pg_corpus().path(), "postgres");
}

/// The venv of the browser tests (scripts/test.sh makes it).
fn browser_python() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/venv-browser/bin/python"
    ))
}

#[test]
fn the_page_in_a_real_browser() {
    let (_d, db) = corpus_db();
    browser_run(db, "sqlite");
}

/// Runs tests/browser/test_page.py over `db`.
fn browser_run(db: &Path, which: &str) {
    let py = browser_python();
    assert!(
        py.exists() && Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's chromium and the venv {}: run scripts/test.sh (it installs both)",
        py.display()
    );
    let shots =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots")).join(which);
    std::fs::create_dir_all(&shots).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("traceflow");
    let out = Command::new(&py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/test_page.py"
        ))
        .env("TRACEFLOW_BIN", &bin)
        .env("TRACEFLOW_TEST_DB", db)
        .env("TRACEFLOW_SHOTS", &shots)
        .env_remove("TRACEFLOW_DB")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser tests failed:\n{text}");
    assert!(text.contains("browser: all checks passed"), "{text}");
}

#[test]
fn pages_from_the_bucket_candidates_are_in_the_sorted_querys_order() {
    candidate_pages(&corpus_db().1);
}

#[test]
fn pg_pages_from_the_bucket_candidates_are_in_the_sorted_querys_order() {
    candidate_pages(pg_corpus().path());
}

/// Every page of a host or port filter, read from the bucket candidates and sorted by the server, is the
/// sorted query's page of the same flows, in every sort.
fn candidate_pages(db: &Path) {
    let s = Server::start(db, &[]);
    // `packets < 0` matches nothing but names no host or port, so the second filter has the same flows and is
    // read by the single sorted query rather than from the flow buckets' candidates.
    for (f, oracle) in [
        ("port 80", "port 80 or packets < 0"),
        (
            "host 192.168.1.1 or port 443",
            "host 192.168.1.1 or port 443 or packets < 0",
        ),
    ] {
        for sort in ["time", "bytes", "packets", "duration"] {
            let label = |r: &serde_json::Value| r["label"].as_str().unwrap().to_string();
            let want: Vec<String> = s.json(&format!(
                "/api/flows?limit=1000&sort={sort}&filter={}",
                enc(oracle)
            ))["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(label)
                .collect();
            assert!(want.len() > 7 && want.len() < 1000, "{f}: {}", want.len());
            let (mut got, mut after) = (Vec::new(), String::new());
            loop {
                let p = s.json(&format!(
                    "/api/flows?limit=7&sort={sort}&filter={}&after={}",
                    enc(f),
                    enc(&after)
                ));
                got.extend(p["rows"].as_array().unwrap().iter().map(label));
                assert!(
                    got.len() <= want.len(),
                    "{f} by {sort}: pages go on past the rows"
                );
                match p["next"].as_str() {
                    Some(n) => after = n.to_string(),
                    None => break,
                }
            }
            assert_eq!(got, want, "{f} by {sort}");
        }
    }
}
