//! The integration tests, as one test binary (one link, one run): each module is one area of traceflow, and
//! `util` holds what they share (the corpus, running the binary, writing captures).

// Tests build wire values by hand; `as` between integer widths reads better there than `From`.
#![allow(clippy::cast_lossless)]

mod conformance;
mod conn_search;
mod connections;
mod decode_oracle;
mod docs;
mod dump;
mod encapsulations;
mod endpoints;
mod flows;
mod frictions;
mod group;
mod hardening;
mod ingest;
mod ingest_hardening;
mod layout;
mod linktypes;
mod park;
mod postgres;
mod python;
mod robustness;
mod serve;
mod serve_limits;
mod util;
mod ux;
mod watch;
mod watch_pg;
mod zeek;
