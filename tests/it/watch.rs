//! `ingest --watch` and retention, with rotation made by real tools (`tcpdump -C`, `editcap -c`, `gzip`): files
//! replayed into a watched folder at a controlled pace (written slowly, renamed into place, deleted, compressed,
//! rewritten in place), SIGTERM and SIGKILL of the watcher, three watchers into one PostgreSQL database, database
//! errors retried, `--partial`, and `forget --before/--missing/--keep-size`. The oracle throughout is one plain
//! `ingest` of the same files: `query`, `flows --format json` and `captures` must say the same.

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
fn editcap_split(dir: &Path, conns: u32, start_ns: i64, frames: u32) -> Vec<PathBuf> {
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
struct Watcher {
    child: Option<Child>,
    log: PathBuf,
}

impl Watcher {
    fn start(db: &Path, extra: &[&str], dirs: &[&Path], log: &Path) -> Watcher {
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `sig` and waits (bounded) for the exit; the exit status (or -signal) and the log.
    fn signal(mut self, sig: i32) -> (i32, String) {
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
fn wait_for(w: &Watcher, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
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
fn sorted_snapshot(db: &Path) -> Vec<Vec<String>> {
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
fn oracle(dir: &Path, inputs: &[&Path]) -> PathBuf {
    let db = dir.join("oracle.db");
    let r = ingest(&db, &["-q"], inputs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    db
}

fn assert_same(watched: &Path, plain: &Path, log: &str) {
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
