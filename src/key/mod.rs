//! What every stage shares about a flow: its key, the 16-byte address keys, its label and Community ID, the
//! bucket numbers its ends fall in, and the frame timestamp they are made from. Nothing here imports another
//! module of the crate (it is the bottom layer, see `lib.rs`).

pub mod addr;
pub mod buckets;
pub mod community_id;
pub mod label;
pub mod timestamp;

use std::net::IpAddr;

pub use addr::{addr_key, is_v4ish, net_bits};
pub use community_id::{community_id, push_community_id};
pub use timestamp::Timestamp;

/// A flow's directed key: (src, sport, dst, dport).
pub type FlowKey = (IpAddr, u16, IpAddr, u16);
