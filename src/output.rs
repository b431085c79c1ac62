//! Rendering query results to stdout as JSON, JSON lines or an aligned table.

use std::io::{self, Write};

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RowFormat {
    /// Aligned columns for people (default on a terminal).
    Table,
    /// One JSON list (default when stdout is not a terminal).
    Json,
    /// One JSON object per line.
    Jsonl,
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
