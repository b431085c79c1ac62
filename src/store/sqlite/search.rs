//! The searches on SQLite: `flows` (in time order, a merge of each capture's pages, read ahead on helper
//! threads; or sorted), its count (threaded), `--explain`, and `connections`, with the bucket
//! candidates of the query planner ([`crate::store::plan`]) read through `json_each`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::Sqlite;

use crate::store::count::count_threads;
use crate::store::error::QueryError;
use crate::store::merge::{merge_pages, PAGE};
use crate::store::plan::{bucket_candidates, candidates};
use crate::store::row::Cols;
use crate::store::rows::{
    conn_order, conn_row, flow_row, CaptureFacts, ConnRow, FlowRow, FlowSort,
};

/// The columns of a flow row as [`flow_row`] reads them (`rows::FLOW_COLUMNS`), with the label as stored: ''
/// where the row's key and time give it (schema 9), which [`flow_row`] fills in. `stored_label` is a column of
/// traceflow's temporary `flows` view only (`open.rs`).
pub(crate) const FLOW_COLUMNS_SQLITE: &str =
    "f.capture_id, f.stored_label, f.src, f.sport, f.dst, f.dport, f.first_ns, f.last_ns, \
     f.packets, f.bytes, f.payload_bytes, f.flags, f.closed_frame IS NOT NULL, f.flow_no";

#[test]
fn sqlite_flow_columns_are_the_shared_ones_with_the_stored_label() {
    let shared = crate::store::rows::FLOW_COLUMNS;
    assert_eq!(
        FLOW_COLUMNS_SQLITE.split(", ").collect::<Vec<_>>(),
        shared
            .split(", ")
            .map(|c| if c == "f.label" { "f.stored_label" } else { c })
            .collect::<Vec<_>>()
    );
}

/// The stored lists of a capture's buckets `?2..=?3`.
pub(crate) const BUCKET_LISTS_SQL: &str =
    "SELECT flow_nos FROM flow_buckets WHERE capture_id = ?1 AND bucket >= ?2 AND bucket <= ?3";

/// Each capture's name and timestamp precision, read once per search rather than joined into every row.
pub(crate) fn capture_facts(conn: &Connection) -> Result<CaptureFacts, QueryError> {
    Ok(conn
        .prepare(
            "SELECT c.id, c.name, (SELECT max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE min(tsresol, 9) END)
                                   FROM interfaces i WHERE i.capture_id = c.id)
             FROM captures c",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                (
                    Arc::from(r.get::<_, String>(1)?),
                    r.get::<_, Option<u8>>(2)?.unwrap_or(9),
                ),
            ))
        })?
        .collect::<Result<_, _>>()?)
}

/// `LIMIT ?N` with the limit bound as the last of `params`, or nothing without a limit: with a LIMIT clause (even
/// -1) SQLite keeps sorted rows in a B-tree, inserting each one, which is far slower than its sort.
pub(super) fn limit_clause(limit: Option<u64>, params: &mut Vec<rusqlite::types::Value>) -> String {
    match limit {
        Some(l) => {
            params.push(rusqlite::types::Value::Integer(
                l.min(i64::MAX as u64) as i64
            ));
            format!("LIMIT ?{}", params.len())
        }
        None => String::new(),
    }
}

