//! Writing a capture into PostgreSQL: rows through binary `COPY ... FROM STDIN`, one transaction per capture,
//! and the same rules as SQLite's writer for content or paths seen before. Several processes may write at once:
//! the unique index on `captures.hash` decides which one keeps a content both are writing.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use postgres::types::{IsNull, ToSql, Type};

use super::Pg;
use crate::conn::ConnRecord;
use crate::store::backend::CaptureSink;
use crate::store::error::StoreError;
use crate::store::sink::{CaptureEnd, CaptureSource, FrameRow, Outcome, Superseded};
use crate::trace::buckets::BucketRow;
use crate::trace::endpoints::EndpointRow;
use crate::trace::FlowRecord;

const I8: Type = Type::INT8;

/// Copies `rows` into `target` (`table (col, ...)`), whose columns have `types`, in one COPY, with `row`
/// encoding each row's values. The rows are sent as they are encoded, 64 KiB at a time, so that the server
/// works on them meanwhile: used for the tables written once per capture, at its end (endpoints, flow buckets),
/// and for embedded frame bytes.
fn copy<T>(
    client: &mut postgres::Client,
    target: &str,
    types: &[Type],
    rows: &[T],
    row: impl Fn(&T, &mut Pending) -> Result<(), String>,
) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut p = Pending::new(target, types);
    let mut w = p.start(client)?;
    let mut wrote = Ok(());
    for r in rows {
        row(r, &mut p)?;
        if p.rows.len() >= STREAM_BYTES {
            wrote = w.write_all(&p.rows);
            p.rows.clear();
            if wrote.is_err() {
                break;
            }
        }
    }
    p.end(w, wrote)
}

/// Bytes of encoded rows [`copy`] gathers before writing them to the server.
const STREAM_BYTES: usize = 64 << 10;

/// A table's rows encoded in COPY's binary format, sent in one COPY once they pass [`PENDING_BYTES`] (and at
/// the end of the capture). Each COPY costs round trips during which the server waits: with one COPY per table
/// and batch (a few thousand frames, a few hundred flows), the server's log showed 1,360 COPYs and 0.7 s of such
/// waits in a 4.1 s ingest of the benchmark capture. With 1 MiB buffers the ingest took 3.26-3.39 s against
/// 3.42-3.60 s (64 KiB: 3.32-3.63 s; 4 MiB: 3.43-3.47 s, and 17 MB more RSS).
struct Pending<'a> {
    /// `table (col, ...)`.
    target: &'a str,
    types: &'a [Type],
    rows: BytesMut,
}

/// Bytes of encoded rows a table keeps before they are sent.
const PENDING_BYTES: usize = 1 << 20;

impl<'a> Pending<'a> {
    fn new(target: &'a str, types: &'a [Type]) -> Pending<'a> {
        Pending {
            target,
            types,
            rows: BytesMut::new(),
        }
    }

    /// Encodes one row: its field count, then each value as its length (-1 for NULL) and bytes.
    fn row(&mut self, vals: &[&(dyn ToSql + Sync)]) -> Result<(), String> {
        debug_assert_eq!(vals.len(), self.types.len());
        self.rows.put_i16(self.types.len() as i16);
        for (v, ty) in vals.iter().zip(self.types) {
            let at = self.rows.len();
            self.rows.put_i32(0);
            let len = match v
                .to_sql_checked(ty, &mut self.rows)
                .map_err(|e| format!("{}: {e}", self.target))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(self.rows.len() - at - 4)
                    .map_err(|_| format!("{}: a value of over 2 GiB", self.target))?,
            };
            self.rows[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// Sends the rows kept, if any, in one COPY.
    fn send(&mut self, c: &mut postgres::Client) -> Result<(), String> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let w = self.start(c)?;
        self.end(w, Ok(()))
    }

    /// Starts the COPY: the statement, then COPY's binary header (signature, flags, no extension).
    fn start<'c>(&self, c: &'c mut postgres::Client) -> Result<postgres::CopyInWriter<'c>, String> {
        let mut w = c
            .copy_in(&format!("COPY {} FROM STDIN BINARY", self.target))
            .map_err(|e| super::causes(&e))?;
        w.write_all(b"PGCOPY\n\xff\r\n\0")
            .and_then(|()| w.write_all(&[0; 8]))
            .map_err(|e| format!("{}: {e}", self.target))?;
        Ok(w)
    }

    /// Sends the rows kept and the trailer, and ends the COPY. `wrote` is how the writes so far went.
    fn end(
        &mut self,
        mut w: postgres::CopyInWriter<'_>,
        wrote: std::io::Result<()>,
    ) -> Result<(), String> {
        let wrote = wrote
            .and_then(|()| w.write_all(&self.rows))
            .and_then(|()| w.write_all(&(-1i16).to_be_bytes()));
        self.rows.clear();
        // When the server ends a COPY early, its own error (from finish) says more than the broken write.
        w.finish().map_err(|e| super::causes(&e))?;
        wrote.map_err(|e| format!("{}: {e}", self.target))
    }
}

