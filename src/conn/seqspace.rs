//! Zeek's `orig_bytes` / `resp_bytes`: the span of sequence space each endpoint used, as Zeek's TCP analyzer
//! tracks it, not a sum of payloads (which counts every retransmission again).
//!
//! What is kept per endpoint and how it moves, from Zeek's `src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc`
//! (`init_endpoint`, `init_peer`, `update_ack_seq`, `update_last_seq`, `get_relative_seq`, `get_segment_len`)
//! and `src/analyzer/protocol/tcp/TCP_Endpoint.h` (`UpdateLastSeq`, `UpdateAckSeq`, `NoDataAcked`):
//! - `start_seq`: the initial sequence number: a SYN's, else (no handshake seen) one less than the first
//!   segment's, or one less than the first acknowledgment the peer sent while this side was silent. A SYN seen
//!   later (in SYN_SENT with another sequence number, in ESTABLISHED / PARTIAL, or after a RST that was this
//!   side's first frame) starts the numbering again.
//! - `last_seq`: one past the furthest segment end (sequence number + payload + 1 per SYN and FIN; a RST's
//!   payload is not stream data). A SYN or RST more than 1 MiB away is not trusted, nor is anything after this
//!   side's RST, except a FIN when only the SYN was seen (a connection over 2 GiB seen only at its ends).
//! - `ack_seq`: the furthest acknowledgment the peer sent for this side (not from RST segments, not an ack of 0
//!   more than 1 MiB ahead, which is likelier broken than a wrap).
//! - wrap-around: each of `last_seq` and `ack_seq` counts how often it went backwards numerically while moving
//!   forwards in sequence space; the 64-bit positions are `wraps * 2^32 + value`.
//!
//! The size (`TCP_Endpoint::Size` in `src/analyzer/protocol/tcp/TCP_Endpoint.cc`): the further of the two
//! positions less `start_seq`, less 1 for the SYN and 1 more when a FIN was sent; 0 for an endpoint that sent a
//! SYN, then a RST, whose peer never answered and whose sequence space was acknowledged (a half-open
//! connection discovered and aborted).

use super::zeek::{Endpoint, State};
use super::ConnSeg;
use crate::decode::numbers::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::trace::spill::{get_varint, put_varint, unzigzag, zigzag};

/// Zeek's `TOO_LARGE_SEQ_DELTA`.
const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;

/// One endpoint's sequence space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqSpace {
    /// Zeek keeps it signed 64-bit; every value it is given here is a 32-bit sequence number.
    start_seq: i64,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u32,
    ack_wraps: u32,
    /// A FIN was sent (Zeek's `FIN_cnt > 0`).
    fin: bool,
}

impl SeqSpace {
    /// The sequence space as bytes (for parking).
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, zigzag(self.start_seq));
        for v in [self.last_seq, self.ack_seq, self.seq_wraps, self.ack_wraps] {
            put_varint(out, u64::from(v));
        }
        out.push(u8::from(self.fin));
    }

    /// The inverse of [`SeqSpace::encode`], from `pos` of `b`.
    pub(super) fn decode(b: &[u8], pos: &mut usize) -> Option<SeqSpace> {
        let start_seq = unzigzag(get_varint(b, pos)?);
        let mut v = [0u32; 4];
        for x in &mut v {
            *x = u32::try_from(get_varint(b, pos)?).ok()?;
        }
        let fin = *b.get(*pos)?;
        *pos += 1;
        Some(SeqSpace {
            start_seq,
            last_seq: v[0],
            ack_seq: v[1],
            seq_wraps: v[2],
            ack_wraps: v[3],
            fin: fin == 1,
        })
    }
}

