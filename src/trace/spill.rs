//! Parks idle open flows, so the tracer's memory stays bounded however many flows a capture leaves open
//! (connections that never send FIN stay open to the end, as in TraceFlow).
//!
//! The tracer moves its least recently seen flows here when it holds too many. They go first to a compact
//! in-memory table: each flow packed into about 40 bytes of varints in one append-only arena, found by its key's
//! 64-bit hash. A scan or a flood parks hundreds of thousands of flows that never come back, and SQLite inserts
//! with two indexes were most of such a capture's reading time. The table has a byte budget (from
//! available memory, at most `DEFAULT_PARK_MEMORY`, `--park-memory` caps it). When it is full, its oldest
//! quarter goes to disk as a sorted run (`runs`), so memory stays bounded whatever the number of open flows.
//!
//! Every frame whose flow is not in memory must ask whether it was parked: a hash lookup in the table, then, if
//! anything went to disk, a fixed-size Bloom filter that answers "no" without reading a file for nearly all of
//! them (new flows).

mod runs;

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::flow::OpenFlow;
use crate::key::FlowKey;
use crate::key::Timestamp;

/// Most memory the in-memory table of parked flows takes by default (arena and hash index): enough for about a
/// million parked flows of a scan. 48 MiB kept a scan that leaves 2.5M flows open under 150 MB peak RSS
/// (148-149 MB against 164-170 MB), but the arena then cannot double to 64 MiB, and an 833k-flow SYN scan
/// went to disk (then SQLite): 5.05-5.65 s user against 4.00-4.12 s (two interleaved runs each). Kept at 64 MiB.
pub const DEFAULT_PARK_MEMORY: usize = 64 << 20;

/// The compact table's default budget: `DEFAULT_PARK_MEMORY`, or an eighth of the memory available now if that
/// is less (read once, when parking starts; at least 1 MiB).
pub(super) fn default_budget() -> usize {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024))
    });
    match available {
        Some(bytes) => (bytes / 8).clamp(1 << 20, DEFAULT_PARK_MEMORY),
        None => DEFAULT_PARK_MEMORY,
    }
}

/// Parking or taking back an open flow failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// The temporary files of flows that did not fit in memory failed.
    #[error("parking open flows in a temporary file in {dir}: {0} (set TMPDIR to a folder with room)", dir = .1.display())]
    Io(#[source] std::io::Error, std::path::PathBuf),
    /// A parked flow could not be read back (a bug: the bytes are the tracer's own).
    #[error("parking open flows: a parked flow could not be read back")]
    Corrupt,
}

/// The parked flows: in the compact table while it has room, the others in sorted runs on disk. A key is in at
/// most one of them (and never also in the tracer's memory).
pub(super) struct Spill {
    table: Compact,
    runs: runs::Runs,
}

impl Spill {
    /// Parking with at most `budget` bytes of memory for the compact table (0: everything goes to disk).
    pub(super) fn new(budget: usize) -> Spill {
        Spill {
            table: Compact::new(budget),
            runs: runs::Runs::new(),
        }
    }

    /// Parks flows (each key at most once: the tracer holds a flow either in memory or here), leaving `flows`
    /// empty with its capacity, for the next round.
    pub(super) fn park(&mut self, flows: &mut Vec<(FlowKey, OpenFlow)>) -> Result<(), SpillError> {
        let mut rest = Vec::new();
        for (key, flow) in flows.drain(..) {
            let (key, flow) = match self.table.put(key, flow) {
                Put::Stored => continue,
                Put::Full(key, flow) => {
                    // The oldest quarter of the table goes to disk; flows parked long ago are the least likely
                    // to come back.
                    if self.table.spill_oldest(&mut self.runs)? {
                        match self.table.put(key, flow) {
                            Put::Stored => continue,
                            Put::Full(key, flow) | Put::Taken(key, flow) => (key, flow),
                        }
                    } else {
                        (key, flow)
                    }
                }
                Put::Taken(key, flow) => (key, flow),
            };
            rest.push((key, flow));
        }
        if rest.is_empty() {
            return Ok(());
        }
        // No room even after spilling (a tiny budget), or another key with this hash is in the table.
        rest.sort_unstable_by_key(|(_, f)| f.flow_no);
        let mut bytes = Vec::new();
        let mut spans = Vec::with_capacity(rest.len());
        for (key, flow) in &rest {
            let start = bytes.len();
            let k = encode_key(key);
            encode_body(&mut bytes, &k, flow);
            spans.push((flow.flow_no, key_hash(k.as_slice()), start, bytes.len()));
        }
        self.runs
            .add(spans.iter().map(|&(flow_no, hash, a, b)| runs::Record {
                flow_no,
                hash,
                bytes: &bytes[a..b],
            }))
    }

