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

mod compress;
mod pcap;
mod pcapng;

pub use compress::{compression_of, decompressor, GZIP_MAGIC, ZSTD_MAGIC};
use compress::{PlainTap, SharedTap, Tap};
pub use pcapng::ticks_to_ts;
// Frames carry a `Timestamp`; it lives in the bottom layer, since every stage after this one reads it.
pub use crate::key::timestamp::{
    duration_text, put_digits, tsresol_digits, write_duration, Timestamp,
};

/// The first block type of every pcapng file (section header block), also its magic.
pub(crate) const PCAPNG_SHB: u32 = 0x0A0D_0D0A;

/// A record larger than this is impossible (the bound: larger than any snaplen and 256 MiB).
pub const MAX_RECORD: u32 = 256 << 20;
const BUF_SIZE: usize = 1 << 20;

/// pcap's LINKTYPE value for a frame whose pcapng interface is unknown: decodes to nothing.
pub const LINKTYPE_UNKNOWN: u32 = u32::MAX;

/// pcap magic numbers as the file's first four bytes read little-endian: µs or ns timestamps, either byte order.
pub const PCAP_US_LE: u32 = 0xa1b2_c3d4;
/// pcap magic, ns timestamps, little-endian file.
pub const PCAP_NS_LE: u32 = 0xa1b2_3c4d;
/// pcap magic, µs timestamps, big-endian file.
pub const PCAP_US_BE: u32 = 0xd4c3_b2a1;
/// pcap magic, ns timestamps, big-endian file.
pub const PCAP_NS_BE: u32 = 0x4d3c_b2a1;

/// The container format of a capture, told by its magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap: one interface, µs or ns timestamps.
    Pcap,
    /// pcapng: sections of blocks, any number of interfaces.
    PcapNg,
}

impl Format {
    /// The name stored in `captures.format`: `pcap` or `pcapng`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

/// The compression around a capture, told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The name stored in `captures.compression`: `none`, `gzip` or `zstd`.
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
    /// pcap LINKTYPE value of the interface's frames (1 = Ethernet).
    pub linktype: u32,
    /// Snapshot length: the most bytes of a frame the capture keeps.
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
    /// Time the capture records for the frame.
    pub ts: Timestamp,
    /// Bytes of the frame captured in the file: `data.len()`.
    pub caplen: u32,
    /// Length of the frame on the wire, in bytes; more than `caplen` when the frame was cut to the snaplen.
    pub origlen: u32,
    /// Index into `CaptureReader::interfaces()`.
    pub iface: u32,
    /// The LINKTYPE value of the frame's interface, to decode `data` with.
    pub linktype: u32,
    /// Byte offset of the record (pcap record header / pcapng block) in the decompressed stream.
    pub offset: u64,
    /// The captured bytes (`caplen` of them), borrowed from the reader until the next frame is read.
    pub data: &'a [u8],
}

/// Why a capture ended early. Frames read before it stay valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// Byte offset in the decompressed stream where reading stopped; frames before it were read.
    pub offset: u64,
    /// What was wrong there, e.g. `record cut off after 0 of 60 bytes` or `--max-frames 1000 reached`.
    pub reason: String,
}

/// Why a capture could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The first bytes are no pcap or pcapng magic (after any decompression); holds them in hex.
    #[error("not a pcap or pcapng capture (first bytes {0})")]
    NotCapture(String),
    /// The file ends inside the pcap file header; holds how many bytes it has.
    #[error("capture header is cut off ({0} bytes)")]
    ShortHeader(usize),
}

type Source = BufReader<Box<dyn Read + Send>>;

