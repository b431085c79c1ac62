//! Per-flow dumps (`traceflow query --flow` / `--dump`): every flow of the conformance corpus must come back
//! byte-identical, checked with pcap-parser reading the original captures; the other formats must parse; the CLI
//! must refuse what it should.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::util::{corpus, tf};
use assert_cmd::prelude::*;
use traceflow::cli::query::{run_query, QueryArgs, QueryFormat};
use traceflow::dump::{self, DumpError, DumpFormat, DumpOptions};
use traceflow::store::read as query;
use traceflow::store::read::IndexEntry;
use traceflow::store::Db;
use traceflow::{ingest, store, synth};

/// One frame as an independent reader (pcap-parser) sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    sec: u64,
    ns: u64,
    caplen: u32,
    origlen: u32,
    linktype: i32,
    data: Vec<u8>,
}

fn decompress(bytes: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(&bytes[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    }
}

/// Every frame of a pcap or pcapng file (optionally compressed), read with pcap-parser.
fn read_recs(bytes: &[u8]) -> Vec<Rec> {
    let bytes = decompress(bytes.to_vec());
    let mut out = Vec::new();
    if let Ok((mut rest, h)) = pcap_parser::parse_pcap_header(&bytes) {
        let big = h.is_bigendian();
        let ns = h.is_nanosecond_precision();
        while !rest.is_empty() {
            let r = if big {
                pcap_parser::parse_pcap_frame_be(rest)
            } else {
                pcap_parser::parse_pcap_frame(rest)
            };
            let Ok((next, b)) = r else { break };
            out.push(Rec {
                sec: b.ts_sec as u64,
                ns: if ns {
                    b.ts_usec as u64
                } else {
                    b.ts_usec as u64 * 1000
                },
                caplen: b.caplen,
                origlen: b.origlen,
                linktype: h.network.0,
                data: b.data.to_vec(),
            });
            rest = next;
        }
        return out;
    }
    let cap = pcap_parser::PcapNGCapture::from_file(&bytes).expect("pcap-parser reads the pcapng");
    for section in &cap.sections {
        let mut ifaces: Vec<(i32, u8, u32)> = Vec::new();
        for block in &section.blocks {
            match block {
                pcap_parser::Block::InterfaceDescription(idb) => {
                    ifaces.push((idb.linktype.0, idb.if_tsresol, idb.snaplen))
                }
                pcap_parser::Block::EnhancedPacket(epb) => {
                    let (lt, res, _) = ifaces[epb.if_id as usize];
                    let unit = pcap_parser::build_ts_resolution(res).unwrap();
                    let ticks = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                    out.push(Rec {
                        sec: ticks / unit,
                        ns: ((ticks % unit) as u128 * 1_000_000_000 / unit as u128) as u64,
                        caplen: epb.caplen,
                        origlen: epb.origlen,
                        linktype: lt,
                        data: epb.data[..epb.caplen as usize].to_vec(),
                    });
                }
                pcap_parser::Block::SimplePacket(spb) => {
                    let (lt, _, snap) = ifaces[0];
                    let mut n = spb.origlen.min(spb.data.len() as u32);
                    if snap > 0 {
                        n = n.min(snap);
                    }
                    out.push(Rec {
                        sec: 0,
                        ns: 0,
                        caplen: n,
                        origlen: spb.origlen,
                        linktype: lt,
                        data: spb.data[..n as usize].to_vec(),
                    });
                }
                _ => {}
            }
        }
    }
    out
}

fn ingest_paths(db: &Path, paths: &[PathBuf], embed: bool) -> Db {
    let mut conn = store::Db::Sqlite(store::open(db).unwrap());
    let opts = ingest::Options {
        jobs: 2,
        quiet: true,
        embed,
        ..Default::default()
    };
    let s = ingest::run(&mut conn, paths, &opts, &mut |m| eprintln!("{m}"));
    assert_eq!(s.failed, 0, "ingest failed");
    conn
}

/// `--dump DIR --format F` of one capture (or of all, with `None`), without --force.
fn dump_folder(
    conn: &Db,
    capture: Option<i64>,
    dir: &Path,
    format: DumpFormat,
) -> Result<Vec<IndexEntry>, DumpError> {
    dump::dump_dir(conn, capture, None, dir, &DumpOptions::new(format), false)
}

fn corpus_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 200, "expected about 205 captures");
    paths
}

