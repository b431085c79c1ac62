//! SQLite storage: opening a database (schema migrations, journal mode) and writing one capture's rows in one transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::capture::{Interface, Truncation};
use crate::trace::FlowRecord;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "database {path}: upgrading the schema from version {from} to {to} failed at migration {at}: {msg}"
    )]
    Migration {
        path: String,
        from: usize,
        to: usize,
        at: usize,
        msg: String,
    },
    #[error(
        "database {path} has schema version {found}, newer than this traceflow knows ({known}): use a newer \
         traceflow"
    )]
    TooNew {
        path: String,
        found: usize,
        known: usize,
    },
    #[error(
        "database {path} has schema version {found}, older than this traceflow's {known}: run an ingest into it \
         (`traceflow --db {path} ingest CAPTURE`), which upgrades it"
    )]
    TooOld {
        path: String,
        found: usize,
        known: usize,
    },
    #[error("{path} is a SQLite database but not traceflow's (it has tables of its own); give another --db")]
    NotTraceflow { path: String },
    #[error(
        "no database at {path} (index captures first: traceflow --db {path} ingest CAPTURE...)"
    )]
    Missing { path: String },
}

/// The schema, one SQL script per version, applied in order. Append-only: a shipped migration never changes.
const MIGRATIONS: [&str; 2] = [
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_label_in_flows.sql"),
];

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Turns off SQLite's memory statistics before its first use. With them on, every allocation takes a global
/// mutex (about 3% of an ingest's writer in `perf`); traceflow never reads them.
fn disable_memstatus() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. sqlite3_config only fails (SQLITE_MISUSE, ignored: the
        // statistics then simply stay on) when SQLite is already initialised, e.g. by another connection.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::os::raw::c_int,
            );
        }
    });
}

fn user_version(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map(|v| v.max(0) as usize)
}

/// Whether a version-0 database holds anything; traceflow only takes over an empty file.
fn has_objects(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name NOT LIKE 'sqlite_%')",
        [],
        |r| r.get(0),
    )
}

/// Opens (creating if needed) a traceflow database for writing and brings its schema up to date.
///
/// The migrations run by hand rather than through rusqlite_migration: it reads the version and then opens a
/// deferred transaction, so two processes opening a new database at once both saw version 0 and the second
/// failed with "table captures already exists". Here the write lock is taken first (`BEGIN IMMEDIATE`, which
/// waits for the other process), then the version is read again and only what is missing is applied.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    disable_memstatus();
    let p = path.display().to_string();
    let sq = |source| StoreError::Sqlite {
        path: p.clone(),
        source,
    };
    // One connection per thread, never shared: SQLite's per-call mutexes are pure cost (about 8% of an ingest).
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sq)?;
    // A second writer waits instead of failing; so does a reader during a bulk load (`begin_ingest`).
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sq)?;
    // Only takes effect when the file is created. Big pages mean fewer B-tree splits and page lookups during bulk
    // inserts: 16 KiB took about 15% less CPU than 4 KiB, and 64 KiB (SQLite's largest) 6% less of the writer
    // than 16 KiB, with no cost to a label lookup.
    conn.pragma_update(None, "page_size", 65536).map_err(sq)?;
    // The journal mode is left as the file has it; an ingest chooses it (`begin_ingest`).
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sq)?;
    // 16 MiB of page cache holds the B-tree pages that inserts revisit (indexes, the right edges of tables); it
    // bounds the ingest's memory too. 32 MiB measured no faster (same writer CPU, 15 MB more RSS).
    conn.pragma_update(None, "cache_size", -16384).map_err(sq)?;
    let seen = user_version(&conn).map_err(sq)?;
    if seen == SCHEMA_VERSION {
        return Ok(conn);
    }
    if seen > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: p,
            found: seen,
            known: SCHEMA_VERSION,
        });
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sq)?;
    let migrated = migrate(&conn, &p);
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT").map_err(sq)?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(conn)
}

