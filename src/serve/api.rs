//! The listing endpoints of the JSON API: flows and connections a keyset page at a time, their counts (capped,
//! or exact on request), the time histogram, the group-by panels, the captures, and the command line that gives
//! the same rows. Every filter goes through the filter language (bound parameters); nothing else reaches SQL.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::pool::{run, ApiError};
use super::Shared;
use crate::filter::{self, Compiled, Expr};
use crate::store::page::PageKey;
use crate::store::read::{ConnRow, FlowRow, FlowSort, GroupBy};

/// Rows a page has unless `limit` says otherwise, and the most it may have.
pub const PAGE_ROWS: u64 = 100;
/// The most rows of one page.
pub const MAX_PAGE_ROWS: u64 = 1000;
/// Counts stop here unless the exact one is asked for ("10,000+").
pub const COUNT_CAP: u64 = 10_000;

/// Now, in ns since the epoch (what `3h ago` counts from).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The parameters of a listing.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// The filter, in the language of `traceflow flows`.
    #[serde(default)]
    pub filter: String,
    /// time, bytes, packets or duration.
    pub sort: Option<String>,
    /// Rows per page.
    pub limit: Option<u64>,
    /// Where the page starts: the `next` of the previous one.
    pub after: Option<String>,
    /// `flows` or `connections` (count, download).
    pub view: Option<String>,
    /// Count exactly, beyond the cap.
    pub exact: Option<String>,
}

/// The filter, parsed and compiled; a bad one is a 400 with the parser's message and caret.
pub fn compile(text: &str) -> Result<(Expr, Compiled), ApiError> {
    let expr = filter::parse(text, now_ns())?;
    let compiled = filter::compile(&expr);
    Ok((expr, compiled))
}

/// The sort order named `s` (time when absent).
pub fn sort_of(s: Option<&str>) -> Result<FlowSort, ApiError> {
    use clap::ValueEnum;
    match s {
        None | Some("") => Ok(FlowSort::Time),
        Some(s) => FlowSort::from_str(s, true).map_err(|_| {
            ApiError::bad(format!("sort {s:?}: use time, bytes, packets or duration"))
        }),
    }
}

/// `value:first_ns:capture:no`, the key of the next page.
fn key_text(k: &PageKey) -> String {
    format!("{}:{}:{}:{}", k.value, k.first_ns, k.capture_id, k.no)
}

fn key_of(s: Option<&str>) -> Result<Option<PageKey>, ApiError> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let n: Vec<i64> = s
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ApiError::bad(format!(
                "after {s:?} is not a page key (use `next` of a page)"
            ))
        })?;
    match n[..] {
        [value, first_ns, capture_id, no] => Ok(Some(PageKey {
            value,
            first_ns,
            capture_id,
            no,
        })),
        _ => Err(ApiError::bad(format!(
            "after {s:?} is not a page key (use `next` of a page)"
        ))),
    }
}

fn limit_of(l: Option<u64>) -> Result<u64, ApiError> {
    match l.unwrap_or(PAGE_ROWS) {
        0 => Err(ApiError::bad("limit must be at least 1")),
        n if n > MAX_PAGE_ROWS => Err(ApiError::bad(format!(
            "limit {n}: a page has at most {MAX_PAGE_ROWS} rows (page with `after`, or download everything)"
        ))),
        n => Ok(n),
    }
}

/// A flow row as the API gives it: the row of `flows --format json`, with its capture id and flow number.
pub fn flow_json(r: &FlowRow) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("capture_id".into(), json!(r.capture_id));
        m.insert("flow_no".into(), json!(r.flow_no));
    }
    v
}

/// A connection row as the API gives it: the row of `connections --format json`, with its capture id.
pub fn conn_json(r: &ConnRow) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("capture_id".into(), json!(r.capture_id));
    }
    v
}

fn flow_key(sort: FlowSort, r: &FlowRow) -> PageKey {
    PageKey {
        value: match sort {
            FlowSort::Time => 0,
            FlowSort::Bytes => r.bytes,
            FlowSort::Packets => r.packets,
            FlowSort::Duration => r.last_ns - r.first_ns,
        },
        first_ns: r.first_ns,
        capture_id: r.capture_id,
        no: r.flow_no,
    }
}

fn conn_key(sort: FlowSort, r: &ConnRow) -> PageKey {
    PageKey {
        value: match sort {
            FlowSort::Time => 0,
            FlowSort::Bytes => r.orig_frame_bytes + r.resp_frame_bytes,
            FlowSort::Packets => r.orig_pkts + r.resp_pkts,
            FlowSort::Duration => r.last_ns - r.first_ns,
        },
        first_ns: r.first_ns,
        capture_id: r.capture_id,
        no: r.conn,
    }
}

