//! Connections as Zeek users know them: `connections --format zeek` / `zeek-json` read back by Zeek's own
//! readers (zeek-cut's header rules, the PyPI packages zat and parsezeeklogs) over the conformance corpus, and
//! Zeek's byte and packet rules through an ingest, tracked while reading and built later from the rows.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use traceflow::dump::pcapwrite::PcapWriter;
use traceflow::synth::{eth_ipv4_tcp, Segment};

use super::util::{corpus, ingest, run, T0};

/// The whole conformance corpus in one database, and the database's path.
fn corpus_db(dir: &Path) -> PathBuf {
    let db = dir.join("c.db");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 200, "{} captures", paths.len());
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let r = ingest(&db, &["-q", "--connections"], &refs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    db
}

/// The header of a TSV log as zeek-cut reads it (zeek/zeek-aux `zeek-cut/zeek-cut.c`, `bro_cut`): a
/// `#separator ` line (a space, then the separator as `\xHH` or itself) before anything else; `#unset_field`
/// with its value after one separator; `#fields` directly followed by `#types`; header values split by the
/// separator. Returns (separator, unset, fields, types, data lines, whether `#close` ended it).
type Header = (char, String, Vec<String>, Vec<String>, Vec<String>, bool);

fn zeek_cut_header(log: &str) -> Header {
    let mut lines = log.lines();
    let first = lines.next().unwrap();
    let sep = first
        .strip_prefix("#separator ")
        .expect("first line #separator");
    let sep = match sep.strip_prefix("\\x") {
        Some(hex) => char::from(u8::from_str_radix(hex, 16).unwrap()),
        None => sep.chars().next().unwrap(),
    };
    assert_ne!(sep, '\0', "zeek-cut: invalid #separator line");
    let (mut unset, mut fields, mut types) = (String::new(), Vec::new(), Vec::new());
    let (mut data, mut closed, mut prev_fields) = (Vec::new(), false, false);
    for line in lines {
        assert!(
            !prev_fields || line.starts_with("#types"),
            "zeek-cut: bad log header (missing #types line)"
        );
        prev_fields = false;
        if !line.starts_with('#') {
            assert!(!closed, "a row after #close");
            data.push(line.to_string());
            continue;
        }
        let mut parts = line.split(sep);
        let key = parts.next().unwrap();
        let rest: Vec<String> = parts.map(String::from).collect();
        match key {
            "#unset_field" => unset = line[13..].to_string(),
            "#fields" => {
                fields = rest;
                prev_fields = true;
            }
            "#types" => types = rest,
            "#close" => closed = true,
            "#set_separator" | "#empty_field" | "#path" | "#open" => {
                assert_eq!(rest.len(), 1, "{line}")
            }
            _ => panic!("unknown header line {line}"),
        }
    }
    (sep, unset, fields, types, data, closed)
}

/// Zeek's conn.log field order and types (`scripts/base/protocols/conn/main.zeek`, `Conn::Info`, and the
/// community-id package's `community_id`).
const CONN_LOG: [(&str, &str); 22] = [
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
    ("community_id", "string"),
];

/// Reads conn.log (TSV) and conn.json with zat's ZeekLogReader (strict: a value that does not convert to its
/// field's type fails) and LogToDataFrame, and with parsezeeklogs (both forms), checks every field's type and
/// that the two forms and traceflow's own JSON listing agree, and prints `ok N`.
const READ_BACK: &str = r#"
import datetime, json, sys
import pandas as pd
from zat.zeek_log_reader import ZeekLogReader
from zat.log_to_dataframe import LogToDataFrame
from parsezeeklogs import read_zeek

tsv, js, listing = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
rows = list(ZeekLogReader(tsv, strict=True).readrows())
assert len(rows) == len(listing), (len(rows), len(listing))
for r, l in zip(rows, listing):
    assert isinstance(r["ts"], datetime.datetime), r
    assert isinstance(r["duration"], datetime.timedelta), r
    for k in ("id.orig_p", "id.resp_p", "orig_bytes", "resp_bytes", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"):
        assert type(r[k]) is int, (k, r)
    assert r["uid"].startswith("C") and r["uid"][1:].isalnum(), r
    assert r["proto"] == "tcp"
    assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]) == (l["orig_h"], l["orig_p"], l["resp_h"], l["resp_p"])
    assert (r["orig_bytes"], r["resp_bytes"], r["orig_pkts"], r["resp_pkts"]) == (l["orig_bytes"], l["resp_bytes"], l["orig_pkts"], l["resp_pkts"])
    assert (r["orig_ip_bytes"], r["resp_ip_bytes"]) == (l["orig_ip_bytes"], l["resp_ip_bytes"])
    assert r["conn_state"] == l["conn_state"] and r["history"] == (l["history"] or "(empty)"), (r, l)
    assert r["community_id"] == l["community_id"]
    assert abs(r["duration"].total_seconds() - float(l["duration"])) < 1e-6
