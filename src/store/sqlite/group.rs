//! `--group-by` on SQLite: groups of flows (read from the bucket candidates where the filter has some, as
//! `flows` reads them) and of connections, aggregated by SQLite, in the order of `--sort`.

use rusqlite::types::Value;

use super::search::{conn_condition, json_list, limit_clause};
use super::Sqlite;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::plan::bucket_candidates;
use crate::store::rows::{
    conn_totals, flow_totals, group_order, group_row, grouped_sql, FlowSort, GroupBy, GroupRow,
};

/// Visits one row per group of the flows that match `filter`, in `sort`'s order of groups, at most `limit`.
/// Memory grows with the number of groups, not of flows.
pub fn group_flows(
    conn: &Sqlite,
    filter: &Compiled,
    by: GroupBy,
    sort: Option<FlowSort>,
    limit: Option<u64>,
    visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let keys = by.keys();
    let order = group_order(sort, &keys, "")?;
    let mut params = filter.params.clone();
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
        params.push(Value::Text(obj));
        params.push(Value::Text(json_list(&others)));
        format!(
            "(SELECT fl.* FROM json_each(?{a}) c CROSS JOIN json_each(c.value) j CROSS JOIN flows fl
                ON fl.capture_id = CAST(c.key AS INTEGER) AND fl.flow_no = j.value
              UNION ALL
              SELECT fl.* FROM flows fl WHERE fl.capture_id IN (SELECT value FROM json_each(?{b})))",
            a = params.len() - 1,
            b = params.len()
        )
    };
    let limit_sql = limit_clause(limit, &mut params);
    let sql = grouped_sql(
        "WITH d(capture_id, digits) AS (
             SELECT capture_id, max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE min(tsresol, 9) END)
             FROM interfaces GROUP BY capture_id)",
        &keys,
        &flow_totals(""),
        &format!(
            "FROM {source} f JOIN captures c ON c.id = f.capture_id LEFT JOIN d ON d.capture_id = f.capture_id
             WHERE {}",
            filter.condition
        ),
        &order,
        &limit_sql,
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        visit(group_row(r, &keys, "flows")?)?;
    }
    Ok(())
}

/// The filter's condition on connections `x`, or TRUE for the empty filter: every connection has a flow, so
/// the empty filter's test of each connection's flows is pure cost (a third of grouping 1M connections).
pub(crate) fn every_or(filter: &Compiled, cond: impl Fn(&Compiled) -> String) -> String {
    if filter.is_everything() {
        "TRUE".into()
    } else {
        cond(filter)
    }
}

/// Visits one row per group of the connections that have a flow matching `filter` (the connections `connections`
/// lists for it), in `sort`'s order of groups, at most `limit`.
pub fn group_connections(
    conn: &Sqlite,
    filter: &Compiled,
    by: GroupBy,
    sort: Option<FlowSort>,
    limit: Option<u64>,
    visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    // A pair orders its addresses by the flows' sortable keys; a read-only connection has no such function yet.
    conn.create_scalar_function(
        "traceflow_addr_key",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text: String = ctx.get(0)?;
            Ok(text
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|a| crate::key::addr_key(&a).to_vec()))
        },
    )?;
    let keys = by.conn_keys("traceflow_addr_key({a}) <= traceflow_addr_key({b})");
    let order = group_order(sort, &keys, "")?;
    let mut params = filter.params.clone();
    let limit_sql = limit_clause(limit, &mut params);
    let sql = grouped_sql(
        "",
        &keys,
        &conn_totals(""),
        &format!(
            "FROM connections x WHERE x.capture_id IN (SELECT id FROM captures) AND {}",
            every_or(filter, conn_condition)
        ),
        &order,
        &limit_sql,
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        visit(group_row(r, &keys, "connections")?)?;
    }
    Ok(())
}