    /// Takes a parked flow back, if this key has one.
    pub(super) fn take(&mut self, key: &FlowKey) -> Result<Option<OpenFlow>, SpillError> {
        let k = encode_key(key);
        let h = key_hash(k.as_slice());
        if let Some(flow) = self.table.take(&k, h)? {
            return Ok(Some(flow));
        }
        match self.runs.take(k.as_slice(), h)? {
            Some(body) => Ok(Some(decode_body(&body).ok_or(SpillError::Corrupt)?.1)),
            None => Ok(None),
        }
    }

    /// Hands every parked flow to `each`, in creation order (the table's and the runs' merged).
    pub(super) fn drain(self, each: &mut dyn FnMut(FlowKey, OpenFlow)) -> Result<(), SpillError> {
        let Spill { table, runs } = self;
        let table = table
            .into_sorted()?
            .map(|r| r.map(|(k, f)| (f.flow_no, (k, f))));
        let decode = |b: &[u8]| decode_body(b).map(|(k, f, _)| (k, f));
        runs.drain(table, decode, &mut |(k, f)| each(k, f))
    }
}

/// Longest tail of a [`Parked`] record: a record's length fits its first byte, with the longest key.
pub const MAX_TAIL: usize = 255 - BODY_HEAD - 38;

/// Entries (open flows, two-way pairs, connections) whose last frames estimate which eighth a parking round
/// parks: the estimate of an eighth is then within about 6% of it (one standard error).
pub const PARK_SAMPLE: usize = 2048;

/// The cut of a parking round: the last frame number at or before which about `n` of the `len` entries of a
/// table lie, estimated from the first [`PARK_SAMPLE`] of their `last_frames` (a hash table's order is its keys'
/// hashes, not their times). `sample` is the caller's buffer, kept between rounds.
pub fn parking_cut(
    sample: &mut Vec<u64>,
    last_frames: impl Iterator<Item = u64>,
    len: usize,
    n: usize,
) -> u64 {
    sample.clear();
    sample.extend(last_frames.take(PARK_SAMPLE));
    // The sample's own n-th of len (the whole table when it is small): at least its oldest.
    let rank = (n * sample.len()).div_ceil(len).max(1);
    *sample.select_nth_unstable(rank - 1).1
}

/// Parked state of the trackers beside the tracer (connections, the two-way index): records of a number (their
/// creation order), a key and a tail of the tracker's own bytes, written as sorted runs on disk as they are
/// parked, found by their key's hash behind the runs' Bloom filter. No compact table: these trackers park in
/// rounds of thousands, read back few, and the runs' merges keep the files few.
pub struct Parked {
    runs: runs::Runs,
    bytes: Vec<u8>,
    spans: Vec<(u32, u64, usize, usize)>,
}

/// What [`Parked::drain`] hands each record to: its number, key and tail.
pub type ParkedVisitor<'a> = dyn FnMut(u32, FlowKey, &[u8]) -> Result<(), SpillError> + 'a;

impl Default for Parked {
    fn default() -> Parked {
        Parked {
            runs: runs::Runs::new(),
            bytes: Vec::new(),
            spans: Vec::new(),
        }
    }
}

