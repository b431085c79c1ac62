//! `traceflow ingest`: walks the inputs, reads and traces each capture on worker threads, and feeds one SQLite
//! writer, one transaction per capture, in input order (so results do not depend on `--jobs`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::capture::{CaptureReader, FileStat, OpenError};
use crate::conn::{ConnRecord, ConnSeg, Connections};
use crate::decode::decode;
use crate::store::{self, CaptureEnd, CaptureSource, Db, FrameRow, Outcome, Superseded, TcpRow};
use crate::trace::buckets::{BucketRow, Buckets};
use crate::trace::endpoints::{EndpointRow, Endpoints};
use crate::trace::{FlowRecord, Tracer};

pub mod watch;

/// Frames per message to the writer: large enough to amortise channel costs, small enough to stay in cache.
const BATCH: usize = 4096;
/// Frame bytes per message with --embed: with large frames, a batch of BATCH frames would hold hundreds of MiB.
const BATCH_BYTES: usize = 8 << 20;
/// Batches queued per capture; bounds the row batches whatever the capture size (frame bytes: `IN_FLIGHT_BYTES`).
const QUEUE: usize = 8;
/// Frame bytes (--embed) queued between all readers and the writer together. Counting batches bounded nothing:
/// with 256 MiB records, every record is a batch, and 8 of them queued per reader made gigabytes.
const IN_FLIGHT_BYTES: usize = 4 * BATCH_BYTES;
/// Records per on-disk byte beyond which a capture is warned about (after `FLOOD_MIN_RECORDS`): a real capture
/// holds at least a record header per record, while a flood of empty records compresses to almost nothing.
const FLOOD_RECORDS_PER_BYTE: u64 = 1;
const FLOOD_MIN_RECORDS: u64 = 100_000;

/// The budget of frame bytes in flight: a reader acquires a batch's bytes before sending it, and they are released
/// when the writer has inserted the batch (the lease travels in the message and is dropped with it).
///
/// The writer takes captures in input order, so a reader of a later capture holding the budget must not starve
/// the capture the writer waits for: that one may always send a batch when none of its own is in flight. A batch
/// larger than the whole budget passes when nothing else is in flight. Either way there is no deadlock, and the
/// bytes in flight stay under the budget plus one batch.
pub struct Budget {
    limit: usize,
    state: Mutex<BudgetState>,
    freed: Condvar,
}

struct BudgetState {
    total: usize,
    /// Bytes in flight per capture (index into the captures to write).
    own: Vec<usize>,
    /// The capture the writer is at.
    current: usize,
}

struct Lease {
    budget: Arc<Budget>,
    capture: usize,
    bytes: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.budget.lock();
        s.total -= self.bytes;
        s.own[self.capture] -= self.bytes;
        self.budget.freed.notify_all();
    }
}

impl Budget {
    /// A budget of `limit` frame bytes in flight, shared by the readers of `captures` captures.
    pub fn new(limit: usize, captures: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            state: Mutex::new(BudgetState {
                total: 0,
                own: vec![0; captures],
                current: 0,
            }),
            freed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        // The state is a few counters updated in one step: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `bytes` of capture `capture` may be in flight; the lease gives them back when dropped.
    fn acquire(self: &Arc<Self>, capture: usize, bytes: usize) -> Option<Box<dyn Send>> {
        if bytes == 0 {
            return None;
        }
        let mut s = self.lock();
        // `capture < current`: the writer gave up on it; let the send fail at once instead of waiting.
        while !(s.total == 0
            || s.total + bytes <= self.limit
            || (capture <= s.current && s.own[capture] == 0))
        {
            s = self.freed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.total += bytes;
        s.own[capture] += bytes;
        Some(Box::new(Lease {
            budget: self.clone(),
            capture,
            bytes,
        }))
    }

    /// A writer moved on to `capture`. Writers take captures in order, so every capture up to the furthest one
    /// is written or being written.
    fn writer_at(&self, capture: usize) {
        let mut s = self.lock();
        s.current = s.current.max(capture);
        drop(s);
        self.freed.notify_all();
    }

    /// Frame bytes in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().total
    }
}

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
    /// Track connections while reading (`--connections`): about a fifth more ingest CPU. Without it, the first
    /// command that needs connections builds them from the frame rows (`conn::rebuild::ensure`).
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

/// One input: a file path, or standard input.
#[derive(Clone, Debug)]
pub enum Input {
    /// A capture file: a path given, or a file found in a folder given.
    File(PathBuf),
    /// Standard input (`-`), read as a stream.
    Stdin,
}

/// The inputs found by `expand_inputs`, and the paths that failed or were skipped on the way.
#[derive(Debug, Default)]
pub struct Expanded {
    /// The captures to read, in the order given, each folder's files in sorted order.
    pub inputs: Vec<Input>,
    /// For each input, whether it was found in a folder (rather than named): a file there that is not a
    /// capture (a README, a checksum) is skipped; one named on the command line is an error.
    pub in_folder: Vec<bool>,
    /// Paths that could not be read or listed.
    pub failed: u64,
    /// Entries of folders that are not regular files (FIFOs, sockets, devices).
    pub skipped: u64,
}

/// Expands folders recursively in sorted order; a path that cannot be listed is reported and counted as failed.
pub fn expand_inputs(args: &[PathBuf], warn: &mut dyn FnMut(String)) -> Expanded {
    let mut x = Expanded::default();
    let mut seen = std::collections::HashSet::new();
    for a in args {
        if a.as_os_str() == "-" {
            x.inputs.push(Input::Stdin);
            x.in_folder.push(false);
            continue;
        }
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => {
                // Symbolic links are followed only into this folder, so it is resolved once, here.
                let root = std::fs::canonicalize(a).unwrap_or_else(|_| a.clone());
                walk(a, &root, &mut x, warn, &mut seen)
            }
            // Named on the command line, anything readable is read, a FIFO included: the user asked for it.
            Ok(_) => {
                x.inputs.push(Input::File(a.clone()));
                x.in_folder.push(false);
            }
            Err(e) => {
                warn(format!("{}: {e}", a.display()));
                x.failed += 1;
            }
        }
    }
    x
}

