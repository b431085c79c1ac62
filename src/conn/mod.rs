//! Connections, both directions of one TCP conversation: the Community ID that names them across tools, the
//! partition of TCP frames into connections that tshark's `tcp.stream` makes, and Zeek's conn.log fields
//! (`conn_state`, `history`, the byte counts) for each, and the conn.log they make.

pub mod frame;
pub mod seqspace;
mod track;
pub mod uid;
pub mod zeek;

pub use track::{ConnRecord, ConnSeg, Connections};

#[cfg(test)]
mod tests;
