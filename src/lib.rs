//! traceflow: index the TCP flows of packet captures into SQLite, exactly as PyPCAPKit's TraceFlow traces them.
//!
//! The data flows through one module per stage: [`capture`] reads pcap/pcapng frames, [`decode`] finds the TCP
//! header under any encapsulation, [`trace`] follows flows (parking idle ones on disk with [`spill`]), [`store`]
//! writes SQLite, and [`ingest`] runs that pipeline. The read side goes back from SQL: [`query`] rebuilds the index
//! tuple, [`output`] renders it, and [`dump`] writes each flow's frames (pcap, pcapng, json, plist, tree, text).

pub mod capture;
pub mod decode;
pub mod dump;
pub mod ingest;
pub mod label;
pub mod msg;
pub mod output;
pub mod pcapwrite;
pub mod query;
pub mod spill;
pub mod store;
pub mod synth;
pub mod trace;
