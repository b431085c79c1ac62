//! The read side's SELECTs on PostgreSQL: the same answers as [`crate::store::read`] gives on SQLite, in
//! PostgreSQL's dialect (`$n` parameters, `string_agg`), returning the same types.

use std::collections::{HashMap, VecDeque};

use postgres::types::ToSql;

use super::Pg;
use crate::filter::Compiled;
use crate::store::read::{
    capture_info, conn_row, flow_row, group_row, merge_pages, page_sql, CaptureInfo, CapturePath,
    CaptureRow, Cols, ConnRow, FlowRow, FlowSort, FrameRef, GroupBy, GroupRow, Iface, QueryError,
    FLOW_COLUMNS, INDEX_ORDER, PAGE,
};

/// One capture's index tuple rows (label, frame numbers as text), in index order.
pub const INDEX_SQL: &str = "SELECT f.label, g.frames
FROM (SELECT flow_no, string_agg(number::text, ',' ORDER BY number) AS frames
      FROM frames WHERE capture_id = $1 AND flow_no IS NOT NULL
      GROUP BY flow_no) g
JOIN flows f ON f.capture_id = $1 AND f.flow_no = g.flow_no
ORDER BY f.closed_frame IS NOT NULL, coalesce(f.closed_frame, f.first_frame)";

