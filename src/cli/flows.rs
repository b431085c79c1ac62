//! `traceflow flows FILTER`: finds flows by host, net, port, time, flags and sizes, without knowing their label.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::output::{print_count, print_listing, RowFormat};
use super::Error;
use crate::dump::file::OutputFile;
use crate::dump::merge::{self, Merged, Selection};
use crate::dump::{DumpError, DumpFormat, DumpOptions};
use crate::filter;
use crate::store::read::{self, FlowSort, GroupBy};
use crate::store::{self};

/// `traceflow flows` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = crate::filter::terms::help())]
pub struct FlowsArgs {
    /// The filter (see below); none means every flow. Quote it as one shell word.
    #[arg(default_value = "")]
    pub filter: String,
    /// Read the filter from FILE instead (`-` for stdin), as tcpdump's -F: for a filter too long for one
    /// argument (the system takes 128 KiB), such as a blocklist of thousands of hosts.
    #[arg(short = 'F', long, value_name = "FILE", conflicts_with = "filter")]
    pub filter_file: Option<PathBuf>,
    /// Output format [default: table on a terminal, json otherwise].
    #[arg(long, value_enum)]
    pub format: Option<RowFormat>,
    /// Order of the flows [default: time]; with --group-by, of the groups: bytes (the default) and packets
    /// their totals, most first; time their earliest flow first (duration is refused there).
    #[arg(long, value_enum)]
    pub sort: Option<FlowSort>,
    /// At most this many flows.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Print only the number of matching flows.
    #[arg(long, conflicts_with_all = ["group_by", "pcap", "pcapng"])]
    pub count: bool,
    /// One row per group: flows, packets, bytes, first and last time, most bytes first (or as --sort says).
    /// `pair` is the two addresses either way round, as columns `a` and `b`; `conn-state` the flow's
    /// connection's Zeek conn_state.
    #[arg(long, value_enum, value_name = "KEY", conflicts_with_all = ["pcap", "pcapng"])]
    pub group_by: Option<GroupBy>,
    /// Write the frames of every matching flow, from all captures, merged in time order into one pcap FILE
    /// (`-` for stdout). Frames of several link types need --pcapng.
    #[arg(long, value_name = "FILE", conflicts_with = "pcapng")]
    pub pcap: Option<PathBuf>,
    /// Like --pcap, as pcapng (one interface per link type).
    #[arg(long, value_name = "FILE")]
    pub pcapng: Option<PathBuf>,
    /// Print the SQL the filter becomes and SQLite's query plan for it, instead of the flows.
    #[arg(long, conflicts_with_all = ["count", "group_by", "pcap", "pcapng"])]
    pub explain: bool,
    /// --pcap/--pcapng: where to look for moved captures, by base name (as `query --source-root`).
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
}

/// The filter's text: the argument, or what `-F FILE` holds (`-` for stdin).
pub(super) fn filter_text(arg: &str, file: Option<&Path>) -> Result<String, Error> {
    let Some(f) = file else {
        return Ok(arg.to_string());
    };
    let read = if f == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(f)
    };
    read.map_err(|source| Error::Io {
        what: format!("reading the filter file {}", f.display()),
        source,
    })
}