/// The frame numbers of each label of a capture, flows in index order: what a dump of the label must hold.
fn expected_groups(conn: &Db, id: i64) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    for e in query::index(conn, Some(id)).unwrap() {
        match out.iter_mut().find(|g| g.0 == e.label) {
            Some(g) => g.1.extend(e.index),
            None => out.push((e.label, e.index)),
        }
    }
    out
}

/// Dumps every label of every corpus capture as pcap and compares with the original records. Returns the number
/// of labels compared.
fn check_corpus(conn: &Db, paths: &[PathBuf]) -> usize {
    let mut compared = 0;
    let mut failures = Vec::new();
    for p in paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let id = query::resolve_capture(conn, &name).unwrap();
        let orig = read_recs(&std::fs::read(p).unwrap());
        let groups = dump::capture_groups(conn, id).unwrap();
        let want = expected_groups(conn, id);
        assert_eq!(groups.len(), want.len(), "{name}: label groups");
        for (g, (label, numbers)) in groups.iter().zip(&want) {
            assert_eq!(&g.label, label, "{name}: label order");
            let recs: Vec<&Rec> = numbers.iter().map(|&n| &orig[n as usize - 1]).collect();
            let mut lts: Vec<i32> = recs.iter().map(|r| r.linktype).collect();
            lts.sort_unstable();
            lts.dedup();
            let mut out = Vec::new();
            let res = dump::write_group(
                conn,
                g,
                &DumpOptions::new(DumpFormat::Pcap),
                &mut out,
                "test",
            );
            if lts.len() > 1 {
                match res {
                    Err(e @ DumpError::MixedLinktypes { .. }) => {
                        assert!(e.to_string().contains("pcapng"))
                    }
                    other => {
                        failures.push(format!("{name} {label}: mixed link types gave {other:?}"))
                    }
                }
                continue;
            }
            if let Err(e) = res {
                failures.push(format!("{name} {label}: {e}"));
                continue;
            }
            let got = read_recs(&out);
            let same = got.len() == recs.len() && got.iter().zip(&recs).all(|(a, b)| a == *b);
            if !same {
                failures.push(format!(
                    "{name} {label}: dump differs ({} frames, want {})",
                    got.len(),
                    recs.len()
                ));
            }
            compared += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    compared
}

#[test]
fn corpus_flows_round_trip_from_source_files() {
    let paths = corpus_paths();
    let tmp = tempfile::tempdir().unwrap();
    let conn = ingest_paths(&tmp.path().join("plain.db"), &paths, false);
    let n = check_corpus(&conn, &paths);
    assert!(n > 900, "only {n} labels compared");
}

#[test]
fn corpus_flows_round_trip_from_embedded_bytes() {
    let paths = corpus_paths();
    let tmp = tempfile::tempdir().unwrap();
    // The captures are copied, embedded, then deleted: the database must stand alone.
    let copies: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            let c = tmp.path().join(p.file_name().unwrap());
            std::fs::copy(p, &c).unwrap();
            c
        })
        .collect();
    let conn = ingest_paths(&tmp.path().join("embed.db"), &copies, true);
    for c in &copies {
        std::fs::remove_file(c).unwrap();
    }
    check_corpus(&conn, &paths);
}

