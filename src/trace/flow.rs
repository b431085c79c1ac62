//! One flow's state while it is open, and the record stored when it closes or the capture ends.

use std::net::IpAddr;

use super::label::{addr_text, label_from_text};
use crate::capture::Timestamp;

/// A flow's directed key: (src, sport, dst, dport).
pub type FlowKey = (IpAddr, u16, IpAddr, u16);

/// Everything stored about one flow; emitted when it closes, or at the end of the capture while still open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Creation order within the capture, from 1.
    pub flow_no: u32,
    /// TraceFlow's label, `{src}_{sport}-{dst}_{dport}-{repr(float(first frame time))}` (`:` made `.` for IPv6).
    pub label: String,
    /// The key's addresses in standard text form (as stored in `flows`), made on the reader's thread so that
    /// the writer only copies them.
    pub src: String,
    /// Source port.
    pub sport: u16,
    /// Destination address, as `src`.
    pub dst: String,
    /// Destination port.
    pub dport: u16,
    /// Number of the flow's first frame, from 1.
    pub first_frame: u64,
    /// Number of the flow's last frame, from 1.
    pub last_frame: u64,
    /// The FIN frame that closed the flow; `None` when it was still open at the end of the capture.
    pub closed_frame: Option<u64>,
    /// Frames of the flow.
    pub packets: u64,
    /// Sum of the frames' original (wire) lengths.
    pub bytes: u64,
    /// Sum of the TCP segment lengths.
    pub payload_bytes: u64,
    /// Time of the first frame, ns since the epoch.
    pub first_ns: i64,
    /// Time of the last frame, ns since the epoch.
    pub last_ns: i64,
    /// The TCP flags of all its frames, ORed (9 bits: NS CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: u16,
    /// The addresses as 16 bytes that sort as the addresses do (IPv4 as ::ffff:a.b.c.d), for `flows` searches.
    pub src_key: [u8; 16],
    /// The destination address as 16 sortable bytes.
    pub dst_key: [u8; 16],
    /// Community ID v1 of the key (shared by both directions), with the capture's seed. The tracer leaves it
    /// empty unless given a seed (`Tracer::with_community_id_seed`); the ingest takes it from the connection
    /// tracker, which hashes each key once.
    pub community_id: String,
    /// The flow is still open and only parked: a tracer that stores parked flows
    /// (`Tracer::with_parked_rows`) hands their rows over then, while the writer has time, instead of all at the
    /// end. The row is final unless the key shows up again, and then the flow is stored again.
    pub provisional: bool,
    /// An earlier row of this flow was handed over (when it was parked): this one takes its place.
    pub replaces: bool,
}

/// What is kept per open flow: the key holds the addresses and ports, and the label is only built when the flow
/// is emitted, so an open flow costs about 120 bytes in memory.
#[derive(Debug)]
pub(super) struct OpenFlow {
    pub(super) flow_no: u32,
    pub(super) first_ts: Timestamp,
    pub(super) first_frame: u64,
    pub(super) last_frame: u64,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) payload_bytes: u64,
    pub(super) last_ns: i64,
    pub(super) flags: u16,
    /// A row of this flow was handed over when it was parked ([`FlowRecord::provisional`]).
    pub(super) stored: bool,
}

impl OpenFlow {
    pub(super) fn into_record(
        self,
        key: &FlowKey,
        closed_frame: Option<u64>,
        seed: Option<u16>,
    ) -> FlowRecord {
        self.record(key, closed_frame, seed)
    }

    /// The record of the flow as it is now.
    pub(super) fn record(
        &self,
        key: &FlowKey,
        closed_frame: Option<u64>,
        seed: Option<u16>,
    ) -> FlowRecord {
        let (src, sport, dst, dport) = *key;
        let community_id = seed
            .map(|s| crate::conn::community_id(s, src, sport, dst, dport))
            .unwrap_or_default();
        let (src_key, dst_key) = (crate::filter::addr_key(&src), crate::filter::addr_key(&dst));
        let (src, dst) = (addr_text(&src), addr_text(&dst));
        FlowRecord {
            flow_no: self.flow_no,
            label: label_from_text(&src, sport, &dst, dport, &self.first_ts),
            src,
            sport,
            dst,
            dport,
            first_frame: self.first_frame,
            last_frame: self.last_frame,
            closed_frame,
            packets: self.packets,
            bytes: self.bytes,
            payload_bytes: self.payload_bytes,
            first_ns: self.first_ts.as_ns(),
            last_ns: self.last_ns,
            flags: self.flags,
            src_key,
            dst_key,
            community_id,
            provisional: false,
            replaces: self.stored,
        }
    }
}
