//! Writing a capture into PostgreSQL: rows through binary `COPY ... FROM STDIN`, one transaction per capture,
//! and the same rules as SQLite's writer for content or paths seen before. Several processes may write at once:
//! the unique index on `captures.hash` decides which one keeps a content both are writing.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::Pg;
use crate::conn::ConnRecord;
use crate::store::write::{CaptureEnd, CaptureSource, FrameRow, Outcome, Superseded};
use crate::store::StoreError;
use crate::trace::buckets::BucketRow;
use crate::trace::endpoints::EndpointRow;
use crate::trace::FlowRecord;

const I8: Type = Type::INT8;
const I4: Type = Type::INT4;

/// Copies `rows` into `target` (`table (col, ...)`), whose columns have `types`, with `row` giving each row's
/// values.
fn copy<T>(
    client: &mut postgres::Client,
    target: &str,
    types: &[Type],
    rows: &[T],
    row: impl Fn(
        &T,
        &mut dyn FnMut(&[&(dyn ToSql + Sync)]) -> Result<(), postgres::Error>,
    ) -> Result<(), postgres::Error>,
) -> Result<(), postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sink = client.copy_in(&format!("COPY {target} FROM STDIN BINARY"))?;
    let mut w = BinaryCopyInWriter::new(sink, types);
    let mut put = |vals: &[&(dyn ToSql + Sync)]| {
        // BinaryCopyInWriter is pinned by its own API; a mutable borrow through the closure is all it needs.
        std::pin::Pin::new(&mut w).write(vals)
    };
    for r in rows {
        row(r, &mut put)?;
    }
    w.finish()?;
    Ok(())
}

/// Tables that hold a capture's rows, besides `captures`.
const CAPTURE_TABLES: [&str; 8] = [
    "frame_data",
    "frames",
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
    /// Deletes the captures `ids` and all their rows in one transaction.
    /// Space is returned by the server's autovacuum, so `reclaimable` is 0.
    pub fn forget(&self, ids: &[i64]) -> Result<crate::store::Forgotten, StoreError> {
        let err = self.err();
        let mut c = self.client.borrow_mut();
        let mut tx = c.transaction().map_err(&err)?;
        let mut done = crate::store::Forgotten::default();
        for &id in ids {
            let Some((frames, flows)) = delete_capture(&mut tx, id).map_err(&err)? else {
                continue;
            };
            done.captures += 1;
            done.frames += frames.max(0) as u64;
            done.flows += flows.max(0) as u64;
        }
        tx.commit().map_err(&err)?;
        Ok(done)
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
        if let Some(f) = flows.iter().find(|f| f.replaces || f.provisional) {
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
        let mut c = self.pg.client.borrow_mut();
        let c = &mut *c;
        (|| -> Result<(), postgres::Error> {
            copy(
                c,
                "frames (capture_id, number, ts_ns, origlen, file_offset, flow_no, seq, ack, prev_in_flow, conn_no,
                         caplen, iface, tcp_flags, win, payload_len)",
                &[I8, I8, I8, I8, I8, I8, I8, I8, I8, I8, I4, I4, I4, I4, I4],
                frames,
                |f, put| {
                    let t = f.tcp.as_ref();
                    // caplen and payload_len are at most capture::MAX_RECORD, far below 2^31; iface is checked
                    // above.
                    let iface = f.iface as i32;
                    put(&[
                        &id,
                        &(f.number as i64),
                        &f.ts_ns,
                        &i64::from(f.origlen),
                        &(f.offset as i64),
                        &t.map(|t| i64::from(t.flow_no)),
                        &t.map(|t| i64::from(t.seq)),
                        &t.map(|t| i64::from(t.ack)),
                        &t.and_then(|t| t.prev_frame).map(|n| n as i64),
                        &t.and_then(|t| t.conn_no).map(i64::from),
                        &(f.caplen.min(i32::MAX as u32) as i32),
                        &iface,
                        &t.map(|t| i32::from(t.flags)),
                        &t.and_then(|t| t.win).map(i32::from),
                        &t.map(|t| t.payload_len.min(i32::MAX as u32) as i32),
                    ])
                },
            )?;
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
                copy(
                    c,
                    "frame_data (capture_id, number, data)",
                    &[I8, I8, Type::BYTEA],
                    &spans,
                    |(n, r), put| put(&[&id, n, &&data[r.clone()]]),
                )?;
            }
            copy(
                c,
                "flows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame, closed_frame,
                        packets, bytes, payload_bytes, first_ns, last_ns, flags, src_key, dst_key, community_id)",
                &[
                    I8,
                    I8,
                    Type::TEXT,
                    Type::TEXT,
                    I8,
                    Type::TEXT,
                    I8,
                    I8,
                    I8,
                    I8,
                    I8,
                    I8,
                    I8,
                    I8,
                    I8,
                    I8,
                    Type::BYTEA,
                    Type::BYTEA,
                    Type::TEXT,
                ],
                flows,
                |fl, put| {
                    put(&[
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
                },
            )
        })()
        .map_err(self.pg.err())
    }

    /// Writes connections (those a reused key replaced, and at the end the rest).
    pub fn add_connections(&mut self, conns: &[ConnRecord]) -> Result<(), StoreError> {
        let id = self.id;
        let mut c = self.pg.client.borrow_mut();
        let mut types = [I8; 20];
        for t in [2, 3, 5, 17, 18, 19] {
            types[t] = Type::TEXT;
        }
        copy(
            &mut c,
            "connections (capture_id, conn_no, community_id, orig_h, orig_p, resp_h, resp_p, first_frame, last_frame,
                          first_ns, last_ns, orig_pkts, orig_frame_bytes, orig_bytes, resp_pkts, resp_frame_bytes,
                          resp_bytes, conn_state, history, flows)",
            &types,
            conns,
            |k, put| {
                put(&[
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
                ])
            },
        )
        .map_err(self.pg.err())
    }

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
                |r, put| {
                    put(&[
                        &id,
                        &r.address.as_str(),
                        &i64::from(r.protocol),
                        &(r.frames as i64),
                        &(r.bytes as i64),
                    ])
                },
            )
            .map_err(self.pg.err());
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
            |r, put| {
                put(&[
                    &id,
                    &i64::from(r.bucket),
                    &i64::from(r.part),
                    &r.flow_nos.as_slice(),
                ])
            },
        )
        .map_err(self.pg.err())
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
                &crate::trace::buckets::WITH_NET16,
            ],
        )?;
        let ifaces: Vec<(i64, i64, i64, i64)> = end
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, itf)| {
                (
                    i as i64,
                    i64::from(itf.linktype),
                    i64::from(itf.snaplen),
                    i64::from(itf.tsresol),
                )
            })
            .collect();
        copy(
            c,
            "interfaces (capture_id, iface, linktype, snaplen, tsresol)",
            &[I8; 5],
            &ifaces,
            |(i, l, s, t), put| put(&[&id, i, l, s, t]),
        )?;
        self.add_path_to(c, id, &end)?;
        c.batch_execute("COMMIT")?;
        Ok(Outcome::Indexed {
            id,
            end,
            superseded,
        })
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
