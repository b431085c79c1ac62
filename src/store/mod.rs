//! SQLite storage: opening a database (schema migrations, journal mode), writing one capture's rows in one
//! transaction ([`CaptureWriter`]), and every SELECT the read side runs ([`read`]).

use rusqlite::Connection;

mod open;
pub mod read;
mod write;

pub use open::{begin_ingest, end_ingest, open, open_read, Journal, SCHEMA_VERSION};
pub use write::{
    delete_capture, known_path, CaptureEnd, CaptureSource, CaptureWriter, FrameRow, Outcome,
    Superseded, TcpRow,
};

/// What went wrong in the database, with the file it happened in.
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

impl StoreError {
    /// A SQLite failure on `conn`'s database, named by its file.
    pub(crate) fn on(conn: &Connection) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: conn.path().unwrap_or("(memory)").to_string(),
            source,
        }
    }
}
