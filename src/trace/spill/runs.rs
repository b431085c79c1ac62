//! Parked flows that did not fit in the compact table: sorted runs in unlinked temporary files, found by their
//! key's hash, merged as they pile up.
//!
//! Why not a temporary SQLite database, as before: its index on the key's hash took a random insert per parked
//! flow, in a cache far smaller than the index. A scan of 3M probes (5M flows left open, 3.2M of them beyond the
//! compact table) took 49.5 s, against 21.5 s with everything in memory. Here a run is written once,
//! in order, and nearly every lookup (a new flow) is answered "no" by a Bloom filter in memory.
//!
//! A run is two files: its records in creation order (flow_no), packed into 4 KiB blocks that no record
//! crosses, for draining in creation order; and its (key hash, flow_no) pairs sorted by hash, for lookups. In
//! memory a run keeps only the first flow_no of each data block, the first hash of each index block, and the
//! flow numbers taken back from it (dead). Lookup: index block by binary search, one `pread`; then the data
//! block of each matching flow_no, one `pread`, and the full key compared. Two runs whose newer one holds at
//! least half as many live flows as the older are merged, dropping dead records: streaming merges, so there are
//! at most about log2(parked flows / run) runs and memory stays a few KiB per run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use rustc_hash::FxHashSet;

use super::{body_flow_no, body_key, body_len, SpillError};

/// Bytes of a data block; records never cross one, and the rest of a block is zeros (no key starts with 0).
const BLOCK: usize = 4096;
/// An index entry: the key's hash (8 bytes) and the flow_no (4), little-endian.
const ENTRY: usize = 12;
const ENTRIES_PER_BLOCK: usize = 256;
const INDEX_BLOCK: usize = ENTRY * ENTRIES_PER_BLOCK;
/// Buffer of the files' writers.
const WRITE_BUFFER: usize = 64 << 10;

/// 64-bit words in the Bloom filter: 4 MiB whatever the capture. A key sets 3 bits of one word (one cache miss
/// per lookup). False positives: about 1 in 10^5 at a million parked flows, 1 in 50 at ten million; each costs
/// one `pread` per run, never a wrong answer. Rebuilt from the runs' indexes when merges leave one run, so keys
/// taken back stop counting.
const BLOOM_WORDS: usize = 1 << 19;

/// The runs, oldest first, and the Bloom filter of every hash they hold.
pub(super) struct Runs {
    runs: Vec<Run>,
    bloom: Vec<u64>,
    /// Runs merged so far (for the tests).
    pub(super) merges: usize,
}

struct Run {
    data: File,
    index: File,
    /// First flow_no of each data block.
    data_fences: Vec<u32>,
    /// First hash of each index block.
    index_fences: Vec<u64>,
    /// Index entries (= records).
    entries: usize,
    /// Flow numbers taken back from this run: their records are dead.
    dead: FxHashSet<u32>,
}

impl Run {
    fn live(&self) -> usize {
        self.entries - self.dead.len()
    }
}

/// One record going into a run: its flow_no, key hash, and bytes (as `super::encode_body`).
pub(super) struct Record<'a> {
    pub flow_no: u32,
    pub hash: u64,
    pub bytes: &'a [u8],
}

impl Runs {
    pub(super) fn new() -> Runs {
        Runs {
            runs: Vec::new(),
            bloom: Vec::new(),
            merges: 0,
        }
    }

