//! pcapng blocks: sections (byte order), interfaces (link type, if_tsresol, if_tsoffset) and the three packet
//! block kinds.

use super::{CaptureReader, Frame, Interface, Timestamp, MAX_RECORD, PCAPNG_SHB};

impl CaptureReader {
    pub(super) fn next_pcapng(&mut self) -> Option<Frame<'_>> {
        // As for pcap: an enhanced packet block whole in the buffered reader's buffer is handed out from there.
        if let Some((blen, p)) = self.buffered_epb() {
            let offset = self.pos;
            self.pos += u64::from(blen);
            self.consumed = blen as usize;
            let frame = self.packet_frame(&p, offset);
            return Some(Frame {
                data: &self.src.buffer()[28..28 + p.caplen as usize],
                ..frame
            });
        }
        loop {
            // The first block's type was consumed as the magic; it is already in buf.
            let have = if self.pos == 0 && self.buf.len() == 4 {
                4
            } else {
                0
            };
            if !self.fill(have, 8, "block header") {
                return None;
            }
            let raw_type = u32::from_le_bytes(self.buf[..4].try_into().unwrap());
            let block_start = self.pos;
            if raw_type == PCAPNG_SHB {
                // The byte-order magic decides how to read this section, including this block's own length.
                if !self.fill(8, 12, "section header") {
                    return None;
                }
                match u32::from_le_bytes(self.buf[8..12].try_into().unwrap()) {
                    0x1A2B_3C4D => self.big_endian = false,
                    0x4D3C_2B1A => self.big_endian = true,
                    bom => {
                        self.stop(
                            block_start,
                            format!("bad pcapng byte-order magic {bom:#010x}"),
                        );
                        return None;
                    }
                }
            }
            let head: [u8; 8] = self.buf[..8].try_into().unwrap();
            let btype = self.u32_at(&head, 0);
            let blen = self.u32_at(&head, 4);
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD {
                self.stop(
                    block_start,
                    format!("pcapng block of type {btype:#x} has bad length {blen}"),
                );
                return None;
            }
            let have = if raw_type == PCAPNG_SHB { 12 } else { 8 };
            if !self.fill(have, blen as usize, "pcapng block") {
                return None;
            }
            self.pos += u64::from(blen);
            let trailer = self.u32_at(&self.buf, blen as usize - 4);
            if trailer != blen {
                self.stop(
                    block_start,
                    format!("pcapng block length {blen} does not match its trailer {trailer}"),
                );
                return None;
            }
            let body_len = blen as usize - 12;
            match btype {
                PCAPNG_SHB => {
                    self.section_base = self.interfaces.len();
                }
                1 => {
                    // Interface description: link type, snaplen, then options (if_tsresol = 9).
                    if body_len < 8 {
                        self.stop(block_start, "interface block too short");
                        return None;
                    }
                    let linktype = u32::from(self.u16_at(&self.buf, 8));
                    let snaplen = self.u32_at(&self.buf, 12);
                    let (tsresol, tsoffset) = self.if_time_options(16, 8 + body_len);
                    self.interfaces.push(Interface {
                        linktype,
                        snaplen,
                        tsresol,
                        tsoffset,
                    });
                }
                6 | 2 => {
                    let p = match self.packet_block(&self.buf[..blen as usize], btype) {
                        Ok(p) => p,
                        Err(why) => {
                            self.stop(block_start, why);
                            return None;
                        }
                    };
                    let frame = self.packet_frame(&p, block_start);
                    return Some(Frame {
                        data: &self.buf[28..28 + p.caplen as usize],
                        ..frame
                    });
                }
                3 => {
                    // Simple packet block: interface 0 of the section, no timestamp.
                    if body_len < 4 {
                        self.stop(block_start, "simple packet block too short");
                        return None;
                    }
                    let iface = self.section_base;
                    let Some(ifc) = self.interfaces.get(iface) else {
                        self.stop(block_start, "simple packet block before any interface");
                        return None;
                    };
                    let origlen = self.u32_at(&self.buf, 8);
                    let mut caplen = origlen.min(body_len as u32 - 4);
                    if ifc.snaplen > 0 {
                        caplen = caplen.min(ifc.snaplen);
                    }
                    self.frames += 1;
                    return Some(Frame {
                        number: self.frames,
                        ts: Timestamp::new(0, 0, 6),
                        caplen,
                        origlen,
                        iface: iface as u32,
                        linktype: ifc.linktype,
                        offset: block_start,
                        data: &self.buf[12..12 + caplen as usize],
                    });
                }
                _ => {} // name resolution, statistics, custom and unknown blocks carry no frames
            }
        }
    }

    /// The next block, when it is an enhanced packet block that is whole and sound in the buffered reader's
    /// buffer: its length and what it holds. Anything else (another block, one cut by the buffer's end, any
    /// damage) is `None`, and goes the ordinary way, which also reports the damage.
    fn buffered_epb(&self) -> Option<(u32, PacketBlock)> {
        let b = self.src.buffer();
        if self.pos == 0 || b.len() < 8 || self.u32_at(b, 0) != 6 {
            return None;
        }
        let blen = self.u32_at(b, 4);
        if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD || b.len() < blen as usize {
            return None;
        }
        let b = &b[..blen as usize];
        if self.u32_at(b, b.len() - 4) != blen {
            return None;
        }
        Some((blen, self.packet_block(b, 6).ok()?))
    }

    /// An enhanced (6) or obsolete (2) packet block, `b` whole (header to trailer): the same fixed layout but the
    /// interface id's width. The error says what is wrong with it.
    fn packet_block(&self, b: &[u8], btype: u32) -> Result<PacketBlock, String> {
        let body_len = b.len() - 12;
        if body_len < 20 {
            return Err("packet block too short".into());
        }
        let if_id = if btype == 6 {
            self.u32_at(b, 8)
        } else {
            u32::from(self.u16_at(b, 8))
        };
        let caplen = self.u32_at(b, 20);
        if caplen as usize > body_len - 20 {
            return Err(format!("packet length {caplen} exceeds its block"));
        }
        let iface = self.section_base + if_id as usize;
        let Some(ifc) = self.interfaces.get(iface) else {
            return Err(format!("packet refers to missing interface {if_id}"));
        };
        let ticks = (u64::from(self.u32_at(b, 12)) << 32) | u64::from(self.u32_at(b, 16));
        let ts = ticks_to_ts_offset(ticks, ifc.tsresol, ifc.tsoffset);
        Ok(PacketBlock {
            caplen,
            origlen: self.u32_at(b, 24),
            iface,
            ts,
        })
    }

    /// The frame of packet block `p` at `offset`, without its bytes yet (counted as the next frame).
    fn packet_frame(&mut self, p: &PacketBlock, offset: u64) -> Frame<'static> {
        self.frames += 1;
        Frame {
            number: self.frames,
            ts: p.ts,
            caplen: p.caplen,
            origlen: p.origlen,
            iface: p.iface as u32,
            linktype: self.interfaces[p.iface].linktype,
            offset,
            data: &[],
        }
    }

    /// Reads `if_tsresol` (6, µs, when absent) and `if_tsoffset` (0 when absent) from the options in
    /// `buf[start..end]`.
    fn if_time_options(&self, start: usize, end: usize) -> (u8, i64) {
        let (mut tsresol, mut tsoffset) = (6, 0);
        let mut at = start;
        while at + 4 <= end {
            let code = self.u16_at(&self.buf, at);
            let len = self.u16_at(&self.buf, at + 2) as usize;
            let val = at + 4;
            if code == 0 || val + len > end {
                break;
            }
            match code {
                9 if len >= 1 => tsresol = self.buf[val],
                14 if len >= 8 => {
                    let b: [u8; 8] = self.buf[val..val + 8].try_into().unwrap();
                    tsoffset = if self.big_endian {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                _ => {}
            }
            at = val + len.div_ceil(4) * 4;
        }
        (tsresol, tsoffset)
    }
}

/// What a packet block holds besides the packet's bytes (which start 28 bytes in).
struct PacketBlock {
    caplen: u32,
    origlen: u32,
    iface: usize,
    ts: Timestamp,
}

/// Turns pcapng ticks into the exact decimal timestamp.
///
/// A power-of-two resolution (rare) is converted to ns, rounding down: its exact decimal can need more digits
/// than the label's f64 can tell apart anyway.
pub fn ticks_to_ts(ticks: u64, tsresol: u8) -> Timestamp {
    ticks_to_ts_offset(ticks, tsresol, 0)
}

/// [`ticks_to_ts`] plus the interface's `if_tsoffset` seconds, exactly as PyPCAPKit's
/// `Decimal(ticks) / resolution + offset`: ticks of whole seconds from 2^63 on, or an offset that takes the sum
/// past an `i64`, stay the time they are (they were wrapped to negative times, and their labels with them).
pub fn ticks_to_ts_offset(ticks: u64, tsresol: u8, tsoffset: i64) -> Timestamp {
    let (secs, frac, digits) = if tsresol & 0x80 != 0 {
        let n = u32::from((tsresol & 0x7f).min(63));
        let rem = ticks & ((1u64 << n) - 1);
        let ns = ((u128::from(rem) * 1_000_000_000) >> n) as u64;
        (ticks >> n, ns, 9)
    } else {
        let digits = tsresol.min(19);
        let unit = 10u64.pow(u32::from(digits));
        (ticks / unit, ticks % unit, digits)
    };
    Timestamp::from_secs(i128::from(secs) + i128::from(tsoffset), frac, digits)
}
