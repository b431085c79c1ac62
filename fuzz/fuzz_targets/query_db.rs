//! A crafted database behind `traceflow query --flow` / `--dump`: a small fixed capture (written with the repo's
//! own synth and pcap writers) is ingested (once, then copied for each input), then rows of `frames`, `flows`,
//! `interfaces` and `frame_data` are changed as the input says, and every label is dumped in every format and
//! the index rebuilt. Nothing may panic, hang (run with -timeout) or blow up memory (-rss_limit_mb /
//! -malloc_limit_mb), whatever the rows say; and with no row changed, the dumps and the index must be exactly
//! the capture's.
//!
//! Input: byte 0 picks the source (pcap µs LE, pcap ns BE, pcapng with two link types, pcap.gz, pcapng.zst) and
//! whether the frame bytes are embedded (`ingest --embed`) or re-read from the source file. Then up to 16
//! changes of 3+ bytes: [column][row][kind, value...]. The column byte picks a (table, column) of `COLUMNS`, the
//! row byte (mod 16) the frame number, flow number or interface it applies to, and the kind (mod 8) the value:
//! a small integer (-4..=19, one byte; kinds 0-2), a u32, an i64, NULL, a text or a blob (a byte: bit 7 blob,
//! bits 0-6 the length, then that many bytes), or deleting the row (7).
//! Values are always bound as SQL parameters.
#![no_main]

#[path = "common.rs"]
mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rusqlite::types::Value;
use rusqlite::Connection;
use traceflow::dump::{self, DumpFormat, DumpOptions};
use traceflow::dump::pcapwrite::{PcapNgWriter, PcapWriter};
use traceflow::store::read as query;
use traceflow::synth::{eth_ipv4_tcp, Segment};

/// (table, column, the key column a change's row byte is matched against).
const COLUMNS: &[(&str, &str, &str)] = &[
    ("frames", "number", "number"),
    ("frames", "ts_ns", "number"),
    ("frames", "caplen", "number"),
    ("frames", "origlen", "number"),
    ("frames", "iface", "number"),
    ("frames", "file_offset", "number"),
    ("frames", "flow_no", "number"),
    ("frames", "prev_in_flow", "number"),
    ("frames", "tcp_flags", "number"),
    ("frames", "payload_len", "number"),
    ("frames", "capture_id", "number"),
    ("flows", "flow_no", "flow_no"),
    ("flows", "label", "flow_no"),
    ("flows", "first_frame", "flow_no"),
    ("flows", "last_frame", "flow_no"),
    ("flows", "closed_frame", "flow_no"),
    ("flows", "first_ns", "flow_no"),
    ("flows", "capture_id", "flow_no"),
    ("interfaces", "iface", "iface"),
    ("interfaces", "linktype", "iface"),
    ("interfaces", "snaplen", "iface"),
    ("interfaces", "tsresol", "iface"),
    ("frame_data", "number", "number"),
    ("frame_data", "data", "number"),
    // The bound of main's prev_in_flow walk, and what its result is checked against.
    ("flows", "packets", "flow_no"),
];

const FORMATS: [DumpFormat; 6] = [
    DumpFormat::Pcap,
    DumpFormat::Pcapng,
    DumpFormat::Json,
    DumpFormat::Plist,
    DumpFormat::Tree,
    DumpFormat::Text,
];

/// The fixed capture's frames: (on the second interface as raw IP, ts ns, Ethernet frame).
fn frames() -> Vec<(bool, i64, Vec<u8>)> {
    let client = Ipv4Addr::new(192, 168, 1, 10);
    let other = Ipv4Addr::new(192, 168, 1, 11);
    let server = Ipv4Addr::new(10, 0, 0, 80);
    // Random-looking initial sequence numbers, as real stacks pick them; binary payloads.
    let (cs, ss) = (0x9a3c_51f2u32, 0xe1d0_0a7bu32);
    let req: &[u8] = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    let resp: &[u8] = &[0x03, 0, 0, 0, 0x10, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 0xde, 0xad, 0xbe, 0xef, 6, 0, 0, 0];
    let seg = |src, sport, dst, dport, seq, ack, flags, payload| {
        eth_ipv4_tcp(&Segment { src, sport, dst, dport, seq, ack, flags, payload })
    };
    let t0 = 1_700_000_000_123_456_789i64;
    let mut out = vec![
        (false, t0, seg(client, 40001, server, 80, cs, 0, 0x02, &[][..])),
        (false, t0 + 1_000, seg(server, 80, client, 40001, ss, cs + 1, 0x12, &[][..])),
        (false, t0 + 2_000, seg(client, 40001, server, 80, cs + 1, ss + 1, 0x10, &[][..])),
        (true, t0 + 2_500, seg(other, 50000, server, 443, 7, 0, 0x02, &[][..])),
        (false, t0 + 3_000, seg(client, 40001, server, 80, cs + 1, ss + 1, 0x18, req)),
        (false, t0 + 4_000, seg(server, 80, client, 40001, ss + 1, cs + 34, 0x18, resp)),
        (true, t0 + 4_500, seg(other, 50000, server, 443, 8, 0, 0x10, b"\x16\x03\x01")),
        (false, t0 + 5_000, seg(client, 40001, server, 80, cs + 34, ss + 21, 0x11, &[][..])),
        (false, t0 + 6_000, seg(server, 80, client, 40001, ss + 21, cs + 35, 0x11, &[][..])),
        // A FIN alone, then the same key again at the same time: two flows with one label.
        (false, t0 + 7_000, seg(client, 40002, server, 80, 1, 0, 0x11, &[][..])),
        (false, t0 + 7_000, seg(client, 40002, server, 80, 2, 0, 0x10, &[][..])),
    ];
    // An ARP request: no TCP, no flow.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 192, 168, 1, 10, 0, 0, 0, 0, 0, 0, 10, 0, 0, 80]);
    out.insert(5, (false, t0 + 3_500, arp));
    out
}

