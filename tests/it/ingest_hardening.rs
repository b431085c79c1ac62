//! Regression tests for ingest defects: memory of `--embed` bounded in bytes, files that change while
//! or after they are read, folder walks that leave their folder or meet FIFOs, damaged streams that never end,
//! and floods of empty records (`--max-frames`).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::util::{count, ingest, pcap_conversations as pcap_bytes, peak_rss, tf, T0};
use rusqlite::Connection;

// ---------------------------------------------------------------------------------------------------------------
// Helpers (copied from ingest_behaviour.rs / robustness.rs)

/// A little-endian µs pcap header with link type 1 and the given snaplen.
fn pcap_header(snaplen: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

/// A pcap record header written by hand: any caplen.
fn pcap_record_header(ts_sec: u32, caplen: u32, origlen: u32) -> Vec<u8> {
    let mut r = Vec::new();
    for v in [ts_sec, 0, caplen, origlen] {
        r.extend_from_slice(&v.to_le_bytes());
    }
    r
}

fn abs(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------------------------------------------
// 6. --embed memory is bounded in bytes

/// A pcap of `records` records of `size` zero bytes each, timestamped from `ts0` s.
/// Runs the binary and returns (exit code, stderr, the child's peak RSS in KiB), as `util::peak_rss` measures it.
fn run_measuring_rss(db: &Path, args: &[String]) -> (i32, String, i64) {
    let mut c = tf(db);
    c.args(args);
    let (code, mib, stderr) = peak_rss(c);
    (code, stderr, (mib * 1024.0) as i64)
}

fn big_record_pcap(path: &Path, records: u32, size: u32, ts0: u32) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&pcap_header(0)).unwrap();
    let zeros = vec![0u8; size as usize];
    for i in 0..records {
        f.write_all(&pcap_record_header(ts0 + i, size, size))
            .unwrap();
        f.write_all(&zeros).unwrap();
    }
    f.flush().unwrap();
}

/// Before the fix, two captures of four 48 MiB records with --embed --jobs 2 peaked at about 1 GB: every record
/// was a batch of its own and eight batches per capture could queue. Now the frame bytes in flight share one
/// byte budget (and large blobs are written in place), so the peak is a few records.
#[test]
fn embed_memory_is_bounded_in_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.pcap"), tmp.path().join("b.pcap"));
    big_record_pcap(&a, 4, 48 << 20, 0);
    // Different timestamps: two contents, not one capture under two paths.
    big_record_pcap(&b, 4, 48 << 20, 100);
    let db = tmp.path().join("t.db");
    let args: Vec<String> = ["ingest", "--embed", "--jobs", "2", "-q"]
        .iter()
        .map(|s| s.to_string())
        .chain([abs(&a), abs(&b)])
        .collect();
    let (code, stderr, rss_kib) = run_measuring_rss(&db, &args);
    assert_eq!(code, 0, "{stderr}");
    eprintln!("peak RSS of ingest --embed --jobs 2 (2 x 4 x 48 MiB records): {rss_kib} KiB");
    assert_eq!(count(&db, "SELECT count(*) FROM frame_data"), 8);
    assert_eq!(
        count(&db, "SELECT sum(length(data)) FROM frame_data"),
        8 * (48 << 20)
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM frame_data WHERE data <> zeroblob(48 * 1048576)"
        ),
        0
    );
    assert!(
        rss_kib < 450 * 1024,
        "peak RSS {rss_kib} KiB: more than 450 MiB for records of 48 MiB"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 9. Files that change

#[test]
fn a_path_rewritten_with_new_content_replaces_its_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let p = tmp.path().join("x.pcap");
    std::fs::write(&p, pcap_bytes(2, T0)).unwrap();
    let r = ingest(&db, &[], &[&p]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let old_id = count(&db, "SELECT id FROM captures");
    // New content under the same path (a different size, so the cheap path cannot skip it).
    std::fs::write(&p, pcap_bytes(3, T0 + 1_000)).unwrap();
    let r = ingest(&db, &[], &[&p]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        count(&db, "SELECT count(*) FROM captures"),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(count(&db, "SELECT frames FROM captures"), 21);
    assert_eq!(count(&db, "SELECT count(*) FROM frames"), 21);
    assert_eq!(count(&db, "SELECT count(*) FROM capture_paths"), 1);
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM frames WHERE capture_id = {old_id}")
        ),
        0
    );
    let line = format!("content changed since it was indexed; replaced capture {old_id}");
    assert!(r.stderr.contains(&line), "{}", r.stderr);
}

#[test]
fn a_rewritten_path_whose_old_content_has_another_path_only_moves_that_path() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let (p, q) = (tmp.path().join("x.pcap"), tmp.path().join("copy.pcap"));
    std::fs::write(&p, pcap_bytes(2, T0)).unwrap();
    std::fs::write(&q, pcap_bytes(2, T0)).unwrap();
    assert_eq!(ingest(&db, &[], &[&p, &q]).code, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM capture_paths"), 2);
    let old_id = count(&db, "SELECT id FROM captures");
    std::fs::write(&p, pcap_bytes(3, T0 + 1_000)).unwrap();
    let r = ingest(&db, &[], &[&p]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 2);
    let q_on_old = format!(
        "SELECT count(*) FROM capture_paths WHERE capture_id = {old_id} AND path = '{}'",
        abs(&q)
    );
    assert_eq!(count(&db, &q_on_old), 1, "the copy keeps the old capture");
    let p_paths = format!(
        "SELECT count(*) FROM capture_paths WHERE path = '{}'",
        abs(&p)
    );
    assert_eq!(
        count(&db, &p_paths),
        1,
        "the path is on the new capture only"
    );
    assert!(
        r.stderr.contains("content changed since it was indexed"),
        "{}",
        r.stderr
    );
}