    /// Number of runs (for the tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.runs.len()
    }

    fn bloom_bits(h: u64) -> (usize, u64) {
        let word = (h >> 40) as usize % BLOOM_WORDS;
        let bits = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)) | (1u64 << ((h >> 12) & 63));
        (word, bits)
    }

    fn remember(bloom: &mut Vec<u64>, h: u64) {
        if bloom.is_empty() {
            *bloom = vec![0; BLOOM_WORDS];
        }
        let (word, bits) = Self::bloom_bits(h);
        bloom[word] |= bits;
    }

    /// Writes `records` (in flow_no order, none of them parked already) as a new run, then merges runs as the
    /// size rule says.
    pub(super) fn add<'a>(
        &mut self,
        records: impl IntoIterator<Item = Record<'a>>,
    ) -> Result<(), SpillError> {
        let mut data = DataWriter::new(self.tempfile()?);
        let mut entries: Vec<(u64, u32)> = Vec::new();
        for r in records {
            debug_assert!(data.last.is_none_or(|l| l < r.flow_no));
            data.push(r.flow_no, r.bytes).map_err(io)?;
            entries.push((r.hash, r.flow_no));
        }
        if entries.is_empty() {
            return Ok(());
        }
        let (data, data_fences) = data.finish().map_err(io)?;
        entries.sort_unstable();
        let mut index = IndexWriter::new(self.tempfile()?);
        for &(h, no) in &entries {
            index.push(h, no).map_err(io)?;
        }
        for &(h, _) in &entries {
            Self::remember(&mut self.bloom, h);
        }
        let (index, index_fences) = index.finish().map_err(io)?;
        self.runs.push(Run {
            data,
            index,
            data_fences,
            index_fences,
            entries: entries.len(),
            dead: FxHashSet::default(),
        });
        drop(entries);
        while let [.., older, newer] = &self.runs[..] {
            if newer.live() * 2 < older.live() {
                break;
            }
            let newer = self.runs.pop().expect("two runs");
            let older = self.runs.pop().expect("two runs");
            let merged = self.merge(&older, &newer)?;
            self.runs.push(merged);
            self.merges += 1;
            if self.runs.len() == 1 {
                self.rebuild_bloom()?;
            }
        }
        Ok(())
    }

    fn tempfile(&self) -> Result<File, SpillError> {
        tempfile::tempfile_in(std::env::temp_dir()).map_err(io)
    }

    /// One run with the live records of both (their flow numbers are distinct: a flow is parked in one place).
    fn merge(&self, a: &Run, b: &Run) -> Result<Run, SpillError> {
        let mut data = DataWriter::new(self.tempfile()?);
        let (mut ca, mut cb) = (DataCursor::new(a)?, DataCursor::new(b)?);
        loop {
            let pick = match (ca.flow_no(), cb.flow_no()) {
                (None, None) => break,
                (Some(x), Some(y)) if x < y => &mut ca,
                (Some(_), None) => &mut ca,
                _ => &mut cb,
            };
            let no = pick.flow_no().expect("a record");
            data.push(no, pick.bytes()).map_err(io)?;
            pick.advance()?;
        }
        let (data, data_fences) = data.finish().map_err(io)?;
        let mut index = IndexWriter::new(self.tempfile()?);
        let (mut ia, mut ib) = (IndexCursor::new(a)?, IndexCursor::new(b)?);
        loop {
            let pick = match (ia.current, ib.current) {
                (None, None) => break,
                (Some(x), Some(y)) if x <= y => &mut ia,
                (Some(_), None) => &mut ia,
                _ => &mut ib,
            };
            let (h, no) = pick.current.expect("an entry");
            index.push(h, no).map_err(io)?;
            pick.advance()?;
        }
        let entries = index.count;
        let (index, index_fences) = index.finish().map_err(io)?;
        Ok(Run {
            data,
            index,
            data_fences,
            index_fences,
            entries,
            dead: FxHashSet::default(),
        })
    }

    /// The Bloom filter of the live entries only: taken keys stop costing lookups.
    fn rebuild_bloom(&mut self) -> Result<(), SpillError> {
        let mut bloom = std::mem::take(&mut self.bloom);
        bloom.fill(0);
        for run in &self.runs {
            let mut c = IndexCursor::new(run)?;
            while let Some((h, _)) = c.current {
                Self::remember(&mut bloom, h);
                c.advance()?;
            }
        }
        self.bloom = bloom;
        Ok(())
    }

    /// Takes the record of this key (its bytes and their hash) out of the runs, if one is there: its body.
    pub(super) fn take(&mut self, k: &[u8], h: u64) -> Result<Option<Vec<u8>>, SpillError> {
        if self.runs.is_empty() {
            return Ok(None);
        }
        let (word, bits) = Self::bloom_bits(h);
        if self.bloom[word] & bits != bits {
            return Ok(None);
        }
        for run in self.runs.iter_mut().rev() {
            if let Some((no, body)) = run.find(k, h)? {
                run.dead.insert(no);
                return Ok(Some(body));
            }
        }
        Ok(None)
    }

    /// Hands `each` every record of `table` (in flow_no order, with their flow_no) and every live record of the
    /// runs (decoded from its body by `decode`), merged in flow_no (creation) order.
    pub(super) fn drain<T>(
        &self,
        table: impl Iterator<Item = Result<(u32, T), SpillError>>,
        decode: impl Fn(&[u8]) -> Option<T>,
        each: &mut dyn FnMut(T),
    ) -> Result<(), SpillError> {
        let mut table = table.peekable();
        let mut cursors = self
            .runs
            .iter()
            .map(DataCursor::new)
            .collect::<Result<Vec<_>, _>>()?;
        let mut heap: BinaryHeap<Reverse<(u32, usize)>> = cursors
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some(Reverse((c.flow_no()?, i))))
            .collect();
        loop {
            let next = heap.peek().map(|Reverse((no, _))| *no);
            while let Some(r) = table.next_if(|r| {
                r.as_ref()
                    .map_or(true, |(no, _)| next.is_none_or(|n| *no < n))
            }) {
                each(r?.1);
            }
            let Some(Reverse((_, i))) = heap.pop() else {
                return Ok(());
            };
            let c = &mut cursors[i];
            each(decode(c.bytes()).ok_or(SpillError::Corrupt)?);
            c.advance()?;
            if let Some(no) = c.flow_no() {
                heap.push(Reverse((no, i)));
            }
        }
    }
}

