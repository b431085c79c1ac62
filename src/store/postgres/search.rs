//! The searches on PostgreSQL: `flows` (in time order a merge of each capture's pages, with the bucket
//! candidates of the query planner, [`crate::store::plan`]; or sorted), its count, `--group-by`, `--explain`
//! and `connections`, in PostgreSQL's dialect: `$N` placeholders, `string_agg`, arrays for lists.

use std::collections::VecDeque;

use postgres::types::ToSql;

use super::Pg;
use crate::filter::Compiled;
use crate::store::backend::Backend;
use crate::store::error::QueryError;
use crate::store::merge::{merge_pages, PAGE};
use crate::store::plan::{bucket_candidates, candidates};
use crate::store::row::Cols;
use crate::store::rows::{
    conn_order, conn_row, flow_row, CaptureFacts, ConnRow, FlowRow, FlowSort, FLOW_COLUMNS,
};

/// PostgreSQL's placeholder of parameter `n` (from 1).
pub(super) fn dollar(n: usize) -> String {
    format!("${n}")
}

/// The query of one page of a capture's matching flows (`select` of `flows f`, in flow_no order): the filter's
/// `n` parameters, then the capture id and the last flow_no.
fn page_sql(cond: &str, n: usize, select: &str) -> String {
    format!(
        "SELECT {select} FROM flows f
         WHERE f.capture_id = ${} AND f.flow_no > ${} AND ({cond})
         ORDER BY f.flow_no LIMIT {PAGE}",
        n + 1,
        n + 2
    )
}

