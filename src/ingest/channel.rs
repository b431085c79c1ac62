//! What a capture's reader sends its writer: row batches, endpoint tallies and bucket lists, then the capture's
//! end or why it stopped; and what goes back (emptied vectors, for the next batches). A capture's messages go
//! through its own bounded channel, so the writer takes captures in input order whatever `--jobs` is.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::budget::Budget;
use super::Cancel;
use crate::conn::ConnRecord;
use crate::store::{CaptureEnd, FrameRow};
use crate::trace::buckets::BucketRow;
use crate::trace::endpoints::EndpointRow;
use crate::trace::FlowRecord;

/// Frames per message to the writer: large enough to amortise channel costs, small enough to stay in cache.
pub(super) const BATCH: usize = 4096;
/// Frame bytes per message with --embed: with large frames, a batch of BATCH frames would hold hundreds of MiB.
pub(super) const BATCH_BYTES: usize = 8 << 20;
/// Batches queued per capture; bounds the row batches whatever the capture size (frame bytes: `IN_FLIGHT_BYTES`).
pub(super) const QUEUE: usize = 8;

/// Messages from a capture's reader thread to the writer.
pub(super) enum Msg {
    /// Frames, the flows closed meanwhile, and (with --embed) the frames' bytes concatenated in frame order.
    Batch {
        frames: Vec<FrameRow>,
        flows: Vec<FlowRecord>,
        /// Connections done: replaced by a reused key, or (at the end) all the others.
        conns: Vec<ConnRecord>,
        data: Vec<u8>,
        bytes_read: u64,
        /// Dropped once the writer has inserted the batch (or dropped it unread): releases the reader's claim on
        /// the memory budget for frame bytes in flight (`ingest::Budget`).
        held: Option<Box<dyn Send>>,
    },
    /// The capture's endpoint tally so far (each is added to what the writer already holds).
    Endpoints(Vec<EndpointRow>),
    /// Parts of the capture's flow bucket lists.
    Buckets(Vec<BucketRow>),
    End(CaptureEnd),
    Failed(ReadFailure),
}

impl Msg {
    /// A batch of flow and connection rows without frames (the end of a capture), which holds no budget.
    pub(super) fn rows(flows: Vec<FlowRecord>, conns: Vec<ConnRecord>, bytes_read: u64) -> Msg {
        Msg::Batch {
            frames: Vec::new(),
            flows,
            conns,
            data: Vec::new(),
            bytes_read,
            held: None,
        }
    }
}

/// What the writer hands back to the readers once a batch is in the database: its frame vector, emptied, and
/// the flow records' text buffers. Reused for the next batches, they spare the reader an allocation per batch and
/// per flow record, and the writer freeing them: on a SYN scan, a record per flow. (Not the flow vector: a
/// parking round's batch holds thousands of records, and spare ones of that size cost the scan 7 MB of peak RSS.)
pub(super) struct Empties {
    pub(super) frames: Vec<FrameRow>,
    pub(super) texts: Vec<String>,
}

/// Batches' worth of `Empties` waiting for a reader; when the readers do not keep up, the writer frees the rest.
pub(super) const SPARE_BATCHES: usize = 2;

/// Why a capture's reader stopped without reaching its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// The run was cancelled (Ctrl-C): the capture is rolled back, and the run stops.
    Interrupted,
    /// The input is no capture (empty, or no pcap/pcapng magic): skipped, not an error. The text says why.
    NotCapture(String),
    /// The input could not be read as a capture; the text says why.
    Failed(String),
}

/// Where a reader's batches go: the writer's channel, the shared byte budget, and the capture they belong to.
pub(super) struct Outbox<'a> {
    pub(super) cancel: &'a Cancel,
    pub(super) tx: &'a Sender<Msg>,
    /// Vectors and text buffers of batches the writer is done with.
    pub(super) spares: &'a Receiver<Empties>,
    pub(super) budget: &'a Arc<Budget>,
    pub(super) capture: usize,
}

/// The rows a reader holds until the next batch: frames, the flows and connections they closed, and the frame
/// bytes (`--embed`).
pub(super) struct Pending {
    pub(super) frames: Vec<FrameRow>,
    pub(super) flows: Vec<FlowRecord>,
    pub(super) conns: Vec<ConnRecord>,
    pub(super) data: Vec<u8>,
    /// Text buffers the writer handed back, for the tracer's next records (`Tracer::recycle_texts`).
    pub(super) texts: Vec<String>,
}

impl Pending {
    pub(super) fn new() -> Pending {
        Pending {
            frames: Vec::with_capacity(BATCH),
            flows: Vec::new(),
            conns: Vec::new(),
            data: Vec::new(),
            texts: Vec::new(),
        }
    }

    /// Sends what is held as one batch (`bytes_read`: where the capture's bytes it covers end). False when the
    /// run was cancelled or the writer hung up: the reader stops.
    pub(super) fn send(&mut self, out: &Outbox, bytes_read: u64) -> bool {
        if out.cancel.is_cancelled() {
            let _ = out.tx.send(Msg::Failed(ReadFailure::Interrupted));
            return false;
        }
        // In creation order, the writer's inserts into flows (keyed by flow_no) and flows_first_ns land next to
        // each other instead of all over the B-trees' right edges: 0.84 -> 0.77 s on the benchmark. Stable: a
        // flow parked, back and parked again has several rows here, and the writer keeps the last.
        self.flows.sort_by_key(|f| f.flow_no);
        self.conns.sort_unstable_by_key(|c| c.conn_no);
        let held = out.budget.acquire(out.capture, self.data.len());
        let mut frames = match out.spares.try_recv() {
            Ok(e) => {
                self.texts = e.texts;
                e.frames
            }
            Err(_) => Vec::new(),
        };
        frames.reserve(BATCH);
        let batch = Msg::Batch {
            frames: std::mem::replace(&mut self.frames, frames),
            flows: std::mem::take(&mut self.flows),
            conns: std::mem::take(&mut self.conns),
            data: std::mem::take(&mut self.data),
            bytes_read,
            held,
        };
        out.tx.send(batch).is_ok()
    }
}
