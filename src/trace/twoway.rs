//! The two-way index tuple (`query --bidirectional`): one flow per TCP connection, as PyPCAPKit's merged two-way
//! tracing (its PR #435, in no release yet) gives it, without the stray flow that tracing opens after a close.
//!
//! The rule, frame by frame in file order:
//! - a flow is keyed by the unordered pair of endpoints (address and port); the first frame seen on a pair opens
//!   its flow, and that frame's direction and time make the label, as in the one-way index;
//! - a FIN marks its sender's side finished; the flow closes at the frame that finishes its second side (a FIN
//!   from both endpoints, not the first FIN: closing on the first would cut the peer's FIN out of the flow);
//! - after the close, frames on the pair without SYN (the final ACK, a retransmitted FIN, an RST) still belong to
//!   the closed flow. PR #435 opens a new one-packet flow for that final ACK, which no connection holds; here only
//!   a SYN opens a new flow on a pair whose flow has closed;
//! - the index lists the flows never closed in creation order, then the closed flows in closing order (the frame
//!   of the second FIN), as the one-way index does.

//!
//! Memory stays bounded whatever the capture, as in the tracer: only the most recently seen pairs are kept in
//! memory, the others are parked on disk (`spill::Parked`); each frame's (flow, number) goes to a temporary file,
//! and the index is that file sorted into index order (in sorted chunks on disk, merged), each flow's label
//! read back in the same order: the open flows' from the pairs at the end, the closed flows' from a file written
//! as they close.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::spill::{parking_cut, Parked, SpillError, MAX_TAIL};
use super::{FlowKey, DEFAULT_MAX_OPEN};

