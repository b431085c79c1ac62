//! Zeek's conn.log fields for a TCP connection: each endpoint's TCP state, `conn_state` from the two, the
//! `history` letters and the role flips, following Zeek's `base/protocols/conn/main.zeek` and its TCP analyzer
//! (`src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc`, `TCP.cc`).
//!
//! What is here uses what every frame row holds (flags, sequence and acknowledgment numbers, payload length).
//! The letters that need more are not produced: `c` (bad checksum), `g` (content gap), `t` (retransmitted
//! payload) and `w` (zero window); docs/zeek.md says why.

use crate::decode::numbers::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::trace::spill::{get_varint, put_varint};

/// One endpoint's TCP state, as Zeek's analyzer names them (`TCP_ENDPOINT_INACTIVE` ... `TCP_ENDPOINT_RESET`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum State {
    /// Nothing sent yet.
    #[default]
    Inactive,
    /// Sent a SYN without ACK as the originator, not answered yet.
    SynSent,
    /// Sent a SYN+ACK as the originator (Zeek's "connection_originator_SYN_ack").
    SynAckSent,
    /// Sent something other than a SYN first: the connection was picked up midstream.
    Partial,
    /// The handshake completed for this side.
    Established,
    /// Sent a FIN.
    Closed,
    /// Sent a RST.
    Reset,
}

/// An endpoint's state and the one before it (Zeek reads the previous state for a FIN followed by a RST).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// The current state.
    pub state: State,
    prev: State,
}

impl Endpoint {
    /// The state before the current one.
    pub fn prev(&self) -> State {
        self.prev
    }

    /// The state and the one before it, as one byte (for parking).
    pub(super) fn to_byte(self) -> u8 {
        self.state as u8 | (self.prev as u8) << 4
    }

    /// The inverse of [`Endpoint::to_byte`].
    pub(super) fn from_byte(b: u8) -> Option<Endpoint> {
        let state = |n: u8| {
            use State::*;
            Some(match n {
                0 => Inactive,
                1 => SynSent,
                2 => SynAckSent,
                3 => Partial,
                4 => Established,
                5 => Closed,
                6 => Reset,
                _ => return None,
            })
        };
        Some(Endpoint {
            state: state(b & 15)?,
            prev: state(b >> 4)?,
        })
    }

    fn set(&mut self, s: State) {
        if s != self.state {
            self.prev = self.state;
            self.state = s;
        }
    }
}

/// Zeek's likely server ports, as traceflow decides them: the system ports (1 to 1023). Zeek's own set
/// (`likely_server_ports`) is the ports its loaded analyzer scripts registered, so it differs between
/// installations; the system ports hold the services of every default one (FTP, SSH, SMTP, DNS, HTTP, POP3,
/// IMAP, HTTPS, SMB, ...) and none of the ephemeral ports clients use.
pub fn likely_server_port(port: u16) -> bool {
    (1..1024).contains(&port)
}

/// Whether Zeek makes the receiver of a connection's first frame its originator (`TCPAnalyzer::WantConnection`
/// in `src/packet_analysis/protocol/tcp/TCP.cc`): only when that frame is not a SYN without ACK (a connection
/// seen midstream, or from its SYN+ACK), and its source port is a likely server port. If both ports are, only a
/// frame without SYN is flipped (a SYN+ACK could be a stealth scan's), and only when the source port is the
/// lower. `Connection::FlipRoles` then records `^` in the history.
pub fn flip_at_creation(flags: u16, sport: u16, dport: u16) -> bool {
    if flags & (TCP_SYN | TCP_ACK) == TCP_SYN || !likely_server_port(sport) {
        return false;
    }
    if likely_server_port(dport) {
        flags & TCP_SYN == 0 && sport < dport
    } else {
        true
    }
}

