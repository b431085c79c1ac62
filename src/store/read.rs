//! Every SELECT of the read side: capture listings, the flow index tuple (rebuilt from SQL alone, never by
//! re-tracing), label lookups, and the frames of a flow.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection};
use serde::Serialize;

use super::Db;

/// Why a read of the database failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No capture has that id, path or base name.
    #[error("no capture named {0:?} in the database{1} (see `traceflow captures`)")]
    UnknownCapture(String, String),
    /// A base name matches several captures.
    #[error("{name:?} names several captures ({candidates}); give a full path or an id")]
    Ambiguous {
        /// The name given.
        name: String,
        /// The captures it matches, as `id N`, comma-separated.
        candidates: String,
    },
    /// A capture went away while the command read it (`forget`, or a re-ingest that replaced it).
    #[error(
        "capture {0} is no longer in the database: it was forgotten or replaced while this command read it; run \
         the command again (`traceflow captures` lists what is there)"
    )]
    CaptureGone(i64),
    /// A SQLite failure.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL failure.
    #[error("database: {0}")]
    Postgres(#[from] postgres::Error),
    /// A command that runs on SQLite only, for now.
    #[error("{0} is not available on PostgreSQL yet; use a SQLite database (--db FILE) for it")]
    NotOnPostgres(&'static str),
    /// No flow has that label.
    #[error("no flow labelled {label:?}{scope}{hint}")]
    UnknownLabel {
        /// The label given.
        label: String,
        /// ` in capture NAME` when a capture was chosen, else empty.
        scope: String,
        /// The closest labels there are, or a note that there are no flows.
        hint: String,
    },
    /// A label is in several captures and no capture was chosen.
    #[error(
        "flows labelled {label:?} are in several captures ({captures}); choose one with --capture"
    )]
    LabelInSeveralCaptures {
        /// The label given.
        label: String,
        /// The names of the captures that have it.
        captures: String,
    },
    /// The database holds something a traceflow ingest never writes (a broken `prev_in_flow` chain, ...).
    #[error("database: {0}; the database is damaged or was edited (re-ingest the capture)")]
    Corrupt(String),
    /// `--both` on a flow whose frames have no connection (a capture indexed before schema 5).
    #[error("flow {0:?} has no connection recorded: its capture was indexed before traceflow kept connections; re-ingest it with --force")]
    NoConnection(String),
    /// Writing the results failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// A result row of either backend, read by column index: the row builders below ([`flow_row`], ...) serve
/// SQLite's and PostgreSQL's rows alike, so both give the same values.
pub(crate) trait Cols {
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, QueryError>;
    /// An integer column that may be NULL.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError>;
    /// A text column.
    fn text(&self, i: usize) -> Result<String, QueryError>;
    /// A text column appended to `out` (no allocation of its own).
    fn push_text(&self, i: usize, out: &mut String) -> Result<(), QueryError> {
        out.push_str(&self.text(i)?);
        Ok(())
    }
    /// A text column that may be NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>, QueryError>;
    /// A boolean (SQLite: an integer).
    fn boolean(&self, i: usize) -> Result<bool, QueryError>;
    /// An integer or text column as JSON (a `--group-by` key); anything else is null.
    fn key(&self, i: usize) -> Result<serde_json::Value, QueryError>;
}

impl Cols for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64, QueryError> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<String, QueryError> {
        Ok(self.get(i)?)
    }
    fn push_text(&self, i: usize, out: &mut String) -> Result<(), QueryError> {
        if let rusqlite::types::ValueRef::Text(t) = self.get_ref(i)? {
            if let Ok(t) = std::str::from_utf8(t) {
                out.push_str(t);
                return Ok(());
            }
        }
        // Whatever else is there fails as `text` fails on it.
        self.text(i).map(|t| out.push_str(&t))
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, QueryError> {
        Ok(self.get(i)?)
    }
    fn boolean(&self, i: usize) -> Result<bool, QueryError> {
        Ok(self.get(i)?)
    }
    fn key(&self, i: usize) -> Result<serde_json::Value, QueryError> {
        Ok(match self.get_ref(i)? {
            rusqlite::types::ValueRef::Integer(x) => serde_json::Value::from(x),
            rusqlite::types::ValueRef::Text(t) => {
                serde_json::Value::from(String::from_utf8_lossy(t).into_owned())
            }
            _ => serde_json::Value::Null,
        })
    }
}

impl Cols for postgres::Row {
    fn int(&self, i: usize) -> Result<i64, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> Result<String, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn boolean(&self, i: usize) -> Result<bool, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn key(&self, i: usize) -> Result<serde_json::Value, QueryError> {
        use postgres::types::Type;
        let ty = self.columns().get(i).map(|c| c.type_().clone());
        Ok(match ty {
            Some(Type::INT8) => self
                .try_get::<_, Option<i64>>(i)?
                .map_or(serde_json::Value::Null, serde_json::Value::from),
            Some(Type::TEXT) => self
                .try_get::<_, Option<String>>(i)?
                .map_or(serde_json::Value::Null, serde_json::Value::from),
            _ => serde_json::Value::Null,
        })
    }
}

/// A `captures` row with every path of its content, as `traceflow captures --format json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureInfo {
    /// `captures.id`.
    pub id: i64,
    /// Base name of the file it was first indexed from.
    pub name: String,
    /// Absolute path it was first indexed from.
    pub path: String,
    /// Every path this content was seen under.
    pub paths: Vec<String>,
    /// Bytes on disk (compressed size for .gz/.zst).
    pub size: i64,
    /// `pcap` or `pcapng`.
    pub format: Option<String>,
    /// `none`, `gzip` or `zstd`.
    pub compression: Option<String>,
    /// Distinct LINKTYPE values, comma-separated.
    pub linktypes: Option<String>,
    /// Every frame of the file, TCP or not.
    pub frames: i64,
    /// Frames that are TCP packets.
    pub tcp_frames: i64,
    /// Flows traced in the capture.
    pub flows: i64,
    /// Time of the first frame, RFC 3339 UTC with ns (`iso_time`); `None` without frames.
    pub first_time: Option<String>,
    /// Time of the last frame, as `first_time`.
    pub last_time: Option<String>,
    /// Byte offset where a cut-off or damaged file stopped; `None` if it was read whole.
    pub truncated_at: Option<i64>,
    /// Why the file stopped there.
    pub truncated_why: Option<String>,
    /// True when frame bytes are in the database (`ingest --embed`).
    pub embedded: bool,
    /// xxh3-128 of the file's bytes, hex.
    pub hash: Option<String>,
    /// When it was indexed, UTC (`2024-01-31T12:00:00.000Z`).
    pub ingested_at: String,
}

/// The columns of `traceflow captures` that fit a terminal.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureBrief {
    /// `captures.id`.
    pub id: i64,
    /// Base name of the file it was first indexed from.
    pub name: String,
    /// Format, with `+gzip` or `+zstd` when compressed.
    pub format: String,
    /// Distinct LINKTYPE values, comma-separated.
    pub linktypes: String,
    /// Every frame of the file, TCP or not.
    pub frames: i64,
    /// Flows traced in the capture.
    pub flows: i64,
    /// Time of the first frame (RFC 3339), empty without frames.
    pub first_time: String,
    /// `ok`, or where the file was truncated.
    pub status: String,
}

impl From<&CaptureInfo> for CaptureBrief {
    fn from(c: &CaptureInfo) -> Self {
        let mut format = c.format.clone().unwrap_or_default();
        if let Some(z) = c.compression.as_deref().filter(|z| *z != "none") {
            format = format!("{format}+{z}");
        }
        CaptureBrief {
            id: c.id,
            name: c.name.clone(),
            format,
            linktypes: c.linktypes.clone().unwrap_or_default(),
            frames: c.frames,
            flows: c.flows,
            first_time: c.first_time.clone().unwrap_or_default(),
            status: match c.truncated_at {
                Some(at) => format!("truncated at byte {at}"),
                None => "ok".into(),
            },
        }
    }
}

/// Decimal places of every time and duration a listing prints (`captures`, `flows`, `connections`,
/// `--group-by`), in every format: 9, the stored nanoseconds, whatever the captures' resolutions, so that one
/// column never mixes 6- and 9-digit fractions and every command prints a time alike. (The dumps keep PyPCAPKit's
/// per-capture form.)
pub const LISTING_DIGITS: u8 = 9;

/// ISO 8601 UTC with the stored nanoseconds, e.g. `2013-11-25T14:55:58.387631000Z`.
pub fn iso_time(ns: i64) -> String {
    crate::capture::Timestamp::from_ns(ns, LISTING_DIGITS).rfc3339()
}

/// Every capture in the database, by id.
pub fn captures(db: &Db) -> Result<Vec<CaptureInfo>, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.captures(),
    };
    let mut st = conn.prepare(
        "SELECT id, name, path, size, format, compression, linktypes, frames, tcp_frames, flows, first_ns, last_ns,
                truncated_at, truncated_why, embedded, hash, ingested_at,
                (SELECT group_concat(path, char(10)) FROM capture_paths p WHERE p.capture_id = c.id)
         FROM captures c ORDER BY id",
    )?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(capture_info(r)?);
    }
    Ok(out)
}

/// A row of the captures listing (columns as [`captures`] selects them) as a [`CaptureInfo`].
pub(crate) fn capture_info(r: &dyn Cols) -> Result<CaptureInfo, QueryError> {
    let paths = r.opt_text(17)?;
    Ok(CaptureInfo {
        id: r.int(0)?,
        name: r.text(1)?,
        path: r.text(2)?,
        paths: paths
            .map(|p| p.split('\n').map(String::from).collect())
            .unwrap_or_default(),
        size: r.int(3)?,
        format: r.opt_text(4)?,
        compression: r.opt_text(5)?,
        linktypes: r.opt_text(6)?,
        frames: r.int(7)?,
        tcp_frames: r.int(8)?,
        flows: r.int(9)?,
        first_time: r.opt_int(10)?.map(iso_time),
        last_time: r.opt_int(11)?.map(iso_time),
        truncated_at: r.opt_int(12)?,
        truncated_why: r.opt_text(13)?,
        embedded: r.int(14)? != 0,
        hash: r.opt_text(15)?,
        ingested_at: r.text(16)?,
    })
}