/// What kind of thing that is neither a file nor a folder `t` is, for the message that skips it.
fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// `seen` holds the folders already walked (resolved), so symbolic-link loops end instead of recursing forever.
/// A link to a folder is followed only when it resolves inside `root` (the resolved folder the walk started
/// from): a link to `/etc` or `/` must not turn an archive walk into a walk of the system.
fn walk(
    dir: &Path,
    root: &Path,
    x: &mut Expanded,
    warn: &mut dyn FnMut(String),
    seen: &mut std::collections::HashSet<PathBuf>,
) {
    if !seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            warn(format!("{}: {e}", dir.display()));
            x.failed += 1;
            return;
        }
    };
    entries.sort();
    for p in entries {
        let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => {
                if is_link {
                    let inside = std::fs::canonicalize(&p).is_ok_and(|t| t.starts_with(root));
                    if !inside {
                        warn(format!(
                            "{}: symlink to a folder outside {}, not followed",
                            p.display(),
                            root.display()
                        ));
                        continue;
                    }
                }
                walk(&p, root, x, warn, seen)
            }
            Ok(m) if m.is_file() => {
                x.inputs.push(Input::File(p));
                x.in_folder.push(true);
            }
            Ok(m) => {
                // Opening a FIFO would wait for a writer, and a device could be endless: not a capture in a folder.
                warn(format!(
                    "{}: not a regular file ({}), skipped",
                    p.display(),
                    special_kind(m.file_type())
                ));
                x.skipped += 1;
            }
            Err(_) if is_link => {
                // A dangling link inside a folder: not a capture, and no capture failed; counted as skipped, so a
                // stale link in an archive does not fail every cron run.
                warn(format!("{}: dangling symbolic link, skipped", p.display()));
                x.skipped += 1;
            }
            Err(e) => {
                warn(format!("{}: {e}", p.display()));
                x.failed += 1;
            }
        }
    }
}

/// What to record of a file read in full: the bytes read and the mtime at the end of the read, and whether the
/// file changed meanwhile (its size at open or at the end is not what was read, or its mtime moved). `listed` is
/// the stat from before the read, `at_open` and `at_end` fstats of the open file.
fn as_read(
    listed: FileStat,
    at_open: Option<FileStat>,
    read: u64,
    at_end: Option<FileStat>,
) -> (FileStat, bool) {
    let Some(end) = at_end else {
        // No fstat (a stream): only the bytes read are known.
        return ((read, None), false);
    };
    let open = at_open.unwrap_or(listed);
    let changed =
        listed.0 != read || open.0 != read || end.0 != read || listed.1 != end.1 || open.1 != end.1;
    ((read, end.1), changed)
}

fn source_of(input: &Input, stdin_name: Option<&str>) -> CaptureSource {
    match input {
        Input::Stdin => CaptureSource {
            name: stdin_name.unwrap_or("stdin").into(),
            path: "-".into(),
            size: 0,
            mtime_ns: None,
        },
        Input::File(p) => {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            let meta = std::fs::metadata(p).ok();
            CaptureSource {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: abs.to_string_lossy().into_owned(),
                size: meta.as_ref().map(|m| m.len()).unwrap_or(0),
                mtime_ns: meta.and_then(|m| m.modified().ok()).and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_nanos() as i64)
                }),
            }
        }
    }
}

/// Messages from a capture's reader thread to the writer.
enum Msg {
    /// Frames, the flows closed meanwhile, and (with --embed) the frames' bytes concatenated in frame order.
    Batch {
        frames: Vec<FrameRow>,
        flows: Vec<FlowRecord>,
        /// Connections done: replaced by a reused key, or (at the end) all the others.
        conns: Vec<ConnRecord>,
        data: Vec<u8>,
        bytes_read: u64,
        /// Dropped once the writer has inserted the batch (or dropped it unread): releases the reader's claim on
        /// the memory budget for frame bytes in flight (`ingest::Budget`).
        held: Option<Box<dyn Send>>,
    },
    /// The capture's endpoint tally so far (each is added to what the writer already holds).
    Endpoints(Vec<EndpointRow>),
    /// Parts of the capture's flow bucket lists.
    Buckets(Vec<BucketRow>),
    End(CaptureEnd),
    Failed(ReadFailure),
}

