//! Keyset pages of flows and connections and the time histogram on SQLite (`traceflow serve`; the SQL is
//! [`crate::store::page`]'s).

use rusqlite::types::Value;

use super::search::{capture_facts, conn_sql, FLOW_COLUMNS_SQLITE};
use super::Sqlite;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::page::{Listing, PageKey};
use crate::store::rows::{conn_row, flow_row, ConnRow, FlowRow, FlowSort};

fn question(n: usize) -> String {
    format!("?{n}")
}

fn limit_value(limit: u64) -> Value {
    Value::Integer(limit.min(i64::MAX as u64) as i64)
}

/// `Backend::flows_page` on SQLite.
pub(super) fn flows_page(
    conn: &Sqlite,
    filter: &Compiled,
    sort: FlowSort,
    after: Option<&PageKey>,
    limit: u64,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let caps = capture_facts(conn)?;
    let mut params = filter.params.clone();
    let (cond, vals) = Listing::Flows.after(sort, after, params.len() + 1, question);
    params.extend(vals);
    params.push(limit_value(limit));
    let sql = format!(
        "SELECT {FLOW_COLUMNS_SQLITE} FROM flows f WHERE ({}) AND {cond} ORDER BY {} LIMIT ?{}",
        filter.condition,
        Listing::Flows.order(sort),
        params.len()
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

/// `Backend::connections_page` on SQLite.
pub(super) fn connections_page(
    conn: &Sqlite,
    filter: &Compiled,
    sort: FlowSort,
    after: Option<&PageKey>,
    limit: u64,
    visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut params = filter.params.clone();
    let (cond, vals) = Listing::Connections.after(sort, after, params.len() + 1, question);
    params.extend(vals);
    params.push(limit_value(limit));
    let sql = conn_sql(
        filter,
        &cond,
        &Listing::Connections.order(sort),
        params.len(),
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        if r.get_ref(1)?.as_str_or_null().ok().flatten().is_some() {
            visit(conn_row(r)?)?;
        }
    }
    Ok(())
}

/// `Backend::flow_histogram` on SQLite.
pub(super) fn flow_histogram(
    conn: &Sqlite,
    filter: &Compiled,
    lo: i64,
    hi: i64,
    buckets: usize,
) -> Result<Vec<i64>, QueryError> {
    let mut out = vec![0i64; buckets];
    if buckets == 0 || hi <= lo {
        return Ok(out);
    }
    let width = ((hi - lo) as u64).div_ceil(buckets as u64).max(1) as i64;
    let mut params = filter.params.clone();
    params.extend([lo, hi].map(Value::Integer));
    // SQLite's GROUP BY of the shared SQL sorts every matching flow in a temporary b-tree (three times the cost of
    // the scan), so the flows' spans are read as they are and tallied here: one start and one end mark per flow
    // in a difference array, summed once at the end. Same division and clamping as the grouped SQL.
    let n = filter.params.len();
    let sql = format!(
        "SELECT f.first_ns, f.last_ns FROM flows f WHERE ({}) AND f.last_ns >= ?{} AND f.first_ns < ?{}",
        filter.condition,
        n + 1,
        n + 2
    );
    let top = buckets as i64 - 1;
    let mut marks = vec![0i64; buckets + 1];
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        let (first, last): (i64, i64) = (r.get(0)?, r.get(1)?);
        let a = (first.saturating_sub(lo) / width).clamp(0, top);
        let b = (last.saturating_sub(lo) / width).clamp(0, top).max(a);
        marks[a as usize] += 1;
        marks[b as usize + 1] -= 1;
    }
    let mut run = 0i64;
    for (slot, mark) in out.iter_mut().zip(&marks) {
        run += mark;
        *slot = run;
    }
    Ok(out)
}

/// `Backend::connection_row` on SQLite.
pub(super) fn connection_row(
    conn: &Sqlite,
    capture_id: i64,
    conn_no: i64,
) -> Result<Option<ConnRow>, QueryError> {
    let all = crate::filter::compile(&crate::filter::Expr::All);
    let sql = conn_sql(&all, "x.capture_id = ?1 AND x.conn_no = ?2", "x.conn_no", 3);
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params![capture_id, conn_no, 1])?;
    match rows.next()? {
        Some(r) => Ok(Some(conn_row(r)?)),
        None => Ok(None),
    }
}
