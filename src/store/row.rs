//! A result row of either backend read by column index, so that one row builder ([`super::rows`]) serves
//! SQLite's rows and PostgreSQL's alike and both give the same values.

use super::error::QueryError;

/// A result row read by column index (implemented for each backend's row type in its module).
pub(crate) trait Cols {
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64, QueryError>;
    /// An integer column that may be NULL.
    fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError>;
    /// A text column.
    fn text(&self, i: usize) -> Result<String, QueryError>;
    /// A text column appended to `out` (no allocation of its own).
    fn push_text(&self, i: usize, out: &mut String) -> Result<(), QueryError> {
        out.push_str(&self.text(i)?);
        Ok(())
    }
    /// A text column that may be NULL.
    fn opt_text(&self, i: usize) -> Result<Option<String>, QueryError>;
    /// A boolean (SQLite: an integer).
    fn boolean(&self, i: usize) -> Result<bool, QueryError>;
    /// An integer or text column as JSON (a `--group-by` key); anything else is null.
    fn key(&self, i: usize) -> Result<serde_json::Value, QueryError>;
}
