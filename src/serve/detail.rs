//! One flow or one connection, for its page: its row, the connections it belongs to (Community ID,
//! conn_state, history), its frames as a table and as the ladder draws them (number, time, direction, flags,
//! seq, ack, length), and the decoded tree of `query --format tree`. The frames are decoded from the capture
//! (or the embedded bytes), as a dump reads them.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{conn_json, flow_json};
use super::pool::{run, ApiError};
use super::Shared;
use crate::dump::{write_group, DumpFormat, DumpOptions};
use crate::filter::{compile, Expr};
use crate::store::read::FlowGroup;
use crate::store::Db;

/// Frames beyond this are not decoded for a page (the pcap download has them all).
pub const MAX_FRAMES: i64 = 2000;

/// `GET /api/flow?capture=ID&label=LABEL`.
#[derive(Debug, Deserialize)]
pub struct FlowParams {
    capture: i64,
    label: String,
}

/// `GET /api/connection?capture=ID&conn=N`.
#[derive(Debug, Deserialize)]
pub struct ConnParams {
    capture: i64,
    conn: i64,
}

/// The innermost object with a `tcp` member (the IP layer), depth first.
fn ip_with_tcp(v: &Value) -> Option<&serde_json::Map<String, Value>> {
    let m = v.as_object()?;
    for (_, child) in m.iter() {
        if let Some(found) = ip_with_tcp(child) {
            return Some(found);
        }
    }
    m.get("tcp").filter(|t| t.is_object()).map(|_| m)
}

