//! `traceflow flows FILTER`: finds flows by host, net, port, time, flags and sizes, without knowing their label.

use std::io::Write;
use std::path::Path;

use super::output::{default_format, RowFormat, RowWriter};
use super::Error;
use crate::filter;
use crate::store::read::{self, FlowSort};
use crate::store::{self};

/// `traceflow flows` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = FILTER_HELP)]
pub struct FlowsArgs {
    /// The filter (see below); none means every flow. Quote it as one shell word.
    #[arg(default_value = "")]
    pub filter: String,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<RowFormat>,
    /// Order of the flows.
    #[arg(long, value_enum, default_value = "time")]
    pub sort: FlowSort,
    /// At most this many flows.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print only the number of matching flows.
    #[arg(long)]
    pub count: bool,
}

const FILTER_HELP: &str = "\
Filter language (tcpdump/Stenographer-like; a flow is one direction of a TCP connection):
  host A | src host A | dst host A       IPv4 or IPv6 address; host matches either end
  net CIDR | src net CIDR | dst net CIDR 10.0.0.0/8, 2001:db8::/32
  port N | src port N | dst port N       also portrange N-M (with src/dst too)
  after T | before T                     the flow overlaps the window; T is RFC 3339
                                         (2024-03-01T10:00:00Z; no zone means UTC), a date (2024-03-01),
                                         epoch seconds (1700000000.5) or relative (3h ago, 15m ago)
  capture NAME|ID | label LABEL
  community-id 1:BASE64                  Community ID v1 (both directions of a connection share it)
  syn | fin | rst                        the flow has a frame with that flag
  open | closed                          closed: a FIN closed it
  packets|bytes|payload OP N             OP is > >= < <= = !=
  duration OP D                          D: 10s, 1.5s, 250ms, 2m, 1h
  and | or | not | ( )                   also && || !; not binds tightest, then and, then or
Examples:
  traceflow flows 'host 10.0.0.5 and port 443 and after 2024-03-01T10:00 and before 2024-03-01T10:05'
  traceflow flows 'net 2001:db8::/32 and not port 22' --format csv
  traceflow flows 'dst port 445 and syn and not fin' --sort bytes --limit 20
  traceflow flows 'capture big.pcap and rst' --count";

/// Prints the flows of the database at `db` that match the filter.
pub fn run(db: &Path, args: &FlowsArgs) -> Result<u8, Error> {
    let expr = filter::parse(&args.filter, now_ns()).map_err(Error::Filter)?;
    let compiled = filter::compile(&expr);
    let conn = store::open_read(db)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let io = |source: std::io::Error| Error::Io {
        what: "writing stdout".into(),
        source,
    };
    let result = if args.count {
        let n = read::count_flows(&conn, &compiled)?;
        writeln!(out, "{n}").and_then(|()| out.flush()).map_err(io)
    } else {
        let format = args.format.unwrap_or_else(default_format);
        let mut w = RowWriter::new(&mut out, format);
        let searched = read::search_flows(&conn, &compiled, args.sort, args.limit, &mut |row| {
            w.row(&row).map_err(read::QueryError::Output)
        });
        match searched {
            Err(read::QueryError::Output(e)) => Err(io(e)),
            Err(e) => Err(Error::Query(e)),
            Ok(()) => w.finish().map_err(io),
        }
        .and_then(|()| out.flush().map_err(io))
    };
    match result {
        // `traceflow flows ... | head`: the reader has what it wanted.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e),
        Ok(()) => Ok(0),
    }
}

/// Now, in ns since the epoch (what `3h ago` counts from).
pub(super) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
