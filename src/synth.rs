//! Synthetic TCP traffic: builds Ethernet/IPv4/TCP frames and small sample captures for the demo and tests.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::dump::pcapwrite::PcapWriter;

/// One TCP segment to build.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
    pub flags: u8,
    /// TCP payload.
    pub payload: &'a [u8],
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet II frame carrying IPv4 and the TCP segment, with valid checksums.
pub fn eth_ipv4_tcp(s: &Segment) -> Vec<u8> {
    let tcp_len = 20 + s.payload.len();
    let total = 20 + tcp_len;
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    ip.extend_from_slice(&s.src.octets());
    ip.extend_from_slice(&s.dst.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&s.sport.to_be_bytes());
    tcp.extend_from_slice(&s.dport.to_be_bytes());
    tcp.extend_from_slice(&s.seq.to_be_bytes());
    tcp.extend_from_slice(&s.ack.to_be_bytes());
    tcp.extend_from_slice(&[0x50, s.flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(s.payload);
    let mut pseudo = Vec::with_capacity(12 + tcp_len);
    pseudo.extend_from_slice(&s.src.octets());
    pseudo.extend_from_slice(&s.dst.octets());
    pseudo.extend_from_slice(&[0, 6, (tcp_len >> 8) as u8, tcp_len as u8]);
    pseudo.extend_from_slice(&tcp);
    let c = checksum(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&tcp);
    f
}

/// The frames of `conns` complete HTTP-like conversations (handshake, request, response, FIN both ways),
/// interleaved, with a few port reuses so that FIN-then-reopen shows in the index. Timestamps in ns.
pub fn conversations(conns: u32, start_ns: i64) -> Vec<(i64, Vec<u8>)> {
    let client = Ipv4Addr::new(192, 168, 1, 10);
    let server = Ipv4Addr::new(10, 0, 0, 80);
    let mut frames = Vec::new();
    let mut t = start_ns;
    let req = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for i in 0..conns {
        // Conversations come in pairs on one client port: the second reopens the key after the first's FIN.
        let sport = 40000 + (i / 2) as u16;
        let c = |seq, ack, flags, payload: &'static [u8]| Segment {
            src: client,
            sport,
            dst: server,
            dport: 80,
            seq,
            ack,
            flags,
            payload,
        };
        let s = |seq, ack, flags, payload: &'static [u8]| Segment {
            src: server,
            sport: 80,
            dst: client,
            dport: sport,
            seq,
            ack,
            flags,
            payload,
        };
        let segs = [
            c(1000, 0, 0x02, b""),
            s(5000, 1001, 0x12, b""),
            c(1001, 5001, 0x10, b""),
            c(1001, 5001, 0x18, req),
            s(5001, 1001 + req.len() as u32, 0x18, resp),
            c(1001 + req.len() as u32, 5001 + resp.len() as u32, 0x11, b""),
            s(5001 + resp.len() as u32, 1002 + req.len() as u32, 0x11, b""),
        ];
        for seg in &segs {
            t += 1_250_000;
            frames.push((t, eth_ipv4_tcp(seg)));
        }
    }
    frames
}

/// How many TCP connections tshark (`-z conv,tcp`, `tcp.stream`) and `traceflow connections` count in
/// [`conversations`]`(conns, _)`: the exchanges come in pairs on one client port with the same initial sequence
/// number, which tshark does not take for a port reuse, so each pair is one connection.
pub fn connections_in(conns: u32) -> u32 {
    conns.div_ceil(2)
}

/// Writes a small pcap of `conns` conversations (the README's demo capture).
pub fn write_sample(path: &Path, conns: u32) -> io::Result<()> {
    write_sample_to(std::fs::File::create(path)?, conns, false)
}

/// Writes the sample capture to `file`, as pcapng when `pcapng`, else as pcap (µs, the machine's byte order).
pub fn write_sample_to(file: std::fs::File, conns: u32, pcapng: bool) -> io::Result<()> {
    let f = io::BufWriter::new(file);
    let frames = conversations(conns, 1_700_000_000_000_000_000);
    let mut f = if pcapng {
        let mut w = crate::dump::pcapwrite::PcapNgWriter::new(f)?;
        let iface = w.add_interface(1, 65535, 6)?;
        for (ts, data) in frames {
            w.write(iface, ts, data.len() as u32, &data)?;
        }
        w.into_inner()
    } else {
        let mut w = PcapWriter::new(f, 1, 65535, false, false)?;
        for (ts, data) in frames {
            w.write(ts, data.len() as u32, &data)?;
        }
        w.into_inner()
    };
    std::io::Write::flush(&mut f)
}
