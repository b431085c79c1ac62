//! The tracer's parking path: a tracer holding at most k (1..=8) open flows in memory, parking the others in its
//! temporary database, must trace exactly as the in-memory one.
//!
//! Input: byte 0 picks k; then 3-byte tuples (key, flags, time step). The key byte names one of 128 directed
//! keys (IPv4 or IPv6, either direction, 8 hosts, 4 client ports), so flows are revisited, parked and taken back;
//! bit 0 of the flags byte is FIN (the rest goes to the TCP flags and payload length); the step (0..=255 µs, 0
//! repeats a timestamp, hence a label) advances the clock.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use traceflow::decode::Tcp;
use traceflow::capture::Timestamp;
use traceflow::trace::{FlowRecord, Tracer};

fn segment(key: u8, flags: u8) -> Tcp {
    let host = key & 7;
    let (client, server): (IpAddr, IpAddr) = if key & 0x80 != 0 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10 + host as u16)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + host)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        )
    };
    let cport = 40000 + ((key >> 3) & 3) as u16;
    let reverse = key & 0x40 != 0;
    let (src, sport, dst, dport) = if reverse {
        (server, 80, client, cport)
    } else {
        (client, cport, server, 80)
    };
    Tcp {
        src,
        dst,
        sport,
        dport,
        seq: 0,
        ack: 0,
        // FIN from bit 0; SYN/RST/PSH/ACK from the others (they must change nothing).
        flags: (flags & 0x1f) as u16,
        hdr_len: 20,
        window: Some(0),
        payload_len: (flags >> 5) as u32 * 100,
        offset: 34,
    }
}

#[derive(Default)]
struct Run {
    /// Per frame: (flow number, previous frame of the flow).
    links: Vec<(u32, Option<u64>)>,
    /// Closed flows in closing order, with the frame number that was being observed when each came out.
    closed: Vec<(u64, FlowRecord)>,
    open: Vec<FlowRecord>,
    created: u32,
}

fn run(mut t: Tracer, frames: &[(Tcp, Timestamp, u32)]) -> Run {
    let mut r = Run::default();
    for (i, (tcp, ts, origlen)) in frames.iter().enumerate() {
        let n = i as u64 + 1;
        let closed = &mut r.closed;
        let link = t.observe_linked(n, ts, *origlen, tcp, &mut |rec| closed.push((n, rec)));
        r.links.push(link);
    }
    r.created = t.created();
    let open = &mut r.open;
    t.finish(&mut |rec| open.push(rec))
        .expect("parking never fails here");
    r
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let k = 1 + (pick % 8) as usize;
    let mut us: i64 = 1_700_000_000_000_000;
    let frames: Vec<(Tcp, Timestamp, u32)> = rest
        .chunks_exact(3)
        .map(|c| {
            us += c[2] as i64;
            let ts = Timestamp::new(us / 1_000_000, (us % 1_000_000) as u64, 6);
            (segment(c[0], c[1]), ts, 54 + c[2] as u32)
        })
        .collect();

    let parked = run(Tracer::with_max_open(k), &frames);
    let memory = run(Tracer::new(), &frames);

    assert_eq!(parked.created, memory.created, "flows created");
    for (i, (p, m)) in parked.links.iter().zip(&memory.links).enumerate() {
        assert_eq!(p, m, "frame {}: (flow, previous frame) with k={k}", i + 1);
    }
    assert_eq!(parked.closed, memory.closed, "closed flows (order included) with k={k}");
    assert_eq!(parked.open, memory.open, "finish() output (order included) with k={k}");

    // What holds of either run on its own.
    let r = &memory;
    assert_eq!(r.open.len() + r.closed.len(), r.created as usize, "every flow is open or closed once");
    for w in r.open.windows(2) {
        assert!(w[0].flow_no < w[1].flow_no, "finish() goes in creation order");
    }
    let mut packets = 0u64;
    for (at, rec) in &r.closed {
        assert_eq!(rec.closed_frame, Some(*at), "a flow closes on the frame that carries its FIN");
        assert!(frames[*at as usize - 1].0.fin());
        packets += rec.packets;
    }
    for rec in &r.open {
        assert_eq!(rec.closed_frame, None);
        packets += rec.packets;
    }
    assert_eq!(packets, frames.len() as u64, "every frame is in exactly one flow");
    // A frame's link is the previous frame of the same flow, and a flow's first frame has none.
    let mut last: std::collections::HashMap<u32, u64> = Default::default();
    for (i, (no, prev)) in r.links.iter().enumerate() {
        assert_eq!(*prev, last.get(no).copied(), "frame {} links to its flow's previous frame", i + 1);
        last.insert(*no, i as u64 + 1);
    }
    for rec in r.open.iter().chain(r.closed.iter().map(|c| &c.1)) {
        assert_eq!(last.get(&rec.flow_no), Some(&rec.last_frame), "last_frame of flow {}", rec.flow_no);
    }
});
