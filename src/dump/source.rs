//! Where a dump's frame bytes come from: the database (`ingest --embed`), or the source capture re-read at the
//! recorded offsets, after checking it is still the file that was indexed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::store::backend::EmbeddedFrames;

use crate::store::Db;

use super::DumpError;
use crate::capture::CaptureReader;
use crate::store::read;
pub use crate::store::read::{capture_row, CaptureRow, FrameRef};

/// How a dump will ask for frames: whether in file order, and the byte offset past the last record it needs.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// True when the frames come in increasing frame number, so a compressed file can be streamed once.
    pub in_order: bool,
    /// Upper bound of the bytes to read: past the end of the last record wanted (in the decompressed file).
    pub end: u64,
}

impl Plan {
    /// The plan of fetching `frames` in the order given.
    pub fn of(frames: &[FrameRef]) -> Plan {
        Plan {
            in_order: frames.windows(2).all(|w| w[0].number < w[1].number),
            end: frames
                .iter()
                .map(|f| f.offset + 28 + u64::from(f.caplen))
                .max()
                .unwrap_or(0),
        }
    }
}

impl Plan {
    /// The plan of fetching a capture's TCP frames in any order (several flows, or frames merged by time): a
    /// compressed source is decompressed once, up to the end of its last TCP record. Records lie in frame order
    /// in the file, so that is the last TCP frame's, found with one backward seek rather than a scan of the
    /// capture's frames. `None` when the capture has no TCP frame.
    pub fn any_order(db: &Db, capture_id: i64) -> Result<Option<Plan>, DumpError> {
        let end = read::last_tcp_end(db, capture_id)?;
        Ok(end.map(|end| Plan {
            in_order: false,
            end: end.max(0) as u64 + 28,
        }))
    }
}

