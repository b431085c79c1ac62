//! Per-flow dumps from the database, as PyPCAPKit's TraceFlow writes them (`trace_fout`/`trace_format`): the
//! frames of every flow with a label, as pcap, pcapng, json, plist, tree or text, to one output or to
//! `DIR/{label}{ext}` for each label of a capture.
//!
//! The frames table says which frames a flow has and where each record starts; the bytes come from the database
//! (`ingest --embed`) or from the source capture, re-read at those offsets (see [`source`]).

pub mod file;
pub mod frames_csv;
pub mod merge;
pub mod pcapwrite;
pub mod render;
pub mod source;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::store::Db;
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};

use crate::store::read::{self as query, IndexEntry, QueryError};
pub use crate::store::read::{capture_groups, select_label, FlowFrames, FlowGroup};
use crate::store::read::{interfaces, Iface};
use file::DumpDir;
use pcapwrite::{PcapNgWriter, PcapWriter};
use render::FrameInfo;
use source::{capture_row, CaptureRow, Fetcher, FrameRef, Plan};

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Selecting the capture, the label or the frames failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A SQLite failure while dumping.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The frames to dump as pcap have several link types (a pcap file holds one).
    #[error(
        "flow {label:?} has frames of several link types ({linktypes}); a pcap file holds one link type, \
         use --format pcapng"
    )]
    MixedLinktypes {
        /// The label dumped.
        label: String,
        /// The link types found, comma-separated.
        linktypes: String,
    },
    /// The frames must be re-read from the capture file, and no copy of it could be found.
    #[error(
        "capture {capture:?}: cannot re-read its frames ({tried}). Either pass --source-root DIR, a folder \
         where the moved file can be found by its name, or re-ingest the capture with \
         `traceflow ingest --embed --force FILE` so the database holds the frame bytes itself"
    )]
    SourceUnavailable {
        /// The capture's name.
        capture: String,
        /// Where it was looked for, and why each place failed.
        tried: String,
    },
    /// The capture file no longer holds the frame the database recorded at that offset.
    #[error(
        "{path}: frame {frame} at byte offset {offset}: {what}; the file no longer matches the database \
         (re-ingest it, with --embed to keep the bytes in the database)"
    )]
    SourceMismatch {
        /// The file (or the database, for embedded bytes) the frame was read from.
        path: String,
        /// The frame's number, from 1.
        frame: u64,
        /// Byte offset of its record in the decompressed file.
        offset: u64,
        /// What did not match.
        what: String,
    },
    /// Reading a frame from the capture file failed.
    #[error("{path}: reading frame {frame} at byte offset {offset}: {source}")]
    Read {
        /// The file read.
        path: String,
        /// The frame's number, from 1.
        frame: u64,
        /// Byte offset of its record in the decompressed file.
        offset: u64,
        /// The read's error.
        source: io::Error,
    },
    /// Opening or reading the capture file to re-read frames from failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Decompressing a capture into a temporary file (for frames wanted out of file order) failed.
    #[error(
        "decompressing {capture} into a temporary file in {dir}: {source} (set TMPDIR to a folder with room)"
    )]
    Spool {
        /// The capture file.
        capture: String,
        /// The temporary folder used.
        dir: String,
        /// The I/O error (often a full disk).
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The output file, or `stdout`.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Encoding the frames as JSON or plist failed.
    #[error("writing {path}: {msg}")]
    Encode {
        /// The output file, or `stdout`.
        path: String,
        /// The encoder's message.
        msg: String,
    },
    /// Ctrl-C, SIGTERM or SIGHUP arrived (see [`interrupt`]); what the dump had begun is removed.
    #[error("interrupted")]
    Interrupted,
    /// The output file exists and `--force` was not given.
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists {
        /// The existing file.
        path: String,
    },
    /// A binary format (pcap, pcapng) would be written to a terminal.
    #[error(
        "refusing to write {format} to a terminal: use -o FILE or redirect stdout, or pick a text format \
         (--format tree, text or json)"
    )]
    Terminal {
        /// The format's name.
        format: &'static str,
    },
    /// Options that do not go together, or an output path that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// A dump into an existing folder failed after some files were written there.
    #[error("{source} ({written} files were written in {dir} before this; they are complete)")]
    Partial {
        /// Files written before the failure; they are complete.
        written: usize,
        /// The folder.
        dir: String,
        /// The failure.
        source: Box<DumpError>,
    },
    /// The database holds something a traceflow ingest never writes.
    #[error("database: {0}; the database is damaged or was edited (re-ingest the capture)")]
    Corrupt(String),
}

