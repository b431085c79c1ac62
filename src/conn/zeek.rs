//! Zeek's conn.log fields for a TCP connection: each endpoint's TCP state, `conn_state` from the two, and the
//! `history` letters, following the definitions in Zeek's `base/protocols/conn/main.zeek` documentation.
//!
//! Zeek's own analyzer follows sequence numbers and checksums; what is here uses only what every frame row
//! holds (flags, sequence number, payload length). So the letters that need more are not produced: `c` (bad
//! checksum), `g` (content gap), `t` (retransmitted payload), `w` (zero window) and `^` (direction flipped by
//! Zeek's heuristic: the originator here is the sender of the first SYN without ACK, else of the first frame).

use crate::decode::numbers::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

/// One endpoint's TCP state, as Zeek's analyzer names them (`TCP_INACTIVE` ... `TCP_RESET`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Endpoint {
    /// Nothing sent yet.
    #[default]
    Inactive,
    /// Sent a SYN without ACK, handshake not complete.
    SynSent,
    /// Sent a SYN+ACK, handshake not complete.
    SynAckSent,
    /// Sent something other than a SYN without a SYN before it: the connection was picked up midstream.
    Partial,
    /// The handshake completed (or the endpoint spoke after its SYN was answered).
    Established,
    /// Sent a FIN.
    Closed,
    /// Sent a RST.
    Reset,
}

/// Moves the sender's (`me`) and its peer's states for one frame.
pub fn step(me: &mut Endpoint, peer: &mut Endpoint, flags: u16) {
    use Endpoint::*;
    let (syn, ack, fin, rst) = (
        flags & TCP_SYN != 0,
        flags & TCP_ACK != 0,
        flags & TCP_FIN != 0,
        flags & TCP_RST != 0,
    );
    // A RST resets the sender whatever it was: Zeek's RSTO/RSTR/REJ read this.
    if rst {
        *me = Reset;
        return;
    }
    if syn {
        // A first SYN opens the sender's side; a SYN+ACK answering the peer's SYN starts the handshake, and a
        // repeated SYN changes nothing.
        if *me == Inactive {
            *me = if ack { SynAckSent } else { SynSent };
        }
        if ack && *peer == SynSent && *me == SynAckSent {
            // The SYN was answered: the originator's side is open (Zeek moves it on with the SYN+ACK).
            *peer = Established;
        }
    } else {
        match *me {
            // Anything but a SYN from an endpoint that sent nothing yet: picked up midstream. A frame answering
            // the peer's SYN+ACK completes a handshake whose SYN was missed.
            Inactive => *me = if ack && *peer == SynAckSent { Established } else { Partial },
            // The ACK (or data) after the handshake: both sides are established.
            SynSent | SynAckSent if ack && matches!(*peer, SynAckSent | Established) => {
                *me = Established
            }
            _ => {}
        }
        if ack && *peer == SynAckSent && *me == Established {
            *peer = Established;
        }
    }
    // A FIN closes the sender's side; an endpoint that reset stays reset.
    if fin && *me != Reset {
        *me = Closed;
    }
}

