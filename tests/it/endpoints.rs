//! Endpoints: every IP address of a capture, whatever its protocol, against tshark's
//! `-z endpoints,ip` / `-z endpoints,ipv6` on the corpus, and the questions the table is for.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use rusqlite::Connection;
use traceflow::synth::{eth_ipv4_tcp, Segment};

use super::util::{corpus, count, ingest, pcap, T0};

/// Address -> (frames, bytes).
type Tally = BTreeMap<String, (i64, i64)>;

/// tshark's IPv4 and IPv6 endpoint tables of `capture`, defragmentation off as the corpus was made.
fn tshark_endpoints(capture: &Path) -> Tally {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "ip.defragment:FALSE",
            "-o",
            "ipv6.defragment:FALSE",
            "-q",
        ])
        .args(["-z", "endpoints,ip", "-z", "endpoints,ipv6", "-r"])
        .arg(capture)
        .output()
        .expect("tshark runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Rows are "address packets bytes tx_packets tx_bytes rx_packets rx_bytes".
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (frames, bytes) = (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?);
            (f.len() == 7).then(|| (f[0].to_owned(), (frames, bytes)))
        })
        .collect()
}

fn ours(conn: &Connection, capture_id: i64) -> Tally {
    let mut st = conn
        .prepare("SELECT address, frames, bytes FROM endpoints WHERE capture_id = ?1")
        .unwrap();
    st.query_map([capture_id], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn endpoints_match_tshark_on_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let r = ingest(&db, &["-q"], &[&corpus()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let conn = Connection::open(&db).unwrap();
    let captures: Vec<(i64, String)> = conn
        .prepare("SELECT id, path FROM captures ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(captures.len() >= 200, "{} captures", captures.len());
    assert_eq!(
        count(&db, "SELECT count(*) FROM captures WHERE has_endpoints = 0"),
        0
    );
    // Two tshark processes at once: 2 cores.
    let half = captures.len() / 2;
    let (a, b) = captures.split_at(half);
    let theirs: Vec<Tally> = std::thread::scope(|s| {
        let job = |part: &[(i64, String)]| -> Vec<Tally> {
            part.iter()
                .map(|(_, p)| tshark_endpoints(Path::new(p)))
                .collect()
        };
        let second = s.spawn(move || job(b));
        let mut v = job(a);
        v.extend(second.join().unwrap());
        v
    });
    let mut addresses = 0;
    for ((id, path), want) in captures.iter().zip(&theirs) {
        assert_eq!(&ours(&conn, *id), want, "{path}");
        addresses += want.len();
    }
    assert!(addresses > 1000, "only {addresses} addresses in the corpus");
}

/// Ethernet, IPv4 from `src` to `dst` carrying `proto`, with an 8-byte body.
fn eth_ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
    f
}

#[test]
fn a_host_that_sent_no_tcp_is_found_and_forgetting_the_capture_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (quiet, dns) = (Ipv4Addr::new(192, 0, 2, 7), Ipv4Addr::new(192, 0, 2, 53));
    let tcp = eth_ipv4_tcp(&Segment {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
        sport: 1000,
        dport: 80,
        seq: 1,
        ack: 0,
        flags: 0x02,
        payload: b"",
    });
    let frames = vec![
        (T0, eth_ipv4(quiet, dns, 17)),
        (T0 + 1, eth_ipv4(dns, quiet, 17)),
        (T0 + 2, eth_ipv4(quiet, dns, 1)),
        (T0 + 3, tcp),
    ];
    let cap = dir.path().join("dns.pcap");
    std::fs::write(&cap, pcap(1, 65535, &frames)).unwrap();
    let db = dir.path().join("e.db");
    let r = ingest(&db, &["-q"], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let conn = Connection::open(&db).unwrap();
    // No flow names the host: flows are TCP only.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM flows WHERE src = '192.0.2.7' OR dst = '192.0.2.7'"
        ),
        0
    );
    let row: (String, i64, i64, String) = conn
        .query_row(
            "SELECT capture, frames, bytes, protocols FROM endpoints WHERE address = ?1",
            ["192.0.2.7"],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(row, ("dns.pcap".into(), 3, 3 * 42, "ICMP,UDP".into()));
    assert_eq!(count(&db, "SELECT count(*) FROM endpoints"), 4);
    conn.execute("DELETE FROM captures", []).unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM endpoint_protocols"), 0);
}

#[test]
fn a_tally_larger_than_memory_holds_is_handed_on_and_added_up() {
    // 300,000 distinct sources pass the 262,144 held before a hand-on; the first 1,000 come back after it.
    let dir = tempfile::tempdir().unwrap();
    let sink = Ipv4Addr::new(192, 0, 2, 1);
    let src = |i: u32| Ipv4Addr::from(0x0A00_0000 + i);
    let mut frames: Vec<(i64, Vec<u8>)> = (0..300_000u32)
        .map(|i| (T0 + i as i64, eth_ipv4(src(i), sink, 17)))
        .collect();
    frames.extend((0..1_000u32).map(|i| (T0 + 400_000 + i as i64, eth_ipv4(src(i), sink, 17))));
    let cap = dir.path().join("many.pcap");
    std::fs::write(&cap, pcap(1, 65535, &frames)).unwrap();
    let db = dir.path().join("e.db");
    let r = ingest(&db, &["-q"], &[&cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        count(&db, "SELECT count(*) FROM endpoint_protocols"),
        300_001
    );
    assert_eq!(
        count(
            &db,
            "SELECT frames FROM endpoints WHERE address = '192.0.2.1'"
        ),
        301_000
    );
    assert_eq!(
        count(
            &db,
            "SELECT frames FROM endpoints WHERE address = '10.0.0.0'"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT frames FROM endpoints WHERE address = '10.0.3.232'"
        ),
        1
    );
}
