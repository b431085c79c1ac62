//! Connections: the partition of TCP frames into connections against tshark's `tcp.stream`, the
//! Community ID against the PyPI `communityid` package, and Zeek's conn_state/history on hand-built captures.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use traceflow::synth::{eth_ipv4_tcp, Segment};
use traceflow::{ingest, store};

use super::util::{corpus, ingest as ingest_cli, pcap, run, T0};

/// The conformance corpus in one database (library ingest, two readers).
fn corpus_db(dir: &Path) -> (PathBuf, Vec<String>) {
    let db = dir.join("c.db");
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 200,
        "expected about 205 captures, found {}",
        names.len()
    );
    let mut conn = store::Db::Sqlite(store::open(&db).unwrap());
    let paths: Vec<PathBuf> = names.iter().map(|n| corpus().join(n)).collect();
    let opts = ingest::Options {
        jobs: 2,
        quiet: true,
        ..Default::default()
    };
    let s = ingest::run(&mut conn, &paths, &opts, &mut |m| eprintln!("{m}"));
    assert_eq!(s.failed, 0);
    // Connections are built afterwards, from the frame rows (`ingest --connections` with no files).
    traceflow::store::Target::of(&db)
        .build_connections()
        .unwrap();
    (db, names)
}

/// A partition: the sets of frame numbers, whatever their labels.
type Partition = BTreeSet<BTreeSet<u64>>;

fn partition(pairs: impl IntoIterator<Item = (String, u64)>) -> Partition {
    let mut groups: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (k, n) in pairs {
        groups.entry(k).or_default().insert(n);
    }
    groups.into_values().collect()
}

