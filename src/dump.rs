//! Per-flow dumps from the database, as PyPCAPKit's TraceFlow writes them (`trace_fout`/`trace_format`): the
//! frames of every flow with a label, as pcap, pcapng, json, plist, tree or text, to one output or to
//! `DIR/{label}{ext}` for each label of a capture.
//!
//! The frames table says which frames a flow has and where each record starts; the bytes come from the database
//! (`ingest --embed`) or from the source capture, re-read at those offsets (see [`source`]).

pub mod file;
pub mod render;
pub mod source;

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};

use crate::output::{write_rows, RowFormat};
use crate::pcapwrite::{PcapNgWriter, PcapWriter};
use crate::query::{self, IndexEntry, QueryError};
use file::{DumpDir, OutputFile};
use render::FrameInfo;
use source::{capture_row, CaptureRow, Fetcher, FrameRef, Plan};

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no flow labelled {label:?}{scope}{hint}")]
    UnknownLabel {
        label: String,
        scope: String,
        hint: String,
    },
    #[error(
        "flows labelled {label:?} are in several captures ({captures}); choose one with --capture"
    )]
    LabelInSeveralCaptures { label: String, captures: String },
    #[error(
        "flow {label:?} has frames of several link types ({linktypes}); a pcap file holds one link type, \
         use --format pcapng"
    )]
    MixedLinktypes { label: String, linktypes: String },
    #[error(
        "capture {capture:?}: cannot re-read its frames ({tried}). Either pass --source-root DIR, a folder \
         where the moved file can be found by its name, or re-ingest the capture with \
         `traceflow ingest --embed --force FILE` so the database holds the frame bytes itself"
    )]
    SourceUnavailable { capture: String, tried: String },
    #[error(
        "{path}: frame {frame} at byte offset {offset}: {what}; the file no longer matches the database \
         (re-ingest it, with --embed to keep the bytes in the database)"
    )]
    SourceMismatch {
        path: String,
        frame: u64,
        offset: u64,
        what: String,
    },
    #[error("{path}: reading frame {frame} at byte offset {offset}: {source}")]
    Read {
        path: String,
        frame: u64,
        offset: u64,
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(
        "decompressing {capture} into a temporary file in {dir}: {source} (set TMPDIR to a folder with room)"
    )]
    Spool {
        capture: String,
        dir: String,
        source: io::Error,
    },
    #[error("writing {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error("writing {path}: {msg}")]
    Encode { path: String, msg: String },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: String },
    #[error(
        "refusing to write {format} to a terminal: use -o FILE or redirect stdout, or pick a text format \
         (--format tree, text or json)"
    )]
    Terminal { format: &'static str },
    #[error("{0}")]
    Usage(String),
    #[error("{source} ({written} files were written in {dir} before this; they are complete)")]
    Partial {
        written: usize,
        dir: String,
        source: Box<DumpError>,
    },
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

/// `traceflow query --format`: the index tuple's formats and the dump formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// Index: aligned columns (default on a terminal).
    Table,
    /// Index: one JSON list (default otherwise). Dumps: the decoded frames as one JSON object.
    Json,
    /// Index: one JSON object per line.
    Jsonl,
    /// Dump: pcap with the capture's link type and the original timestamps, lengths and bytes.
    Pcap,
    /// Dump: pcapng, one interface per link type used.
    Pcapng,
    /// Dump: the decoded frames as an XML property list.
    Plist,
    /// Dump: the decoded frames as an indented tree.
    Tree,
    /// Dump: the decoded frames as flat `key: value` lines.
    Text,
}

/// The formats a flow dump can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    Pcap,
    Pcapng,
    Json,
    Plist,
    Tree,
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

    pub fn is_binary(self) -> bool {
        matches!(self, DumpFormat::Pcap | DumpFormat::Pcapng)
    }

    /// The dump format a `--format` value names, if any.
    pub fn from_query(f: QueryFormat) -> Option<DumpFormat> {
        match f {
            QueryFormat::Pcap => Some(DumpFormat::Pcap),
            QueryFormat::Pcapng => Some(DumpFormat::Pcapng),
            QueryFormat::Json => Some(DumpFormat::Json),
            QueryFormat::Plist => Some(DumpFormat::Plist),
            QueryFormat::Tree => Some(DumpFormat::Tree),
            QueryFormat::Text => Some(DumpFormat::Text),
            QueryFormat::Table | QueryFormat::Jsonl => None,
        }
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

/// pcap byte order (`--byteorder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ByteOrder {
    Little,
    Big,
}

