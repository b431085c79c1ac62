//! `traceflow ingest`: indexes captures, files, folders or stdin, with a summary line at the end.

use std::path::{Path, PathBuf};

use super::Error;
use crate::ingest::{self, Cancel, Options};
use crate::store;

/// `traceflow ingest` arguments.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Capture files or folders (walked recursively in sorted order), or `-` for standard input. Only --embed
    /// makes a capture read from standard input dumpable: its bytes are nowhere else. None with --connections:
    /// only build the connections of the captures already indexed without them.
    #[arg(required_unless_present = "connections")]
    pub inputs: Vec<PathBuf>,
    /// Captures read at once [default: 1: the single SQLite writer is the bottleneck, and a second reader only
    /// competes with it for a core; see BENCHMARKS.md].
    #[arg(long, short, value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Name to record for the capture read from `-` (standard input) [default: stdin].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Re-index captures that are already in the database.
    #[arg(long)]
    pub force: bool,
    /// Store frame bytes in the database, so dumps do not need the capture files.
    #[arg(long)]
    pub embed: bool,
    /// No progress bar and no per-file notes.
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log each file (also those already indexed and those that are not captures).
    #[arg(long, short)]
    pub verbose: bool,
    /// Open flows each reader keeps in memory; beyond that, the least recently seen are parked, in a compact
    /// table and then in unlinked files in $TMPDIR (bounds memory for captures that leave many flows open).
    #[arg(long, default_value_t = crate::trace::DEFAULT_MAX_OPEN, value_name = "N")]
    pub max_open_flows: usize,
    /// Memory cap, in MiB, of the compact in-memory table that parked flows go to before the temporary files
    /// (0: straight to the files) [default: 64, or an eighth of the available memory if less].
    #[arg(long, value_name = "MIB")]
    pub park_memory: Option<usize>,
    /// Frames read per capture at most; a capture with more is indexed up to there and marked truncated
    /// (bounds the database for floods of empty records).
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
    /// Seed of the flows' and connections' Community IDs (0 to 65535; 0 is the spec's default). Recorded per
    /// capture, in captures.community_id_seed.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub community_id_seed: u16,
    /// Build the connections (tshark's tcp.stream, with Zeek's conn_state and history) while reading, and then
    /// for every capture indexed earlier without them, from its stored frame rows. `traceflow connections` and
    /// `query --both` read them and never build them (read commands do not write). PostgreSQL always builds
    /// them. Costs about half again the ingest CPU (BENCHMARKS.md).
    #[arg(long)]
    pub connections: bool,
    /// Keep watching the folders given: index what they hold, then each new capture once it is complete (closed
    /// after writing, renamed into place, or unchanged for --settle), in name order, until SIGTERM, SIGHUP or
    /// Ctrl-C (the capture being read is rolled back). Database errors are retried with backoff.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: a file whose size and mtime have not changed for this long is complete (`5s`, `500ms`,
    /// `2m`; a bare number is seconds).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration, requires = "watch")]
    pub settle: std::time::Duration,
    /// With --watch: no inotify, only rescans (for file systems that give no events; rescans run either way).
    #[arg(long, requires = "watch")]
    pub poll: bool,
    /// With --watch: also index the captures still being written, every --interval, each new index replacing
    /// the last, so the last minutes are searchable (a growing file is read again whole each time).
    #[arg(long, requires = "watch")]
    pub partial: bool,
    /// With --watch --partial: how often a growing capture is indexed again.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration, requires = "partial")]
    pub interval: std::time::Duration,
    /// With --watch: forget the captures whose every file under the watched folders is gone (a ring buffer
    /// deleted them), once no file is pending.
    #[arg(long, requires = "watch")]
    pub forget_missing: bool,
}

/// `5s`, `500ms`, `2m`, `1.5`: a duration as the filter language writes one (a bare number is seconds).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::filter::parse_duration(s)
        .map(|ns| std::time::Duration::from_nanos(ns as u64))
        .map_err(|_| format!("'{s}' is not a duration: write 5s, 500ms, 2m or a number of seconds"))
}

/// Ingests into the database at `db`; the status is 0, or 1 when some input failed or was truncated.
pub fn run(db: &Path, args: &IngestArgs) -> Result<u8, Error> {
    if args.name.is_some() && !args.inputs.iter().any(|i| i.as_os_str() == "-") {
        crate::msg::say("--name names the capture read from standard input; add `-` to the inputs");
        return Ok(2);
    }
    let target = store::Target::of(db);
    if args.watch {
        return watch(&target, args);
    }
    let mut conn = store::Db::open(&target)?;
    let cancel = Cancel::default();
    let on_ctrl_c = cancel.clone();
    // Ctrl-C, SIGTERM or SIGHUP: the current capture is rolled back and the run ends; a second one ends the
    // process at once (a capture is atomic either way).
    let _ = ctrlc::set_handler(move || {
        if on_ctrl_c.is_cancelled() {
            std::process::exit(130);
        }
        on_ctrl_c.cancel()
    });
    let connections_at_ingest = conn.caps().connections_at_ingest;
    let opts = options(args, cancel, connections_at_ingest);
    if args.inputs.is_empty() {
        drop(conn);
        return build_connections(&target, args.quiet).map(|()| 0);
    }
    let s = ingest::run(&mut conn, &args.inputs, &opts, &mut |m| crate::msg::say(&m));
    if !args.quiet || s.exit_code() != 0 {
        crate::msg::say(&summary_line(&s));
    }
    if args.connections && !s.interrupted && s.database_error.is_none() {
        drop(conn);
        build_connections(&target, args.quiet)?;
    }
    Ok(s.exit_code() as u8)
}

