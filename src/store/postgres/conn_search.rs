//! Connection searches on PostgreSQL, as on SQLite (`store::sqlite::conn_search`): a filter with bucket
//! candidates ([`crate::store::plan`]) finds its matching flows among those and their connections through
//! `connection_flows`, capture by capture; the other captures test each connection's flows, and a sorted listing
//! with a limit walks the index of its order (`connections_by_*`). All of it in one REPEATABLE READ, READ ONLY
//! transaction, so the parts see one snapshot.

use std::collections::{BTreeMap, HashMap};

use postgres::types::ToSql;

use super::search::{
    conn_columns, conn_condition, count_connections_sql, dollar, refs, search_connections_sql,
    values,
};
use super::Pg;
use crate::filter::Compiled;
use crate::store::error::QueryError;
use crate::store::plan::{connection_candidates, walk_first};
use crate::store::row::Cols;
use crate::store::rows::{conn_order, conn_row, ConnRow, FlowSort};

/// Candidates looked up per statement.
const CHUNK: usize = 4096;

/// The connections of capture `$n+1` that have a flow among the candidates `$n+2` matching the condition.
fn mapped_sql(cond: &str, n: usize) -> String {
    format!(
        "SELECT DISTINCT cf.conn_no
         FROM flows f JOIN connection_flows cf ON cf.capture_id = f.capture_id AND cf.flow_no = f.flow_no
         WHERE f.capture_id = ${} AND f.flow_no = ANY (${}) AND ({cond})",
        n + 1,
        n + 2
    )
}

/// (capture_id, conn_no) of the matching connections of the captures `$n+1` in `sort` order, at most `$n+2`.
fn others_sql(cond: &str, sort: FlowSort, n: usize) -> String {
    format!(
        "SELECT x.capture_id, x.conn_no FROM connections x
         WHERE x.capture_id = ANY (${}) AND {}
         ORDER BY {} LIMIT ${}",
        n + 1,
        conn_condition(cond),
        conn_order(sort),
        n + 2
    )
}

/// The rows of the connections (`$1`, `$2`: capture ids and connection numbers) in `sort` order, at most `$3`:
/// the order is taken on the keys alone, and the rows' columns (their flows' labels) read for those listed only.
fn rows_sql(sort: FlowSort) -> String {
    let order = conn_order(sort);
    format!(
        "WITH top AS (
             SELECT x.capture_id, x.conn_no
             FROM unnest($1::BIGINT[], $2::BIGINT[]) k(cid, no)
             JOIN connections x ON x.capture_id = k.cid AND x.conn_no = k.no
             ORDER BY {order} LIMIT $3)
         SELECT {}
         FROM top t JOIN connections x ON x.capture_id = t.capture_id AND x.conn_no = t.conn_no
         JOIN captures c ON c.id = x.capture_id
         ORDER BY {order}",
        conn_columns()
    )
}

impl Pg {
    /// Runs `read` in one REPEATABLE READ, READ ONLY transaction.
    fn in_snapshot<T>(
        &self,
        read: impl FnOnce() -> Result<T, QueryError>,
    ) -> Result<T, QueryError> {
        self.client
            .borrow_mut()
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let got = read();
        let end =
            self.client
                .borrow_mut()
                .batch_execute(if got.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let got = got?;
        end?;
        Ok(got)
    }

    /// Per capture with bucket candidates, its matching connections (ascending, each once).
    fn mapped(
        &self,
        filter: &Compiled,
        cands: &HashMap<i64, Vec<i64>>,
    ) -> Result<BTreeMap<i64, Vec<i64>>, QueryError> {
        let params = values(&filter.params);
        let st = self
            .client
            .borrow_mut()
            .prepare(&mapped_sql(&filter.condition_with(dollar), params.len()))?;
        let mut out = BTreeMap::new();
        for (&cid, nos) in cands {
            let mut found: Vec<i64> = Vec::new();
            for chunk in nos.chunks(CHUNK) {
                let chunk = chunk.to_vec();
                let extra: [&(dyn ToSql + Sync); 2] = [&cid, &chunk];
                for r in self
                    .client
                    .borrow_mut()
                    .query(&st, &refs(&params, &extra))?
                {
                    found.push(r.int(0)?);
                }
            }
            found.sort_unstable();
            found.dedup();
            out.insert(cid, found);
        }
        Ok(out)
    }

    /// The ids of the captures that have no candidates.
    fn without(&self, cands: &HashMap<i64, Vec<i64>>) -> Result<Vec<i64>, QueryError> {
        let ids = self
            .rows("SELECT id FROM captures ORDER BY id", &[])?
            .iter()
            .map(|r| r.int(0))
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids
            .into_iter()
            .filter(|id| !cands.contains_key(id))
            .collect())
    }