/// Visits every flow that matches `filter` (a compiled condition on `flows f`), in `sort` order, at most
/// `limit`; rows are read one at a time, so memory does not grow with the matches.
///
/// Time order is the order mergecap would give the flows' first frames: within a capture, flows come as they
/// began in the file (flow_no, which the tracer numbers in frame order), and captures are interleaved by the
/// time of their next flow. For a capture whose clock never goes back this is plain first-time order. It is
/// read as a merge of each capture's flows in primary-key order, a page at a time, so no sort of all matches
/// is needed (sorting 2.9M flows cost SQLite most of the time of listing them).
pub fn search_flows(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
    sort: FlowSort,
    limit: Option<u64>,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let caps = capture_facts(conn)?;
    if sort == FlowSort::Time {
        return merge_by_time(conn, filter, &caps, limit, visit);
    }
    let order = match sort {
        FlowSort::Bytes => "f.bytes DESC, f.first_ns, f.capture_id, f.flow_no",
        FlowSort::Packets => "f.packets DESC, f.first_ns, f.capture_id, f.flow_no",
        _ => "f.last_ns - f.first_ns DESC, f.first_ns, f.capture_id, f.flow_no",
    };
    let mut params = filter.params.clone();
    let limit_sql = limit_clause(limit, &mut params);
    let sql = format!(
        "SELECT {} FROM flows f WHERE {} ORDER BY {order} {limit_sql}",
        FLOW_COLUMNS_SQLITE, filter.condition,
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

/// The query of a page of candidates: the filter's parameters, the capture id, then the candidates as a JSON
/// array (json_each: one bound value whatever their number). CROSS JOIN makes the candidates the outer loop, each
/// one primary-key lookup: with `f.flow_no IN (...)` SQLite preferred flows_first_ns for a `before T` filter,
/// reading every earlier flow of the capture (0.04 s became 0.3 s on the search benchmark).
pub(super) fn candidate_sql(filter: &crate::filter::Compiled, select: &str) -> String {
    let n = filter.params.len();
    format!(
        "SELECT {select} FROM json_each(?{}) j CROSS JOIN flows f
         WHERE f.capture_id = ?{} AND f.flow_no = j.value AND ({})",
        n + 2,
        n + 1,
        filter.condition
    )
}

/// `nos` as a JSON array.
pub(super) fn json_list(nos: &[i64]) -> String {
    serde_json::to_string(nos).unwrap_or_else(|_| "[]".into())
}

/// The query of one page of a capture's matching flows (`select` of `flows f`, in flow_no order): the filter's
/// parameters, then the capture id and the last flow_no. PostgreSQL runs the same through `pg::read::dollars`.
pub(crate) fn page_sql(filter: &crate::filter::Compiled, select: &str) -> String {
    let n = filter.params.len();
    format!(
        "SELECT {select} FROM flows f
         WHERE f.capture_id = ?{} AND f.flow_no > ?{} AND ({})
         ORDER BY f.flow_no LIMIT {PAGE}",
        n + 1,
        n + 2,
        filter.condition
    )
}

/// The next [`PAGE`] flows of a capture that match `filter` after flow_no `after`: (flow_no, first_frame).
pub fn flow_page(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
    capture_id: i64,
    after: i64,
) -> Result<Vec<(i64, i64)>, QueryError> {
    let mut st = conn.prepare_cached(&page_sql(filter, "f.flow_no, f.first_frame"))?;
    let mut params = filter.params.clone();
    params.push(rusqlite::types::Value::Integer(capture_id));
    params.push(rusqlite::types::Value::Integer(after));
    let rows = st
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The next [`PAGE`] connections of a capture that have a flow matching `filter` after conn_no `after`:
/// (conn_no, first_frame), in conn_no order.
pub fn connection_page(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
    capture_id: i64,
    after: i64,
) -> Result<Vec<(i64, i64)>, QueryError> {
    let n = filter.params.len();
    let sql = format!(
        "SELECT x.conn_no, x.first_frame FROM connections x
         WHERE x.capture_id = ?{} AND x.conn_no > ?{} AND {}
         ORDER BY x.conn_no LIMIT {PAGE}",
        n + 1,
        n + 2,
        conn_condition(filter)
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut params = filter.params.clone();
    params.push(rusqlite::types::Value::Integer(capture_id));
    params.push(rusqlite::types::Value::Integer(after));
    let rows = st
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How SQLite runs a search (`flows --explain`): the SQL of the time-ordered page and of the count, each with
/// its `EXPLAIN QUERY PLAN` lines, so a user (and the benchmark) can see which index a filter uses.
pub fn explain_flows(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
) -> Result<Vec<(String, Vec<String>)>, QueryError> {
    let mut params = filter.params.clone();
    params.push(rusqlite::types::Value::Integer(1));
    params.push(rusqlite::types::Value::Integer(0));
    let count = format!("SELECT count(*) FROM flows f WHERE {}", filter.condition);
    let mut queries = vec![
        (page_sql(filter, FLOW_COLUMNS_SQLITE), params.clone()),
        (count, filter.params.clone()),
    ];
    if !filter.buckets.is_empty() {
        // A capture with flow buckets reads its candidates instead (the page above is for the others).
        let mut p = filter.params.clone();
        p.push(rusqlite::types::Value::Integer(1));
        p.push(rusqlite::types::Value::Text("[1]".into()));
        let sets: Vec<String> = filter.buckets.iter().map(|s| format!("{s:?}")).collect();
        queries.insert(
            0,
            (
                format!(
                    "-- candidates: flows in one of the buckets {} of flow_buckets\n{} ORDER BY f.flow_no",
                    sets.join(" and one of "),
                    candidate_sql(filter, FLOW_COLUMNS_SQLITE)
                ),
                p,
            ),
        );
        // The lists themselves, read a run of consecutive buckets at a time; with exact buckets (`net` from /8 to
        // /16), --count is their size and runs no other SQL on captures that have them.
        let first = filter.buckets[0].first().copied().unwrap_or(0);
        let note = if filter.exact {
            "-- the lists (--count: exact, counted from them alone)"
        } else {
            "-- the lists"
        };
        queries.insert(
            0,
            (
                format!("{note}\n{BUCKET_LISTS_SQL}"),
                vec![
                    rusqlite::types::Value::Integer(1),
                    rusqlite::types::Value::Integer(i64::from(first)),
                    rusqlite::types::Value::Integer(i64::from(first)),
                ],
            ),
        );
    }
    let mut out = Vec::new();
    for (sql, p) in &queries {
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                r.get::<_, String>(3)
            })?
            .collect::<Result<_, _>>()?;
        out.push((sql.clone(), plan));
    }
    Ok(out)
}

/// [`search_flows`] in time order: each capture's matching flows in flow_no order, a page at a time, merged by
/// (first time, capture id, flow_no) of each capture's next flow. Long listings read pages ahead on helper
/// threads (`prefetch`), one per core beyond this one.
fn merge_by_time(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
    caps: &CaptureFacts,
    limit: Option<u64>,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let cands = bucket_candidates(conn, filter)?;
    let pending = crate::store::backend::Backend::captures_by_time(conn)?;
    let mark = snapshot_mark(conn)?;
    let path = db_path(conn);
    // Helper connections pin snapshots of their own, and a listing read slowly while `forget` ran still mixed
    // theirs with this one's: until they can share this connection's snapshot, a listing reads alone. Counts
    // keep their threads (`count_flows`).
    let helpers = 0usize;
    // A short listing is over before a helper's connection is open.
    let short = limit.is_some_and(|l| l <= PAGE as u64 * 4);
    let (Some(path), false, 1..) = (path, short, helpers) else {
        let mut pages = Pages::new(conn, filter, caps, &cands)?;
        return merge_pages(pending, limit, &mut |c, a, i| pages.read(c, a, i), visit);
    };
    let ahead = crate::store::prefetch::Prefetch::default();
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|| {
                // A helper that cannot open or prepare, or reads another snapshot than the listing's, leaves its
                // pages to the listing thread.
                let Ok(c) = super::open_read(&path) else {
                    return;
                };
                if snapshot_mark(&c).ok().as_ref() != Some(&mark) {
                    return;
                }
                let Ok(mut pages) = Pages::new(&c, filter, caps, &cands) else {
                    return;
                };
                ahead.serve(&mut |cid, after, into| pages.read(cid, after, into));
            });
        }
        let _stop = ahead.stop_on_drop();
        Pages::new(conn, filter, caps, &cands).and_then(|mut pages| {
            let mut mine = |cid, after, into: &mut std::collections::VecDeque<FlowRow>| {
                pages.read(cid, after, into)
            };
            merge_pages(
                pending,
                limit,
                &mut |cid, after, into| ahead.page(cid, after, into, &mut mine),
                visit,
            )
        })
    })
}

