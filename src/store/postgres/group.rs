//! `--group-by` on PostgreSQL: groups of flows and of connections, aggregated by the server, ordered as on
//! SQLite (text keys bytewise, `COLLATE "C"`).

use super::search::{conn_condition, dollar, refs, values};
use super::Pg;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::rows::{
    conn_totals, flow_totals, flows_from, group_order, group_row, grouped_sql, FlowSort, GroupBy,
    GroupRow,
};

impl Pg {
    /// `read::group_flows` on PostgreSQL.
    pub(super) fn group_flows(
        &self,
        filter: &Compiled,
        by: GroupBy,
        sort: Option<FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let keys = by.keys();
        let order = group_order(sort, &keys, " COLLATE \"C\"")?;
        let params = values(&filter.params);
        let limit = limit.map(|l| l.min(i64::MAX as u64) as i64);
        let sql = grouped_sql(
            "",
            &keys,
            &flow_totals("::BIGINT"),
            &flows_from("flows", by, &filter.condition_with(dollar)),
            &order,
            &format!("LIMIT ${}", params.len() + 1),
        );
        self.stream(&sql, &refs(&params, &[&limit]), &mut |r| {
            visit(group_row(r, &keys, "flows")?)
        })
    }

    /// `read::group_connections` on PostgreSQL: a pair's addresses ordered as `inet` orders them, which is the
    /// flows' address keys' order for two addresses of one family.
    pub(super) fn group_connections(
        &self,
        filter: &Compiled,
        by: GroupBy,
        sort: Option<FlowSort>,
        limit: Option<u64>,
        visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let keys = by.conn_keys("{a}::inet <= {b}::inet");
        let order = group_order(sort, &keys, " COLLATE \"C\"")?;
        let params = values(&filter.params);
        let limit = limit.map(|l| l.min(i64::MAX as u64) as i64);
        let sql = grouped_sql(
            "",
            &keys,
            &conn_totals("::BIGINT"),
            &format!(
                "FROM connections x WHERE {}",
                // Every connection has a flow: the empty filter need not test them.
                if filter.is_everything() {
                    "TRUE".to_string()
                } else {
                    conn_condition(&filter.condition_with(dollar))
                }
            ),
            &order,
            &format!("LIMIT ${}", params.len() + 1),
        );
        self.stream(&sql, &refs(&params, &[&limit]), &mut |r| {
            visit(group_row(r, &keys, "connections")?)
        })
    }
}
