//! `traceflow forget CAPTURE...`: removes captures and every row of theirs, and says what a VACUUM would return.

use std::path::Path;

use super::Error;
use crate::store::{self, read};

/// `traceflow forget` arguments.
#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// Captures by base name, path or id (as `traceflow captures` lists them).
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,
}

/// Deletes the captures named in `args` from the database at `db`, all in one transaction.
pub fn run(db: &Path, args: &ForgetArgs) -> Result<u8, Error> {
    // A typo in --db must not create a database; an older schema is upgraded (the trigger that deletes the
    // rows comes with the upgrade).
    let target = store::Target::of(db);
    if !target.may_exist() {
        return Err(store::StoreError::Missing {
            path: db.display().to_string(),
        }
        .into());
    }
    let conn = store::Db::open(&target)?;
    let mut names: Vec<(i64, String)> = Vec::new();
    for sel in &args.captures {
        let id = read::resolve_capture(&conn, sel)?;
        let name = read::capture_row(&conn, id)?.name;
        if !names.iter().any(|(i, _)| *i == id) {
            names.push((id, name));
        }
    }
    let ids: Vec<i64> = names.iter().map(|(i, _)| *i).collect();
    let done = store::forget(&conn, &ids)?;
    for (id, name) in &names {
        crate::msg::say(&format!("forgot capture {id} ({name})"));
    }
    let removed = format!(
        "{} removed: {} frames, {} flows",
        crate::msg::count(done.captures, "capture"),
        done.frames,
        done.flows
    );
    crate::msg::say(&if conn.caps().vacuum_reclaims {
        format!(
            "{removed}; VACUUM would return {} to the file system (sqlite3 {} VACUUM, while no ingest runs)",
            bytes(done.reclaimable),
            db.display()
        )
    } else {
        format!("{removed}; PostgreSQL's autovacuum reuses the space")
    });
    Ok(0)
}

/// `12.3 MiB`, `640 KiB`, `0 bytes`.
pub fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        crate::msg::count(n, "byte")
    } else if f < K * K {
        format!("{:.0} KiB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MiB", f / K / K)
    } else {
        format!("{:.2} GiB", f / K / K / K)
    }
}
