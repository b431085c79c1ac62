//! Frame builders and checks shared by the decoder's unit tests.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{decode, Decoded, Layer, Tcp};

pub(super) const A4: [u8; 4] = [10, 0, 0, 1];
pub(super) const B4: [u8; 4] = [10, 0, 0, 2];
pub(super) const PAYLOAD: &[u8] = b"hello";

pub(super) fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

pub(super) fn v6(last: u8) -> IpAddr {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[15] = last;
    IpAddr::V6(Ipv6Addr::from(a))
}

/// A TCP header (data offset 5 + `opt_words`) with `payload`.
pub(super) fn tcp_seg(
    sport: u16,
    dport: u16,
    flags: u16,
    opt_words: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&1000u32.to_be_bytes());
    v.extend_from_slice(&2000u32.to_be_bytes());
    v.extend_from_slice(&((u16::from(5 + opt_words) << 12) | flags).to_be_bytes());
    v.extend_from_slice(&512u16.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend(std::iter::repeat_n(1u8, opt_words as usize * 4));
    v.extend_from_slice(payload);
    v
}

pub(super) fn seg() -> Vec<u8> {
    tcp_seg(1234, 80, 0x018, 0, PAYLOAD)
}

pub(super) fn ip4_full(
    proto: u8,
    body: &[u8],
    src: [u8; 4],
    dst: [u8; 4],
    opt_words: u8,
    frag: u16,
) -> Vec<u8> {
    let ihl = 5 + opt_words;
    let total = (ihl as usize * 4 + body.len()) as u16;
    let mut v = vec![0x40 | ihl, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend(std::iter::repeat_n(1u8, opt_words as usize * 4));
    v.extend_from_slice(body);
    v
}

pub(super) fn ip4(proto: u8, body: &[u8]) -> Vec<u8> {
    ip4_full(proto, body, A4, B4, 0, 0)
}

pub(super) fn ip6(nh: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nh, 64]);
    for last in [1u8, 2] {
        if let IpAddr::V6(a) = v6(last) {
            v.extend_from_slice(&a.octets());
        }
    }
    v.extend_from_slice(body);
    v
}

pub(super) fn eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x66, 0x77, 0x88, 0x99, 0xaa,
    ];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub(super) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(super) fn udp(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(body);
    v
}

/// A GTPv1 header with flags `fl`, message type `mt`, optional fields + extension headers `opt`, and the
/// length field set.
pub(super) fn gtpu(fl: u8, mt: u8, opt: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = vec![fl, mt];
    v.extend_from_slice(&((opt.len() + body.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1]);
    v.extend_from_slice(opt);
    v.extend_from_slice(body);
    v
}

pub(super) fn gre(flags: u16, proto: u16, extra: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(extra);
    v.extend_from_slice(body);
    v
}

pub(super) fn eth_ip4_tcp() -> Vec<u8> {
    eth(0x0800, &ip4(6, &seg()))
}

/// The frame is TCP 10.0.0.1:1234 -> 10.0.0.2:80 [PSH ACK] with 5 payload bytes, and its layers are `protos`.
pub(super) fn check4(linktype: u32, frame: &[u8], protos: &str) -> Tcp {
    check(linktype, frame, v4(A4), v4(B4), protos)
}

pub(super) fn check6(linktype: u32, frame: &[u8], protos: &str) -> Tcp {
    check(linktype, frame, v6(1), v6(2), protos)
}

/// With DECODE_TEST_PCAP_DIR set, append the frame to DIR/TEST-LINKTYPE-tcp|none.pcap (for checking the
/// expectations of these tests against tshark).
pub(super) fn record(linktype: u32, frame: &[u8], tcp: bool) {
    use std::io::Write;
    let Some(dir) = std::env::var_os("DECODE_TEST_PCAP_DIR") else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("t")
        .replace("::", ".");
    let kind = if tcp { "tcp" } else { "none" };
    let path = std::path::Path::new(&dir).join(format!("{test}-{linktype}-{kind}.pcap"));
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    if new {
        let mut h = vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0];
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        f.write_all(&h).unwrap();
    }
    let mut r = vec![0u8; 8];
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    r.extend_from_slice(frame);
    f.write_all(&r).unwrap();
}

pub(super) fn check(linktype: u32, frame: &[u8], src: IpAddr, dst: IpAddr, protos: &str) -> Tcp {
    record(linktype, frame, true);
    let d = decode(linktype, frame);
    assert_eq!(d.protocols(), protos);
    let t = d.tcp.expect("a TCP frame");
    assert_eq!((t.src, t.dst, t.sport, t.dport), (src, dst, 1234, 80));
    assert_eq!((t.flags, t.payload_len, t.hdr_len), (0x018, 5, 20));
    assert_eq!((t.seq, t.ack, t.window), (1000, 2000, Some(512)));
    assert_eq!(t.offset as usize, frame.len() - 25);
    let last = d.layers().last().unwrap();
    assert_eq!(
        (last.layer, last.offset, last.len),
        (Layer::Tcp, t.offset, 20)
    );
    t
}

pub(super) fn no_tcp(linktype: u32, frame: &[u8]) -> Decoded {
    record(linktype, frame, false);
    let d = decode(linktype, frame);
    assert_eq!(d.tcp, None, "{}", d.protocols());
    d
}

pub(super) fn wlan_data(fc0: u8, fc1: u8, addrs: usize, extra: &[u8]) -> Vec<u8> {
    let mut v = vec![fc0, fc1, 0, 0];
    v.extend(std::iter::repeat_n(0x11u8, 6 * addrs));
    v.splice(22.min(v.len())..22.min(v.len()), [0x10, 0x00]); // sequence control, fragment 0
    v.extend_from_slice(extra);
    v.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00]);
    v.extend_from_slice(&ip4(6, &seg()));
    v
}