impl Parked {
    /// Parks records (number, key, tail of at most [`MAX_TAIL`] bytes), in increasing number order; none of
    /// their keys or numbers may be parked already.
    pub fn park<'a>(
        &mut self,
        records: impl IntoIterator<Item = (u32, &'a FlowKey, &'a [u8])>,
    ) -> Result<(), SpillError> {
        let (bytes, spans) = (&mut self.bytes, &mut self.spans);
        bytes.clear();
        spans.clear();
        for (no, key, tail) in records {
            debug_assert!(tail.len() <= MAX_TAIL);
            let start = bytes.len();
            let k = encode_key(key);
            bytes.push(0);
            bytes.extend_from_slice(&no.to_le_bytes());
            bytes.extend_from_slice(k.as_slice());
            bytes.extend_from_slice(tail);
            bytes[start] = u8::try_from(bytes.len() - start).map_err(|_| SpillError::Corrupt)?;
            spans.push((no, key_hash(k.as_slice()), start, bytes.len()));
        }
        let bytes = &self.bytes;
        self.runs.add(
            self.spans
                .iter()
                .map(|&(flow_no, hash, a, b)| runs::Record {
                    flow_no,
                    hash,
                    bytes: &bytes[a..b],
                }),
        )
    }

    /// Takes the record of this key back, if it is parked: its number and tail.
    pub fn take(&mut self, key: &FlowKey) -> Result<Option<(u32, Vec<u8>)>, SpillError> {
        let k = encode_key(key);
        let Some(mut body) = self.runs.take(k.as_slice(), key_hash(k.as_slice()))? else {
            return Ok(None);
        };
        let no = body_flow_no(&body).ok_or(SpillError::Corrupt)?;
        body.drain(..BODY_HEAD + k.len);
        Ok(Some((no, body)))
    }

    /// Hands every parked record to `each` (number, key, tail), in number order.
    pub fn drain(self, each: &mut ParkedVisitor) -> Result<(), SpillError> {
        let mut failed = None;
        let decode = |b: &[u8]| {
            let no = body_flow_no(b)?;
            let k = body_key(b)?;
            Some((no, decode_key(k)?, b[BODY_HEAD + k.len()..].to_vec()))
        };
        self.runs
            .drain(std::iter::empty(), decode, &mut |(no, key, tail): (
                u32,
                FlowKey,
                Vec<u8>,
            )| {
                if failed.is_none() {
                    if let Err(e) = each(no, key, &tail) {
                        failed = Some(e);
                    }
                }
            })?;
        failed.map_or(Ok(()), Err)
    }
}

/// Appends `v` as a LEB128 varint (the parked records' encoding).
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `pos` of `b`, moving `pos` past it.
pub fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The hash that finds a parked flow: xxh3 of the key's bytes. Tests can make it collide on purpose.
fn key_hash(k: &[u8]) -> u64 {
    let h = xxhash_rust::xxh3::xxh3_64(k);
    #[cfg(test)]
    let h = if tests::WEAK_HASH.with(|w| w.get()) {
        h & 7
    } else {
        h
    };
    h
}

/// What `Compact::put` did with a flow.
enum Put {
    Stored,
    /// No room: the flow is handed back.
    Full(FlowKey, OpenFlow),
    /// Another key with this hash is in the table: the flow is handed back.
    Taken(FlowKey, OpenFlow),
}

/// A record's first byte: taken back records stay in the arena until it is compacted.
const LIVE: u8 = 1;
const DEAD: u8 = 0;
/// The longest record: status byte, length byte, flow_no, two IPv6 ends, 10 varints of at most 10 bytes (under
/// 256, so that the length fits its byte).
const MAX_RECORD: usize = 1 + 1 + 4 + 38 + 10 * 10;
/// Bytes per entry of the hash index as counted against the budget: 16 bytes of (hash, offset) and a control
/// byte per bucket, at hashbrown's 7/8 load.
const INDEX_ENTRY: usize = 20;
/// When the table is full, the oldest 1/SPILL_PART of its arena goes to a run.
const SPILL_PART: usize = 2;

