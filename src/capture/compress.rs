//! The raw stream below any decompressor: counts and hashes the on-disk bytes as they are read.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use super::Compression;

/// The first bytes of a gzip member and of a zstd frame: compression is told by these, never by a file name.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The first four bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Bytes read from disk so far and their running xxh3-128.
pub(super) type Tap = Arc<Mutex<(u64, xxhash_rust::xxh3::Xxh3)>>;

/// The compression a stream's first bytes show.
pub fn compression_of(head: &[u8]) -> Compression {
    if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// `raw` decompressed as `compression` says (gzip with every member, as `zcat` reads it).
pub fn decompressor<'a>(
    compression: Compression,
    raw: Box<dyn BufRead + Send + 'a>,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(raw)?),
        Compression::None => raw,
    })
}

/// The running xxh3-128 of a decompressed stream, and whether it was read to its end without an error: only then
/// is it the content's identity (`CaptureReader::content_hash`).
#[derive(Default)]
pub(super) struct PlainState {
    pub(super) hash: xxhash_rust::xxh3::Xxh3,
    pub(super) ended: bool,
    pub(super) failed: bool,
}

/// Shared with the reader above the decompressor.
pub(super) type PlainTap = Arc<Mutex<PlainState>>;

/// Hashes the bytes a decompressor gives, so that `big.pcap.gz` has the identity of `big.pcap`.
struct PlainHasher {
    inner: Box<dyn Read + Send>,
    state: PlainTap,
}

impl Read for PlainHasher {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = self.inner.read(buf);
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &got {
            Ok(0) if !buf.is_empty() => s.ended = true,
            Ok(n) => s.hash.update(&buf[..*n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => s.failed = true,
        }
        got
    }
}

/// What `open` gives: the decompressed stream, its compression, a handle on the raw stream (to drain it), the
/// tap of raw bytes, and (when compressed) the hash of the decompressed bytes.
pub(super) type Opened = (
    Compression,
    Box<dyn Read + Send>,
    SharedTap,
    Tap,
    Option<PlainTap>,
);

/// Puts the tap below `raw` and a decompressor (if its first bytes show one) above it.
pub(super) fn open(raw: Box<dyn Read + Send>, buf_size: usize) -> io::Result<Opened> {
    let tap: Tap = Arc::new(Mutex::new((0u64, xxhash_rust::xxh3::Xxh3::new())));
    let tapped = SharedTap {
        inner: Arc::new(Mutex::new(raw)),
        tap: tap.clone(),
    };
    let rest = tapped.clone();
    let mut outer = BufReader::with_capacity(buf_size, tapped);
    let compression = compression_of(outer.fill_buf()?);
    let inner = decompressor(compression, Box::new(outer))?;
    if compression == Compression::None {
        // The raw bytes are the content: the tap's hash is its identity.
        return Ok((compression, inner, rest, tap, None));
    }
    let plain = PlainTap::default();
    let hashed = PlainHasher {
        inner,
        state: plain.clone(),
    };
    Ok((compression, Box::new(hashed), rest, tap, Some(plain)))
}

/// Reader wrapper that feeds the shared tap; kept separate so the tap survives behind a decompressor. The raw
/// reader is shared too, so that `drain` can hash the rest of a file whose decompression failed.
#[derive(Clone)]
pub(super) struct SharedTap {
    pub(super) inner: Arc<Mutex<Box<dyn Read + Send>>>,
    pub(super) tap: Tap,
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
