//! Rendering query results to stdout as JSON, JSON lines, CSV or an aligned table, all at once or row by row
//! ([`RowWriter`]).

use std::io::{self, Write};

use crate::store::Db;
use serde::Serialize;

use crate::store::read::{for_each_index_row, QueryError};

/// What [`print_listing`] hands a listing: a callback taking one row.
pub type Visit<'a, T> = &'a mut dyn FnMut(T) -> Result<(), QueryError>;

/// A row of a listing (`flows`, `connections`): serialized with serde, or by its own faster JSON writer.
pub trait Listed: Serialize {
    /// The row as one JSON object appended to `out`, exactly what serde_json writes for it.
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::from)
    }
}

impl Listed for crate::store::read::FlowRow {
    fn write_json(&self, out: &mut Vec<u8>) -> io::Result<()> {
        crate::store::read::FlowRow::write_json(self, out);
        Ok(())
    }
}
impl Listed for crate::store::read::GroupRow {}
impl Listed for crate::store::read::ConnRow {}

/// Prints the rows `list` visits to stdout in `format` (table on a terminal, JSON otherwise), buffered (a million
/// rows are a million lines) and streamed (a table is kept for its widths). A closed stdout (`| head`) is
/// success: the reader has what it wanted.
pub fn print_listing<T: Listed>(
    format: Option<RowFormat>,
    list: impl FnOnce(Visit<'_, T>) -> Result<(), QueryError>,
) -> Result<u8, super::Error> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut w = RowWriter::new(&mut out, format.unwrap_or_else(default_format));
    let written = match list(&mut |row| w.listed(&row).map_err(QueryError::Output)) {
        Err(QueryError::Output(e)) => Err(e),
        Err(e) => return Err(super::Error::Query(e)),
        Ok(()) => w.finish(),
    };
    stdout_result(written.and_then(|()| out.flush()))
}

/// Prints one count (`--count`) to stdout.
pub fn print_count(n: i64) -> Result<u8, super::Error> {
    let mut out = io::stdout().lock();
    stdout_result(writeln!(out, "{n}").and_then(|()| out.flush()))
}

/// A write to stdout as the exit status: a closed pipe is success, another failure is an error.
fn stdout_result(r: io::Result<()>) -> Result<u8, super::Error> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(source) => Err(super::Error::Io {
            what: "writing stdout".into(),
            source,
        }),
        Ok(()) => Ok(0),
    }
}

/// How query results are printed (`--format` of `captures` and `query`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    /// Aligned columns for people (default on a terminal).
    Table,
    /// One JSON list (default when stdout is not a terminal).
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line (RFC 4180 quoting; lists joined with spaces).
    Csv,
}

/// Writes `rows` in the chosen format; long table cells are shortened with `…`.
pub fn write_rows<T: Serialize>(
    out: &mut dyn Write,
    rows: &[T],
    format: RowFormat,
) -> io::Result<()> {
    match format {
        RowFormat::Json => {
            serde_json::to_writer(&mut *out, rows)?;
            writeln!(out)
        }
        RowFormat::Jsonl => {
            for r in rows {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
            Ok(())
        }
        RowFormat::Table => write_table(out, rows),
        RowFormat::Csv => {
            let mut w = RowWriter::new(out, RowFormat::Csv);
            for r in rows {
                w.row(r)?;
            }
            w.finish()
        }
    }
}

fn cell(v: &serde_json::Value) -> String {
    const MAX: usize = 60;
    let s = match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    };
    // Names come from file names: an escape sequence in one must not reach the terminal as such.
    let s = crate::msg::escape_controls(&s).into_owned();
    if s.chars().count() > MAX {
        let mut t: String = s.chars().take(MAX - 1).collect();
        t.push('…');
        t
    } else {
        s
    }
}

fn write_table<T: Serialize>(out: &mut dyn Write, rows: &[T]) -> io::Result<()> {
    let values: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    let Some(serde_json::Value::Object(first)) = values.first() else {
        return writeln!(out, "(none)");
    };
    let cols: Vec<String> = first.keys().cloned().collect();
    let cells: Vec<Vec<String>> = values
        .iter()
        .map(|v| {
            cols.iter()
                .map(|c| v.get(c).map(cell).unwrap_or_default())
                .collect()
        })
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(c.len())
        })
        .collect();
    let line = |out: &mut dyn Write, items: &[String]| -> io::Result<()> {
        let parts: Vec<String> = items
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        writeln!(out, "{}", parts.join("  ").trim_end())
    };
    line(
        out,
        &cols.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>(),
    )?;
    for r in &cells {
        line(out, r)?;
    }
    Ok(())
}