#[derive(Clone, Debug)]
pub struct DumpOptions {
    pub format: DumpFormat,
    /// pcap byte order; pcapkit's default is the machine's.
    pub big_endian: bool,
    /// pcap: always write ns timestamps. Otherwise ns are used only when the capture has sub-µs resolution, so
    /// the timestamps stay exact.
    pub nanosecond: bool,
    /// Where to look for moved captures, by base name.
    pub source_root: Option<PathBuf>,
}

impl DumpOptions {
    pub fn new(format: DumpFormat) -> DumpOptions {
        DumpOptions {
            format,
            big_endian: cfg!(target_endian = "big"),
            nanosecond: false,
            source_root: None,
        }
    }
}

/// The flows of one capture that share a label: one dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowGroup {
    pub capture_id: i64,
    pub label: String,
    /// flow_no of each flow, in index order.
    pub flows: Vec<i64>,
}

/// Index order of a capture's flows: open flows in creation order, then closed flows in closing order.
const INDEX_ORDER: &str = "f.closed_frame IS NOT NULL, coalesce(f.closed_frame, f.first_frame)";

/// Every flow labelled `label` (in `capture`, or in the one capture that has it).
pub fn select_label(
    conn: &Connection,
    capture: Option<i64>,
    label: &str,
) -> Result<FlowGroup, DumpError> {
    // The label's time is its flow's first frame time: the flows_first_ns index (capture_id, first_ns) finds it
    // with one seek per capture, without a scan.
    let (lo, hi) = crate::query::label_time_range(label).unwrap_or((i64::MIN, i64::MAX));
    let rows: Vec<(i64, i64, String)> = conn
        .prepare(&format!(
            "SELECT f.capture_id, f.flow_no, c.name FROM flows f
             JOIN captures c ON c.id = f.capture_id
             WHERE f.label = ?1 AND f.first_ns BETWEEN ?3 AND ?4
               AND f.capture_id IN (SELECT id FROM captures WHERE ?2 IS NULL OR id = ?2)
             ORDER BY f.capture_id, {INDEX_ORDER}"
        ))?
        .query_map(rusqlite::params![label, capture, lo, hi], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let Some(first) = rows.first() else {
        return Err(unknown_label(conn, capture, label));
    };
    let cid = first.0;
    if rows.iter().any(|r| r.0 != cid) {
        let mut caps: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
        caps.dedup();
        return Err(DumpError::LabelInSeveralCaptures {
            label: label.to_string(),
            captures: caps.join(", "),
        });
    }
    Ok(FlowGroup {
        capture_id: cid,
        label: label.to_string(),
        flows: rows.iter().map(|r| r.1).collect(),
    })
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn unknown_label(conn: &Connection, capture: Option<i64>, label: &str) -> DumpError {
    let scope = match capture {
        Some(id) => conn
            .query_row("SELECT name FROM captures WHERE id = ?1", [id], |r| {
                r.get::<_, String>(0)
            })
            .map(|n| format!(" in capture {n}"))
            .unwrap_or_default(),
        None => String::new(),
    };
    let labels: Vec<String> = conn
        .prepare("SELECT DISTINCT label FROM flows WHERE ?1 IS NULL OR capture_id = ?1")
        .and_then(|mut st| {
            st.query_map([capture], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .unwrap_or_default();
    let mut scored: Vec<(usize, String)> = labels
        .into_iter()
        .map(|l| (distance(label, &l), l))
        .collect();
    scored.sort();
    let best: Vec<String> = scored.into_iter().take(5).map(|(_, l)| l).collect();
    let hint = if best.is_empty() {
        " (there are no flows; see `traceflow query` for the index)".to_string()
    } else {
        format!("; closest labels: {}", best.join(", "))
    };
    DumpError::UnknownLabel {
        label: label.to_string(),
        scope,
        hint,
    }
}

/// Every label of a capture, in index order (a label's place is that of its first flow).
pub fn capture_groups(conn: &Connection, capture_id: i64) -> Result<Vec<FlowGroup>, DumpError> {
    let rows: Vec<(i64, String)> = conn
        .prepare(&format!(
            "SELECT f.flow_no, f.label FROM flows f
             WHERE f.capture_id = ?1 ORDER BY {INDEX_ORDER}"
        ))?
        .query_map([capture_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut groups: Vec<FlowGroup> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (flow_no, label) in rows {
        match at.get(&label) {
            Some(&i) => groups[i].flows.push(flow_no),
            None => {
                at.insert(label.clone(), groups.len());
                groups.push(FlowGroup {
                    capture_id,
                    label,
                    flows: vec![flow_no],
                });
            }
        }
    }
    Ok(groups)
}

/// A capture's interfaces: (linktype, snaplen, tsresol) by iface number.
#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: u32,
    snaplen: u32,
    tsresol: u8,
}

fn interfaces(conn: &Connection, capture_id: i64) -> Result<HashMap<u32, Iface>, DumpError> {
    Ok(conn
        .prepare("SELECT iface, linktype, snaplen, tsresol FROM interfaces WHERE capture_id = ?1")?
        .query_map([capture_id], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                Iface {
                    linktype: r.get(1)?,
                    snaplen: r.get(2)?,
                    tsresol: r.get(3)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?)
}

/// Walks one flow's `prev_in_flow` links back from its last frame: one primary-key lookup per frame of the
/// flow, whatever the size of the capture (frames has no index on flow_no). CROSS JOIN keeps SQLite from scanning
/// the capture's frames and probing the chain instead. The walk is bounded whatever the database holds: each
/// step must go to a smaller frame number of the same flow, and it takes at most `flows.packets` steps (a cycle
/// written into a damaged database once made it run forever, filling the temporary folder).
const FLOW_FRAMES_SQL: &str = "WITH RECURSIVE chain(number, steps) AS (
         SELECT last_frame, 1 FROM flows WHERE capture_id = ?1 AND flow_no = ?2
         UNION ALL
         SELECT f.prev_in_flow, c.steps + 1 FROM chain c
         JOIN frames f ON f.capture_id = ?1 AND f.number = c.number
         WHERE f.prev_in_flow IS NOT NULL AND f.prev_in_flow < c.number AND f.flow_no = ?2
           AND c.steps < (SELECT packets FROM flows WHERE capture_id = ?1 AND flow_no = ?2)
     )
     SELECT fr.number, fr.ts_ns, fr.caplen, fr.origlen, fr.iface, fr.file_offset, fr.flow_no, fr.prev_in_flow
     FROM chain c CROSS JOIN frames fr ON fr.capture_id = ?1 AND fr.number = c.number
     ORDER BY fr.number";

/// Reads the frames of flows, one flow at a time, with the walk prepared once.
pub struct FlowFrames<'c> {
    st: rusqlite::Statement<'c>,
    flow: rusqlite::Statement<'c>,
}

impl<'c> FlowFrames<'c> {
    pub fn new(conn: &'c Connection) -> Result<FlowFrames<'c>, DumpError> {
        Ok(FlowFrames {
            st: conn.prepare(FLOW_FRAMES_SQL)?,
            flow: conn.prepare(
                "SELECT first_frame, packets FROM flows WHERE capture_id = ?1 AND flow_no = ?2",
            )?,
        })
    }

    /// Appends the frames of flow `flow_no` of `capture_id` to `out`, in frame order; a chain that does not end
    /// at the flow's first frame, or holds another flow's frame, is reported as a damaged database.
    pub fn append(
        &mut self,
        capture_id: i64,
        flow_no: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), DumpError> {
        let (first, packets): (i64, i64) = self
            .flow
            .query_row(rusqlite::params![capture_id, flow_no], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let start = out.len();
        let mut rows = self.st.query(rusqlite::params![capture_id, flow_no])?;
        let mut bad = None;
        while let Some(r) = rows.next()? {
            let number: i64 = r.get(0)?;
            let in_flow: Option<i64> = r.get(6)?;
            if in_flow != Some(flow_no) {
                bad = Some(format!(
                    "frame {number} is listed in flow {flow_no} but belongs to flow {in_flow:?}"
                ));
            }
            out.push(FrameRef {
                number: number as u64,
                ts_ns: r.get(1)?,
                caplen: r.get(2)?,
                origlen: r.get(3)?,
                iface: r.get(4)?,
                offset: r.get::<_, i64>(5)? as u64,
            });
        }
        let got = &out[start..];
        if bad.is_none()
            && (got.len() as i64 != packets || got.first().map(|f| f.number as i64) != Some(first))
        {
            bad = Some(format!(
                "flow {flow_no} of capture {capture_id} should have {packets} frames from frame {first}, its \
                 prev_in_flow chain gives {} from frame {}",
                got.len(),
                got.first().map(|f| f.number.to_string()).unwrap_or_else(|| "none".into())
            ));
        }
        match bad {
            Some(why) => Err(DumpError::Corrupt(why)),
            None => Ok(()),
        }
    }
}

/// The frames of a group, in index order (flow by flow, each in frame order).
fn group_frames(conn: &Connection, g: &FlowGroup) -> Result<Vec<FrameRef>, DumpError> {
    let mut walk = FlowFrames::new(conn)?;
    let mut out = Vec::new();
    for flow in &g.flows {
        walk.append(g.capture_id, *flow, &mut out)?;
    }
    Ok(out)
}

/// One capture's context for dumping: its row, interfaces, and the frames of each group to dump.
struct Job {
    cap: CaptureRow,
    ifaces: HashMap<u32, Iface>,
}

impl Job {
    fn new(conn: &Connection, capture_id: i64) -> Result<Job, DumpError> {
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
                .map(|l| l.to_string())
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

fn digits(tsresol: u8) -> u8 {
    if tsresol & 0x80 != 0 {
        9
    } else {
        tsresol.min(9)
    }
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
            let snaplen = used()
                .map(|i| i.snaplen)
                .chain(frames.iter().map(|f| f.caplen))
                .max()
                .filter(|&s| s > 0)
                .unwrap_or(262_144);
            let nanos = opts.nanosecond || used().any(|i| digits(i.tsresol) > 6);
            let mut w = PcapWriter::new(&mut *out, linktype, snaplen, opts.big_endian, nanos)
                .map_err(werr)?;
            for f in frames {
                fetcher.fetch(f, &mut buf)?;
                w.write(f.ts_ns, f.origlen, &buf).map_err(werr)?;
            }
        }
        DumpFormat::Pcapng => {
            let mut w = PcapNgWriter::new(&mut *out).map_err(werr)?;
            // One interface per link type, at the finest resolution its frames had (ns at most: what is stored).
            let mut by_lt: Vec<(u32, u32, u8)> = Vec::new();
            for f in frames {
                let i = job.iface(f.iface);
                let res = if digits(i.tsresol) > 6 || opts.nanosecond {
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
                w.write(id, f.ts_ns, f.origlen, &buf).map_err(werr)?;
            }
        }
        DumpFormat::Json | DumpFormat::Plist => {
            let doc = Doc {
                job,
                frames,
                fetcher: std::cell::RefCell::new(fetcher),
                failed: std::cell::RefCell::new(None),
            };
            let res = if opts.format == DumpFormat::Json {
                let mut ser = serde_json::Serializer::pretty(&mut *out);
                doc.serialize(&mut ser).map_err(|e| e.to_string())
            } else {
                plist::to_writer_xml(&mut *out, &doc).map_err(|e| e.to_string())
            };
            if let Some(e) = doc.failed.into_inner() {
                return Err(e);
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

/// The decoded frames as one map `{"Frame N": {...}}`, fetched while serializing so memory stays flat.
struct Doc<'a, 'c> {
    job: &'a Job,
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
    conn: &'c Connection,
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

/// Writes the dump of one group to `out` (stdout or a file the caller opened).
pub fn write_group(
    conn: &Connection,
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

/// Dumps each label of each selected capture to `dir/{label}{ext}` and returns the index tuple with `fpout` set
/// (see [`dump_dir_with`], which hands the entries over one by one instead).
pub fn dump_dir(
    conn: &Connection,
    capture: Option<i64>,
    label: Option<&str>,
    dir: &Path,
    opts: &DumpOptions,
    force: bool,
) -> Result<Vec<IndexEntry>, DumpError> {
    let mut entries = Vec::new();
    dump_dir_with(conn, capture, label, dir, opts, force, &mut |e| {
        entries.push(e);
        Ok(())
    })?;
    Ok(entries)
}

/// One capture's part of a folder dump: the sub-folder (0 is DIR itself) and its groups.
struct PlanItem {
    capture_id: i64,
    folder: Option<String>,
    groups: Vec<FlowGroup>,
}

/// Dumps each label of each selected capture to `dir/{label}{ext}`, then hands each entry of the index tuple
/// whose label was dumped, with `fpout` set, to `emit`.
///
/// With `capture` or `label` the files go straight into `dir`; over every capture of the database each capture
/// gets its own sub-folder (named after it), as labels may repeat across captures. Memory does not grow with the
/// capture's frames: one flow's frames are read, written and let go at a time. Files are made as
/// [`file::DumpDir`] makes them: whole, never through a link, and a DIR that did not exist appears only when
/// the whole dump succeeded.
pub fn dump_dir_with(
    conn: &Connection,
    capture: Option<i64>,
    label: Option<&str>,
    dir: &Path,
    opts: &DumpOptions,
    force: bool,
    emit: &mut dyn FnMut(IndexEntry) -> Result<(), DumpError>,
) -> Result<(), DumpError> {
    let mut plan: Vec<PlanItem> = Vec::new();
    match (capture, label) {
        (_, Some(l)) => {
            let g = select_label(conn, capture, l)?;
            plan.push(PlanItem {
                capture_id: g.capture_id,
                folder: None,
                groups: vec![g],
            });
        }
        (Some(id), None) => plan.push(PlanItem {
            capture_id: id,
            folder: None,
            groups: capture_groups(conn, id)?,
        }),
        (None, None) => {
            let caps: Vec<(i64, String)> = conn
                .prepare("SELECT id, name FROM captures ORDER BY id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
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
                    groups: capture_groups(conn, id)?,
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
        emit,
    ) {
        Ok(()) => out.finish(),
        Err(e) => Err(out.abandon(e)),
    }
}

fn fill_dir(
    conn: &Connection,
    plan: &[PlanItem],
    out: &mut DumpDir,
    multi: bool,
    opts: &DumpOptions,
    force: bool,
    emit: &mut dyn FnMut(IndexEntry) -> Result<(), DumpError>,
) -> Result<(), DumpError> {
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
                    frames.clear();
                    for f in &g.flows {
                        walk.append(g.capture_id, *f, &mut frames)?;
                    }
                    pcap_linktype(&job, &g.label, &frames)?;
                }
            }
        }
        // Flows come in index order, not file order: a compressed source is decompressed once, to its end.
        let end: Option<i64> = conn.query_row(
            "SELECT max(file_offset + caplen) FROM frames WHERE capture_id = ?1 AND flow_no IS NOT NULL",
            [item.capture_id],
            |r| r.get(0),
        )?;
        let mut fetcher = match end {
            Some(end) if !item.groups.is_empty() => Some(Fetcher::open(
                conn,
                &job.cap,
                opts.source_root.as_deref(),
                &Plan {
                    in_order: false,
                    end: end.max(0) as u64 + 28,
                },
            )?),
            _ => None,
        };
        let mut fpout: HashMap<&str, String> = HashMap::new();
        for g in &item.groups {
            frames.clear();
            for f in &g.flows {
                walk.append(g.capture_id, *f, &mut frames)?;
            }
            let name = dump_file_name(&g.label, opts.format);
            let shown = out.shown(k, &name).display().to_string();
            out.write(k, &name, &mut |w| match fetcher.as_mut() {
                Some(f) => write_frames(&job, &g.label, &frames, f, opts, w, &shown),
                None => Ok(()),
            })?;
            fpout.insert(g.label.as_str(), shown);
        }
        query::for_each_index_row(conn, Some(item.capture_id), &mut |_, label, numbers| {
            if let Some(p) = fpout.get(label) {
                let e = IndexEntry {
                    capture: multi.then(|| job.cap.name.clone()),
                    fpout: Some(p.clone()),
                    index: numbers.split(',').filter_map(|s| s.parse().ok()).collect(),
                    label: label.to_string(),
                };
                emit(e).map_err(|e| match e {
                    DumpError::Query(q) => q,
                    other => QueryError::Output(io::Error::other(other.to_string())),
                })?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Everything `traceflow query` takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct QueryArgs {
    /// Capture by base name, path or id.
    #[arg(long)]
    pub capture: Option<String>,
    /// Dump the frames of every flow with this label (of one capture), instead of printing the index.
    #[arg(long, value_name = "LABEL")]
    pub flow: Option<String>,
    /// Write DIR/{label}{ext} for each label (of --capture, or of every capture in sub-folders), then print
    /// the index tuple with fpout set.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Index: table, json, jsonl [default: table on a terminal, json otherwise]. Dumps: pcap, pcapng, json,
    /// plist, tree, text [default: from -o's extension, else pcap].
    #[arg(long, value_enum)]
    pub format: Option<QueryFormat>,
    /// Write to FILE instead of stdout (`-` is stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Let --dump overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// pcap dumps: byte order [default: the machine's].
    #[arg(long, value_enum)]
    pub byteorder: Option<ByteOrder>,
    /// pcap/pcapng dumps: nanosecond timestamps (they are used anyway when the capture has them).
    #[arg(long)]
    pub nanosecond: bool,
    /// Look for moved captures under DIR, by base name.
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
}

/// Runs `traceflow query`: the index tuple, one flow's dump, or a folder of dumps. Only data goes to `stdout`.
pub fn run_query(
    conn: &Connection,
    args: &QueryArgs,
    stdout: &mut dyn Write,
    stdout_is_terminal: bool,
) -> Result<(), DumpError> {
    let capture = args
        .capture
        .as_deref()
        .map(|c| query::resolve_capture(conn, c))
        .transpose()?;
    let to_stdout = args.output.as_deref().is_none_or(|p| p.as_os_str() == "-");
    let werr = |path: &str| {
        let path = path.to_string();
        move |source| DumpError::Write { path, source }
    };
    let default_rows = if stdout_is_terminal {
        RowFormat::Table
    } else {
        RowFormat::Json
    };
    if args.flow.is_none() && args.dump.is_none() {
        // The index tuple (issue 2's contract).
        let rows = match args.format {
            None => default_rows,
            Some(QueryFormat::Table) => RowFormat::Table,
            Some(QueryFormat::Json) => RowFormat::Json,
            Some(QueryFormat::Jsonl) => RowFormat::Jsonl,
            Some(f) => {
                return Err(DumpError::Usage(format!(
                    "--format {} dumps flows: add --flow LABEL or --dump DIR",
                    DumpFormat::from_query(f).map(|d| d.name()).unwrap_or("?")
                )))
            }
        };
        let write_index = |w: &mut dyn Write, shown: &str| -> Result<(), DumpError> {
            match rows {
                // JSON streams row by row: a capture's whole index never sits in memory.
                RowFormat::Json | RowFormat::Jsonl => {
                    query::write_index_json(conn, capture, rows == RowFormat::Jsonl, w)?
                }
                RowFormat::Table => {
                    let entries = query::index(conn, capture)?;
                    write_rows(w, &entries, rows).map_err(werr(shown))?;
                }
            }
            w.flush().map_err(werr(shown))
        };
        if to_stdout {
            let mut w = BufWriter::with_capacity(1 << 16, stdout);
            return write_index(&mut w, "stdout");
        }
        let p = args.output.as_deref().unwrap_or(Path::new("-"));
        let shown = p.display().to_string();
        let mut file = OutputFile::create(p)?;
        {
            let mut w = BufWriter::new(file.file());
            write_index(&mut w, &shown)?;
        }
        return file.commit();
    }
    let format = match args.format {
        Some(f) => DumpFormat::from_query(f).ok_or_else(|| {
            DumpError::Usage(
                "dumps take --format pcap, pcapng, json, plist, tree or text (table and jsonl are for the index)"
                    .into(),
            )
        })?,
        None => args
            .output
            .as_deref()
            .and_then(DumpFormat::from_path)
            .unwrap_or(DumpFormat::Pcap),
    };
    let mut opts = DumpOptions::new(format);
    if let Some(b) = args.byteorder {
        opts.big_endian = b == ByteOrder::Big;
    }
    opts.nanosecond = args.nanosecond;
    opts.source_root = args.source_root.clone();
    if let Some(dir) = &args.dump {
        if !to_stdout {
            return Err(DumpError::Usage(
                "--dump writes one file per label into its folder; it takes no -o".into(),
            ));
        }
        let entries = dump_dir(conn, capture, args.flow.as_deref(), dir, &opts, args.force)?;
        return write_rows(stdout, &entries, default_rows).map_err(werr("stdout"));
    }
    let label = args.flow.as_deref().unwrap_or_default();
    let group = select_label(conn, capture, label)?;
    if to_stdout {
        if format.is_binary() && stdout_is_terminal {
            return Err(DumpError::Terminal {
                format: format.name(),
            });
        }
        let mut w = BufWriter::new(stdout);
        write_group(conn, &group, &opts, &mut w, "stdout")
    } else {
        let p = args.output.as_deref().unwrap_or(Path::new("-"));
        let shown = p.display().to_string();
        // The source first: if its bytes cannot be had, FILE is never touched.
        let mut prepared = prepare_group(conn, &group, &opts)?;
        // -o names one file on purpose: replace it, as tcpdump -w and pcapkit do, but only with a whole dump.
        let mut file = OutputFile::create(p)?;
        {
            let mut w = BufWriter::new(file.file());
            prepared.write(&opts, &mut w, &shown)?;
        }
        file.commit()
    }
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

    #[test]
    fn edit_distance() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
