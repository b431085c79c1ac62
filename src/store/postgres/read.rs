//! The read side's SELECTs on PostgreSQL: the same answers as [`crate::store::read`] gives on SQLite, in
//! PostgreSQL's dialect (`$n` parameters, `string_agg`), returning the same types.

use std::collections::{HashMap, VecDeque};

use super::Pg;
use crate::filter::Compiled;
use crate::store::backend::{Backend, BucketLists, Caps, CaptureSink, EmbeddedFrames, FrameWalk};
use crate::store::error::{QueryError, StoreError};
use crate::store::row::Cols;
use crate::store::rows::{ConnRow, FlowRow, FlowSort, GroupBy, GroupRow};
use crate::store::sink::{CaptureSource, Forgotten, Journal};
use crate::store::types::{
    capture_info, CaptureInfo, CapturePath, CaptureRow, FrameRef, Iface, INDEX_ORDER,
};

/// One capture's index tuple rows (label, frame numbers as text), in index order.
pub const INDEX_SQL: &str = "SELECT f.label, g.frames
FROM (SELECT flow_no, string_agg(number::text, ',' ORDER BY number) AS frames
      FROM frames WHERE capture_id = $1 AND flow_no IS NOT NULL
      GROUP BY flow_no) g
JOIN flows f ON f.capture_id = $1 AND f.flow_no = g.flow_no
ORDER BY f.closed_frame IS NOT NULL, coalesce(f.closed_frame, f.first_frame)";

impl Pg {
    pub(super) fn rows(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, QueryError> {
        Ok(self.client.borrow_mut().query(sql, params)?)
    }

    /// The frames between a flow's first and last frame that belong to it, in frame order: what
    /// `read::FLOW_FRAMES_SQL` gives on SQLite, whose frames table is walked by `prev_in_flow` instead.
    pub fn flow_frames(
        &self,
        capture_id: i64,
        flow_no: i64,
        first: i64,
        last: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), QueryError> {
        self.frames_between(capture_id, first, last, &mut |f| {
            if f.flow_no == Some(flow_no) {
                out.push(f.at);
            }
        })
    }

    /// The frames of connection `conn_no`, in frame order.
    pub fn connection_frames(
        &self,
        capture_id: i64,
        conn_no: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), QueryError> {
        let r = self.client.borrow_mut().query_one(
            "SELECT first_frame, last_frame FROM connections WHERE capture_id = $1 AND conn_no = $2",
            &[&capture_id, &conn_no],
        )?;
        let (first, last): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        self.frames_between(capture_id, first, last, &mut |f| {
            if f.conn_no == Some(conn_no) {
                out.push(f.at);
            }
        })
    }

    /// The embedded bytes of one frame (`ingest --embed`).
    pub fn frame_data(&self, capture_id: i64, number: i64) -> Result<Option<Vec<u8>>, QueryError> {
        Ok(self
            .rows(
                "SELECT data FROM frame_data WHERE capture_id = $1 AND number = $2",
                &[&capture_id, &number],
            )?
            .first()
            .map(|r| r.try_get(0))
            .transpose()?)
    }
}

/// Flows' and connections' frames, and embedded bytes, read by range from the frame chunks.
struct Walk<'c>(&'c Pg);

impl FrameWalk for Walk<'_> {
    fn flow(
        &mut self,
        capture_id: i64,
        flow_no: i64,
        out: &mut Vec<FrameRef>,
        _note: &mut dyn FnMut(u64, Option<i64>),
    ) -> Result<(i64, i64), QueryError> {
        // Frames there are read by range from their chunks, filtered by flow: each one belongs to the flow,
        // which the caller's check of the count and first frame completes.
        let (first, last, packets) = self.0.flow_span(capture_id, flow_no)?;
        self.0.flow_frames(capture_id, flow_no, first, last, out)?;
        Ok((first, packets))
    }

    fn connection(
        &mut self,
        capture_id: i64,
        conn_no: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), QueryError> {
        self.0.connection_frames(capture_id, conn_no, out)
    }

    fn found_in(&self) -> &'static str {
        "its frames in frame_chunks give"
    }
}

impl EmbeddedFrames for Walk<'_> {
    fn frame_data(&mut self, capture_id: i64, number: i64) -> Result<Option<Vec<u8>>, QueryError> {
        self.0.frame_data(capture_id, number)
    }
}