/// Reads pages of matching flows of one capture at a time, through one connection's statements.
struct Pages<'c> {
    st: rusqlite::Statement<'c>,
    st_cands: rusqlite::Statement<'c>,
    filter: &'c crate::filter::Compiled,
    caps: &'c CaptureFacts,
    cands: &'c HashMap<i64, Vec<i64>>,
    params: Vec<rusqlite::types::Value>,
}

impl<'c> Pages<'c> {
    fn new(
        conn: &'c Connection,
        filter: &'c crate::filter::Compiled,
        caps: &'c CaptureFacts,
        cands: &'c HashMap<i64, Vec<i64>>,
    ) -> Result<Pages<'c>, QueryError> {
        Ok(Pages {
            st: conn.prepare(&page_sql(filter, FLOW_COLUMNS_SQLITE))?,
            st_cands: conn.prepare(&format!(
                "{} ORDER BY f.flow_no",
                candidate_sql(filter, FLOW_COLUMNS_SQLITE)
            ))?,
            filter,
            caps,
            cands,
            params: filter.params.clone(),
        })
    }

    /// Appends capture `cid`'s next matching flows after flow_no `after` to `into`; says whether more may follow.
    fn read(
        &mut self,
        cid: i64,
        after: i64,
        into: &mut std::collections::VecDeque<FlowRow>,
    ) -> Result<bool, QueryError> {
        let n = self.filter.params.len();
        if let Some(c) = self.cands.get(&cid) {
            // The next PAGE candidates after `after`, until one of them matches or none are left.
            let mut at = c.partition_point(|&no| no <= after);
            while at < c.len() && into.is_empty() {
                let chunk = &c[at..c.len().min(at + PAGE as usize)];
                at += chunk.len();
                self.params.truncate(n);
                self.params.push(rusqlite::types::Value::Integer(cid));
                self.params
                    .push(rusqlite::types::Value::Text(json_list(chunk)));
                let mut rows = self
                    .st_cands
                    .query(rusqlite::params_from_iter(self.params.iter()))?;
                while let Some(r) = rows.next()? {
                    if let Some(row) = flow_row(r, self.caps)? {
                        into.push_back(row);
                    }
                }
            }
            return Ok(at < c.len());
        }
        self.params.truncate(n);
        self.params.push(rusqlite::types::Value::Integer(cid));
        self.params.push(rusqlite::types::Value::Integer(after));
        let mut rows = self
            .st
            .query(rusqlite::params_from_iter(self.params.iter()))?;
        let mut got = 0;
        while let Some(r) = rows.next()? {
            got += 1;
            if let Some(row) = flow_row(r, self.caps)? {
                into.push_back(row);
            }
        }
        Ok(got == PAGE)
    }
}