/// Parked flows packed as varints in one append-only arena (about 40 bytes for a SYN probe's flow, against 120
/// in the tracer's table), found by the 64-bit hash of their key. Two keys with one hash: the second goes to
/// the database, which looks flows up by their full key, so a collision costs speed, never a wrong answer.
struct Compact {
    arena: Vec<u8>,
    /// Key hash to the offset of its live record.
    at: FxHashMap<u64, u32>,
    /// Bytes of dead records in the arena.
    dead: usize,
    budget: usize,
    /// Times the arena was compacted (for the tests).
    compactions: usize,
}

impl Compact {
    fn new(budget: usize) -> Compact {
        Compact {
            arena: Vec::new(),
            at: FxHashMap::default(),
            dead: 0,
            compactions: 0,
            // Offsets are u32.
            budget: budget.min(u32::MAX as usize),
        }
    }

    /// Memory of the arena and the index if the next record needs both to grow.
    fn memory_after_growth(&self) -> usize {
        let arena = if self.arena.len() + MAX_RECORD > self.arena.capacity() {
            self.grown_arena()
        } else {
            self.arena.capacity()
        };
        let index = if self.at.len() >= self.at.capacity() {
            (self.at.capacity().max(3) + 1) * 2
        } else {
            self.at.capacity()
        };
        arena + index * INDEX_ENTRY
    }

    fn grown_arena(&self) -> usize {
        (self.arena.capacity() * 2).max(1 << 12)
    }

    /// Stores a flow, or hands it back when there is no room or its key's hash is taken.
    fn put(&mut self, key: FlowKey, flow: OpenFlow) -> Put {
        let k = encode_key(&key);
        let h = key_hash(k.as_slice());
        if self.at.contains_key(&h) {
            return Put::Taken(key, flow);
        }
        if self.memory_after_growth() > self.budget {
            // Flows that come back leave dead records: reclaim them before giving up on memory.
            if self.dead * 2 >= self.arena.len() && self.dead > 0 {
                self.compact();
            }
            if self.memory_after_growth() > self.budget {
                return Put::Full(key, flow);
            }
        }
        if self.arena.len() + MAX_RECORD > self.arena.capacity() {
            // Exact doubling: Vec's own growth policy could overshoot the budget.
            let want = self.grown_arena() - self.arena.len();
            self.arena.reserve_exact(want);
        }
        let off = self.arena.len() as u32;
        self.arena.push(LIVE);
        encode_body(&mut self.arena, &k, &flow);
        self.at.insert(h, off);
        Put::Stored
    }

    /// Writes the live records of the arena's first half (the oldest parked) to a new run and compacts the
    /// arena over them. False if there was nothing to write.
    fn spill_oldest(&mut self, runs: &mut runs::Runs) -> Result<bool, SpillError> {
        let end = self.arena.len() / SPILL_PART;
        let mut old: Vec<(u32, u32)> = Vec::new();
        let mut pos = 0;
        while pos < self.arena.len() && (pos < end || old.is_empty()) {
            let body = &self.arena[pos + 1..];
            if self.arena[pos] == LIVE {
                old.push((body_flow_no(body).ok_or(SpillError::Corrupt)?, pos as u32));
            }
            pos += 1 + body_len(body).ok_or(SpillError::Corrupt)?;
        }
        if old.is_empty() {
            return Ok(false);
        }
        old.sort_unstable();
        let arena = &self.arena;
        runs.add(old.iter().map(|&(flow_no, off)| {
            let body = &arena[off as usize + 1..];
            let body = &body[..body_len(body).unwrap_or(0)];
            runs::Record {
                flow_no,
                hash: key_hash(body_key(body).unwrap_or_default()),
                bytes: body,
            }
        }))?;
        for &(_, off) in &old {
            self.arena[off as usize] = DEAD;
        }
        self.compact();
        Ok(true)
    }