/// Applies the missing migrations; the caller holds the write lock.
fn migrate(conn: &Connection, p: &str) -> Result<(), StoreError> {
    let sq = |source| StoreError::Sqlite {
        path: p.to_string(),
        source,
    };
    // Read under the lock: another process may have migrated while this one waited for it.
    let from = user_version(conn).map_err(sq)?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: p.to_string(),
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    if from == 0 && has_objects(conn).map_err(sq)? {
        return Err(StoreError::NotTraceflow {
            path: p.to_string(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        conn.execute_batch(sql)
            .and_then(|()| conn.pragma_update(None, "user_version", (i + 1) as i64))
            .map_err(|e| StoreError::Migration {
                path: p.to_string(),
                from,
                to: SCHEMA_VERSION,
                at: i + 1,
                // SQLite's message only: the migration's SQL is in migrations/, not in an error line.
                msg: match &e {
                    rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
                    other => other.to_string(),
                },
            })?;
    }
    Ok(())
}

/// Opens a traceflow database for reading only: read commands never create, migrate or write a file.
///
/// A database that is not traceflow's, or of another schema version, is refused with a message that says what
/// to do. A WAL database in a folder the user cannot write (no `-shm` file can be made) is opened as immutable,
/// which is the only way SQLite reads it there.
pub fn open_read(path: &Path) -> Result<Connection, StoreError> {
    disable_memstatus();
    let p = path.display().to_string();
    if !path.exists() {
        return Err(StoreError::Missing { path: p });
    }
    let sq = |source| StoreError::Sqlite {
        path: p.clone(),
        source,
    };
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let first = Connection::open_with_flags(path, flags).and_then(|c| {
        c.busy_timeout(BUSY_TIMEOUT)?;
        let v = user_version(&c)?;
        Ok((c, v))
    });
    let (conn, version) = match first {
        Ok(cv) => cv,
        Err(e) if is_cantopen(&e) => {
            let uri = immutable_uri(path).map_err(sq)?;
            let c = Connection::open_with_flags(uri, flags).map_err(sq)?;
            let v = user_version(&c).map_err(sq)?;
            (c, v)
        }
        Err(e) => return Err(sq(e)),
    };
    conn.pragma_update(None, "cache_size", -16384).map_err(sq)?;
    match version {
        0 if has_objects(&conn).map_err(sq)? => Err(StoreError::NotTraceflow { path: p }),
        0 => Err(StoreError::Missing { path: p }),
        v if v > SCHEMA_VERSION => Err(StoreError::TooNew {
            path: p,
            found: v,
            known: SCHEMA_VERSION,
        }),
        v if v < SCHEMA_VERSION => Err(StoreError::TooOld {
            path: p,
            found: v,
            known: SCHEMA_VERSION,
        }),
        _ => Ok(conn),
    }
}

/// SQLite cannot open a WAL database read-only when it may not create the `-shm` file beside it.
fn is_cantopen(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
    )
}

/// `file:PATH?immutable=1`, with the path percent-encoded as SQLite's URI rules require.
fn immutable_uri(path: &Path) -> rusqlite::Result<String> {
    let abs = std::path::absolute(path)
        .map_err(|e| rusqlite::Error::InvalidPath(PathBuf::from(e.to_string())))?;
    let mut uri = String::from("file:");
    for b in abs.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(*b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    Ok(uri)
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(600);

/// How an ingest writes its transactions (see `begin_ingest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Journal {
    /// Write-ahead log: readers keep reading while captures are written.
    Wal,
    /// Rollback journal, for the first load into an empty database.
    BulkLoad,
}

/// Chooses the journal for an ingest. An empty database (no capture yet) is bulk-loaded with a rollback journal:
/// pages added to the file are written once, straight into it, where WAL writes them twice (to the log, then the
/// checkpoint copies them) and then waits for the checkpoint's fsync. On the benchmark capture that is 1.05 s ->
/// 0.8 s. The price is that a reader opening the database meanwhile waits for the capture being written to
/// commit; with nothing indexed yet there is nothing to read anyway. A database that already holds captures is
/// written in WAL, so readers keep working while it grows. Call `end_ingest` afterwards.
pub fn begin_ingest(conn: &Connection) -> rusqlite::Result<Journal> {
    let empty: bool = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM captures)", [], |r| {
        r.get(0)
    })?;
    if empty {
        // Leaving WAL needs the database to ourselves; if someone has it open, don't wait for them: use WAL.
        conn.busy_timeout(Duration::ZERO)?;
        let mode: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0));
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if mode.is_ok_and(|m| m.eq_ignore_ascii_case("delete")) {
            // With a rollback journal, NORMAL can leave a corrupt database after a power cut (SQLite's own
            // documentation); FULL syncs the journal before the database is written, so a capture is either
            // wholly there or absent. In WAL, NORMAL keeps that promise (a power cut may only lose the last
            // commits, whole).
            conn.pragma_update(None, "synchronous", "FULL")?;
            return Ok(Journal::BulkLoad);
        }
    }
    set_wal(conn)?;
    Ok(Journal::Wal)
}

