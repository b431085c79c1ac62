//! traceflow: index the TCP flows of packet captures into SQLite, exactly as PyPCAPKit's TraceFlow traces them.
//!
//! The data flows through one module per stage: [`capture`] reads pcap/pcapng frames, [`decode`] finds the TCP
//! header under any encapsulation, [`trace`] follows flows (parking idle ones on disk with `spill`), [`conn`] pairs their
//! directions into connections, [`store`]
//! writes SQLite, and [`ingest`] runs that pipeline. The read side goes back from SQL: [`query`] rebuilds the index
//! tuple, [`output`] renders it, and [`dump`] writes each flow's frames (pcap, pcapng, json, plist, tree, text).
//!
//! [`query`]: cli::query
//! [`output`]: cli::output

pub mod capture;
pub mod cli;
pub mod conn;
pub mod decode;
pub mod dump;
pub mod filter;
pub mod ingest;
pub mod msg;
pub mod serve;
pub mod store;
pub mod synth;
pub mod trace;