impl BucketLists for Pg {
    fn bucket_captures(&self) -> Result<Vec<(i64, i64, i64)>, QueryError> {
        self.rows(
            "SELECT id, flows, has_buckets FROM captures WHERE has_buckets >= 1",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.int(0)?, r.int(1)?, r.int(2)?)))
        .collect()
    }

    fn bucket_lists(
        &self,
        capture_id: i64,
        lo: u32,
        hi: u32,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), QueryError> {
        for r in self.rows(
            "SELECT flow_nos FROM flow_buckets WHERE capture_id = $1 AND bucket >= $2 AND bucket <= $3",
            &[&capture_id, &i64::from(lo), &i64::from(hi)],
        )? {
            out.push(r.try_get(0)?);
        }
        Ok(())
    }
}

impl Backend for Pg {
    fn caps(&self) -> Caps {
        Caps {
            parked_rows: false,
            parallel_writers: true,
            connections_at_ingest: true,
            vacuum_reclaims: false,
        }
    }

    fn capture_spans(&self) -> Result<Vec<crate::store::types::CaptureSpan>, QueryError> {
        let rows = self.rows(
            "SELECT id, first_ns, last_ns FROM captures ORDER BY coalesce(first_ns, 0), id",
            &[],
        )?;
        rows.iter()
            .map(|r| Ok((r.int(0)?, r.opt_int(1)?, r.opt_int(2)?)))
            .collect()
    }

