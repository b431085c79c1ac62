//! `traceflow ingest --watch DIR...`: indexes what the folders hold, then each capture once it is complete
//! (closed after writing, renamed into place, or unchanged for `--settle`), in name order, until SIGTERM, SIGHUP
//! or Ctrl-C. inotify events (the `notify` crate) tell when a file is closed or renamed into place; a rescan at
//! every tick finds everything else, so a file system that gives no events (NFS, some FUSE) is watched by
//! polling alone, with the settle rule. Each capture goes through the ordinary ingest, whose rules make
//! rotation safe: the cheap skip (same path, size and mtime) makes a restart idempotent, the same content under
//! a new path (`.pcap` compressed to `.pcap.gz`) adds the path, and new content under a known path (a ring
//! rewritten, a growing file with `--partial`) replaces the capture.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Expanded, Input, Options, Summary};
use crate::store::{self, Db, Target};

/// How `ingest --watch` runs, beyond the ingest's own [`Options`].
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// A file unchanged (size and mtime) this long is complete (`--settle`).
    pub settle: Duration,
    /// Rescan only, without inotify (`--poll`).
    pub poll: bool,
    /// Also index files still being written, this often (`--partial --interval`).
    pub partial: Option<Duration>,
    /// Forget the captures whose every path is gone, once no file is pending (`--forget-missing`).
    pub forget_missing: bool,
    /// Set by the signal handler (which also cancels the ingest in progress): the watcher ends.
    pub stop: Arc<AtomicBool>,
    /// Between two summary lines without `--verbose`.
    pub report_every: Duration,
}

/// What a watcher did, in total.
#[derive(Clone, Debug, Default)]
pub struct WatchSummary {
    /// Captures indexed (partial indexes of growing files included).
    pub indexed: u64,
    /// Frames of those captures.
    pub frames: u64,
    /// Flows of those captures.
    pub flows: u64,
    /// Files skipped: already indexed, not captures.
    pub skipped: u64,
    /// Files that failed (unreadable, damaged beyond a header).
    pub failed: u64,
    /// Captures forgotten (`--forget-missing`).
    pub forgotten: u64,
    /// Database errors met (each retried).
    pub db_errors: u64,
}

impl WatchSummary {
    fn add(&mut self, s: &Summary) {
        self.indexed += s.indexed;
        self.frames += s.frames;
        self.flows += s.flows;
        self.skipped += s.skipped;
        self.failed += s.failed;
    }

    fn is_empty(&self) -> bool {
        self.indexed + self.skipped + self.failed + self.forgotten + self.db_errors == 0
    }

    /// `12 captures indexed (3400 frames, 120 flows), 1 skipped, 0 failed, 0 forgotten`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} indexed ({} frames, {} flows), {} skipped, {} failed, {} forgotten",
            crate::msg::count(self.indexed, "capture"),
            self.frames,
            self.flows,
            self.skipped,
            self.failed,
            self.forgotten
        );
        if self.db_errors > 0 {
            s.push_str(&format!(
                ", {} retried",
                crate::msg::count(self.db_errors, "database error")
            ));
        }
        s
    }
}

/// Size and mtime (ns), as the cheap skip compares them.
type Stat = (u64, Option<i64>);

/// What the watcher knows of one file.
struct Tracked {
    stat: Stat,
    /// When `stat` was first seen.
    since: Instant,
    /// An inotify event said the file was closed after writing or renamed into place, and nothing wrote to it
    /// since.
    closed: bool,
    /// Seen by the first scan with an mtime older than `--settle`: complete already.
    old_at_start: bool,
    /// Seen by the first scan and unchanged since: what the folder held when the watcher started, indexed in name
    /// order before anything that arrives later (a watcher restarted after a kill finds files younger than
    /// `--settle` that are complete, and the files that arrive meanwhile must not take their place in line).
    at_start: bool,
    /// The stat of the last ingest of the file (of whatever outcome: a file that is not a capture is not read
    /// again until it changes).
    done: Option<Stat>,
    /// When the growing file was last indexed (`--partial`).
    partial_at: Option<Instant>,
}

fn stat_of(m: &std::fs::Metadata) -> Stat {
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64);
    (m.len(), mtime)
}

/// The inotify side: events for the watched folders, or `None` when polling.
struct Events {
    rx: crossbeam_channel::Receiver<notify::Result<notify::Event>>,
    _watcher: notify::RecommendedWatcher,
}

impl Events {
    fn start(dirs: &[PathBuf]) -> Result<Events, notify::Error> {
        use notify::Watcher;
        // Bounded: a flood of events must not grow memory; one that is dropped only costs the settle time.
        let (tx, rx) = crossbeam_channel::bounded(4096);
        let mut w = notify::recommended_watcher(move |e| {
            let _ = tx.try_send(e);
        })?;
        for d in dirs {
            w.watch(d, notify::RecursiveMode::Recursive)?;
        }
        Ok(Events { rx, _watcher: w })
    }