impl DumpError {
    /// A write to a closed pipe (`traceflow query ... | head`): the reader has what it wanted, not an error.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            DumpError::Write { source, .. } | DumpError::Query(QueryError::Output(source)) => {
                source.kind() == io::ErrorKind::BrokenPipe
            }
            DumpError::Partial { source, .. } => source.is_broken_pipe(),
            _ => false,
        }
    }
}

/// The formats a flow dump can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// pcap with the capture's link type.
    Pcap,
    /// pcapng, one interface per link type used.
    Pcapng,
    /// The decoded frames as JSON.
    Json,
    /// The decoded frames as an XML property list.
    Plist,
    /// The decoded frames as an indented tree.
    Tree,
    /// The decoded frames as flat `key: value` lines.
    Text,
}

impl DumpFormat {
    /// The extension of `DIR/{label}{ext}`, as pcapkit names its outputs.
    pub fn ext(self) -> &'static str {
        match self {
            DumpFormat::Pcap => ".pcap",
            DumpFormat::Pcapng => ".pcapng",
            DumpFormat::Json => ".json",
            DumpFormat::Plist => ".plist",
            DumpFormat::Tree | DumpFormat::Text => ".txt",
        }
    }

    /// The format's name, as `--format` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Pcap => "pcap",
            DumpFormat::Pcapng => "pcapng",
            DumpFormat::Json => "json",
            DumpFormat::Plist => "plist",
            DumpFormat::Tree => "tree",
            DumpFormat::Text => "text",
        }
    }

    /// True for pcap and pcapng, which are not written to a terminal.
    pub fn is_binary(self) -> bool {
        matches!(self, DumpFormat::Pcap | DumpFormat::Pcapng)
    }

    /// The format an output file's extension suggests.
    pub fn from_path(p: &Path) -> Option<DumpFormat> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "pcap" | "cap" => Some(DumpFormat::Pcap),
            "pcapng" => Some(DumpFormat::Pcapng),
            "json" => Some(DumpFormat::Json),
            "plist" => Some(DumpFormat::Plist),
            "txt" => Some(DumpFormat::Tree),
            _ => None,
        }
    }
}

/// How flows are dumped.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// The output format.
    pub format: DumpFormat,
    /// pcap byte order; pcapkit's default is the machine's.
    pub big_endian: bool,
    /// pcap: always write ns timestamps. Otherwise ns are used only when the capture has sub-µs resolution, so
    /// the timestamps stay exact.
    pub nanosecond: bool,
    /// Where to look for moved captures, by base name.
    pub source_root: Option<PathBuf>,
    /// `--dump`: counts the files written (its length is set to the files to write). The command line gives
    /// one that draws on stderr when it is a terminal: 287k flows took 16 s of silence.
    pub progress: Option<indicatif::ProgressBar>,
    /// `--both`: dump both directions of each connection (one file per connection with `--dump`).
    pub both: bool,
    /// pcap: this snapshot length in the file header instead of the capture's (PyPCAPKit writes 262144 always).
    pub snaplen: Option<u32>,
}

impl DumpOptions {
    /// Options for `format` with pcapkit's defaults: the machine's byte order, µs timestamps where exact.
    pub fn new(format: DumpFormat) -> DumpOptions {
        DumpOptions {
            format,
            big_endian: cfg!(target_endian = "big"),
            nanosecond: false,
            source_root: None,
            progress: None,
            both: false,
            snaplen: None,
        }
    }
}

