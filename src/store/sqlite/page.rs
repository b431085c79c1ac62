//! Keyset pages of flows and connections and the time histogram on SQLite (`traceflow serve`; the SQL is
//! [`crate::store::page`]'s).

use rusqlite::types::Value;

use super::search::{capture_facts, conn_sql, FLOW_COLUMNS_SQLITE};
use super::Sqlite;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::page::{add_span, histogram_sql, Listing, PageKey};
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
    params.extend([lo, hi, width].map(Value::Integer));
    let sql = histogram_sql(&filter.condition, filter.params.len(), question);
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        add_span(&mut out, r.get(0)?, r.get(1)?, r.get(2)?);
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