    fn take(&mut self, k: &KeyBytes, h: u64) -> Result<Option<OpenFlow>, SpillError> {
        let Some(&off) = self.at.get(&h) else {
            return Ok(None);
        };
        let rec = &self.arena[off as usize..];
        if body_key(&rec[1..]) != Some(k.as_slice()) {
            // Another key with this hash: this one, if parked, is in a run.
            return Ok(None);
        }
        let (_, flow, len) = decode_record(rec).ok_or(SpillError::Corrupt)?;
        self.arena[off as usize] = DEAD;
        self.dead += len;
        self.at.remove(&h);
        Ok(Some(flow))
    }

    /// Moves the live records down over the dead ones, in place (no second arena: memory stays in budget).
    fn compact(&mut self) {
        // Rebuilt, not updated: removals leave tombstones that lower the index's capacity, and the table then
        // counted itself full sooner at each round (the runs it wrote shrank from 230k flows to 15).
        self.at.clear();
        let (mut read, mut write) = (0, 0);
        while read < self.arena.len() {
            let Some(len) = body_len(&self.arena[read + 1..]).map(|n| n + 1) else {
                break;
            };
            if self.arena[read] == LIVE {
                let h = key_hash(body_key(&self.arena[read + 1..]).unwrap_or_default());
                self.arena.copy_within(read..read + len, write);
                self.at.insert(h, write as u32);
                write += len;
            }
            read += len;
        }
        self.arena.truncate(write);
        self.dead = 0;
        self.compactions += 1;
    }

    /// The live flows in creation order.
    fn into_sorted(
        self,
    ) -> Result<impl Iterator<Item = Result<(FlowKey, OpenFlow), SpillError>>, SpillError> {
        let Compact { arena, at, .. } = self;
        // Sized once: a doubling Vec of a million parked flows peaked at twice its 8 MB.
        let mut order: Vec<(u32, u32)> = Vec::with_capacity(at.len());
        drop(at);
        let mut pos = 0;
        while pos < arena.len() {
            let body = &arena[pos + 1..];
            if arena[pos] == LIVE {
                order.push((body_flow_no(body).ok_or(SpillError::Corrupt)?, pos as u32));
            }
            pos += 1 + body_len(body).ok_or(SpillError::Corrupt)?;
        }
        order.sort_unstable();
        Ok(order.into_iter().map(move |(_, off)| {
            decode_record(&arena[off as usize..])
                .map(|(k, f, _)| (k, f))
                .ok_or(SpillError::Corrupt)
        }))
    }
}

/// Signed as unsigned, small magnitudes small (for varints).
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A flow as bytes (the body of a record, in the arena and in runs): its length (one byte), flow_no (4 bytes,
/// little-endian), key, then the other fields as varints. The length and the fixed flow_no let spilling, merging
/// and draining walk records without decoding them. Frame numbers and the last time go as deltas from the first
/// ones (wrapping, so any values round-trip): a probe's flow is a few bytes.
fn encode_body(out: &mut Vec<u8>, k: &KeyBytes, f: &OpenFlow) {
    let start = out.len();
    out.push(0);
    out.extend_from_slice(&f.flow_no.to_le_bytes());
    out.extend_from_slice(k.as_slice());
    put_varint(out, zigzag(f.first_ts.sec));
    put_varint(out, f.first_ts.frac);
    // The rare wraps of a time past 2^63 s ride above the digits (at most 19): other flows' bytes are as before.
    put_varint(
        out,
        u64::from(f.first_ts.digits) | zigzag(i64::from(f.first_ts.wraps)) << 8,
    );
    put_varint(out, f.first_frame);
    put_varint(out, f.last_frame.wrapping_sub(f.first_frame));
    put_varint(out, f.packets);
    put_varint(out, f.bytes);
    put_varint(out, f.payload_bytes);
    put_varint(out, zigzag(f.last_ns.wrapping_sub(f.first_ts.as_ns())));
    put_varint(out, u64::from(f.flags));
    out[start] = (out.len() - start) as u8;
}

/// Bytes of the length byte and the flow_no.
const BODY_HEAD: usize = 5;

/// Length of the body at the start of `b` (a body is never empty, so 0 is not one).
fn body_len(b: &[u8]) -> Option<usize> {
    let n = usize::from(*b.first()?);
    (n > BODY_HEAD && n <= b.len()).then_some(n)
}

fn body_flow_no(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(1..BODY_HEAD)?.try_into().ok()?))
}

