//! The writer side of an ingest: takes captures in input order, writes each from its reader's messages in one
//! transaction (committed at its end, rolled back if it fails), and records each outcome in the summary.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::budget::Budget;
use super::channel::{Empties, Msg};
use super::inputs::Input;
use super::progress::{progress_message, Progress};
use super::{Options, ReadFailure, Summary};
use crate::store::{self, CaptureSource, Db, Outcome, Superseded};
use crate::trace::FlowRecord;

/// Records per on-disk byte beyond which a capture is warned about (after `FLOOD_MIN_RECORDS`): a real capture
/// holds at least a record header per record, while a flood of empty records compresses to almost nothing.
const FLOOD_RECORDS_PER_BYTE: u64 = 1;
const FLOOD_MIN_RECORDS: u64 = 100_000;

/// Writes one capture from its reader's messages with a [`store::CaptureWriter`]: committed at the reader's
/// end, rolled back if it fails. `on_batch` sees the bytes read so far and each batch's frames and flows.
fn write_capture(
    mut w: store::Writer<'_>,
    rx: &crossbeam_channel::Receiver<Msg>,
    spare: &Sender<Empties>,
    opts: &Options,
    on_batch: &mut dyn FnMut(u64, u64, u64),
) -> Result<Result<Outcome, ReadFailure>, store::StoreError> {
    if opts.community_id_seed != 0 {
        w.set_community_id_seed(opts.community_id_seed)?;
    }
    loop {
        match rx.recv() {
            // The reader died without a word: a failure, rolled back.
            Err(_) => {
                return Ok(Err(ReadFailure::Failed(
                    "reader stopped unexpectedly".into(),
                )))
            }
            Ok(Msg::Batch {
                mut frames,
                flows,
                conns,
                data,
                bytes_read,
                held,
            }) => {
                w.add(&frames, &flows, &data)?;
                w.add_connections(&conns)?;
                // The batch is in the database: its bytes leave the budget.
                drop(held);
                // A flow stored again after it was parked is not another flow.
                let new_flows = flows.iter().filter(|f| !f.replaces()).count();
                on_batch(bytes_read, frames.len() as u64, new_flows as u64);
                frames.clear();
                let texts = flows.into_iter().map(FlowRecord::into_text).collect();
                // Full: the readers have enough spares, and these are freed here.
                let _ = spare.try_send(Empties { frames, texts });
            }
            Ok(Msg::Endpoints(rows)) => w.add_endpoints(&rows)?,
            Ok(Msg::Buckets(rows)) => w.add_buckets(&rows)?,
            Ok(Msg::End(end)) => return Ok(Ok(w.finish(end)?)),
            Ok(Msg::Failed(why)) => return Ok(Err(why)),
        }
    }
}

/// What the writers of one ingest share: the captures to write and where their messages and totals go.
pub(super) struct WriteCtx<'a, 's, 'l> {
    pub(super) todo: &'a [usize],
    pub(super) sources: &'a [CaptureSource],
    pub(super) inputs: &'a [Input],
    pub(super) in_folder: &'a [bool],
    pub(super) opts: &'a Options,
    pub(super) bar: &'a Option<indicatif::ProgressBar>,
    pub(super) started: Instant,
    pub(super) total_bytes: u64,
    pub(super) budget: &'a Arc<Budget>,
    /// Where batches' emptied vectors go back to the readers.
    pub(super) spares: &'a Sender<Empties>,
    pub(super) progress: &'a Mutex<Progress>,
    pub(super) summary: &'a Mutex<&'s mut Summary>,
    pub(super) log: &'a Mutex<&'l mut (dyn FnMut(String) + Send)>,
}

impl WriteCtx<'_, '_, '_> {
    /// Logs a message, above the progress bar.
    pub(super) fn say(&self, m: String) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        match self.bar {
            Some(b) => b.suspend(|| log(m)),
            None => log(m),
        }
    }
}