/// What the writer hands back to the readers once a batch is in the database: its frame vector, emptied, and
/// the flow records' text buffers. Reused for the next batches, they spare the reader an allocation per batch and
/// per flow record, and the writer freeing them: on a SYN scan, a record per flow. (Not the flow vector: a
/// parking round's batch holds thousands of records, and spare ones of that size cost the scan 7 MB of peak RSS.)
struct Empties {
    frames: Vec<FrameRow>,
    texts: Vec<String>,
}

/// Batches' worth of `Empties` waiting for a reader; when the readers do not keep up, the writer frees the rest.
const SPARE_BATCHES: usize = 2;

/// Why a capture's reader stopped without reaching its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// The run was cancelled (Ctrl-C): the capture is rolled back, and the run stops.
    Interrupted,
    /// The input is no capture (empty, or no pcap/pcapng magic): skipped, not an error. The text says why.
    NotCapture(String),
    /// The input could not be read as a capture; the text says why.
    Failed(String),
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

/// Writes one capture from its reader's messages with a [`store::CaptureWriter`]: committed at the reader's
/// end, rolled back if it fails. `on_batch` sees the bytes read so far and each batch's frames and flows.
fn write_capture(
    mut w: store::Writer<'_>,
    rx: &crossbeam_channel::Receiver<Msg>,
    spare: &Sender<Empties>,
    opts: &Options,
    on_batch: &mut dyn FnMut(u64, u64, u64),
) -> Result<Result<Outcome, ReadFailure>, store::StoreError> {
    if opts.community_id_seed != 0 {
        w.set_community_id_seed(opts.community_id_seed)?;
    }
    loop {
        match rx.recv() {
            // The reader died without a word: a failure, rolled back.
            Err(_) => {
                return Ok(Err(ReadFailure::Failed(
                    "reader stopped unexpectedly".into(),
                )))
            }
            Ok(Msg::Batch {
                mut frames,
                flows,
                conns,
                data,
                bytes_read,
                held,
            }) => {
                w.add(&frames, &flows, &data)?;
                w.add_connections(&conns)?;
                // The batch is in the database: its bytes leave the budget.
                drop(held);
                // A flow stored again after it was parked is not another flow.
                let new_flows = flows.iter().filter(|f| !f.replaces()).count();
                on_batch(bytes_read, frames.len() as u64, new_flows as u64);
                frames.clear();
                let texts = flows.into_iter().map(FlowRecord::into_text).collect();
                // Full: the readers have enough spares, and these are freed here.
                let _ = spare.try_send(Empties { frames, texts });
            }
            Ok(Msg::Endpoints(rows)) => w.add_endpoints(&rows)?,
            Ok(Msg::Buckets(rows)) => w.add_buckets(&rows)?,
            Ok(Msg::End(end)) => return Ok(Ok(w.finish(end)?)),
            Ok(Msg::Failed(why)) => return Ok(Err(why)),
        }
    }
}

/// Where a reader's batches go: the writer's channel, the shared byte budget, and the capture they belong to.
struct Outbox<'a> {
    cancel: &'a Cancel,
    tx: &'a Sender<Msg>,
    /// Vectors and text buffers of batches the writer is done with.
    spares: &'a Receiver<Empties>,
    budget: &'a Arc<Budget>,
    capture: usize,
}

/// The rows a reader holds until the next batch: frames, the flows and connections they closed, and the frame
/// bytes (`--embed`).
struct Pending {
    frames: Vec<FrameRow>,
    flows: Vec<FlowRecord>,
    conns: Vec<ConnRecord>,
    data: Vec<u8>,
    /// Text buffers the writer handed back, for the tracer's next records (`Tracer::recycle_texts`).
    texts: Vec<String>,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            frames: Vec::with_capacity(BATCH),
            flows: Vec::new(),
            conns: Vec::new(),
            data: Vec::new(),
            texts: Vec::new(),
        }
    }

    /// Sends what is held as one batch (`bytes_read`: where the capture's bytes it covers end). False when the
    /// run was cancelled or the writer hung up: the reader stops.
    fn send(&mut self, out: &Outbox, bytes_read: u64) -> bool {
        if out.cancel.is_cancelled() {
            let _ = out.tx.send(Msg::Failed(ReadFailure::Interrupted));
            return false;
        }
        // In creation order, the writer's inserts into flows (keyed by flow_no) and flows_first_ns land next to
        // each other instead of all over the B-trees' right edges: 0.84 -> 0.77 s on the benchmark. Stable: a
        // flow parked, back and parked again has several rows here, and the writer keeps the last.
        self.flows.sort_by_key(|f| f.flow_no);
        self.conns.sort_unstable_by_key(|c| c.conn_no);
        let held = out.budget.acquire(out.capture, self.data.len());
        let mut frames = match out.spares.try_recv() {
            Ok(e) => {
                self.texts = e.texts;
                e.frames
            }
            Err(_) => Vec::new(),
        };
        frames.reserve(BATCH);
        let batch = Msg::Batch {
            frames: std::mem::replace(&mut self.frames, frames),
            flows: std::mem::take(&mut self.flows),
            conns: std::mem::take(&mut self.conns),
            data: std::mem::take(&mut self.data),
            bytes_read,
            held,
        };
        out.tx.send(batch).is_ok()
    }
}

