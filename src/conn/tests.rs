//! Zeek's connection rules on hand-built segments, each named by the Zeek source it follows (the tracker
//! fed directly; the ingest and the stored rows are checked in tests/it/zeek.rs).

use std::net::IpAddr;

use super::{ConnRecord, ConnSeg, Connections};

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const RST: u16 = 0x04;
const PSH: u16 = 0x08;
const ACK: u16 = 0x10;

/// Segments between A (10.0.0.1) and B (10.0.0.2) on the ports given.
struct Talk {
    segs: Vec<ConnSeg>,
    a_port: u16,
    b_port: u16,
}

impl Talk {
    fn new(a_port: u16, b_port: u16) -> Talk {
        Talk {
            segs: Vec::new(),
            a_port,
            b_port,
        }
    }

    fn seg(mut self, from_a: bool, flags: u16, seq: u32, ack: u32, len: u32) -> Talk {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (src, sport, dst, dport) = if from_a {
            (a, self.a_port, b, self.b_port)
        } else {
            (b, self.b_port, a, self.a_port)
        };
        let n = self.segs.len() as u64 + 1;
        self.segs.push(ConnSeg {
            number: n,
            ts_ns: n as i64 * 1000,
            origlen: 54 + len,
            src,
            sport,
            dst,
            dport,
            flags,
            seq,
            ack,
            payload_len: len,
            flow_no: u32::from(!from_a) + 1,
            ip_len: Some(40 + len),
            truncated: false,
        });
        self
    }

    fn a(self, flags: u16, seq: u32, ack: u32, len: u32) -> Talk {
        self.seg(true, flags, seq, ack, len)
    }

    fn b(self, flags: u16, seq: u32, ack: u32, len: u32) -> Talk {
        self.seg(false, flags, seq, ack, len)
    }

    /// The last segment's TCP header was not captured whole.
    fn truncated(mut self) -> Talk {
        self.segs.last_mut().unwrap().truncated = true;
        self
    }

    /// The three-way handshake, A (ISN 100) to B (ISN 500).
    fn handshake(self) -> Talk {
        self.a(SYN, 100, 0, 0)
            .b(SYN | ACK, 500, 101, 0)
            .a(ACK, 101, 501, 0)
    }

    fn records(&self) -> Vec<ConnRecord> {
        let mut t = Connections::new(0);
        let mut out = Vec::new();
        for s in &self.segs {
            t.observe(s, &mut |r| out.push(r));
        }
        t.finish(&mut |r| out.push(r)).unwrap();
        out
    }

    fn one(&self) -> ConnRecord {
        let mut r = self.records();
        assert_eq!(r.len(), 1, "{r:?}");
        r.remove(0)
    }
}

fn bytes(r: &ConnRecord) -> (u64, u64, u64, u64) {
    (
        r.orig_bytes,
        r.resp_bytes,
        r.orig_payload_bytes,
        r.resp_payload_bytes,
    )
}

/// TCP_Endpoint::Size (src/analyzer/protocol/tcp/TCP_Endpoint.cc): the sequence span less the SYN and FIN octets;
/// retransmitted and duplicate payload counts once (Zeek's ssh-dups case), while the payload sum counts it again.
#[test]
fn bytes_are_the_sequence_span_not_the_payload_sum() {
    let r = Talk::new(40000, 22)
        .handshake()
        .a(PSH | ACK, 101, 501, 100)
        .a(PSH | ACK, 101, 501, 100)
        .a(PSH | ACK, 101, 501, 100)
        .b(PSH | ACK, 501, 201, 40)
        .b(PSH | ACK, 501, 201, 40)
        .a(FIN | ACK, 201, 541, 0)
        .b(FIN | ACK, 541, 202, 0)
        .a(ACK, 202, 542, 0)
        .one();
    assert_eq!(bytes(&r), (100, 40, 300, 80));
    assert_eq!((r.conn_state, r.history.as_str()), ("SF", "ShADdFf"));
    // orig_ip_bytes: the IP total lengths (IP_Hdr::TotalLen, summed by the ConnSize analyzer).
    assert_eq!(r.orig_ip_bytes, Some(40 * 7 + 300));
    assert_eq!(r.resp_ip_bytes, Some(40 * 4 + 80));
}