fn pcap(big: bool, nanos: bool) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), 1, 65535, big, nanos).unwrap();
    for (_, ts, f) in frames() {
        w.write(ts, f.len() as u32, &f).unwrap();
    }
    w.into_inner()
}

fn pcapng() -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let eth = w.add_interface(1, 65535, 9).unwrap();
    let raw = w.add_interface(101, 65535, 6).unwrap();
    for (on_raw, ts, f) in frames() {
        if on_raw {
            w.write(raw, ts / 1000 * 1000, f.len() as u32 - 14, &f[14..]).unwrap();
        } else {
            w.write(eth, ts, f.len() as u32, &f).unwrap();
        }
    }
    w.into_inner()
}

struct Source {
    path: PathBuf,
    traced: common::Traced,
}

/// The five source files, written once per process.
fn sources() -> &'static [Source] {
    static S: OnceLock<Vec<Source>> = OnceLock::new();
    S.get_or_init(|| {
        let gz = |b: Vec<u8>| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&b).unwrap();
            e.finish().unwrap()
        };
        let files = [
            ("le-us.pcap", pcap(false, false)),
            ("be-ns.pcap", pcap(true, true)),
            ("two-linktypes.pcapng", pcapng()),
            ("le-us.pcap.gz", gz(pcap(false, false))),
            ("two-linktypes.pcapng.zst", zstd::stream::encode_all(&pcapng()[..], 3).unwrap()),
        ];
        files
            .into_iter()
            .map(|(name, bytes)| {
                let path = common::scratch().join(name);
                std::fs::write(&path, &bytes).unwrap();
                let traced = common::trace(&bytes).expect("the fixed capture reads");
                assert_eq!(traced.truncation, None);
                Source { path, traced }
            })
            .collect()
    })
}

thread_local! {
    /// Each source ingested once, without and with --embed (by `common::ingest`: the reader feeding
    /// `store::write_capture`, through `ingest::run`): (database, capture id), copied for every input.
    static INGESTED: Vec<(Connection, i64)> = sources()
        .iter()
        .flat_map(|s| [false, true].map(|embed| (s, embed)))
        .map(|(s, embed)| {
            let mut conn = common::memory_db();
            let common::Ingested::Indexed(id, _) = common::ingest(&mut conn, &s.path, embed, 65536) else {
                panic!("the fixed capture was not indexed");
            };
            (conn, id)
        })
        .collect();
}

/// A fresh copy of source `n`'s database (with embedded frame bytes or not).
fn database(n: usize, embed: bool) -> (Connection, i64) {
    INGESTED.with(|all| {
        let (from, id) = &all[n * 2 + embed as usize];
        (common::copy_db(from), *id)
    })
}

