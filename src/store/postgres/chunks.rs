//! Reading frames on PostgreSQL, where they are stored as `frame_chunks` (up to 1,024 consecutive frames per row,
//! an array per column; `migrations/postgres/0002_frame_chunks.sql`): the chunks between two frame numbers are
//! fetched once, decoded, and kept in a bounded cache, so that a dump of every flow of a capture, whose flows
//! share chunks, reads each chunk about once instead of once per flow. Flows' frame spans are fetched and kept
//! likewise, 1,024 flows at a time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::Pg;
use crate::store::error::QueryError;
use crate::store::types::FrameRef;

/// Frames per chunk at most (the table's CHECK), so the chunks holding frames lo..hi start in (lo - CHUNK, hi].
const CHUNK: i64 = super::write::CHUNK as i64;

/// Chunks kept decoded: 256 chunks of 1,024 frames at 64 bytes a frame is 16 MiB, whatever the capture.
const CACHED: usize = 256;

/// Flows per block of spans fetched at once; a block of 1,024 is about 0.7 ms on a local socket.
const SPAN_BLOCK: i64 = 1024;

/// Blocks of spans kept: 64 blocks of 1,024 flows at 32 bytes a flow is 2 MiB.
const SPANS_CACHED: usize = 64;

/// One chunk's frames, the columns the read side needs.
pub struct Chunk {
    first: i64,
    ts_ns: Vec<i64>,
    origlen: Vec<i64>,
    file_offset: Vec<i64>,
    flow_no: Vec<Option<i64>>,
    conn_no: Vec<Option<i64>>,
    caplen: Vec<i32>,
    iface: Vec<i32>,
}

/// A frame of a chunk with the flow and connection it belongs to.
pub struct Frame {
    /// Where its record is and what it holds.
    pub at: FrameRef,
    /// `frames.flow_no`: `None` when the frame is not a TCP packet.
    pub flow_no: Option<i64>,
    /// `frames.conn_no`.
    pub conn_no: Option<i64>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.ts_ns.len()
    }

    fn last(&self) -> i64 {
        self.first + self.len() as i64 - 1
    }

    fn frame(&self, i: usize) -> Frame {
        Frame {
            at: FrameRef {
                number: (self.first + i as i64) as u64,
                ts_ns: self.ts_ns[i],
                caplen: self.caplen[i].max(0) as u32,
                origlen: self.origlen[i].clamp(0, i64::from(u32::MAX)) as u32,
                iface: self.iface[i].max(0) as u32,
                offset: self.file_offset[i].max(0) as u64,
            },
            flow_no: self.flow_no[i],
            conn_no: self.conn_no[i],
        }
    }
}

/// At most `cap` values by key, the oldest dropped first (the reads go forward through a capture).
struct Bounded<V> {
    map: BTreeMap<(i64, i64), Arc<V>>,
    order: VecDeque<(i64, i64)>,
    cap: usize,
}

