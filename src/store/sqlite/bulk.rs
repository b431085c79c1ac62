//! Multi-row INSERTs of the ingest's rows (frames, flows, connections, endpoints) through SQLite's C API.
//!
//! rusqlite binds every text and blob with `SQLITE_TRANSIENT`: SQLite copies the value into memory it allocates
//! and frees the copy at the next bind. A flow row binds five (its addresses, their sortable keys and its
//! Community ID), and on a SYN scan, whose ingest the writer's thread bounds, those copies and rusqlite's
//! per-value conversions were about a tenth of the writer. Here texts and blobs are bound `SQLITE_STATIC`,
//! pointing into the rows being inserted, and integers go straight to `sqlite3_bind_int64`.
//!
//! Why the pointers are sound: a statement is executed only right after every one of its parameters was bound
//! from the rows of that call ([`Row`] counts them and refuses to execute otherwise), and those rows are
//! borrowed for the whole call. A value bound in an earlier call is never read again: SQLite reads parameters
//! only while the statement steps, and resetting or finalizing a statement does not read `SQLITE_STATIC`
//! values.

use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use rusqlite::{ffi, Connection};

/// Rows per multi-row INSERT: one statement per 64 rows cuts SQLite's per-statement cost (step, reset, VDBE
/// setup), which dominated the writer's profile with one row per statement.
const ROWS_PER_INSERT: usize = 64;

/// Inserts rows into one table with multi-row statements (and a one-row statement for the remainder).
pub(super) struct BulkInsert<'c> {
    many: Stmt<'c>,
    one: Stmt<'c>,
    cols: usize,
}

impl<'c> BulkInsert<'c> {
    /// `target` is `table (col, ...)`; `row` is one row's VALUES list, with a `?` per bound value (the others
    /// are literals, such as the capture's id).
    pub(super) fn new(conn: &'c Connection, target: &str, row: &str) -> rusqlite::Result<Self> {
        let cols = row.matches('?').count();
        let sql = |rows: usize| {
            // OR FAIL: a failing row stops the statement without undoing its earlier rows, so SQLite needs no
            // statement journal (about 10% of ingest CPU); any error rolls back the whole capture anyway.
            let row = format!("({row})");
            format!(
                "INSERT OR FAIL INTO {target} VALUES {}",
                vec![row.as_str(); rows].join(",")
            )
        };
        Ok(BulkInsert {
            many: Stmt::prepare(conn, &sql(ROWS_PER_INSERT))?,
            one: Stmt::prepare(conn, &sql(1))?,
            cols,
        })
    }

    /// Inserts `rows`; `bind` binds one row's values, in the order of the row's `?`s.
    pub(super) fn insert<'r, T>(
        &mut self,
        rows: &'r [T],
        bind: impl Fn(&mut Row<'_, 'r>, &'r T) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let cols = self.cols;
        let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
        for chunk in &mut chunks {
            for (i, r) in chunk.iter().enumerate() {
                Row::bind(&self.many, i * cols, cols, r, &bind)?;
            }
            self.many.execute()?;
        }
        for r in chunks.remainder() {
            Row::bind(&self.one, 0, cols, r, &bind)?;
            self.one.execute()?;
        }
        Ok(())
    }
}

/// One row's parameters of a statement, bound in order. `'r`: the rows being inserted, which texts and blobs
/// point into.
pub(super) struct Row<'s, 'r> {
    stmt: &'s Stmt<'s>,
    /// The next parameter, from 1.
    at: c_int,
    rows: PhantomData<&'r ()>,
}

