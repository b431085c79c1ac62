//! `--group-by` on SQLite: groups of flows (read from the bucket candidates where the filter has some, as
//! `flows` reads them) and of connections, aggregated by SQLite, in the order of `--sort`.

use rusqlite::types::{Value, ValueRef};

use super::search::{
    capture_sizes, conn_condition, flow_ranges, json_list, limit_clause, next_range, over_ranges,
    range_condition,
};
use super::Sqlite;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::group_tally::{GroupTally, Key};
use crate::store::plan::bucket_candidates;
use crate::store::rows::{
    conn_totals, flow_totals, flows_from, group_order, group_row, grouped_sql, FlowSort, GroupBy,
    GroupRow,
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
    if cands.is_empty() {
        if let Some(rows) = tally_flows(conn, filter, by, sort, limit)? {
            for row in rows {
                visit(row)?;
            }
            return Ok(());
        }
    }
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
        "",
        &keys,
        &flow_totals(""),
        &flows_from(&source, by, &filter.condition),
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

/// The groups of every capture's matching flows tallied in Rust ([`GroupTally`]), a range of flows at a time on
/// every core; `None` where the tally gives up (too many groups), for the SQL to group them.
fn tally_flows(
    conn: &Sqlite,
    filter: &Compiled,
    by: GroupBy,
    sort: Option<FlowSort>,
    limit: Option<u64>,
) -> Result<Option<Vec<GroupRow>>, QueryError> {
    let keys = by.keys();
    let n = filter.params.len();
    let (ranges, threads) = flow_ranges(capture_sizes(conn)?.into_iter());
    let select: Vec<&str> = keys.iter().map(|(_, e)| e.as_str()).collect();
    let sql = format!(
        "SELECT {}, f.packets, f.bytes, f.payload_bytes, f.first_ns, f.last_ns {}",
        select.join(", "),
        flows_from(
            "flows",
            by,
            &format!("{} AND ({})", range_condition(n), filter.condition)
        )
    );
    let k = keys.len();
    let shares = over_ranges(conn, threads, |conn, next| {
        let mut st = conn.prepare(&sql)?;
        let mut tally = GroupTally::default();
        let mut p = filter.params.clone();
        while let Some((cid, a, b)) = next_range(&ranges, next) {
            p.truncate(n);
            p.extend([cid, a, b].map(Value::Integer));
            let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
            while let Some(r) = rows.next()? {
                let mut key = Vec::with_capacity(k);
                for i in 0..k {
                    key.push(match r.get_ref(i)? {
                        ValueRef::Integer(x) => Key::Int(x),
                        ValueRef::Text(t) => Key::Text(t.to_vec()),
                        _ => Key::Null,
                    });
                }
                tally.add(
                    key,
                    r.get(k)?,
                    r.get(k + 1)?,
                    r.get(k + 2)?,
                    r.get(k + 3)?,
                    r.get(k + 4)?,
                );
                if tally.given_up() {
                    return Ok(tally);
                }
            }
        }
        Ok(tally)
    })?;
    let mut all = GroupTally::default();
    for share in shares {
        all.merge(share);
    }
    let names: Vec<&'static str> = keys.iter().map(|(name, _)| *name).collect();
    Ok(all.rows(&names, sort, limit))
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