/// How many flows match `filter`.
pub fn count_flows(conn: &Sqlite, filter: &crate::filter::Compiled) -> Result<i64, QueryError> {
    let cands = candidates(conn, filter, true)?;
    // The captures with candidates count those (exact ones by their number), the others all their flows, a range
    // of flow numbers at a time.
    let caps = capture_sizes(conn)?;
    let n = filter.params.len();
    let mut params = filter.params.clone();
    let mut by_cands = conn.prepare(&candidate_sql(filter, "count(*)"))?;
    let mut total: i64 = 0;
    for &(cid, _) in &caps {
        match cands.get(&cid) {
            Some((c, true)) => total += c.len() as i64,
            Some((c, false)) => {
                for chunk in c.chunks(4096) {
                    params.truncate(n);
                    params.push(rusqlite::types::Value::Integer(cid));
                    params.push(rusqlite::types::Value::Text(json_list(chunk)));
                    total += by_cands
                        .query_row(rusqlite::params_from_iter(params.iter()), |r| {
                            r.get::<_, i64>(0)
                        })?;
                }
            }
            None => {}
        }
    }
    let (ranges, threads) =
        flow_ranges(caps.into_iter().filter(|(cid, _)| !cands.contains_key(cid)));
    let sql = format!(
        "SELECT count(*) FROM flows f WHERE {} AND ({})",
        range_condition(n),
        filter.condition
    );
    let counts = over_ranges(conn, threads, |conn, next| {
        let mut st = conn.prepare(&sql)?;
        let mut params = filter.params.clone();
        let mut sum = 0i64;
        while let Some((cid, lo, hi)) = next_range(&ranges, next) {
            params.truncate(n);
            params.extend([cid, lo, hi].map(rusqlite::types::Value::Integer));
            sum += st.query_row(rusqlite::params_from_iter(params.iter()), |r| {
                r.get::<_, i64>(0)
            })?;
        }
        Ok(sum)
    })?;
    Ok(total + counts.into_iter().sum::<i64>())
}

