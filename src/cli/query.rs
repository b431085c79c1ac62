//! `traceflow query`: the index tuple, one flow's dump (`--flow LABEL`), or a folder of dumps (`--dump DIR`).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::store::Db;

use super::output::{write_index_json, write_rows, RowFormat};
use super::Error;
use crate::dump::file::OutputFile;
use crate::dump::{
    dump_dir, prepare_group, select_label, write_group, DumpError, DumpFormat, DumpOptions,
};
use crate::store::{self, read as query};

/// `traceflow query --format`: the index tuple's formats and the dump formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// Index: aligned columns (default on a terminal).
    Table,
    /// Index: one JSON list (default otherwise). Dumps: the decoded frames as one JSON object.
    Json,
    /// Index: one JSON object per line.
    Jsonl,
    /// Index: comma-separated values with a header line. With --flow: one row per frame (number, time,
    /// direction, flags, seq, ack, lengths).
    Csv,
    /// Dump: pcap with the capture's link type and the original timestamps, lengths and bytes.
    Pcap,
    /// Dump: pcapng, one interface per link type used.
    Pcapng,
    /// Dump: the decoded frames as an XML property list.
    Plist,
    /// Dump: the decoded frames as an indented tree.
    Tree,
    /// Dump: the decoded frames as flat `key: value` lines.
    Text,
}

/// pcap byte order (`--byteorder`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ByteOrder {
    /// Little-endian (least significant byte first).
    Little,
    /// Big-endian (network byte order).
    Big,
}

/// The dump format a `--format` value names, if any.
fn dump_format(f: QueryFormat) -> Option<DumpFormat> {
    match f {
        QueryFormat::Pcap => Some(DumpFormat::Pcap),
        QueryFormat::Pcapng => Some(DumpFormat::Pcapng),
        QueryFormat::Json => Some(DumpFormat::Json),
        QueryFormat::Plist => Some(DumpFormat::Plist),
        QueryFormat::Tree => Some(DumpFormat::Tree),
        QueryFormat::Text => Some(DumpFormat::Text),
        QueryFormat::Table | QueryFormat::Jsonl | QueryFormat::Csv => None,
    }
}

impl QueryFormat {
    /// The name `--format` takes.
    fn name(self) -> &'static str {
        match self {
            QueryFormat::Table => "table",
            QueryFormat::Json => "json",
            QueryFormat::Jsonl => "jsonl",
            QueryFormat::Csv => "csv",
            QueryFormat::Pcap => "pcap",
            QueryFormat::Pcapng => "pcapng",
            QueryFormat::Plist => "plist",
            QueryFormat::Tree => "tree",
            QueryFormat::Text => "text",
        }
    }
}

/// The formats a file name's extension says (`conn.csv`: csv), first the one it is taken for; none for an
/// extension traceflow does not write (then the name says nothing).
fn formats_named_by(path: &Path, index: bool) -> Option<&'static [QueryFormat]> {
    use QueryFormat::*;
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pcap" | "cap" => &[Pcap],
        "pcapng" => &[Pcapng],
        "json" => &[Json],
        "jsonl" | "ndjson" => &[Jsonl],
        "csv" => &[Csv],
        "plist" => &[Plist],
        // Plain text: the index's table, or a dump's tree or text.
        "txt" if index => &[Table, Tree, Text],
        "txt" => &[Tree, Text, Table],
        _ => return None,
    })
}

