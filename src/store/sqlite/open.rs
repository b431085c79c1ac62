//! Opening a database: creating it, migrating its schema under the write lock, read-only opens for the read
//! commands, and the journal mode an ingest writes with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::store::error::StoreError;
use crate::store::sink::Journal;

/// The schema, one SQL script per version, applied in order. Append-only: a shipped migration never changes.
pub(super) const MIGRATIONS: [&str; 12] = [
    include_str!("../../../migrations/0001_init.sql"),
    include_str!("../../../migrations/0002_label_in_flows.sql"),
    include_str!("../../../migrations/0003_flow_search.sql"),
    include_str!("../../../migrations/0004_views.sql"),
    include_str!("../../../migrations/0005_connections.sql"),
    include_str!("../../../migrations/0006_forget.sql"),
    include_str!("../../../migrations/0007_endpoints.sql"),
    include_str!("../../../migrations/0008_flow_buckets.sql"),
    include_str!("../../../migrations/0009_label_derived.sql"),
    include_str!("../../../migrations/0010_flow_index_by_capture.sql"),
    include_str!("../../../migrations/0011_zeek_bytes.sql"),
    include_str!("../../../migrations/0012_connection_search.sql"),
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
    if path.is_dir() {
        return Err(StoreError::Folder { path: p });
    }
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
    // A second writer waits instead of failing, and says once that it waits (`wait_for_lock`).
    conn.busy_handler(Some(wait_for_lock)).map_err(sq)?;
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
        label_view(&conn).map_err(sq)?;
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
    label_view(&conn).map_err(sq)?;
    Ok(conn)
}

/// `flows` for traceflow's own SQL: a temporary view over `flow_rows` that hides the schema's view of the same name
/// (SQLite looks names up in `temp` first) and builds a label stored as '' in Rust ([`view_label`]).
/// The schema's view builds it with SQLite's string functions, about 2 us a row: listing a scan's 833k flows took
/// 1.45x as long through it. Both give the same text (tested). The listing's hot path reads `stored_label`, the
/// column as stored, and fills it in while it decodes the row ([`flow_columns_sqlite`]), which spares it the call
/// from SQLite into Rust and back (1.3x the listing's time).
///
/// [`flow_columns_sqlite`]: super::search::FLOW_COLUMNS_SQLITE
///
/// [`view_label`]: crate::key::label::view_label
fn label_view(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "traceflow_label",
        6,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = |i| match ctx.get_raw(i) {
                ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(""),
                _ => "",
            };
            let stored = text(0);
            if !stored.is_empty() {
                return Ok(Some(stored.to_string()));
            }
            let (sport, dport, first_ns): (i64, i64, i64) = (ctx.get(2)?, ctx.get(4)?, ctx.get(5)?);
            // A row the ingest wrote always has ports of 16 bits; a row made by hand that does not has no label.
            Ok(match (u16::try_from(sport), u16::try_from(dport)) {
                (Ok(sp), Ok(dp)) => {
                    crate::key::label::view_label(text(1), sp, text(3), dp, first_ns)
                }
                _ => None,
            })
        },
    )?;
    conn.execute_batch(
        "CREATE TEMP VIEW IF NOT EXISTS flows AS
         SELECT capture_id, flow_no, traceflow_label(label, src, sport, dst, dport, first_ns) AS label, src, sport, dst,
                dport, first_frame, last_frame, closed_frame, packets, bytes, payload_bytes, first_ns, last_ns, flags,
                src_key, dst_key, community_id, label AS stored_label
         FROM main.flow_rows",
    )
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
    // 0003 fills the new address keys of the flows already stored with this function.
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
    )
    .map_err(sq)?;
    // 0005 gives the flows already stored their Community ID (seed 0) with this one.
    conn.create_scalar_function(
        "traceflow_community_id",
        5,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let (src, dst): (String, String) = (ctx.get(0)?, ctx.get(2)?);
            let (sport, dport, seed): (u16, u16, u16) = (ctx.get(1)?, ctx.get(3)?, ctx.get(4)?);
            Ok(match (src.parse(), dst.parse()) {
                (Ok(s), Ok(d)) => Some(crate::key::community_id(seed, s, sport, d, dport)),
                _ => None,
            })
        },
    )
    .map_err(sq)?;
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
    if path.is_dir() {
        return Err(StoreError::Folder { path: p });
    }
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
    let immutable = || {
        let uri = immutable_uri(path).map_err(sq)?;
        let c = Connection::open_with_flags(uri, flags).map_err(sq)?;
        let v = user_version(&c).map_err(sq)?;
        Ok::<_, StoreError>((c, v))
    };
    let (conn, version) = if must_not_make_wal(path) {
        immutable()?
    } else {
        let first = Connection::open_with_flags(path, flags).and_then(|c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            let v = user_version(&c)?;
            Ok((c, v))
        });
        match first {
            Ok(cv) => cv,
            Err(e) if is_cantopen(&e) => immutable()?,
            Err(e) => return Err(sq(e)),
        }
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
        _ => {
            label_view(&conn).map_err(sq)?;
            // One read transaction for the whole command: a listing reads many pages, and each in its own
            // snapshot showed part of a capture that `forget` deleted meanwhile. Its first read pins the
            // snapshot; it is never committed (nothing is written), and ends when the connection closes.
            conn.execute_batch("BEGIN").map_err(sq)?;
            user_version(&conn).map_err(sq)?;
            Ok(conn)
        }
    }
}