/// Every capture's id and flow count, in id order.
pub(super) fn capture_sizes(conn: &Connection) -> Result<Vec<(i64, i64)>, QueryError> {
    Ok(conn
        .prepare("SELECT id, flows FROM captures ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// The flows of `caps` (id, flows) split into ranges of flow numbers (capture, after, up to) for threads to
/// take one at a time, and how many threads to take them on.
pub(super) fn flow_ranges(caps: impl Iterator<Item = (i64, i64)>) -> (Vec<(i64, i64, i64)>, usize) {
    let caps: Vec<(i64, i64)> = caps.collect();
    let whole: i64 = caps.iter().map(|&(_, flows)| flows.max(0)).sum();
    let threads = count_threads(whole);
    let span = (whole / (threads as i64 * 4)).max(1 << 16);
    let mut ranges = Vec::new();
    for (cid, flows) in caps {
        // The last range is open: `captures.flows` is what the ingest wrote, not a bound SQL keeps.
        let mut lo = i64::MIN;
        loop {
            let hi = lo.max(0).saturating_add(span);
            if hi >= flows {
                ranges.push((cid, lo, i64::MAX));
                break;
            }
            ranges.push((cid, lo, hi));
            lo = hi;
        }
    }
    (ranges, threads)
}

/// The condition "flow `f` is in the range" of [`flow_ranges`], bound after the filter's `n` parameters.
pub(super) fn range_condition(n: usize) -> String {
    format!(
        "f.capture_id = ?{} AND f.flow_no > ?{} AND f.flow_no <= ?{}",
        n + 1,
        n + 2,
        n + 3
    )
}

/// The next range of [`flow_ranges`] for a thread to take, if any is left.
pub(super) fn next_range(
    ranges: &[(i64, i64, i64)],
    next: &AtomicUsize,
) -> Option<(i64, i64, i64)> {
    ranges.get(next.fetch_add(1, Ordering::Relaxed)).copied()
}

/// What `work` gives on this connection and on `threads - 1` helpers, each through its own connection to the
/// same file, taking ranges by `next`. A helper that reads another snapshot than this connection's (another
/// set of captures) leaves its ranges to the others. An interrupt of this connection (a web client gone, a
/// deadline) stops the helpers too: while they read, this thread watches for it.
pub(super) fn over_ranges<T: Send>(
    conn: &Sqlite,
    threads: usize,
    work: impl Fn(&Connection, &AtomicUsize) -> Result<T, QueryError> + Sync,
) -> Result<Vec<T>, QueryError> {
    let mark = snapshot_mark(conn)?;
    let path = db_path(conn);
    let threads = if path.is_some() { threads } else { 1 };
    let next = AtomicUsize::new(0);
    if threads <= 1 {
        return Ok(vec![work(conn, &next)?]);
    }
    let handles: Mutex<Vec<rusqlite::InterruptHandle>> = Mutex::new(Vec::new());
    // No range is left past this one; an interrupt of an idle connection is forgotten when its next statement
    // starts, so a stop also ends the ranges.
    let stop = || {
        next.store(usize::MAX / 2, Ordering::SeqCst);
        if let Ok(hs) = handles.lock() {
            hs.iter().for_each(|h| h.interrupt());
        }
    };
    let (mine, theirs, stopped) = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| {
                scope.spawn(|| {
                    let c = path
                        .as_deref()
                        .and_then(|p| super::open_read(p).ok())
                        .filter(|c| snapshot_mark(c).ok().as_ref() == Some(&mark))?;
                    if let Ok(mut hs) = handles.lock() {
                        hs.push(c.get_interrupt_handle());
                    }
                    Some(work(&c, &next))
                })
            })
            .collect();
        let mine = work(conn, &next);
        let mut stopped = mine.is_err();
        if stopped {
            stop();
        }
        while !stopped && helpers.iter().any(|h| !h.is_finished()) {
            if conn.is_interrupted() {
                stopped = true;
                stop();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let theirs: Vec<_> = helpers
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Some(Err(QueryError::Corrupt("a reading thread panicked".into())))
                })
            })
            .collect();
        (mine, theirs, stopped)
    });
    let mut out = vec![mine?];
    for r in theirs.into_iter().flatten() {
        out.push(r?);
    }
    if stopped {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
            Some("interrupted".into()),
        )
        .into());
    }
    Ok(out)
}

