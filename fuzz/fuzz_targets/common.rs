//! Helpers shared by the database targets (`store_roundtrip`, `query_db`): tracing a capture directly, ingesting
//! it through the real reader and writer, reading a dump back.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use traceflow::capture::{CaptureReader, Truncation};
use traceflow::decode::decode;
use traceflow::ingest::{self, Options};
use traceflow::store;
use traceflow::trace::Tracer;

/// A folder of this process's own under the temporary directory (several fuzzers may run at once).
pub fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("traceflow-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch folder");
        d
    })
}

/// What tracing a capture directly gives: the index tuple and everything a database should then hold.
#[derive(Debug, Default)]
pub struct Traced {
    /// (label, frame numbers): open flows in creation order, then closed flows in closing order.
    pub index: Vec<(String, Vec<u64>)>,
    /// Every frame's (origlen, bytes), by number - 1.
    pub frames: Vec<(u32, Vec<u8>)>,
    pub tcp_frames: u64,
    pub flows: u32,
    pub truncation: Option<Truncation>,
}

impl Traced {
    /// The frames of each label's dump, in index order (flow by flow, each in frame order).
    pub fn by_label(&self) -> Vec<(String, Vec<u64>)> {
        let mut out: Vec<(String, Vec<u64>)> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (label, frames) in &self.index {
            match at.get(label.as_str()) {
                Some(&i) => out[i].1.extend(frames),
                None => {
                    at.insert(label, out.len());
                    out.push((label.clone(), frames.clone()));
                }
            }
        }
        out
    }
}

/// Reads, decodes and traces `bytes` with the in-memory tracer; `None` if they are no capture.
pub fn trace(bytes: &[u8]) -> Option<Traced> {
    let mut r = CaptureReader::from_reader(Box::new(Cursor::new(bytes.to_vec()))).ok()?;
    let mut t = Tracer::new();
    let mut member: Vec<(u32, u64)> = Vec::new();
    let mut closed = Vec::new();
    let mut out = Traced::default();
    while let Some(f) = r.next_frame() {
        out.frames.push((f.origlen, f.data.to_vec()));
        if let Some(tcp) = decode(f.linktype, f.data).tcp {
            out.tcp_frames += 1;
            let no = t.observe(f.number, &f.ts, f.origlen, &tcp, &mut |rec| closed.push(rec));
            member.push((no, f.number));
        }
    }
    out.flows = t.created();
    let mut open = Vec::new();
    t.finish(&mut |rec| open.push(rec)).expect("in-memory tracer");
    let mut of_flow: HashMap<u32, Vec<u64>> = HashMap::new();
    for (no, n) in member {
        of_flow.entry(no).or_default().push(n);
    }
    out.index = open
        .iter()
        .chain(closed.iter())
        .map(|rec| (rec.label.clone(), of_flow.remove(&rec.flow_no).unwrap_or_default()))
        .collect();
    out.truncation = r.truncation().cloned();
    Some(out)
}

thread_local! {
    /// An empty database with the schema, made once by `store::open`.
    static EMPTY: Connection = store::open(Path::new(":memory:")).expect("in-memory database");
}

/// An empty traceflow database in memory: a copy of one `store::open` made (migrating a new database for each
/// input took a tenth of the time).
pub fn memory_db() -> Connection {
    EMPTY.with(|from| copy_db(from))
}

/// A copy of the in-memory database `from`, through SQLite's backup API.
pub fn copy_db(from: &Connection) -> Connection {
    let mut to = Connection::open_in_memory().expect("in-memory database");
    // An in-memory destination must have the source's page size (store::open makes 64 KiB pages).
    let size: i64 = from.pragma_query_value(None, "page_size", |r| r.get(0)).unwrap();
    to.pragma_update(None, "page_size", size).unwrap();
    rusqlite::backup::Backup::new(from, &mut to)
        .expect("backup")
        .run_to_completion(1 << 10, std::time::Duration::ZERO, None)
        .expect("copying a database");
    to
}

/// What ingesting one capture left in the database.
#[derive(Debug)]
pub enum Ingested {
    /// The capture's id and its `captures` row: (frames, tcp_frames, flows, truncated_at).
    Indexed(i64, (i64, i64, i64, Option<i64>)),
    /// It was not indexed; what ingest said.
    Failed(Vec<String>),
}

/// Ingests the file at `path` as `traceflow ingest [--embed] --max-open-flows N FILE` does (`ingest::run`: the
/// reader thread feeding `store::write_capture`).
pub fn ingest(conn: &mut Connection, path: &Path, embed: bool, max_open_flows: usize) -> Ingested {
    let opts = Options {
        embed,
        quiet: true,
        max_open_flows,
        ..Options::default()
    };
    let mut said = Vec::new();
    let summary = ingest::run(conn, &[path.to_path_buf()], &opts, &mut |m| said.push(m));
    if summary.indexed != 1 {
        said.push(format!("{summary:?}"));
        return Ingested::Failed(said);
    }
    let row = conn
        .query_row(
            "SELECT id, frames, tcp_frames, flows, truncated_at FROM captures ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))),
        )
        .expect("the capture's row");
    Ingested::Indexed(row.0, row.1)
}

/// The (origlen, bytes) of every frame of a pcap or pcapng dump; panics if the dump does not read back whole.
pub fn reread(dump: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut r = CaptureReader::from_reader(Box::new(Cursor::new(dump.to_vec()))).expect("a dump opens");
    let mut out = Vec::new();
    while let Some(f) = r.next_frame() {
        out.push((f.origlen, f.data.to_vec()));
    }
    assert_eq!(r.truncation(), None, "a dump reads back to its end");
    out
}