/// `--format`, or the format `-o`'s extension names when it is not given. A `--format` that the extension
/// clearly contradicts (`--format pcap -o conn.csv`) is refused rather than written under a misleading name.
fn output_format(args: &QueryArgs) -> Result<Option<QueryFormat>, DumpError> {
    let index = args.flow.is_none() && args.dump.is_none();
    let named = args
        .output
        .as_deref()
        .filter(|p| p.as_os_str() != "-")
        .and_then(|p| Some((p, formats_named_by(p, index)?)));
    match (args.format, named) {
        (Some(f), Some((p, fs))) if !fs.contains(&f) => Err(DumpError::Usage(format!(
            "--format {} does not match -o {} (a .{} file is {}): change the file name or --format",
            f.name(),
            p.display(),
            p.extension().and_then(|e| e.to_str()).unwrap_or(""),
            fs[0].name()
        ))),
        (Some(f), _) => Ok(Some(f)),
        (None, Some((p, fs))) => {
            let f = fs[0];
            // An index format for a dump, or a dump format for the index: say which command writes it.
            if index && dump_format(f).is_some() && f != QueryFormat::Json {
                return Err(DumpError::Usage(format!(
                    "-o {} names a {} dump: add --flow LABEL (or --format for the index: table, json, jsonl, csv)",
                    p.display(),
                    f.name()
                )));
            }
            if !index && dump_format(f).is_none() && !(f == QueryFormat::Csv && args.dump.is_none())
            {
                return Err(DumpError::Usage(format!(
                    "-o {} names {}, which is for the index: dumps are pcap, pcapng, json, plist or txt \
                     (or say --format)",
                    p.display(),
                    f.name()
                )));
            }
            Ok(Some(f))
        }
        (None, None) => Ok(None),
    }
}

/// Everything `traceflow query` takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct QueryArgs {
    /// Capture by base name, path or id.
    #[arg(long)]
    pub capture: Option<String>,
    /// Dump the frames of every flow with this label (of one capture), instead of printing the index.
    #[arg(long, value_name = "LABEL")]
    pub flow: Option<String>,
    /// Write DIR/{label}{ext} for each label (of --capture, or of every capture in sub-folders), then print
    /// the index tuple with fpout set.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Index: table, json, jsonl, csv [default: table on a terminal, json otherwise]. Dumps: pcap, pcapng, json,
    /// plist, tree, text, and csv (one row per frame) [default: from -o's extension, else pcap].
    #[arg(long, value_enum)]
    pub format: Option<QueryFormat>,
    /// Write to FILE instead of stdout (`-` is stdout).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Let --dump overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// pcap dumps: byte order [default: the machine's].
    #[arg(long, value_enum)]
    pub byteorder: Option<ByteOrder>,
    /// pcap/pcapng dumps: nanosecond timestamps (they are used anyway when the capture has them).
    #[arg(long)]
    pub nanosecond: bool,
    /// Look for moved captures under DIR, by base name.
    #[arg(long, value_name = "DIR")]
    pub source_root: Option<PathBuf>,
    /// With --flow: dump both directions of the label's connection (tshark's tcp.stream) in frame order. With
    /// --dump: one file per connection, named by the label of the flow that holds its first frame
    /// (`.connN` added when an earlier connection has that name).
    #[arg(long)]
    pub both: bool,
    /// Print the two-way index tuple: one flow per connection (endpoints either way round), closed once both
    /// sides have sent FIN, as PyPCAPKit's two-way tracing (PR #435) gives it, except that the final ACK after
    /// both FINs stays in its flow instead of opening a new one; a SYN opens the next flow on the same ports.
    #[arg(long, conflicts_with_all = ["flow", "dump", "both"])]
    pub bidirectional: bool,
}