/// `GET /api/flows`: a page of flows.
pub async fn flows(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let (_, compiled) = compile(&p.filter)?;
    let sort = sort_of(p.sort.as_deref())?;
    let after = key_of(p.after.as_deref())?;
    let limit = limit_of(p.limit)?;
    let body = run(&shared, move |db| {
        let mut rows = Vec::new();
        let mut last = None;
        db.flows_page(&compiled, sort, after.as_ref(), limit, &mut |r| {
            last = Some(flow_key(sort, &r));
            rows.push(flow_json(&r));
            Ok(())
        })?;
        let next = (rows.len() as u64 == limit)
            .then_some(last)
            .flatten()
            .map(|k| key_text(&k));
        Ok(json!({ "rows": rows, "next": next }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// `GET /api/connections`: a page of connections, and the captures whose connections are not built yet.
pub async fn connections(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let (_, compiled) = compile(&p.filter)?;
    let sort = sort_of(p.sort.as_deref())?;
    let after = key_of(p.after.as_deref())?;
    let limit = limit_of(p.limit)?;
    let shown = shared.pool.shown();
    let body = run(&shared, move |db| {
        let mut rows = Vec::new();
        let mut last = None;
        db.connections_page(&compiled, sort, after.as_ref(), limit, &mut |r| {
            last = Some(conn_key(sort, &r));
            rows.push(conn_json(&r));
            Ok(())
        })?;
        let next = (rows.len() as u64 == limit)
            .then_some(last)
            .flatten()
            .map(|k| key_text(&k));
        let missing = unbuilt(db, shown)?;
        Ok(json!({ "rows": rows, "next": next, "unbuilt": missing }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// The captures whose connections are not built, with the command that builds them (serve never writes).
fn unbuilt(db: &crate::store::Db, shown: String) -> Result<Value, ApiError> {
    let ids = db.captures_without_connections()?;
    if ids.is_empty() {
        return Ok(Value::Null);
    }
    let names: Vec<String> = ids.into_iter().map(|(_, n)| n).collect();
    let some: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    Ok(json!({
        "captures": names,
        "message": format!(
            "the connections of {} capture(s) ({}{}) are not built yet, so they are not listed: build them once with `traceflow --db {} ingest --connections` (from the stored frame rows; serve never writes)",
            names.len(),
            some.join(", "),
            if names.len() > some.len() { ", ..." } else { "" },
            shell_word(&shown),
        ),
    }))
}

/// `GET /api/count?view=flows|connections`: how many match, up to 10,000 unless `exact=1`.
pub async fn count(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let (_, compiled) = compile(&p.filter)?;
    let conns = view_is_connections(p.view.as_deref())?;
    let exact = matches!(p.exact.as_deref(), Some("1" | "true" | "yes"));
    let body = run(&shared, move |db| {
        if exact {
            let n = if conns {
                db.count_connections(&compiled)?
            } else {
                db.count_flows(&compiled)?
            };
            return Ok(json!({ "count": n, "exact": true }));
        }
        // Listing the cap + 1 stops at the cap: no full count of millions of matches for a table's header. The
        // listing is the command line's (each capture's flows in file order, merged), which needs no sort.
        let mut n = 0u64;
        if conns {
            db.search_connections(&compiled, FlowSort::Time, Some(COUNT_CAP + 1), &mut |_| {
                n += 1;
                Ok(())
            })?;
        } else {
            db.search_flows(&compiled, FlowSort::Time, Some(COUNT_CAP + 1), &mut |_| {
                n += 1;
                Ok(())
            })?;
        }
        Ok(json!({ "count": n.min(COUNT_CAP), "exact": n <= COUNT_CAP }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// Whether `view` names the connections (else the flows).
pub fn view_is_connections(view: Option<&str>) -> Result<bool, ApiError> {
    match view {
        None | Some("" | "flows") => Ok(false),
        Some("connections") => Ok(true),
        Some(v) => Err(ApiError::bad(format!(
            "view {v:?}: use flows or connections"
        ))),
    }
}

/// The parameters of the histogram.
#[derive(Debug, Deserialize)]
pub struct HistParams {
    #[serde(default)]
    filter: String,
    buckets: Option<usize>,
    /// Window start and end, ns (default: the filter's after/before, else the captures' span).
    lo: Option<i64>,
    hi: Option<i64>,
}

/// The window of `after`/`before` terms of the filter's top-level `and`s.
fn window(e: &Expr, lo: &mut Option<i64>, hi: &mut Option<i64>) {
    match e {
        Expr::And(a, b) => {
            window(a, lo, hi);
            window(b, lo, hi);
        }
        Expr::After(t) => *lo = Some(lo.map_or(*t, |l| l.max(*t))),
        Expr::Before(t) => *hi = Some(hi.map_or(*t, |h| h.min(*t))),
        _ => {}
    }
}

/// `GET /api/histogram`: how many matching flows overlap each bucket of the time window.
pub async fn histogram(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<HistParams>,
) -> Result<Response, ApiError> {
    let (expr, compiled) = compile(&p.filter)?;
    let buckets = p.buckets.unwrap_or(120).clamp(1, 2000);
    let (mut lo, mut hi) = (p.lo, p.hi);
    if lo.is_none() || hi.is_none() {
        let (mut flo, mut fhi) = (None, None);
        window(&expr, &mut flo, &mut fhi);
        lo = lo.or(flo);
        hi = hi.or(fhi);
    }
    let body = run(&shared, move |db| {
        let (mut lo, mut hi) = (lo, hi);
        if lo.is_none() || hi.is_none() {
            let mut span: Option<(i64, i64)> = None;
            for c in db.captures()? {
                let (Some(a), Some(b)) = (c.first_time, c.last_time) else {
                    continue;
                };
                let (Ok(a), Ok(b)) = (filter::parse_time(&a), filter::parse_time(&b)) else {
                    continue;
                };
                span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
            let (a, b) = span.unwrap_or((0, 1));
            lo = lo.or(Some(a));
            hi = hi.or(Some(b));
        }
        let (lo, mut hi) = (lo.unwrap_or(0), hi.unwrap_or(1));
        if hi <= lo {
            hi = lo + 1;
        }
        // The last frame must fall in the last bucket, not just past it.
        let hi = hi.saturating_add(1);
        let counts = db.flow_histogram(&compiled, lo, hi, buckets)?;
        let width = ((hi - lo) as u64).div_ceil(buckets as u64).max(1) as i64;
        Ok(json!({ "lo": lo, "hi": hi, "width": width, "counts": counts }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// The parameters of a group-by panel.
#[derive(Debug, Deserialize)]
pub struct GroupParams {
    #[serde(default)]
    filter: String,
    by: String,
    limit: Option<u64>,
    /// Groups of `flows` (default) or of `connections`.
    view: Option<String>,
    /// bytes (default), packets or time, as `--group-by` takes `--sort`.
    sort: Option<String>,
}

/// `GET /api/groups?by=src|dst|pair|sport|dport|capture|conn-state[&view=connections][&sort=bytes|packets|time]`:
/// one row per group, most bytes first (`flows --group-by`, or `connections --group-by` for that view).
pub async fn groups(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<GroupParams>,
) -> Result<Response, ApiError> {
    use clap::ValueEnum;
    let (_, compiled) = compile(&p.filter)?;
    let by = GroupBy::from_str(&p.by, true).map_err(|_| {
        ApiError::bad(format!(
            "by {:?}: use src, dst, pair, sport, dport, capture or conn-state",
            p.by
        ))
    })?;
    let conns = view_is_connections(p.view.as_deref())?;
    let sort = match p.sort.as_deref() {
        None | Some("") => None,
        s => Some(sort_of(s)?),
    };
    crate::store::rows::group_order(sort, &[], "").map_err(|e| ApiError::bad(e.to_string()))?;
    let limit = limit_of(p.limit.or(Some(20)))?;
    let body = run(&shared, move |db| {
        let mut rows = Vec::new();
        let mut keep = |g: crate::store::read::GroupRow| {
            rows.push(serde_json::to_value(&g).unwrap_or(Value::Null));
            Ok(())
        };
        if conns {
            db.group_connections(&compiled, by, sort, Some(limit), &mut keep)?;
        } else {
            db.group_flows(&compiled, by, sort, Some(limit), &mut keep)?;
        }
        Ok(json!({ "rows": rows }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// `GET /api/captures`: every capture, and which have
/// their connections built.
pub async fn captures(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let body = run(&shared, move |db| {
        let unbuilt: Vec<i64> = db
            .captures_without_connections()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let rows: Vec<Value> = db
            .captures()?
            .into_iter()
            .map(|c| {
                let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("connections_built".into(), json!(!unbuilt.contains(&c.id)));
                }
                v
            })
            .collect();
        Ok(json!({ "rows": rows }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `GET /api/command`: the `traceflow` command line that gives the rows shown (`view`, `filter`, `sort`).
pub async fn command(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    compile(&p.filter)?;
    let sort = sort_of(p.sort.as_deref())?;
    let conns = view_is_connections(p.view.as_deref())?;
    let mut cmd = format!(
        "traceflow --db {} {}",
        shell_word(&shared.pool.shown()),
        if conns { "connections" } else { "flows" }
    );
    if !p.filter.is_empty() {
        cmd.push(' ');
        cmd.push_str(&shell_word(&p.filter));
    }
    if sort != FlowSort::Time {
        use clap::ValueEnum;
        if let Some(v) = sort.to_possible_value() {
            cmd.push_str(&format!(" --sort {}", v.get_name()));
        }
    }
    Ok(Json(json!({ "command": cmd })).into_response())
}
