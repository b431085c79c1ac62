//! Streaming reader for pcap and pcapng captures (optionally gzip/zstd compressed): yields frames with their
//! link type, exact timestamp and byte offset, in file order.
//!
//! The framing is done here rather than with pcap-parser's readers because traceflow needs three things they do
//! not give together: the byte offset of every record (for dumps), a frame slice reused without a per-frame
//! allocation (pcap-parser's enhanced-packet parser builds a `Vec` of options per frame), and a clean stop with the
//! offset where a damaged or cut-off file goes bad, with memory bounded by `MAX_RECORD`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::label::Timestamp;

/// A record larger than this is impossible (the bound: larger than any snaplen and 256 MiB).
pub const MAX_RECORD: u32 = 256 << 20;
const BUF_SIZE: usize = 1 << 20;

/// pcap's LINKTYPE value for a frame whose pcapng interface is unknown: decodes to nothing.
pub const LINKTYPE_UNKNOWN: u32 = u32::MAX;

/// pcap magic numbers as the file's first four bytes read little-endian: µs or ns timestamps, either byte order.
pub const PCAP_US_LE: u32 = 0xa1b2_c3d4;
pub const PCAP_NS_LE: u32 = 0xa1b2_3c4d;
pub const PCAP_US_BE: u32 = 0xd4c3_b2a1;
pub const PCAP_NS_BE: u32 = 0x4d3c_b2a1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// One interface of the capture: a pcap file has one, a pcapng file one per IDB (numbered across sections).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub linktype: u32,
    pub snaplen: u32,
    /// pcapng's `if_tsresol` byte: 10^-n seconds, or 2^-n when the top bit is set (pcap: 6 = µs, 9 = ns).
    pub tsresol: u8,
    /// pcapng's `if_tsoffset`: seconds added to every timestamp of the interface (0 for pcap).
    pub tsoffset: i64,
}

/// A frame borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Frame<'a> {
    /// 1-based, counting every packet record in file order across pcapng sections.
    pub number: u64,
    pub ts: Timestamp,
    pub caplen: u32,
    pub origlen: u32,
    /// Index into `CaptureReader::interfaces()`.
    pub iface: u32,
    pub linktype: u32,
    /// Byte offset of the record (pcap record header / pcapng block) in the decompressed stream.
    pub offset: u64,
    pub data: &'a [u8],
}

/// Why a capture ended early. Frames read before it stay valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub offset: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a pcap or pcapng capture (first bytes {0})")]
    NotCapture(String),
    #[error("capture header is cut off ({0} bytes)")]
    ShortHeader(usize),
}

type Source = BufReader<Box<dyn Read + Send>>;

pub struct CaptureReader {
    src: Source,
    /// The raw (on-disk) stream below any decompressor, through the tap: `drain` reads what is left of it.
    rest: SharedTap,
    /// Shared with the raw file reader below any decompressor: bytes read and the running content hash.
    tap: std::sync::Arc<std::sync::Mutex<(u64, xxhash_rust::xxh3::Xxh3)>>,
    pub format: Format,
    pub compression: Compression,
    big_endian: bool,
    /// Per-section base index into `interfaces` (pcapng interface ids restart at 0 in each section).
    section_base: usize,
    interfaces: Vec<Interface>,
    pos: u64,
    frames: u64,
    buf: Vec<u8>,
    truncated: Option<Truncation>,
    done: bool,
    /// The opened file (a second handle to it), to fstat it after the read; `None` for a stream given as a reader.
    file: Option<File>,
    /// (size, mtime) of the file when it was opened.
    at_open: Option<FileStat>,
    /// A regular file can be drained after damage; a pipe, FIFO or device might never end, so it is not.
    regular: bool,
}

/// A file's size and modification time (ns since the epoch), as `fstat` gives them.
pub type FileStat = (u64, Option<i64>);

fn file_stat(m: &std::fs::Metadata) -> FileStat {
    let mtime = m.modified().ok().and_then(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as i64)
    });
    (m.len(), mtime)
}

/// Reader wrapper that feeds the shared tap; kept separate so the tap survives behind a decompressor. The raw
/// reader is shared too, so that `drain` can hash the rest of a file whose decompression failed.
#[derive(Clone)]
struct SharedTap {
    inner: std::sync::Arc<std::sync::Mutex<Box<dyn Read + Send>>>,
    tap: std::sync::Arc<std::sync::Mutex<(u64, xxhash_rust::xxh3::Xxh3)>>,
}

