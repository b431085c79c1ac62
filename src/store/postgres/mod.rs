//! PostgreSQL storage: connecting from a `postgresql://` URL, migrating its own schema (`migrations/postgres/`)
//! under an advisory lock, writing captures through binary COPY ([`write`]), the read side's SELECTs ([`read`],
//! frames from their chunks: [`chunks`]) and the searches ([`search`]). Above `store`, nothing knows which
//! database it talks to (see [`super::Db`]).

use std::cell::RefCell;
use std::sync::Mutex;
use std::time::Duration;

use crate::store::error::{QueryError, StoreError};
use crate::store::row::Cols;

mod chunks;
mod conn_search;
mod group;
mod page;
mod read;
mod search;
mod write;

/// PostgreSQL's schema, one SQL script per version, applied in order. Append-only, as SQLite's.
const MIGRATIONS: [&str; 5] = [
    include_str!("../../../migrations/postgres/0001_schema.sql"),
    include_str!("../../../migrations/postgres/0002_frame_chunks.sql"),
    include_str!("../../../migrations/postgres/0003_connection_flow_nos.sql"),
    include_str!("../../../migrations/postgres/0004_zeek_bytes.sql"),
    include_str!("../../../migrations/postgres/0005_connection_search.sql"),
];

/// The PostgreSQL schema version this build writes (`traceflow_schema.version`).
pub const PG_SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Key of the advisory lock that migrations take, so that two processes meeting an empty database do not both
/// create the tables (an arbitrary constant: "traceflo" in ASCII).
const MIGRATION_LOCK: i64 = 0x7472_6163_6566_6c6f;

/// How to cancel what each connection of this process is running on its server (see [`cancel_queries`]).
static CANCEL: Mutex<Vec<postgres::CancelToken>> = Mutex::new(Vec::new());

/// Asks the server of every connection this process opened to cancel the statement it is running, if any: what
/// a command does on SIGINT or SIGTERM, so that its query does not run on without it. Each request is a
/// connection of its own; failures are ignored (the process is going away either way).
pub fn cancel_queries() {
    let tokens = match CANCEL.lock() {
        Ok(t) => t.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for t in tokens {
        let _ = t.cancel_query(postgres::NoTls);
    }
}

/// A connection to a traceflow database on PostgreSQL.
pub struct Pg {
    /// The client; a `RefCell` because the read side shares `&Db` as SQLite's `&Connection` is shared.
    pub(crate) client: RefCell<postgres::Client>,
    /// The URL with any password hidden, for messages.
    pub shown: String,
    /// The URL as given, for more connections (`reconnect`).
    url: String,
    /// Frame chunks read so far (they never change once committed: a capture's rows are only ever deleted).
    pub(crate) cache: RefCell<chunks::ChunkCache>,
}

/// Whether `--db` names a PostgreSQL database (libpq's URL forms) rather than a SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgresql://") || db.starts_with("postgres://")
}

/// The URL with its password (`user:secret@`, `?password=secret`) replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let (a, b) = (scheme_end + 3 + colon + 1, scheme_end + 3 + at);
                out.replace_range(a..b, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k == "password" => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

/// Why connecting failed, in words a user can act on.
fn connect_hint(e: &postgres::Error) -> &'static str {
    use postgres::error::SqlState;
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            "check the user name and password in the URL (or ~/.pgpass)"
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
            "create the database first (createdb NAME), or name another in the URL"
        }
        Some(_) => "see the server's message",
        // traceflow links no TLS library (see README, PostgreSQL): a server or URL that insists on TLS fails here.
        None if causes(e).contains("TLS") => {
            "traceflow connects without TLS: use a Unix socket (?host=/SOCKET/FOLDER), a local tunnel, or sslmode=disable"
        }
        None => "is the server running, and does it listen at that host, port or socket folder?",
    }
}

/// The innermost cause of an error: postgres' Display stops at "error connecting to server".
fn causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut at = e.source();
    while let Some(c) = at {
        let t = c.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        at = c.source();
    }
    s
}

/// Connects to `url`; with `migrate`, creates or upgrades the schema (ingest, forget), else requires this
/// build's version (the read commands).
pub fn connect(url: &str, migrate: bool) -> Result<Pg, StoreError> {
    let shown = redact(url);
    let mut config: postgres::Config =
        url.parse()
            .map_err(|e: postgres::Error| StoreError::PgUrl {
                url: shown.clone(),
                msg: causes(&e),
            })?;
    if config.get_connect_timeout().is_none() {
        // A host that drops packets would otherwise hang the command for minutes.
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("traceflow");
    }
    let mut client = config
        .connect(postgres::NoTls)
        .map_err(|e| StoreError::PgConnect {
            url: shown.clone(),
            msg: causes(&e),
            hint: connect_hint(&e),
        })?;
    let set_by_user = |name: &str| config.get_options().is_some_and(|o| o.contains(name));
    if !set_by_user("jit") {
        // The planner's cost of a correlated subquery run per connection passes jit_above_cost on any capture,
        // and compiling took 0.17-0.3 s of a `connections --count` that then ran 0.3-0.7 s.
        let _ = client.batch_execute("SET jit = off");
    }
    if !set_by_user("client_connection_check_interval") {
        // A killed client (SIGKILL, a lost terminal) sends no cancel request: with this, the server notices the
        // closed socket within a second during a long query and ends it, instead of running it to the end.
        // Servers before 14 do not know the setting, and some platforms refuse it: they keep running.
        let _ = client.batch_execute("SET client_connection_check_interval = '1s'");
    }
    if let Ok(mut tokens) = CANCEL.lock() {
        tokens.push(client.cancel_token());
    }
    let pg = Pg {
        client: RefCell::new(client),
        shown,
        url: url.to_string(),
        cache: RefCell::default(),
    };
    pg.check_schema(migrate)?;
    Ok(pg)
}

