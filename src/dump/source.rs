//! Where a dump's frame bytes come from: the database (`ingest --embed`), or the source capture re-read at the
//! recorded offsets, after checking it is still the file that was indexed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::DumpError;
use crate::capture::CaptureReader;

/// A frame to fetch, as the frames table records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    pub number: u64,
    pub ts_ns: i64,
    pub caplen: u32,
    pub origlen: u32,
    pub iface: u32,
    /// Byte offset of the record in the decompressed stream.
    pub offset: u64,
}

/// The captures row of the capture being dumped.
#[derive(Clone, Debug)]
pub struct CaptureRow {
    pub id: i64,
    pub name: String,
    pub path: String,
    pub size: i64,
    pub mtime_ns: Option<i64>,
    pub hash: Option<String>,
    pub embedded: bool,
}

pub fn capture_row(conn: &Connection, id: i64) -> Result<CaptureRow, DumpError> {
    Ok(conn.query_row(
        "SELECT id, name, path, size, mtime_ns, hash, embedded FROM captures WHERE id = ?1",
        [id],
        |r| {
            Ok(CaptureRow {
                id: r.get(0)?,
                name: r.get(1)?,
                path: r.get(2)?,
                size: r.get(3)?,
                mtime_ns: r.get(4)?,
                hash: r.get(5)?,
                embedded: r.get::<_, i64>(6)? != 0,
            })
        },
    )?)
}

fn mtime_ns(m: &std::fs::Metadata) -> Option<i64> {
    m.modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as i64)
}

/// xxh3-128 of a file's bytes, as ingest records it in `captures.hash`.
fn file_hash(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:032x}", h.digest128()))
}

/// Why a candidate file is not the indexed capture, or `None` when it is.
fn check(path: &Path, cap: &CaptureRow, size: i64, mtime: Option<i64>) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Some("not a regular file".into()),
        Err(e) => return Some(e.to_string()),
    };
    if meta.len() as i64 != size {
        return Some(format!(
            "changed: {} bytes, indexed with {size}",
            meta.len()
        ));
    }
    if mtime.is_some() && mtime_ns(&meta) == mtime {
        return None;
    }
    // Same size but another time (copied, touched, or moved across file systems): the content decides.
    match (&cap.hash, file_hash(path)) {
        (Some(want), Ok(got)) if *want == got => None,
        (_, Err(e)) => Some(e.to_string()),
        _ => Some("changed: modification time and content differ from when it was indexed".into()),
    }
}

/// Finds the capture's file: a path it was indexed under, unchanged, or a file of the same base name under
/// `root` with the same content.
pub fn locate(
    conn: &Connection,
    cap: &CaptureRow,
    root: Option<&Path>,
) -> Result<PathBuf, DumpError> {
    let mut cands: Vec<(String, String, i64, Option<i64>)> = conn
        .prepare("SELECT path, name, size, mtime_ns FROM capture_paths WHERE capture_id = ?1 ORDER BY rowid")?
        .query_map([cap.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    if !cands.iter().any(|c| c.0 == cap.path) {
        cands.insert(
            0,
            (cap.path.clone(), cap.name.clone(), cap.size, cap.mtime_ns),
        );
    }
    let mut tried = Vec::new();
    for (path, _, size, mtime) in &cands {
        if path == "-" {
            tried.push("it was read from standard input".to_string());
            continue;
        }
        match check(Path::new(path), cap, *size, *mtime) {
            None => return Ok(PathBuf::from(path)),
            Some(why) => tried.push(format!("{path}: {why}")),
        }
    }
    if let Some(root) = root {
        let mut names: Vec<&str> = cands.iter().map(|c| c.1.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut found = Vec::new();
        find_named(root, &names, &mut found, 0);
        found.sort();
        for p in &found {
            match check(p, cap, cap.size, None) {
                None => return Ok(p.clone()),
                Some(why) => tried.push(format!("{}: {why}", p.display())),
            }
        }
        if found.is_empty() {
            tried.push(format!(
                "no file named {} under {}",
                names.join(" or "),
                root.display()
            ));
        }
    }
    Err(DumpError::SourceUnavailable {
        capture: cap.name.clone(),
        tried: tried.join("; "),
    })
}

fn find_named(dir: &Path, names: &[&str], out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => find_named(&p, names, out, depth + 1),
            Ok(_) => {
                if p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| names.contains(&n))
                {
                    out.push(p);
                }
            }
            Err(_) => {}
        }
    }
}

