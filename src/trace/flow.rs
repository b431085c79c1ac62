//! One flow's state while it is open, and the record stored when it closes or the capture ends.

use std::net::IpAddr;

use crate::key::label::{push_addr_text, push_label_after_addrs};
use crate::key::{FlowKey, Timestamp};

/// Everything stored about one flow; emitted when it closes, or at the end of the capture while still open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Creation order within the capture, from 1.
    pub flow_no: u32,
    /// The source and destination addresses' text, the label and the Community ID, in one allocation
    /// ([`FlowRecord::src`], [`FlowRecord::dst`], [`FlowRecord::label`], [`FlowRecord::community_id`]): a scan
    /// makes a record per frame, and with four strings each, malloc and free took about a tenth of both threads'
    /// time (one string: the scan 0.90x).
    text: String,
    /// Where the destination address starts in `text`.
    dst_at: usize,
    /// Where the label starts.
    label_at: usize,
    /// Where the Community ID starts.
    cid_at: usize,
    /// The key's source address ([`FlowRecord::src`] is its text).
    pub src_addr: IpAddr,
    /// The key's destination address.
    pub dst_addr: IpAddr,
    /// Source port.
    pub sport: u16,
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
    /// The flow is still open and only parked: a tracer that stores parked flows
    /// (`Tracer::with_parked_rows`) hands their rows over then, while the writer has time, instead of all at the
    /// end. The row is final unless the key shows up again, and then the flow is stored again.
    pub provisional: bool,
    /// The frames and bytes of this flow that an earlier row had, handed over when it was parked ((0, 0) without
    /// one: a flow has a frame from its start). Tallies that count each frame once (the endpoints) count the rest,
    /// so that a flow still parked at the end needs no reading back.
    pub counted: (u64, u64),
    /// The label is the one the `flows` view derives from the row ([`crate::key::label::view_label_time`]), so the
    /// SQLite row stores it as '' (schema 9). Found here, on the reader's thread, not by the writer.
    pub label_derived: bool,
}

impl FlowRecord {
    /// The key's source address in standard text form (as stored in `flows`), made on the reader's thread so
    /// that the writer only copies it.
    pub fn src(&self) -> &str {
        &self.text[..self.dst_at]
    }

    /// The destination address, as [`FlowRecord::src`].
    pub fn dst(&self) -> &str {
        &self.text[self.dst_at..self.label_at]
    }

    /// TraceFlow's label, `{src}_{sport}-{dst}_{dport}-{repr(float(first frame time))}` (`:` made `.` for IPv6).
    /// A label the `flows` view derives ([`FlowRecord::label_derived`]) is made here, when asked for: SQLite stores
    /// it as '', so the ingest never asks, and a scan's records were a tenth of its reading thread.
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        if self.label_at == self.cid_at && self.label_derived {
            let made = crate::key::label::view_label(
                self.src(),
                self.sport,
                self.dst(),
                self.dport,
                self.first_ns,
            );
            return made.unwrap_or_default().into();
        }
        self.text[self.label_at..self.cid_at].into()
    }

    /// What SQLite's `flow_rows.label` holds (schema 9): '' when the `flows` view derives the label, else the
    /// label.
    pub fn stored_label(&self) -> &str {
        if self.label_derived {
            ""
        } else {
            &self.text[self.label_at..self.cid_at]
        }
    }

    /// Community ID v1 of the key (shared by both directions), with the capture's seed. The tracer leaves it
    /// empty unless given a seed (`Tracer::with_community_id_seed`); the ingest takes it from the connection
    /// tracker, which hashes each key once ([`FlowRecord::set_community_id`]).
    pub fn community_id(&self) -> &str {
        &self.text[self.cid_at..]
    }

    /// An earlier row of this flow was handed over (when it was parked): this one takes its place.
    pub fn replaces(&self) -> bool {
        self.counted.0 > 0
    }

    /// The buffer of the record's texts, for the next record ([`OpenFlow::record_in`]).
    pub fn into_text(self) -> String {
        self.text
    }

    /// Replaces the Community ID.
    pub fn set_community_id(&mut self, id: &str) {
        self.text.truncate(self.cid_at);
        self.text.push_str(id);
    }
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
    /// The frames and bytes of the row of this flow handed over when it was parked ([`FlowRecord::counted`]).
    pub(super) counted: (u64, u64),
}

impl OpenFlow {
    /// The record of the flow as it is now.
    #[cfg(test)]
    pub(super) fn record(
        &self,
        key: &FlowKey,
        closed_frame: Option<u64>,
        seed: Option<u16>,
    ) -> FlowRecord {
        self.record_in(key, closed_frame, seed, &mut Vec::new())
    }