/// Compressed sources: a single flow streams the file once; a whole-capture dump spools it once. Both must give
/// the same bytes as the uncompressed original.
#[test]
fn compressed_captures_dump_like_their_originals() {
    let dir = corpus();
    let plain = dir.join("socks-http-example.pcap");
    let gz = dir.join("variant-gzip-socks-http-example.pcap.gz");
    let zst = dir.join("variant-zstd-socks-http-example.pcap.zst");
    let tmp = tempfile::tempdir().unwrap();
    // One database each: in one database the three are one capture (the same content), dumped from its first
    // path; here each is dumped from its own file.
    let conns: Vec<Db> = [&plain, &gz, &zst]
        .iter()
        .enumerate()
        .map(|(i, p)| ingest_paths(&tmp.path().join(format!("c{i}.db")), &[(*p).clone()], false))
        .collect();
    let conn_of = |cap: &Path| &conns[[&plain, &gz, &zst].iter().position(|p| *p == cap).unwrap()];
    let dump_all = |cap: &Path, out: &str| -> Vec<(String, Vec<u8>)> {
        let conn = conn_of(cap);
        let id = query::resolve_capture(conn, &cap.to_string_lossy()).unwrap();
        let d = tmp.path().join(out);
        let entries = dump_folder(conn, Some(id), &d, DumpFormat::Pcap).unwrap();
        assert!(!entries.is_empty());
        entries
            .iter()
            .map(|e| {
                let p = e.fpout.clone().unwrap();
                (e.label.clone(), std::fs::read(&p).unwrap())
            })
            .collect()
    };
    let want = dump_all(&plain, "plain");
    assert_eq!(dump_all(&gz, "gz"), want);
    assert_eq!(dump_all(&zst, "zst"), want);
    for cap in [&gz, &zst] {
        let conn = conn_of(cap);
        let id = query::resolve_capture(conn, &cap.to_string_lossy()).unwrap();
        for g in dump::capture_groups(conn, id).unwrap() {
            let mut out = Vec::new();
            dump::write_group(conn, &g, &DumpOptions::new(DumpFormat::Pcap), &mut out, "t")
                .unwrap();
            let w = &want.iter().find(|w| w.0 == g.label).unwrap().1;
            assert_eq!(&out, w, "{}: {}", cap.display(), g.label);
        }
    }
}

fn tool_ok(args: &[&str]) -> Option<String> {
    let o = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{} must be installed: {e}", args[0]));
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn pcapng_dumps_read_back_in_tshark_and_capinfos() {
    let cap = corpus().join("variant-pcapng-multi-interface.pcapng");
    let tmp = tempfile::tempdir().unwrap();
    let conn = ingest_paths(&tmp.path().join("c.db"), std::slice::from_ref(&cap), false);
    let id = query::resolve_capture(&conn, "variant-pcapng-multi-interface.pcapng").unwrap();
    let orig = read_recs(&std::fs::read(&cap).unwrap());
    let out = tmp.path().join("ng");
    let entries = dump_folder(&conn, Some(id), &out, DumpFormat::Pcapng).unwrap();
    assert!(entries.len() > 3);
    let want = expected_groups(&conn, id);
    for (label, numbers) in &want {
        let p = out.join(format!("{label}.pcapng"));
        let ps = p.to_str().unwrap();
        let count = tool_ok(&["/usr/bin/capinfos", "-M", "-c", ps]).unwrap();
        assert!(
            count.contains(&format!("Number of packets:   {}", numbers.len())),
            "{count}"
        );
        let lines = tool_ok(&[
            "/usr/bin/tshark",
            "-n",
            "-r",
            ps,
            "-T",
            "fields",
            "-e",
            "frame.len",
        ])
        .unwrap();
        assert_eq!(lines.lines().count(), numbers.len(), "tshark on {ps}");
        // And the records are the originals.
        let got = read_recs(&std::fs::read(&p).unwrap());
        let recs: Vec<Rec> = numbers
            .iter()
            .map(|&n| orig[n as usize - 1].clone())
            .collect();
        assert_eq!(got, recs, "{label}");
    }
}

/// A flow whose frames arrive on interfaces of two link types (Ethernet and raw IPv4): pcap refuses and names
/// pcapng; pcapng keeps both interfaces, and tshark reads it.
#[test]
fn mixed_link_types_need_pcapng() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("mixed.pcapng");
    let seg = |seq: u32, flags: u8| synth::Segment {
        src: "10.1.1.1".parse().unwrap(),
        sport: 1234,
        dst: "10.2.2.2".parse().unwrap(),
        dport: 80,
        seq,
        ack: 0,
        flags,
        payload: b"hi",
    };
    {
        let f = std::fs::File::create(&cap).unwrap();
        let mut w = traceflow::dump::pcapwrite::PcapNgWriter::new(f).unwrap();
        w.add_interface(1, 65535, 6).unwrap();
        w.add_interface(101, 65535, 9).unwrap();
        let a = synth::eth_ipv4_tcp(&seg(1, 0x02));
        let b = synth::eth_ipv4_tcp(&seg(2, 0x18));
        w.write(0, 1_000_000_000, a.len() as u32, &a).unwrap();
        w.write(1, 1_000_000_123, (b.len() - 14) as u32, &b[14..])
            .unwrap();
    }
    let conn = ingest_paths(&tmp.path().join("c.db"), std::slice::from_ref(&cap), false);
    let id = query::resolve_capture(&conn, "mixed.pcapng").unwrap();
    let groups = dump::capture_groups(&conn, id).unwrap();
    assert_eq!(groups.len(), 1);
    let mut sink = Vec::new();
    let e = dump::write_group(
        &conn,
        &groups[0],
        &DumpOptions::new(DumpFormat::Pcap),
        &mut sink,
        "t",
    )
    .unwrap_err();
    assert!(matches!(e, DumpError::MixedLinktypes { .. }));
    assert!(e.to_string().contains("pcapng"), "{e}");
    // A folder dump checks before it writes anything.
    let d = tmp.path().join("d");
    let e = dump_folder(&conn, Some(id), &d, DumpFormat::Pcap).unwrap_err();
    assert!(matches!(e, DumpError::MixedLinktypes { .. }));
    assert!(!d.exists());
    let out = tmp.path().join("flow.pcapng");
    let mut f = std::fs::File::create(&out).unwrap();
    dump::write_group(
        &conn,
        &groups[0],
        &DumpOptions::new(DumpFormat::Pcapng),
        &mut f,
        "t",
    )
    .unwrap();
    let info = tool_ok(&["/usr/bin/capinfos", out.to_str().unwrap()]).unwrap();
    assert!(info.contains("Number of interfaces in file: 2"), "{info}");
    let fields = tool_ok(&[
        "/usr/bin/tshark",
        "-n",
        "-r",
        out.to_str().unwrap(),
        "-T",
        "fields",
        "-e",
        "tcp.seq_raw",
        "-e",
        "frame.time_epoch",
    ])
    .unwrap();
    let lines: Vec<&str> = fields.lines().collect();
    assert_eq!(lines.len(), 2, "{fields}");
    assert!(lines[1].starts_with("2\t1.000000123"), "{fields}");
}

