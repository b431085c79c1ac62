//! `connections FILTER --pcap/--pcapng`: every frame of the matching connections, both directions, merged in
//! time order, checked against tshark's own `tcp.stream` selection of the same capture (frame bytes and times).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use traceflow::synth::{eth_ipv4_tcp, Segment};

use crate::util::{corpus, ingest, pcap, run, tf, T0};

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;

/// One record of a capture: time in ns, original length, bytes.
type Rec = (i64, u32, Vec<u8>);

/// The records of a pcap (µs or ns) or pcapng file, in file order, read by pcap-parser.
pub fn records(data: &[u8]) -> Vec<Rec> {
    use pcap_parser::{PcapBlockOwned, PcapError};
    let mut reader = pcap_parser::create_reader(1 << 20, data).expect("a capture");
    let mut out = Vec::new();
    let mut ns_per_unit = 1_000i64;
    let mut if_res: Vec<i64> = Vec::new();
    loop {
        match reader.next() {
            Ok((n, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        ns_per_unit = if h.is_nanosecond_precision() {
                            1
                        } else {
                            1_000
                        };
                    }
                    PcapBlockOwned::Legacy(b) => out.push((
                        b.ts_sec as i64 * 1_000_000_000 + b.ts_usec as i64 * ns_per_unit,
                        b.origlen,
                        b.data[..b.caplen as usize].to_vec(),
                    )),
                    PcapBlockOwned::NG(pcap_parser::Block::InterfaceDescription(i)) => {
                        // if_tsresol 9 or 6 (the only ones traceflow writes).
                        let res = i.ts_resolution().unwrap_or(1_000_000);
                        if_res.push(1_000_000_000 / res as i64);
                    }
                    PcapBlockOwned::NG(pcap_parser::Block::EnhancedPacket(e)) => {
                        let ticks = ((e.ts_high as i64) << 32) | e.ts_low as i64;
                        out.push((
                            ticks * if_res[e.if_id as usize],
                            e.origlen,
                            e.data[..e.caplen as usize].to_vec(),
                        ))
                    }
                    _ => {}
                }
                reader.consume(n);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
            Err(e) => panic!("reading a capture: {e:?}"),
        }
    }
    out
}

/// What tshark writes for `tcp.stream in {streams}` of `cap`, as pcap. An ICMP error quoting a segment is in
/// tshark's stream (it dissects the quoted TCP header) but is no TCP frame of the connection, for traceflow as
/// for Zeek: it is left out.
fn tshark_streams(cap: &Path, streams: &[i64]) -> Vec<Rec> {
    let set: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
    let out = Command::new("/usr/bin/tshark")
        .args(["-n", "-r"])
        .arg(cap)
        .args([
            "-Y",
            &format!(
                "tcp.stream in {{{}}} and not icmp and not icmpv6",
                set.join(",")
            ),
        ])
        .args(["-F", "pcap", "-w", "-"])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    records(&out.stdout)
}