/// A frame the database claims is larger than any record the reader accepts: a damaged or crafted database.
/// Refused before anything is allocated for it (a caplen near 4 GiB once made a dump allocate 4 GiB).
fn check_size(f: &FrameRef) -> Result<(), DumpError> {
    if f.caplen > crate::capture::MAX_RECORD {
        return Err(DumpError::Corrupt(format!(
            "frame {} has a captured length of {} bytes, more than any record can hold ({} bytes)",
            f.number,
            f.caplen,
            crate::capture::MAX_RECORD
        )));
    }
    Ok(())
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
    if mtime.is_some() && crate::capture::file_stat(&meta).1 == mtime {
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
pub fn locate(conn: &Db, cap: &CaptureRow, root: Option<&Path>) -> Result<PathBuf, DumpError> {
    let mut cands = read::capture_paths(conn, cap.id)?;
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
    /// pcap: whether timestamps are in ns. pcapng: `if_tsresol` of each interface, to check record times.
    nanos: bool,
    tsresol: Vec<u8>,
}

impl SeekReader {
    fn new(mut file: File, path: String, tsresol: Vec<u8>) -> Result<SeekReader, DumpError> {
        let mut magic = [0u8; 4];
        file.read_exact(&mut magic)
            .map_err(|source| DumpError::Io {
                path: path.clone(),
                source,
            })?;
        let m = u32::from_le_bytes(magic);
        let nanos = m == crate::capture::PCAP_NS_LE || m == crate::capture::PCAP_NS_BE;
        let framing = match m {
            crate::capture::PCAP_US_LE | crate::capture::PCAP_NS_LE => Framing::Pcap { big: false },
            crate::capture::PCAP_US_BE | crate::capture::PCAP_NS_BE => Framing::Pcap { big: true },
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
            nanos,
            tsresol,
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
                let origlen = u32_at(&self.head, 12, big);
                if caplen != f.caplen || origlen != f.origlen {
                    return Err(mismatch(format!(
                        "record lengths {caplen}/{origlen}, indexed as {}/{}",
                        f.caplen, f.origlen
                    )));
                }
                // The time too: a same-size rewrite with its mtime kept (cp -p, rsync -t) passes the file checks.
                let sec = i64::from(u32_at(&self.head, 0, big));
                let frac = i64::from(u32_at(&self.head, 4, big));
                let ns = sec * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
                if ns != f.ts_ns {
                    return Err(mismatch(format!(
                        "record time {ns} ns, indexed as {} ns",
                        f.ts_ns
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
                    let origlen = u32_at(&self.head, 24, big);
                    if caplen != f.caplen || origlen != f.origlen {
                        return Err(mismatch(format!(
                            "packet lengths {caplen}/{origlen}, indexed as {}/{}",
                            f.caplen, f.origlen
                        )));
                    }
                    // The interface's if_tsoffset (whole seconds) is not stored: the sub-second part must match.
                    if let Some(&res) = self.tsresol.get(f.iface as usize) {
                        let ticks = (u64::from(u32_at(&self.head, 12, big)) << 32)
                            | u64::from(u32_at(&self.head, 16, big));
                        let ts = crate::capture::ticks_to_ts(ticks, res);
                        let ns = ts.as_ns();
                        // A time past what ns in 64 bits hold was stored saturated: nothing to compare.
                        let stored_whole = f.ts_ns != i64::MIN && f.ts_ns != i64::MAX;
                        if ts.fits_ns()
                            && stored_whole
                            && (i128::from(ns) - i128::from(f.ts_ns)).rem_euclid(1_000_000_000) != 0
                        {
                            return Err(mismatch(format!(
                                "packet time {ns} ns, indexed as {} ns",
                                f.ts_ns
                            )));
                        }
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
            if fr.offset != f.offset
                || fr.caplen != f.caplen
                || fr.origlen != f.origlen
                || fr.ts.as_ns() != f.ts_ns
            {
                return Err(mismatch(format!(
                    "found a record of {}/{} bytes at offset {} with time {} ns, indexed as {}/{} bytes at {} \
                     with time {} ns",
                    fr.caplen,
                    fr.origlen,
                    fr.offset,
                    fr.ts.as_ns(),
                    f.caplen,
                    f.origlen,
                    f.offset,
                    f.ts_ns
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
    /// From the database's `frame_data` (`ingest --embed`): its reader, the capture's id and its name.
    Embedded(Box<dyn EmbeddedFrames + 'c>, i64, String),
    /// From an uncompressed capture, or a decompressed spool of a compressed one, by seeking.
    Seek(SeekReader),
    /// From a compressed capture streamed once, when the frames come in file order.
    Stream(StreamReader),
}

impl<'c> Fetcher<'c> {
    /// Opens the bytes of `cap` for fetching frames as `plan` says.
    pub fn open(
        conn: &'c Db,
        cap: &CaptureRow,
        root: Option<&Path>,
        plan: &Plan,
    ) -> Result<Fetcher<'c>, DumpError> {
        if cap.embedded {
            return Ok(Fetcher::Embedded(
                conn.embedded_frames()?,
                cap.id,
                cap.name.clone(),
            ));
        }
        let tsresol = read::tsresols(conn, cap.id)?;
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
        let compression = crate::capture::compression_of(&head[..n]);
        if compression == crate::capture::Compression::None {
            return Ok(Fetcher::Seek(SeekReader::new(file, shown, tsresol)?));
        }
        if plan.in_order {
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
        // temporary file, and seek in that. The file is unlinked from the start (nothing is left in the
        // temporary folder after Ctrl-C, SIGTERM or kill -9) and private (0600), as the capture may be.
        let tmpdir = std::env::temp_dir();
        let spool_err = |source: io::Error| DumpError::Spool {
            capture: shown.clone(),
            dir: tmpdir.display().to_string(),
            source,
        };
        let mut tmp = tempfile::tempfile_in(&tmpdir).map_err(spool_err)?;
        // O_TMPFILE files get the umask's mode (0644 here), and /proc/PID/fd/N reaches them: keep them private.
        tmp.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(spool_err)?;
        let mut dec = crate::capture::decompressor(compression, Box::new(io::BufReader::new(file)))
            .map_err(io_err)?;
        // Copied by hand so that a read error names the capture and a write error the temporary folder.
        let mut w = io::BufWriter::with_capacity(1 << 20, &mut tmp);
        let mut buf = vec![0u8; 1 << 16];
        let mut left = plan.end;
        while left > 0 {
            let want = buf.len().min(left.min(usize::MAX as u64) as usize);
            let got = match dec.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            w.write_all(&buf[..got]).map_err(spool_err)?;
            left -= got as u64;
        }
        w.flush().map_err(spool_err)?;
        drop(w);
        tmp.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        Ok(Fetcher::Seek(SeekReader::new(tmp, shown, tsresol)?))
    }

    /// The captured bytes of frame `f`, into `out`.
    pub fn fetch(&mut self, f: &FrameRef, out: &mut Vec<u8>) -> Result<(), DumpError> {
        super::check_interrupt()?;
        check_size(f)?;
        match self {
            Fetcher::Embedded(frames, id, name) => {
                let data = frames.frame_data(*id, f.number as i64)?;
                match data {
                    Some(d) if d.len() != f.caplen as usize => Err(DumpError::Corrupt(format!(
                        "frame {} has {} embedded bytes, its captured length is {}",
                        f.number,
                        d.len(),
                        f.caplen
                    ))),
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