fn sample_db(tmp: &Path, embed: bool) -> (PathBuf, PathBuf) {
    let cap = tmp.join("s.pcap");
    synth::write_sample(&cap, 2).unwrap();
    let db = tmp.join("s.db");
    ingest_paths(&db, std::slice::from_ref(&cap), embed);
    (db, cap)
}

fn first_label(db: &Path) -> String {
    let conn = store::Db::Sqlite(store::open(db).unwrap());
    query::index(&conn, None).unwrap()[0].label.clone()
}

/// The decoded formats: json and plist parse, and carry the frames keyed as pcapkit does, down to TCP.
#[test]
fn json_and_plist_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus();
    let names = [
        "vxlan.pcap",
        "mpls-basic.pcap",
        "twovlan.pcap",
        "v6-http.pcap",
        "gre-erspan.pcap",
        "pppoe.pcap",
        "nflog.pcap",
        "tcpdump-geneve.pcap",
        "ipv6-in-ipv4.pcap",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let conn = ingest_paths(&tmp.path().join("c.db"), &paths, false);
    let mut mss_seen = 0;
    for n in names {
        let id = query::resolve_capture(&conn, n).unwrap();
        let want = expected_groups(&conn, id);
        for (g, (_, numbers)) in dump::capture_groups(&conn, id).unwrap().iter().zip(&want) {
            let mut js = Vec::new();
            dump::write_group(&conn, g, &DumpOptions::new(DumpFormat::Json), &mut js, "t").unwrap();
            let v: serde_json::Value = serde_json::from_slice(&js).unwrap();
            let obj = v.as_object().unwrap();
            let keys: Vec<String> = numbers.iter().map(|n| format!("Frame {n}")).collect();
            assert_eq!(obj.keys().cloned().collect::<Vec<_>>(), keys, "{n}");
            for f in obj.values() {
                let protocols = f["protocols"].as_str().unwrap();
                assert!(protocols.ends_with(":TCP"), "{n}: {protocols}");
                // Walk the nesting down to tcp.
                let mut layer = f;
                for name in protocols.split(':') {
                    let key = traceflow::dump::render::key_of(name);
                    layer = &layer[key.as_str()];
                    assert!(layer.is_object(), "{n}: no {key} layer in {f}");
                }
                assert!(layer["srcport"].is_u64() && layer["flags"]["syn"].is_boolean());
                if let Some(opts) = layer["options"].as_array() {
                    mss_seen += opts.iter().filter(|o| o["mss"].is_u64()).count();
                }
                assert!(g.label.contains(&format!("_{}-", layer["srcport"])));
            }
            let mut pl = Vec::new();
            dump::write_group(&conn, g, &DumpOptions::new(DumpFormat::Plist), &mut pl, "t")
                .unwrap();
            assert!(
                pl.starts_with(b"<?xml")
                    && String::from_utf8_lossy(&pl).contains("<!DOCTYPE plist")
            );
            let p: plist::Value = plist::from_bytes(&pl).unwrap();
            let d = p.as_dictionary().unwrap();
            assert_eq!(d.len(), numbers.len());
            assert!(d.contains_key(&format!("Frame {}", numbers[0])));
        }
    }
    assert!(mss_seen > 0, "no SYN with an MSS option decoded");
}