/// The ingest's options from the command line.
fn options(args: &IngestArgs, cancel: Cancel, connections_at_ingest: bool) -> Options {
    Options {
        jobs: args.jobs.unwrap_or(DEFAULT_JOBS),
        force: args.force,
        embed: args.embed,
        quiet: args.quiet,
        verbose: args.verbose,
        max_open_flows: args.max_open_flows,
        park_memory: args.park_memory.map(|mib| mib.saturating_mul(1 << 20)),
        max_frames: args.max_frames,
        cancel,
        stdin_name: args.name.clone(),
        community_id_seed: args.community_id_seed,
        // PostgreSQL always has them (Caps::connections_at_ingest): its rows go in by COPY while reading, and a
        // later build would have to read every frame back from the server.
        connections: args.connections || connections_at_ingest,
    }
}

/// `ingest --watch`: runs until a signal; status 0 after a clean stop.
fn watch(target: &store::Target, args: &IngestArgs) -> Result<u8, Error> {
    if args.inputs.is_empty() {
        crate::msg::say("--watch needs the folders to watch");
        return Ok(2);
    }
    for d in &args.inputs {
        if !d.is_dir() {
            crate::msg::say(&format!(
                "--watch watches folders: {} is not one",
                d.display()
            ));
            return Ok(2);
        }
    }
    let cancel = Cancel::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (on_signal, stop_flag) = (cancel.clone(), stop.clone());
    // SIGTERM, SIGHUP or Ctrl-C: the capture being read is rolled back and the watcher ends; a second signal
    // ends the process at once (a capture is atomic either way).
    let _ = ctrlc::set_handler(move || {
        if stop_flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        on_signal.cancel()
    });
    // The watcher sets `connections` from the database it opens.
    let opts = options(args, cancel, false);
    let w = ingest::watch::WatchOptions {
        settle: args.settle,
        poll: args.poll,
        partial: args.partial.then_some(args.interval),
        forget_missing: args.forget_missing,
        stop,
        report_every: std::time::Duration::from_secs(60),
    };
    let s = ingest::watch::run(target, &args.inputs, &opts, &w, &mut |m| {
        crate::msg::say(&m)
    })?;
    if !args.quiet {
        crate::msg::say(&format!("stopped; in all: {}", s.line()));
    }
    Ok(0)
}

/// `ingest --connections`: the connections of the captures indexed earlier without them, from their frame rows.
fn build_connections(target: &store::Target, quiet: bool) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let built = target.build_connections()?;
    if !quiet && built > 0 {
        crate::msg::say(&format!(
            "connections built for {} indexed earlier without them in {}",
            crate::msg::count(built as u64, "capture"),
            crate::msg::duration(started.elapsed())
        ));
    }
    Ok(())
}

/// `--jobs N`: at least 1 (0 readers would read nothing).
fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("--jobs must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Captures read at once by default. Measured on 2 cores, 4 different captures, interleaved runs: `--jobs 1` was
/// faster than `--jobs 2` (BENCHMARKS.md): the one SQLite writer is the bottleneck.
pub const DEFAULT_JOBS: usize = 1;

/// `3 files: 1 indexed, 2 skipped (1 already indexed, 1 not a capture), 0 failed, 0 truncated; 12 frames,
/// 4 flows in 10 ms`.
pub fn summary_line(s: &ingest::Summary) -> String {
    let mut why = Vec::new();
    if s.already > 0 {
        why.push(format!("{} already indexed", s.already));
    }
    if s.not_captures > 0 {
        why.push(if s.not_captures == 1 {
            "1 not a capture".to_string()
        } else {
            format!("{} not captures", s.not_captures)
        });
    }
    let other = s.skipped.saturating_sub(s.already + s.not_captures);
    if other > 0 && !why.is_empty() {
        why.push(if other == 1 {
            "1 not a regular file".to_string()
        } else {
            format!("{other} not regular files")
        });
    }
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({})", why.join(", "))
    };
    let mut tail = String::new();
    if s.waited >= std::time::Duration::from_millis(1) {
        tail.push_str(&format!(
            " (after waiting {} for another writer)",
            crate::msg::duration(s.waited)
        ));
    }
    if s.interrupted {
        tail.push_str(" (interrupted)");
    }
    if s.database_error.is_some() {
        tail.push_str(" (stopped: database error)");
    }
    format!(
        "{}: {} indexed, {} skipped{why}, {} failed, {} truncated; {} frames, {} flows in {}{tail}",
        crate::msg::count(s.files, "file"),
        s.indexed,
        s.skipped,
        s.failed,
        s.truncated,
        s.frames,
        s.flows,
        crate::msg::duration(s.elapsed),
    )
}
