//! `--group-by` on SQLite: groups of flows (read from the bucket candidates where the filter has some, as
//! `flows` reads them, and aggregated by SQLite; otherwise tallied here on every core) and of connections, in
//! the order of `--sort`.

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
    // A flow's conn_state is its first connection's: rather than that lookup for each flow (two b-tree
    // searches), the states are read once and the flows' first connections walked in flow order beside them.
    let states = if by == GroupBy::ConnState {
        match ConnStates::read(conn)? {
            Some(s) => Some(s),
            None => return Ok(None),
        }
    } else {
        None
    };
    let select: Vec<&str> = match states {
        Some(_) => vec!["f.flow_no"],
        None => keys.iter().map(|(_, e)| e.as_str()).collect(),
    };
    let sql = format!(
        "SELECT {}, f.packets, f.bytes, f.payload_bytes, f.first_ns, f.last_ns {}{}",
        select.join(", "),
        flows_from(
            "flows",
            by,
            &format!("{} AND ({})", range_condition(n), filter.condition)
        ),
        if states.is_some() {
            " ORDER BY f.flow_no"
        } else {
            ""
        }
    );
    let k = select.len();
    let shares = over_ranges(conn, threads, |conn, next| {
        let mut st = conn.prepare(&sql)?;
        let mut firsts = conn.prepare(FIRST_CONNECTIONS)?;
        let mut tally = GroupTally::default();
        let mut p = filter.params.clone();
        while let Some((cid, a, b)) = next_range(&ranges, next) {
            p.truncate(n);
            p.extend([cid, a, b].map(Value::Integer));
            let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
            let mut first = match states {
                Some(_) => Some(firsts.query(rusqlite::params![cid, a, b])?),
                None => None,
            };
            let mut pending: Option<(i64, i64)> = None;
            while let Some(r) = rows.next()? {
                let key = match (&states, first.as_mut()) {
                    (Some(states), Some(first)) => {
                        let no: i64 = r.get(0)?;
                        // The first connection of flow `no`, if it has one: both walks are in flow order.
                        while pending.is_none_or(|(f, _)| f < no) {
                            match first.next()? {
                                Some(c) => pending = Some((c.get(0)?, c.get(1)?)),
                                None => {
                                    pending = Some((i64::MAX, 0));
                                }
                            }
                        }
                        vec![match pending {
                            Some((f, c)) if f == no => states.of(cid, c),
                            _ => Key::Null,
                        }]
                    }
                    _ => {
                        let mut key = Vec::with_capacity(k);
                        for i in 0..k {
                            key.push(match r.get_ref(i)? {
                                ValueRef::Integer(x) => Key::Int(x),
                                ValueRef::Text(t) => Key::Text(t.to_vec()),
                                _ => Key::Null,
                            });
                        }
                        key
                    }
                };
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

/// Each flow of a range of a capture (`?1`, flow numbers after `?2` up to `?3`) that is in a connection, with
/// its first connection (the lowest number, as the `conn_state` group key takes it), in flow order.
const FIRST_CONNECTIONS: &str = "SELECT flow_no, min(conn_no) FROM connection_flows
     WHERE capture_id = ?1 AND flow_no > ?2 AND flow_no <= ?3 GROUP BY flow_no ORDER BY flow_no";

/// Every connection's conn_state, by capture and connection number: a few distinct states, one byte each.
struct ConnStates {
    names: Vec<Key>,
    by_capture: std::collections::HashMap<i64, Vec<u8>>,
}

impl ConnStates {
    const NONE: u8 = u8::MAX;
    /// Connection numbers run from 1 in each capture; past this one a table by number is not worth its memory.
    const MAX_NO: usize = 1 << 26;

    /// The states, or None where a connection's number is too large for a table by number (the SQL then
    /// looks each flow's up).
    fn read(conn: &Sqlite) -> Result<Option<ConnStates>, QueryError> {
        let mut out = ConnStates {
            names: Vec::new(),
            by_capture: std::collections::HashMap::new(),
        };
        let mut st = conn.prepare("SELECT capture_id, conn_no, conn_state FROM connections")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (cid, no): (i64, i64) = (r.get(0)?, r.get(1)?);
            let name = match r.get_ref(2)? {
                ValueRef::Text(t) => Key::Text(t.to_vec()),
                _ => Key::Null,
            };
            let code = match out.names.iter().position(|k| *k == name) {
                Some(i) => i,
                None => {
                    out.names.push(name);
                    out.names.len() - 1
                }
            };
            let (Ok(code), Ok(no)) = (u8::try_from(code), usize::try_from(no)) else {
                return Ok(None);
            };
            if code == Self::NONE || no > Self::MAX_NO {
                return Ok(None);
            }
            let v = out.by_capture.entry(cid).or_default();
            if v.len() <= no {
                v.resize(no + 1, Self::NONE);
            }
            v[no] = code;
        }
        Ok(Some(out))
    }

    fn of(&self, cid: i64, no: i64) -> Key {
        let code = self
            .by_capture
            .get(&cid)
            .and_then(|v| usize::try_from(no).ok().and_then(|i| v.get(i)))
            .copied()
            .unwrap_or(Self::NONE);
        self.names
            .get(usize::from(code))
            .cloned()
            .unwrap_or(Key::Null)
    }
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