/// Finds the capture a user means: an id, a path it was indexed from, or a file's base name.
pub fn resolve_capture(db: &Db, sel: &str) -> Result<i64, QueryError> {
    if let Ok(id) = sel.parse::<i64>() {
        let exists = match db {
            Db::Sqlite(conn) => {
                conn.query_row("SELECT count(*) FROM captures WHERE id = ?1", [id], |r| {
                    r.get::<_, i64>(0)
                })? == 1
            }
            Db::Postgres(p) => p.capture_exists(id)?,
        };
        if exists {
            return Ok(id);
        }
    }
    let abs = std::path::absolute(sel)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let by_path: Vec<i64> = match db {
        Db::Sqlite(conn) => conn
            .prepare(
                "SELECT DISTINCT capture_id FROM capture_paths WHERE path = ?1 OR path = ?2
                 UNION SELECT id FROM captures WHERE path = ?1 OR path = ?2",
            )?
            .query_map(params![sel, abs], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        Db::Postgres(p) => p.captures_at_path(sel, &abs)?,
    };
    if by_path.len() == 1 {
        return Ok(by_path[0]);
    }
    let ids: Vec<i64> = match db {
        Db::Sqlite(conn) => conn
            .prepare(
                "SELECT DISTINCT capture_id FROM capture_paths WHERE name = ?1 UNION SELECT id FROM captures WHERE name = ?1",
            )?
            .query_map([sel], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        Db::Postgres(p) => p.captures_named(sel)?,
    };
    match ids.len() {
        0 => Err(QueryError::UnknownCapture(
            sel.to_string(),
            closest_captures(db, sel),
        )),
        1 => Ok(ids[0]),
        _ => Err(QueryError::Ambiguous {
            name: sel.to_string(),
            candidates: ids
                .iter()
                .map(|i| format!("id {i}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// One entry of the index tuple, as pcapkit's `Index(fpout, index, label)`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IndexEntry {
    /// The capture's name, set when the index of every capture is listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    /// The file the flow was dumped to (`--dump DIR`); `None` otherwise.
    pub fpout: Option<String>,
    /// The flow's frame numbers (from 1), in frame order.
    pub index: Vec<u64>,
    /// The flow's TraceFlow label.
    pub label: String,
}

/// The SQL that yields a capture's index tuple (also printed in docs/schema.md): one row per flow, in index order.
pub const INDEX_SQL: &str = "SELECT fl.label, g.frames
FROM (SELECT flow_no, group_concat(number ORDER BY number) AS frames
      FROM frames WHERE capture_id = ?1 AND flow_no IS NOT NULL
      GROUP BY flow_no) g
JOIN flows fl ON fl.capture_id = ?1 AND fl.flow_no = g.flow_no
ORDER BY fl.closed_frame IS NOT NULL, coalesce(fl.closed_frame, fl.first_frame)";

#[test]
fn index_sql_orders_as_index_order() {
    assert!(INDEX_SQL.ends_with(&format!("ORDER BY {}", INDEX_ORDER.replace("f.", "fl."))));
}

/// Visits the index tuple of one capture, or of every capture, row by row from the `flow_index` view: `visit`
/// gets the capture's name, the label and the frame numbers as SQLite's comma-separated text. Nothing is
/// collected, so printing a capture's whole index takes constant memory.
pub fn for_each_index_row(
    db: &Db,
    capture: Option<i64>,
    visit: &mut dyn FnMut(&str, &str, &str) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => {
            for (id, name) in p.capture_ids(capture)? {
                p.index_rows(id, &mut |label, frames| {
                    check_index_frames(id, label, frames)?;
                    visit(&name, label, frames)
                })?;
            }
            return Ok(());
        }
    };
    let ids: Vec<(i64, String)> = match capture {
        Some(id) => conn
            .prepare("SELECT id, name FROM captures WHERE id = ?1")?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
        None => conn
            .prepare("SELECT id, name FROM captures ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
    };
    // INDEX_SQL with the label as stored and what fills it in when it is '' (flow_columns_sqlite).
    let mut st = conn.prepare(&INDEX_SQL.replacen(
        "fl.label, g.frames",
        "fl.stored_label, g.frames, fl.src, fl.sport, fl.dst, fl.dport, fl.first_ns",
        1,
    ))?;
    let mut made = String::new();
    for (id, name) in ids {
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            let mut label = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            if label.is_empty() {
                made.clear();
                let text = |i| r.get_ref(i)?.as_str().map_err(rusqlite::Error::from);
                made.push_str(text(2)?);
                let dst_at = made.len();
                made.push_str(text(4)?);
                let label_at = made.len();
                let (sport, dport) = (port(r.get(3)?)?, port(r.get(5)?)?);
                push_stored_label(&mut made, dst_at, sport, dport, r.get(6)?, || {
                    format!("capture {id}: a flow")
                })?;
                label = &made[label_at..];
            }
            let frames = r
                .get_ref(1)?
                .as_str_or_null()
                .map_err(rusqlite::Error::from)?;
            let frames = frames.unwrap_or("");
            check_index_frames(id, label, frames)?;
            visit(&name, label, frames)?;
        }
    }
    Ok(())
}

/// frames.number is a positive integer in any database traceflow wrote; the JSON index pastes this text as it is
/// and `index` parses it, so both must refuse the same damage.
fn check_index_frames(id: i64, label: &str, frames: &str) -> Result<(), QueryError> {
    if frames
        .split(',')
        .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        && !frames.is_empty()
    {
        return Err(QueryError::Corrupt(format!(
            "capture {id}: flow {label:?} lists frame numbers {frames:?}, which are not all positive integers"
        )));
    }
    Ok(())
}

/// The two-way index tuple (`query --bidirectional`) of one capture, or of every capture (then with the
/// `capture` key set): one flow per connection, by the rule in [`crate::trace::twoway`], from the frame rows.
/// It is built one capture at a time, in bounded memory (see `TwoWay`), and handed to `visit` entry by entry.
pub fn for_each_bidirectional(
    db: &Db,
    capture: Option<i64>,
    visit: &mut dyn FnMut(IndexEntry) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let conn =
        match db {
            Db::Sqlite(c) => c,
            Db::Postgres(p) => {
                for (id, name) in p.capture_ids(capture)? {
                    let digits: HashMap<u32, u8> = p
                        .interfaces(id)?
                        .into_iter()
                        .map(|(n, i)| (n, crate::capture::tsresol_digits(i.tsresol)))
                        .collect();
                    let mut t = crate::trace::twoway::TwoWay::default();
                    let mut failed = None;
                    p.twoway_frames(
                        id,
                        &mut |number, ts_ns, iface, flags, src, sport, dst, dport| {
                            let frame = crate::trace::twoway::TwoWayFrame {
                                number: number.max(0) as u64,
                                src: (src, sport),
                                dst: (dst, dport),
                                flags,
                            };
                            if failed.is_some() {
                                return;
                            }
                            failed = t
                                .add(&frame, || {
                                    let ts = crate::capture::Timestamp::from_ns(
                                        ts_ns,
                                        digits.get(&iface).copied().unwrap_or(9),
                                    );
                                    crate::key::label::label_from_text(src, sport, dst, dport, &ts)
                                })
                                .err();
                        },
                    )?;
                    if let Some(e) = failed {
                        return Err(e.into());
                    }
                    t.finish(&mut |label, index| {
                        visit(IndexEntry {
                            capture: capture.is_none().then(|| name.clone()),
                            fpout: None,
                            index,
                            label,
                        })
                    })?;
                }
                return Ok(());
            }
        };
    let ids: Vec<(i64, String)> = conn
        .prepare("SELECT id, name FROM captures WHERE ?1 IS NULL OR id = ?1 ORDER BY id")?
        .query_map([capture], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut st = conn.prepare(
        "SELECT fr.number, fr.ts_ns, fr.iface, fr.tcp_flags, f.src, f.sport, f.dst, f.dport
         FROM frames fr JOIN flows f ON f.capture_id = fr.capture_id AND f.flow_no = fr.flow_no
         WHERE fr.capture_id = ?1 AND fr.flow_no IS NOT NULL ORDER BY fr.number",
    )?;
    for (id, name) in ids {
        let digits: HashMap<u32, u8> = interfaces(db, id)?
            .into_iter()
            .map(|(n, i)| (n, crate::capture::tsresol_digits(i.tsresol)))
            .collect();
        let mut t = crate::trace::twoway::TwoWay::default();
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            let number: i64 = r.get(0)?;
            let ts_ns: i64 = r.get(1)?;
            let iface: u32 = r.get(2)?;
            let (src, dst): (String, String) = (r.get(4)?, r.get(6)?);
            let (sport, dport): (u16, u16) = (r.get(5)?, r.get(7)?);
            let frame = crate::trace::twoway::TwoWayFrame {
                number: number.max(0) as u64,
                src: (&src, sport),
                dst: (&dst, dport),
                flags: r.get::<_, Option<u16>>(3)?.unwrap_or(0),
            };
            t.add(&frame, || {
                let ts = crate::capture::Timestamp::from_ns(
                    ts_ns,
                    digits.get(&iface).copied().unwrap_or(9),
                );
                crate::key::label::label_from_text(&src, sport, &dst, dport, &ts)
            })?;
        }
        drop(rows);
        t.finish(&mut |label, index| {
            visit(IndexEntry {
                capture: capture.is_none().then(|| name.clone()),
                fpout: None,
                index,
                label,
            })
        })?;
    }
    Ok(())
}

/// The two-way index tuple, as a vector (`for_each_bidirectional`).
pub fn bidirectional_index(db: &Db, capture: Option<i64>) -> Result<Vec<IndexEntry>, QueryError> {
    let mut out = Vec::new();
    for_each_bidirectional(db, capture, &mut |e| {
        out.push(e);
        Ok(())
    })?;
    Ok(out)
}

impl From<crate::trace::twoway::TwoWayError> for QueryError {
    fn from(e: crate::trace::twoway::TwoWayError) -> QueryError {
        match e {
            crate::trace::twoway::TwoWayError::Address(..) => QueryError::Corrupt(e.to_string()),
            // The temporary files' failure, with the folder to change.
            crate::trace::twoway::TwoWayError::Spill(s) => {
                QueryError::Output(std::io::Error::other(s.to_string()))
            }
        }
    }
}

/// The index tuple of one capture, or of every capture (then with the `capture` key set).
pub fn index(db: &Db, capture: Option<i64>) -> Result<Vec<IndexEntry>, QueryError> {
    let mut out = Vec::new();
    for_each_index_row(db, capture, &mut |name, label, frames| {
        out.push(IndexEntry {
            capture: capture.is_none().then(|| name.to_string()),
            fpout: None,
            index: frames.split(',').filter_map(|s| s.parse().ok()).collect(),
            label: label.to_string(),
        });
        Ok(())
    })?;
    Ok(out)
}

pub use crate::key::label::label_time_range;

/// A frame to fetch, as the frames table records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Frame number, from 1.
    pub number: u64,
    /// Frame time, ns since the epoch.
    pub ts_ns: i64,
    /// Bytes of the frame captured in the file.
    pub caplen: u32,
    /// Length of the frame on the wire, in bytes.
    pub origlen: u32,
    /// Index of the frame's interface (`interfaces.iface`).
    pub iface: u32,
    /// Byte offset of the record in the decompressed stream.
    pub offset: u64,
}

/// The flows of one capture that share a label: one dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowGroup {
    /// `captures.id` of the capture the flows are in.
    pub capture_id: i64,
    /// The label they share.
    pub label: String,
    /// flow_no of each flow, in index order.
    pub flows: Vec<i64>,
    /// `query --both`: when not empty, the dump is these connections' frames (both directions, in frame order)
    /// instead of the flows'.
    pub conns: Vec<i64>,
}

/// Index order of a capture's flows (`flows` as `f`): open flows in creation order, then closed flows in closing
/// order. The one place that order is written; INDEX_SQL spells the same with `fl`.
pub(crate) const INDEX_ORDER: &str =
    "f.closed_frame IS NOT NULL, coalesce(f.closed_frame, f.first_frame)";

/// Every flow labelled `label` (in `capture`, or in the one capture that has it).
pub fn select_label(db: &Db, capture: Option<i64>, label: &str) -> Result<FlowGroup, QueryError> {
    // The label's time is its flow's first frame time: the flows_first_ns index (capture_id, first_ns) finds it
    // with one seek per capture, without a scan.
    let (lo, hi) = crate::store::read::label_time_range(label).unwrap_or((i64::MIN, i64::MAX));
    let rows: Vec<(i64, i64, String)> = match db {
        Db::Postgres(p) => p.flows_labelled(capture, label, lo, hi)?,
        Db::Sqlite(conn) => conn
            .prepare(&format!(
                "SELECT f.capture_id, f.flow_no, c.name FROM flows f
             JOIN captures c ON c.id = f.capture_id
             WHERE f.label = ?1 AND f.first_ns BETWEEN ?3 AND ?4
               AND f.capture_id IN (SELECT id FROM captures WHERE ?2 IS NULL OR id = ?2)
             ORDER BY f.capture_id, {INDEX_ORDER}"
            ))?
            .query_map(rusqlite::params![label, capture, lo, hi], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?,
    };
    let Some(first) = rows.first() else {
        return Err(unknown_label(db, capture, label));
    };
    let cid = first.0;
    if rows.iter().any(|r| r.0 != cid) {
        let mut caps: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
        caps.dedup();
        return Err(QueryError::LabelInSeveralCaptures {
            label: label.to_string(),
            captures: caps.join(", "),
        });
    }
    Ok(FlowGroup {
        capture_id: cid,
        label: label.to_string(),
        flows: rows.iter().map(|r| r.1).collect(),
        conns: Vec::new(),
    })
}

/// The group with the connections its flows' frames belong to (`query --flow LABEL --both`).
pub fn with_connections(db: &Db, mut g: FlowGroup) -> Result<FlowGroup, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => {
            let mut conns = std::collections::BTreeSet::new();
            for flow in &g.flows {
                conns.extend(p.flow_connections(g.capture_id, *flow)?);
            }
            if conns.is_empty() {
                return Err(QueryError::NoConnection(g.label));
            }
            g.conns = conns.into_iter().collect();
            return Ok(g);
        }
    };
    let mut st = conn.prepare(
        "SELECT DISTINCT fr.conn_no FROM flows f JOIN frames fr ON fr.capture_id = f.capture_id
           AND fr.number BETWEEN f.first_frame AND f.last_frame AND fr.flow_no = f.flow_no
         WHERE f.capture_id = ?1 AND f.flow_no = ?2 AND fr.conn_no IS NOT NULL",
    )?;
    let mut conns = std::collections::BTreeSet::new();
    for flow in &g.flows {
        for c in st.query_map([g.capture_id, *flow], |r| r.get::<_, i64>(0))? {
            conns.insert(c?);
        }
    }
    if conns.is_empty() {
        return Err(QueryError::NoConnection(g.label));
    }
    g.conns = conns.into_iter().collect();
    Ok(g)
}

/// One group per connection of a capture, in connection order, named by the label of the flow that holds its
/// first frame (`query --dump DIR --both`), with `.connN` after it when an earlier connection has that name.
pub fn capture_conn_groups(db: &Db, capture_id: i64) -> Result<Vec<FlowGroup>, QueryError> {
    let rows: Vec<(i64, String, Option<String>)> = match db {
        Db::Postgres(p) => p.conn_group_rows(capture_id)?,
        Db::Sqlite(conn) => conn
            .prepare(
                "SELECT x.conn_no, x.flows,
                    (SELECT f.label FROM flows f WHERE f.capture_id = x.capture_id
                     AND f.flow_no IN (SELECT value FROM json_each('[' || x.flows || ']'))
                     ORDER BY f.first_frame LIMIT 1)
             FROM connections x WHERE x.capture_id = ?1 ORDER BY x.conn_no",
            )?
            .query_map([capture_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?,
    };
    // A flow that a reused port splits (no FIN between the connections) starts two of them: the later ones
    // get `.connN` after the label, so that every connection has a file of its own.
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .map(|(conn_no, flows, label)| {
            let mut label = label.unwrap_or_else(|| format!("connection-{conn_no}"));
            if !seen.insert(label.clone()) {
                label = format!("{label}.conn{conn_no}");
            }
            FlowGroup {
                capture_id,
                label,
                flows: flows.split(',').filter_map(|f| f.parse().ok()).collect(),
                conns: vec![conn_no],
            }
        })
        .collect())
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// `; closest names: a.pcap, b.pcap` for a capture name that matches none, as a wrong label gets.
fn closest_captures(db: &Db, sel: &str) -> String {
    let names: Vec<String> = match db {
        Db::Sqlite(conn) => conn
            .prepare("SELECT DISTINCT name FROM capture_paths UNION SELECT name FROM captures")
            .and_then(|mut st| {
                st.query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .unwrap_or_default(),
        Db::Postgres(p) => p.capture_names().unwrap_or_default(),
    };
    let base = std::path::Path::new(sel)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| sel.to_string());
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .map(|n| (distance(&base, &n), n))
        .collect();
    scored.sort();
    let best: Vec<String> = scored.into_iter().take(5).map(|(_, n)| n).collect();
    if best.is_empty() {
        " (it holds no captures yet)".into()
    } else {
        format!("; closest names: {}", best.join(", "))
    }
}

fn unknown_label(db: &Db, capture: Option<i64>, label: &str) -> QueryError {
    let (name, labels): (Option<String>, Vec<String>) = match db {
        Db::Sqlite(conn) => (
            capture.and_then(|id| {
                conn.query_row("SELECT name FROM captures WHERE id = ?1", [id], |r| {
                    r.get::<_, String>(0)
                })
                .ok()
            }),
            conn.prepare("SELECT DISTINCT label FROM flows WHERE ?1 IS NULL OR capture_id = ?1")
                .and_then(|mut st| {
                    st.query_map([capture], |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()
                })
                .unwrap_or_default(),
        ),
        Db::Postgres(p) => (
            capture.and_then(|id| p.capture_name(id).ok().flatten()),
            p.labels(capture).unwrap_or_default(),
        ),
    };
    let scope = name.map(|n| format!(" in capture {n}")).unwrap_or_default();
    let mut scored: Vec<(usize, String)> = labels
        .into_iter()
        .map(|l| (distance(label, &l), l))
        .collect();
    scored.sort();
    let best: Vec<String> = scored.into_iter().take(5).map(|(_, l)| l).collect();
    let hint = if best.is_empty() {
        " (there are no flows; see `traceflow query` for the index)".to_string()
    } else {
        format!("; closest labels: {}", best.join(", "))
    };
    QueryError::UnknownLabel {
        label: label.to_string(),
        scope,
        hint,
    }
}

/// Every label of a capture, in index order (a label's place is that of its first flow).
pub fn capture_groups(db: &Db, capture_id: i64) -> Result<Vec<FlowGroup>, QueryError> {
    let rows: Vec<(i64, String)> = match db {
        Db::Postgres(p) => p.flow_labels(capture_id)?,
        Db::Sqlite(conn) => conn
            .prepare(&format!(
                "SELECT f.flow_no, f.label FROM flows f
                 WHERE f.capture_id = ?1 ORDER BY {INDEX_ORDER}"
            ))?
            .query_map([capture_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?,
    };
    let mut groups: Vec<FlowGroup> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (flow_no, label) in rows {
        match at.get(&label) {
            Some(&i) => groups[i].flows.push(flow_no),
            None => {
                at.insert(label.clone(), groups.len());
                groups.push(FlowGroup {
                    capture_id,
                    label,
                    flows: vec![flow_no],
                    conns: Vec::new(),
                });
            }
        }
    }
    Ok(groups)
}

/// A capture's interfaces: (linktype, snaplen, tsresol) by iface number.
#[derive(Clone, Copy, Debug)]
pub struct Iface {
    /// LINKTYPE value.
    pub linktype: u32,
    /// Snapshot length.
    pub snaplen: u32,
    /// pcapng `if_tsresol` byte (6 = µs, 9 = ns).
    pub tsresol: u8,
}

/// The interfaces of a capture, by `interfaces.iface`.
pub fn interfaces(db: &Db, capture_id: i64) -> Result<HashMap<u32, Iface>, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.interfaces(capture_id),
    };
    Ok(conn
        .prepare("SELECT iface, linktype, snaplen, tsresol FROM interfaces WHERE capture_id = ?1")?
        .query_map([capture_id], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                Iface {
                    linktype: r.get(1)?,
                    snaplen: r.get(2)?,
                    tsresol: r.get(3)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?)
}

/// Walks one flow's `prev_in_flow` links back from its last frame: one primary-key lookup per frame of the
/// flow, whatever the size of the capture (frames has no index on flow_no). CROSS JOIN keeps SQLite from scanning
/// the capture's frames and probing the chain instead. The walk is bounded whatever the database holds: each
/// step must go to a smaller frame number of the same flow, and it takes at most `flows.packets` steps (a cycle
/// written into a damaged database once made it run forever, filling the temporary folder).
const FLOW_FRAMES_SQL: &str = "WITH RECURSIVE chain(number, steps) AS (
         SELECT last_frame, 1 FROM flows WHERE capture_id = ?1 AND flow_no = ?2
         UNION ALL
         SELECT f.prev_in_flow, c.steps + 1 FROM chain c
         JOIN frames f ON f.capture_id = ?1 AND f.number = c.number
         WHERE f.prev_in_flow IS NOT NULL AND f.prev_in_flow < c.number AND f.flow_no = ?2
           AND c.steps < (SELECT packets FROM flows WHERE capture_id = ?1 AND flow_no = ?2)
     )
     SELECT fr.number, fr.ts_ns, fr.caplen, fr.origlen, fr.iface, fr.file_offset, fr.flow_no, fr.prev_in_flow
     FROM chain c CROSS JOIN frames fr ON fr.capture_id = ?1 AND fr.number = c.number
     ORDER BY fr.number";

/// Reads the frames of flows, one flow at a time, with the walk prepared once.
pub struct FlowFrames<'c> {
    walk: Walk<'c>,
}

enum Walk<'c> {
    Sqlite {
        conn: &'c Connection,
        st: rusqlite::Statement<'c>,
        flow: rusqlite::Statement<'c>,
    },
    Postgres(&'c super::pg::Pg),
}

impl<'c> FlowFrames<'c> {
    /// Prepares the walk on `db`.
    pub fn new(db: &'c Db) -> Result<FlowFrames<'c>, QueryError> {
        let walk = match db {
            Db::Sqlite(conn) => Walk::Sqlite {
                conn,
                st: conn.prepare(FLOW_FRAMES_SQL)?,
                flow: conn.prepare(
                    "SELECT first_frame, packets FROM flows WHERE capture_id = ?1 AND flow_no = ?2",
                )?,
            },
            Db::Postgres(p) => Walk::Postgres(p),
        };
        Ok(FlowFrames { walk })
    }

    /// Replaces `out` with the frames of every flow of `g`, in index order (flow by flow, each in frame order);
    /// for a group with connections (`--both`), the connections' frames in frame order.
    pub fn group(&mut self, g: &FlowGroup, out: &mut Vec<FrameRef>) -> Result<(), QueryError> {
        out.clear();
        if !g.conns.is_empty() {
            return self.connections(g, out);
        }
        for flow in &g.flows {
            self.append(g.capture_id, *flow, out)?;
        }
        Ok(())
    }

    /// The frames of `g`'s connections, in frame order: a range scan of the frames between each connection's
    /// first and last frame (frames has no index on conn_no, and needs none for this).
    fn connections(&mut self, g: &FlowGroup, out: &mut Vec<FrameRef>) -> Result<(), QueryError> {
        match &self.walk {
            Walk::Postgres(p) => {
                for c in &g.conns {
                    p.connection_frames(g.capture_id, *c, out)?;
                }
            }
            Walk::Sqlite { conn, .. } => {
                let mut span = conn.prepare_cached(
                    "SELECT first_frame, last_frame FROM connections WHERE capture_id = ?1 AND conn_no = ?2",
                )?;
                let mut st = conn.prepare_cached(
                    "SELECT number, ts_ns, caplen, origlen, iface, file_offset FROM frames
                     WHERE capture_id = ?1 AND number BETWEEN ?2 AND ?3 AND conn_no = ?4 ORDER BY number",
                )?;
                for c in &g.conns {
                    let (first, last): (i64, i64) = span
                        .query_row(rusqlite::params![g.capture_id, c], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?;
                    let mut rows = st.query(rusqlite::params![g.capture_id, first, last, c])?;
                    while let Some(r) = rows.next()? {
                        out.push(FrameRef {
                            number: r.get::<_, i64>(0)? as u64,
                            ts_ns: r.get(1)?,
                            caplen: r.get(2)?,
                            origlen: r.get(3)?,
                            iface: r.get(4)?,
                            offset: r.get::<_, i64>(5)? as u64,
                        });
                    }
                }
            }
        }
        out.sort_unstable_by_key(|f| f.number);
        out.dedup_by_key(|f| f.number);
        Ok(())
    }

    /// Appends the frames of flow `flow_no` of `capture_id` to `out`, in frame order; a chain that does not end
    /// at the flow's first frame, or holds another flow's frame, is reported as a damaged database.
    pub fn append(
        &mut self,
        capture_id: i64,
        flow_no: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), QueryError> {
        let start = out.len();
        let mut bad = None;
        let mut note = |number: u64, in_flow: Option<i64>| {
            if in_flow != Some(flow_no) && bad.is_none() {
                bad = Some(format!(
                    "frame {number} is listed in flow {flow_no} but belongs to flow {in_flow:?}"
                ));
            }
        };
        let (first, packets): (i64, i64) = match &mut self.walk {
            Walk::Postgres(p) => {
                // Frames there are read by range from their chunks, filtered by flow: each one belongs to the
                // flow, which the count and first frame below check.
                let (first, last, packets) = p.flow_span(capture_id, flow_no)?;
                p.flow_frames(capture_id, flow_no, first, last, out)?;
                (first, packets)
            }
            Walk::Sqlite { st, flow, .. } => {
                let span = flow.query_row(rusqlite::params![capture_id, flow_no], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
                let mut rows = st.query(rusqlite::params![capture_id, flow_no])?;
                while let Some(r) = rows.next()? {
                    let number: i64 = r.get(0)?;
                    note(number as u64, r.get(6)?);
                    out.push(FrameRef {
                        number: number as u64,
                        ts_ns: r.get(1)?,
                        caplen: r.get(2)?,
                        origlen: r.get(3)?,
                        iface: r.get(4)?,
                        offset: r.get::<_, i64>(5)? as u64,
                    });
                }
                span
            }
        };
        let got = &out[start..];
        if bad.is_none()
            && (got.len() as i64 != packets || got.first().map(|f| f.number as i64) != Some(first))
        {
            let how = match &self.walk {
                Walk::Postgres(_) => "its frames in frame_chunks give",
                Walk::Sqlite { .. } => "its prev_in_flow chain gives",
            };
            bad = Some(format!(
                "flow {flow_no} of capture {capture_id} should have {packets} frames from frame {first}, {how} {} \
                 from frame {}",
                got.len(),
                got.first().map(|f| f.number.to_string()).unwrap_or_else(|| "none".into())
            ));
        }
        match bad {
            Some(why) => Err(QueryError::Corrupt(why)),
            None => Ok(()),
        }
    }
}

/// The captures row of the capture being dumped.
#[derive(Clone, Debug)]
pub struct CaptureRow {
    /// `captures.id`.
    pub id: i64,
    /// Base name of the file it was first indexed from.
    pub name: String,
    /// Absolute path it was first indexed from.
    pub path: String,
    /// Bytes on disk when indexed (compressed size for .gz/.zst).
    pub size: i64,
    /// Modification time when indexed, ns since the epoch; `None` when not known (standard input).
    pub mtime_ns: Option<i64>,
    /// xxh3-128 of the file's bytes, hex.
    pub hash: Option<String>,
    /// True when frame bytes are in `frame_data` (`ingest --embed`).
    pub embedded: bool,
}

/// The `captures` row of capture `id`.
pub fn capture_row(db: &Db, id: i64) -> Result<CaptureRow, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.capture_row(id),
    };
    conn.query_row(
        "SELECT id, name, path, size, mtime_ns, hash, embedded FROM captures WHERE id = ?1",
        [id],
        |r| {
            Ok(CaptureRow {
                id: r.get(0)?,
                name: r.get(1)?,
                path: r.get(2)?,
                size: r.get(3)?,
                mtime_ns: r.get(4)?,
                hash: r.get(5)?,
                embedded: r.get::<_, i64>(6)? != 0,
            })
        },
    )
    .map_err(|e| gone(e, id))
}

/// A row of capture `id` that is not there: the capture went away while the command read it.
fn gone(e: rusqlite::Error, id: i64) -> QueryError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => QueryError::CaptureGone(id),
        e => e.into(),
    }
}

/// One path a capture was seen under: (path, base name, size, mtime_ns) as `capture_paths` records it.
pub type CapturePath = (String, String, i64, Option<i64>);

/// Every path a capture was seen under, in the order they were added.
pub fn capture_paths(db: &Db, capture_id: i64) -> Result<Vec<CapturePath>, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.capture_paths(capture_id),
    };
    Ok(conn
        .prepare("SELECT path, name, size, mtime_ns FROM capture_paths WHERE capture_id = ?1 ORDER BY rowid")?
        .query_map([capture_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?)
}

/// (first frame time, id) of every capture, in that order: the order captures join a time merge.
pub fn captures_by_time(db: &Db) -> Result<std::collections::VecDeque<(i64, i64)>, QueryError> {
    match db {
        Db::Postgres(p) => p.captures_by_time(),
        Db::Sqlite(conn) => sqlite_captures_by_time(conn),
    }
}

fn sqlite_captures_by_time(
    conn: &Connection,
) -> Result<std::collections::VecDeque<(i64, i64)>, QueryError> {
    Ok(conn
        .prepare("SELECT coalesce(first_ns, 0), id FROM captures ORDER BY 1, 2")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// The next [`PAGE`] flows of a capture that match `filter` after flow_no `after`: (flow_no, first_frame).
pub fn flow_page(
    db: &Db,
    filter: &crate::filter::Compiled,
    capture_id: i64,
    after: i64,
) -> Result<Vec<(i64, i64)>, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.flow_page(filter, capture_id, after),
    };
    let mut st = conn.prepare_cached(&page_sql(filter, "f.flow_no, f.first_frame"))?;
    let mut params = filter.params.clone();
    params.push(rusqlite::types::Value::Integer(capture_id));
    params.push(rusqlite::types::Value::Integer(after));
    let rows = st
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// A flow's first frame.
pub fn flow_first_frame(db: &Db, capture_id: i64, flow_no: i64) -> Result<i64, QueryError> {
    match db {
        Db::Postgres(p) => Ok(p.flow_span(capture_id, flow_no)?.0),
        Db::Sqlite(conn) => conn
            .prepare_cached("SELECT first_frame FROM flows WHERE capture_id = ?1 AND flow_no = ?2")?
            .query_row([capture_id, flow_no], |r| r.get(0))
            .map_err(|e| gone(e, capture_id)),
    }
}

/// Every interface of every capture: (linktype, snaplen, tsresol).
pub fn all_interfaces(db: &Db) -> Result<Vec<(u32, u32, u8)>, QueryError> {
    match db {
        Db::Postgres(p) => p.all_interfaces(),
        Db::Sqlite(conn) => Ok(conn
            .prepare("SELECT linktype, snaplen, tsresol FROM interfaces")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?),
    }
}

/// Where the last TCP record of a capture ends (`file_offset + caplen`); `None` without TCP frames.
pub fn last_tcp_end(db: &Db, capture_id: i64) -> Result<Option<i64>, QueryError> {
    use rusqlite::OptionalExtension;
    match db {
        Db::Postgres(p) => p.last_tcp_end(capture_id),
        Db::Sqlite(conn) => Ok(conn
            .query_row(
                "SELECT file_offset + caplen FROM frames WHERE capture_id = ?1 AND flow_no IS NOT NULL
                 ORDER BY number DESC LIMIT 1",
                [capture_id],
                |r| r.get(0),
            )
            .optional()?),
    }
}

/// The `if_tsresol` of each interface of a capture, by interface number.
pub fn tsresols(db: &Db, capture_id: i64) -> Result<Vec<u8>, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.tsresols(capture_id),
    };
    Ok(conn
        .prepare("SELECT tsresol FROM interfaces WHERE capture_id = ?1 ORDER BY iface")?
        .query_map([capture_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}

/// One flow as `traceflow flows` lists it. Its times, duration, flags and state are kept as numbers and shown
/// only when the row is written: listing every flow makes millions of these, and each text kept was an
/// allocation per row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRow {
    /// The capture's id.
    pub capture_id: i64,
    /// The capture's name, shared by its flows.
    pub capture: Arc<str>,
    /// The source and destination addresses, then the label, in one allocation ([`FlowRow::label`], ...): a label
    /// stored as '' is made from the two addresses already in it.
    text: String,
    /// Where the destination address starts in `text`.
    dst_at: usize,
    /// Where the label starts.
    label_at: usize,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Frames.
    pub packets: i64,
    /// Sum of the frames' original lengths.
    pub bytes: i64,
    /// Sum of the TCP segment lengths.
    pub payload_bytes: i64,
    /// The TCP flags seen (the `flags` column's bits; shown as [`flag_names`]).
    pub flag_bits: i64,
    /// A FIN closed it.
    pub closed: bool,
    /// Decimal places of the capture's own times (listings print [`LISTING_DIGITS`] whatever they are).
    pub digits: u8,
    /// First frame time in ns since the epoch.
    pub first_ns: i64,
    /// Last frame time in ns.
    pub last_ns: i64,
    /// The flow's number in its capture.
    pub flow_no: i64,
}

impl FlowRow {
    /// TraceFlow's label.
    pub fn label(&self) -> &str {
        &self.text[self.label_at..]
    }

    /// Source address.
    pub fn src(&self) -> &str {
        &self.text[..self.dst_at]
    }

    /// Destination address.
    pub fn dst(&self) -> &str {
        &self.text[self.dst_at..self.label_at]
    }

    /// First frame time, RFC 3339 UTC with [`LISTING_DIGITS`] places.
    pub fn first_time(&self) -> String {
        crate::capture::Timestamp::from_ns(self.first_ns, LISTING_DIGITS).rfc3339()
    }

    /// Last frame time, likewise.
    pub fn last_time(&self) -> String {
        crate::capture::Timestamp::from_ns(self.last_ns, LISTING_DIGITS).rfc3339()
    }

    /// Last minus first frame time, in seconds (exact decimal).
    pub fn duration(&self) -> String {
        crate::capture::duration_text(self.first_ns, self.last_ns, LISTING_DIGITS)
    }

    /// `closed` (a FIN closed it) or `open`.
    pub fn state(&self) -> &'static str {
        if self.closed {
            "closed"
        } else {
            "open"
        }
    }

    /// The row as one JSON object appended to `out`, exactly as serde_json writes [`Serialize`]'s form (a test
    /// holds them equal), written by hand: serde_json's escaping of each string was the largest cost of listing
    /// every flow, and these strings almost never need it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use crate::capture::put_digits;
        fn int(out: &mut Vec<u8>, v: i64) {
            if v < 0 {
                out.push(b'-');
            }
            put_digits(out, v.unsigned_abs(), 1);
        }
        let time = |out: &mut Vec<u8>, ns: i64| {
            out.push(b'"');
            crate::capture::Timestamp::from_ns(ns, LISTING_DIGITS).write_rfc3339(out);
            out.push(b'"');
        };
        out.extend_from_slice(b"{\"capture\":");
        json_str(out, &self.capture);
        out.extend_from_slice(b",\"label\":");
        json_str(out, self.label());
        out.extend_from_slice(b",\"src\":");
        json_str(out, self.src());
        out.extend_from_slice(b",\"sport\":");
        int(out, i64::from(self.sport));
        out.extend_from_slice(b",\"dst\":");
        json_str(out, self.dst());
        out.extend_from_slice(b",\"dport\":");
        int(out, i64::from(self.dport));
        out.extend_from_slice(b",\"first_time\":");
        time(out, self.first_ns);
        out.extend_from_slice(b",\"last_time\":");
        time(out, self.last_ns);
        out.extend_from_slice(b",\"duration\":\"");
        crate::capture::write_duration(out, self.first_ns, self.last_ns, LISTING_DIGITS);
        out.extend_from_slice(b"\",\"packets\":");
        int(out, self.packets);
        out.extend_from_slice(b",\"bytes\":");
        int(out, self.bytes);
        out.extend_from_slice(b",\"payload_bytes\":");
        int(out, self.payload_bytes);
        out.extend_from_slice(b",\"flags\":\"");
        write_flag_names(self.flag_bits, out);
        out.extend_from_slice(b"\",\"state\":\"");
        out.extend_from_slice(self.state().as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

/// `s` as a JSON string appended to `out`: copied as it is when nothing in it needs escaping (serde_json escapes
/// only `"`, `\\` and control characters), through serde_json otherwise.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else if serde_json::to_writer(&mut *out, s).is_err() {
        // Writing to a Vec cannot fail; keep the output valid JSON regardless.
        out.extend_from_slice(b"\"\"");
    }
}

impl Serialize for FlowRow {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = ser.serialize_struct("FlowRow", 14)?;
        m.serialize_field("capture", &*self.capture)?;
        m.serialize_field("label", self.label())?;
        m.serialize_field("src", self.src())?;
        m.serialize_field("sport", &self.sport)?;
        m.serialize_field("dst", self.dst())?;
        m.serialize_field("dport", &self.dport)?;
        m.serialize_field("first_time", &self.first_time())?;
        m.serialize_field("last_time", &self.last_time())?;
        m.serialize_field("duration", &self.duration())?;
        m.serialize_field("packets", &self.packets)?;
        m.serialize_field("bytes", &self.bytes)?;
        m.serialize_field("payload_bytes", &self.payload_bytes)?;
        m.serialize_field("flags", &flag_names(self.flag_bits))?;
        m.serialize_field("state", self.state())?;
        m.end()
    }
}

/// TCP flag bits and names, in the order tshark lists them.
const FLAG_NAMES: [(i64, &str); 9] = [
    (0x002, "SYN"),
    (0x010, "ACK"),
    (0x008, "PSH"),
    (0x001, "FIN"),
    (0x004, "RST"),
    (0x020, "URG"),
    (0x040, "ECE"),
    (0x080, "CWR"),
    (0x100, "NS"),
];

/// The names of the TCP flags set in `flags`, most significant last as tshark lists them.
pub fn flag_names(flags: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_flag_names(flags, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`flag_names`] appended to `out`.
fn write_flag_names(flags: i64, out: &mut Vec<u8>) {
    let mut first = true;
    for (bit, name) in FLAG_NAMES {
        if flags & bit != 0 {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// Orders of `traceflow flows --sort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowSort {
    /// By first frame time (then capture and flow number).
    Time,
    /// Most bytes first.
    Bytes,
    /// Most packets first.
    Packets,
    /// Longest first.
    Duration,
}

/// The columns of a flow row, as [`flow_row`] reads them.
pub(crate) const FLOW_COLUMNS: &str =
    "f.capture_id, f.label, f.src, f.sport, f.dst, f.dport, f.first_ns, f.last_ns, \
     f.packets, f.bytes, f.payload_bytes, f.flags, f.closed_frame IS NOT NULL, f.flow_no";

/// [`FLOW_COLUMNS`] on SQLite: the label as stored, '' where the row's key and time give it (schema 9), which
/// [`flow_row`] fills in. `stored_label` is a column of traceflow's temporary `flows` view only (store/open.rs).
pub(crate) fn flow_columns_sqlite() -> &'static str {
    static COLUMNS: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| FLOW_COLUMNS.replacen("f.label", "f.stored_label", 1));
    &COLUMNS
}

/// Each capture's name and the decimal places of its times, by capture id.
pub(crate) type CaptureFacts = HashMap<i64, (Arc<str>, u8)>;

/// Each capture's name and timestamp precision, read once per search rather than joined into every row.
fn capture_facts(conn: &Connection) -> Result<CaptureFacts, QueryError> {
    Ok(conn
        .prepare(
            "SELECT c.id, c.name, (SELECT max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE min(tsresol, 9) END)
                                   FROM interfaces i WHERE i.capture_id = c.id)
             FROM captures c",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                (
                    Arc::from(r.get::<_, String>(1)?),
                    r.get::<_, Option<u8>>(2)?.unwrap_or(9),
                ),
            ))
        })?
        .collect::<Result<_, _>>()?)
}

/// A [`FLOW_COLUMNS`] row as a [`FlowRow`]; `None` for a flow whose capture row is gone (deleted in plain SQL),
/// which is not listed, as a join would drop it.
pub(crate) fn flow_row(r: &dyn Cols, caps: &CaptureFacts) -> Result<Option<FlowRow>, QueryError> {
    let capture_id = r.int(0)?;
    let Some((capture, digits)) = caps.get(&capture_id) else {
        return Ok(None);
    };
    let digits = *digits;
    let (first_ns, last_ns) = (r.int(6)?, r.int(7)?);
    let mut text = String::with_capacity(96);
    r.push_text(2, &mut text)?;
    let dst_at = text.len();
    r.push_text(4, &mut text)?;
    let label_at = text.len();
    let (sport, dport) = (port(r.int(3)?)?, port(r.int(5)?)?);
    r.push_text(1, &mut text)?;
    if text.len() == label_at {
        let flow_no = r.int(13)?;
        push_stored_label(&mut text, dst_at, sport, dport, first_ns, || {
            format!("flow {flow_no} of capture {capture_id}")
        })?;
    }
    Ok(Some(FlowRow {
        capture_id,
        capture: capture.clone(),
        text,
        dst_at,
        label_at,
        sport,
        dport,
        packets: r.int(8)?,
        bytes: r.int(9)?,
        payload_bytes: r.int(10)?,
        flag_bits: r.int(11)?,
        closed: r.boolean(12)?,
        digits,
        first_ns,
        last_ns,
        flow_no: r.int(13)?,
    }))
}

/// The label of a row that stores it as '' (schema 9), appended to `text`, which holds the row's two addresses
/// (the destination's from `dst_at`): the `flows` view's rule, from its key and first time. The ingest writes ''
/// only for times from 1970 on; `whose` names the row when a damaged one has none.
fn push_stored_label(
    text: &mut String,
    dst_at: usize,
    sport: u16,
    dport: u16,
    first_ns: i64,
    whose: impl FnOnce() -> String,
) -> Result<(), QueryError> {
    if crate::key::label::push_view_label_after_addrs(text, dst_at, sport, dport, first_ns) {
        Ok(())
    } else {
        Err(QueryError::Corrupt(format!(
            "{} has no label and a time before 1970",
            whose()
        )))
    }
}

/// A port column, refused when the database holds something no port is.
fn port(v: i64) -> Result<u16, QueryError> {
    u16::try_from(v).map_err(|_| QueryError::Corrupt(format!("port {v} is not a TCP port")))
}

/// `LIMIT ?N` with the limit bound as the last of `params`, or nothing without a limit: with a LIMIT clause (even
/// -1) SQLite keeps sorted rows in a B-tree, inserting each one, which is far slower than its sort.
fn limit_clause(limit: Option<u64>, params: &mut Vec<rusqlite::types::Value>) -> String {
    match limit {
        Some(l) => {
            params.push(rusqlite::types::Value::Integer(
                l.min(i64::MAX as u64) as i64
            ));
            format!("LIMIT ?{}", params.len())
        }
        None => String::new(),
    }
}

/// Visits every flow that matches `filter` (a compiled condition on `flows f`), in `sort` order, at most
/// `limit`; rows are read one at a time, so memory does not grow with the matches.
///
/// Time order is the order mergecap would give the flows' first frames: within a capture, flows come as they
/// began in the file (flow_no, which the tracer numbers in frame order), and captures are interleaved by the
/// time of their next flow. For a capture whose clock never goes back this is plain first-time order. It is
/// read as a merge of each capture's flows in primary-key order, a page at a time, so no sort of all matches
/// is needed (sorting 2.9M flows cost SQLite most of the time of listing them).
pub fn search_flows(
    db: &Db,
    filter: &crate::filter::Compiled,
    sort: FlowSort,
    limit: Option<u64>,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.search_flows(filter, sort, limit, visit),
    };
    let caps = capture_facts(conn)?;
    if sort == FlowSort::Time {
        return merge_by_time(conn, filter, &caps, limit, visit);
    }
    let order = match sort {
        FlowSort::Bytes => "f.bytes DESC, f.first_ns, f.capture_id, f.flow_no",
        FlowSort::Packets => "f.packets DESC, f.first_ns, f.capture_id, f.flow_no",
        _ => "f.last_ns - f.first_ns DESC, f.first_ns, f.capture_id, f.flow_no",
    };
    let mut params = filter.params.clone();
    let limit_sql = limit_clause(limit, &mut params);
    let sql = format!(
        "SELECT {} FROM flows f WHERE {} ORDER BY {order} {limit_sql}",
        flow_columns_sqlite(),
        filter.condition,
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        if let Some(row) = flow_row(r, &caps)? {
            visit(row)?;
        }
    }
    Ok(())
}

