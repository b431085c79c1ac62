//! Parking open flows: a capture that leaves thousands of flows open, some of which come back after
//! being parked, indexes the same under a tiny `--max-open-flows` (with the compact table, and with no table:
//! every parked flow in the sorted runs on disk) as by default; and a folder for those runs that cannot be
//! written fails the capture with a message, leaving nothing indexed.

use std::net::Ipv4Addr;

use traceflow::synth::{eth_ipv4_tcp, Segment};

use std::process::Stdio;

use crate::util::{count, finish, index_of, ingest, pcap, run, tf};

/// 6000 SYN probes from distinct ports; every third frame after the first 1000 revisits an earlier probe's key
/// (an ACK, or now and then a FIN that closes it), so parked flows are taken back, parked again and closed.
fn scan_with_returns() -> Vec<u8> {
    let mut frames = Vec::new();
    let mut state: u32 = 17;
    let mut ts = 1_700_000_000_000_000_000i64;
    for i in 0..6000u32 {
        let probe = Segment {
            src: Ipv4Addr::new(10, 9, (i >> 8) as u8, i as u8),
            sport: 40000 + (i % 20000) as u16,
            dst: Ipv4Addr::new(192, 168, 1, 1),
            dport: 1 + (i % 1024) as u16,
            seq: i,
            ack: 0,
            flags: 0x02,
            payload: &[],
        };
        ts += 1000;
        frames.push((ts, eth_ipv4_tcp(&probe)));
        if i >= 1000 && i.is_multiple_of(3) {
            // A small LCG: deterministic, spread over all earlier probes.
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let j = (state >> 8) % i;
            let back = Segment {
                src: Ipv4Addr::new(10, 9, (j >> 8) as u8, j as u8),
                sport: 40000 + (j % 20000) as u16,
                dst: Ipv4Addr::new(192, 168, 1, 1),
                dport: 1 + (j % 1024) as u16,
                seq: j + 1,
                ack: 1,
                flags: if state.is_multiple_of(7) { 0x11 } else { 0x10 },
                payload: b"x",
            };
            ts += 1000;
            frames.push((ts, eth_ipv4_tcp(&back)));
        }
    }
    pcap(1, 65535, &frames)
}

#[test]
fn park_tiny_max_open_flows_indexes_as_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("scan.pcap");
    std::fs::write(&cap, scan_with_returns()).unwrap();
    let index = |name: &str, extra: &[&str]| {
        let db = tmp.path().join(format!("{name}.db"));
        let r = ingest(&db, extra, &[&cap]);
        assert_eq!(r.code, 0, "{name}: ingest {extra:?}: {}", r.stderr);
        let out = run(&db, &["query", "--format", "json"]);
        assert_eq!(out.code, 0, "{name}: query: {}", out.stderr);
        index_of(&serde_json::from_str(&out.stdout).unwrap())
    };
    let want = index("default", &[]);
    // The capture is what it claims: thousands of flows open at the end, and flows with several frames (parked
    // ones that came back) among them and among the closed ones.
    assert!(want.len() > 5000, "{} flows", want.len());
    let multi = want.iter().filter(|(_, ix)| ix.len() > 1).count();
    assert!(multi > 500, "only {multi} flows with more than one frame");
    for (name, extra) in [
        ("compact", &["--max-open-flows", "8"][..]),
        (
            "overflow",
            &["--max-open-flows", "8", "--park-memory", "0"][..],
        ),
        ("one", &["--max-open-flows", "1"][..]),
        (
            "one-disk",
            &["--max-open-flows", "1", "--park-memory", "0"][..],
        ),
    ] {
        let got = index(name, extra);
        assert_eq!(got.len(), want.len(), "{name}: number of flows");
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "{name}: entry {i} differs: {:?} vs default {:?}",
                got[i], want[i]
            );
        }
    }
}

