//! `traceflow connections FILTER`: TCP connections, both directions together (tshark's `tcp.stream`), with
//! their Community ID and Zeek's conn_state and history, found with the filter language of `flows`.

use std::path::{Path, PathBuf};

use super::output::{print_count, print_listing, RowFormat};
use super::zeeklog::{json_line, TsvLog};
use super::Error;
use crate::dump::merge::Selection;
use crate::filter;
use crate::store::read::{self, FlowSort, GroupBy};
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
    /// Output format [default: table on a terminal, json otherwise]; zeek is Zeek's conn.log (TSV, with its
    /// header lines), zeek-json its JSON lines.
    #[arg(long, value_enum)]
    pub format: Option<ConnFormat>,
    /// Order of the connections (bytes and packets count both directions) [default: time]; with --group-by,
    /// of the groups, as `flows --group-by` orders them.
    #[arg(long, value_enum)]
    pub sort: Option<FlowSort>,
    /// At most this many connections.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print only the number of matching connections.
    #[arg(long, conflicts_with_all = ["group_by", "pcap", "pcapng"])]
    pub count: bool,
    /// One row per group of connections: connections, packets and bytes (both directions), first and last
    /// time, most bytes first (or as --sort says). src/dst/sport/dport are the originator's and responder's
    /// (columns orig_h, resp_h, orig_p, resp_p); pair both addresses either way round (`a`, `b`).
    #[arg(long, value_enum, value_name = "KEY", conflicts_with_all = ["pcap", "pcapng"])]
    pub group_by: Option<GroupBy>,
    /// Write every frame of the matching connections (both directions), from all captures, merged in time order
    /// as `flows --pcap` merges, into one pcap FILE (`-` for stdout). Frames of several link types need --pcapng.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pcapng", "format"])]
    pub pcap: Option<PathBuf>,
    /// Like --pcap, as pcapng (one interface per link type).
    #[arg(long, value_name = "FILE", conflicts_with = "format")]
    pub pcapng: Option<PathBuf>,
    /// --pcap/--pcapng: where to look for moved captures, by base name (as `query --source-root`).
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
}

/// `connections --format`: the listing formats, and Zeek's conn.log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnFormat {
    /// Aligned columns for people (default on a terminal).
    Table,
    /// One JSON list (default when stdout is not a terminal).
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
    /// Zeek's conn.log, TSV with its header lines (zeek-cut, zat and Zeek's other readers take it).
    Zeek,
    /// Zeek's conn.log as JSON lines (Zeek's LogAscii::use_json).
    ZeekJson,
}

impl ConnFormat {
    fn listing(self) -> Option<RowFormat> {
        match self {
            ConnFormat::Table => Some(RowFormat::Table),
            ConnFormat::Json => Some(RowFormat::Json),
            ConnFormat::Jsonl => Some(RowFormat::Jsonl),
            ConnFormat::Csv => Some(RowFormat::Csv),
            ConnFormat::Zeek | ConnFormat::ZeekJson => None,
        }
    }
}

