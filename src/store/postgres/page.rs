//! Keyset pages of flows and connections and the time histogram on PostgreSQL (`traceflow serve`; the SQL is
//! [`crate::store::page`]'s, in `$N` placeholders).

use std::collections::HashMap;

use postgres::types::ToSql;

use super::search::{candidate_sql, conn_sql, dollar, refs, values};
use super::Pg;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::page::{add_span, first_of, histogram_sql, Listing, PageKey, Tally};
use crate::store::plan::covering_candidates;
use crate::store::row::Cols;
use crate::store::rows::{
    conn_order, conn_row, flow_row, ConnRow, FlowRow, FlowSort, FLOW_COLUMNS,
};

impl Pg {
    /// `Backend::flows_page` on PostgreSQL.
    pub(super) fn flows_page(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        after: Option<&PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let caps = self.capture_facts()?;
        let n = filter.params.len();
        if let Some(cands) = self.pg_candidates(filter)? {
            // Each candidate is one primary-key lookup; sorting the few matches here replaces the sorted walk
            // of every flow of the time window.
            let (cond, vals) = Listing::Flows.after(sort, after, n + 3, dollar);
            let sql = format!(
                "{} AND {cond}",
                candidate_sql(&filter.condition_with(dollar), n, FLOW_COLUMNS)
            );
            let params = values(&filter.params);
            let keys = values(&vals);
            let mut rows = Vec::new();
            for (cid, nos) in &cands {
                let mut extra: Vec<&(dyn ToSql + Sync)> = vec![cid, nos];
                extra.extend(keys.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)));
                for r in self.rows(&sql, &refs(&params, &extra))? {
                    if let Some(row) = flow_row(&r, &caps)? {
                        rows.push(row);
                    }
                }
            }
            for row in first_of(rows, sort, limit) {
                visit(row)?;
            }
            return Ok(());
        }
        let (cond, vals) = Listing::Flows.after(sort, after, n + 1, dollar);
        let mut all = filter.params.clone();
        all.extend(vals);
        let params = values(&all);
        let limit = limit.min(i64::MAX as u64) as i64;
        let sql = format!(
            "SELECT {FLOW_COLUMNS} FROM flows f WHERE ({}) AND {cond} ORDER BY {} LIMIT ${}",
            filter.condition_with(dollar),
            Listing::Flows.order(sort),
            all.len() + 1
        );
        let extra: [&(dyn ToSql + Sync); 1] = [&limit];
        self.stream(
            &sql,
            &refs(&params, &extra),
            &mut |r| match flow_row(r, &caps)? {
                Some(row) => visit(row),
                None => Ok(()),
            },
        )
    }

    /// `Backend::connections_page` on PostgreSQL.
    pub(super) fn connections_page(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        after: Option<&PageKey>,
        limit: u64,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let n = filter.params.len();
        let (cond, vals) = Listing::Connections.after(sort, after, n + 1, dollar);
        let mut all = filter.params.clone();
        all.extend(vals);
        let params = values(&all);
        let limit = limit.min(i64::MAX as u64) as i64;
        debug_assert_eq!(conn_order(sort), Listing::Connections.order(sort));
        let sql = conn_sql(
            &filter.condition_with(dollar),
            &cond,
            &Listing::Connections.order(sort),
            all.len() + 1,
        );
        let extra: [&(dyn ToSql + Sync); 1] = [&limit];
        self.stream(&sql, &refs(&params, &extra), &mut |r| visit(conn_row(r)?))
    }

    /// The filter's covering bucket candidates ([`covering_candidates`]).
    fn pg_candidates(
        &self,
        filter: &Compiled,
    ) -> Result<Option<HashMap<i64, Vec<i64>>>, QueryError> {
        let ids = self
            .rows("SELECT id FROM captures WHERE flows > 0", &[])?
            .iter()
            .map(|r| r.int(0))
            .collect::<Result<Vec<i64>, _>>()?;
        covering_candidates(self, &ids, filter)
    }

    /// `Backend::flow_histogram` on PostgreSQL: a host or port filter's few candidates by key, tallied here;
    /// any other filter grouped by PostgreSQL per (first bucket, last bucket).
    pub(super) fn flow_histogram(
        &self,
        filter: &Compiled,
        lo: i64,
        hi: i64,
        buckets: usize,
    ) -> Result<Vec<i64>, QueryError> {
        let mut out = vec![0i64; buckets];
        if buckets == 0 || hi <= lo {
            return Ok(out);
        }
        let n = filter.params.len();
        let params = values(&filter.params);
        if let Some(cands) = self.pg_candidates(filter)? {
            let mut tally = Tally::new(lo, hi, buckets);
            let sql = format!(
                "{} AND f.last_ns >= ${} AND f.first_ns < ${}",
                candidate_sql(&filter.condition_with(dollar), n, "f.first_ns, f.last_ns"),
                n + 3,
                n + 4
            );
            for (cid, nos) in &cands {
                let extra: [&(dyn ToSql + Sync); 4] = [cid, nos, &lo, &hi];
                for r in self.rows(&sql, &refs(&params, &extra))? {
                    tally.add(r.int(0)?, r.int(1)?);
                }
            }
            return Ok(tally.counts());
        }
        let width = ((hi - lo) as u64).div_ceil(buckets as u64).max(1) as i64;
        let sql = histogram_sql(&filter.condition_with(dollar), n, dollar);
        let extra: [&(dyn ToSql + Sync); 3] = [&lo, &hi, &width];
        for r in self.rows(&sql, &refs(&params, &extra))? {
            add_span(&mut out, r.int(0)?, r.int(1)?, r.int(2)?);
        }
        Ok(out)
    }

    /// `Backend::connection_row` on PostgreSQL.
    pub(super) fn connection_row(
        &self,
        capture_id: i64,
        conn_no: i64,
    ) -> Result<Option<ConnRow>, QueryError> {
        let sql = conn_sql(
            "TRUE",
            "x.capture_id = $1 AND x.conn_no = $2",
            "x.conn_no",
            3,
        );
        let one = 1i64;
        let rows = self.rows(&sql, &[&capture_id, &conn_no, &one])?;
        rows.first().map(|r| conn_row(r)).transpose()
    }
}