/// One TCP frame, as the two-way tracer needs it.
#[derive(Clone, Copy, Debug)]
pub struct TwoWayFrame<'a> {
    /// Frame number, from 1.
    pub number: u64,
    /// The sender's address text (as `flows.src`) and port.
    pub src: (&'a str, u16),
    /// The receiver's address text and port.
    pub dst: (&'a str, u16),
    /// The TCP flags (FIN is bit 0, SYN bit 1).
    pub flags: u16,
}

/// Building the two-way index failed.
#[derive(Debug, thiserror::Error)]
pub enum TwoWayError {
    /// The temporary files failed.
    #[error(transparent)]
    Spill(#[from] SpillError),
    /// A frame's address text is not an address (the database was edited).
    #[error("frame {0}: {1:?} is not an IP address")]
    Address(u64, String),
}

fn io(e: std::io::Error) -> TwoWayError {
    TwoWayError::Spill(SpillError::Io(e, std::env::temp_dir()))
}

/// Frames sorted in memory at a time at the end (16 bytes each).
const SORT_CHUNK: usize = 1 << 21;
/// Bytes of a frame's record in the temporary files: its flow (u32) and number (u64), little-endian.
const FRAME: usize = 12;

/// A pair's current flow.
struct Pair {
    /// The flow's creation number, from 0.
    flow: u32,
    /// The flow's origin (the sender of its first frame) is the key's first endpoint.
    origin_first: bool,
    fin_origin: bool,
    fin_other: bool,
    closed: bool,
    /// The label, while the flow is open (a closed flow's has gone to the closed labels' file).
    label: String,
    last_frame: u64,
}

impl Pair {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(
            u8::from(self.origin_first)
                | u8::from(self.fin_origin) << 1
                | u8::from(self.fin_other) << 2
                | u8::from(self.closed) << 3,
        );
        out.extend_from_slice(self.label.as_bytes());
    }

    fn decode(flow: u32, b: &[u8], last_frame: u64) -> Option<Pair> {
        let (&flags, label) = b.split_first()?;
        Some(Pair {
            flow,
            origin_first: flags & 1 != 0,
            fin_origin: flags & 2 != 0,
            fin_other: flags & 4 != 0,
            closed: flags & 8 != 0,
            label: String::from_utf8(label.to_vec()).ok()?,
            last_frame,
        })
    }
}

/// The temporary files, made at the first frame.
struct Files {
    /// (flow, number) of every frame, in frame order.
    frames: BufWriter<File>,
    /// The closed flows' labels, in closing order (u16 length, then the bytes).
    closed_labels: BufWriter<File>,
}

fn tempfile() -> Result<File, TwoWayError> {
    tempfile::tempfile_in(std::env::temp_dir()).map_err(io)
}

fn put_label(w: &mut impl Write, label: &str) -> Result<(), TwoWayError> {
    let n = u16::try_from(label.len()).map_err(|_| TwoWayError::Spill(SpillError::Corrupt))?;
    w.write_all(&n.to_le_bytes()).map_err(io)?;
    w.write_all(label.as_bytes()).map_err(io)
}

fn get_label(r: &mut impl Read) -> Result<String, TwoWayError> {
    let mut n = [0u8; 2];
    r.read_exact(&mut n).map_err(io)?;
    let mut b = vec![0u8; usize::from(u16::from_le_bytes(n))];
    r.read_exact(&mut b).map_err(io)?;
    String::from_utf8(b).map_err(|_| TwoWayError::Spill(SpillError::Corrupt))
}

/// Builds the two-way index of one capture from its TCP frames, given in frame order.
pub struct TwoWay {
    pairs: FxHashMap<FlowKey, Pair>,
    max_open: usize,
    park_at: usize,
    parked: Option<Parked>,
    files: Option<Files>,
    /// Per flow (creation order): 0 while open, else its place in closing order from 1.
    close_of: Vec<u32>,
    closes: u32,
    last_frames: Vec<u64>,
    tails: Vec<u8>,
    /// Frames sorted in memory at a time (`SORT_CHUNK`; the tests make it small).
    sort_chunk: usize,
}

impl Default for TwoWay {
    fn default() -> TwoWay {
        TwoWay::with_max_open(DEFAULT_MAX_OPEN)
    }
}

impl TwoWay {
    /// A builder that keeps at most `max_open` pairs in memory (at least 1), parking the others.
    pub fn with_max_open(max_open: usize) -> TwoWay {
        TwoWay {
            pairs: FxHashMap::default(),
            max_open: max_open.max(1),
            park_at: max_open.max(1),
            parked: None,
            files: None,
            close_of: Vec::new(),
            closes: 0,
            last_frames: Vec::new(),
            tails: Vec::new(),
            sort_chunk: SORT_CHUNK,
        }
    }

    /// Adds the next frame; `label` makes the label of a flow this frame opens (called only then).
    pub fn add(
        &mut self,
        f: &TwoWayFrame,
        label: impl FnOnce() -> String,
    ) -> Result<(), TwoWayError> {
        let addr = |a: &str| {
            a.parse::<IpAddr>()
                .map_err(|_| TwoWayError::Address(f.number, a.to_string()))
        };
        let (src, dst) = ((addr(f.src.0)?, f.src.1), (addr(f.dst.0)?, f.dst.1));
        let a_first = src <= dst;
        let (a, b) = if a_first { (src, dst) } else { (dst, src) };
        let key = (a.0, a.1, b.0, b.1);
        let syn = f.flags & 0x002 != 0;
        let fin = f.flags & 0x001 != 0;
        let mut pair = match self.pairs.remove(&key) {
            Some(p) => Some(p),
            None => match self.parked.as_mut() {
                Some(parked) => match parked.take(&key)? {
                    Some((flow, tail)) => {
                        Some(Pair::decode(flow, &tail, f.number).ok_or(SpillError::Corrupt)?)
                    }
                    None => None,
                },
                None => None,
            },
        };
        if pair.as_ref().is_none_or(|p| p.closed && syn) {
            let flow = u32::try_from(self.close_of.len()).map_err(|_| SpillError::Corrupt)?;
            self.close_of.push(0);
            pair = Some(Pair {
                flow,
                origin_first: a_first,
                fin_origin: false,
                fin_other: false,
                closed: false,
                label: label(),
                last_frame: f.number,
            });
        }
        let mut pair = pair.expect("a pair");
        if self.files.is_none() {
            self.files = Some(Files {
                frames: BufWriter::with_capacity(1 << 16, tempfile()?),
                closed_labels: BufWriter::with_capacity(1 << 16, tempfile()?),
            });
        }
        let files = self.files.as_mut().expect("files");
        files
            .frames
            .write_all(&pair.flow.to_le_bytes())
            .map_err(io)?;
        files
            .frames
            .write_all(&f.number.to_le_bytes())
            .map_err(io)?;
        pair.last_frame = f.number;
        if fin {
            if a_first == pair.origin_first {
                pair.fin_origin = true;
            } else {
                pair.fin_other = true;
            }
            if pair.fin_origin && pair.fin_other && !pair.closed {
                pair.closed = true;
                self.closes += 1;
                self.close_of[pair.flow as usize] = self.closes;
                put_label(&mut files.closed_labels, &std::mem::take(&mut pair.label))?;
            }
        }
        if self.pairs.len() >= self.park_at {
            self.park_oldest()?;
        }
        self.pairs.insert(key, pair);
        Ok(())
    }

    /// Parks about the least recently seen eighth of the pairs in memory (the cut estimated from a sample, as
    /// in `Tracer::park_oldest`).
    fn park_oldest(&mut self) -> Result<(), TwoWayError> {
        let len = self.pairs.len();
        let n = len - self.max_open / 8 * 7;
        let cut = parking_cut(
            &mut self.last_frames,
            self.pairs.values().map(|p| p.last_frame),
            len,
            n,
        );
        let tails = &mut self.tails;
        tails.clear();
        let mut out: Vec<(u32, FlowKey, usize, usize)> = Vec::new();
        self.pairs.retain(|k, p| {
            if p.last_frame > cut {
                return true;
            }
            let start = tails.len();
            p.encode(tails);
            if tails.len() - start > MAX_TAIL {
                tails.truncate(start);
                return true;
            }
            out.push((p.flow, *k, start, tails.len()));
            false
        });
        out.sort_unstable_by_key(|r| r.0);
        self.park_at = self.max_open.max(self.pairs.len() + self.max_open / 8 + 1);
        let tails = &self.tails;
        self.parked
            .get_or_insert_with(Parked::default)
            .park(out.iter().map(|(no, k, a, b)| (*no, k, &tails[*a..*b])))?;
        Ok(())
    }

    /// Hands `each` the index, (label, frame numbers) per flow: open flows in creation order, then closed flows
    /// in closing order.
    pub fn finish<E: From<TwoWayError>>(
        self,
        each: &mut dyn FnMut(String, Vec<u64>) -> Result<(), E>,
    ) -> Result<(), E> {
        let TwoWay {
            pairs,
            parked,
            files,
            mut close_of,
            sort_chunk,
            ..
        } = self;
        let Some(files) = files else {
            return Ok(());
        };
        // The open flows' labels, in creation order: the pairs in memory and the parked ones merged.
        let mut open_labels = BufWriter::with_capacity(1 << 16, tempfile()?);
        {
            let mut rest: Vec<Pair> = pairs.into_values().filter(|p| !p.closed).collect();
            rest.sort_unstable_by_key(|p| p.flow);
            let mut rest = rest.into_iter().peekable();
            if let Some(parked) = parked {
                let mut failed = None;
                parked
                    .drain(&mut |flow, _, tail| {
                        let p = Pair::decode(flow, tail, 0).ok_or(SpillError::Corrupt)?;
                        let mut put = |label: &str| {
                            if failed.is_none() {
                                failed = put_label(&mut open_labels, label).err();
                            }
                        };
                        while let Some(q) = rest.next_if(|q| q.flow < flow) {
                            put(&q.label);
                        }
                        if !p.closed {
                            put(&p.label);
                        }
                        Ok(())
                    })
                    .map_err(TwoWayError::from)?;
                if let Some(e) = failed {
                    return Err(e.into());
                }
            }
            for q in rest {
                put_label(&mut open_labels, &q.label)?;
            }
        }
        // Index order: flow -> its place.
        let n_open = close_of.iter().filter(|&&c| c == 0).count() as u32;
        let mut next_open = 0;
        for c in close_of.iter_mut() {
            *c = if *c == 0 {
                next_open += 1;
                next_open - 1
            } else {
                n_open + *c - 1
            };
        }
        let rank = close_of;
        let reader = |w: BufWriter<File>| -> Result<BufReader<File>, TwoWayError> {
            let mut f = w.into_inner().map_err(|e| io(e.into_error()))?;
            f.rewind().map_err(io)?;
            Ok(BufReader::with_capacity(1 << 16, f))
        };
        let mut frames = reader(files.frames)?;
        let mut closed_labels = reader(files.closed_labels)?;
        let mut open_labels = reader(open_labels)?;
        // The frames sorted by (place, number): sorted chunks, then merged.
        let mut chunks: Vec<BufReader<File>> = Vec::new();
        let mut chunk: Vec<(u32, u64)> = Vec::new();
        let mut last_chunk = None;
        loop {
            chunk.clear();
            let mut rec = [0u8; FRAME];
            while chunk.len() < sort_chunk {
                match frames.read_exact(&mut rec) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io(e).into()),
                }
                let flow = u32::from_le_bytes(rec[..4].try_into().expect("4 bytes"));
                let number = u64::from_le_bytes(rec[4..].try_into().expect("8 bytes"));
                let place = *rank
                    .get(flow as usize)
                    .ok_or(TwoWayError::Spill(SpillError::Corrupt))?;
                chunk.push((place, number));
            }
            let full = chunk.len() == sort_chunk;
            chunk.sort_unstable();
            if chunks.is_empty() && !full {
                // Everything fits one chunk: no file.
                last_chunk = Some(std::mem::take(&mut chunk));
                break;
            }
            let mut w = BufWriter::with_capacity(1 << 16, tempfile()?);
            for &(place, number) in &chunk {
                w.write_all(&place.to_le_bytes()).map_err(io)?;
                w.write_all(&number.to_le_bytes()).map_err(io)?;
            }
            chunks.push(reader(w)?);
            if !full {
                break;
            }
        }
        drop(frames);
        drop(rank);
        let mut sorted = Merged::new(chunks, last_chunk.unwrap_or_default().into_iter())?;
        let mut current: Option<(u32, Vec<u64>)> = None;
        let mut emit = |place: u32, numbers: Vec<u64>| -> Result<(), E> {
            let label = if place < n_open {
                get_label(&mut open_labels)?
            } else {
                get_label(&mut closed_labels)?
            };
            each(label, numbers)
        };
        while let Some((place, number)) = sorted.next()? {
            match &mut current {
                Some((p, numbers)) if *p == place => numbers.push(number),
                _ => {
                    if let Some((p, numbers)) = current.take() {
                        emit(p, numbers)?;
                    }
                    current = Some((place, vec![number]));
                }
            }
        }
        if let Some((p, numbers)) = current {
            emit(p, numbers)?;
        }
        Ok(())
    }

    /// The index as a vector (for small captures and the tests).
    pub fn index(self) -> Result<Vec<(String, Vec<u64>)>, TwoWayError> {
        let mut out = Vec::new();
        self.finish(&mut |label, numbers| {
            out.push((label, numbers));
            Ok::<(), TwoWayError>(())
        })?;
        Ok(out)
    }
}