/// The known limit of the cheap path: a same-size rewrite that keeps the mtime (`cp -p`, `touch -r`) is taken
/// for the indexed file. `--force` re-indexes it.
#[test]
fn a_same_size_rewrite_keeping_the_mtime_is_skipped_by_the_cheap_path() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let p = tmp.path().join("x.pcap");
    let one = pcap_bytes(2, T0);
    let two = pcap_bytes(2, T0 + 1_000);
    assert_eq!(one.len(), two.len());
    assert_ne!(one, two);
    std::fs::write(&p, &one).unwrap();
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    assert_eq!(ingest(&db, &[], &[&p]).code, 0);
    std::fs::write(&p, &two).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let r = ingest(&db, &[], &[&p]);
    assert!(r.stderr.contains("already indexed"), "{}", r.stderr);
    let r = ingest(&db, &["--force"], &[&p]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 1);
}

// ---------------------------------------------------------------------------------------------------------------
// 10. Folder walks

#[test]
fn folder_walk_follows_only_symlinks_inside_and_names_fifos() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(root.join("sub/in.pcap"), pcap_bytes(2, T0)).unwrap();
    std::fs::write(outside.join("out.pcap"), pcap_bytes(3, T0 + 5)).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(root.join("sub"), root.join("again")).unwrap();
    let fifo = root.join("pipe.pcap");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = assert_cmd::Command::cargo_bin("traceflow")
        .unwrap()
        .arg("--db")
        .arg(&db)
        .args(["ingest", "--jobs", "1"])
        .arg(&root)
        .env_remove("TRACEFLOW_DB")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some(), "hung: {stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 1, "{stderr}");
    assert_eq!(count(&db, "SELECT frames FROM captures"), 14, "{stderr}");
    let link_line = format!(
        "{}: symlink to a folder outside {}, not followed",
        root.join("elsewhere").display(),
        std::fs::canonicalize(&root).unwrap().display()
    );
    assert!(stderr.contains(&link_line), "{stderr}");
    let fifo_line = format!("{}: not a regular file (FIFO), skipped", fifo.display());
    assert!(stderr.contains(&fifo_line), "{stderr}");
    assert!(stderr.contains("1 skipped"), "{stderr}");
    assert!(!stderr.contains("out.pcap"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------------------------
// 11. Damaged streams

#[test]
fn a_damaged_stream_that_stays_open_still_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let good = pcap_bytes(1, T0);
    // The header and the first two records of a conversation, then a record claiming 512 MiB.
    let mut bytes = Vec::new();
    let mut at = 24;
    bytes.extend_from_slice(&good[..24]);
    for _ in 0..2 {
        let caplen = u32::from_le_bytes(good[at + 8..at + 12].try_into().unwrap()) as usize;
        bytes.extend_from_slice(&good[at..at + 16 + caplen]);
        at += 16 + caplen;
    }
    bytes.extend_from_slice(&pcap_record_header(9, 512 << 20, 512 << 20));
    bytes.extend_from_slice(&[0u8; 4096]);
    let mut child = tf(&db)
        .args(["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    stdin.flush().unwrap();
    // stdin stays open: the stream has not ended.
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    let status = status.unwrap_or_else(|| panic!("still reading 20 s after the damage: {stderr}"));
    assert_eq!(status.code(), Some(1), "truncated: {stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM frames"), 2, "{stderr}");
    assert!(stderr.contains("impossible"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------------------------
// 12. Floods of empty records

fn zero_record_flood(records: usize) -> Vec<u8> {
    let mut raw = pcap_header(65535);
    raw.resize(24 + records * 16, 0);
    zstd::encode_all(&raw[..], 3).unwrap()
}

#[test]
fn a_flood_of_empty_records_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let p = tmp.path().join("flood.pcap.zst");
    let z = zero_record_flood(2_000_000);
    assert!(z.len() < 100_000, "{}", z.len());
    std::fs::write(&p, &z).unwrap();
    let r = ingest(&db, &[], &[&p]);
    assert_eq!(count(&db, "SELECT frames FROM captures"), 2_000_000);
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("records per byte"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(warnings[0].contains("flood.pcap.zst"), "{}", warnings[0]);
    // An ordinary capture gives no such warning.
    let normal = tmp.path().join("normal.pcap");
    std::fs::write(&normal, pcap_bytes(20, T0)).unwrap();
    let r = ingest(&db, &[], &[&normal]);
    assert!(!r.stderr.contains("records per byte"), "{}", r.stderr);
}

#[test]
fn max_frames_stops_the_reader_and_marks_the_capture_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let p = tmp.path().join("flood.pcap.zst");
    std::fs::write(&p, zero_record_flood(200_000)).unwrap();
    let r = ingest(&db, &["--max-frames", "1000"], &[&p]);
    assert_eq!(r.code, 1, "truncated: {}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM frames"), 1000);
    assert_eq!(count(&db, "SELECT frames FROM captures"), 1000);
    let why: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT truncated_why FROM captures", [], |r| r.get(0))
        .unwrap();
    assert!(why.contains("--max-frames 1000"), "{why}");
    assert_eq!(
        count(&db, "SELECT truncated_at FROM captures"),
        24 + 1000 * 16
    );
    assert!(r.stderr.contains("warning"), "{}", r.stderr);
}
