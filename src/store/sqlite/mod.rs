//! SQLite storage: opening a file (schema migrations, journal mode: [`open`]), writing one capture's rows in one
//! transaction ([`write`], through [`bulk`]'s multi-row INSERTs), the reads ([`read`], [`search`]), and the
//! connections built later from the frame rows ([`connections`]).

use rusqlite::Connection;

use crate::store::error::{QueryError, StoreError};
use crate::store::row::Cols;

mod bulk;
mod conn_search;
pub(crate) mod connections;
mod group;
mod open;
mod page;
mod read;
mod search;
mod write;

pub use open::{
    begin_ingest, end_ingest, lock_wait_reset, lock_waited, open, open_read, SCHEMA_VERSION,
};
pub use read::INDEX_SQL;

/// A traceflow database in a SQLite file: a connection to it.
pub(crate) type Sqlite = Connection;

impl StoreError {
    /// A SQLite failure on `conn`'s database, named by its file.
    pub(crate) fn on(conn: &Connection) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: conn.path().unwrap_or("(memory)").to_string(),
            source,
        }
    }
}

impl Cols for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64, QueryError> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<String, QueryError> {
        Ok(self.get(i)?)
    }
    fn push_text(&self, i: usize, out: &mut String) -> Result<(), QueryError> {
        if let rusqlite::types::ValueRef::Text(t) = self.get_ref(i)? {
            if let Ok(t) = std::str::from_utf8(t) {
                out.push_str(t);
                return Ok(());
            }
        }
        // Whatever else is there fails as `text` fails on it.
        self.text(i).map(|t| out.push_str(&t))
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, QueryError> {
        Ok(self.get(i)?)
    }
    fn boolean(&self, i: usize) -> Result<bool, QueryError> {
        Ok(self.get(i)?)
    }
    fn key(&self, i: usize) -> Result<serde_json::Value, QueryError> {
        Ok(match self.get_ref(i)? {
            rusqlite::types::ValueRef::Integer(x) => serde_json::Value::from(x),
            rusqlite::types::ValueRef::Text(t) => {
                serde_json::Value::from(String::from_utf8_lossy(t).into_owned())
            }
            _ => serde_json::Value::Null,
        })
    }
}