/// Runs `traceflow query`: the index tuple, one flow's dump, or a folder of dumps. Only data goes to `stdout`.
pub fn run_query(
    conn: &Db,
    args: &QueryArgs,
    stdout: &mut dyn Write,
    stdout_is_terminal: bool,
) -> Result<(), DumpError> {
    let capture = args
        .capture
        .as_deref()
        .map(|c| query::resolve_capture(conn, c))
        .transpose()?;
    // TraceFlow writes an IPv6 address's colons as dots in a label (`fd01..183_80-...`); an address typed with
    // its colons (`fd01::183_80-...`, as copied from tshark) names the same label. No label holds a colon.
    let flow = args.flow.as_deref().map(|l| l.replace(':', "."));
    let to_stdout = args.output.as_deref().is_none_or(|p| p.as_os_str() == "-");
    let werr = |path: &str| {
        let path = path.to_string();
        move |source| DumpError::Write { path, source }
    };
    let default_rows = if stdout_is_terminal {
        RowFormat::Table
    } else {
        RowFormat::Json
    };
    if args.both && args.flow.is_none() && args.dump.is_none() {
        return Err(DumpError::Usage(
            "--both dumps connections: add --flow LABEL or --dump DIR".into(),
        ));
    }
    let chosen = output_format(args)?;
    if args.flow.is_none() && args.dump.is_none() {
        // The index tuple, exactly as PyPCAPKit's TraceFlow returns it: open flows, then closed ones.
        let rows = match chosen {
            None => default_rows,
            Some(QueryFormat::Table) => RowFormat::Table,
            Some(QueryFormat::Json) => RowFormat::Json,
            Some(QueryFormat::Jsonl) => RowFormat::Jsonl,
            Some(QueryFormat::Csv) => RowFormat::Csv,
            Some(f) => {
                return Err(DumpError::Usage(format!(
                    "--format {} dumps flows: add --flow LABEL or --dump DIR",
                    dump_format(f).map(|d| d.name()).unwrap_or("?")
                )))
            }
        };
        let write_index = |w: &mut dyn Write, shown: &str| -> Result<(), DumpError> {
            if args.bidirectional {
                if matches!(rows, RowFormat::Json | RowFormat::Jsonl) {
                    // Streamed as it is built: a capture's whole two-way index never sits in memory.
                    let lines = rows == RowFormat::Jsonl;
                    let mut first = true;
                    let mut put =
                        |w: &mut dyn Write, e: &query::IndexEntry| -> std::io::Result<()> {
                            if !lines {
                                w.write_all(if first { b"[" } else { b"," })?;
                            }
                            first = false;
                            serde_json::to_writer(&mut *w, e)?;
                            if lines {
                                w.write_all(b"\n")?;
                            }
                            Ok(())
                        };
                    // A failed write is reported as writes are (a closed stdout ends quietly).
                    let mut failed = None;
                    let built = query::for_each_bidirectional(conn, capture, &mut |e| {
                        put(w, &e).map_err(|x| {
                            let stop = io::Error::new(x.kind(), x.to_string());
                            failed = Some(x);
                            query::QueryError::Output(stop)
                        })
                    });
                    if let Some(x) = failed {
                        return Err(werr(shown)(x));
                    }
                    built?;
                    if !lines {
                        w.write_all(if first { b"[]\n" } else { b"]\n" })
                            .map_err(werr(shown))?;
                    }
                    return w.flush().map_err(werr(shown));
                }
                let entries = query::bidirectional_index(conn, capture)?;
                write_rows(w, &entries, rows).map_err(werr(shown))?;
                return w.flush().map_err(werr(shown));
            }
            match rows {
                // JSON streams row by row: a capture's whole index never sits in memory.
                RowFormat::Json | RowFormat::Jsonl => {
                    write_index_json(conn, capture, rows == RowFormat::Jsonl, w)?
                }
                RowFormat::Table | RowFormat::Csv => {
                    let entries = query::index(conn, capture)?;
                    write_rows(w, &entries, rows).map_err(werr(shown))?;
                }
            }
            w.flush().map_err(werr(shown))
        };
        if to_stdout {
            let mut w = BufWriter::with_capacity(1 << 16, stdout);
            return write_index(&mut w, "stdout");
        }
        let p = args.output.as_deref().unwrap_or(Path::new("-"));
        let shown = p.display().to_string();
        let mut file = OutputFile::create(p)?;
        {
            let mut w = BufWriter::new(file.file());
            write_index(&mut w, &shown)?;
        }
        return file.commit();
    }
    if chosen == Some(QueryFormat::Csv) {
        // One row per frame of the flow (or, with --both, of its connections).
        if args.dump.is_some() {
            return Err(DumpError::Usage(
                "--format csv writes one flow's frames (one row each): use it with --flow LABEL, not --dump"
                    .into(),
            ));
        }
        let label = flow.as_deref().unwrap_or_default();
        let group = select_label(conn, capture, label)?;
        let group = if args.both {
            query::with_connections(conn, group)?
        } else {
            group
        };
        if to_stdout {
            let mut w = BufWriter::with_capacity(1 << 16, stdout);
            crate::dump::frames_csv::write(conn, &group, &mut w, "stdout")?;
            return w.flush().map_err(werr("stdout"));
        }
        let p = args.output.as_deref().unwrap_or(Path::new("-"));
        let shown = p.display().to_string();
        let mut file = OutputFile::create(p)?;
        {
            let mut w = BufWriter::new(file.file());
            crate::dump::frames_csv::write(conn, &group, &mut w, &shown)?;
            w.flush().map_err(werr(&shown))?;
        }
        return file.commit();
    }
    let format = match chosen {
        Some(f) => dump_format(f).ok_or_else(|| {
            DumpError::Usage(
                "dumps take --format pcap, pcapng, json, plist, tree or text (table and jsonl are for the index)"
                    .into(),
            )
        })?,
        None => DumpFormat::Pcap,
    };
    let mut opts = DumpOptions::new(format);
    if let Some(b) = args.byteorder {
        opts.big_endian = b == ByteOrder::Big;
    }
    opts.nanosecond = args.nanosecond;
    opts.source_root = args.source_root.clone();
    opts.both = args.both;
    if let Some(dir) = &args.dump {
        opts.progress = dump_progress();
        if !to_stdout {
            return Err(DumpError::Usage(
                "--dump writes one file per label into its folder; it takes no -o".into(),
            ));
        }
        let dumped = dump_dir(conn, capture, flow.as_deref(), dir, &opts, args.force);
        if let Some(b) = &opts.progress {
            b.finish_and_clear();
        }
        let entries = dumped?;
        return write_rows(stdout, &entries, default_rows).map_err(werr("stdout"));
    }
    let label = flow.as_deref().unwrap_or_default();
    let group = select_label(conn, capture, label)?;
    let group = if args.both {
        query::with_connections(conn, group)?
    } else {
        group
    };
    if to_stdout {
        if format.is_binary() && stdout_is_terminal {
            return Err(DumpError::Terminal {
                format: format.name(),
            });
        }
        let mut w = BufWriter::new(stdout);
        write_group(conn, &group, &opts, &mut w, "stdout")
    } else {
        let p = args.output.as_deref().unwrap_or(Path::new("-"));
        let shown = p.display().to_string();
        // The source first: if its bytes cannot be had, FILE is never touched.
        let mut prepared = prepare_group(conn, &group, &opts)?;
        // -o names one file on purpose: replace it, as tcpdump -w and pcapkit do, but only with a whole dump.
        let mut file = OutputFile::create(p)?;
        {
            let mut w = BufWriter::new(file.file());
            prepared.write(&opts, &mut w, &shown)?;
        }
        file.commit()
    }
}

