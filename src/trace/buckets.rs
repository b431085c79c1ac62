//! Flow buckets as a capture's reader builds them: each new flow goes into the lists of its buckets
//! ([`crate::key::buckets`] numbers them and encodes the lists), handed to the writer as `flow_buckets` rows.

use std::net::IpAddr;

use crate::key::buckets::{addr_bucket, net16_bucket, port_bucket, push_varint, NET16_BASE};

/// Bytes of lists held by the reader before they are handed to the writer. The lists are kept encoded (1-3 bytes
/// a number in a scan, against 4 as `u32`s plus a growing `Vec`'s slack), which took 14 MB off the peak memory
/// of a scan that leaves 2.5M flows open.
const MAX_HELD: usize = 8 << 20;

/// One stored part of a bucket's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketRow {
    /// The bucket.
    pub bucket: u32,
    /// Which hand-on of the capture's reader it came from (a list may be stored in several parts).
    pub part: u32,
    /// The flow numbers, ascending, as LEB128 varints of the differences (the first from 0).
    pub flow_nos: Vec<u8>,
}

/// The lists being built for one capture, each already encoded as it is stored ([`encode`](crate::key::buckets::encode)), with the last
/// number it holds (the next difference is from it; 0 at the start of a part).
pub struct Buckets {
    /// The address and port buckets by number, then one entry per /16 met so far, in the order met.
    lists: Vec<(u32, Vec<u8>)>,
    /// Per /16, its entry in `lists` (0: none yet). A capture meets few /16s, so their lists are made when first
    /// needed: 65,536 ready lists would cost every small capture of a folder 2 MB to set up and to walk.
    net_slot: Vec<u32>,
    /// The bucket of each entry of `lists` past the address and port buckets.
    net_bucket: Vec<u32>,
    held: usize,
    part: u32,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            lists: vec![(0, Vec::new()); NET16_BASE as usize],
            net_slot: vec![0; 65_536],
            net_bucket: Vec::new(),
            held: 0,
            part: 0,
        }
    }
}

impl Buckets {
    /// A new flow (numbers come in ascending order): it goes into the buckets of both addresses, both ports and,
    /// for IPv4, both /16s.
    #[inline]
    pub fn add(&mut self, flow_no: u32, src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16) {
        let nets = [net16_bucket(src), net16_bucket(dst)].map(|b| b.map(|b| self.net_entry(b)));
        for i in [
            addr_bucket(src),
            addr_bucket(dst),
            port_bucket(sport),
            port_bucket(dport),
        ]
        .into_iter()
        .chain(nets.into_iter().flatten())
        {
            let (last, bytes) = &mut self.lists[i as usize];
            // A flow whose two ends share a bucket is listed once; numbers only grow.
            if bytes.is_empty() || *last != flow_no {
                let before = bytes.len();
                push_varint(bytes, flow_no.wrapping_sub(*last));
                *last = flow_no;
                self.held += bytes.len() - before;
            }
        }
    }

    /// The entry of `lists` for /16 bucket `b`, made on first use.
    #[inline]
    fn net_entry(&mut self, b: u32) -> u32 {
        let slot = &mut self.net_slot[(b - NET16_BASE) as usize];
        if *slot == 0 {
            *slot = self.lists.len() as u32;
            self.lists.push((0, Vec::new()));
            self.net_bucket.push(b);
        }
        *slot
    }

    /// True when the lists should be handed on now.
    pub fn is_full(&self) -> bool {
        self.held >= MAX_HELD
    }

    /// The lists so far as rows (non-empty buckets only), and a fresh start.
    pub fn take(&mut self) -> Vec<BucketRow> {
        let part = self.part;
        self.part += 1;
        self.held = 0;
        let mut rows = Vec::new();
        for (i, (last, bytes)) in self.lists.iter_mut().enumerate() {
            if !bytes.is_empty() {
                let bucket = match i.checked_sub(NET16_BASE as usize) {
                    None => i as u32,
                    Some(n) => self.net_bucket[n],
                };
                rows.push(BucketRow {
                    bucket,
                    part,
                    flow_nos: std::mem::take(bytes),
                });
                *last = 0;
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::buckets::encode;

    #[test]
    fn a_flow_is_in_its_four_buckets_once_each() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut k = Buckets::default();
        k.add(1, &a, 443, &a, 443);
        k.add(2, &a, 1000, &b, 443);
        let rows = k.take();
        let find = |bucket| {
            rows.iter()
                .find(|r| r.bucket == bucket)
                .map(|r| r.flow_nos.clone())
        };
        assert_eq!(find(addr_bucket(&a)), Some(encode(&[1, 2])));
        assert_eq!(find(port_bucket(443)), Some(encode(&[1, 2])));
        assert_eq!(find(port_bucket(1000)), Some(encode(&[2])));
        assert!(rows.iter().all(|r| r.part == 0));
        assert!(k.take().is_empty());
        assert_ne!(addr_bucket(&a), addr_bucket(&b));
    }

    #[test]
    fn a_flow_is_in_the_16s_of_its_ipv4_ends() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut k = Buckets::default();
        k.add(1, &ip("10.1.2.3"), 1, &ip("10.1.9.9"), 2);
        k.add(2, &ip("10.1.2.3"), 1, &ip("192.168.0.1"), 2);
        k.add(3, &ip("::ffff:192.168.7.7"), 1, &ip("2001:db8::1"), 2);
        k.add(4, &ip("2001:db8::1"), 1, &ip("2001:db8::2"), 2);
        let rows = k.take();
        let find = |bucket| {
            rows.iter()
                .find(|r| r.bucket == bucket)
                .map(|r| r.flow_nos.clone())
        };
        let b = |s: &str| net16_bucket(&ip(s)).unwrap();
        assert_eq!(b("10.1.255.255"), NET16_BASE + 0x0a01);
        assert_eq!(find(b("10.1.0.0")), Some(encode(&[1, 2])));
        assert_eq!(find(b("192.168.0.0")), Some(encode(&[2, 3])));
        assert_eq!(rows.iter().filter(|r| r.bucket >= NET16_BASE).count(), 2);
        assert_eq!(net16_bucket(&ip("2001:db8::1")), None);
        // The next part starts its lists afresh, the /16s met before included.
        k.add(5, &ip("10.1.0.1"), 1, &ip("10.2.0.1"), 2);
        let rows = k.take();
        let net: Vec<(u32, Vec<u8>)> = rows
            .iter()
            .filter(|r| r.bucket >= NET16_BASE)
            .map(|r| (r.bucket, r.flow_nos.clone()))
            .collect();
        assert_eq!(
            net,
            [(b("10.1.0.0"), encode(&[5])), (b("10.2.0.0"), encode(&[5]))]
        );
        assert!(rows.iter().all(|r| r.part == 1));
    }
}