/// `connections ARGS --format jsonl`: the `conn` numbers listed.
fn conns(db: &Path, filter: &str) -> Vec<i64> {
    let r = run(db, &["connections", filter, "--format", "jsonl"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["conn"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// `connections FILTER --pcap -` (or `--pcapng -`): the records written, and stderr.
fn conn_pcap(db: &Path, filter: &str, flag: &str) -> (Vec<Rec>, String) {
    let out = tf(db)
        .args(["connections", filter, flag, "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{err}");
    (records(&out.stdout), err)
}

/// One segment of a hand-built capture.
fn seg(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    eth_ipv4_tcp(&Segment {
        src: src.0,
        sport: src.1,
        dst: dst.0,
        dport: dst.1,
        seq,
        ack: if flags & ACK != 0 { 1 } else { 0 },
        flags,
        payload,
    })
}

/// A capture where rejected connections (SYN, then RST+ACK) interleave with an answered one, and one
/// client port is rejected twice (a new SYN, a new tshark stream) around the answered connection's data.
fn rejected_capture() -> Vec<(i64, Vec<u8>)> {
    let a = Ipv4Addr::new(10, 0, 0, 1);
    let b = Ipv4Addr::new(10, 0, 0, 2);
    let c = Ipv4Addr::new(10, 0, 0, 3);
    let web = (b, 80);
    let (p1, p2) = ((a, 40001), (a, 40002));
    let frames = [
        seg(p1, web, SYN, 1000, b""),
        seg(p2, (b, 81), SYN, 2000, b""),
        seg(web, p1, SYN | ACK, 5000, b""),
        seg((b, 81), p2, RST | ACK, 0, b""),
        seg(p1, web, ACK, 1001, b""),
        seg(p1, web, PSH | ACK, 1001, b"GET / HTTP/1.0\r\n\r\n"),
        seg((c, 50000), (b, 22), SYN, 3000, b""),
        seg(p2, (b, 81), SYN, 9000, b""),
        seg((b, 22), (c, 50000), RST | ACK, 0, b""),
        seg(web, p1, PSH | ACK, 5001, b"HTTP/1.0 200 OK\r\n\r\n"),
        seg((b, 81), p2, RST | ACK, 0, b""),
        seg(p1, web, FIN | ACK, 1019, b""),
        seg(web, p1, FIN | ACK, 5020, b""),
        seg(p1, web, ACK, 1020, b""),
    ];
    frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| (T0 + i as i64 * 1_000_123, f))
        .collect()
}

/// The frames of `connections 'conn-state REJ' --pcap -` are tshark's for those connections' tcp.stream
/// numbers (`conn` - 1): the same bytes, times and lengths, in the same order.
#[test]
fn rejected_connections_pcap_is_tsharks_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("rej.pcap");
    std::fs::write(&cap, pcap(1, 65535, &rejected_capture())).unwrap();
    let db = tmp.path().join("c.db");
    let r = ingest(&db, &["--connections"], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rej = conns(&db, "conn-state REJ");
    assert_eq!(rej.len(), 3, "three rejected SYNs: {rej:?}");
    let streams: Vec<i64> = rej.iter().map(|c| c - 1).collect();
    let want = tshark_streams(&cap, &streams);
    assert_eq!(want.len(), 6, "tshark: a SYN and a RST each");
    for flag in ["--pcap", "--pcapng"] {
        let (got, err) = conn_pcap(&db, "conn-state REJ", flag);
        assert_eq!(got, want, "{flag}");
        assert!(err.contains("wrote 6 frames of 3 connections"), "{err}");
    }
    // A row of the listing leads straight to its frames: by `conn CAPTURE:N` and by the conn.log's uid.
    let zeek = run(&db, &["connections", "--format", "zeek-json"]);
    for (line, no) in zeek.stdout.lines().zip(1..) {
        let uid = serde_json::from_str::<serde_json::Value>(line).unwrap()["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let want = tshark_streams(&cap, &[no - 1]);
        assert!(!want.is_empty());
        let (got, _) = conn_pcap(&db, &format!("conn rej.pcap:{no}"), "--pcap");
        assert_eq!(got, want, "conn rej.pcap:{no}");
        let (got, _) = conn_pcap(&db, &format!("uid {uid}"), "--pcap");
        assert_eq!(got, want, "uid {uid}");
    }
    // Not the flows' merge: the answered connection's frames stay out, though its flows share hosts.
    let (got, _) = conn_pcap(&db, "host 10.0.0.1 and conn-state REJ", "--pcap");
    assert_eq!(got.len(), 4);
}

/// On real captures, each capture's connections of some states (several per capture, interleaved with others):
/// the merge equals tshark's selection of their streams.
#[test]
fn corpus_connections_pcap_is_tsharks_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    let names = [
        "wireshark-smb-on-windows10.pcap",
        "smtp-decrypted.pcap",
        "ospf.pcap",
        "http-xff.pcap",
        "long-session.pcap",
    ];
    let paths: Vec<_> = names.iter().map(|n| corpus().join(n)).collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let r = ingest(&db, &["--connections"], &refs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut checked = 0;
    for (name, path) in names.iter().zip(&paths) {
        for states in ["RSTO RSTR S0", "SF S1"] {
            let filter = format!("capture {name} and conn-state {states}");
            let listed = conns(&db, &filter);
            if listed.is_empty() {
                continue;
            }
            let streams: Vec<i64> = listed.iter().map(|c| c - 1).collect();
            let want = tshark_streams(path, &streams);
            let (got, _) = conn_pcap(&db, &filter, "--pcapng");
            assert!(!want.is_empty(), "{filter}");
            assert_eq!(got.len(), want.len(), "{filter}: frame count");
            assert_eq!(got, want, "{filter}");
            checked += 1;
        }
    }
    assert!(checked >= 6, "{checked} selections checked");
}

/// Frames of several link types in one pcap: refused in one line naming --pcapng, and no file is left.
#[test]
fn connections_pcap_refuses_mixed_link_types() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    // Ethernet and NFLOG captures, both with port 80.
    let paths = [corpus().join("http-xff.pcap"), corpus().join("nflog.pcap")];
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    assert_eq!(ingest(&db, &["--connections"], &refs).code, 0);
    let out = tmp.path().join("mixed.pcap");
    let r = run(
        &db,
        &["connections", "port 80", "--pcap", out.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("--pcapng"), "{}", r.stderr);
    assert!(!out.exists(), "a refused merge leaves no file");
    let ng = tmp.path().join("mixed.pcapng");
    let r = run(
        &db,
        &["connections", "port 80", "--pcapng", ng.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(ng.exists());
}

/// On PostgreSQL the same: tshark's streams, through the same merge.
#[test]
fn pg_rejected_connections_pcap_is_tsharks_streams() {
    let pg = crate::postgres::PgDb::new("conn_pcap");
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("rej.pcap");
    std::fs::write(&cap, pcap(1, 65535, &rejected_capture())).unwrap();
    let r = ingest(pg.path(), &["--connections"], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rej = conns(pg.path(), "conn-state REJ");
    assert_eq!(rej.len(), 3, "{rej:?}");
    let streams: Vec<i64> = rej.iter().map(|c| c - 1).collect();
    let want = tshark_streams(&cap, &streams);
    for flag in ["--pcap", "--pcapng"] {
        let (got, err) = conn_pcap(pg.path(), "conn-state REJ", flag);
        assert_eq!(got, want, "{flag}");
        assert!(err.contains("wrote 6 frames of 3 connections"), "{err}");
    }
    // A --limit pick: the biggest rejected connection only.
    let out = tf(pg.path())
        .args([
            "connections",
            "conn-state REJ",
            "--sort",
            "bytes",
            "--limit",
            "1",
            "--pcap",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(records(&out.stdout).len(), 2);
}
