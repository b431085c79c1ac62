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
//! A connection's record is emitted when a new conversation replaces it, or at the end of the capture.
//! Every connection of a capture stays in memory until then (about 200 bytes each): unlike flows, a
//! connection is never closed by a frame, so there is no point after which it is safe to park it.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::zeek::{self, Endpoint, History};
use crate::decode::numbers::{TCP_ACK, TCP_SYN};
use crate::key::community_id;
use crate::key::label::addr_text;

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
}

/// Everything stored about one connection (a `connections` row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRecord {
    /// Creation order within the capture, from 1; the partition is tshark's `tcp.stream` (which counts from 0
    /// across the capture in the same order).
    pub conn_no: u32,
    /// Community ID v1 of the key.
    pub community_id: String,
    /// The originator's address (the sender of the first SYN without ACK, else of the first frame).
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
    /// Frames from the originator.
    pub orig_pkts: u64,
    /// Their wire (frame) lengths, summed.
    pub orig_frame_bytes: u64,
    /// Their TCP payload bytes, summed.
    pub orig_bytes: u64,
    /// Frames from the responder.
    pub resp_pkts: u64,
    /// Their wire (frame) lengths, summed.
    pub resp_frame_bytes: u64,
    /// Their TCP payload bytes, summed.
    pub resp_bytes: u64,
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
#[derive(Default)]
struct Side {
    /// tshark's base sequence number of this direction, once set.
    base_seq: Option<u32>,
    pkts: u64,
    frame_bytes: u64,
    payload: u64,
    endpoint: Endpoint,
}

struct Open {
    conn_no: u32,
    /// Community ID v1 of the key, made once when the conversation starts.
    community_id: String,
    /// Whether the key's first endpoint sent the first frame, and the first pure SYN (if any).
    first_sender_a: bool,
    syn_sender_a: Option<bool>,
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
}

impl Connections {
    /// A tracker whose Community IDs use `seed`.
    pub fn new(seed: u16) -> Connections {
        Connections {
            open: FxHashMap::default(),
            created: 0,
            seed,
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
                first_sender_a: a_first,
                syn_sender_a: None,
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
        if pure_syn && c.syn_sender_a.is_none() {
            c.syn_sender_a = Some(a_first);
        }
        c.last_frame = s.number;
        c.last_ns = s.ts_ns;
        let side = &mut c.sides[fwd];
        side.pkts += 1;
        side.frame_bytes += u64::from(s.origlen);
        side.payload += u64::from(s.payload_len);
        c.history.add(fwd == 0, s.flags, s.seq, s.payload_len);
        // The originator as known so far: the sender of the first pure SYN, else of the first frame.
        let is_orig = (fwd == 0) == c.syn_sender_a.unwrap_or(c.first_sender_a);
        let [s0, s1] = &mut c.sides;
        let (me, peer) = if fwd == 0 { (s0, s1) } else { (s1, s0) };
        zeek::step(
            &mut me.endpoint,
            &mut peer.endpoint,
            is_orig,
            s.flags,
            s.payload_len,
        );
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

    /// Hands the connections still in memory to `emit`, in creation order.
    pub fn finish(self, emit: &mut impl FnMut(ConnRecord)) {
        let mut rest: Vec<(ConnKey, Open)> = self.open.into_iter().collect();
        rest.sort_unstable_by_key(|(_, c)| c.conn_no);
        for (k, c) in rest {
            emit(c.into_record(&k));
        }
    }
}

impl Open {
    fn into_record(self, key: &ConnKey) -> ConnRecord {
        let (a, ap, b, bp) = *key;
        let orig_a = self.syn_sender_a.unwrap_or(self.first_sender_a);
        let (o, r) = if orig_a { (0, 1) } else { (1, 0) };
        let ((oh, op), (rh, rp)) = if orig_a {
            ((a, ap), (b, bp))
        } else {
            ((b, bp), (a, ap))
        };
        let history = self.history.render(orig_a);
        let conn_state = zeek::conn_state(
            &self.sides[o].endpoint.state,
            &self.sides[r].endpoint.state,
            self.sides[o].payload,
            self.sides[r].payload,
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
            orig_bytes: self.sides[o].payload,
            resp_pkts: self.sides[r].pkts,
            resp_frame_bytes: self.sides[r].frame_bytes,
            resp_bytes: self.sides[r].payload,
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
