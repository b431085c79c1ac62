//! Frictions a new user met: `-o` and its format, the sample's connection count, times in listings, a damaged
//! capture in a folder, link types in messages, and protocol keywords in filters. Each test fails without its fix.

use std::path::Path;
use std::process::Command;

use traceflow::dump::pcapwrite::{PcapNgWriter, PcapWriter};
use traceflow::synth::{self, Segment};

use crate::util::{self, ingest, run, T0};

/// A database with the 6-exchange sample capture ingested, and the capture's path.
fn sample_db(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cap = dir.join("sample.pcap");
    std::fs::write(&cap, util::pcap_conversations(6, T0)).unwrap();
    let db = dir.join("t.db");
    assert_eq!(ingest(&db, &[], &[&cap]).code, 0);
    (db, cap)
}

const LABEL: &str = "192.168.1.10_40000-10.0.0.80_80-1700000000.00125";

#[test]
fn query_output_format_follows_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sample_db(dir.path());
    let p = |n: &str| dir.path().join(n);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // The index: csv, jsonl and a text table from the name.
    let r = run(
        &db,
        &["query", "--capture", "sample.pcap", "-o", &s(&p("i.csv"))],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csv = std::fs::read_to_string(p("i.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("fpout,index,label"), "{csv}");
    let r = run(
        &db,
        &["query", "--capture", "sample.pcap", "-o", &s(&p("i.jsonl"))],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let jl = std::fs::read_to_string(p("i.jsonl")).unwrap();
    assert_eq!(jl.lines().count(), 12, "{jl}");
    assert!(jl.lines().all(|l| l.starts_with('{')), "{jl}");

    // A dump: the name's format, and a name that says an index format is refused, FILE untouched.
    let r = run(&db, &["query", "--flow", LABEL, "-o", &s(&p("f.pcapng"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        &std::fs::read(p("f.pcapng")).unwrap()[..4],
        b"\x0A\x0D\x0D\x0A"
    );
    // A .csv name is the flow's frames, one row each (`--format csv`); a .jsonl name is the index's, refused.
    let r = run(&db, &["query", "--flow", LABEL, "-o", &s(&p("conn.csv"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csv = std::fs::read_to_string(p("conn.csv")).unwrap();
    assert!(csv.starts_with("number,time,direction,flags,"), "{csv}");
    let r = run(&db, &["query", "--flow", LABEL, "-o", &s(&p("conn.jsonl"))]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("conn.jsonl"), "{}", r.stderr);
    assert!(!p("conn.jsonl").exists());

    // A --format the name contradicts, either way round; a dump name without --flow.
    let r = run(
        &db,
        &[
            "query",
            "--flow",
            LABEL,
            "--format",
            "pcap",
            "-o",
            &s(&p("c.csv")),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--format pcap does not match"),
        "{}",
        r.stderr
    );
    assert!(!p("c.csv").exists());
    let r = run(
        &db,
        &[
            "query",
            "--capture",
            "sample.pcap",
            "--format",
            "csv",
            "-o",
            &s(&p("i.json")),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = run(
        &db,
        &["query", "--capture", "sample.pcap", "-o", &s(&p("i.pcap"))],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--flow"), "{}", r.stderr);
    assert!(!p("i.pcap").exists());
    // Agreeing names, and names that say nothing, are taken as before.
    let r = run(
        &db,
        &[
            "query",
            "--flow",
            LABEL,
            "--format",
            "text",
            "-o",
            &s(&p("f.txt")),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&db, &["query", "--flow", LABEL, "-o", &s(&p("f.out"))]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        &std::fs::read(p("f.out")).unwrap()[..4],
        &synth_pcap_magic()
    );
}

/// The first 4 bytes of a pcap written in the machine's byte order.
fn synth_pcap_magic() -> [u8; 4] {
    0xA1B2_C3D4u32.to_ne_bytes()
}

/// tshark's TCP conversations (`-z conv,tcp`) in a capture.
fn tshark_conversations(cap: &Path) -> usize {
    let out = Command::new("/usr/bin/tshark")
        .arg("-r")
        .arg(cap)
        .args(["-q", "-z", "conv,tcp"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("<->"))
        .count()
}

#[test]
fn sample_counts_connections_as_tshark_does() {
    let dir = tempfile::tempdir().unwrap();
    for n in [6u32, 5, 1] {
        let cap = dir.path().join(format!("s{n}.pcap"));
        let db = dir.path().join(format!("s{n}.db"));
        let mut args = vec!["sample".to_string(), cap.to_str().unwrap().to_string()];
        if n != 6 {
            args.extend(["--conversations".into(), n.to_string()]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(&db, &argv);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let tshark = tshark_conversations(&cap);
        assert!(
            r.stderr
                .contains(&format!("{tshark} TCP connections, {n} request/response")),
            "{n}: tshark counts {tshark}: {}",
            r.stderr
        );
        assert_eq!(ingest(&db, &["--connections"], &[&cap]).code, 0);
        let c = run(&db, &["connections", "--count"]);
        assert_eq!(c.stdout.trim(), tshark.to_string());
    }
}

/// The fraction digits of an RFC 3339 time or a decimal duration.
fn decimals(v: &str) -> usize {
    v.trim_end_matches('Z')
        .rsplit_once('.')
        .map_or(0, |(_, f)| f.len())
}

#[test]
fn listing_times_have_nine_decimals_whatever_the_resolution() {
    let dir = tempfile::tempdir().unwrap();
    // A µs pcap and a ns pcapng, in one database.
    let us = dir.path().join("us.pcap");
    std::fs::write(&us, util::pcap_conversations(2, T0)).unwrap();
    let ns = dir.path().join("ns.pcapng");
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let i = w.add_interface(1, 65535, 9).unwrap();
    for (ts, f) in synth::conversations(2, T0 + 5_000_000_123) {
        w.write(i, ts, f.len() as u32, &f).unwrap();
    }
    std::fs::write(&ns, w.into_inner()).unwrap();
    let db = dir.path().join("t.db");
    assert_eq!(ingest(&db, &["--connections"], &[&us, &ns]).code, 0);

    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let r = run(&db, args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    };
    let mut seen = 0;
    for (args, fields) in [
        (
            &["flows", "--format", "json"][..],
            &["first_time", "last_time", "duration"][..],
        ),
        (
            &["connections", "--format", "json"],
            &["first_time", "last_time", "duration"],
        ),
        (
            &["flows", "--group-by", "capture", "--format", "json"],
            &["first_time", "last_time"],
        ),
        (
            &["captures", "--format", "json"],
            &["first_time", "last_time"],
        ),
    ] {
        let rows = json(args);
        let captures: std::collections::HashSet<String> = rows
            .iter()
            .filter_map(|r| r.get("capture").or(r.get("name")).map(|c| c.to_string()))
            .collect();
        assert_eq!(captures.len(), 2, "{args:?}: both captures listed");
        for row in &rows {
            for f in fields {
                let v = row[*f]
                    .as_str()
                    .unwrap_or_else(|| panic!("{args:?} {f}: {row}"));
                assert_eq!(decimals(v), 9, "{args:?} {f}: {v}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 38, "{seen}");
    // A table column is as wide on every row.
    let r = run(&db, &["flows", "--format", "csv"]);
    for line in r.stdout.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!((decimals(cols[6]), decimals(cols[8])), (9, 9), "{line}");
    }
}

#[test]
fn a_damaged_capture_in_a_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("good.pcap"), util::pcap_conversations(2, T0)).unwrap();
    std::fs::write(inbox.join("README.txt"), "captures of the lab\n").unwrap();
    std::fs::write(inbox.join("damaged.pcap"), b"\x00\x00garbage header bytes").unwrap();
    std::fs::write(inbox.join("cut.pcapng.gz"), b"").unwrap();
    let db = dir.path().join("t.db");
    let r = ingest(&db, &[], &[&inbox]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warned: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warned.len(), 2, "{}", r.stderr);
    assert!(warned[0].contains("damaged.pcap") || warned[1].contains("damaged.pcap"));
    assert!(
        warned.iter().any(|l| l.contains("cut.pcapng.gz")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("README.txt"), "{}", r.stderr);
    assert!(r.stderr.contains("1 indexed, 3 skipped"), "{}", r.stderr);
}

/// One TCP frame 10.0.0.1:1234 -> 10.0.0.2:80 with `flags`.
fn segment(flags: u8) -> Vec<u8> {
    synth::eth_ipv4_tcp(&Segment {
        src: [10, 0, 0, 1].into(),
        sport: 1234,
        dst: [10, 0, 0, 2].into(),
        dport: 80,
        seq: 1,
        ack: 0,
        flags,
        payload: b"",
    })
}

#[test]
fn mixed_link_type_errors_name_the_link_types() {
    let dir = tempfile::tempdir().unwrap();
    // One flow whose frames come from an Ethernet interface and a raw-IP one.
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let eth = w.add_interface(1, 65535, 6).unwrap();
    let raw = w.add_interface(101, 65535, 6).unwrap();
    let f = segment(0x02);
    w.write(eth, T0, f.len() as u32, &f).unwrap();
    w.write(raw, T0 + 1_000, f.len() as u32 - 14, &f[14..])
        .unwrap();
    let cap = dir.path().join("mixed.pcapng");
    std::fs::write(&cap, w.into_inner()).unwrap();
    // A second capture, raw IP only, for the merged dump.
    let mut p = PcapWriter::new(Vec::new(), 101, 65535, false, false).unwrap();
    p.write(T0 + 9_000_000_000, f.len() as u32 - 14, &f[14..])
        .unwrap();
    let raw_cap = dir.path().join("raw.pcap");
    std::fs::write(&raw_cap, p.into_inner()).unwrap();
    let eth_cap = dir.path().join("eth.pcap");
    std::fs::write(&eth_cap, util::pcap_conversations(1, T0)).unwrap();
    let db = dir.path().join("t.db");
    assert_eq!(ingest(&db, &[], &[&cap, &raw_cap, &eth_cap]).code, 0);

    let label = "10.0.0.1_1234-10.0.0.2_80-1700000000.0";
    let out = dir.path().join("x.pcap");
    let r = run(
        &db,
        &[
            "query",
            "--capture",
            "mixed.pcapng",
            "--flow",
            label,
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("EN10MB (1), RAW (101)"), "{}", r.stderr);
    let merged = dir.path().join("m.pcap");
    let r = run(
        &db,
        &[
            "flows",
            "not capture mixed.pcapng",
            "--pcap",
            merged.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("RAW (101) and EN10MB (1)")
            || r.stderr.contains("EN10MB (1) and RAW (101)"),
        "{}",
        r.stderr
    );
}

#[test]
fn protocol_keywords_say_traceflow_indexes_tcp_only() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = sample_db(dir.path());
    for f in [
        "udp",
        "proto udp",
        "host 10.0.0.80 and icmp",
        "tcp port 80",
        "proto tcp",
    ] {
        let r = run(&db, &["flows", f]);
        assert_eq!(r.code, 2, "{f}: {}", r.stderr);
        assert!(
            r.stderr.contains("traceflow indexes TCP flows only"),
            "{f}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("unknown filter term"),
            "{f}: {}",
            r.stderr
        );
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let first = readme.split("\n\n").nth(1).unwrap();
    assert!(
        first.contains("TCP flows\nonly") || first.contains("TCP flows only"),
        "{first}"
    );
    assert!(first.contains("`udp`"), "{first}");
}
