//! SQLite storage: opening a database (schema migrations, journal mode), writing one capture's rows in one
//! transaction ([`CaptureWriter`]), and every SELECT the read side runs ([`read`]).

use rusqlite::Connection;

mod open;
pub mod read;
mod write;

pub use open::{
    begin_ingest, end_ingest, lock_wait_reset, lock_waited, open, open_read, Journal,
    SCHEMA_VERSION,
};
pub use write::{
    delete_capture, forget, known_path, CaptureEnd, CaptureSource, CaptureWriter, Forgotten,
    FrameRow, Outcome, Superseded, TcpRow,
};

/// What went wrong in the database, with the file it happened in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A SQLite failure.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Upgrading the schema to this traceflow's version failed (the database keeps its old version).
    #[error(
        "database {path}: upgrading the schema from version {from} to {to} failed at migration {at}: {msg}"
    )]
    Migration {
        /// The database file.
        path: String,
        /// Schema version found.
        from: usize,
        /// Schema version wanted (`SCHEMA_VERSION`).
        to: usize,
        /// The migration that failed, numbered from 1 as in migrations/.
        at: usize,
        /// SQLite's message.
        msg: String,
    },
    /// The database was written by a newer traceflow.
    #[error(
        "database {path} has schema version {found}, newer than this traceflow knows ({known}): use a newer \
         traceflow"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Its schema version.
        found: usize,
        /// The newest version this traceflow knows (`SCHEMA_VERSION`).
        known: usize,
    },
    /// Reading a database that needs a migration; only an ingest migrates.
    #[error(
        "database {path} has schema version {found}, older than this traceflow's {known}: run an ingest into it \
         (`traceflow --db {path} ingest CAPTURE`), which upgrades it"
    )]
    TooOld {
        /// The database file.
        path: String,
        /// Its schema version.
        found: usize,
        /// This traceflow's version (`SCHEMA_VERSION`).
        known: usize,
    },
    /// The file is a SQLite database with tables but no traceflow schema.
    #[error("{path} is a SQLite database but not traceflow's (it has tables of its own); give another --db")]
    NotTraceflow {
        /// The database file.
        path: String,
    },
    /// `--db` names a folder.
    #[error("database {path} is a folder; give a file name (--db FOLDER/NAME.db)")]
    Folder {
        /// The path given.
        path: String,
    },
    /// Connections are built at their first use, and this database cannot be written.
    #[error(
        "database {path} is read-only, and its connections are built at their first use: run this once on a \
         writable copy, or ingest with `traceflow ingest --connections` so that they are stored while reading"
    )]
    ConnectionsReadOnly {
        /// The database path.
        path: String,
    },
    /// Reading a database that does not exist or holds no schema yet.
    #[error(
        "no database at {path} (index captures first: traceflow --db {path} ingest CAPTURE...)"
    )]
    Missing {
        /// The database path.
        path: String,
    },
}

impl StoreError {
    /// A SQLite failure on `conn`'s database, named by its file.
    pub(crate) fn on(conn: &Connection) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: conn.path().unwrap_or("(memory)").to_string(),
            source,
        }
    }
}