/// A capture's dumps: one per label, or with `--both` one per connection.
fn groups_of(conn: &Db, capture_id: i64, both: bool) -> Result<Vec<FlowGroup>, DumpError> {
    Ok(if both {
        crate::store::read::capture_conn_groups(conn, capture_id)?
    } else {
        capture_groups(conn, capture_id)?
    })
}

/// The frames of a group, in index order (flow by flow, each in frame order).
fn group_frames(conn: &Db, g: &FlowGroup) -> Result<Vec<FrameRef>, DumpError> {
    let mut out = Vec::new();
    FlowFrames::new(conn)?.group(g, &mut out)?;
    Ok(out)
}

/// One capture's context for dumping: its row, interfaces, and the frames of each group to dump.
struct Job {
    cap: CaptureRow,
    ifaces: HashMap<u32, Iface>,
}

impl Job {
    fn new(conn: &Db, capture_id: i64) -> Result<Job, DumpError> {
        Ok(Job {
            cap: capture_row(conn, capture_id)?,
            ifaces: interfaces(conn, capture_id)?,
        })
    }

    fn iface(&self, n: u32) -> Iface {
        self.ifaces.get(&n).copied().unwrap_or(Iface {
            linktype: crate::capture::LINKTYPE_UNKNOWN,
            snaplen: 0,
            tsresol: 9,
        })
    }

    fn info(&self, f: &FrameRef) -> FrameInfo {
        let i = self.iface(f.iface);
        FrameInfo {
            number: f.number,
            ts_ns: f.ts_ns,
            caplen: f.caplen,
            origlen: f.origlen,
            linktype: i.linktype,
            tsresol: i.tsresol,
        }
    }
}

