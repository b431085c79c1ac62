//! The TCP flow tracer: PyPCAPKit 1.4.1 TraceFlow's state machine over decoded frames.
//!
//! A flow is keyed by the directed (src, sport, dst, dport). The first frame of a key opens a flow; a frame with
//! FIN joins its flow and closes it, so the next frame of that key opens a new flow with a new label. Only open
//! flows are kept, and only the most recently seen of them in memory (the others are parked, see `spill`), so
//! memory is bounded whatever the capture's size.

use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry;

pub mod buckets;
pub mod endpoints;
mod flow;
pub mod spill;
pub mod twoway;

use crate::decode::Tcp;
pub use crate::key::FlowKey;
use crate::key::Timestamp;
pub use flow::FlowRecord;
use flow::OpenFlow;
use spill::Spill;
pub use spill::{SpillError, DEFAULT_PARK_MEMORY};

/// Open flows kept in memory before the least recently seen are parked on disk (`Tracer::with_max_open`):
/// about 8 MiB of flow state, whatever the capture. The table parks when it holds one more than this: 57,344, half
/// of what hashbrown's table of 131,072 slots holds. Parking leaves tombstones, and when they use up the free
/// slots hashbrown rehashes in place if the table is at most half full, else doubles it. With 65,536 it doubled
/// to 262,144 slots (31 MB) in a long scan, which was most of a scan's peak RSS over its memory target.
pub const DEFAULT_MAX_OPEN: usize = 57_343;

/// Traces the TCP flows of one capture: give it the TCP frames in file order (`observe`), which hands over each
/// flow as it closes; `finish` then emits the flows still open.
pub struct Tracer {
    /// FxHash: the keys come from the capture, but a flood of colliding keys only slows one ingest down, and
    /// SipHash was a tenth of the reader thread.
    open: FxHashMap<FlowKey, OpenFlow>,
    created: u32,
    max_open: usize,
    /// Created at the first parking.
    spill: Option<Spill>,
    /// Memory cap of the parked flows' compact table (`None`: `DEFAULT_PARK_MEMORY`, less if memory is short).
    park_memory: Option<usize>,
    /// The first failure of the parking store; `finish` reports it (the index may then be wrong).
    spill_error: Option<SpillError>,
    /// The Community ID seed the records are made with; `None`: no Community ID (the ingest adds it).
    seed: Option<u16>,
    /// Hand parked flows' rows over as they are parked (`with_parked_rows`).
    parked_rows: bool,
    /// Buffers of `park_oldest`, kept between rounds: new ones of 0.5-1 MB each round were mapped and zeroed
    /// by the kernel every time (5% of a scan's reader thread).
    last_frames: Vec<u64>,
    parking: Vec<(FlowKey, OpenFlow)>,
    park_order: Vec<(u32, u32)>,
    /// Text buffers of records the writer is done with (`recycle_texts`), for the next records: a scan makes a
    /// record per flow, and allocating each one's text here and freeing it on the writer's thread cost about 2% of
    /// each thread.
    texts: Vec<String>,
}

/// Most text buffers the tracer keeps for reuse (about 1 MB): a parking round's records.
const MAX_SPARE_TEXTS: usize = 8_192;

impl Default for Tracer {
    fn default() -> Tracer {
        Tracer::with_max_open(DEFAULT_MAX_OPEN)
    }
}

impl Tracer {
    /// A tracer with `DEFAULT_MAX_OPEN`.
    pub fn new() -> Tracer {
        Tracer::default()
    }

    /// A tracer that keeps at most `max_open` open flows in memory (at least 1); when there are more, it parks
    /// the least recently seen (in a compact in-memory table, then in temporary files) and takes a flow back
    /// when its key shows up again.
    pub fn with_max_open(max_open: usize) -> Tracer {
        Tracer {
            open: FxHashMap::default(),
            created: 0,
            max_open: max_open.max(1),
            spill: None,
            spill_error: None,
            seed: None,
            park_memory: None,
            parked_rows: false,
            last_frames: Vec::new(),
            parking: Vec::new(),
            park_order: Vec::new(),
            texts: Vec::new(),
        }
    }

    /// Makes the tracer hand each parked flow's record over as it parks it ([`FlowRecord::provisional`]), to the
    /// same `on_close` as the closed flows, and again ([`FlowRecord::replaces`]) if the flow comes back. Why:
    /// in a scan nearly every flow is parked and never seen again, and building and writing all their rows at
    /// the end left the writer idle half the time while frames were read, then the reader waiting for it
    /// (a SYN scan of 833k flows). For a writer that can replace a row; `finish_with` then hands over only the flows that
    /// changed since they were stored.
    pub fn with_parked_rows(mut self) -> Tracer {
        self.parked_rows = true;
        self
    }

