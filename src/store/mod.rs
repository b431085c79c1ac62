//! Storage: opening a database (a SQLite file or a PostgreSQL URL), writing one capture's rows in one
//! transaction ([`Writer`]), and every read the commands make ([`read`]).
//!
//! The commands talk to a [`Db`] through one contract ([`backend`]): the [`Backend`] trait holds every read, a
//! [`CaptureSink`] the writer's calls, and [`Caps`] what differs between the databases that callers act on.
//! SQLite lives in `sqlite/`, PostgreSQL in `postgres/`; the shared types ([`types`], [`rows`]), the row
//! abstraction ([`row`]), the query planner ([`plan`]), the threaded count ([`count`]) and the time-ordered
//! merge with its prefetch ([`merge`], [`prefetch`]) are the store's own. Nothing above `store` names a backend.

use std::ops::Deref;
use std::path::{Path, PathBuf};

pub mod backend;
mod count;
mod error;
mod group_tally;
mod merge;
pub mod page;
mod plan;
pub mod postgres;
mod prefetch;
pub mod read;
pub mod retention;
mod row;
pub mod rows;
mod sink;
mod sqlite;
pub mod types;

pub use backend::{Backend, Caps, CaptureSink};
pub use error::{QueryError, StoreError};
pub use postgres::PG_SCHEMA_VERSION;
pub use sink::{
    CaptureEnd, CaptureSource, Forgotten, FrameRow, Journal, Outcome, Superseded, TcpRow,
};
pub use sqlite::{lock_wait_reset, lock_waited, SCHEMA_VERSION};

/// A traceflow database: a SQLite file or a PostgreSQL database, behind the [`Backend`] contract.
pub enum Db {
    /// A SQLite file.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL database.
    Postgres(Box<postgres::Pg>),
}

impl Deref for Db {
    type Target = dyn Backend;
    fn deref(&self) -> &(dyn Backend + 'static) {
        match self {
            Db::Sqlite(c) => c,
            Db::Postgres(p) => &**p,
        }
    }
}

impl From<rusqlite::Connection> for Db {
    fn from(c: rusqlite::Connection) -> Db {
        Db::Sqlite(c)
    }
}

impl From<postgres::Pg> for Db {
    fn from(p: postgres::Pg) -> Db {
        Db::Postgres(Box::new(p))
    }
}

impl Db {
    /// The SQLite connection (until the ingest asks [`Backend`] for what it needs).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres(_) => None,
        }
    }
}

pub use sqlite::{begin_ingest, end_ingest, open, open_read};

/// Stops the query a [`Db`] is running from another thread (a web client went away, or its deadline passed):
/// SQLite's interrupt, PostgreSQL's cancel request.
pub enum Interrupter {
    /// `sqlite3_interrupt` on the connection.
    Sqlite(rusqlite::InterruptHandle),
    /// A cancel request on its own connection to the server.
    Postgres(::postgres::CancelToken),
}

impl Interrupter {
    /// Asks the query under way (if any) to stop; it then fails with an interrupted error.
    pub fn interrupt(&self) {
        match self {
            Interrupter::Sqlite(h) => h.interrupt(),
            Interrupter::Postgres(t) => {
                // The cancel request connects to the server (blocking, on a runtime of its own), so it runs on a
                // thread of its own; one that cannot reach the server leaves the query to its deadline.
                let t = t.clone();
                std::thread::spawn(move || {
                    let _ = t.cancel_query(::postgres::NoTls);
                });
            }
        }
    }
}

impl Db {
    /// Starts a new read snapshot, for a connection kept open across many reads (the web server's): a SQLite
    /// reader holds one snapshot from its first read until it closes, which would hide captures ingested since
    /// and keep the WAL from being checkpointed past it. PostgreSQL's reads take their snapshot per search.
    pub fn renew_snapshot(&self) -> Result<(), QueryError> {
        if let Db::Sqlite(c) = self {
            if !c.is_autocommit() {
                c.execute_batch("ROLLBACK")?;
            }
            c.execute_batch("BEGIN")?;
        }
        Ok(())
    }

    /// Ends the read snapshot [`Db::renew_snapshot`] began, so that an idle connection holds no lock and keeps
    /// no WAL frames from a checkpoint.
    pub fn release_snapshot(&self) {
        if let Db::Sqlite(c) = self {
            if !c.is_autocommit() {
                let _ = c.execute_batch("ROLLBACK");
            }
        }
    }