/// init_endpoint (TCPSessionAdapter.cc): without a SYN, the numbering starts one before the first segment, as
/// though a SYN had been seen; init_peer does the same from the first acknowledgment of a silent peer.
#[test]
fn a_missing_handshake_numbers_from_the_first_segment_or_ack() {
    let r = Talk::new(40000, 80)
        .a(PSH | ACK, 1000, 7000, 50)
        .a(PSH | ACK, 1050, 7000, 50)
        .one();
    assert_eq!(bytes(&r), (100, 0, 100, 0));
    // B never sent, but A acknowledged up to 7000: B's start is 6999, and its ack position 7000 is 1 octet, the
    // "SYN" Size takes off.
    assert_eq!(r.resp_bytes, 0);
    // B then sends 30 bytes from 7000 and A acks them: 30.
    let r = Talk::new(40000, 80)
        .a(PSH | ACK, 1000, 7000, 50)
        .b(PSH | ACK, 7000, 1050, 30)
        .a(ACK, 1050, 7030, 0)
        .one();
    assert_eq!(bytes(&r), (50, 30, 50, 30));
}

/// UpdateLastSeq / ToFullSeqSpace (TCP_Endpoint.h): a sequence number going back numerically while moving forward
/// counts a wrap, so the span crosses 2^32.
#[test]
fn the_span_crosses_a_sequence_number_wrap() {
    let isn = 0xFFFF_FF00u32;
    let t = Talk::new(40000, 80)
        .a(SYN, isn, 0, 0)
        .b(SYN | ACK, 500, isn.wrapping_add(1), 0)
        .a(ACK, isn.wrapping_add(1), 501, 0)
        .a(PSH | ACK, isn.wrapping_add(1), 501, 0x100)
        .a(PSH | ACK, isn.wrapping_add(0x101), 501, 0x100);
    // From the segments' ends (last_seq) alone, and from the peer's acknowledgments (ack_seq) alone.
    assert_eq!(t.one().orig_bytes, 0x200);
    let mut acked = Talk::new(40000, 80)
        .a(SYN, isn, 0, 0)
        .b(SYN | ACK, 500, isn.wrapping_add(1), 0)
        .a(ACK, isn.wrapping_add(1), 501, 0);
    for k in 1..=4u32 {
        acked = acked.b(ACK, 501, isn.wrapping_add(1 + k * 0x80), 0);
    }
    assert_eq!(acked.one().orig_bytes, 0x200);
}

/// update_last_seq (TCPSessionAdapter.cc): a FIN moves last_seq even backwards in 32-bit terms when only the SYN
/// was seen before it ("> 2 GB connections for which we've only seen the SYN and the FIN").
#[test]
fn a_fin_after_only_the_syn_gives_the_whole_span() {
    let r = Talk::new(40000, 80)
        .a(SYN, 1000, 0, 0)
        .a(FIN | ACK, 1001 + 3_000_000_000, 0, 0)
        .one();
    assert_eq!(r.orig_bytes, 3_000_000_000);
    // Without the rule the FIN's end would be 1.3e9 behind in signed 32-bit terms and ignored: 0.
}

/// get_segment_len (TCPSessionAdapter.cc): a RST's payload is not stream data; update_last_seq: nothing after
/// the endpoint's RST is trusted.
#[test]
fn a_rst_carries_no_stream_bytes_and_nothing_after_it_counts() {
    let r = Talk::new(40000, 80)
        .handshake()
        .a(PSH | ACK, 101, 501, 10)
        .a(RST | ACK, 111, 501, 200)
        .a(PSH | ACK, 111, 501, 500)
        .one();
    assert_eq!(r.orig_bytes, 10);
    assert_eq!(r.orig_payload_bytes, 710);
}

/// TCP_Endpoint::Size: an endpoint that sent a SYN then a RST, whose peer never became active but whose sequence
/// space was acknowledged (an "eccentric" ACK of the SYN), is 0: "a half-open connection discovered and aborted".
#[test]
fn a_half_open_connection_aborted_is_zero_bytes() {
    let r = Talk::new(40000, 80)
        .a(SYN, 100, 0, 0)
        .b(ACK, 900, 5000, 0)
        .a(RST, 101, 0, 0)
        .one();
    assert_eq!(r.orig_bytes, 0);
    assert_eq!(r.conn_state, "RSTOS0");
}

