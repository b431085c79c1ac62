//! The connection tracker: tshark's `tcp.stream` partition of a capture's TCP frames, and what is counted per
//! connection while the frames go by (on the reader thread, beside the flow tracer).
//!
//! # Which frames make one connection (Wireshark 4.0, `epan/dissectors/packet-tcp.c`)
//! - A conversation is keyed by both endpoints, in either direction: (address, port) and (address, port).
//! - The first frame of a key starts a conversation, and so a new stream number.
//! - Each direction has a base sequence number, set by `tcp_analyze_sequence_number` from the first frame in
//!   that direction: its sequence number if it has SYN, else one less. A frame with ACK also sets the other
//!   direction's base, to its acknowledgment number less one, if that direction has none yet.
//! - A SYN without ACK whose sequence number differs from its direction's base, once that base is set, starts a
//!   new conversation with the same key ("port numbers reused"); every later frame of the key belongs to it.
//!   A SYN with the base's sequence number is a retransmission and stays. A SYN+ACK never starts one (tshark
//!   looks the conversation up again with the addresses swapped, which finds the same one).
//! - FIN and RST end nothing: after them, frames of the key still join the conversation until such a SYN.
//!
//! A connection's record is emitted when a new conversation replaces it, or at the end of the capture: unlike
//! flows, a connection is never closed by a frame. So, as the tracer does with open flows, only the most
//! recently seen connections are kept in memory (about 300 bytes each); the others are parked on disk
//! (`trace::spill::Parked`, about 50 bytes each for a scan's) and come back when their key does.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::seqspace::{self, SeqSpace};
use super::zeek::{self, Endpoint, History};
use crate::decode::numbers::{TCP_ACK, TCP_SYN};
use crate::key::community_id;
use crate::key::label::addr_text;
use crate::trace::spill::{
    get_varint, parking_cut, put_varint, unzigzag, zigzag, Parked, SpillError, MAX_TAIL,
};
use crate::trace::DEFAULT_MAX_OPEN;

/// What the tracker needs of one TCP frame.
#[derive(Clone, Copy, Debug)]
pub struct ConnSeg {
    /// Frame number, from 1.
    pub number: u64,
    /// Frame time, ns since the epoch.
    pub ts_ns: i64,
    /// Frame length on the wire.
    pub origlen: u32,
    /// Source address and port (of the IP header directly above TCP).
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// TCP flags, 9 bits.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// TCP segment length.
    pub payload_len: u32,
    /// The directed flow (`flows.flow_no`) the frame belongs to.
    pub flow_no: u32,
    /// The IP packet's total length ([`super::frame::ip_len`]); `None` when not known (connections built from
    /// frame rows only).
    pub ip_len: Option<u32>,
    /// The TCP header was not captured whole ([`super::frame::header_truncated`]): the frame is in the
    /// partition but counts in none of Zeek's fields.
    pub truncated: bool,
}

/// Everything stored about one connection (a `connections` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRecord {
    /// Creation order within the capture, from 1; the partition is tshark's `tcp.stream` (which counts from 0
    /// across the capture in the same order).
    pub conn_no: u32,
    /// Community ID v1 of the key.
    pub community_id: String,
    /// The originator's address: Zeek's, the sender of the first frame unless a rule flipped the roles (see
    /// [`super::zeek::flip_at_creation`] and [`super::zeek::step`]).
    pub orig_h: String,
    /// The originator's port.
    pub orig_p: u16,
    /// The responder's address.
    pub resp_h: String,
    /// The responder's port.
    pub resp_p: u16,
    /// Number of the first frame.
    pub first_frame: u64,
    /// Number of the last frame.
    pub last_frame: u64,
    /// Time of the first frame, ns since the epoch.
    pub first_ns: i64,
    /// Time of the last frame, ns since the epoch.
    pub last_ns: i64,
    /// Frames from the originator (Zeek's orig_pkts: frames with a truncated TCP header do not count).
    pub orig_pkts: u64,
    /// Their wire (frame) lengths, summed.
    pub orig_frame_bytes: u64,
    /// Zeek's orig_bytes: the sequence space the originator used ([`super::seqspace`]).
    pub orig_bytes: u64,
    /// Their TCP payload lengths, summed (every retransmission again).
    pub orig_payload_bytes: u64,
    /// Zeek's orig_ip_bytes: their IP total lengths, summed; `None` when not known.
    pub orig_ip_bytes: Option<u64>,
    /// Frames from the responder.
    pub resp_pkts: u64,
    /// Their wire (frame) lengths, summed.
    pub resp_frame_bytes: u64,
    /// Zeek's resp_bytes.
    pub resp_bytes: u64,
    /// Their TCP payload lengths, summed.
    pub resp_payload_bytes: u64,
    /// Zeek's resp_ip_bytes.
    pub resp_ip_bytes: Option<u64>,
    /// Zeek's conn_state (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH).
    pub conn_state: &'static str,
    /// Zeek's history letters, upper case for the originator.
    pub history: String,
    /// The directed flows (`flows.flow_no`) holding its frames, comma-separated in order of first frame.
    pub flows: String,
}