impl Read for SharedTap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read(buf)?;
        if n > 0 {
            let mut t = self.tap.lock().unwrap_or_else(|e| e.into_inner());
            t.0 += n as u64;
            t.1.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;

impl CaptureReader {
    pub fn open(path: &Path) -> Result<CaptureReader, OpenError> {
        let f = File::open(path)?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(OpenError::Io(io::Error::other("is a directory")));
        }
        // A second handle to the same open file: fstat at the end sees what was read, even if the path moved.
        let stat_handle = f.try_clone().ok();
        let mut r = Self::from_reader(Box::new(f))?;
        r.regular = meta.is_file();
        r.at_open = Some(file_stat(&meta));
        r.file = stat_handle;
        Ok(r)
    }

    /// True when the input is not a regular file (stdin, a pipe, a FIFO, a device): it may never end.
    pub fn is_stream(&self) -> bool {
        !self.regular
    }

    /// The file's (size, mtime) when it was opened; `None` for a stream given as a reader.
    pub fn stat_at_open(&self) -> Option<FileStat> {
        self.at_open
    }

    /// The file's (size, mtime) now, by fstat of the open file; `None` for a stream given as a reader.
    pub fn stat_now(&self) -> Option<FileStat> {
        self.file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| file_stat(&m))
    }

    /// Ends the capture here, before the next record, as if it were cut off (`truncation` says `reason`).
    pub fn stop_here(&mut self, reason: impl Into<String>) {
        let at = self.pos;
        self.stop(at, reason);
    }

    /// Detects compression and format by magic bytes, never by file name.
    pub fn from_reader(raw: Box<dyn Read + Send>) -> Result<CaptureReader, OpenError> {
        let tap = std::sync::Arc::new(std::sync::Mutex::new((
            0u64,
            xxhash_rust::xxh3::Xxh3::new(),
        )));
        let tapped = SharedTap {
            inner: std::sync::Arc::new(std::sync::Mutex::new(raw)),
            tap: tap.clone(),
        };
        let rest = tapped.clone();
        let mut outer = BufReader::with_capacity(BUF_SIZE, tapped);
        let head = outer.fill_buf()?;
        let (compression, inner): (Compression, Box<dyn Read + Send>) =
            if head.starts_with(&[0x1f, 0x8b]) {
                (
                    Compression::Gzip,
                    Box::new(flate2::read::MultiGzDecoder::new(outer)),
                )
            } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                (
                    Compression::Zstd,
                    Box::new(zstd::stream::read::Decoder::with_buffer(outer)?),
                )
            } else {
                (Compression::None, Box::new(outer))
            };
        let mut src = BufReader::with_capacity(BUF_SIZE, inner);
        let mut magic = [0u8; 24];
        let got = read_full(&mut src, &mut magic[..4])?;
        if got < 4 {
            return Err(OpenError::NotCapture(hex(&magic[..got])));
        }
        let m = u32::from_le_bytes(magic[..4].try_into().unwrap());
        let mut r = CaptureReader {
            src,
            rest,
            tap,
            format: Format::Pcap,
            compression,
            big_endian: false,
            section_base: 0,
            interfaces: Vec::new(),
            pos: 0,
            frames: 0,
            buf: Vec::new(),
            truncated: None,
            done: false,
            file: None,
            at_open: None,
            regular: false,
        };
        // pcap magics, seen as little-endian u32: µs LE, ns LE, µs BE, ns BE.
        let (big, ns) = match m {
            PCAP_US_LE => (false, false),
            PCAP_NS_LE => (false, true),
            PCAP_US_BE => (true, false),
            PCAP_NS_BE => (true, true),
            PCAPNG_SHB => {
                r.format = Format::PcapNg;
                r.buf.extend_from_slice(&magic[..4]);
                return Ok(r);
            }
            _ => return Err(OpenError::NotCapture(hex(&magic[..4]))),
        };
        let got = read_full(&mut r.src, &mut magic[4..24])?;
        if got < 20 {
            return Err(OpenError::ShortHeader(4 + got));
        }
        r.big_endian = big;
        let snaplen = r.u32_at(&magic, 16);
        let linktype = r.u32_at(&magic, 20) & 0x0fff_ffff; // upper bits carry FCS info, not the link type
        r.interfaces.push(Interface {
            linktype,
            snaplen,
            tsresol: if ns { 9 } else { 6 },
            tsoffset: 0,
        });
        r.pos = 24;
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let v: [u8; 2] = b[at..at + 2].try_into().unwrap();
        if self.big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }

    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Set once the capture ended early; `None` after a clean end.
    pub fn truncation(&self) -> Option<&Truncation> {
        self.truncated.as_ref()
    }

    /// Compressed (on-disk) bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.tap.lock().map(|t| t.0).unwrap_or(0)
    }

    /// xxh3-128 of the on-disk bytes read so far; the content hash once the reader is drained.
    pub fn content_hash(&self) -> String {
        self.tap
            .lock()
            .map(|t| format!("{:032x}", t.1.digest128()))
            .unwrap_or_default()
    }

    /// Reads whatever is left of the file so that `content_hash` covers all of it, even after a truncation or a
    /// decompression error. It reads the raw stream: bytes a decompressor buffered are already hashed.
    pub fn drain(&mut self) {
        let mut sink = vec![0u8; 64 << 10];
        loop {
            match self.rest.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn stop(&mut self, offset: u64, reason: impl Into<String>) {
        self.truncated = Some(Truncation {
            offset,
            reason: reason.into(),
        });
        self.done = true;
    }

    /// Fills `self.buf[have..want]` from the stream; returns false at end of stream (and records a cut-off
    /// record, unless nothing at all of it was read).
    fn fill(&mut self, have: usize, want: usize, what: &str) -> bool {
        // The buffer grows as the bytes arrive, so a cut-off file that claims a 256 MiB record costs what it holds.
        self.buf.truncate(have);
        let mut got = Ok(0);
        let mut at = have;
        while at < want {
            let step = (want - at).min(BUF_SIZE);
            self.buf.resize(at + step, 0);
            match read_full(&mut self.src, &mut self.buf[at..at + step]) {
                Ok(n) => {
                    at += n;
                    got = Ok(at - have);
                    if n < step {
                        break;
                    }
                }
                Err(e) => {
                    got = Err(e);
                    break;
                }
            }
        }
        match got {
            Ok(n) if n == want - have => true,
            Ok(n) => {
                if have + n > 0 {
                    let at = self.pos;
                    self.stop(
                        at,
                        format!("{what} cut off after {} of {want} bytes", have + n),
                    );
                } else {
                    self.done = true;
                }
                false
            }
            Err(e) => {
                let at = self.pos;
                self.stop(at, format!("read error: {e}"));
                false
            }
        }
    }

    /// The next frame, or `None` at the end (clean or truncated: see `truncation`).
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        if self.done {
            return None;
        }
        match self.format {
            Format::Pcap => self.next_pcap(),
            Format::PcapNg => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self) -> Option<Frame<'_>> {
        if !self.fill(0, 16, "record header") {
            return None;
        }
        let h: [u8; 16] = self.buf[..16].try_into().unwrap();
        let ts_sec = self.u32_at(&h, 0);
        let ts_frac = self.u32_at(&h, 4);
        let caplen = self.u32_at(&h, 8);
        let origlen = self.u32_at(&h, 12);
        // A huge snaplen (0xFFFFFFFF is common) does not make a record above MAX_RECORD possible: memory is bounded.
        if caplen > MAX_RECORD {
            let at = self.pos;
            self.stop(at, format!("record length {caplen} is impossible"));
            return None;
        }
        if !self.fill(0, caplen as usize, "record") {
            // The record header was read, so even a record with none of its bytes is cut off, not a clean end.
            if self.truncated.is_none() {
                let at = self.pos;
                self.stop(at, format!("record cut off after 0 of {caplen} bytes"));
            }
            return None;
        }
        let offset = self.pos;
        self.pos += 16 + caplen as u64;
        self.frames += 1;
        let iface = &self.interfaces[0];
        Some(Frame {
            number: self.frames,
            ts: Timestamp::new(ts_sec as i64, ts_frac as u64, iface.tsresol),
            caplen,
            origlen,
            iface: 0,
            linktype: iface.linktype,
            offset,
            data: &self.buf[..caplen as usize],
        })
    }

    fn next_pcapng(&mut self) -> Option<Frame<'_>> {
        loop {
            // The first block's type was consumed as the magic; it is already in buf.
            let have = if self.pos == 0 && self.buf.len() == 4 {
                4
            } else {
                0
            };
            if !self.fill(have, 8, "block header") {
                return None;
            }
            let raw_type = u32::from_le_bytes(self.buf[..4].try_into().unwrap());
            let block_start = self.pos;
            if raw_type == PCAPNG_SHB {
                // The byte-order magic decides how to read this section, including this block's own length.
                if !self.fill(8, 12, "section header") {
                    return None;
                }
                match u32::from_le_bytes(self.buf[8..12].try_into().unwrap()) {
                    0x1A2B_3C4D => self.big_endian = false,
                    0x4D3C_2B1A => self.big_endian = true,
                    bom => {
                        self.stop(
                            block_start,
                            format!("bad pcapng byte-order magic {bom:#010x}"),
                        );
                        return None;
                    }
                }
            }
            let head: [u8; 8] = self.buf[..8].try_into().unwrap();
            let btype = self.u32_at(&head, 0);
            let blen = self.u32_at(&head, 4);
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD {
                self.stop(
                    block_start,
                    format!("pcapng block of type {btype:#x} has bad length {blen}"),
                );
                return None;
            }
            let have = if raw_type == PCAPNG_SHB { 12 } else { 8 };
            if !self.fill(have, blen as usize, "pcapng block") {
                return None;
            }
            self.pos += blen as u64;
            let trailer = self.u32_at(&self.buf, blen as usize - 4);
            if trailer != blen {
                self.stop(
                    block_start,
                    format!("pcapng block length {blen} does not match its trailer {trailer}"),
                );
                return None;
            }
            let body_len = blen as usize - 12;
            match btype {
                PCAPNG_SHB => {
                    self.section_base = self.interfaces.len();
                }
                1 => {
                    // Interface description: link type, snaplen, then options (if_tsresol = 9).
                    if body_len < 8 {
                        self.stop(block_start, "interface block too short");
                        return None;
                    }
                    let linktype = self.u16_at(&self.buf, 8) as u32;
                    let snaplen = self.u32_at(&self.buf, 12);
                    let (tsresol, tsoffset) = self.if_time_options(16, 8 + body_len);
                    self.interfaces.push(Interface {
                        linktype,
                        snaplen,
                        tsresol,
                        tsoffset,
                    });
                }
                6 | 2 => {
                    // Enhanced packet block (6) or obsolete packet block (2): same fixed layout but the id width.
                    if body_len < 20 {
                        self.stop(block_start, "packet block too short");
                        return None;
                    }
                    let if_id = if btype == 6 {
                        self.u32_at(&self.buf, 8)
                    } else {
                        self.u16_at(&self.buf, 8) as u32
                    };
                    let ts_high = self.u32_at(&self.buf, 12) as u64;
                    let ts_low = self.u32_at(&self.buf, 16) as u64;
                    let caplen = self.u32_at(&self.buf, 20);
                    let origlen = self.u32_at(&self.buf, 24);
                    if caplen as usize > body_len - 20 {
                        self.stop(
                            block_start,
                            format!("packet length {caplen} exceeds its block"),
                        );
                        return None;
                    }
                    let iface = self.section_base + if_id as usize;
                    let Some(ifc) = self.interfaces.get(iface) else {
                        self.stop(
                            block_start,
                            format!("packet refers to missing interface {if_id}"),
                        );
                        return None;
                    };
                    let ticks = (ts_high << 32) | ts_low;
                    let mut ts = ticks_to_ts(ticks, ifc.tsresol);
                    ts.sec = ts.sec.saturating_add(ifc.tsoffset);
                    self.frames += 1;
                    return Some(Frame {
                        number: self.frames,
                        ts,
                        caplen,
                        origlen,
                        iface: iface as u32,
                        linktype: ifc.linktype,
                        offset: block_start,
                        data: &self.buf[28..28 + caplen as usize],
                    });
                }
                3 => {
                    // Simple packet block: interface 0 of the section, no timestamp.
                    if body_len < 4 {
                        self.stop(block_start, "simple packet block too short");
                        return None;
                    }
                    let iface = self.section_base;
                    let Some(ifc) = self.interfaces.get(iface) else {
                        self.stop(block_start, "simple packet block before any interface");
                        return None;
                    };
                    let origlen = self.u32_at(&self.buf, 8);
                    let mut caplen = origlen.min(body_len as u32 - 4);
                    if ifc.snaplen > 0 {
                        caplen = caplen.min(ifc.snaplen);
                    }
                    self.frames += 1;
                    return Some(Frame {
                        number: self.frames,
                        ts: Timestamp::new(0, 0, 6),
                        caplen,
                        origlen,
                        iface: iface as u32,
                        linktype: ifc.linktype,
                        offset: block_start,
                        data: &self.buf[12..12 + caplen as usize],
                    });
                }
                _ => {} // name resolution, statistics, custom and unknown blocks carry no frames
            }
        }
    }

    /// Reads `if_tsresol` (6, µs, when absent) and `if_tsoffset` (0 when absent) from the options in
    /// `buf[start..end]`.
    fn if_time_options(&self, start: usize, end: usize) -> (u8, i64) {
        let (mut tsresol, mut tsoffset) = (6, 0);
        let mut at = start;
        while at + 4 <= end {
            let code = self.u16_at(&self.buf, at);
            let len = self.u16_at(&self.buf, at + 2) as usize;
            let val = at + 4;
            if code == 0 || val + len > end {
                break;
            }
            match code {
                9 if len >= 1 => tsresol = self.buf[val],
                14 if len >= 8 => {
                    let b: [u8; 8] = self.buf[val..val + 8].try_into().unwrap();
                    tsoffset = if self.big_endian {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                _ => {}
            }
            at = val + len.div_ceil(4) * 4;
        }
        (tsresol, tsoffset)
    }
}

/// Turns pcapng ticks into the exact decimal timestamp.
///
/// A power-of-two resolution (rare) is converted to ns, rounding down: its exact decimal can need more digits
/// than the label's f64 can tell apart anyway.
pub fn ticks_to_ts(ticks: u64, tsresol: u8) -> Timestamp {
    if tsresol & 0x80 != 0 {
        let n = (tsresol & 0x7f).min(63) as u32;
        let sec = ticks >> n;
        let rem = ticks & ((1u64 << n) - 1);
        let ns = ((rem as u128 * 1_000_000_000) >> n) as u64;
        return Timestamp::new(sec as i64, ns, 9);
    }
    let digits = tsresol.min(19);
    let unit = 10u64.pow(digits as u32);
    Timestamp::new((ticks / unit) as i64, ticks % unit, digits)
}

/// Like `read_exact`, but returns how many bytes were read before the end of the stream.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(btype: u32, body: &[u8]) -> Vec<u8> {
        let total = 12 + body.len().div_ceil(4) * 4;
        let mut b = btype.to_le_bytes().to_vec();
        b.extend_from_slice(&(total as u32).to_le_bytes());
        b.extend_from_slice(body);
        b.resize(total - 4, 0);
        b.extend_from_slice(&(total as u32).to_le_bytes());
        b
    }

    /// A pcapng with one interface (if_tsresol 9, if_tsoffset 1000 s) and one packet at 1.5 s of ticks.
    fn pcapng_with_offset() -> Vec<u8> {
        let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut idb = vec![1, 0, 0, 0, 0xff, 0xff, 0, 0];
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol = 9
        idb.extend_from_slice(&[14, 0, 8, 0]); // if_tsoffset
        idb.extend_from_slice(&1000i64.to_le_bytes());
        idb.extend_from_slice(&[0, 0, 0, 0]);
        let ticks: u64 = 1_500_000_000;
        let mut epb = 0u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ticks >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ticks as u32).to_le_bytes());
        epb.extend_from_slice(&4u32.to_le_bytes());
        epb.extend_from_slice(&4u32.to_le_bytes());
        epb.extend_from_slice(&[1, 2, 3, 4]);
        let mut f = block(PCAPNG_SHB, &shb);
        f.extend(block(1, &idb));
        f.extend(block(6, &epb));
        f
    }

    #[test]
    fn pcapng_tsresol_and_tsoffset_make_the_timestamp() {
        let mut r =
            CaptureReader::from_reader(Box::new(std::io::Cursor::new(pcapng_with_offset())))
                .unwrap();
        let f = r.next_frame().expect("one frame");
        assert_eq!((f.ts.sec, f.ts.frac, f.ts.digits), (1001, 500_000_000, 9));
        assert_eq!(f.data, &[1, 2, 3, 4]);
        assert!(r.next_frame().is_none());
        assert!(r.truncation().is_none());
    }
}