    /// What stops this database's running query from another thread.
    pub fn interrupter(&self) -> Interrupter {
        match self {
            Db::Sqlite(c) => Interrupter::Sqlite(c.get_interrupt_handle()),
            Db::Postgres(p) => Interrupter::Postgres(p.client.borrow().cancel_token()),
        }
    }
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
            Some(s) if postgres::is_url(s) => Target::Postgres(s.to_string()),
            _ => Target::Sqlite(db.to_path_buf()),
        }
    }

    /// How messages name it (a URL without its password).
    pub fn shown(&self) -> String {
        match self {
            Target::Sqlite(p) => p.display().to_string(),
            Target::Postgres(u) => postgres::redact(u),
        }
    }

    /// Whether there may be a database there: a SQLite file must exist (a typo must not create one), a server
    /// is asked when connecting.
    pub fn may_exist(&self) -> bool {
        match self {
            Target::Sqlite(p) => p.exists(),
            Target::Postgres(_) => true,
        }
    }

    /// Builds the connections of every capture that has none, from its frame rows (`ingest --connections`),
    /// and returns for how many captures. PostgreSQL has them from the ingest ([`Caps::connections_at_ingest`]).
    /// The read commands never build them: they say which captures lack them ([`Backend::captures_without_connections`]).
    pub fn build_connections(&self) -> Result<usize, StoreError> {
        match self {
            Target::Sqlite(p) => sqlite::connections::ensure(p),
            Target::Postgres(_) => Ok(0),
        }
    }
}

impl Db {
    /// Opens (creating if needed) a database for writing, bringing its schema up to date.
    pub fn open(target: &Target) -> Result<Db, StoreError> {
        Ok(match target {
            Target::Sqlite(p) => Db::from(sqlite::open(p)?),
            Target::Postgres(u) => Db::from(postgres::connect(u, true)?),
        })
    }

    /// Opens an existing database for reading; it must have this build's schema.
    pub fn open_read(target: &Target) -> Result<Db, StoreError> {
        Ok(match target {
            Target::Sqlite(p) => Db::from(sqlite::open_read(p)?),
            Target::Postgres(u) => Db::from(postgres::connect(u, false)?),
        })
    }
}

/// Writes one capture in one transaction, on either backend (see [`CaptureSink`]).
pub struct Writer<'c>(Box<dyn CaptureSink + 'c>);

impl<'c> Writer<'c> {
    /// Starts a capture read from `src`: its `captures` row, inside a new transaction.
    pub fn begin(
        db: &'c Db,
        src: &CaptureSource,
        force: bool,
        embed: bool,
    ) -> Result<Writer<'c>, StoreError> {
        Ok(Writer(db.begin_capture(src, force, embed)?))
    }

    /// Writes frames, the flows closed meanwhile, and (with --embed) the frames' bytes in frame order.
    pub fn add(
        &mut self,
        frames: &[FrameRow],
        flows: &[crate::trace::FlowRecord],
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.0.add(frames, flows, data)
    }

    /// Writes connections.
    pub fn add_connections(&mut self, conns: &[crate::conn::ConnRecord]) -> Result<(), StoreError> {
        self.0.add_connections(conns)
    }

    /// Adds an endpoint tally to the capture's.
    pub fn add_endpoints(
        &mut self,
        rows: &[crate::trace::endpoints::EndpointRow],
    ) -> Result<(), StoreError> {
        self.0.add_endpoints(rows)
    }

    /// Stores parts of the capture's flow bucket lists.
    pub fn add_buckets(
        &mut self,
        rows: &[crate::trace::buckets::BucketRow],
    ) -> Result<(), StoreError> {
        self.0.add_buckets(rows)
    }

    /// Records the Community ID seed the capture's flows and connections were made with.
    pub fn set_community_id_seed(&mut self, seed: u16) -> Result<(), StoreError> {
        self.0.set_community_id_seed(seed)
    }

    /// Completes the capture and commits.
    pub fn finish(self, end: CaptureEnd) -> Result<Outcome, StoreError> {
        self.0.finish(end)
    }
}

/// Deletes the captures `ids` and all their rows in one transaction: all of them go, or none.
pub fn forget(db: &Db, ids: &[i64]) -> Result<Forgotten, StoreError> {
    db.forget(ids)
}
