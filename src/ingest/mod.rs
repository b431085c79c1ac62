//! `traceflow ingest`: walks the inputs ([`inputs`]), reads and traces each capture on worker threads
//! ([`reader`]), and feeds the database's writer ([`writer`]), one transaction per capture, in input order (so
//! results do not depend on `--jobs`). The readers' batches go through [`channel`]s, their frame bytes within
//! a [`budget`]; [`progress`] draws the bar.

mod budget;
mod channel;
mod inputs;
mod progress;
mod reader;
pub mod watch;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};

use crate::store::{self, CaptureSource, Db};
pub use budget::Budget;
use budget::IN_FLIGHT_BYTES;
pub use channel::ReadFailure;
use channel::{Empties, Msg, QUEUE, SPARE_BATCHES};
use inputs::source_of;
pub use inputs::{expand_inputs, Expanded, Input};
use progress::{progress_bar, Progress};
use reader::read_capture;
use writer::{write_all, WriteCtx};

/// How an ingest runs (the options of `traceflow ingest`).
#[derive(Clone, Debug)]
pub struct Options {
    /// Captures read and traced at once, each on its own thread (`--jobs`).
    pub jobs: usize,
    /// Re-index captures that are already in the database (`--force`).
    pub force: bool,
    /// Store frame bytes in the database, so dumps do not need the capture files (`--embed`).
    pub embed: bool,
    /// No progress bar and no per-file notes (`--quiet`).
    pub quiet: bool,
    /// Log each file (`--verbose`).
    pub verbose: bool,
    /// Open flows a reader keeps in memory before parking idle ones on disk (`Tracer::with_max_open`).
    pub max_open_flows: usize,
    /// Memory cap in bytes of the parked flows' compact table (`--park-memory`; `None`: the tracer's default).
    pub park_memory: Option<usize>,
    /// Frames read per capture at most (`--max-frames`); the capture is marked truncated there.
    pub max_frames: Option<u64>,
    /// Stops the run when cancelled (Ctrl-C).
    pub cancel: Cancel,
    /// The name a capture read from standard input is recorded under (`--name`; `stdin` when `None`).
    pub stdin_name: Option<String>,
    /// The Community ID seed of the flows and connections (`--community-id-seed`), recorded per capture.
    pub community_id_seed: u16,
    /// Track connections while reading (`--connections`): about half again the ingest CPU. Without it, they can
    /// be built later from the frame rows (`store::Target::build_connections`).
    pub connections: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: 1,
            force: false,
            embed: false,
            quiet: false,
            verbose: false,
            max_open_flows: crate::trace::DEFAULT_MAX_OPEN,
            park_memory: None,
            max_frames: None,
            cancel: Cancel::default(),
            stdin_name: None,
            community_id_seed: 0,
            connections: false,
        }
    }
}

/// What an ingest did, for the summary line and the exit status.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Inputs to read (files found, and standard input), whether indexed or not.
    pub files: u64,
    /// Captures indexed by this run.
    pub indexed: u64,
    /// Frames of the captures indexed, TCP or not.
    pub frames: u64,
    /// Flows of the captures indexed.
    pub flows: u64,
    /// Inputs not indexed: already in the database (same path, size and mtime, or same content), not captures
    /// (a README or checksum file beside them), or not regular files in a folder (FIFOs, dangling links).
    pub skipped: u64,
    /// Of `skipped`, the inputs already in the database.
    pub already: u64,
    /// Of `skipped`, the files that are not captures (empty, or no pcap/pcapng magic).
    pub not_captures: u64,
    /// Inputs that could not be listed, opened, read or written to the database.
    pub failed: u64,
    /// Captures indexed only up to where they were cut off or damaged (or `--max-frames`).
    pub truncated: u64,
    /// The run was cancelled (Ctrl-C); the capture being read was rolled back.
    pub interrupted: bool,
    /// The database failed (disk full, read-only, ...): the run stopped there, since every later capture would
    /// fail the same way. Holds the error.
    pub database_error: Option<String>,
    /// Wall-clock time of the run, less the time spent waiting for another process's write lock.
    pub elapsed: Duration,
    /// Time spent waiting for another process's write lock (another ingest).
    pub waited: Duration,
}

