//! Connection searches on SQLite: a filter with bucket candidates ([`crate::store::plan`]) finds its matching
//! flows among those and their connections through `connection_flows`, capture by capture; captures without
//! usable buckets test each connection's flows (`search::conn_condition`), and a sorted listing with a limit walks
//! the index of its order (`connections_by_*`) and stops at the limit. The rows, their order (`conn_order`, ties
//! included) and the counts are those of testing every connection.

use std::collections::{BTreeMap, HashMap};

use rusqlite::types::Value;

use super::search::{conn_condition, json_list, CONN_COLUMNS_SQLITE};
use super::Sqlite;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::plan::{connection_candidates, walk_first};
use crate::store::row::Cols;
use crate::store::rows::{conn_order, conn_row, ConnRow, FlowSort};

/// Candidates looked up per statement.
const CHUNK: usize = 4096;

/// The index whose order is `conn_order(sort)` (migrations/0011).
pub(crate) fn order_index(sort: FlowSort) -> &'static str {
    match sort {
        FlowSort::Time => "connections_by_time",
        FlowSort::Bytes => "connections_by_bytes",
        FlowSort::Packets => "connections_by_packets",
        FlowSort::Duration => "connections_by_duration",
    }
}

/// The connections of capture `?n+1` that have a flow among the candidates `?n+2` (a JSON array) matching the
/// filter (parameters `?1..=?n`): each candidate one primary-key lookup of `flows`, then of `connection_flows`.
fn mapped_sql(filter: &Compiled) -> String {
    let n = filter.params.len();
    format!(
        "SELECT DISTINCT cf.conn_no FROM json_each(?{}) j CROSS JOIN flows f CROSS JOIN connection_flows cf
         WHERE f.capture_id = ?{} AND f.flow_no = j.value AND ({})
           AND cf.capture_id = f.capture_id AND cf.flow_no = f.flow_no",
        n + 2,
        n + 1,
        filter.condition
    )
}

/// (capture_id, conn_no) of the matching connections of the captures `?n+1` (a JSON array) in `sort` order, at
/// most `?n+2` of them. With a limit the order's index is walked, so the query stops after that many matches.
fn others_sql(filter: &Compiled, sort: FlowSort, walk: bool) -> String {
    let n = filter.params.len();
    let indexed = if walk {
        format!(" INDEXED BY {}", order_index(sort))
    } else {
        String::new()
    };
    format!(
        "SELECT x.capture_id, x.conn_no FROM connections x{indexed}
         WHERE x.capture_id IN (SELECT value FROM json_each(?{})) AND {}
         ORDER BY {} LIMIT ?{}",
        n + 1,
        conn_condition(filter),
        conn_order(sort),
        n + 2
    )
}

/// The listing of every capture in `sort` order walking the order's index, its limit `?n+1`: the query of
/// `search::conn_list_sql` that stops after the limit's matches instead of sorting them all.
fn walk_sql(filter: &Compiled, sort: FlowSort) -> String {
    format!(
        "SELECT {CONN_COLUMNS_SQLITE}
         FROM connections x INDEXED BY {}
         WHERE {} AND x.capture_id IN (SELECT id FROM captures)
         ORDER BY {} LIMIT ?{}",
        order_index(sort),
        conn_condition(filter),
        conn_order(sort),
        filter.params.len() + 1
    )
}

/// The rows of the connections `?1` (a JSON array of [capture_id, conn_no] pairs) in `sort` order, at most `?2`:
/// the order is taken on the keys alone, and the rows' columns (their flows' labels) read for those listed only.
/// Small pairs: a capture's keys as one array, each read with `json_extract`, parsed the whole array once per key.
fn rows_sql(sort: FlowSort) -> String {
    let order = conn_order(sort);
    format!(
        "WITH top(capture_id, conn_no) AS (
             SELECT x.capture_id, x.conn_no
             FROM json_each(?1) j CROSS JOIN connections x
             WHERE x.capture_id = json_extract(j.value, '$[0]') AND x.conn_no = json_extract(j.value, '$[1]')
             ORDER BY {order} LIMIT ?2)
         SELECT {CONN_COLUMNS_SQLITE}
         FROM top t CROSS JOIN connections x
         WHERE x.capture_id = t.capture_id AND x.conn_no = t.conn_no
         ORDER BY {order}"
    )
}

