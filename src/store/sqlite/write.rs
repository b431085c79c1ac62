//! Writing a capture's rows: frames and flows in multi-row INSERTs, frame bytes for --embed, and the rules for
//! a content or path seen before, all in one transaction per capture.

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

use super::bulk::{BulkInsert, Row};
use crate::conn::ConnRecord;
use crate::store::backend::CaptureSink;
use crate::store::error::StoreError;
use crate::store::sink::{CaptureEnd, CaptureSource, Forgotten, FrameRow, Outcome, Superseded};
use crate::trace::buckets::BucketRow;
use crate::trace::endpoints::EndpointRow;
use crate::trace::FlowRecord;

/// Looks up a capture already indexed from this exact path with the same size and mtime (cheap skip).
pub fn known_path(
    conn: &Connection,
    src: &CaptureSource,
) -> rusqlite::Result<Option<(i64, String)>> {
    conn.query_row(
        "SELECT c.id, c.name FROM capture_paths p JOIN captures c ON c.id = p.capture_id
         WHERE p.path = ?1 AND p.size = ?2 AND p.mtime_ns IS ?3",
        params![src.path, src.size as i64, src.mtime_ns],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Deletes a capture and all its rows: the `captures_delete_rows` trigger deletes the rest, as it does for a
/// `DELETE FROM captures` typed in SQL.
pub fn delete_capture(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM captures WHERE id = ?1", [id])?;
    Ok(())
}

/// Deletes the captures `ids` and all their rows in one transaction: all of them go, or none. Then, in the same
/// transaction, those of `oldest` in order while the file's pages in use (less the free ones, which SQLite counts
/// inside the transaction) take more than `limit` bytes; returns how many of `oldest` went.
pub fn forget(
    conn: &Connection,
    ids: &[i64],
    oldest: &[i64],
    limit: u64,
) -> Result<(Forgotten, usize), StoreError> {
    let sq = StoreError::on(conn);
    let mut done = Forgotten::default();
    // IMMEDIATE: the write lock is taken first, through the busy handler that waits for another writer. A
    // deferred transaction reads first, and SQLite never waits to upgrade a read to a write: "database is locked".
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(&sq)?;
    let delete = |id: i64, done: &mut Forgotten| -> rusqlite::Result<()> {
        let counts: Option<(i64, i64)> = tx
            .query_row(
                "SELECT frames, flows FROM captures WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((frames, flows)) = counts else {
            return Ok(());
        };
        delete_capture(&tx, id)?;
        done.captures += 1;
        done.frames += frames.max(0) as u64;
        done.flows += flows.max(0) as u64;
        Ok(())
    };
    for &id in ids {
        delete(id, &mut done).map_err(&sq)?;
    }
    let pragma = |p: &str| -> rusqlite::Result<i64> {
        tx.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
    };
    let mut more = 0;
    if limit < u64::MAX {
        let page = pragma("page_size").map_err(&sq)?.max(0) as u64;
        for &id in oldest {
            let used = (pragma("page_count").map_err(&sq)?
                - pragma("freelist_count").map_err(&sq)?)
            .max(0) as u64
                * page;
            if used <= limit {
                break;
            }
            if !ids.contains(&id) {
                delete(id, &mut done).map_err(&sq)?;
                more += 1;
            }
        }
    }
    tx.commit().map_err(&sq)?;
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .map_err(&sq)?;
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(&sq)?;
    done.reclaimable = (free.max(0) * page.max(0)) as u64;
    Ok((done, more))
}

/// Frames at least this large (with --embed) are written through the incremental blob API rather than bound.
const BLOB_IN_PLACE: usize = 64 << 10;

fn bind_frame<'r>(p: &mut Row<'_, 'r>, f: &'r FrameRow) -> rusqlite::Result<()> {
    let t = f.tcp.as_ref();
    p.int(f.number as i64)?;
    p.int(f.ts_ns)?;
    p.int(f.caplen)?;
    p.int(f.origlen)?;
    p.int(f.iface)?;
    p.int(f.offset as i64)?;
    p.opt(t.map(|t| t.flow_no))?;
    p.opt(t.map(|t| t.flags))?;
    p.opt(t.map(|t| t.seq))?;
    p.opt(t.map(|t| t.ack))?;
    p.opt(t.and_then(|t| t.win))?;
    p.opt(t.map(|t| t.payload_len))?;
    p.opt(t.and_then(|t| t.prev_frame).map(|n| n as i64))?;
    p.opt(t.and_then(|t| t.conn_no))
}

fn bind_flow<'r>(p: &mut Row<'_, 'r>, fl: &'r FlowRecord) -> rusqlite::Result<()> {
    p.int(fl.flow_no)?;
    // '' when the `flows` view gives the label back from the row (migrations/0009): 52 of a scan's 218 bytes.
    p.text(fl.stored_label())?;
    p.text(fl.src())?;
    p.int(fl.sport)?;
    p.text(fl.dst())?;
    p.int(fl.dport)?;
    p.int(fl.first_frame as i64)?;
    p.int(fl.last_frame as i64)?;
    p.opt(fl.closed_frame.map(|n| n as i64))?;
    p.int(fl.packets as i64)?;
    p.int(fl.bytes as i64)?;
    p.int(fl.payload_bytes as i64)?;
    p.int(fl.first_ns)?;
    p.int(fl.last_ns)?;
    p.int(fl.flags)?;
    p.blob(&fl.src_key)?;
    p.blob(&fl.dst_key)?;
    p.text(fl.community_id())
}