impl<V> Bounded<V> {
    fn new(cap: usize) -> Bounded<V> {
        Bounded {
            map: BTreeMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn insert(&mut self, key: (i64, i64), v: Arc<V>) {
        if self.map.insert(key, v).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// Decoded chunks by (capture, first frame number), and flows' spans by (capture, block of flow numbers).
pub struct ChunkCache {
    chunks: Bounded<Chunk>,
    spans: Bounded<Vec<Option<Span>>>,
}

impl Default for ChunkCache {
    fn default() -> ChunkCache {
        ChunkCache {
            chunks: Bounded::new(CACHED),
            spans: Bounded::new(SPANS_CACHED),
        }
    }
}

/// A flow's first frame, last frame and packet count.
pub type Span = (i64, i64, i64);

impl ChunkCache {
    /// The cached chunk holding frame `n` of capture `cap`.
    fn holding(&self, cap: i64, n: i64) -> Option<&Arc<Chunk>> {
        let (_, k) = self
            .chunks
            .map
            .range((cap, i64::MIN)..=(cap, n))
            .next_back()?;
        (k.last() >= n).then_some(k)
    }

    /// The first frame of the first cached chunk of capture `cap` that starts in `lo..=hi`.
    fn next_cached(&self, cap: i64, lo: i64, hi: i64) -> Option<i64> {
        if lo > hi {
            return None;
        }
        self.chunks
            .map
            .range((cap, lo)..=(cap, hi))
            .next()
            .map(|(k, _)| k.1)
    }
}

impl Pg {
    /// A flow's first frame, last frame and packet count, from the block of spans that holds it.
    pub fn flow_span(&self, capture_id: i64, flow_no: i64) -> Result<Span, QueryError> {
        let block = flow_no.div_euclid(SPAN_BLOCK);
        let at = (flow_no - block * SPAN_BLOCK) as usize;
        let cached = self
            .cache
            .borrow()
            .spans
            .map
            .get(&(capture_id, block))
            .cloned();
        let spans = match cached {
            Some(b) => b,
            None => {
                let lo = block * SPAN_BLOCK;
                let rows = self.client.borrow_mut().query(
                    "SELECT flow_no, first_frame, last_frame, packets FROM flows
                     WHERE capture_id = $1 AND flow_no >= $2 AND flow_no < $3",
                    &[&capture_id, &lo, &lo.saturating_add(SPAN_BLOCK)],
                )?;
                let mut b = vec![None; SPAN_BLOCK as usize];
                for r in &rows {
                    let n: i64 = r.try_get(0)?;
                    if let Some(slot) = usize::try_from(n - lo).ok().and_then(|i| b.get_mut(i)) {
                        *slot = Some((r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
                    }
                }
                let b = Arc::new(b);
                self.cache
                    .borrow_mut()
                    .spans
                    .insert((capture_id, block), b.clone());
                b
            }
        };
        spans[at].ok_or_else(|| {
            QueryError::Corrupt(format!(
                "flow {flow_no} of capture {capture_id} is not in flows"
            ))
        })
    }

    /// Calls `visit` with each frame numbered `lo..=hi` of capture `cap`, in frame order.
    pub fn frames_between(
        &self,
        cap: i64,
        lo: i64,
        hi: i64,
        visit: &mut dyn FnMut(Frame),
    ) -> Result<(), QueryError> {
        let mut n = lo;
        while n <= hi {
            let cached = self.cache.borrow().holding(cap, n).cloned();
            let k = match cached {
                Some(k) => k,
                None => {
                    // A window of chunks at a time, fewer than the cache holds (so that none is dropped before
                    // it is read), and ending before the next chunk already cached (not fetched again).
                    let mut to = hi.min(n.saturating_add(64 * CHUNK));
                    if let Some(next) =
                        self.cache
                            .borrow()
                            .next_cached(cap, n.saturating_add(1), to)
                    {
                        to = next - 1;
                    }
                    self.fetch(cap, n, to)?;
                    match self.cache.borrow().holding(cap, n) {
                        Some(k) => k.clone(),
                        // No chunk holds frame n: a gap, which traceflow never writes; readers check the frames
                        // they get against the flow's packet count. Go on at the next chunk.
                        None => match self.next_chunk(cap, n, hi)? {
                            Some(next) => {
                                n = next;
                                continue;
                            }
                            None => return Ok(()),
                        },
                    }
                }
            };
            let end = k.last().min(hi);
            for i in (n - k.first) as usize..=(end - k.first) as usize {
                visit(k.frame(i));
            }
            match end.checked_add(1) {
                Some(next) => n = next,
                None => break,
            }
        }
        Ok(())
    }

    /// Fetches and caches the chunks of capture `cap` holding frames `lo..=hi` that are not cached yet.
    fn fetch(&self, cap: i64, lo: i64, hi: i64) -> Result<(), QueryError> {
        let rows = self.client.borrow_mut().query(
            "SELECT first_number, last_number, ts_ns, origlen, file_offset, flow_no, conn_no, caplen, iface
             FROM frame_chunks
             WHERE capture_id = $1 AND first_number > $2::BIGINT - $4::BIGINT AND first_number <= $3
             ORDER BY first_number",
            &[&cap, &lo, &hi, &CHUNK],
        )?;
        let mut cache = self.cache.borrow_mut();
        for r in &rows {
            let first: i64 = r.try_get(0)?;
            if cache.chunks.map.contains_key(&(cap, first)) {
                continue;
            }
            let k = Chunk {
                first,
                ts_ns: r.try_get(2)?,
                origlen: r.try_get(3)?,
                file_offset: r.try_get(4)?,
                flow_no: r.try_get(5)?,
                conn_no: r.try_get(6)?,
                caplen: r.try_get(7)?,
                iface: r.try_get(8)?,
            };
            let last: i64 = r.try_get(1)?;
            let n = k.len();
            let whole = [
                k.origlen.len(),
                k.file_offset.len(),
                k.flow_no.len(),
                k.conn_no.len(),
                k.caplen.len(),
                k.iface.len(),
            ]
            .iter()
            .all(|&l| l == n);
            if !whole || n == 0 || n as i64 > CHUNK || last != first + n as i64 - 1 {
                return Err(QueryError::Corrupt(format!(
                    "frame_chunks row of capture {cap} at frame {first} should hold frames {first} to {last}, \
                     its arrays hold {n}"
                )));
            }
            cache.chunks.insert((cap, first), Arc::new(k));
        }
        Ok(())
    }

    /// The first frame number after `n` (and at most `hi`) that a chunk of capture `cap` holds.
    fn next_chunk(&self, cap: i64, n: i64, hi: i64) -> Result<Option<i64>, QueryError> {
        let r = self.client.borrow_mut().query_opt(
            "SELECT first_number FROM frame_chunks WHERE capture_id = $1 AND first_number > $2
               AND first_number <= $3 ORDER BY first_number LIMIT 1",
            &[&cap, &n, &hi],
        )?;
        Ok(match r {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }
}
