//! Conformance: every capture in ../shared/conformance must give exactly the expected flow index.

use std::path::PathBuf;

use super::util::conformance as corpus;
use traceflow::store::read as query;
use traceflow::{ingest, store};

#[derive(serde::Deserialize)]
struct Expected {
    frames: i64,
    flows: Vec<ExpectedFlow>,
}

#[derive(serde::Deserialize, PartialEq, Debug)]
struct ExpectedFlow {
    label: String,
    index: Vec<u64>,
}

#[test]
fn every_conformance_capture_is_exact() {
    assert_corpus_exact(traceflow::trace::DEFAULT_MAX_OPEN);
}

/// With one open flow in memory, every other open flow is parked on disk and taken back when its key shows up
/// again: the index must not change at all.
#[test]
fn every_conformance_capture_is_exact_with_open_flows_parked() {
    assert_corpus_exact(1);
}

fn assert_corpus_exact(max_open_flows: usize) {
    let dir = corpus();
    let mut names: Vec<String> = std::fs::read_dir(dir.join("captures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| dir.join("expected").join(format!("{n}.json")).exists())
        .collect();
    names.sort();
    assert!(
        names.len() >= 200,
        "expected about 205 captures, found {}",
        names.len()
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut conn = store::Db::Sqlite(store::open(&tmp.path().join("c.db")).unwrap());
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join("captures").join(n)).collect();
    let opts = ingest::Options {
        jobs: 2,
        quiet: true,
        max_open_flows,
        ..Default::default()
    };
    let summary = ingest::run(&mut conn, &paths, &opts, &mut |m| eprintln!("{m}"));
    assert_eq!(summary.failed, 0, "some captures failed to ingest");

    // By id: a compressed variant of a capture is that capture (one content, several paths).
    let frames: std::collections::HashMap<i64, i64> = query::captures(&conn)
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.frames))
        .collect();
    let mut failures = Vec::new();
    for n in &names {
        let want: Expected = serde_json::from_str(
            &std::fs::read_to_string(dir.join("expected").join(format!("{n}.json"))).unwrap(),
        )
        .unwrap();
        let id = query::resolve_capture(&conn, n).unwrap();
        let got: Vec<ExpectedFlow> = query::index(&conn, Some(id))
            .unwrap()
            .into_iter()
            .map(|e| ExpectedFlow {
                label: e.label,
                index: e.index,
            })
            .collect();
        if frames.get(&id) != Some(&want.frames) {
            failures.push(format!(
                "{n}: frames {:?} want {}",
                frames.get(&id),
                want.frames
            ));
        }
        if got != want.flows {
            let at = got.iter().zip(&want.flows).position(|(g, w)| g != w);
            failures.push(format!(
                "{n}: {} flows (want {}), first difference at entry {:?}: got {:?} want {:?}",
                got.len(),
                want.flows.len(),
                at,
                at.and_then(|i| got.get(i)),
                at.and_then(|i| want.flows.get(i))
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "conformance (at most {max_open_flows} open flows in memory): {}/{} captures exact\n{}",
        names.len() - failures.len(),
        names.len(),
        failures.join("\n")
    );
    if let store::Db::Sqlite(c) = &conn {
        plain_sql_reads_the_same_labels(c, &tmp.path().join("c.db"));
    }
}

/// Schema 9 stores most labels as '' (see migrations/0009). What sqlite3, Datasette or a user's script reads
/// through the schema's `flows` view, on a connection traceflow never touched, is every label traceflow reads
/// (whose index was just checked against the corpus). Every corpus label is whole microseconds, so all are
/// derived here; ingest.rs has captures with stored ones.
fn plain_sql_reads_the_same_labels(ours: &rusqlite::Connection, path: &std::path::Path) {
    const SQL: &str = "SELECT capture_id, flow_no, label FROM flows ORDER BY capture_id, flow_no";
    let read = |c: &rusqlite::Connection| -> Vec<(i64, i64, String)> {
        c.prepare(SQL)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let plain =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (a, b) = (read(ours), read(&plain));
    assert!(a.len() > 900, "only {} flows", a.len());
    assert!(
        a == b,
        "the schema's flows view and traceflow's read different labels"
    );
    let derived: i64 = plain
        .query_row("SELECT count(*) FROM flow_rows WHERE label = ''", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(derived as usize, a.len(), "labels stored as ''");
}

/// The shared checker itself, against the binary, as the acceptance command runs it.
#[test]
fn shared_check_script_passes() {
    let dir = corpus();
    let out = std::process::Command::new("python3")
        .arg(dir.join("check.py"))
        .arg("--bin")
        .arg(env!("CARGO_BIN_EXE_traceflow"))
        .output()
        .expect("python3 is needed to run ../shared/conformance/check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    assert!(out.status.success(), "check.py failed:\n{stdout}");
    assert!(
        last.starts_with("conformance: ") && {
            let (a, b) = last["conformance: ".len()..]
                .split_once(' ')
                .unwrap()
                .0
                .split_once('/')
                .unwrap();
            a == b
        },
        "{last}"
    );
}