impl Summary {
    /// 0 when everything was indexed (or skipped); 130 when interrupted (Ctrl-C, as shells report SIGINT); 2 when
    /// the database failed; 1 when some input failed or was truncated.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted {
            130
        } else if self.database_error.is_some() {
            2
        } else if self.failed > 0 || self.truncated > 0 {
            1
        } else {
            0
        }
    }
}

/// Cancels an ingest from another thread (the Ctrl-C handler): readers stop at their next batch and the writer
/// rolls back the capture in progress. Cloning shares the token.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the ingest to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the ingest was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Clears the request, for the next ingest of a run that goes on (`ingest --watch` after a database
    /// error, which cancels the other readers and writers of that ingest).
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Ingests `inputs` into the open database. Messages (warnings, per-file lines) go to `log`.
pub fn run(
    conn: &mut Db,
    args: &[PathBuf],
    opts: &Options,
    log: &mut (dyn FnMut(String) + Send),
) -> Summary {
    let started = Instant::now();
    let expanded = expand_inputs(args, log);
    run_inputs(conn, expanded, started, opts, log)
}

/// Ingests inputs already listed (`ingest --watch` lists its folders itself); `started` is when the run began.
pub fn run_inputs(
    conn: &mut Db,
    expanded: Expanded,
    started: Instant,
    opts: &Options,
    log: &mut (dyn FnMut(String) + Send),
) -> Summary {
    let mut summary = Summary::default();
    let Expanded {
        inputs,
        in_folder,
        failed,
        skipped,
    } = expanded;
    summary.failed += failed;
    summary.skipped += skipped;
    // Every input counts as a file, so that indexed + skipped + failed = files.
    summary.files += failed + skipped;
    let sources: Vec<CaptureSource> = inputs
        .iter()
        .map(|i| source_of(i, opts.stdin_name.as_deref()))
        .collect();
    store::lock_wait_reset();
    // Cheap skip: same path, size and mtime as an indexed capture.
    let mut todo = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        summary.files += 1;
        if !opts.force && matches!(inputs[i], Input::File(_)) {
            if let Ok(Some((_, name))) = conn.known_path(src) {
                summary.skipped += 1;
                summary.already += 1;
                if opts.verbose {
                    log(format!("{}: already indexed (as {name})", src.path));
                }
                continue;
            }
        }
        todo.push(i);
    }
    if todo.is_empty() {
        summary.waited = store::lock_waited();
        summary.elapsed = started.elapsed().saturating_sub(summary.waited);
        return summary;
    }
    // Bulk load (a rollback journal) pays for one big capture; for many small ones its three fsyncs per commit
    // cost far more than WAL's none (205 small files: 2.6-3.3 s against 0.33-0.46 s). So it is used only when the
    // first capture is big, and the run switches to WAL after it.
    let first_big = sources[todo[0]].size >= BULK_LOAD_MIN_BYTES;
    // PostgreSQL's write-ahead log is the server's business: it answers Wal.
    let journal = conn.begin_ingest(first_big);
    match &journal {
        Ok(store::Journal::BulkLoad) if opts.verbose => {
            log("empty database: bulk load with a rollback journal, WAL afterwards".into())
        }
        Ok(_) => {}
        Err(e) => log(format!("warning: could not set the journal mode: {e}")),
    }
    let mut journal = journal.unwrap_or(store::Journal::Wal);
    let total_bytes: u64 = todo.iter().map(|&i| sources[i].size).sum();
    let bar = progress_bar(total_bytes, opts.quiet);
    let jobs = opts.jobs.max(1).min(todo.len().max(1));
    let (senders, receivers): (Vec<_>, Vec<_>) = todo.iter().map(|_| bounded::<Msg>(QUEUE)).unzip();
    let (spare_tx, spare_rx) = bounded::<Empties>(SPARE_BATCHES);
    let next = AtomicUsize::new(0);
    let inputs = Arc::new(inputs);
    let budget = Budget::new(IN_FLIGHT_BYTES, todo.len());
    // PostgreSQL's rows go in by COPY, which cannot replace one: there, parked flows are written at the end.
    let caps = conn.caps();
    let parked_rows = caps.parked_rows;
    {
        let mut say = |m: String| log(m);
        let log_lock: Mutex<&mut (dyn FnMut(String) + Send)> = Mutex::new(&mut say);
        let progress = Mutex::new(Progress::default());
        let shared = Mutex::new(&mut summary);
        // Each receiver is dropped after its capture, so a reader whose capture the writer gave up on stops.
        let receivers: Vec<Mutex<Option<Receiver<Msg>>>> =
            receivers.into_iter().map(|r| Mutex::new(Some(r))).collect();
        let next_write = Mutex::new(0usize);
        let ctx = WriteCtx {
            todo: &todo,
            sources: &sources,
            inputs: &inputs,
            in_folder: &in_folder,
            opts,
            bar: &bar,
            started,
            total_bytes,
            budget: &budget,
            spares: &spare_tx,
            progress: &progress,
            summary: &shared,
            log: &log_lock,
        };
        std::thread::scope(|scope| {
            let mut readers = 0;
            for _ in 0..jobs {
                let (next, senders, todo, inputs, budget, spares) =
                    (&next, &senders, &todo, inputs.clone(), &budget, &spare_rx);
                // Named, so that profiles and `top -H` tell readers from the writer.
                let reader = std::thread::Builder::new().name("tf-reader".into());
                let spawned = reader.spawn_scoped(scope, move || loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= todo.len() {
                        break;
                    }
                    let tx = &senders[k];
                    read_capture(&inputs[todo[k]], opts, tx, spares, budget, k, parked_rows);
                });
                match spawned {
                    Ok(_) => readers += 1,
                    Err(e) => ctx.say(format!("warning: could not start a reader thread: {e}")),
                }
            }
            if readers == 0 {
                ctx.summary.lock().unwrap_or_else(|e| e.into_inner()).failed += todo.len() as u64;
                return;
            }
            // Writers take captures in input order. SQLite has one writer; PostgreSQL takes one connection per job,
            // so that several captures are written at once (the server runs each connection's inserts on its own
            // process).
            let extra: Vec<Db> = if caps.parallel_writers && jobs > 1 {
                (1..jobs)
                    .filter_map(|_| match conn.reconnect() {
                        Ok(c) => Some(c),
                        Err(e) => {
                            ctx.say(format!(
                                "warning: could not open another database connection: {e}"
                            ));
                            None
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            for db in extra {
                let (ctx, receivers, next_write) = (&ctx, &receivers, &next_write);
                let writer = std::thread::Builder::new().name("tf-writer".into());
                let spawned = writer.spawn_scoped(scope, move || {
                    write_all(&db, ctx, receivers, next_write, &mut |_, _| {})
                });
                if let Err(e) = spawned {
                    ctx.say(format!("warning: could not start a writer thread: {e}"));
                }
            }
            write_all(conn, &ctx, &receivers, &next_write, &mut |conn, k| {
                if k > 0 && journal == store::Journal::BulkLoad {
                    // The big first capture is in; the rest are written in WAL (see above).
                    match conn.end_ingest() {
                        Ok(()) => journal = store::Journal::Wal,
                        Err(e) => ctx.say(format!(
                            "warning: could not switch the database to WAL: {e}"
                        )),
                    }
                }
            });
        });
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Err(e) = conn.end_ingest() {
        log(format!(
            "warning: could not switch the database back to WAL: {e}"
        ));
    }
    summary.waited = store::lock_waited();
    summary.elapsed = started.elapsed().saturating_sub(summary.waited);
    summary
}

/// Captures at least this big are bulk-loaded into an empty database (`store::begin_ingest`).
const BULK_LOAD_MIN_BYTES: u64 = 32 << 20;