/// Pins json, tree and text for the client side of one synthetic conversation.
#[test]
fn snapshot_of_one_small_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("one.pcap");
    synth::write_sample(&cap, 1).unwrap();
    let conn = ingest_paths(&tmp.path().join("c.db"), &[cap], false);
    let label = query::index(&conn, None).unwrap()[0].label.clone();
    assert_eq!(label, "192.168.1.10_40000-10.0.0.80_80-1700000000.00125");
    let group = dump::select_label(&conn, None, &label).unwrap();
    let render = |f: DumpFormat| {
        let mut out = Vec::new();
        dump::write_group(&conn, &group, &DumpOptions::new(f), &mut out, "t").unwrap();
        String::from_utf8(out).unwrap()
    };
    insta::assert_snapshot!("synth_flow_json", render(DumpFormat::Json));
    insta::assert_snapshot!("synth_flow_tree", render(DumpFormat::Tree));
    insta::assert_snapshot!("synth_flow_text", render(DumpFormat::Text));
}

#[test]
fn dump_dir_writes_one_file_per_label_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = sample_db(tmp.path(), false);
    let out = tmp.path().join("flows");
    let run = |force: bool| {
        let mut c = tf(&db);
        c.args(["query", "--capture", "s.pcap", "--dump"])
            .arg(&out)
            .args(["--format", "pcap"]);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let o = run(false);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let conn = store::Db::Sqlite(store::open(&db).unwrap());
    let index = query::index(&conn, None).unwrap();
    assert_eq!(entries.len(), index.len());
    let mut labels: Vec<&str> = index.iter().map(|e| e.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let files = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(files, labels.len());
    for (e, i) in entries.iter().zip(&index) {
        assert_eq!(e["label"], i.label.as_str());
        let fpout = e["fpout"].as_str().unwrap();
        assert_eq!(
            fpout,
            out.join(format!("{}.pcap", i.label)).to_str().unwrap()
        );
        assert!(Path::new(fpout).is_file(), "{fpout}");
        assert_eq!(e["index"], serde_json::json!(i.index));
    }
    let o = run(false);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert!(run(true).status.success());
}

#[test]
fn a_label_never_escapes_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = sample_db(tmp.path(), false);
    let conn = store::Db::Sqlite(store::open(&db).unwrap());
    conn.sqlite()
        .unwrap()
        .execute(
            "UPDATE flow_rows SET label = '../../escaped' WHERE flow_no = 1",
            [],
        )
        .unwrap();
    conn.sqlite()
        .unwrap()
        .execute(
            "UPDATE flow_rows SET label = '/abs/olute' WHERE flow_no = 2",
            [],
        )
        .unwrap();
    drop(conn);
    let out = tmp.path().join("a").join("b");
    let o = tf(&db)
        .args(["query", "--capture", "s.pcap", "--format", "json", "--dump"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join(".._.._escaped.json").is_file());
    assert!(out.join("_abs_olute.json").is_file());
    assert!(!tmp.path().join("escaped.json").exists());
    assert_eq!(std::fs::read_dir(tmp.path().join("a")).unwrap().count(), 1);
}

#[test]
fn unknown_label_suggests_the_closest() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = sample_db(tmp.path(), false);
    let label = first_label(&db);
    let typo = label.replace("40000", "40009");
    let o = tf(&db)
        .args(["query", "--format", "text", "--flow", &typo])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no flow labelled") && err.contains("closest labels"),
        "{err}"
    );
    assert!(err.contains(&label), "{err}");
}