    fn database_size(&self) -> Result<u64, QueryError> {
        let rows = self.rows("SELECT pg_database_size(current_database())", &[])?;
        Ok(rows
            .first()
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0)
            .max(0) as u64)
    }

    fn known_path(&self, src: &CaptureSource) -> Result<Option<(i64, String)>, StoreError> {
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT c.id, c.name FROM capture_paths p JOIN captures c ON c.id = p.capture_id
                 WHERE p.path = $1 AND p.size = $2 AND p.mtime_ns IS NOT DISTINCT FROM $3",
                &[&src.path, &(src.size as i64), &src.mtime_ns],
            )
            .and_then(|r| r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose())
            .map_err(self.err())
    }

    fn flow_first_frame(&self, capture_id: i64, flow_no: i64) -> Result<i64, QueryError> {
        Ok(self.flow_span(capture_id, flow_no)?.0)
    }

    fn frame_walk(&self) -> Result<Box<dyn FrameWalk + '_>, QueryError> {
        Ok(Box::new(Walk(self)))
    }

    fn embedded_frames(&self) -> Result<Box<dyn EmbeddedFrames + '_>, QueryError> {
        Ok(Box::new(Walk(self)))
    }

    fn begin_ingest(&self, _first_big: bool) -> Result<Journal, StoreError> {
        Ok(Journal::Wal)
    }

    fn end_ingest(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn reconnect(&self) -> Result<crate::store::Db, StoreError> {
        Ok(crate::store::Db::from(Pg::reconnect(self)?))
    }

    fn forget(&self, ids: &[i64]) -> Result<Forgotten, StoreError> {
        Ok(Pg::forget(self, ids, &[], u64::MAX)?.0)
    }

    fn forget_to_size(
        &self,
        ids: &[i64],
        oldest: &[i64],
        limit: u64,
    ) -> Result<(Forgotten, usize), StoreError> {
        Pg::forget(self, ids, oldest, limit)
    }

    fn begin_capture<'c>(
        &'c self,
        src: &CaptureSource,
        force: bool,
        embed: bool,
    ) -> Result<Box<dyn CaptureSink + 'c>, StoreError> {
        Ok(Box::new(super::write::PgWriter::begin(
            self, src, force, embed,
        )?))
    }

    /// Every capture in the database, by id.
    fn captures(&self) -> Result<Vec<CaptureInfo>, QueryError> {
        let rows = self.rows(
            "SELECT id, name, path, size, format, compression, linktypes, frames, tcp_frames, flows, first_ns,
                    last_ns, truncated_at, truncated_why, embedded, hash, ingested_at,
                    (SELECT string_agg(path, chr(10) ORDER BY added) FROM capture_paths p WHERE p.capture_id = c.id)
             FROM captures c ORDER BY id",
            &[],
        )?;
        rows.iter().map(|r| capture_info(r)).collect()
    }

    /// Every capture name, for the closest-name hint.
    fn capture_names(&self) -> Result<Vec<String>, QueryError> {
        self.rows(
            "SELECT DISTINCT name FROM capture_paths UNION SELECT name FROM captures",
            &[],
        )?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }

    fn captures_without_connections(&self) -> Result<Vec<(i64, String)>, QueryError> {
        self.rows(crate::store::types::CAPTURES_WITHOUT_CONNECTIONS, &[])?
            .iter()
            .map(|r| Ok((r.int(0)?, r.text(1)?.to_string())))
            .collect()
    }

    /// The captures with this id (0 or 1 of them).
    fn capture_exists(&self, id: i64) -> Result<bool, QueryError> {
        Ok(!self
            .rows("SELECT 1 FROM captures WHERE id = $1", &[&id])?
            .is_empty())
    }

    /// Captures indexed from the path `a` or `b`.
    fn captures_at_path(&self, a: &str, b: &str) -> Result<Vec<i64>, QueryError> {
        self.rows(
            "SELECT DISTINCT capture_id FROM capture_paths WHERE path = $1 OR path = $2
                 UNION SELECT id FROM captures WHERE path = $1 OR path = $2",
            &[&a, &b],
        )?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }

    /// Captures indexed from a file of this base name.
    fn captures_named(&self, name: &str) -> Result<Vec<i64>, QueryError> {
        self
            .rows(
                "SELECT DISTINCT capture_id FROM capture_paths WHERE name = $1 UNION SELECT id FROM captures WHERE name = $1",
                &[&name],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    /// (id, name) of one capture, or of every capture by id.
    fn capture_ids(&self, capture: Option<i64>) -> Result<Vec<(i64, String)>, QueryError> {
        self.rows(
            "SELECT id, name FROM captures WHERE $1::BIGINT IS NULL OR id = $1 ORDER BY id",
            &[&capture],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
    }

    /// Visits one capture's index rows: label and frame numbers as comma-separated text.
    fn index_rows(
        &self,
        id: i64,
        visit: &mut dyn FnMut(&str, &str) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut c = self.client.borrow_mut();
        // A portal streams the rows, so a capture's whole index never sits in memory.
        let mut tx = c.transaction()?;
        let st = tx.prepare(INDEX_SQL)?;
        let mut it = tx.query_raw(&st, [&id])?;
        while let Some(r) = it.next()? {
            let label: &str = r.try_get(0)?;
            let frames: Option<&str> = r.try_get(1)?;
            visit(label, frames.unwrap_or(""))?;
        }
        drop(it);
        tx.commit()?;
        Ok(())
    }

    /// The frames of a capture's TCP packets, in frame order, for the two-way index: (number, ts_ns, iface,
    /// flags, src, sport, dst, dport).
    #[allow(clippy::type_complexity)]
    fn twoway_frames(
        &self,
        id: i64,
        visit: &mut dyn FnMut(i64, i64, u32, u16, &str, u16, &str, u16),
    ) -> Result<(), QueryError> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut c = self.client.borrow_mut();
        let mut tx = c.transaction()?;
        let st = tx.prepare(
            "SELECT fr.number, fr.ts_ns, fr.iface, fr.tcp_flags, f.src, f.sport, f.dst, f.dport
             FROM frames fr JOIN flows f ON f.capture_id = fr.capture_id AND f.flow_no = fr.flow_no
             WHERE fr.capture_id = $1 AND fr.flow_no IS NOT NULL ORDER BY fr.number",
        )?;
        let mut it = tx.query_raw(&st, [&id])?;
        while let Some(r) = it.next()? {
            visit(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get::<_, i32>(2)?.max(0) as u32,
                r.try_get::<_, Option<i32>>(3)?.unwrap_or(0) as u16,
                r.try_get(4)?,
                r.try_get::<_, i64>(5)? as u16,
                r.try_get(6)?,
                r.try_get::<_, i64>(7)? as u16,
            );
        }
        drop(it);
        tx.commit()?;
        Ok(())
    }

    /// Flows labelled `label` whose first time is in `lo..=hi`: (capture_id, flow_no, capture name), by capture
    /// and index order.
    fn flows_labelled(
        &self,
        capture: Option<i64>,
        label: &str,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64, String)>, QueryError> {
        self
            .rows(
                &format!(
                    "SELECT f.capture_id, f.flow_no, c.name FROM flows f
                     JOIN captures c ON c.id = f.capture_id
                     WHERE f.label = $1 AND f.first_ns BETWEEN $3 AND $4
                       AND f.capture_id IN (SELECT id FROM captures WHERE $2::BIGINT IS NULL OR id = $2)
                     ORDER BY f.capture_id, {INDEX_ORDER}"
                ),
                &[&label, &capture, &lo, &hi],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Distinct labels of one capture or all, for the closest-label hint.
    fn labels(&self, capture: Option<i64>) -> Result<Vec<String>, QueryError> {
        self.rows(
            "SELECT DISTINCT label FROM flows WHERE $1::BIGINT IS NULL OR capture_id = $1",
            &[&capture],
        )?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }

    /// The connections of a flow's frames, in order of their first frame in the flow.
    fn flow_connections(&self, capture_id: i64, flow_no: i64) -> Result<Vec<i64>, QueryError> {
        let (first, last, _) = self.flow_span(capture_id, flow_no)?;
        let mut conns = Vec::new();
        self.frames_between(capture_id, first, last, &mut |f| {
            if let (Some(fl), Some(c)) = (f.flow_no, f.conn_no) {
                if fl == flow_no && !conns.contains(&c) {
                    conns.push(c);
                }
            }
        })?;
        Ok(conns)
    }

    /// Each connection of a capture: (conn_no, flows, label of the flow holding its first frame).
    fn conn_group_rows(
        &self,
        capture_id: i64,
    ) -> Result<Vec<(i64, String, Option<String>)>, QueryError> {
        self.rows(
            "SELECT x.conn_no, x.flows,
                        (SELECT f.label FROM flows f WHERE f.capture_id = x.capture_id
                         AND f.flow_no = ANY (string_to_array(x.flows, ',')::BIGINT[])
                         ORDER BY f.first_frame LIMIT 1)
                 FROM connections x WHERE x.capture_id = $1 ORDER BY x.conn_no",
            &[&capture_id],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
    }

    /// A capture's flows (flow_no, label) in index order.
    fn flow_labels(&self, capture_id: i64) -> Result<Vec<(i64, String)>, QueryError> {
        self
            .rows(
                &format!(
                    "SELECT f.flow_no, f.label FROM flows f WHERE f.capture_id = $1 ORDER BY {INDEX_ORDER}"
                ),
                &[&capture_id],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The interfaces of a capture, by `interfaces.iface`.
    fn interfaces(&self, capture_id: i64) -> Result<HashMap<u32, Iface>, QueryError> {
        self.rows(
            "SELECT iface, linktype, snaplen, tsresol FROM interfaces WHERE capture_id = $1",
            &[&capture_id],
        )?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<_, i64>(0)? as u32,
                Iface {
                    linktype: r.try_get::<_, i64>(1)? as u32,
                    snaplen: r.try_get::<_, i64>(2)? as u32,
                    tsresol: r.try_get::<_, i64>(3)? as u8,
                },
            ))
        })
        .collect()
    }

    /// Every interface of every capture: (linktype, snaplen, tsresol).
    fn all_interfaces(&self) -> Result<Vec<(u32, u32, u8)>, QueryError> {
        self.rows("SELECT linktype, snaplen, tsresol FROM interfaces", &[])?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<_, i64>(0)? as u32,
                    r.try_get::<_, i64>(1)? as u32,
                    r.try_get::<_, i64>(2)? as u8,
                ))
            })
            .collect()
    }

    /// The `captures` row of capture `id`.
    fn capture_row(&self, id: i64) -> Result<CaptureRow, QueryError> {
        let r = self.client.borrow_mut().query_one(
            "SELECT id, name, path, size, mtime_ns, hash, embedded FROM captures WHERE id = $1",
            &[&id],
        )?;
        Ok(CaptureRow {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            path: r.try_get(2)?,
            size: r.try_get(3)?,
            mtime_ns: r.try_get(4)?,
            hash: r.try_get(5)?,
            embedded: r.try_get::<_, i64>(6)? != 0,
        })
    }

    /// Every path a capture was seen under, in the order they were added.
    fn capture_paths(&self, capture_id: i64) -> Result<Vec<CapturePath>, QueryError> {
        self
            .rows(
                "SELECT path, name, size, mtime_ns FROM capture_paths WHERE capture_id = $1 ORDER BY added",
                &[&capture_id],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// The `if_tsresol` of each interface of a capture, by interface number.
    fn tsresols(&self, capture_id: i64) -> Result<Vec<u8>, QueryError> {
        self.rows(
            "SELECT tsresol FROM interfaces WHERE capture_id = $1 ORDER BY iface",
            &[&capture_id],
        )?
        .iter()
        .map(|r| Ok(r.try_get::<_, i64>(0)? as u8))
        .collect()
    }

    /// Where the last TCP record of a capture ends (`file_offset + caplen`), if it has one: the chunks are read
    /// from the last one back until one holds a TCP frame.
    fn last_tcp_end(&self, capture_id: i64) -> Result<Option<i64>, QueryError> {
        Ok(self
            .rows(
                "SELECT t.tcp_end FROM frame_chunks c
                 CROSS JOIN LATERAL (
                     SELECT u.off + u.cap AS tcp_end
                     FROM unnest(c.flow_no, c.file_offset, c.caplen) WITH ORDINALITY AS u(fl, off, cap, i)
                     WHERE u.fl IS NOT NULL ORDER BY u.i DESC LIMIT 1) t
                 WHERE c.capture_id = $1
                 ORDER BY c.first_number DESC LIMIT 1",
                &[&capture_id],
            )?
            .first()
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// The name of capture `id`.
    fn capture_name(&self, id: i64) -> Result<Option<String>, QueryError> {
        Ok(self
            .rows("SELECT name FROM captures WHERE id = $1", &[&id])?
            .first()
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// (first frame time, id) of every capture, in that order: the order captures join a time merge.
    fn captures_by_time(&self) -> Result<VecDeque<(i64, i64)>, QueryError> {
        let rows = self.rows(
            "SELECT coalesce(first_ns, 0), id FROM captures ORDER BY 1, 2",
            &[],
        )?;
        rows.iter().map(|r| Ok((r.int(0)?, r.int(1)?))).collect()
    }

    fn search_flows(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        Pg::search_flows(self, filter, sort, limit, visit)
    }

    fn count_flows(&self, filter: &Compiled) -> Result<i64, QueryError> {
        Pg::count_flows(self, filter)
    }

    fn group_flows(
        &self,
        filter: &Compiled,
        by: GroupBy,
        sort: Option<FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        Pg::group_flows(self, filter, by, sort, limit, visit)
    }

    fn group_connections(
        &self,
        filter: &Compiled,
        by: GroupBy,
        sort: Option<FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        Pg::group_connections(self, filter, by, sort, limit, visit)
    }

    fn explain_flows(&self, filter: &Compiled) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        Pg::explain_flows(self, filter)
    }

    fn explain_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        Pg::explain_connections_planned(self, filter, sort)
    }

    fn flow_page(
        &self,
        filter: &Compiled,
        capture_id: i64,
        after: i64,
    ) -> Result<Vec<(i64, i64)>, QueryError> {
        Pg::flow_page(self, filter, capture_id, after)
    }

    fn search_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        Pg::search_connections_planned(self, filter, sort, limit, visit)
    }

    fn count_connections(&self, filter: &Compiled) -> Result<i64, QueryError> {
        Pg::count_connections_planned(self, filter)
    }

    fn flows_page(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        after: Option<&crate::store::page::PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        Pg::flows_page(self, filter, sort, after, limit, visit)
    }

    fn connections_page(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        after: Option<&crate::store::page::PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        Pg::connections_page(self, filter, sort, after, limit, visit)
    }

    fn flow_histogram(
        &self,
        filter: &Compiled,
        lo: i64,
        hi: i64,
        buckets: usize,
    ) -> Result<Vec<i64>, QueryError> {
        Pg::flow_histogram(self, filter, lo, hi, buckets)
    }

    fn connection_row(
        &self,
        capture_id: i64,
        conn_no: i64,
    ) -> Result<Option<crate::store::rows::ConnRow>, QueryError> {
        Pg::connection_row(self, capture_id, conn_no)
    }
}