fn body_key(b: &[u8]) -> Option<&[u8]> {
    let rest = b.get(BODY_HEAD..)?;
    rest.get(..key_len(rest)?)
}

/// Length of the key's bytes at the start of `b`.
fn key_len(b: &[u8]) -> Option<usize> {
    let end = |b: &[u8]| match b.first()? {
        4 => Some(1 + 4 + 2),
        6 => Some(1 + 16 + 2),
        _ => None,
    };
    let first = end(b)?;
    Some(first + end(b.get(first..)?)?)
}

/// A record of the arena (status byte, body) at the start of `b`, and its length.
fn decode_record(b: &[u8]) -> Option<(FlowKey, OpenFlow, usize)> {
    let (key, flow, len) = decode_body(b.get(1..)?)?;
    Some((key, flow, 1 + len))
}

/// The flow of the body (`encode_body`) at the start of `b`, and its length.
fn decode_body(b: &[u8]) -> Option<(FlowKey, OpenFlow, usize)> {
    let len = body_len(b)?;
    let b = &b[..len];
    let flow_no = body_flow_no(b)?;
    let k = body_key(b)?;
    let key = decode_key(k)?;
    let mut pos = BODY_HEAD + k.len();
    let mut next = || get_varint(b, &mut pos);
    let sec = unzigzag(next()?);
    let frac = next()?;
    let digits_wraps = next()?;
    let digits = u8::try_from(digits_wraps & 0xff).ok()?;
    let wraps = i8::try_from(unzigzag(digits_wraps >> 8)).ok()?;
    let first_frame = next()?;
    let last_frame = first_frame.wrapping_add(next()?);
    let packets = next()?;
    let bytes = next()?;
    let payload_bytes = next()?;
    let last_delta = unzigzag(next()?);
    let flags = u16::try_from(next()?).ok()?;
    let first_ts = Timestamp {
        sec,
        frac,
        digits,
        wraps,
    };
    let last_ns = last_delta.wrapping_add(first_ts.as_ns());
    let flow = OpenFlow {
        flow_no,
        first_ts,
        first_frame,
        last_frame,
        packets,
        bytes,
        payload_bytes,
        last_ns,
        flags,
        // The tracer marks a flow taken back (it knows whether its row was stored when it was parked).
        counted: (0, 0),
    };
    (pos == len).then_some((key, flow, len))
}

/// A key as bytes (on the stack: this runs for every frame of a flow not in memory).
struct KeyBytes {
    buf: [u8; 38],
    len: usize,
}