/// The sorted chunks on disk and the last one in memory, merged.
struct Merged {
    files: Vec<BufReader<File>>,
    heap: BinaryHeap<Reverse<((u32, u64), usize)>>,
    memory: std::iter::Peekable<std::vec::IntoIter<(u32, u64)>>,
}

impl Merged {
    fn new(
        files: Vec<BufReader<File>>,
        memory: std::vec::IntoIter<(u32, u64)>,
    ) -> Result<Merged, TwoWayError> {
        let mut m = Merged {
            files,
            heap: BinaryHeap::new(),
            memory: memory.peekable(),
        };
        for i in 0..m.files.len() {
            m.refill(i)?;
        }
        Ok(m)
    }

    fn refill(&mut self, i: usize) -> Result<(), TwoWayError> {
        let mut rec = [0u8; FRAME];
        match self.files[i].read_exact(&mut rec) {
            Ok(()) => {
                let place = u32::from_le_bytes(rec[..4].try_into().expect("4 bytes"));
                let number = u64::from_le_bytes(rec[4..].try_into().expect("8 bytes"));
                self.heap.push(Reverse(((place, number), i)));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    fn next(&mut self) -> Result<Option<(u32, u64)>, TwoWayError> {
        let from_file = self.heap.peek().map(|Reverse((r, _))| *r);
        match (from_file, self.memory.peek()) {
            (None, None) => Ok(None),
            (Some(f), Some(m)) if *m < f => Ok(self.memory.next()),
            (None, Some(_)) => Ok(self.memory.next()),
            _ => {
                let Reverse((r, i)) = self.heap.pop().expect("a record");
                self.refill(i)?;
                Ok(Some(r))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(frames: &[(&str, u16, &str, u16, u16)]) -> Vec<(String, Vec<u64>)> {
        let mut t = TwoWay::default();
        for (i, &(s, sp, d, dp, flags)) in frames.iter().enumerate() {
            let f = TwoWayFrame {
                number: i as u64 + 1,
                src: (s, sp),
                dst: (d, dp),
                flags,
            };
            t.add(&f, || format!("{s}_{sp}-{d}_{dp}-{}", i + 1))
                .unwrap();
        }
        t.index().unwrap()
    }

    /// The rule as first written, everything in memory: the oracle of the bounded builder.
    fn brute_force(frames: &[(&str, u16, &str, u16, u16)]) -> Vec<(String, Vec<u64>)> {
        type End = (String, u16);
        struct F {
            label: String,
            origin: End,
            frames: Vec<u64>,
            fins: (bool, bool),
            closed_at: Option<u64>,
        }
        let mut flows: Vec<F> = Vec::new();
        let mut by_pair: std::collections::HashMap<(End, End), usize> = Default::default();
        for (i, &(s, sp, d, dp, flags)) in frames.iter().enumerate() {
            let n = i as u64 + 1;
            let (src, dst) = ((s.to_string(), sp), (d.to_string(), dp));
            let pair = if src <= dst {
                (src.clone(), dst)
            } else {
                (dst, src.clone())
            };
            let at = match by_pair.get(&pair) {
                Some(&i) if !(flows[i].closed_at.is_some() && flags & SYN != 0) => i,
                _ => {
                    flows.push(F {
                        label: format!("{s}_{sp}-{d}_{dp}-{n}"),
                        origin: src.clone(),
                        frames: Vec::new(),
                        fins: (false, false),
                        closed_at: None,
                    });
                    by_pair.insert(pair, flows.len() - 1);
                    flows.len() - 1
                }
            };
            let f = &mut flows[at];
            f.frames.push(n);
            if flags & FIN != 0 {
                if f.origin == src {
                    f.fins.0 = true;
                } else {
                    f.fins.1 = true;
                }
                if f.fins == (true, true) && f.closed_at.is_none() {
                    f.closed_at = Some(n);
                }
            }
        }
        let (mut closed, open): (Vec<F>, Vec<F>) =
            flows.into_iter().partition(|f| f.closed_at.is_some());
        closed.sort_by_key(|f| f.closed_at);
        open.into_iter()
            .chain(closed)
            .map(|f| (f.label, f.frames))
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// With one pair in memory and sorting chunks of a few frames (so nearly every pair is parked and taken
        /// back, and the frames are merged from many sorted files), the index is the in-memory rule's.
        #[test]
        fn parked_and_sorted_on_disk_it_is_the_in_memory_index(
            frames in proptest::collection::vec(
                (0usize..4, 0u16..3, 0usize..4, 0u16..3,
                 proptest::sample::select(vec![SYN, SYN | ACK, ACK, FIN | ACK, FIN, 0x004])),
                0..200,
            ),
            max_open in 1usize..5,
            sort_chunk in 1usize..9,
        ) {
            const HOSTS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "::1", "2001:db8::2"];
            let frames: Vec<_> = frames
                .into_iter()
                .map(|(s, sp, d, dp, fl)| (HOSTS[s], 1000 + sp, HOSTS[d], 80 + dp, fl))
                .collect();
            let mut t = TwoWay::with_max_open(max_open);
            t.sort_chunk = sort_chunk;
            for (i, &(s, sp, d, dp, flags)) in frames.iter().enumerate() {
                let f = TwoWayFrame { number: i as u64 + 1, src: (s, sp), dst: (d, dp), flags };
                t.add(&f, || format!("{s}_{sp}-{d}_{dp}-{}", i + 1)).unwrap();
            }
            proptest::prop_assert_eq!(t.index().unwrap(), brute_force(&frames));
        }
    }

    const SYN: u16 = 0x002;
    const ACK: u16 = 0x010;
    const FIN: u16 = 0x001;

    #[test]
    fn the_final_ack_stays_in_its_connection_and_a_new_syn_opens_the_next() {
        let (a, b) = ("10.0.0.1", "10.0.0.2");
        let idx = run(&[
            (a, 1000, b, 80, SYN),
            (b, 80, a, 1000, SYN | ACK),
            (a, 1000, b, 80, ACK),
            (a, 1000, b, 80, FIN | ACK),
            (b, 80, a, 1000, ACK),
            (b, 80, a, 1000, FIN | ACK),
            (a, 1000, b, 80, ACK), // PR #435 opens a stray flow here
            (a, 1000, b, 80, SYN), // the port pair reused: a new connection
            (b, 80, a, 1000, SYN | ACK),
            (a, 9, b, 9, ACK), // another pair, never closed
        ]);
        assert_eq!(
            idx,
            vec![
                ("10.0.0.1_1000-10.0.0.2_80-8".to_string(), vec![8, 9]),
                ("10.0.0.1_9-10.0.0.2_9-10".to_string(), vec![10]),
                (
                    "10.0.0.1_1000-10.0.0.2_80-1".to_string(),
                    vec![1, 2, 3, 4, 5, 6, 7]
                ),
            ]
        );
    }

    #[test]
    fn one_side_finishing_twice_does_not_close() {
        let (a, b) = ("10.0.0.1", "10.0.0.2");
        let idx = run(&[(a, 1, b, 2, FIN), (a, 1, b, 2, FIN), (b, 2, a, 1, ACK)]);
        assert_eq!(
            idx,
            vec![("10.0.0.1_1-10.0.0.2_2-1".to_string(), vec![1, 2, 3])]
        );
    }
}