/// Leaves the database in WAL mode, where readers and a writer work side by side.
pub fn end_ingest(conn: &Connection) -> rusqlite::Result<()> {
    set_wal(conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
}

fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            Some(format!("journal_mode stayed {mode}, WAL expected")),
        ));
    }
    Ok(())
}

/// A frame row as the tracer produced it.
#[derive(Clone, Debug)]
pub struct FrameRow {
    pub number: u64,
    pub ts_ns: i64,
    pub caplen: u32,
    pub origlen: u32,
    pub iface: u32,
    pub offset: u64,
    pub tcp: Option<TcpRow>,
}

#[derive(Clone, Copy, Debug)]
pub struct TcpRow {
    pub flow_no: u32,
    /// The flow's previous frame (`frames.prev_in_flow`).
    pub prev_frame: Option<u64>,
    pub flags: u16,
    pub seq: u32,
    pub ack: u32,
    pub win: Option<u16>,
    pub payload_len: u32,
}

/// Where a capture came from.
#[derive(Clone, Debug)]
pub struct CaptureSource {
    pub name: String,
    pub path: String,
    pub size: u64,
    pub mtime_ns: Option<i64>,
}

/// What the reader knows once the capture is fully read.
#[derive(Clone, Debug)]
pub struct CaptureEnd {
    pub format: &'static str,
    pub compression: &'static str,
    pub interfaces: Vec<Interface>,
    pub frames: u64,
    pub tcp_frames: u64,
    pub flows: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    pub truncation: Option<Truncation>,
    pub hash: String,
    /// Bytes read and the mtime after the read: what is recorded, so that the cheap skip and dumps match the
    /// bytes that were indexed even when the file changed while it was read.
    pub size: u64,
    pub mtime_ns: Option<i64>,
    /// The file's size or mtime changed between its listing and the end of its read.
    pub changed: bool,
}

/// Messages from a capture's reader thread to the writer.
pub enum Msg {
    /// Frames, the flows closed meanwhile, and (with --embed) the frames' bytes concatenated in frame order.
    Batch {
        frames: Vec<FrameRow>,
        flows: Vec<FlowRecord>,
        data: Vec<u8>,
        bytes_read: u64,
        /// Dropped once the writer has inserted the batch (or dropped it unread): releases the reader's claim on
        /// the memory budget for frame bytes in flight (`ingest::Budget`).
        held: Option<Box<dyn Send>>,
    },
    End(CaptureEnd),
    Failed(String),
}

#[derive(Debug)]
pub enum Outcome {
    Indexed {
        id: i64,
        end: CaptureEnd,
        /// Captures indexed from this path before, with other content (see `write_capture`).
        superseded: Vec<Superseded>,
    },
    /// The same content is already in the database under `name`; this path was added to it.
    AlreadyIndexed {
        id: i64,
        name: String,
    },
    Failed(String),
}

/// What became of the capture a path was indexed as, when the path is indexed again with new content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Superseded {
    /// It was known under this path only: deleted, the new content replaces it.
    Replaced(i64),
    /// It is still known under other paths: it stays, only this path moved to the new capture.
    PathMoved(i64),
}

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

