//! `query --flow LABEL --format csv` (and `--both`): every column of every row against tshark's `-T fields` of
//! the same frames, on corpus captures, on SQLite and PostgreSQL.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::{corpus, ingest, run};

const CAPTURES: [&str; 5] = [
    "http-xff.pcap",
    "smtp-decrypted.pcap",
    "wireshark-smb-on-windows10.pcap",
    "long-session.pcap",
    "v6.pcap",
];

/// One frame as tshark dissects it: (time ns, flags.str, flags, seq_raw, ack_raw, len, cap_len, tcp.len, src,
/// srcport).
type Shark = (i64, String, i64, i64, i64, i64, i64, i64, String, i64);

/// `frame.time_epoch` ("1454513228.371443000") in ns.
fn epoch_ns(t: &str) -> i64 {
    let (s, f) = t.split_once('.').unwrap_or((t, "0"));
    let f = format!("{f:0<9}");
    s.parse::<i64>().unwrap() * 1_000_000_000 + f[..9].parse::<i64>().unwrap()
}

/// An RFC 3339 UTC time with 9 decimals ("2016-02-03T15:27:08.371443000Z") in ns, by the civil-date formula.
fn rfc3339_ns(t: &str) -> i64 {
    assert!(t.ends_with('Z') && t.len() == 30, "{t}");
    let n = |a: usize, b: usize| t[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60 * 1_000_000_000
        + n(17, 19) * 1_000_000_000
        + n(20, 29)
}

/// tshark's fields of every TCP frame of `cap`, by frame number.
fn tshark(cap: &Path) -> HashMap<u64, Shark> {
    let out = Command::new("/usr/bin/tshark")
        .args(["-n", "-r"])
        .arg(cap)
        .args([
            "-Y",
            "tcp and not icmp and not icmpv6",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "frame.number",
            "-e",
            "frame.time_epoch",
            "-e",
            "tcp.flags.str",
            "-e",
            "tcp.flags",
        ])
        .args([
            "-e",
            "tcp.seq_raw",
            "-e",
            "tcp.ack_raw",
            "-e",
            "frame.len",
            "-e",
            "frame.cap_len",
        ])
        .args([
            "-e",
            "tcp.len",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
        ])
        .output()
        .expect("tshark");
    assert!(out.status.success());
    let int = |s: &str| -> i64 {
        match s.strip_prefix("0x") {
            Some(h) => i64::from_str_radix(h, 16).unwrap(),
            None => s.parse().unwrap(),
        }
    };
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<&str> = l.split('|').collect();
            // Tunnels give a field once per layer: the innermost is the frame's TCP.
            let last = |i: usize| v[i].rsplit(',').next().unwrap();
            let src = if v[10].is_empty() { last(9) } else { last(10) };
            (
                v[0].parse().unwrap(),
                (
                    epoch_ns(v[1]),
                    v[2].replace('·', "."),
                    int(v[3]),
                    int(v[4]),
                    int(v[5]),
                    int(v[6]),
                    int(v[7]),
                    int(v[8]),
                    src.to_string(),
                    int(v[11]),
                ),
            )
        })
        .collect()
}