impl Pg {
    /// Another connection to the same database, whose schema is already checked: one per writer of an ingest.
    pub fn reconnect(&self) -> Result<Pg, StoreError> {
        connect(&self.url, false)
    }

    /// A failure on this database, named by its URL.
    pub(crate) fn err(&self) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |e| StoreError::Postgres {
            url: self.shown.clone(),
            msg: causes(&e),
        }
    }

    fn version(&self) -> Result<Option<usize>, postgres::Error> {
        let mut c = self.client.borrow_mut();
        let has: bool = c
            .query_one("SELECT to_regclass('traceflow_schema') IS NOT NULL", &[])?
            .try_get(0)?;
        if !has {
            return Ok(None);
        }
        let v: Option<i64> = match c.query_opt("SELECT max(version) FROM traceflow_schema", &[])? {
            Some(r) => r.try_get(0)?,
            None => None,
        };
        Ok(Some(v.unwrap_or(0).max(0) as usize))
    }

    fn check_schema(&self, migrate: bool) -> Result<(), StoreError> {
        let err = self.err();
        let seen = self.version().map_err(&err)?;
        match seen {
            Some(v) if v == PG_SCHEMA_VERSION => return Ok(()),
            Some(v) if v > PG_SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    path: self.shown.clone(),
                    found: v,
                    known: PG_SCHEMA_VERSION,
                })
            }
            None if !migrate => {
                return Err(StoreError::Missing {
                    path: self.shown.clone(),
                })
            }
            Some(v) if !migrate => {
                return Err(StoreError::TooOld {
                    path: self.shown.clone(),
                    found: v,
                    known: PG_SCHEMA_VERSION,
                })
            }
            _ => {}
        }
        let mut c = self.client.borrow_mut();
        let mut tx = c.transaction().map_err(&err)?;
        // Another process may be migrating: wait for it, then read the version again.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(&err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS traceflow_schema (version BIGINT NOT NULL)")
            .map_err(&err)?;
        let from: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM traceflow_schema",
                &[],
            )
            .map_err(&err)?
            .try_get(0)
            .map_err(&err)?;
        if from == 0 {
            // traceflow takes over a database only when it holds no table of that name.
            let theirs: bool = tx
                .query_one("SELECT to_regclass('captures') IS NOT NULL", &[])
                .map_err(&err)?
                .try_get(0)
                .map_err(&err)?;
            if theirs {
                return Err(StoreError::NotTraceflow {
                    path: self.shown.clone(),
                });
            }
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
            tx.batch_execute(sql).map_err(|e| StoreError::Migration {
                path: self.shown.clone(),
                from: from as usize,
                to: PG_SCHEMA_VERSION,
                at: i + 1,
                msg: causes(&e),
            })?;
        }
        tx.execute("DELETE FROM traceflow_schema", &[])
            .map_err(&err)?;
        tx.execute(
            "INSERT INTO traceflow_schema (version) VALUES ($1)",
            &[&(PG_SCHEMA_VERSION as i64)],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)
    }
}

#[test]
fn passwords_are_hidden() {
    assert_eq!(
        redact("postgresql://u:secret@h:5/db?sslmode=x&password=p"),
        "postgresql://u:***@h:5/db?sslmode=x&password=***"
    );
    assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(
        redact("postgresql:///db?host=/tmp/s"),
        "postgresql:///db?host=/tmp/s"
    );
}

impl Cols for postgres::Row {
    fn int(&self, i: usize) -> Result<i64, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> Result<String, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn boolean(&self, i: usize) -> Result<bool, QueryError> {
        Ok(self.try_get(i)?)
    }
    fn key(&self, i: usize) -> Result<serde_json::Value, QueryError> {
        use postgres::types::Type;
        let ty = self.columns().get(i).map(|c| c.type_().clone());
        Ok(match ty {
            Some(Type::INT8) => self
                .try_get::<_, Option<i64>>(i)?
                .map_or(serde_json::Value::Null, serde_json::Value::from),
            Some(Type::TEXT) => self
                .try_get::<_, Option<String>>(i)?
                .map_or(serde_json::Value::Null, serde_json::Value::from),
            _ => serde_json::Value::Null,
        })
    }
}