/// Frames per `frame_chunks` row at most (the table's CHECK, which readers rely on).
pub const CHUNK: usize = 1024;

/// Consecutive frames in columns, as one `frame_chunks` row holds them.
#[derive(Default)]
struct Chunk {
    first: i64,
    ts_ns: Vec<i64>,
    origlen: Vec<i64>,
    file_offset: Vec<i64>,
    flow_no: Vec<Option<i64>>,
    seq: Vec<Option<i64>>,
    ack: Vec<Option<i64>>,
    prev_in_flow: Vec<Option<i64>>,
    conn_no: Vec<Option<i64>>,
    caplen: Vec<i32>,
    iface: Vec<i32>,
    tcp_flags: Vec<Option<i32>>,
    win: Vec<Option<i32>>,
    payload_len: Vec<Option<i32>>,
}

impl Chunk {
    /// An empty chunk with room for [`CHUNK`] frames, so that filling it never reallocates.
    fn with_capacity() -> Chunk {
        Chunk {
            first: 0,
            ts_ns: Vec::with_capacity(CHUNK),
            origlen: Vec::with_capacity(CHUNK),
            file_offset: Vec::with_capacity(CHUNK),
            flow_no: Vec::with_capacity(CHUNK),
            seq: Vec::with_capacity(CHUNK),
            ack: Vec::with_capacity(CHUNK),
            prev_in_flow: Vec::with_capacity(CHUNK),
            conn_no: Vec::with_capacity(CHUNK),
            caplen: Vec::with_capacity(CHUNK),
            iface: Vec::with_capacity(CHUNK),
            tcp_flags: Vec::with_capacity(CHUNK),
            win: Vec::with_capacity(CHUNK),
            payload_len: Vec::with_capacity(CHUNK),
        }
    }

    fn len(&self) -> usize {
        self.ts_ns.len()
    }

    /// Encodes the chunk, if it holds frames, as a `frame_chunks` row of capture `id`.
    fn encode(&self, id: i64, out: &mut Pending) -> Result<(), String> {
        if self.len() == 0 {
            return Ok(());
        }
        out.row(&[
            &id,
            &self.first,
            &(self.first + self.len() as i64 - 1),
            &self.ts_ns,
            &self.origlen,
            &self.file_offset,
            &self.flow_no,
            &self.seq,
            &self.ack,
            &self.prev_in_flow,
            &self.conn_no,
            &self.caplen,
            &self.iface,
            &self.tcp_flags,
            &self.win,
            &self.payload_len,
        ])
    }

