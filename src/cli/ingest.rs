//! `traceflow ingest`: indexes captures, files, folders or stdin, with a summary line at the end.

use std::path::{Path, PathBuf};

use super::Error;
use crate::ingest::{self, Cancel, Options};
use crate::store;

/// `traceflow ingest` arguments.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// Capture files or folders (walked recursively in sorted order).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Files parsed at once (default: number of cores).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Re-index captures that are already in the database.
    #[arg(long)]
    pub force: bool,
    /// Store frame bytes in the database, so dumps do not need the capture files.
    #[arg(long)]
    pub embed: bool,
    /// No progress bar and no per-file notes.
    #[arg(long, short)]
    pub quiet: bool,
    /// Log each file.
    #[arg(long, short)]
    pub verbose: bool,
    /// Open flows each reader keeps in memory; beyond that, the least recently seen are parked in a
    /// temporary file (bounds memory for captures that leave many flows open).
    #[arg(long, default_value_t = crate::trace::DEFAULT_MAX_OPEN, value_name = "N")]
    pub max_open_flows: usize,
    /// Frames read per capture at most; a capture with more is indexed up to there and marked truncated
    /// (bounds the database for floods of empty records).
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
    /// Seed of the flows' and connections' Community IDs (0 to 65535; 0 is the spec's default). Recorded per
    /// capture, in captures.community_id_seed.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub community_id_seed: u16,
    /// Build the connections table while reading (about a fifth more CPU) instead of at the first command that
    /// needs it (`traceflow connections`, `query --both`).
    #[arg(long)]
    pub connections: bool,
}

/// Ingests into the database at `db`; the status is 0, or 1 when some input failed or was truncated.
pub fn run(db: &Path, args: &IngestArgs) -> Result<u8, Error> {
    let mut conn = store::open(db)?;
    let cancel = Cancel::default();
    let on_ctrl_c = cancel.clone();
    let _ = ctrlc::set_handler(move || on_ctrl_c.cancel());
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let opts = Options {
        jobs,
        force: args.force,
        embed: args.embed,
        quiet: args.quiet,
        verbose: args.verbose,
        max_open_flows: args.max_open_flows,
        max_frames: args.max_frames,
        cancel,
        community_id_seed: args.community_id_seed,
        connections: args.connections,
    };
    let s = ingest::run(&mut conn, &args.inputs, &opts, &mut |m| crate::msg::say(&m));
    if !args.quiet || s.exit_code() != 0 {
        crate::msg::say(&format!(
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
