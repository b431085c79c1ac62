//! What can go wrong in the store: [`StoreError`] for opening and writing (it names the database), [`QueryError`]
//! for the reads.

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
    /// `ingest --connections` on a database that cannot be written.
    #[error(
        "database {path} is read-only, so its connections cannot be built here: run `traceflow ingest \
         --connections` on a writable copy"
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

/// Why a read of the database failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No capture has that id, path or base name.
    #[error("no capture named {0:?} in the database{1} (see `traceflow captures`)")]
    UnknownCapture(String, String),
    /// A base name matches several captures.
    #[error("{name:?} names several captures ({candidates}); give a full path or an id")]
    Ambiguous {
        /// The name given.
        name: String,
        /// The captures it matches, as `id N`, comma-separated.
        candidates: String,
    },
    /// A capture went away while the command read it (`forget`, or a re-ingest that replaced it).
    #[error(
        "capture {0} is no longer in the database: it was forgotten or replaced while this command read it; run \
         the command again (`traceflow captures` lists what is there)"
    )]
    CaptureGone(i64),
    /// A SQLite failure.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL failure.
    #[error("database: {0}")]
    Postgres(#[from] postgres::Error),
    /// A command that runs on SQLite only, for now.
    #[error("{0} is not available on PostgreSQL yet; use a SQLite database (--db FILE) for it")]
    NotOnPostgres(&'static str),
    /// No flow has that label.
    #[error("no flow labelled {label:?}{scope}{hint}")]
    UnknownLabel {
        /// The label given.
        label: String,
        /// ` in capture NAME` when a capture was chosen, else empty.
        scope: String,
        /// The closest labels there are, or a note that there are no flows.
        hint: String,
    },
    /// A label is in several captures and no capture was chosen.
    #[error(
        "flows labelled {label:?} are in several captures ({captures}); choose one with --capture"
    )]
    LabelInSeveralCaptures {
        /// The label given.
        label: String,
        /// The names of the captures that have it.
        captures: String,
    },
    /// The database holds something a traceflow ingest never writes (a broken `prev_in_flow` chain, ...).
    #[error("database: {0}; the database is damaged or was edited (re-ingest the capture)")]
    Corrupt(String),
    /// `--both` on a flow whose frames have no connection (a capture indexed before schema 5).
    #[error("flow {0:?} has no connection recorded: its capture was indexed before traceflow kept connections; re-ingest it with --force")]
    NoConnection(String),
    /// Writing the results failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// A request that means nothing (a `--sort` groups cannot take): the message says what to ask instead.
    #[error("{0}")]
    Usage(String),
}

impl From<crate::trace::twoway::TwoWayError> for QueryError {
    fn from(e: crate::trace::twoway::TwoWayError) -> QueryError {
        match e {
            crate::trace::twoway::TwoWayError::Address(..) => QueryError::Corrupt(e.to_string()),
            // The temporary files' failure, with the folder to change.
            crate::trace::twoway::TwoWayError::Spill(s) => {
                QueryError::Output(std::io::Error::other(s.to_string()))
            }
        }
    }
}
