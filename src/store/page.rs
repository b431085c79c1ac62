//! Keyset pages of the flow and connection listings and the time histogram, for `traceflow serve`: the SQL
//! both backends run, written once with each dialect's placeholders. A page resumes after the last row shown
//! (its sort value, first time, capture and number) instead of an OFFSET, so page 1000 costs what page 1 does.

use rusqlite::types::Value;

use super::rows::FlowSort;

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