/// What a read transaction sees of the captures (their ids and contents): helper threads read through their own
/// connections, each in its own snapshot, and help only when theirs shows the same captures as the command's
/// (flows change only with their capture: an ingest or a `forget`).
fn snapshot_mark(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row(
        "SELECT coalesce(group_concat(id || ':' || coalesce(hash, ''), ','), '')
         FROM (SELECT id, hash FROM captures ORDER BY id)",
        [],
        |r| r.get(0),
    )
}

/// The file of `conn`'s main database, which helper threads open their own connections to; `None` in memory.
fn db_path(conn: &Connection) -> Option<std::path::PathBuf> {
    conn.path()
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
}

/// The SQL condition "some flow of connection `x` matches `filter`" (a compiled condition on `flows f`): a
/// connection matches when either of its directions does. CROSS JOIN makes the connection's flow numbers the
/// outer loop, each one primary-key lookup: with `f.flow_no IN (...)` SQLite chose flows_first_ns for a
/// `before T` filter and read every earlier flow of the capture for each connection (quadratic time).
pub(crate) fn conn_condition(filter: &crate::filter::Compiled) -> String {
    format!(
        "EXISTS (SELECT 1 FROM json_each('[' || x.flows || ']') j CROSS JOIN flows f
                 WHERE f.capture_id = x.capture_id AND f.flow_no = j.value AND ({}))",
        // Connection terms test the connection itself (filter::THE_CONNECTION).
        filter.condition.replace(
            crate::filter::FLOW_CONNECTION,
            crate::filter::THE_CONNECTION
        )
    )
}

/// How SQLite runs a connection search: the listing in `sort` order and the count, each with its
/// `EXPLAIN QUERY PLAN` lines.
pub fn explain_connections(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
    sort: FlowSort,
) -> Result<Vec<(String, Vec<String>)>, QueryError> {
    let mut list = filter.params.clone();
    list.push(rusqlite::types::Value::Integer(-1));
    let queries = [
        (conn_list_sql(filter, sort, list.len()), list),
        (conn_count_sql(filter), filter.params.clone()),
    ];
    let mut out = Vec::new();
    for (sql, p) in queries {
        let plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                r.get::<_, String>(3)
            })?
            .collect::<Result<_, _>>()?;
        out.push((sql, plan));
    }
    Ok(out)
}

/// The query of [`count_connections`] on SQLite.
fn conn_count_sql(filter: &crate::filter::Compiled) -> String {
    format!(
        "SELECT count(*) FROM connections x WHERE {}",
        conn_condition(filter)
    )
}

/// Visits every connection that has a flow matching `filter`, in `sort` order (time: first frame; bytes and
/// packets: both directions together), at most `limit`, one row at a time.
pub fn search_connections(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
    sort: FlowSort,
    limit: Option<u64>,
    visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut params = filter.params.clone();
    params.push(rusqlite::types::Value::Integer(
        limit.map(|l| l.min(i64::MAX as u64) as i64).unwrap_or(-1),
    ));
    let sql = conn_list_sql(filter, sort, params.len());
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        // A capture deleted between the two reads of its row is not listed.
        if r.opt_text(1)?.is_some() {
            visit(conn_row(r)?)?;
        }
    }
    Ok(())
}

