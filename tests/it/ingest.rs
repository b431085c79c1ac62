//! How `traceflow ingest` behaves over archives: idempotency, --force, --jobs, duplicate contents, truncated
//! copies of conformance captures, kill -9 atomicity, Ctrl-C, exit statuses, stdin and non-capture files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::util::{
    conformance, count, finish, index_of, ingest, pcap_conversations as pcap_bytes, run, tf as cmd,
    Run, T0,
};
use rusqlite::Connection;
use serde_json::Value;

/// `traceflow ingest -` with `bytes` on standard input.
fn ingest_stdin(db: &Path, bytes: Vec<u8>) -> Run {
    use std::io::Write;
    let mut child = cmd(db)
        .args(["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    finish("ingest -", out)
}

fn json(db: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let r = run(db, &a);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout))
}

/// `captures --format json` without the fields that change with every ingest (time, ids).
fn captures_stable(db: &Path) -> Value {
    let mut v = json(db, &["captures"]);
    for c in v.as_array_mut().unwrap() {
        let o = c.as_object_mut().unwrap();
        o.remove("ingested_at");
        o.remove("id");
    }
    v
}

/// Table sizes, to see that nothing at all changed.
fn table_counts(db: &Path) -> Vec<i64> {
    [
        "captures",
        "capture_paths",
        "frames",
        "flows",
        "labels",
        "interfaces",
    ]
    .iter()
    .map(|t| count(db, &format!("SELECT count(*) FROM {t}")))
    .collect()
}

/// A folder with a few generated captures (one gzip) and a copy of a few conformance captures.
fn archive(dir: &Path) -> PathBuf {
    let root = dir.join("archive");
    std::fs::create_dir_all(root.join("day2/late")).unwrap();
    std::fs::write(root.join("a.pcap"), pcap_bytes(3, T0)).unwrap();
    std::fs::write(root.join("day2/b.pcap"), pcap_bytes(5, T0 + 1_000_000_000)).unwrap();
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&pcap_bytes(4, T0 + 7)).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(root.join("day2/late/c.pcap.gz"), gz).unwrap();
    let caps = conformance().join("captures");
    for name in [
        "socks-http-example.pcap",
        "variant-pcapng-two-sections.pcapng",
    ] {
        std::fs::copy(caps.join(name), root.join(name)).unwrap();
    }
    root
}

// ---------------------------------------------------------------------------------------------------------------
// Idempotency, --force, duplicates

