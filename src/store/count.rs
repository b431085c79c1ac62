//! The threaded count: a long count of a search split into ranges, which threads take one at a time, each
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

/// The sum of what `count(connection, next)` gives on `threads` threads: this one counts through `mine`, each
/// helper through the connection `open` gives it (a helper that cannot open one leaves its ranges to the
/// others). `count` takes range after range by `next` until none are left, and returns its sum.
pub(crate) fn in_parallel<C>(
    threads: usize,
    mine: &C,
    open: impl Fn() -> Option<C> + Sync,
    count: impl Fn(&C, &AtomicUsize) -> Result<i64, QueryError> + Sync,
) -> Result<i64, QueryError> {
    let next = AtomicUsize::new(0);
    if threads <= 1 {
        return count(mine, &next);
    }
    let sums =
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads)
                .map(|_| {
                    scope.spawn(|| match open() {
                        Some(c) => count(&c, &next),
                        None => Ok(0),
                    })
                })
                .collect();
            let mut all = vec![count(mine, &next)];
            for h in helpers {
                all.push(h.join().unwrap_or_else(|_| {
                    Err(QueryError::Corrupt("a counting thread panicked".into()))
                }));
            }
            all
        });
    let mut total = 0;
    for s in sums {
        total += s?;
    }
    Ok(total)
}
