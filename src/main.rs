//! The `traceflow` command line: parses arguments, calls the library, maps errors to exit codes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use traceflow::output::{write_rows, RowFormat};
use traceflow::{dump, ingest, query, store};

/// Index the TCP flows of packet captures into SQLite, and pull them back out.
#[derive(Parser)]
#[command(version, about, after_help = EXIT_HELP)]
struct Cli {
    /// SQLite database to use.
    #[arg(
        long,
        global = true,
        env = "TRACEFLOW_DB",
        default_value = "traceflow.db"
    )]
    db: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

const EXIT_HELP: &str =
    "Exit status: 0 everything was indexed/answered; 1 some inputs failed or were truncated \
(the others are indexed); 2 usage or database error.";

#[derive(Subcommand)]
enum Cmd {
    /// Read captures (files, folders, `-` for stdin; pcap/pcapng, gzip/zstd) and index their TCP flows.
    Ingest {
        /// Capture files or folders (walked recursively in sorted order).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Files parsed at once (default: number of cores).
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Re-index captures that are already in the database.
        #[arg(long)]
        force: bool,
        /// Store frame bytes in the database, so dumps do not need the capture files.
        #[arg(long)]
        embed: bool,
        /// No progress bar and no per-file notes.
        #[arg(long, short)]
        quiet: bool,
        /// Log each file.
        #[arg(long, short)]
        verbose: bool,
        /// Open flows each reader keeps in memory; beyond that, the least recently seen are parked in a
        /// temporary file (bounds memory for captures that leave many flows open).
        #[arg(long, default_value_t = traceflow::trace::DEFAULT_MAX_OPEN, value_name = "N")]
        max_open_flows: usize,
        /// Frames read per capture at most; a capture with more is indexed up to there and marked truncated
        /// (bounds the database for floods of empty records).
        #[arg(long, value_name = "N")]
        max_frames: Option<u64>,
    },
    /// Write a small synthetic capture (HTTP-like conversations) to try traceflow on.
    Sample {
        /// Where to write the pcap.
        output: PathBuf,
        /// Number of TCP conversations.
        #[arg(long, default_value_t = 6)]
        conversations: u32,
    },
    /// List the indexed captures.
    Captures {
        /// Output format [default: table on a terminal, json otherwise].
        #[arg(long, value_enum)]
        format: Option<RowFormat>,
    },
    /// Print the flow index tuple (fpout, index, label), or dump flows' frames (--flow LABEL, --dump DIR).
    Query(dump::QueryArgs),
}

fn row_format(f: Option<RowFormat>) -> RowFormat {
    f.unwrap_or(if std::io::stdout().is_terminal() {
        RowFormat::Table
    } else {
        RowFormat::Json
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let causes = e.chain().skip(1).map(|c| c.to_string());
            traceflow::msg::say(&traceflow::msg::error_line(&e.to_string(), causes));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    if let Cmd::Sample {
        output,
        conversations,
    } = &cli.cmd
    {
        traceflow::synth::write_sample(output, *conversations)
            .with_context(|| format!("writing {}", output.display()))?;
        traceflow::msg::say(&format!(
            "wrote {} ({} TCP conversations)",
            output.display(),
            conversations
        ));
        return Ok(0);
    }
    // Reading commands open the database read-only: they never create, migrate or write it.
    let mut conn = if matches!(cli.cmd, Cmd::Ingest { .. }) {
        store::open(&cli.db)?
    } else {
        store::open_read(&cli.db)?
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.cmd {
        Cmd::Ingest {
            inputs,
            jobs,
            force,
            embed,
            quiet,
            verbose,
            max_open_flows,
            max_frames,
        } => {
            let _ = ctrlc::set_handler(|| {
                ingest::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst)
            });
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
            let opts = ingest::Options {
                jobs,
                force,
                embed,
                quiet,
                verbose,
                max_open_flows,
                max_frames,
            };
            let s = ingest::run(&mut conn, &inputs, &opts, &mut |m| traceflow::msg::say(&m));
            if !quiet || s.exit_code() != 0 {
                traceflow::msg::say(&format!(
                    "{} files: {} indexed, {} skipped, {} failed, {} truncated; {} frames, {} flows in {:.2}s{}",
                    s.files,
                    s.indexed,
                    s.skipped,
                    s.failed,
                    s.truncated,
                    s.frames,
                    s.flows,
                    s.elapsed.as_secs_f64(),
                    if s.interrupted { " (interrupted)" } else { "" }
                ));
            }
            Ok(s.exit_code() as u8)
        }
        Cmd::Captures { format } => {
            let rows = query::captures(&conn)?;
            let format = row_format(format);
            if format == RowFormat::Table {
                // People get the columns that fit a terminal; json/jsonl carry everything.
                let brief: Vec<_> = rows.iter().map(query::CaptureBrief::from).collect();
                write_rows(&mut out, &brief, format).context("writing output")?;
            } else {
                write_rows(&mut out, &rows, format).context("writing output")?;
            }
            out.flush()?;
            Ok(0)
        }
        Cmd::Query(args) => {
            let tty = std::io::stdout().is_terminal();
            match dump::run_query(&conn, &args, &mut out, tty) {
                Err(e) if e.is_broken_pipe() => return Ok(0),
                r => r?,
            }
            match out.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
                r => r.map(|()| 0).context("writing output"),
            }
        }
        Cmd::Sample { .. } => unreachable!("handled above"),
    }
}