/// The one link type of a pcap dump; frames of several link types need pcapng.
fn pcap_linktype(job: &Job, label: &str, frames: &[FrameRef]) -> Result<u32, DumpError> {
    let mut lts: Vec<u32> = frames.iter().map(|f| job.iface(f.iface).linktype).collect();
    lts.sort_unstable();
    lts.dedup();
    if lts.len() > 1 {
        return Err(DumpError::MixedLinktypes {
            label: label.to_string(),
            linktypes: lts
                .iter()
                .map(|&l| crate::decode::numbers::linktype_text(l))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(lts
        .first()
        .copied()
        .or_else(|| job.ifaces.values().map(|i| i.linktype).min())
        .unwrap_or(1))
}

/// Writes one group's frames in `opts.format` to `out`; `path` names the output in errors.
fn write_frames(
    job: &Job,
    label: &str,
    frames: &[FrameRef],
    fetcher: &mut Fetcher,
    opts: &DumpOptions,
    out: &mut dyn Write,
    path: &str,
) -> Result<(), DumpError> {
    let werr = |source| DumpError::Write {
        path: path.to_string(),
        source,
    };
    let mut buf = Vec::new();
    match opts.format {
        DumpFormat::Pcap => {
            let linktype = pcap_linktype(job, label, frames)?;
            let used = || frames.iter().map(|f| job.iface(f.iface));
            let snaplen = opts.snaplen.unwrap_or_else(|| {
                used()
                    .map(|i| i.snaplen)
                    .chain(frames.iter().map(|f| f.caplen))
                    .max()
                    .filter(|&s| s > 0)
                    .unwrap_or(262_144)
            });
            let nanos =
                opts.nanosecond || used().any(|i| crate::capture::tsresol_digits(i.tsresol) > 6);
            let mut w = PcapWriter::new(&mut *out, linktype, snaplen, opts.big_endian, nanos)
                .map_err(werr)?;
            for f in frames {
                fetcher.fetch(f, &mut buf)?;
                check_time(&job.cap, f.ts_ns, opts.format);
                w.write(f.ts_ns, f.origlen, &buf).map_err(werr)?;
            }
        }
        DumpFormat::Pcapng => {
            let mut w = PcapNgWriter::new(&mut *out).map_err(werr)?;
            // One interface per link type, at the finest resolution its frames had (ns at most: what is stored).
            let mut by_lt: Vec<(u32, u32, u8)> = Vec::new();
            for f in frames {
                let i = job.iface(f.iface);
                let res = if crate::capture::tsresol_digits(i.tsresol) > 6 || opts.nanosecond {
                    9
                } else {
                    6
                };
                match by_lt.iter_mut().find(|e| e.0 == i.linktype) {
                    Some(e) => {
                        e.1 = e.1.max(i.snaplen).max(f.caplen);
                        e.2 = e.2.max(res);
                    }
                    None => by_lt.push((i.linktype, i.snaplen.max(f.caplen), res)),
                }
            }
            for (lt, snap, res) in &by_lt {
                w.add_interface(*lt, *snap, *res).map_err(werr)?;
            }
            for f in frames {
                let lt = job.iface(f.iface).linktype;
                let id = by_lt.iter().position(|e| e.0 == lt).unwrap_or(0) as u32;
                fetcher.fetch(f, &mut buf)?;
                check_time(&job.cap, f.ts_ns, opts.format);
                w.write(id, f.ts_ns, f.origlen, &buf).map_err(werr)?;
            }
        }
        DumpFormat::Json | DumpFormat::Plist => {
            let doc = Doc {
                job,
                format: opts.format,
                frames,
                fetcher: std::cell::RefCell::new(fetcher),
                failed: std::cell::RefCell::new(None),
            };
            // The encoders turn a write's error into their own, a closed pipe included: the writer keeps it.
            let mut kept = KeepError {
                out: &mut *out,
                error: None,
            };
            let res = if opts.format == DumpFormat::Json {
                let mut ser = serde_json::Serializer::pretty(&mut kept);
                doc.serialize(&mut ser).map_err(|e| e.to_string())
            } else {
                plist::to_writer_xml(&mut kept, &doc).map_err(|e| e.to_string())
            };
            if let Some(e) = doc.failed.into_inner() {
                return Err(e);
            }
            if let (Err(_), Some(source)) = (&res, kept.error) {
                return Err(werr(source));
            }
            res.map_err(|msg| DumpError::Encode {
                path: path.to_string(),
                msg,
            })?;
            if opts.format == DumpFormat::Json {
                writeln!(out).map_err(werr)?;
            }
        }
        DumpFormat::Tree | DumpFormat::Text => {
            for (i, f) in frames.iter().enumerate() {
                fetcher.fetch(f, &mut buf)?;
                check_time(&job.cap, f.ts_ns, opts.format);
                let node = render::frame_node(&job.info(f), &buf);
                let name = format!("Frame {}", f.number);
                if opts.format == DumpFormat::Tree {
                    if i > 0 {
                        writeln!(out).map_err(werr)?;
                    }
                    render::write_tree(out, &name, &node).map_err(werr)?;
                } else {
                    render::write_text(out, &name, &node).map_err(werr)?;
                }
            }
        }
    }
    out.flush().map_err(werr)
}

/// Says once per capture (in this process) that a frame time of it cannot be written as it is in `format`, and
/// why; the time written is the nearest one the format holds.
pub(crate) fn check_time(cap: &CaptureRow, ts_ns: i64, format: DumpFormat) {
    static WARNED: std::sync::Mutex<Vec<i64>> = std::sync::Mutex::new(Vec::new());
    let why = if ts_ns == i64::MIN || ts_ns == i64::MAX {
        // Saturated when it was indexed: the time it had is gone whatever the format.
        "the index holds frame times from 1677 to 2262 (ns in 64 bits)"
    } else {
        match format {
            DumpFormat::Pcap if !pcapwrite::pcap_time_fits(ts_ns) => {
                "pcap's 32-bit seconds hold times from 1970 to 2106"
            }
            DumpFormat::Pcapng if !pcapwrite::pcapng_time_fits(ts_ns) => {
                "pcapng's unsigned ticks hold no time before 1970"
            }
            _ => return,
        }
    };
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.contains(&cap.id) {
        return;
    }
    warned.push(cap.id);
    crate::msg::say(&format!(
        "warning: capture {:?} has frame times out of range: {why}; each is written as the nearest it holds \
         ({} dump)",
        cap.name,
        format.name()
    ));
}

/// A writer that keeps the first error its output gave, for a caller whose encoder hides it.
struct KeepError<'a> {
    out: &'a mut dyn Write,
    error: Option<io::Error>,
}

impl KeepError<'_> {
    fn keep<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        r.map_err(|e| {
            let copy = io::Error::new(e.kind(), e.to_string());
            self.error.get_or_insert(e);
            copy
        })
    }
}