/// Prints the flows of the database at `db` that match the filter.
pub fn run(db: &Path, args: &FlowsArgs) -> Result<u8, Error> {
    let db_path = db;
    let sort = args.sort.unwrap_or(FlowSort::Time);
    if args.group_by.is_some() {
        group_sort_ok(args.sort)?;
    }
    let text = filter_text(&args.filter, args.filter_file.as_deref())?;
    let mut expr = filter::parse(&text, now_ns()).map_err(Error::Filter)?;
    let db = store::Db::open_read(&store::Target::of(db))?;
    read::resolve_uids(&db, &mut expr)?;
    let compiled = filter::compile(&expr);
    let conn = &db;
    if args.explain {
        let mut text = String::new();
        for (sql, plan) in read::explain_flows(conn, &compiled)? {
            text.push_str(&format!(
                "{}\n",
                sql.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
            for step in plan {
                text.push_str(&format!("  {step}\n"));
            }
        }
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io {
                what: "writing stdout".into(),
                source: e,
            }),
            _ => Ok(0),
        };
    }
    if let Some(dest) = args.pcap.as_deref().or(args.pcapng.as_deref()) {
        // `--limit` picks the flows in `--sort` order (the first N by time, or the 20 biggest): a bounded list.
        // The merge itself always writes in time order.
        let sel = match args.limit {
            None => Selection::Filter(&compiled),
            Some(_) => {
                let mut rows = Vec::new();
                read::search_flows(&db, &compiled, sort, args.limit, &mut |r| {
                    rows.push((r.capture_id, r.flow_no));
                    Ok(())
                })?;
                Selection::Flows(rows)
            }
        };
        return write_merge(
            &db,
            &sel,
            args.pcap.is_some(),
            dest,
            args.source_root.clone(),
            "flow",
        );
    }
    if args.count {
        return print_count(read::count_flows(conn, &compiled)?);
    }
    match args.group_by {
        Some(by) => {
            if by == GroupBy::ConnState {
                super::require_connections(&db, &store::Target::of(db_path))?;
            }
            print_listing(args.format, |visit| {
                read::group_flows(conn, &compiled, by, args.sort, args.limit, visit)
            })
        }
        None => print_listing(args.format, |visit| {
            read::search_flows(conn, &compiled, sort, args.limit, visit)
        }),
    }
}

/// `--sort` with `--group-by`: refused before the database is read when it means nothing for a group.
pub(super) fn group_sort_ok(sort: Option<FlowSort>) -> Result<(), Error> {
    crate::store::rows::group_order(sort, &[], "")
        .map(|_| ())
        .map_err(|e| Error::Usage(e.to_string()))
}

/// `--pcap` (when `pcap`, else `--pcapng`) of `flows` and `connections`: the selection's frames merged into
/// `dest` (`-` for stdout), then a line saying how many frames of how many `what`s (a singular noun) were written.
pub(super) fn write_merge(
    db: &store::Db,
    sel: &Selection,
    pcap: bool,
    dest: &Path,
    source_root: Option<PathBuf>,
    what: &str,
) -> Result<u8, Error> {
    let format = if pcap {
        DumpFormat::Pcap
    } else {
        DumpFormat::Pcapng
    };
    if dest != Path::new("-") {
        super::stop_dumps_on_signals();
    }
    let merged = match merge(db, sel, format, dest, source_root) {
        Err(e) if e.is_broken_pipe() => return Ok(0),
        Err(e) if e.is_interrupted() => return Ok(super::interrupted(e)),
        r => r?,
    };
    crate::msg::say(&format!(
        "wrote {} of {} to {}",
        crate::msg::count(merged.frames, "frame"),
        crate::msg::count(merged.flows, what),
        if dest == Path::new("-") {
            "stdout".into()
        } else {
            dest.display().to_string()
        }
    ));
    Ok(0)
}

/// The merge into `dest`, a file replaced only by a whole merge (as `query -o` replaces it), or stdout for `-`.
fn merge(
    db: &store::Db,
    sel: &Selection,
    format: DumpFormat,
    dest: &Path,
    source_root: Option<PathBuf>,
) -> Result<Merged, DumpError> {
    use std::io::IsTerminal;
    let mut opts = DumpOptions::new(format);
    opts.source_root = source_root;
    let to_stdout = dest == Path::new("-");
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(DumpError::Terminal {
            format: format.name(),
        });
    }
    let shown = if to_stdout {
        "stdout".to_string()
    } else {
        dest.display().to_string()
    };
    let mut file = if to_stdout {
        None
    } else {
        Some(OutputFile::create_for(
            dest,
            if format == DumpFormat::Pcap {
                "--pcap"
            } else {
                "--pcapng"
            },
        )?)
    };
    let stdout = std::io::stdout();
    let sink: Box<dyn Write + '_> = match file.as_mut() {
        Some(f) => Box::new(BufWriter::with_capacity(1 << 16, f.file())),
        None => Box::new(BufWriter::with_capacity(1 << 16, stdout.lock())),
    };
    let (mut sink, merged) = merge::merge(db, sel, &opts, sink, &shown)?;
    sink.flush().map_err(|source| DumpError::Write {
        path: shown.clone(),
        source,
    })?;
    drop(sink);
    if let Some(f) = file {
        f.commit()?;
    }
    Ok(merged)
}

/// Now, in ns since the epoch (what `3h ago` counts from).
pub(super) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
