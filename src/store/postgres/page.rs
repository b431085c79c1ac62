//! Keyset pages of flows and connections and the time histogram on PostgreSQL (`traceflow serve`; the SQL is
//! [`crate::store::page`]'s, in `$N` placeholders).

use postgres::types::ToSql;

use super::search::{conn_sql, dollar, refs, values};
use super::Pg;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::page::{add_span, histogram_sql, Listing, PageKey};
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

    /// `Backend::flow_histogram` on PostgreSQL.
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
        let width = ((hi - lo) as u64).div_ceil(buckets as u64).max(1) as i64;
        let params = values(&filter.params);
        let sql = histogram_sql(&filter.condition_with(dollar), filter.params.len(), dollar);
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