impl<'s, 'r> Row<'s, 'r> {
    /// Binds one row at parameters `base + 1 ..= base + cols`: all of them, or an error.
    fn bind<T>(
        stmt: &'s Stmt<'s>,
        base: usize,
        cols: usize,
        r: &'r T,
        bind: &impl Fn(&mut Row<'_, 'r>, &'r T) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let first = c_int::try_from(base + 1).map_err(|_| range())?;
        let mut row = Row {
            stmt,
            at: first,
            rows: PhantomData,
        };
        bind(&mut row, r)?;
        // Every parameter bound: none keeps a pointer from an earlier call.
        if row.at as usize != base + 1 + cols {
            return Err(range());
        }
        Ok(())
    }

    fn next(&mut self) -> c_int {
        self.at += 1;
        self.at - 1
    }

    /// An integer.
    pub(super) fn int(&mut self, v: impl Into<i64>) -> rusqlite::Result<()> {
        let i = self.next();
        // SAFETY: a live statement (`Stmt` owns it); an out-of-range index is an error code, not UB.
        self.stmt
            .check(unsafe { ffi::sqlite3_bind_int64(self.stmt.ptr(), i, v.into()) })
    }

    /// An integer or NULL.
    pub(super) fn opt(&mut self, v: Option<impl Into<i64>>) -> rusqlite::Result<()> {
        match v {
            Some(v) => self.int(v),
            None => {
                let i = self.next();
                // SAFETY: as in `int`.
                self.stmt
                    .check(unsafe { ffi::sqlite3_bind_null(self.stmt.ptr(), i) })
            }
        }
    }

    /// A text, not copied: it lives as long as the rows being inserted.
    pub(super) fn text(&mut self, v: &'r str) -> rusqlite::Result<()> {
        self.bytes(v.as_bytes(), true)
    }

    /// A blob, not copied, as `text`.
    pub(super) fn blob(&mut self, v: &'r [u8]) -> rusqlite::Result<()> {
        self.bytes(v, false)
    }

    fn bytes(&mut self, v: &'r [u8], text: bool) -> rusqlite::Result<()> {
        let i = self.next();
        let len = c_int::try_from(v.len()).map_err(|_| too_big())?;
        let (stmt, ptr) = (self.stmt.ptr(), v.as_ptr());
        // SAFETY: as in `int`; `v` outlives this insert call, and the statement is executed only with every
        // parameter bound again (module header), so SQLite reads the pointer only while `v` lives. A text is
        // UTF-8 (`&str`), as `sqlite3_bind_text` takes it.
        let rc = unsafe {
            if text {
                ffi::sqlite3_bind_text(stmt, i, ptr.cast(), len, ffi::SQLITE_STATIC())
            } else {
                ffi::sqlite3_bind_blob(stmt, i, ptr.cast(), len, ffi::SQLITE_STATIC())
            }
        };
        self.stmt.check(rc)
    }
}

/// A prepared statement of the connection `'c`, finalized when dropped.
struct Stmt<'c> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
    conn: PhantomData<&'c Connection>,
}

impl<'c> Stmt<'c> {
    fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Stmt<'c>> {
        let len = c_int::try_from(sql.len()).map_err(|_| too_big())?;
        // SAFETY: the handle of a live connection, used on this thread only while `conn` is borrowed; SQLite
        // writes the statement pointer into `stmt`.
        let db = unsafe { conn.handle() };
        let mut stmt = std::ptr::null_mut();
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db,
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        let me = Stmt {
            stmt: NonNull::new(stmt).ok_or_else(|| failure(db, rc))?,
            db,
            conn: PhantomData,
        };
        me.check(rc)?;
        Ok(me)
    }

    fn ptr(&self) -> *mut ffi::sqlite3_stmt {
        self.stmt.as_ptr()
    }

    /// Runs the statement once (an INSERT returns no row) and resets it for the next rows.
    fn execute(&self) -> rusqlite::Result<()> {
        // SAFETY: a live statement, all of whose parameters `Row::bind` has just bound.
        let rc = unsafe { ffi::sqlite3_step(self.ptr()) };
        let done = if rc == ffi::SQLITE_DONE {
            Ok(())
        } else {
            Err(failure(self.db, rc))
        };
        // SAFETY: a live statement; the error, if any, was read above.
        unsafe { ffi::sqlite3_reset(self.ptr()) };
        done
    }

    fn check(&self, rc: c_int) -> rusqlite::Result<()> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(failure(self.db, rc))
        }
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, here; the connection outlives it ('c).
        unsafe { ffi::sqlite3_finalize(self.ptr()) };
    }
}