/// Moves the sender's (`me`) and its peer's states for one frame, as Zeek's TCP analyzer does
/// (`TCPSessionAdapter::UpdateStateMachine`), by the sender's state:
/// - inactive: a SYN from the originator makes it SYN_SENT (SYN_ACK_SENT with ACK). A SYN from the responder
///   establishes it, and its peer too if that had sent a SYN. A SYN without ACK from the responder after the
///   originator's SYN+ACK is a SYN/SYN-ACK reversal: Zeek flips the roles (`Connection::FlipRoles`) and
///   establishes both; the return value says so. Then a FIN closes it and a RST resets it. A frame
///   with none of these makes it PARTIAL, except a pure ACK after the peer was established (the SYN was missed:
///   established) and an empty frame from the responder while the originator's SYN is unanswered (some stacks
///   ACK a SYN before answering it: no change).
/// - SYN_SENT / SYN_ACK_SENT: a FIN closes it, a RST resets it; nothing else moves it (it was established by
///   the peer's SYN+ACK).
/// - established / partial: a SYN without ACK from a partial side whose peer is inactive makes it SYN_SENT; a
///   FIN (without RST) closes it, and turns a peer that had sent a FIN and then a RST back to closed; a RST
///   resets it.
/// - closed: a RST resets it unless the peer closed too.
/// - reset: nothing changes.
pub fn step(
    me: &mut Endpoint,
    peer: &mut Endpoint,
    is_orig: bool,
    flags: u16,
    payload_len: u32,
) -> bool {
    let mut flip = false;
    use State::*;
    let (syn, ack, fin, rst) = (
        flags & TCP_SYN != 0,
        flags & TCP_ACK != 0,
        flags & TCP_FIN != 0,
        flags & TCP_RST != 0,
    );
    match me.state {
        Inactive => {
            if syn {
                if is_orig {
                    me.set(if ack { SynAckSent } else { SynSent });
                } else {
                    if !ack && peer.state == SynAckSent {
                        flip = true;
                        peer.set(Established);
                    }
                    if peer.state == SynSent {
                        peer.set(Established);
                    }
                    me.set(Established);
                }
            }
            if fin {
                me.set(Closed);
            }
            if rst {
                me.set(Reset);
            }
            if me.state == Inactive {
                if !is_orig && payload_len == 0 && peer.state == SynSent {
                    // An ACK of the SYN before the SYN+ACK: not a partial connection.
                } else if ack && peer.state == Established {
                    me.set(Established);
                } else {
                    me.set(Partial);
                }
            }
        }
        SynSent | SynAckSent => {
            if fin {
                me.set(Closed);
            }
            if rst {
                me.set(Reset);
            }
        }
        Established | Partial => {
            if syn && !ack && me.state == Partial && peer.state == Inactive {
                me.set(SynSent);
            }
            if fin && !rst {
                me.set(Closed);
                if peer.state == Reset && peer.prev == Closed {
                    peer.set(Closed);
                }
            }
            if rst {
                me.set(Reset);
            }
        }
        Closed => {
            if rst && peer.state != Closed {
                me.set(Reset);
            }
        }
        Reset => {}
    }
    flip
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
    orig: &State,
    resp: &State,
    orig_bytes: u64,
    resp_bytes: u64,
    history: &str,
) -> &'static str {
    use State::*;
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