#[test]
fn ingesting_a_folder_twice_changes_nothing_the_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let root = archive(tmp.path());
    let first = ingest(&db, &[], &[&root]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let caps = json(&db, &["captures"]);
    let index = json(&db, &["query"]);
    let counts = table_counts(&db);
    assert_eq!(counts[0], 5);

    let second = ingest(&db, &["-v"], &[&root]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let already = second
        .stderr
        .lines()
        .filter(|l| l.contains("already indexed (as"))
        .count();
    assert_eq!(already, 5, "{}", second.stderr);
    assert_eq!(json(&db, &["captures"]), caps);
    assert_eq!(json(&db, &["query"]), index);
    assert_eq!(table_counts(&db), counts);

    // A touched file (new mtime, same bytes) is recognised by its content hash.
    let a = root.join("a.pcap");
    let f = std::fs::File::options().append(true).open(&a).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(f);
    let third = ingest(&db, &["-v"], &[&a]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(third.stderr.contains("already indexed"), "{}", third.stderr);
    assert_eq!(json(&db, &["query"]), index);
    assert_eq!(table_counts(&db), counts);
}

#[test]
fn force_reindexes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let root = archive(tmp.path());
    assert_eq!(ingest(&db, &[], &[&root]).code, 0);
    let ids = |db: &Path| -> Vec<i64> {
        json(db, &["captures"])
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    };
    let before_ids = ids(&db);
    let caps = captures_stable(&db);
    let index = json(&db, &["query"]);
    let counts = table_counts(&db);

    let forced = ingest(&db, &["--force"], &[&root]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(
        !forced.stderr.contains("already indexed"),
        "{}",
        forced.stderr
    );
    let after_ids = ids(&db);
    assert_eq!(after_ids.len(), before_ids.len());
    assert!(
        after_ids.iter().all(|id| !before_ids.contains(id)),
        "--force must replace the rows: {before_ids:?} -> {after_ids:?}"
    );
    assert_eq!(captures_stable(&db), caps);
    // The index tuples are the same; only the capture ids they carry moved.
    let strip = |mut v: Value| {
        for r in v.as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("capture_id");
        }
        v
    };
    assert_eq!(strip(json(&db, &["query"])), strip(index));
    assert_eq!(assert_only_whole_captures(&db), 5);
    assert_eq!(table_counts(&db), counts);
}

#[test]
fn same_content_under_two_paths_is_one_capture_with_both_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let bytes = pcap_bytes(2, T0);
    let a = tmp.path().join("one.pcap");
    let b = tmp.path().join("sub/two.pcap");
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    std::fs::write(&a, &bytes).unwrap();
    std::fs::write(&b, &bytes).unwrap();
    let r = ingest(&db, &["--jobs", "2"], &[&a, &b]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let caps = json(&db, &["captures"]);
    let caps = caps.as_array().unwrap();
    assert_eq!(caps.len(), 1, "{caps:?}");
    let mut paths: Vec<String> = caps[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    paths.sort();
    let mut want = vec![
        std::path::absolute(&a)
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        std::path::absolute(&b)
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    ];
    want.sort();
    assert_eq!(paths, want);
    // Both names find it.
    for name in ["one.pcap", "two.pcap"] {
        let q = json(&db, &["query", "--capture", name]);
        assert_eq!(q.as_array().unwrap().len(), 4, "{name}");
    }
    // --force re-indexes the content and it still remembers both paths (whichever path is forced).
    for forced in [vec![&a, &b], vec![&b], vec![&a]] {
        let paths: Vec<&Path> = forced.iter().map(|p| p.as_path()).collect();
        let r = ingest(&db, &["--force"], &paths);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let caps = json(&db, &["captures"]);
        let caps = caps.as_array().unwrap();
        assert_eq!(caps.len(), 1, "{caps:?}");
        let mut got: Vec<String> = caps[0]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        got.sort();
        assert_eq!(got, want, "after --force {paths:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// --jobs

#[test]
fn jobs_1_and_jobs_4_give_identical_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let root = archive(tmp.path());
    let conf = conformance().join("captures");
    let mut outs = Vec::new();
    for jobs in ["1", "4"] {
        let db = tmp.path().join(format!("j{jobs}.db"));
        let r = ingest(&db, &["--jobs", jobs], &[&conf, &root]);
        assert_eq!(r.code, 0, "--jobs {jobs}: {}", r.stderr);
        outs.push((
            json(&db, &["query"]),
            captures_stable(&db),
            table_counts(&db),
        ));
    }
    assert!(outs[0].0.as_array().unwrap().len() > 900);
    assert_eq!(outs[0].0, outs[1].0, "query outputs differ");
    assert_eq!(outs[0].1, outs[1].1, "captures outputs differ");
    assert_eq!(outs[0].2, outs[1].2);
}

// ---------------------------------------------------------------------------------------------------------------
// A truncated copy of a conformance capture is the prefix the reference predicts

/// The record boundaries of a classic pcap: the end offset of each record, in order.
fn pcap_record_ends(bytes: &[u8]) -> Vec<usize> {
    let big = match u32::from_le_bytes(bytes[..4].try_into().unwrap()) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => false,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => true,
        m => panic!("not a pcap: {m:#x}"),
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut ends = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        at += 16 + u32_at(at + 8) as usize;
        ends.push(at);
    }
    assert_eq!(at, bytes.len());
    ends
}

/// The TCP FIN flag of a plain Ethernet (optionally VLAN-tagged) IPv4/IPv6 frame, read independently of the
/// decoder under test; `None` when the frame is something else.
fn plain_fin(frame: &[u8]) -> Option<bool> {
    let mut at = 12;
    let mut et = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    while et == 0x8100 || et == 0x88a8 {
        at += 4;
        et = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    }
    let ip = at + 2;
    let tcp = match et {
        0x0800 if *frame.get(ip + 9)? == 6 => ip + (*frame.get(ip)? as usize & 0x0f) * 4,
        0x86dd if *frame.get(ip + 6)? == 6 => ip + 40,
        _ => return None,
    };
    Some(frame.get(tcp + 13)? & 0x01 != 0)
}

/// The frames of a pcap file (data only), in order.
fn pcap_frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut start = 24;
    pcap_record_ends(bytes)
        .into_iter()
        .map(|end| {
            let f = &bytes[start + 16..end];
            start = end;
            f
        })
        .collect()
}

/// The index tuple (label, frames) after keeping only frames 1..=keep: frames past the cut disappear, a flow
/// left without frames disappears, and a flow whose FIN frame was cut off is open again. Open flows come first in
/// creation order (first frame), then closed ones in closing order (their FIN frame, the last of their frames).
fn expected_prefix(
    full: &[(String, Vec<u64>)],
    fin: &dyn Fn(u64) -> bool,
    keep: u64,
) -> Vec<(String, Vec<u64>)> {
    let mut open = Vec::new();
    let mut closed = Vec::new();
    for (label, index) in full {
        let kept: Vec<u64> = index.iter().copied().filter(|&n| n <= keep).collect();
        let Some(&last) = kept.last() else { continue };
        if fin(last) {
            closed.push((last, (label.clone(), kept)));
        } else {
            open.push((kept[0], (label.clone(), kept)));
        }
    }
    open.sort_by_key(|(k, _)| *k);
    closed.sort_by_key(|(k, _)| *k);
    open.into_iter().chain(closed).map(|(_, f)| f).collect()
}

#[test]
fn a_truncated_conformance_capture_is_the_predicted_prefix() {
    let conf = conformance();
    let tmp = tempfile::tempdir().unwrap();
    let (mut checked, mut reopened) = (0, 0);
    for name in [
        "arkime_synthetic.pcap",
        "socks-http-example.pcap",
        "wireshark-smb-on-windows10.pcap",
        "tcp_handshake_synthetic.pcap",
    ] {
        let bytes = std::fs::read(conf.join("captures").join(name)).unwrap();
        let expected: Value = serde_json::from_slice(
            &std::fs::read(conf.join("expected").join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let full = index_of(&expected["flows"]);
        let frames = pcap_frames(&bytes);
        assert_eq!(expected["frames"].as_u64(), Some(frames.len() as u64));
        let fin = |n: u64| plain_fin(frames[n as usize - 1]).unwrap_or(false);
        // The oracle reproduces the full reference before it predicts any prefix.
        assert_eq!(
            expected_prefix(&full, &fin, frames.len() as u64),
            full,
            "{name}: FIN oracle"
        );
        let ends = pcap_record_ends(&bytes);
        for frac in [0.2, 0.5, 0.77, 0.95] {
            // Mid-record: 7 bytes past a point, never on a boundary.
            let mut cut = (bytes.len() as f64 * frac) as usize + 7;
            while ends.contains(&cut) || cut <= 24 {
                cut += 1;
            }
            let keep = ends.iter().filter(|&&e| e <= cut).count() as u64;
            let first_incomplete = if keep == 0 {
                24
            } else {
                ends[keep as usize - 1]
            };
            let file = tmp.path().join(format!("{frac}-{name}"));
            std::fs::write(&file, &bytes[..cut]).unwrap();
            let db = tmp.path().join(format!("{frac}-{name}.db"));
            let r = ingest(&db, &[], &[&file]);
            assert_eq!(r.code, 1, "{name} cut at {cut}: {}", r.stderr);
            assert!(
                r.stderr.contains(&format!(
                    "truncated at byte offset {first_incomplete} after frame {keep}"
                )),
                "{name} cut at {cut}: {}",
                r.stderr
            );
            let caps = json(&db, &["captures"]);
            assert_eq!(caps[0]["frames"].as_u64(), Some(keep));
            assert_eq!(
                caps[0]["truncated_at"].as_u64(),
                Some(first_incomplete as u64)
            );
            let fname = file.file_name().unwrap().to_string_lossy().into_owned();
            // Flows closed in the whole capture whose FIN is past the cut: open again, so they move up.
            reopened += full
                .iter()
                .filter(|(_, idx)| {
                    let last = *idx.last().unwrap();
                    fin(last) && last > keep && idx[0] <= keep
                })
                .count();
            let got = index_of(&json(&db, &["query", "--capture", &fname]));
            assert_eq!(
                got,
                expected_prefix(&full, &fin, keep),
                "{name} cut at {cut} (after frame {keep})"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
    assert!(reopened > 0, "no cut reopened a closed flow");
    eprintln!("{reopened} flows reopened by the cuts");
}

// ---------------------------------------------------------------------------------------------------------------
// Atomicity: kill -9 and Ctrl-C

/// name, hash, frames and flows as recorded, then the frame, flow and path rows found.
type WholeRow = (String, Option<String>, i64, i64, i64, i64, i64);

/// Every capture in the database is whole: its frame and flow rows are all there, and its hash is set.
fn assert_only_whole_captures(db: &Path) -> i64 {
    let c = Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mut st = c
        .prepare(
            "SELECT c.name, c.hash, c.frames, c.flows,
                    (SELECT count(*) FROM frames f WHERE f.capture_id = c.id),
                    (SELECT count(*) FROM flows f WHERE f.capture_id = c.id),
                    (SELECT count(*) FROM capture_paths p WHERE p.capture_id = c.id)
             FROM captures c",
        )
        .unwrap();
    let rows: Vec<WholeRow> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (name, hash, frames, flows, nframes, nflows, npaths) in &rows {
        assert!(hash.is_some(), "{name}: no hash");
        assert_eq!(frames, nframes, "{name}: frames");
        assert_eq!(flows, nflows, "{name}: flows");
        assert!(*npaths >= 1, "{name}: no path");
    }
    // No orphan rows from a capture that was rolled back.
    let orphans: i64 = c
        .query_row(
            "SELECT (SELECT count(*) FROM frames WHERE capture_id NOT IN (SELECT id FROM captures))
                  + (SELECT count(*) FROM flows WHERE capture_id NOT IN (SELECT id FROM captures))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    // Labels per capture (when the schema keys them by capture) must go with their capture too.
    let per_capture: i64 = c
        .query_row(
            "SELECT count(*) FROM pragma_table_info('labels') WHERE name = 'capture_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if per_capture > 0 {
        let orphans: i64 = c
            .query_row(
                "SELECT count(*) FROM labels WHERE capture_id NOT IN (SELECT id FROM captures)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "labels left behind");
    }
    rows.len() as i64
}

const KILL_CONNS: [u32; 6] = [40, 60, 8000, 30, 50, 70];

/// A large capture between small ones, so that a kill lands in the middle of the large one's transaction.
fn kill_fixture(dir: &Path) -> Vec<PathBuf> {
    let mut inputs = Vec::new();
    for (i, conns) in KILL_CONNS.iter().enumerate() {
        let p = dir.join(format!("in{i}.pcap"));
        std::fs::write(&p, pcap_bytes(*conns, T0 + i as i64 * 1_000_000_000)).unwrap();
        inputs.push(p);
    }
    inputs
}

#[test]
fn sigkill_mid_ingest_leaves_only_whole_captures() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = kill_fixture(tmp.path());
    let db = tmp.path().join("k.db");
    // The last input is standard input, fed only half a capture: the kill is sure to land inside its
    // transaction, however fast the machine, once the files before it are committed.
    let big = pcap_bytes(4000, T0 + 99_000_000_000);
    for round in 0..2 {
        let mut child = cmd(&db)
            .args(["ingest", "--jobs", "2"])
            .args(&inputs)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, &big[..big.len() / 2]).unwrap();
        // Wait (bounded) until the files are in, or were already in from the first round.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let done = db.exists()
                && Connection::open(&db)
                    .and_then(|c| {
                        c.query_row(
                            "SELECT count(*) FROM captures WHERE hash IS NOT NULL",
                            [],
                            |r| r.get::<_, i64>(0),
                        )
                    })
                    .unwrap_or(0)
                    == inputs.len() as i64;
            if done || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Give the writer a moment inside the stdin capture's transaction.
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the ingest ended before the kill"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        drop(stdin);
        let n = assert_only_whole_captures(&db);
        eprintln!("round {round}: killed mid-capture, {n} whole captures");
        assert_eq!(
            n,
            inputs.len() as i64,
            "only the finished files are in the database"
        );
    }
    // Picking up after the kills completes the archive.
    let r = ingest(
        &db,
        &[],
        &inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(assert_only_whole_captures(&db), inputs.len() as i64);
    let c = Connection::open(&db).unwrap();
    let mut st = c
        .prepare("SELECT name, frames, flows FROM captures ORDER BY name")
        .unwrap();
    let got: Vec<(String, i64, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: Vec<(String, i64, i64)> = KILL_CONNS
        .iter()
        .enumerate()
        .map(|(i, &n)| (format!("in{i}.pcap"), 7 * n as i64, 2 * n as i64))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn ctrl_c_commits_finished_captures_and_rolls_back_the_current_one() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = kill_fixture(tmp.path());
    let db = tmp.path().join("c.db");
    let child = cmd(&db)
        .args(["ingest", "--jobs", "1"])
        .args(&inputs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let running = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let n = assert_only_whole_captures(&db);
    if running && out.status.code() == Some(130) {
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert!(n < inputs.len() as i64, "{stderr}");
    } else {
        // The ingest was already done (a very fast machine): nothing to roll back.
        assert_eq!(out.status.code(), Some(0), "{stderr}");
    }
}

#[test]
fn a_second_ingest_waits_and_readers_work_during_an_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = kill_fixture(tmp.path());
    let db = tmp.path().join("w.db");
    // Create the schema first, so that both writers find it.
    assert_eq!(ingest(&db, &[], &[&inputs[0]]).code, 0);
    let big = cmd(&db)
        .args(["ingest", "--jobs", "1"])
        .arg(&inputs[2])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // A reader during the ingest sees the committed captures.
    let caps = json(&db, &["captures"]);
    assert!(!caps.as_array().unwrap().is_empty());
    // A second writer waits for the first instead of failing.
    let small = ingest(&db, &[], &[&inputs[1], &inputs[3]]);
    assert_eq!(small.code, 0, "{}", small.stderr);
    let out = big.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(assert_only_whole_captures(&db), 4);
}

// ---------------------------------------------------------------------------------------------------------------
// Exit statuses, stdin, files that are not captures

#[test]
fn exit_status_0_1_2() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let good = tmp.path().join("good.pcap");
    std::fs::write(&good, pcap_bytes(2, T0)).unwrap();
    let cut = tmp.path().join("cut.pcap");
    std::fs::write(&cut, &pcap_bytes(2, T0 + 5)[..300]).unwrap();
    let missing = tmp.path().join("missing.pcap");

    assert_eq!(ingest(&db, &[], &[&good]).code, 0);
    assert_eq!(
        ingest(&db, &[], &[&good]).code,
        0,
        "already indexed is fine"
    );
    assert_eq!(ingest(&db, &[], &[&cut]).code, 1, "truncated");
    assert_eq!(ingest(&db, &[], &[&missing, &good]).code, 1, "failed input");
    // Usage errors.
    assert_eq!(run(&db, &["ingest"]).code, 2);
    assert_eq!(run(&db, &["ingest", "--no-such-flag", "x"]).code, 2);
    assert_eq!(run(&db, &["ingest", "--jobs", "many", "x"]).code, 2);
    assert_eq!(run(&db, &["no-such-command"]).code, 2);
    assert_eq!(run(&db, &["--help"]).code, 0);
    let help = run(&db, &["--help"]);
    assert!(help.stdout.contains("Exit status"), "{}", help.stdout);
    // Database errors: a folder, and a file that is not SQLite.
    let r = ingest(tmp.path(), &[], &[&good]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let text = tmp.path().join("notes.db");
    std::fs::write(
        &text,
        "this is not a database, just some notes\n".repeat(100),
    )
    .unwrap();
    let r = ingest(&text, &[], &[&good]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("notes.db"), "{}", r.stderr);
}

#[test]
fn stdin_dash_is_a_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let bytes = pcap_bytes(3, T0);
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&pcap_bytes(2, T0 + 9)).unwrap();
        e.finish().unwrap()
    };
    let r = ingest_stdin(&db, bytes.clone());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let caps = json(&db, &["captures"]);
    assert_eq!(caps[0]["frames"].as_u64(), Some(21));
    let from_stdin = index_of(&json(&db, &["query", "--capture", "1"]));
    assert_eq!(from_stdin.len(), 6);
    // Compressed input on stdin works too.
    let r = ingest_stdin(&db, gz);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&db, &["captures"])[1]["compression"], "gzip");
    // The same bytes from a file are the same capture.
    let file = tmp.path().join("same.pcap");
    std::fs::write(&file, &bytes).unwrap();
    let r = ingest(&db, &[], &[&file]);
    assert!(r.stderr.contains("already indexed"), "{}", r.stderr);
    assert_eq!(
        index_of(&json(&db, &["query", "--capture", "same.pcap"])),
        from_stdin
    );
    // Empty stdin is not a capture.
    assert_eq!(ingest_stdin(&db, Vec::new()).code, 1);
}

#[test]
fn a_file_that_is_not_a_capture_is_skipped_and_named_with_v() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    let root = tmp.path().join("mixed");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.pcap"), pcap_bytes(2, T0)).unwrap();
    std::fs::write(
        root.join("README.txt"),
        "Captures of the lab network, 2024.\n",
    )
    .unwrap();
    std::fs::write(root.join("z.pcap"), pcap_bytes(3, T0 + 3)).unwrap();
    let r = ingest(&db, &["-v"], &[&root]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("README.txt"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(lines[0].contains("not a capture"), "{}", lines[0]);
    let names: Vec<String> = json(&db, &["captures"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.pcap", "z.pcap"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Parking open flows on disk

/// Every row of a table, in key order, as SQLite values.
fn table_rows(db: &Path, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let c = Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn max_open_flows_1_writes_the_same_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let synthetic = tmp.path().join("conv.pcap");
    std::fs::write(&synthetic, pcap_bytes(60, T0)).unwrap();
    let dir = conformance().join("captures");
    let inputs = [
        synthetic.as_path(),
        &dir.join("arkime_synthetic.pcap"),
        &dir.join("http2-nghttp2.pcap"),
        &dir.join("variant-pcapng-multi-interface.pcapng"),
    ];
    let (a, b) = (tmp.path().join("a.db"), tmp.path().join("b.db"));
    assert_eq!(ingest(&a, &["-j1"], &inputs).code, 0);
    let parked = ingest(&b, &["-j1", "--max-open-flows", "1"], &inputs);
    assert_eq!(parked.code, 0, "{}", parked.stderr);
    for sql in [
        "SELECT * FROM frames ORDER BY capture_id, number",
        "SELECT * FROM flows ORDER BY capture_id, flow_no",
    ] {
        let (ra, rb) = (table_rows(&a, sql), table_rows(&b, sql));
        assert!(ra.len() > 300, "{sql}: only {} rows", ra.len());
        assert!(ra == rb, "{sql}: rows differ with --max-open-flows 1");
    }
    // Some flows were still open at the end, so the parked ones were drained too.
    assert!(count(&b, "SELECT count(*) FROM flows WHERE closed_frame IS NULL") > 10);
}

/// A ns time exactly halfway between two 17-digit decimals (1700000000.003906250 s, a multiple of 1/512 s): the
/// label's time is Python's repr of it, whose tie goes to the even digit. Python itself says which (the oracle);
/// before the fix the label ended in `.0039063`.
#[test]
fn a_label_time_halfway_between_two_decimals_is_pythons() {
    let tmp = tempfile::tempdir().unwrap();
    let start_ns = 1_700_000_000_003_906_250i64;
    let mut w =
        traceflow::dump::pcapwrite::PcapWriter::new(Vec::new(), 1, 65535, false, true).unwrap();
    // One conversation's frames, the first at exactly that time.
    for (i, (_, f)) in traceflow::synth::conversations(1, 0)
        .into_iter()
        .enumerate()
    {
        w.write(start_ns + i as i64 * 1000, f.len() as u32, &f)
            .unwrap();
    }
    let file = tmp.path().join("tie.pcap");
    std::fs::write(&file, w.into_inner()).unwrap();
    let want = Command::new("python3")
        .args(["-c", "print(repr(float('1700000000.003906250')))"])
        .output()
        .expect("this test needs python3 on PATH as its oracle");
    let want = String::from_utf8(want.stdout).unwrap().trim().to_string();
    assert_eq!(want, "1700000000.0039062");
    let db = tmp.path().join("t.db");
    assert_eq!(ingest(&db, &[], &[&file]).code, 0);
    let index = index_of(&json(&db, &["query", "--capture", "tie.pcap"]));
    let first = &index.iter().find(|(_, idx)| idx[0] == 1).unwrap().0;
    assert!(first.ends_with(&format!("-{want}")), "{first}");
}

/// Schema 9 stores a label as '' when the `flows` view gives it back from the row (whole microseconds), and in
/// full otherwise (here ns times). Either way the index a plain SQLite connection reads from the schema's views
/// (`flow_index`, through `flows`), as sqlite3 would, is the one `traceflow query` prints.
#[test]
fn labels_read_the_same_whether_stored_or_derived() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, nanos, start_ns) in [
        ("us.pcap", false, 1_700_000_000_000_020_000i64),
        ("ns.pcap", true, 1_700_000_000_123_456_789i64),
    ] {
        let mut w = traceflow::dump::pcapwrite::PcapWriter::new(Vec::new(), 1, 65535, false, nanos)
            .unwrap();
        for (ts, f) in traceflow::synth::conversations(20, start_ns) {
            w.write(ts, f.len() as u32, &f).unwrap();
        }
        let file = tmp.path().join(name);
        std::fs::write(&file, w.into_inner()).unwrap();
        files.push(file);
    }
    let db = tmp.path().join("t.db");
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    assert_eq!(ingest(&db, &[], &paths).code, 0);
    let plain = rusqlite::Connection::open(&db).unwrap();
    for (name, derived) in [("us.pcap", true), ("ns.pcap", false)] {
        let id: i64 = plain
            .query_row("SELECT id FROM captures WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .unwrap();
        let (empty, all): (i64, i64) = plain
            .query_row(
                "SELECT sum(label = ''), count(*) FROM flow_rows WHERE capture_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(all >= 40, "{name}: {all} flows");
        assert_eq!(empty, if derived { all } else { 0 }, "{name}");
        let sql: Vec<(String, Vec<u64>)> = plain
            .prepare("SELECT label, frames FROM flow_index WHERE capture_id = ?1 ORDER BY closed, position")
            .unwrap()
            .query_map([id], |r| {
                let frames: String = r.get(1)?;
                Ok((r.get(0)?, frames.split(',').map(|n| n.parse().unwrap()).collect()))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let ours = index_of(&json(&db, &["query", "--capture", name]));
        assert_eq!(sql, ours, "{name}");
        assert!(
            ours.iter().all(|(l, _)| l.contains("-1700000000.")),
            "{name}"
        );
    }
}
