//! A capture's reader thread: reads the capture frame by frame into a [`FramePipeline`], and sends the rows it
//! makes to the writer in batches.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::budget::Budget;
use super::channel::{Empties, Msg, Outbox, Pending, BATCH, BATCH_BYTES};
use super::inputs::{as_read, Input};
use super::{Options, ReadFailure};
use crate::capture::{CaptureReader, Frame, OpenError};
use crate::conn::{ConnRecord, ConnSeg, Connections};
use crate::decode::decode;
use crate::store::{CaptureEnd, FrameRow, TcpRow};
use crate::trace::buckets::Buckets;
use crate::trace::endpoints::Endpoints;
use crate::trace::{FlowRecord, Tracer};

/// What one capture's frames go through, fed one frame at a time: decoding, the endpoint tally, the tracer (flows),
/// the flow buckets and, with `--connections`, the connection tracker. It makes each frame's row and the flows and
/// connections that frame ended; the reader batches them.
pub(super) struct FramePipeline {
    tracer: Tracer,
    /// With --connections, flows get their Community ID from the connection tracker, which hashes each key once;
    /// without, the tracer hashes each flow's.
    connections: Option<Connections>,
    endpoints: Endpoints,
    buckets: Buckets,
    /// The number of the last frame fed (frames are numbered from 1, so also how many).
    last_number: u64,
    tcp_frames: u64,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
}

/// What a capture's frames came to, for its end record.
pub(super) struct Tally {
    pub(super) frames: u64,
    pub(super) tcp_frames: u64,
    pub(super) flows: u64,
    pub(super) first_ns: Option<i64>,
    pub(super) last_ns: Option<i64>,
}

impl FramePipeline {
    /// `parked_rows`: the writer can replace a flow's row (SQLite), so parked flows' rows are handed over as they
    /// are parked (`Tracer::with_parked_rows`).
    pub(super) fn new(opts: &Options, parked_rows: bool) -> FramePipeline {
        let connections = opts
            .connections
            .then(|| Connections::with_max_open(opts.community_id_seed, opts.max_open_flows));
        let mut tracer = Tracer::with_max_open(opts.max_open_flows);
        if let Some(bytes) = opts.park_memory {
            tracer = tracer.with_park_memory(bytes);
        }
        if connections.is_none() {
            tracer = tracer.with_community_id_seed(opts.community_id_seed);
        }
        if parked_rows {
            tracer = tracer.with_parked_rows();
        }
        FramePipeline {
            tracer,
            connections,
            endpoints: Endpoints::default(),
            buckets: Buckets::default(),
            last_number: 0,
            tcp_frames: 0,
            first_ns: None,
            last_ns: None,
        }
    }

    /// The number of the last frame fed (0 before the first).
    pub(super) fn last_number(&self) -> u64 {
        self.last_number
    }

    /// Text buffers the writer handed back, for the tracer's next flow records.
    pub(super) fn recycle_texts(&mut self, texts: &mut Vec<String>) {
        self.tracer.recycle_texts(texts);
    }

    /// Feeds one frame and returns its row. The flows it closed or parked go to `flows`, the connections it ended
    /// to `conns`; a full endpoint tally or full bucket lists go to `emit` (false from it: the writer hung up, and
    /// so does this, with None).
    #[inline]
    pub(super) fn frame(
        &mut self,
        f: &Frame<'_>,
        flows: &mut Vec<FlowRecord>,
        conns: &mut Vec<ConnRecord>,
        emit: &mut impl FnMut(Msg) -> bool,
    ) -> Option<FrameRow> {
        let FramePipeline {
            tracer,
            connections,
            endpoints,
            buckets,
            last_number,
            tcp_frames,
            first_ns,
            last_ns,
        } = self;
        *last_number = f.number;
        let ts_ns = f.ts.as_ns();
        first_ns.get_or_insert(ts_ns);
        *last_ns = Some(ts_ns);
        let decoded = decode(f.linktype, f.data);
        endpoints.observe(f.data, &decoded, f.origlen);
        if endpoints.is_full() && !emit(Msg::Endpoints(endpoints.take())) {
            return None;
        }
        if buckets.is_full() && !emit(Msg::Buckets(buckets.take())) {
            return None;
        }
        let tcp = decoded.tcp.map(|t| {
            *tcp_frames += 1;
            let (flow_no, prev_frame) =
                tracer.observe_linked(f.number, &f.ts, f.origlen, &t, &mut |mut r| {
                    if r.provisional {
                        // A parked flow's row (other keys than this frame's): its Community ID now.
                        set_community_id(connections.as_ref(), &mut r);
                    }
                    count_endpoints(endpoints, &r);
                    flows.push(r)
                });
            if prev_frame.is_none() {
                buckets.add(flow_no, &t.src, t.sport, &t.dst, t.dport);
            }
            let seg = ConnSeg {
                number: f.number,
                ts_ns,
                origlen: f.origlen,
                src: t.src,
                sport: t.sport,
                dst: t.dst,
                dport: t.dport,
                flags: t.flags,
                seq: t.seq,
                ack: t.ack,
                payload_len: t.payload_len,
                flow_no,
                ip_len: crate::conn::frame::ip_len(f.data, &decoded),
                truncated: crate::conn::frame::header_truncated(f.data, &decoded),
            };
            let conn_no = connections.as_mut().map(|c| {
                let no = c.observe(&seg, &mut |r| conns.push(r));
                // A flow this frame closed has the frame's key.
                for r in flows
                    .iter_mut()
                    .rev()
                    .take_while(|r| r.community_id().is_empty())
                {
                    r.set_community_id(&c.community_id(t.src, t.sport, t.dst, t.dport));
                }
                no
            });
            TcpRow {
                conn_no,
                flow_no,
                prev_frame,
                flags: t.flags,
                seq: t.seq,
                ack: t.ack,
                win: t.window,
                payload_len: t.payload_len,
            }
        });
        Some(FrameRow {
            number: f.number,
            ts_ns,
            caplen: f.caplen,
            origlen: f.origlen,
            iface: f.iface,
            offset: f.offset,
            tcp,
        })
    }