/// The query of [`search_connections`] on SQLite, in `sort` order, its limit the parameter `?limit_param`.
fn conn_list_sql(filter: &crate::filter::Compiled, sort: FlowSort, limit_param: usize) -> String {
    conn_sql(filter, "TRUE", conn_order(sort), limit_param)
}

/// The query of a connection listing: `filter`'s connections that also meet `extra`, in `order`, with the
/// limit bound as parameter `limit_at`.
pub(crate) fn conn_sql(
    filter: &crate::filter::Compiled,
    extra: &str,
    order: &str,
    limit_at: usize,
) -> String {
    // The capture's name comes from a scalar subquery, not a join: with `JOIN captures` SQLite chose to scan
    // connections through connections_community_id, in hash order, so every flow lookup of the labels landed
    // on another page (listing the benchmark's 1M connections: 28 s). `capture_id IN (captures)` keeps the
    // join's meaning and reads each capture's connections in key order.
    format!(
        "SELECT {CONN_COLUMNS_SQLITE}
         FROM connections x
         WHERE {} AND ({extra}) AND x.capture_id IN (SELECT id FROM captures)
         ORDER BY {order} LIMIT ?{limit_at}",
        conn_condition(filter),
    )
}

/// The columns of a connection row as [`conn_row`] reads them, of `connections x`.
pub(super) const CONN_COLUMNS_SQLITE: &str =
    "x.capture_id, (SELECT c.name FROM captures c WHERE c.id = x.capture_id), x.conn_no,
                x.community_id, x.orig_h, x.orig_p, x.resp_h, x.resp_p,
                x.first_ns, x.last_ns, x.orig_pkts, x.orig_bytes, x.orig_frame_bytes, x.resp_pkts, x.resp_bytes,
                x.resp_frame_bytes, x.conn_state, x.history,
                (SELECT group_concat(label, char(10)) FROM
                    (SELECT f.label FROM flows f WHERE f.capture_id = x.capture_id
                     AND f.flow_no IN (SELECT value FROM json_each('[' || x.flows || ']')) ORDER BY f.first_frame)),
                (SELECT max(CASE WHEN tsresol & 128 <> 0 THEN 9 ELSE min(tsresol, 9) END)
                 FROM interfaces i WHERE i.capture_id = x.capture_id),
         x.orig_payload_bytes, x.resp_payload_bytes, x.orig_ip_bytes, x.resp_ip_bytes";