/// Per capture, the flow numbers (ascending) that a filter's matches are among, read from `flow_buckets`
/// (`trace::buckets`). A capture is missing from the map, and read whole, when it has no buckets (indexed before
/// schema 8), when the filter names no host or port every match has, or when its buckets hold more than a quarter
/// of its flows, 4,096 or more (reading them one by one would then be slower than reading all).
fn bucket_candidates(
    conn: &Connection,
    filter: &crate::filter::Compiled,
) -> Result<HashMap<i64, Vec<i64>>, QueryError> {
    Ok(candidates(conn, filter, false)?
        .into_iter()
        .map(|(cid, (nos, _))| (cid, nos))
        .collect())
}

/// [`bucket_candidates`], each capture's with a flag: true when they are exactly its matches (the filter's
/// buckets are exact and every set of them was read). `for_count` keeps even a set that holds most of a
/// capture's flows when the filter's buckets are exact, since counting a list is still quicker than SQL.
fn candidates(
    conn: &Connection,
    filter: &crate::filter::Compiled,
    for_count: bool,
) -> Result<HashMap<i64, (Vec<i64>, bool)>, QueryError> {
    use crate::key::buckets::{NET16_BASE, WITH_NET16};
    let mut out = HashMap::new();
    if filter.buckets.is_empty() {
        return Ok(out);
    }
    let caps: Vec<(i64, i64, i64)> = conn
        .prepare("SELECT id, flows, has_buckets FROM captures WHERE has_buckets >= 1")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    // A range of buckets at a time: a /8 is 256 consecutive /16 buckets, and one query for each took most of its
    // count's time.
    let mut st = conn.prepare_cached(BUCKET_LISTS_SQL)?;
    let keep_large = for_count && filter.exact;
    'capture: for (cid, flows, has) in caps {
        let mut cands: Option<Vec<i64>> = None;
        let mut exact = filter.exact;
        for set in &filter.buckets {
            // A capture indexed before the /16 buckets has none of them: such a set says nothing about it.
            if has < WITH_NET16 && set.iter().any(|&b| b >= NET16_BASE) {
                exact = false;
                continue;
            }
            let mut lists = Vec::new();
            for (lo, hi) in runs(set) {
                let mut rows = st.query(params![cid, lo, hi])?;
                while let Some(r) = rows.next()? {
                    lists.push(r.get_ref(0)?.as_blob().unwrap_or(&[]).to_vec());
                }
            }
            // Each number ends in a byte below 0x80: how many there are, before decoding any.
            let listed: usize = lists
                .iter()
                .map(|l| l.iter().filter(|&&b| b < 0x80).count())
                .sum();
            // Small captures always take their candidates (either way is quick), which also lets the corpus's
            // tests check this path on every capture.
            if !keep_large && flows >= 4096 && listed as i64 > flows / 4 {
                exact = false;
                continue;
            }
            let mut union = Vec::with_capacity(listed);
            for l in &lists {
                if crate::key::buckets::decode_into(l, &mut union).is_none() {
                    continue 'capture;
                }
            }
            union = ascending_distinct(union);
            cands = Some(match cands {
                None => union,
                Some(c) => intersect(&c, &union),
            });
        }
        if let Some(c) = cands {
            out.insert(cid, (c, exact));
        }
    }
    Ok(out)
}

