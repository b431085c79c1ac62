//! etherparse as a test oracle for the decoder: random Ethernet (0-2 VLAN tags) / IPv4 or IPv6 / TCP frames,
//! built with etherparse's `PacketBuilder`, must decode to the same addresses, ports, flags, sequence and
//! acknowledgment numbers, window and payload length as etherparse's own `SlicedPacket::from_ethernet` reads.
//!
//! Only frames both decoders must agree on are generated (whole headers, exact IP lengths); where traceflow
//! follows tshark instead (see the header of `src/decode/mod.rs`), the unit tests cover it.

use std::net::IpAddr;

use etherparse::{
    NetSlice, PacketBuilder, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice, VlanId,
};
use proptest::prelude::*;
use traceflow::decode::{decode, numbers::LINKTYPE_ETHERNET};

/// One random frame's parameters.
#[derive(Debug, Clone)]
struct Spec {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    vlans: Vec<u16>,
    /// The IPv4 addresses, used when `v6` is None.
    v4: ([u8; 4], [u8; 4]),
    /// The IPv6 addresses of an IPv6 frame.
    v6: Option<([u8; 16], [u8; 16])>,
    /// TTL or hop limit.
    ttl: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u16,
    window: u16,
    urgent: u16,
    options: Vec<TcpOptionElement>,
    payload: Vec<u8>,
}

fn option() -> impl Strategy<Value = TcpOptionElement> {
    prop_oneof![
        Just(TcpOptionElement::Noop),
        any::<u16>().prop_map(TcpOptionElement::MaximumSegmentSize),
        (0u8..15).prop_map(TcpOptionElement::WindowScale),
        Just(TcpOptionElement::SelectiveAcknowledgementPermitted),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| TcpOptionElement::Timestamp(a, b)),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            prop::collection::vec(0u16..4096, 0..=2),
        ),
        (
            any::<([u8; 4], [u8; 4])>(),
            prop::option::of(any::<([u8; 16], [u8; 16])>()),
            1u8..=255,
        ),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            0u16..0x200,
            any::<u16>(),
            any::<u16>(),
        ),
        (
            prop::collection::vec(option(), 0..4),
            prop::collection::vec(any::<u8>(), 0..200),
        ),
    )
        .prop_map(
            |(
                (src_mac, dst_mac, vlans),
                (v4, v6, ttl),
                (sport, dport, seq, ack, flags, window, urgent),
                (options, payload),
            )| Spec {
                src_mac,
                dst_mac,
                vlans,
                v4,
                v6,
                ttl,
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                urgent,
                options,
                payload,
            },
        )
}

fn tcp_header(s: &Spec) -> TcpHeader {
    let mut h = TcpHeader::new(s.sport, s.dport, s.seq, s.window);
    h.acknowledgment_number = s.ack;
    h.fin = s.flags & 0x001 != 0;
    h.syn = s.flags & 0x002 != 0;
    h.rst = s.flags & 0x004 != 0;
    h.psh = s.flags & 0x008 != 0;
    h.ack = s.flags & 0x010 != 0;
    h.urg = s.flags & 0x020 != 0;
    h.ece = s.flags & 0x040 != 0;
    h.cwr = s.flags & 0x080 != 0;
    h.ns = s.flags & 0x100 != 0;
    h.urgent_pointer = s.urgent;
    h.set_options(&s.options)
        .expect("at most 4 short options fit");
    h
}

fn build(s: &Spec) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(s.src_mac, s.dst_mac);
    let vid = |v: u16| VlanId::try_new(v).unwrap();
    let mut out = Vec::new();
    // Each builder step has its own type, so every path is spelled out.
    macro_rules! finish {
        ($b:expr) => {
            match s.v6 {
                None => $b
                    .ipv4(s.v4.0, s.v4.1, s.ttl)
                    .tcp_header(tcp_header(s))
                    .write(&mut out, &s.payload),
                Some((a, b)) => $b
                    .ipv6(a, b, s.ttl)
                    .tcp_header(tcp_header(s))
                    .write(&mut out, &s.payload),
            }
        };
    }
    match s.vlans[..] {
        [] => finish!(eth),
        [v] => finish!(eth.single_vlan(vid(v))),
        [o, i, ..] => finish!(eth.double_vlan(vid(o), vid(i))),
    }
    .expect("writing to a Vec");
    out
}

/// What etherparse reads: (src, dst, sport, dport, flags, seq, ack, window, payload length).
fn oracle(frame: &[u8]) -> (IpAddr, IpAddr, u16, u16, u16, u32, u32, u16, usize) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse reads what it built");
    let (src, dst) = match p.net.expect("an IP layer") {
        NetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("a TCP layer");
    };
    let flags = [
        t.fin(),
        t.syn(),
        t.rst(),
        t.psh(),
        t.ack(),
        t.urg(),
        t.ece(),
        t.cwr(),
        t.ns(),
    ]
    .iter()
    .enumerate()
    .fold(0u16, |f, (i, &b)| f | (u16::from(b) << i));
    (
        src,
        dst,
        t.source_port(),
        t.destination_port(),
        flags,
        t.sequence_number(),
        t.acknowledgment_number(),
        t.window_size(),
        t.payload().len(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoder_agrees_with_etherparse(s in spec()) {
        let frame = build(&s);
        let want = oracle(&frame);
        let d = decode(LINKTYPE_ETHERNET, &frame);
        let t = d.tcp.unwrap_or_else(|| panic!("no TCP in {} ({:02x?})", d.protocols(), frame));
        let got = (
            t.src,
            t.dst,
            t.sport,
            t.dport,
            t.flags,
            t.seq,
            t.ack,
            t.window.expect("the whole header is captured"),
            t.payload_len as usize,
        );
        prop_assert_eq!(got, want);
        // The builder's own values, so that both decoders cannot agree on a misreading.
        prop_assert_eq!((t.sport, t.dport, t.seq, t.ack, t.flags), (s.sport, s.dport, s.seq, s.ack, s.flags));
        prop_assert_eq!(t.payload_len as usize, s.payload.len());
        let vlans = d.layers().iter().filter(|l| l.layer == traceflow::decode::Layer::Vlan).count();
        prop_assert_eq!(vlans, s.vlans.len());
    }
}