/// How many connections have a flow matching `filter`.
pub fn count_connections(
    conn: &Sqlite,
    filter: &crate::filter::Compiled,
) -> Result<i64, QueryError> {
    Ok(conn.query_row(
        &conn_count_sql(filter),
        rusqlite::params_from_iter(filter.params.iter()),
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of `n` connections in each of two captures, two flows each, flow times rising by 1 ms.
    fn conn_db(dir: &std::path::Path, n: i64) -> Connection {
        let c = crate::store::open(&dir.join(format!("c{n}.db"))).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO captures (id, name, path, size) VALUES (1, 'a', '/a', 1), (2, 'b', '/b', 1);
             WITH RECURSIVE k(cid, i) AS (SELECT 1, 1 UNION ALL SELECT 2, 1
                                          UNION ALL SELECT cid, i + 1 FROM k WHERE i < {flows})
             INSERT INTO flow_rows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame,
                                    closed_frame, packets, bytes, payload_bytes, first_ns, last_ns, flags,
                                    src_key, dst_key, community_id)
             SELECT cid, i, '', '10.0.0.1', 1024 + (i + 1) / 2, '10.0.0.2', 80, i, i, i, 3, 180, 20,
                    1700000000000000000 + i * 1000000, 1700000000000000000 + i * 1000000 + 5, 18,
                    x'00', x'01', '1:x' FROM k;
             WITH RECURSIVE k(cid, i) AS (SELECT 1, 1 UNION ALL SELECT 2, 1
                                          UNION ALL SELECT cid, i + 1 FROM k WHERE i < {n})
             INSERT INTO connections SELECT cid, i, '1:x', '10.0.0.1', 1024 + i, '10.0.0.2', 80, 2 * i - 1, 2 * i,
                    1700000000000000000 + (2 * i - 1) * 1000000, 1700000000000000000 + 2 * i * 1000000 + 5,
                    3, 180, 20, 3, 180, 20, 'SF', 'ShADadFf', (2 * i - 1) || ',' || (2 * i), 20, 20, 140, 140
             FROM k;",
            flows = 2 * n
        ))
        .unwrap();
        c
    }

    /// Every filter term keeps a connection search linear in the connections: the flows of each connection are
    /// found by primary key (never through flows_first_ns, which read every earlier flow of the capture for
    /// each connection), and the work a `before T` count does doubles, not quadruples, with the connections.
    #[test]
    fn connection_searches_look_flows_up_by_primary_key_for_every_term() {
        let dir = tempfile::tempdir().unwrap();
        let small = conn_db(dir.path(), 300);
        let terms = [
            "",
            "host 10.0.0.1",
            "src host 10.0.0.2",
            "net 10.0.0.0/8",
            "dst net 10.0.0.0/24",
            "port 80",
            "src port 1100",
            "portrange 1000-2000",
            "after 1700000000.2",
            "before 1700000000.2",
            "before 2000000000",
            "after 2024-01-01 and before 2030-01-01",
            "label 10.0.0.1_1025-10.0.0.2_80-1700000000.001",
            "capture a",
            "community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "syn",
            "fin or rst",
            "open",
            "closed",
            "packets > 2",
            "bytes >= 100",
            "payload < 30",
            "duration > 1ms",
            "not before 1700000000.2",
            "(before 1700000000.2 or port 80) and not host 10.9.9.9",
            "conn-state SF REJ",
            "history ShAD",
            "history = ShADadFf and orig-bytes > 10",
            "resp-pkts != 0",
        ];
        for term in terms {
            let filter = crate::filter::compile(&crate::filter::parse(term, 0).unwrap());
            let mut sqls = vec![(conn_count_sql(&filter), filter.params.clone())];
            for sort in [
                FlowSort::Time,
                FlowSort::Bytes,
                FlowSort::Packets,
                FlowSort::Duration,
            ] {
                let mut p = filter.params.clone();
                p.push(rusqlite::types::Value::Integer(-1));
                sqls.push((conn_list_sql(&filter, sort, p.len()), p));
            }
            for (sql, p) in sqls {
                let plan: Vec<String> = small
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .unwrap()
                    .query_map(rusqlite::params_from_iter(p.iter()), |r| r.get(3))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                for step in &plan {
                    let on_flows =
                        step.contains(" f ") || step.ends_with(" f") || step.contains("flow_rows");
                    assert!(
                        !on_flows
                            || (step.starts_with("SEARCH ")
                                && step
                                    .ends_with(" USING PRIMARY KEY (capture_id=? AND flow_no=?)")),
                        "{term:?}: flows read otherwise than by key: {step}\n{}",
                        plan.join("\n")
                    );
                    assert!(!step.contains("flows_first_ns"), "{term:?}: {step}");
                }
                assert_eq!(
                    plan.iter().filter(|s| s.contains(" x")).count(),
                    1,
                    "{term:?}: {plan:?}"
                );
            }
        }
        // The work itself (SQLite's virtual machine steps) of counting every connection `before T`.
        let steps = |c: &Connection| {
            let filter =
                crate::filter::compile(&crate::filter::parse("before 2000000000", 0).unwrap());
            let mut st = c.prepare(&conn_count_sql(&filter)).unwrap();
            let n: i64 = st
                .query_row(rusqlite::params_from_iter(filter.params.iter()), |r| {
                    r.get(0)
                })
                .unwrap();
            (n, st.get_status(rusqlite::StatementStatus::VmStep))
        };
        let large = conn_db(dir.path(), 1200);
        let ((ns, s), (nl, l)) = (steps(&small), steps(&large));
        assert_eq!((ns, nl), (600, 2400));
        assert!(
            l < s * 5,
            "4x the connections took {l} steps against {s}: not linear"
        );
    }
}
