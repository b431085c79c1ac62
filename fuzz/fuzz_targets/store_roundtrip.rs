//! The store round trip: a capture ingested into a database (reader, tracer, writer) must give back, through SQL
//! alone, the index tuple that tracing it directly gives, and dumps holding exactly each label's frames.
//!
//! Input: a capture (pcap or pcapng, plain, gzip or zstd), so the conformance captures are a corpus as they are.
//! The ingest's options come from the length, to keep the bytes a plain capture: `--max-open-flows` is
//! 1, 2, 3, 8 or the default (len % 5), and `--embed` is on when len / 5 is even.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use traceflow::dump::{self, DumpFormat, DumpOptions};
use traceflow::store::read as query;
use traceflow::trace::DEFAULT_MAX_OPEN;

/// Labels whose dumps are checked per input (each dump re-reads the capture).
const MAX_DUMPS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let max_open = [1, 2, 3, 8, DEFAULT_MAX_OPEN][data.len() % 5];
    let embed = (data.len() / 5) % 2 == 0;
    let path = common::scratch().join("input.cap");
    std::fs::write(&path, data).expect("writing the capture");

    let want = common::trace(data);
    let mut conn = common::memory_db();
    let outcome = common::ingest(&mut conn, &path, embed, max_open);
    let Some(want) = want else {
        assert!(matches!(outcome, common::Ingested::Failed(_)), "not a capture, yet {outcome:?}");
        return;
    };
    let common::Ingested::Indexed(id, row) = outcome else {
        panic!("a capture that reads was not indexed: {outcome:?}");
    };
    let n = want.frames.len() as i64;
    assert_eq!(
        row,
        (n, want.tcp_frames as i64, want.flows as i64, want.truncation.as_ref().map(|t| t.offset as i64)),
        "captures row: frames, tcp_frames, flows, truncated_at"
    );
    let rows: (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM frames WHERE capture_id = ?1),
                    (SELECT count(*) FROM flows WHERE capture_id = ?1),
                    (SELECT count(*) FROM frame_data WHERE capture_id = ?1)",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows, (n, want.flows as i64, if embed { n } else { 0 }), "rows of frames, flows, frame_data");

    // The index from SQL alone, as `traceflow query` prints it.
    let got: Vec<(String, Vec<u64>)> = query::index(&conn, Some(id))
        .expect("query::index")
        .into_iter()
        .map(|e| (e.label, e.index))
        .collect();
    assert_eq!(got, want.index, "index tuple from the database vs from the tracer (max_open {max_open})");
    let all = query::index(&conn, None).expect("query::index over every capture");
    assert_eq!(all.len(), got.len());
    assert!(all.iter().all(|e| e.capture.as_deref() == Some("input.cap")));
    let mut json = Vec::new();
    traceflow::cli::output::write_index_json(&conn, Some(id), false, &mut json).expect("write_index_json");
    let json: serde_json::Value = serde_json::from_slice(&json).expect("the index is JSON");
    let entries = query::index(&conn, Some(id)).unwrap();
    assert_eq!(json, serde_json::to_value(&entries).unwrap(), "write_index_json vs index");

    // Each label's dump holds exactly its frames, in index order.
    let groups = dump::capture_groups(&conn, id).expect("capture_groups");
    let by_label = want.by_label();
    assert_eq!(
        groups.iter().map(|g| g.label.as_str()).collect::<Vec<_>>(),
        by_label.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(),
        "capture_groups: every label once, in index order"
    );
    let opts = DumpOptions::new(DumpFormat::Pcapng);
    for (g, (label, numbers)) in groups.iter().zip(&by_label).take(MAX_DUMPS) {
        let mut out = Vec::new();
        if let Err(e) = dump::write_group(&conn, g, &opts, &mut out, "fuzz") {
            panic!("dumping {label:?} (embed {embed}): {e}");
        }
        let frames = common::reread(&out);
        let expected: Vec<(u32, Vec<u8>)> =
            numbers.iter().map(|&n| want.frames[n as usize - 1].clone()).collect();
        assert_eq!(frames, expected, "the dump of {label:?} (embed {embed})");
    }
});
