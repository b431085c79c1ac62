//! The read side's SELECTs on SQLite: captures, the index tuple (rebuilt from SQL alone, never by re-tracing),
//! label lookups and the frames of flows and connections, as [`Backend`] asks them. The searches are in
//! [`super::search`].

use std::collections::{HashMap, VecDeque};

use rusqlite::{params, Connection, OptionalExtension};

use super::Sqlite;
use crate::store::backend::{Backend, BucketLists, Caps, CaptureSink, EmbeddedFrames, FrameWalk};
use crate::store::error::{QueryError, StoreError};
use crate::store::rows::{port, push_stored_label};
use crate::store::sink::{CaptureSource, Forgotten};
use crate::store::types::{
    capture_info, CaptureInfo, CapturePath, CaptureRow, FrameRef, Iface, INDEX_ORDER,
};

/// The SQL that yields a capture's index tuple (also printed in the README): one row per flow, in index order.
pub const INDEX_SQL: &str = "SELECT fl.label, g.frames
FROM (SELECT flow_no, group_concat(number ORDER BY number) AS frames
      FROM frames WHERE capture_id = ?1 AND flow_no IS NOT NULL
      GROUP BY flow_no) g
JOIN flows fl ON fl.capture_id = ?1 AND fl.flow_no = g.flow_no
ORDER BY fl.closed_frame IS NOT NULL, coalesce(fl.closed_frame, fl.first_frame)";

/// [`INDEX_SQL`] with the label as stored and what fills it in when it is '' (schema 9): the key and the first
/// frame time. `stored_label` is a column of traceflow's temporary `flows` view only (`open.rs`).
const INDEX_ROWS_SQL: &str =
    "SELECT fl.stored_label, g.frames, fl.src, fl.sport, fl.dst, fl.dport, fl.first_ns
FROM (SELECT flow_no, group_concat(number ORDER BY number) AS frames
      FROM frames WHERE capture_id = ?1 AND flow_no IS NOT NULL
      GROUP BY flow_no) g
JOIN flows fl ON fl.capture_id = ?1 AND fl.flow_no = g.flow_no
ORDER BY fl.closed_frame IS NOT NULL, coalesce(fl.closed_frame, fl.first_frame)";

#[test]
fn index_sql_orders_as_index_order() {
    assert!(INDEX_SQL.ends_with(&format!("ORDER BY {}", INDEX_ORDER.replace("f.", "fl."))));
    let from = |s: &'static str| &s[s.find("\nFROM").unwrap()..];
    assert_eq!(from(INDEX_SQL), from(INDEX_ROWS_SQL));
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

/// The frames of flows (by their `prev_in_flow` chains) and of connections, with the walk prepared once.
struct Walk<'c> {
    conn: &'c Connection,
    st: rusqlite::Statement<'c>,
    flow: rusqlite::Statement<'c>,
}

impl FrameWalk for Walk<'_> {
    fn flow(
        &mut self,
        capture_id: i64,
        flow_no: i64,
        out: &mut Vec<FrameRef>,
        note: &mut dyn FnMut(u64, Option<i64>),
    ) -> Result<(i64, i64), QueryError> {
        let span = self
            .flow
            .query_row(params![capture_id, flow_no], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut rows = self.st.query(params![capture_id, flow_no])?;
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
        Ok(span)
    }

    /// A range scan of the frames between the connection's first and last frame (frames has no index on
    /// conn_no, and needs none for this).
    fn connection(
        &mut self,
        capture_id: i64,
        conn_no: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), QueryError> {
        let mut span = self.conn.prepare_cached(
            "SELECT first_frame, last_frame FROM connections WHERE capture_id = ?1 AND conn_no = ?2",
        )?;
        let mut st = self.conn.prepare_cached(
            "SELECT number, ts_ns, caplen, origlen, iface, file_offset FROM frames
             WHERE capture_id = ?1 AND number BETWEEN ?2 AND ?3 AND conn_no = ?4 ORDER BY number",
        )?;
        let (first, last): (i64, i64) =
            span.query_row(params![capture_id, conn_no], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut rows = st.query(params![capture_id, first, last, conn_no])?;
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
        Ok(())
    }

    fn found_in(&self) -> &'static str {
        "its prev_in_flow chain gives"
    }
}