/// Zeek's `seq_delta`: the signed distance from `b` to `a` in 32-bit sequence space.
fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl SeqSpace {
    fn init(&mut self, start: u32, last: u32) {
        self.start_seq = i64::from(start);
        self.ack_seq = start;
        self.last_seq = last;
    }

    fn update_last(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps += 1;
        }
        self.last_seq = seq;
    }

    fn update_ack(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps += 1;
        }
        self.ack_seq = seq;
    }

    /// True when none of this side's data was acknowledged (one octet allowed, for the SYN).
    fn no_data_acked(&self) -> bool {
        let ack = (u64::from(self.ack_wraps) << 32) + u64::from(self.ack_seq);
        let start = self.start_seq as u64;
        ack == start || ack == start + 1
    }

    /// Zeek's `TCP_Endpoint::Size`, given this endpoint's state and its peer's.
    pub fn size(&self, me: &Endpoint, peer: &Endpoint) -> u64 {
        if me.prev() == State::SynSent
            && me.state == State::Reset
            && peer.state == State::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = (u64::from(self.seq_wraps) << 32) + u64::from(self.last_seq);
        let ack = (u64::from(self.ack_wraps) << 32) + u64::from(self.ack_seq);
        let mut size = last.max(ack).wrapping_sub(self.start_seq as u64);
        // The SYN octet, and the FIN's.
        size = size.saturating_sub(1);
        if self.fin {
            size = size.saturating_sub(1);
        }
        size
    }

    /// The relative sequence number of `seq` is below the start (Zeek's `get_relative_seq` underflow).
    fn underflows(&self, seq: u32, last: u32, wraps: u32) -> bool {
        let delta = seq_delta(seq, last);
        let mut wraps = wraps;
        if delta < 0 {
            if wraps > 0 && seq > last {
                wraps -= 1;
            }
        } else if delta > 0 && seq < last {
            wraps += 1;
        }
        wraps == 0 && seq_delta(seq, self.start_seq as u32) < 0
    }
}

/// Moves the sender's (`me`) and its peer's sequence spaces for one segment, before the state machine moves
/// their states (`me_state` / `peer_state` are the states before this segment), as `TCPSessionAdapter::Process`
/// does.
pub fn observe(
    me: &mut SeqSpace,
    peer: &mut SeqSpace,
    me_state: &Endpoint,
    peer_state: &Endpoint,
    s: &ConnSeg,
) {
    let (flags, seq, ack, payload_len) = (s.flags, s.seq, s.ack, s.payload_len);
    let (syn, fin, rst) = (
        flags & TCP_SYN != 0,
        flags & TCP_FIN != 0,
        flags & TCP_RST != 0,
    );
    // get_segment_len: SYN and FIN take one each; a RST's payload is not part of the stream.
    let seg_len = if rst { 0 } else { payload_len }
        .wrapping_add(u32::from(syn))
        .wrapping_add(u32::from(fin));
    let end = seq.wrapping_add(seg_len);
    // init_endpoint
    match me_state.state {
        State::Inactive => {
            if syn {
                me.init(seq, end);
            } else {
                me.init(seq.wrapping_sub(1), seq);
            }
        }
        State::SynSent | State::SynAckSent => {
            if syn && i64::from(seq) != me.start_seq {
                me.init(seq, end);
            }
        }
        State::Established | State::Partial => {
            if syn {
                me.init(seq, end);
            }
        }
        State::Reset => {
            if syn && me_state.prev() == State::Inactive {
                me.init(seq, end);
            }
        }
        State::Closed => {}
    }
    if fin {
        me.fin = true;
    }
    if flags & TCP_ACK != 0 {
        if peer_state.state == State::Inactive {
            // init_peer: numbering as though the peer's SYN had been seen.
            let a = ack.wrapping_sub(1);
            peer.start_seq = i64::from(a);
            peer.ack_seq = a;
            peer.last_seq = a;
        } else if !peer.underflows(ack, peer.ack_seq, peer.ack_wraps) && !rst {
            // update_ack_seq
            let delta = seq_delta(ack, peer.ack_seq);
            if !(ack == 0 && delta > TOO_LARGE_SEQ_DELTA) && delta > 0 {
                peer.update_ack(ack);
            }
        }
    }
    // update_last_seq
    let delta_last = seq_delta(end, me.last_seq);
    if (syn || rst) && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last) {
        // Not trusted.
    } else if fin && me.last_seq == (me.start_seq as u32).wrapping_add(1) {
        me.update_last(end);
    } else if me_state.state == State::Reset {
        // Nothing after a RST is trusted.
    } else if delta_last > 0 {
        me.update_last(end);
    }
}