#[test]
fn binary_formats_refuse_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = sample_db(tmp.path(), false);
    let conn = store::Db::Sqlite(store::open(&db).unwrap());
    let args = QueryArgs {
        flow: Some(first_label(&db)),
        format: Some(QueryFormat::Pcap),
        ..Default::default()
    };
    let mut out = Vec::new();
    let e = run_query(&conn, &args, &mut out, true).unwrap_err();
    assert!(matches!(e, DumpError::Terminal { .. }), "{e}");
    assert!(out.is_empty());
    // Text formats are fine on a terminal, and binary ones on a pipe.
    let text = QueryArgs {
        format: Some(QueryFormat::Tree),
        ..args.clone()
    };
    run_query(&conn, &text, &mut out, true).unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("Frame 1\n"));
    out.clear();
    run_query(&conn, &args, &mut out, false).unwrap();
    assert!(out.starts_with(&0xa1b2_c3d4u32.to_ne_bytes()));
}

#[test]
fn cli_pcap_options_and_output_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, cap) = sample_db(tmp.path(), false);
    let label = first_label(&db);
    let f = tmp.path().join("x.pcap");
    tf(&db)
        .args([
            "query",
            "--flow",
            &label,
            "--byteorder",
            "big",
            "--nanosecond",
            "-o",
        ])
        .arg(&f)
        .assert()
        .success()
        .stdout("");
    let bytes = std::fs::read(&f).unwrap();
    assert_eq!(&bytes[..4], &[0xa1, 0xb2, 0x3c, 0x4d]); // ns magic, big-endian
    let orig = read_recs(&std::fs::read(&cap).unwrap());
    let got = read_recs(&bytes);
    assert_eq!(
        got,
        vec![
            orig[0].clone(),
            orig[2].clone(),
            orig[3].clone(),
            orig[5].clone()
        ]
    );
    // -o's extension picks the format; stdout stays empty.
    let j = tmp.path().join("x.json");
    tf(&db)
        .args(["query", "--flow", &label, "-o"])
        .arg(&j)
        .assert()
        .success()
        .stdout("");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
    assert!(v["Frame 1"]["ethernet"]["ipv4"]["tcp"]["flags"]["syn"]
        .as_bool()
        .unwrap());
    // The index tuple itself is unchanged.
    let o = tf(&db)
        .args(["query", "--format", "json"])
        .output()
        .unwrap();
    let idx: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(idx[0]["fpout"].is_null());
}

