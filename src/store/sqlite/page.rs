//! Keyset pages of flows and connections and the time histogram on SQLite (`traceflow serve`; the SQL is
//! [`crate::store::page`]'s).

use rusqlite::types::Value;

use super::search::{
    candidate_sql, capture_facts, capture_sizes, conn_sql, flow_ranges, json_list, next_range,
    over_ranges, range_condition, FLOW_COLUMNS_SQLITE,
};
use super::Sqlite;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::page::{first_of, Listing, PageKey, Tally};
use crate::store::plan::covering_candidates;
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
    if let Some(rows) = candidate_page(conn, filter, sort, after, limit, &caps)? {
        for row in rows {
            visit(row)?;
        }
        return Ok(());
    }
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

/// The filter's covering bucket candidates ([`covering_candidates`]).
fn sqlite_candidates(
    conn: &Sqlite,
    filter: &Compiled,
) -> Result<Option<std::collections::HashMap<i64, Vec<i64>>>, QueryError> {
    let mut ids = conn.prepare("SELECT id FROM captures WHERE flows > 0")?;
    let ids: Vec<i64> = ids.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    covering_candidates(conn, &ids, filter)
}

/// The page from the filter's flow bucket candidates, when every capture with flows has a short list of them:
/// each candidate is one primary-key lookup, and sorting the few matches here replaces SQLite's walk of every
/// flow of the time window (the page's ORDER BY spans captures, which no index gives in order). None when the
/// candidates do not cover every capture or are too many.
fn candidate_page(
    conn: &Sqlite,
    filter: &Compiled,
    sort: FlowSort,
    after: Option<&PageKey>,
    limit: u64,
    caps: &crate::store::rows::CaptureFacts,
) -> Result<Option<Vec<FlowRow>>, QueryError> {
    let Some(cands) = sqlite_candidates(conn, filter)? else {
        return Ok(None);
    };
    let n = filter.params.len();
    let (cond, vals) = Listing::Flows.after(sort, after, n + 3, question);
    let sql = format!("{} AND {cond}", candidate_sql(filter, FLOW_COLUMNS_SQLITE));
    let mut st = conn.prepare(&sql)?;
    let mut rows = Vec::new();
    for (cid, nos) in &cands {
        let mut params = filter.params.clone();
        params.push(Value::Integer(*cid));
        params.push(Value::Text(json_list(nos)));
        params.extend(vals.iter().cloned());
        let mut it = st.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(r) = it.next()? {
            if let Some(row) = flow_row(r, caps)? {
                rows.push(row);
            }
        }
    }
    Ok(Some(first_of(rows, sort, limit)))
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

/// `Backend::flow_histogram` on SQLite. SQLite's GROUP BY of the shared SQL sorts every matching flow in a
/// temporary b-tree (three times the cost of the scan), so the flows' spans are read as they are and tallied
/// here: a host or port filter's few candidates by key, any other filter's flows a range at a time on every core.
pub(super) fn flow_histogram(
    conn: &Sqlite,
    filter: &Compiled,
    lo: i64,
    hi: i64,
    buckets: usize,
) -> Result<Vec<i64>, QueryError> {
    if buckets == 0 || hi <= lo {
        return Ok(vec![0; buckets]);
    }
    let n = filter.params.len();
    let mut tally = Tally::new(lo, hi, buckets);
    if let Some(cands) = sqlite_candidates(conn, filter)? {
        let sql = format!(
            "{} AND f.last_ns >= ?{} AND f.first_ns < ?{}",
            candidate_sql(filter, "f.first_ns, f.last_ns"),
            n + 3,
            n + 4
        );
        let mut st = conn.prepare(&sql)?;
        for (cid, nos) in &cands {
            let mut p = filter.params.clone();
            p.push(Value::Integer(*cid));
            p.push(Value::Text(json_list(nos)));
            p.extend([lo, hi].map(Value::Integer));
            let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
            while let Some(r) = rows.next()? {
                tally.add(r.get(0)?, r.get(1)?);
            }
        }
        return Ok(tally.counts());
    }
    let (ranges, threads) = flow_ranges(capture_sizes(conn)?.into_iter());
    let sql = format!(
        "SELECT f.first_ns, f.last_ns FROM flows f WHERE {} AND ({}) AND f.last_ns >= ?{} AND f.first_ns < ?{}",
        range_condition(n),
        filter.condition,
        n + 4,
        n + 5
    );
    let shares = over_ranges(conn, threads, |conn, next| {
        let mut st = conn.prepare(&sql)?;
        let mut mine = tally.clone();
        let mut p = filter.params.clone();
        while let Some((cid, a, b)) = next_range(&ranges, next) {
            p.truncate(n);
            p.extend([cid, a, b, lo, hi].map(Value::Integer));
            let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
            while let Some(r) = rows.next()? {
                mine.add(r.get(0)?, r.get(1)?);
            }
        }
        Ok(mine)
    })?;
    for share in &shares {
        tally.merge(share);
    }
    Ok(tally.counts())
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