/// How records are framed in an uncompressed file.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Pcap { big: bool },
    PcapNg,
}

/// Reads records by seeking to their offsets in an uncompressed file (or a decompressed spool).
pub struct SeekReader {
    file: File,
    /// The capture file, for messages (the spool's own path means nothing to users).
    path: String,
    framing: Framing,
    head: Vec<u8>,
    _spool: Option<Spool>,
}

/// A temporary file holding a decompressed capture; removed when dropped.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const GZIP: [u8; 2] = [0x1f, 0x8b];
const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(&GZIP) || head.starts_with(&ZSTD)
}

impl SeekReader {
    fn new(mut file: File, path: String, spool: Option<Spool>) -> Result<SeekReader, DumpError> {
        let mut magic = [0u8; 4];
        file.read_exact(&mut magic)
            .map_err(|source| DumpError::Io {
                path: path.clone(),
                source,
            })?;
        let framing = match u32::from_le_bytes(magic) {
            0xa1b2_c3d4 | 0xa1b2_3c4d => Framing::Pcap { big: false },
            0xd4c3_b2a1 | 0x4d3c_b2a1 => Framing::Pcap { big: true },
            0x0A0D_0D0A => Framing::PcapNg,
            _ => {
                return Err(DumpError::SourceMismatch {
                    path,
                    frame: 0,
                    offset: 0,
                    what: "not a pcap or pcapng file any more".into(),
                })
            }
        };
        Ok(SeekReader {
            file,
            path,
            framing,
            head: Vec::new(),
            _spool: spool,
        })
    }