/// Zeek's history: the letters in frame order, upper case when the sender was the originator at the time
/// (a flip does not recase the letters before it, as `Connection::FlipRoles` adds `^` and moves on).
#[derive(Default)]
pub struct History {
    letters: Vec<u8>,
    /// Per role (0 originator, 1 responder), the letters already recorded once (a bit per letter): Zeek keeps
    /// them in the connection's `hist_seen`, by role.
    seen: [u16; 2],
    /// Per endpoint (0 the key's first), the last SYN, FIN and RST sequence numbers, which decide whether those
    /// letters repeat (`TCP_Endpoint::hist_last_SYN` ...: they move with the endpoint when roles flip).
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
    /// Records one frame from the key's first endpoint (`a`) or the other, sent by the originator or not
    /// (`update_history` in `src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc`):
    /// - `s`/`h`: a SYN without / with ACK; `f`: a FIN; `r`: a RST. Each is recorded the first time, and again
    ///   only when its sequence number differs from the last of that kind from that side (for a FIN the
    ///   sequence number after its payload, since a FIN comes at the end of the data).
    /// - `q`: SYN together with FIN or RST; `i`: FIN together with RST (the letters of such a packet's flags are
    ///   not recorded). Once per side.
    /// - `d`: payload, `a`: a pure ACK (no SYN, FIN, RST nor payload). Once per side.
    pub fn add(&mut self, a: bool, is_orig: bool, flags: u16, seq: u32, payload_len: u32) {
        let e = usize::from(!a);
        let (syn, fin, rst) = (
            flags & TCP_SYN != 0,
            flags & TCP_FIN != 0,
            flags & TCP_RST != 0,
        );
        let bits = u8::from(syn) + u8::from(fin) + u8::from(rst);
        if bits > 1 {
            if fin && rst {
                self.once(is_orig, H_CORRUPT, b'I');
            } else {
                self.once(is_orig, H_MULTI, b'Q');
            }
        } else if syn {
            let code = if flags & TCP_ACK != 0 { b'H' } else { b'S' };
            if self.once(is_orig, H_SYN, code) && self.last_syn[e] != Some(seq) {
                self.push(is_orig, code);
            }
            self.last_syn[e] = Some(seq);
        } else if fin {
            let end = seq.wrapping_add(payload_len);
            if self.once(is_orig, H_FIN, b'F') && self.last_fin[e] != Some(end) {
                self.push(is_orig, b'F');
            }
            self.last_fin[e] = Some(end);
        } else if rst {
            if self.once(is_orig, H_RST, b'R') && self.last_rst[e] != Some(seq) {
                self.push(is_orig, b'R');
            }
            self.last_rst[e] = Some(seq);
        } else if payload_len > 0 {
            self.once(is_orig, H_DATA, b'D');
        } else if flags & TCP_ACK != 0 {
            self.once(is_orig, H_ACK, b'A');
        }
    }

    /// The history as bytes (for parking): the last sequence numbers, the letters seen, then the letters.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let lasts = [self.last_syn, self.last_fin, self.last_rst];
        let mut present = 0u8;
        for (i, v) in lasts.iter().flatten().enumerate() {
            present |= u8::from(v.is_some()) << i;
        }
        out.push(present);
        for v in lasts.iter().flatten().flatten() {
            put_varint(out, u64::from(*v));
        }
        put_varint(out, u64::from(self.seen[0]));
        put_varint(out, u64::from(self.seen[1]));
        put_varint(out, self.letters.len() as u64);
        out.extend_from_slice(&self.letters);
    }

    /// The inverse of [`History::encode`], from `pos` of `b`.
    pub(super) fn decode(b: &[u8], pos: &mut usize) -> Option<History> {
        let present = *b.get(*pos)?;
        *pos += 1;
        let mut h = History::default();
        let mut bit = 0;
        for last in [&mut h.last_syn, &mut h.last_fin, &mut h.last_rst] {
            for v in last.iter_mut() {
                if present >> bit & 1 == 1 {
                    *v = Some(u32::try_from(get_varint(b, pos)?).ok()?);
                }
                bit += 1;
            }
        }
        h.seen[0] = u16::try_from(get_varint(b, pos)?).ok()?;
        h.seen[1] = u16::try_from(get_varint(b, pos)?).ok()?;
        let n = usize::try_from(get_varint(b, pos)?).ok()?;
        h.letters = b.get(*pos..pos.checked_add(n)?)?.to_vec();
        *pos += n;
        Some(h)
    }

    /// Bytes the letters take (they grow with the frames; the rest is a few bytes).
    pub(super) fn len(&self) -> usize {
        self.letters.len()
    }

    /// The roles flipped (`Connection::FlipRoles`).
    pub fn flip(&mut self) {
        self.letters.push(b'^');
    }

    fn push(&mut self, is_orig: bool, code: u8) {
        self.letters.push(if is_orig {
            code
        } else {
            code.to_ascii_lowercase()
        });
    }

    /// Zeek's `Connection::CheckHistory`: records the letter the first time its role sends it; true when it
    /// had been recorded before.
    fn once(&mut self, is_orig: bool, bit: u16, code: u8) -> bool {
        let r = usize::from(!is_orig);
        if self.seen[r] & bit == 0 {
            self.seen[r] |= bit;
            self.push(is_orig, code);
            false
        } else {
            true
        }
    }

    /// The letters.
    pub fn render(&self) -> String {
        String::from_utf8_lossy(&self.letters).into_owned()
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