/// Deletes a capture and all its rows.
pub fn delete_capture(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    for table in [
        "frame_data",
        "frames",
        "flows",
        "interfaces",
        "capture_paths",
        "captures",
    ] {
        let col = if table == "captures" {
            "id"
        } else {
            "capture_id"
        };
        conn.execute(&format!("DELETE FROM {table} WHERE {col} = ?1"), [id])?;
    }
    Ok(())
}

/// Rows per multi-row INSERT: one statement per 64 rows cuts SQLite's per-statement cost (step, reset, VDBE
/// setup), which dominated the writer's profile with one row per statement.
const ROWS_PER_INSERT: usize = 64;

/// Frames at least this large (with --embed) are written through the incremental blob API rather than bound.
const BLOB_IN_PLACE: usize = 64 << 10;

/// Inserts rows into one table with multi-row statements (and a one-row statement for the remainder).
struct BulkInsert<'c> {
    many: rusqlite::Statement<'c>,
    one: rusqlite::Statement<'c>,
    cols: usize,
}

impl<'c> BulkInsert<'c> {
    /// `target` is `table (col, ...)` with `cols` columns.
    fn new(conn: &'c Connection, target: &str, cols: usize) -> rusqlite::Result<Self> {
        let sql = |rows: usize| {
            let row = format!("({})", vec!["?"; cols].join(","));
            // OR FAIL: a failing row stops the statement without undoing its earlier rows, so SQLite needs no
            // statement journal (about 10% of ingest CPU); any error rolls back the whole capture anyway.
            format!(
                "INSERT OR FAIL INTO {target} VALUES {}",
                vec![row; rows].join(",")
            )
        };
        Ok(BulkInsert {
            many: conn.prepare(&sql(ROWS_PER_INSERT))?,
            one: conn.prepare(&sql(1))?,
            cols,
        })
    }

    /// Inserts `rows`; `bind(statement, first parameter index - 1, row)` binds one row's columns.
    fn insert<T>(
        &mut self,
        rows: &[T],
        bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
        for chunk in &mut chunks {
            for (i, r) in chunk.iter().enumerate() {
                bind(&mut self.many, i * self.cols, r)?;
            }
            self.many.raw_execute()?;
        }
        for r in chunks.remainder() {
            bind(&mut self.one, 0, r)?;
            self.one.raw_execute()?;
        }
        Ok(())
    }
}

fn bind_frame(
    st: &mut rusqlite::Statement<'_>,
    base: usize,
    capture_id: i64,
    f: &FrameRow,
) -> rusqlite::Result<()> {
    let t = f.tcp.as_ref();
    st.raw_bind_parameter(base + 1, capture_id)?;
    st.raw_bind_parameter(base + 2, f.number as i64)?;
    st.raw_bind_parameter(base + 3, f.ts_ns)?;
    st.raw_bind_parameter(base + 4, f.caplen)?;
    st.raw_bind_parameter(base + 5, f.origlen)?;
    st.raw_bind_parameter(base + 6, f.iface)?;
    st.raw_bind_parameter(base + 7, f.offset as i64)?;
    st.raw_bind_parameter(base + 8, t.map(|t| t.flow_no))?;
    st.raw_bind_parameter(base + 9, t.map(|t| t.flags))?;
    st.raw_bind_parameter(base + 10, t.map(|t| t.seq))?;
    st.raw_bind_parameter(base + 11, t.map(|t| t.ack))?;
    st.raw_bind_parameter(base + 12, t.and_then(|t| t.win))?;
    st.raw_bind_parameter(base + 13, t.map(|t| t.payload_len))?;
    st.raw_bind_parameter(base + 14, t.and_then(|t| t.prev_frame).map(|n| n as i64))
}