/// The progress of `--dump` (files written of files to write), drawn on stderr when it is a terminal.
fn dump_progress() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:20} {pos}/{len} files  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Runs `traceflow query` on the database at `db`, writing data to stdout.
pub fn run(db: &Path, args: &QueryArgs) -> Result<u8, Error> {
    use std::io::IsTerminal;
    let target = store::Target::of(db);
    let conn = Db::open_read(&target)?;
    if args.both {
        super::require_connections(&conn, &target)?;
    }
    // A FIFO or device (`-o /dev/null`) is written in place: nothing to remove when interrupted.
    let replaced = |o: &Path| {
        o != Path::new("-") && std::fs::metadata(o).map_or(true, |m| m.is_file() || m.is_dir())
    };
    let writes_files = args.dump.is_some() || args.output.as_deref().is_some_and(replaced);
    if writes_files {
        super::stop_dumps_on_signals();
    }
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = stdout.lock();
    match run_query(&conn, args, &mut out, tty) {
        // `traceflow query ... | head`: the reader has what it wanted, not an error.
        Err(e) if e.is_broken_pipe() => return Ok(0),
        Err(e) if e.is_interrupted() => return Ok(super::interrupted(e)),
        r => r?,
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(source) => Err(Error::Io {
            what: "writing stdout".into(),
            source,
        }),
        Ok(()) => Ok(0),
    }
}
