//! Keyset pages of the flow and connection listings and the time histogram, for `traceflow serve`: the SQL
//! both backends run, written once with each dialect's placeholders. A page resumes after the last row shown
//! (its sort value, first time, capture and number) instead of an OFFSET, so page 1000 costs what page 1 does.

use rusqlite::types::Value;

use super::rows::{FlowRow, FlowSort};

/// Where a page resumes: the last row of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageKey {
    /// The row's value of the sort column (bytes, packets or duration in ns; unused in time order).
    pub value: i64,
    /// Its first frame time, ns.
    pub first_ns: i64,
    /// Its capture.
    pub capture_id: i64,
    /// Its flow_no or conn_no.
    pub no: i64,
}

/// Which listing a page is of: `flows f` or `connections x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    Flows,
    Connections,
}

impl Listing {
    /// The sort column's expression (None in time order).
    pub(crate) fn value(self, sort: FlowSort) -> Option<&'static str> {
        match (self, sort) {
            (_, FlowSort::Time) => None,
            (Listing::Flows, FlowSort::Bytes) => Some("f.bytes"),
            (Listing::Flows, FlowSort::Packets) => Some("f.packets"),
            (Listing::Flows, FlowSort::Duration) => Some("f.last_ns - f.first_ns"),
            (Listing::Connections, FlowSort::Bytes) => {
                Some("x.orig_frame_bytes + x.resp_frame_bytes")
            }
            (Listing::Connections, FlowSort::Packets) => Some("x.orig_pkts + x.resp_pkts"),
            (Listing::Connections, FlowSort::Duration) => Some("x.last_ns - x.first_ns"),
        }
    }

    /// (first time, capture, number) columns.
    fn tie(self) -> &'static str {
        match self {
            Listing::Flows => "(f.first_ns, f.capture_id, f.flow_no)",
            Listing::Connections => "(x.first_ns, x.capture_id, x.conn_no)",
        }
    }

    /// The ORDER BY of a page: the sort value (largest first), then (first time, capture, number).
    pub(crate) fn order(self, sort: FlowSort) -> String {
        let tie = self.tie().trim_matches(|c| c == '(' || c == ')');
        match self.value(sort) {
            Some(v) => format!("{v} DESC, {tie}"),
            None => tie.to_string(),
        }
    }

    /// The condition "after `key`" with its values, numbered from `first` with `mark`; "TRUE" on the first page.
    pub(crate) fn after(
        self,
        sort: FlowSort,
        key: Option<&PageKey>,
        first: usize,
        mark: fn(usize) -> String,
    ) -> (String, Vec<Value>) {
        let Some(k) = key else {
            return ("TRUE".into(), Vec::new());
        };
        let (a, b, c) = (mark(first), mark(first + 1), mark(first + 2));
        let tie = format!("{} > ({a}, {b}, {c})", self.tie());
        let mut vals = vec![
            Value::Integer(k.first_ns),
            Value::Integer(k.capture_id),
            Value::Integer(k.no),
        ];
        match self.value(sort) {
            None => (tie, vals),
            Some(v) => {
                let d = mark(first + 3);
                vals.push(Value::Integer(k.value));
                (format!("({v} < {d} OR ({v} = {d} AND {tie}))"), vals)
            }
        }
    }
}

/// The histogram's query: per (first bucket, last bucket) of the matching flows that overlap `lo..hi`, how
/// many; the filter's `n` parameters come first, then lo, hi and the bucket width.
pub(crate) fn histogram_sql(condition: &str, n: usize, mark: fn(usize) -> String) -> String {
    let (lo, hi, w) = (mark(n + 1), mark(n + 2), mark(n + 3));
    format!(
        "SELECT (f.first_ns - {lo}) / {w}, (f.last_ns - {lo}) / {w}, count(*) FROM flows f
         WHERE ({condition}) AND f.last_ns >= {lo} AND f.first_ns < {hi}
         GROUP BY 1, 2"
    )
}

/// The time histogram being counted: one start and one end mark per flow in a difference array, summed once at
/// the end, so that a flow costs the same whatever the number of buckets it spans. Buckets are `width` ns from
/// `lo`; a flow outside `lo..hi` is clamped into the first or last bucket, as [`histogram_sql`]'s division is.
#[derive(Clone, Debug)]
pub(crate) struct Tally {
    lo: i64,
    width: i64,
    marks: Vec<i64>,
}

impl Tally {
    /// An empty tally of `buckets` buckets over `lo..hi` (`hi > lo`, `buckets > 0`).
    pub(crate) fn new(lo: i64, hi: i64, buckets: usize) -> Tally {
        let width = ((hi - lo) as u64).div_ceil(buckets as u64).max(1) as i64;
        Tally {
            lo,
            width,
            marks: vec![0; buckets + 1],
        }
    }