/// tshark's `-T fields` output for every TCP frame of `capture`, with the options the corpus was made with (its
/// README: defragmentation off; and no reassembly, so each frame is its own TCP segment). A TCP header quoted in
/// an ICMP error is not a TCP packet (the corpus README), though tshark numbers its stream: left out.
fn tshark_tcp_fields(capture: &Path, fields: &[&str]) -> String {
    let mut c = Command::new("tshark");
    c.args([
        "-n",
        "-o",
        "tcp.desegment_tcp_streams:FALSE",
        "-o",
        "ip.defragment:FALSE",
    ])
    .args([
        "-o",
        "ipv6.defragment:FALSE",
        "-Y",
        "tcp and not icmp and not icmpv6",
        "-T",
        "fields",
    ]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c
        .args(["-E", "occurrence=l", "-r"])
        .arg(capture)
        .output()
        .expect("tshark runs (scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tshark's `tcp.stream` of every TCP frame.
fn tshark_streams(capture: &Path) -> Partition {
    let text = tshark_tcp_fields(capture, &["frame.number", "tcp.stream"]);
    partition(text.lines().filter_map(|l| {
        let (n, s) = l.split_once('\t')?;
        Some((s.to_string(), n.parse().ok()?))
    }))
}

fn our_streams(db: &Connection, name: &str) -> Partition {
    let mut st = db
        .prepare(
            "SELECT fr.conn_no, fr.number FROM frames fr
             WHERE fr.capture_id = (SELECT capture_id FROM capture_paths WHERE name = ?1)
               AND fr.conn_no IS NOT NULL",
        )
        .unwrap();
    let rows = st
        .query_map([name], |r| {
            Ok((r.get::<_, i64>(0)?.to_string(), r.get::<_, i64>(1)? as u64))
        })
        .unwrap();
    partition(rows.map(|r| r.unwrap()))
}

/// Captures whose partition cannot match tshark's, with the reason. None: every conformance capture matches.
const TCP_STREAM_EXCEPTIONS: &[(&str, &str)] = &[];

#[test]
fn connections_are_tsharks_tcp_streams_on_every_conformance_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, names) = corpus_db(tmp.path());
    let conn = Connection::open(&db).unwrap();
    let ours: Vec<(String, Partition)> = names
        .iter()
        .map(|n| (n.clone(), our_streams(&conn, n)))
        .collect();
    // tshark is the slow part: two at a time (the machine has two cores).
    let (left, right) = ours.split_at(ours.len() / 2);
    let check = |part: &[(String, Partition)]| -> Vec<String> {
        part.iter()
            .filter(|(n, _)| !TCP_STREAM_EXCEPTIONS.iter().any(|(x, _)| x == n))
            .filter_map(|(n, mine)| {
                let theirs = tshark_streams(&corpus().join(n));
                (mine != &theirs).then(|| {
                    format!(
                        "{n}: {} connections here, {} tcp.stream in tshark",
                        mine.len(),
                        theirs.len()
                    )
                })
            })
            .collect()
    };
    let (mut bad, more) = std::thread::scope(|s| {
        let h = s.spawn(|| check(right));
        (check(left), h.join().unwrap())
    });
    bad.extend(more);
    let total: usize = ours.iter().map(|(_, p)| p.len()).sum();
    assert!(
        total > 300,
        "the corpus has hundreds of connections, found {total}"
    );
    assert!(
        bad.is_empty(),
        "partitions differ from tshark's tcp.stream:\n{}",
        bad.join("\n")
    );
}

/// The PyPI package `communityid` (Corelight's reference implementation; scripts/test.sh installs it) over
/// every flow and connection of the corpus, with seed 0, and over one capture ingested with seed 7.
#[test]
fn community_ids_are_the_communityid_packages_on_every_conformance_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = corpus_db(tmp.path());
    let seeded = tmp.path().join("seeded.db");
    let one = corpus().join("http-100-continue.pcap");
    let one = if one.exists() {
        one
    } else {
        // Any capture with flows will do.
        std::fs::read_dir(corpus())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    let r = ingest_cli(&seeded, &["-q", "--community-id-seed", "7"], &[&one]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    const ORACLE: &str = r#"
import sqlite3, sys
try:
    import communityid
except ImportError:
    sys.exit("the PyPI package communityid is missing: run scripts/test.sh, which installs it")
checked = bad = 0
for path in sys.argv[1:]:
    db = sqlite3.connect(path)
    rows = db.execute("""SELECT c.community_id_seed, f.src, f.sport, f.dst, f.dport, f.community_id
                         FROM flows f JOIN captures c ON c.id = f.capture_id
                         UNION ALL
                         SELECT c.community_id_seed, x.orig_h, x.orig_p, x.resp_h, x.resp_p, x.community_id
                         FROM connections x JOIN captures c ON c.id = x.capture_id""").fetchall()
    cids = {}
    for seed, src, sport, dst, dport, got in rows:
        cid = cids.setdefault(seed, communityid.CommunityID(seed=seed))
        want = cid.calc(communityid.FlowTuple.make_tcp(src, dst, sport, dport))
        checked += 1
        if want != got:
            bad += 1
            print("%s: %s:%d -> %s:%d seed %d: %s, communityid says %s" % (path, src, sport, dst, dport, seed, got, want))
print("checked %d" % checked)
sys.exit(1 if bad else 0)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(ORACLE)
        .arg(&db)
        .arg(&seeded)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: u64 = stdout
        .trim()
        .strip_prefix("checked ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(checked > 1000, "only {checked} IDs checked");
    let c = Connection::open(&seeded).unwrap();
    let seed: i64 = c
        .query_row("SELECT community_id_seed FROM captures", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seed, 7, "the seed is recorded per capture");
}

#[test]
fn both_directions_and_their_connection_share_one_community_id() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, _) = corpus_db(tmp.path());
    let c = Connection::open(&db).unwrap();
    let mut st = c
        .prepare("SELECT capture_id, community_id, flows FROM connections")
        .unwrap();
    let rows: Vec<(i64, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let mut two_way = 0;
    for (cap, cid, flows) in &rows {
        let nos: Vec<i64> = flows.split(',').map(|f| f.parse().unwrap()).collect();
        let mut dirs = BTreeSet::new();
        for no in &nos {
            let (fcid, src, sport): (String, String, i64) = c
                .query_row(
                    "SELECT community_id, src, sport FROM flows WHERE capture_id = ?1 AND flow_no = ?2",
                    [*cap, *no],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!(&fcid, cid, "flow {no} of capture {cap}");
            dirs.insert((src, sport));
        }
        two_way += usize::from(dirs.len() == 2);
    }
    assert!(
        two_way > 300,
        "only {two_way} connections with both directions"
    );
}

/// A hand-built conversation between 10.0.0.1:40000 (A) and 10.0.0.2:80 (B).
struct Talk {
    frames: Vec<(i64, Vec<u8>)>,
}

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

impl Talk {
    fn new() -> Talk {
        Talk { frames: Vec::new() }
    }

    /// A frame from A (`from_a`) or B, with these flags, sequence number and payload.
    fn seg(mut self, from_a: bool, flags: u8, seq: u32, payload: &[u8]) -> Talk {
        let (src, sport, dst, dport) = if from_a {
            (A, 40000, B, 80)
        } else {
            (B, 80, A, 40000)
        };
        let f = eth_ipv4_tcp(&Segment {
            src,
            sport,
            dst,
            dport,
            seq,
            ack: 1,
            flags,
            payload,
        });
        let t = T0 + self.frames.len() as i64 * 1_000_000;
        self.frames.push((t, f));
        self
    }

    fn a(self, flags: u8, seq: u32, payload: &[u8]) -> Talk {
        self.seg(true, flags, seq, payload)
    }

    fn b(self, flags: u8, seq: u32, payload: &[u8]) -> Talk {
        self.seg(false, flags, seq, payload)
    }

    /// The three-way handshake, A to B.
    fn handshake(self) -> Talk {
        self.a(SYN, 100, b"")
            .b(SYN | ACK, 500, b"")
            .a(ACK, 101, b"")
    }

    /// Ingests the capture and returns its connections' (orig, state, history) and each frame's connection.
    fn connections(self) -> (Vec<(String, String, String)>, Vec<i64>) {
        let tmp = tempfile::tempdir().unwrap();
        let cap = tmp.path().join("t.pcap");
        std::fs::write(&cap, pcap(1, 65535, &self.frames)).unwrap();
        let db = tmp.path().join("t.db");
        // Tracked while reading (--connections): the hand-built cases check the tracker itself.
        let r = ingest_cli(&db, &["-q", "--connections"], &[&cap]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let c = Connection::open(&db).unwrap();
        let mut st = c
            .prepare("SELECT orig_h || ':' || orig_p, conn_state, history FROM connections ORDER BY conn_no")
            .unwrap();
        let conns = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut st = c
            .prepare("SELECT conn_no FROM frames ORDER BY number")
            .unwrap();
        let per_frame = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        (conns, per_frame)
    }

    /// The one connection's (state, history), with A as the originator.
    fn state(self) -> (String, String) {
        let (conns, _) = self.connections();
        assert_eq!(conns.len(), 1, "{conns:?}");
        let (orig, state, history) = conns.into_iter().next().unwrap();
        assert_eq!(orig, "10.0.0.1:40000");
        (state, history)
    }
}

fn sh(state: &str, history: &str) -> (String, String) {
    (state.to_string(), history.to_string())
}

#[test]
fn zeek_conn_states_on_hand_built_connections() {
    // S0: a SYN, no reply.
    assert_eq!(Talk::new().a(SYN, 100, b"").state(), sh("S0", "S"));
    // A repeated SYN with the same sequence number is one 's'; the connection is still one.
    assert_eq!(
        Talk::new().a(SYN, 100, b"").a(SYN, 100, b"").state(),
        sh("S0", "S")
    );
    // REJ: SYN answered by RST.
    assert_eq!(
        Talk::new().a(SYN, 100, b"").b(RST | ACK, 0, b"").state(),
        sh("REJ", "Sr")
    );
    // S1: established, data both ways, not closed.
    let s1 = Talk::new()
        .handshake()
        .a(PSH | ACK, 101, b"GET /")
        .b(PSH | ACK, 501, b"200 OK");
    assert_eq!(s1.state(), sh("S1", "ShADd"));
    // SF: closed by both.
    let sf = Talk::new()
        .handshake()
        .a(PSH | ACK, 101, b"GET /")
        .b(PSH | ACK, 501, b"200 OK")
        .a(FIN | ACK, 106, b"")
        .b(FIN | ACK, 507, b"")
        .a(ACK, 107, b"");
    assert_eq!(sf.state(), sh("SF", "ShADdFf"));
    // S2: established, FIN from the originator only; S3: from the responder only.
    assert_eq!(
        Talk::new().handshake().a(FIN | ACK, 101, b"").state(),
        sh("S2", "ShAF")
    );
    assert_eq!(
        Talk::new().handshake().b(FIN | ACK, 501, b"").state(),
        sh("S3", "ShAf")
    );
    // RSTO / RSTR: established, then a RST from the originator / the responder.
    assert_eq!(
        Talk::new().handshake().a(RST, 101, b"").state(),
        sh("RSTO", "ShAR")
    );
    assert_eq!(
        Talk::new().handshake().b(RST, 501, b"").state(),
        sh("RSTR", "ShAr")
    );
    // RSTOS0: a SYN then a RST from the originator, nothing from the responder.
    assert_eq!(
        Talk::new().a(SYN, 100, b"").a(RST, 101, b"").state(),
        sh("RSTOS0", "SR")
    );
    // SH: a SYN then a FIN from the originator, nothing from the responder.
    assert_eq!(
        Talk::new().a(SYN, 100, b"").a(FIN, 101, b"").state(),
        sh("SH", "SF")
    );
    // Midstream (no SYN seen): the first frame's sender is the originator.
    // OTH: data both ways.
    assert_eq!(
        Talk::new()
            .a(PSH | ACK, 7, b"x")
            .b(PSH | ACK, 9, b"y")
            .state(),
        sh("OTH", "Dd")
    );
    // SHR: the responder closes, the originator only ever spoke midstream.
    assert_eq!(
        Talk::new().a(ACK, 7, b"").b(FIN | ACK, 9, b"").state(),
        sh("SHR", "Af")
    );
    // RSTRH: the responder resets, the originator only spoke midstream.
    assert_eq!(
        Talk::new().a(ACK, 7, b"").b(RST, 9, b"").state(),
        sh("RSTRH", "Ar")
    );
    // B spoke first, midstream, from port 80: Zeek makes A the originator at once (a likely server port sent
    // it: TCPAnalyzer::WantConnection), and records the flip as '^'.
    // (B's ACK of 1 sets A's base sequence number to 0, so a SYN with 0 is not a new connection.)
    let (conns, _) = Talk::new().b(ACK, 9, b"").a(SYN, 0, b"").connections();
    assert_eq!(conns[0].0, "10.0.0.1:40000");
    assert_eq!(conns[0].2, "^aS");
    // Multi-flag and inconsistent packets: 'q' (SYN+FIN), 'i' (FIN+RST), each once.
    let (_, h) = Talk::new()
        .a(SYN | FIN, 100, b"")
        .a(SYN | FIN, 100, b"")
        .a(FIN | RST, 100, b"")
        .state();
    assert_eq!(h, "QI");
}

#[test]
fn a_syn_with_a_new_sequence_number_starts_a_new_connection_as_in_tshark() {
    let t = Talk::new()
        .handshake()
        .a(FIN | ACK, 101, b"")
        .b(FIN | ACK, 501, b"")
        .a(ACK, 102, b"")
        // Same ports, new initial sequence number: port reuse, a new tcp.stream.
        .a(SYN, 9000, b"")
        .b(SYN | ACK, 7000, b"")
        // Same sequence number as that SYN: a retransmission, same connection.
        .a(SYN, 9000, b"");
    let (conns, per_frame) = t.connections();
    assert_eq!(per_frame, vec![1, 1, 1, 1, 1, 1, 2, 2, 2]);
    assert_eq!(
        conns.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
        vec!["SF", "S1"]
    );
    // The partition is tshark's.
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("t.pcap");
    let t = Talk::new()
        .handshake()
        .a(FIN | ACK, 101, b"")
        .b(FIN | ACK, 501, b"")
        .a(ACK, 102, b"")
        .a(SYN, 9000, b"")
        .b(SYN | ACK, 7000, b"")
        .a(SYN, 9000, b"");
    std::fs::write(&cap, pcap(1, 65535, &t.frames)).unwrap();
    let want = partition((1..=9u64).map(|n| ((if n <= 6 { "0" } else { "1" }).to_string(), n)));
    assert_eq!(tshark_streams(&cap), want);
}

#[test]
fn the_migration_gives_old_flows_their_community_id() {
    // A version-3 database made by hand with one flow, opened by this build.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("old.db");
    {
        let c = Connection::open(&db).unwrap();
        for sql in [
            include_str!("../../migrations/0001_init.sql"),
            include_str!("../../migrations/0002_label_in_flows.sql"),
        ] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch(
            "ALTER TABLE flows ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE flows ADD COLUMN src_key BLOB; ALTER TABLE flows ADD COLUMN dst_key BLOB;
             INSERT INTO captures (id, name, path, size) VALUES (1, 'x.pcap', '/x.pcap', 0);
             INSERT INTO flows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame,
                                packets, bytes, payload_bytes, first_ns, last_ns)
             VALUES (1, 1, 'l', '66.35.250.204', 80, '128.232.110.120', 34855, 1, 1, 1, 60, 0, 0, 0);
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    store::open(&db).unwrap();
    let c = Connection::open(&db).unwrap();
    let cid: String = c
        .query_row("SELECT community_id FROM flows", [], |r| r.get(0))
        .unwrap();
    // The spec's baseline vector for this key (baseline/baseline_deflt.json).
    assert_eq!(cid, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v as usize, store::SCHEMA_VERSION);
}

/// Frames as (time, length), as tshark prints them.
type Frames = Vec<(String, u64)>;

/// tshark's view of a capture: each TCP frame's stream, and each stream's frames as (time, length).
fn tshark_frames(capture: &Path) -> (BTreeMap<u64, String>, BTreeMap<String, Frames>) {
    let text = tshark_tcp_fields(
        capture,
        &[
            "frame.number",
            "tcp.stream",
            "frame.time_epoch",
            "frame.len",
        ],
    );
    let (mut of, mut streams) = (
        BTreeMap::new(),
        BTreeMap::<String, Vec<(String, u64)>>::new(),
    );
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        let n: u64 = f[0].parse().unwrap();
        of.insert(n, f[1].to_string());
        streams
            .entry(f[1].to_string())
            .or_default()
            .push((f[2].to_string(), f[3].parse().unwrap()));
    }
    (of, streams)
}

/// A dump's frames as (time, length), read back by tshark.
fn dumped(file: &Path) -> Vec<(String, u64)> {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "frame.len",
            "-r",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark cannot read {}",
        file.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (t, n) = l.split_once('\t').unwrap();
            (t.to_string(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn both_dumps_hold_tsharks_tcp_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("b.db");
    let names = [
        "tcp_handshake_synthetic.pcap",
        "http-100-continue.pcap",
        "gtp-iphone.pcap",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| corpus().join(n)).collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    assert_eq!(ingest_cli(&db, &["-q", "--connections"], &refs).code, 0);
    for (name, path) in names.iter().zip(&paths) {
        let (stream_of, streams) = tshark_frames(path);
        let index = run(&db, &["query", "--capture", name, "--format", "json"]);
        let index: serde_json::Value = serde_json::from_str(&index.stdout).unwrap();
        let mut labels = BTreeSet::new();
        for e in index.as_array().unwrap() {
            let label = e["label"].as_str().unwrap().to_string();
            if !labels.insert(label.clone()) {
                continue;
            }
            // The streams of the label's frames, all of them, in frame order.
            let want_streams: BTreeSet<&String> = index
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["label"] == e["label"])
                .flat_map(|x| x["index"].as_array().unwrap().iter())
                .map(|n| &stream_of[&n.as_u64().unwrap()])
                .collect();
            let file = tmp.path().join("x.pcap");
            let r = run(
                &db,
                &[
                    "query",
                    "--capture",
                    name,
                    "--flow",
                    &label,
                    "--both",
                    "-o",
                    file.to_str().unwrap(),
                ],
            );
            assert_eq!(r.code, 0, "{}", r.stderr);
            let got = dumped(&file);
            let want: Vec<(String, u64)> = {
                // Frame order across the streams: merge by frame number.
                let mut all: Vec<(u64, &String)> = stream_of
                    .iter()
                    .filter(|(_, s)| want_streams.contains(s))
                    .map(|(n, s)| (*n, s))
                    .collect();
                all.sort();
                let mut next: BTreeMap<&String, usize> = BTreeMap::new();
                all.iter()
                    .map(|(_, s)| {
                        let i = next.entry(s).or_insert(0);
                        *i += 1;
                        streams[*s][*i - 1].clone()
                    })
                    .collect()
            };
            assert_eq!(got, want, "{name}: {label} --both");
        }
        // --dump --both: one file per connection, each one tcp.stream.
        let dir = tmp.path().join(format!("d-{name}"));
        let r = run(
            &db,
            &[
                "query",
                "--capture",
                name,
                "--dump",
                dir.to_str().unwrap(),
                "--both",
                "--format",
                "pcap",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let files: BTreeSet<Vec<(String, u64)>> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| dumped(&e.unwrap().path()))
            .collect();
        let want: BTreeSet<Vec<(String, u64)>> = streams.values().cloned().collect();
        assert_eq!(files, want, "{name}: --dump --both");
    }
}

/// Connections built at first use from the frame rows are exactly those tracked while reading (`ingest
/// --connections`); so are those of a schema-3 database (made by downgrading one of this build) once migrated.
#[test]
fn connections_built_later_or_after_the_migration_are_those_tracked_while_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("m.db");
    let lazy = tmp.path().join("lazy.db");
    let names = [
        "tcp_handshake_synthetic.pcap",
        "http-100-continue.pcap",
        "gtp-iphone.pcap",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| corpus().join(n)).collect();
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    assert_eq!(ingest_cli(&db, &["-q", "--connections"], &refs).code, 0);
    assert_eq!(ingest_cli(&lazy, &["-q"], &refs).code, 0);
    type Rows = (Vec<Vec<String>>, Vec<(i64, i64, Option<i64>)>);
    let dump = |c: &Connection| -> Rows {
        let mut st = c
            .prepare("SELECT * FROM connections ORDER BY capture_id, conn_no")
            .unwrap();
        let n = st.column_count();
        let conns = st
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>())
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut st = c
            .prepare("SELECT capture_id, number, conn_no FROM frames ORDER BY 1, 2")
            .unwrap();
        let frames = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        (conns, frames)
    };
    let before = dump(&Connection::open(&db).unwrap());
    assert!(before.0.len() > 10);
    // A read command does not build them (it names the command that does, and leaves the file as it was)...
    let file = |p: &Path| std::fs::read(p).unwrap();
    let untouched = file(&lazy);
    let refused = run(&lazy, &["connections", "--count"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.lines().count() == 1
            && refused
                .stderr
                .contains("3 captures of the database have no connections")
            && refused.stderr.contains("ingest --connections`"),
        "{}",
        refused.stderr
    );
    assert!(file(&lazy) == untouched, "a read command wrote");
    // ...which builds from the frame rows exactly what tracking them while reading gives.
    let built = ingest_cli(&lazy, &["--connections"], &[]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(
        built.stderr.contains("connections built for 3 captures"),
        "{}",
        built.stderr
    );
    let counted = run(&lazy, &["connections", "--count"]);
    assert_eq!(
        counted.stdout.trim(),
        before.0.len().to_string(),
        "{}",
        counted.stderr
    );
    assert!(
        dump(&Connection::open(&lazy).unwrap()) == before,
        "built from the frame rows"
    );
    assert!(before.0.len() > 10);
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "DROP TRIGGER captures_delete_rows; DROP VIEW flow_list; DROP VIEW capture_list;
             DROP VIEW flows; PRAGMA legacy_alter_table = ON; ALTER TABLE flow_rows RENAME TO flows;
             DROP VIEW endpoints; DROP TABLE endpoint_protocols; ALTER TABLE captures DROP COLUMN has_endpoints;
             DROP TABLE flow_buckets; ALTER TABLE captures DROP COLUMN has_buckets;
             DROP TABLE connection_flows; DROP TABLE connections; ALTER TABLE frames DROP COLUMN conn_no;
             ALTER TABLE flows DROP COLUMN community_id; ALTER TABLE captures DROP COLUMN community_id_seed;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    store::open(&db).unwrap();
    traceflow::store::Target::of(&db)
        .build_connections()
        .unwrap();
    let after = dump(&Connection::open(&db).unwrap());
    assert_eq!(after.0, before.0, "connections rows");
    assert_eq!(after.1, before.1, "frames.conn_no");
}
