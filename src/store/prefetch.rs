//! Reading the pages of a time-ordered flow listing ahead, on helper threads with connections of their own.
//!
//! A listing in time order ([`super::merge::merge_pages`]) reads each capture's matching flows a page at a time,
//! in flow order. Which page comes next for a capture never depends on the merge, only on the page before, so
//! helpers can read a capture's next pages while the listing thread merges and writes the rows it has. Listing
//! every flow spends about 60% of its time reading rows out of SQLite and 40% merging and writing them, so on two
//! cores the two overlap.
//!
//! Memory stays bounded: a capture holds at most [`AHEAD`] pages read ahead, and only captures that have joined
//! the merge are read. The listing thread reads a page itself when no helper is on it, so helpers only ever add
//! speed; a helper's failure is reported by the listing thread at its next page of that capture.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::error::QueryError;
use super::merge::PageFn;
use super::rows::FlowRow;

/// Pages read ahead per capture.
pub(crate) const AHEAD: usize = 2;

/// A page read: its rows, and whether more may follow.
type Page = (VecDeque<FlowRow>, bool);

/// One capture's progress.
#[derive(Default)]
struct Cap {
    /// Pages read and not yet taken, in order.
    ready: VecDeque<Page>,
    /// A helper is reading this capture's next page.
    claimed: bool,
    /// The flow number the next page starts after.
    after: i64,
    /// More pages may follow the last one read.
    more: bool,
}

#[derive(Default)]
struct State {
    caps: HashMap<i64, Cap>,
    /// A helper's failure, handed to the listing thread.
    failed: Option<QueryError>,
    /// The listing is over: helpers return.
    stop: bool,
}

/// What the listing thread and its helpers share.
#[derive(Default)]
pub(crate) struct Prefetch {
    state: Mutex<State>,
    changed: Condvar,
}

impl Prefetch {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A helper that panicked holding the lock leaves consistent state: every update is a few assignments.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listing thread's page of capture `cid` after flow `after` (what `merge_pages` asks): a page read
    /// ahead when there is one, else read now through `mine`, or waited for when a helper is reading it.
    pub(crate) fn page(
        &self,
        cid: i64,
        after: i64,
        into: &mut VecDeque<FlowRow>,
        mine: &mut PageFn,
    ) -> Result<bool, QueryError> {
        let mut st = self.lock();
        if let Some(e) = st.failed.take() {
            return Err(e);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = st.caps.entry(cid) {
            e.insert(Cap {
                after,
                more: true,
                ..Cap::default()
            });
            self.changed.notify_all();
        }
        loop {
            let cap = st.caps.get_mut(&cid).expect("inserted above");
            if let Some((rows, more)) = cap.ready.pop_front() {
                if into.is_empty() {
                    *into = rows;
                } else {
                    into.extend(rows);
                }
                self.changed.notify_all();
                return Ok(more);
            }
            if !cap.more {
                return Ok(false);
            }
            if !cap.claimed {
                cap.claimed = true;
                let from = cap.after;
                drop(st);
                let read = mine(cid, from, into);
                st = self.lock();
                let cap = st.caps.get_mut(&cid).expect("kept while claimed");
                cap.claimed = false;
                let more = read?;
                cap.after = into.back().map_or(cap.after, |r| r.flow_no);
                // A page with nothing in it ends the capture even if more was said: asking again from the same
                // place would give the same page forever.
                cap.more = more && !into.is_empty();
                self.changed.notify_all();
                return Ok(cap.more);
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            if let Some(e) = st.failed.take() {
                return Err(e);
            }
        }
    }

    /// A helper's loop: reads, through `read`, the next page of the capture that has the fewest pages ahead,
    /// until [`Prefetch::stop`].
    pub(crate) fn serve(&self, read: &mut PageFn) {
        let mut st = self.lock();
        loop {
            if st.stop || st.failed.is_some() {
                return;
            }
            let next = st
                .caps
                .iter()
                .filter(|(_, c)| c.more && !c.claimed && c.ready.len() < AHEAD)
                .min_by_key(|(cid, c)| (c.ready.len(), **cid))
                .map(|(cid, _)| *cid);
            let Some(cid) = next else {
                st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let cap = st.caps.get_mut(&cid).expect("found above");
            cap.claimed = true;
            let from = cap.after;
            drop(st);
            let mut rows = VecDeque::with_capacity(super::read::PAGE as usize);
            let read = read(cid, from, &mut rows);
            st = self.lock();
            let cap = st.caps.get_mut(&cid).expect("kept while claimed");
            cap.claimed = false;
            match read {
                Ok(more) => {
                    cap.after = rows.back().map_or(cap.after, |r| r.flow_no);
                    cap.more = more && !rows.is_empty();
                    let more = cap.more;
                    cap.ready.push_back((rows, more));
                }
                Err(e) => st.failed = Some(e),
            }
            self.changed.notify_all();
        }
    }

    /// Ends the helpers' loops.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }

    /// A guard that ends the helpers' loops when dropped, also when the listing unwinds: a scope waiting for
    /// helpers that wait for work would never end.
    pub(crate) fn stop_on_drop(&self) -> StopOnDrop<'_> {
        StopOnDrop(self)
    }
}

/// See [`Prefetch::stop_on_drop`].
pub(crate) struct StopOnDrop<'a>(&'a Prefetch);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}
