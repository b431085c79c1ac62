//! Downloads of what a view shows, streamed with no row cap: the matching flows' (or connections' two
//! directions') frames as pcap or pcapng, merged in time order as `flows FILTER --pcap` writes them, and the
//! rows as CSV or JSONL of the chosen columns. The rows are written on a blocking thread into a bounded
//! channel that feeds the response: a client that goes away closes it, and the next write stops the query.
//! Flows are chosen by filter only, never by a path from the client.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{compile, conn_json, flow_json, sort_of, view_is_connections};
use super::pool::{run, ApiError};
use super::Shared;
use crate::dump::merge::{self, Selection};
use crate::dump::{DumpFormat, DumpOptions};
use crate::filter::Expr;
use crate::store::Db;

/// The parameters of a download.
#[derive(Debug, Deserialize)]
pub struct DownloadParams {
    #[serde(default)]
    filter: String,
    view: Option<String>,
    /// pcap, pcapng, csv or jsonl.
    #[serde(default)]
    format: String,
    sort: Option<String>,
    /// CSV/JSONL: the columns, comma-separated (default: all).
    columns: Option<String>,
}

/// A `Write` into the response's channel; fails once the client is gone.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 1 << 16 {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The receiving end as the response body's stream.
struct ChannelStream(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// The captures whose frames cannot be read (no file at any path it was seen under nor under --source-root,
/// and no embedded bytes): (id, name).
fn sourceless(db: &Db, shared: &Shared) -> Result<Vec<(i64, String)>, ApiError> {
    let mut out = Vec::new();
    for c in db.captures()? {
        let found = c.embedded
            || c.paths
                .iter()
                .chain(std::iter::once(&c.path))
                .any(|p| std::path::Path::new(p).is_file())
            || shared
                .source_root
                .as_ref()
                .is_some_and(|r| r.join(&c.name).is_file());
        if !found {
            out.push((c.id, c.name));
        }
    }
    Ok(out)
}

/// The filter without the captures in `ids`.
fn without(expr: Expr, ids: &[(i64, String)]) -> Expr {
    ids.iter().fold(expr, |e, (id, _)| {
        Expr::And(
            Box::new(e),
            Box::new(Expr::Not(Box::new(Expr::Capture(id.to_string())))),
        )
    })
}

/// `GET /api/download/check`: before a pcap starts, how many matching flows have no bytes to give.
pub async fn check(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<DownloadParams>,
) -> Result<Response, ApiError> {
    let (expr, compiled) = compile(&p.filter)?;
    let me = shared.clone();
    let body = run(&shared, move |db| {
        let gone = sourceless(db, &me)?;
        let mut missing = 0i64;
        let mut names = Vec::new();
        for (id, name) in &gone {
            let e = Expr::And(
                Box::new(expr.clone()),
                Box::new(Expr::Capture(id.to_string())),
            );
            let n = db.count_flows(&crate::filter::compile(&e))?;
            if n > 0 {
                missing += n;
                names.push(name.clone());
            }
        }
        let _ = &compiled;
        Ok(json!({
            "flows_without_source": missing,
            "captures_without_source": names,
            "message": (missing > 0).then(|| format!(
                "{missing} matching flows are in captures whose file is missing or moved ({}); the download leaves them out (serve --source-root DIR finds moved files)",
                names.join(", ")
            )),
        }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// One CSV field.
fn csv_field(v: &Value, out: &mut Vec<u8>) {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// `GET /api/download`: the file, streamed.
pub async fn download(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<DownloadParams>,
) -> Result<Response, ApiError> {
    let (expr, _) = compile(&p.filter)?;
    let conns = view_is_connections(p.view.as_deref())?;
    let sort = sort_of(p.sort.as_deref())?;
    let format = p.format.clone();
    let (ctype, ext) = match format.as_str() {
        "pcap" => ("application/vnd.tcpdump.pcap", "pcap"),
        "pcapng" => ("application/octet-stream", "pcapng"),
        "csv" => ("text/csv; charset=utf-8", "csv"),
        "jsonl" => ("application/x-ndjson", "jsonl"),
        f => {
            return Err(ApiError::bad(format!(
                "format {f:?}: use pcap, pcapng, csv or jsonl"
            )))
        }
    };
    let columns: Option<Vec<String>> = p
        .columns
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| c.split(',').map(str::to_string).collect());
    // Check the source and the columns before the response starts: after that an error can only cut it short.
    let me = shared.clone();
    let (expr, gone) = run(&shared, move |db| {
        let gone = sourceless(db, &me)?;
        Ok((without(expr, &gone), gone.len()))
    })
    .await?;
    let _ = gone;
    let compiled = crate::filter::compile(&expr);
    let permit = shared.pool.slot().await?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let owner = shared.clone();
    let name = format!(
        "traceflow-{}.{ext}",
        if conns { "connections" } else { "flows" }
    );
    tokio::task::spawn_blocking(move || {
        let db = match owner.pool.take() {
            Ok(db) => db,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
                return;
            }
        };
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::new(),
        };
        let r = db.renew_snapshot().map_err(ApiError::from).and_then(|()| {
            write_download(
                &db, &owner, &compiled, conns, sort, &format, columns, &mut w,
            )
        });
        db.release_snapshot();
        let r = r.and_then(|()| w.flush().map_err(|e| ApiError::internal(e.to_string())));
        if let Err(e) = r {
            // The response has started: all that can be done is to end it early, as a broken download.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
        }
        owner.pool.give(db);
        drop(permit);
    });
    let mut resp = Body::from_stream(ChannelStream(rx)).into_response();
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Writes the download into `w`.
#[allow(clippy::too_many_arguments)]
fn write_download(
    db: &Db,
    shared: &Shared,
    compiled: &crate::filter::Compiled,
    conns: bool,
    sort: crate::store::read::FlowSort,
    format: &str,
    columns: Option<Vec<String>>,
    w: &mut ChannelWriter,
) -> Result<(), ApiError> {
    if format == "pcap" || format == "pcapng" {
        let mut opts = DumpOptions::new(if format == "pcap" {
            DumpFormat::Pcap
        } else {
            DumpFormat::Pcapng
        });
        opts.source_root = shared.source_root.clone();
        let sel = if conns {
            // Streamed as `connections --pcap` streams: each connection's frames, both directions.
            Selection::Connections(compiled)
        } else {
            Selection::Filter(compiled)
        };
        merge::merge(db, &sel, &opts, &mut *w, "the download")?;
        return Ok(());
    }
    let csv = format == "csv";
    let mut header_done = false;
    let mut line = Vec::with_capacity(256);
    let mut emit = |row: Value| -> Result<(), crate::store::QueryError> {
        let Value::Object(m) = row else {
            return Ok(());
        };
        let cols: Vec<String> = match &columns {
            Some(c) => c.clone(),
            None => m
                .keys()
                .filter(|k| *k != "capture_id" && *k != "flow_no")
                .cloned()
                .collect(),
        };
        line.clear();
        if csv && !header_done {
            line.extend_from_slice(cols.join(",").as_bytes());
            line.push(b'\n');
            header_done = true;
        }
        if csv {
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                csv_field(m.get(c).unwrap_or(&Value::Null), &mut line);
            }
        } else {
            let obj: serde_json::Map<String, Value> = cols
                .iter()
                .map(|c| (c.clone(), m.get(c).cloned().unwrap_or(Value::Null)))
                .collect();
            let _ = serde_json::to_writer(&mut line, &obj);
        }
        line.push(b'\n');
        w.write_all(&line)
            .map_err(|e| crate::store::QueryError::Corrupt(e.to_string()))
    };
    if conns {
        db.search_connections(compiled, sort, None, &mut |r| emit(conn_json(&r)))?;
    } else {
        db.search_flows(compiled, sort, None, &mut |r| emit(flow_json(&r)))?;
    }
    Ok(())
}