    fn fetch(&mut self, f: &FrameRef, out: &mut Vec<u8>) -> Result<(), DumpError> {
        let read_err = |source| DumpError::Read {
            path: self.path.clone(),
            frame: f.number,
            offset: f.offset,
            source,
        };
        let mismatch = |what: String| DumpError::SourceMismatch {
            path: self.path.clone(),
            frame: f.number,
            offset: f.offset,
            what,
        };
        // The record header, then the captured bytes right after it (pcap 16, EPB/OPB 28, SPB 12 bytes).
        self.file
            .seek(SeekFrom::Start(f.offset))
            .map_err(read_err)?;
        let hdr = match self.framing {
            Framing::Pcap { .. } => 16,
            Framing::PcapNg => 28,
        };
        self.head.resize(hdr, 0);
        let got = crate::capture::read_full(&mut self.file, &mut self.head).map_err(read_err)?;
        let u32_at = |b: &[u8], at: usize, big: bool| {
            let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            if big {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        };
        let data_at = match self.framing {
            Framing::Pcap { big } => {
                if got < 16 {
                    return Err(mismatch("the record is cut off".into()));
                }
                let caplen = u32_at(&self.head, 8, big);
                if caplen != f.caplen {
                    return Err(mismatch(format!(
                        "record length {caplen}, indexed as {}",
                        f.caplen
                    )));
                }
                16
            }
            Framing::PcapNg => {
                if got < 12 {
                    return Err(mismatch("the block is cut off".into()));
                }
                let le = u32_at(&self.head, 0, false);
                let be = u32_at(&self.head, 0, true);
                let (btype, big) = match (le, be) {
                    (2 | 3 | 6, _) => (le, false),
                    (_, 2 | 3 | 6) => (be, true),
                    _ => return Err(mismatch(format!("no packet block here (type {le:#x})"))),
                };
                if btype == 3 {
                    12
                } else {
                    if got < 28 {
                        return Err(mismatch("the block is cut off".into()));
                    }
                    let caplen = u32_at(&self.head, 20, big);
                    if caplen != f.caplen {
                        return Err(mismatch(format!(
                            "packet length {caplen}, indexed as {}",
                            f.caplen
                        )));
                    }
                    28
                }
            }
        };
        out.clear();
        out.resize(f.caplen as usize, 0);
        self.file
            .seek(SeekFrom::Start(f.offset + data_at))
            .map_err(read_err)?;
        let got = crate::capture::read_full(&mut self.file, out).map_err(read_err)?;
        if got < out.len() {
            return Err(mismatch("the frame is cut off".into()));
        }
        Ok(())
    }
}

/// Streams a compressed capture once, picking frames by number; requests must come in file order.
pub struct StreamReader {
    reader: CaptureReader,
    path: String,
}

impl StreamReader {
    fn fetch(&mut self, f: &FrameRef, out: &mut Vec<u8>) -> Result<(), DumpError> {
        let path = self.path.clone();
        let mismatch = |what: String| DumpError::SourceMismatch {
            path: path.clone(),
            frame: f.number,
            offset: f.offset,
            what,
        };
        loop {
            let Some(fr) = self.reader.next_frame() else {
                let why = self
                    .reader
                    .truncation()
                    .map(|t| t.reason.clone())
                    .unwrap_or_else(|| "the capture ends before it".into());
                return Err(mismatch(why));
            };
            if fr.number < f.number {
                continue;
            }
            if fr.number > f.number {
                return Err(mismatch("frames were requested out of file order".into()));
            }
            if fr.offset != f.offset || fr.caplen != f.caplen {
                return Err(mismatch(format!(
                    "found a record of {} bytes at offset {}, indexed as {} bytes at {}",
                    fr.caplen, fr.offset, f.caplen, f.offset
                )));
            }
            out.clear();
            out.extend_from_slice(fr.data);
            return Ok(());
        }
    }
}

/// The frame bytes of one capture.
pub enum Fetcher<'c> {
    Embedded(rusqlite::Statement<'c>, i64, String),
    Seek(SeekReader),
    Stream(StreamReader),
}

impl<'c> Fetcher<'c> {
    /// Opens the bytes of `cap` for fetching `plan` (the frames in the order they will be asked for).
    pub fn open(
        conn: &'c Connection,
        cap: &CaptureRow,
        root: Option<&Path>,
        plan: &[FrameRef],
    ) -> Result<Fetcher<'c>, DumpError> {
        if cap.embedded {
            let st =
                conn.prepare("SELECT data FROM frame_data WHERE capture_id = ?1 AND number = ?2")?;
            return Ok(Fetcher::Embedded(st, cap.id, cap.name.clone()));
        }
        let path = locate(conn, cap, root)?;
        let shown = path.display().to_string();
        let io_err = |source| DumpError::Io {
            path: shown.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(io_err)?;
        let mut head = [0u8; 4];
        let n = crate::capture::read_full(&mut file, &mut head).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        if !is_compressed(&head[..n]) {
            return Ok(Fetcher::Seek(SeekReader::new(file, shown, None)?));
        }
        let in_order = plan.windows(2).all(|w| w[0].number < w[1].number);
        if in_order {
            let reader = CaptureReader::open(&path).map_err(|e| DumpError::Io {
                path: shown.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            })?;
            return Ok(Fetcher::Stream(StreamReader {
                reader,
                path: shown,
            }));
        }
        // Frames wanted out of file order (several flows): decompress once, up to the last byte needed, into a
        // temporary file, and seek in that.
        let need = plan
            .iter()
            .map(|f| f.offset + 28 + f.caplen as u64)
            .max()
            .unwrap_or(0);
        let dec: Box<dyn Read> = if head.starts_with(&GZIP) {
            Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)))
        } else {
            Box::new(zstd::stream::read::Decoder::new(file).map_err(io_err)?)
        };
        let spool_path = std::env::temp_dir().join(format!(
            "traceflow-dump-{}-{}.tmp",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let spool_err = |source| DumpError::Io {
            path: spool_path.display().to_string(),
            source,
        };
        let mut tmp = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&spool_path)
            .map_err(spool_err)?;
        let spool = Spool(spool_path.clone());
        let mut w = io::BufWriter::new(&mut tmp);
        io::copy(&mut dec.take(need), &mut w).map_err(io_err)?;
        w.flush().map_err(spool_err)?;
        drop(w);
        tmp.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        Ok(Fetcher::Seek(SeekReader::new(tmp, shown, Some(spool))?))
    }

    /// The captured bytes of frame `f`, into `out`.
    pub fn fetch(&mut self, f: &FrameRef, out: &mut Vec<u8>) -> Result<(), DumpError> {
        match self {
            Fetcher::Embedded(st, id, name) => {
                let data: Option<Vec<u8>> = st
                    .query_row(params![*id, f.number as i64], |r| r.get(0))
                    .optional()?;
                match data {
                    Some(d) => {
                        out.clear();
                        out.extend_from_slice(&d);
                        Ok(())
                    }
                    None => Err(DumpError::SourceMismatch {
                        path: format!("database (capture {name})"),
                        frame: f.number,
                        offset: f.offset,
                        what: "no embedded bytes for this frame".into(),
                    }),
                }
            }
            Fetcher::Seek(r) => r.fetch(f, out),
            Fetcher::Stream(r) => r.fetch(f, out),
        }
    }
}
