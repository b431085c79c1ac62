//! The TCP flow tracer: PyPCAPKit 1.4.1 TraceFlow's state machine over decoded frames.
//!
//! A flow is keyed by the directed (src, sport, dst, dport). The first frame of a key opens a flow; a frame with
//! FIN joins its flow and closes it, so the next frame of that key opens a new flow with a new label. Only open
//! flows are kept in memory, so memory follows the number of concurrently open flows, not the capture size.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::Tcp;
use crate::label::{flow_label, Timestamp};

pub type FlowKey = (IpAddr, u16, IpAddr, u16);

/// Everything stored about one flow; emitted when it closes, or at the end of the capture while still open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Creation order within the capture, from 1.
    pub flow_no: u32,
    pub label: String,
    pub src: IpAddr,
    /// `src` and `dst` in standard text form, made on the reader's thread so the writer only copies them.
    pub src_text: String,
    pub dst_text: String,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub first_frame: u64,
    pub last_frame: u64,
    /// The FIN frame that closed the flow; `None` when it was still open at the end of the capture.
    pub closed_frame: Option<u64>,
    pub packets: u64,
    /// Sum of the frames' original (wire) lengths.
    pub bytes: u64,
    /// Sum of the TCP segment lengths.
    pub payload_bytes: u64,
    pub first_ns: i64,
    pub last_ns: i64,
}

/// What is kept per open flow: the key holds the addresses and ports, and the label is only built when the flow
/// is emitted, so an open flow costs about 120 bytes (memory grows with open flows, never with frames).
struct OpenFlow {
    flow_no: u32,
    first_ts: Timestamp,
    first_frame: u64,
    last_frame: u64,
    packets: u64,
    bytes: u64,
    payload_bytes: u64,
    last_ns: i64,
}

impl OpenFlow {
    fn into_record(self, key: &FlowKey, closed_frame: Option<u64>) -> FlowRecord {
        let (src, sport, dst, dport) = *key;
        FlowRecord {
            flow_no: self.flow_no,
            label: flow_label(&src, sport, &dst, dport, &self.first_ts),
            src_text: src.to_string(),
            dst_text: dst.to_string(),
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
        }
    }
}

#[derive(Default)]
pub struct Tracer {
    open: HashMap<FlowKey, OpenFlow>,
    created: u32,
}

impl Tracer {
    pub fn new() -> Tracer {
        Tracer::default()
    }

    /// Number of flows opened so far.
    pub fn created(&self) -> u32 {
        self.created
    }

    /// Number of flows open now.
    pub fn open_flows(&self) -> usize {
        self.open.len()
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
        let flow = self.open.entry(key).or_insert_with(|| {
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
            }
        });
        let prev = (flow.packets > 0).then_some(flow.last_frame);
        flow.packets += 1;
        flow.bytes += origlen as u64;
        flow.payload_bytes += tcp.payload_len as u64;
        flow.last_frame = number;
        flow.last_ns = ns;
        let flow_no = flow.flow_no;
        if tcp.fin() {
            if let Some(done) = self.open.remove(&key) {
                on_close(done.into_record(&key, Some(number)));
            }
        }
        (flow_no, prev)
    }

    /// The flows still open at the end, in creation order; records are built one at a time as they are taken.
    pub fn finish(self) -> impl Iterator<Item = FlowRecord> {
        let mut rest: Vec<(FlowKey, OpenFlow)> = self.open.into_iter().collect();
        rest.sort_unstable_by_key(|(_, f)| f.flow_no);
        rest.into_iter().map(|(k, f)| f.into_record(&k, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut t = Tracer::new();
        let mut closed = Vec::new();
        let mut member: Vec<(u32, u64)> = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let n = i as u64 + 1;
            let ts = Timestamp::new(100 + i as i64, 0, 6);
            let no = t.observe(n, &ts, 60, f, &mut |r| closed.push(r));
            member.push((no, n));
        }
        let open: Vec<FlowRecord> = t.finish().collect();
        open.iter()
            .chain(closed.iter())
            .map(|r| {
                let idx = member
                    .iter()
                    .filter(|(no, _)| *no == r.flow_no)
                    .map(|(_, n)| *n)
                    .collect();
                (r.label.clone(), idx)
            })
            .collect()
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

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
