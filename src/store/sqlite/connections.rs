//! Connections built from the frame rows, by the same tracker an ingest with `--connections` runs, for the
//! captures indexed without them (and those stored before the connections migration, 0005): what `ingest
//! --connections` does after its files, or alone with none. The read commands never build them.
//!
//! Why not always at ingest: tracking them while reading costs about half again the ingest CPU and 50 MB more
//! memory on the benchmark capture (BENCHMARKS.md). The SQL is here, beside the schema it reads and writes; the
//! tracking is `conn`'s.

use std::path::Path;

use rusqlite::{params, Connection};

use crate::conn::{ConnRecord, ConnSeg, Connections};
use crate::store::error::StoreError;
use crate::trace::spill::SpillError;

/// Captures with flows but no connections yet.
const MISSING: &str = "SELECT c.id, c.community_id_seed FROM captures c
     WHERE NOT EXISTS (SELECT 1 FROM connections x WHERE x.capture_id = c.id)
       AND EXISTS (SELECT 1 FROM flows f WHERE f.capture_id = c.id)";

/// Makes sure every capture of the database at `path` has its connections (`ingest --connections`): if some
/// have none, opens it for writing and builds them in one transaction (other writers wait, as for an ingest).
/// Returns how many captures it built them for.
pub fn ensure(path: &Path) -> Result<usize, StoreError> {
    {
        let ro = super::open_read(path)?;
        let missing: bool = ro
            .query_row(&format!("SELECT EXISTS ({MISSING})"), [], |r| r.get(0))
            .map_err(|e| StoreError::Sqlite {
                path: path.display().to_string(),
                source: e,
            })?;
        if !missing {
            return Ok(0);
        }
    }
    let read_only = || StoreError::ConnectionsReadOnly {
        path: path.display().to_string(),
    };
    let is_read_only = |e: &rusqlite::Error| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
        )
    };
    let conn = match super::open(path) {
        Err(StoreError::Sqlite { source, .. }) if is_read_only(&source) => return Err(read_only()),
        r => r?,
    };
    let sq = |source: rusqlite::Error| {
        if is_read_only(&source) {
            read_only()
        } else {
            StoreError::Sqlite {
                path: path.display().to_string(),
                source,
            }
        }
    };
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sq)?;
    match rebuild_missing(&conn) {
        Ok(n) => conn.execute_batch("COMMIT").map_err(sq).map(|()| n),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(sq(e))
        }
    }
}

/// Fills `frames.conn_no` and the `connections` rows of every capture that has flows but no connections, with
/// the capture's Community ID seed. The caller holds a write transaction.
pub fn rebuild_missing(conn: &Connection) -> rusqlite::Result<usize> {
    let captures: Vec<(i64, u16)> = conn
        .prepare(MISSING)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for &(id, seed) in &captures {
        rebuild(conn, id, seed)?;
    }
    Ok(captures.len())
}

/// Frames read per round: their connection numbers and the connections they finished are written before the
/// next round is read, so what is held does not grow with the capture.
const CHUNK: i64 = 1 << 16;

fn rebuild(conn: &Connection, capture_id: i64, seed: u16) -> rusqlite::Result<()> {
    let spill = |e: SpillError| rusqlite::Error::UserFunctionError(Box::new(e));
    let mut tracker = Connections::new(seed);
    let mut done: Vec<ConnRecord> = Vec::new();
    let mut per_frame: Vec<(i64, u32)> = Vec::with_capacity(CHUNK as usize);
    let mut st = conn.prepare(
        "SELECT fr.number, fr.ts_ns, fr.origlen, f.src, f.sport, f.dst, f.dport, fr.tcp_flags, fr.seq, fr.ack,
                fr.payload_len, fr.flow_no
         FROM frames fr JOIN flows f ON f.capture_id = fr.capture_id AND f.flow_no = fr.flow_no
         WHERE fr.capture_id = ?1 AND fr.number > ?2 AND fr.flow_no IS NOT NULL ORDER BY fr.number LIMIT ?3",
    )?;
    let mut upd =
        conn.prepare("UPDATE frames SET conn_no = ?3 WHERE capture_id = ?1 AND number = ?2")?;
    let mut ins = conn.prepare(
        "INSERT INTO connections (capture_id, conn_no, community_id, orig_h, orig_p, resp_h, resp_p, first_frame,
                                  last_frame, first_ns, last_ns, orig_pkts, orig_frame_bytes, orig_bytes, resp_pkts,
                                  resp_frame_bytes, resp_bytes, conn_state, history, flows)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?;
    let mut insert = |c: &ConnRecord| {
        ins.execute(params![
            capture_id,
            c.conn_no,
            c.community_id,
            c.orig_h,
            c.orig_p,
            c.resp_h,
            c.resp_p,
            c.first_frame as i64,
            c.last_frame as i64,
            c.first_ns,
            c.last_ns,
            c.orig_pkts as i64,
            c.orig_frame_bytes as i64,
            c.orig_bytes as i64,
            c.resp_pkts as i64,
            c.resp_frame_bytes as i64,
            c.resp_bytes as i64,
            c.conn_state,
            c.history,
            c.flows,
        ])
        .map(|_| ())
    };
    let mut after = 0i64;
    loop {
        let mut read = 0;
        let mut rows = st.query(params![capture_id, after, CHUNK])?;
        while let Some(r) = rows.next()? {
            read += 1;
            let number: i64 = r.get(0)?;
            after = number;
            let (src, dst): (String, String) = (r.get(3)?, r.get(5)?);
            let (Ok(src), Ok(dst)) = (src.parse(), dst.parse()) else {
                continue;
            };
            let seg = ConnSeg {
                number: number as u64,
                ts_ns: r.get(1)?,
                origlen: r.get(2)?,
                src,
                sport: r.get(4)?,
                dst,
                dport: r.get(6)?,
                flags: r.get(7)?,
                seq: r.get(8)?,
                ack: r.get(9)?,
                payload_len: r.get(10)?,
                flow_no: r.get(11)?,
            };
            per_frame.push((number, tracker.observe(&seg, &mut |c| done.push(c))));
        }
        drop(rows);
        for (number, c) in per_frame.drain(..) {
            upd.execute(params![capture_id, number, c])?;
        }
        for c in done.drain(..) {
            insert(&c)?;
        }
        if read < CHUNK {
            break;
        }
    }
    let mut failed = None;
    tracker
        .finish(&mut |c| {
            if failed.is_none() {
                failed = insert(&c).err();
            }
        })
        .map_err(spill)?;
    failed.map_or(Ok(()), Err)
}
