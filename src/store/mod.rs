//! Storage: opening a database (SQLite file or PostgreSQL URL, schema migrations, journal mode), writing one
//! capture's rows in one transaction ([`Writer`]), and every SELECT the read side runs ([`read`]).
//!
//! [`Db`] is the one place that knows which database it talks to. It is an enum, not a trait object: there are
//! exactly two backends, both known when traceflow is built, and each read function shows the two SQL dialects
//! side by side (`match db`) instead of hiding one behind a vtable. The ingest pipeline, query and dump code take
//! a `&Db` and never look inside it.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

mod bulk;
mod open;
pub mod pg;
mod prefetch;
pub mod read;
pub mod rebuild;
mod write;

pub use open::{
    begin_ingest, end_ingest, lock_wait_reset, lock_waited, open, open_read, Journal,
    SCHEMA_VERSION,
};
pub use write::{
    delete_capture, forget, known_path, CaptureEnd, CaptureSource, CaptureWriter, Forgotten,
    FrameRow, Outcome, Superseded, TcpRow,
};

/// A traceflow database: a SQLite file or a PostgreSQL database.
pub enum Db {
    /// A SQLite file.
    Sqlite(Connection),
    /// A PostgreSQL database.
    Postgres(Box<pg::Pg>),
}

/// Where `--db` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A `postgresql://` or `postgres://` URL.
    Postgres(String),
}

impl Target {
    /// A `postgresql://` or `postgres://` URL selects PostgreSQL; anything else is a SQLite path.
    pub fn of(db: &Path) -> Target {
        match db.to_str() {
            Some(s) if pg::is_url(s) => Target::Postgres(s.to_string()),
            _ => Target::Sqlite(db.to_path_buf()),
        }
    }

    /// How messages name it (a URL without its password).
    pub fn shown(&self) -> String {
        match self {
            Target::Sqlite(p) => p.display().to_string(),
            Target::Postgres(u) => pg::redact(u),
        }
    }
}

impl Db {
    /// Opens (creating if needed) a database for writing, bringing its schema up to date.
    pub fn open(target: &Target) -> Result<Db, StoreError> {
        Ok(match target {
            Target::Sqlite(p) => Db::Sqlite(open(p)?),
            Target::Postgres(u) => Db::Postgres(Box::new(pg::connect(u, true)?)),
        })
    }

    /// Opens an existing database for reading; it must have this build's schema.
    pub fn open_read(target: &Target) -> Result<Db, StoreError> {
        Ok(match target {
            Target::Sqlite(p) => Db::Sqlite(open_read(p)?),
            Target::Postgres(u) => Db::Postgres(Box::new(pg::connect(u, false)?)),
        })
    }

    /// The SQLite connection, for the commands that PostgreSQL cannot run yet.
    pub fn sqlite(&self) -> Option<&Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres(_) => None,
        }
    }

    /// Looks up a capture already indexed from this exact path with the same size and mtime (cheap skip).
    pub fn known_path(&self, src: &CaptureSource) -> Result<Option<(i64, String)>, StoreError> {
        match self {
            Db::Sqlite(c) => known_path(c, src).map_err(StoreError::on(c)),
            Db::Postgres(p) => p
                .client
                .borrow_mut()
                .query_opt(
                    "SELECT c.id, c.name FROM capture_paths p JOIN captures c ON c.id = p.capture_id
                     WHERE p.path = $1 AND p.size = $2 AND p.mtime_ns IS NOT DISTINCT FROM $3",
                    &[&src.path, &(src.size as i64), &src.mtime_ns],
                )
                .and_then(|r| r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose())
                .map_err(p.err()),
        }
    }
}

/// Writes one capture in one transaction, on either backend (see [`CaptureWriter`]).
pub enum Writer<'c> {
    /// Into SQLite.
    Sqlite(Box<CaptureWriter<'c>>),
    /// Into PostgreSQL.
    Postgres(Box<pg::write::PgWriter<'c>>),
}

impl<'c> Writer<'c> {
    /// Starts a capture read from `src`: its `captures` row, inside a new transaction.
    pub fn begin(
        db: &'c Db,
        src: &CaptureSource,
        force: bool,
        embed: bool,
    ) -> Result<Writer<'c>, StoreError> {
        Ok(match db {
            Db::Sqlite(c) => Writer::Sqlite(Box::new(CaptureWriter::begin(c, src, force, embed)?)),
            Db::Postgres(p) => {
                Writer::Postgres(Box::new(pg::write::PgWriter::begin(p, src, force, embed)?))
            }
        })
    }

    /// Writes frames, the flows closed meanwhile, and (with --embed) the frames' bytes in frame order.
    pub fn add(
        &mut self,
        frames: &[FrameRow],
        flows: &[crate::trace::FlowRecord],
        data: &[u8],
    ) -> Result<(), StoreError> {
        match self {
            Writer::Sqlite(w) => w.add(frames, flows, data),
            Writer::Postgres(w) => w.add(frames, flows, data),
        }
    }

    /// Writes connections.
    pub fn add_connections(&mut self, conns: &[crate::conn::ConnRecord]) -> Result<(), StoreError> {
        match self {
            Writer::Sqlite(w) => w.add_connections(conns),
            Writer::Postgres(w) => w.add_connections(conns),
        }
    }

    /// Adds an endpoint tally to the capture's.
    pub fn add_endpoints(
        &mut self,
        rows: &[crate::trace::endpoints::EndpointRow],
    ) -> Result<(), StoreError> {
        match self {
            Writer::Sqlite(w) => w.add_endpoints(rows),
            Writer::Postgres(w) => w.add_endpoints(rows),
        }
    }

    /// Stores parts of the capture's flow bucket lists.
    pub fn add_buckets(
        &mut self,
        rows: &[crate::trace::buckets::BucketRow],
    ) -> Result<(), StoreError> {
        match self {
            Writer::Sqlite(w) => w.add_buckets(rows),
            Writer::Postgres(w) => w.add_buckets(rows),
        }
    }

    /// Records the Community ID seed the capture's flows and connections were made with.
    pub fn set_community_id_seed(&mut self, seed: u16) -> Result<(), StoreError> {
        match self {
            Writer::Sqlite(w) => w.set_community_id_seed(seed),
            Writer::Postgres(w) => w.set_community_id_seed(seed),
        }
    }

    /// Completes the capture and commits.
    pub fn finish(self, end: CaptureEnd) -> Result<Outcome, StoreError> {
        match self {
            Writer::Sqlite(w) => (*w).finish(end),
            Writer::Postgres(w) => w.finish(end),
        }
    }
}

/// What went wrong in the database, with the file it happened in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A PostgreSQL URL that does not parse.
    #[error("--db {url} is not a PostgreSQL URL traceflow can use: {msg} (postgresql://USER@HOST:PORT/DATABASE, or postgresql:///DATABASE?host=/SOCKET/FOLDER)")]
    PgUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        msg: String,
    },
    /// Connecting to PostgreSQL failed.
    #[error("cannot connect to PostgreSQL at {url}: {msg}; {hint}")]
    PgConnect {
        /// The URL, password hidden.
        url: String,
        /// The driver's message.
        msg: String,
        /// What to check.
        hint: &'static str,
    },
    /// A PostgreSQL failure after connecting.
    #[error("database {url}: {msg}")]
    Postgres {
        /// The URL, password hidden.
        url: String,
        /// The server's or driver's message.
        msg: String,
    },
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
    #[error(
        "{path} is a database but not traceflow's (it has tables of its own); give another --db"
    )]
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
