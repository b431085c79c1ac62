//! Regression tests for the defects found by hostile testing on the read side and the store: dumps
//! that deleted or wrote through what they should not, unbounded walks and allocations from a crafted database,
//! concurrent first opens, read commands that wrote, the decompression spool, error text and stderr.
//! Each test here failed before its fix.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::util::{index_of, pcap, peak_rss, run, tf as cmd, wait_bounded, Run, T0};
use rusqlite::Connection;
use traceflow::dump::pcapwrite::PcapWriter;
use traceflow::synth::{self, Segment};

fn sample_frames() -> Vec<(i64, Vec<u8>)> {
    synth::conversations(6, T0)
}

/// A database holding `name` (written in `dir` from `frames`), ingested with the binary.
fn db_with(dir: &Path, name: &str, bytes: &[u8], extra: &[&str]) -> (PathBuf, PathBuf) {
    let cap = dir.join(name);
    std::fs::write(&cap, bytes).unwrap();
    let db = dir.join("t.db");
    let mut args = vec!["ingest", "--quiet"];
    args.extend(extra);
    let cap_s = cap.to_str().unwrap().to_string();
    args.push(&cap_s);
    let r = run(&db, &args);
    assert_eq!(r.code, 0, "ingest: {}", r.stderr);
    (db, cap)
}