fn bind_flow(
    st: &mut rusqlite::Statement<'_>,
    base: usize,
    capture_id: i64,
    fl: &FlowRecord,
) -> rusqlite::Result<()> {
    st.raw_bind_parameter(base + 1, capture_id)?;
    st.raw_bind_parameter(base + 2, fl.flow_no)?;
    st.raw_bind_parameter(base + 3, fl.label.as_str())?;
    st.raw_bind_parameter(base + 4, fl.src.as_str())?;
    st.raw_bind_parameter(base + 5, fl.sport)?;
    st.raw_bind_parameter(base + 6, fl.dst.as_str())?;
    st.raw_bind_parameter(base + 7, fl.dport)?;
    st.raw_bind_parameter(base + 8, fl.first_frame as i64)?;
    st.raw_bind_parameter(base + 9, fl.last_frame as i64)?;
    st.raw_bind_parameter(base + 10, fl.closed_frame.map(|n| n as i64))?;
    st.raw_bind_parameter(base + 11, fl.packets as i64)?;
    st.raw_bind_parameter(base + 12, fl.bytes as i64)?;
    st.raw_bind_parameter(base + 13, fl.payload_bytes as i64)?;
    st.raw_bind_parameter(base + 14, fl.first_ns)?;
    st.raw_bind_parameter(base + 15, fl.last_ns)
}