/// Checks the CSV of every flow (at most 12 per capture), alone and with --both, against tshark; returns the rows
/// checked.
pub fn check_frames_csv(db: &Path) -> usize {
    let mut rows = 0;
    let jsonl = |args: &[&str]| -> Vec<Value> {
        let r = run(db, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    for name in CAPTURES {
        let shark = tshark(&corpus().join(name));
        let conns = jsonl(&[
            "connections",
            &format!("capture {name}"),
            "--format",
            "jsonl",
        ]);
        // Each label's connection originator, from the listing.
        let mut orig_of: HashMap<String, (String, i64)> = HashMap::new();
        for c in &conns {
            for l in c["flows"].as_array().unwrap() {
                orig_of.entry(l.as_str().unwrap().into()).or_insert((
                    c["orig_h"].as_str().unwrap().into(),
                    c["orig_p"].as_i64().unwrap(),
                ));
            }
        }
        let flows = jsonl(&["flows", &format!("capture {name}"), "--format", "jsonl"]);
        for f in flows.iter().take(12) {
            let label = f["label"].as_str().unwrap();
            let orig = &orig_of[label];
            for both in [false, true] {
                let mut args = vec![
                    "query",
                    "--capture",
                    name,
                    "--flow",
                    label,
                    "--format",
                    "csv",
                ];
                if both {
                    args.push("--both");
                }
                let r = run(db, &args);
                assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
                let mut lines = r.stdout.lines();
                assert_eq!(
                    lines.next(),
                    Some("number,time,direction,flags,seq,ack,frame_len,cap_len,tcp_len")
                );
                let mut last = 0;
                let mut n_rows = 0;
                for line in lines {
                    let v: Vec<&str> = line.split(',').collect();
                    assert_eq!(v.len(), 9, "{line}");
                    let number: u64 = v[0].parse().unwrap();
                    assert!(number > last, "frame order: {line}");
                    last = number;
                    let s = shark
                        .get(&number)
                        .unwrap_or_else(|| panic!("{name} frame {number}: not TCP"));
                    let at = format!("{name} {label} frame {number}");
                    assert_eq!(rfc3339_ns(v[1]), s.0, "{at}: time");
                    let dir = if (s.8.as_str(), s.9) == (orig.0.as_str(), orig.1) {
                        ">"
                    } else {
                        "<"
                    };
                    assert_eq!(v[2], dir, "{at}: direction");
                    assert_eq!(v[3], s.1, "{at}: flags");
                    assert_eq!(v[4].parse::<i64>().unwrap(), s.3, "{at}: seq");
                    assert_eq!(v[5].parse::<i64>().unwrap(), s.4, "{at}: ack");
                    assert_eq!(v[6].parse::<i64>().unwrap(), s.5, "{at}: frame.len");
                    assert_eq!(v[7].parse::<i64>().unwrap(), s.6, "{at}: frame.cap_len");
                    assert_eq!(v[8].parse::<i64>().unwrap(), s.7, "{at}: tcp.len");
                    n_rows += 1;
                }
                if !both {
                    assert_eq!(
                        n_rows as i64,
                        f["packets"].as_i64().unwrap(),
                        "{name} {label}"
                    );
                }
                rows += n_rows;
            }
        }
    }
    rows
}

fn corpus_db(db: &Path) {
    let paths: Vec<_> = CAPTURES.iter().map(|n| corpus().join(n)).collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let r = ingest(db, &["--connections"], &refs);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn frame_csv_columns_are_tsharks() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    corpus_db(&db);
    let rows = check_frames_csv(&db);
    assert!(rows > 500, "{rows} rows");
    // `-o x.csv` infers the format, as the other outputs do; a dump folder refuses it in one line.
    let label = run(
        &db,
        &[
            "flows",
            "capture http-xff.pcap",
            "--format",
            "jsonl",
            "--limit",
            "1",
        ],
    )
    .stdout;
    let label: Value = serde_json::from_str(label.trim()).unwrap();
    let label = label["label"].as_str().unwrap();
    let out = tmp.path().join("f.csv");
    let r = run(
        &db,
        &["query", "--flow", label, "-o", out.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("number,time,direction,"), "{text}");
    let r = run(
        &db,
        &[
            "query",
            "--capture",
            "http-xff.pcap",
            "--dump",
            tmp.path().join("d").to_str().unwrap(),
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--flow LABEL"), "{}", r.stderr);
}

#[test]
fn pg_frame_csv_columns_are_tsharks() {
    let pg = crate::postgres::PgDb::new("frames_csv");
    corpus_db(pg.path());
    assert!(check_frames_csv(pg.path()) > 500);
}