/// The stored lists of a capture's buckets `?2..=?3`.
const BUCKET_LISTS_SQL: &str =
    "SELECT flow_nos FROM flow_buckets WHERE capture_id = ?1 AND bucket >= ?2 AND bucket <= ?3";

/// Ascending bucket numbers as runs of consecutive ones, first and last.
fn runs(set: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &b in set {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(b) => *hi = b,
            _ => out.push((b, b)),
        }
    }
    out
}

/// Flow numbers (each below 2^32) in ascending order, each once. Lists of many buckets (a /8 is 256) are merged
/// through a bitmap of the capture's flow numbers when it is small beside them: sorting 2.6M numbers of a /8 took
/// 100 ms of a 140 ms count.
fn ascending_distinct(mut nos: Vec<i64>) -> Vec<i64> {
    let max = nos.iter().copied().max().unwrap_or(0).max(0) as usize;
    if max / 64 > nos.len() || nos.windows(2).all(|w| w[0] < w[1]) {
        nos.sort_unstable();
        nos.dedup();
        return nos;
    }
    let mut bits = vec![0u64; max / 64 + 1];
    for &n in &nos {
        if let Ok(n) = usize::try_from(n) {
            bits[n / 64] |= 1 << (n % 64);
        }
    }
    nos.clear();
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            nos.push((w * 64 + word.trailing_zeros() as usize) as i64);
            word &= word - 1;
        }
    }
    nos
}

