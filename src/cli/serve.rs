//! `traceflow serve`: the database in a web browser, read-only (see `crate::serve`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Error;
use crate::store::Target;

/// `traceflow serve` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = SERVE_HELP)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free one). Loopback unless you say otherwise; the token is
    /// required whatever the address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Start the web browser on the URL.
    #[arg(long)]
    pub open: bool,
    /// Longest a query may run, in seconds, before it is stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub deadline: f64,
    /// Database connections kept open for reading, and queries run at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub readers: usize,
    /// Another name the server answers to (the Host header), e.g. this machine's name with --bind 0.0.0.0:N.
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// pcap downloads: where to look for moved captures, by base name (as `query --source-root`).
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
}

const SERVE_HELP: &str = "\
Prints a URL with a random token (http://127.0.0.1:8080/?token=...); open it in a browser. The page has the
flows and connections tables driven by the `flows` filter language, a time histogram (drag to zoom), each
flow's and connection's frames and ladder, group-by panels, the captures, and downloads (pcap, pcapng, CSV,
JSONL) of what is shown. The database is opened read-only; Ctrl-C stops the server. The JSON API the page
uses is in docs/api.md.
Examples:
  traceflow serve
  traceflow --db postgresql:///traceflow serve --bind 127.0.0.1:9000 --open";

/// Serves the database at `db` until Ctrl-C.
pub fn run(db: &Path, args: &ServeArgs) -> Result<u8, Error> {
    if !(args.deadline.is_finite() && args.deadline > 0.0) {
        return Err(Error::Usage(format!(
            "--deadline {}: give a positive number of seconds",
            args.deadline
        )));
    }
    let opts = crate::serve::Options {
        bind: args.bind,
        open: args.open,
        deadline: Duration::from_secs_f64(args.deadline),
        connections: args.readers.clamp(1, 64),
        allow_hosts: args.allow_host.clone(),
        source_root: args.source_root.clone(),
    };
    crate::serve::run(&Target::of(db), &opts)?;
    Ok(0)
}