    /// Adds frame `f`; the chunk it completes, when `f` does not fit this one (full, or `f` does not follow its
    /// last frame).
    fn push(&mut self, f: &FrameRow) -> Option<Chunk> {
        let n = f.number as i64;
        let done = if self.len() > 0 && (self.len() == CHUNK || n != self.first + self.len() as i64)
        {
            Some(std::mem::replace(self, Chunk::with_capacity()))
        } else {
            None
        };
        if self.len() == 0 {
            self.first = n;
        }
        let t = f.tcp.as_ref();
        self.ts_ns.push(f.ts_ns);
        self.origlen.push(i64::from(f.origlen));
        self.file_offset.push(f.offset as i64);
        self.flow_no.push(t.map(|t| i64::from(t.flow_no)));
        self.seq.push(t.map(|t| i64::from(t.seq)));
        self.ack.push(t.map(|t| i64::from(t.ack)));
        self.prev_in_flow
            .push(t.and_then(|t| t.prev_frame).map(|n| n as i64));
        self.conn_no.push(t.and_then(|t| t.conn_no).map(i64::from));
        // caplen and payload_len are at most capture::MAX_RECORD, far below 2^31; iface is checked by `add`.
        self.caplen.push(f.caplen.min(i32::MAX as u32) as i32);
        self.iface.push(f.iface as i32);
        self.tcp_flags.push(t.map(|t| i32::from(t.flags)));
        self.win.push(t.and_then(|t| t.win).map(i32::from));
        self.payload_len
            .push(t.map(|t| t.payload_len.min(i32::MAX as u32) as i32));
        done
    }
}

const A8: Type = Type::INT8_ARRAY;
const A4: Type = Type::INT4_ARRAY;
const TEXT: Type = Type::TEXT;
const BYTEA: Type = Type::BYTEA;

fn pending_chunks() -> Pending<'static> {
    Pending::new(
        "frame_chunks (capture_id, first_number, last_number, ts_ns, origlen, file_offset, flow_no, seq, ack,
                       prev_in_flow, conn_no, caplen, iface, tcp_flags, win, payload_len)",
        &[I8, I8, I8, A8, A8, A8, A8, A8, A8, A8, A8, A4, A4, A4, A4, A4],
    )
}

fn pending_flows() -> Pending<'static> {
    Pending::new(
        "flows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame, closed_frame,
                packets, bytes, payload_bytes, first_ns, last_ns, flags, src_key, dst_key, community_id)",
        &[
            I8, I8, TEXT, TEXT, I8, TEXT, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, BYTEA, BYTEA, TEXT,
        ],
    )
}

fn pending_connections() -> Pending<'static> {
    Pending::new(
        "connections (capture_id, conn_no, community_id, orig_h, orig_p, resp_h, resp_p, first_frame, last_frame,
                      first_ns, last_ns, orig_pkts, orig_frame_bytes, orig_bytes, resp_pkts, resp_frame_bytes,
                      resp_bytes, conn_state, history, flows, orig_payload_bytes, resp_payload_bytes,
                      orig_ip_bytes, resp_ip_bytes)",
        &[
            I8, I8, TEXT, TEXT, I8, TEXT, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, TEXT, TEXT, TEXT, I8, I8,
            I8, I8,
        ],
    )
}

/// Tables that hold a capture's rows, besides `captures`.
const CAPTURE_TABLES: [&str; 9] = [
    "frame_data",
    "frame_chunks",
    "connection_flows",
    "connections",
    "flows",
    "endpoint_protocols",
    "flow_buckets",
    "interfaces",
    "capture_paths",
];

/// Deletes capture `id` and its rows in every table, without relying on the delete trigger (which a Citus
/// cluster may not run); `Some((frames, flows))` of the capture, `None` when there is no such capture.
fn delete_capture(
    c: &mut impl postgres::GenericClient,
    id: i64,
) -> Result<Option<(i64, i64)>, postgres::Error> {
    for t in CAPTURE_TABLES {
        c.execute(&format!("DELETE FROM {t} WHERE capture_id = $1"), &[&id])?;
    }
    match c.query_opt(
        "DELETE FROM captures WHERE id = $1 RETURNING frames, flows",
        &[&id],
    )? {
        Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
        None => Ok(None),
    }
}