/// Counts a flow record's frames in the endpoint tally: those an earlier row of the flow did not count (the row
/// stored when it was parked), so that each frame counts once however often the flow is parked and comes back.
fn count_endpoints(endpoints: &mut Endpoints, r: &FlowRecord) {
    let (packets, bytes) = (r.packets - r.counted.0, r.bytes - r.counted.1);
    endpoints.observe_flow_addrs(&r.src_addr, &r.dst_addr, packets, bytes);
}

/// A flow record's Community ID from the connection tracker, when connections are tracked (else the tracer made
/// it). The text of an address parses back to it (IPv4-mapped IPv6 included).
fn set_community_id(connections: Option<&Connections>, r: &mut FlowRecord) {
    if let Some(c) = connections {
        if let (Ok(s), Ok(d)) = (r.src().parse(), r.dst().parse()) {
            let id = c.community_id(s, r.sport, d, r.dport);
            r.set_community_id(&id);
        }
    }
}

/// Reads, decodes and traces one capture (number `capture` of those to write), sending rows to the writer.
/// Returns when done or when the writer hung up.
/// `parked_rows`: the writer can replace a flow's row (SQLite), so parked flows' rows are handed over as they
/// are parked (`Tracer::with_parked_rows`).
fn read_capture(
    input: &Input,
    opts: &Options,
    tx: &Sender<Msg>,
    spares: &Receiver<Empties>,
    budget: &Arc<Budget>,
    capture: usize,
    parked_rows: bool,
) {
    let embed = opts.embed;
    let opened = match input {
        Input::Stdin => CaptureReader::from_reader(Box::new(std::io::stdin())),
        Input::File(p) => CaptureReader::open(p),
    };
    let mut reader = match opened {
        Ok(r) => r,
        Err(OpenError::NotCapture(m)) => {
            let why = if m.is_empty() {
                "empty file, not a capture".to_string()
            } else {
                format!("not a capture (first bytes {m})")
            };
            let _ = tx.send(Msg::Failed(ReadFailure::NotCapture(why)));
            return;
        }
        Err(e) => {
            let _ = tx.send(Msg::Failed(ReadFailure::Failed(e.to_string())));
            return;
        }
    };
    // With --connections, flows get their Community ID from the connection tracker, which hashes each key once;
    // without, the tracer hashes each flow's.
    let mut connections = opts
        .connections
        .then(|| Connections::new(opts.community_id_seed));
    let mut tracer = Tracer::with_max_open(opts.max_open_flows);
    if let Some(bytes) = opts.park_memory {
        tracer = tracer.with_park_memory(bytes);
    }
    if connections.is_none() {
        tracer = tracer.with_community_id_seed(opts.community_id_seed);
    }
    if parked_rows {
        tracer = tracer.with_parked_rows();
    }
    let out = Outbox {
        cancel: &opts.cancel,
        tx,
        spares,
        budget,
        capture,
    };
    let mut pending = Pending::new();
    let mut endpoints = Endpoints::default();
    let mut buckets = Buckets::default();
    let (mut n, mut tcp_frames) = (0u64, 0u64);
    let (mut first_ns, mut last_ns) = (None, None);
    loop {
        if let Some(max) = opts.max_frames {
            if n >= max {
                reader.stop_here(format!("--max-frames {max} reached"));
                break;
            }
        }
        // Where a batch flushed before this frame joins it ends (the frame borrows the reader below).
        let read_before = if embed { reader.bytes_read() } else { 0 };
        let Some(f) = reader.next_frame() else {
            break;
        };
        // Flush before the frame that would take the batch past BATCH_BYTES, so a batch holds at most
        // BATCH_BYTES, or one frame larger than that.
        if embed && !pending.data.is_empty() && pending.data.len() + f.data.len() > BATCH_BYTES {
            let sent = pending.send(&out, read_before);
            if !sent {
                return;
            }
            tracer.recycle_texts(&mut pending.texts);
        }
        n = f.number;
        let ts_ns = f.ts.as_ns();
        first_ns.get_or_insert(ts_ns);
        last_ns = Some(ts_ns);
        let decoded = decode(f.linktype, f.data);
        endpoints.observe(f.data, &decoded, f.origlen);
        if endpoints.is_full() && tx.send(Msg::Endpoints(endpoints.take())).is_err() {
            return;
        }
        if buckets.is_full() && tx.send(Msg::Buckets(buckets.take())).is_err() {
            return;
        }
        let tcp = decoded.tcp.map(|t| {
            tcp_frames += 1;
            let (flow_no, prev_frame) =
                tracer.observe_linked(f.number, &f.ts, f.origlen, &t, &mut |mut r| {
                    if r.provisional {
                        // A parked flow's row (other keys than this frame's): its Community ID now.
                        set_community_id(connections.as_ref(), &mut r);
                    }
                    count_endpoints(&mut endpoints, &r);
                    pending.flows.push(r)
                });
            if prev_frame.is_none() {
                buckets.add(flow_no, &t.src, t.sport, &t.dst, t.dport);
            }
            let seg = ConnSeg {
                number: f.number,
                ts_ns,
                origlen: f.origlen,
                src: t.src,
                sport: t.sport,
                dst: t.dst,
                dport: t.dport,
                flags: t.flags,
                seq: t.seq,
                ack: t.ack,
                payload_len: t.payload_len,
                flow_no,
            };
            let conn_no = connections.as_mut().map(|c| {
                let no = c.observe(&seg, &mut |r| pending.conns.push(r));
                // A flow this frame closed has the frame's key.
                for r in pending
                    .flows
                    .iter_mut()
                    .rev()
                    .take_while(|r| r.community_id().is_empty())
                {
                    r.set_community_id(&c.community_id(t.src, t.sport, t.dst, t.dport));
                }
                no
            });
            TcpRow {
                conn_no,
                flow_no,
                prev_frame,
                flags: t.flags,
                seq: t.seq,
                ack: t.ack,
                win: t.window,
                payload_len: t.payload_len,
            }
        });
        if embed {
            pending.data.extend_from_slice(f.data);
        }
        pending.frames.push(FrameRow {
            number: f.number,
            ts_ns,
            caplen: f.caplen,
            origlen: f.origlen,
            iface: f.iface,
            offset: f.offset,
            tcp,
        });
        if pending.frames.len() >= BATCH || pending.data.len() >= BATCH_BYTES {
            let read = reader.bytes_read();
            if !pending.send(&out, read) {
                return;
            }
            tracer.recycle_texts(&mut pending.texts);
        }
    }
    let flows_total = u64::from(tracer.created());
    // A regular file is drained so that its hash covers all of it. A stream is not: after damage it may go on for
    // ever (a live pipe), and the capture would never commit.
    if !reader.is_stream() || reader.truncation().is_none() {
        reader.drain();
    }
    let bytes_read = reader.bytes_read();
    // The still-open flows go out in batches too, so the end of a capture with many open flows costs no spike.
    if !pending.send(&out, bytes_read) {
        return;
    }
    tracer.recycle_texts(&mut pending.texts);
    let mut open = Vec::with_capacity(BATCH);
    let mut hung_up = false;
    // A flow still parked is not read back: its row was stored, and its endpoints counted, when it was parked.
    let finished = tracer.finish(&mut |mut r| {
        set_community_id(connections.as_ref(), &mut r);
        count_endpoints(&mut endpoints, &r);
        // A capture of many open flows (PostgreSQL: parked ones too) ends here: without this hand-on the tally
        // of their addresses grew by 60 MB at the end of a capture that left 2.5M flows open (issue 17).
        if endpoints.is_full() && !hung_up {
            hung_up = tx.send(Msg::Endpoints(endpoints.take())).is_err();
        }
        open.push(r);
        if open.len() >= BATCH && !hung_up {
            let batch = Msg::Batch {
                frames: Vec::new(),
                flows: std::mem::replace(&mut open, Vec::with_capacity(BATCH)),
                conns: Vec::new(),
                data: Vec::new(),
                bytes_read,
                held: None,
            };
            hung_up = tx.send(batch).is_err();
        }
    });
    if let Err(e) = finished {
        let _ = tx.send(Msg::Failed(ReadFailure::Failed(e.to_string())));
        return;
    }
    let batch = Msg::Batch {
        frames: Vec::new(),
        flows: open,
        conns: Vec::new(),
        data: Vec::new(),
        bytes_read,
        held: None,
    };
    if hung_up || tx.send(batch).is_err() {
        return;
    }
    // The connections still in memory, in batches as the flows.
    let mut done = Vec::with_capacity(BATCH);
    let mut hung_up = false;
    connections.into_iter().for_each(|t| {
        t.finish(&mut |c| {
            done.push(c);
            if done.len() >= BATCH && !hung_up {
                let batch = Msg::Batch {
                    frames: Vec::new(),
                    flows: Vec::new(),
                    conns: std::mem::replace(&mut done, Vec::with_capacity(BATCH)),
                    data: Vec::new(),
                    bytes_read,
                    held: None,
                };
                hung_up = tx.send(batch).is_err();
            }
        })
    });
    let batch = Msg::Batch {
        frames: Vec::new(),
        flows: Vec::new(),
        conns: done,
        data: Vec::new(),
        bytes_read,
        held: None,
    };
    if hung_up
        || tx.send(batch).is_err()
        || tx.send(Msg::Endpoints(endpoints.take())).is_err()
        || tx.send(Msg::Buckets(buckets.take())).is_err()
    {
        return;
    }
    if opts.cancel.is_cancelled() {
        let _ = tx.send(Msg::Failed(ReadFailure::Interrupted));
        return;
    }
    let listed = match input {
        Input::File(_) => reader.stat_at_open().unwrap_or((0, None)),
        Input::Stdin => (0, None),
    };
    let ((size, mtime_ns), changed) =
        as_read(listed, reader.stat_at_open(), bytes_read, reader.stat_now());
    let _ = tx.send(Msg::End(CaptureEnd {
        format: reader.format.as_str(),
        compression: reader.compression.as_str(),
        interfaces: reader.interfaces().to_vec(),
        frames: n,
        tcp_frames,
        flows: flows_total,
        first_ns,
        last_ns,
        truncation: reader.truncation().cloned(),
        hash: reader.content_hash(),
        size,
        mtime_ns,
        changed,
    }));
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
    let journal = match &*conn {
        Db::Sqlite(c) => store::begin_ingest(c, first_big),
        // PostgreSQL's write-ahead log is the server's business.
        Db::Postgres(_) => Ok(store::Journal::Wal),
    };
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
    let parked_rows = matches!(&*conn, Db::Sqlite(_));
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
            let extra: Vec<Db> = match &*conn {
                Db::Postgres(p) if jobs > 1 => (1..jobs)
                    .filter_map(|_| match p.reconnect() {
                        Ok(c) => Some(Db::Postgres(Box::new(c))),
                        Err(e) => {
                            ctx.say(format!(
                                "warning: could not open another database connection: {e}"
                            ));
                            None
                        }
                    })
                    .collect(),
                _ => Vec::new(),
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
                    match conn.sqlite().map_or(Ok(()), store::end_ingest) {
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
    if let Err(e) = conn.sqlite().map_or(Ok(()), store::end_ingest) {
        log(format!(
            "warning: could not switch the database back to WAL: {e}"
        ));
    }
    summary.waited = store::lock_waited();
    summary.elapsed = started.elapsed().saturating_sub(summary.waited);
    summary
}

/// What the writers of one ingest share: the captures to write and where their messages and totals go.
struct WriteCtx<'a, 's, 'l> {
    todo: &'a [usize],
    sources: &'a [CaptureSource],
    inputs: &'a [Input],
    in_folder: &'a [bool],
    opts: &'a Options,
    bar: &'a Option<indicatif::ProgressBar>,
    started: Instant,
    total_bytes: u64,
    budget: &'a Arc<Budget>,
    /// Where batches' emptied vectors go back to the readers.
    spares: &'a Sender<Empties>,
    progress: &'a Mutex<Progress>,
    summary: &'a Mutex<&'s mut Summary>,
    log: &'a Mutex<&'l mut (dyn FnMut(String) + Send)>,
}

impl WriteCtx<'_, '_, '_> {
    /// Logs a message, above the progress bar.
    fn say(&self, m: String) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        match self.bar {
            Some(b) => b.suspend(|| log(m)),
            None => log(m),
        }
    }
}