/// The frame bytes of `frame_data`, through one prepared SELECT.
struct Embedded<'c>(rusqlite::Statement<'c>);

impl EmbeddedFrames for Embedded<'_> {
    fn frame_data(&mut self, capture_id: i64, number: i64) -> Result<Option<Vec<u8>>, QueryError> {
        Ok(self
            .0
            .query_row(params![capture_id, number], |r| r.get(0))
            .optional()?)
    }
}

impl BucketLists for Sqlite {
    fn bucket_captures(&self) -> Result<Vec<(i64, i64, i64)>, QueryError> {
        Ok(self
            .prepare("SELECT id, flows, has_buckets FROM captures WHERE has_buckets >= 1")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn bucket_lists(
        &self,
        capture_id: i64,
        lo: u32,
        hi: u32,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), QueryError> {
        let mut st = self.prepare_cached(super::search::BUCKET_LISTS_SQL)?;
        let mut rows = st.query(params![capture_id, lo, hi])?;
        while let Some(r) = rows.next()? {
            out.push(r.get_ref(0)?.as_blob().unwrap_or(&[]).to_vec());
        }
        Ok(())
    }
}

impl Backend for Sqlite {
    fn caps(&self) -> Caps {
        Caps {
            parked_rows: true,
            parallel_writers: false,
            connections_at_ingest: false,
            vacuum_reclaims: true,
        }
    }

    fn captures(&self) -> Result<Vec<CaptureInfo>, QueryError> {
        let mut st = self.prepare(
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

    fn capture_names(&self) -> Result<Vec<String>, QueryError> {
        Ok(self
            .prepare("SELECT DISTINCT name FROM capture_paths UNION SELECT name FROM captures")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn captures_without_connections(&self) -> Result<Vec<(i64, String)>, QueryError> {
        Ok(self
            .prepare(crate::store::types::CAPTURES_WITHOUT_CONNECTIONS)?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn capture_exists(&self, id: i64) -> Result<bool, QueryError> {
        Ok(
            self.query_row("SELECT count(*) FROM captures WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })? == 1,
        )
    }

    fn captures_at_path(&self, a: &str, b: &str) -> Result<Vec<i64>, QueryError> {
        Ok(self
            .prepare(
                "SELECT DISTINCT capture_id FROM capture_paths WHERE path = ?1 OR path = ?2
                 UNION SELECT id FROM captures WHERE path = ?1 OR path = ?2",
            )?
            .query_map(params![a, b], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn captures_named(&self, name: &str) -> Result<Vec<i64>, QueryError> {
        Ok(self
            .prepare(
                "SELECT DISTINCT capture_id FROM capture_paths WHERE name = ?1 UNION SELECT id FROM captures WHERE name = ?1",
            )?
            .query_map([name], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn capture_ids(&self, capture: Option<i64>) -> Result<Vec<(i64, String)>, QueryError> {
        Ok(self
            .prepare("SELECT id, name FROM captures WHERE ?1 IS NULL OR id = ?1 ORDER BY id")?
            .query_map([capture], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn capture_name(&self, id: i64) -> Result<Option<String>, QueryError> {
        Ok(self
            .query_row("SELECT name FROM captures WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .optional()?)
    }

    fn capture_row(&self, id: i64) -> Result<CaptureRow, QueryError> {
        self.query_row(
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

    fn capture_paths(&self, capture_id: i64) -> Result<Vec<CapturePath>, QueryError> {
        Ok(self
            .prepare("SELECT path, name, size, mtime_ns FROM capture_paths WHERE capture_id = ?1 ORDER BY rowid")?
            .query_map([capture_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn captures_by_time(&self) -> Result<VecDeque<(i64, i64)>, QueryError> {
        Ok(self
            .prepare("SELECT coalesce(first_ns, 0), id FROM captures ORDER BY 1, 2")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn interfaces(&self, capture_id: i64) -> Result<HashMap<u32, Iface>, QueryError> {
        Ok(self
            .prepare(
                "SELECT iface, linktype, snaplen, tsresol FROM interfaces WHERE capture_id = ?1",
            )?
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

    fn all_interfaces(&self) -> Result<Vec<(u32, u32, u8)>, QueryError> {
        Ok(self
            .prepare("SELECT linktype, snaplen, tsresol FROM interfaces")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn tsresols(&self, capture_id: i64) -> Result<Vec<u8>, QueryError> {
        Ok(self
            .prepare("SELECT tsresol FROM interfaces WHERE capture_id = ?1 ORDER BY iface")?
            .query_map([capture_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn last_tcp_end(&self, capture_id: i64) -> Result<Option<i64>, QueryError> {
        Ok(self
            .query_row(
                "SELECT file_offset + caplen FROM frames WHERE capture_id = ?1 AND flow_no IS NOT NULL
                 ORDER BY number DESC LIMIT 1",
                [capture_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn capture_spans(&self) -> Result<Vec<crate::store::types::CaptureSpan>, QueryError> {
        Ok(self
            .prepare(
                "SELECT id, first_ns, last_ns FROM captures ORDER BY coalesce(first_ns, 0), id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn database_size(&self) -> Result<u64, QueryError> {
        let pragma = |p: &str| -> Result<i64, QueryError> {
            Ok(self.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))?)
        };
        let used = pragma("page_count")? - pragma("freelist_count")?;
        Ok((used.max(0) * pragma("page_size")?.max(0)) as u64)
    }

    fn known_path(&self, src: &CaptureSource) -> Result<Option<(i64, String)>, StoreError> {
        super::write::known_path(self, src).map_err(StoreError::on(self))
    }

    fn index_rows(
        &self,
        capture_id: i64,
        visit: &mut dyn FnMut(&str, &str) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let mut st = self.prepare_cached(INDEX_ROWS_SQL)?;
        let mut made = String::new();
        let mut rows = st.query([capture_id])?;
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
                    format!("capture {capture_id}: a flow")
                })?;
                label = &made[label_at..];
            }
            let frames = r
                .get_ref(1)?
                .as_str_or_null()
                .map_err(rusqlite::Error::from)?;
            visit(label, frames.unwrap_or(""))?;
        }
        Ok(())
    }

    fn twoway_frames(
        &self,
        capture_id: i64,
        visit: &mut dyn FnMut(i64, i64, u32, u16, &str, u16, &str, u16),
    ) -> Result<(), QueryError> {
        let mut st = self.prepare_cached(
            "SELECT fr.number, fr.ts_ns, fr.iface, fr.tcp_flags, f.src, f.sport, f.dst, f.dport
             FROM frames fr JOIN flows f ON f.capture_id = fr.capture_id AND f.flow_no = fr.flow_no
             WHERE fr.capture_id = ?1 AND fr.flow_no IS NOT NULL ORDER BY fr.number",
        )?;
        let mut rows = st.query([capture_id])?;
        while let Some(r) = rows.next()? {
            let (src, dst): (String, String) = (r.get(4)?, r.get(6)?);
            visit(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, Option<u16>>(3)?.unwrap_or(0),
                &src,
                r.get(5)?,
                &dst,
                r.get(7)?,
            );
        }
        Ok(())
    }

    fn flows_labelled(
        &self,
        capture: Option<i64>,
        label: &str,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64, String)>, QueryError> {
        Ok(self
            .prepare(&format!(
                "SELECT f.capture_id, f.flow_no, c.name FROM flows f
                 JOIN captures c ON c.id = f.capture_id
                 WHERE f.label = ?1 AND f.first_ns BETWEEN ?3 AND ?4
                   AND f.capture_id IN (SELECT id FROM captures WHERE ?2 IS NULL OR id = ?2)
                 ORDER BY f.capture_id, {INDEX_ORDER}"
            ))?
            .query_map(params![label, capture, lo, hi], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?)
    }

    fn labels(&self, capture: Option<i64>) -> Result<Vec<String>, QueryError> {
        Ok(self
            .prepare("SELECT DISTINCT label FROM flows WHERE ?1 IS NULL OR capture_id = ?1")?
            .query_map([capture], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn flow_connections(&self, capture_id: i64, flow_no: i64) -> Result<Vec<i64>, QueryError> {
        Ok(self
            .prepare_cached(
                "SELECT DISTINCT fr.conn_no FROM flows f JOIN frames fr ON fr.capture_id = f.capture_id
                   AND fr.number BETWEEN f.first_frame AND f.last_frame AND fr.flow_no = f.flow_no
                 WHERE f.capture_id = ?1 AND f.flow_no = ?2 AND fr.conn_no IS NOT NULL",
            )?
            .query_map([capture_id, flow_no], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn conn_group_rows(
        &self,
        capture_id: i64,
    ) -> Result<Vec<(i64, String, Option<String>)>, QueryError> {
        Ok(self
            .prepare(
                "SELECT x.conn_no, x.flows,
                    (SELECT f.label FROM flows f WHERE f.capture_id = x.capture_id
                     AND f.flow_no IN (SELECT value FROM json_each('[' || x.flows || ']'))
                     ORDER BY f.first_frame LIMIT 1)
             FROM connections x WHERE x.capture_id = ?1 ORDER BY x.conn_no",
            )?
            .query_map([capture_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn flow_labels(&self, capture_id: i64) -> Result<Vec<(i64, String)>, QueryError> {
        Ok(self
            .prepare(&format!(
                "SELECT f.flow_no, f.label FROM flows f
                 WHERE f.capture_id = ?1 ORDER BY {INDEX_ORDER}"
            ))?
            .query_map([capture_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn flow_first_frame(&self, capture_id: i64, flow_no: i64) -> Result<i64, QueryError> {
        self.prepare_cached("SELECT first_frame FROM flows WHERE capture_id = ?1 AND flow_no = ?2")?
            .query_row([capture_id, flow_no], |r| r.get(0))
            .map_err(|e| gone(e, capture_id))
    }

    fn frame_walk(&self) -> Result<Box<dyn FrameWalk + '_>, QueryError> {
        Ok(Box::new(Walk {
            conn: self,
            st: self.prepare(FLOW_FRAMES_SQL)?,
            flow: self.prepare(
                "SELECT first_frame, packets FROM flows WHERE capture_id = ?1 AND flow_no = ?2",
            )?,
        }))
    }

    fn embedded_frames(&self) -> Result<Box<dyn EmbeddedFrames + '_>, QueryError> {
        Ok(Box::new(Embedded(self.prepare(
            "SELECT data FROM frame_data WHERE capture_id = ?1 AND number = ?2",
        )?)))
    }

    fn search_flows(
        &self,
        filter: &crate::filter::Compiled,
        sort: crate::store::rows::FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(crate::store::rows::FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        super::search::search_flows(self, filter, sort, limit, visit)
    }

    fn count_flows(&self, filter: &crate::filter::Compiled) -> Result<i64, QueryError> {
        super::search::count_flows(self, filter)
    }

    fn group_flows(
        &self,
        filter: &crate::filter::Compiled,
        by: crate::store::rows::GroupBy,
        sort: Option<crate::store::rows::FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(crate::store::rows::GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        super::group::group_flows(self, filter, by, sort, limit, visit)
    }

    fn group_connections(
        &self,
        filter: &crate::filter::Compiled,
        by: crate::store::rows::GroupBy,
        sort: Option<crate::store::rows::FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(crate::store::rows::GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        super::group::group_connections(self, filter, by, sort, limit, visit)
    }

    fn explain_flows(
        &self,
        filter: &crate::filter::Compiled,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        super::search::explain_flows(self, filter)
    }

    fn explain_connections(
        &self,
        filter: &crate::filter::Compiled,
        sort: crate::store::rows::FlowSort,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        super::conn_search::explain(self, filter, sort)
    }

    fn flow_page(
        &self,
        filter: &crate::filter::Compiled,
        capture_id: i64,
        after: i64,
    ) -> Result<Vec<(i64, i64)>, QueryError> {
        super::search::flow_page(self, filter, capture_id, after)
    }

    fn search_connections(
        &self,
        filter: &crate::filter::Compiled,
        sort: crate::store::rows::FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(crate::store::rows::ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        super::conn_search::search(self, filter, sort, limit, visit)
    }

    fn count_connections(&self, filter: &crate::filter::Compiled) -> Result<i64, QueryError> {
        super::conn_search::count(self, filter)
    }

    fn flows_page(
        &self,
        filter: &crate::filter::Compiled,
        sort: crate::store::rows::FlowSort,
        after: Option<&crate::store::page::PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(crate::store::rows::FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        super::page::flows_page(self, filter, sort, after, limit, visit)
    }

    fn connections_page(
        &self,
        filter: &crate::filter::Compiled,
        sort: crate::store::rows::FlowSort,
        after: Option<&crate::store::page::PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(crate::store::rows::ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        super::page::connections_page(self, filter, sort, after, limit, visit)
    }

    fn flow_histogram(
        &self,
        filter: &crate::filter::Compiled,
        lo: i64,
        hi: i64,
        buckets: usize,
    ) -> Result<Vec<i64>, QueryError> {
        super::page::flow_histogram(self, filter, lo, hi, buckets)
    }

    fn connection_row(
        &self,
        capture_id: i64,
        conn_no: i64,
    ) -> Result<Option<crate::store::rows::ConnRow>, QueryError> {
        super::page::connection_row(self, capture_id, conn_no)
    }

    fn begin_ingest(&self, first_big: bool) -> Result<crate::store::Journal, StoreError> {
        super::open::begin_ingest(self, first_big).map_err(StoreError::on(self))
    }

    fn end_ingest(&self) -> Result<(), StoreError> {
        super::open::end_ingest(self).map_err(StoreError::on(self))
    }

    fn reconnect(&self) -> Result<crate::store::Db, StoreError> {
        // One SQLite file has one writer at a time: a second connection would only wait for the first.
        let path = self.path().unwrap_or_default().to_string();
        Ok(crate::store::Db::from(super::open(std::path::Path::new(
            &path,
        ))?))
    }

    fn forget(&self, ids: &[i64]) -> Result<Forgotten, StoreError> {
        Ok(super::write::forget(self, ids, &[], u64::MAX)?.0)
    }

    fn forget_to_size(
        &self,
        ids: &[i64],
        oldest: &[i64],
        limit: u64,
    ) -> Result<(Forgotten, usize), StoreError> {
        super::write::forget(self, ids, oldest, limit)
    }

    fn begin_capture<'c>(
        &'c self,
        src: &CaptureSource,
        force: bool,
        embed: bool,
    ) -> Result<Box<dyn CaptureSink + 'c>, StoreError> {
        Ok(Box::new(super::write::CaptureWriter::begin(
            self, src, force, embed,
        )?))
    }
}

/// A row of capture `id` that is not there: the capture went away while the command read it.
fn gone(e: rusqlite::Error, id: i64) -> QueryError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => QueryError::CaptureGone(id),
        e => e.into(),
    }
}
