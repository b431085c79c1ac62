//! The budget of frame bytes (`--embed`) in flight between the readers and the writer, so that memory stays
//! bounded however large the records and however many readers.

use std::sync::{Arc, Condvar, Mutex};

use super::channel::BATCH_BYTES;

/// Frame bytes (--embed) queued between all readers and the writer together. Counting batches bounded nothing:
/// with 256 MiB records, every record is a batch, and 8 of them queued per reader made gigabytes.
pub(super) const IN_FLIGHT_BYTES: usize = 4 * BATCH_BYTES;

/// The budget of frame bytes in flight: a reader acquires a batch's bytes before sending it, and they are released
/// when the writer has inserted the batch (the lease travels in the message and is dropped with it).
///
/// The writer takes captures in input order, so a reader of a later capture holding the budget must not starve
/// the capture the writer waits for: that one may always send a batch when none of its own is in flight. A batch
/// larger than the whole budget passes when nothing else is in flight. Either way there is no deadlock, and the
/// bytes in flight stay under the budget plus one batch.
pub struct Budget {
    limit: usize,
    state: Mutex<BudgetState>,
    freed: Condvar,
}

struct BudgetState {
    total: usize,
    /// Bytes in flight per capture (index into the captures to write).
    own: Vec<usize>,
    /// The capture the writer is at.
    current: usize,
}

struct Lease {
    budget: Arc<Budget>,
    capture: usize,
    bytes: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut s = self.budget.lock();
        s.total -= self.bytes;
        s.own[self.capture] -= self.bytes;
        self.budget.freed.notify_all();
    }
}

impl Budget {
    /// A budget of `limit` frame bytes in flight, shared by the readers of `captures` captures.
    pub fn new(limit: usize, captures: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            state: Mutex::new(BudgetState {
                total: 0,
                own: vec![0; captures],
                current: 0,
            }),
            freed: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        // The state is a few counters updated in one step: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `bytes` of capture `capture` may be in flight; the lease gives them back when dropped.
    pub(super) fn acquire(self: &Arc<Self>, capture: usize, bytes: usize) -> Option<Box<dyn Send>> {
        if bytes == 0 {
            return None;
        }
        let mut s = self.lock();
        // `capture < current`: the writer gave up on it; let the send fail at once instead of waiting.
        while !(s.total == 0
            || s.total + bytes <= self.limit
            || (capture <= s.current && s.own[capture] == 0))
        {
            s = self.freed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.total += bytes;
        s.own[capture] += bytes;
        Some(Box::new(Lease {
            budget: self.clone(),
            capture,
            bytes,
        }))
    }

    /// A writer moved on to `capture`. Writers take captures in order, so every capture up to the furthest one
    /// is written or being written.
    pub(super) fn writer_at(&self, capture: usize) {
        let mut s = self.lock();
        s.current = s.current.max(capture);
        drop(s);
        self.freed.notify_all();
    }

    /// Frame bytes in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_budget_lets_a_frame_larger_than_itself_through_when_alone_and_the_writers_capture_always(
    ) {
        let b = Budget::new(10, 2);
        let big = b.acquire(1, 50).expect("alone, even above the budget");
        assert_eq!(b.in_flight(), 50);
        // Capture 1 holds more than the budget, but capture 0 is the writer's and has nothing in flight.
        let first = b.acquire(0, 5).expect("the writer's capture");
        assert_eq!(b.in_flight(), 55);
        drop(big);
        drop(first);
        assert_eq!(b.in_flight(), 0);
        assert!(b.acquire(1, 0).is_none(), "no bytes, no lease");
    }

    #[test]
    fn a_reader_over_the_budget_waits_for_the_writer() {
        let b = Budget::new(10, 2);
        let held = b.acquire(0, 8).unwrap();
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || {
            let _l = b2.acquire(1, 8).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !waiter.is_finished(),
            "capture 1 must wait: 16 > 10 and the writer is at 0"
        );
        drop(held);
        waiter.join().unwrap();
        assert_eq!(b.in_flight(), 0);
    }
}