/// Whether a reader must open `path` as immutable: a WAL database without a `-wal` file (no writer has it open)
/// that this user may not write, or in a folder it may not write. Opened the usual way, SQLite would create
/// `-wal` and `-shm` files owned by this user in a folder anyone may write (such as a sticky /tmp), and the
/// database's owner could then not write them: its next ingest failed "attempt to write a readonly database".
fn must_not_make_wal(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    let wal_mode = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head.starts_with(b"SQLite format 3\0") && head[18] == 2);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if !wal_mode || Path::new(&wal).exists() {
        return false;
    }
    let writable = |p: &Path| {
        rustix::fs::accessat(
            rustix::fs::CWD,
            p,
            rustix::fs::Access::WRITE_OK,
            rustix::fs::AtFlags::EACCESS,
        )
        .is_ok()
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    !writable(path) || !writable(dir)
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

/// Nanoseconds this process spent waiting for another's write lock (an ingest's run time leaves them out).
static LOCK_WAITED_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Whether "waiting for another writer" was said already in this process.
static LOCK_WAIT_SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The busy handler of writing connections: SQLite calls it while another connection holds the lock, with the
/// number of times it was called for this lock. It sleeps a little longer each time (1 ms up to 100 ms), says
/// once per process that it waits, and gives up after `BUSY_TIMEOUT` of one wait.
fn wait_for_lock(calls: i32) -> bool {
    use std::sync::atomic::Ordering;
    if calls == 0 && !LOCK_WAIT_SAID.swap(true, Ordering::Relaxed) {
        // SQLite does not record which process holds its lock, nor what it runs: name every writer there is.
        crate::msg::say(
            "waiting for another writer (ingest, forget or a connection build) to finish (the database is locked)",
        );
    }
    let step = Duration::from_millis(u64::from(calls.clamp(0, 99).unsigned_abs()) + 1);
    // calls * (calls + 1) / 2 ms slept so far, up to 100 ms a step after that.
    let slept_ms = if calls < 100 {
        let c = u64::from(calls.unsigned_abs());
        c * (c + 1) / 2
    } else {
        4950 + (u64::from(calls.unsigned_abs()) - 100) * 100
    };
    if Duration::from_millis(slept_ms) >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(step);
    LOCK_WAITED_NS.fetch_add(step.as_nanos() as u64, Ordering::Relaxed);
    true
}

/// Starts counting the time waited for other processes' locks from zero (at the start of an ingest).
pub fn lock_wait_reset() {
    LOCK_WAITED_NS.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// The time waited for other processes' locks since `lock_wait_reset`.
pub fn lock_waited() -> Duration {
    Duration::from_nanos(LOCK_WAITED_NS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Chooses the journal for an ingest. An empty database (no capture yet) whose first capture is big (`bulk`) is
/// bulk-loaded with a rollback journal:
/// pages added to the file are written once, straight into it, where WAL writes them twice (to the log, then the
/// checkpoint copies them) and then waits for the checkpoint's fsync. On the benchmark capture that is 1.05 s ->
/// 0.8 s. The price is that a reader opening the database meanwhile waits for the capture being written to
/// commit; with nothing indexed yet there is nothing to read anyway. A database that already holds captures is
/// written in WAL, so readers keep working while it grows. Call `end_ingest` afterwards.
///
/// `bulk` says whether the first capture is worth it (a big one): for a run of small captures, each commit with a
/// rollback journal costs three fsyncs and WAL none, so a folder of 205 small files loaded 5-10x slower in bulk
/// (827 fsyncs against 13).
pub fn begin_ingest(conn: &Connection, bulk: bool) -> rusqlite::Result<Journal> {
    let empty: bool = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM captures)", [], |r| {
        r.get(0)
    })?;
    if empty && bulk {
        // Leaving WAL needs the database to ourselves; if someone has it open, don't wait for them: use WAL.
        conn.busy_timeout(Duration::ZERO)?;
        let mode: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0));
        conn.busy_handler(Some(wait_for_lock))?;
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
        assert_eq!(begin_ingest(&conn, true).unwrap(), Journal::BulkLoad);
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
    fn an_empty_database_is_written_in_wal_when_its_first_capture_is_small() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        assert_eq!(begin_ingest(&conn, false).unwrap(), Journal::Wal);
        assert_eq!(journal_mode(&conn), "wal");
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
        assert_eq!(begin_ingest(&conn, true).unwrap(), Journal::Wal);
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
        assert_eq!(begin_ingest(&conn, true).unwrap(), Journal::Wal);
        assert_eq!(journal_mode(&conn), "wal");
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// A database as the previous release wrote it (version 2) gains the search columns, filled from its rows.
    #[test]
    fn version_2_flows_get_their_keys_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.execute_batch(MIGRATIONS[1]).unwrap();
            c.pragma_update(None, "user_version", 2).unwrap();
            c.execute_batch(
                "INSERT INTO captures (id, name, path, size) VALUES (1, 'a', '/a', 1);
                 INSERT INTO flows VALUES (1, 1, 'l1', '10.0.0.1', 1, '2001:db8::5', 2, 1, 3, 3, 2, 120, 0, 5, 6);
                 INSERT INTO flows VALUES (1, 2, 'l2', '10.0.0.2', 2, '10.0.0.1', 1, 2, 2, NULL, 1, 60, 0, 7, 7);
                 INSERT INTO frames (capture_id, number, ts_ns, caplen, origlen, iface, file_offset, flow_no, tcp_flags)
                 VALUES (1, 1, 5, 60, 60, 0, 24, 1, 2), (1, 2, 6, 60, 60, 0, 100, 2, 4),
                        (1, 3, 7, 60, 60, 0, 176, 1, 17);",
            )
            .unwrap();
        }
        let c = open(&path).unwrap();
        let rows: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = c
            .prepare("SELECT flow_no, flags, src_key, dst_key FROM flows ORDER BY flow_no")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = |s: &str| crate::key::addr_key(&s.parse().unwrap()).to_vec();
        assert_eq!(
            rows,
            vec![
                (1, 0x13, key("10.0.0.1"), key("2001:db8::5")),
                (2, 0x04, key("10.0.0.2"), key("10.0.0.1"))
            ]
        );
        assert_eq!(user_version(&c).unwrap(), SCHEMA_VERSION);
    }

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

    /// Version 8 to 9: `flows` becomes a view over the renamed table. Labels stored before read the same through
    /// both `flows` views (the schema's and traceflow's), a user's index on `flows` survives on `flow_rows`, a
    /// user's view naming `flows` still reads labels, and deleting a capture still deletes its flows.
    #[test]
    fn version_8_flows_become_a_view_that_keeps_indexes_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v8.db");
        {
            let c = Connection::open(&path).unwrap();
            // 0003 and 0005 call these on the rows there are: none yet.
            for (name, n) in [("traceflow_addr_key", 1), ("traceflow_community_id", 5)] {
                c.create_scalar_function(
                    name,
                    n,
                    rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                    |_| Ok(None::<String>),
                )
                .unwrap();
            }
            for m in &MIGRATIONS[..8] {
                c.execute_batch(m).unwrap();
            }
            c.pragma_update(None, "user_version", 8).unwrap();
            c.execute_batch(
                "INSERT INTO captures (id, name, path, size) VALUES (1, 'a', '/a', 1), (2, 'b', '/b', 1);
                 INSERT INTO flows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame,
                                    closed_frame, packets, bytes, payload_bytes, first_ns, last_ns)
                 VALUES (1, 1, 'kept-as-stored', '10.0.0.1', 1, '10.0.0.2', 2, 1, 2, 2, 2, 120, 0, 5, 6),
                        (2, 1, 'other', '10.0.0.3', 3, '10.0.0.4', 4, 1, 1, NULL, 1, 60, 0, 7, 7);
                 CREATE INDEX my_dport ON flows (dport);
                 CREATE VIEW my_labels AS SELECT label FROM flows WHERE capture_id = 1;",
            )
            .unwrap();
        }
        let c = open(&path).unwrap();
        assert_eq!(user_version(&c).unwrap(), SCHEMA_VERSION);
        let on: String = c
            .query_row(
                "SELECT tbl_name FROM sqlite_schema WHERE name = 'my_dport'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(on, "flow_rows");
        for sql in [
            "SELECT label FROM flows WHERE capture_id = 1",
            "SELECT label FROM main.flows WHERE capture_id = 1",
            "SELECT label FROM my_labels",
        ] {
            let l: String = c.query_row(sql, [], |r| r.get(0)).unwrap();
            assert_eq!(l, "kept-as-stored", "{sql}");
        }
        // A row written from now on stores '': the user's view names `flows`, the view, so it reads the label
        // (with the rename's default rewriting, it would name flow_rows and read '').
        c.execute(
            "INSERT INTO flow_rows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame,
                                    packets, bytes, payload_bytes, first_ns, last_ns)
             VALUES (1, 2, '', '10.0.0.1', 1, '10.0.0.2', 2, 3, 3, 1, 60, 0, 1700000000000020000, 1700000000000020000)",
            [],
        )
        .unwrap();
        let mine: Vec<String> = c
            .prepare("SELECT label FROM my_labels ORDER BY label")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            mine,
            ["10.0.0.1_1-10.0.0.2_2-1700000000.00002", "kept-as-stored"]
        );
        c.execute("DELETE FROM captures WHERE id = 1", []).unwrap();
        let left: Vec<i64> = c
            .prepare("SELECT capture_id FROM flow_rows")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, vec![2]);
    }

    /// The label a row stored as '' reads as: the schema's `flows` view (SQLite's string functions, what sqlite3
    /// or Datasette see), traceflow's temporary view (`traceflow_label`) and the listing's decoder
    /// (`view_label`) must write the same text, for any address, port and time from 1970 on.
    #[test]
    fn the_schema_view_and_rust_derive_the_same_label() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("v.db")).unwrap();
        c.execute(
            "INSERT INTO captures (id, name, path, size) VALUES (1, 'a', '/a', 1)",
            [],
        )
        .unwrap();
        let addrs = [
            "10.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "2001:db8::1",
            "::",
            "::ffff:192.0.2.1",
            "fe80::1:2:3:4",
        ];
        let mut times = vec![
            0i64,
            1,
            999,
            1000,
            999_999_999,
            1_000_000_000,
            1_700_000_000_000_000_000,
            i64::MAX,
        ];
        // A deterministic spread of times (splitmix64), whole microseconds and not.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let t = (z >> 1) as i64;
            times.push(t);
            times.push(t / 1000 * 1000);
            times.push(t % 4_000_000_000_000_000_000 / 1_000_000 * 1_000_000);
        }
        let mut ins = c
            .prepare(
                "INSERT INTO flow_rows (capture_id, flow_no, label, src, sport, dst, dport, first_frame, last_frame,
                                        packets, bytes, payload_bytes, first_ns, last_ns)
                 VALUES (1, ?1, '', ?2, ?3, ?4, ?5, 1, 1, 1, 60, 0, ?6, ?6)",
            )
            .unwrap();
        for (i, t) in times.iter().enumerate() {
            let (src, dst) = (
                addrs[i % addrs.len()],
                addrs[(i / addrs.len()) % addrs.len()],
            );
            let (sport, dport) = ((i * 7919 % 65536) as i64, (65535 - i % 65536) as i64);
            ins.execute(rusqlite::params![i as i64 + 1, src, sport, dst, dport, t])
                .unwrap();
        }
        let mut st = c
            .prepare(
                "SELECT m.label, t.label, r.src, r.sport, r.dst, r.dport, r.first_ns
                 FROM main.flows m JOIN temp.flows t USING (capture_id, flow_no)
                 JOIN flow_rows r USING (capture_id, flow_no)",
            )
            .unwrap();
        let mut rows = st.query([]).unwrap();
        let mut n = 0;
        while let Some(r) = rows.next().unwrap() {
            let (sql, ours): (String, String) = (r.get(0).unwrap(), r.get(1).unwrap());
            let (src, dst): (String, String) = (r.get(2).unwrap(), r.get(4).unwrap());
            let rust = crate::key::label::view_label(
                &src,
                r.get(3).unwrap(),
                &dst,
                r.get(5).unwrap(),
                r.get(6).unwrap(),
            )
            .unwrap();
            assert_eq!(sql, rust);
            assert_eq!(ours, rust);
            n += 1;
        }
        assert_eq!(n, times.len());
    }
}