/// The limit as SQLite takes it: -1 for none.
fn limit_value(limit: Option<u64>) -> Value {
    Value::Integer(limit.map(|l| l.min(i64::MAX as u64) as i64).unwrap_or(-1))
}

/// Per capture with bucket candidates, its matching connections (ascending, each once).
fn mapped(
    conn: &Sqlite,
    filter: &Compiled,
    cands: &HashMap<i64, Vec<i64>>,
) -> Result<BTreeMap<i64, Vec<i64>>, QueryError> {
    let mut st = conn.prepare(&mapped_sql(filter))?;
    let n = filter.params.len();
    let mut params = filter.params.clone();
    let mut out = BTreeMap::new();
    for (&cid, nos) in cands {
        let mut found: Vec<i64> = Vec::new();
        for chunk in nos.chunks(CHUNK) {
            params.truncate(n);
            params.push(Value::Integer(cid));
            params.push(Value::Text(json_list(chunk)));
            let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
            while let Some(r) = rows.next()? {
                found.push(r.get(0)?);
            }
        }
        // Two flows of one connection may come in different chunks.
        found.sort_unstable();
        found.dedup();
        out.insert(cid, found);
    }
    Ok(out)
}

/// The ids of the captures that have no candidates.
fn others(conn: &Sqlite, cands: &HashMap<i64, Vec<i64>>) -> Result<Vec<i64>, QueryError> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM captures ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids
        .into_iter()
        .filter(|id| !cands.contains_key(id))
        .collect())
}

/// Visits every connection that has a flow matching `filter`, in `sort` order, at most `limit`.
pub fn search(
    conn: &Sqlite,
    filter: &Compiled,
    sort: FlowSort,
    limit: Option<u64>,
    visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let cands = connection_candidates(conn, filter)?;
    if let Some(l) = limit {
        let flows: i64 =
            conn.query_row("SELECT coalesce(sum(flows), 0) FROM captures", [], |r| {
                r.get(0)
            })?;
        if walk_first(&cands, flows, l) {
            let mut params = filter.params.clone();
            params.push(limit_value(Some(l)));
            return visit_rows(conn, &walk_sql(filter, sort), &params, visit);
        }
    }
    if cands.is_empty() {
        return super::search::search_connections(conn, filter, sort, limit, visit);
    }
    let mut keys = mapped(conn, filter, &cands)?;
    let others = others(conn, &cands)?;
    if !others.is_empty() {
        // The global first `limit` are among these captures' first `limit` and every match of the others.
        let mut params = filter.params.clone();
        params.push(Value::Text(json_list(&others)));
        params.push(limit_value(limit));
        let mut st = conn.prepare(&others_sql(filter, sort, limit.is_some()))?;
        let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(r) = rows.next()? {
            keys.entry(r.get(0)?).or_default().push(r.get(1)?);
        }
    }
    let list: Vec<(i64, i64)> = keys
        .into_iter()
        .flat_map(|(cid, nos)| nos.into_iter().map(move |no| (cid, no)))
        .collect();
    if list.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
    visit_rows(
        conn,
        &rows_sql(sort),
        &[Value::Text(json), limit_value(limit)],
        visit,
    )
}

/// Runs a listing query and visits its rows.
fn visit_rows(
    conn: &Sqlite,
    sql: &str,
    params: &[Value],
    visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        // A capture deleted between the two reads of its row is not listed.
        if r.opt_text(1)?.is_some() {
            visit(conn_row(r)?)?;
        }
    }
    Ok(())
}

/// How many connections have a flow matching `filter`.
pub fn count(conn: &Sqlite, filter: &Compiled) -> Result<i64, QueryError> {
    let cands = connection_candidates(conn, filter)?;
    if cands.is_empty() {
        return super::search::count_connections(conn, filter);
    }
    let mut total: i64 = mapped(conn, filter, &cands)?
        .values()
        .map(|v| v.len() as i64)
        .sum();
    let others = others(conn, &cands)?;
    if !others.is_empty() {
        let mut params = filter.params.clone();
        params.push(Value::Text(json_list(&others)));
        total += conn.query_row(
            &format!(
                "SELECT count(*) FROM connections x WHERE x.capture_id IN (SELECT value FROM json_each(?{})) AND {}",
                filter.params.len() + 1,
                conn_condition(filter)
            ),
            rusqlite::params_from_iter(params.iter()),
            |r| r.get::<_, i64>(0),
        )?;
    }
    Ok(total)
}