/// The canonical key: the smaller (address, port) first, so both directions find the same conversation.
type ConnKey = (IpAddr, u16, IpAddr, u16);

/// Per-direction state and counters; index 0 is the key's first endpoint as the sender.
struct Side {
    /// tshark's base sequence number of this direction, once set.
    base_seq: Option<u32>,
    pkts: u64,
    frame_bytes: u64,
    payload: u64,
    /// `None` once a frame's IP length was not known.
    ip_bytes: Option<u64>,
    endpoint: Endpoint,
    seq: SeqSpace,
}

impl Default for Side {
    fn default() -> Side {
        Side {
            base_seq: None,
            pkts: 0,
            frame_bytes: 0,
            payload: 0,
            ip_bytes: Some(0),
            endpoint: Endpoint::default(),
            seq: SeqSpace::default(),
        }
    }
}

struct Open {
    conn_no: u32,
    /// Community ID v1 of the key, made once when the conversation starts.
    community_id: String,
    /// Whether the key's first endpoint is the originator now (Zeek's roles, which may flip).
    orig_a: bool,
    /// No frame was counted yet (all so far had truncated headers): the roles are decided at the first one.
    fresh: bool,
    first_frame: u64,
    last_frame: u64,
    first_ns: i64,
    last_ns: i64,
    sides: [Side; 2],
    history: History,
    flows: Vec<u32>,
}

/// Tracks the connections of one capture: give it every TCP frame in file order.
pub struct Connections {
    open: FxHashMap<ConnKey, Open>,
    created: u32,
    seed: u16,
    max_open: usize,
    /// Connections in memory at which the next parking round starts: `max_open`, or more when the last round
    /// left more than that (connections too big to park).
    park_at: usize,
    /// Created at the first parking.
    parked: Option<Parked>,
    /// The first failure of the parking store; `finish` reports it.
    error: Option<SpillError>,
    /// Buffers of `park_oldest`, kept between rounds.
    last_frames: Vec<u64>,
    tails: Vec<u8>,
}

impl Connections {
    /// A tracker whose Community IDs use `seed`, keeping as many connections in memory as the tracer keeps flows.
    pub fn new(seed: u16) -> Connections {
        Connections::with_max_open(seed, DEFAULT_MAX_OPEN)
    }

    /// A tracker that keeps at most `max_open` connections in memory (at least 1); when there are more, it parks
    /// the least recently seen eighth on disk.
    pub fn with_max_open(seed: u16, max_open: usize) -> Connections {
        Connections {
            open: FxHashMap::default(),
            created: 0,
            seed,
            max_open: max_open.max(1),
            park_at: max_open.max(1),
            parked: None,
            error: None,
            last_frames: Vec::new(),
            tails: Vec::new(),
        }
    }