/// Applies the changes the input describes; returns how many rows they changed.
fn mutate(conn: &rusqlite::Connection, mut b: &[u8]) -> usize {
    let mut changed = 0;
    for _ in 0..16 {
        let [col, row, kind, rest @ ..] = b else {
            break;
        };
        b = rest;
        let (table, column, key) = COLUMNS[*col as usize % COLUMNS.len()];
        let row = (*row % 16) as i64;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (v, rest) = b.split_at_checked(n)?;
            b = rest;
            Some(v)
        };
        let value = match kind % 8 {
            // Most changes set a small number: frame and flow numbers, lengths, link types are small.
            0 | 1 | 2 => Value::Integer(take(1).map_or(0, |v| (v[0] % 24) as i64 - 4)),
            3 => Value::Integer(take(4).map_or(0, |v| u32::from_le_bytes(v.try_into().unwrap()) as i64)),
            4 => Value::Integer(take(8).map_or(0, |v| i64::from_le_bytes(v.try_into().unwrap()))),
            5 => Value::Null,
            6 => {
                let n = take(1).map_or(0, |v| v[0] as usize);
                let v = take(n & 0x7f).unwrap_or_default().to_vec();
                if n & 0x80 == 0 {
                    Value::Text(String::from_utf8_lossy(&v).into_owned())
                } else {
                    Value::Blob(v)
                }
            }
            _ => {
                let sql = format!("DELETE FROM {table} WHERE {key} = ?1");
                changed += conn.execute(&sql, [row]).unwrap_or(0);
                continue;
            }
        };
        let sql = format!("UPDATE {table} SET {column} = ?1 WHERE {key} = ?2");
        changed += conn.execute(&sql, rusqlite::params![value, row]).unwrap_or(0);
    }
    changed
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, changes)) = data.split_first() else {
        return;
    };
    let n = pick as usize % 5;
    let src = &sources()[n];
    let (conn, id) = database(n, (pick / 5) % 2 == 1);
    let changed = mutate(&conn, changes);

    let index = query::index(&conn, Some(id));
    let mut json = Vec::new();
    let json_res = traceflow::cli::output::write_index_json(&conn, Some(id), false, &mut json);
    // Both read the same rows, so they fail together (a damaged database) or agree (fixed finding:
    // findings/query_db-index-drops-negative-frame-number).
    assert_eq!(index.is_ok(), json_res.is_ok(), "index vs write_index_json: {index:?} / {json_res:?}");
    if let (Ok(index), Ok(())) = (&index, &json_res) {
        let json: serde_json::Value = serde_json::from_slice(&json).expect("the index is JSON");
        assert_eq!(json, serde_json::to_value(index).unwrap(), "write_index_json vs index");
        for e in index {
            assert!(e.index.windows(2).all(|w| w[0] < w[1]), "a flow's frames in frame order");
        }
    }
    let _ = query::index(&conn, None);

    let labels: Vec<String> = conn
        .prepare("SELECT DISTINCT label FROM flows ORDER BY label LIMIT 8")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_default();
    let groups = dump::capture_groups(&conn, id);
    let mut dumps = Vec::new();
    for label in &labels {
        let Ok(g) = dump::select_label(&conn, Some(id), label) else {
            continue;
        };
        if let Ok(g2) = dump::select_label(&conn, None, label) {
            assert_eq!(g2, g, "one capture: with or without --capture");
        }
        let mut outs = Vec::new();
        for format in FORMATS {
            let mut out = Vec::new();
            let res = dump::write_group(&conn, &g, &DumpOptions::new(format), &mut out, "fuzz");
            outs.push((format, res.map(|()| out)));
        }
        // Whatever the rows say, the pcapng dump that was written reads back, and holds as many frames as the
        // tree dump shows.
        if let Some((_, Ok(ng))) = outs.iter().find(|o| o.0 == DumpFormat::Pcapng) {
            let frames = common::reread(ng);
            if let Some((_, Ok(tree))) = outs.iter().find(|o| o.0 == DumpFormat::Tree) {
                let shown = tree.split(|&c| c == b'\n').filter(|l| l.starts_with(b"Frame ")).count();
                assert_eq!(shown, frames.len(), "tree and pcapng dumps of {label:?}");
            }
            if let Some((_, Ok(pcap))) = outs.iter().find(|o| o.0 == DumpFormat::Pcap) {
                assert_eq!(common::reread(pcap), frames, "pcap and pcapng dumps of {label:?}");
            }
        }
        dumps.push((g, outs));
    }

    if changed > 0 {
        return;
    }
    // Nothing changed: the database is the capture's, and so must every answer be.
    let want = &src.traced;
    let index: Vec<(String, Vec<u64>)> =
        index.expect("index").into_iter().map(|e| (e.label, e.index)).collect();
    assert_eq!(index, want.index, "index tuple");
    let by_label = want.by_label();
    let groups = groups.expect("capture_groups");
    assert_eq!(groups.len(), by_label.len());
    assert_eq!(dumps.len(), labels.len(), "every label selects");
    for (g, outs) in &dumps {
        assert!(groups.contains(g), "select_label {:?} vs capture_groups", g.label);
        let numbers = &by_label.iter().find(|l| l.0 == g.label).expect("a label of the capture").1;
        let expected: Vec<(u32, Vec<u8>)> =
            numbers.iter().map(|&n| want.frames[n as usize - 1].clone()).collect();
        for (format, res) in outs {
            let Ok(out) = res else {
                panic!("{} dump of {:?} failed: {}", format.name(), g.label, res.as_ref().unwrap_err());
            };
            if format.is_binary() {
                assert_eq!(common::reread(out), expected, "{} dump of {:?}", format.name(), g.label);
            }
        }
    }
});