/// Labels in index order and the frame numbers of each flow, from the binary's own index.
fn index(db: &Path) -> Vec<(String, Vec<u64>)> {
    let r = run(db, &["query", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    index_of(&serde_json::from_str(&r.stdout).unwrap())
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success());
}

fn is_fifo(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// 1. `-o PATH` never deletes or truncates PATH when the dump fails, and writes a FIFO in place.
#[test]
fn o_file_is_untouched_when_the_source_is_missing() {
    let d = tempfile::tempdir().unwrap();
    let (db, cap) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    let label = index(&db)[0].0.clone();
    let out = d.path().join("out").join("mine.pcap");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    std::fs::write(&out, b"precious").unwrap();
    // Works: the file is replaced by the whole dump, and nothing else is left in the folder.
    let r = run(
        &db,
        &["query", "--flow", &label, "-o", out.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dumped = std::fs::read(&out).unwrap();
    assert_eq!(&dumped[..4], &0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(names_in(out.parent().unwrap()), ["mine.pcap"]);
    // The source goes away: the dump fails, and the user's file is exactly as it was.
    std::fs::write(&out, b"precious").unwrap();
    std::fs::remove_file(&cap).unwrap();
    let r = run(
        &db,
        &["query", "--flow", &label, "-o", out.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot re-read"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(names_in(out.parent().unwrap()), ["mine.pcap"]);
    // A FIFO is neither opened (which would block) nor removed when the source is missing.
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let r = run(
        &db,
        &["query", "--flow", &label, "-o", fifo.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(is_fifo(&fifo), "the FIFO was removed");
}

#[test]
fn o_fifo_is_written_in_place() {
    let d = tempfile::tempdir().unwrap();
    let frames = sample_frames();
    let (db, _) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &frames), &[]);
    let (label, numbers) = index(&db)[0].clone();
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(f2).unwrap());
    let r = run(
        &db,
        &["query", "--flow", &label, "-o", fifo.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = reader.join().unwrap();
    // pcap header, then one record per frame of the flow.
    let expect: usize = 24
        + numbers
            .iter()
            .map(|&n| 16 + frames[n as usize - 1].1.len())
            .sum::<usize>();
    assert_eq!(got.len(), expect);
    assert!(is_fifo(&fifo));
}

// 2. `--dump DIR` without --capture refuses a link planted at DIR/<capture name>, with or without --force.
#[test]
fn dump_refuses_a_symlink_planted_for_a_capture_folder() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    let dir = d.path().join("dump");
    let outside = d.path().join("outside");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("s.pcap")).unwrap();
    for force in [false, true] {
        let mut args = vec!["query", "--dump", dir.to_str().unwrap(), "--format", "pcap"];
        if force {
            args.push("--force");
        }
        let r = run(&db, &args);
        assert_eq!(r.code, 2, "force={force}: {}", r.stderr);
        assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
        assert!(names_in(&outside).is_empty(), "wrote through the link");
    }
    // A link planted at a label's file name is replaced with --force, never written through.
    std::fs::remove_file(dir.join("s.pcap")).unwrap();
    let r = run(
        &db,
        &["query", "--dump", dir.to_str().unwrap(), "--format", "pcap"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sub = dir.join("s.pcap");
    let victim = d.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    let first = names_in(&sub)[0].clone();
    std::fs::remove_file(sub.join(&first)).unwrap();
    std::os::unix::fs::symlink(&victim, sub.join(&first)).unwrap();
    let r = run(
        &db,
        &["query", "--dump", dir.to_str().unwrap(), "--format", "pcap"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = run(
        &db,
        &[
            "query",
            "--dump",
            dir.to_str().unwrap(),
            "--format",
            "pcap",
            "--force",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert!(std::fs::symlink_metadata(sub.join(&first))
        .unwrap()
        .file_type()
        .is_file());
}

// 3. A cycle in prev_in_flow ends: each step of the walk must go back to a smaller frame of the same flow.
#[test]
fn a_prev_in_flow_cycle_ends() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    let (label, numbers) = index(&db).into_iter().find(|(_, n)| n.len() >= 3).unwrap();
    let (first, last) = (numbers[0], *numbers.last().unwrap());
    let set_prev = |frame: u64, prev: Option<u64>| {
        Connection::open(&db)
            .unwrap()
            .execute(
                "UPDATE frames SET prev_in_flow = ?1 WHERE number = ?2",
                rusqlite::params![prev.map(|p| p as i64), frame as i64],
            )
            .unwrap();
    };
    let frames_dumped = |r: &Run| {
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v.as_object().unwrap().len()
    };
    // The reproduction: the first frame points back at the last. The walk stops there, whole.
    set_prev(first, Some(last));
    let r = run(&db, &["query", "--flow", &label, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(frames_dumped(&r), numbers.len());
    // A chain that skips frames no longer adds up to the flow: an error that says the database is damaged.
    set_prev(first, None);
    set_prev(last, Some(first));
    let r = run(&db, &["query", "--flow", &label, "--format", "json"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
}

// 4. Several commands opening a new database, or one of an older schema, at the same moment all succeed.
#[test]
fn concurrent_first_opens_all_succeed() {
    let d = tempfile::tempdir().unwrap();
    let caps: Vec<PathBuf> = (0..4)
        .map(|i| {
            let p = d.path().join(format!("c{i}.pcap"));
            std::fs::write(
                &p,
                pcap(
                    1,
                    65535,
                    &synth::conversations(2 + i, T0 + i as i64 * 1_000_000_000),
                ),
            )
            .unwrap();
            p
        })
        .collect();
    for round in 0..10 {
        let db = d.path().join(format!("r{round}.db"));
        if round % 2 == 1 {
            // An older schema: version 1, as traceflow wrote it.
            let c = Connection::open(&db).unwrap();
            c.execute_batch(include_str!("../../migrations/0001_init.sql"))
                .unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
        }
        let children: Vec<Child> = caps
            .iter()
            .map(|p| {
                cmd(&db)
                    .args(["ingest", "--quiet"])
                    .arg(p)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let r = wait_bounded(c, Duration::from_secs(120), "concurrent ingest");
            assert_eq!(r.code, 0, "round {round}: {}", r.stderr);
        }
        let n: i64 = Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM captures", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4, "round {round}");
    }
}

/// A capture whose one label has two flows (the key reopened in the same µs after a FIN), so a dump of it asks
/// for frames out of file order: a compressed source is then decompressed into a temporary file.
fn reopened_label_capture() -> Vec<u8> {
    let seg = |flags, seq| Segment {
        src: Ipv4Addr::new(10, 0, 0, 1),
        sport: 1234,
        dst: Ipv4Addr::new(10, 0, 0, 2),
        dport: 80,
        seq,
        ack: 0,
        flags,
        payload: b"",
    };
    let frames = vec![
        (T0, synth::eth_ipv4_tcp(&seg(0x02, 1))),
        (T0, synth::eth_ipv4_tcp(&seg(0x11, 2))),
        (T0, synth::eth_ipv4_tcp(&seg(0x02, 100))),
        (T0 + 1000, synth::eth_ipv4_tcp(&seg(0x10, 101))),
    ];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&pcap(1, 65535, &frames)).unwrap();
    gz.finish().unwrap()
}

// 5. The decompressed copy of a compressed capture is private, unlinked, and gone after SIGTERM.
#[test]
fn the_spool_is_private_unlinked_and_never_left_behind() {
    let d = tempfile::tempdir().unwrap();
    let (db, cap) = db_with(d.path(), "r.pcap.gz", &reopened_label_capture(), &[]);
    std::fs::set_permissions(&cap, std::fs::Permissions::from_mode(0o600)).unwrap();
    let idx = index(&db);
    assert_eq!(idx.len(), 2);
    assert_eq!(idx[0].0, idx[1].0, "one label, two flows");
    let label = idx[0].0.clone();
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    // Writing to a FIFO nobody reads blocks the dump after its source is open: look at it then.
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    let mut child = cmd(&db)
        .args(["query", "--flow", &label, "-o"])
        .arg(&fifo)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let start = Instant::now();
    let spool = loop {
        let found = std::fs::read_dir(&fds).ok().and_then(|rd| {
            rd.flatten()
                .find(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(&tmp)))
        });
        if let Some(e) = found {
            break e.path();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no spool seen");
        std::thread::sleep(Duration::from_millis(10));
    };
    let target = std::fs::read_link(&spool).unwrap();
    assert!(
        target.to_string_lossy().ends_with("(deleted)"),
        "the spool has a name: {}",
        target.display()
    );
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "spool mode {mode:o}");
    assert!(names_in(&tmp).is_empty());
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
    assert!(
        names_in(&tmp).is_empty(),
        "left in TMPDIR: {:?}",
        names_in(&tmp)
    );
    // A temporary folder that cannot be used is named in one line, with the capture once.
    let r = {
        let c = cmd(&db)
            .args(["query", "--flow", &label, "--format", "json"])
            .env("TMPDIR", d.path().join("missing"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_bounded(c, Duration::from_secs(30), "spool error")
    };
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("missing"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("r.pcap.gz").count(), 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// `flows` long flows of `per_flow` frames each, interleaved.
fn long_flows(flows: u16, per_flow: u32) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), 1, 65535, false, false).unwrap();
    let mut t = T0;
    for i in 0..per_flow {
        for f in 0..flows {
            let frame = synth::eth_ipv4_tcp(&Segment {
                src: Ipv4Addr::new(10, 0, 0, 1),
                sport: 2000 + f,
                dst: Ipv4Addr::new(10, 0, 0, 2),
                dport: 80,
                seq: i,
                ack: 0,
                flags: 0x10,
                payload: b"",
            });
            t += 1000;
            w.write(t, frame.len() as u32, &frame).unwrap();
        }
    }
    w.into_inner()
}

// 7. `--dump DIR` holds one flow's frames at a time, not the capture's.
#[test]
fn a_folder_dump_does_not_hold_the_captures_frames() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(d.path(), "long.pcap", &long_flows(8, 100_000), &[]);
    let mut c = cmd(&db);
    c.args([
        "query",
        "--capture",
        "long.pcap",
        "--format",
        "pcap",
        "--dump",
    ])
    .arg(d.path().join("out"));
    let (code, mib, err) = peak_rss(c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names_in(&d.path().join("out")).len(), 8);
    // 800,000 frames: holding their references took 137 MiB before; one flow at a time takes about 30.
    eprintln!("RSS {mib:.1}");
    assert!(mib < 70.0, "peak RSS {mib:.0} MiB");
}

// 8. A crafted caplen near 4 GiB is refused before anything is allocated for it.
#[test]
fn a_crafted_caplen_is_refused() {
    let d = tempfile::tempdir().unwrap();
    for embed in [false, true] {
        let sub = d.path().join(format!("e{embed}"));
        std::fs::create_dir(&sub).unwrap();
        let extra: &[&str] = if embed { &["--embed"] } else { &[] };
        let (db, _) = db_with(&sub, "s.pcap", &pcap(1, 65535, &sample_frames()), extra);
        let (label, numbers) = index(&db)[0].clone();
        Connection::open(&db)
            .unwrap()
            .execute(
                "UPDATE frames SET caplen = 4294967040 WHERE number = ?1",
                [numbers[0] as i64],
            )
            .unwrap();
        let mut c = cmd(&db);
        c.args(["query", "--flow", &label, "--format", "json"]);
        let (code, mib, err) = peak_rss(c);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("captured length of 4294967040"), "{err}");
        eprintln!("RSS {mib:.1}");
        assert!(mib < 100.0, "peak RSS {mib:.0} MiB");
    }
}

// 8. A large frame renders without copies of its hex: about twice its size, not five times. The frame is
// TCP with a 48 MiB trailer; the database is then edited to give its interface an unknown link type, so the
// renderer shows the whole frame as undecoded hex data.
#[test]
fn a_large_frame_renders_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let mut frame = synth::eth_ipv4_tcp(&Segment {
        src: Ipv4Addr::new(10, 0, 0, 1),
        sport: 1,
        dst: Ipv4Addr::new(10, 0, 0, 2),
        dport: 2,
        seq: 0,
        ack: 0,
        flags: 0x18,
        payload: b"x",
    });
    frame.resize(frame.len() + (48 << 20), 0x5a);
    let mut w = PcapWriter::new(Vec::new(), 1, 1 << 28, false, false).unwrap();
    w.write(T0, frame.len() as u32, &frame).unwrap();
    let (db, _) = db_with(d.path(), "big.pcap", &w.into_inner(), &[]);
    let label = index(&db)[0].0.clone();
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE interfaces SET linktype = 147", [])
        .unwrap();
    for format in ["tree", "json"] {
        let mut c = cmd(&db);
        c.args(["query", "--flow", &label, "--format", format]);
        let (code, mib, err) = peak_rss(c);
        assert_eq!(code, 0, "{err}");
        // Its bytes and the node's copy are ~100 MiB; the hex text and its copies took 245 MiB before.
        assert!(mib < 160.0, "--format {format}: peak RSS {mib:.0} MiB");
    }
}

// 9. A same-size rewrite that keeps the mtime (cp -p, rsync -t) is caught by the record checks.
#[test]
fn a_same_size_rewrite_with_the_old_mtime_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let frames = sample_frames();
    let (db, cap) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &frames), &[]);
    let mtime = std::fs::metadata(&cap).unwrap().modified().unwrap();
    let label = index(&db)[0].0.clone();
    let shifted: Vec<(i64, Vec<u8>)> = frames
        .iter()
        .map(|(t, f)| (t + 3_000_000_000, f.clone()))
        .collect();
    std::fs::write(&cap, pcap(1, 65535, &shifted)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&cap)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let r = run(&db, &["query", "--flow", &label, "--format", "json"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("no longer matches"), "{}", r.stderr);
}

// 13. A closed stderr never stops an ingest.
#[test]
fn a_closed_stderr_does_not_stop_an_ingest() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("caps");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..5 {
        std::fs::write(
            dir.join(format!("c{i}.pcap")),
            pcap(1, 65535, &synth::conversations(2, T0 + i * 1_000_000_000)),
        )
        .unwrap();
    }
    std::fs::write(dir.join("notes.txt"), b"not a capture").unwrap();
    let db = d.path().join("t.db");
    let mut child = cmd(&db)
        .args(["ingest", "-v"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "a non-capture in a folder is skipped: 0, not a panic's 101"
    );
    let n: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM captures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
}

// 14. Control characters in file names never reach the terminal raw.
#[test]
fn control_characters_in_names_are_escaped() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(
        d.path(),
        "evil\u{1b}[2J\u{7}.pcap",
        &pcap(1, 65535, &sample_frames()),
        &[],
    );
    let r = run(&db, &["captures", "--format", "table"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.stdout.clone();
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains("evil\\e[2J\\x07.pcap"), "{out}");
    // JSON keeps the name exactly (escaped the JSON way).
    let r = run(&db, &["captures", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["name"], "evil\u{1b}[2J\u{7}.pcap");
    // Messages too.
    let r = run(
        &db,
        &[
            "ingest",
            "-v",
            d.path().join("evil\u{1b}[2J\u{7}.pcap").to_str().unwrap(),
        ],
    );
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
    assert!(r.stderr.contains("evil\\e[2J"), "{}", r.stderr);
}

// 15. Read commands open the database read-only: nothing is migrated, created or taken over.
#[test]
fn read_commands_never_write() {
    let d = tempfile::tempdir().unwrap();
    // An older schema is not migrated by a read; the message says how to upgrade it.
    let v1 = d.path().join("v1.db");
    {
        let c = Connection::open(&v1).unwrap();
        c.execute_batch(include_str!("../../migrations/0001_init.sql"))
            .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
    }
    for args in [&["captures"][..], &["query"][..]] {
        let r = run(&v1, args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("version 1") && r.stderr.contains("ingest"),
            "{}",
            r.stderr
        );
    }
    let version: i64 = Connection::open(&v1)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    // Another program's database is refused and left alone, by reads and by an ingest.
    let other = d.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (t TEXT)")
        .unwrap();
    let cap = d.path().join("s.pcap");
    std::fs::write(&cap, pcap(1, 65535, &sample_frames())).unwrap();
    for args in [&["captures"][..], &["ingest", cap.to_str().unwrap()][..]] {
        let r = run(&other, args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("not traceflow's"), "{}", r.stderr);
    }
    let tables: i64 = Connection::open(&other)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1);
}

/// Runs the binary as an unprivileged user when the tests run as root (permissions do not bind root).
fn as_unprivileged(db: &Path, args: &[&str]) -> Run {
    let bin = assert_cmd::cargo::cargo_bin("traceflow");
    let mut c = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    c.arg("--db").arg(db).args(args).env_remove("TRACEFLOW_DB");
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, Duration::from_secs(60), "unprivileged read")
}

#[test]
fn a_read_only_wal_database_in_a_read_only_folder_is_read() {
    let d = tempfile::tempdir().unwrap();
    let ro = d.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let (db, _) = db_with(&ro, "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    let mode: String = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(!ro.join("t.db-shm").exists(), "a clean close removes -shm");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = as_unprivileged(&db, &["captures", "--format", "json"]);
    let r2 = as_unprivileged(&db, &["query", "--format", "json"]);
    // Its connections were not built: the read command says so and what to do, in one line.
    let r3 = as_unprivileged(&db, &["connections", "--format", "json"]);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(r3.code, 2, "{}", r3.stderr);
    assert_eq!(r3.stderr.lines().count(), 1, "{}", r3.stderr);
    assert!(
        r3.stderr.contains("no connections") && r3.stderr.contains("ingest --connections"),
        "{}",
        r3.stderr
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["name"], "s.pcap");
    assert_eq!(r2.code, 0, "{}", r2.stderr);
    assert_eq!(names_in(&ro), ["s.pcap", "t.db"]);
}

// 16. Errors are one line that says what failed, where, and what to do.
#[test]
fn schema_errors_are_one_clear_line() {
    let d = tempfile::tempdir().unwrap();
    let (db, cap) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    for args in [
        &["captures"][..],
        &["ingest", "--force", cap.to_str().unwrap()][..],
    ] {
        let r = run(&db, args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("version 99")
                && r.stderr
                    .contains(&format!("({})", traceflow::store::SCHEMA_VERSION))
                && r.stderr.contains("newer traceflow"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("TooFarAhead"), "{}", r.stderr);
    }
    // A migration that fails says which, without its SQL, once.
    let v1 = d.path().join("v1.db");
    {
        let c = Connection::open(&v1).unwrap();
        c.execute_batch(include_str!("../../migrations/0001_init.sql"))
            .unwrap();
        c.execute_batch("DROP VIEW tcp_frames").unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
    }
    let r = run(&v1, &["ingest", cap.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("migration 2") && r.stderr.contains("no such view"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("CREATE TABLE"), "{}", r.stderr);
    // A cause is not said twice ("unable to open database file: unable to open database file").
    let r = run(d.path(), &["captures"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    for part in r.stderr.trim().split(": ") {
        assert_eq!(
            r.stderr.matches(part).count(),
            1,
            "{part:?} repeated: {}",
            r.stderr
        );
    }
}

// 17. A dump that fails half-way leaves no half-written new folder, and says what it left in an existing one.
#[test]
fn a_failed_folder_dump_leaves_nothing_half_written() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    let idx = index(&db);
    // The last label of the index makes a file name too long for any file system.
    let long = format!("{}-{}", idx.last().unwrap().0, "x".repeat(300));
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE flow_rows SET label = ?1 WHERE flow_no IN (SELECT flow_no FROM flows WHERE label = ?2)",
            [&long, &idx.last().unwrap().0],
        )
        .unwrap();
    let new = d.path().join("new");
    let r = run(
        &db,
        &[
            "query",
            "--capture",
            "s.pcap",
            "--dump",
            new.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(!new.exists(), "a failed dump left {}", new.display());
    let left: Vec<String> = names_in(d.path())
        .into_iter()
        .filter(|n| n.contains("new"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let old = d.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let r = run(
        &db,
        &[
            "query",
            "--capture",
            "s.pcap",
            "--dump",
            old.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let written = names_in(&old).len();
    assert!(written > 0);
    assert!(
        r.stderr.contains(&format!(
            "{written} files were written in {}",
            old.display()
        )),
        "{}",
        r.stderr
    );
}

/// Fuzz finding (query_db-index-drops-negative-frame-number): a frame number that is not a positive integer
/// was pasted into the JSON index but dropped from the table; both now report the damage.
#[test]
fn a_crafted_frame_number_is_damage_in_every_index_format() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE frames SET number = -4 WHERE number = 10", [])
        .unwrap();
    for format in ["json", "jsonl", "table", "csv"] {
        let r = run(&db, &["query", "--format", format]);
        assert_eq!(r.code, 2, "--format {format}: {}", r.stdout);
        assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    }
}

/// The `.NAME.traceflow-*.tmp` entries of `dir` (a dump's staged folder, a file being written).
fn temp_entries(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.contains(".traceflow-") && n.ends_with(".tmp"))
        .collect()
}

/// Waits (bounded) until `dir`'s staged dump folder, or `dir` itself, holds at least one finished file.
fn wait_for_files(dir: &Path, child: &mut Child) {
    let start = Instant::now();
    loop {
        let mut places = vec![dir.to_path_buf()];
        places.extend(temp_entries(dir).iter().map(|n| dir.join(n)));
        let files = places
            .iter()
            .filter(|p| p.is_dir())
            .flat_map(|p| names_in(p))
            .filter(|n| n.ends_with(".pcap"))
            .count();
        if files > 0 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the dump ended before it was interrupted"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no file dumped");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// 6. A dump stopped by SIGTERM (or Ctrl-C) removes what it had begun: without a handler the signal ended the
// process and left its staged folder, with every file written so far, beside DIR.
#[test]
fn a_dump_stopped_by_sigterm_leaves_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let frames = synth::conversations(20_000, T0);
    let (db, _) = db_with(d.path(), "many.pcap", &pcap(1, 65535, &frames), &[]);
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let existing = out.join("existing");
    std::fs::create_dir(&existing).unwrap();
    // A DIR that did not exist (staged, then renamed), and one that did (files written in place).
    for (dir, made) in [(out.join("new"), true), (existing.clone(), false)] {
        let mut child = cmd(&db)
            .args([
                "query",
                "--capture",
                "many.pcap",
                "--format",
                "pcap",
                "--dump",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_files(if made { &out } else { &dir }, &mut child);
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let r = wait_bounded(child, Duration::from_secs(30), "interrupted dump");
        assert_eq!(r.code, 130, "{}", r.stderr);
        assert!(r.stderr.contains("interrupted"), "{}", r.stderr);
        assert!(
            temp_entries(&out).is_empty(),
            "left in {}: {:?}",
            out.display(),
            names_in(&out)
        );
        if made {
            assert!(
                !dir.exists(),
                "{} made by an interrupted dump",
                dir.display()
            );
        } else {
            // The finished files stay, whole; nothing half-written does.
            assert!(temp_entries(&dir).is_empty(), "{:?}", temp_entries(&dir));
            let kept = names_in(&dir);
            assert!(
                !kept.is_empty() && kept.len() < 20_000,
                "{} files",
                kept.len()
            );
            assert!(
                r.stderr.contains(&format!("{} complete files", kept.len())),
                "{}",
                r.stderr
            );
        }
    }
}

/// `forget` waits for another writer's lock, as an ingest and the connection build do, and says what it waits
/// for (it failed at once with "database is locked").
#[test]
fn forget_waits_for_another_writer() {
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut child = cmd(&db)
        .args(["forget", "s.pcap"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let waiting = child.try_wait().unwrap().is_none();
    holder.execute_batch("COMMIT").unwrap();
    let r = wait_bounded(child, Duration::from_secs(60), "forget");
    assert!(waiting, "forget did not wait: {}", r.stderr);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr
            .matches("waiting for another writer (ingest, forget or a connection build) to finish")
            .count(),
        1,
        "{}",
        r.stderr
    );
    let left: i64 = holder
        .query_row("SELECT count(*) FROM captures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

/// A listing read slowly while `forget` deletes one of its captures shows that capture whole or not at all: one
/// snapshot for the whole listing (each page was read in its own, and 94,208 of 262,416 flows were listed).
/// `db` is a SQLite path or a PostgreSQL URL; the captures are written in `dir`.
pub(crate) fn a_listing_during_forget_is_whole_or_nothing(db: &Path, dir: &Path) {
    use std::io::Read;
    let (big, small) = (dir.join("big.pcap"), dir.join("small.pcap"));
    std::fs::write(&big, super::util::pcap_conversations(12_000, T0)).unwrap();
    std::fs::write(&small, super::util::pcap_conversations(50, T0 + 1)).unwrap();
    let r = run(
        db,
        &[
            "ingest",
            "-q",
            big.to_str().unwrap(),
            small.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "ingest: {}", r.stderr);
    let whole = run(db, &["flows", "capture big.pcap", "--count"]);
    let whole: usize = whole.stdout.trim().parse().unwrap();
    assert!(whole > 20_000, "{whole}");
    let mut child = cmd(db)
        .args(["flows", "--format", "jsonl"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    // A slow reader: the first 64 KiB, then nothing until forget is done.
    let mut buf = vec![0u8; 64 << 10];
    out.read_exact(&mut buf).unwrap();
    let f = run(db, &["forget", "big.pcap"]);
    assert_eq!(f.code, 0, "forget: {}", f.stderr);
    out.read_to_end(&mut buf).unwrap();
    let r = wait_bounded(child, Duration::from_secs(120), "flows during forget");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = String::from_utf8(buf).unwrap();
    let listed = text
        .lines()
        .filter(|l| l.contains("\"capture\":\"big.pcap\""))
        .count();
    let others = text
        .lines()
        .filter(|l| l.contains("\"capture\":\"small.pcap\""))
        .count();
    assert!(
        listed == whole || listed == 0,
        "listed {listed} of big.pcap's {whole} flows"
    );
    assert_eq!(others, 100);
    assert_eq!(
        run(db, &["flows", "capture big.pcap", "--count"])
            .stdout
            .trim(),
        "0"
    );
}

#[test]
fn a_listing_during_forget_is_whole_or_nothing_on_sqlite() {
    let d = tempfile::tempdir().unwrap();
    a_listing_during_forget_is_whole_or_nothing(&d.path().join("t.db"), d.path());
}

/// Runs the binary as user and group `uid` (root only), with `--db db`.
fn as_uid(uid: u32, db: &Path, args: &[&str]) -> Run {
    let child = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "--",
        ])
        .arg(assert_cmd::cargo::cargo_bin("traceflow"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("TRACEFLOW_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, Duration::from_secs(60), "another user's run")
}

/// Another user's read leaves no `-wal` or `-shm` file of its own beside a WAL database in a sticky folder
/// anyone may write, so the owner's next ingest still writes (it failed "attempt to write a readonly database").
#[test]
fn another_users_read_does_not_block_the_owners_ingest() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run as two other users");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sticky = d.path().join("shared");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (a, b) = (d.path().join("a.pcap"), d.path().join("b.pcap"));
    std::fs::write(&a, pcap(1, 65535, &sample_frames())).unwrap();
    std::fs::write(
        &b,
        pcap(1, 65535, &synth::conversations(4, T0 + 1_000_000_000)),
    )
    .unwrap();
    let db = sticky.join("t.db");
    let owner = 4321;
    let r = as_uid(owner, &db, &["ingest", "-q", a.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = as_unprivileged(&db, &["captures", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["name"], "a.pcap");
    assert_eq!(names_in(&sticky), ["t.db"], "the reader left files behind");
    let r = as_uid(owner, &db, &["ingest", "-q", b.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = as_unprivileged(&db, &["captures", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
}

/// A capture that went away while a dump read it (`forget`) is named, with what to do, not "Query returned no
/// rows".
#[test]
fn a_capture_gone_during_a_dump_is_named() {
    use traceflow::store::{read, Db, Target};
    let d = tempfile::tempdir().unwrap();
    let (db, _) = db_with(d.path(), "s.pcap", &pcap(1, 65535, &sample_frames()), &[]);
    let conn = Db::open_read(&Target::of(&db)).unwrap();
    let id = read::resolve_capture(&conn, "s.pcap").unwrap();
    drop(conn);
    assert_eq!(run(&db, &["forget", "s.pcap"]).code, 0);
    let conn = Db::open_read(&Target::of(&db)).unwrap();
    for e in [
        read::capture_row(&conn, id).err().unwrap(),
        read::flow_first_frame(&conn, id, 1).err().unwrap(),
    ] {
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("capture {id} is no longer in the database"))
                && msg.contains("run the command again"),
            "{msg}"
        );
    }
}
