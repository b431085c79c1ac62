//! `ingest --watch` and retention, with rotation made by real tools (`tcpdump -C`, `editcap -c`, `dumpcap -b`,
//! `gzip`): files replayed into a watched folder at a controlled pace (written slowly, renamed into place,
//! deleted, compressed, rewritten in place), SIGTERM and SIGKILL of the watcher, `--partial`, memory over a
//! simulated day, and `forget --before/--missing/--keep-size` (PostgreSQL's watchers: watch_pg.rs). The oracle
//! throughout is one plain `ingest` of the same files: `query`, `flows --format json` and `captures` agree.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::postgres::PgDb;
use super::util::{count, ingest, pcap_conversations, run, tf, T0};

/// The settle time the tests watch with: short, so that a day of rotation fits in seconds.
const SETTLE: &str = "400ms";

/// `tool ARGS...`, which must succeed.
fn tool(name: &str, args: &[&str]) {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/test.sh installs tcpdump and tshark)"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A capture of `conns` conversations from `start_ns`, rotated by `tcpdump -C 1` (1 MB files: `part`,
/// `part1`, ...) into `dir`; returns the files in name order.
fn tcpdump_rotation(dir: &Path, conns: u32, start_ns: i64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let big = dir.with_extension("big.pcap");
    std::fs::write(&big, pcap_conversations(conns, start_ns)).unwrap();
    let out = dir.join("part");
    // -Z root: tcpdump would drop to its own user, which cannot write here.
    tool(
        "tcpdump",
        &[
            "-Z",
            "root",
            "-r",
            big.to_str().unwrap(),
            "-w",
            out.to_str().unwrap(),
            "-C",
            "1",
        ],
    );
    std::fs::remove_file(&big).unwrap();
    files_in(dir)
}