impl Pg {
    fn rows(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, QueryError> {
        Ok(self.client.borrow_mut().query(sql, params)?)
    }

    /// Every capture in the database, by id.
    pub fn captures(&self) -> Result<Vec<CaptureInfo>, QueryError> {
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
    pub fn capture_names(&self) -> Result<Vec<String>, QueryError> {
        self.rows(
            "SELECT DISTINCT name FROM capture_paths UNION SELECT name FROM captures",
            &[],
        )?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }

    /// The captures with this id (0 or 1 of them).
    pub fn capture_exists(&self, id: i64) -> Result<bool, QueryError> {
        Ok(!self
            .rows("SELECT 1 FROM captures WHERE id = $1", &[&id])?
            .is_empty())
    }

    /// Captures indexed from the path `a` or `b`.
    pub fn captures_at_path(&self, a: &str, b: &str) -> Result<Vec<i64>, QueryError> {
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
    pub fn captures_named(&self, name: &str) -> Result<Vec<i64>, QueryError> {
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
    pub fn capture_ids(&self, capture: Option<i64>) -> Result<Vec<(i64, String)>, QueryError> {
        self.rows(
            "SELECT id, name FROM captures WHERE $1::BIGINT IS NULL OR id = $1 ORDER BY id",
            &[&capture],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
    }

    /// Visits one capture's index rows: label and frame numbers as comma-separated text.
    pub fn index_rows(
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
    pub fn twoway_frames(
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
    pub fn flows_labelled(
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
    pub fn labels(&self, capture: Option<i64>) -> Result<Vec<String>, QueryError> {
        self.rows(
            "SELECT DISTINCT label FROM flows WHERE $1::BIGINT IS NULL OR capture_id = $1",
            &[&capture],
        )?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }

    /// The connections of a flow's frames, in order of their first frame in the flow.
    pub fn flow_connections(&self, capture_id: i64, flow_no: i64) -> Result<Vec<i64>, QueryError> {
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
    pub fn conn_group_rows(
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
    pub fn flow_labels(&self, capture_id: i64) -> Result<Vec<(i64, String)>, QueryError> {
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
    pub fn interfaces(&self, capture_id: i64) -> Result<HashMap<u32, Iface>, QueryError> {
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
    pub fn all_interfaces(&self) -> Result<Vec<(u32, u32, u8)>, QueryError> {
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

    /// The `captures` row of capture `id`.
    pub fn capture_row(&self, id: i64) -> Result<CaptureRow, QueryError> {
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
    pub fn capture_paths(&self, capture_id: i64) -> Result<Vec<CapturePath>, QueryError> {
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
    pub fn tsresols(&self, capture_id: i64) -> Result<Vec<u8>, QueryError> {
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
    pub fn last_tcp_end(&self, capture_id: i64) -> Result<Option<i64>, QueryError> {
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

    /// The name of capture `id`.
    pub fn capture_name(&self, id: i64) -> Result<Option<String>, QueryError> {
        Ok(self
            .rows("SELECT name FROM captures WHERE id = $1", &[&id])?
            .first()
            .map(|r| r.try_get(0))
            .transpose()?)
    }
}

/// A filter's condition (`?N` placeholders, see `filter::sql`) with PostgreSQL's `$N` placeholders. The
/// condition holds no string literal (every value is a parameter), so every `?` is a placeholder.
pub fn dollars(sql: &str) -> String {
    sql.replace('?', "$")
}

/// A filter's parameters as PostgreSQL values.
pub fn values(params: &[rusqlite::types::Value]) -> Vec<Box<dyn ToSql + Sync>> {
    use rusqlite::types::Value;
    params
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Value::Null => Box::new(None::<i64>),
                Value::Integer(i) => Box::new(*i),
                Value::Real(f) => Box::new(*f),
                Value::Text(t) => Box::new(t.clone()),
                Value::Blob(b) => Box::new(b.clone()),
            }
        })
        .collect()
}

fn refs<'a>(
    params: &'a [Box<dyn ToSql + Sync>],
    more: &'a [&'a (dyn ToSql + Sync)],
) -> Vec<&'a (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .chain(more.iter().copied())
        .collect()
}

/// A capture's finest timestamp precision, in decimal digits, as a correlated subquery on `i`.
const DIGITS: &str = "max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE least(tsresol, 9) END)";

/// The flows `f` of connection `x`, found by the flows key (`flow_no = ANY (x.flow_nos)` is an index condition).
const CONN_FLOWS: &str =
    "flows f WHERE f.capture_id = x.capture_id AND f.flow_no = ANY (x.flow_nos)";

/// "Some flow of connection `x` matches": as `read::conn_condition`. `OFFSET 0` keeps the subquery correlated:
/// without it the planner may turn it into a join of all flows against all connections with the array test as
/// its filter, a plan whose cost it misjudges by orders of magnitude when it has no statistics (right after an
/// ingest). Correlated, each connection costs an index lookup per flow whatever the statistics say.
fn conn_condition(cond: &str) -> String {
    format!("EXISTS (SELECT 1 FROM {CONN_FLOWS} AND ({cond}) OFFSET 0)")
}

/// `count_connections`' query for a filter's condition (`$N` placeholders).
fn count_connections_sql(cond: &str) -> String {
    format!(
        "SELECT count(*) FROM connections x WHERE {}",
        conn_condition(cond)
    )
}

/// `search_connections`' query for a filter's condition with `n` parameters; its LIMIT is parameter `n + 1`.
fn search_connections_sql(cond: &str, sort: FlowSort, n: usize) -> String {
    let order = crate::store::read::conn_order(sort);
    format!(
        "SELECT x.capture_id, c.name, x.conn_no, x.community_id, x.orig_h, x.orig_p, x.resp_h, x.resp_p,
                x.first_ns, x.last_ns, x.orig_pkts, x.orig_bytes, x.orig_frame_bytes, x.resp_pkts, x.resp_bytes,
                x.resp_frame_bytes, x.conn_state, x.history,
                (SELECT string_agg(f.label, chr(10) ORDER BY f.first_frame) FROM {CONN_FLOWS}),
                (SELECT {DIGITS} FROM interfaces i WHERE i.capture_id = x.capture_id)
         FROM connections x JOIN captures c ON c.id = x.capture_id
         WHERE {}
         ORDER BY {order} LIMIT ${}",
        conn_condition(cond),
        n + 1
    )
}

impl Pg {
    /// Each capture's name and timestamp precision (`read::capture_facts`).
    pub fn capture_facts(&self) -> Result<super::super::read::CaptureFacts, QueryError> {
        let rows = self.rows(
            &format!(
                "SELECT c.id, c.name, (SELECT {DIGITS} FROM interfaces i WHERE i.capture_id = c.id) FROM captures c"
            ),
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.int(0)?,
                    (
                        r.text(1)?.into(),
                        r.opt_int(2)?.unwrap_or(9).clamp(0, 9) as u8,
                    ),
                ))
            })
            .collect()
    }

    /// (first frame time, id) of every capture, in that order: the order captures join a time merge.
    pub fn captures_by_time(&self) -> Result<VecDeque<(i64, i64)>, QueryError> {
        let rows = self.rows(
            "SELECT coalesce(first_ns, 0), id FROM captures ORDER BY 1, 2",
            &[],
        )?;
        rows.iter().map(|r| Ok((r.int(0)?, r.int(1)?))).collect()
    }

    /// `read::search_flows` on PostgreSQL, in one REPEATABLE READ, READ ONLY transaction: the time order reads
    /// a page at a time, and each page in a snapshot of its own showed part of a capture `forget` deleted meanwhile.
    pub fn search_flows(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        self.client
            .borrow_mut()
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let listed = self.search_flows_in_snapshot(filter, sort, limit, visit);
        let end = self.client.borrow_mut().batch_execute(if listed.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        });
        listed?;
        Ok(end?)
    }

    fn search_flows_in_snapshot(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let caps = self.capture_facts()?;
        let cond = dollars(&filter.condition);
        let params = values(&filter.params);
        let n = params.len();
        if sort == FlowSort::Time {
            let st = self
                .client
                .borrow_mut()
                .prepare(&dollars(&page_sql(filter, FLOW_COLUMNS)))?;
            let mut page = |cid: i64, after: i64, into: &mut VecDeque<FlowRow>| {
                let extra: [&(dyn ToSql + Sync); 2] = [&cid, &after];
                let p = refs(&params, &extra);
                let rows = self.client.borrow_mut().query(&st, &p)?;
                for r in &rows {
                    if let Some(row) = flow_row(r, &caps)? {
                        into.push_back(row);
                    }
                }
                Ok(rows.len() as i64 == PAGE)
            };
            return merge_pages(self.captures_by_time()?, limit, &mut page, visit);
        }
        let order = match sort {
            FlowSort::Bytes => "f.bytes DESC, f.first_ns, f.capture_id, f.flow_no",
            FlowSort::Packets => "f.packets DESC, f.first_ns, f.capture_id, f.flow_no",
            _ => "f.last_ns - f.first_ns DESC, f.first_ns, f.capture_id, f.flow_no",
        };
        let limit = limit.map(|l| l.min(i64::MAX as u64) as i64);
        let sql = format!(
            "SELECT {FLOW_COLUMNS} FROM flows f WHERE {cond} ORDER BY {order} LIMIT ${}",
            n + 1
        );
        self.stream(
            &sql,
            &refs(&params, &[&limit]),
            &mut |r| match flow_row(r, &caps)? {
                Some(row) => visit(row),
                None => Ok(()),
            },
        )
    }

    /// Runs `sql` and hands each row to `visit` as it arrives: memory does not grow with the rows.
    fn stream(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        visit: &mut dyn FnMut(&postgres::Row) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut c = self.client.borrow_mut();
        let mut it = c.query_raw(sql, params.iter().copied())?;
        while let Some(r) = it.next()? {
            if let Err(e) = visit(&r) {
                // The reader is gone (`| head`) or the row failed: stop the server too, else the connection's
                // close waits for the rest of the rows.
                drop(it);
                let _ = c.cancel_token().cancel_query(postgres::NoTls);
                return Err(e);
            }
        }
        Ok(())
    }

    /// `read::count_flows` on PostgreSQL.
    pub fn count_flows(&self, filter: &Compiled) -> Result<i64, QueryError> {
        let params = values(&filter.params);
        let r = self.client.borrow_mut().query_one(
            &format!(
                "SELECT count(*) FROM flows f WHERE {}",
                dollars(&filter.condition)
            ),
            &refs(&params, &[]),
        )?;
        r.int(0)
    }

    /// `read::group_flows` on PostgreSQL: text keys sort bytewise (`COLLATE "C"`), as SQLite sorts them.
    pub fn group_flows(
        &self,
        filter: &Compiled,
        by: GroupBy,
        limit: Option<u64>,
        visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let keys = by.keys();
        let select: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let order: Vec<String> = keys
            .iter()
            .map(|(name, e)| match *name {
                "sport" | "dport" => e.to_string(),
                _ => format!("({e}) COLLATE \"C\""),
            })
            .collect();
        let group: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
        let params = values(&filter.params);
        let limit = limit.map(|l| l.min(i64::MAX as u64) as i64);
        let sql = format!(
            "WITH d(capture_id, digits) AS (SELECT capture_id, {DIGITS} FROM interfaces GROUP BY capture_id)
             SELECT {}, count(*), sum(f.packets)::BIGINT, sum(f.bytes)::BIGINT, sum(f.payload_bytes)::BIGINT,
                    min(f.first_ns), max(f.last_ns), max(coalesce(d.digits, 9))
             FROM flows f JOIN captures c ON c.id = f.capture_id LEFT JOIN d ON d.capture_id = f.capture_id
             WHERE {}
             GROUP BY {}
             ORDER BY sum(f.bytes) DESC, {} LIMIT ${}",
            select.join(", "),
            dollars(&filter.condition),
            group.join(", "),
            order.join(", "),
            params.len() + 1
        );
        self.stream(&sql, &refs(&params, &[&limit]), &mut |r| {
            visit(group_row(r, keys)?)
        })
    }

    /// `read::explain_flows` on PostgreSQL: each query with PostgreSQL's `EXPLAIN` lines.
    pub fn explain_flows(
        &self,
        filter: &Compiled,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        let cond = dollars(&filter.condition);
        let params = values(&filter.params);
        let page = dollars(&page_sql(filter, FLOW_COLUMNS));
        let count = format!("SELECT count(*) FROM flows f WHERE {cond}");
        let (one, zero) = (1i64, 0i64);
        self.explain([
            (page, refs(&params, &[&one, &zero])),
            (count, refs(&params, &[])),
        ])
    }

    /// `read::search_connections` on PostgreSQL.
    pub fn search_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let params = values(&filter.params);
        let limit = limit.map(|l| l.min(i64::MAX as u64) as i64);
        let sql = search_connections_sql(&dollars(&filter.condition), sort, params.len());
        self.stream(&sql, &refs(&params, &[&limit]), &mut |r| {
            visit(conn_row(r)?)
        })
    }

    /// `read::count_connections` on PostgreSQL.
    pub fn count_connections(&self, filter: &Compiled) -> Result<i64, QueryError> {
        let params = values(&filter.params);
        let r = self.client.borrow_mut().query_one(
            &count_connections_sql(&dollars(&filter.condition)),
            &refs(&params, &[]),
        )?;
        r.int(0)
    }

    /// PostgreSQL's `EXPLAIN` of the two queries of `connections` (the listing in `sort` order, and `--count`):
    /// each query with its plan's lines.
    pub fn explain_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        let cond = dollars(&filter.condition);
        let params = values(&filter.params);
        let limit: Option<i64> = None;
        self.explain([
            (
                search_connections_sql(&cond, sort, params.len()),
                refs(&params, &[&limit]),
            ),
            (count_connections_sql(&cond), refs(&params, &[])),
        ])
    }

    /// Each query with the lines of PostgreSQL's `EXPLAIN` of it.
    fn explain<const N: usize>(
        &self,
        queries: [(String, Vec<&(dyn ToSql + Sync)>); N],
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        let mut out = Vec::new();
        for (sql, p) in queries {
            let plan = self
                .rows(&format!("EXPLAIN {sql}"), &p)?
                .iter()
                .map(|r| r.text(0))
                .collect::<Result<_, _>>()?;
            out.push((sql, plan));
        }
        Ok(out)
    }

    /// The next `PAGE` flows of a capture that match `filter` after flow_no `after`: (flow_no, first_frame).
    pub fn flow_page(
        &self,
        filter: &Compiled,
        capture_id: i64,
        after: i64,
    ) -> Result<Vec<(i64, i64)>, QueryError> {
        let params = values(&filter.params);
        let rows = self.rows(
            &dollars(&page_sql(filter, "f.flow_no, f.first_frame")),
            &refs(&params, &[&capture_id, &after]),
        )?;
        rows.iter().map(|r| Ok((r.int(0)?, r.int(1)?))).collect()
    }
}
