//! Writers for pcap and pcapng files: flow dumps, the demo sample and test fixtures.

use std::io::{self, Write};

/// A classic pcap writer with a chosen byte order and µs or ns timestamps.
pub struct PcapWriter<W: Write> {
    w: W,
    big_endian: bool,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the pcap file header to `w`: µs timestamps, or ns when `nanos`.
    pub fn new(
        mut w: W,
        linktype: u32,
        snaplen: u32,
        big_endian: bool,
        nanos: bool,
    ) -> io::Result<Self> {
        let magic: u32 = if nanos {
            crate::capture::PCAP_NS_LE
        } else {
            crate::capture::PCAP_US_LE
        };
        let mut h = Vec::with_capacity(24);
        let put32 = |h: &mut Vec<u8>, v: u32| {
            h.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        put32(&mut h, magic);
        let (maj, min) = (2u16, 4u16);
        for v in [maj, min] {
            h.extend_from_slice(&if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        put32(&mut h, 0); // thiszone
        put32(&mut h, 0); // sigfigs
        put32(&mut h, snaplen);
        put32(&mut h, linktype);
        w.write_all(&h)?;
        Ok(PcapWriter {
            w,
            big_endian,
            nanos,
        })
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// Writes one record; `ts_ns` is split into seconds and µs or ns as the header says. A time pcap cannot hold
    /// ([`pcap_time_fits`]) is written as the nearest it can, not wrapped.
    pub fn write(&mut self, ts_ns: i64, origlen: u32, data: &[u8]) -> io::Result<()> {
        let ts_ns = ts_ns.clamp(0, PCAP_LAST_NS);
        let sec = (ts_ns / 1_000_000_000) as u32;
        let sub = (ts_ns % 1_000_000_000) as u32;
        let frac = if self.nanos { sub } else { sub / 1000 };
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&self.u32(sec));
        h[4..8].copy_from_slice(&self.u32(frac));
        h[8..12].copy_from_slice(&self.u32(data.len() as u32));
        h[12..16].copy_from_slice(&self.u32(origlen));
        self.w.write_all(&h)?;
        self.w.write_all(data)
    }

    /// The writer given to `new`, after the last record.
    pub fn into_inner(self) -> W {
        self.w
    }
}

/// The last ns of pcap's unsigned 32-bit seconds (early 2106).
const PCAP_LAST_NS: i64 = (u32::MAX as i64 + 1) * 1_000_000_000 - 1;

/// Whether a pcap record holds the time `ts_ns`: from 1970 to 2106, its seconds being unsigned 32 bits.
pub fn pcap_time_fits(ts_ns: i64) -> bool {
    (0..=PCAP_LAST_NS).contains(&ts_ns)
}

/// Whether a pcapng packet block (with no `if_tsoffset`) holds the time `ts_ns`: its ticks are unsigned.
pub fn pcapng_time_fits(ts_ns: i64) -> bool {
    ts_ns >= 0
}

/// A little-endian pcapng writer: one section, interfaces added on demand, enhanced packet blocks.
pub struct PcapNgWriter<W: Write> {
    w: W,
    /// `if_tsresol` of each interface, to encode timestamps.
    tsresol: Vec<u8>,
}

fn block(btype: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&btype.to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(8 + padded, 0);
    b.extend_from_slice(&total.to_le_bytes());
    b
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the section header block to `w`; add interfaces before their first packets.
    pub fn new(mut w: W) -> io::Result<Self> {
        let mut body = Vec::new();
        body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
        w.write_all(&block(0x0A0D_0D0A, &body))?;
        Ok(PcapNgWriter {
            w,
            tsresol: Vec::new(),
        })
    }

    /// Adds an interface and returns its id. `tsresol` is pcapng's byte (6 = µs, 9 = ns).
    pub fn add_interface(&mut self, linktype: u32, snaplen: u32, tsresol: u8) -> io::Result<u32> {
        self.add_interface_offset(linktype, snaplen, tsresol, 0)
    }

    /// [`PcapNgWriter::add_interface`] with an `if_tsoffset` of `tsoffset` seconds (none when 0), for packets
    /// written with [`PcapNgWriter::write_ticks`] (test captures of times far from now).
    pub fn add_interface_offset(
        &mut self,
        linktype: u32,
        snaplen: u32,
        tsresol: u8,
        tsoffset: i64,
    ) -> io::Result<u32> {
        let mut body = Vec::new();
        body.extend_from_slice(&(linktype as u16).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&snaplen.to_le_bytes());
        if tsresol != 6 {
            body.extend_from_slice(&9u16.to_le_bytes());
            body.extend_from_slice(&1u16.to_le_bytes());
            body.extend_from_slice(&[tsresol, 0, 0, 0]);
        }
        if tsoffset != 0 {
            body.extend_from_slice(&14u16.to_le_bytes());
            body.extend_from_slice(&8u16.to_le_bytes());
            body.extend_from_slice(&tsoffset.to_le_bytes());
        }
        body.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        self.w.write_all(&block(1, &body))?;
        self.tsresol.push(tsresol);
        Ok(self.tsresol.len() as u32 - 1)
    }

    /// Writes an enhanced packet block on interface `iface`, with ticks at that interface's resolution; a time
    /// before 1970 ([`pcapng_time_fits`]) as 1970, not wrapped.
    pub fn write(&mut self, iface: u32, ts_ns: i64, origlen: u32, data: &[u8]) -> io::Result<()> {
        let ts_ns = ts_ns.max(0);
        let r = self.tsresol.get(iface as usize).copied().unwrap_or(9);
        let ticks: u64 = if r & 0x80 == 0 && r <= 9 {
            (ts_ns / 10i64.pow(9 - u32::from(r))) as u64
        } else {
            ts_ns as u64
        };
        self.write_ticks(iface, ticks, origlen, data)
    }

    /// Writes an enhanced packet block on interface `iface` with the time's `ticks` as they are.
    pub fn write_ticks(
        &mut self,
        iface: u32,
        ticks: u64,
        origlen: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let mut body = Vec::with_capacity(20 + data.len());
        body.extend_from_slice(&iface.to_le_bytes());
        body.extend_from_slice(&((ticks >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(ticks as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(&origlen.to_le_bytes());
        body.extend_from_slice(data);
        self.w.write_all(&block(6, &body))
    }

    /// The writer given to `new`, after the last block.
    pub fn into_inner(self) -> W {
        self.w
    }
}
