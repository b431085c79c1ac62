//! Retention: which captures `forget --before`, `--missing` and `--keep-size` select (and `ingest --watch
//! --forget-missing` as files go). Only selects; [`super::forget`] deletes them in one transaction.

use std::path::{Path, PathBuf};

use super::error::QueryError;
use super::Db;

/// Captures whose last frame is before `ns` (ns since the epoch), oldest first. Captures without frames have
/// no time and are never selected by time.
pub fn before(db: &Db, ns: i64) -> Result<Vec<i64>, QueryError> {
    Ok(db
        .capture_spans()?
        .into_iter()
        .filter(|&(_, _, last)| last.is_some_and(|l| l < ns))
        .map(|(id, _, _)| id)
        .collect())
}

/// Captures whose every path is gone (a ring buffer deleted the file, and a compressed copy is not there
/// either). A capture read from standard input has no file to miss and is never selected.
pub fn missing(db: &Db) -> Result<Vec<i64>, QueryError> {
    gone(db, &[])
}

/// As [`missing`], only the captures whose every path is under one of `dirs` (absolute): a watcher forgets its
/// own folders' captures, not those of a sensor on another host whose paths are not here.
pub fn missing_under(db: &Db, dirs: &[PathBuf]) -> Result<Vec<i64>, QueryError> {
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    gone(db, dirs)
}

fn gone(db: &Db, dirs: &[PathBuf]) -> Result<Vec<i64>, QueryError> {
    Ok(db
        .captures()?
        .into_iter()
        .filter(|c| {
            let paths: Vec<&str> = if c.paths.is_empty() {
                vec![c.path.as_str()]
            } else {
                c.paths.iter().map(String::as_str).collect()
            };
            paths.iter().all(|p| *p != "-")
                && (dirs.is_empty()
                    || paths
                        .iter()
                        .all(|p| dirs.iter().any(|d| Path::new(p).starts_with(d))))
                && paths.iter().all(|p| std::fs::symlink_metadata(p).is_err())
        })
        .map(|c| c.id)
        .collect())
}

/// Every capture, oldest first (by first frame time, then id): the order `--keep-size` forgets them in.
pub fn oldest(db: &Db) -> Result<Vec<i64>, QueryError> {
    Ok(db
        .capture_spans()?
        .into_iter()
        .map(|(id, _, _)| id)
        .collect())
}

/// Parses a size: `500M`, `10G`, `1.5GiB`, `2048` (bytes); K, M, G and T are powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let t = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, scale) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let k = match c {
                'k' => 1u64 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => 0,
            };
            (&t[..i], k)
        }
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().unwrap_or(f64::NAN);
    if scale == 0 || !v.is_finite() || v < 0.0 || v * scale as f64 >= 1.8e19 {
        return Err(format!(
            "'{s}' is not a size: write bytes (2048) or K, M, G, T (powers of 1024: 500M, 10G, 1.5GiB)"
        ));
    }
    Ok((v * scale as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("10gb"), Ok(10 << 30));
        for bad in ["", "M", "-1M", "10X", "1e30T", "abc"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
