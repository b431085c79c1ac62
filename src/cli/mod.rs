//! The command line: clap's argument types and one file per subcommand, each turning its arguments into library
//! calls. `main.rs` parses, calls [`run`], and maps the result to an exit status.

pub mod captures;
pub mod connections;
pub mod flows;
pub mod forget;
pub mod ingest;
pub mod output;
pub mod query;
pub mod sample;
pub mod serve;
pub mod shell;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::dump::DumpError;
use crate::store::read::QueryError;
use crate::store::{self, StoreError};

/// Index the TCP flows of packet captures into SQLite or PostgreSQL, and pull them back out.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_HELP)]
pub struct Cli {
    /// Database: a SQLite file, or a PostgreSQL URL (postgresql://USER@HOST/DB, postgresql:///DB?host=/SOCKET/DIR).
    #[arg(
        long,
        global = true,
        env = "TRACEFLOW_DB",
        default_value = "traceflow.db"
    )]
    pub db: PathBuf,
    /// The subcommand.
    #[command(subcommand)]
    pub cmd: Cmd,
}

const EXIT_HELP: &str =
    "Exit status: 0 everything was indexed/answered; 1 some inputs failed or were truncated \
(the others are indexed); 2 usage or database error; 130 interrupted (Ctrl-C).";

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Read captures (files, folders, `-` for stdin; pcap/pcapng, gzip/zstd) and index their TCP flows.
    Ingest(ingest::IngestArgs),
    /// Write a small synthetic capture (HTTP-like conversations) to try traceflow on.
    Sample(sample::SampleArgs),
    /// List the indexed captures.
    Captures(captures::CapturesArgs),
    /// Print the flow index tuple (fpout, index, label), or dump flows' frames (--flow LABEL, --dump DIR).
    Query(query::QueryArgs),
    /// Find flows by host, net, port, time, flags and sizes: `traceflow flows 'host 10.0.0.5 and port 443'`.
    Flows(flows::FlowsArgs),
    /// TCP connections, both directions (tshark's tcp.stream), with Community ID and Zeek's conn_state/history.
    Connections(connections::ConnectionsArgs),
    /// Remove captures (by name, path or id) and every row of theirs from the database.
    Forget(forget::ForgetArgs),
    /// Look at the database in a web browser, read-only: tables, time histogram, ladders, downloads.
    Serve(serve::ServeArgs),
    /// Print a shell completion script: `traceflow completions bash > /etc/bash_completion.d/traceflow`.
    Completions(shell::CompletionsArgs),
    /// Print the manual page (roff): `traceflow man | man -l -`.
    Man,
}

/// `traceflow 0.1.0 (schema 8, SQLite 3.46.0)`: the database schema version this build writes and the SQLite
/// it bundles, which is what decides whether another tool or another traceflow can read its databases.
pub fn version() -> String {
    format!(
        "{} (schema {}, SQLite {})",
        env!("CARGO_PKG_VERSION"),
        crate::store::SCHEMA_VERSION,
        rusqlite::version()
    )
}

/// The clap command with the full version string (for `--version`, completions and the manual page).
pub fn command() -> clap::Command {
    // clap keeps the version as a `&'static str`; it is built once per process.
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let v: &'static str = VERSION.get_or_init(version).as_str();
    Cli::command().version(v)
}

/// Parses the process arguments as [`command`] does.
pub fn parse() -> Result<Cli, clap::Error> {
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(std::env::args_os())?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// Why a subcommand failed; each variant's text is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A dump failed.
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// The filter of `traceflow flows` does not parse.
    #[error(transparent)]
    Filter(crate::filter::FilterError),
    /// The web server could not start.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    /// A bad value of an option.
    #[error("{0}")]
    Usage(String),
    /// Writing a file or stdout failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command that reads connections, on a database where some captures have none.
    #[error(
        "{missing} of the database {have} no connections (first: {first}): build them once with `traceflow --db \
         {db} ingest --connections` (from the stored frame rows; no capture files needed)"
    )]
    NoConnections {
        /// How many captures lack them ("1 capture", "3 captures").
        missing: String,
        /// "has" or "have".
        have: &'static str,
        /// The first of them by id.
        first: String,
        /// The database, as the user gave it.
        db: String,
    },
}

