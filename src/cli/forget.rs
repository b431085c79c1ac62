//! `traceflow forget CAPTURE...`, `--before TIME`, `--missing`, `--keep-size SIZE`: removes captures and every row
//! of theirs in one transaction, and says what a VACUUM would return.

use std::path::Path;

use super::Error;
use crate::store::{self, read};

/// `traceflow forget` arguments.
#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// Captures by base name, path or id (as `traceflow captures` lists them).
    #[arg(value_name = "CAPTURE", required_unless_present_any = ["before", "missing", "keep_size"])]
    pub captures: Vec<String>,
    /// Also forget the captures whose last frame is before TIME (RFC 3339, a date, epoch seconds or `7d ago`,
    /// as in filters); captures without frames are kept.
    #[arg(long, value_name = "TIME", value_parser = crate::filter::parse_time)]
    pub before: Option<i64>,
    /// Also forget the captures whose every path is gone (deleted by a ring buffer): their flows can no longer
    /// be dumped, unless they were ingested with --embed.
    #[arg(long)]
    pub missing: bool,
    /// Also forget the oldest captures until the database's rows fit in SIZE (500M, 10G; powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = store::retention::parse_size)]
    pub keep_size: Option<u64>,
}

/// Deletes the captures named or selected in `args` from the database at `db`, all in one transaction.
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
    let add = |names: &mut Vec<(i64, String)>, id: i64| -> Result<(), Error> {
        if !names.iter().any(|(i, _)| *i == id) {
            names.push((id, read::capture_row(&conn, id)?.name));
        }
        Ok(())
    };
    for sel in &args.captures {
        let id = read::resolve_capture(&conn, sel)?;
        add(&mut names, id)?;
    }
    if let Some(ns) = args.before {
        for id in store::retention::before(&conn, ns)? {
            add(&mut names, id)?;
        }
    }
    if args.missing {
        for id in store::retention::missing(&conn)? {
            add(&mut names, id)?;
        }
    }
    let ids: Vec<i64> = names.iter().map(|(i, _)| *i).collect();
    let (done, size_note) = match args.keep_size {
        Some(limit) => {
            let used = conn.database_size()?;
            let oldest: Vec<i64> = store::retention::oldest(&conn)?
                .into_iter()
                .filter(|id| !ids.contains(id))
                .collect();
            let all: Vec<(i64, String)> = conn.capture_ids(None)?;
            let (done, more) = conn.forget_to_size(&ids, &oldest, limit)?;
            for id in &oldest[..more] {
                let name = all.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone());
                names.push((*id, name.unwrap_or_default()));
            }
            (done, Some((limit, used)))
        }
        None if names.is_empty() => {
            crate::msg::say("nothing to forget: no capture matches");
            return Ok(0);
        }
        None => (store::forget(&conn, &ids)?, None),
    };
    if done.captures == 0 {
        crate::msg::say("nothing to forget: no capture matches");
        return Ok(0);
    }
    for (id, name) in &names {
        crate::msg::say(&format!("forgot capture {id} ({name})"));
    }
    let removed = format!(
        "{} removed: {} frames, {} flows",
        crate::msg::count(done.captures, "capture"),
        done.frames,
        done.flows
    );
    if let Some((limit, before)) = size_note {
        crate::msg::say(&format!(
            "--keep-size {}: the rows took {}, now {}",
            bytes(limit),
            bytes(before),
            bytes(conn.database_size()?)
        ));
    }
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