/// A failure of the runs' files: they are in `std::env::temp_dir()`.
fn io(e: std::io::Error) -> SpillError {
    SpillError::Io(e, std::env::temp_dir())
}

impl Run {
    /// The live record of this key, if it is in this run: its flow_no and body.
    fn find(&self, k: &[u8], h: u64) -> Result<Option<(u32, Vec<u8>)>, SpillError> {
        let mut block = self
            .index_fences
            .partition_point(|&f| f < h)
            .saturating_sub(1);
        let mut buf = [0u8; INDEX_BLOCK];
        // Entries of one hash may span blocks: go on while a block can start at or below it.
        while block < self.index_fences.len() && self.index_fences[block] <= h {
            let n = (self.entries - block * ENTRIES_PER_BLOCK).min(ENTRIES_PER_BLOCK);
            let bytes = &mut buf[..n * ENTRY];
            self.index
                .read_exact_at(bytes, (block * INDEX_BLOCK) as u64)
                .map_err(io)?;
            for e in bytes.chunks_exact(ENTRY) {
                let (eh, no) = entry(e);
                if eh > h {
                    return Ok(None);
                }
                if eh == h && !self.dead.contains(&no) {
                    if let Some(body) = self.record(no, k)? {
                        return Ok(Some((no, body)));
                    }
                }
            }
            block += 1;
        }
        Ok(None)
    }

    /// The body of record `no`, if its key is `k`.
    fn record(&self, no: u32, k: &[u8]) -> Result<Option<Vec<u8>>, SpillError> {
        let Some(block) = self
            .data_fences
            .partition_point(|&f| f <= no)
            .checked_sub(1)
        else {
            return Ok(None);
        };
        let mut buf = [0u8; BLOCK];
        self.data
            .read_exact_at(&mut buf, (block * BLOCK) as u64)
            .map_err(io)?;
        let mut pos = 0;
        while pos < BLOCK && buf[pos] != 0 {
            let body = &buf[pos..];
            let len = body_len(body).ok_or(SpillError::Corrupt)?;
            let at = body_flow_no(body).ok_or(SpillError::Corrupt)?;
            if at == no {
                if body_key(body) != Some(k) {
                    return Ok(None);
                }
                return Ok(Some(body[..len].to_vec()));
            }
            if at > no {
                break;
            }
            pos += len;
        }
        Ok(None)
    }
}

fn entry(e: &[u8]) -> (u64, u32) {
    let h = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
    let no = u32::from_le_bytes(e[8..12].try_into().expect("4 bytes"));
    (h, no)
}

/// Writes records into blocks of a data file.
struct DataWriter {
    w: BufWriter<File>,
    block: Vec<u8>,
    fences: Vec<u32>,
    last: Option<u32>,
}

impl DataWriter {
    fn new(file: File) -> DataWriter {
        DataWriter {
            w: BufWriter::with_capacity(WRITE_BUFFER, file),
            block: Vec::with_capacity(BLOCK),
            fences: Vec::new(),
            last: None,
        }
    }

    fn push(&mut self, flow_no: u32, rec: &[u8]) -> std::io::Result<()> {
        if self.block.len() + rec.len() > BLOCK {
            self.flush_block()?;
        }
        if self.block.is_empty() {
            self.fences.push(flow_no);
        }
        self.block.extend_from_slice(rec);
        self.last = Some(flow_no);
        Ok(())
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        self.block.resize(BLOCK, 0);
        self.w.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(File, Vec<u32>)> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        let file = self.w.into_inner().map_err(|e| e.into_error())?;
        Ok((file, self.fences))
    }
}