#[test]
fn moved_or_changed_sources_are_reported_with_remedies() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let (db, cap) = sample_db(&a, false);
    let label = first_label(&db);
    let good = {
        let o = tf(&db)
            .args(["query", "--flow", &label, "--format", "pcap"])
            .output()
            .unwrap();
        assert!(o.status.success());
        o.stdout
    };
    let moved = tmp.path().join("b").join("deep");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::rename(&cap, moved.join("s.pcap")).unwrap();
    let o = tf(&db)
        .args(["query", "--flow", &label, "--format", "pcap"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(cap.to_str().unwrap()), "{err}");
    assert!(
        err.contains("--source-root") && err.contains("--embed"),
        "{err}"
    );
    let o = tf(&db)
        .args([
            "query",
            "--flow",
            &label,
            "--format",
            "pcap",
            "--source-root",
        ])
        .arg(tmp.path().join("b"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, good);
    // Same size, other bytes: changed, not silently dumped.
    std::fs::rename(moved.join("s.pcap"), &cap).unwrap();
    let mut bytes = std::fs::read(&cap).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&cap, &bytes).unwrap();
    let o = tf(&db)
        .args(["query", "--flow", &label, "--format", "pcap"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("changed") && err.contains("--embed"), "{err}");
}

#[test]
fn embedded_database_stands_alone_on_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, cap) = sample_db(tmp.path(), true);
    let orig = read_recs(&std::fs::read(&cap).unwrap());
    std::fs::remove_file(&cap).unwrap();
    let label = first_label(&db);
    let o = tf(&db)
        .args(["query", "--flow", &label, "--format", "pcap"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read_recs(&o.stdout);
    assert_eq!(
        got,
        vec![
            orig[0].clone(),
            orig[2].clone(),
            orig[3].clone(),
            orig[5].clone()
        ]
    );
}

#[test]
fn several_captures_with_one_label_need_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = corpus();
    let conn = ingest_paths(
        &tmp.path().join("c.db"),
        &[
            dir.join("socks-http-example.pcap"),
            dir.join("variant-nsec-socks-http-example.pcap"),
        ],
        false,
    );
    let label = query::index(&conn, None).unwrap()[0].label.clone();
    let e = dump::select_label(&conn, None, &label).unwrap_err();
    assert!(e.to_string().contains("--capture"), "{e}");
    let id = query::resolve_capture(&conn, "variant-nsec-socks-http-example.pcap").unwrap();
    assert_eq!(
        dump::select_label(&conn, Some(id), &label)
            .unwrap()
            .capture_id,
        id
    );
    // --dump over the whole database: one sub-folder per capture.
    let out = tmp.path().join("all");
    let entries = dump_folder(&conn, None, &out, DumpFormat::Text).unwrap();
    assert!(entries
        .iter()
        .all(|e| e.capture.is_some() && Path::new(e.fpout.as_ref().unwrap()).is_file()));
    assert!(out.join("socks-http-example.pcap").is_dir());
    assert!(out.join("variant-nsec-socks-http-example.pcap").is_dir());
}