/// Bytes, frames and flows written so far, across writers (the progress line).
#[derive(Default)]
struct Progress {
    done_bytes: u64,
    frames: u64,
    flows: u64,
}

/// One writer: takes the next capture in input order until none is left or the run stops, and records each
/// outcome. `before(db, k)` runs before capture `k` is written.
fn write_all(
    conn: &Db,
    ctx: &WriteCtx,
    receivers: &[Mutex<Option<Receiver<Msg>>>],
    next: &Mutex<usize>,
    before: &mut dyn FnMut(&Db, usize),
) {
    let WriteCtx {
        todo,
        sources,
        inputs,
        in_folder,
        opts,
        bar,
        started,
        total_bytes,
        budget,
        ..
    } = *ctx;
    loop {
        if opts.cancel.is_cancelled() {
            break;
        }
        // The next capture and its `captures` row are taken under one lock, so that writers on several
        // connections number captures in input order, as one writer does.
        let (k, rx, begun) = {
            let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
            let k = *n;
            if k >= todo.len() {
                break;
            }
            *n += 1;
            let Some(rx) = receivers[k]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            else {
                continue;
            };
            budget.writer_at(k);
            before(conn, k);
            let src = &sources[todo[k]];
            (
                k,
                rx,
                store::Writer::begin(conn, src, opts.force, opts.embed),
            )
        };
        let i = todo[k];
        let src = &sources[i];
        let (mut cap_frames, mut flood_warned) = (0u64, false);
        let outcome = begun.and_then(|w| write_capture(w, &rx, ctx.spares, opts, &mut |read, frames, flows| {
            let mut pr = ctx.progress.lock().unwrap_or_else(|e| e.into_inner());
            pr.frames += frames;
            pr.flows += flows;
            cap_frames += frames;
            // Zero-length records cost a row each but almost nothing on disk once compressed: 256 MiB of
            // zeros after a pcap header is 9 KB of zstd and would be a 489 MB database. Say so while it
            // happens, once.
            if !flood_warned
                && cap_frames >= FLOOD_MIN_RECORDS
                && cap_frames > read.saturating_mul(FLOOD_RECORDS_PER_BYTE)
            {
                flood_warned = true;
                let m = format!(
                            "warning: {}: {cap_frames} records from {read} bytes on disk (more records per byte than \
                             any real capture: a flood of empty records?); --max-frames N bounds it",
                            src.path
                        );
                ctx.say(m);
            }
            if let Some(b) = bar {
                let at = pr.done_bytes + read;
                b.set_position(at);
                let spent = started.elapsed().saturating_sub(store::lock_waited());
                b.set_message(progress_message(
                    at,
                    total_bytes,
                    spent,
                    pr.frames,
                    pr.flows,
                    &src.name,
                ));
            }
        }));
        drop(rx);
        {
            let mut pr = ctx.progress.lock().unwrap_or_else(|e| e.into_inner());
            pr.done_bytes += src.size;
            if let Some(b) = bar {
                b.set_position(pr.done_bytes);
            }
        }
        let say = |m: String| ctx.say(m);
        let mut guard = ctx.summary.lock().unwrap_or_else(|e| e.into_inner());
        let summary: &mut Summary = &mut guard;
        match outcome {
            Ok(Ok(Outcome::Indexed {
                end, superseded, ..
            })) => {
                summary.indexed += 1;
                summary.frames += end.frames;
                summary.flows += end.flows;
                let is_file = matches!(inputs[i], Input::File(_));
                if is_file && (end.changed || (end.size, end.mtime_ns) != (src.size, src.mtime_ns))
                {
                    say(format!(
                        "warning: {} changed while it was read; indexed the {} bytes read",
                        src.path, end.size
                    ));
                }
                for s in superseded {
                    say(match s {
                            Superseded::Replaced(old) => format!(
                                "{}: content changed since it was indexed; replaced capture {old}",
                                src.path
                            ),
                            Superseded::PathMoved(old) => format!(
                                "{}: content changed since it was indexed; capture {old} keeps its other paths, \
                                 this path moved to the new capture",
                                src.path
                            ),
                        });
                }
                if let Some(t) = &end.truncation {
                    summary.truncated += 1;
                    say(format!(
                        "warning: {}: truncated at byte offset {} after frame {}: {}",
                        src.path, t.offset, end.frames, t.reason
                    ));
                } else if opts.verbose {
                    say(format!(
                        "{}: {} frames, {} flows",
                        src.path, end.frames, end.flows
                    ));
                }
            }
            Ok(Ok(Outcome::AlreadyIndexed { name, .. })) => {
                summary.skipped += 1;
                summary.already += 1;
                if opts.verbose {
                    say(format!("{}: already indexed (as {name})", src.path));
                }
            }
            Ok(Err(ReadFailure::NotCapture(why))) if in_folder[i] => {
                summary.skipped += 1;
                summary.not_captures += 1;
                if opts.verbose {
                    say(format!("{}: {why}, skipped", src.path));
                }
            }
            Ok(Err(ReadFailure::NotCapture(why))) => {
                // Named on the command line: the user meant it to be a capture.
                summary.failed += 1;
                say(format!("error: {}: {why}", src.path));
            }
            Ok(Err(ReadFailure::Interrupted)) => {
                summary.interrupted = true;
                say(format!("{}: interrupted, rolled back", src.path));
            }
            Ok(Err(ReadFailure::Failed(why))) => {
                summary.failed += 1;
                say(format!("error: {}: {why}", src.path));
            }
            Err(e) => {
                // Not this capture's fault: a full disk or a read-only database fails every capture after
                // it too. Stop at the first, once.
                summary.failed += 1;
                let line = crate::msg::error_line(&e.to_string(), error_causes(&e));
                say(format!("error: {}: {line}; stopping", src.path));
                summary.database_error = Some(line);
            }
        }
        if summary.interrupted || summary.database_error.is_some() {
            // The other readers and writers stop too.
            opts.cancel.cancel();
            break;
        }
    }
}