/// Writes one capture from its reader's messages, in one transaction: the capture is wholly in the database or
/// absent. `on_batch` sees the bytes read so far, and the frames and flows in each batch (for progress).
pub fn write_capture(
    conn: &mut Connection,
    src: &CaptureSource,
    rx: &crossbeam_channel::Receiver<Msg>,
    force: bool,
    embed: bool,
    on_batch: &mut dyn FnMut(u64, u64, u64),
) -> rusqlite::Result<Outcome> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO captures (name, path, size, mtime_ns, embedded) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            src.name,
            src.path,
            src.size as i64,
            src.mtime_ns,
            embed as i64
        ],
    )?;
    let id = tx.last_insert_rowid();
    let end = {
        let mut frames_ins = BulkInsert::new(
            &tx,
            "frames (capture_id, number, ts_ns, caplen, origlen, iface, file_offset, flow_no, tcp_flags, seq, ack,
                     win, payload_len, prev_in_flow)",
            14,
        )?;
        let mut flows_ins = BulkInsert::new(
            &tx,
            "flows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame, closed_frame,
                    packets, bytes, payload_bytes, first_ns, last_ns)",
            15,
        )?;
        let mut ins_data =
            tx.prepare("INSERT INTO frame_data (capture_id, number, data) VALUES (?1, ?2, ?3)")?;
        let mut ins_zero = tx.prepare(
            "INSERT INTO frame_data (capture_id, number, data) VALUES (?1, ?2, zeroblob(?3))",
        )?;
        loop {
            let msg = match rx.recv() {
                Ok(m) => m,
                // The reader died without a word: treat as a failure, roll back.
                Err(_) => return Ok(Outcome::Failed("reader stopped unexpectedly".into())),
            };
            match msg {
                Msg::Batch {
                    frames,
                    flows,
                    data,
                    bytes_read,
                    held: _held,
                } => {
                    frames_ins.insert(&frames, |st, base, f| bind_frame(st, base, id, f))?;
                    if embed {
                        let mut at = 0usize;
                        for f in &frames {
                            let end = at + f.caplen as usize;
                            let bytes = &data[at..end];
                            if bytes.len() >= BLOB_IN_PLACE {
                                // Bound as a parameter, SQLite copies the blob and then builds the row from the
                                // copy: two more copies of a frame that may be 256 MiB. A zeroblob row written
                                // through the incremental blob API costs none.
                                ins_zero.execute(params![
                                    id,
                                    f.number as i64,
                                    bytes.len() as i64
                                ])?;
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
                    flows_ins.insert(&flows, |st, base, fl| bind_flow(st, base, id, fl))?;
                    on_batch(bytes_read, frames.len() as u64, flows.len() as u64);
                }
                Msg::End(end) => break end,
                Msg::Failed(why) => return Ok(Outcome::Failed(why)),
            }
        }
    };
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
            tx.rollback()?;
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO capture_paths (capture_id, path, name, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![old, src.path, src.name, end.size as i64, end.mtime_ns],
            )?;
            tx.commit()?;
            return Ok(Outcome::AlreadyIndexed { id: old, name });
        }
        // Re-indexing replaces the rows, but the content keeps every other path it was seen under.
        tx.execute(
            "UPDATE capture_paths SET capture_id = ?1 WHERE capture_id = ?2 AND path <> ?3",
            params![id, old, src.path],
        )?;
        delete_capture(&tx, old)?;
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
                delete_capture(&tx, old)?;
                superseded.push(Superseded::Replaced(old));
            }
        }
    }
    let mut linktypes: Vec<u32> = end.interfaces.iter().map(|i| i.linktype).collect();
    linktypes.sort_unstable();
    linktypes.dedup();
    let linktypes = linktypes
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(",");
    tx.execute(
        "UPDATE captures SET hash = ?2, format = ?3, compression = ?4, linktypes = ?5, frames = ?6, tcp_frames = ?7,
                flows = ?8, first_ns = ?9, last_ns = ?10, truncated_at = ?11, truncated_why = ?12, size = ?13,
                mtime_ns = ?14 WHERE id = ?1",
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
    tx.commit()?;
    Ok(Outcome::Indexed {
        id,
        end,
        superseded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_mode(conn: &Connection) -> String {
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn an_empty_database_is_bulk_loaded_and_left_in_wal() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        assert_eq!(begin_ingest(&conn).unwrap(), Journal::BulkLoad);
        assert_eq!(journal_mode(&conn), "delete");
        // A rollback journal is only safe across a power cut with synchronous=FULL (2).
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
        end_ingest(&conn).unwrap();
        assert_eq!(journal_mode(&conn), "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1);
    }

    #[test]
    fn a_database_with_captures_is_written_in_wal() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        conn.execute(
            "INSERT INTO captures (name, path, size) VALUES ('a', '/a', 1)",
            [],
        )
        .unwrap();
        assert_eq!(begin_ingest(&conn).unwrap(), Journal::Wal);
        assert_eq!(journal_mode(&conn), "wal");
    }

    #[test]
    fn an_empty_database_someone_has_open_is_written_in_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path).unwrap();
        set_wal(&conn).unwrap();
        // Another connection in the middle of a read holds the WAL open: leaving WAL would have to wait for it.
        let other = open(&path).unwrap();
        let mut st = other.prepare("SELECT name FROM sqlite_master").unwrap();
        let mut rows = st.query([]).unwrap();
        assert!(rows.next().unwrap().is_some());
        assert_eq!(begin_ingest(&conn).unwrap(), Journal::Wal);
        assert_eq!(journal_mode(&conn), "wal");
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    #[test]
    fn version_1_labels_move_into_flows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute_batch(
                "INSERT INTO captures (id, name, path, size) VALUES (1, 'a', '/a', 1);
                 INSERT INTO flows VALUES (1, 1, '10.0.0.1', 1, '10.0.0.2', 2, 1, 2, 2, 2, 120, 0, 5, 6);
                 INSERT INTO flows VALUES (1, 2, '10.0.0.2', 2, '10.0.0.1', 1, 3, 3, NULL, 1, 60, 0, 7, 7);
                 INSERT INTO labels VALUES (1, 1, 'first'), (1, 2, 'second');
                 INSERT INTO frames (capture_id, number, ts_ns, caplen, origlen, iface, file_offset, flow_no)
                 VALUES (1, 1, 5, 60, 60, 0, 24, 1), (1, 2, 6, 60, 60, 0, 100, 1), (1, 3, 7, 60, 60, 0, 176, 2);",
            )
            .unwrap();
        }
        let c = open(&path).unwrap();
        let labels: Vec<(i64, String)> = c
            .prepare("SELECT flow_no, label FROM flows ORDER BY flow_no")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(labels, vec![(1, "first".into()), (2, "second".into())]);
        // The old names still read: the labels view and the index view.
        let index: Vec<(String, String)> = c
            .prepare("SELECT label, frames FROM flow_index WHERE capture_id = 1 ORDER BY closed, position")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            index,
            vec![
                ("second".into(), "3".into()),
                ("first".into(), "1,2".into())
            ]
        );
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM labels JOIN tcp_frames USING (label)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 3);
    }
}