/// One writer: takes the next capture in input order until none is left or the run stops, and records each
/// outcome. `before(db, k)` runs before capture `k` is written.
pub(super) fn write_all(
    conn: &Db,
    ctx: &WriteCtx,
    receivers: &[Mutex<Option<Receiver<Msg>>>],
    next: &Mutex<usize>,
    before: &mut dyn FnMut(&Db, usize),
) {
    let WriteCtx {
        todo,
        sources,
        inputs,
        in_folder,
        opts,
        bar,
        started,
        total_bytes,
        budget,
        ..
    } = *ctx;
    loop {
        if opts.cancel.is_cancelled() {
            break;
        }
        // The next capture and its `captures` row are taken under one lock, so that writers on several
        // connections number captures in input order, as one writer does.
        let (k, rx, begun) = {
            let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
            let k = *n;
            if k >= todo.len() {
                break;
            }
            *n += 1;
            let Some(rx) = receivers[k]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            else {
                continue;
            };
            budget.writer_at(k);
            before(conn, k);
            let src = &sources[todo[k]];
            (
                k,
                rx,
                store::Writer::begin(conn, src, opts.force, opts.embed),
            )
        };
        let i = todo[k];
        let src = &sources[i];
        let (mut cap_frames, mut flood_warned) = (0u64, false);
        let outcome = begun.and_then(|w| write_capture(w, &rx, ctx.spares, opts, &mut |read, frames, flows| {
            let mut pr = ctx.progress.lock().unwrap_or_else(|e| e.into_inner());
            pr.frames += frames;
            pr.flows += flows;
            cap_frames += frames;
            // Zero-length records cost a row each but almost nothing on disk once compressed: 256 MiB of
            // zeros after a pcap header is 9 KB of zstd and would be a 489 MB database. Say so while it
            // happens, once.
            if !flood_warned
                && cap_frames >= FLOOD_MIN_RECORDS
                && cap_frames > read.saturating_mul(FLOOD_RECORDS_PER_BYTE)
            {
                flood_warned = true;
                let m = format!(
                            "warning: {}: {cap_frames} records from {read} bytes on disk (more records per byte than \
                             any real capture: a flood of empty records?); --max-frames N bounds it",
                            src.path
                        );
                ctx.say(m);
            }
            if let Some(b) = bar {
                let at = pr.done_bytes + read;
                b.set_position(at);
                let spent = started.elapsed().saturating_sub(store::lock_waited());
                b.set_message(progress_message(
                    at,
                    total_bytes,
                    spent,
                    pr.frames,
                    pr.flows,
                    &src.name,
                ));
            }
        }));
        drop(rx);
        {
            let mut pr = ctx.progress.lock().unwrap_or_else(|e| e.into_inner());
            pr.done_bytes += src.size;
            if let Some(b) = bar {
                b.set_position(pr.done_bytes);
            }
        }
        let say = |m: String| ctx.say(m);
        let mut guard = ctx.summary.lock().unwrap_or_else(|e| e.into_inner());
        let summary: &mut Summary = &mut guard;
        match outcome {
            Ok(Ok(Outcome::Indexed {
                end, superseded, ..
            })) => {
                summary.indexed += 1;
                summary.frames += end.frames;
                summary.flows += end.flows;
                let is_file = matches!(inputs[i], Input::File(_));
                if is_file && (end.changed || (end.size, end.mtime_ns) != (src.size, src.mtime_ns))
                {
                    say(format!(
                        "warning: {} changed while it was read; indexed the {} bytes read",
                        src.path, end.size
                    ));
                }
                for s in superseded {
                    say(match s {
                            Superseded::Replaced(old) => format!(
                                "{}: content changed since it was indexed; replaced capture {old}",
                                src.path
                            ),
                            Superseded::PathMoved(old) => format!(
                                "{}: content changed since it was indexed; capture {old} keeps its other paths, \
                                 this path moved to the new capture",
                                src.path
                            ),
                        });
                }
                if let Some(t) = &end.truncation {
                    summary.truncated += 1;
                    say(format!(
                        "warning: {}: truncated at byte offset {} after frame {}: {}",
                        src.path, t.offset, end.frames, t.reason
                    ));
                } else if opts.verbose {
                    say(format!(
                        "{}: {} frames, {} flows",
                        src.path, end.frames, end.flows
                    ));
                }
            }
            Ok(Ok(Outcome::AlreadyIndexed { name, .. })) => {
                summary.skipped += 1;
                summary.already += 1;
                if opts.verbose {
                    say(format!("{}: already indexed (as {name})", src.path));
                }
            }
            Ok(Err(ReadFailure::NotCapture(why))) if in_folder[i] => {
                summary.skipped += 1;
                summary.not_captures += 1;
                if named_like_a_capture(&src.path) {
                    // A README in a folder of captures is expected; a `.pcap` that is not one is damage.
                    say(format!(
                        "warning: {}: named like a capture, but its header is not one ({why}), skipped",
                        src.path
                    ));
                } else if opts.verbose {
                    say(format!("{}: {why}, skipped", src.path));
                }
            }
            Ok(Err(ReadFailure::NotCapture(why))) => {
                // Named on the command line: the user meant it to be a capture.
                summary.failed += 1;
                say(format!("error: {}: {why}", src.path));
            }
            Ok(Err(ReadFailure::Interrupted)) => {
                summary.interrupted = true;
                say(format!("{}: interrupted, rolled back", src.path));
            }
            Ok(Err(ReadFailure::Failed(why))) => {
                summary.failed += 1;
                say(format!("error: {}: {why}", src.path));
            }
            Err(e) => {
                // Not this capture's fault: a full disk or a read-only database fails every capture after
                // it too. Stop at the first, once.
                summary.failed += 1;
                let line = crate::msg::error_line(&e.to_string(), error_causes(&e));
                say(format!("error: {}: {line}; stopping", src.path));
                summary.database_error = Some(line);
            }
        }
        if summary.interrupted || summary.database_error.is_some() {
            // The other readers and writers stop too.
            opts.cancel.cancel();
            break;
        }
    }
}

fn error_causes(e: &dyn std::error::Error) -> Vec<String> {
    let mut causes = Vec::new();
    let mut at = e.source();
    while let Some(c) = at {
        causes.push(c.to_string());
        at = c.source();
    }
    causes
}

/// The file name says pcap or pcapng (`.pcap`, `.pcapng`, `.cap`, `.ntar`, also under `.gz` or `.zst`): a file
/// so named whose header is not a capture's is a damaged capture, worth a warning even in a folder.
fn named_like_a_capture(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(&name);
    [".pcap", ".pcapng", ".cap", ".ntar"]
        .iter()
        .any(|ext| name.ends_with(ext))
}