    /// Takes back the text buffers of records the writer is done with ([`FlowRecord::into_text`]), leaving
    /// `texts` empty; it keeps at most a few thousand and drops the others.
    pub fn recycle_texts(&mut self, texts: &mut Vec<String>) {
        let room = MAX_SPARE_TEXTS.saturating_sub(self.texts.len());
        // The drain empties `texts` whatever `take` leaves.
        self.texts.extend(texts.drain(..).take(room));
    }

    /// Caps the memory of the in-memory table of parked flows at `bytes` (0: parked flows all go to the
    /// temporary files). Without it, the cap is `DEFAULT_PARK_MEMORY`, or an eighth of
    /// the available memory if that is less.
    pub fn with_park_memory(mut self, bytes: usize) -> Tracer {
        self.park_memory = Some(bytes);
        self
    }

    /// Makes the flows' records carry their Community ID with this seed (by default they carry none).
    pub fn with_community_id_seed(mut self, seed: u16) -> Tracer {
        self.seed = Some(seed);
        self
    }

    /// Number of flows opened so far.
    pub fn created(&self) -> u32 {
        self.created
    }

    /// Adds one TCP frame and returns the number of the flow it belongs to. A flow this frame closes is handed
    /// to `on_close` (so closed flows come out in closing order).
    pub fn observe(
        &mut self,
        number: u64,
        ts: &Timestamp,
        origlen: u32,
        tcp: &Tcp,
        on_close: &mut impl FnMut(FlowRecord),
    ) -> u32 {
        self.observe_linked(number, ts, origlen, tcp, on_close).0
    }

