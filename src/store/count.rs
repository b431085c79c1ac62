//! Threaded reads: a long count or tally of a search split into ranges, which threads take one at a time, each
//! through a connection of its own; also how many threads a long read is split over.

use std::sync::atomic::AtomicUsize;

use super::error::QueryError;

/// Threads for counting `flows` rows: one per core (at most 8), and one for fewer than 200,000 rows, where a
/// second connection's start costs more than it saves.
pub(crate) fn count_threads(rows: i64) -> usize {
    if rows < 200_000 {
        return 1;
    }
    cores()
}

/// Cores to read on (at most 8): the threads that split a long read between connections.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// What `work(connection, next)` gives on each of `threads` threads, this one's first: this one works through
/// `mine`, each helper through the connection `open` gives it (a helper that cannot open one leaves its ranges
/// to the others, and gives nothing). `work` takes range after range by `next` until none are left.
pub(crate) fn in_parallel<C, T: Send>(
    threads: usize,
    mine: &C,
    open: impl Fn() -> Option<C> + Sync,
    work: impl Fn(&C, &AtomicUsize) -> Result<T, QueryError> + Sync,
) -> Result<Vec<T>, QueryError> {
    let next = AtomicUsize::new(0);
    if threads <= 1 {
        return Ok(vec![work(mine, &next)?]);
    }
    let all =
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads)
                .map(|_| scope.spawn(|| open().map(|c| work(&c, &next)).transpose()))
                .collect();
            let mut all = vec![work(mine, &next).map(Some)];
            for h in helpers {
                all.push(h.join().unwrap_or_else(|_| {
                    Err(QueryError::Corrupt("a reading thread panicked".into()))
                }));
            }
            all
        });
    let mut out = Vec::with_capacity(all.len());
    for r in all {
        out.extend(r?);
    }
    Ok(out)
}