/// Parked flows' runs go to `$TMPDIR`. When it cannot take them the capture fails, naming the folder and what
/// to do, and nothing of it is stored (the index would be wrong); another capture that never parks is indexed.
#[test]
fn a_temporary_folder_that_fails_fails_the_capture_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("scan.pcap");
    std::fs::write(&cap, scan_with_returns()).unwrap();
    let db = tmp.path().join("t.db");
    let missing = tmp.path().join("no-such-folder");
    let out = tf(&db)
        .args(["ingest", "--max-open-flows", "8", "--park-memory", "0"])
        .arg(&cap)
        .env("TMPDIR", &missing)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let r = finish("ingest with a missing TMPDIR", out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("parking open flows in a temporary file in")
            && first.contains(&*missing.to_string_lossy())
            && first.contains("set TMPDIR"),
        "{}",
        r.stderr
    );
    assert_eq!(count(&db, "SELECT count(*) FROM captures"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM flows"), 0);
    assert!(!missing.exists(), "the missing folder was created");
}

/// Connections are parked as flows are: an ingest with `--connections` under a tiny `--max-open-flows` (every
/// connection parked, and the returning probes' taken back from disk) stores the same connections and the same
/// connection of each frame as by default, and as the build at first use from the frame rows.
#[test]
fn parked_connections_are_the_ones_kept_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("scan.pcap");
    std::fs::write(&cap, scan_with_returns()).unwrap();
    let conns = |name: &str, extra: &[&str]| {
        let db = tmp.path().join(format!("{name}.db"));
        let r = ingest(&db, extra, &[&cap]);
        assert_eq!(r.code, 0, "{name}: ingest {extra:?}: {}", r.stderr);
        if extra.is_empty() {
            // Built afterwards, from the frame rows.
            let r = ingest(&db, &["--connections"], &[]);
            assert_eq!(r.code, 0, "{name}: ingest --connections: {}", r.stderr);
        }
        let out = run(&db, &["connections", "--format", "jsonl"]);
        assert_eq!(out.code, 0, "{name}: connections: {}", out.stderr);
        let per_frame = count(
            &db,
            "SELECT sum(number * conn_no) + count(conn_no) FROM frames",
        );
        (out.stdout, per_frame)
    };
    let want = conns("default", &["--connections"]);
    assert!(
        want.0.lines().count() > 5000,
        "{} connections",
        want.0.lines().count()
    );
    for (name, extra) in [
        ("lazy", &[][..]),
        ("eight", &["--connections", "--max-open-flows", "8"][..]),
        ("one", &["--connections", "--max-open-flows", "1"][..]),
    ] {
        let got = conns(name, extra);
        assert!(got.1 == want.1, "{name}: frames' conn_no differ");
        if let Some((i, (g, w))) = got
            .0
            .lines()
            .zip(want.0.lines())
            .enumerate()
            .find(|(_, (g, w))| g != w)
        {
            panic!("{name}: connection {i} differs: {g} vs default {w}");
        }
        assert_eq!(got.0.lines().count(), want.0.lines().count(), "{name}");
    }
}

/// A scan of 150,000 SYN probes (250,000 flows, none closed; `shapes.py tiny`): building its connections (from
/// the frame rows afterwards, and while ingesting under a small `--max-open-flows`) and its two-way index hold a bounded set of
/// connections and pairs, not the capture's. Before they were parked, 158 MiB at first use, 194 at ingest and 111
/// for the two-way index; now about 90, 67 and 49 (a 3M-probe scan's figures are in the CHANGELOG).
#[test]
fn connections_and_the_two_way_index_of_a_scan_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("scan.pcap");
    let shapes = crate::util::conformance().join("../bench/shapes.py");
    let made = std::process::Command::new("python3")
        .arg(&shapes)
        .args(["tiny"])
        .arg(&cap)
        .args(["--probes", "150000"])
        .status()
        .unwrap();
    assert!(made.success());
    let db = tmp.path().join("scan.db");
    let r = ingest(&db, &[], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(count(&db, "SELECT count(*) FROM flows"), 250_177);
    let mut c = tf(&db);
    c.args(["query", "--bidirectional", "--format", "json"]);
    let (code, tw, err) = crate::util::peak_rss(c);
    assert_eq!(code, 0, "{err}");
    let mut c = tf(&db);
    c.args(["ingest", "--connections"]);
    let (code, lazy, err) = crate::util::peak_rss(c);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&db, "SELECT count(*) FROM connections"), 150_000);
    let mut c = tf(&tmp.path().join("at-ingest.db"));
    c.args(["ingest", "--connections", "--max-open-flows", "2000"])
        .arg(&cap);
    let (code, at_ingest, err) = crate::util::peak_rss(c);
    assert_eq!(code, 0, "{err}");
    eprintln!("RSS: two-way index {tw:.1}, connections afterwards {lazy:.1}, at ingest {at_ingest:.1} MiB");
    assert!(tw < 75.0, "two-way index: peak RSS {tw:.0} MiB");
    assert!(
        lazy < 120.0,
        "connections afterwards: peak RSS {lazy:.0} MiB"
    );
    assert!(
        at_ingest < 100.0,
        "connections at ingest: peak RSS {at_ingest:.0} MiB"
    );
}