/// The numbers in both of two ascending lists.
fn intersect(a: &[i64], b: &[i64]) -> Vec<i64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The query of a page of candidates: the filter's parameters, the capture id, then the candidates as a JSON
/// array (json_each: one bound value whatever their number). CROSS JOIN makes the candidates the outer loop, each
/// one primary-key lookup: with `f.flow_no IN (...)` SQLite preferred flows_first_ns for a `before T` filter,
/// reading every earlier flow of the capture (0.04 s became 0.3 s on the search benchmark).
fn candidate_sql(filter: &crate::filter::Compiled, select: &str) -> String {
    let n = filter.params.len();
    format!(
        "SELECT {select} FROM json_each(?{}) j CROSS JOIN flows f
         WHERE f.capture_id = ?{} AND f.flow_no = j.value AND ({})",
        n + 2,
        n + 1,
        filter.condition
    )
}

/// `nos` as a JSON array.
fn json_list(nos: &[i64]) -> String {
    serde_json::to_string(nos).unwrap_or_else(|_| "[]".into())
}

/// Flows of one capture read per query by [`merge_by_time`].
pub(crate) const PAGE: i64 = 1024;

/// The query of one page of a capture's matching flows (`select` of `flows f`, in flow_no order): the filter's
/// parameters, then the capture id and the last flow_no. PostgreSQL runs the same through `pg::read::dollars`.
pub(crate) fn page_sql(filter: &crate::filter::Compiled, select: &str) -> String {
    let n = filter.params.len();
    format!(
        "SELECT {select} FROM flows f
         WHERE f.capture_id = ?{} AND f.flow_no > ?{} AND ({})
         ORDER BY f.flow_no LIMIT {PAGE}",
        n + 1,
        n + 2,
        filter.condition
    )
}