/// Zeek's `conn_state`, from the originator's and responder's endpoint states, the payload bytes each sent
/// and the history (Zeek's `conn_state` function in base/protocols/conn/main.zeek). The rules, in order:
/// - REJ: the responder reset, and the originator had only sent its SYN (or both reset before any payload):
///   "connection attempt rejected".
/// - RSTRH: the responder reset, and the originator sent no SYN (was inactive or midstream): "responder sent
///   a SYN ACK followed by a RST, we never saw a SYN from the (purported) originator".
/// - RSTR: the responder reset, otherwise ("responder sent a RST").
/// - RSTOS0: the originator reset, the responder sent nothing (or only midstream), and the history is a SYN
///   followed by a RST with no SYN+ACK, ACK, FIN, gap, inconsistency or multi-flag packet in between:
///   "originator sent a SYN followed by a RST, we never saw a SYN-ACK from the responder".
/// - OTH: the originator reset and the responder was inactive, without that history.
/// - RSTO: the originator reset, otherwise ("connection established, originator aborted").
/// - SF: both sent a FIN: "normal establishment and termination".
/// - SH: the originator sent a FIN and the responder nothing (or only midstream): "originator sent a SYN
///   followed by a FIN, we never saw a SYN ACK from the responder".
/// - S2: the originator sent a FIN, the responder did not: "established and close attempt by originator seen
///   (but no reply from responder)".
/// - SHR: the responder sent a FIN and the originator was inactive or midstream: "responder sent a SYN ACK
///   followed by a FIN, we never saw a SYN from the originator".
/// - S3: the responder sent a FIN, the originator did not: "close attempt by responder seen".
/// - S0: the originator sent a SYN and the responder nothing: "connection attempt seen, no reply".
/// - S1: both established, no FIN or RST: "connection established, not terminated".
/// - OTH: anything else: "no SYN seen, just midstream traffic".
pub fn conn_state(
    orig: &Endpoint,
    resp: &Endpoint,
    orig_bytes: u64,
    resp_bytes: u64,
    history: &str,
) -> &'static str {
    use Endpoint::*;
    let o_inactive = matches!(orig, Inactive | Partial);
    let r_inactive = matches!(resp, Inactive | Partial);
    if *resp == Reset {
        if matches!(orig, SynSent | SynAckSent)
            || (*orig == Reset && orig_bytes == 0 && resp_bytes == 0)
        {
            "REJ"
        } else if o_inactive {
            "RSTRH"
        } else {
            "RSTR"
        }
    } else if *orig == Reset {
        if r_inactive {
            if syn_then_rst(history) {
                "RSTOS0"
            } else {
                "OTH"
            }
        } else {
            "RSTO"
        }
    } else if *resp == Closed && *orig == Closed {
        "SF"
    } else if *orig == Closed {
        if r_inactive {
            "SH"
        } else {
            "S2"
        }
    } else if *resp == Closed {
        if o_inactive {
            "SHR"
        } else {
            "S3"
        }
    } else if *orig == SynSent && *resp == Inactive {
        "S0"
    } else if *orig == Established && *resp == Established {
        "S1"
    } else {
        "OTH"
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/` over the history.
fn syn_then_rst(history: &str) -> bool {
    let h = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = h.strip_prefix('S') else {
        return false;
    };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

/// Zeek's history, kept per sender until the originator is known: letters in frame order, each with its
/// sender (true for the key's first endpoint).
#[derive(Default)]
pub struct History {
    events: Vec<(bool, u8)>,
    /// Per sender: the letters already recorded once (bit per letter), and the last SYN, FIN and RST sequence
    /// numbers, which decide whether those letters repeat.
    seen: [u16; 2],
    last_syn: [Option<u32>; 2],
    last_fin: [Option<u32>; 2],
    last_rst: [Option<u32>; 2],
}

const H_SYN: u16 = 1;
const H_FIN: u16 = 2;
const H_RST: u16 = 4;
const H_ACK: u16 = 8;
const H_DATA: u16 = 16;
const H_MULTI: u16 = 32;
const H_CORRUPT: u16 = 64;

impl History {
    /// Records one frame from the key's first endpoint (`a`) or the other. Zeek's rules:
    /// - `s`/`h`: a SYN without / with ACK; `f`: a FIN; `r`: a RST. Each is recorded the first time, and again
    ///   only when its sequence number differs from the last of that kind from that side (for a FIN the
    ///   sequence number after its payload, since a FIN comes at the end of the data).
    /// - `q`: SYN together with FIN or RST; `i`: FIN together with RST (the letters of such a packet's flags are
    ///   not recorded). Once per side.
    /// - `d`: payload, `a`: a pure ACK (no SYN, FIN, RST nor payload). Once per side.
    pub fn add(&mut self, a: bool, flags: u16, seq: u32, payload_len: u32) {
        let i = usize::from(!a);
        let (syn, fin, rst) = (
            flags & TCP_SYN != 0,
            flags & TCP_FIN != 0,
            flags & TCP_RST != 0,
        );
        let bits = u8::from(syn) + u8::from(fin) + u8::from(rst);
        if bits > 1 {
            if fin && rst {
                self.once(a, H_CORRUPT, b'I');
            } else {
                self.once(a, H_MULTI, b'Q');
            }
        } else if syn {
            let code = if flags & TCP_ACK != 0 { b'H' } else { b'S' };
            if self.seen[i] & H_SYN == 0 || self.last_syn[i] != Some(seq) {
                self.events.push((a, code));
            }
            self.seen[i] |= H_SYN;
            self.last_syn[i] = Some(seq);
        } else if fin {
            let end = seq.wrapping_add(payload_len);
            if self.seen[i] & H_FIN == 0 || self.last_fin[i] != Some(end) {
                self.events.push((a, b'F'));
            }
            self.seen[i] |= H_FIN;
            self.last_fin[i] = Some(end);
        } else if rst {
            if self.seen[i] & H_RST == 0 || self.last_rst[i] != Some(seq) {
                self.events.push((a, b'R'));
            }
            self.seen[i] |= H_RST;
            self.last_rst[i] = Some(seq);
        } else if payload_len > 0 {
            self.once(a, H_DATA, b'D');
        } else if flags & TCP_ACK != 0 {
            self.once(a, H_ACK, b'A');
        }
    }

    fn once(&mut self, a: bool, bit: u16, code: u8) {
        let i = usize::from(!a);
        if self.seen[i] & bit == 0 {
            self.seen[i] |= bit;
            self.events.push((a, code));
        }
    }

    /// The letters, upper case for the originator (`orig_a`: the key's first endpoint is the originator).
    pub fn render(&self, orig_a: bool) -> String {
        self.events
            .iter()
            .map(|&(a, c)| {
                if a == orig_a {
                    char::from(c)
                } else {
                    char::from(c.to_ascii_lowercase())
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rstos0_pattern() {
        assert!(syn_then_rst("SR"));
        assert!(syn_then_rst("^SDR"));
        assert!(syn_then_rst("SRr"));
        // The pattern is case-sensitive: the responder's letters do not stop it.
        assert!(syn_then_rst("ShR"));
        assert!(!syn_then_rst("SAR"));
        assert!(!syn_then_rst("DSR"));
        assert!(!syn_then_rst("S"));
    }
}
