//! Many flows out as one capture (`traceflow flows FILTER --pcap FILE`): the frames of every selected flow, from
//! any number of captures, merged as mergecap merges files. `connections FILTER --pcap FILE` merges the same
//! way with connections (both directions, the frames whose conn_no is the connection's) in place of flows.
//!
//! Each capture's frames keep their file order, and captures are interleaved by time: the next frame written is
//! the earliest of each capture's next frame (ties go to the lower capture id, then frame number). A capture's
//! matching flows are read in flow_no order, which is the order of their first frames, a page at a time; a flow's
//! frames (its `prev_in_flow` chain, as `query --flow` reads it) are loaded when the merge reaches its first
//! frame and let go after its last. Memory holds the flows that overlap the moment being written, never the
//! whole selection. A frame belongs to exactly one directed flow (frames.flow_no), so none is written twice.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::Write;

use crate::store::read::PAGE;
use crate::store::Db;

use super::pcapwrite::{PcapNgWriter, PcapWriter};
use super::source::{Fetcher, FrameRef, Plan};
use super::{DumpError, DumpFormat, DumpOptions, Job};
use crate::filter::Compiled;
use crate::store::read::FlowFrames;

/// What a merge wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Flows (or connections) whose frames were written.
    pub flows: u64,
    /// Frames written.
    pub frames: u64,
}

/// Which flows to merge.
pub enum Selection<'a> {
    /// Every flow that matches a compiled filter.
    Filter(&'a Compiled),
    /// These flows, as (capture_id, flow_no): a `--limit` pick, already bounded.
    Flows(Vec<(i64, i64)>),
    /// Every connection that has a flow matching a compiled filter (`connections FILTER`).
    Connections(&'a Compiled),
    /// These connections, as (capture_id, conn_no): a `--limit` pick.
    Conns(Vec<(i64, i64)>),
}

impl Selection<'_> {
    /// Whether the units merged are connections (else flows).
    fn connections(&self) -> bool {
        matches!(self, Selection::Connections(_) | Selection::Conns(_))
    }

    /// The listed units, when the selection is a list.
    fn listed(&self) -> Option<&[(i64, i64)]> {
        match self {
            Selection::Flows(v) | Selection::Conns(v) => Some(v),
            _ => None,
        }
    }
}

/// The output, opened on the first frame (a pcap header needs that frame's link type).
enum Out<W: Write> {
    Pending(W),
    Pcap(PcapWriter<W>, u32),
    Pcapng(PcapNgWriter<W>, HashMap<u32, u32>),
    Taken,
}

/// One flow being written: its frames and the next one due.
struct Cursor {
    frames: Vec<FrameRef>,
    next: usize,
}

/// A capture in the merge: its matching flows still to start, the flows under way, and the source of its bytes
/// (opened at its first frame written, so a capture with nothing selected never needs its file).
struct Cap<'c> {
    id: i64,
    job: Job,
    fetcher: Option<Fetcher<'c>>,
    queue: VecDeque<(i64, u64)>,
    after: i64,
    exhausted: bool,
    active: BinaryHeap<Reverse<(u64, usize)>>,
}

/// Interface facts over every capture of the database, for the output's headers: per link type, the largest
/// snapshot length and whether any interface had sub-µs timestamps.
fn link_facts(db: &Db) -> Result<HashMap<u32, (u32, bool)>, DumpError> {
    let mut m: HashMap<u32, (u32, bool)> = HashMap::new();
    for (lt, snap, res) in crate::store::read::all_interfaces(db)? {
        let e = m.entry(lt).or_insert((0, false));
        e.0 = e.0.max(snap);
        e.1 |= crate::capture::tsresol_digits(res) > 6;
    }
    Ok(m)
}

/// Merges the selected flows into one pcap or pcapng written to `w` (named `path` in errors), and returns the
/// writer and what was written. With no frame at all the file is a valid empty capture (pcap with Ethernet's
/// link type, or pcapng with no interface).
pub fn merge<W: Write>(
    db: &Db,
    sel: &Selection,
    opts: &DumpOptions,
    w: W,
    path: &str,
) -> Result<(W, Merged), DumpError> {
    if !opts.format.is_binary() {
        return Err(DumpError::Usage(
            "flows are merged into pcap or pcapng only".into(),
        ));
    }
    let mut m = Merger {
        db,
        sel,
        opts,
        path,
        walk: FlowFrames::new(db)?,
        facts: link_facts(db)?,
        cursors: Vec::new(),
        free: Vec::new(),
        out: Out::Pending(w),
        buf: Vec::new(),
        done: Merged::default(),
    };
    m.run()?;
    let w = m.finish()?;
    Ok((w, m.done))
}

struct Merger<'c, 's, W: Write> {
    db: &'c Db,
    sel: &'s Selection<'s>,
    opts: &'s DumpOptions,
    path: &'s str,
    walk: FlowFrames<'c>,
    facts: HashMap<u32, (u32, bool)>,
    cursors: Vec<Option<Cursor>>,
    free: Vec<usize>,
    out: Out<W>,
    buf: Vec<u8>,
    done: Merged,
}