/// update_ack_seq (TCPSessionAdapter.cc): acknowledgments in RST segments are not trusted.
#[test]
fn an_ack_in_a_rst_does_not_grow_the_peer() {
    let r = Talk::new(40000, 80)
        .handshake()
        .b(RST | ACK, 501, 9101, 0)
        .one();
    assert_eq!(r.orig_bytes, 0);
    assert_eq!(r.conn_state, "RSTR");
}

/// TCPAnalyzer::WantConnection (src/packet_analysis/protocol/tcp/TCP.cc) with the system ports as the likely
/// server ports, and Connection::FlipRoles (src/Conn.cc) recording '^'.
#[test]
fn a_connection_seen_from_its_syn_ack_is_flipped_by_the_server_port() {
    // A SYN+ACK from port 443 to an ephemeral port: the receiver is the originator, history "^h...".
    let r = Talk::new(51000, 443)
        .b(SYN | ACK, 500, 101, 0)
        .a(ACK, 101, 501, 0)
        .a(PSH | ACK, 101, 501, 20)
        .b(PSH | ACK, 501, 121, 30)
        .one();
    assert_eq!((r.orig_h.as_str(), r.orig_p), ("10.0.0.1", 51000));
    assert_eq!((r.resp_h.as_str(), r.resp_p), ("10.0.0.2", 443));
    assert_eq!(r.history, "^hADd");
    assert_eq!((r.orig_pkts, r.resp_pkts), (2, 2));
    assert_eq!((r.orig_bytes, r.resp_bytes), (20, 30));
    // Both ports likely servers: a SYN+ACK is not flipped (it could be a stealth scan's) ...
    let r = Talk::new(443, 80).b(SYN | ACK, 500, 101, 0).one();
    assert_eq!((r.orig_p, r.history.as_str()), (80, "H"));
    // ... midstream traffic is, when it comes from the lower port,
    let r = Talk::new(443, 80).b(ACK, 500, 101, 0).one();
    assert_eq!((r.orig_p, r.history.as_str()), (443, "^a"));
    let r = Talk::new(80, 443).b(ACK, 500, 101, 0).one();
    assert_eq!((r.orig_p, r.history.as_str()), (443, "A"));
    // ... and neither port a likely server: the first sender stays the originator.
    let r = Talk::new(50000, 8080).b(SYN | ACK, 500, 101, 0).one();
    assert_eq!((r.orig_p, r.history.as_str()), (8080, "H"));
    // A pure SYN is never flipped, whatever its ports.
    let r = Talk::new(40000, 80).b(SYN, 500, 0, 0).one();
    assert_eq!((r.orig_p, r.history.as_str()), (80, "S"));
}

/// TCPSessionAdapter::UpdateInactiveState: a SYN without ACK from the responder after the originator's SYN+ACK
/// is a SYN/SYN-ACK reversal (the frames were reordered): Zeek flips the roles and records '^' after the 's'.
#[test]
fn a_syn_after_the_syn_ack_flips_the_roles() {
    let r = Talk::new(40000, 50000)
        .a(SYN | ACK, 500, 101, 0)
        .b(SYN, 100, 0, 0)
        .b(ACK, 101, 501, 0)
        .b(PSH | ACK, 101, 501, 5)
        .one();
    assert_eq!(r.history, "Hs^AD");
    assert_eq!((r.orig_p, r.resp_p), (50000, 40000));
    assert_eq!(r.conn_state, "S1");
    assert_eq!((r.orig_bytes, r.resp_bytes), (5, 0));
}

/// TCPAnalyzer::ExtractTCP_Header (TCP.cc): a segment whose data offset claims more than was captured never
/// reaches the connection: no packet, byte, history letter or state change. The partition is tshark's still.
#[test]
fn a_truncated_tcp_header_counts_nowhere() {
    let r = Talk::new(40000, 80)
        .handshake()
        .a(PSH | ACK, 101, 501, 10)
        .a(FIN | ACK, 111, 501, 0)
        .truncated()
        .b(RST | ACK, 501, 9000, 0)
        .truncated()
        .one();
    assert_eq!((r.orig_pkts, r.resp_pkts), (3, 1));
    assert_eq!(r.history, "ShAD");
    assert_eq!(r.conn_state, "S1");
    assert_eq!(r.orig_bytes, 10);
    assert_eq!(r.orig_ip_bytes, Some(130));
    // Still the frames of the one connection.
    assert_eq!(r.last_frame, 6);
}