    /// Counts a flow from `first` to `last` ns.
    pub(crate) fn add(&mut self, first: i64, last: i64) {
        let top = self.marks.len() as i64 - 2;
        let a = (first.saturating_sub(self.lo) / self.width).clamp(0, top);
        let b = (last.saturating_sub(self.lo) / self.width)
            .clamp(0, top)
            .max(a);
        self.marks[a as usize] += 1;
        self.marks[b as usize + 1] -= 1;
    }

    /// Adds another tally of the same buckets (another thread's share).
    pub(crate) fn merge(&mut self, other: &Tally) {
        for (m, o) in self.marks.iter_mut().zip(&other.marks) {
            *m += o;
        }
    }

    /// Flows per bucket.
    pub(crate) fn counts(&self) -> Vec<i64> {
        let mut run = 0;
        self.marks[..self.marks.len() - 1]
            .iter()
            .map(|m| {
                run += m;
                run
            })
            .collect()
    }
}

/// The first `limit` of `rows` (the matching candidates of every capture) in the page's order: `sort`'s value,
/// largest first, then (first time, capture, number), as [`Listing::order`] sorts them in SQL.
pub(crate) fn first_of(mut rows: Vec<FlowRow>, sort: FlowSort, limit: u64) -> Vec<FlowRow> {
    let value = |r: &FlowRow| match sort {
        FlowSort::Time => 0,
        FlowSort::Bytes => r.bytes,
        FlowSort::Packets => r.packets,
        FlowSort::Duration => r.last_ns - r.first_ns,
    };
    rows.sort_by_key(|r| {
        (
            std::cmp::Reverse(value(r)),
            r.first_ns,
            r.capture_id,
            r.flow_no,
        )
    });
    rows.truncate(limit.min(usize::MAX as u64) as usize);
    rows
}

/// Adds `count` flows spanning buckets `a..=b` (clamped into `0..out.len()`) to every bucket they overlap.
pub(crate) fn add_span(out: &mut [i64], a: i64, b: i64, count: i64) {
    let top = out.len() as i64 - 1;
    if top < 0 {
        return;
    }
    let (a, b) = (a.clamp(0, top), b.clamp(0, top));
    for slot in &mut out[a as usize..=b.max(a) as usize] {
        *slot += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_counts_in_every_bucket_it_overlaps_and_no_other() {
        let mut h = vec![0; 5];
        add_span(&mut h, 1, 3, 2);
        add_span(&mut h, -4, 0, 1);
        add_span(&mut h, 4, 99, 1);
        assert_eq!(h, vec![1, 2, 2, 2, 1]);
    }

    #[test]
    fn the_tally_counts_what_a_flow_by_flow_count_of_each_bucket_counts() {
        // A brute force: each flow in each bucket whose time range it overlaps, clamped as the division is.
        let (lo, hi, buckets) = (1_000i64, 98_765i64, 37usize);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 120_000) as i64 - 10_000
        };
        let (mut tally, mut other) = (Tally::new(lo, hi, buckets), Tally::new(lo, hi, buckets));
        let mut brute = vec![0i64; buckets];
        let width = (hi - lo + buckets as i64 - 1) / buckets as i64;
        for i in 0..5_000 {
            let (x, y) = (next(), next());
            let (first, last) = (x.min(y), x.max(y));
            if i % 2 == 0 {
                tally.add(first, last)
            } else {
                other.add(first, last)
            }
            for (k, slot) in brute.iter_mut().enumerate() {
                // The first bucket reaches back, the last on, as the clamping does.
                let start = if k == 0 {
                    i64::MIN
                } else {
                    lo + k as i64 * width
                };
                let end = if k == buckets - 1 {
                    i64::MAX
                } else {
                    lo + (k as i64 + 1) * width
                };
                if first < end && last >= start {
                    *slot += 1;
                }
            }
        }
        tally.merge(&other);
        assert_eq!(tally.counts(), brute);
    }

    #[test]
    fn the_keyset_condition_binds_the_key_and_nothing_else() {
        let key = PageKey {
            value: 7,
            first_ns: 1,
            capture_id: 2,
            no: 3,
        };
        let (sql, vals) = Listing::Flows.after(FlowSort::Bytes, Some(&key), 4, |n| format!("${n}"));
        assert_eq!(
            sql,
            "(f.bytes < $7 OR (f.bytes = $7 AND (f.first_ns, f.capture_id, f.flow_no) > ($4, $5, $6)))"
        );
        assert_eq!(vals.len(), 4);
        assert_eq!(
            Listing::Connections.order(FlowSort::Time),
            "x.first_ns, x.capture_id, x.conn_no"
        );
    }
}
