//! Parks idle open flows, so the tracer's memory stays bounded however many flows a capture leaves open
//! (connections that never send FIN stay open to the end, as in TraceFlow).
//!
//! The tracer moves its least recently seen flows here when it holds too many. They go first to a compact
//! in-memory table: each flow packed into about 40 bytes of varints in one append-only arena, found by its key's
//! 64-bit hash. A scan or a flood parks hundreds of thousands of flows that never come back, and SQLite inserts
//! with two indexes were 85% of such a capture's reading time (issue 17). The table has a byte budget (from
//! available memory, at most `DEFAULT_PARK_MEMORY`, `--park-memory` caps it); beyond it, flows go to a private
//! temporary SQLite database, so memory stays bounded whatever the number of open flows.
//!
//! Every frame whose flow is not in memory must ask whether it was parked: a hash lookup in the table, then, if
//! anything overflowed, a fixed-size Bloom filter that answers "no" without touching the database for nearly
//! all of them (new flows).

use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension};
use rustc_hash::FxHashMap;

use super::flow::{FlowKey, OpenFlow};
use crate::capture::Timestamp;

/// 64-bit words in the Bloom filter: 4 MiB whatever the capture. A key sets 3 bits of one word (one cache miss
/// per lookup). False positives: about 1 in 10^5 at a million parked flows, 1 in 50 at ten million; each costs
/// one index lookup, never a wrong answer.
const BLOOM_WORDS: usize = 1 << 19;

/// Pages of the temporary database kept in memory (negative: KiB), beyond which it goes to a temporary file.
const CACHE_KIB: i64 = 4096;

/// Most memory the in-memory table of parked flows takes by default (arena and hash index): enough for about a
/// million parked flows of a scan. 48 MiB kept a scan that leaves 2.5M flows open under 150 MB peak RSS
/// (148-149 MB against 164-170 MB), but the arena then cannot double to 64 MiB, and the 833k-flow scan of issue 17
/// overflowed to SQLite: 5.05-5.65 s user against 4.00-4.12 s (two interleaved runs each). Kept at 64 MiB.
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
    /// The temporary database of flows that did not fit in memory failed.
    #[error("parking open flows in a temporary database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A parked flow could not be read back (a bug: the bytes are the tracer's own).
    #[error("parking open flows: a parked flow could not be read back")]
    Corrupt,
}

/// The parked flows: in the compact table while it has room, the others in the temporary database. A key is in
/// at most one of them (and never also in the tracer's memory).
pub(super) struct Spill {
    table: Compact,
    /// Created when the table first has no room.
    overflow: Option<Overflow>,
}

impl Spill {
    /// Parking with at most `budget` bytes of memory for the compact table (0: everything goes to SQLite).
    pub(super) fn new(budget: usize) -> Spill {
        Spill {
            table: Compact::new(budget),
            overflow: None,
        }
    }

    /// Parks flows (each key at most once: the tracer holds a flow either in memory or here), leaving `flows`
    /// empty with its capacity, for the next round.
    pub(super) fn park(&mut self, flows: &mut Vec<(FlowKey, OpenFlow)>) -> Result<(), SpillError> {
        let mut rest = Vec::new();
        for (key, flow) in flows.drain(..) {
            if let Some(back) = self.table.put(key, flow) {
                rest.push(back);
            }
        }
        if rest.is_empty() {
            return Ok(());
        }
        let overflow = match &mut self.overflow {
            Some(o) => o,
            None => self.overflow.insert(Overflow::new()?),
        };
        overflow.park(rest)
    }

    /// Takes a parked flow back, if this key has one.
    pub(super) fn take(&mut self, key: &FlowKey) -> Result<Option<OpenFlow>, SpillError> {
        let k = encode_key(key);
        let h = xxhash_rust::xxh3::xxh3_64(k.as_slice());
        if let Some(flow) = self.table.take(&k, h)? {
            return Ok(Some(flow));
        }
        match &mut self.overflow {
            Some(o) => o.take(&k, h),
            None => Ok(None),
        }
    }