    /// After the last frame: hands the still-open flows, then the connections still in memory, then the last
    /// endpoint tally and bucket lists to `emit`, the rows in batches (`bytes_read`: where the capture's bytes
    /// end). None when the writer hung up or the tracer failed (then `emit` was told why).
    pub(super) fn finish(
        self,
        bytes_read: u64,
        emit: &mut dyn FnMut(Msg) -> bool,
    ) -> Option<Tally> {
        let FramePipeline {
            tracer,
            connections,
            mut endpoints,
            mut buckets,
            last_number,
            tcp_frames,
            first_ns,
            last_ns,
        } = self;
        let tally = Tally {
            frames: last_number,
            tcp_frames,
            flows: u64::from(tracer.created()),
            first_ns,
            last_ns,
        };
        let mut open = Vec::with_capacity(BATCH);
        let mut hung_up = false;
        // A flow still parked is not read back: its row was stored, and its endpoints counted, when it was parked.
        let finished = tracer.finish(&mut |mut r| {
            set_community_id(connections.as_ref(), &mut r);
            count_endpoints(&mut endpoints, &r);
            // A capture of many open flows (PostgreSQL: parked ones too) ends here: without this hand-on the
            // tally of their addresses would grow by tens of MB at the end of a capture that leaves millions of
            // flows open.
            if endpoints.is_full() && !hung_up {
                hung_up = !emit(Msg::Endpoints(endpoints.take()));
            }
            open.push(r);
            if open.len() >= BATCH && !hung_up {
                let flows = std::mem::replace(&mut open, Vec::with_capacity(BATCH));
                hung_up = !emit(Msg::rows(flows, Vec::new(), bytes_read));
            }
        });
        if let Err(e) = finished {
            emit(Msg::Failed(ReadFailure::Failed(e.to_string())));
            return None;
        }
        if hung_up || !emit(Msg::rows(open, Vec::new(), bytes_read)) {
            return None;
        }
        // The connections not done yet (in memory and parked), in batches as the flows.
        let mut done = Vec::with_capacity(BATCH);
        let mut hung_up = false;
        let finished = connections.map_or(Ok(()), |t| {
            t.finish(&mut |c| {
                done.push(c);
                if done.len() >= BATCH && !hung_up {
                    let conns = std::mem::replace(&mut done, Vec::with_capacity(BATCH));
                    hung_up = !emit(Msg::rows(Vec::new(), conns, bytes_read));
                }
            })
        });
        if let Err(e) = finished {
            emit(Msg::Failed(ReadFailure::Failed(e.to_string())));
            return None;
        }
        if hung_up
            || !emit(Msg::rows(Vec::new(), done, bytes_read))
            || !emit(Msg::Endpoints(endpoints.take()))
            || !emit(Msg::Buckets(buckets.take()))
        {
            return None;
        }
        Some(tally)
    }
}

/// Counts a flow record's frames in the endpoint tally: those an earlier row of the flow did not count (the row
/// stored when it was parked), so that each frame counts once however often the flow is parked and comes back.
fn count_endpoints(endpoints: &mut Endpoints, r: &FlowRecord) {
    let (packets, bytes) = (r.packets - r.counted.0, r.bytes - r.counted.1);
    endpoints.observe_flow_addrs(&r.src_addr, &r.dst_addr, packets, bytes);
}