/// How SQLite runs a connection search: with bucket candidates, the lookup of their connections and the listing
/// of those; for the captures without, the listing with a limit (walking the order's index), without one, and
/// the count; each with its `EXPLAIN QUERY PLAN` lines.
pub fn explain(
    conn: &Sqlite,
    filter: &Compiled,
    sort: FlowSort,
) -> Result<Vec<(String, Vec<String>)>, QueryError> {
    let mut queries = Vec::new();
    if !filter.buckets.is_empty() {
        let mut p = filter.params.clone();
        p.push(Value::Integer(1));
        p.push(Value::Text("[1]".into()));
        queries.push((
            format!(
                "-- captures with bucket candidates: their matching flows' connections\n{}",
                mapped_sql(filter)
            ),
            p,
        ));
        queries.push((
            format!("-- then those connections' rows\n{}", rows_sql(sort)),
            vec![Value::Text("[[1,1]]".into()), Value::Integer(-1)],
        ));
    }
    let mut walk = filter.params.clone();
    walk.push(Value::Integer(20));
    queries.push((format!("-- with --limit\n{}", walk_sql(filter, sort)), walk));
    let mut out = super::search::explain_connections(conn, filter, sort)?;
    let mut first = Vec::new();
    for (sql, p) in &queries {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                r.get::<_, String>(3)
            })?
            .collect::<Result<_, _>>()?;
        first.push((sql.clone(), plan));
    }
    first.append(&mut out);
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(c: &Sqlite, sql: &str, p: &[Value]) -> Vec<String> {
        c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(p.iter()), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Each step of the bucket path is a key lookup, and a listing with a limit walks its order's index without
    /// sorting: nothing reads every connection or every flow.
    #[test]
    fn the_bucket_path_looks_up_by_key_and_limited_listings_walk_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(&dir.path().join("t.db")).unwrap();
        let filter = crate::filter::compile(&crate::filter::parse("port 443", 0).unwrap());
        let mut p = filter.params.clone();
        p.push(Value::Integer(1));
        p.push(Value::Text("[1]".into()));
        let steps = plan(&c, &mapped_sql(&filter), &p);
        assert!(
            steps
                .iter()
                .all(|s| !s.starts_with("SCAN ") || s.starts_with("SCAN j ")),
            "{steps:?}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with("SEARCH cf USING PRIMARY KEY (capture_id=? AND flow_no=?)")),
            "{steps:?}"
        );
        for sort in [
            FlowSort::Time,
            FlowSort::Bytes,
            FlowSort::Packets,
            FlowSort::Duration,
        ] {
            let steps = plan(
                &c,
                &rows_sql(sort),
                &[Value::Text("[[1,1]]".into()), Value::Integer(20)],
            );
            assert!(
                steps
                    .iter()
                    .all(|s| !s.starts_with("SCAN x") && !s.starts_with("SCAN connections")),
                "{sort:?}: {steps:?}"
            );
            let mut w = filter.params.clone();
            w.push(Value::Integer(20));
            let steps = plan(&c, &walk_sql(&filter, sort), &w);
            assert!(
                steps.iter().any(|s| s
                    .starts_with(&format!("SCAN x USING INDEX {}", order_index(sort)))
                    || s.starts_with(&format!(
                        "SCAN x USING COVERING INDEX {}",
                        order_index(sort)
                    ))),
                "{sort:?}: {steps:?}"
            );
            // The labels' ORDER BY is the only sort left.
            assert_eq!(
                steps.iter().filter(|s| s.contains("TEMP B-TREE")).count(),
                1,
                "{sort:?}: {steps:?}"
            );
            let mut o = filter.params.clone();
            o.push(Value::Text("[1]".into()));
            o.push(Value::Integer(20));
            let steps = plan(&c, &others_sql(&filter, sort, true), &o);
            assert!(
                !steps.iter().any(|s| s.contains("TEMP B-TREE")),
                "{sort:?}: {steps:?}"
            );
        }
    }
}