    /// Applies the events that arrived within `wait` (and any already queued) to `closed`: `true` for a file
    /// closed after writing or renamed into place, `false` for one written to since.
    fn drain(&self, wait: Duration, closed: &mut HashMap<PathBuf, bool>) {
        use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
        let mut first = self.rx.recv_timeout(wait).ok();
        while let Some(e) = first.take().or_else(|| self.rx.try_recv().ok()) {
            let Ok(e) = e else { continue };
            match e.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    if let Some(p) = e.paths.first() {
                        closed.insert(p.clone(), true);
                    }
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                    if let Some(p) = e.paths.get(1) {
                        closed.insert(p.clone(), true);
                    }
                }
                EventKind::Modify(ModifyKind::Data(_)) | EventKind::Create(_) => {
                    for p in e.paths {
                        closed.insert(p, false);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Lists the regular files under `dirs` as a plain ingest walks them (sorted, links only inside the folder),
/// without hidden files (`.name.XXXXXX`, what rsync writes before renaming into place). Warnings already given
/// are not repeated.
fn scan(
    dirs: &[PathBuf],
    warned: &mut HashSet<String>,
    log: &mut dyn FnMut(String),
) -> Vec<PathBuf> {
    let x = super::expand_inputs(dirs, &mut |m| {
        if warned.len() > 1000 {
            warned.clear();
        }
        if warned.insert(m.clone()) {
            log(format!("warning: {m}"));
        }
    });
    x.inputs
        .into_iter()
        .filter_map(|i| match i {
            Input::File(p) => Some(p),
            Input::Stdin => None,
        })
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// Ingests one file found in a folder (a file there that is not a capture is skipped, not an error).
fn ingest_file(
    db: &mut Db,
    path: &Path,
    opts: &Options,
    log: &mut (dyn FnMut(String) + Send),
) -> Summary {
    let x = Expanded {
        inputs: vec![Input::File(path.to_path_buf())],
        in_folder: vec![true],
        failed: 0,
        skipped: 0,
    };
    super::run_inputs(db, x, Instant::now(), opts, log)
}

/// Sleeps `d` in small steps, returning early when the watcher is stopped.
fn nap(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Watches `dirs` and ingests into `target` until stopped. `opts.quiet` and `opts.verbose` are the command's;
/// `log` gets every message. Returns what it did; the only error is a database that cannot be opened at the
/// start (later errors are retried).
pub fn run(
    target: &Target,
    dirs: &[PathBuf],
    opts: &Options,
    w: &WatchOptions,
    log: &mut (dyn FnMut(String) + Send),
) -> Result<WatchSummary, store::StoreError> {
    let mut db = Db::open(target)?;
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
        .collect();
    let events = if w.poll {
        None
    } else {
        match Events::start(&dirs) {
            Ok(e) => Some(e),
            Err(e) => {
                log(format!(
                    "warning: inotify is not available ({e}); polling instead"
                ));
                None
            }
        }
    };
    let tick = (w.settle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    if !opts.quiet {
        let how = match &events {
            Some(_) => "inotify events and a rescan".to_string(),
            None => "polling".to_string(),
        };
        log(format!(
            "watching {} with {how} every {}, settle {}{}",
            crate::msg::count(dirs.len() as u64, "folder"),
            crate::msg::duration(tick),
            crate::msg::duration(w.settle),
            match w.partial {
                Some(i) => format!(", growing files indexed every {}", crate::msg::duration(i)),
                None => String::new(),
            }
        ));
    }
    let inner = Options {
        // The watcher's own lines replace the progress bar; per-capture lines stay with --verbose.
        quiet: true,
        connections: opts.connections || db.caps().connections_at_ingest,
        ..opts.clone()
    };
    let mut files: HashMap<PathBuf, Tracked> = HashMap::new();
    let mut closed: HashMap<PathBuf, bool> = HashMap::new();
    let mut warned = HashSet::new();
    let mut total = WatchSummary::default();
    let mut minute = WatchSummary::default();
    let mut reported = Instant::now();
    let mut first_scan = true;
    let mut gone_since_forget = w.forget_missing;
    let mut backoff = Duration::from_secs(1);
    let say = |log: &mut (dyn FnMut(String) + Send), m: String| log(m);
    while !w.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let wall = SystemTime::now();
        let found = scan(&dirs, &mut warned, &mut |m| say(log, m));
        let found_set: HashSet<&PathBuf> = found.iter().collect();
        let before = files.len();
        files.retain(|p, _| found_set.contains(p));
        if files.len() < before {
            gone_since_forget |= w.forget_missing;
        }
        for p in &found {
            let Ok(m) = std::fs::metadata(p) else {
                continue;
            };
            let st = stat_of(&m);
            let t = files.entry(p.clone()).or_insert_with(|| Tracked {
                stat: st,
                since: now,
                closed: false,
                old_at_start: first_scan
                    && m.modified()
                        .ok()
                        .and_then(|t| wall.duration_since(t).ok())
                        .is_some_and(|age| age >= w.settle),
                at_start: first_scan,
                done: None,
                partial_at: None,
            });
            if t.stat != st {
                t.stat = st;
                t.since = now;
                t.old_at_start = false;
                t.at_start = false;
                // A close seen before this change says nothing of it: a ring slot reopened with O_TRUNC is
                // written again from here (its own close, if it came already, is in `closed`).
                t.closed = false;
            }
            if let Some(c) = closed.get(p) {
                t.closed = *c;
            }
        }
        closed.clear();
        first_scan = false;
        // Complete files not indexed as they are now, in the order of the scan (folders as given, names sorted).
        let mut pending = false;
        let mut due = tick;
        let wall_ns = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let settle_ns = w.settle.as_nanos() as i64;
        let mut todo: Vec<(PathBuf, bool)> = Vec::new();
        // A folder whose files, there at the start, are still settling: its later names wait behind them.
        let mut held: Option<&Path> = None;
        for p in &found {
            let Some(t) = files.get(p) else { continue };
            if t.done == Some(t.stat) {
                continue;
            }
            // Unchanged for --settle: counted from the mtime (so a file is due at mtime + settle, not a tick
            // later), once a scan before this one saw the same stat; else from when this watcher first saw it
            // (a file system whose clock is ahead of ours).
            let age = t
                .stat
                .1
                .map(|m| wall_ns.saturating_sub(m))
                .filter(|_| t.since < now)
                .unwrap_or(0)
                .max(now.duration_since(t.since).as_nanos() as i64);
            let complete = t.closed || t.old_at_start || age >= settle_ns;
            if !complete {
                due = due.min(Duration::from_nanos((settle_ns - age).max(0) as u64));
            }
            if complete && held.is_some() && held == p.parent() {
                pending = true;
            } else if complete {
                todo.push((p.clone(), false));
            } else {
                if t.at_start {
                    held = p.parent();
                }
                pending = true;
                if let Some(every) = w.partial {
                    if t.stat.0 > 0
                        && t.partial_at
                            .is_none_or(|at| now.duration_since(at) >= every)
                    {
                        todo.push((p.clone(), true));
                    }
                }
            }
        }
        for (p, partial) in todo {
            if w.stop.load(Ordering::SeqCst) {
                break;
            }
            let Some(stat) = files.get(&p).map(|t| t.stat) else {
                continue;
            };
            let verbose = opts.verbose;
            let mut filtered = |m: String| {
                // A growing file ends mid-record: its truncation is expected, not news.
                if !partial || verbose || !m.starts_with("warning:") {
                    log(m)
                }
            };
            let s = ingest_file(&mut db, &p, &inner, &mut filtered);
            if let Some(e) = &s.database_error {
                total.db_errors += 1;
                minute.db_errors += 1;
                log(format!(
                    "error: database: {e}; retrying in {}",
                    crate::msg::duration(backoff)
                ));
                if !w.stop.load(Ordering::SeqCst) {
                    opts.cancel.reset();
                }
                nap(backoff, &w.stop);
                backoff = (backoff * 2).min(Duration::from_secs(60));
                match Db::open(target) {
                    Ok(d) => db = d,
                    Err(e) => log(format!("error: reopening the database: {e}")),
                }
                // The rest waits for the next round, in order.
                break;
            }
            backoff = Duration::from_secs(1);
            if s.interrupted {
                break;
            }
            total.add(&s);
            minute.add(&s);
            if let Some(t) = files.get_mut(&p) {
                t.done = Some(stat);
                if partial {
                    t.partial_at = Some(Instant::now());
                }
            }
        }
        if gone_since_forget && !pending && !w.stop.load(Ordering::SeqCst) {
            match forget_missing(&db, &dirs, log) {
                Ok(n) => {
                    total.forgotten += n;
                    minute.forgotten += n;
                    gone_since_forget = false;
                }
                Err(e) => log(format!("error: --forget-missing: {e}; trying again later")),
            }
        }
        if !opts.verbose && !opts.quiet && reported.elapsed() >= w.report_every {
            if !minute.is_empty() {
                log(format!(
                    "last {}: {}",
                    crate::msg::duration(reported.elapsed()),
                    minute.line()
                ));
            }
            minute = WatchSummary::default();
            reported = Instant::now();
        }
        match &events {
            Some(ev) => {
                ev.drain(due.max(Duration::from_millis(5)), &mut closed);
                // A burst of write events must not turn into a rescan per write.
                std::thread::sleep(Duration::from_millis(20));
                ev.drain(Duration::ZERO, &mut closed);
            }
            None => nap(due.max(Duration::from_millis(5)), &w.stop),
        }
    }
    Ok(total)
}

/// Forgets the captures whose every path, all under `dirs`, is gone; says which. Captures with a path
/// elsewhere (another sensor's folder, on another host) are left alone.
fn forget_missing(
    db: &Db,
    dirs: &[PathBuf],
    log: &mut (dyn FnMut(String) + Send),
) -> Result<u64, String> {
    let ids = store::retention::missing_under(db, dirs).map_err(|e| e.to_string())?;
    if ids.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = ids
        .iter()
        .map(|&id| db.capture_name(id).ok().flatten().unwrap_or_default())
        .collect();
    let done = store::forget(db, &ids).map_err(|e| e.to_string())?;
    for (id, name) in ids.iter().zip(names) {
        log(format!("forgot capture {id} ({name}): its files are gone"));
    }
    Ok(done.captures)
}