const CONN_HELP: &str = "\
A connection is both directions of one TCP conversation, split where tshark's tcp.stream splits it (a SYN
with a new initial sequence number on the same addresses and ports starts a new one). The filter is the one
of `traceflow flows --help`, applied to each direction: `host A and dst port 80` matches a connection one of
whose directions goes to port 80 from or to A. Also: community-id 1:BASE64.
Connections are built by `traceflow ingest --connections` (with no files: from the stored frame rows of the
captures indexed without them); this command only reads, and says so when some capture has none.
Columns: orig_* the originator (Zeek's: the first frame's sender unless Zeek's rules flip the roles), resp_*
the responder; *_bytes Zeek's (the sequence space used: a retransmission counts once), *_payload_bytes the
TCP payload lengths summed, *_ip_bytes the IP lengths, *_frame_bytes the frame lengths; conn_state and history
as in Zeek's conn.log. --format zeek writes Zeek's conn.log itself (see docs/zeek.md).
Examples:
  traceflow connections 'host 10.0.0.5 and port 443'
  traceflow connections 'community-id 1:LQU9qZlK+B5F3KDmev6m5PMibrg=' --format json
  traceflow connections 'capture big.pcap' --sort bytes --limit 10
  traceflow connections 'port 443' --group-by conn-state
  traceflow connections --format zeek | zeek-cut id.orig_h id.resp_h conn_state
  traceflow connections 'conn-state REJ' --pcap rejected.pcap";

/// Prints the connections of the database at `db` that match the filter.
pub fn run(db: &Path, args: &ConnectionsArgs) -> Result<u8, Error> {
    let sort = args.sort.unwrap_or(FlowSort::Time);
    if args.group_by.is_some() {
        super::flows::group_sort_ok(args.sort)?;
        if matches!(args.format, Some(ConnFormat::Zeek | ConnFormat::ZeekJson)) {
            return Err(Error::Usage(
                "--group-by writes groups, not conn.log rows: use --format table, json, jsonl or csv".into(),
            ));
        }
    }
    let text = super::flows::filter_text(&args.filter, args.filter_file.as_deref())?;
    let mut expr = filter::parse(&text, super::flows::now_ns()).map_err(Error::Filter)?;
    let target = store::Target::of(db);
    let db = store::Db::open_read(&target)?;
    super::require_connections(&db, &target)?;
    read::resolve_uids(&db, &mut expr)?;
    let compiled = filter::compile(&expr);
    let conn = &db;
    if let Some(dest) = args.pcap.as_deref().or(args.pcapng.as_deref()) {
        // As in `flows`: `--limit` picks the connections in `--sort` order; the merge writes in time order.
        let sel = match args.limit {
            None => Selection::Connections(&compiled),
            Some(_) => {
                let mut rows = Vec::new();
                read::search_connections(conn, &compiled, sort, args.limit, &mut |r| {
                    rows.push((r.capture_id, r.conn));
                    Ok(())
                })?;
                Selection::Conns(rows)
            }
        };
        return super::flows::write_merge(
            conn,
            &sel,
            args.pcap.is_some(),
            dest,
            args.source_root.clone(),
            "connection",
        );
    }
    if args.count {
        return print_count(read::count_connections(conn, &compiled)?);
    }
    if let Some(by) = args.group_by {
        return print_listing(args.format.and_then(ConnFormat::listing), |visit| {
            read::group_connections(conn, &compiled, by, args.sort, args.limit, visit)
        });
    }
    match args.format {
        Some(f @ (ConnFormat::Zeek | ConnFormat::ZeekJson)) => {
            print_zeek(f == ConnFormat::Zeek, |visit| {
                read::search_connections(conn, &compiled, sort, args.limit, visit)
            })
        }
        f => print_listing(f.and_then(ConnFormat::listing), |visit| {
            read::search_connections(conn, &compiled, sort, args.limit, visit)
        }),
    }
}

/// Prints the connections `list` visits as Zeek's conn.log (TSV when `tsv`, else JSON lines), streamed.
fn print_zeek(
    tsv: bool,
    list: impl FnOnce(
        &mut dyn FnMut(read::ConnRow) -> Result<(), read::QueryError>,
    ) -> Result<(), read::QueryError>,
) -> Result<u8, Error> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = if tsv {
        let mut log = TsvLog::new(&mut out);
        match list(&mut |r| log.row(&r).map_err(read::QueryError::Output)) {
            Err(read::QueryError::Output(e)) => Err(e),
            Err(e) => return Err(Error::Query(e)),
            Ok(()) => log.finish().map(|_| ()),
        }
    } else {
        match list(&mut |r| json_line(&mut out, &r).map_err(read::QueryError::Output)) {
            Err(read::QueryError::Output(e)) => Err(e),
            Err(e) => return Err(Error::Query(e)),
            Ok(()) => Ok(()),
        }
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(source) => Err(Error::Io {
            what: "writing stdout".into(),
            source,
        }),
        Ok(()) => Ok(0),
    }
}