    /// `Backend::search_connections` on PostgreSQL.
    pub(super) fn search_connections_planned(
        &self,
        filter: &Compiled,
        sort: FlowSort,
        limit: Option<u64>,
        visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        self.in_snapshot(|| {
            let cands = connection_candidates(self, filter)?;
            let walk = match limit {
                Some(l) => {
                    let flows = self
                        .client
                        .borrow_mut()
                        .query_one("SELECT coalesce(sum(flows), 0)::BIGINT FROM captures", &[])?
                        .int(0)?;
                    walk_first(&cands, flows, l)
                }
                None => false,
            };
            if walk || cands.is_empty() {
                return self.search_connections(filter, sort, limit, visit);
            }
            let limit = limit.map(|l| l.min(i64::MAX as u64) as i64);
            let mut keys = self.mapped(filter, &cands)?;
            let others = self.without(&cands)?;
            if !others.is_empty() {
                // The global first `limit` are among these captures' first `limit` and every match of the others.
                let params = values(&filter.params);
                let sql = others_sql(&filter.condition_with(dollar), sort, params.len());
                for r in self.rows(&sql, &refs(&params, &[&others, &limit]))? {
                    keys.entry(r.int(0)?).or_default().push(r.int(1)?);
                }
            }
            let (mut cids, mut nos) = (Vec::new(), Vec::new());
            for (cid, list) in keys {
                for no in list {
                    cids.push(cid);
                    nos.push(no);
                }
            }
            if cids.is_empty() {
                return Ok(());
            }
            self.stream(&rows_sql(sort), &[&cids, &nos, &limit], &mut |r| {
                visit(conn_row(r)?)
            })
        })
    }

    /// `Backend::count_connections` on PostgreSQL: the distinct connections of the matching candidates, and
    /// the other captures' connections tested one by one.
    pub(super) fn count_connections_planned(&self, filter: &Compiled) -> Result<i64, QueryError> {
        self.in_snapshot(|| {
            let cands = connection_candidates(self, filter)?;
            if cands.is_empty() {
                return self.count_connections(filter);
            }
            let mut total: i64 = self
                .mapped(filter, &cands)?
                .values()
                .map(|v| v.len() as i64)
                .sum();
            let others = self.without(&cands)?;
            if !others.is_empty() {
                let params = values(&filter.params);
                let sql = format!(
                    "{} AND x.capture_id = ANY (${})",
                    count_connections_sql(&filter.condition_with(dollar)),
                    params.len() + 1
                );
                total += self
                    .client
                    .borrow_mut()
                    .query_one(&sql, &refs(&params, &[&others]))?
                    .int(0)?;
            }
            Ok(total)
        })
    }

    /// `Backend::explain_connections` on PostgreSQL: with bucket candidates, the lookup of their connections and
    /// the listing of those; then the listing with a limit, without one, and the count.
    pub(super) fn explain_connections_planned(
        &self,
        filter: &Compiled,
        sort: FlowSort,
    ) -> Result<Vec<(String, Vec<String>)>, QueryError> {
        let cond = filter.condition_with(dollar);
        let params = values(&filter.params);
        let n = params.len();
        let mut out = Vec::new();
        let mut explain = |sql: String, p: &[&(dyn ToSql + Sync)]| -> Result<(), QueryError> {
            let plan = self
                .rows(&format!("EXPLAIN {sql}"), p)?
                .iter()
                .map(|r| r.text(0))
                .collect::<Result<_, _>>()?;
            out.push((sql, plan));
            Ok(())
        };
        let (one, ones, twenty) = (1i64, vec![1i64], Some(20i64));
        if !filter.buckets.is_empty() {
            explain(
                format!(
                    "-- captures with bucket candidates: their matching flows' connections\n{}",
                    mapped_sql(&cond, n)
                ),
                &refs(&params, &[&one, &ones]),
            )?;
            explain(
                format!("-- then those connections' rows\n{}", rows_sql(sort)),
                &[&ones, &ones, &twenty],
            )?;
        }
        explain(
            format!(
                "-- with --limit\n{}",
                search_connections_sql(&cond, sort, n)
            ),
            &refs(&params, &[&twenty]),
        )?;
        out.append(&mut self.explain_connections(filter, sort)?);
        Ok(out)
    }
}
