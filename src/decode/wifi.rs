//! IEEE 802.11 data frames and the radiotap header in front of them.
use super::numbers::*;
use super::{Layer, Parser, Step};

impl Parser<'_> {
    pub(super) fn radiotap(&mut self) -> Step {
        // tshark checks neither the version nor that the fields fit: only the header length matters, and the
        // Flags field when it can be found (after the chained present words and an 8-aligned TSFT).
        let (Some(len), Some(present)) = (self.le16(2), self.be32(4).map(u32::swap_bytes)) else {
            return Step::Done;
        };
        let len = len as usize;
        if len < 8 || len > self.f.len() {
            return Step::Done;
        }
        let mut i = 4usize;
        let mut flags = 0;
        let words_ok = loop {
            match self.be32(i).map(u32::swap_bytes) {
                Some(w) if i + 4 <= len => {
                    i += 4;
                    if w & RADIOTAP_PRESENT_EXT == 0 {
                        break true;
                    }
                }
                _ => break false,
            }
        };
        if words_ok && present & RADIOTAP_PRESENT_FLAGS != 0 {
            if present & RADIOTAP_PRESENT_TSFT != 0 {
                i = ((i + 7) & !7) + 8;
            }
            if i < len {
                flags = self.u8(i).unwrap_or(0);
            }
        }
        if !self.push(Layer::Radiotap, len) {
            return Step::Done;
        }
        if flags & RADIOTAP_F_FCS != 0 {
            // The frame ends with the 4-byte FCS.
            self.limit(self.f.len().saturating_sub(4));
        }
        Step::Ieee80211(flags & RADIOTAP_F_DATAPAD != 0)
    }

    pub(super) fn ieee80211(&mut self, pad: bool) -> Step {
        let (Some(fc0), Some(fc1)) = (self.u8(0), self.u8(1)) else {
            return Step::Done;
        };
        // Version 0, data frames only, with a body, unprotected, not to be reassembled (more fragments). A
        // fragment number alone does not stop tshark (a lone last fragment is dissected as it is).
        if fc0 & 0x03 != IEEE80211_VERSION_0
            || (fc0 >> 2) & 0x03 != IEEE80211_TYPE_DATA
            || fc0 & 0x40 != 0
            || fc1 & 0x44 != 0
        {
            return Step::Done;
        }
        let mut len = 24;
        if fc1 & 0x03 == 0x03 {
            len += 6;
        }
        let mut amsdu = false;
        if fc0 & 0x80 != 0 {
            // QoS data: the QoS control says whether the body is an A-MSDU.
            match self.u8(len) {
                Some(q) => amsdu = q & 0x80 != 0,
                None => return Step::Done,
            }
            len += 2;
            if fc1 & 0x80 != 0 {
                len += 4;
            }
        }
        if pad {
            len = (len + 3) & !3;
        }
        if amsdu {
            if !self.push(Layer::Ieee80211, len) {
                return Step::Done;
            }
            self.amsdu();
            return Step::Done;
        }
        // A mesh control field (From DS, valid flags), which tshark recognises by the LLC/SNAP header after it:
        // 6 bytes + 6 per extended address. Otherwise tshark skips two zero bytes before the payload
        // ("mysterious OLPC/Ruckus/Atheros stuff").
        let mesh = match self.u8(len) {
            Some(mf) if fc1 & 0x02 != 0 && mf & 0xFC == 0 && mf & 0x03 != 0x03 => {
                let ml = 6 + 6 * (mf & 0x03) as usize;
                if self.u8(len + ml) == Some(LLC_SAP_SNAP)
                    && self.u8(len + ml + 1) == Some(LLC_SAP_SNAP)
                {
                    ml
                } else {
                    0
                }
            }
            _ => 0,
        };
        if mesh > 0 {
            len += mesh;
        } else if self.u8(len) == Some(0) && self.u8(len + 1) == Some(0) {
            len += 2;
        }
        // A body that starts with a known ethertype instead of an LLC header is taken as one (as tshark).
        match self.be16(len) {
            Some(t) if !matches!(self.ethertype(t), Step::Done) => {
                self.fixed(Layer::Ieee80211, len + 2, Step::EtherType(t))
            }
            _ => self.fixed(Layer::Ieee80211, len, Step::Llc),
        }
    }
}