/// How SQLite runs a search (`flows --explain`): the SQL of the time-ordered page and of the count, each with
/// its `EXPLAIN QUERY PLAN` lines, so a user (and the benchmark) can see which index a filter uses.
pub fn explain_flows(
    db: &Db,
    filter: &crate::filter::Compiled,
) -> Result<Vec<(String, Vec<String>)>, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.explain_flows(filter),
    };
    let mut params = filter.params.clone();
    params.push(rusqlite::types::Value::Integer(1));
    params.push(rusqlite::types::Value::Integer(0));
    let count = format!("SELECT count(*) FROM flows f WHERE {}", filter.condition);
    let mut queries = vec![
        (page_sql(filter, flow_columns_sqlite()), params.clone()),
        (count, filter.params.clone()),
    ];
    if !filter.buckets.is_empty() {
        // A capture with flow buckets reads its candidates instead (the page above is for the others).
        let mut p = filter.params.clone();
        p.push(rusqlite::types::Value::Integer(1));
        p.push(rusqlite::types::Value::Text("[1]".into()));
        let sets: Vec<String> = filter.buckets.iter().map(|s| format!("{s:?}")).collect();
        queries.insert(
            0,
            (
                format!(
                    "-- candidates: flows in one of the buckets {} of flow_buckets\n{} ORDER BY f.flow_no",
                    sets.join(" and one of "),
                    candidate_sql(filter, flow_columns_sqlite())
                ),
                p,
            ),
        );
        // The lists themselves, read a run of consecutive buckets at a time; with exact buckets (`net` from /8 to
        // /16), --count is their size and runs no other SQL on captures that have them.
        let first = filter.buckets[0].first().copied().unwrap_or(0);
        let note = if filter.exact {
            "-- the lists (--count: exact, counted from them alone)"
        } else {
            "-- the lists"
        };
        queries.insert(
            0,
            (
                format!("{note}\n{BUCKET_LISTS_SQL}"),
                vec![
                    rusqlite::types::Value::Integer(1),
                    rusqlite::types::Value::Integer(i64::from(first)),
                    rusqlite::types::Value::Integer(i64::from(first)),
                ],
            ),
        );
    }
    let mut out = Vec::new();
    for (sql, p) in &queries {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                r.get::<_, String>(3)
            })?
            .collect::<Result<_, _>>()?;
        out.push((sql.clone(), plan));
    }
    Ok(out)
}

/// `page(capture, after, into)` of [`merge_pages`].
pub(crate) type PageFn<'a> =
    dyn FnMut(i64, i64, &mut std::collections::VecDeque<FlowRow>) -> Result<bool, QueryError> + 'a;

/// The merge of [`search_flows`] in time order: `pending` lists (first frame time, capture id) of the captures in
/// that order; `page(capture, after, into)` appends the capture's next matching flows after flow_no `after`, in
/// flow_no order, and says whether more may follow. Flows come out by (first time, capture id, flow_no) of each
/// capture's next flow, at most `limit`.
pub(crate) fn merge_pages(
    mut pending: std::collections::VecDeque<(i64, i64)>,
    limit: Option<u64>,
    page: &mut PageFn,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, VecDeque};
    // Per capture under way: its fetched rows, the last flow_no fetched, and whether more may follow.
    let mut queues: HashMap<i64, (VecDeque<FlowRow>, i64, bool)> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(i64, i64, i64)>> = BinaryHeap::new();
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let next = heap.peek().map(|Reverse(e)| e.0);
        if let Some(&(first_ns, cid)) = pending.front() {
            if next.is_none_or(|t| first_ns <= t) {
                pending.pop_front();
                let mut q = VecDeque::new();
                let more = page(cid, 0, &mut q)?;
                if let Some(h) = q.front() {
                    heap.push(Reverse((h.first_ns, cid, h.flow_no)));
                    let last = q.back().map_or(0, |r| r.flow_no);
                    queues.insert(cid, (q, last, more));
                }
                continue;
            }
        }
        let Some(Reverse((_, cid, _))) = heap.pop() else {
            break;
        };
        let Some((q, last, more)) = queues.get_mut(&cid) else {
            continue;
        };
        let Some(row) = q.pop_front() else {
            continue;
        };
        if q.is_empty() && *more {
            *more = page(cid, *last, q)?;
            if let Some(b) = q.back() {
                *last = b.flow_no;
            }
        }
        match q.front() {
            Some(h) => heap.push(Reverse((h.first_ns, cid, h.flow_no))),
            None => {
                queues.remove(&cid);
            }
        }
        visit(row)?;
        left -= 1;
    }
    Ok(())
}

/// [`search_flows`] in time order: each capture's matching flows in flow_no order, a page at a time, merged by
/// (first time, capture id, flow_no) of each capture's next flow. Long listings read pages ahead on helper
/// threads (`prefetch`), one per core beyond this one.
fn merge_by_time(
    conn: &Connection,
    filter: &crate::filter::Compiled,
    caps: &CaptureFacts,
    limit: Option<u64>,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let cands = bucket_candidates(conn, filter)?;
    let pending = sqlite_captures_by_time(conn)?;
    let mark = snapshot_mark(conn)?;
    let path = db_path(conn);
    // Helper connections pin snapshots of their own, and a listing read slowly while `forget` ran still mixed
    // theirs with this one's (hardening's listing-during-forget test): until they can share this connection's
    // snapshot, a listing reads alone. Counts keep their threads (`count_flows`).
    let helpers = 0usize;
    // A short listing is over before a helper's connection is open.
    let short = limit.is_some_and(|l| l <= PAGE as u64 * 4);
    let (Some(path), false, 1..) = (path, short, helpers) else {
        let mut pages = Pages::new(conn, filter, caps, &cands)?;
        return merge_pages(pending, limit, &mut |c, a, i| pages.read(c, a, i), visit);
    };
    let ahead = super::prefetch::Prefetch::default();
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|| {
                // A helper that cannot open or prepare, or reads another snapshot than the listing's, leaves its
                // pages to the listing thread.
                let Ok(c) = super::open_read(&path) else {
                    return;
                };
                if snapshot_mark(&c).ok().as_ref() != Some(&mark) {
                    return;
                }
                let Ok(mut pages) = Pages::new(&c, filter, caps, &cands) else {
                    return;
                };
                ahead.serve(&mut |cid, after, into| pages.read(cid, after, into));
            });
        }
        let _stop = ahead.stop_on_drop();
        Pages::new(conn, filter, caps, &cands).and_then(|mut pages| {
            let mut mine = |cid, after, into: &mut std::collections::VecDeque<FlowRow>| {
                pages.read(cid, after, into)
            };
            merge_pages(
                pending,
                limit,
                &mut |cid, after, into| ahead.page(cid, after, into, &mut mine),
                visit,
            )
        })
    })
}

/// Reads pages of matching flows of one capture at a time, through one connection's statements.
struct Pages<'c> {
    st: rusqlite::Statement<'c>,
    st_cands: rusqlite::Statement<'c>,
    filter: &'c crate::filter::Compiled,
    caps: &'c CaptureFacts,
    cands: &'c HashMap<i64, Vec<i64>>,
    params: Vec<rusqlite::types::Value>,
}

impl<'c> Pages<'c> {
    fn new(
        conn: &'c Connection,
        filter: &'c crate::filter::Compiled,
        caps: &'c CaptureFacts,
        cands: &'c HashMap<i64, Vec<i64>>,
    ) -> Result<Pages<'c>, QueryError> {
        Ok(Pages {
            st: conn.prepare(&page_sql(filter, flow_columns_sqlite()))?,
            st_cands: conn.prepare(&format!(
                "{} ORDER BY f.flow_no",
                candidate_sql(filter, flow_columns_sqlite())
            ))?,
            filter,
            caps,
            cands,
            params: filter.params.clone(),
        })
    }

    /// Appends capture `cid`'s next matching flows after flow_no `after` to `into`; says whether more may follow.
    fn read(
        &mut self,
        cid: i64,
        after: i64,
        into: &mut std::collections::VecDeque<FlowRow>,
    ) -> Result<bool, QueryError> {
        let n = self.filter.params.len();
        if let Some(c) = self.cands.get(&cid) {
            // The next PAGE candidates after `after`, until one of them matches or none are left.
            let mut at = c.partition_point(|&no| no <= after);
            while at < c.len() && into.is_empty() {
                let chunk = &c[at..c.len().min(at + PAGE as usize)];
                at += chunk.len();
                self.params.truncate(n);
                self.params.push(rusqlite::types::Value::Integer(cid));
                self.params
                    .push(rusqlite::types::Value::Text(json_list(chunk)));
                let mut rows = self
                    .st_cands
                    .query(rusqlite::params_from_iter(self.params.iter()))?;
                while let Some(r) = rows.next()? {
                    if let Some(row) = flow_row(r, self.caps)? {
                        into.push_back(row);
                    }
                }
            }
            return Ok(at < c.len());
        }
        self.params.truncate(n);
        self.params.push(rusqlite::types::Value::Integer(cid));
        self.params.push(rusqlite::types::Value::Integer(after));
        let mut rows = self
            .st
            .query(rusqlite::params_from_iter(self.params.iter()))?;
        let mut got = 0;
        while let Some(r) = rows.next()? {
            got += 1;
            if let Some(row) = flow_row(r, self.caps)? {
                into.push_back(row);
            }
        }
        Ok(got == PAGE)
    }
}

/// What `traceflow flows --group-by` makes one row of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// The source address.
    Src,
    /// The destination address.
    Dst,
    /// The two addresses, either way round (as tshark's `-z conv` pairs them): columns `a` and `b`, `a` the lower.
    Pair,
    /// The source port.
    Sport,
    /// The destination port.
    Dport,
    /// The capture.
    Capture,
}

impl GroupBy {
    /// The group's columns: (name, SQL expression on `flows f` / `captures c`).
    pub(crate) fn keys(self) -> &'static [(&'static str, &'static str)] {
        match self {
            GroupBy::Src => &[("src", "f.src")],
            GroupBy::Dst => &[("dst", "f.dst")],
            // Ordered by the sortable key, so that 10.0.0.2 < 10.0.0.10 and each pair has one spelling.
            GroupBy::Pair => &[
                (
                    "a",
                    "CASE WHEN f.src_key <= f.dst_key THEN f.src ELSE f.dst END",
                ),
                (
                    "b",
                    "CASE WHEN f.src_key <= f.dst_key THEN f.dst ELSE f.src END",
                ),
            ],
            GroupBy::Sport => &[("sport", "f.sport")],
            GroupBy::Dport => &[("dport", "f.dport")],
            GroupBy::Capture => &[("capture", "c.name")],
        }
    }
}