/// Captures at least this big are bulk-loaded into an empty database (`store::begin_ingest`).
const BULK_LOAD_MIN_BYTES: u64 = 32 << 20;

fn error_causes(e: &dyn std::error::Error) -> Vec<String> {
    let mut causes = Vec::new();
    let mut at = e.source();
    while let Some(c) = at {
        causes.push(c.to_string());
        at = c.source();
    }
    causes
}

/// `9999`, `287k`, `1.28M`, `128M`: counts of at most 5 characters, for a progress line at 80 columns.
fn short_count(n: u64) -> String {
    let f = n as f64;
    if n < 10_000 {
        n.to_string()
    } else if n < 999_500 {
        format!("{:.0}k", f / 1e3)
    } else if n < 9_995_000 {
        format!("{:.2}M", f / 1e6)
    } else if n < 999_500_000 {
        format!("{:.0}M", f / 1e6)
    } else {
        format!("{:.1}G", f / 1e9)
    }
}

/// The progress line after the bar: the time left from the bytes done so far over the time they took (the
/// whole run's rate, not the last second's, which a run of small files makes jump), counts, the file's name.
/// The name goes last: a narrow terminal cuts it, not a number.
fn progress_message(
    done: u64,
    total: u64,
    spent: Duration,
    frames: u64,
    flows: u64,
    name: &str,
) -> String {
    let eta = if done == 0 || spent < Duration::from_millis(500) {
        "eta -".to_string()
    } else {
        let left = spent.as_secs_f64() * (total.saturating_sub(done) as f64) / done as f64;
        if left >= 99.0 * 3600.0 {
            "eta >99 h".to_string()
        } else {
            format!(
                "eta {}",
                crate::msg::duration(Duration::from_secs_f64(left))
            )
        }
    };
    format!(
        "{eta}  {} frames  {} flows  {name}",
        short_count(frames),
        short_count(flows)
    )
}

