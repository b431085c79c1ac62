//! traceflow: index the TCP flows of packet captures into SQLite or PostgreSQL, exactly as PyPCAPKit's TraceFlow
//! traces them.
//!
//! The data flows through one module per stage: [`capture`] reads pcap/pcapng frames, [`decode`] finds the TCP
//! header under any encapsulation, [`trace`] follows flows (parking idle ones on disk), [`conn`] pairs their
//! directions into connections, [`store`] writes and reads the database, and [`ingest`] runs that pipeline. The
//! read side goes back from SQL: [`filter`] compiles `flows` expressions, [`query`] rebuilds the index tuple,
//! [`output`] renders it, and [`dump`] writes each flow's frames (pcap, pcapng, json, plist, tree, text).
//!
//! # Layers
//!
//! A module imports only modules of lower layers (never one above it, never in a circle); `tests/it/layout.rs`
//! holds every `crate::` path in `src/` to this order:
//!
//! 0. [`key`] (the flow key, address keys, labels, Community ID, bucket numbers, timestamps) and [`msg`]
//!    (messages on stderr): what every stage shares; they import nothing of the crate.
//! 1. [`capture`]
//! 2. [`decode`]
//! 3. [`trace`]
//! 4. [`conn`]
//! 5. [`filter`]: below the store, whose searches take a compiled filter; it needs only [`key`].
//! 6. [`store`]
//! 7. [`ingest`] and [`dump`] (which do not import each other)
//! 8. [`serve`] (the web UI, over the store's reads and the dumps' writers) and [`synth`] (test captures,
//!    written with [`dump`]'s writers)
//! 9. [`cli`], and `main.rs` above it.
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
pub mod key;
pub mod msg;
pub mod serve;
pub mod store;
pub mod synth;
pub mod trace;
