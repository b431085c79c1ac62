//! `traceflow connections FILTER`: TCP connections, both directions together (tshark's `tcp.stream`), with
//! their Community ID and Zeek's conn_state and history, found with the filter language of `flows`.

use std::path::{Path, PathBuf};

use super::output::{print_count, print_listing, RowFormat};
use super::Error;
use crate::filter;
use crate::store::read::{self, FlowSort};
use crate::store::{self};

/// `traceflow connections` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = CONN_HELP)]
pub struct ConnectionsArgs {
    /// The filter, as for `traceflow flows`: a connection matches when either of its directions does.
    #[arg(default_value = "")]
    pub filter: String,
    /// Read the filter from FILE instead (`-` for stdin), as tcpdump's -F: for a filter too long for one
    /// argument (the system takes 128 KiB), such as a blocklist of thousands of hosts.
    #[arg(short = 'F', long, value_name = "FILE", conflicts_with = "filter")]
    pub filter_file: Option<PathBuf>,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<RowFormat>,
    /// Order of the connections (bytes and packets count both directions).
    #[arg(long, value_enum, default_value = "time")]
    pub sort: FlowSort,
    /// At most this many connections.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print only the number of matching connections.
    #[arg(long)]
    pub count: bool,
}

const CONN_HELP: &str = "\
A connection is both directions of one TCP conversation, split where tshark's tcp.stream splits it (a SYN
with a new initial sequence number on the same addresses and ports starts a new one). The filter is the one
of `traceflow flows --help`, applied to each direction: `host A and dst port 80` matches a connection one of
whose directions goes to port 80 from or to A. Also: community-id 1:BASE64.
Connections are built by `traceflow ingest --connections` (with no files: from the stored frame rows of the
captures indexed without them); this command only reads, and says so when some capture has none.
Columns: orig_* the originator (sender of the first SYN without ACK, else of the first frame), resp_* the
responder; *_bytes TCP payload, *_frame_bytes frame lengths; conn_state and history as in Zeek's conn.log.
Examples:
  traceflow connections 'host 10.0.0.5 and port 443'
  traceflow connections 'community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=' --format json
  traceflow connections 'capture big.pcap' --sort bytes --limit 10";

/// Prints the connections of the database at `db` that match the filter.
pub fn run(db: &Path, args: &ConnectionsArgs) -> Result<u8, Error> {
    let text = super::flows::filter_text(&args.filter, args.filter_file.as_deref())?;
    let expr = filter::parse(&text, super::flows::now_ns()).map_err(Error::Filter)?;
    let compiled = filter::compile(&expr);
    let target = store::Target::of(db);
    let db = store::Db::open_read(&target)?;
    super::require_connections(&db, &target)?;
    let conn = &db;
    if args.count {
        return print_count(read::count_connections(conn, &compiled)?);
    }
    print_listing(args.format, |visit| {
        read::search_connections(conn, &compiled, args.sort, args.limit, visit)
    })
}
