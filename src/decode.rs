//! Temporary stub of the packet decoder (Ethernet/IPv4/TCP only); replaced by the full decoder.
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Ethernet,
    Ipv4,
    Tcp,
}
impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Ethernet => "Ethernet",
            Layer::Ipv4 => "IPv4",
            Layer::Tcp => "TCP",
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpan {
    pub layer: Layer,
    pub offset: u32,
    pub len: u32,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u16,
    pub hdr_len: u8,
    pub window: Option<u16>,
    pub payload_len: u32,
    pub offset: u32,
}
impl Tcp {
    pub fn fin(&self) -> bool {
        self.flags & 1 != 0
    }
}
pub const MAX_LAYERS: usize = 16;
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    pub tcp: Option<Tcp>,
}
pub fn decode(linktype: u32, f: &[u8]) -> Decoded {
    let none = Decoded { tcp: None };
    if linktype != 1 || f.len() < 34 || f[12..14] != [8, 0] {
        return none;
    }
    let ihl = (f[14] & 15) as usize * 4;
    if f[23] != 6 || f.len() < 14 + ihl + 14 {
        return none;
    }
    let t = &f[14 + ihl..];
    let tot = u16::from_be_bytes([f[16], f[17]]) as u32;
    let hl = (t[12] >> 4) * 4;
    Decoded {
        tcp: Some(Tcp {
            src: IpAddr::from([f[26], f[27], f[28], f[29]]),
            dst: IpAddr::from([f[30], f[31], f[32], f[33]]),
            sport: u16::from_be_bytes([t[0], t[1]]),
            dport: u16::from_be_bytes([t[2], t[3]]),
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
            flags: (((t[12] & 1) as u16) << 8) | t[13] as u16,
            hdr_len: hl,
            window: None,
            payload_len: tot.saturating_sub(ihl as u32 + hl as u32),
            offset: 14 + ihl as u32,
        }),
    }
}