impl Write for KeepError<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.out.write(buf);
        self.keep(r)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let r = self.out.write_all(buf);
        self.keep(r)
    }
    fn flush(&mut self) -> io::Result<()> {
        let r = self.out.flush();
        self.keep(r)
    }
}

/// The decoded frames as one map `{"Frame N": {...}}`, fetched while serializing so memory stays flat.
struct Doc<'a, 'c> {
    job: &'a Job,
    format: DumpFormat,
    frames: &'a [FrameRef],
    fetcher: std::cell::RefCell<&'a mut Fetcher<'c>>,
    failed: std::cell::RefCell<Option<DumpError>>,
}

impl Serialize for Doc<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.frames.len()))?;
        let mut buf = Vec::new();
        for f in self.frames {
            if let Err(e) = self.fetcher.borrow_mut().fetch(f, &mut buf) {
                let msg = e.to_string();
                *self.failed.borrow_mut() = Some(e);
                return Err(S::Error::custom(msg));
            }
            check_time(&self.job.cap, f.ts_ns, self.format);
            let node = render::frame_node(&self.job.info(f), &buf);
            map.serialize_entry(&format!("Frame {}", f.number), &node)?;
        }
        map.end()
    }
}

/// A group ready to be written: its capture, its frames, and their bytes' source already open.
pub struct Prepared<'c> {
    job: Job,
    frames: Vec<FrameRef>,
    fetcher: Fetcher<'c>,
    label: String,
}

/// Finds a group's frames and opens their bytes' source, before any output exists: a missing source must fail
/// before `-o FILE` is touched.
pub fn prepare_group<'c>(
    conn: &'c Db,
    group: &FlowGroup,
    opts: &DumpOptions,
) -> Result<Prepared<'c>, DumpError> {
    let job = Job::new(conn, group.capture_id)?;
    let frames = group_frames(conn, group)?;
    let fetcher = Fetcher::open(
        conn,
        &job.cap,
        opts.source_root.as_deref(),
        &Plan::of(&frames),
    )?;
    Ok(Prepared {
        job,
        frames,
        fetcher,
        label: group.label.clone(),
    })
}

impl Prepared<'_> {
    /// Writes the dump to `out`; `out_name` names it in errors.
    pub fn write(
        &mut self,
        opts: &DumpOptions,
        out: &mut dyn Write,
        out_name: &str,
    ) -> Result<(), DumpError> {
        write_frames(
            &self.job,
            &self.label,
            &self.frames,
            &mut self.fetcher,
            opts,
            out,
            out_name,
        )
    }
}

/// Set when the user interrupts a dump (the command line's signal handler calls [`interrupt`]).
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks every dump of this process to stop at its next frame, as [`DumpError::Interrupted`], so that its
/// temporary files and folder are removed on the way out instead of being left behind by the signal. Returns
/// whether it had been asked already.
pub fn interrupt() -> bool {
    INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst)
}