/// `editcap -c frames` of `conns` conversations into `dir`: `split_00000_<time>.pcap`, ...
pub(super) fn editcap_split(dir: &Path, conns: u32, start_ns: i64, frames: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let big = dir.with_extension("big.pcap");
    std::fs::write(&big, pcap_conversations(conns, start_ns)).unwrap();
    let n = frames.to_string();
    tool(
        "editcap",
        &[
            "-c",
            &n,
            big.to_str().unwrap(),
            dir.join("split.pcap").to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&big).unwrap();
    files_in(dir)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// A running `ingest --watch`, its stderr in a file; killed when dropped.
pub(super) struct Watcher {
    child: Option<Child>,
    log: PathBuf,
}

impl Watcher {
    pub(super) fn start(db: &Path, extra: &[&str], dirs: &[&Path], log: &Path) -> Watcher {
        let err = std::fs::File::create(log).unwrap();
        let child = tf(db)
            .args(["ingest", "--watch", "--settle", SETTLE])
            .args(extra)
            .args(dirs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        Watcher {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `sig` and waits (bounded) for the exit; the exit status (or -signal) and the log.
    pub(super) fn signal(mut self, sig: i32) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, sig) };
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the watcher did not stop on signal {sig}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| -status.signal().unwrap_or(0));
        (code, self.log())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `done()` holds, at most `limit`; fails with `what` and the watcher's log.
pub(super) fn wait_for(w: &Watcher, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "{what}: not after {limit:?}; the watcher's log:\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn json(db: &Path, args: &[&str]) -> Value {
    let r = run(db, args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// What the read commands say of a database: the index tuple (`query`), every flow (`flows --format json`) and
/// the captures without what differs between two ingests of the same files (ids, paths, when).
fn snapshot(db: &Path) -> (Value, Value, Value) {
    let mut caps = json(db, &["captures", "--format", "json"]);
    for c in caps.as_array_mut().unwrap() {
        let o = c.as_object_mut().unwrap();
        for k in ["id", "path", "paths", "ingested_at"] {
            o.remove(k);
        }
    }
    (
        json(db, &["query"]),
        json(db, &["flows", "--format", "json"]),
        caps,
    )
}

/// As [`snapshot`], each listing as a sorted multiset of rows: for databases written by several watchers at
/// once, whose captures are in another order.
pub(super) fn sorted_snapshot(db: &Path) -> Vec<Vec<String>> {
    let (a, b, c) = snapshot(db);
    [a, b, c]
        .iter()
        .map(|v| {
            let mut rows: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.to_string())
                .collect();
            rows.sort();
            rows
        })
        .collect()
}

/// The database one plain `ingest` of `inputs` gives.
pub(super) fn oracle(dir: &Path, inputs: &[&Path]) -> PathBuf {
    let db = dir.join("oracle.db");
    let r = ingest(&db, &["-q"], inputs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    db
}

pub(super) fn assert_same(watched: &Path, plain: &Path, log: &str) {
    let (w, p) = (snapshot(watched), snapshot(plain));
    assert!(w.2.as_array().is_some_and(|a| !a.is_empty()), "no captures");
    assert_eq!(w.2, p.2, "captures differ; the watcher's log:\n{log}");
    assert!(
        w.0 == p.0,
        "the index tuples differ; the watcher's log:\n{log}"
    );
    assert!(w.1 == p.1, "the flows differ; the watcher's log:\n{log}");
}

/// Writes `data` to `to` in `chunks` pieces, `pause` apart, through one open file (closed at the end), as a
/// capture tool writes.
fn write_slowly(to: &Path, data: &[u8], chunks: usize, pause: Duration) {
    let mut f = std::fs::File::create(to).unwrap();
    for part in data.chunks(data.len().div_ceil(chunks).max(1)) {
        f.write_all(part).unwrap();
        f.flush().unwrap();
        std::thread::sleep(pause);
    }
}

/// Whether the file at `p` is in the SQLite database as it is now (its path, size and mtime).
fn indexed_as_now(db: &Path, p: &Path) -> bool {
    let Ok(m) = std::fs::metadata(p) else {
        return false;
    };
    let mtime = m
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM capture_paths WHERE path = ?1 AND size = ?2 AND mtime_ns = ?3",
                rusqlite::params![p.to_str().unwrap(), m.len() as i64, mtime],
                |r| r.get::<_, i64>(0),
            )
        })
        .is_ok_and(|n| n == 1)
}

/// Captures in a SQLite database; 0 before the watcher has made it.
fn captures_count(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM captures", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// A tcpdump rotation replayed into a watched folder, one file at a time, each in another way: written slowly
/// through an open file, written under a hidden name and renamed into place, copied whole; two files deleted
/// after they were indexed (a ring), one compressed with gzip. The database equals one plain ingest of the
/// files, none was indexed before it was complete, and the gzip copy is the same capture with both paths.
#[test]
fn watch_replays_a_tcpdump_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tcpdump_rotation(&tmp.path().join("src"), 9000, T0);
    assert!(src.len() >= 4, "tcpdump made {} files", src.len());
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("w.db");
    let w = Watcher::start(&db, &["-v"], &[&dir], &tmp.path().join("log"));
    wait_for(&w, Duration::from_secs(10), "the start line", || {
        w.log().contains("watching 1 folder with inotify")
    });
    for (k, f) in src.iter().enumerate() {
        let name = f.file_name().unwrap();
        let data = std::fs::read(f).unwrap();
        let to = dir.join(name);
        match k % 3 {
            0 => write_slowly(&to, &data, 16, Duration::from_millis(60)),
            1 => {
                let hidden = dir.join(format!(".{}.tmp", name.to_string_lossy()));
                write_slowly(&hidden, &data, 4, Duration::from_millis(60));
                std::fs::rename(&hidden, &to).unwrap();
            }
            _ => std::fs::write(&to, &data).unwrap(),
        }
        let want = k as i64 + 1;
        wait_for(&w, Duration::from_secs(20), "the file indexed", || {
            captures_count(&db) == want
        });
        if k == 2 {
            // The ring deletes the oldest: its capture stays (no --forget-missing).
            std::fs::remove_file(dir.join(src[0].file_name().unwrap())).unwrap();
        }
        if k == 3 {
            tool(
                "gzip",
                &[dir.join(src[1].file_name().unwrap()).to_str().unwrap()],
            );
        }
    }
    let gz = format!("{}.gz", dir.join(src[1].file_name().unwrap()).display());
    wait_for(&w, Duration::from_secs(20), "the gzip copy's path", || {
        count(
            &db,
            &format!("SELECT count(*) FROM capture_paths WHERE path = '{gz}'"),
        ) == 1
    });
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stopped; in all:"), "{log}");
    assert_eq!(captures_count(&db), src.len() as i64, "{log}");
    // Nothing was indexed before it was complete: no capture replaced, none read while it changed.
    for never in ["content changed", "changed while it was read", "truncated"] {
        assert!(!log.contains(never), "'{never}' in the log:\n{log}");
    }
    let plain: Vec<&Path> = src.iter().map(|p| p.as_path()).collect();
    assert_same(&db, &oracle(tmp.path(), &plain), &log);
}

/// With --poll (no inotify) the settle rule alone decides; SIGTERM in the middle of a big capture rolls it
/// back and exits 0; a restart indexes nothing twice and skips nothing: the database equals a plain ingest.
#[test]
fn watch_polls_stops_on_sigterm_and_restarts_idempotently() {
    let tmp = tempfile::tempdir().unwrap();
    let src = editcap_split(&tmp.path().join("src"), 3000, T0, 1500);
    let big = tmp.path().join("src2");
    std::fs::create_dir(&big).unwrap();
    // Last in name order, and big enough to be read when the signal comes.
    let big_file = big.join("zz-big.pcap");
    std::fs::write(
        &big_file,
        pcap_conversations(60000, T0 + 10_000_000_000_000),
    )
    .unwrap();
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("w.db");
    // Half of the files are there before the watcher starts.
    let half = src.len() / 2;
    for f in &src[..half] {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let w = Watcher::start(&db, &["--poll", "-v"], &[&dir], &tmp.path().join("log1"));
    wait_for(&w, Duration::from_secs(20), "the first half", || {
        captures_count(&db) == half as i64
    });
    assert!(w.log().contains("with polling"), "{}", w.log());
    for f in &src[half..] {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    wait_for(&w, Duration::from_secs(20), "the second half", || {
        captures_count(&db) == src.len() as i64
    });
    std::fs::copy(&big_file, dir.join("zz-big.pcap")).unwrap();
    // SIGTERM once the big capture is being read (settle 400 ms, then its read takes a while).
    std::thread::sleep(Duration::from_millis(600));
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    let big_in = captures_count(&db) == src.len() as i64 + 1;
    if !big_in {
        assert!(log.contains("interrupted, rolled back"), "{log}");
    }
    // Restarted: what is there is known (the cheap skip), the big capture is indexed now.
    let w = Watcher::start(&db, &["--poll", "-v"], &[&dir], &tmp.path().join("log2"));
    wait_for(&w, Duration::from_secs(30), "the big capture", || {
        captures_count(&db) == src.len() as i64 + 1
    });
    std::thread::sleep(Duration::from_millis(900));
    let (code, log2) = w.signal(libc::SIGHUP);
    assert_eq!(code, 0, "{log2}");
    let again = log2.matches("already indexed").count();
    assert_eq!(
        again,
        src.len() + usize::from(big_in),
        "every file known was skipped once:\n{log2}"
    );
    let mut plain: Vec<&Path> = src.iter().map(|p| p.as_path()).collect();
    plain.push(&big_file);
    assert_same(&db, &oracle(tmp.path(), &plain), &format!("{log}\n{log2}"));
}

/// A tiny xorshift: the SIGKILL moments, reproducible from the seed the test prints.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 20 rounds of: files arrive, the watcher is killed with SIGKILL at a random moment (often inside a capture's
/// transaction, the first one inside SQLite's bulk load), and restarted. At the end the database equals a
/// clean ingest of the files.
#[test]
fn watch_survives_sigkill_at_random_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let src = editcap_split(&tmp.path().join("src"), 24000, T0, 7000);
    assert!(src.len() >= 20, "editcap made {} files", src.len());
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("w.db");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("SIGKILL moments seed: {seed}");
    let mut rng = Rng(seed);
    let mut next = 0;
    for round in 0..20 {
        let w = Watcher::start(&db, &[], &[&dir], &tmp.path().join(format!("log{round}")));
        // One or two new files per round, the rest in the last rounds.
        let n = if round == 19 {
            src.len() - next
        } else {
            (1 + rng.below(2) as usize).min(src.len() - next)
        };
        for f in &src[next..next + n] {
            std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
        }
        next += n;
        std::thread::sleep(Duration::from_millis(100 + rng.below(700)));
        let (code, _) = w.signal(libc::SIGKILL);
        assert_eq!(code, -libc::SIGKILL);
    }
    let w = Watcher::start(&db, &[], &[&dir], &tmp.path().join("last"));
    wait_for(&w, Duration::from_secs(60), "every file", || {
        captures_count(&db) == src.len() as i64
    });
    std::thread::sleep(Duration::from_millis(500));
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    let plain: Vec<&Path> = src.iter().map(|p| p.as_path()).collect();
    assert_same(&db, &oracle(tmp.path(), &plain), &log);
}

/// Files the folder held when the watcher started, still younger than `--settle` (a watcher restarted after a
/// kill), are indexed in name order before a file that arrives and is closed meanwhile: the capture numbers are
/// those of one plain ingest.
#[test]
fn watch_indexes_what_was_there_before_what_arrives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.pcap"), pcap_conversations(50, T0)).unwrap();
    let db = tmp.path().join("w.db");
    let log = tmp.path().join("log");
    let w = Watcher {
        child: Some(
            tf(&db)
                .args(["ingest", "--watch", "--settle", "3s"])
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        ),
        log: log.clone(),
    };
    wait_for(&w, Duration::from_secs(20), "the watcher's start", || {
        w.log().contains("watching")
    });
    // After the first scan: b.pcap is new, and its close says it is complete at once.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(
        dir.join("b.pcap"),
        pcap_conversations(50, T0 + 60_000_000_000),
    )
    .unwrap();
    wait_for(&w, Duration::from_secs(30), "both files", || {
        captures_count(&db) == 2
    });
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    let names: Vec<String> = json(&db, &["captures", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.pcap", "b.pcap"], "{log}");
}

/// The time of a capture's first or last frame as `captures` prints it (RFC 3339, which sorts as text).
fn times(db: &Path) -> Vec<(String, String, String)> {
    json(db, &["captures", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["first_time"].as_str().unwrap().to_string(),
                c["last_time"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn names(db: &Path) -> Vec<String> {
    times(db).into_iter().map(|t| t.0).collect()
}

/// The bytes a SQLite database's rows take: its pages less the free ones.
fn used_bytes(db: &Path) -> i64 {
    count(db, "PRAGMA page_count") * count(db, "PRAGMA page_size")
        - count(db, "PRAGMA freelist_count") * count(db, "PRAGMA page_size")
}

/// forget --before, --missing and --keep-size, each one transaction saying what it removed, checked against
/// what `captures` lists (brute force over its times and the files on disk); on SQLite, or on PostgreSQL
/// when `pg` is given.
fn retention_on(db: &Path, files: &[PathBuf], sqlite: bool) {
    let all: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let r = ingest(db, &["-q"], &all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = times(db);
    // --before the first frame of the fourth capture: the first three end before it.
    let t = before[3].1.clone();
    let expect: Vec<String> = before
        .iter()
        .filter(|c| c.2 < t)
        .map(|c| c.0.clone())
        .collect();
    assert_eq!(expect.len(), 3, "{before:?}");
    let r = run(db, &["forget", "--before", &t]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for n in &expect {
        assert!(r.stderr.contains(&format!("({n})")), "{}", r.stderr);
    }
    assert!(r.stderr.contains("3 captures removed"), "{}", r.stderr);
    let left = names(db);
    assert!(expect.iter().all(|n| !left.contains(n)), "{left:?}");
    assert_eq!(left.len(), before.len() - 3);
    // Nothing left before that time: a cron job's second run removes nothing, and says so.
    let r = run(db, &["forget", "--before", &t]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("nothing to forget"), "{}", r.stderr);
    // --missing: one file deleted goes; one compressed, whose .gz was indexed too (a second path), stays.
    let gone = &files[4];
    let zipped = &files[5];
    std::fs::remove_file(gone).unwrap();
    tool("gzip", &[zipped.to_str().unwrap()]);
    let gz = PathBuf::from(format!("{}.gz", zipped.display()));
    let r = ingest(db, &["-q"], &[&gz]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(db, &["forget", "--missing"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let gone_name = gone.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r.stderr.contains(&format!("({gone_name})")) && r.stderr.contains("1 capture removed"),
        "{}",
        r.stderr
    );
    let left = names(db);
    assert!(!left.contains(&gone_name), "{left:?}");
    assert!(
        left.contains(&zipped.file_name().unwrap().to_string_lossy().into_owned()),
        "{left:?}"
    );
    // --keep-size: the oldest go until the rows fit.
    let order = names(db);
    if sqlite {
        let used = used_bytes(db);
        let limit = used / 2;
        let r = run(db, &["forget", "--keep-size", &limit.to_string()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.contains("--keep-size"), "{}", r.stderr);
        assert!(
            used_bytes(db) <= limit,
            "{} > {limit}: {}",
            used_bytes(db),
            r.stderr
        );
        let kept = names(db);
        assert!(!kept.is_empty() && kept.len() < order.len(), "{kept:?}");
        // The oldest went: what is left is the newest, in order.
        assert_eq!(kept, order[order.len() - kept.len()..].to_vec());
    } else {
        // PostgreSQL's size counts deleted rows until autovacuum: a limit above it removes nothing, one byte
        // removes everything.
        let r = run(db, &["forget", "--keep-size", "1T"]);
        assert!(r.stderr.contains("nothing to forget"), "{}", r.stderr);
        let r = run(db, &["forget", "--keep-size", "1"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(names(db).is_empty(), "{}", r.stderr);
    }
}

#[test]
fn forget_before_missing_and_keep_size() {
    let tmp = tempfile::tempdir().unwrap();
    let files = editcap_split(&tmp.path().join("src"), 6000, T0, 3000);
    assert!(files.len() >= 8, "{files:?}");
    retention_on(&tmp.path().join("r.db"), &files, true);
    let r = run(&tmp.path().join("r.db"), &["forget", "--keep-size", "10X"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a size"), "{}", r.stderr);
}

#[test]
fn pg_forget_before_missing_and_keep_size() {
    let tmp = tempfile::tempdir().unwrap();
    let files = editcap_split(&tmp.path().join("src"), 6000, T0, 3000);
    let pg = PgDb::new("forget_retention");
    retention_on(pg.path(), &files, false);
}

/// --forget-missing with a ring that deletes the oldest file (dumpcap -b files:3), then slots rewritten in
/// place (tcpdump -W 2: truncated and written again): the database follows the folder, and equals one plain
/// ingest of what the folder holds at the end.
#[test]
fn watch_forget_missing_follows_a_ring() {
    let tmp = tempfile::tempdir().unwrap();
    let src = editcap_split(&tmp.path().join("src"), 6000, T0, 2500);
    assert!(src.len() >= 10, "{}", src.len());
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("w.db");
    let w = Watcher::start(&db, &["--forget-missing"], &[&dir], &tmp.path().join("log"));
    let in_db = |p: &Path| indexed_as_now(&db, p);
    let (ring, slots) = src.split_at(6);
    for (k, f) in ring.iter().enumerate() {
        let to = dir.join(format!("ring_{k:05}.pcap"));
        std::fs::copy(f, &to).unwrap();
        wait_for(&w, Duration::from_secs(20), "the ring file", || in_db(&to));
        if k >= 3 {
            std::fs::remove_file(dir.join(format!("ring_{:05}.pcap", k - 3))).unwrap();
        }
    }
    wait_for(&w, Duration::from_secs(20), "the oldest forgotten", || {
        captures_count(&db) == 3
    });
    for (k, f) in slots.iter().enumerate() {
        let to = dir.join(format!("slot{}", k % 2));
        // Truncated and written again in three parts 150 ms apart: rescans (every 100 ms) see it half
        // written after its last close; it is complete only at its own close.
        write_slowly(
            &to,
            &std::fs::read(f).unwrap(),
            3,
            Duration::from_millis(150),
        );
        wait_for(&w, Duration::from_secs(20), "the slot file", || in_db(&to));
    }
    wait_for(
        &w,
        Duration::from_secs(20),
        "the ring's captures forgotten",
        || captures_count(&db) == 5,
    );
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    assert_eq!(log.matches("its files are gone").count(), 3, "{log}");
    // Each slot's content indexed once, whole: never half written.
    for never in ["truncated", "changed while it was read", "not a capture"] {
        assert!(!log.contains(never), "'{never}' in the log:\n{log}");
    }
    assert_eq!(
        log.matches("replaced capture").count(),
        slots.len() - 2,
        "{log}"
    );
    let now: Vec<PathBuf> = files_in(&dir);
    let plain: Vec<&Path> = now.iter().map(|p| p.as_path()).collect();
    let o = oracle(tmp.path(), &plain);
    assert_eq!(sorted_snapshot(&db), sorted_snapshot(&o), "{log}");
}

/// --partial: the capture still being written is searchable before it is complete, each index replacing the
/// last; once complete, the database equals a plain ingest of the file.
#[test]
fn watch_partial_indexes_the_growing_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let data = pcap_conversations(3000, T0);
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("w.db");
    let w = Watcher::start(
        &db,
        &["--partial", "--interval", "300ms"],
        &[&dir],
        &tmp.path().join("log"),
    );
    let to = dir.join("growing.pcap");
    let writer = {
        let (to, data) = (to.clone(), data.clone());
        // 30 writes 100 ms apart: never unchanged for the settle time until it is closed.
        std::thread::spawn(move || write_slowly(&to, &data, 30, Duration::from_millis(100)))
    };
    let frames = |db: &Path| {
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| {
                c.query_row("SELECT coalesce(sum(frames), 0) FROM captures", [], |r| {
                    r.get(0)
                })
            })
            .unwrap_or(0i64)
    };
    let mut seen_partial = Vec::new();
    while !writer.is_finished() {
        let n = frames(&db);
        if n > 0 && seen_partial.last() != Some(&n) {
            seen_partial.push(n);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    let plain = tmp.path().join("plain.pcap");
    std::fs::write(&plain, &data).unwrap();
    let o = oracle(tmp.path(), &[&plain]);
    let total = count(&o, "SELECT frames FROM captures");
    // The last write may be indexed (whole, but as a partial capture) before the writer's thread ends.
    let growing = seen_partial.iter().filter(|&&n| n < total).count();
    assert!(
        growing >= 2 && seen_partial.iter().all(|&n| n <= total),
        "growing indexes seen: {seen_partial:?} of {total} frames\n{}",
        w.log()
    );
    wait_for(&w, Duration::from_secs(20), "the complete capture", || {
        frames(&db) == total
    });
    std::thread::sleep(Duration::from_millis(500));
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    assert_eq!(captures_count(&db), 1, "{log}");
    // The names differ (growing.pcap, plain.pcap): compare the flows and frames, not the captures' names.
    let strip = |v: Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("capture");
                r
            })
            .collect()
    };
    let (wq, wf, _) = snapshot(&db);
    let (pq, pf, _) = snapshot(&o);
    assert!(strip(wq) == strip(pq), "the index tuples differ\n{log}");
    assert!(strip(wf) == strip(pf), "the flows differ\n{log}");
}

/// The watcher's resident memory in KiB (VmRSS).
fn rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A day of rotation in seconds: 288 five-minute files renamed into place, a ring of 8 deleting the oldest,
/// with --forget-missing. The watcher's memory after the day is what it was after its first quarter (give
/// or take allocator noise), and the database holds the ring's files.
#[test]
fn watch_memory_stays_flat_over_a_simulated_day() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("w.db");
    let w = Watcher::start(&db, &["--forget-missing"], &[&dir], &tmp.path().join("log"));
    let mut at_quarter = 0;
    for k in 0..288i64 {
        let name = format!("sensor-{k:04}.pcap");
        let hidden = dir.join(format!(".{name}"));
        std::fs::write(&hidden, pcap_conversations(40, T0 + k * 300_000_000_000)).unwrap();
        std::fs::rename(&hidden, dir.join(&name)).unwrap();
        if k >= 8 {
            std::fs::remove_file(dir.join(format!("sensor-{:04}.pcap", k - 8))).unwrap();
        }
        let want = k.min(7) + 1;
        let path = dir.join(&name).to_string_lossy().into_owned();
        wait_for(&w, Duration::from_secs(20), "the file", || {
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .and_then(|c| {
                    c.query_row(
                        "SELECT count(*) FROM capture_paths WHERE path = ?1",
                        [&path],
                        |r| r.get::<_, i64>(0),
                    )
                })
                .is_ok_and(|n| n == 1)
                && captures_count(&db) <= want + 1
        });
        if k == 72 {
            at_quarter = rss_kib(w.pid());
        }
    }
    wait_for(&w, Duration::from_secs(20), "the ring", || {
        captures_count(&db) == 8
    });
    let at_end = rss_kib(w.pid());
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    assert!(
        at_end <= at_quarter + 4096,
        "RSS grew from {at_quarter} KiB (a quarter of the day) to {at_end} KiB"
    );
    let now = files_in(&dir);
    let plain: Vec<&Path> = now.iter().map(|p| p.as_path()).collect();
    assert_same(&db, &oracle(tmp.path(), &plain), &log);
}

/// A real ring buffer: dumpcap reads a capture from a pipe at a controlled pace and writes a ring of three files
/// (`-b filesize:1000 -b files:3`: each new file deletes the oldest) straight into the watched folder, with
/// --forget-missing. Once dumpcap is done, the database equals one plain ingest of the three files left.
#[test]
fn watch_follows_a_dumpcap_ring() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let db = tmp.path().join("w.db");
    let w = Watcher::start(&db, &["--forget-missing"], &[&dir], &tmp.path().join("log"));
    wait_for(&w, Duration::from_secs(20), "the start line", || {
        w.log().contains("watching 1 folder")
    });
    let data = pcap_conversations(12000, T0);
    let mut dumpcap = Command::new("dumpcap")
        .args([
            "-q",
            "-i",
            "-",
            "-b",
            "filesize:1000",
            "-b",
            "files:3",
            "-w",
        ])
        .arg(dir.join("ring.pcapng"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dumpcap (scripts/test.sh installs tshark, which brings it)");
    {
        let mut pipe = dumpcap.stdin.take().unwrap();
        for part in data.chunks(128 << 10) {
            pipe.write_all(part).unwrap();
            std::thread::sleep(Duration::from_millis(40));
        }
    }
    assert!(dumpcap.wait().unwrap().success());
    let left = files_in(&dir);
    assert_eq!(left.len(), 3, "{left:?}");
    let in_db = |p: &Path| indexed_as_now(&db, p);
    wait_for(
        &w,
        Duration::from_secs(30),
        "the ring's files, and only them",
        || left.iter().all(|p| in_db(p)) && captures_count(&db) == 3,
    );
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("its files are gone"), "{log}");
    let plain: Vec<&Path> = left.iter().map(|p| p.as_path()).collect();
    assert_same(&db, &oracle(tmp.path(), &plain), &log);
}