/// One row of `traceflow flows --group-by`: the group's key columns, then its totals.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupRow {
    /// The key columns, by name (`src`, `a` and `b`, `dport`, ...).
    pub keys: Vec<(&'static str, serde_json::Value)>,
    /// Flows in the group.
    pub flows: i64,
    /// Their frames.
    pub packets: i64,
    /// Sum of their frames' original lengths.
    pub bytes: i64,
    /// Sum of their TCP segment lengths.
    pub payload_bytes: i64,
    /// The earliest first frame time, RFC 3339 UTC with the finest precision of the group's captures.
    pub first_time: String,
    /// The latest last frame time, likewise.
    pub last_time: String,
}

impl Serialize for GroupRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.keys.len() + 6))?;
        for (k, v) in &self.keys {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("flows", &self.flows)?;
        m.serialize_entry("packets", &self.packets)?;
        m.serialize_entry("bytes", &self.bytes)?;
        m.serialize_entry("payload_bytes", &self.payload_bytes)?;
        m.serialize_entry("first_time", &self.first_time)?;
        m.serialize_entry("last_time", &self.last_time)?;
        m.end()
    }
}

/// Visits one row per group of the flows that match `filter`, most bytes first (then by key), at most `limit`.
/// SQLite aggregates, so memory grows with the number of groups, not of flows.
pub fn group_flows(
    db: &Db,
    filter: &crate::filter::Compiled,
    by: GroupBy,
    limit: Option<u64>,
    visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.group_flows(filter, by, limit, visit),
    };
    let keys = by.keys();
    let select: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let group: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
    let mut params = filter.params.clone();
    let limit_sql = limit_clause(limit, &mut params);
    let n = keys.len();
    // Captures with bucket candidates give those flows, the others all theirs (as `search_flows` reads them).
    let cands = bucket_candidates(conn, filter)?;
    let source = if cands.is_empty() {
        "flows".to_string()
    } else {
        let mut obj = String::from("{");
        for (i, (cid, nos)) in cands.iter().enumerate() {
            if i > 0 {
                obj.push(',');
            }
            obj.push_str(&format!("\"{cid}\":{}", json_list(nos)));
        }
        obj.push('}');
        let others: Vec<i64> = conn
            .prepare("SELECT id FROM captures")?
            .query_map([], |r| r.get(0))?
            .filter_map(|r| r.ok())
            .filter(|id| !cands.contains_key(id))
            .collect();
        params.push(rusqlite::types::Value::Text(obj));
        params.push(rusqlite::types::Value::Text(json_list(&others)));
        format!(
            "(SELECT fl.* FROM json_each(?{a}) c CROSS JOIN json_each(c.value) j CROSS JOIN flows fl
                ON fl.capture_id = CAST(c.key AS INTEGER) AND fl.flow_no = j.value
              UNION ALL
              SELECT fl.* FROM flows fl WHERE fl.capture_id IN (SELECT value FROM json_each(?{b})))",
            a = params.len() - 1,
            b = params.len()
        )
    };
    let sql = format!(
        "WITH d(capture_id, digits) AS (
             SELECT capture_id, max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE min(tsresol, 9) END)
             FROM interfaces GROUP BY capture_id)
         SELECT {}, count(*), sum(f.packets), sum(f.bytes), sum(f.payload_bytes), min(f.first_ns), max(f.last_ns),
                max(coalesce(d.digits, 9))
         FROM {source} f JOIN captures c ON c.id = f.capture_id LEFT JOIN d ON d.capture_id = f.capture_id
         WHERE {}
         GROUP BY {}
         ORDER BY {} DESC, {} {limit_sql}",
        select.join(", "),
        filter.condition,
        group.join(", "),
        n + 3,
        group.join(", "),
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        visit(group_row(r, keys)?)?;
    }
    Ok(())
}

/// A row of [`group_flows`]' query: the keys, then flows, packets, bytes, payload, first and last time, digits.
pub(crate) fn group_row(
    r: &dyn Cols,
    keys: &[(&'static str, &'static str)],
) -> Result<GroupRow, QueryError> {
    let n = keys.len();
    let mut kv = Vec::with_capacity(n);
    for (i, (name, _)) in keys.iter().enumerate() {
        kv.push((*name, r.key(i)?));
    }
    // Column n + 6, the captures' finest precision, is not printed: listings print LISTING_DIGITS.
    let digits = LISTING_DIGITS;
    Ok(GroupRow {
        keys: kv,
        flows: r.int(n)?,
        packets: r.int(n + 1)?,
        bytes: r.int(n + 2)?,
        payload_bytes: r.int(n + 3)?,
        first_time: crate::capture::Timestamp::from_ns(r.int(n + 4)?, digits).rfc3339(),
        last_time: crate::capture::Timestamp::from_ns(r.int(n + 5)?, digits).rfc3339(),
    })
}

/// How many flows match `filter`.
pub fn count_flows(db: &Db, filter: &crate::filter::Compiled) -> Result<i64, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.count_flows(filter),
    };
    let cands = candidates(conn, filter, true)?;
    // The captures with candidates count those (exact ones by their number), the others all their flows, a range
    // of flow numbers at a time.
    let caps: Vec<(i64, i64)> = conn
        .prepare("SELECT id, flows FROM captures ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let n = filter.params.len();
    let mut params = filter.params.clone();
    let mut by_cands = conn.prepare(&candidate_sql(filter, "count(*)"))?;
    let mut total: i64 = 0;
    let mut ranges = Vec::new();
    let whole: i64 = caps
        .iter()
        .filter(|(cid, _)| !cands.contains_key(cid))
        .map(|&(_, flows)| flows.max(0))
        .sum();
    let threads = count_threads(whole);
    let span = (whole / (threads as i64 * 4)).max(1 << 16);
    for &(cid, flows) in &caps {
        match cands.get(&cid) {
            Some((c, true)) => total += c.len() as i64,
            Some((c, false)) => {
                for chunk in c.chunks(4096) {
                    params.truncate(n);
                    params.push(rusqlite::types::Value::Integer(cid));
                    params.push(rusqlite::types::Value::Text(json_list(chunk)));
                    total += by_cands
                        .query_row(rusqlite::params_from_iter(params.iter()), |r| {
                            r.get::<_, i64>(0)
                        })?;
                }
            }
            None => {
                // The last range is open: `captures.flows` is what the ingest wrote, not a bound SQL keeps.
                let mut lo = i64::MIN;
                loop {
                    let hi = lo.max(0).saturating_add(span);
                    if hi >= flows {
                        ranges.push((cid, lo, i64::MAX));
                        break;
                    }
                    ranges.push((cid, lo, hi));
                    lo = hi;
                }
            }
        }
    }
    let sql = format!(
        "SELECT count(*) FROM flows f WHERE f.capture_id = ?{} AND f.flow_no > ?{} AND f.flow_no <= ?{} AND ({})",
        n + 1,
        n + 2,
        n + 3,
        filter.condition
    );
    let count_ranges = |conn: &Connection, next: &std::sync::atomic::AtomicUsize| {
        let mut st = conn.prepare(&sql)?;
        let mut params = filter.params.clone();
        let mut sum = 0i64;
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&(cid, lo, hi)) = ranges.get(i) else {
                return Ok::<i64, QueryError>(sum);
            };
            params.truncate(n);
            params.extend([cid, lo, hi].map(rusqlite::types::Value::Integer));
            sum += st.query_row(rusqlite::params_from_iter(params.iter()), |r| {
                r.get::<_, i64>(0)
            })?;
        }
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mark = snapshot_mark(conn)?;
    match db_path(conn) {
        Some(path) if threads > 1 => {
            // Each helper thread reads through its own connection; this one counts too.
            let sums = std::thread::scope(|scope| {
                let helpers: Vec<_> = (1..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            // A helper that cannot open the database, or reads another snapshot than this
                            // thread's, leaves its ranges to the others.
                            match super::open_read(&path) {
                                Ok(c) if snapshot_mark(&c).ok().as_ref() == Some(&mark) => {
                                    count_ranges(&c, &next)
                                }
                                _ => Ok(0),
                            }
                        })
                    })
                    .collect();
                let mine = count_ranges(conn, &next);
                let mut all = vec![mine];
                for h in helpers {
                    all.push(h.join().unwrap_or_else(|_| {
                        Err(QueryError::Corrupt("a counting thread panicked".into()))
                    }));
                }
                all
            });
            for s in sums {
                total += s?;
            }
        }
        _ => total += count_ranges(conn, &next)?,
    }
    Ok(total)
}

/// Threads for counting `flows` rows: one per core (at most 8), and one for fewer than 200,000 rows, where a
/// second connection's start costs more than it saves.
fn count_threads(rows: i64) -> usize {
    if rows < 200_000 {
        return 1;
    }
    cores()
}

/// Cores to read on (at most 8): the threads that split a long read between connections.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// What a read transaction sees of the captures (their ids and contents): helper threads read through their own
/// connections, each in its own snapshot, and help only when theirs shows the same captures as the command's
/// (flows change only with their capture: an ingest or a `forget`).
fn snapshot_mark(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT coalesce(group_concat(id || ':' || coalesce(hash, ''), ','), '')
         FROM (SELECT id, hash FROM captures ORDER BY id)",
        [],
        |r| r.get(0),
    )
}

/// The file of `conn`'s main database, which helper threads open their own connections to; `None` in memory.
fn db_path(conn: &Connection) -> Option<std::path::PathBuf> {
    conn.path()
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
}

/// One connection as `traceflow connections` lists it (a `connections` row, with its flows' labels).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ConnRow {
    /// The capture's id.
    #[serde(skip)]
    pub capture_id: i64,
    /// The capture's name.
    pub capture: String,
    /// The connection's number in its capture, from 1 (tshark's `tcp.stream` + 1 within that capture).
    pub conn: i64,
    /// Community ID v1.
    pub community_id: String,
    /// Originator address (the sender of the first SYN without ACK, else of the first frame).
    pub orig_h: String,
    /// Originator port.
    pub orig_p: u16,
    /// Responder address.
    pub resp_h: String,
    /// Responder port.
    pub resp_p: u16,
    /// First frame time, RFC 3339 UTC with [`LISTING_DIGITS`] places.
    pub first_time: String,
    /// Last frame time, likewise.
    pub last_time: String,
    /// Last minus first frame time, in seconds (exact decimal).
    pub duration: String,
    /// Frames from the originator.
    pub orig_pkts: i64,
    /// Their TCP payload bytes (Zeek's orig_bytes).
    pub orig_bytes: i64,
    /// Their wire lengths, summed.
    pub orig_frame_bytes: i64,
    /// Frames from the responder.
    pub resp_pkts: i64,
    /// Their TCP payload bytes.
    pub resp_bytes: i64,
    /// Their wire lengths, summed.
    pub resp_frame_bytes: i64,
    /// Zeek's conn_state.
    pub conn_state: String,
    /// Zeek's history.
    pub history: String,
    /// Labels of the directed flows holding its frames.
    pub flows: Vec<String>,
}

/// The SQL condition "some flow of connection `x` matches `filter`" (a compiled condition on `flows f`): a
/// connection matches when either of its directions does. CROSS JOIN makes the connection's flow numbers the
/// outer loop, each one primary-key lookup: with `f.flow_no IN (...)` SQLite chose flows_first_ns for a
/// `before T` filter and read every earlier flow of the capture for each connection (quadratic time).
fn conn_condition(filter: &crate::filter::Compiled) -> String {
    format!(
        "EXISTS (SELECT 1 FROM json_each('[' || x.flows || ']') j CROSS JOIN flows f
                 WHERE f.capture_id = x.capture_id AND f.flow_no = j.value AND ({}))",
        filter.condition
    )
}

/// The query of [`count_connections`] on SQLite.
fn conn_count_sql(filter: &crate::filter::Compiled) -> String {
    format!(
        "SELECT count(*) FROM connections x WHERE {}",
        conn_condition(filter)
    )
}

/// The ORDER BY of a connection listing.
pub(crate) fn conn_order(sort: FlowSort) -> &'static str {
    match sort {
        FlowSort::Time => "x.first_ns, x.capture_id, x.conn_no",
        FlowSort::Bytes => {
            "x.orig_frame_bytes + x.resp_frame_bytes DESC, x.first_ns, x.capture_id, x.conn_no"
        }
        FlowSort::Packets => "x.orig_pkts + x.resp_pkts DESC, x.first_ns, x.capture_id, x.conn_no",
        FlowSort::Duration => "x.last_ns - x.first_ns DESC, x.first_ns, x.capture_id, x.conn_no",
    }
}