/// A flow record's Community ID from the connection tracker, when connections are tracked (else the tracer made
/// it). The text of an address parses back to it (IPv4-mapped IPv6 included).
fn set_community_id(connections: Option<&Connections>, r: &mut FlowRecord) {
    if let Some(c) = connections {
        if let (Ok(s), Ok(d)) = (r.src().parse(), r.dst().parse()) {
            let id = c.community_id(s, r.sport, d, r.dport);
            r.set_community_id(&id);
        }
    }
}

/// Reads one capture (number `capture` of those to write) through a [`FramePipeline`], sending its rows to the
/// writer. Returns when done or when the writer hung up.
pub(super) fn read_capture(
    input: &Input,
    opts: &Options,
    tx: &Sender<Msg>,
    spares: &Receiver<Empties>,
    budget: &Arc<Budget>,
    capture: usize,
    parked_rows: bool,
) {
    let embed = opts.embed;
    let opened = match input {
        Input::Stdin => CaptureReader::from_reader(Box::new(std::io::stdin())),
        Input::File(p) => CaptureReader::open(p),
    };
    let mut reader = match opened {
        Ok(r) => r,
        Err(OpenError::NotCapture(m)) => {
            let why = if m.is_empty() {
                "empty file, not a capture".to_string()
            } else {
                format!("not a capture (first bytes {m})")
            };
            let _ = tx.send(Msg::Failed(ReadFailure::NotCapture(why)));
            return;
        }
        Err(e) => {
            let _ = tx.send(Msg::Failed(ReadFailure::Failed(e.to_string())));
            return;
        }
    };
    let mut pipeline = FramePipeline::new(opts, parked_rows);
    let out = Outbox {
        cancel: &opts.cancel,
        tx,
        spares,
        budget,
        capture,
    };
    let mut emit = |m: Msg| tx.send(m).is_ok();
    let mut pending = Pending::new();
    loop {
        if let Some(max) = opts.max_frames {
            if pipeline.last_number() >= max {
                reader.stop_here(format!("--max-frames {max} reached"));
                break;
            }
        }
        // Where a batch flushed before this frame joins it ends (the frame borrows the reader below).
        let read_before = if embed { reader.bytes_read() } else { 0 };
        let Some(f) = reader.next_frame() else {
            break;
        };
        // Flush before the frame that would take the batch past BATCH_BYTES, so a batch holds at most
        // BATCH_BYTES, or one frame larger than that.
        if embed && !pending.data.is_empty() && pending.data.len() + f.data.len() > BATCH_BYTES {
            if !pending.send(&out, read_before) {
                return;
            }
            pipeline.recycle_texts(&mut pending.texts);
        }
        let Some(row) = pipeline.frame(&f, &mut pending.flows, &mut pending.conns, &mut emit)
        else {
            return;
        };
        if embed {
            pending.data.extend_from_slice(f.data);
        }
        pending.frames.push(row);
        if pending.frames.len() >= BATCH || pending.data.len() >= BATCH_BYTES {
            let read = reader.bytes_read();
            if !pending.send(&out, read) {
                return;
            }
            pipeline.recycle_texts(&mut pending.texts);
        }
    }
    // A regular file is drained so that its hash covers all of it. A stream is not: after damage it may go on for
    // ever (a live pipe), and the capture would never commit.
    if !reader.is_stream() || reader.truncation().is_none() {
        reader.drain();
    }
    let bytes_read = reader.bytes_read();
    // The still-open flows go out in batches too, so the end of a capture with many open flows costs no spike.
    if !pending.send(&out, bytes_read) {
        return;
    }
    pipeline.recycle_texts(&mut pending.texts);
    let Some(tally) = pipeline.finish(bytes_read, &mut emit) else {
        return;
    };
    if opts.cancel.is_cancelled() {
        let _ = tx.send(Msg::Failed(ReadFailure::Interrupted));
        return;
    }
    let listed = match input {
        Input::File(_) => reader.stat_at_open().unwrap_or((0, None)),
        Input::Stdin => (0, None),
    };
    let ((size, mtime_ns), changed) =
        as_read(listed, reader.stat_at_open(), bytes_read, reader.stat_now());
    let _ = tx.send(Msg::End(CaptureEnd {
        format: reader.format.as_str(),
        compression: reader.compression.as_str(),
        interfaces: reader.interfaces().to_vec(),
        frames: tally.frames,
        tcp_frames: tally.tcp_frames,
        flows: tally.flows,
        first_ns: tally.first_ns,
        last_ns: tally.last_ns,
        truncation: reader.truncation().cloned(),
        hash: reader.content_hash(),
        size,
        mtime_ns,
        changed,
    }));
}