impl Pg {
    /// Deletes the captures `ids` and all their rows in one transaction; then, in the same transaction, those
    /// of `oldest` in order while the database's size, less each capture's estimated share (its frames and
    /// flows among all), is over `limit`. Space is returned by the server's autovacuum, so `reclaimable` is 0.
    pub fn forget(
        &self,
        ids: &[i64],
        oldest: &[i64],
        limit: u64,
    ) -> Result<(crate::store::sink::Forgotten, usize), StoreError> {
        let err = self.err();
        let mut c = self.client.borrow_mut();
        let mut tx = c.transaction().map_err(&err)?;
        let mut done = crate::store::sink::Forgotten::default();
        // A frame row is about a third of a flow row with its indexes.
        let weight = |frames: i64, flows: i64| (frames.max(0) + 3 * flows.max(0)) as f64;
        let (size, total) = if limit < u64::MAX {
            let r = tx
                .query_one(
                    "SELECT pg_database_size(current_database()),
                            coalesce(sum(frames), 0)::int8, coalesce(sum(flows), 0)::int8 FROM captures",
                    &[],
                )
                .map_err(&err)?;
            let (sz, fr, fl): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            (sz.max(0) as f64, weight(fr, fl))
        } else {
            (0.0, 0.0)
        };
        let mut left = total;
        for &id in ids {
            let Some((frames, flows)) = delete_capture(&mut tx, id).map_err(&err)? else {
                continue;
            };
            left -= weight(frames, flows);
            done.captures += 1;
            done.frames += frames.max(0) as u64;
            done.flows += flows.max(0) as u64;
        }
        let mut more = 0;
        for &id in oldest {
            if limit == u64::MAX || total <= 0.0 || size * (left / total) <= limit as f64 {
                break;
            }
            if ids.contains(&id) {
                continue;
            }
            let Some((frames, flows)) = delete_capture(&mut tx, id).map_err(&err)? else {
                continue;
            };
            left -= weight(frames, flows);
            more += 1;
            done.captures += 1;
            done.frames += frames.max(0) as u64;
            done.flows += flows.max(0) as u64;
        }
        tx.commit().map_err(&err)?;
        Ok((done, more))
    }
}

/// Writes one capture in one transaction, as [`crate::store::CaptureWriter`] does on SQLite.
pub struct PgWriter<'c> {
    pg: &'c Pg,
    src: CaptureSource,
    force: bool,
    embed: bool,
    id: i64,
    endpoint_parts: u32,
    open: bool,
    /// The frames not yet encoded: a chunk is complete once it holds `CHUNK` frames (or the next frame's number
    /// does not follow), so chunks stay full across the batches the reader hands on.
    chunk: Chunk,
    /// Rows encoded and not yet sent, per table.
    chunks: Pending<'static>,
    flows: Pending<'static>,
    conns: Pending<'static>,
}

