//! Connections, both directions of one TCP conversation: the Community ID that names them across tools, the
//! partition of TCP frames into connections that tshark's `tcp.stream` makes, and Zeek's conn.log fields
//! (`conn_state`, `history`) for each.

mod track;
pub mod zeek;

pub use track::{ConnRecord, ConnSeg, Connections};