fn bind_conn<'r>(p: &mut Row<'_, 'r>, c: &'r ConnRecord) -> rusqlite::Result<()> {
    p.int(c.conn_no)?;
    p.text(&c.community_id)?;
    p.text(&c.orig_h)?;
    p.int(c.orig_p)?;
    p.text(&c.resp_h)?;
    p.int(c.resp_p)?;
    p.int(c.first_frame as i64)?;
    p.int(c.last_frame as i64)?;
    p.int(c.first_ns)?;
    p.int(c.last_ns)?;
    p.int(c.orig_pkts as i64)?;
    p.int(c.orig_frame_bytes as i64)?;
    p.int(c.orig_bytes as i64)?;
    p.int(c.resp_pkts as i64)?;
    p.int(c.resp_frame_bytes as i64)?;
    p.int(c.resp_bytes as i64)?;
    p.text(c.conn_state)?;
    p.text(&c.history)?;
    p.text(&c.flows)
}

/// One row's VALUES: the capture's id (ours, an integer: not a value a user gave), then `n` parameters. The id
/// is the same in every row, and a bound one cost a bind per row.
fn values(id: i64, n: usize) -> String {
    std::iter::once(id.to_string())
        .chain(std::iter::repeat_n("?".to_string(), n))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes one capture in one transaction: it is wholly in the database or absent. `begin` opens the
/// transaction, `add` writes each batch of rows as the reader sends them, and `finish` completes the capture's
/// row and commits; dropped before `finish`, the writer rolls everything back.
pub struct CaptureWriter<'c> {
    conn: &'c Connection,
    src: CaptureSource,
    force: bool,
    embed: bool,
    id: i64,
    frames_ins: BulkInsert<'c>,
    flows_ins: BulkInsert<'c>,
    conns_ins: BulkInsert<'c>,
    endpoints_ins: BulkInsert<'c>,
    /// Endpoint tallies written so far: the first goes in with plain multi-row INSERTs, later ones add to it.
    endpoint_parts: u32,
    ins_data: rusqlite::Statement<'c>,
    ins_zero: rusqlite::Statement<'c>,
    open: bool,
}