/// Reads one capture from start to end, frame by frame, with no allocation per frame.
pub struct CaptureReader {
    src: Source,
    /// The raw (on-disk) stream below any decompressor, through the tap: `drain` reads what is left of it.
    rest: SharedTap,
    /// Shared with the raw file reader below any decompressor: bytes read and their running hash.
    tap: Tap,
    /// For a compressed capture, the running hash of the decompressed bytes: its content identity.
    plain: Option<PlainTap>,
    /// pcap or pcapng.
    pub format: Format,
    /// The compression detected around the capture.
    pub compression: Compression,
    big_endian: bool,
    /// Per-section base index into `interfaces` (pcapng interface ids restart at 0 in each section).
    section_base: usize,
    interfaces: Vec<Interface>,
    pos: u64,
    frames: u64,
    buf: Vec<u8>,
    /// Bytes at the front of `src`'s buffer that the last frame borrowed there (pcap): consumed before the
    /// stream is read on.
    consumed: usize,
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

/// A file's size and modification time, from its metadata.
pub fn file_stat(m: &std::fs::Metadata) -> FileStat {
    let mtime = m.modified().ok().and_then(|t| {
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as i64)
    });
    (m.len(), mtime)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl CaptureReader {
    /// Opens a capture file; a folder is refused.
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
        let (compression, inner, rest, tap, plain) = compress::open(raw, BUF_SIZE)?;
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
            plain,
            format: Format::Pcap,
            compression,
            big_endian: false,
            section_base: 0,
            interfaces: Vec::new(),
            pos: 0,
            frames: 0,
            buf: Vec::new(),
            consumed: 0,
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

    /// The interfaces seen so far, by index (pcapng adds them as its IDBs are read).
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

    /// The content hash once the reader is drained: xxh3-128 of the capture's bytes after decompression, so a
    /// `.gz` or `.zst` of a capture is the same capture. A compressed file whose decompression failed (cut off,
    /// damaged) has no such bytes in full: its on-disk bytes are hashed instead, as they always are uncompressed.
    pub fn content_hash(&self) -> String {
        if let Some(p) = &self.plain {
            let p = p.lock().unwrap_or_else(|e| e.into_inner());
            if p.ended && !p.failed {
                return format!("{:032x}", p.hash.digest128());
            }
        }
        self.tap
            .lock()
            .map(|t| format!("{:032x}", t.1.digest128()))
            .unwrap_or_default()
    }

    /// Reads whatever is left of the file so that `content_hash` covers all of it, even after a truncation or a
    /// decompression error. It reads the raw stream: bytes a decompressor buffered are already hashed.
    pub fn drain(&mut self) {
        self.consume_borrowed();
        let mut sink = vec![0u8; 64 << 10];
        if self.plain.is_some() {
            // The decompressed rest first, through the hash of the content; it stops at an error.
            loop {
                match self.src.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        loop {
            match self.rest.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    /// Moves the stream past the record the last frame borrowed from its buffer.
    fn consume_borrowed(&mut self) {
        self.src.consume(std::mem::take(&mut self.consumed));
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
        self.consume_borrowed();
        if self.done {
            return None;
        }
        match self.format {
            Format::Pcap => self.next_pcap(),
            Format::PcapNg => self.next_pcapng(),
        }
    }
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

    /// Records of 0 to 3,000 bytes, 3.5 MB of them: records whole in the reader's buffer are handed out from
    /// there, the others (across the buffer's end, every 1 MiB) are copied; both must be the file's records.
    fn sizes() -> Vec<usize> {
        let mut x: u64 = 7;
        let mut total = 0;
        let mut out = Vec::new();
        while total < 3_500_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let n = (x >> 33) as usize % 3001;
            total += n + 32;
            out.push(n);
        }
        out
    }

    fn payload(i: usize, n: usize) -> Vec<u8> {
        (0..n).map(|j| (i * 31 + j) as u8).collect()
    }

    /// The frames as the reader gives them: (offset, ts sec, ts frac, caplen, origlen, data).
    fn read_frames(bytes: Vec<u8>) -> Vec<(u64, i64, u64, u32, u32, Vec<u8>)> {
        let mut r = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes))).unwrap();
        let mut got = Vec::new();
        while let Some(f) = r.next_frame() {
            got.push((
                f.offset,
                f.ts.sec,
                f.ts.frac,
                f.caplen,
                f.origlen,
                f.data.to_vec(),
            ));
        }
        assert!(r.truncation().is_none());
        got
    }

    /// pcap-parser, an independent reader, gives the same records as ours, across the buffer's ends.
    #[test]
    fn a_pcap_larger_than_the_buffer_reads_as_pcap_parser_reads_it() {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        for (i, &n) in sizes().iter().enumerate() {
            f.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
            f.extend_from_slice(&(i as u32 % 1_000_000).to_le_bytes());
            f.extend_from_slice(&(n as u32).to_le_bytes());
            f.extend_from_slice(&(n as u32 + 4).to_le_bytes());
            f.extend(payload(i, n));
        }
        let (_, oracle) = pcap_parser::parse_pcap(&f).unwrap();
        let mut offset = 24;
        let want: Vec<_> = oracle
            .blocks
            .iter()
            .map(|b| {
                let at = offset;
                offset += 16 + u64::from(b.caplen);
                let data = b.data.to_vec();
                (
                    at,
                    i64::from(b.ts_sec),
                    u64::from(b.ts_usec),
                    b.caplen,
                    b.origlen,
                    data,
                )
            })
            .collect();
        assert_eq!(want.len(), sizes().len());
        assert_eq!(read_frames(f), want);
    }

    /// The same for pcapng, with blocks that carry no frame between the packets.
    #[test]
    fn a_pcapng_larger_than_the_buffer_reads_as_pcap_parser_reads_it() {
        let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut f = block(PCAPNG_SHB, &shb);
        f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
        // Where each packet block starts, as written.
        let mut offsets = Vec::new();
        for (i, &n) in sizes().iter().enumerate() {
            if i % 97 == 0 {
                // A block type for local use: no frame, skipped.
                f.extend(block(0x8000_0abc, &payload(i, n % 64)));
            }
            let ticks = 1_700_000_000_000_000 + i as u64 * 1_001;
            let mut epb = 0u32.to_le_bytes().to_vec();
            epb.extend_from_slice(&((ticks >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(ticks as u32).to_le_bytes());
            epb.extend_from_slice(&(n as u32).to_le_bytes());
            epb.extend_from_slice(&(n as u32 + 4).to_le_bytes());
            epb.extend(payload(i, n));
            offsets.push(f.len() as u64);
            f.extend(block(6, &epb));
        }
        let (_, section) = pcap_parser::parse_section(&f).unwrap();
        let want: Vec<_> = section
            .blocks
            .iter()
            .filter_map(|b| match b {
                pcap_parser::Block::EnhancedPacket(e) => Some(e),
                _ => None,
            })
            .zip(offsets)
            .map(|(e, at)| {
                let ticks = (u64::from(e.ts_high) << 32) | u64::from(e.ts_low);
                let data = e.data[..e.caplen as usize].to_vec();
                let (sec, frac) = ((ticks / 1_000_000) as i64, ticks % 1_000_000);
                (at, sec, frac, e.caplen, e.origlen, data)
            })
            .collect();
        assert_eq!(want.len(), sizes().len());
        assert_eq!(read_frames(f), want);
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