/// The query of a capture's candidates (from the flow buckets) that match: the filter's `n` parameters, then
/// the capture id and the candidates' flow numbers as an array, each one a primary-key lookup.
pub(super) fn candidate_sql(cond: &str, n: usize, select: &str) -> String {
    format!(
        "SELECT {select} FROM flows f
         WHERE f.capture_id = ${} AND f.flow_no = ANY (${}) AND ({cond})",
        n + 1,
        n + 2
    )
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

pub(super) fn refs<'a>(
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
pub(super) const DIGITS: &str =
    "max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE least(tsresol, 9) END)";

/// The flows `f` of connection `x`, found by the flows key (`flow_no = ANY (x.flow_nos)` is an index condition).
const CONN_FLOWS: &str =
    "flows f WHERE f.capture_id = x.capture_id AND f.flow_no = ANY (x.flow_nos)";

/// "Some flow of connection `x` matches", as on SQLite. `OFFSET 0` keeps the subquery correlated: without it
/// the planner may turn it into a join of all flows against all connections with the array test as its filter,
/// a plan whose cost it misjudges by orders of magnitude when it has no statistics (right after an ingest).
/// Correlated, each connection costs an index lookup per flow whatever the statistics say.
pub(super) fn conn_condition(cond: &str) -> String {
    // Connection terms test the connection itself (filter::THE_CONNECTION).
    let cond = cond.replace(
        crate::filter::FLOW_CONNECTION,
        crate::filter::THE_CONNECTION,
    );
    format!("EXISTS (SELECT 1 FROM {CONN_FLOWS} AND ({cond}) OFFSET 0)")
}

/// `count_connections`' query for a filter's condition (`$N` placeholders).
pub(super) fn count_connections_sql(cond: &str) -> String {
    format!(
        "SELECT count(*) FROM connections x WHERE {}",
        conn_condition(cond)
    )
}

/// `search_connections`' query for a filter's condition with `n` parameters; its LIMIT is parameter `n + 1`.
pub(super) fn search_connections_sql(cond: &str, sort: FlowSort, n: usize) -> String {
    conn_sql(cond, "TRUE", conn_order(sort), n + 1)
}

/// The query of a connection listing: the connections some flow of which meets `cond` that also meet `extra`,
/// in `order`, with the limit bound as parameter `limit_at`.
pub(super) fn conn_sql(cond: &str, extra: &str, order: &str, limit_at: usize) -> String {
    format!(
        "SELECT {}
         FROM connections x JOIN captures c ON c.id = x.capture_id
         WHERE {} AND ({extra})
         ORDER BY {order} LIMIT ${limit_at}",
        conn_columns(),
        conn_condition(cond)
    )
}

/// The columns of a connection row as `conn_row` reads them, of `connections x` joined to `captures c`.
pub(super) fn conn_columns() -> String {
    format!(
        "x.capture_id, c.name, x.conn_no, x.community_id, x.orig_h, x.orig_p, x.resp_h, x.resp_p,
                x.first_ns, x.last_ns, x.orig_pkts, x.orig_bytes, x.orig_frame_bytes, x.resp_pkts, x.resp_bytes,
                x.resp_frame_bytes, x.conn_state, x.history,
                (SELECT string_agg(f.label, chr(10) ORDER BY f.first_frame) FROM {CONN_FLOWS}),
                (SELECT {DIGITS} FROM interfaces i WHERE i.capture_id = x.capture_id),
                x.orig_payload_bytes, x.resp_payload_bytes, x.orig_ip_bytes, x.resp_ip_bytes"
    )
}

impl Pg {
    /// Each capture's name and timestamp precision (`read::capture_facts`).
    pub fn capture_facts(&self) -> Result<CaptureFacts, QueryError> {
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

    /// Runs `sql` and hands each row to `visit` as it arrives: memory does not grow with the rows.
    pub(super) fn stream(
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

    /// `read::search_flows` on PostgreSQL, in one REPEATABLE READ, READ ONLY transaction: the time order reads
    /// a page at a time, and each page in a snapshot of its own showed part of a capture `forget` deleted meanwhile.
    pub(super) fn search_flows(
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
        let cond = filter.condition_with(dollar);
        let params = values(&filter.params);
        let n = params.len();
        if sort == FlowSort::Time {
            let cands = bucket_candidates(self, filter)?;
            let st = self
                .client
                .borrow_mut()
                .prepare(&page_sql(&cond, n, FLOW_COLUMNS))?;
            let st_cands = self.client.borrow_mut().prepare(&format!(
                "{} ORDER BY f.flow_no",
                candidate_sql(&cond, n, FLOW_COLUMNS)
            ))?;
            let mut page = |cid: i64, after: i64, into: &mut VecDeque<FlowRow>| {
                if let Some(c) = cands.get(&cid) {
                    // The next PAGE candidates after `after`, until one of them matches or none are left.
                    let mut at = c.partition_point(|&no| no <= after);
                    while at < c.len() && into.is_empty() {
                        let chunk = c[at..c.len().min(at + PAGE as usize)].to_vec();
                        at += chunk.len();
                        let extra: [&(dyn ToSql + Sync); 2] = [&cid, &chunk];
                        let rows = self
                            .client
                            .borrow_mut()
                            .query(&st_cands, &refs(&params, &extra))?;
                        for r in &rows {
                            if let Some(row) = flow_row(r, &caps)? {
                                into.push_back(row);
                            }
                        }
                    }
                    return Ok(at < c.len());
                }
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

    /// `read::count_flows` on PostgreSQL: the captures with bucket candidates count those (exact ones by their
    /// number), the others all their flows in one query.
    pub(super) fn count_flows(&self, filter: &Compiled) -> Result<i64, QueryError> {
        let cands = candidates(self, filter, true)?;
        let cond = filter.condition_with(dollar);
        let params = values(&filter.params);
        let n = params.len();
        let mut total = 0;
        let mut listed = Vec::new();
        for (cid, (nos, exact)) in &cands {
            listed.push(*cid);
            if *exact {
                total += nos.len() as i64;
                continue;
            }
            let sql = candidate_sql(&cond, n, "count(*)");
            for chunk in nos.chunks(4096) {
                let chunk = chunk.to_vec();
                let r = self
                    .client
                    .borrow_mut()
                    .query_one(&sql, &refs(&params, &[cid, &chunk]))?;
                total += r.int(0)?;
            }
        }
        // The other captures' flows, each capture a range of the primary key.
        let others: Vec<i64> = self
            .rows("SELECT id FROM captures ORDER BY id", &[])?
            .iter()
            .map(|r| r.int(0))
            .collect::<Result<Vec<i64>, _>>()?
            .into_iter()
            .filter(|id| !listed.contains(id))
            .collect();
        if !others.is_empty() {
            let r = self.client.borrow_mut().query_one(
                &format!(
                    "SELECT count(*) FROM flows f WHERE f.capture_id = ANY (${}) AND ({cond})",
                    n + 1
                ),
                &refs(&params, &[&others]),
            )?;
            total += r.int(0)?;
        }
        Ok(total)
    }

    /// `read::explain_flows` on PostgreSQL: each query with PostgreSQL's `EXPLAIN` lines.
    pub(super) fn explain_flows(
        &self,
        filter: &Compiled,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        let cond = filter.condition_with(dollar);
        let params = values(&filter.params);
        let page = page_sql(
            &filter.condition_with(dollar),
            filter.params.len(),
            FLOW_COLUMNS,
        );
        let count = format!("SELECT count(*) FROM flows f WHERE {cond}");
        let (one, zero) = (1i64, 0i64);
        self.explain([
            (page, refs(&params, &[&one, &zero])),
            (count, refs(&params, &[])),
        ])
    }

    /// PostgreSQL's `EXPLAIN` of the two queries of `connections` (the listing in `sort` order, and `--count`):
    /// each query with its plan's lines.
    pub(super) fn explain_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        let cond = filter.condition_with(dollar);
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

    /// `read::search_connections` on PostgreSQL.
    pub(super) fn search_connections(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let params = values(&filter.params);
        let limit = limit.map(|l| l.min(i64::MAX as u64) as i64);
        let sql = search_connections_sql(&filter.condition_with(dollar), sort, params.len());
        self.stream(&sql, &refs(&params, &[&limit]), &mut |r| {
            visit(conn_row(r)?)
        })
    }

    /// `read::count_connections` on PostgreSQL.
    pub(super) fn count_connections(&self, filter: &Compiled) -> Result<i64, QueryError> {
        let params = values(&filter.params);
        let r = self.client.borrow_mut().query_one(
            &count_connections_sql(&filter.condition_with(dollar)),
            &refs(&params, &[]),
        )?;
        r.int(0)
    }

    /// The next `PAGE` flows of a capture that match `filter` after flow_no `after`: (flow_no, first_frame).
    pub(super) fn flow_page(
        &self,
        filter: &Compiled,
        capture_id: i64,
        after: i64,
    ) -> Result<Vec<(i64, i64)>, QueryError> {
        let params = values(&filter.params);
        let rows = self.rows(
            &page_sql(
                &filter.condition_with(dollar),
                filter.params.len(),
                "f.flow_no, f.first_frame",
            ),
            &refs(&params, &[&capture_id, &after]),
        )?;
        rows.iter().map(|r| Ok((r.int(0)?, r.int(1)?))).collect()
    }

    /// The next `PAGE` connections of a capture that have a flow matching `filter` after conn_no `after`:
    /// (conn_no, first_frame), in conn_no order.
    pub(super) fn connection_page(
        &self,
        filter: &Compiled,
        capture_id: i64,
        after: i64,
    ) -> Result<Vec<(i64, i64)>, QueryError> {
        let params = values(&filter.params);
        let n = filter.params.len();
        let sql = format!(
            "SELECT x.conn_no, x.first_frame FROM connections x
             WHERE x.capture_id = ${} AND x.conn_no > ${} AND {}
             ORDER BY x.conn_no LIMIT {PAGE}",
            n + 1,
            n + 2,
            conn_condition(&filter.condition_with(dollar))
        );
        let rows = self.rows(&sql, &refs(&params, &[&capture_id, &after]))?;
        rows.iter().map(|r| Ok((r.int(0)?, r.int(1)?))).collect()
    }
}