/// The read commands never write: where a capture's connections were not built at ingest, a command that reads
/// connections says so and names the command that builds them.
pub fn require_connections(db: &store::Db, target: &store::Target) -> Result<(), Error> {
    let missing = db.captures_without_connections()?;
    match missing.first() {
        None => Ok(()),
        Some((_, name)) => Err(Error::NoConnections {
            missing: crate::msg::count(missing.len() as u64, "capture"),
            have: if missing.len() == 1 { "has" } else { "have" },
            first: name.clone(),
            db: target.shown(),
        }),
    }
}

/// Turns off glibc's fastbins for this process. Listing every flow (`flows --format jsonl`, 2.9M rows) spent
/// half its time in `malloc_consolidate`: each 64 KiB page SQLite reads is a large allocation, and glibc then
/// merges every small block freed since (the strings of the rows already written). Without fastbins it took
/// 4.0 s instead of 8.3 s; the ingest of the benchmark capture measured the same either way (3 interleaved runs).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator; it is called before any other thread
    // exists, and M_MXFAST = 0 is a documented value (no fastbins).
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

/// For commands that write files: Ctrl-C, SIGTERM or SIGHUP makes the dump stop at its next frame and remove
/// its temporary file or folder (without a handler the signal ends the process and leaves them behind). A
/// second signal, or a first one that the dump has not answered within 5 s (a compressed source being unpacked
/// is not interrupted), ends the process at once with status 130.
pub fn stop_dumps_on_signals() {
    DUMPING.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = ctrlc::set_handler(on_signal);
}

/// Whether [`stop_dumps_on_signals`] was called: the read commands' one handler then stops the dump.
static DUMPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For the read commands on PostgreSQL: Ctrl-C, SIGTERM or SIGHUP cancels the statement the server is running for
/// this process (it would otherwise run on to its end) and ends the process with status 130.
fn cancel_queries_on_signals() {
    let _ = ctrlc::set_handler(on_signal);
}

/// The read commands' signal handler (ctrlc takes one per process): see [`stop_dumps_on_signals`] and
/// [`cancel_queries_on_signals`].
fn on_signal() {
    if !DUMPING.load(std::sync::atomic::Ordering::SeqCst) {
        crate::store::postgres::cancel_queries();
        std::process::exit(130);
    }
    if crate::dump::interrupt() {
        std::process::exit(130);
    }
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(5));
        std::process::exit(130);
    });
}

/// The status of a dump stopped by [`stop_dumps_on_signals`], after saying so on stderr.
fn interrupted(e: DumpError) -> u8 {
    let what = match e {
        DumpError::Partial { written, dir, .. } => {
            format!("interrupted; the {written} complete files written stay in {dir}")
        }
        _ => "interrupted; nothing was left behind".to_string(),
    };
    crate::msg::say(&what);
    130
}

/// Runs the subcommand and returns its exit status (0 done, 1 some inputs failed); errors are status 2.
pub fn run(cli: Cli) -> Result<u8, Error> {
    let reads = matches!(
        cli.cmd,
        Cmd::Captures(_) | Cmd::Query(_) | Cmd::Flows(_) | Cmd::Connections(_)
    );
    if reads
        && matches!(
            crate::store::Target::of(&cli.db),
            crate::store::Target::Postgres(_)
        )
    {
        cancel_queries_on_signals();
    }
    match cli.cmd {
        Cmd::Sample(args) => sample::run(&args),
        Cmd::Ingest(args) => ingest::run(&cli.db, &args),
        Cmd::Captures(args) => captures::run(&cli.db, &args),
        Cmd::Query(args) => query::run(&cli.db, &args),
        Cmd::Flows(args) => flows::run(&cli.db, &args),
        Cmd::Forget(args) => forget::run(&cli.db, &args),
        Cmd::Completions(args) => shell::completions(&args),
        Cmd::Man => shell::man(),
        Cmd::Connections(args) => connections::run(&cli.db, &args),
        Cmd::Serve(args) => serve::run(&cli.db, &args),
    }
}