impl KeyBytes {
    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn push_addr(&mut self, a: &IpAddr) {
        match a {
            IpAddr::V4(v4) => {
                self.push(&[4]);
                self.push(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.push(&[6]);
                self.push(&v6.octets());
            }
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The key as bytes: family and address, port, for each end. Distinct keys give distinct bytes.
fn encode_key(key: &FlowKey) -> KeyBytes {
    let mut out = KeyBytes {
        buf: [0; 38],
        len: 0,
    };
    out.push_addr(&key.0);
    out.push(&key.1.to_be_bytes());
    out.push_addr(&key.2);
    out.push(&key.3.to_be_bytes());
    out
}

fn decode_addr(b: &[u8]) -> Option<(IpAddr, &[u8])> {
    match b.split_first()? {
        (4, rest) if rest.len() >= 4 => {
            let o: [u8; 4] = rest[..4].try_into().ok()?;
            Some((IpAddr::from(o), &rest[4..]))
        }
        (6, rest) if rest.len() >= 16 => {
            let o: [u8; 16] = rest[..16].try_into().ok()?;
            Some((IpAddr::from(o), &rest[16..]))
        }
        _ => None,
    }
}

fn decode_key(b: &[u8]) -> Option<FlowKey> {
    let (src, rest) = decode_addr(b)?;
    let sport = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    let (dst, rest) = decode_addr(&rest[2..])?;
    let dport = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    Some((src, sport, dst, dport))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::collections::BTreeMap;

    thread_local! {
        /// Makes `key_hash` keep 3 bits: every key collides with many others, in the table and in the runs.
        pub(super) static WEAK_HASH: Cell<bool> = const { Cell::new(false) };
    }

    fn key(i: u32) -> FlowKey {
        (
            IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
            1,
            "10.1.0.1".parse().unwrap(),
            80,
        )
    }

    fn flow(no: u32) -> OpenFlow {
        OpenFlow {
            flow_no: no,
            first_ts: Timestamp::new(i64::from(no), 5, 6),
            first_frame: u64::from(no),
            last_frame: u64::from(no) + 7,
            packets: 2,
            bytes: 120,
            payload_bytes: 0,
            last_ns: -3,
            flags: 2,
            counted: (0, 0),
        }
    }

    /// Flows parked, taken back and parked again, more than the table holds: the arena is compacted, the oldest
    /// go to runs on disk, and every flow comes out once, intact, in creation order.
    #[test]
    fn the_table_compacts_and_overflows_keeping_creation_order() {
        let mut s = Spill::new(6000);
        for round in 0..4u32 {
            let mut batch: Vec<_> = (round * 100 + 1..=round * 100 + 100)
                .map(|i| (key(i), flow(i)))
                .collect();
            s.park(&mut batch).unwrap();
            let mut back: Vec<_> = (1..=round * 100 + 100)
                .filter(|i| i % 2 == 0)
                .map(|i| (key(i), s.take(&key(i)).unwrap().expect("parked")))
                .collect();
            s.park(&mut back).unwrap();
        }
        assert!(s.table.compactions > 0, "the arena was never compacted");
        assert!(s.runs.len() > 0, "nothing went to disk");
        assert_eq!(s.take(&key(999)).unwrap().map(|f| f.flow_no), None);
        let mut got = Vec::new();
        s.drain(&mut |k, f| {
            got.push((k, f.flow_no, f.first_ts, f.last_frame, f.packets, f.last_ns))
        })
        .unwrap();
        let want: Vec<_> = (1..=400)
            .map(|i| {
                let f = flow(i);
                (key(i), i, f.first_ts, f.last_frame, 2, -3)
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn keys_round_trip_through_bytes() {
        let keys: [FlowKey; 2] = [
            (
                "10.0.0.1".parse().unwrap(),
                1,
                "10.0.0.2".parse().unwrap(),
                65535,
            ),
            (
                "::ffff:1.2.3.4".parse().unwrap(),
                80,
                "2001:db8::1".parse().unwrap(),
                0,
            ),
        ];
        for k in keys {
            assert_eq!(decode_key(encode_key(&k).as_slice()), Some(k));
        }
    }

    /// A flow with every field derived from its number and a version (the times it was parked), so that a
    /// flow taken back with another version's fields shows.
    fn flow_v(no: u32, version: u64) -> OpenFlow {
        OpenFlow {
            flow_no: no,
            first_ts: Timestamp::new(i64::from(no) - 50, u64::from(no) * 7, 6),
            first_frame: u64::from(no) * 3,
            last_frame: u64::from(no) * 3 + version,
            packets: version + 1,
            bytes: version * 1500 + u64::from(no),
            payload_bytes: version * 1400,
            last_ns: version as i64 * 1_000_000_007 - 5,
            flags: (no % 64) as u16,
            counted: (0, 0),
        }
    }

    type Fields = (u32, Timestamp, u64, u64, u64, u64, u64, i64, u16);

    fn fields(f: &OpenFlow) -> Fields {
        (
            f.flow_no,
            f.first_ts,
            f.first_frame,
            f.last_frame,
            f.packets,
            f.bytes,
            f.payload_bytes,
            f.last_ns,
            f.flags,
        )
    }

    /// IPv4 and IPv6 keys, both lengths of record.
    fn key_of(i: u32) -> FlowKey {
        if i.is_multiple_of(3) {
            (
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, (i >> 16) as u16, i as u16]),
                443,
                "2001:db8::1".parse().unwrap(),
                (i % 50) as u16,
            )
        } else {
            key(i)
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The spill against a brute-force model (a map of what is parked): rounds of parking new flows and
        /// flows taken back, and of taking keys back (parked or not), with table budgets from none (all to disk)
        /// to roomy, and with a hash that collides on purpose. Every take gives what the model holds, fields and
        /// all, and the drain gives the model's flows in creation order.
        #[test]
        fn the_spill_holds_what_was_parked(
            rounds in proptest::collection::vec(
                (1u32..120, proptest::collection::vec(0u32..2000, 0..80)),
                1..25,
            ),
            budget in proptest::sample::select(vec![0usize, 3000, 6000, 1 << 16, 1 << 20]),
            weak in proptest::bool::ANY,
        ) {
            WEAK_HASH.with(|w| w.set(weak));
            let mut s = Spill::new(budget);
            let mut model: BTreeMap<u32, Fields> = BTreeMap::new();
            let mut versions: BTreeMap<u32, u64> = BTreeMap::new();
            let mut created = 0u32;
            for (new, takes) in rounds {
                let mut batch = Vec::new();
                for _ in 0..new {
                    created += 1;
                    batch.push((key_of(created), flow_v(created, 0)));
                }
                for t in takes {
                    let no = t % created.max(1) + 1;
                    let got = s.take(&key_of(no)).unwrap();
                    let want = model.remove(&no);
                    proptest::prop_assert_eq!(got.as_ref().map(fields), want);
                    if got.is_some() && t % 2 == 0 {
                        // Seen again, then parked again with new fields.
                        let v = versions.entry(no).or_default();
                        *v += 1;
                        batch.push((key_of(no), flow_v(no, *v)));
                    }
                }
                batch.sort_by_key(|(_, f)| f.flow_no);
                for (k, f) in &batch {
                    model.insert(f.flow_no, fields(f));
                    proptest::prop_assert_eq!(k, &key_of(f.flow_no));
                }
                s.park(&mut batch).unwrap();
            }
            let mut got = Vec::new();
            s.drain(&mut |k, f| got.push((k, fields(&f)))).unwrap();
            let want: Vec<_> = model.iter().map(|(no, f)| (key_of(*no), *f)).collect();
            WEAK_HASH.with(|w| w.set(false));
            proptest::prop_assert_eq!(got, want);
        }
    }

    /// Enough flows for several runs and merges, some taken back from disk: merges drop the dead records and
    /// the Bloom filter is rebuilt without them.
    #[test]
    fn runs_merge_and_drop_taken_flows() {
        let mut s = Spill::new(0);
        let mut n = 0;
        for round in 0..40u32 {
            let mut batch: Vec<_> = (0..500)
                .map(|_| {
                    n += 1;
                    (key_of(n), flow_v(n, 0))
                })
                .collect();
            s.park(&mut batch).unwrap();
            // A tenth of the previous round comes back, and is gone from disk.
            for i in (round * 500 + 1..round * 500 + 1 + 50).filter(|_| round > 0) {
                let back = i - 500;
                assert_eq!(
                    s.take(&key_of(back)).unwrap().map(|f| f.flow_no),
                    Some(back)
                );
                assert!(s.take(&key_of(back)).unwrap().is_none());
            }
        }
        assert!(s.runs.merges > 10, "{} merges", s.runs.merges);
        assert!(s.runs.len() <= 8, "{} runs", s.runs.len());
        let mut count = 0;
        let mut last = 0;
        s.drain(&mut |_, f| {
            assert!(f.flow_no > last);
            last = f.flow_no;
            count += 1;
        })
        .unwrap();
        assert_eq!(count, 40 * 500 - 39 * 50);
    }
}