/// Lets dumps run again after [`interrupt`]: a library caller (the Python bindings) that interrupted one dump
/// goes on to make others in the same process.
pub fn clear_interrupt() {
    INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// [`DumpError::Interrupted`] once [`interrupt`] was called.
pub(crate) fn check_interrupt() -> Result<(), DumpError> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(DumpError::Interrupted);
    }
    Ok(())
}

impl DumpError {
    /// Whether the dump stopped because it was interrupted (also when files it had finished stay).
    pub fn is_interrupted(&self) -> bool {
        match self {
            DumpError::Interrupted => true,
            DumpError::Partial { source, .. } => source.is_interrupted(),
            _ => false,
        }
    }
}

/// Writes the dump of one group to `out` (stdout or a file the caller opened).
pub fn write_group(
    conn: &Db,
    group: &FlowGroup,
    opts: &DumpOptions,
    out: &mut dyn Write,
    out_name: &str,
) -> Result<(), DumpError> {
    prepare_group(conn, group, opts)?.write(opts, out, out_name)
}

/// The file name of a label's dump: the label with anything that could leave the folder replaced by `_`.
pub fn dump_file_name(label: &str, format: DumpFormat) -> String {
    let mut s: String = label
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c == ':' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        s = format!("_{s}");
    }
    s.push_str(format.ext());
    s
}

/// One capture's part of a folder dump: the sub-folder (0 is DIR itself) and its groups.
struct PlanItem {
    capture_id: i64,
    folder: Option<String>,
    groups: Vec<FlowGroup>,
}

/// Dumps each label of each selected capture to `dir/{label}{ext}` and returns the entries of the index tuple
/// whose labels were dumped, with `fpout` set.
///
/// With `capture` or `label` the files go straight into `dir`; over every capture of the database each capture
/// gets its own sub-folder (named after it), as labels may repeat across captures. Memory does not grow with the
/// capture's frames: one flow's frames are read, written and let go at a time. Files are made as
/// [`file::DumpDir`] makes them: whole, never through a link, and a DIR that did not exist appears only when
/// the whole dump succeeded.
pub fn dump_dir(
    conn: &Db,
    capture: Option<i64>,
    label: Option<&str>,
    dir: &Path,
    opts: &DumpOptions,
    force: bool,
) -> Result<Vec<IndexEntry>, DumpError> {
    let mut plan: Vec<PlanItem> = Vec::new();
    match (capture, label) {
        (_, Some(l)) => {
            let g = select_label(conn, capture, l)?;
            let g = if opts.both {
                crate::store::read::with_connections(conn, g)?
            } else {
                g
            };
            plan.push(PlanItem {
                capture_id: g.capture_id,
                folder: None,
                groups: vec![g],
            });
        }
        (Some(id), None) => plan.push(PlanItem {
            capture_id: id,
            folder: None,
            groups: groups_of(conn, id, opts.both)?,
        }),
        (None, None) => {
            let caps: Vec<(i64, String)> = query::captures(conn)?
                .into_iter()
                .map(|c| (c.id, c.name))
                .collect();
            let mut seen = std::collections::HashSet::new();
            for (id, name) in caps {
                let mut sub = dump_file_name(&name, DumpFormat::Tree);
                sub.truncate(sub.len() - DumpFormat::Tree.ext().len());
                if !seen.insert(sub.clone()) {
                    sub = format!("{sub}-{id}");
                    seen.insert(sub.clone());
                }
                plan.push(PlanItem {
                    capture_id: id,
                    folder: Some(sub),
                    groups: groups_of(conn, id, opts.both)?,
                });
            }
        }
    }
    for item in &plan {
        for g in &item.groups {
            let name = dump_file_name(&g.label, opts.format);
            if name.contains('/') || name == "." || name == ".." {
                return Err(DumpError::Usage(format!(
                    "label {:?} does not make a file name inside {}",
                    g.label,
                    dir.display()
                )));
            }
        }
    }
    let mut out = DumpDir::open(dir, force)?;
    match fill_dir(
        conn,
        &plan,
        &mut out,
        capture.is_none() && label.is_none(),
        opts,
        force,
    ) {
        Ok(entries) => out.finish().map(|()| entries),
        Err(e) => Err(out.abandon(e)),
    }
}