impl Parser<'_> {
    /// An A-MSDU body at the current offset: subframes of a 14-byte header (destination, source, length) and an
    /// LLC packet of that length, each padded to 4 bytes from the start of the body, while more than 14 bytes
    /// remain (tshark's loop). A length past the end is cut to the bytes there. The frame is one packet: it takes
    /// the first subframe that holds TCP, and the layers of the first subframe when none does; the subframes
    /// after the one taken are not read. (tshark shows them all, and stops at a subframe whose dissector throws,
    /// e.g. a malformed DNS message; traceflow goes on to the next subframe.)
    fn amsdu(&mut self) {
        let base = self.off;
        let mut at = base;
        let mut first: Option<Self> = None;
        // Each subframe moves at least 16 bytes on.
        while self.f.len().saturating_sub(at) > 14 {
            let Some(l) = self
                .f
                .get(at + 12..at + 14)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            else {
                break;
            };
            let mut sub = *self;
            sub.off = at;
            if !sub.push(Layer::AMsdu, 14) {
                break;
            }
            sub.limit(at + 14 + l);
            sub.run(Step::Llc);
            if sub.d.tcp.is_some() {
                *self = sub;
                return;
            }
            first.get_or_insert(sub);
            at = base + ((at - base + 14 + l + 3) & !3);
        }
        if let Some(sub) = first {
            *self = sub;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::testutil::*;
    use crate::decode::*;

    #[test]
    fn radiotap_80211() {
        // Radiotap with TSFT and Flags (no padding), then a data frame from the DS.
        let mut rt = vec![0, 0, 0, 0, 0x03, 0, 0, 0];
        rt.extend_from_slice(&[0; 8]); // TSFT
        rt.extend_from_slice(&[0x00, 0, 0, 0]); // flags + pad to the length
        let n = rt.len() as u16;
        rt[2..4].copy_from_slice(&n.to_le_bytes());
        let f = cat(&[&rt, &wlan_data(0x08, 0x02, 3, &[])]);
        check4(127, &f, "Radiotap:802.11:LLC:IPv4:TCP");
        // Plain 802.11: QoS data, ToDS+FromDS (4 addresses), HT control.
        let f = wlan_data(0x88, 0x83, 4, &[0, 0, 1, 2, 3, 4]);
        check4(105, &f, "802.11:LLC:IPv4:TCP");
        assert_eq!(decode(105, &f).layers()[0].len, 36);
        // Protected, management, null-data, or a later fragment: no TCP.
        no_tcp(105, &wlan_data(0x08, 0x42, 3, &[]));
        no_tcp(105, &wlan_data(0x80, 0x00, 3, &[]));
        no_tcp(105, &wlan_data(0x48, 0x01, 3, &[]));
        no_tcp(105, &wlan_data(0x08, 0x06, 3, &[]));
        // A fragment number without the more-fragments bit is dissected (as tshark does).
        let mut frag = wlan_data(0x08, 0x02, 3, &[]);
        frag[22] = 0x11;
        check4(105, &frag, "802.11:LLC:IPv4:TCP");
        // Radiotap Flags with the data-pad bit: the 26-byte QoS header is padded to 28.
        let rt = [0, 0, 12, 0, 0x02, 0, 0, 0, 0x20, 0, 0, 0];
        let f = cat(&[&rt, &wlan_data(0x88, 0x02, 3, &[0, 0, 0, 0])]);
        check4(127, &f, "Radiotap:802.11:LLC:IPv4:TCP");
    }

    #[test]
    fn wlan_mesh_and_padding_quirks() {
        // A mesh control field, found by tshark's heuristic (From DS, valid flags, LLC after it), QoS or not.
        let f = wlan_data(0x08, 0x02, 3, &[0, 0, 0, 0, 1, 2]);
        check4(105, &f, "802.11:LLC:IPv4:TCP");
        assert_eq!(decode(105, &f).layers()[0].len, 30);
        no_tcp(105, &wlan_data(0x08, 0x01, 3, &[0, 0, 0, 0, 1, 2]));
        // With an extended address: 6 bytes + 6 per extended address.
        let f = wlan_data(
            0x88,
            0x03,
            4,
            &[0x00, 0x01, 0x01, 5, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6],
        );
        check4(105, &f, "802.11:LLC:IPv4:TCP");
        assert_eq!(decode(105, &f).layers()[0].len, 32 + 12);
        // Two zero bytes are skipped instead of looking for a mesh header.
        let f = wlan_data(
            0x88,
            0x03,
            4,
            &[0x00, 0x01, 0, 0, 0x01, 5, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6],
        );
        no_tcp(105, &f);
        // Invalid mesh flags: no mesh header, so no LLC.
        no_tcp(
            105,
            &wlan_data(0x88, 0x03, 4, &[0x00, 0x01, 0x04, 5, 0, 0, 0, 0]),
        );
        // A bare ethertype instead of LLC/SNAP.
        let bare = cat(&[
            &wlan_data(0x08, 0x02, 3, &[])[..24],
            &[0x08, 0x00],
            &ip4(6, &seg()),
        ]);
        check4(105, &bare, "802.11:IPv4:TCP");
        // Two zero bytes before the LLC header are skipped, as tshark does; four are not.
        check4(
            105,
            &wlan_data(0x08, 0x02, 3, &[0, 0]),
            "802.11:LLC:IPv4:TCP",
        );
        no_tcp(105, &wlan_data(0x08, 0x02, 3, &[0, 0, 0, 0]));
        // Radiotap Flags with FCS: the last 4 bytes are not packet bytes.
        let rt = [0, 0, 9, 0, 0x02, 0, 0, 0, 0x10];
        let f = cat(&[&rt, &wlan_data(0x08, 0x02, 3, &[]), b"FCS!"]);
        let t = decode(127, &f).tcp.unwrap();
        assert_eq!(
            (t.payload_len, t.window, t.offset as usize),
            (5, Some(512), f.len() - 4 - 25)
        );
        let cut = &f[..f.len() - 4 - 5 - 2];
        let t = decode(127, cut).tcp.unwrap();
        assert_eq!(t.window, None);
    }
}