/// Table on a terminal, JSON otherwise: what `--format` means when it is not given.
pub fn default_format() -> RowFormat {
    use std::io::IsTerminal;
    if io::stdout().is_terminal() {
        RowFormat::Table
    } else {
        RowFormat::Json
    }
}

/// Writes the index tuple as JSON (a list) or JSON lines while reading it, without building it in memory.
pub fn write_index_json(
    conn: &Db,
    capture: Option<i64>,
    lines: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), QueryError> {
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        capture: Option<&'a str>,
        fpout: Option<&'a str>,
        index: &'a serde_json::value::RawValue,
        label: &'a str,
    }
    let io = QueryError::Output;
    let mut first = true;
    let mut list = String::new();
    if !lines {
        out.write_all(b"[").map_err(io)?;
    }
    for_each_index_row(conn, capture, &mut |name, label, frames| {
        // SQLite's `1,2,3` is already the body of the JSON array.
        list.clear();
        list.push('[');
        list.push_str(frames);
        list.push(']');
        let index: &serde_json::value::RawValue =
            serde_json::from_str(&list).map_err(|e| QueryError::Output(e.into()))?;
        let row = Row {
            capture: capture.is_none().then_some(name),
            fpout: None,
            index,
            label,
        };
        if !lines && !first {
            out.write_all(b",").map_err(io)?;
        }
        first = false;
        serde_json::to_writer(&mut *out, &row).map_err(|e| QueryError::Output(e.into()))?;
        if lines {
            out.write_all(b"\n").map_err(io)?;
        }
        Ok(())
    })?;
    if !lines {
        out.write_all(b"]\n").map_err(io)?;
    }
    Ok(())
}

/// One CSV field: quoted when it holds a comma, a quote or a line break.
fn csv_field(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(csv_field).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Writes rows one at a time as they come: JSON, JSON lines and CSV stream (memory does not grow with the
/// rows); a table needs every row for its widths, so it is kept until `finish`.
pub struct RowWriter<'a> {
    out: &'a mut dyn Write,
    format: RowFormat,
    rows: usize,
    table: Vec<serde_json::Value>,
    /// One row's JSON, serialized here first: serde's many small writes through `dyn Write` cost more than the
    /// JSON itself.
    line: Vec<u8>,
}

impl<'a> RowWriter<'a> {
    /// A writer of `format` rows to `out`.
    pub fn new(out: &'a mut dyn Write, format: RowFormat) -> RowWriter<'a> {
        RowWriter {
            out,
            format,
            rows: 0,
            table: Vec::new(),
            line: Vec::with_capacity(512),
        }
    }

    /// [`RowWriter::row`] of a listing's row, whose JSON it writes itself.
    pub fn listed<T: Listed>(&mut self, r: &T) -> io::Result<()> {
        match self.format {
            RowFormat::Json | RowFormat::Jsonl => self.json_line(|line| r.write_json(line)),
            _ => self.row(r),
        }
    }

    /// One JSON row (`[` or `,` before it in a list, a newline after it in JSON lines), written by `json`.
    fn json_line(&mut self, json: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        let first = self.rows == 0;
        self.rows += 1;
        self.line.clear();
        if self.format == RowFormat::Json {
            self.line.push(if first { b'[' } else { b',' });
        }
        json(&mut self.line)?;
        if self.format == RowFormat::Jsonl {
            self.line.push(b'\n');
        }
        self.out.write_all(&self.line)
    }

    /// Writes (or, for a table, keeps) one row.
    pub fn row<T: Serialize>(&mut self, r: &T) -> io::Result<()> {
        let first = self.rows == 0;
        match self.format {
            RowFormat::Json | RowFormat::Jsonl => {
                return self
                    .json_line(|line| serde_json::to_writer(line, r).map_err(io::Error::from));
            }
            RowFormat::Csv => {
                self.rows += 1;
                let v = serde_json::to_value(r)?;
                let Some(obj) = v.as_object() else {
                    return Ok(());
                };
                if first {
                    let head: Vec<String> = obj
                        .keys()
                        .map(|k| csv_field(&serde_json::Value::String(k.clone())))
                        .collect();
                    writeln!(self.out, "{}", head.join(","))?;
                }
                let cells: Vec<String> = obj.values().map(csv_field).collect();
                writeln!(self.out, "{}", cells.join(","))?;
            }
            RowFormat::Table => {
                self.rows += 1;
                self.table.push(serde_json::to_value(r)?)
            }
        }
        Ok(())
    }

    /// Ends the output (closes the JSON list; writes the table).
    pub fn finish(self) -> io::Result<()> {
        match self.format {
            RowFormat::Json if self.rows == 0 => writeln!(self.out, "[]"),
            RowFormat::Json => writeln!(self.out, "]"),
            RowFormat::Table => write_table(self.out, &self.table),
            _ => Ok(()),
        }
    }
}
