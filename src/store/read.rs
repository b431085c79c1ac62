//! Every SELECT of the read side: capture listings, the flow index tuple (rebuilt from SQL alone, never by
//! re-tracing), label lookups, and the frames of a flow.

use rusqlite::{params, Connection};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("no capture named {0:?} in the database (see `traceflow captures`)")]
    UnknownCapture(String),
    #[error("{name:?} names several captures ({candidates}); give a full path or an id")]
    Ambiguous { name: String, candidates: String },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

#[derive(Clone, Debug, Serialize)]
pub struct CaptureInfo {
    pub id: i64,
    pub name: String,
    pub path: String,
    /// Every path this content was seen under.
    pub paths: Vec<String>,
    pub size: i64,
    pub format: Option<String>,
    pub compression: Option<String>,
    pub linktypes: Option<String>,
    pub frames: i64,
    pub tcp_frames: i64,
    pub flows: i64,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    pub truncated_at: Option<i64>,
    pub truncated_why: Option<String>,
    pub embedded: bool,
    pub hash: Option<String>,
    pub ingested_at: String,
}

/// The columns of `traceflow captures` that fit a terminal.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureBrief {
    pub id: i64,
    pub name: String,
    pub format: String,
    pub linktypes: String,
    pub frames: i64,
    pub flows: i64,
    pub first_time: String,
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

/// ISO 8601 UTC with the stored nanoseconds, e.g. `2013-11-25T14:55:58.387631000Z`.
pub fn iso_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sub = ns.rem_euclid(1_000_000_000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            sub
        ),
        Err(_) => format!("{ns}ns"),
    }
}

pub fn captures(conn: &Connection) -> Result<Vec<CaptureInfo>, QueryError> {
    let mut st = conn.prepare(
        "SELECT id, name, path, size, format, compression, linktypes, frames, tcp_frames, flows, first_ns, last_ns,
                truncated_at, truncated_why, embedded, hash, ingested_at,
                (SELECT group_concat(path, char(10)) FROM capture_paths p WHERE p.capture_id = c.id)
         FROM captures c ORDER BY id",
    )?;
    let rows = st.query_map([], |r| {
        let paths: Option<String> = r.get(17)?;
        Ok(CaptureInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            path: r.get(2)?,
            paths: paths
                .map(|p| p.split('\n').map(String::from).collect())
                .unwrap_or_default(),
            size: r.get(3)?,
            format: r.get(4)?,
            compression: r.get(5)?,
            linktypes: r.get(6)?,
            frames: r.get(7)?,
            tcp_frames: r.get(8)?,
            flows: r.get(9)?,
            first_time: r.get::<_, Option<i64>>(10)?.map(iso_time),
            last_time: r.get::<_, Option<i64>>(11)?.map(iso_time),
            truncated_at: r.get(12)?,
            truncated_why: r.get(13)?,
            embedded: r.get::<_, i64>(14)? != 0,
            hash: r.get(15)?,
            ingested_at: r.get(16)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Finds the capture a user means: an id, a path it was indexed from, or a file's base name.
pub fn resolve_capture(conn: &Connection, sel: &str) -> Result<i64, QueryError> {
    if let Ok(id) = sel.parse::<i64>() {
        let n: i64 = conn.query_row("SELECT count(*) FROM captures WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
        if n == 1 {
            return Ok(id);
        }
    }
    let abs = std::path::absolute(sel)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut st = conn.prepare(
        "SELECT DISTINCT capture_id FROM capture_paths WHERE path = ?1 OR path = ?2
         UNION SELECT id FROM captures WHERE path = ?1 OR path = ?2",
    )?;
    let by_path: Vec<i64> = st
        .query_map(params![sel, abs], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if by_path.len() == 1 {
        return Ok(by_path[0]);
    }
    let mut st = conn.prepare(
        "SELECT DISTINCT capture_id FROM capture_paths WHERE name = ?1 UNION SELECT id FROM captures WHERE name = ?1",
    )?;
    let ids: Vec<i64> = st
        .query_map([sel], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match ids.len() {
        0 => Err(QueryError::UnknownCapture(sel.to_string())),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
    pub fpout: Option<String>,
    pub index: Vec<u64>,
    pub label: String,
}

/// The SQL that yields a capture's index tuple (also printed in the README): one row per flow, in index order.
pub const INDEX_SQL: &str = "SELECT fl.label, g.frames
FROM (SELECT flow_no, group_concat(number ORDER BY number) AS frames
      FROM frames WHERE capture_id = ?1 AND flow_no IS NOT NULL
      GROUP BY flow_no) g
JOIN flows fl ON fl.capture_id = ?1 AND fl.flow_no = g.flow_no
ORDER BY fl.closed_frame IS NOT NULL, coalesce(fl.closed_frame, fl.first_frame)";

/// Visits the index tuple of one capture, or of every capture, row by row from the `flow_index` view: `visit`
/// gets the capture's name, the label and the frame numbers as SQLite's comma-separated text. Nothing is
/// collected, so printing a capture's whole index takes constant memory.
pub fn for_each_index_row(
    conn: &Connection,
    capture: Option<i64>,
    visit: &mut dyn FnMut(&str, &str, &str) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
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
    let mut st = conn.prepare(INDEX_SQL)?;
    for (id, name) in ids {
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            let label = r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            let frames = r
                .get_ref(1)?
                .as_str_or_null()
                .map_err(rusqlite::Error::from)?;
            visit(&name, label, frames.unwrap_or(""))?;
        }
    }
    Ok(())
}

/// The index tuple of one capture, or of every capture (then with the `capture` key set).
pub fn index(conn: &Connection, capture: Option<i64>) -> Result<Vec<IndexEntry>, QueryError> {
    let mut out = Vec::new();
    for_each_index_row(conn, capture, &mut |name, label, frames| {
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

/// The range of `flows.first_ns` a label can come from: its last part is `repr(float(first frame time))`.
///
/// Labels are `{src}_{sport}-{dst}_{dport}-{ts}`; neither address part holds a `-`, so the time follows the second
/// `-` (and may itself hold one: `1e-05`, `-1.5`). The range allows for the float's rounding.
pub fn label_time_range(label: &str) -> Option<(i64, i64)> {
    let (_, rest) = label.split_once('-')?;
    let (_, ts) = rest.split_once('-')?;
    let secs: f64 = ts.parse().ok()?;
    let ns = secs * 1e9;
    if !ns.is_finite() {
        return None;
    }
    // Half an ulp of the f64 seconds, in ns, plus slack for sub-ns resolutions truncated to ns.
    let slack = (secs.abs() * f64::EPSILON * 1e9).max(1.0) + 2.0;
    Some(((ns - slack).floor() as i64, (ns + slack).ceil() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_time_ranges_cover_the_first_frame_time() {
        let (lo, hi) = label_time_range("10.0.0.1_1637-10.0.0.2_21477-1385474294.492448").unwrap();
        let ns = 1_385_474_294_492_448_000i64;
        assert!(lo <= ns && ns <= hi && hi - lo < 2_000, "{lo}..{hi}");
        let (lo, hi) = label_time_range("2001.db8..1_80-..ffff.192.0.2.1_443-1e-05").unwrap();
        assert!(lo <= 10_000 && 10_000 <= hi);
        assert_eq!(label_time_range("not a label"), None);
    }

    #[test]
    fn the_readme_shows_the_index_sql_that_runs() {
        let readme = include_str!("../../README.md");
        let shown = INDEX_SQL.replace("?1", ":capture");
        assert!(
            readme.contains(&format!("{shown};")),
            "README's index SQL differs from query::INDEX_SQL:\n{shown}"
        );
    }
}
