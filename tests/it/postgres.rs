//! The PostgreSQL backend (`--db postgresql://...`), against a real server: the conformance checker, the same
//! output as SQLite for every read command (and the same capture ids with --jobs N), concurrent ingests into one
//! database, SIGKILL in the middle of an ingest, a reader during an ingest, and the error messages of bad URLs,
//! servers and schemas.
//!
//! Every test needs the server named by TRACEFLOW_TEST_PG (scripts/test.sh starts one); without it the test
//! fails and says how to run it. Each test works in a database of its own, `tf_<test>_<pid>`, dropped at the end
//! when the test passes (kept for a look when it fails), so that the tests run in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{
    conformance, corpus, ingest, pcap_conversations, run, tf, wait_bounded, Run, T0,
};
use serde_json::Value;

const HOW: &str = "the PostgreSQL tests need a server: run `bash scripts/test.sh`, which starts one, or start a \
                   private cluster with `eval \"$(bash scripts/pg-cluster.sh start)\"` and then run \
                   `cargo test --release` in that shell";

/// TRACEFLOW_TEST_PG: the URL of the server's `postgres` database, as a superuser.
fn server() -> String {
    match std::env::var("TRACEFLOW_TEST_PG") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("TRACEFLOW_TEST_PG is not set: {HOW}"),
    }
}

/// `url` with its path (the database name) replaced by `/name`: libpq's URL form
/// `postgresql://[userinfo@][host][:port][/dbname][?params]`.
fn with_database(url: &str, name: &str) -> String {
    let start = url
        .find("://")
        .expect("TRACEFLOW_TEST_PG is not a postgresql:// URL")
        + 3;
    let rest = &url[start..];
    let query = rest.find('?').unwrap_or(rest.len());
    let path = rest[..query].find('/').unwrap_or(query);
    format!(
        "{}{}/{}{}",
        &url[..start],
        &rest[..path],
        name,
        &rest[query..]
    )
}

/// `url` with its user info (`user[:password]`) replaced by `userinfo`.
fn with_user(url: &str, userinfo: &str) -> String {
    let start = url.find("://").unwrap() + 3;
    let rest = &url[start..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host_start = rest[..auth_end].rfind('@').map_or(0, |a| a + 1);
    format!("{}{userinfo}@{}", &url[..start], &rest[host_start..])
}

/// The server's socket folder: the `host=` parameter of TRACEFLOW_TEST_PG, else TRACEFLOW_TEST_PG_DIR.
fn socket_dir() -> String {
    let url = server();
    url.split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("host=")))
        .map(str::to_string)
        .or_else(|| std::env::var("TRACEFLOW_TEST_PG_DIR").ok())
        .unwrap_or_else(|| panic!("TRACEFLOW_TEST_PG has no host= socket folder: {HOW}"))
}

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to {url}: {e} ({HOW})"))
}

/// A fresh database of the test's own on the server; dropped when the test passes.
pub(crate) struct PgDb {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl PgDb {
    pub(crate) fn new(test: &str) -> PgDb {
        let name = format!("tf_{test}_{}", std::process::id());
        assert!(name.len() < 64, "{name}: too long for a database name");
        let mut admin = client(&server());
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = with_database(&server(), &name);
        PgDb { name, url }
    }

    /// The URL as util's helpers take a database: a `&Path`.
    pub(crate) fn path(&self) -> &Path {
        Path::new(&self.url)
    }

    pub(super) fn client(&self) -> postgres::Client {
        client(&self.url)
    }