fn progress_bar(total: u64, quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:10} {binary_bytes}/{binary_total_bytes} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_has_a_sane_eta_and_its_numbers_fit_80_columns() {
        let s = Duration::from_secs;
        // Half the bytes in 7 s: 7 s left, whatever the last file's rate was.
        let m = progress_message(50, 100, s(7), 1_283_262, 287_402, "big.pcap");
        assert_eq!(m, "eta 7.0 s  1.28M frames  287k flows  big.pcap");
        assert_eq!(
            progress_message(0, 100, s(0), 0, 0, "a"),
            "eta -  0 frames  0 flows  a"
        );
        assert_eq!(
            progress_message(1, 1 << 40, s(100), 0, 0, "a"),
            "eta >99 h  0 frames  0 flows  a"
        );
        // The bar (10), the bytes and the numbers fit in 80 columns at their widest: only the name is cut.
        let bytes = "1023.99 GiB/1023.99 GiB";
        for (done, spent, n) in [
            (1, 3599, 9_994_999),
            (1, 3600 * 98, 999_499),
            (1, 59, 9_999_999_999),
        ] {
            let worst = progress_message(done, 3600, s(spent), n, n, "");
            assert!(10 + 1 + bytes.len() + 1 + worst.len() <= 80, "{worst}");
        }
        for (n, want) in [
            (9999, "9999"),
            (10_000, "10k"),
            (999_499, "999k"),
            (999_500, "1.00M"),
            (9_994_999, "9.99M"),
            (9_995_000, "10M"),
            (999_499_999, "999M"),
            (999_500_000, "1.0G"),
        ] {
            assert_eq!(short_count(n), want);
        }
    }

    #[test]
    fn the_size_recorded_is_the_size_read_and_a_change_is_noticed() {
        let t = Some(5);
        // Unchanged: listed, opened and ended at the size read.
        assert_eq!(
            as_read((100, t), Some((100, t)), 100, Some((100, t))),
            ((100, t), false)
        );
        // Grew between its listing and its open, then read to the end: the bytes read are recorded.
        assert_eq!(
            as_read((60, t), Some((100, Some(6))), 100, Some((100, Some(6)))),
            ((100, Some(6)), true)
        );
        // Grew while read (after the reader reached the end): what was read, and the mtime after the read.
        assert_eq!(
            as_read((100, t), Some((100, t)), 100, Some((140, Some(7)))),
            ((100, Some(7)), true)
        );
        // Rewritten in place at the same size: only the mtime tells.
        assert_eq!(
            as_read((100, t), Some((100, t)), 100, Some((100, Some(9)))),
            ((100, Some(9)), true)
        );
        // A stream: no fstat, only the bytes read.
        assert_eq!(as_read((0, None), None, 42, None), ((42, None), false));
    }

    #[test]
    fn the_budget_lets_a_frame_larger_than_itself_through_when_alone_and_the_writers_capture_always(
    ) {
        let b = Budget::new(10, 2);
        let big = b.acquire(1, 50).expect("alone, even above the budget");
        assert_eq!(b.in_flight(), 50);
        // Capture 1 holds more than the budget, but capture 0 is the writer's and has nothing in flight.
        let first = b.acquire(0, 5).expect("the writer's capture");
        assert_eq!(b.in_flight(), 55);
        drop(big);
        drop(first);
        assert_eq!(b.in_flight(), 0);
        assert!(b.acquire(1, 0).is_none(), "no bytes, no lease");
    }

    #[test]
    fn a_reader_over_the_budget_waits_for_the_writer() {
        let b = Budget::new(10, 2);
        let held = b.acquire(0, 8).unwrap();
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || {
            let _l = b2.acquire(1, 8).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "capture 1 must wait: 16 > 10 and the writer is at 0"
        );
        drop(held);
        waiter.join().unwrap();
        assert_eq!(b.in_flight(), 0);
    }
}
