//! pcap records: a 16-byte header (time, captured and original length) and the frame.

use super::{CaptureReader, Frame, Timestamp, MAX_RECORD};

impl CaptureReader {
    pub(super) fn next_pcap(&mut self) -> Option<Frame<'_>> {
        // Nearly every record is whole in the buffered reader's buffer: the frame borrows it there, and the
        // reader moves past it before the next frame. Copying each record out (header, then data, each read into a
        // zeroed buffer) was a twentieth of a SYN scan's reading thread.
        if let Some(h) = self.src.buffer().get(..16) {
            let h: [u8; 16] = h.try_into().unwrap_or_default();
            let caplen = self.u32_at(&h, 8);
            let end = 16 + caplen as usize;
            if caplen <= MAX_RECORD && self.src.buffer().len() >= end {
                let frame = self.pcap_record(&h);
                self.consumed = end;
                return Some(Frame {
                    data: &self.src.buffer()[16..end],
                    ..frame
                });
            }
        }
        if !self.fill(0, 16, "record header") {
            return None;
        }
        let h: [u8; 16] = self.buf[..16].try_into().unwrap();
        let caplen = self.u32_at(&h, 8);
        // A huge snaplen (0xFFFFFFFF is common) does not make a record above MAX_RECORD possible: memory is bounded.
        if caplen > MAX_RECORD {
            let at = self.pos;
            self.stop(at, format!("record length {caplen} is impossible"));
            return None;
        }
        if !self.fill(0, caplen as usize, "record") {
            // The record header was read, so even a record with none of its bytes is cut off, not a clean end.
            if self.truncated.is_none() {
                let at = self.pos;
                self.stop(at, format!("record cut off after 0 of {caplen} bytes"));
            }
            return None;
        }
        let frame = self.pcap_record(&h);
        Some(Frame {
            data: &self.buf[..caplen as usize],
            ..frame
        })
    }

    /// The frame of the record whose header is `h`, at the current position, without its bytes yet; moves the
    /// position past the record.
    fn pcap_record(&mut self, h: &[u8; 16]) -> Frame<'static> {
        let caplen = self.u32_at(h, 8);
        let offset = self.pos;
        self.pos += 16 + u64::from(caplen);
        self.frames += 1;
        let iface = &self.interfaces[0];
        Frame {
            number: self.frames,
            ts: Timestamp::new(
                i64::from(self.u32_at(h, 0)),
                u64::from(self.u32_at(h, 4)),
                iface.tsresol,
            ),
            caplen,
            origlen: self.u32_at(h, 12),
            iface: 0,
            linktype: iface.linktype,
            offset,
            data: &[],
        }
    }
}