/// Visits every connection that has a flow matching `filter`, in `sort` order (time: first frame; bytes and
/// packets: both directions together), at most `limit`, one row at a time.
pub fn search_connections(
    db: &Db,
    filter: &crate::filter::Compiled,
    sort: FlowSort,
    limit: Option<u64>,
    visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.search_connections(filter, sort, limit, visit),
    };
    let mut params = filter.params.clone();
    params.push(rusqlite::types::Value::Integer(
        limit.map(|l| l.min(i64::MAX as u64) as i64).unwrap_or(-1),
    ));
    let sql = conn_list_sql(filter, sort, params.len());
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        // A capture deleted between the two reads of its row is not listed.
        if r.opt_text(1)?.is_some() {
            visit(conn_row(r)?)?;
        }
    }
    Ok(())
}

/// The query of [`search_connections`] on SQLite, in `sort` order, its limit the parameter `?limit_param`.
fn conn_list_sql(filter: &crate::filter::Compiled, sort: FlowSort, limit_param: usize) -> String {
    let order = conn_order(sort);
    // The capture's name comes from a scalar subquery, not a join: with `JOIN captures` SQLite chose to scan
    // connections through connections_community_id, in hash order, so every flow lookup of the labels landed
    // on another page (listing the benchmark's 1M connections: 28 s). `capture_id IN (captures)` keeps the
    // join's meaning and reads each capture's connections in key order.
    format!(
        "SELECT x.capture_id, (SELECT c.name FROM captures c WHERE c.id = x.capture_id), x.conn_no,
                x.community_id, x.orig_h, x.orig_p, x.resp_h, x.resp_p,
                x.first_ns, x.last_ns, x.orig_pkts, x.orig_bytes, x.orig_frame_bytes, x.resp_pkts, x.resp_bytes,
                x.resp_frame_bytes, x.conn_state, x.history,
                (SELECT group_concat(label, char(10)) FROM
                    (SELECT f.label FROM flows f WHERE f.capture_id = x.capture_id
                     AND f.flow_no IN (SELECT value FROM json_each('[' || x.flows || ']')) ORDER BY f.first_frame)),
                (SELECT max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE min(tsresol, 9) END)
                 FROM interfaces i WHERE i.capture_id = x.capture_id)
         FROM connections x
         WHERE {} AND x.capture_id IN (SELECT id FROM captures)
         ORDER BY {order} LIMIT ?{}",
        conn_condition(filter),
        limit_param
    )
}

/// A row of [`search_connections`]' query as a [`ConnRow`].
pub(crate) fn conn_row(r: &dyn Cols) -> Result<ConnRow, QueryError> {
    // Column 19, the capture's precision, is not printed: listings print LISTING_DIGITS.
    let digits = LISTING_DIGITS;
    let (first_ns, last_ns) = (r.int(8)?, r.int(9)?);
    let labels = r.opt_text(18)?;
    Ok(ConnRow {
        capture_id: r.int(0)?,
        capture: r.text(1)?,
        conn: r.int(2)?,
        community_id: r.text(3)?,
        orig_h: r.text(4)?,
        orig_p: port(r.int(5)?)?,
        resp_h: r.text(6)?,
        resp_p: port(r.int(7)?)?,
        first_time: crate::capture::Timestamp::from_ns(first_ns, digits).rfc3339(),
        last_time: crate::capture::Timestamp::from_ns(last_ns, digits).rfc3339(),
        duration: crate::capture::duration_text(first_ns, last_ns, digits),
        orig_pkts: r.int(10)?,
        orig_bytes: r.int(11)?,
        orig_frame_bytes: r.int(12)?,
        resp_pkts: r.int(13)?,
        resp_bytes: r.int(14)?,
        resp_frame_bytes: r.int(15)?,
        conn_state: r.text(16)?,
        history: r.text(17)?,
        flows: labels
            .map(|l| l.split('\n').map(String::from).collect())
            .unwrap_or_default(),
    })
}

/// How many connections have a flow matching `filter`.
pub fn count_connections(db: &Db, filter: &crate::filter::Compiled) -> Result<i64, QueryError> {
    let conn = match db {
        Db::Sqlite(c) => c,
        Db::Postgres(p) => return p.count_connections(filter),
    };
    Ok(conn.query_row(
        &conn_count_sql(filter),
        rusqlite::params_from_iter(filter.params.iter()),
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The hand-written JSON of a flow row is serde_json's, byte for byte, whatever its strings and numbers
        /// (quotes, backslashes, control characters, non-ASCII; times before 1970 and past the calendar).
        #[test]
        fn flow_json_is_serdes(
            capture in "\\PC{0,12}|[\\x00-\\x7f]{0,12}",
            label in "\\PC{0,12}|[\\x00-\\x7f]{0,12}",
            src in "[0-9a-f.:\"\\\\]{0,8}",
            nums in proptest::array::uniform5(proptest::prelude::any::<i64>()),
            ports in proptest::prelude::any::<(u16, u16)>(),
            flag_bits in 0i64..0x400,
            closed in proptest::prelude::any::<bool>(),
            digits in 0u8..=9,
            first_ns in proptest::prop_oneof![-4_000_000_000_000_000_000i64..4_000_000_000_000_000_000, 1_700_000_000_000_000_000i64..1_700_000_100_000_000_000],
            span in 0i64..1_000_000_000_000,
        ) {
            let row = FlowRow {
                capture_id: nums[0],
                capture: Arc::from(capture.as_str()),
                dst_at: src.len(),
                label_at: 2 * src.len(),
                text: format!("{src}{src}{label}"),
                sport: ports.0,
                dport: ports.1,
                packets: nums[1],
                bytes: nums[2],
                payload_bytes: nums[3],
                flag_bits,
                closed,
                digits,
                first_ns,
                last_ns: first_ns.saturating_add(span),
                flow_no: nums[4],
            };
            let mut mine = Vec::new();
            row.write_json(&mut mine);
            proptest::prop_assert_eq!(String::from_utf8(mine).unwrap(), serde_json::to_string(&row).unwrap());
        }
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn label_time_ranges_cover_the_first_frame_time() {
        let (lo, hi) = label_time_range("10.0.0.1_1637-10.0.0.2_21477-1385474294.492448").unwrap();
        let ns = 1_385_474_294_492_448_000i64;
        assert!(lo <= ns && ns <= hi && hi - lo < 2_000, "{lo}..{hi}");
        let (lo, hi) = label_time_range("2001.db8..1_80-..ffff.192.0.2.1_443-1e-05").unwrap();
        assert!(lo <= 10_000 && 10_000 <= hi);
        assert_eq!(label_time_range("not a label"), None);
    }

    /// A database of `n` connections in each of two captures, two flows each, flow times rising by 1 ms.
    fn conn_db(dir: &std::path::Path, n: i64) -> Connection {
        let c = crate::store::open(&dir.join(format!("c{n}.db"))).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO captures (id, name, path, size) VALUES (1, 'a', '/a', 1), (2, 'b', '/b', 1);
             WITH RECURSIVE k(cid, i) AS (SELECT 1, 1 UNION ALL SELECT 2, 1
                                          UNION ALL SELECT cid, i + 1 FROM k WHERE i < {flows})
             INSERT INTO flow_rows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame,
                                    closed_frame, packets, bytes, payload_bytes, first_ns, last_ns, flags,
                                    src_key, dst_key, community_id)
             SELECT cid, i, '', '10.0.0.1', 1024 + (i + 1) / 2, '10.0.0.2', 80, i, i, i, 3, 180, 20,
                    1700000000000000000 + i * 1000000, 1700000000000000000 + i * 1000000 + 5, 18,
                    x'00', x'01', '1:x' FROM k;
             WITH RECURSIVE k(cid, i) AS (SELECT 1, 1 UNION ALL SELECT 2, 1
                                          UNION ALL SELECT cid, i + 1 FROM k WHERE i < {n})
             INSERT INTO connections SELECT cid, i, '1:x', '10.0.0.1', 1024 + i, '10.0.0.2', 80, 2 * i - 1, 2 * i,
                    1700000000000000000 + (2 * i - 1) * 1000000, 1700000000000000000 + 2 * i * 1000000 + 5,
                    3, 180, 20, 3, 180, 20, 'SF', 'ShADadFf', (2 * i - 1) || ',' || (2 * i) FROM k;",
            flows = 2 * n
        ))
        .unwrap();
        c
    }

    /// Every filter term keeps a connection search linear in the connections: the flows of each connection are
    /// found by primary key (never through flows_first_ns, which read every earlier flow of the capture for
    /// each connection), and the work a `before T` count does doubles, not quadruples, with the connections.
    #[test]
    fn connection_searches_look_flows_up_by_primary_key_for_every_term() {
        let dir = tempfile::tempdir().unwrap();
        let small = conn_db(dir.path(), 300);
        let terms = [
            "",
            "host 10.0.0.1",
            "src host 10.0.0.2",
            "net 10.0.0.0/8",
            "dst net 10.0.0.0/24",
            "port 80",
            "src port 1100",
            "portrange 1000-2000",
            "after 1700000000.2",
            "before 1700000000.2",
            "before 2000000000",
            "after 2024-01-01 and before 2030-01-01",
            "label 10.0.0.1_1025-10.0.0.2_80-1700000000.001",
            "capture a",
            "community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "syn",
            "fin or rst",
            "open",
            "closed",
            "packets > 2",
            "bytes >= 100",
            "payload < 30",
            "duration > 1ms",
            "not before 1700000000.2",
            "(before 1700000000.2 or port 80) and not host 10.9.9.9",
        ];
        for term in terms {
            let filter = crate::filter::compile(&crate::filter::parse(term, 0).unwrap());
            let mut sqls = vec![(conn_count_sql(&filter), filter.params.clone())];
            for sort in [
                FlowSort::Time,
                FlowSort::Bytes,
                FlowSort::Packets,
                FlowSort::Duration,
            ] {
                let mut p = filter.params.clone();
                p.push(rusqlite::types::Value::Integer(-1));
                sqls.push((conn_list_sql(&filter, sort, p.len()), p));
            }
            for (sql, p) in sqls {
                let plan: Vec<String> = small
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .unwrap()
                    .query_map(rusqlite::params_from_iter(p.iter()), |r| r.get(3))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                for step in &plan {
                    let on_flows =
                        step.contains(" f ") || step.ends_with(" f") || step.contains("flow_rows");
                    assert!(
                        !on_flows
                            || (step.starts_with("SEARCH ")
                                && step
                                    .ends_with(" USING PRIMARY KEY (capture_id=? AND flow_no=?)")),
                        "{term:?}: flows read otherwise than by key: {step}\n{}",
                        plan.join("\n")
                    );
                    assert!(!step.contains("flows_first_ns"), "{term:?}: {step}");
                }
                assert_eq!(
                    plan.iter().filter(|s| s.contains(" x")).count(),
                    1,
                    "{term:?}: {plan:?}"
                );
            }
        }
        // The work itself (SQLite's virtual machine steps) of counting every connection `before T`.
        let steps = |c: &Connection| {
            let filter =
                crate::filter::compile(&crate::filter::parse("before 2000000000", 0).unwrap());
            let mut st = c.prepare(&conn_count_sql(&filter)).unwrap();
            let n: i64 = st
                .query_row(rusqlite::params_from_iter(filter.params.iter()), |r| {
                    r.get(0)
                })
                .unwrap();
            (n, st.get_status(rusqlite::StatementStatus::VmStep))
        };
        let large = conn_db(dir.path(), 1200);
        let ((ns, s), (nl, l)) = (steps(&small), steps(&large));
        assert_eq!((ns, nl), (600, 2400));
        assert!(
            l < s * 5,
            "4x the connections took {l} steps against {s}: not linear"
        );
    }

    #[test]
    fn the_schema_page_shows_the_index_sql_that_runs() {
        let readme = include_str!("../../docs/schema.md");
        let shown = INDEX_SQL.replace("?1", ":capture");
        assert!(
            readme.contains(&format!("{shown};")),
            "docs/schema.md's index SQL differs from query::INDEX_SQL:\n{shown}"
        );
    }
}