    /// The record of the flow as it is now, its texts written into a buffer from `spare` if it has one (the texts
    /// of records the writer is done with, [`FlowRecord::into_text`]), so that a scan's records cost no
    /// allocation.
    pub(super) fn record_in(
        &self,
        key: &FlowKey,
        closed_frame: Option<u64>,
        seed: Option<u16>,
        spare: &mut Vec<String>,
    ) -> FlowRecord {
        let mut text = spare.pop().unwrap_or_default();
        let (src, sport, dst, dport) = *key;
        let (src_key, dst_key) = (crate::key::addr_key(&src), crate::key::addr_key(&dst));
        // Two IPv4 texts and a Community ID of 30 bytes (and a label, unless the view derives it): one buffer.
        text.clear();
        text.reserve(64);
        push_addr_text(&mut text, &src);
        let dst_at = text.len();
        push_addr_text(&mut text, &dst);
        let label_at = text.len();
        let first_ns = self.first_ts.as_ns();
        // The view derives the label of a time of whole microseconds: not built here (`label` makes it).
        let label_derived = if crate::key::label::micros_label_ns(&self.first_ts).is_some() {
            true
        } else {
            let ts_at = push_label_after_addrs(&mut text, dst_at, sport, dport, &self.first_ts);
            // A time the repr wrote may still be what the view writes (e.g. whole seconds past 2^33).
            crate::key::label::view_label_time(first_ns)
                .is_some_and(|(buf, len)| text.as_bytes()[ts_at..] == buf[..len])
        };
        let cid_at = text.len();
        if let Some(s) = seed {
            crate::key::push_community_id(&mut text, s, src, sport, dst, dport);
        }
        FlowRecord {
            flow_no: self.flow_no,
            text,
            dst_at,
            label_at,
            cid_at,
            src_addr: src,
            dst_addr: dst,
            sport,
            dport,
            first_frame: self.first_frame,
            last_frame: self.last_frame,
            closed_frame,
            packets: self.packets,
            bytes: self.bytes,
            payload_bytes: self.payload_bytes,
            first_ns,
            last_ns: self.last_ns,
            flags: self.flags,
            src_key,
            dst_key,
            provisional: false,
            counted: self.counted,
            label_derived,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(first_ts: Timestamp) -> OpenFlow {
        OpenFlow {
            flow_no: 7,
            first_ts,
            first_frame: 1,
            last_frame: 2,
            packets: 2,
            bytes: 120,
            payload_bytes: 0,
            last_ns: first_ts.as_ns(),
            flags: 2,
            counted: (0, 0),
        }
    }

    /// A record written into the text buffer of an earlier one (the writer hands them back) is the record written
    /// into a new buffer: the old texts are gone, whichever was longer.
    #[test]
    fn a_reused_text_buffer_gives_the_same_record() {
        let ts = Timestamp::new(1700000000, 20, 6);
        let v4: FlowKey = (
            "10.0.0.1".parse().unwrap(),
            443,
            "10.0.0.2".parse().unwrap(),
            80,
        );
        let v6: FlowKey = (
            "2001:db8::1".parse().unwrap(),
            1,
            "fe80::2".parse().unwrap(),
            2,
        );
        for (before, key) in [(v6, v4), (v4, v6), (v4, v4)] {
            for seed in [None, Some(0)] {
                let used = open(ts).record(&before, Some(9), Some(7)).into_text();
                assert!(!used.is_empty());
                let again = open(ts).record_in(&key, None, seed, &mut vec![used]);
                assert_eq!(again, open(ts).record(&key, None, seed));
            }
        }
    }

    /// The one string holds each text where its accessor looks, against the functions that make each alone.
    #[test]
    fn a_record_keeps_its_texts_apart() {
        let ts = Timestamp::new(1700000000, 20, 6);
        for (src, dst) in [
            ("10.0.0.1", "192.168.100.200"),
            ("2001:db8::1", "::ffff:192.0.2.1"),
            ("fe80::1", "10.0.0.2"),
        ] {
            let key: FlowKey = (src.parse().unwrap(), 443, dst.parse().unwrap(), 65535);
            for seed in [None, Some(0), Some(9)] {
                let mut r = open(ts).record(&key, None, seed);
                assert_eq!(r.src(), crate::key::label::addr_text(&key.0));
                assert_eq!(r.dst(), crate::key::label::addr_text(&key.2));
                assert_eq!(
                    r.label(),
                    crate::key::label::flow_label(&key.0, 443, &key.2, 65535, &ts)
                );
                let want = seed
                    .map(|s| crate::key::community_id(s, key.0, 443, key.2, 65535))
                    .unwrap_or_default();
                assert_eq!(r.community_id(), want);
                r.set_community_id("1:abc");
                assert_eq!(r.community_id(), "1:abc");
                r.set_community_id("");
                assert_eq!(r.community_id(), "");
                assert_eq!(r.dst(), crate::key::label::addr_text(&key.2));
            }
        }
    }

    /// A record says its label is the one the `flows` view derives exactly when it is: µs times are, ns times
    /// with digits past the µs and times before 1970 are not, and a record that says so is right.
    #[test]
    fn a_record_knows_whether_the_view_gives_its_label() {
        let key: FlowKey = (
            "2001:db8::1".parse().unwrap(),
            443,
            "10.0.0.2".parse().unwrap(),
            80,
        );
        let cases = [
            (Timestamp::new(1700000000, 20, 6), true),
            (Timestamp::new(1700000000, 0, 6), true),
            (Timestamp::new(1700000000, 500000, 6), true),
            (Timestamp::new(1385391358, 387631, 6), true),
            (Timestamp::new(1700000000, 123456789, 9), false),
            (Timestamp::new(1700000000, 123456000, 9), true),
            (Timestamp::new(-5, 250000, 6), false),
            (Timestamp::new(0, 1, 6), false),
        ];
        for (ts, want) in cases {
            let r = open(ts).record(&key, None, None);
            assert_eq!(r.label_derived, want, "{}", r.label());
            let view = crate::key::label::view_label(r.src(), 443, r.dst(), 80, r.first_ns);
            assert_eq!(view.as_deref() == Some(&*r.label()), want, "{}", r.label());
            // SQLite stores the label unless the view gives it back.
            let stored = if want {
                String::new()
            } else {
                r.label().into_owned()
            };
            assert_eq!(r.stored_label(), stored);
        }
    }
}
