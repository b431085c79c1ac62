//! How many threads a long read (a count, a histogram, a group-by of every flow) is split over.

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