    /// One integer from SQL over the database.
    pub(crate) fn count(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).unwrap().get(0)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept database {} for a look ({})", self.name, self.url);
            return;
        }
        if let Ok(mut admin) = postgres::Client::connect(&server(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A run that must succeed; its stdout.
fn ok(db: &Path, args: &[&str]) -> String {
    let r = run(db, args);
    assert_eq!(r.code, 0, "{} {args:?}: {}", db.display(), r.stderr);
    r.stdout
}

fn json(db: &Path, args: &[&str]) -> Value {
    let out = ok(db, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// `captures --format json` without `ingested_at`, which differs between two ingests.
fn captures_stable(db: &Path) -> Result<String, String> {
    let r = run(db, &["captures", "--format", "json"]);
    if r.code != 0 {
        return Err(format!("exit {}: {}", r.code, r.stderr.trim()));
    }
    let mut v: Value = serde_json::from_str(&r.stdout).map_err(|e| format!("{e}: {}", r.stdout))?;
    for c in v.as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("ingested_at");
    }
    Ok(serde_json::to_string_pretty(&v).unwrap())
}

/// `traceflow ingest ARGS...` started in the background, with its output piped.
fn spawn_ingest(db: &Path, args: &[&str]) -> Child {
    tf(db)
        .arg("ingest")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The conformance captures that have an expected index, sorted.
fn corpus_names() -> Vec<String> {
    let dir = conformance();
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| dir.join("expected").join(format!("{n}.json")).exists())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Conformance

/// The shared checker, ingesting into a fresh PostgreSQL database. (check.py passes no extra arguments to the
/// ingest, so `--max-open-flows 1` is not covered here; tests/it/conformance.rs covers it on SQLite.)
#[test]
fn pg_conformance_check_script_is_exact() {
    let db = PgDb::new("conformance");
    let n = corpus_names().len();
    assert!(n >= 200, "expected about 205 captures, found {n}");
    let out = Command::new("python3")
        .arg(conformance().join("check.py"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_traceflow"))
        .arg("--db")
        .arg(&db.url)
        .stdin(Stdio::null())
        .output()
        .expect("python3 is needed to run ../shared/conformance/check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!("conformance: {n}/{n} captures exact"),
        "check.py --db {}:\n{stdout}\n{stderr}",
        db.url
    );
    assert!(out.status.success(), "check.py: {:?}\n{stderr}", out.status);
    assert_eq!(
        db.count("SELECT count(*) FROM captures WHERE hash IS NULL"),
        0
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The same output on both backends

/// The same captures in a SQLite file and in a PostgreSQL database: 20 corpus captures (no two with the same
/// content, so that both number them alike) in one ingest, then one generated capture ingested with --embed.
struct Both {
    tmp: tempfile::TempDir,
    sqlite: PathBuf,
    pg: PgDb,
}

impl Both {
    fn new(test: &str) -> Both {
        let tmp = tempfile::tempdir().unwrap();
        let sqlite = tmp.path().join("both.db");
        let pg = PgDb::new(test);
        // The variants are other encodings of corpus captures; leave them out so that every content is new.
        let names: Vec<String> = corpus_names()
            .into_iter()
            .filter(|n| !n.starts_with("variant-"))
            .collect();
        let step = names.len() / 20;
        let picked: Vec<PathBuf> = names
            .iter()
            .step_by(step)
            .take(20)
            .map(|n| corpus().join(n))
            .collect();
        assert_eq!(picked.len(), 20);
        let inputs: Vec<&Path> = picked.iter().map(PathBuf::as_path).collect();
        let embedded = tmp.path().join("embedded.pcap");
        std::fs::write(&embedded, pcap_conversations(25, T0 + 5_000_000_000)).unwrap();
        for db in [sqlite.as_path(), pg.path()] {
            // PostgreSQL always builds the connections; SQLite with --connections.
            let r = ingest(db, &["--connections"], &inputs);
            assert!(r.code != 2, "ingest into {}: {}", db.display(), r.stderr);
            let r = ingest(db, &["--embed", "--connections"], &[&embedded]);
            assert_eq!(
                r.code,
                0,
                "ingest --embed into {}: {}",
                db.display(),
                r.stderr
            );
        }
        let n = |db: &Path| {
            json(db, &["captures", "--format", "json"])
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(
            n(&sqlite),
            21,
            "20 distinct corpus captures and the embedded one"
        );
        Both { tmp, sqlite, pg }
    }

    fn pg(&self) -> &Path {
        self.pg.path()
    }

    /// A scratch path for a backend's output file.
    fn file(&self, backend: &str, name: &str) -> PathBuf {
        let d = self.tmp.path().join(backend);
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }
}

/// Differences between the backends, gathered so that one run reports all of them.
#[derive(Default)]
struct Diffs(Vec<String>);

impl Diffs {
    /// `what` gave `sqlite` on SQLite and `pg` on PostgreSQL.
    fn same(&mut self, what: &str, sqlite: &[u8], pg: &[u8]) {
        if sqlite != pg {
            let show = |b: &[u8]| {
                let s = String::from_utf8_lossy(b);
                let s: String = s.chars().take(300).collect();
                format!("{} bytes: {s:?}", b.len())
            };
            self.0.push(format!(
                "{what}:\n    SQLite     {}\n    PostgreSQL {}",
                show(sqlite),
                show(pg)
            ));
        }
    }

    /// The same command on both: exit status and stdout.
    fn command(&mut self, b: &Both, args: &[&str]) -> (Run, Run) {
        let (s, p) = (run(&b.sqlite, args), run(b.pg(), args));
        if s.code != 0 {
            self.0
                .push(format!("{args:?} fails on SQLite: {}", s.stderr.trim()));
        }
        if p.code != s.code {
            self.0.push(format!(
                "{args:?}: exit {} on PostgreSQL, {} on SQLite: {}",
                p.code,
                s.code,
                p.stderr.trim()
            ));
        } else {
            self.same(
                &format!("{args:?} stdout"),
                s.stdout.as_bytes(),
                p.stdout.as_bytes(),
            );
        }
        (s, p)
    }

    /// The same command on both, writing a file (the last argument names it on each backend): file bytes.
    fn file(&mut self, b: &Both, args: &[&str], name: &str) {
        let (fs, fp) = (b.file("sqlite", name), b.file("pg", name));
        let _ = std::fs::remove_file(&fs);
        let _ = std::fs::remove_file(&fp);
        let mut outs = Vec::new();
        for (db, f) in [(b.sqlite.as_path(), &fs), (b.pg(), &fp)] {
            let mut a: Vec<&str> = args.to_vec();
            a.push(f.to_str().unwrap());
            outs.push(run(db, &a));
        }
        let what = format!("{args:?} {name}");
        if outs[0].code != 0 {
            self.0
                .push(format!("{what} fails on SQLite: {}", outs[0].stderr.trim()));
        }
        if outs[1].code != outs[0].code {
            self.0.push(format!(
                "{what}: exit {} on PostgreSQL, {} on SQLite: {}",
                outs[1].code,
                outs[0].code,
                outs[1].stderr.trim()
            ));
            return;
        }
        let read = |f: &Path| std::fs::read(f).unwrap_or_default();
        self.same(&format!("{what} bytes"), &read(&fs), &read(&fp));
    }

    fn assert_none(self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} differences between SQLite and PostgreSQL:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.is_dir() {
        walk(dir, dir, &mut out);
    }
    out
}

/// (capture name, label) of a few flows: the first flow of some corpus captures, and of the embedded capture.
fn some_labels(db: &Path) -> Vec<(String, String)> {
    let caps = json(db, &["captures", "--format", "json"]);
    let mut out = Vec::new();
    for c in caps.as_array().unwrap() {
        let name = c["name"].as_str().unwrap().to_string();
        if c["flows"].as_i64().unwrap_or(0) == 0 {
            continue;
        }
        let idx = json(db, &["query", "--capture", &name, "--format", "json"]);
        let flows = idx.as_array().unwrap();
        // The first and the last flow: a capture's flows can share a label; the last one is a later entry.
        for f in [flows.first(), flows.last()].into_iter().flatten() {
            let label = f["label"].as_str().unwrap().to_string();
            if !out.contains(&(name.clone(), label.clone())) {
                out.push((name.clone(), label));
            }
        }
    }
    // Four corpus captures and the embedded one (whose frames are read from the database).
    let embedded: Vec<_> = out
        .iter()
        .filter(|(n, _)| n == "embedded.pcap")
        .cloned()
        .collect();
    assert!(!embedded.is_empty(), "the embedded capture has flows");
    let mut picked: Vec<_> = out
        .into_iter()
        .filter(|(n, _)| n != "embedded.pcap")
        .take(8)
        .collect();
    picked.extend(embedded);
    picked
}

#[test]
fn pg_captures_and_query_match_sqlite() {
    let b = Both::new("same_query");
    let mut d = Diffs::default();
    match (captures_stable(&b.sqlite), captures_stable(b.pg())) {
        (Ok(s), Ok(p)) => d.same(
            "captures --format json (without ingested_at)",
            s.as_bytes(),
            p.as_bytes(),
        ),
        (s, p) => d.0.push(format!(
            "captures --format json: SQLite {s:?}, PostgreSQL {p:?}"
        )),
    }
    // CSV too, without its last column (ingested_at).
    let csv = |db: &Path| -> String {
        let out = ok(db, &["captures", "--format", "csv"]);
        assert!(
            out.starts_with("id,") && out.lines().next().unwrap().ends_with(",ingested_at"),
            "{out}"
        );
        out.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
            .collect()
    };
    d.same(
        "captures --format csv (without ingested_at)",
        csv(&b.sqlite).as_bytes(),
        csv(b.pg()).as_bytes(),
    );
    d.command(&b, &["query", "--format", "json"]);
    d.command(&b, &["query", "--format", "csv"]);
    d.command(&b, &["query", "--format", "jsonl"]);
    d.command(&b, &["query", "--bidirectional", "--format", "json"]);
    let labels = some_labels(&b.sqlite);
    for (i, (cap, label)) in labels.iter().enumerate() {
        d.command(&b, &["query", "--capture", cap, "--format", "json"]);
        d.file(
            &b,
            &["query", "--capture", cap, "--flow", label, "-o"],
            &format!("flow{i}.pcap"),
        );
        d.file(
            &b,
            &["query", "--capture", cap, "--flow", label, "--both", "-o"],
            &format!("both{i}.pcap"),
        );
    }
    d.file(
        &b,
        &[
            "query",
            "--capture",
            "embedded.pcap",
            "--flow",
            &labels.last().unwrap().1,
            "--format",
            "pcapng",
            "-o",
        ],
        "embedded.pcapng",
    );

    // --dump over the whole database: the same files with the same bytes, and the same index printed (with
    // each backend's folder written as DIR).
    let (ds, dp) = (b.file("sqlite", "dump"), b.file("pg", "dump"));
    let (rs, rp) = (
        run(
            &b.sqlite,
            &["query", "--dump", ds.to_str().unwrap(), "--format", "pcap"],
        ),
        run(
            b.pg(),
            &["query", "--dump", dp.to_str().unwrap(), "--format", "pcap"],
        ),
    );
    assert_eq!(rs.code, 0, "query --dump on SQLite: {}", rs.stderr);
    if rp.code != 0 {
        d.0.push(format!(
            "query --dump fails on PostgreSQL: {}",
            rp.stderr.trim()
        ));
    } else {
        d.same(
            "query --dump stdout",
            rs.stdout.replace(ds.to_str().unwrap(), "DIR").as_bytes(),
            rp.stdout.replace(dp.to_str().unwrap(), "DIR").as_bytes(),
        );
        let (ts, tp) = (tree(&ds), tree(&dp));
        assert!(ts.len() > 20, "{} files dumped on SQLite", ts.len());
        let names =
            |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>().join("\n");
        d.same(
            "query --dump file list",
            names(&ts).as_bytes(),
            names(&tp).as_bytes(),
        );
        for (f, bytes) in &ts {
            if let Some(other) = tp.get(f) {
                d.same(&format!("query --dump {f}"), bytes, other);
            }
        }
    }
    // --dump --both of one capture.
    let cap = &labels[0].0;
    let (ds, dp) = (b.file("sqlite", "dump-both"), b.file("pg", "dump-both"));
    let (rs, rp) = (
        run(
            &b.sqlite,
            &[
                "query",
                "--capture",
                cap,
                "--both",
                "--dump",
                ds.to_str().unwrap(),
            ],
        ),
        run(
            b.pg(),
            &[
                "query",
                "--capture",
                cap,
                "--both",
                "--dump",
                dp.to_str().unwrap(),
            ],
        ),
    );
    assert_eq!(rs.code, 0, "query --both --dump on SQLite: {}", rs.stderr);
    if rp.code != 0 {
        d.0.push(format!(
            "query --both --dump fails on PostgreSQL: {}",
            rp.stderr.trim()
        ));
    } else {
        let (ts, tp) = (tree(&ds), tree(&dp));
        d.same(
            "query --both --dump files",
            format!("{ts:?}").as_bytes(),
            format!("{tp:?}").as_bytes(),
        );
    }

    // forget one capture by name, then the list again.
    d.command(&b, &["forget", cap]);
    match (captures_stable(&b.sqlite), captures_stable(b.pg())) {
        (Ok(s), Ok(p)) => {
            assert_eq!(
                s.matches("\"name\"").count(),
                20,
                "forget left 20 captures on SQLite"
            );
            d.same("captures after forget", s.as_bytes(), p.as_bytes())
        }
        (s, p) => d.0.push(format!(
            "captures after forget: SQLite {s:?}, PostgreSQL {p:?}"
        )),
    }
    d.command(&b, &["query", "--format", "json"]);
    d.assert_none("captures, query, dumps and forget");
}

/// `flows` and `connections`: these fail until the PostgreSQL read side has them.
#[test]
fn pg_flows_and_connections_match_sqlite() {
    let b = Both::new("same_flows");
    let port80: u64 = ok(&b.sqlite, &["flows", "port 80", "--count"])
        .trim()
        .parse()
        .unwrap();
    assert!(port80 > 0, "the fixture has port 80 flows");
    let mut d = Diffs::default();
    d.command(&b, &["flows", "--format", "jsonl"]);
    d.command(
        &b,
        &[
            "flows", "--format", "json", "--sort", "bytes", "--limit", "10",
        ],
    );
    d.command(&b, &["flows", "port 80", "--count"]);
    d.command(&b, &["flows", "port 80", "--format", "csv"]);
    d.command(&b, &["flows", "--group-by", "dst", "--format", "json"]);
    d.command(&b, &["flows", "--group-by", "pair", "--format", "json"]);
    // The corpus captures picked have several link types: --pcap of the Ethernet one, --pcapng of all.
    d.file(
        &b,
        &["flows", "port 80 and capture embedded.pcap", "--pcap"],
        "port80.pcap",
    );
    d.file(&b, &["flows", "port 80", "--pcapng"], "port80.pcapng");
    d.file(&b, &["flows", "--pcapng"], "all.pcapng");
    d.command(&b, &["connections", "--format", "jsonl"]);
    d.command(&b, &["connections", "port 80", "--count"]);
    d.assert_none("flows and connections");
}

/// 10,000-host blocklists and the other long filters, and `net` over IPv4-mapped addresses at every prefix,
/// pick on PostgreSQL exactly the flows the Rust evaluation picks (`flows::long_and_mapped_filters_agree`).
#[test]
fn pg_long_filters_and_mapped_networks_match_a_plain_evaluation() {
    let b = Both::new("long_filters");
    let sqlite = traceflow::store::Db::Sqlite(traceflow::store::open_read(&b.sqlite).unwrap());
    let pg = traceflow::store::Db::open_read(&traceflow::store::Target::of(b.pg())).unwrap();
    let facts = super::flows::facts(&sqlite);
    super::flows::long_and_mapped_filters_agree(&sqlite, &sqlite, &facts);
    super::flows::long_and_mapped_filters_agree(&pg, &sqlite, &facts);
}

/// With --jobs N, SQLite numbers captures in input order, as with --jobs 1 ("results do not depend on --jobs");
/// PostgreSQL must too, since the ids show in every command's output. 60 corpus captures, --jobs 2 (two rounds)
/// and --jobs 4, each into a fresh database.
#[test]
fn pg_jobs_n_numbers_captures_as_sqlite_does() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = corpus_names()
        .into_iter()
        .filter(|n| !n.starts_with("variant-"))
        .take(60)
        .collect();
    let paths: Vec<PathBuf> = names.iter().map(|n| corpus().join(n)).collect();
    let inputs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let order = |db: &Path| -> Vec<(i64, String)> {
        json(db, &["captures", "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_i64().unwrap(),
                    c["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let sqlite_order = |jobs: &str| {
        let db = tmp.path().join(format!("jobs{jobs}.db"));
        let r = ingest(&db, &["--jobs", jobs], &inputs);
        assert_eq!(r.code, 0, "ingest --jobs {jobs} into SQLite: {}", r.stderr);
        (order(&db), captures_stable(&db).unwrap())
    };
    let (want, want_captures) = sqlite_order("1");
    assert_eq!(
        sqlite_order("4"),
        (want.clone(), want_captures.clone()),
        "SQLite: --jobs 4 as --jobs 1"
    );
    let mut differ = Vec::new();
    for (round, jobs) in ["2", "2", "4"].into_iter().enumerate() {
        let pg = PgDb::new(&format!("jobs_r{round}"));
        let r = ingest(pg.path(), &["--jobs", jobs], &inputs);
        assert_eq!(
            r.code, 0,
            "ingest --jobs {jobs} into PostgreSQL: {}",
            r.stderr
        );
        let got = order(pg.path());
        if got != want {
            let moved: Vec<String> = got
                .iter()
                .zip(&want)
                .filter(|(g, w)| g != w)
                .take(4)
                .map(|(g, w)| format!("id {} is {} (SQLite: {})", g.0, g.1, w.1))
                .collect();
            differ.push(format!(
                "--jobs {jobs} (round {round}): {} of {} ids differ, e.g. {}",
                got.iter().zip(&want).filter(|(g, w)| g != w).count(),
                want.len(),
                moved.join("; ")
            ));
        } else if captures_stable(pg.path()).unwrap() != want_captures {
            differ.push(format!(
                "--jobs {jobs} (round {round}): same ids, other captures output"
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "capture ids on PostgreSQL depend on --jobs (SQLite numbers in input order):\n{}",
        differ.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Concurrent ingests

/// (frames, flows) of every capture in a database, by content hash.
fn by_hash_sqlite(db: &Path) -> BTreeMap<String, (i64, i64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT hash, frames, flows FROM captures")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows.into_iter().collect()
}

#[test]
fn pg_four_processes_ingest_overlapping_folders() {
    let db = PgDb::new("concurrent");
    let tmp = tempfile::tempdir().unwrap();
    // A pool of 60 captures with the variants (other encodings of the same contents) among them; folder k
    // holds pool[10k .. 10k+30], so each folder shares 20 captures with the next and 10 with the one after.
    let names = corpus_names();
    let mut pool: Vec<&String> = names.iter().filter(|n| n.starts_with("variant-")).collect();
    pool.extend(names.iter().filter(|n| n.starts_with("socks")));
    for n in names.iter().step_by(4) {
        if pool.len() == 60 {
            break;
        }
        if !pool.contains(&n) {
            pool.push(n);
        }
    }
    assert_eq!(pool.len(), 60);
    // And the same bigger capture first in every folder, so that the four meet one content at the same time.
    let shared = tmp.path().join("000-shared.pcap");
    std::fs::write(&shared, pcap_conversations(3000, T0 + 77_000_000_000)).unwrap();
    let mut folders = Vec::new();
    for k in 0..4 {
        let dir = tmp.path().join(format!("folder{k}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(&shared, dir.join("000-shared.pcap")).unwrap();
        for j in 0..30 {
            let n = pool[(10 * k + j) % 60];
            std::fs::copy(corpus().join(n), dir.join(n)).unwrap();
        }
        folders.push(dir);
    }
    // The reference: all 60 into SQLite, one process.
    let sqlite = tmp.path().join("ref.db");
    let mut all: Vec<PathBuf> = pool.iter().map(|n| corpus().join(n)).collect();
    all.push(shared.clone());
    let r = ingest(
        &sqlite,
        &[],
        &all.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    assert!(r.code != 2, "reference ingest: {}", r.stderr);
    let want = by_hash_sqlite(&sqlite);

    let children: Vec<Child> = folders
        .iter()
        .map(|f| spawn_ingest(db.path(), &[f.to_str().unwrap()]))
        .collect();
    let start = Instant::now();
    let runs: Vec<Run> = children
        .into_iter()
        .enumerate()
        .map(|(k, c)| wait_bounded(c, Duration::from_secs(300), &format!("ingest folder{k}")))
        .collect();
    eprintln!("four ingests done in {:?}", start.elapsed());
    for (k, r) in runs.iter().enumerate() {
        assert!(r.code != 2, "ingest folder{k} exited 2:\n{}", r.stderr);
        eprintln!(
            "folder{k}: exit {}, {}",
            r.code,
            r.stderr.lines().last().unwrap_or("")
        );
    }

    let mut c = db.client();
    let rows = c
        .query("SELECT hash, frames, flows FROM captures", &[])
        .unwrap();
    let mut got = BTreeMap::new();
    let mut dup = Vec::new();
    for r in &rows {
        let hash: Option<String> = r.get(0);
        let hash = hash.expect("a captures row without a hash");
        if got
            .insert(hash.clone(), (r.get::<_, i64>(1), r.get::<_, i64>(2)))
            .is_some()
        {
            dup.push(hash);
        }
    }
    assert!(
        dup.is_empty(),
        "contents in captures more than once: {dup:?}"
    );
    assert_eq!(
        rows.len(),
        want.len(),
        "captures rows against distinct contents"
    );
    let missing: Vec<_> = want.keys().filter(|h| !got.contains_key(*h)).collect();
    assert!(
        missing.is_empty(),
        "contents missing from PostgreSQL: {missing:?}"
    );
    let differ: Vec<_> = want
        .iter()
        .filter(|(h, v)| got.get(*h) != Some(v))
        .map(|(h, v)| {
            format!(
                "{h}: SQLite (frames, flows) {v:?}, PostgreSQL {:?}",
                got.get(h)
            )
        })
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    let (frames, flows): (i64, i64) = want.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
    assert_eq!(
        db.count("SELECT count(*) FROM frames"),
        frames,
        "frames rows"
    );
    assert_eq!(db.count("SELECT count(*) FROM flows"), flows, "flows rows");
    // Every file of every folder is known at its path, whichever process wrote its content.
    let paths: BTreeSet<String> = c
        .query("SELECT path FROM capture_paths", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut unknown = Vec::new();
    for f in &folders {
        for e in std::fs::read_dir(f).unwrap() {
            let p = std::fs::canonicalize(e.unwrap().path()).unwrap();
            if !paths.contains(p.to_str().unwrap()) {
                unknown.push(p);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "{} of 124 paths not in capture_paths, e.g. {:?}",
        unknown.len(),
        unknown.first()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. SIGKILL mid-ingest, 5. a reader during an ingest

/// A big generated capture (about 50 MB) `dir/name`, its frames from `T0 + offset_s`, and its number of frames.
fn big_capture(dir: &Path, name: &str, offset_s: i64) -> (PathBuf, i64) {
    let frames = traceflow::synth::conversations(90_000, T0 + offset_s * 1_000_000_000);
    let n = frames.len() as i64;
    let bytes = super::util::pcap(1, 65535, &frames);
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    (p, n)
}

/// Waits (bounded) until a traceflow session on `db` is inside a transaction that has written (has an xid).
fn wait_for_writing(db: &PgDb, child: &mut Child) {
    let mut c = db.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'traceflow'
                   AND backend_xid IS NOT NULL",
                &[&db.name],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest ended before it was seen writing"
        );
        assert!(
            Instant::now() < deadline,
            "no traceflow session started writing within a minute"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) until no traceflow session is left on `db`: the server has ended a killed client's session
/// and rolled its transaction back.
fn wait_for_no_sessions(db: &PgDb) {
    let mut c = db.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'traceflow'",
                &[&db.name],
            )
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the killed ingest's session is still on the server after a minute"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every capture in the database is whole, and no row belongs to a capture that is not there. Returns the
/// captures' (name, frames).
fn assert_only_whole_captures(db: &PgDb) -> Vec<(String, i64)> {
    let mut c = db.client();
    let rows = c
        .query(
            "SELECT c.name, c.hash, c.frames, c.flows,
                    (SELECT count(*) FROM frames f WHERE f.capture_id = c.id),
                    (SELECT count(*) FROM flows f WHERE f.capture_id = c.id),
                    (SELECT count(*) FROM capture_paths p WHERE p.capture_id = c.id),
                    (SELECT count(*) FROM interfaces i WHERE i.capture_id = c.id)
             FROM captures c ORDER BY c.id",
            &[],
        )
        .unwrap();
    let mut out = Vec::new();
    for r in &rows {
        let name: String = r.get(0);
        let hash: Option<String> = r.get(1);
        let (frames, flows, nframes, nflows, npaths, nifaces): (i64, i64, i64, i64, i64, i64) =
            (r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7));
        assert!(hash.is_some(), "{name}: no hash");
        assert_eq!(
            frames, nframes,
            "{name}: captures.frames against its frames rows"
        );
        assert_eq!(
            flows, nflows,
            "{name}: captures.flows against its flows rows"
        );
        assert!(npaths >= 1, "{name}: no capture_paths row");
        assert!(nifaces >= 1, "{name}: no interfaces row");
        out.push((name, frames));
    }
    for t in [
        "frame_chunks",
        "flows",
        "frame_data",
        "interfaces",
        "capture_paths",
        "connections",
        "endpoint_protocols",
        "flow_buckets",
    ] {
        let orphans: i64 = c
            .query_one(
                &format!(
                    "SELECT count(*) FROM {t} WHERE capture_id NOT IN (SELECT id FROM captures)"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(orphans, 0, "{t} rows without a captures row");
    }
    out
}

#[test]
fn pg_sigkill_mid_ingest_leaves_only_whole_captures() {
    let db = PgDb::new("sigkill");
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small.pcap");
    let small_bytes = pcap_conversations(30, T0);
    std::fs::write(&small, &small_bytes).unwrap();
    let r = ingest(db.path(), &[], &[&small]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (big, big_frames) = big_capture(tmp.path(), "big.pcap", 50);
    let (big2, big2_frames) = big_capture(tmp.path(), "big2.pcap", 90_000);
    let (big, big2) = (big.to_str().unwrap(), big2.to_str().unwrap());
    let mb = std::fs::metadata(big).unwrap().len() as f64 / 1e6;
    // Uncommitted rows take room in the table's files: their size shows that the kill lands while frames are
    // written (frame chunks, their TOAST, and with --embed the frames' bytes).
    let frames_size = |db: &PgDb| {
        db.count(
            "SELECT pg_total_relation_size('frame_chunks') + pg_total_relation_size('frame_data')",
        )
    };

    // Three kills: half a second and a second after the capture's transaction first wrote, and a second into
    // an ingest of two big captures with --jobs 2 (a writer connection each, two transactions open).
    let rounds: [(u64, Vec<&str>); 3] = [
        (500, vec!["--embed", big]),
        (1000, vec!["--embed", big]),
        (1000, vec!["--jobs", "2", "--embed", big, big2]),
    ];
    for (round, (after, args)) in rounds.iter().enumerate() {
        let size_before = frames_size(&db);
        let mut child = spawn_ingest(db.path(), args);
        wait_for_writing(&db, &mut child);
        std::thread::sleep(Duration::from_millis(*after));
        let size_at_kill = frames_size(&db);
        let writing = db.count(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND application_name = 'traceflow'
               AND backend_xid IS NOT NULL",
            db.name
        ));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: the ingest of {mb:.0} MB ended within {after} ms of writing, before the kill"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        wait_for_no_sessions(&db);
        assert!(
            size_at_kill > size_before,
            "round {round}: no frames written yet when killed ({size_before} -> {size_at_kill} bytes)"
        );
        let caps = assert_only_whole_captures(&db);
        eprintln!(
            "round {round}: {mb:.0} MB capture killed {after} ms into its transaction, frame tables {} -> {} kB, {writing} \
             transaction(s) writing; captures {caps:?}",
            size_before / 1024,
            size_at_kill / 1024
        );
        assert_eq!(
            caps,
            vec![("small.pcap".to_string(), caps[0].1)],
            "only the small capture is in"
        );
    }
    // The server ends the killed sessions' transactions; a new ingest of the same files then succeeds.
    let child = spawn_ingest(db.path(), &["--jobs", "2", "--embed", big, big2]);
    let r = wait_bounded(child, Duration::from_secs(300), "ingest after the kills");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut caps = assert_only_whole_captures(&db);
    caps.sort(); // the id order of --jobs 2 is pg_jobs_n_numbers_captures_as_sqlite_does's matter
    assert_eq!(
        caps[..2],
        [
            ("big.pcap".to_string(), big_frames),
            ("big2.pcap".to_string(), big2_frames)
        ],
        "{caps:?}"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM frame_data d JOIN captures c ON c.id = d.capture_id WHERE c.name LIKE 'big%'"
        ),
        big_frames + big2_frames,
        "every frame of the embedded captures has its bytes"
    );
}

#[test]
fn pg_reader_during_an_ingest() {
    let db = PgDb::new("reader");
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small.pcap");
    std::fs::write(&small, pcap_conversations(30, T0)).unwrap();
    let r = ingest(db.path(), &[], &[&small]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (big, _) = big_capture(tmp.path(), "big.pcap", 50);
    let entry = |v: &Value| -> Value {
        let mut e = v
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "small.pcap")
            .cloned()
            .expect("small.pcap in captures");
        e.as_object_mut().unwrap().remove("ingested_at");
        e
    };
    let want_entry = entry(&json(db.path(), &["captures", "--format", "json"]));
    let want_index = ok(
        db.path(),
        &["query", "--capture", "small.pcap", "--format", "json"],
    );
    let want_flow = {
        let f = tmp.path().join("want.pcap");
        let label = serde_json::from_str::<Value>(&want_index).unwrap()[0]["label"]
            .as_str()
            .unwrap()
            .to_string();
        ok(
            db.path(),
            &[
                "query",
                "--capture",
                "small.pcap",
                "--flow",
                &label,
                "-o",
                f.to_str().unwrap(),
            ],
        );
        (label, std::fs::read(&f).unwrap())
    };

    let mut child = spawn_ingest(db.path(), &[big.to_str().unwrap()]);
    wait_for_writing(&db, &mut child);
    let start = Instant::now();
    let mut rounds = 0;
    let got = tmp.path().join("got.pcap");
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the ingest runs for more than 5 minutes"
        );
        let caps = run(db.path(), &["captures", "--format", "json"]);
        assert_eq!(
            caps.code, 0,
            "captures during the ingest (round {rounds}): {}",
            caps.stderr
        );
        assert_eq!(
            entry(&serde_json::from_str(&caps.stdout).unwrap()),
            want_entry
        );
        let q = run(
            db.path(),
            &["query", "--capture", "small.pcap", "--format", "json"],
        );
        assert_eq!(
            q.code, 0,
            "query during the ingest (round {rounds}): {}",
            q.stderr
        );
        assert_eq!(
            q.stdout, want_index,
            "query during the ingest (round {rounds})"
        );
        let q = run(
            db.path(),
            &[
                "query",
                "--capture",
                "small.pcap",
                "--flow",
                &want_flow.0,
                "-o",
                got.to_str().unwrap(),
            ],
        );
        assert_eq!(
            q.code, 0,
            "query --flow during the ingest (round {rounds}): {}",
            q.stderr
        );
        assert!(
            std::fs::read(&got).unwrap() == want_flow.1,
            "query --flow bytes during the ingest"
        );
        rounds += 1;
    }
    let r = wait_bounded(child, Duration::from_secs(60), "the big ingest");
    assert_eq!(r.code, 0, "{}", r.stderr);
    eprintln!(
        "{rounds} rounds of captures/query while the ingest ran ({:?})",
        start.elapsed()
    );
    assert!(
        rounds >= 3,
        "only {rounds} read rounds during the ingest: make the capture bigger"
    );
    assert_eq!(
        json(db.path(), &["captures", "--format", "json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Errors

/// `traceflow --db url ARGS...` fails with exit status 2 and a one-line message; the line.
fn error_line(url: &str, args: &[&str]) -> String {
    let r = run(Path::new(url), args);
    assert_eq!(
        r.code, 2,
        "{url} {args:?}: exit {}, stdout {:?}, stderr {:?}",
        r.code, r.stdout, r.stderr
    );
    let lines: Vec<&str> = r.stderr.trim_end().lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{url} {args:?}: one line expected:\n{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{url} {args:?}: stdout {:?}", r.stdout);
    lines[0].to_string()
}

fn assert_says(line: &str, words: &[&str]) {
    let lower = line.to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "the message does not say {w:?}: {line}"
        );
    }
}

#[test]
fn pg_url_that_does_not_parse() {
    let _ = server(); // the other error tests need the server; keep them uniform
    for args in [&["captures"][..], &["ingest", "-"][..]] {
        let line = error_line("postgresql://host:notaport/db", args);
        assert_says(&line, &["postgresql://host:notaport/db", "port"]);
    }
}

#[test]
fn pg_server_that_is_down() {
    let _ = server();
    let line = error_line("postgresql:///x?host=/nonexistent-dir", &["captures"]);
    assert_says(&line, &["/nonexistent-dir", "server"]);
    // With a password in the URL, in both of libpq's places for it.
    for url in [
        "postgresql://someone:Secret-Down-123@/x?host=/nonexistent-dir",
        "postgresql:///x?host=/nonexistent-dir&user=someone&password=Secret-Down-123",
    ] {
        let line = error_line(url, &["query"]);
        assert_says(&line, &["/nonexistent-dir", "***"]);
        assert!(
            !line.contains("Secret-Down-123"),
            "the password shows: {line}"
        );
    }
}

#[test]
fn pg_wrong_credentials() {
    let dir = socket_dir();
    // The right password works, so what fails below is the password.
    let right = format!("postgresql://tf_password:right-password@/postgres?host={dir}");
    client(&right).simple_query("SELECT 1").unwrap();
    for url in [
        format!("postgresql://tf_password:Wrong-Pass-4711@/postgres?host={dir}"),
        format!("postgresql:///postgres?host={dir}&user=tf_password&password=Wrong-Pass-4711"),
    ] {
        for args in [&["captures"][..], &["ingest", "-"][..]] {
            let line = error_line(&url, args);
            assert_says(&line, &["password", "***"]);
            assert!(
                !line.contains("Wrong-Pass-4711"),
                "the password shows: {line}"
            );
        }
    }
}

#[test]
fn pg_newer_schema_is_refused() {
    let db = PgDb::new("newer_schema");
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small.pcap");
    std::fs::write(&small, pcap_conversations(3, T0)).unwrap();
    let r = ingest(db.path(), &[], &[&small]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        db.count("SELECT max(version) FROM traceflow_schema"),
        traceflow::store::PG_SCHEMA_VERSION as i64,
        "the schema version this build writes (1 today)"
    );
    db.client()
        .batch_execute("UPDATE traceflow_schema SET version = 99")
        .unwrap();
    let other = tmp.path().join("other.pcap");
    std::fs::write(&other, pcap_conversations(4, T0 + 9)).unwrap();
    // As the superuser, and as the role with a password (which must not show).
    let with_password = with_user(&db.url, "tf_password:right-password");
    for url in [db.url.as_str(), with_password.as_str()] {
        for args in [
            &["captures"][..],
            &["query"][..],
            &["ingest", other.to_str().unwrap()][..],
            &["forget", "small.pcap"][..],
        ] {
            let line = error_line(url, args);
            assert_says(&line, &["99", "newer"]);
            assert!(
                !line.contains("right-password"),
                "the password shows: {line}"
            );
        }
    }
    assert_eq!(
        db.count("SELECT max(version) FROM traceflow_schema"),
        99,
        "the version is left alone"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM captures"),
        1,
        "nothing was ingested or forgotten"
    );
}

#[test]
fn pg_read_command_on_an_empty_database() {
    let db = PgDb::new("empty");
    for args in [
        &["captures"][..],
        &["query"][..],
        &["query", "--capture", "x.pcap", "--flow", "y"][..],
    ] {
        let line = error_line(&db.url, args);
        assert_says(&line, &["ingest"]);
    }
    let with_password = with_user(&db.url, "tf_password:right-password");
    let line = error_line(&with_password, &["captures"]);
    assert_says(&line, &["ingest", "***"]);
    assert!(
        !line.contains("right-password"),
        "the password shows: {line}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "a read command created tables"
    );
}

#[test]
fn pg_database_that_does_not_exist() {
    let url = with_database(&server(), &format!("tf_missing_{}", std::process::id()));
    let line = error_line(&url, &["captures"]);
    assert_says(&line, &["does not exist"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Schema upgrades

/// A database of PostgreSQL schema 1 (frames one row each) is upgraded in place by the next ingest, to frames
/// packed in chunks (`0002_frame_chunks.sql`), and then answers every read exactly as a database written by this
/// build does. The schema 1 database is made from a new one's rows, copied into a database created by
/// `0001_schema.sql` alone, so that both hold the same captures under the same ids.
#[test]
fn pg_schema_1_database_is_upgraded_in_place() {
    let new = PgDb::new("upgrade_new");
    let old = PgDb::new("upgrade_old");
    let tmp = tempfile::tempdir().unwrap();
    // Thousands of interleaved connections: flows whose frames lie in several chunks.
    let synth = tmp.path().join("synth.pcap");
    let frames = traceflow::synth::conversations(3000, T0);
    std::fs::write(&synth, super::util::pcap(1, 65535, &frames)).unwrap();
    let mut inputs: Vec<PathBuf> = corpus_names()
        .iter()
        .filter(|n| !n.starts_with("variant-"))
        .step_by(15)
        .map(|n| corpus().join(n))
        .collect();
    inputs.push(synth);
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let r = ingest(new.path(), &[], &inputs);
    assert!(r.code != 2, "{}", r.stderr);

    let mut from = new.client();
    let mut to = old.client();
    to.batch_execute(include_str!("../../migrations/postgres/0001_schema.sql"))
        .unwrap();
    to.batch_execute(
        "CREATE TABLE traceflow_schema (version BIGINT NOT NULL); INSERT INTO traceflow_schema VALUES (1)",
    )
    .unwrap();
    for t in [
        "captures",
        "capture_paths",
        "interfaces",
        "frames",
        "frame_data",
        "flows",
        "connections",
        "endpoint_protocols",
        "flow_buckets",
    ] {
        use std::io::{Read, Write};
        // Schema 1's columns: later schemas add some.
        let cols: String = to
            .query_one(
                "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
                &[&t],
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
    let v1_frames = old.count("SELECT count(*) FROM frames");
    assert!(v1_frames > 20_000, "{v1_frames} frames copied");
    // A read command does not upgrade: it says to run an ingest.
    let r = run(old.path(), &["captures"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("ingest"), "{}", r.stderr);

    // The next ingest upgrades, and adds its capture to both.
    let extra = tmp.path().join("extra.pcap");
    std::fs::write(&extra, pcap_conversations(20, T0 + 9_000_000_000)).unwrap();
    for db in [&new, &old] {
        let r = ingest(db.path(), &[], &[&extra]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    assert_eq!(
        old.count("SELECT max(version) FROM traceflow_schema"),
        traceflow::store::postgres::PG_SCHEMA_VERSION as i64
    );
    assert_eq!(
        old.count("SELECT count(*) FROM connections WHERE flow_nos IS DISTINCT FROM string_to_array(flows, ',')::BIGINT[]"),
        0,
        "schema 3's flow_nos of the connections schema 1 had"
    );
    assert_eq!(
        old.count("SELECT count(*) FROM frames"),
        v1_frames + new.count("SELECT frames FROM captures WHERE name = 'extra.pcap'")
    );
    assert_eq!(
        old.count("SELECT count(*) FROM frame_chunks WHERE last_number - first_number + 1 <> cardinality(ts_ns)"),
        0
    );

    let mut d = Diffs::default();
    for args in [
        &["query", "--format", "json"][..],
        &["query", "--bidirectional", "--format", "json"],
        &["flows", "port 80", "--format", "json"],
    ] {
        d.same(
            &format!("{args:?}"),
            ok(new.path(), args).as_bytes(),
            ok(old.path(), args).as_bytes(),
        );
    }
    // Connections stored before schema 4 keep what they had (migration 0004): their byte count becomes the
    // payload sum too, and they have no IP lengths. The capture added after the upgrade has all of Zeek's.
    let (cn, co) = (
        json(new.path(), &["connections", "--format", "json"]),
        json(old.path(), &["connections", "--format", "json"]),
    );
    let (cn, mut co) = (cn.as_array().unwrap(), co.as_array().unwrap().clone());
    assert_eq!(
        cn.len(),
        co.len(),
        "connections before and after the upgrade"
    );
    let mut kept = 0;
    for (n, o) in cn.iter().zip(co.iter_mut()) {
        if o["capture"] == "extra.pcap" {
            continue;
        }
        kept += 1;
        for side in ["orig", "resp"] {
            let ip = format!("{side}_ip_bytes");
            let payload = format!("{side}_payload_bytes");
            assert!(o[&ip].is_null(), "{ip} of a schema 1 connection: {o}");
            assert_eq!(o[&payload], o[format!("{side}_bytes")], "{payload}: {o}");
            o[&ip] = n[&ip].clone();
            o[&payload] = n[&payload].clone();
        }
    }
    assert!(kept > 1000, "{kept} connections from schema 1");
    d.same(
        "connections, Zeek's new fields aside",
        serde_json::to_string(cn).unwrap().as_bytes(),
        serde_json::to_string(&co).unwrap().as_bytes(),
    );
    for (i, (cap, label)) in some_labels_of(new.path()).iter().enumerate() {
        let (a, b) = (
            tmp.path().join(format!("new{i}.pcap")),
            tmp.path().join(format!("old{i}.pcap")),
        );
        for (db, out) in [(&new, &a), (&old, &b)] {
            ok(
                db.path(),
                &[
                    "query",
                    "--capture",
                    cap,
                    "--flow",
                    label,
                    "--both",
                    "-o",
                    out.to_str().unwrap(),
                ],
            );
        }
        d.same(
            &format!("--flow {label} --both"),
            &std::fs::read(&a).unwrap(),
            &std::fs::read(&b).unwrap(),
        );
    }
    let (a, b) = (tmp.path().join("dump-new"), tmp.path().join("dump-old"));
    for (db, dir) in [(&new, &a), (&old, &b)] {
        ok(
            db.path(),
            &[
                "query",
                "--capture",
                "synth.pcap",
                "--dump",
                dir.to_str().unwrap(),
                "--format",
                "pcap",
            ],
        );
    }
    let (ta, tb) = (tree(&a), tree(&b));
    assert!(ta.len() > 1000, "{} files dumped", ta.len());
    d.same(
        "--dump of synth.pcap",
        format!("{ta:?}").as_bytes(),
        format!("{tb:?}").as_bytes(),
    );
    d.assert_none("a schema 1 database upgraded, against a new one");
}

/// A first and a last flow label of each capture with flows: (capture name, label).
fn some_labels_of(db: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in json(db, &["captures", "--format", "json"])
        .as_array()
        .unwrap()
    {
        let name = c["name"].as_str().unwrap().to_string();
        let idx = json(db, &["query", "--capture", &name, "--format", "json"]);
        let flows = idx.as_array().unwrap();
        for f in [flows.first(), flows.last()].into_iter().flatten() {
            out.push((name.clone(), f["label"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// A `frame_chunks` row whose arrays do not hold the frames its numbers say (an edited or damaged database) is
/// reported in one line with status 2, never followed into a wrong frame or a panic; so is a chunk that is gone.
#[test]
fn pg_a_damaged_frame_chunk_is_reported() {
    let db = PgDb::new("damaged_chunk");
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("c.pcap");
    std::fs::write(&cap, pcap_conversations(400, T0)).unwrap();
    let r = ingest(db.path(), &[], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let label = |flow_no: i64| -> String {
        db.client()
            .query_one("SELECT label FROM flows WHERE flow_no = $1", &[&flow_no])
            .unwrap()
            .get(0)
    };
    let last_flow = db.count("SELECT flow_no FROM flows ORDER BY last_frame DESC LIMIT 1");
    let (first, last) = (label(1), label(last_flow));
    let out = tmp.path().join("f.pcap");
    let out = out.to_str().unwrap();
    ok(db.path(), &["query", "--flow", &first, "-o", out]);
    // The first chunk loses its arrays' tail; the last chunk is deleted.
    db.client()
        .batch_execute(
            "UPDATE frame_chunks SET ts_ns = ts_ns[1:3] WHERE first_number = 1;
             DELETE FROM frame_chunks WHERE first_number = (SELECT max(first_number) FROM frame_chunks)",
        )
        .unwrap();
    assert!(
        db.count("SELECT count(*) FROM frame_chunks") >= 2,
        "the capture spans chunks"
    );
    let says_last = format!("flow {last_flow} of capture");
    for (l, says) in [(&first, "frame_chunks row"), (&last, says_last.as_str())] {
        let r = run(db.path(), &["query", "--flow", l, "-o", out]);
        assert_eq!(r.code, 2, "{l}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(says), "{l}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

/// A listing read slowly while `forget` runs reads one snapshot on PostgreSQL too (REPEATABLE READ).
#[test]
fn a_listing_during_forget_is_whole_or_nothing_on_postgres() {
    let pg = PgDb::new("listing_forget");
    let d = tempfile::tempdir().unwrap();
    super::hardening::a_listing_during_forget_is_whole_or_nothing(pg.path(), d.path());
}

// ---------------------------------------------------------------------------------------------------------------
// Connections right after an ingest: plans, statistics, a killed client

/// The tables whose statistics the connection queries' plans depend on.
const PLANNED: &str = "'flows'::regclass, 'connections'::regclass, 'captures'::regclass, \
                       'interfaces'::regclass, 'frame_chunks'::regclass";

/// Puts the tables back in the state of a fresh ingest before any ANALYZE: no column statistics, and a row count
/// the planner must guess from the tables' sizes. Autovacuum is turned off on them first, so that it does not
/// analyze them meanwhile.
fn forget_statistics(db: &PgDb) {
    let mut c = db.client();
    for t in [
        "flows",
        "connections",
        "captures",
        "interfaces",
        "frame_chunks",
    ] {
        c.batch_execute(&format!("ALTER TABLE {t} SET (autovacuum_enabled = false)"))
            .unwrap();
    }
    c.batch_execute(&format!(
        "DELETE FROM pg_statistic WHERE starelid IN ({PLANNED});
         UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid IN ({PLANNED})"
    ))
    .unwrap();
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM pg_statistic WHERE starelid IN ({PLANNED})"
        )),
        0
    );
}

/// The plans of `connections FILTER` (listing and --count), as `EXPLAIN` prints them.
fn connection_plans(db: &PgDb, filter: &str) -> Vec<(String, Vec<String>)> {
    let target = traceflow::store::Target::of(std::path::Path::new(&db.url));
    let pg = traceflow::store::Db::open_read(&target).unwrap();
    let f = traceflow::filter::compile(&traceflow::filter::parse(filter, 0).unwrap());
    pg.explain_connections(&f, traceflow::store::read::FlowSort::Time)
        .unwrap()
}

/// Without statistics (right after an ingest, before ANALYZE), the connection queries look each connection's
/// flows up by the flows key: no join of all flows against all connections, whose filter parsed a comma list per
/// pair (a plan of 100 s for 20,000 connections). The same plans with statistics. The comma-list query itself
/// still plans that join here, so the check is not vacuous.
#[test]
fn pg_connection_plans_look_flows_up_by_key_without_statistics() {
    let db = PgDb::new("conn_plans");
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("c.pcap");
    std::fs::write(&cap, pcap_conversations(5000, T0)).unwrap();
    let r = ingest(db.path(), &[], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    forget_statistics(&db);
    let comma_list = db
        .client()
        .query(
            "EXPLAIN SELECT count(*) FROM connections x WHERE EXISTS (SELECT 1 FROM flows f
                 WHERE f.capture_id = x.capture_id AND f.flow_no = ANY (string_to_array(x.flows, ',')::BIGINT[]))",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        comma_list.contains("Semi Join"),
        "the comma-list query no longer plans a semi-join without statistics:\n{comma_list}"
    );
    for analyzed in [false, true] {
        if analyzed {
            db.client().batch_execute("ANALYZE").unwrap();
        }
        for filter in ["", "port 80", "host 10.0.0.1 or syn"] {
            for (sql, plan) in connection_plans(&db, filter) {
                if sql.starts_with("-- captures with bucket") || sql.starts_with("-- then") {
                    continue;
                }
                let text = plan.join("\n");
                let what = format!("analyzed: {analyzed}, filter {filter:?}: {sql}\n{text}");
                assert!(!text.contains("string_to_array"), "{what}");
                assert!(!text.contains("Semi Join"), "{what}");
                assert!(!text.contains("Seq Scan on flows"), "{what}");
                assert!(text.contains("SubPlan"), "{what}");
                assert!(text.contains("flows_pkey"), "{what}");
                assert!(text.contains("flow_no = ANY (x.flow_nos)"), "{what}");
            }
        }
    }
}

/// `reltuples` of a table, and whether ANALYZE has given it column statistics.
fn statistics_of(db: &PgDb, table: &str) -> (f64, i64) {
    let r = db
        .client()
        .query_one(
            "SELECT reltuples::FLOAT8, (SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = $1)
             FROM pg_class WHERE oid = $1::regclass",
            &[&table],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

/// An ingest leaves the planner statistics on what it wrote: on a new database, and when a capture adds more than
/// a tenth to the rows (autovacuum is off on the tables for the second ingest, so only the ingest can have done it).
#[test]
fn pg_ingest_leaves_planner_statistics() {
    let db = PgDb::new("ingest_stats");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.pcap"), tmp.path().join("b.pcap"));
    std::fs::write(&a, pcap_conversations(300, T0)).unwrap();
    std::fs::write(&b, pcap_conversations(2000, T0 + 3_600_000_000_000)).unwrap();
    for (round, cap) in [&a, &b].into_iter().enumerate() {
        if round == 1 {
            for t in ["flows", "connections", "frame_chunks", "captures"] {
                db.client()
                    .batch_execute(&format!("ALTER TABLE {t} SET (autovacuum_enabled = false)"))
                    .unwrap();
            }
        }
        let r = ingest(db.path(), &[], &[cap]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        for t in ["flows", "connections", "frame_chunks", "captures"] {
            let rows = db.count(&format!("SELECT count(*) FROM {t}"));
            let (reltuples, stats) = statistics_of(&db, t);
            assert_eq!(
                reltuples, rows as f64,
                "round {round}: {t} holds {rows} rows, the planner's statistics say {reltuples}"
            );
            assert!(stats > 0, "round {round}: {t} has no column statistics");
        }
        assert_eq!(
            db.count(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'connections' AND last_analyze IS NOT NULL"
            ),
            1,
            "round {round}: connections not analyzed"
        );
    }
}

/// Waits (bounded) for `n` traceflow sessions on `db` waiting for a lock, and returns their pids.
fn sessions_waiting_for_a_lock(db: &PgDb, child: &mut Child) -> Vec<i32> {
    let mut c = db.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pids: Vec<i32> = c
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'traceflow'
                   AND state = 'active' AND wait_event_type = 'Lock'",
                &[&db.name],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !pids.is_empty() {
            return pids;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the command ended before it was seen waiting"
        );
        assert!(
            Instant::now() < deadline,
            "no traceflow query waited for the lock within a minute"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A client killed during a long query does not leave it running on the server: SIGKILL (the server notices the
/// closed connection, `client_connection_check_interval`) and SIGTERM or SIGINT (the client cancels its query,
/// then exits with 130). The query is made long by a lock another session holds on `connections`, which it keeps
/// until the end, so the only way out for the query is the server ending it.
#[test]
fn pg_killed_client_leaves_no_query_running() {
    let db = PgDb::new("killed_client");
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("c.pcap");
    std::fs::write(&cap, pcap_conversations(50, T0)).unwrap();
    let r = ingest(db.path(), &[], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut holder = db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE connections IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    for (signal, args) in [
        (libc::SIGKILL, &["connections", "--count"][..]),
        (libc::SIGTERM, &["connections", "--format", "jsonl"]),
        (libc::SIGINT, &["connections", "port 80", "--count"]),
    ] {
        let mut child = tf(db.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pids = sessions_waiting_for_a_lock(&db, &mut child);
        // SAFETY: kill sends a signal to the child this test started and has not yet waited for.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        if signal == libc::SIGKILL {
            child.wait().unwrap();
        } else {
            let r = wait_bounded(child, Duration::from_secs(30), &format!("{args:?}"));
            assert_eq!(
                r.code, 130,
                "signal {signal}: {args:?} ended with {}: {}",
                r.code, r.stderr
            );
        }
        let mut c = db.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY ($1) AND state = 'active'",
                    &[&pids],
                )
                .unwrap()
                .get(0);
            if left == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "signal {signal}: the query of {args:?} still runs on the server 20 s after its client ended"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    holder.batch_execute("ROLLBACK").unwrap();
}

/// A 10,000-host blocklist is longer than one argument may be (128 KiB): `-F FILE` takes it, as tcpdump's -F,
/// for `flows` and `connections` on both backends, and counts what one `host` term and its complement count.
#[test]
fn pg_a_blocklist_of_10000_hosts_reads_from_a_filter_file() {
    let b = Both::new("blocklist_file");
    let host = json(&b.sqlite, &["flows", "--limit", "1", "--format", "json"])[0]["src"]
        .as_str()
        .unwrap()
        .to_string();
    let mut terms: Vec<String> = (0..9_999u32)
        .map(|i| format!("host 198.18.{}.{}", i >> 8, i & 255))
        .collect();
    terms.insert(5_000, format!("host {host}"));
    let list = terms.join(" or\n");
    assert!(list.len() > 128 << 10, "{} bytes", list.len());
    let dir = tempfile::tempdir().unwrap();
    let (file, not_file) = (dir.path().join("block.txt"), dir.path().join("not.txt"));
    std::fs::write(&file, &list).unwrap();
    std::fs::write(&not_file, format!("not ({list})")).unwrap();
    let count = |db: &Path, args: &[&str]| -> i64 {
        let r = run(db, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.stdout.trim().parse().unwrap()
    };
    for db in [b.sqlite.as_path(), b.pg()] {
        for what in ["flows", "connections"] {
            let one = count(db, &[what, &format!("host {host}"), "--count"]);
            let all = count(db, &[what, "--count"]);
            assert!(one > 0 && one < all, "{what}: {one} of {all}");
            let f = file.to_str().unwrap();
            let nf = not_file.to_str().unwrap();
            assert_eq!(count(db, &[what, "-F", f, "--count"]), one, "{what} -F");
            assert_eq!(
                count(db, &[what, "--filter-file", nf, "--count"]),
                all - one,
                "{what} not"
            );
        }
    }
    let r = run(&b.sqlite, &["flows", "syn", "-F", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

/// The connection terms (conn-state, history, orig-bytes ...) on PostgreSQL, as on SQLite (zeek.rs).
#[test]
fn pg_connection_terms() {
    let db = PgDb::new("connterms");
    let mut paths: Vec<PathBuf> = corpus_names().iter().map(|n| corpus().join(n)).collect();
    paths.sort();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let r = ingest(db.path(), &["-q"], &refs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    super::zeek::check_connection_terms(db.path());
}