    /// The parked connection of `key`, taken back.
    fn unpark(&mut self, key: &ConnKey) -> Option<Open> {
        let parked = self.parked.as_mut()?;
        match parked.take(key) {
            Ok(Some((no, tail))) => match Open::decode(no, self.seed, key, &tail) {
                Some(c) => Some(c),
                None => {
                    self.error.get_or_insert(SpillError::Corrupt);
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Parks about the least recently seen eighth of the connections in memory (see `Tracer::park_oldest`: the
    /// cut is estimated from a sample). A connection whose record outgrew a parked record's room (a long history
    /// or many flows, so many frames) stays in memory.
    fn park_oldest(&mut self) {
        let len = self.open.len();
        let n = len - self.max_open / 8 * 7;
        let cut = parking_cut(
            &mut self.last_frames,
            self.open.values().map(|c| c.last_frame),
            len,
            n,
        );
        let tails = &mut self.tails;
        tails.clear();
        let mut out: Vec<(u32, ConnKey, usize, usize)> = Vec::new();
        self.open.retain(|k, c| {
            if c.last_frame > cut {
                return true;
            }
            let start = tails.len();
            c.encode(tails);
            if tails.len() - start > MAX_TAIL {
                tails.truncate(start);
                return true;
            }
            out.push((c.conn_no, *k, start, tails.len()));
            false
        });
        out.sort_unstable_by_key(|r| r.0);
        self.park_at = self.max_open.max(self.open.len() + self.max_open / 8 + 1);
        let parked = self.parked.get_or_insert_with(Parked::default);
        let tails = &self.tails;
        if let Err(e) = parked.park(out.iter().map(|(no, k, a, b)| (*no, k, &tails[*a..*b]))) {
            self.error.get_or_insert(e);
            // The parked connections are lost: `finish` fails. Keep the rest in memory, as before parking.
            self.park_at = usize::MAX;
        }
    }

    /// Adds one TCP frame and returns its connection's number. A connection the frame replaces (a reused key)
    /// is handed to `on_done`.
    pub fn observe(&mut self, s: &ConnSeg, on_done: &mut impl FnMut(ConnRecord)) -> u32 {
        let a_first = (s.src, s.sport) <= (s.dst, s.dport);
        let key = if a_first {
            (s.src, s.sport, s.dst, s.dport)
        } else {
            (s.dst, s.dport, s.src, s.sport)
        };
        let (fwd, rev) = if a_first { (0, 1) } else { (1, 0) };
        let pure_syn = s.flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        if !self.open.contains_key(&key) {
            if let Some(c) = self.unpark(&key) {
                self.open.insert(key, c);
            } else if self.open.len() >= self.park_at {
                // Room for the new connection; the ones parked never include this key.
                self.park_oldest();
            }
        }
        let reused = pure_syn
            && self
                .open
                .get(&key)
                .and_then(|c| c.sides[fwd].base_seq)
                .is_some_and(|base| base != s.seq);
        if reused {
            if let Some(old) = self.open.remove(&key) {
                on_done(old.into_record(&key));
            }
        }
        let (created, seed) = (&mut self.created, self.seed);
        let c = self.open.entry(key).or_insert_with(|| {
            *created += 1;
            Open {
                conn_no: *created,
                community_id: community_id(seed, key.0, key.1, key.2, key.3),
                orig_a: a_first,
                fresh: true,
                first_frame: s.number,
                last_frame: s.number,
                first_ns: s.ts_ns,
                last_ns: s.ts_ns,
                sides: [Side::default(), Side::default()],
                history: History::default(),
                flows: Vec::new(),
            }
        });
        // tcp_analyze_sequence_number: the bases, from this frame, for the frames after it.
        if c.sides[fwd].base_seq.is_none() {
            c.sides[fwd].base_seq = Some(if s.flags & TCP_SYN != 0 {
                s.seq
            } else {
                s.seq.wrapping_sub(1)
            });
        }
        if c.sides[rev].base_seq.is_none() && s.flags & TCP_ACK != 0 {
            c.sides[rev].base_seq = Some(s.ack.wrapping_sub(1));
        }
        c.last_frame = s.number;
        c.last_ns = s.ts_ns;
        if !s.truncated {
            c.count(fwd == 0, s);
        }
        if c.flows.last() != Some(&s.flow_no) && !c.flows.contains(&s.flow_no) {
            c.flows.push(s.flow_no);
        }
        c.conn_no
    }

    /// The Community ID of a flow's key: the one its connection was given, so that a connection's flows cost no
    /// hashing of their own (the ID depends on the key and the seed only).
    pub fn community_id(&self, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> String {
        let key = if (src, sport) <= (dst, dport) {
            (src, sport, dst, dport)
        } else {
            (dst, dport, src, sport)
        };
        match self.open.get(&key) {
            Some(c) => c.community_id.clone(),
            None => community_id(self.seed, src, sport, dst, dport),
        }
    }

    /// Hands the connections not yet done to `emit`, in creation order (memory and parked ones merged). Fails
    /// if parking failed at any point: connections would be missing.
    pub fn finish(mut self, emit: &mut impl FnMut(ConnRecord)) -> Result<(), SpillError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut rest: Vec<(ConnKey, Open)> = self.open.drain().collect();
        rest.sort_unstable_by_key(|(_, c)| c.conn_no);
        let mut rest = rest.into_iter().peekable();
        if let Some(parked) = self.parked.take() {
            let seed = self.seed;
            parked.drain(&mut |no, key, tail| {
                while let Some((k, c)) = rest.next_if(|(_, c)| c.conn_no < no) {
                    emit(c.into_record(&k));
                }
                let c = Open::decode(no, seed, &key, tail).ok_or(SpillError::Corrupt)?;
                emit(c.into_record(&key));
                Ok(())
            })?;
        }
        for (k, c) in rest {
            emit(c.into_record(&k));
        }
        Ok(())
    }
}

impl Open {
    /// Zeek's part of one frame from the key's first endpoint (`a`) or the other: the roles, the sequence
    /// spaces, the history and the states, in the order `TCPSessionAdapter::Process` moves them.
    fn count(&mut self, a: bool, s: &ConnSeg) {
        if self.fresh {
            self.fresh = false;
            self.orig_a = a;
            if zeek::flip_at_creation(s.flags, s.sport, s.dport) {
                self.orig_a = !a;
                self.history.flip();
            }
        }
        let is_orig = a == self.orig_a;
        let [s0, s1] = &mut self.sides;
        let (me, peer) = if a { (s0, s1) } else { (s1, s0) };
        me.pkts += 1;
        me.frame_bytes += u64::from(s.origlen);
        me.payload += u64::from(s.payload_len);
        me.ip_bytes = me.ip_bytes.zip(s.ip_len).map(|(sum, n)| sum + u64::from(n));
        seqspace::observe(&mut me.seq, &mut peer.seq, &me.endpoint, &peer.endpoint, s);
        self.history.add(a, is_orig, s.flags, s.seq, s.payload_len);
        if zeek::step(
            &mut me.endpoint,
            &mut peer.endpoint,
            is_orig,
            s.flags,
            s.payload_len,
        ) {
            self.orig_a = !self.orig_a;
            self.history.flip();
        }
    }

    /// The connection as a parked record's tail (its number and key are the record's own; the Community ID is
    /// made again from the key).
    fn encode(&self, out: &mut Vec<u8>) {
        let [s0, s1] = &self.sides;
        let flags = u8::from(self.orig_a)
            | u8::from(self.fresh) << 1
            | u8::from(s0.base_seq.is_some()) << 3
            | u8::from(s1.base_seq.is_some()) << 4
            | u8::from(s0.ip_bytes.is_some()) << 5
            | u8::from(s1.ip_bytes.is_some()) << 6;
        out.push(flags);
        put_varint(out, self.first_frame);
        put_varint(out, self.last_frame.wrapping_sub(self.first_frame));
        put_varint(out, zigzag(self.first_ns));
        put_varint(out, zigzag(self.last_ns.wrapping_sub(self.first_ns)));
        for side in &self.sides {
            if let Some(b) = side.base_seq {
                put_varint(out, u64::from(b));
            }
            put_varint(out, side.pkts);
            put_varint(out, side.frame_bytes);
            put_varint(out, side.payload);
            if let Some(n) = side.ip_bytes {
                put_varint(out, n);
            }
            out.push(side.endpoint.to_byte());
            side.seq.encode(out);
        }
        if self.history.len() + self.flows.len() > MAX_TAIL {
            // Cannot fit: the caller sees the length and keeps it in memory.
            out.resize(out.len() + MAX_TAIL + 1, 0);
            return;
        }
        self.history.encode(out);
        put_varint(out, self.flows.len() as u64);
        let mut prev = 0u32;
        for &f in &self.flows {
            put_varint(out, zigzag(i64::from(f) - i64::from(prev)));
            prev = f;
        }
    }

    /// The inverse of [`Open::encode`], given the record's number and key.
    fn decode(conn_no: u32, seed: u16, key: &ConnKey, b: &[u8]) -> Option<Open> {
        let mut pos = 0;
        let flags = *b.first()?;
        pos += 1;
        let next = |pos: &mut usize| get_varint(b, pos);
        let first_frame = next(&mut pos)?;
        let last_frame = first_frame.wrapping_add(next(&mut pos)?);
        let first_ns = unzigzag(next(&mut pos)?);
        let last_ns = first_ns.wrapping_add(unzigzag(next(&mut pos)?));
        let mut sides = [Side::default(), Side::default()];
        for (i, side) in sides.iter_mut().enumerate() {
            if flags >> (3 + i) & 1 == 1 {
                side.base_seq = Some(u32::try_from(next(&mut pos)?).ok()?);
            }
            side.pkts = next(&mut pos)?;
            side.frame_bytes = next(&mut pos)?;
            side.payload = next(&mut pos)?;
            side.ip_bytes = if flags >> (5 + i) & 1 == 1 {
                Some(next(&mut pos)?)
            } else {
                None
            };
            side.endpoint = Endpoint::from_byte(*b.get(pos)?)?;
            pos += 1;
            side.seq = SeqSpace::decode(b, &mut pos)?;
        }
        let history = History::decode(b, &mut pos)?;
        let n = usize::try_from(next(&mut pos)?).ok()?;
        let mut flows = Vec::with_capacity(n.min(b.len()));
        let mut prev = 0i64;
        for _ in 0..n {
            prev += unzigzag(next(&mut pos)?);
            flows.push(u32::try_from(prev).ok()?);
        }
        (pos == b.len()).then(|| Open {
            conn_no,
            community_id: community_id(seed, key.0, key.1, key.2, key.3),
            orig_a: flags & 1 == 1,
            fresh: flags >> 1 & 1 == 1,
            first_frame,
            last_frame,
            first_ns,
            last_ns,
            sides,
            history,
            flows,
        })
    }

    fn into_record(self, key: &ConnKey) -> ConnRecord {
        let (a, ap, b, bp) = *key;
        let orig_a = self.orig_a;
        let (o, r) = if orig_a { (0, 1) } else { (1, 0) };
        let ((oh, op), (rh, rp)) = if orig_a {
            ((a, ap), (b, bp))
        } else {
            ((b, bp), (a, ap))
        };
        let history = self.history.render();
        let (so, sr) = (&self.sides[o], &self.sides[r]);
        let orig_bytes = so.seq.size(&so.endpoint, &sr.endpoint);
        let resp_bytes = sr.seq.size(&sr.endpoint, &so.endpoint);
        let conn_state = zeek::conn_state(
            &so.endpoint.state,
            &sr.endpoint.state,
            orig_bytes,
            resp_bytes,
            &history,
        );
        ConnRecord {
            conn_no: self.conn_no,
            community_id: self.community_id,
            orig_h: addr_text(&oh),
            orig_p: op,
            resp_h: addr_text(&rh),
            resp_p: rp,
            first_frame: self.first_frame,
            last_frame: self.last_frame,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            orig_pkts: self.sides[o].pkts,
            orig_frame_bytes: self.sides[o].frame_bytes,
            orig_bytes,
            orig_payload_bytes: self.sides[o].payload,
            orig_ip_bytes: self.sides[o].ip_bytes,
            resp_pkts: self.sides[r].pkts,
            resp_frame_bytes: self.sides[r].frame_bytes,
            resp_bytes,
            resp_payload_bytes: self.sides[r].payload,
            resp_ip_bytes: self.sides[r].ip_bytes,
            conn_state,
            history,
            flows: self
                .flows
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}