impl<'c> CaptureWriter<'c> {
    /// Starts a capture read from `src`: its `captures` row, inside a new transaction.
    pub fn begin(
        conn: &'c Connection,
        src: &CaptureSource,
        force: bool,
        embed: bool,
    ) -> Result<CaptureWriter<'c>, StoreError> {
        let sq = StoreError::on(conn);
        // By hand rather than rusqlite's Transaction, so that the prepared statements below can live beside it.
        conn.execute_batch("BEGIN").map_err(&sq)?;
        let started = (|| -> rusqlite::Result<CaptureWriter<'c>> {
            conn.execute(
                "INSERT INTO captures (name, path, size, mtime_ns, embedded) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![src.name, src.path, src.size as i64, src.mtime_ns, i64::from(embed)],
            )?;
            let id = conn.last_insert_rowid();
            Ok(CaptureWriter {
                conn,
                src: src.clone(),
                force,
                embed,
                id,
                frames_ins: BulkInsert::new(
                    conn,
                    "frames (capture_id, number, ts_ns, caplen, origlen, iface, file_offset, flow_no, tcp_flags, seq,
                             ack, win, payload_len, prev_in_flow, conn_no)",
                    &values(id, 14),
                )?,
                flows_ins: BulkInsert::new(
                    conn,
                    "flow_rows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame,
                            closed_frame, packets, bytes, payload_bytes, first_ns, last_ns, flags, src_key, dst_key,
                            community_id)",
                    &values(id, 18),
                )?,
                conns_ins: BulkInsert::new(
                    conn,
                    "connections (capture_id, conn_no, community_id, orig_h, orig_p, resp_h, resp_p, first_frame,
                                  last_frame, first_ns, last_ns, orig_pkts, orig_frame_bytes, orig_bytes, resp_pkts,
                                  resp_frame_bytes, resp_bytes, conn_state, history, flows)",
                    &values(id, 19),
                )?,
                endpoints_ins: BulkInsert::new(
                    conn,
                    "endpoint_protocols (capture_id, address, protocol, frames, bytes)",
                    &values(id, 4),
                )?,
                endpoint_parts: 0,
                ins_data: conn
                    .prepare("INSERT INTO frame_data (capture_id, number, data) VALUES (?1, ?2, ?3)")?,
                ins_zero: conn.prepare(
                    "INSERT INTO frame_data (capture_id, number, data) VALUES (?1, ?2, zeroblob(?3))",
                )?,
                open: true,
            })
        })();
        started.map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            sq(e)
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
        self.add_rows(frames, flows, data)
            .map_err(StoreError::on(self.conn))
    }

    /// Writes connections (those a reused key replaced, and at the end the rest).
    pub fn add_connections(&mut self, conns: &[ConnRecord]) -> Result<(), StoreError> {
        self.conns_ins
            .insert(conns, bind_conn)
            .map_err(StoreError::on(self.conn))
    }

    /// Adds an endpoint tally to the capture's (a long capture hands its tally on in parts).
    pub fn add_endpoints(&mut self, rows: &[EndpointRow]) -> Result<(), StoreError> {
        let (id, tx) = (self.id, self.conn);
        self.endpoint_parts += 1;
        if self.endpoint_parts == 1 {
            // One row per statement cost the writer about 2 us a row: 0.4 s for a capture of 170k addresses.
            return self
                .endpoints_ins
                .insert(rows, |p, r| {
                    p.text(&r.address)?;
                    p.int(r.protocol)?;
                    p.int(r.frames as i64)?;
                    p.int(r.bytes as i64)
                })
                .map_err(StoreError::on(self.conn));
        }
        (|| -> rusqlite::Result<()> {
            let mut st = tx.prepare_cached(
                "INSERT INTO endpoint_protocols (capture_id, address, protocol, frames, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (capture_id, address, protocol)
                 DO UPDATE SET frames = frames + excluded.frames, bytes = bytes + excluded.bytes",
            )?;
            for r in rows {
                st.execute(params![
                    id,
                    r.address,
                    r.protocol,
                    r.frames as i64,
                    r.bytes as i64
                ])?;
            }
            Ok(())
        })()
        .map_err(StoreError::on(self.conn))
    }

    /// Stores parts of the capture's flow bucket lists.
    pub fn add_buckets(&mut self, rows: &[BucketRow]) -> Result<(), StoreError> {
        let (id, tx) = (self.id, self.conn);
        (|| -> rusqlite::Result<()> {
            let mut st = tx.prepare_cached(
                "INSERT INTO flow_buckets (capture_id, bucket, part, flow_nos) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in rows {
                st.execute(params![id, r.bucket, r.part, r.flow_nos])?;
            }
            Ok(())
        })()
        .map_err(StoreError::on(self.conn))
    }

    /// Records the Community ID seed the capture's flows and connections were made with.
    pub fn set_community_id_seed(&mut self, seed: u16) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE captures SET community_id_seed = ?2 WHERE id = ?1",
                params![self.id, seed],
            )
            .map(|_| ())
            .map_err(StoreError::on(self.conn))
    }

    fn add_rows(
        &mut self,
        frames: &[FrameRow],
        flows: &[FlowRecord],
        data: &[u8],
    ) -> rusqlite::Result<()> {
        let (id, embed, tx) = (self.id, self.embed, self.conn);
        let (frames_ins, flows_ins, ins_data, ins_zero) = (
            &mut self.frames_ins,
            &mut self.flows_ins,
            &mut self.ins_data,
            &mut self.ins_zero,
        );
        frames_ins.insert(frames, bind_frame)?;
        if embed {
            let mut at = 0usize;
            for f in frames {
                let end = at + f.caplen as usize;
                let bytes = &data[at..end];
                if bytes.len() >= BLOB_IN_PLACE {
                    // Bound as a parameter, SQLite copies the blob and then builds the row from the
                    // copy: two more copies of a frame that may be 256 MiB. A zeroblob row written
                    // through the incremental blob API costs none.
                    ins_zero.execute(params![id, f.number as i64, bytes.len() as i64])?;
                    let mut blob = tx.blob_open(
                        rusqlite::DatabaseName::Main,
                        "frame_data",
                        "data",
                        tx.last_insert_rowid(),
                        false,
                    )?;
                    blob.write_all_at(bytes, 0)?;
                } else {
                    ins_data.execute(params![id, f.number as i64, bytes])?;
                }
                at = end;
            }
        }
        if !flows.iter().any(|f| f.replaces()) {
            flows_ins.insert(flows, bind_flow)?;
            return Ok(());
        }
        // Flows stored when they were parked, and stored again since they came back
        // (`Tracer::with_parked_rows`): the row of an earlier batch goes, and of the rows of one flow in this
        // batch only the last is written.
        let mut last: HashMap<u32, usize> = HashMap::new();
        for (i, f) in flows.iter().enumerate() {
            last.insert(f.flow_no, i);
        }
        let mut del =
            tx.prepare_cached("DELETE FROM flow_rows WHERE capture_id = ?1 AND flow_no = ?2")?;
        let mut keep = Vec::with_capacity(last.len());
        for (i, f) in flows.iter().enumerate() {
            if last.get(&f.flow_no) == Some(&i) {
                if f.replaces() {
                    del.execute(params![id, f.flow_no])?;
                }
                keep.push(f);
            }
        }
        flows_ins.insert(&keep, |p, fl| bind_flow(p, fl))?;
        Ok(())
    }

    /// Completes the capture with what the reader knew at its end, and commits. The same content already in
    /// the database (under any path) makes this one a new path of it instead, unless forced.
    pub fn finish(mut self, end: CaptureEnd) -> Result<Outcome, StoreError> {
        let conn = self.conn;
        let outcome = self.finish_rows(end).map_err(StoreError::on(conn))?;
        self.open = false;
        Ok(outcome)
    }

    fn finish_rows(&mut self, end: CaptureEnd) -> rusqlite::Result<Outcome> {
        let (id, force, tx, src) = (self.id, self.force, self.conn, &self.src);
        // Same content already indexed (under any path)?
        let dup: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, name FROM captures WHERE hash = ?1",
                [&end.hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((old, name)) = dup {
            if !force {
                tx.execute_batch("ROLLBACK; BEGIN")?;
                tx.execute(
                    "INSERT OR REPLACE INTO capture_paths (capture_id, path, name, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![old, src.path, src.name, end.size as i64, end.mtime_ns],
                )?;
                tx.execute_batch("COMMIT")?;
                self.open = false;
                return Ok(Outcome::AlreadyIndexed { id: old, name });
            }
            // Re-indexing replaces the rows, but the content keeps every other path it was seen under.
            tx.execute(
                "UPDATE capture_paths SET capture_id = ?1 WHERE capture_id = ?2 AND path <> ?3",
                params![id, old, src.path],
            )?;
            delete_capture(tx, old)?;
        }
        // New content under a path indexed before (forced or not): the path now means the new content. Left beside
        // it, the stale capture would make every label of the path ambiguous. Standard input ("-") is not a place
        // whose content can change, so its captures stay side by side.
        let mut superseded = Vec::new();
        if src.path != "-" {
            let olds: Vec<i64> = tx
                .prepare("SELECT DISTINCT capture_id FROM capture_paths WHERE path = ?1 AND capture_id <> ?2")?
                .query_map(params![src.path, id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for old in olds {
                let elsewhere: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM capture_paths WHERE capture_id = ?1 AND path <> ?2)",
                    params![old, src.path],
                    |r| r.get(0),
                )?;
                if elsewhere {
                    // The old content is still what its other paths hold: keep it, move only this path.
                    tx.execute(
                        "DELETE FROM capture_paths WHERE capture_id = ?1 AND path = ?2",
                        params![old, src.path],
                    )?;
                    superseded.push(Superseded::PathMoved(old));
                } else {
                    delete_capture(tx, old)?;
                    superseded.push(Superseded::Replaced(old));
                }
            }
        }
        let linktypes = end.linktypes();
        // has_buckets: the lists include the /16 buckets.
        tx.execute(
            "UPDATE captures SET hash = ?2, format = ?3, compression = ?4, linktypes = ?5, frames = ?6, tcp_frames = ?7,
                    flows = ?8, first_ns = ?9, last_ns = ?10, truncated_at = ?11, truncated_why = ?12, size = ?13,
                    mtime_ns = ?14, has_endpoints = 1, has_buckets = ?15 WHERE id = ?1",
            params![
                id,
                end.hash,
                end.format,
                end.compression,
                linktypes,
                end.frames as i64,
                end.tcp_frames as i64,
                end.flows as i64,
                end.first_ns,
                end.last_ns,
                end.truncation.as_ref().map(|t| t.offset as i64),
                end.truncation.as_ref().map(|t| t.reason.clone()),
                end.size as i64,
                end.mtime_ns,
                crate::key::buckets::WITH_NET16,
            ],
        )?;
        {
            let mut ins_if = tx.prepare(
                "INSERT INTO interfaces (capture_id, iface, linktype, snaplen, tsresol) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (i, itf) in end.interfaces.iter().enumerate() {
                ins_if.execute(params![
                    id,
                    i as i64,
                    itf.linktype,
                    itf.snaplen,
                    itf.tsresol
                ])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO capture_paths (capture_id, path, name, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, src.path, src.name, end.size as i64, end.mtime_ns],
        )?;
        tx.execute_batch("COMMIT")?;
        Ok(Outcome::Indexed {
            id,
            end,
            superseded,
        })
    }
}

impl Drop for CaptureWriter<'_> {
    fn drop(&mut self) {
        if self.open {
            // Not finished (the reader failed, was interrupted, or a write failed): nothing of it stays.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl CaptureSink for CaptureWriter<'_> {
    fn add(
        &mut self,
        frames: &[FrameRow],
        flows: &[FlowRecord],
        data: &[u8],
    ) -> Result<(), StoreError> {
        CaptureWriter::add(self, frames, flows, data)
    }
    fn add_connections(&mut self, conns: &[ConnRecord]) -> Result<(), StoreError> {
        CaptureWriter::add_connections(self, conns)
    }
    fn add_endpoints(&mut self, rows: &[EndpointRow]) -> Result<(), StoreError> {
        CaptureWriter::add_endpoints(self, rows)
    }
    fn add_buckets(&mut self, rows: &[BucketRow]) -> Result<(), StoreError> {
        CaptureWriter::add_buckets(self, rows)
    }
    fn set_community_id_seed(&mut self, seed: u16) -> Result<(), StoreError> {
        CaptureWriter::set_community_id_seed(self, seed)
    }
    fn finish(self: Box<Self>, end: CaptureEnd) -> Result<Outcome, StoreError> {
        CaptureWriter::finish(*self, end)
    }
}
