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

use std::collections::HashMap;

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

/// The two endpoints of a connection, (address text, port), the lower first.
type Pair = ((String, u16), (String, u16));

struct Flow {
    label: String,
    origin: (String, u16),
    frames: Vec<u64>,
    fin_origin: bool,
    fin_other: bool,
    closed_at: Option<u64>,
}

/// Builds the two-way index of one capture from its TCP frames, given in frame order.
#[derive(Default)]
pub struct TwoWay {
    flows: Vec<Flow>,
    by_pair: HashMap<Pair, usize>,
}

impl TwoWay {
    /// Adds the next frame; `label` makes the label of a flow this frame opens (called only then).
    pub fn add(&mut self, f: &TwoWayFrame, label: impl FnOnce() -> String) {
        let (a, b) = if f.src <= f.dst {
            (f.src, f.dst)
        } else {
            (f.dst, f.src)
        };
        let pair = ((a.0.to_string(), a.1), (b.0.to_string(), b.1));
        let syn = f.flags & 0x002 != 0;
        let fin = f.flags & 0x001 != 0;
        let at = match self.by_pair.get(&pair) {
            Some(&i) if !(self.flows[i].closed_at.is_some() && syn) => i,
            _ => {
                self.flows.push(Flow {
                    label: label(),
                    origin: (f.src.0.to_string(), f.src.1),
                    frames: Vec::new(),
                    fin_origin: false,
                    fin_other: false,
                    closed_at: None,
                });
                self.by_pair.insert(pair, self.flows.len() - 1);
                self.flows.len() - 1
            }
        };
        let flow = &mut self.flows[at];
        flow.frames.push(f.number);
        if fin {
            if flow.origin.0 == f.src.0 && flow.origin.1 == f.src.1 {
                flow.fin_origin = true;
            } else {
                flow.fin_other = true;
            }
            if flow.fin_origin && flow.fin_other && flow.closed_at.is_none() {
                flow.closed_at = Some(f.number);
            }
        }
    }

    /// The index: (label, frame numbers), open flows in creation order, then closed flows in closing order.
    pub fn index(self) -> Vec<(String, Vec<u64>)> {
        let (mut closed, open): (Vec<Flow>, Vec<Flow>) =
            self.flows.into_iter().partition(|f| f.closed_at.is_some());
        closed.sort_by_key(|f| f.closed_at);
        open.into_iter()
            .chain(closed)
            .map(|f| (f.label, f.frames))
            .collect()
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
            t.add(&f, || format!("{s}_{sp}-{d}_{dp}-{}", i + 1));
        }
        t.index()
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