/// The frames `flows FILTER --pcap` must write, as mergecap would merge per-capture files: each capture's matching
/// frames in file order, the captures interleaved by picking the earliest next frame (ties: lower capture id).
/// The records come from the original files, read with pcap-parser.
fn merged_want(
    conn: &Db,
    filter: &str,
    originals: &mut std::collections::HashMap<i64, Vec<Rec>>,
) -> Vec<Rec> {
    let compiled = traceflow::filter::compile(&traceflow::filter::parse(filter, 0).unwrap());
    let sql = format!(
        "SELECT fr.capture_id, fr.number, fr.ts_ns, c.path FROM frames fr
         JOIN flows f ON f.capture_id = fr.capture_id AND f.flow_no = fr.flow_no
         JOIN captures c ON c.id = fr.capture_id
         WHERE {} ORDER BY fr.capture_id, fr.number",
        compiled.condition
    );
    let mut st = conn.sqlite().unwrap().prepare(&sql).unwrap();
    let mut per_cap: std::collections::BTreeMap<i64, (String, Vec<(i64, i64)>)> =
        Default::default();
    for r in st
        .query_map(rusqlite::params_from_iter(compiled.params.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap()
    {
        let (cid, n, ts, path) = r.unwrap();
        per_cap
            .entry(cid)
            .or_insert_with(|| (path, Vec::new()))
            .1
            .push((n, ts));
    }
    let mut at: std::collections::BTreeMap<i64, usize> = per_cap.keys().map(|&k| (k, 0)).collect();
    let mut out = Vec::new();
    loop {
        let next = per_cap
            .iter()
            .filter_map(|(cid, (_, fs))| fs.get(at[cid]).map(|&(n, ts)| (ts, *cid, n)))
            .min();
        let Some((_, cid, n)) = next else { break };
        *at.get_mut(&cid).unwrap() += 1;
        let path = &per_cap[&cid].0;
        let recs = originals
            .entry(cid)
            .or_insert_with(|| read_recs(&std::fs::read(path).unwrap()));
        out.push(recs[n as usize - 1].clone());
    }
    out
}

/// `flows FILTER --pcap/--pcapng`: one file with every frame of the matching flows of every capture, once each,
/// in time order, byte-identical to the originals (pcap-parser), and readable by tshark; pcap refuses frames of
/// several link types and leaves no file.
#[test]
fn flows_merge_matching_frames_into_one_capture() {
    let paths = corpus_paths();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.db");
    let conn = ingest_paths(&db, &paths, false);
    let mut originals = std::collections::HashMap::new();
    let flows = |args: &[&str]| {
        let out = tf(&db).arg("flows").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Everything, as pcapng: frames of all link types, across all captures.
    let all = tmp.path().join("all.pcapng");
    let (code, err) = flows(&["", "--pcapng", all.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let want = merged_want(&conn, "", &mut originals);
    let got = read_recs(&std::fs::read(&all).unwrap());
    assert!(want.len() > 6000, "{} frames", want.len());
    assert_eq!(got.len(), want.len(), "frame count");
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    if let Some(i) = first_diff {
        let show = |r: &Rec| format!("{}.{:09} lt{} len{}", r.sec, r.ns, r.linktype, r.caplen);
        panic!(
            "merged frame {i} differs: got {} want {} (next got {} want {})",
            show(&got[i]),
            show(&want[i]),
            show(&got[i + 1]),
            show(&want[i + 1])
        );
    }
    assert!(
        err.contains(&format!("wrote {} frames", want.len())),
        "{err}"
    );
    let lines = tool_ok(&[
        "/usr/bin/tshark",
        "-n",
        "-r",
        all.to_str().unwrap(),
        "-T",
        "fields",
        "-e",
        "frame.len",
    ])
    .unwrap();
    assert_eq!(
        lines.lines().count(),
        want.len(),
        "tshark reads every frame"
    );
    // One link type: pcap, over 40 Ethernet-only captures.
    // Port 80 flows come over Ethernet, Linux cooked and raw IP captures: pcap cannot hold them.
    let mixed = tmp.path().join("mixed.pcap");
    let (code, err) = flows(&["port 80", "--pcap", mixed.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--pcapng"), "{err}");
    assert!(!mixed.exists(), "a refused merge leaves no file");
    let ether: Vec<String> = conn.sqlite().unwrap()
        .prepare("SELECT DISTINCT c.name FROM captures c JOIN interfaces i ON i.capture_id = c.id GROUP BY c.id HAVING min(i.linktype) = 1 AND max(i.linktype) = 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(ether.len() > 50);
    let picked = ether
        .iter()
        .take(40)
        .map(|n| format!("capture {n:?}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let filter = format!("({picked}) and (port 80 or port 443 or syn)");
    let one = tmp.path().join("one.pcap");
    let (code, err) = flows(&[&filter, "--pcap", one.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let want = merged_want(&conn, &filter, &mut originals);
    assert!(want.len() > 100, "{} frames", want.len());
    let got = read_recs(&std::fs::read(&one).unwrap());
    assert_eq!(got.len(), want.len());
    assert_eq!(got.iter().zip(&want).position(|(a, b)| a != b), None);
    // --sort bytes --limit picks the biggest flows; they still come out in time order.
    let top = tmp.path().join("top.pcap");
    let (code, err) = flows(&[
        &filter,
        "--sort",
        "bytes",
        "--limit",
        "3",
        "--pcap",
        top.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let got = read_recs(&std::fs::read(&top).unwrap());
    let mut want_n: i64 = 0;
    let r = traceflow::store::read::search_flows(
        &conn,
        &traceflow::filter::compile(&traceflow::filter::parse(&filter, 0).unwrap()),
        traceflow::store::read::FlowSort::Bytes,
        Some(3),
        &mut |row| {
            want_n += row.packets;
            Ok(())
        },
    );
    r.unwrap();
    assert_eq!(got.len() as i64, want_n);
    assert!(got
        .windows(2)
        .all(|w| (w[0].sec, w[0].ns) <= (w[1].sec, w[1].ns)));
    // Nothing matches: a valid empty capture.
    let none = tmp.path().join("none.pcap");
    let (code, err) = flows(&[
        "port 1 and port 2 and port 3",
        "--pcap",
        none.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::metadata(&none).unwrap().len(), 24);
}