    /// As `observe`, also returning the number of the flow's previous frame (`None` for its first frame): stored
    /// per frame, these links let a flow's frames be walked without an index on `frames.flow_no`.
    pub fn observe_linked(
        &mut self,
        number: u64,
        ts: &Timestamp,
        origlen: u32,
        tcp: &Tcp,
        on_close: &mut impl FnMut(FlowRecord),
    ) -> (u32, Option<u64>) {
        let key = (tcp.src, tcp.sport, tcp.dst, tcp.dport);
        let ns = ts.as_ns();
        let flow = match self.open.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let parked = match self.spill.as_mut().map(|s| s.take(&key)) {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => {
                        self.spill_error.get_or_insert(e);
                        None
                    }
                    None => None,
                };
                let parked = parked.map(|mut f| {
                    if self.parked_rows {
                        // Its row, stored when it was parked, had everything it has now.
                        f.counted = (f.packets, f.bytes);
                    }
                    f
                });
                v.insert(parked.unwrap_or_else(|| {
                    self.created += 1;
                    OpenFlow {
                        flow_no: self.created,
                        first_ts: *ts,
                        first_frame: number,
                        last_frame: number,
                        packets: 0,
                        bytes: 0,
                        payload_bytes: 0,
                        last_ns: ns,
                        flags: 0,
                        counted: (0, 0),
                    }
                }))
            }
        };
        let prev = (flow.packets > 0).then_some(flow.last_frame);
        flow.packets += 1;
        flow.bytes += u64::from(origlen);
        flow.payload_bytes += u64::from(tcp.payload_len);
        flow.last_frame = number;
        flow.last_ns = ns;
        flow.flags |= tcp.flags;
        let flow_no = flow.flow_no;
        if tcp.fin() {
            if let Some(done) = self.open.remove(&key) {
                on_close(done.record_in(&key, Some(number), self.seed, &mut self.texts));
            }
        } else if self.open.len() > self.max_open {
            self.park_oldest(on_close);
        }
        (flow_no, prev)
    }

    /// Parks about the least recently seen eighth of the open flows. Amortised, this is O(1) per flow opened;
    /// small rounds keep each pause shorter than what the queue to the writer holds.
    ///
    /// Which flows are parked changes only the speed, never the index (a parked flow comes back when its key
    /// does). So the cut, the last frame number of the eighth seen longest ago, is estimated from a sample:
    /// the first `spill::PARK_SAMPLE` flows of the table, whose order is its keys' hashes, not their times. Taking every
    /// flow's last frame cost a pass over the whole table (about 7 MB, far more than the cache) at each round,
    /// a sixth of a scan's reading loop. Each frame belongs to one flow, so the last frame numbers are distinct.
    fn park_oldest(&mut self, on_park: &mut impl FnMut(FlowRecord)) {
        let budget = self.park_memory.unwrap_or_else(spill::default_budget);
        let spill = self.spill.get_or_insert_with(|| Spill::new(budget));
        let len = self.open.len();
        let n = len - self.max_open / 8 * 7;
        let cut = spill::parking_cut(
            &mut self.last_frames,
            self.open.values().map(|f| f.last_frame),
            len,
            n,
        );
        let parked = &mut self.parking;
        parked.clear();
        parked.extend(self.open.extract_if(|_, f| f.last_frame <= cut));
        if self.parked_rows {
            // In creation order, the parked rows' flow_no index entries go in side by side. Their numbers are
            // sorted, not the flows (136 bytes each, moved about: 2.5% of a scan's samples); the parking store
            // takes the flows in any order.
            let order = &mut self.park_order;
            order.clear();
            order.extend((0..).zip(parked.iter()).map(|(i, (_, f))| (f.flow_no, i)));
            order.sort_unstable();
            for &(_, i) in order.iter() {
                let (k, f) = &parked[i as usize];
                let mut r = f.record_in(k, None, self.seed, &mut self.texts);
                r.provisional = true;
                on_park(r);
            }
        }
        if let Err(e) = spill.park(parked) {
            self.spill_error.get_or_insert(e);
            // Keep everything in memory from now on, as before there was parking; the index is already wrong
            // (`finish` fails), but the reader need not fail again at every frame.
            self.max_open = usize::MAX;
        }
    }

    /// Hands the flows still open at the end to `emit`, in creation order (memory and parked ones merged).
    /// Records are built one at a time. Fails if parking failed at any point: the index would not be exact.
    ///
    /// With `with_parked_rows`, a flow still parked had its row handed over when it was parked, with everything
    /// it has now (its endpoints counted then too, [`FlowRecord::counted`]): it is not read back at all. Reading a
    /// scan's parked flows back only to count their endpoints was the last tenth of its reading, with the writer
    /// waiting.
    pub fn finish(mut self, emit: &mut impl FnMut(FlowRecord)) -> Result<(), SpillError> {
        if let Some(e) = self.spill_error.take() {
            return Err(e);
        }
        let seed = self.seed;
        // into_iter, not drain: the table's memory goes back before the records are built and sent.
        let mut rest: Vec<(FlowKey, OpenFlow)> =
            std::mem::take(&mut self.open).into_iter().collect();
        rest.sort_unstable_by_key(|(_, f)| f.flow_no);
        let mut rest = rest.into_iter().peekable();
        let texts = &mut self.texts;
        if let Some(spill) = self.spill.take().filter(|_| !self.parked_rows) {
            spill.drain(&mut |key, flow| {
                while let Some((k, f)) = rest.next_if(|(_, f)| f.flow_no < flow.flow_no) {
                    emit(f.record_in(&k, None, seed, texts));
                }
                emit(flow.record_in(&key, None, seed, texts));
            })?;
        }
        for (k, f) in rest {
            emit(f.record_in(&k, None, seed, texts));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    const TCP_FIN: u16 = 0x001;
    const TCP_SYN: u16 = 0x002;
    const TCP_RST: u16 = 0x004;

    fn seg(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u16) -> Tcp {
        Tcp {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags,
            hdr_len: 20,
            window: Some(0),
            payload_len: 10,
            offset: 34,
        }
    }

    /// Runs frames through the tracer and returns the index tuple: (label, frames) open-then-closed.
    fn index(frames: &[Tcp]) -> Vec<(String, Vec<u64>)> {
        index_with(frames, DEFAULT_MAX_OPEN).0
    }

    type Traced = (Vec<(String, Vec<u64>)>, Vec<FlowRecord>, Vec<Option<u64>>);

    /// As `index`, with at most `max_open` flows in memory; also returns the records (for their counters) and
    /// each frame's link to its flow's previous frame.
    fn index_with(frames: &[Tcp], max_open: usize) -> Traced {
        index_parked(frames, max_open, DEFAULT_PARK_MEMORY)
    }

    /// As `index_with`, with `park_memory` bytes for the parked flows' compact table.
    fn index_parked(frames: &[Tcp], max_open: usize, park_memory: usize) -> Traced {
        let mut t = Tracer::with_max_open(max_open).with_park_memory(park_memory);
        let mut closed = Vec::new();
        let mut member: Vec<(u32, u64)> = Vec::new();
        let mut links = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let n = i as u64 + 1;
            let ts = Timestamp::new(100 + i as i64, 0, 6);
            let (no, prev) = t.observe_linked(n, &ts, 60, f, &mut |r| closed.push(r));
            member.push((no, n));
            links.push(prev);
        }
        let mut open: Vec<FlowRecord> = Vec::new();
        t.finish(&mut |r| open.push(r)).unwrap();
        let index = open
            .iter()
            .chain(closed.iter())
            .map(|r| {
                let idx = member
                    .iter()
                    .filter(|(no, _)| *no == r.flow_no)
                    .map(|(_, n)| *n)
                    .collect();
                (r.label().to_string(), idx)
            })
            .collect();
        open.extend(closed);
        (index, open, links)
    }

    proptest::proptest! {
        /// Parking flows changes nothing: same index, same records (counters, first/last frames), same links
        /// between a flow's frames, and the same rows when parked flows' rows are written as they are parked.
        /// The park budgets: all to disk (0); a compact table that fills up, compacts its dead records and
        /// writes its oldest to runs on disk (6000 bytes: a 4 KiB arena and a small index); all in memory.
        #[test]
        fn parking_open_flows_changes_nothing(
            segs in proptest::collection::vec((0u8..6, 0u8..6, proptest::bool::weighted(0.15)), 1..300),
            max_open in 1usize..6,
            park_memory in proptest::sample::select(vec![0usize, 6000, 1 << 20]),
        ) {
            let frames: Vec<Tcp> = segs
                .iter()
                .map(|&(a, b, fin)| seg([10, 0, 0, a], 1000 + u16::from(b), B, 80, if fin { TCP_FIN } else { 0x10 }))
                .collect();
            let want = index_with(&frames, DEFAULT_MAX_OPEN);
            let got = index_parked(&frames, max_open, park_memory);
            proptest::prop_assert_eq!(&got, &want);
            // With parked flows' rows written as they are parked, the rows at the end are those of a tracer
            // that never parks, and the records count each frame of a flow once (the endpoint tally).
            let mut want_rows = want.1;
            want_rows.sort_by_key(|r| r.flow_no);
            let (got_rows, counted) = stored_rows(&frames, max_open, park_memory);
            let want_counted: std::collections::BTreeMap<u32, (u64, u64)> =
                want_rows.iter().map(|r| (r.flow_no, (r.packets, r.bytes))).collect();
            proptest::prop_assert_eq!(&got_rows, &want_rows);
            proptest::prop_assert_eq!(counted, want_counted);
        }
    }

    /// Traces `frames` with `with_parked_rows` and applies what comes out as the SQLite writer does: a record
    /// that replaces needs an earlier row of its flow, any other needs none. Returns the rows left at the end
    /// (flow_no order, marks cleared) and, per flow, the frames and bytes its records count as new (what the
    /// endpoint tally adds up: `packets - counted`).
    fn stored_rows(
        frames: &[Tcp],
        max_open: usize,
        park_memory: usize,
    ) -> (Vec<FlowRecord>, std::collections::BTreeMap<u32, (u64, u64)>) {
        use std::collections::BTreeMap;
        let mut t = Tracer::with_max_open(max_open)
            .with_park_memory(park_memory)
            .with_parked_rows();
        let mut rows: BTreeMap<u32, FlowRecord> = BTreeMap::new();
        let mut counted: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        let mut apply = |r: FlowRecord, rows: &mut BTreeMap<u32, FlowRecord>| {
            assert_eq!(rows.contains_key(&r.flow_no), r.replaces(), "{r:?}");
            let c = counted.entry(r.flow_no).or_default();
            c.0 += r.packets - r.counted.0;
            c.1 += r.bytes - r.counted.1;
            rows.insert(r.flow_no, r);
        };
        for (i, f) in frames.iter().enumerate() {
            let ts = Timestamp::new(100 + i as i64, 0, 6);
            t.observe_linked(i as u64 + 1, &ts, 60, f, &mut |r| apply(r, &mut rows));
        }
        t.finish(&mut |r| apply(r, &mut rows)).unwrap();
        let rows = rows
            .into_values()
            .map(|mut r| {
                (r.provisional, r.counted) = (false, (0, 0));
                r
            })
            .collect();
        (rows, counted)
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    /// The sampled cut parks about an eighth at each round, and the flows seen longest ago: a scan's new flows
    /// (each frame another key) interleaved with a few flows that keep sending stay in memory.
    #[test]
    fn parking_takes_about_the_oldest_eighth() {
        let max_open = 16_384;
        let mut t = Tracer::with_max_open(max_open);
        let mut rounds = Vec::new();
        for i in 0..100_000u32 {
            let f = if i % 100 == 0 {
                seg(A, (i / 100 % 10) as u16, B, 80, 0x10)
            } else {
                seg(
                    [10, 1, (i >> 16) as u8, (i >> 8) as u8],
                    i as u16,
                    B,
                    80,
                    TCP_SYN,
                )
            };
            let key = (f.src, f.sport, f.dst, f.dport);
            let after_frame = t.open.len() + usize::from(!t.open.contains_key(&key));
            let ts = Timestamp::new(100 + i64::from(i), 0, 6);
            t.observe_linked(u64::from(i) + 1, &ts, 60, &f, &mut |_| {});
            if t.open.len() < after_frame {
                rounds.push(after_frame - t.open.len());
            }
            assert!(t.open.len() <= max_open);
        }
        let eighth = max_open / 8;
        assert!(rounds.len() > 30, "{} rounds", rounds.len());
        for parked in &rounds {
            assert!(
                (eighth / 2..=eighth * 2).contains(parked),
                "parked {parked}, an eighth is {eighth}"
            );
        }
        // The ten keys that send every hundred frames were never parked.
        for p in 0..10 {
            assert!(t
                .open
                .contains_key(&(IpAddr::from(A), p, IpAddr::from(B), 80)));
        }
    }

    #[test]
    fn directions_are_separate_flows() {
        let got = index(&[
            seg(A, 1, B, 2, TCP_SYN),
            seg(B, 2, A, 1, TCP_SYN | 0x10),
            seg(A, 1, B, 2, 0x10),
        ]);
        assert_eq!(
            got,
            vec![
                ("10.0.0.1_1-10.0.0.2_2-100.0".to_string(), vec![1, 3]),
                ("10.0.0.2_2-10.0.0.1_1-101.0".to_string(), vec![2]),
            ]
        );
    }

    #[test]
    fn fin_closes_and_next_frame_opens_a_new_flow() {
        let got = index(&[
            seg(A, 1, B, 2, 0x10),
            seg(A, 1, B, 2, TCP_FIN),
            seg(A, 1, B, 2, 0x10),
            seg(B, 2, A, 1, TCP_FIN),
        ]);
        // Open flows first (creation order), then closed ones in closing order.
        assert_eq!(
            got,
            vec![
                ("10.0.0.1_1-10.0.0.2_2-102.0".to_string(), vec![3]),
                ("10.0.0.1_1-10.0.0.2_2-100.0".to_string(), vec![1, 2]),
                ("10.0.0.2_2-10.0.0.1_1-103.0".to_string(), vec![4]),
            ]
        );
    }

    #[test]
    fn frames_link_to_the_previous_frame_of_their_flow() {
        let mut t = Tracer::new();
        let ts = Timestamp::new(1, 0, 6);
        let mut links = Vec::new();
        let segs = [
            seg(A, 1, B, 2, 0),
            seg(B, 2, A, 1, 0),
            seg(A, 1, B, 2, TCP_FIN),
            seg(A, 1, B, 2, 0),
        ];
        for (i, s) in segs.iter().enumerate() {
            links.push(t.observe_linked(i as u64 + 1, &ts, 60, s, &mut |_| {}));
        }
        // Frame 4 reopens the key after the FIN: a new flow whose chain starts afresh.
        assert_eq!(links, vec![(1, None), (2, None), (1, Some(1)), (3, None)]);
    }

    #[test]
    fn syn_and_rst_change_nothing() {
        let got = index(&[
            seg(A, 1, B, 2, TCP_SYN),
            seg(A, 1, B, 2, TCP_RST),
            seg(A, 1, B, 2, TCP_SYN),
        ]);
        assert_eq!(
            got,
            vec![("10.0.0.1_1-10.0.0.2_2-100.0".to_string(), vec![1, 2, 3])]
        );
    }

    #[test]
    fn closing_order_differs_from_creation_order() {
        let c: [u8; 4] = [10, 0, 0, 3];
        let got = index(&[
            seg(A, 1, B, 2, 0),
            seg(c, 5, B, 2, 0),
            seg(c, 5, B, 2, TCP_FIN),
            seg(A, 1, B, 2, TCP_FIN),
        ]);
        let labels: Vec<_> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            labels,
            vec!["10.0.0.3_5-10.0.0.2_2-101.0", "10.0.0.1_1-10.0.0.2_2-100.0"]
        );
    }
}
