//! `ingest --watch` on PostgreSQL: three sensors' watchers into one database at once, and database errors
//! (the server read-only, the connections cut) retried with backoff; the helpers are `watch.rs`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::postgres::PgDb;
use super::util::{ingest, T0};
use super::watch::{assert_same, editcap_split, oracle, sorted_snapshot, wait_for, Watcher};

/// Three sensors, each a watcher of its own folder, into one PostgreSQL database at once, their files arriving
/// interleaved: the database holds what one plain ingest of all the files gives.
#[test]
fn pg_three_watchers_into_one_database() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = PgDb::new("watch_three");
    let plain_pg = PgDb::new("watch_three_plain");
    let sensors: Vec<(PathBuf, Vec<PathBuf>)> = (0..3)
        .map(|s| {
            let src = tmp.path().join(format!("src{s}"));
            // Each sensor its own hour of traffic.
            let files = editcap_split(&src, 2000, T0 + s as i64 * 3_600_000_000_000, 1500);
            let dir = tmp.path().join(format!("sensor{s}"));
            std::fs::create_dir(&dir).unwrap();
            (dir, files)
        })
        .collect();
    let watchers: Vec<Watcher> = sensors
        .iter()
        .enumerate()
        .map(|(s, (dir, _))| {
            Watcher::start(pg.path(), &[], &[dir], &tmp.path().join(format!("log{s}")))
        })
        .collect();
    let total: usize = sensors.iter().map(|s| s.1.len()).sum();
    let feeders: Vec<_> = sensors
        .iter()
        .map(|(dir, files)| {
            let (dir, files) = (dir.clone(), files.clone());
            std::thread::spawn(move || {
                for f in files {
                    std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
                    std::thread::sleep(Duration::from_millis(150));
                }
            })
        })
        .collect();
    for f in feeders {
        f.join().unwrap();
    }
    wait_for(
        &watchers[0],
        Duration::from_secs(60),
        "every sensor's files",
        || pg.count("SELECT count(*) FROM captures") == total as i64,
    );
    let mut logs = String::new();
    for w in watchers {
        let (code, log) = w.signal(libc::SIGTERM);
        assert_eq!(code, 0, "{log}");
        logs.push_str(&log);
    }
    let all: Vec<&Path> = sensors
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.as_path()))
        .collect();
    let r = ingest(plain_pg.path(), &["-q"], &all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        sorted_snapshot(pg.path()),
        sorted_snapshot(plain_pg.path()),
        "{logs}"
    );
}

/// The database refuses writes for a while (read-only, its connections cut): the watcher says so, retries
/// with backoff instead of ending, and indexes the file once the database is back.
#[test]
fn pg_watch_retries_database_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let files = editcap_split(&tmp.path().join("src"), 600, T0, 2000);
    let pg = PgDb::new("watch_retry");
    let dir = tmp.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let w = Watcher::start(pg.path(), &["-v"], &[&dir], &tmp.path().join("log"));
    // The start line comes once the database is open (and its schema made).
    wait_for(&w, Duration::from_secs(20), "the start line", || {
        w.log().contains("watching 1 folder")
    });
    std::fs::copy(&files[0], dir.join(files[0].file_name().unwrap())).unwrap();
    wait_for(&w, Duration::from_secs(20), "the first file", || {
        pg.count("SELECT count(*) FROM captures") == 1
    });
    let db_name = pg.name.clone();
    let mut admin = postgres::Client::connect(
        &std::env::var("TRACEFLOW_TEST_PG").unwrap(),
        postgres::NoTls,
    )
    .unwrap();
    let cut = |admin: &mut postgres::Client| {
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}'"
            ))
            .unwrap()
    };
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db_name} SET default_transaction_read_only = on"
        ))
        .unwrap();
    cut(&mut admin);
    for f in &files[1..] {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    wait_for(&w, Duration::from_secs(20), "the error retried", || {
        w.log().contains("retrying in")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(pg.count("SELECT count(*) FROM captures"), 1);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db_name} SET default_transaction_read_only = off"
        ))
        .unwrap();
    cut(&mut admin);
    wait_for(
        &w,
        Duration::from_secs(40),
        "every file after the outage",
        || pg.count("SELECT count(*) FROM captures") == files.len() as i64,
    );
    let (code, log) = w.signal(libc::SIGTERM);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("error: database"), "{log}");
    assert!(
        log.contains("database error"),
        "the total counts the errors: {log}"
    );
    let plain: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    assert_same(pg.path(), &oracle(tmp.path(), &plain), &log);
}