    /// Hands every parked flow to `each`, in creation order (the table's and the database's merged).
    pub(super) fn drain(self, each: &mut dyn FnMut(FlowKey, OpenFlow)) -> Result<(), SpillError> {
        let mut table = self.table.into_sorted()?.peekable();
        if let Some(mut overflow) = self.overflow {
            let mut failed = None;
            overflow.drain(&mut |key, flow| {
                while let Some(next) =
                    table.next_if(|r| r.as_ref().map_or(true, |(_, f)| f.flow_no < flow.flow_no))
                {
                    match next {
                        Ok((k, f)) => each(k, f),
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                }
                each(key, flow);
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        for next in table {
            let (k, f) = next?;
            each(k, f);
        }
        Ok(())
    }
}

/// A record's first byte: taken back records stay in the arena until it is compacted.
const LIVE: u8 = 1;
const DEAD: u8 = 0;
/// The longest record: status byte, two IPv6 ends, 11 varints of at most 10 bytes.
const MAX_RECORD: usize = 1 + 38 + 11 * 10;
/// Bytes per entry of the hash index as counted against the budget: 16 bytes of (hash, offset) and a control
/// byte per bucket, at hashbrown's 7/8 load.
const INDEX_ENTRY: usize = 20;

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
    fn put(&mut self, key: FlowKey, flow: OpenFlow) -> Option<(FlowKey, OpenFlow)> {
        let k = encode_key(&key);
        let h = xxhash_rust::xxh3::xxh3_64(k.as_slice());
        if self.at.contains_key(&h) {
            return Some((key, flow));
        }
        if self.memory_after_growth() > self.budget {
            // Flows that come back leave dead records: reclaim them before giving up on memory.
            if self.dead * 2 >= self.arena.len() && self.dead > 0 {
                self.compact();
            }
            if self.memory_after_growth() > self.budget {
                return Some((key, flow));
            }
        }
        if self.arena.len() + MAX_RECORD > self.arena.capacity() {
            // Exact doubling: Vec's own growth policy could overshoot the budget.
            let want = self.grown_arena() - self.arena.len();
            self.arena.reserve_exact(want);
        }
        let off = self.arena.len() as u32;
        self.arena.push(LIVE);
        self.arena.extend_from_slice(k.as_slice());
        encode_flow(&mut self.arena, &flow);
        self.at.insert(h, off);
        None
    }

    fn take(&mut self, k: &KeyBytes, h: u64) -> Result<Option<OpenFlow>, SpillError> {
        let Some(&off) = self.at.get(&h) else {
            return Ok(None);
        };
        let rec = &self.arena[off as usize..];
        let key_bytes = rec.get(1..1 + k.len).ok_or(SpillError::Corrupt)?;
        if key_bytes != k.as_slice() {
            // Another key with this hash: this one, if parked, is in the database.
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
        let (mut read, mut write) = (0, 0);
        while read < self.arena.len() {
            let Some(len) = record_len(&self.arena[read..]) else {
                break;
            };
            if self.arena[read] == LIVE {
                let klen = key_len(&self.arena[read + 1..]).unwrap_or(0);
                let h = xxhash_rust::xxh3::xxh3_64(&self.arena[read + 1..read + 1 + klen]);
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
        // Sized once: a doubling Vec of a million parked flows peaked at twice its 8 MB (issue 17).
        let mut order: Vec<(u32, u32)> = Vec::with_capacity(at.len());
        drop(at);
        let mut pos = 0;
        while pos < arena.len() {
            let (_, flow, len) = decode_record(&arena[pos..]).ok_or(SpillError::Corrupt)?;
            if arena[pos] == LIVE {
                order.push((flow.flow_no, pos as u32));
            }
            pos += len;
        }
        order.sort_unstable();
        Ok(order.into_iter().map(move |(_, off)| {
            decode_record(&arena[off as usize..])
                .map(|(k, f, _)| (k, f))
                .ok_or(SpillError::Corrupt)
        }))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
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

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The flow's fields after its key. Frame numbers and the last time go as deltas from the first ones (wrapping,
/// so any values round-trip): a probe's flow is a few bytes.
fn encode_flow(out: &mut Vec<u8>, f: &OpenFlow) {
    put_varint(out, u64::from(f.flow_no));
    put_varint(out, zigzag(f.first_ts.sec));
    put_varint(out, f.first_ts.frac);
    put_varint(out, u64::from(f.first_ts.digits));
    put_varint(out, f.first_frame);
    put_varint(out, f.last_frame.wrapping_sub(f.first_frame));
    put_varint(out, f.packets);
    put_varint(out, f.bytes);
    put_varint(out, f.payload_bytes);
    put_varint(out, zigzag(f.last_ns.wrapping_sub(f.first_ts.as_ns())));
    put_varint(out, u64::from(f.flags));
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

/// A record (status byte, key, fields) at the start of `b`, and its length.
fn decode_record(b: &[u8]) -> Option<(FlowKey, OpenFlow, usize)> {
    let klen = key_len(b.get(1..)?)?;
    let key = decode_key(b.get(1..1 + klen)?)?;
    let mut pos = 1 + klen;
    let mut next = || get_varint(b, &mut pos);
    let flow_no = u32::try_from(next()?).ok()?;
    let sec = unzigzag(next()?);
    let frac = next()?;
    let digits = u8::try_from(next()?).ok()?;
    let first_frame = next()?;
    let last_frame = first_frame.wrapping_add(next()?);
    let packets = next()?;
    let bytes = next()?;
    let payload_bytes = next()?;
    let last_delta = unzigzag(next()?);
    let flags = u16::try_from(next()?).ok()?;
    let first_ts = Timestamp { sec, frac, digits };
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
        stored: false,
    };
    Some((key, flow, pos))
}

fn record_len(b: &[u8]) -> Option<usize> {
    decode_record(b).map(|(_, _, len)| len)
}

/// Parked flows that did not fit in the compact table: a private temporary SQLite database.
struct Overflow {
    conn: Connection,
    bloom: Vec<u64>,
    parked: usize,
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

impl Overflow {
    fn new() -> Result<Overflow, SpillError> {
        // "" is a private temporary database: in memory up to its cache size, then in a file that SQLite deletes
        // when the connection closes.
        let conn = Connection::open("")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.execute_batch(
            // Rows are appended; of the two small indexes, only the one on the key's hash takes random inserts.
            "CREATE TABLE parked (
                flow_no INTEGER NOT NULL, sec INTEGER NOT NULL, frac INTEGER NOT NULL, digits INTEGER NOT NULL,
                first_frame INTEGER NOT NULL, last_frame INTEGER NOT NULL, packets INTEGER NOT NULL,
                bytes INTEGER NOT NULL, payload_bytes INTEGER NOT NULL, last_ns INTEGER NOT NULL,
                flags INTEGER NOT NULL, key BLOB NOT NULL, hash INTEGER NOT NULL
             );
             CREATE INDEX parked_hash ON parked(hash);
             -- Draining in creation order walks this index: no sorter, whose memory grew by ~30 MB on a 2x
             -- capture's 160k parked flows.
             CREATE INDEX parked_flow_no ON parked(flow_no);",
        )?;
        Ok(Overflow {
            conn,
            bloom: vec![0; BLOOM_WORDS],
            parked: 0,
        })
    }

    /// The key's Bloom word and bits, from its hash.
    fn bloom_bits(h: u64) -> (usize, u64) {
        let word = (h >> 40) as usize % BLOOM_WORDS;
        let bits = (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63)) | (1u64 << ((h >> 12) & 63));
        (word, bits)
    }

    /// Parks flows (each key at most once).
    fn park(&mut self, flows: Vec<(FlowKey, OpenFlow)>) -> Result<(), SpillError> {
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO parked VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for (key, f) in flows {
                let k = encode_key(&key);
                let h = xxhash_rust::xxh3::xxh3_64(k.as_slice());
                let (word, bits) = Self::bloom_bits(h);
                self.bloom[word] |= bits;
                ins.execute(params![
                    f.flow_no,
                    f.first_ts.sec,
                    f.first_ts.frac as i64,
                    f.first_ts.digits,
                    f.first_frame as i64,
                    f.last_frame as i64,
                    f.packets as i64,
                    f.bytes as i64,
                    f.payload_bytes as i64,
                    f.last_ns,
                    f.flags,
                    k.as_slice(),
                    h as i64
                ])?;
                self.parked += 1;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Takes a parked flow back, if this key (as bytes, and their hash) has one.
    fn take(&mut self, k: &KeyBytes, h: u64) -> Result<Option<OpenFlow>, SpillError> {
        if self.parked == 0 {
            return Ok(None);
        }
        let (word, bits) = Self::bloom_bits(h);
        if self.bloom[word] & bits != bits {
            return Ok(None);
        }
        let found = self
            .conn
            .prepare_cached(
                "SELECT flow_no, sec, frac, digits, first_frame, last_frame, packets, bytes, payload_bytes, last_ns, flags,
                        rowid
                 FROM parked WHERE hash = ?1 AND key = ?2",
            )?
            .query_row(params![h as i64, k.as_slice()], |r| {
                Ok((row_to_flow(r)?, r.get::<_, i64>(11)?))
            })
            .optional()?;
        let Some((flow, rowid)) = found else {
            return Ok(None);
        };
        self.conn
            .prepare_cached("DELETE FROM parked WHERE rowid = ?1")?
            .execute([rowid])?;
        self.parked -= 1;
        Ok(Some(flow))
    }

    /// Hands every parked flow to `each`, in creation order.
    fn drain(&mut self, each: &mut dyn FnMut(FlowKey, OpenFlow)) -> Result<(), SpillError> {
        let mut st = self.conn.prepare(
            "SELECT flow_no, sec, frac, digits, first_frame, last_frame, packets, bytes, payload_bytes, last_ns, flags,
                    key
             FROM parked ORDER BY flow_no",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let flow = row_to_flow(r)?;
            let k: Vec<u8> = r.get(11)?;
            let key = decode_key(&k).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(11, "key".into(), rusqlite::types::Type::Blob)
            })?;
            each(key, flow);
        }
        self.parked = 0;
        Ok(())
    }
}

fn row_to_flow(r: &rusqlite::Row<'_>) -> rusqlite::Result<OpenFlow> {
    Ok(OpenFlow {
        flow_no: r.get(0)?,
        first_ts: Timestamp {
            sec: r.get(1)?,
            frac: r.get::<_, i64>(2)? as u64,
            digits: r.get(3)?,
        },
        first_frame: r.get::<_, i64>(4)? as u64,
        last_frame: r.get::<_, i64>(5)? as u64,
        packets: r.get::<_, i64>(6)? as u64,
        bytes: r.get::<_, i64>(7)? as u64,
        payload_bytes: r.get::<_, i64>(8)? as u64,
        last_ns: r.get(9)?,
        flags: r.get(10)?,
        stored: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            stored: false,
        }
    }

    /// Flows parked, taken back and parked again, more than the table holds: the arena is compacted, the rest
    /// overflows to SQLite, and every flow comes out once, intact, in creation order.
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
        assert!(s.overflow.is_some(), "nothing overflowed to SQLite");
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
}