/// The frames of a JSON dump as table rows; `orig` (address, port) tells the directions apart.
fn frame_rows(dump: &Value, orig: Option<(&str, u16)>) -> Vec<Value> {
    let Some(frames) = dump.as_object() else {
        return Vec::new();
    };
    frames
        .values()
        .map(|f| {
            let ip = ip_with_tcp(f);
            let tcp = ip.and_then(|m| m.get("tcp"));
            let src = ip
                .and_then(|m| m.get("src"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let sport = tcp
                .and_then(|t| t.get("srcport"))
                .and_then(Value::as_u64)
                .unwrap_or(0) as u16;
            let dir = match orig {
                Some((h, p)) if (h, p) != (src, sport) => "resp",
                _ => "orig",
            };
            let flags: Vec<String> = tcp
                .and_then(|t| t.get("flags"))
                .and_then(Value::as_object)
                .map(|m| {
                    ["syn", "ack", "psh", "fin", "rst", "urg", "ece", "cwr", "ns"]
                        .iter()
                        .filter(|k| m.get(**k).and_then(Value::as_bool) == Some(true))
                        .map(|k| k.to_uppercase())
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "number": f.get("number"),
                "time": f.get("time"),
                "time_epoch": f.get("time_epoch"),
                "len": f.get("len"),
                "direction": dir,
                "src": src,
                "sport": sport,
                "dst": ip.and_then(|m| m.get("dst")),
                "dport": tcp.and_then(|t| t.get("dstport")),
                "flags": flags.join(","),
                "seq": tcp.and_then(|t| t.get("seq")),
                "ack": tcp.and_then(|t| t.get("ack")),
                "payload_len": tcp.and_then(|t| t.get("payload_len")),
            })
        })
        .collect()
}

/// The frames and the tree of `group`, or why they cannot be shown (a source gone, too many frames).
fn frames_of(
    db: &Db,
    shared: &Shared,
    group: &FlowGroup,
    packets: i64,
    orig: Option<(&str, u16)>,
) -> Value {
    if packets > MAX_FRAMES {
        return json!({
            "frames": [],
            "tree": "",
            "frames_note": format!(
                "{packets} frames: more than the {MAX_FRAMES} a page decodes; download the pcap for them"
            ),
        });
    }
    let dump = |format| -> Result<Vec<u8>, crate::dump::DumpError> {
        let mut opts = DumpOptions::new(format);
        opts.source_root = shared.source_root.clone();
        opts.both = !group.conns.is_empty();
        let mut out = Vec::new();
        write_group(db, group, &opts, &mut out, "the page")?;
        Ok(out)
    };
    let decoded = dump(DumpFormat::Json).and_then(|j| Ok((j, dump(DumpFormat::Tree)?)));
    match decoded {
        Ok((j, tree)) => {
            let v: Value = serde_json::from_slice(&j).unwrap_or(Value::Null);
            json!({
                "frames": frame_rows(&v, orig),
                "tree": String::from_utf8_lossy(&tree),
                "frames_note": Value::Null,
            })
        }
        Err(e) => json!({ "frames": [], "tree": "", "frames_note": e.to_string() }),
    }
}

/// `GET /api/flow`: one flow (every flow of the capture with that label: a label names one flow but for
/// damaged clocks), its connections and its frames.
pub async fn flow(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<FlowParams>,
) -> Result<Response, ApiError> {
    let expr = Expr::And(
        Box::new(Expr::Capture(p.capture.to_string())),
        Box::new(Expr::Label(p.label.clone())),
    );
    let compiled = compile(&expr);
    let me = shared.clone();
    let body = run(&shared, move |db| {
        let mut rows = Vec::new();
        db.flows_page(
            &compiled,
            crate::store::read::FlowSort::Time,
            None,
            16,
            &mut |r| {
                rows.push(r);
                Ok(())
            },
        )?;
        let Some(first) = rows.first() else {
            return Err(ApiError::not_found(format!(
                "capture {} has no flow labelled {:?}",
                p.capture, p.label
            )));
        };
        let mut conns = Vec::new();
        for r in &rows {
            for c in db.flow_connections(r.capture_id, r.flow_no)? {
                if let Some(row) = db.connection_row(r.capture_id, c)? {
                    conns.push(conn_json(&row));
                }
            }
        }
        let group = FlowGroup {
            capture_id: first.capture_id,
            label: p.label.clone(),
            flows: rows.iter().map(|r| r.flow_no).collect(),
            conns: Vec::new(),
        };
        let packets = rows.iter().map(|r| r.packets).sum();
        let frames = frames_of(db, &me, &group, packets, None);
        Ok(json!({
            "kind": "flow",
            "flows": rows.iter().map(flow_json).collect::<Vec<_>>(),
            "connections": conns,
            "frames": frames["frames"],
            "tree": frames["tree"],
            "frames_note": frames["frames_note"],
            "index": { "label": p.label, "frames": frames["frames"].as_array().map(|f| f.iter().map(|x| x["number"].clone()).collect::<Vec<_>>()) },
        }))
    })
    .await?;
    Ok(Json(body).into_response())
}

/// `GET /api/connection`: one connection, its two directions' labels and its frames in frame order.
pub async fn connection(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<ConnParams>,
) -> Result<Response, ApiError> {
    let me = shared.clone();
    let body = run(&shared, move |db| {
        let Some(row) = db.connection_row(p.capture, p.conn)? else {
            return Err(ApiError::not_found(format!(
                "capture {} has no connection {} (are its connections built? `traceflow ingest --connections` builds them)",
                p.capture, p.conn
            )));
        };
        let group = FlowGroup {
            capture_id: row.capture_id,
            label: row
                .flows
                .first()
                .cloned()
                .unwrap_or_else(|| format!("connection-{}", row.conn)),
            flows: Vec::new(),
            conns: vec![row.conn],
        };
        let packets = row.orig_pkts + row.resp_pkts;
        let frames = frames_of(
            db,
            &me,
            &group,
            packets,
            Some((row.orig_h.as_str(), row.orig_p)),
        );
        Ok(json!({
            "kind": "connection",
            "connection": conn_json(&row),
            "frames": frames["frames"],
            "tree": frames["tree"],
            "frames_note": frames["frames_note"],
        }))
    })
    .await?;
    Ok(Json(body).into_response())
}