impl<'c, W: Write> Merger<'c, '_, W> {
    fn run(&mut self) -> Result<(), DumpError> {
        // Captures join the merge in order of their first frame time, when the merge reaches it.
        let mut listed: HashMap<i64, VecDeque<(i64, u64)>> = HashMap::new();
        if let Some(units) = self.sel.listed() {
            let mut sorted = units.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            for (cid, no) in sorted {
                let first = if self.sel.connections() {
                    crate::store::read::connection_first_frame(self.db, cid, no)?
                } else {
                    crate::store::read::flow_first_frame(self.db, cid, no)?
                };
                listed
                    .entry(cid)
                    .or_default()
                    .push_back((no, first.max(0) as u64));
            }
        }
        let mut pending = crate::store::read::captures_by_time(self.db)?;
        if self.sel.listed().is_some() {
            pending.retain(|(_, id)| listed.contains_key(id));
        }
        let mut caps: HashMap<i64, Cap<'c>> = HashMap::new();
        // Each capture under way has exactly one entry: its next frame, as (time, capture id, frame number).
        let mut heap: BinaryHeap<Reverse<(i64, i64, u64)>> = BinaryHeap::new();
        loop {
            let next_ts = heap.peek().map(|Reverse(e)| e.0);
            match (pending.front(), next_ts) {
                (Some(&(first_ns, id)), t) if t.is_none_or(|t| first_ns <= t) => {
                    pending.pop_front();
                    let mut cap = Cap {
                        id,
                        job: Job::new(self.db, id)?,
                        fetcher: None,
                        queue: listed.remove(&id).unwrap_or_default(),
                        after: 0,
                        exhausted: self.sel.listed().is_some(),
                        active: BinaryHeap::new(),
                    };
                    if let Some(h) = self.head(&mut cap)? {
                        heap.push(Reverse((h.1, id, h.0)));
                        caps.insert(id, cap);
                    }
                }
                (_, None) => break,
                (_, Some(_)) => {
                    let Some(Reverse((_, id, _))) = heap.pop() else {
                        break;
                    };
                    let Some(cap) = caps.get_mut(&id) else {
                        continue;
                    };
                    self.emit(cap)?;
                    match self.head(cap)? {
                        Some(h) => heap.push(Reverse((h.1, id, h.0))),
                        None => {
                            caps.remove(&id);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The next page of a capture's matching flows (or connections), in flow_no (conn_no) order, into its queue.
    fn refill(&mut self, cap: &mut Cap) -> Result<(), DumpError> {
        let page = match self.sel {
            Selection::Filter(filter) => {
                crate::store::read::flow_page(self.db, filter, cap.id, cap.after)?
            }
            Selection::Connections(filter) => {
                crate::store::read::connection_page(self.db, filter, cap.id, cap.after)?
            }
            Selection::Flows(_) | Selection::Conns(_) => {
                cap.exhausted = true;
                return Ok(());
            }
        };
        let mut got = 0;
        for (flow_no, first) in page {
            cap.queue.push_back((flow_no, first.max(0) as u64));
            cap.after = flow_no;
            got += 1;
        }
        if got < PAGE {
            cap.exhausted = true;
        }
        Ok(())
    }

    /// The capture's next frame in file order, as (frame number, time); flows start as the merge reaches their
    /// first frame.
    fn head(&mut self, cap: &mut Cap) -> Result<Option<(u64, i64)>, DumpError> {
        loop {
            if cap.queue.is_empty() && !cap.exhausted {
                self.refill(cap)?;
            }
            let under_way = cap.active.peek().map(|Reverse(e)| *e);
            match (cap.queue.front().copied(), under_way) {
                (Some((flow_no, first)), u) if u.is_none_or(|(n, _)| first < n) => {
                    cap.queue.pop_front();
                    self.start(cap, flow_no)?;
                }
                (_, Some((_, slot))) => {
                    let Some(c) = self.cursors[slot].as_ref() else {
                        return Ok(None);
                    };
                    let f = c.frames[c.next];
                    return Ok(Some((f.number, f.ts_ns)));
                }
                (_, None) => return Ok(None),
            }
        }
    }

    /// Loads a flow's (or connection's) frames and puts it under way.
    fn start(&mut self, cap: &mut Cap, flow_no: i64) -> Result<(), DumpError> {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.cursors.push(None);
            self.cursors.len() - 1
        });
        let mut frames = self.cursors[slot]
            .take()
            .map(|c| c.frames)
            .unwrap_or_default();
        frames.clear();
        if self.sel.connections() {
            self.walk.connection(cap.id, flow_no, &mut frames)?;
        } else {
            self.walk.append(cap.id, flow_no, &mut frames)?;
        }
        self.done.flows += 1;
        match frames.first() {
            Some(f) => {
                cap.active.push(Reverse((f.number, slot)));
                self.cursors[slot] = Some(Cursor { frames, next: 0 });
            }
            None => self.free.push(slot),
        }
        Ok(())
    }

    /// Writes the capture's next frame and moves its flow on.
    fn emit(&mut self, cap: &mut Cap<'c>) -> Result<(), DumpError> {
        let Some(Reverse((_, slot))) = cap.active.pop() else {
            return Ok(());
        };
        let Some(cur) = self.cursors[slot].as_mut() else {
            return Ok(());
        };
        let f = cur.frames[cur.next];
        cur.next += 1;
        match cur.frames.get(cur.next) {
            Some(n) => cap.active.push(Reverse((n.number, slot))),
            // The flow is written: its slot (and its frame vector's memory) serves the next flow.
            None => self.free.push(slot),
        }
        if cap.fetcher.is_none() {
            cap.fetcher = Some(self.open_source(cap)?);
        }
        let Some(fetcher) = cap.fetcher.as_mut() else {
            return Ok(());
        };
        fetcher.fetch(&f, &mut self.buf)?;
        let linktype = cap.job.iface(f.iface).linktype;
        let path = self.path;
        let werr = |source| DumpError::Write {
            path: path.to_string(),
            source,
        };
        self.out = match std::mem::replace(&mut self.out, Out::Taken) {
            Out::Pending(w) => match self.opts.format {
                DumpFormat::Pcap => {
                    let (snap, fine) = self.facts.get(&linktype).copied().unwrap_or((0, true));
                    let snap = if snap == 0 { 262_144 } else { snap };
                    Out::Pcap(
                        PcapWriter::new(
                            w,
                            linktype,
                            snap,
                            self.opts.big_endian,
                            fine || self.opts.nanosecond,
                        )
                        .map_err(werr)?,
                        linktype,
                    )
                }
                _ => Out::Pcapng(PcapNgWriter::new(w).map_err(werr)?, HashMap::new()),
            },
            open => open,
        };
        match &mut self.out {
            Out::Pcap(w, lt) => {
                if *lt != linktype {
                    return Err(DumpError::Usage(format!(
                        "the {} have frames of several link types ({} and {}); a pcap file holds one link \
                         type: use --pcapng FILE",
                        if self.sel.connections() {
                            "connections"
                        } else {
                            "flows"
                        },
                        crate::decode::numbers::linktype_text(*lt),
                        crate::decode::numbers::linktype_text(linktype)
                    )));
                }
                super::check_time(&cap.job.cap, f.ts_ns, self.opts.format);
                w.write(f.ts_ns, f.origlen, &self.buf).map_err(werr)?;
            }
            Out::Pcapng(w, ids) => {
                let id = match ids.get(&linktype) {
                    Some(&id) => id,
                    None => {
                        let (snap, fine) = self.facts.get(&linktype).copied().unwrap_or((0, true));
                        let res = if fine || self.opts.nanosecond { 9 } else { 6 };
                        let id = w.add_interface(linktype, snap, res).map_err(werr)?;
                        ids.insert(linktype, id);
                        id
                    }
                };
                super::check_time(&cap.job.cap, f.ts_ns, self.opts.format);
                w.write(id, f.ts_ns, f.origlen, &self.buf).map_err(werr)?;
            }
            Out::Pending(_) | Out::Taken => {}
        }
        self.done.frames += 1;
        Ok(())
    }

    /// Opens a capture's bytes: frames of several flows are wanted, not in one pass of the file.
    fn open_source(&self, cap: &Cap) -> Result<Fetcher<'c>, DumpError> {
        let plan = Plan::any_order(self.db, cap.id)?.unwrap_or(Plan {
            in_order: false,
            end: 0,
        });
        Fetcher::open(
            self.db,
            &cap.job.cap,
            self.opts.source_root.as_deref(),
            &plan,
        )
    }

    /// The writer, after the last frame (or an empty capture's header when nothing was written).
    fn finish(&mut self) -> Result<W, DumpError> {
        let werr = |source| DumpError::Write {
            path: self.path.to_string(),
            source,
        };
        Ok(match std::mem::replace(&mut self.out, Out::Taken) {
            Out::Pending(w) => match self.opts.format {
                DumpFormat::Pcap => {
                    PcapWriter::new(w, 1, 262_144, self.opts.big_endian, self.opts.nanosecond)
                        .map_err(werr)?
                        .into_inner()
                }
                _ => PcapNgWriter::new(w).map_err(werr)?.into_inner(),
            },
            Out::Pcap(w, _) => w.into_inner(),
            Out::Pcapng(w, _) => w.into_inner(),
            // Only an earlier failed write leaves the output taken, and that failure ended the merge.
            Out::Taken => {
                return Err(werr(std::io::Error::other(
                    "the output was lost after an earlier error",
                )))
            }
        })
    }
}