impl<'c> PgWriter<'c> {
    /// Starts a capture read from `src`: its `captures` row, inside a new transaction.
    pub fn begin(
        pg: &'c Pg,
        src: &CaptureSource,
        force: bool,
        embed: bool,
    ) -> Result<PgWriter<'c>, StoreError> {
        let err = pg.err();
        let mut c = pg.client.borrow_mut();
        c.batch_execute("BEGIN").map_err(&err)?;
        let id = c
            .query_one(
                "INSERT INTO captures (name, path, size, mtime_ns, embedded) VALUES ($1, $2, $3, $4, $5)
                 RETURNING id",
                &[
                    &src.name,
                    &src.path,
                    &(src.size as i64),
                    &src.mtime_ns,
                    &i64::from(embed),
                ],
            )
            .and_then(|r| r.try_get::<_, i64>(0));
        let id = match id {
            Ok(id) => id,
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK");
                return Err(err(e));
            }
        };
        Ok(PgWriter {
            pg,
            src: src.clone(),
            force,
            embed,
            id,
            endpoint_parts: 0,
            open: true,
            chunk: Chunk::with_capacity(),
            chunks: pending_chunks(),
            flows: pending_flows(),
            conns: pending_connections(),
        })
    }

    /// Writes frames, the flows closed meanwhile, and (with --embed) the frames' bytes concatenated in frame
    /// order.
    pub fn add(
        &mut self,
        frames: &[FrameRow],
        flows: &[FlowRecord],
        data: &[u8],
    ) -> Result<(), StoreError> {
        let id = self.id;
        // COPY cannot replace a row: the ingest hands PostgreSQL each flow once (no `Tracer::with_parked_rows`).
        if let Some(f) = flows.iter().find(|f| f.replaces() || f.provisional) {
            return Err(StoreError::Postgres {
                url: self.pg.shown.clone(),
                msg: format!(
                    "flow {} came as a parked flow's row, which this writer cannot replace; this is a bug in \
                     traceflow, please report it",
                    f.flow_no
                ),
            });
        }
        if let Some(f) = frames.iter().find(|f| i32::try_from(f.iface).is_err()) {
            return Err(StoreError::Postgres {
                url: self.pg.shown.clone(),
                msg: format!(
                    "frame {}: interface number {} does not fit PostgreSQL's INTEGER column frames.iface",
                    f.number, f.iface
                ),
            });
        }
        for f in frames {
            if let Some(full) = self.chunk.push(f) {
                full.encode(id, &mut self.chunks)
                    .map_err(|m| self.fail(m))?;
            }
        }
        for fl in flows {
            self.flows
                .row(&[
                    &id,
                    &i64::from(fl.flow_no),
                    &fl.label(),
                    &fl.src(),
                    &i64::from(fl.sport),
                    &fl.dst(),
                    &i64::from(fl.dport),
                    &(fl.first_frame as i64),
                    &(fl.last_frame as i64),
                    &fl.closed_frame.map(|n| n as i64),
                    &(fl.packets as i64),
                    &(fl.bytes as i64),
                    &(fl.payload_bytes as i64),
                    &fl.first_ns,
                    &fl.last_ns,
                    &i64::from(fl.flags),
                    &&fl.src_key[..],
                    &&fl.dst_key[..],
                    &fl.community_id(),
                ])
                .map_err(|m| self.fail(m))?;
        }
        self.send(false)?;
        if self.embed {
            let mut at = 0usize;
            let spans: Vec<(i64, std::ops::Range<usize>)> = frames
                .iter()
                .map(|f| {
                    let r = at..at + f.caplen as usize;
                    at = r.end;
                    (f.number as i64, r)
                })
                .collect();
            let mut c = self.pg.client.borrow_mut();
            copy(
                &mut c,
                "frame_data (capture_id, number, data)",
                &[I8, I8, Type::BYTEA],
                &spans,
                |(n, r), p| p.row(&[&id, n, &&data[r.clone()]]),
            )
            .map_err(|m| self.fail(m))?;
        }
        Ok(())
    }

    /// A failure to encode or send rows, named by the database.
    fn fail(&self, msg: String) -> StoreError {
        StoreError::Postgres {
            url: self.pg.shown.clone(),
            msg,
        }
    }

    /// Sends each table's pending rows once they pass [`PENDING_BYTES`], or all of them (`all`, at the end).
    fn send(&mut self, all: bool) -> Result<(), StoreError> {
        let mut c = self.pg.client.borrow_mut();
        for p in [&mut self.chunks, &mut self.flows, &mut self.conns] {
            if all || p.rows.len() >= PENDING_BYTES {
                if let Err(msg) = p.send(&mut c) {
                    return Err(StoreError::Postgres {
                        url: self.pg.shown.clone(),
                        msg,
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes connections (those a reused key replaced, and at the end the rest).
    pub fn add_connections(&mut self, conns: &[ConnRecord]) -> Result<(), StoreError> {
        let id = self.id;
        for k in conns {
            connection_row(id, k, &mut self.conns).map_err(|m| self.fail(m))?;
        }
        self.send(false)
    }
}

/// Encodes connection `k` of capture `id` as a `connections` row.
fn connection_row(id: i64, k: &ConnRecord, p: &mut Pending) -> Result<(), String> {
    p.row(&[
        &id,
        &i64::from(k.conn_no),
        &k.community_id.as_str(),
        &k.orig_h.as_str(),
        &i64::from(k.orig_p),
        &k.resp_h.as_str(),
        &i64::from(k.resp_p),
        &(k.first_frame as i64),
        &(k.last_frame as i64),
        &k.first_ns,
        &k.last_ns,
        &(k.orig_pkts as i64),
        &(k.orig_frame_bytes as i64),
        &(k.orig_bytes as i64),
        &(k.resp_pkts as i64),
        &(k.resp_frame_bytes as i64),
        &(k.resp_bytes as i64),
        &k.conn_state,
        &k.history.as_str(),
        &k.flows.as_str(),
        &(k.orig_payload_bytes as i64),
        &(k.resp_payload_bytes as i64),
        &k.orig_ip_bytes.map(|n| n as i64),
        &k.resp_ip_bytes.map(|n| n as i64),
    ])
}

impl<'c> PgWriter<'c> {
    /// Adds an endpoint tally to the capture's (a long capture hands its tally on in parts).
    pub fn add_endpoints(&mut self, rows: &[EndpointRow]) -> Result<(), StoreError> {
        let id = self.id;
        self.endpoint_parts += 1;
        let mut c = self.pg.client.borrow_mut();
        if self.endpoint_parts == 1 {
            return copy(
                &mut c,
                "endpoint_protocols (capture_id, address, protocol, frames, bytes)",
                &[I8, Type::TEXT, I8, I8, I8],
                rows,
                |r, p| {
                    p.row(&[
                        &id,
                        &r.address.as_str(),
                        &i64::from(r.protocol),
                        &(r.frames as i64),
                        &(r.bytes as i64),
                    ])
                },
            )
            .map_err(|m| self.fail(m));
        }
        (|| -> Result<(), postgres::Error> {
            let st = c.prepare(
                "INSERT INTO endpoint_protocols (capture_id, address, protocol, frames, bytes)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (capture_id, address, protocol) DO UPDATE
                 SET frames = endpoint_protocols.frames + excluded.frames,
                     bytes = endpoint_protocols.bytes + excluded.bytes",
            )?;
            for r in rows {
                c.execute(
                    &st,
                    &[
                        &id,
                        &r.address.as_str(),
                        &i64::from(r.protocol),
                        &(r.frames as i64),
                        &(r.bytes as i64),
                    ],
                )?;
            }
            Ok(())
        })()
        .map_err(self.pg.err())
    }

    /// Stores parts of the capture's flow bucket lists.
    pub fn add_buckets(&mut self, rows: &[BucketRow]) -> Result<(), StoreError> {
        let id = self.id;
        let mut c = self.pg.client.borrow_mut();
        copy(
            &mut c,
            "flow_buckets (capture_id, bucket, part, flow_nos)",
            &[I8, I8, I8, Type::BYTEA],
            rows,
            |r, p| {
                p.row(&[
                    &id,
                    &i64::from(r.bucket),
                    &i64::from(r.part),
                    &r.flow_nos.as_slice(),
                ])
            },
        )
        .map_err(|m| self.fail(m))
    }

    /// Records the Community ID seed the capture's flows and connections were made with.
    pub fn set_community_id_seed(&mut self, seed: u16) -> Result<(), StoreError> {
        self.pg
            .client
            .borrow_mut()
            .execute(
                "UPDATE captures SET community_id_seed = $2 WHERE id = $1",
                &[&self.id, &i64::from(seed)],
            )
            .map(|_| ())
            .map_err(self.pg.err())
    }

    /// Completes the capture and commits; the same content already in the database (committed by this or any
    /// other process) makes this one a new path of it instead, unless forced.
    pub fn finish(mut self, end: CaptureEnd) -> Result<Outcome, StoreError> {
        std::mem::take(&mut self.chunk)
            .encode(self.id, &mut self.chunks)
            .map_err(|m| self.fail(m))?;
        self.send(true)?;
        let outcome = self.finish_rows(end).map_err(self.pg.err())?;
        self.open = false;
        Ok(outcome)
    }

    /// Adds this path to capture `id`, which has the content, in a transaction of its own.
    fn add_path_to(
        &self,
        c: &mut postgres::Client,
        id: i64,
        end: &CaptureEnd,
    ) -> Result<(), postgres::Error> {
        c.execute(
            "INSERT INTO capture_paths (capture_id, path, name, size, mtime_ns) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (capture_id, path) DO UPDATE
             SET name = excluded.name, size = excluded.size, mtime_ns = excluded.mtime_ns,
                 added = nextval('capture_paths_added')",
            &[&id, &self.src.path, &self.src.name, &(end.size as i64), &end.mtime_ns],
        )?;
        Ok(())
    }

    fn already(
        &mut self,
        c: &mut postgres::Client,
        end: &CaptureEnd,
    ) -> Result<Option<Outcome>, postgres::Error> {
        let Some(r) = c.query_opt(
            "SELECT id, name FROM captures WHERE hash = $1",
            &[&end.hash],
        )?
        else {
            return Ok(None);
        };
        let (old, name): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
        c.batch_execute("ROLLBACK; BEGIN")?;
        self.add_path_to(c, old, end)?;
        c.batch_execute("COMMIT")?;
        self.open = false;
        Ok(Some(Outcome::AlreadyIndexed { id: old, name }))
    }

    fn finish_rows(&mut self, end: CaptureEnd) -> Result<Outcome, postgres::Error> {
        let pg = self.pg;
        let mut guard = pg.client.borrow_mut();
        let c = &mut *guard;
        let (id, force) = (self.id, self.force);
        let dup: Option<i64> =
            match c.query_opt("SELECT id FROM captures WHERE hash = $1", &[&end.hash])? {
                Some(r) => Some(r.try_get(0)?),
                None => None,
            };
        if let Some(old) = dup {
            if !force {
                if let Some(o) = self.already(c, &end)? {
                    return Ok(o);
                }
            }
            c.execute(
                "UPDATE capture_paths SET capture_id = $1 WHERE capture_id = $2 AND path <> $3",
                &[&id, &old, &self.src.path],
            )?;
            delete_capture(c, old)?;
        }
        // Claim the content first: another process writing the same content waits here for this transaction, and
        // the one that commits second fails on captures_hash and skips (see below).
        c.batch_execute("SAVEPOINT claim")?;
        if let Err(e) = c.execute(
            "UPDATE captures SET hash = $2 WHERE id = $1",
            &[&id, &end.hash],
        ) {
            if e.code() != Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
                return Err(e);
            }
            c.batch_execute("ROLLBACK TO SAVEPOINT claim")?;
            if let Some(o) = self.already(c, &end)? {
                return Ok(o);
            }
            return Err(e);
        }
        c.batch_execute("RELEASE SAVEPOINT claim")?;
        let mut superseded = Vec::new();
        if self.src.path != "-" {
            let olds: Vec<i64> = c
                .query(
                    "SELECT DISTINCT capture_id FROM capture_paths WHERE path = $1 AND capture_id <> $2",
                    &[&self.src.path, &id],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            for old in olds {
                let elsewhere: bool = c
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM capture_paths WHERE capture_id = $1 AND path <> $2)",
                        &[&old, &self.src.path],
                    )?
                    .try_get(0)?;
                if elsewhere {
                    c.execute(
                        "DELETE FROM capture_paths WHERE capture_id = $1 AND path = $2",
                        &[&old, &self.src.path],
                    )?;
                    superseded.push(Superseded::PathMoved(old));
                } else {
                    delete_capture(c, old)?;
                    superseded.push(Superseded::Replaced(old));
                }
            }
        }
        // The connections' flows, inverted for the connection searches (migrations/postgres/0004).
        c.execute(
            "INSERT INTO connection_flows (capture_id, flow_no, conn_no)
             SELECT DISTINCT x.capture_id, n, x.conn_no FROM connections x, unnest(x.flow_nos) n
             WHERE x.capture_id = $1",
            &[&id],
        )?;
        let linktypes = end.linktypes();
        c.execute(
            "UPDATE captures SET format = $2, compression = $3, linktypes = $4, frames = $5, tcp_frames = $6,
                    flows = $7, first_ns = $8, last_ns = $9, truncated_at = $10, truncated_why = $11, size = $12,
                    mtime_ns = $13, has_endpoints = 1, has_buckets = $14 WHERE id = $1",
            &[
                &id,
                &end.format,
                &end.compression,
                &linktypes,
                &(end.frames as i64),
                &(end.tcp_frames as i64),
                &(end.flows as i64),
                &end.first_ns,
                &end.last_ns,
                &end.truncation.as_ref().map(|t| t.offset as i64),
                &end.truncation.as_ref().map(|t| t.reason.clone()),
                &(end.size as i64),
                &end.mtime_ns,
                &crate::key::buckets::WITH_NET16,
            ],
        )?;
        // One statement for every interface (a pcapng may describe thousands).
        let col = |f: &dyn Fn(&crate::capture::Interface) -> i64| -> Vec<i64> {
            end.interfaces.iter().map(f).collect()
        };
        c.execute(
            "INSERT INTO interfaces (capture_id, iface, linktype, snaplen, tsresol)
             SELECT $1, u.i - 1, u.l, u.s, u.t FROM unnest($2::BIGINT[], $3::BIGINT[], $4::BIGINT[])
                 WITH ORDINALITY AS u(l, s, t, i)",
            &[
                &id,
                &col(&|itf| i64::from(itf.linktype)),
                &col(&|itf| i64::from(itf.snaplen)),
                &col(&|itf| i64::from(itf.tsresol)),
            ],
        )?;
        self.add_path_to(c, id, &end)?;
        c.batch_execute("COMMIT")?;
        analyze(c, end.flows);
        Ok(Outcome::Indexed {
            id,
            end,
            superseded,
        })
    }
}

/// The tables an ingest writes, for `ANALYZE`: frame_chunks and frame_data by their key columns only (their other
/// columns are arrays and bytes that no plan needs statistics on, and would cost a detoasting each).
const ANALYZED: &str = "flows, connections, connection_flows, frame_chunks (capture_id, first_number, last_number),
    frame_data (capture_id, number), captures, capture_paths, interfaces, endpoint_protocols, flow_buckets";

/// Gives the planner statistics on a capture just committed, with `flows` flows, when the tables have none yet
/// or it added a tenth or more to the flows (autovacuum's own rule, applied now rather than up to a minute
/// later). Without them the planner guesses from the tables' sizes, and its first plans over a new capture were
/// orders of magnitude off. After the commit, not in the transaction: ANALYZE's lock, held to the end of a
/// transaction, would make concurrent ingests wait for each other. Best effort: the capture is committed, and a
/// failure here (a role that may not analyze another's tables) only leaves the statistics to autovacuum.
fn analyze(c: &mut postgres::Client, flows: u64) {
    let stale = c
        .query_one(
            "SELECT coalesce(min(reltuples), -1) < 0
                    OR $1::BIGINT * 10 >= max(reltuples) FILTER (WHERE oid = 'flows'::regclass)
             FROM pg_class WHERE oid IN ('flows'::regclass, 'connections'::regclass, 'frame_chunks'::regclass)",
            &[&(flows.min(i64::MAX as u64 / 10) as i64)],
        )
        .and_then(|r| r.try_get::<_, bool>(0));
    if matches!(stale, Ok(true)) {
        // A sample of 3,000 rows instead of 30,000: enough for the plans, and 0.18 s instead of 1.6 s on a capture
        // of 100,000 connections (flows and connections cost most). The SET lasts only for the batch's implicit
        // transaction.
        let _ = c.batch_execute(&format!(
            "SET LOCAL default_statistics_target = 10; ANALYZE {ANALYZED}"
        ));
    }
}

impl Drop for PgWriter<'_> {
    fn drop(&mut self) {
        if self.open {
            // Not finished (the reader failed, was interrupted, or a write failed): nothing of it stays.
            if let Ok(mut c) = self.pg.client.try_borrow_mut() {
                let _ = c.batch_execute("ROLLBACK");
            }
        }
    }
}

impl CaptureSink for PgWriter<'_> {
    fn add(
        &mut self,
        frames: &[FrameRow],
        flows: &[FlowRecord],
        data: &[u8],
    ) -> Result<(), StoreError> {
        PgWriter::add(self, frames, flows, data)
    }
    fn add_connections(&mut self, conns: &[ConnRecord]) -> Result<(), StoreError> {
        PgWriter::add_connections(self, conns)
    }
    fn add_endpoints(&mut self, rows: &[EndpointRow]) -> Result<(), StoreError> {
        PgWriter::add_endpoints(self, rows)
    }
    fn add_buckets(&mut self, rows: &[BucketRow]) -> Result<(), StoreError> {
        PgWriter::add_buckets(self, rows)
    }
    fn set_community_id_seed(&mut self, seed: u16) -> Result<(), StoreError> {
        PgWriter::set_community_id_seed(self, seed)
    }
    fn finish(self: Box<Self>, end: CaptureEnd) -> Result<Outcome, StoreError> {
        PgWriter::finish(*self, end)
    }
}