df = LogToDataFrame().create_dataframe(tsv)
assert len(df) == len(listing)
for k in ("id.orig_p", "id.resp_p", "orig_bytes", "resp_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes"):
    assert pd.api.types.is_integer_dtype(df[k]), (k, df[k].dtype)
assert pd.api.types.is_timedelta64_dtype(df["duration"]), df["duration"].dtype
assert pd.api.types.is_datetime64_any_dtype(df.index), df.index.dtype
a, b = list(read_zeek(tsv)), list(read_zeek(js))
assert len(a) == len(b) == len(listing)
for x, y in zip(a, b):
    for k in ("ts", "duration"):
        assert type(x[k]) is float and abs(x[k] - y[k]) < 1e-6, (k, x, y)
    for k in ("service", "local_orig", "local_resp", "missed_bytes", "tunnel_parents"):
        assert x[k] is None and k not in y, (k, x, y)
    for k, v in x.items():
        if v is not None and k not in ("ts", "duration"):
            assert y[k] == v and type(y[k]) is type(v), (k, x, y)
print("ok", len(a))
"#;

#[test]
fn conn_log_reads_back_through_zeek_cut_zat_and_parsezeeklogs_over_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let db = corpus_db(tmp.path());
    let tsv = run(&db, &["connections", "--format", "zeek"]);
    assert_eq!(tsv.code, 0, "{}", tsv.stderr);
    let (sep, unset, fields, types, data, closed) = zeek_cut_header(&tsv.stdout);
    assert_eq!((sep, unset.as_str(), closed), ('\t', "-", true));
    let want: Vec<(String, String)> = CONN_LOG
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    let got: Vec<(String, String)> = fields.into_iter().zip(types).collect();
    assert_eq!(got, want);
    assert!(data.len() > 300, "{} connections", data.len());
    for line in &data {
        assert_eq!(line.split('\t').count(), CONN_LOG.len(), "{line}");
    }
    let js = run(&db, &["connections", "--format", "zeek-json"]);
    assert_eq!(js.code, 0, "{}", js.stderr);
    let listing = run(&db, &["connections", "--format", "json"]);
    let dir = tmp.path();
    std::fs::write(dir.join("conn.log"), &tsv.stdout).unwrap();
    std::fs::write(dir.join("conn.json"), &js.stdout).unwrap();
    std::fs::write(dir.join("listing.json"), &listing.stdout).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(READ_BACK)
        .arg(dir.join("conn.log"))
        .arg(dir.join("conn.json"))
        .arg(dir.join("listing.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (zat's reader says "Successfully monitoring ..." first.)
    assert_eq!(
        stdout.lines().last(),
        Some(format!("ok {}", data.len()).as_str())
    );
}

#[test]
fn uids_are_zeek_shaped_and_the_same_for_the_same_capture_in_any_database() {
    let tmp = tempfile::tempdir().unwrap();
    let a = corpus().join("http-100-continue.pcap");
    let b = corpus().join("tcp_handshake_synthetic.pcap");
    let (d1, d2) = (tmp.path().join("1.db"), tmp.path().join("2.db"));
    assert_eq!(ingest(&d1, &["-q", "--connections"], &[&a, &b]).code, 0);
    assert_eq!(ingest(&d2, &["-q", "--connections"], &[&b, &a]).code, 0);
    let uids = |db: &Path| -> Vec<String> {
        let r = run(
            db,
            &[
                "connections",
                "capture http-100-continue.pcap",
                "--format",
                "zeek",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let (_, _, _, _, data, _) = zeek_cut_header(&r.stdout);
        data.iter()
            .map(|l| l.split('\t').nth(1).unwrap().to_string())
            .collect()
    };
    let (u1, u2) = (uids(&d1), uids(&d2));
    assert!(!u1.is_empty());
    assert_eq!(u1, u2);
    for u in &u1 {
        // Zeek's uids: 'C' and base62 digits, 18 characters or a few less.
        assert!(
            u.starts_with('C') && u[1..].chars().all(|c| c.is_ascii_alphanumeric()),
            "{u}"
        );
        assert!((12..=24).contains(&u.len()), "{u}");
    }
}

/// A crafted conversation A (10.0.0.1:40000) to B (10.0.0.2:22): a retransmitted segment twice, and a last
/// frame whose TCP header (data offset 15: 60 bytes) is cut by the snap length.
fn crafted(dir: &Path) -> PathBuf {
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let seg = |from_a: bool, flags: u8, seq: u32, ack: u32, payload: &[u8]| {
        let (src, sport, dst, dport) = if from_a {
            (a, 40000, b, 22)
        } else {
            (b, 22, a, 40000)
        };
        eth_ipv4_tcp(&Segment {
            src,
            sport,
            dst,
            dport,
            seq,
            ack,
            flags,
            payload,
        })
    };
    let mut frames = vec![
        seg(true, 0x02, 100, 0, b""),
        seg(false, 0x12, 500, 101, b""),
        seg(true, 0x10, 101, 501, b""),
        seg(true, 0x18, 101, 501, &[7; 100]),
        seg(true, 0x18, 101, 501, &[7; 100]),
        seg(true, 0x18, 101, 501, &[7; 100]),
        seg(false, 0x18, 501, 201, &[9; 40]),
    ];
    // A FIN whose header claims 60 bytes, captured to 14 of its TCP bytes.
    let mut cut = seg(false, 0x11, 541, 201, b"");
    cut[14 + 20 + 12] = 0xF0;
    let mut w = PcapWriter::new(Vec::new(), 1, 65535, false, false).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write(T0 + i as i64 * 1_000_000, f.len() as u32, f)
            .unwrap();
    }
    frames.push(cut.clone());
    w.write(T0 + 9_000_000, cut.len() as u32 + 40, &cut[..14 + 20 + 14])
        .unwrap();
    let path = dir.join("crafted.pcap");
    std::fs::write(&path, w.into_inner()).unwrap();
    path
}

type Counted = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    String,
);

fn counted(db: &Path) -> Counted {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT orig_bytes, resp_bytes, orig_payload_bytes, resp_payload_bytes, orig_pkts, resp_pkts,
                    orig_ip_bytes, resp_ip_bytes, conn_state, history FROM connections",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .unwrap()
}

/// TCP_Endpoint::Size (sequence space, a retransmission once), the ConnSize analyzer's IP lengths, and
/// TCPAnalyzer::ExtractTCP_Header (a truncated header counts nowhere), through an ingest: tracked while reading
/// (--connections), and built later (`ingest --connections` with no files) from the rows and the capture file re-read. Without the
/// file, the IP lengths are unknown (NULL, and unset in conn.log) and the rest is the same but for the truncated
/// frame, which the rows alone cannot tell.
#[test]
fn zeeks_byte_and_packet_rules_through_an_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = crafted(tmp.path());
    let want: Counted = (
        100,
        40,
        300,
        40,
        5,
        2,
        Some(40 * 5 + 300),
        Some(40 * 2 + 40),
        "S1".into(),
        "ShADd".into(),
    );
    let tracked = tmp.path().join("t.db");
    assert_eq!(ingest(&tracked, &["-q", "--connections"], &[&cap]).code, 0);
    assert_eq!(counted(&tracked), want);
    let lazy = tmp.path().join("l.db");
    assert_eq!(ingest(&lazy, &["-q"], &[&cap]).code, 0);
    let r = ingest(&lazy, &["-q", "--connections"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(counted(&lazy), want);
    // The file gone: rows only.
    let gone = tmp.path().join("g.db");
    assert_eq!(ingest(&gone, &["-q"], &[&cap]).code, 0);
    std::fs::remove_file(&cap).unwrap();
    assert_eq!(ingest(&gone, &["-q", "--connections"], &[]).code, 0);
    let r = run(&gone, &["connections", "--format", "zeek"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = counted(&gone);
    assert_eq!((c.6, c.7), (None, None));
    assert_eq!((c.0, c.4, c.5), (100, 5, 3));
    let (_, _, _, _, data, _) = zeek_cut_header(&r.stdout);
    let cells: Vec<&str> = data[0].split('\t').collect();
    assert_eq!((cells[17], cells[19]), ("-", "-"));
}

/// The connection terms of the filter language, on the database at `db` (SQLite path or PostgreSQL URL) holding
/// the conformance corpus: `connections FILTER` against the connections' own fields (the oracle: the whole
/// listing filtered here), and `flows FILTER` against the flows those connections list (a flow's connection
/// being the first one listing it: the one holding its first frame).
pub fn check_connection_terms(db: &Path) {
    use serde_json::Value;
    let json = |args: &[&str]| -> Vec<Value> {
        let r = run(db, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        serde_json::from_str::<Value>(&r.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let all = json(&["connections", "--format", "json"]);
    let flows_all = json(&["flows", "--format", "json"]);
    assert!(all.len() > 300);
    let s = |c: &Value, k: &str| c[k].as_str().unwrap().to_string();
    let n = |c: &Value, k: &str| c[k].as_i64().unwrap();
    type Pred = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, Pred)> = vec![
        (
            "conn-state S0 REJ",
            Box::new(move |c| ["S0", "REJ"].contains(&s(c, "conn_state").as_str())),
        ),
        (
            "conn-state sf",
            Box::new(move |c| s(c, "conn_state") == "SF"),
        ),
        (
            "conn-state RSTO RSTR RSTOS0 RSTRH and port 80",
            Box::new(move |c| {
                s(c, "conn_state").starts_with("RST")
                    && (n(c, "orig_p") == 80 || n(c, "resp_p") == 80)
            }),
        ),
        (
            "not conn-state SF S1",
            Box::new(move |c| !["SF", "S1"].contains(&s(c, "conn_state").as_str())),
        ),
        (
            "history ShAD",
            Box::new(move |c| s(c, "history").contains("ShAD")),
        ),
        (
            "history = ShADadFf",
            Box::new(move |c| s(c, "history") == "ShADadFf"),
        ),
        (
            "history ^",
            Box::new(move |c| s(c, "history").contains('^')),
        ),
        (
            "history r",
            Box::new(move |c| s(c, "history").contains('r')),
        ),
        (
            "orig-bytes > 1000",
            Box::new(move |c| n(c, "orig_bytes") > 1000),
        ),
        ("resp-bytes = 0", Box::new(move |c| n(c, "resp_bytes") == 0)),
        (
            "orig-pkts >= 10 and resp-pkts < 10",
            Box::new(move |c| n(c, "orig_pkts") >= 10 && n(c, "resp_pkts") < 10),
        ),
        (
            "resp-pkts != 0 or history = S",
            Box::new(move |c| n(c, "resp_pkts") != 0 || s(c, "history") == "S"),
        ),
    ];
    let key = |c: &Value| (s(c, "capture"), n(c, "conn"));
    // Each flow's connection: the first (in listing order: first frame) that lists it.
    let mut conn_of: std::collections::HashMap<(String, String), usize> = Default::default();
    for (i, c) in all.iter().enumerate() {
        for l in c["flows"].as_array().unwrap() {
            conn_of
                .entry((s(c, "capture"), l.as_str().unwrap().to_string()))
                .and_modify(|j| {
                    if n(&all[*j], "conn") > n(c, "conn") {
                        *j = i
                    }
                })
                .or_insert(i);
        }
    }
    for (filter, pred) in &cases {
        let mut want: Vec<_> = all.iter().filter(|c| pred(c)).map(key).collect();
        let mut got: Vec<_> = json(&["connections", filter, "--format", "json"])
            .iter()
            .map(key)
            .collect();
        want.sort();
        got.sort();
        assert!(
            !want.is_empty() || filter.contains('='),
            "{filter}: nothing to find"
        );
        assert_eq!(got, want, "connections '{filter}'");
        let mut want: Vec<_> = flows_all
            .iter()
            .filter(|f| {
                conn_of
                    .get(&(s(f, "capture"), s(f, "label")))
                    .is_some_and(|&i| pred(&all[i]))
            })
            .map(|f| (s(f, "capture"), s(f, "label")))
            .collect();
        let mut got: Vec<_> = json(&["flows", filter, "--format", "json"])
            .iter()
            .map(|f| (s(f, "capture"), s(f, "label")))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "flows '{filter}'");
    }
    check_one_connection_terms(db, &all, &flows_all, &conn_of);
    // Bad values say what is expected.
    let r = run(db, &["connections", "conn-state S9"]);
    assert!(
        r.code != 0 && r.stderr.contains("not a Zeek conn_state"),
        "{}",
        r.stderr
    );
    let r = run(db, &["flows", "orig-bytes > many"]);
    assert!(
        r.code != 0 && r.stderr.contains("not a whole number"),
        "{}",
        r.stderr
    );
}

#[test]
fn connection_terms_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    check_connection_terms(&corpus_db(tmp.path()));
}

/// `conn CAPTURE:N` (by name and by id) and `uid CXXXX` name exactly one connection, the listing's row with that
/// number and the uid the conn.log gives it; in `flows`, the flows whose first frame is in it. `all` is the
/// connection listing, `flows_all` the flow listing, `conn_of` each flow's connection (an index into `all`).
fn check_one_connection_terms(
    db: &Path,
    all: &[serde_json::Value],
    flows_all: &[serde_json::Value],
    conn_of: &std::collections::HashMap<(String, String), usize>,
) {
    use serde_json::Value;
    let lines = |args: &[&str]| -> Vec<Value> {
        let r = run(db, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let s = |c: &Value, k: &str| c[k].as_str().unwrap().to_string();
    let key = |c: &Value| (s(c, "capture"), c["conn"].as_i64().unwrap());
    // The conn.log of the same listing, row for row: each connection's uid.
    let zeek = lines(&["connections", "--format", "zeek-json"]);
    assert_eq!(zeek.len(), all.len());
    for (z, c) in zeek.iter().zip(all) {
        assert_eq!(s(z, "community_id"), s(c, "community_id"));
    }
    let ids: std::collections::HashMap<String, i64> = lines(&["captures", "--format", "jsonl"])
        .iter()
        .map(|c| (s(c, "name"), c["id"].as_i64().unwrap()))
        .collect();
    let conns_of = |filter: &str| -> Vec<(String, i64)> {
        let mut v: Vec<_> = lines(&["connections", filter, "--format", "jsonl"])
            .iter()
            .map(key)
            .collect();
        v.sort();
        v
    };
    let flows_of = |filter: &str| -> Vec<String> {
        let mut v: Vec<_> = lines(&["flows", filter, "--format", "jsonl"])
            .iter()
            .map(|f| s(f, "label"))
            .collect();
        v.sort();
        v
    };
    let mut checked = 0;
    for (i, (c, z)) in all.iter().zip(&zeek).enumerate().step_by(11) {
        let (cap, no) = key(c);
        let uid = s(z, "uid");
        let by_name = format!("conn {cap}:{no}");
        let by_id = format!("conn {}:{no}", ids[&cap]);
        let by_uid = format!("uid {uid}");
        for f in [&by_name, &by_id] {
            assert_eq!(conns_of(f), vec![(cap.clone(), no)], "connections '{f}'");
        }
        // The uid derives from the traffic: the same connection in two copies of a capture has the same one.
        let same: Vec<usize> = (0..all.len())
            .filter(|&j| s(&zeek[j], "uid") == uid)
            .collect();
        let mut want: Vec<_> = same.iter().map(|&j| key(&all[j])).collect();
        want.sort();
        assert_eq!(conns_of(&by_uid), want, "connections '{by_uid}'");
        let flows_in = |conns: &[usize]| {
            let mut v: Vec<String> = flows_all
                .iter()
                .filter(|f| {
                    conn_of
                        .get(&(s(f, "capture"), s(f, "label")))
                        .is_some_and(|j| conns.contains(j))
                })
                .map(|f| s(f, "label"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(flows_of(&by_name), flows_in(&[i]), "flows '{by_name}'");
        assert_eq!(flows_of(&by_uid), flows_in(&same), "flows '{by_uid}'");
        checked += 1;
    }
    assert!(checked > 30, "{checked} connections checked");
    // Two uids at once, and a uid no connection has.
    let (a, b) = (s(&zeek[0], "uid"), s(&zeek[zeek.len() - 1], "uid"));
    let mut want: Vec<_> = (0..all.len())
        .filter(|&j| [&a, &b].contains(&&s(&zeek[j], "uid")))
        .map(|j| key(&all[j]))
        .collect();
    want.sort();
    assert!(want.len() >= 2);
    assert_eq!(conns_of(&format!("uid {a} or uid {b}")), want);
    assert!(conns_of("uid CAAAAAAAAAAAAAAAAAA").is_empty());
    assert!(conns_of("conn no-such.pcap:1").is_empty());
    let r = run(db, &["flows", "conn sample.pcap"]);
    assert!(
        r.code != 0 && r.stderr.contains("CAPTURE:N"),
        "{}",
        r.stderr
    );
}