/// Writes (hash, flow_no) entries, in hash order, into an index file.
struct IndexWriter {
    w: BufWriter<File>,
    fences: Vec<u64>,
    count: usize,
}

impl IndexWriter {
    fn new(file: File) -> IndexWriter {
        IndexWriter {
            w: BufWriter::with_capacity(WRITE_BUFFER, file),
            fences: Vec::new(),
            count: 0,
        }
    }

    fn push(&mut self, h: u64, no: u32) -> std::io::Result<()> {
        if self.count.is_multiple_of(ENTRIES_PER_BLOCK) {
            self.fences.push(h);
        }
        self.w.write_all(&h.to_le_bytes())?;
        self.w.write_all(&no.to_le_bytes())?;
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> std::io::Result<(File, Vec<u64>)> {
        let file = self.w.into_inner().map_err(|e| e.into_error())?;
        Ok((file, self.fences))
    }
}

/// Reads a run's live records in flow_no order, a block at a time.
struct DataCursor<'a> {
    run: &'a Run,
    buf: Vec<u8>,
    /// Next block to read.
    next_block: usize,
    /// The current record: its start and length in `buf`, and its flow_no.
    at: Option<(usize, usize, u32)>,
}

impl<'a> DataCursor<'a> {
    fn new(run: &'a Run) -> Result<DataCursor<'a>, SpillError> {
        let mut c = DataCursor {
            run,
            buf: vec![0; BLOCK],
            next_block: 0,
            at: None,
        };
        c.seek(0)?;
        Ok(c)
    }

    fn flow_no(&self) -> Option<u32> {
        self.at.map(|(_, _, no)| no)
    }

    fn bytes(&self) -> &[u8] {
        let (start, len, _) = self.at.expect("a record");
        &self.buf[start..start + len]
    }

    fn advance(&mut self) -> Result<(), SpillError> {
        let (start, len, _) = self.at.expect("a record");
        self.seek(start + len)
    }

    /// Moves to the first live record at or after `pos` of the current block, reading blocks as needed.
    fn seek(&mut self, mut pos: usize) -> Result<(), SpillError> {
        loop {
            if pos >= BLOCK || self.buf[pos] == 0 {
                if self.next_block == self.run.data_fences.len() {
                    self.at = None;
                    return Ok(());
                }
                self.run
                    .data
                    .read_exact_at(&mut self.buf, (self.next_block * BLOCK) as u64)
                    .map_err(io)?;
                self.next_block += 1;
                pos = 0;
                continue;
            }
            let body = &self.buf[pos..];
            let len = body_len(body).ok_or(SpillError::Corrupt)?;
            let no = body_flow_no(body).ok_or(SpillError::Corrupt)?;
            if !self.run.dead.is_empty() && self.run.dead.contains(&no) {
                pos += len;
                continue;
            }
            self.at = Some((pos, len, no));
            return Ok(());
        }
    }
}

/// Reads a run's live index entries in hash order.
struct IndexCursor<'a> {
    run: &'a Run,
    buf: Vec<u8>,
    /// Entries read so far (of the file), and how many of them are in `buf`.
    read: usize,
    in_buf: usize,
    /// Position of the next entry in `buf`.
    pos: usize,
    current: Option<(u64, u32)>,
}

impl<'a> IndexCursor<'a> {
    fn new(run: &'a Run) -> Result<IndexCursor<'a>, SpillError> {
        let mut c = IndexCursor {
            run,
            buf: vec![0; INDEX_BLOCK],
            read: 0,
            in_buf: 0,
            pos: 0,
            current: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> Result<(), SpillError> {
        loop {
            if self.pos == self.in_buf {
                if self.read == self.run.entries {
                    self.current = None;
                    return Ok(());
                }
                let n = (self.run.entries - self.read).min(ENTRIES_PER_BLOCK);
                self.run
                    .index
                    .read_exact_at(&mut self.buf[..n * ENTRY], (self.read * ENTRY) as u64)
                    .map_err(io)?;
                self.read += n;
                self.in_buf = n;
                self.pos = 0;
            }
            let e = entry(&self.buf[self.pos * ENTRY..]);
            self.pos += 1;
            if self.run.dead.is_empty() || !self.run.dead.contains(&e.1) {
                self.current = Some(e);
                return Ok(());
            }
        }
    }
}