/// The error SQLite reports for `rc`, with its message, as rusqlite reports it.
fn failure(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: the live connection's handle; the message is copied before any other call on it.
    let (code, msg) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db);
        let msg = ffi::sqlite3_errmsg(db);
        let msg = (!msg.is_null()).then(|| CStr::from_ptr(msg).to_string_lossy().into_owned());
        (code, msg)
    };
    // The connection's code is this failure's unless it is stale (a misuse reports only through rc).
    let code = if code & 0xff == rc & 0xff { code } else { rc };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), msg)
}

fn range() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_RANGE),
        Some("a row bound the wrong number of values (a bug in traceflow)".into()),
    )
}

fn too_big() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of the test table: k, tag, a, b, n.
    type TestRow = (i64, i64, String, Vec<u8>, Option<i64>);

    fn table() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY, tag INTEGER, a TEXT, b BLOB, n INTEGER)",
        )
        .unwrap();
        c
    }

    /// Rows inserted in 64-row statements and one-row ones read back as bound, texts and blobs included, even
    /// when the rows' memory is reused between calls (nothing of an earlier call is read).
    #[test]
    fn rows_read_back_as_bound() {
        let c = table();
        let mut ins = BulkInsert::new(&c, "t (k, tag, a, b, n)", "?, 7, ?, ?, ?").unwrap();
        let mut want = Vec::new();
        for round in 0..3i64 {
            let rows: Vec<(i64, String, Vec<u8>, Option<i64>)> = (0..150)
                .map(|i| {
                    let k = round * 1000 + i;
                    let n = (i % 3 != 0).then_some(k * 3);
                    (
                        k,
                        format!("text {k} {}", "x".repeat(i as usize)),
                        vec![k as u8; i as usize % 5],
                        n,
                    )
                })
                .collect();
            ins.insert(&rows, |p, r| {
                p.int(r.0)?;
                p.text(&r.1)?;
                p.blob(&r.2)?;
                p.opt(r.3)
            })
            .unwrap();
            want.extend(
                rows.iter()
                    .map(|r| (r.0, 7i64, r.1.clone(), r.2.clone(), r.3)),
            );
            drop(rows);
        }
        let mut st = c
            .prepare("SELECT k, tag, a, b, n FROM t ORDER BY k")
            .unwrap();
        let got: Vec<TestRow> = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want);
    }

    /// A row that binds too few or too many values is refused before the statement runs.
    #[test]
    fn a_row_binding_the_wrong_count_is_refused() {
        let c = table();
        let mut ins = BulkInsert::new(&c, "t (k, tag, a, b, n)", "?, 7, ?, ?, ?").unwrap();
        let rows = [(1i64, "a")];
        let short = ins.insert(&rows, |p, r| {
            p.int(r.0)?;
            p.text(r.1)
        });
        assert!(short.is_err());
        let long = ins.insert(&rows, |p, r| {
            p.int(r.0)?;
            p.text(r.1)?;
            p.blob(b"b")?;
            p.opt(Some(1))?;
            p.int(5)
        });
        assert!(long.is_err());
        let n: i64 = c
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    /// SQLite's errors come back as rusqlite reports them: a duplicate key is a constraint failure.
    #[test]
    fn a_constraint_failure_is_sqlites_error() {
        let c = table();
        let mut ins = BulkInsert::new(&c, "t (k, tag, a, b, n)", "?, 7, ?, ?, ?").unwrap();
        let rows = [(1i64, "a"), (1, "b")];
        let err = ins
            .insert(&rows, |p, r| {
                p.int(r.0)?;
                p.text(r.1)?;
                p.blob(b"")?;
                p.opt(None::<i64>)
            })
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation),
            "{err}"
        );
    }
}