fn fill_dir(
    conn: &Db,
    plan: &[PlanItem],
    out: &mut DumpDir,
    multi: bool,
    opts: &DumpOptions,
    force: bool,
) -> Result<Vec<IndexEntry>, DumpError> {
    let mut entries = Vec::new();
    let mut folders = Vec::new();
    for item in plan {
        folders.push(match &item.folder {
            Some(name) => out.sub(name)?,
            None => 0,
        });
    }
    // Check every target first, so a refusal leaves nothing half-written.
    if !force {
        for (item, &k) in plan.iter().zip(&folders) {
            for g in &item.groups {
                let name = dump_file_name(&g.label, opts.format);
                if out.exists(k, &name) {
                    return Err(DumpError::Exists {
                        path: out.shown(k, &name).display().to_string(),
                    });
                }
            }
        }
    }
    let mut walk = FlowFrames::new(conn)?;
    let mut frames = Vec::new();
    if let Some(b) = &opts.progress {
        b.set_length(plan.iter().map(|i| i.groups.len() as u64).sum());
    }
    for (item, &k) in plan.iter().zip(&folders) {
        let job = Job::new(conn, item.capture_id)?;
        if opts.format == DumpFormat::Pcap {
            // A flow that needs pcapng stops the dump before any of this capture's files is written. Only a
            // capture with several link types can hold one: check its flows one at a time.
            let mut lts: Vec<u32> = job.ifaces.values().map(|i| i.linktype).collect();
            lts.sort_unstable();
            lts.dedup();
            if lts.len() > 1 {
                for g in &item.groups {
                    walk.group(g, &mut frames)?;
                    pcap_linktype(&job, &g.label, &frames)?;
                }
            }
        }
        // Flows come in index order, not file order.
        let mut fetcher = match Plan::any_order(conn, item.capture_id)? {
            Some(plan) if !item.groups.is_empty() => Some(Fetcher::open(
                conn,
                &job.cap,
                opts.source_root.as_deref(),
                &plan,
            )?),
            _ => None,
        };
        let mut fpout: HashMap<&str, String> = HashMap::new();
        for g in &item.groups {
            check_interrupt()?;
            walk.group(g, &mut frames)?;
            let name = dump_file_name(&g.label, opts.format);
            let shown = out.shown(k, &name).display().to_string();
            out.write(k, &name, &mut |w| match fetcher.as_mut() {
                Some(f) => write_frames(&job, &g.label, &frames, f, opts, w, &shown),
                None => Ok(()),
            })?;
            fpout.insert(g.label.as_str(), shown);
            if let Some(b) = &opts.progress {
                b.inc(1);
            }
        }
        query::for_each_index_row(conn, Some(item.capture_id), &mut |_, label, numbers| {
            if let Some(p) = fpout.get(label) {
                entries.push(IndexEntry {
                    capture: multi.then(|| job.cap.name.clone()),
                    fpout: Some(p.clone()),
                    index: numbers.split(',').filter_map(|s| s.parse().ok()).collect(),
                    label: label.to_string(),
                });
            }
            Ok(())
        })?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_inside_the_folder() {
        assert_eq!(
            dump_file_name("10.0.0.1_1-10.0.0.2_2-1.5", DumpFormat::Pcap),
            "10.0.0.1_1-10.0.0.2_2-1.5.pcap"
        );
        assert_eq!(
            dump_file_name("../../etc/x", DumpFormat::Json),
            ".._.._etc_x.json"
        );
        assert_eq!(dump_file_name("..", DumpFormat::Tree), "_...txt");
        assert_eq!(dump_file_name("", DumpFormat::Pcap), "_.pcap");
        assert_eq!(dump_file_name("a\0b\nc", DumpFormat::Text), "a_b_c.txt");
    }
}
