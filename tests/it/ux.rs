//! What a user's hands meet: closed pipes, completions and the manual, --version, message wording,
//! suggestions, folder ingest counts and exit statuses, the lock wait, content identity across compression,
//! `forget`, and `sample`.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;

use super::util::{count, ingest, pcap, pcap_conversations, run, tf, wait_bounded, T0};

fn json(db: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let r = run(db, &a);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout))
}

/// A temporary folder with a database path and a few captures of different contents.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.tmp.path().join("t.db")
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
    /// `name` holding `conns` conversations starting `seconds` after T0 (different starts, different contents).
    fn capture(&self, name: &str, conns: u32, seconds: i64) -> PathBuf {
        self.file(
            name,
            &pcap_conversations(conns, T0 + seconds * 1_000_000_000),
        )
    }
}

/// Runs traceflow with a stdout whose reading end is already closed: every write to it fails with EPIPE.
fn with_closed_stdout(db: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe() fills two fresh descriptors, each owned once below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let out = tf(db)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Output conventions

#[test]
fn a_closed_stdout_ends_every_command_quietly_with_status_0() {
    let f = Fixture::new();
    let db = f.db();
    let cap = f.capture("a.pcap", 50, 0);
    assert_eq!(ingest(&db, &["-q"], &[&cap]).code, 0);
    let label = json(&db, &["query"])[0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["captures"],
        vec!["captures", "--format", "table"],
        vec!["query", "--format", "json"],
        vec!["query", "--format", "table"],
        vec!["query", "--format", "csv"],
        vec!["query", "--flow", &label, "--format", "json"],
        vec!["query", "--flow", &label, "--format", "pcap"],
        vec!["query", "--flow", &label, "--format", "tree"],
        vec!["flows"],
        vec!["flows", "--format", "table"],
        vec!["flows", "--count"],
        vec!["completions", "bash"],
        vec!["man"],
        vec!["--help"],
        vec!["--version"],
    ];
    for args in cases {
        let (code, stderr) = with_closed_stdout(&db, &args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

#[test]
fn completions_parse_in_their_shell_and_the_manual_covers_every_subcommand() {
    let db = Path::new("unused.db");
    let bash = run(db, &["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(bash.stdout.contains("traceflow"), "{}", bash.stdout);
    let mut script = tempfile::NamedTempFile::new().unwrap();
    script.write_all(bash.stdout.as_bytes()).unwrap();
    let checked = Command::new("bash")
        .arg("-n")
        .arg(script.path())
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // The subcommands and their options are completed.
    for word in ["ingest", "forget", "--embed", "--max-frames"] {
        assert!(bash.stdout.contains(word), "{word} not completed");
    }
    for shell in ["zsh", "fish"] {
        let r = run(db, &["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains("forget"), "{shell}: {}", r.stdout);
    }
    let man = run(db, &["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(man.stdout.starts_with(".ie") || man.stdout.starts_with(".TH"));
    for sub in ["INGEST", "CAPTURES", "QUERY", "FLOWS", "FORGET", "SAMPLE"] {
        assert!(
            man.stdout.contains(&format!(".SH \"TRACEFLOW {sub}\"")),
            "no section for {sub}"
        );
    }
    assert!(man.stdout.contains("\\-\\-max\\-open\\-flows"));
    assert_eq!(run(db, &["completions", "tcsh"]).code, 2);
}

#[test]
fn version_names_the_schema_and_the_bundled_sqlite() {
    let r = run(Path::new("unused.db"), &["--version"]);
    assert_eq!(r.code, 0);
    let want = format!(
        "traceflow {} (schema {}, SQLite {})\n",
        env!("CARGO_PKG_VERSION"),
        traceflow::store::SCHEMA_VERSION,
        rusqlite::version()
    );
    assert_eq!(r.stdout, want);
}

#[test]
fn usage_errors_exit_2() {
    let f = Fixture::new();
    let cap = f.capture("a.pcap", 2, 0);
    let c = cap.to_str().unwrap();
    let both = run(&f.db(), &["ingest", "-q", "-v", c]);
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert!(
        both.stderr.contains("cannot be used with"),
        "{}",
        both.stderr
    );
    let zero = run(&f.db(), &["ingest", "--jobs", "0", c]);
    assert_eq!(zero.code, 2);
    assert!(
        zero.stderr.contains("--jobs must be at least 1"),
        "{}",
        zero.stderr
    );
    // Nothing was created by either.
    assert!(!f.db().exists());
    let name = run(&f.db(), &["ingest", "--name", "x", c]);
    assert_eq!(name.code, 2, "{}", name.stderr);
    assert!(name.stderr.contains("standard input"), "{}", name.stderr);
}

#[test]
fn counts_and_times_read_as_words_and_an_empty_file_says_so() {
    let f = Fixture::new();
    let db = f.db();
    let cap = f.capture("a.pcap", 2, 0);
    let one = ingest(&db, &[], &[&cap]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    let last = one.stderr.lines().last().unwrap();
    assert!(last.starts_with("traceflow: 1 file: 1 indexed"), "{last}");
    assert!(!last.contains("1 files"), "{last}");
    // "in 12 ms" or "in 1.2 s", never "0.01s".
    let time = last.rsplit(" in ").next().unwrap();
    let (num, unit) = time.split_once(' ').unwrap();
    assert!(unit == "ms" || unit == "s", "{last}");
    assert!(num.parse::<f64>().is_ok(), "{last}");

    let empty = f.file("empty.pcap", b"");
    let r = ingest(&db, &[], &[&empty]);
    assert_eq!(
        r.code, 1,
        "named on the command line, it is an error: {}",
        r.stderr
    );
    assert!(r.stderr.contains("empty.pcap: empty file"), "{}", r.stderr);
    assert!(!r.stderr.contains("first bytes )"), "{}", r.stderr);
}

#[test]
fn an_os_error_is_said_once() {
    let f = Fixture::new();
    let dir = f.tmp.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    // A folder where a file is wanted: sample, and -o of a dump.
    let r = run(&f.db(), &["sample", dir.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.matches("os error").count(), 1, "{}", r.stderr);
    let cap = f.capture("a.pcap", 2, 0);
    assert_eq!(ingest(&f.db(), &["-q"], &[&cap]).code, 0);
    // --db naming a folder: said once, plainly, by writers and readers.
    for args in [&["ingest", cap.to_str().unwrap()][..], &["captures"][..]] {
        let r = run(&dir, args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("is a folder; give a file name"),
            "{}",
            r.stderr
        );
    }
    let missing = f.tmp.path().join("missing.pcap");
    let r = ingest(&f.db(), &[], &[&missing]);
    assert_eq!(r.stderr.matches("os error").count(), 1, "{}", r.stderr);
}

#[test]
fn a_wrong_capture_name_gets_suggestions_like_a_wrong_label() {
    let f = Fixture::new();
    let db = f.db();
    let a = f.capture("lab-monday.pcap", 2, 0);
    let b = f.capture("lab-tuesday.pcap", 3, 10);
    assert_eq!(ingest(&db, &["-q"], &[&a, &b]).code, 0);
    let r = run(&db, &["query", "--capture", "lab-mondy.pcap"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("closest names: lab-monday.pcap, lab-tuesday.pcap"),
        "{}",
        r.stderr
    );
}

/// One IPv6 TCP conversation (SYN, SYN-ACK, FIN, FIN) between fd01::183 and fd01::1 port 80.
fn ipv6_capture() -> Vec<u8> {
    let client = [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x83];
    let server = [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let frame = |from_client: bool, syn: bool, ack: bool, fin: bool| {
        let (s, d, sp, dp) = if from_client {
            (client, server, 40000, 80)
        } else {
            (server, client, 80, 40000)
        };
        let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(s, d, 64)
            .tcp(sp, dp, 1000, 65535);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        if fin {
            b = b.fin();
        }
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    };
    let frames = vec![
        (T0, frame(true, true, false, false)),
        (T0 + 1_000_000, frame(false, true, true, false)),
        (T0 + 2_000_000, frame(true, false, true, true)),
        (T0 + 3_000_000, frame(false, false, true, true)),
    ];
    pcap(1, 65535, &frames)
}

#[test]
fn an_ipv6_label_typed_with_colons_is_the_same_label() {
    let f = Fixture::new();
    let db = f.db();
    let cap = f.file("v6.pcap", &ipv6_capture());
    assert_eq!(ingest(&db, &["-q"], &[&cap]).code, 0);
    let index = json(&db, &["query"]);
    let labels: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    let dotted = labels
        .iter()
        .find(|l| l.starts_with("fd01..183_40000"))
        .unwrap_or_else(|| panic!("{labels:?}"));
    let colons = dotted
        .replacen("fd01..183", "fd01::183", 1)
        .replacen("fd01..1_", "fd01::1_", 1);
    assert!(colons.contains("::"), "{colons}");
    let by_dots = run(&db, &["query", "--flow", dotted, "--format", "json"]);
    let by_colons = run(&db, &["query", "--flow", &colons, "--format", "json"]);
    assert_eq!(by_dots.code, 0, "{}", by_dots.stderr);
    assert_eq!(by_colons.code, 0, "{}", by_colons.stderr);
    assert_eq!(by_colons.stdout, by_dots.stdout);
}

#[test]
fn captures_names_link_types_in_the_table_and_keeps_numbers_in_json() {
    let f = Fixture::new();
    let db = f.db();
    let eth = f.capture("eth.pcap", 2, 0);
    // LINKTYPE_LINUX_SLL2 (276) and a link type without a name (147, a user DLT).
    let sll2 = f.file("sll2.pcap", &pcap(276, 65535, &[]));
    let user = f.file("user.pcap", &pcap(147, 65535, &[]));
    assert_eq!(ingest(&db, &["-q"], &[&eth, &sll2, &user]).code, 0);
    let table = run(&db, &["captures", "--format", "table"]);
    let row = |name: &str| -> Vec<String> {
        table
            .stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("eth.pcap")[3], "EN10MB", "{}", table.stdout);
    assert_eq!(row("sll2.pcap")[3], "LINUX_SLL2", "{}", table.stdout);
    assert_eq!(row("user.pcap")[3], "147", "{}", table.stdout);
    let caps = json(&db, &["captures"]);
    let types: Vec<&str> = caps
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["linktypes"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["1", "276", "147"]);
}

#[test]
fn sample_takes_its_format_from_the_name_and_does_not_overwrite() {
    let f = Fixture::new();
    let ng = f.tmp.path().join("s.pcapng");
    let r = run(&f.db(), &["sample", ng.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = std::fs::read(&ng).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a],
        "a pcapng section header"
    );
    let pcap_path = f.tmp.path().join("s.pcap");
    assert_eq!(
        run(&f.db(), &["sample", pcap_path.to_str().unwrap()]).code,
        0
    );
    let head = std::fs::read(&pcap_path).unwrap();
    assert_eq!(&head[..4], &0xa1b2_c3d4u32.to_ne_bytes());
    // Both read back as the same conversations.
    assert_eq!(ingest(&f.db(), &["-q"], &[&ng, &pcap_path]).code, 0);
    let caps = json(&f.db(), &["captures"]);
    assert_eq!(caps[0]["format"], "pcapng");
    assert_eq!(caps[0]["flows"], caps[1]["flows"]);

    // An existing file stays as it was without --force.
    std::fs::write(&pcap_path, b"keep me").unwrap();
    let r = run(&f.db(), &["sample", pcap_path.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(std::fs::read(&pcap_path).unwrap(), b"keep me");
    let r = run(&f.db(), &["sample", pcap_path.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&pcap_path).unwrap(), head);
    // --force never writes through a link planted at the name.
    let target = f.file("target.txt", b"not yours");
    let link = f.tmp.path().join("link.pcap");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let r = run(&f.db(), &["sample", link.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(std::fs::read(&target).unwrap(), b"not yours");
}

// ---------------------------------------------------------------------------------------------------------------
// Folder ingest: counts and exit statuses

#[test]
fn files_beside_the_captures_are_skipped_not_failed() {
    let f = Fixture::new();
    let db = f.db();
    f.capture("archive/a.pcap", 2, 0);
    f.capture("archive/b.pcap", 3, 10);
    f.file("archive/README.txt", b"Captures of the lab, 2024.\n");
    f.file(
        "archive/a.pcap.md5",
        b"d41d8cd98f00b204e9800998ecf8427e  a.pcap\n",
    );
    f.file("archive/empty.pcap", b"");
    std::os::unix::fs::symlink("gone.pcap", f.tmp.path().join("archive/stale.pcap")).unwrap();
    let root = f.tmp.path().join("archive");
    let r = ingest(&db, &[], &[&root]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let last = r.stderr.lines().last().unwrap();
    assert!(
        last.contains(
            "6 files: 2 indexed, 4 skipped (3 not captures, 1 not a regular file), 0 failed"
        ),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("stale.pcap: dangling symbolic link, skipped"));
    // Without -v, the files that are not captures are only counted.
    assert!(!r.stderr.contains("README.txt"), "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 2);

    // Re-ingest: one summary, no line per file; -v lists them.
    let again = ingest(&db, &[], &[&root]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    // The summary, the dangling link, and empty.pcap: named like a capture, so a warning by name.
    assert_eq!(again.stderr.lines().count(), 3, "{}", again.stderr);
    assert!(again.stderr.contains("warning: ") && again.stderr.contains("empty.pcap"));
    assert!(
        again.stderr.contains("2 already indexed"),
        "{}",
        again.stderr
    );
    let verbose = ingest(&db, &["-v"], &[&root]);
    assert_eq!(
        verbose
            .stderr
            .lines()
            .filter(|l| l.contains("already indexed (as"))
            .count(),
        2,
        "{}",
        verbose.stderr
    );
    assert!(
        verbose
            .stderr
            .contains("README.txt: not a capture (first bytes 43 61 70 74), skipped"),
        "{}",
        verbose.stderr
    );
    assert!(
        verbose
            .stderr
            .contains("empty.pcap: named like a capture, but its header is not one (empty file"),
        "{}",
        verbose.stderr
    );
}

#[test]
fn a_database_error_stops_the_run_at_the_first_capture_with_status_2() {
    let f = Fixture::new();
    let db = f.db();
    let first = f.capture("first.pcap", 1, 0);
    assert_eq!(ingest(&db, &["-q"], &[&first]).code, 0);
    // Every write of a capture now fails inside SQLite, as a full disk or a read-only file would.
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER full BEFORE INSERT ON frames BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;",
        )
        .unwrap();
    let files: Vec<PathBuf> = (0..5)
        .map(|i| f.capture(&format!("dir/c{i}.pcap"), 2, 100 + i))
        .collect();
    let r = ingest(&db, &[], &[&f.tmp.path().join("dir")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("database or disk is full").count(),
        1,
        "said once, not once per file: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(files[0].to_str().unwrap()),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("stopped: database error"), "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 1);
}

#[test]
fn ctrl_c_exits_130() {
    let f = Fixture::new();
    let db = f.db();
    let big = f.capture("big.pcap", 60_000, 0);
    let child = tf(&db)
        .args(["ingest", "--jobs", "1"])
        .arg(&big)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(sent);
    if stderr.contains("interrupted") {
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert_eq!(count(&db, "SELECT count(*) FROM captures"), 0);
    } else {
        // Done before the signal came (a very fast machine).
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    }
}

#[test]
fn waiting_for_another_writer_is_said_once_and_left_out_of_the_time() {
    let f = Fixture::new();
    let db = f.db();
    let first = f.capture("first.pcap", 1, 0);
    assert_eq!(ingest(&db, &["-q"], &[&first]).code, 0);
    let caps: Vec<PathBuf> = (0..3)
        .map(|i| f.capture(&format!("c{i}.pcap"), 2, 10 + i))
        .collect();
    // Another writer holds the lock for 1.5 s.
    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let child = tf(&db)
        .arg("ingest")
        .args(&caps)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    holder.execute_batch("COMMIT").unwrap();
    let r = wait_bounded(child, Duration::from_secs(60), "waiting ingest");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr
            .matches("waiting for another writer (ingest, forget or a connection build) to finish")
            .count(),
        1,
        "{}",
        r.stderr
    );
    let last = r.stderr.lines().last().unwrap();
    assert!(last.contains("3 indexed"), "{last}");
    assert!(last.contains("(after waiting"), "{last}");
    let took = last.split(" in ").nth(1).unwrap();
    assert!(
        took.contains(" ms "),
        "the 1.5 s wait is not in the run's time: {last}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Content identity, stdin names

#[test]
fn a_compressed_copy_of_an_indexed_capture_is_the_same_capture() {
    let f = Fixture::new();
    let db = f.db();
    let bytes = pcap_conversations(4, T0);
    let plain = f.file("big.pcap", &bytes);
    let gz = f.file("big.pcap.gz", &super::util::gzip(&bytes));
    let zst = f.file("big.pcap.zst", &zstd::encode_all(&bytes[..], 3).unwrap());
    assert_eq!(ingest(&db, &["-q"], &[&plain]).code, 0);
    let r = ingest(&db, &["-v"], &[&gz, &zst]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("already indexed (as big.pcap)").count(),
        2,
        "{}",
        r.stderr
    );
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM capture_paths"), 3);
    // The hash is that of the pcap's bytes, whichever file came first.
    let db2 = f.tmp.path().join("gz-first.db");
    assert_eq!(ingest(&db2, &["-q"], &[&gz]).code, 0);
    let hash = |db: &Path| -> String {
        Connection::open(db)
            .unwrap()
            .query_row("SELECT hash FROM captures", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(hash(&db2), hash(&db));
    // A cut-off .gz has no whole content: it is its own capture (hashed on its on-disk bytes), truncated.
    let gzb = super::util::gzip(&bytes);
    let cut = f.file("cut.pcap.gz", &gzb[..gzb.len() - 40]);
    let r = ingest(&db, &[], &[&cut]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 2);
}

#[test]
fn stdin_captures_take_a_name() {
    let f = Fixture::new();
    let db = f.db();
    let mut child = tf(&db)
        .args(["ingest", "--name", "tap-eth0.pcap", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&pcap_conversations(2, T0))
        .unwrap();
    let r = wait_bounded(child, Duration::from_secs(60), "ingest --name");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&db, &["captures"])[0]["name"], "tap-eth0.pcap");
    let q = run(&db, &["query", "--capture", "tap-eth0.pcap"]);
    assert_eq!(q.code, 0, "{}", q.stderr);
    let help = run(&db, &["ingest", "--help"]);
    assert!(help.stdout.contains("Only --embed"), "{}", help.stdout);
}

// ---------------------------------------------------------------------------------------------------------------
// forget

fn orphans(db: &Path) -> i64 {
    count(
        db,
        "SELECT (SELECT count(*) FROM frames WHERE capture_id NOT IN (SELECT id FROM captures))
              + (SELECT count(*) FROM flows WHERE capture_id NOT IN (SELECT id FROM captures))
              + (SELECT count(*) FROM frame_data WHERE capture_id NOT IN (SELECT id FROM captures))
              + (SELECT count(*) FROM interfaces WHERE capture_id NOT IN (SELECT id FROM captures))
              + (SELECT count(*) FROM capture_paths WHERE capture_id NOT IN (SELECT id FROM captures))",
    )
}

#[test]
fn forget_removes_every_row_of_the_captures_and_says_what_vacuum_returns() {
    let f = Fixture::new();
    let db = f.db();
    let a = f.capture("a.pcap", 2000, 0);
    let b = f.capture("b.pcap", 3, 10);
    let c = f.capture("c.pcap", 4, 20);
    assert_eq!(ingest(&db, &["-q", "--embed"], &[&a, &b, &c]).code, 0);
    let index_b = json(&db, &["query", "--capture", "b.pcap"]);
    let frames_a = count(&db, "SELECT frames FROM captures WHERE name = 'a.pcap'");
    let flows_a = count(&db, "SELECT flows FROM captures WHERE name = 'a.pcap'");

    // A typo deletes nothing, and gets suggestions.
    let r = run(&db, &["forget", "a.pcap", "x.pcap"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("closest names"), "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 3);

    let r = run(&db, &["forget", "a.pcap", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("forgot capture 1 (a.pcap)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("forgot capture 3 (c.pcap)"),
        "{}",
        r.stderr
    );
    let summary = r.stderr.lines().last().unwrap();
    assert!(
        summary.contains(&format!(
            "2 captures removed: {} frames, {} flows",
            frames_a + 7 * 4,
            flows_a + 2 * 4
        )),
        "{summary}"
    );
    // The space VACUUM would return is the free pages' size, as SQLite counts it.
    let conn = Connection::open(&db).unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert!(free > 0);
    let shown = traceflow::cli::forget::bytes((free * page) as u64);
    assert!(
        summary.contains(&format!("VACUUM would return {shown}")),
        "{summary}"
    );
    drop(conn);
    assert_eq!(orphans(&db), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 1);
    assert_eq!(json(&db, &["query", "--capture", "b.pcap"]), index_b);
    assert_eq!(run(&db, &["query", "--capture", "a.pcap"]).code, 2);
}

#[test]
fn a_plain_sql_delete_leaves_no_orphans() {
    let f = Fixture::new();
    let db = f.db();
    let a = f.capture("a.pcap", 5, 0);
    let b = f.capture("b.pcap", 3, 10);
    assert_eq!(ingest(&db, &["-q", "--embed"], &[&a, &b]).code, 0);
    let before = count(&db, "SELECT count(*) FROM frames WHERE capture_id = 2");
    // As sqlite3 would: no PRAGMA foreign_keys, no traceflow functions.
    Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM captures WHERE name = ?1", ["a.pcap"])
        .unwrap();
    assert_eq!(orphans(&db), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM frames WHERE capture_id = 2"),
        before
    );
    // The indexes agree with the tables.
    assert_eq!(
        Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// First run: the scripts check for cargo

/// Sources scripts/need-cargo.sh with `path` as PATH, from the repository root.
fn need_cargo(path: &str) -> (i32, String) {
    let out = Command::new("/bin/bash")
        .arg("-c")
        .arg(". scripts/need-cargo.sh && echo fine")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_scripts_say_when_cargo_is_missing_or_too_old() {
    let tmp = tempfile::tempdir().unwrap();
    // Only the tools the check itself uses, and no cargo.
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["sed", "sort", "head", "printf"] {
        let found = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .unwrap();
        let at = String::from_utf8_lossy(&found.stdout).trim().to_string();
        if at.starts_with('/') {
            std::os::unix::fs::symlink(at, bin.join(tool)).unwrap();
        }
    }
    let path = bin.to_str().unwrap().to_string();
    let (code, said) = need_cargo(&path);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("cargo is not installed") && said.contains(">= 1.88"),
        "{said}"
    );
    // Debian 12's cargo.
    let fake = bin.join("cargo");
    std::fs::write(&fake, "#!/bin/sh\necho 'cargo 1.63.0'\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (code, said) = need_cargo(&path);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("cargo 1.63.0 is too old"), "{said}");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'cargo 1.91.0 (ea2d97820 2025-10-10)'\n",
    )
    .unwrap();
    let (code, said) = need_cargo(&path);
    assert_eq!((code, said.trim()), (0, "fine"));
}

#[test]
fn a_dump_of_many_flows_counts_its_files() {
    use traceflow::dump::{dump_dir, DumpFormat, DumpOptions};
    let f = Fixture::new();
    let db = f.db();
    let cap = f.capture("a.pcap", 40, 0);
    assert_eq!(ingest(&db, &["-q"], &[&cap]).code, 0);
    let conn = traceflow::store::Db::Sqlite(traceflow::store::open_read(&db).unwrap());
    let mut opts = DumpOptions::new(DumpFormat::Pcap);
    let bar = indicatif::ProgressBar::hidden();
    opts.progress = Some(bar.clone());
    let entries = dump_dir(&conn, None, None, &f.tmp.path().join("out"), &opts, false).unwrap();
    let files = entries
        .iter()
        .filter_map(|e| e.fpout.clone())
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    assert!(files > 20);
    assert_eq!((bar.position(), bar.length()), (files, Some(files)));
}

#[test]
fn only_a_big_first_capture_is_bulk_loaded_and_the_rest_go_to_wal() {
    let f = Fixture::new();
    // 40 frames of 1 MiB: past the 32 MiB from which the first capture of an empty database is bulk-loaded.
    let big_frames: Vec<(i64, Vec<u8>)> = (0..40).map(|i| (T0 + i, vec![0u8; 1 << 20])).collect();
    let big = f.file("big.pcap", &pcap(1, 1 << 21, &big_frames));
    let small = [f.capture("s1.pcap", 2, 10), f.capture("s2.pcap", 3, 20)];
    let bulk_db = f.tmp.path().join("bulk.db");
    let r = ingest(&bulk_db, &["-v"], &[&big, &small[0], &small[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("bulk load"), "{}", r.stderr);
    let wal_db = f.tmp.path().join("wal.db");
    let r = ingest(&wal_db, &["-v"], &[&small[0], &big, &small[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("bulk load"), "{}", r.stderr);
    for db in [&bulk_db, &wal_db] {
        assert_eq!(count(db, "SELECT count(*) FROM captures"), 3);
        assert_eq!(count(db, "SELECT sum(frames) FROM captures"), 40 + 14 + 21);
        let mode: String = Connection::open(db)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}

/// A database the user may not write (as `nobody` through setpriv when the tests run as root; the test says so
/// and passes when neither way works): one line, status 2, whatever the number of files.
#[test]
fn a_read_only_database_is_one_error_with_status_2() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    std::fs::set_permissions(f.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = f.db();
    let first = f.capture("first.pcap", 1, 0);
    assert_eq!(ingest(&db, &["-q"], &[&first]).code, 0);
    for i in 0..5 {
        f.capture(&format!("dir/c{i}.pcap"), 2, 100 + i);
    }
    let dir = f.tmp.path().join("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(f.tmp.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
    }
    let bin = assert_cmd::cargo::cargo_bin("traceflow");
    const NOBODY: [&str; 4] = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    let is_root = std::fs::OpenOptions::new().append(true).open(&db).is_ok();
    let mut cmd = if is_root {
        let probe = Command::new("setpriv").args(NOBODY).arg("true").status();
        if !probe.as_ref().is_ok_and(|s| s.success()) {
            eprintln!(
                "skipped: running as root, and setpriv cannot drop to nobody here ({probe:?})"
            );
            return;
        }
        let mut c = Command::new("setpriv");
        c.args(NOBODY).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .arg("--db")
        .arg(&db)
        .arg("ingest")
        .arg(&dir)
        .env_remove("TRACEFLOW_DB")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("readonly database"), "{stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 1);
}

/// A database of one flow of 400 frames of 1,000 bytes (any dump of it is many pipe buffers long) and 2,000
/// small conversations (so is any listing), and that flow's label.
fn big_outputs_db(f: &Fixture) -> (PathBuf, String) {
    use traceflow::synth::{eth_ipv4_tcp, Segment};
    let mut frames = traceflow::synth::conversations(2000, T0);
    let payload = vec![b'x'; 1000];
    let mut t = T0 + 60_000_000_000;
    for i in 0..400u32 {
        t += 1_000_000;
        frames.push((
            t,
            eth_ipv4_tcp(&Segment {
                src: std::net::Ipv4Addr::new(172, 16, 0, 1),
                sport: 50000,
                dst: std::net::Ipv4Addr::new(172, 16, 0, 2),
                dport: 443,
                seq: 1 + i * 1000,
                ack: 1,
                flags: 0x18,
                payload: &payload,
            }),
        ));
    }
    let cap = f.file("big.pcap", &pcap(1, 65535, &frames));
    let db = f.db();
    assert_eq!(ingest(&db, &["-q", "--connections"], &[&cap]).code, 0);
    let label = json(&db, &["flows", "port 50000"])[0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    (db, label)
}

/// Runs each of `cases` (`LABEL` stands for the big flow's label) with a closed stdout: status 0, nothing said.
fn quiet_on_a_closed_stdout(cases: &[&[&str]]) {
    let f = Fixture::new();
    let (db, label) = big_outputs_db(&f);
    for case in cases {
        let args: Vec<&str> = case
            .iter()
            .map(|a| if *a == "LABEL" { label.as_str() } else { a })
            .collect();
        let (code, stderr) = with_closed_stdout(&db, &args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// One test per dump format: the flow, its connection (`--both`), and `-o -`.
macro_rules! dump_quiet_on_a_closed_stdout {
    ($($name:ident: $format:literal,)+) => {$(
        #[test]
        fn $name() {
            quiet_on_a_closed_stdout(&[
                &["query", "--flow", "LABEL", "--format", $format],
                &["query", "--flow", "LABEL", "--format", $format, "--both"],
                &["query", "--flow", "LABEL", "--format", $format, "-o", "-"],
                &["query", "--flow", "LABEL", "--format", $format, "--both", "-o", "-"],
            ]);
        }
    )+};
}

dump_quiet_on_a_closed_stdout! {
    a_closed_stdout_ends_a_pcap_dump_quietly: "pcap",
    a_closed_stdout_ends_a_pcapng_dump_quietly: "pcapng",
    a_closed_stdout_ends_a_json_dump_quietly: "json",
    a_closed_stdout_ends_a_plist_dump_quietly: "plist",
    a_closed_stdout_ends_a_tree_dump_quietly: "tree",
    a_closed_stdout_ends_a_text_dump_quietly: "text",
}

/// One test per listing format: the index (`query`), `flows` (and grouped), `connections`.
macro_rules! listing_quiet_on_a_closed_stdout {
    ($($name:ident: $format:literal,)+) => {$(
        #[test]
        fn $name() {
            quiet_on_a_closed_stdout(&[
                &["query", "--format", $format],
                &["query", "--bidirectional", "--format", $format],
                &["flows", "--format", $format],
                &["flows", "--group-by", "src", "--format", $format],
                &["connections", "--format", $format],
            ]);
        }
    )+};
}

listing_quiet_on_a_closed_stdout! {
    a_closed_stdout_ends_a_table_listing_quietly: "table",
    a_closed_stdout_ends_a_csv_listing_quietly: "csv",
    a_closed_stdout_ends_a_json_listing_quietly: "json",
    a_closed_stdout_ends_a_jsonl_listing_quietly: "jsonl",
}

#[test]
fn a_closed_stdout_ends_a_merge_of_flows_quietly() {
    quiet_on_a_closed_stdout(&[&["flows", "--pcap", "-"], &["flows", "--pcapng", "-"]]);
}

#[test]
fn flows_pcap_given_a_folder_names_the_options_flows_has() {
    let f = Fixture::new();
    let db = f.db();
    let cap = f.capture("a.pcap", 2, 0);
    assert_eq!(ingest(&db, &["-q"], &[&cap]).code, 0);
    let dir = f.tmp.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    for opt in ["--pcap", "--pcapng"] {
        let r = run(&db, &["flows", opt, dir.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let want = format!(
            "{opt} {} is a folder; give {opt} a file name, or - for stdout",
            dir.display()
        );
        assert!(r.stderr.contains(&want), "{}", r.stderr);
        // `flows` has neither: they belong to `query`.
        assert!(
            !r.stderr.contains("-o ") && !r.stderr.contains("--dump"),
            "{}",
            r.stderr
        );
    }
    // `query -o DIR` still points at `--dump`, which it has.
    let label = json(&db, &["query"])[0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    let r = run(
        &db,
        &["query", "--flow", &label, "-o", dir.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--dump DIR"), "{}", r.stderr);
}
