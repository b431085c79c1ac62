//! The time-ordered merge of a flow listing: each capture's matching flows in flow order, a page at a time,
//! merged by the first frame time of each capture's next flow (pages can be read ahead: [`super::prefetch`]).

use std::collections::HashMap;

use super::error::QueryError;
use super::rows::FlowRow;

/// Flows of one capture read per page of a time-ordered listing.
pub const PAGE: i64 = 1024;

/// `page(capture, after, into)` of [`merge_pages`].
pub(crate) type PageFn<'a> =
    dyn FnMut(i64, i64, &mut std::collections::VecDeque<FlowRow>) -> Result<bool, QueryError> + 'a;

/// The merge of [`super::read::search_flows`] in time order: `pending` lists (first frame time, capture id) of the captures in
/// that order; `page(capture, after, into)` appends the capture's next matching flows after flow_no `after`, in
/// flow_no order, and says whether more may follow. Flows come out by (first time, capture id, flow_no) of each
/// capture's next flow, at most `limit`.
pub(crate) fn merge_pages(
    mut pending: std::collections::VecDeque<(i64, i64)>,
    limit: Option<u64>,
    page: &mut PageFn,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, VecDeque};
    // Per capture under way: its fetched rows, the last flow_no fetched, and whether more may follow.
    let mut queues: HashMap<i64, (VecDeque<FlowRow>, i64, bool)> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(i64, i64, i64)>> = BinaryHeap::new();
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let next = heap.peek().map(|Reverse(e)| e.0);
        if let Some(&(first_ns, cid)) = pending.front() {
            if next.is_none_or(|t| first_ns <= t) {
                pending.pop_front();
                let mut q = VecDeque::new();
                let more = page(cid, 0, &mut q)?;
                if let Some(h) = q.front() {
                    heap.push(Reverse((h.first_ns, cid, h.flow_no)));
                    let last = q.back().map_or(0, |r| r.flow_no);
                    queues.insert(cid, (q, last, more));
                }
                continue;
            }
        }
        let Some(Reverse((_, cid, _))) = heap.pop() else {
            break;
        };
        let Some((q, last, more)) = queues.get_mut(&cid) else {
            continue;
        };
        let Some(row) = q.pop_front() else {
            continue;
        };
        if q.is_empty() && *more {
            *more = page(cid, *last, q)?;
            if let Some(b) = q.back() {
                *last = b.flow_no;
            }
        }
        match q.front() {
            Some(h) => heap.push(Reverse((h.first_ns, cid, h.flow_no))),
            None => {
                queues.remove(&cid);
            }
        }
        visit(row)?;
        left -= 1;
    }
    Ok(())
}
