//! Every read the commands make, on either backend: capture listings, the flow index tuple (rebuilt from SQL
//! alone, never by re-tracing), label lookups, the frames of flows, and the searches. Each function asks the
//! [`Backend`] for rows and does the rest here, the same for both databases.

use std::collections::HashMap;

use super::backend::FrameWalk;
use super::Db;
use crate::filter::Compiled;

pub use super::error::QueryError;
pub use super::merge::PAGE;
pub use super::rows::{flag_names, ConnRow, FlowRow, FlowSort, GroupBy, GroupRow};
pub use super::sqlite::INDEX_SQL;
pub use super::types::{
    iso_time, CaptureBrief, CaptureInfo, CapturePath, CaptureRow, FlowGroup, FrameRef, Iface,
    IndexEntry,
};
pub use crate::key::label::label_time_range;

/// Every capture in the database, by id.
pub fn captures(db: &Db) -> Result<Vec<CaptureInfo>, QueryError> {
    db.captures()
}

/// Finds the capture a user means: an id, a path it was indexed from, or a file's base name.
pub fn resolve_capture(db: &Db, sel: &str) -> Result<i64, QueryError> {
    if let Ok(id) = sel.parse::<i64>() {
        if db.capture_exists(id)? {
            return Ok(id);
        }
    }
    let abs = std::path::absolute(sel)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let by_path = db.captures_at_path(sel, &abs)?;
    if by_path.len() == 1 {
        return Ok(by_path[0]);
    }
    let ids = db.captures_named(sel)?;
    match ids.len() {
        0 => Err(QueryError::UnknownCapture(
            sel.to_string(),
            closest_captures(db, sel),
        )),
        1 => Ok(ids[0]),
        _ => Err(QueryError::Ambiguous {
            name: sel.to_string(),
            candidates: ids
                .iter()
                .map(|i| format!("id {i}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Visits the index tuple of one capture, or of every capture, row by row: `visit` gets the capture's name, the
/// label and the frame numbers as comma-separated text. Nothing is collected, so printing a capture's whole
/// index takes constant memory.
pub fn for_each_index_row(
    db: &Db,
    capture: Option<i64>,
    visit: &mut dyn FnMut(&str, &str, &str) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    for (id, name) in db.capture_ids(capture)? {
        db.index_rows(id, &mut |label, frames| {
            check_index_frames(id, label, frames)?;
            visit(&name, label, frames)
        })?;
    }
    Ok(())
}

/// frames.number is a positive integer in any database traceflow wrote; the JSON index pastes this text as it is
/// and `index` parses it, so both must refuse the same damage.
fn check_index_frames(id: i64, label: &str, frames: &str) -> Result<(), QueryError> {
    if frames
        .split(',')
        .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        && !frames.is_empty()
    {
        return Err(QueryError::Corrupt(format!(
            "capture {id}: flow {label:?} lists frame numbers {frames:?}, which are not all positive integers"
        )));
    }
    Ok(())
}

/// The two-way index tuple (`query --bidirectional`) of one capture, or of every capture (then with the
/// `capture` key set): one flow per connection, by the rule in [`crate::trace::twoway`], from the frame rows.
/// It is built one capture at a time, in bounded memory (see `TwoWay`), and handed to `visit` entry by entry.
pub fn for_each_bidirectional(
    db: &Db,
    capture: Option<i64>,
    visit: &mut dyn FnMut(IndexEntry) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    for (id, name) in db.capture_ids(capture)? {
        let digits: HashMap<u32, u8> = db
            .interfaces(id)?
            .into_iter()
            .map(|(n, i)| (n, crate::capture::tsresol_digits(i.tsresol)))
            .collect();
        let mut t = crate::trace::twoway::TwoWay::default();
        let mut failed = None;
        db.twoway_frames(id, &mut |number,
                                   ts_ns,
                                   iface,
                                   flags,
                                   src,
                                   sport,
                                   dst,
                                   dport| {
            if failed.is_some() {
                return;
            }
            let frame = crate::trace::twoway::TwoWayFrame {
                number: number.max(0) as u64,
                src: (src, sport),
                dst: (dst, dport),
                flags,
            };
            failed = t
                .add(&frame, || {
                    let ts = crate::capture::Timestamp::from_ns(
                        ts_ns,
                        digits.get(&iface).copied().unwrap_or(9),
                    );
                    crate::key::label::label_from_text(src, sport, dst, dport, &ts)
                })
                .err();
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        t.finish(&mut |label, index| {
            visit(IndexEntry {
                capture: capture.is_none().then(|| name.clone()),
                fpout: None,
                index,
                label,
            })
        })?;
    }
    Ok(())
}

/// The two-way index tuple, as a vector (`for_each_bidirectional`).
pub fn bidirectional_index(db: &Db, capture: Option<i64>) -> Result<Vec<IndexEntry>, QueryError> {
    let mut out = Vec::new();
    for_each_bidirectional(db, capture, &mut |e| {
        out.push(e);
        Ok(())
    })?;
    Ok(out)
}

/// The index tuple of one capture, or of every capture (then with the `capture` key set).
pub fn index(db: &Db, capture: Option<i64>) -> Result<Vec<IndexEntry>, QueryError> {
    let mut out = Vec::new();
    for_each_index_row(db, capture, &mut |name, label, frames| {
        out.push(IndexEntry {
            capture: capture.is_none().then(|| name.to_string()),
            fpout: None,
            index: frames.split(',').filter_map(|s| s.parse().ok()).collect(),
            label: label.to_string(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// Every flow labelled `label` (in `capture`, or in the one capture that has it).
pub fn select_label(db: &Db, capture: Option<i64>, label: &str) -> Result<FlowGroup, QueryError> {
    // The label's time is its flow's first frame time: the flows_first_ns index (capture_id, first_ns) finds it
    // with one seek per capture, without a scan.
    let (lo, hi) = label_time_range(label).unwrap_or((i64::MIN, i64::MAX));
    let rows = db.flows_labelled(capture, label, lo, hi)?;
    let Some(first) = rows.first() else {
        return Err(unknown_label(db, capture, label));
    };
    let cid = first.0;
    if rows.iter().any(|r| r.0 != cid) {
        let mut caps: Vec<String> = rows.iter().map(|r| r.2.clone()).collect();
        caps.dedup();
        return Err(QueryError::LabelInSeveralCaptures {
            label: label.to_string(),
            captures: caps.join(", "),
        });
    }
    Ok(FlowGroup {
        capture_id: cid,
        label: label.to_string(),
        flows: rows.iter().map(|r| r.1).collect(),
        conns: Vec::new(),
    })
}

/// The group with the connections its flows' frames belong to (`query --flow LABEL --both`).
pub fn with_connections(db: &Db, mut g: FlowGroup) -> Result<FlowGroup, QueryError> {
    let mut conns = std::collections::BTreeSet::new();
    for flow in &g.flows {
        conns.extend(db.flow_connections(g.capture_id, *flow)?);
    }
    if conns.is_empty() {
        return Err(QueryError::NoConnection(g.label));
    }
    g.conns = conns.into_iter().collect();
    Ok(g)
}

/// One group per connection of a capture, in connection order, named by the label of the flow that holds its
/// first frame (`query --dump DIR --both`), with `.connN` after it when an earlier connection has that name.
pub fn capture_conn_groups(db: &Db, capture_id: i64) -> Result<Vec<FlowGroup>, QueryError> {
    let rows = db.conn_group_rows(capture_id)?;
    // A flow that a reused port splits (no FIN between the connections) starts two of them: the later ones
    // get `.connN` after the label, so that every connection has a file of its own.
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .map(|(conn_no, flows, label)| {
            let mut label = label.unwrap_or_else(|| format!("connection-{conn_no}"));
            if !seen.insert(label.clone()) {
                label = format!("{label}.conn{conn_no}");
            }
            FlowGroup {
                capture_id,
                label,
                flows: flows.split(',').filter_map(|f| f.parse().ok()).collect(),
                conns: vec![conn_no],
            }
        })
        .collect())
}

/// Levenshtein distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// `; closest names: a.pcap, b.pcap` for a capture name that matches none, as a wrong label gets.
fn closest_captures(db: &Db, sel: &str) -> String {
    let names = db.capture_names().unwrap_or_default();
    let base = std::path::Path::new(sel)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| sel.to_string());
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .map(|n| (distance(&base, &n), n))
        .collect();
    scored.sort();
    let best: Vec<String> = scored.into_iter().take(5).map(|(_, n)| n).collect();
    if best.is_empty() {
        " (it holds no captures yet)".into()
    } else {
        format!("; closest names: {}", best.join(", "))
    }
}

fn unknown_label(db: &Db, capture: Option<i64>, label: &str) -> QueryError {
    let name = capture.and_then(|id| db.capture_name(id).ok().flatten());
    let labels = db.labels(capture).unwrap_or_default();
    let scope = name.map(|n| format!(" in capture {n}")).unwrap_or_default();
    let mut scored: Vec<(usize, String)> = labels
        .into_iter()
        .map(|l| (distance(label, &l), l))
        .collect();
    scored.sort();
    let best: Vec<String> = scored.into_iter().take(5).map(|(_, l)| l).collect();
    let hint = if best.is_empty() {
        " (there are no flows; see `traceflow query` for the index)".to_string()
    } else {
        format!("; closest labels: {}", best.join(", "))
    };
    QueryError::UnknownLabel {
        label: label.to_string(),
        scope,
        hint,
    }
}

/// Every label of a capture, in index order (a label's place is that of its first flow).
pub fn capture_groups(db: &Db, capture_id: i64) -> Result<Vec<FlowGroup>, QueryError> {
    let rows = db.flow_labels(capture_id)?;
    let mut groups: Vec<FlowGroup> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (flow_no, label) in rows {
        match at.get(&label) {
            Some(&i) => groups[i].flows.push(flow_no),
            None => {
                at.insert(label.clone(), groups.len());
                groups.push(FlowGroup {
                    capture_id,
                    label,
                    flows: vec![flow_no],
                    conns: Vec::new(),
                });
            }
        }
    }
    Ok(groups)
}

/// The interfaces of a capture, by `interfaces.iface`.
pub fn interfaces(db: &Db, capture_id: i64) -> Result<HashMap<u32, Iface>, QueryError> {
    db.interfaces(capture_id)
}

/// Reads the frames of flows, one flow at a time, with what the database prepares once.
pub struct FlowFrames<'c> {
    walk: Box<dyn FrameWalk + 'c>,
}

impl<'c> FlowFrames<'c> {
    /// Prepares the walk on `db`.
    pub fn new(db: &'c Db) -> Result<FlowFrames<'c>, QueryError> {
        Ok(FlowFrames {
            walk: db.frame_walk()?,
        })
    }

    /// Replaces `out` with the frames of every flow of `g`, in index order (flow by flow, each in frame order);
    /// for a group with connections (`--both`), the connections' frames in frame order.
    pub fn group(&mut self, g: &FlowGroup, out: &mut Vec<FrameRef>) -> Result<(), QueryError> {
        out.clear();
        if !g.conns.is_empty() {
            for c in &g.conns {
                self.walk.connection(g.capture_id, *c, out)?;
            }
            out.sort_unstable_by_key(|f| f.number);
            out.dedup_by_key(|f| f.number);
            return Ok(());
        }
        for flow in &g.flows {
            self.append(g.capture_id, *flow, out)?;
        }
        Ok(())
    }

    /// Appends the frames of flow `flow_no` of `capture_id` to `out`, in frame order; a chain that does not end
    /// at the flow's first frame, or holds another flow's frame, is reported as a damaged database.
    pub fn append(
        &mut self,
        capture_id: i64,
        flow_no: i64,
        out: &mut Vec<FrameRef>,
    ) -> Result<(), QueryError> {
        let start = out.len();
        let mut bad = None;
        let mut note = |number: u64, in_flow: Option<i64>| {
            if in_flow != Some(flow_no) && bad.is_none() {
                bad = Some(format!(
                    "frame {number} is listed in flow {flow_no} but belongs to flow {in_flow:?}"
                ));
            }
        };
        let (first, packets) = self.walk.flow(capture_id, flow_no, out, &mut note)?;
        let got = &out[start..];
        if bad.is_none()
            && (got.len() as i64 != packets || got.first().map(|f| f.number as i64) != Some(first))
        {
            bad = Some(format!(
                "flow {flow_no} of capture {capture_id} should have {packets} frames from frame {first}, {} {} \
                 from frame {}",
                self.walk.found_in(),
                got.len(),
                got.first().map(|f| f.number.to_string()).unwrap_or_else(|| "none".into())
            ));
        }
        match bad {
            Some(why) => Err(QueryError::Corrupt(why)),
            None => Ok(()),
        }
    }
}

/// The `captures` row of capture `id`.
pub fn capture_row(db: &Db, id: i64) -> Result<CaptureRow, QueryError> {
    db.capture_row(id)
}

/// Every path a capture was seen under, in the order they were added.
pub fn capture_paths(db: &Db, capture_id: i64) -> Result<Vec<CapturePath>, QueryError> {
    db.capture_paths(capture_id)
}

/// (first frame time, id) of every capture, in that order: the order captures join a time merge.
pub fn captures_by_time(db: &Db) -> Result<std::collections::VecDeque<(i64, i64)>, QueryError> {
    db.captures_by_time()
}

/// The next [`PAGE`] flows of a capture that match `filter` after flow_no `after`: (flow_no, first_frame).
pub fn flow_page(
    db: &Db,
    filter: &Compiled,
    capture_id: i64,
    after: i64,
) -> Result<Vec<(i64, i64)>, QueryError> {
    db.flow_page(filter, capture_id, after)
}

/// A flow's first frame.
pub fn flow_first_frame(db: &Db, capture_id: i64, flow_no: i64) -> Result<i64, QueryError> {
    db.flow_first_frame(capture_id, flow_no)
}

/// Every interface of every capture: (linktype, snaplen, tsresol).
pub fn all_interfaces(db: &Db) -> Result<Vec<(u32, u32, u8)>, QueryError> {
    db.all_interfaces()
}

/// Where the last TCP record of a capture ends (`file_offset + caplen`); `None` without TCP frames.
pub fn last_tcp_end(db: &Db, capture_id: i64) -> Result<Option<i64>, QueryError> {
    db.last_tcp_end(capture_id)
}

/// The `if_tsresol` of each interface of a capture, by interface number.
pub fn tsresols(db: &Db, capture_id: i64) -> Result<Vec<u8>, QueryError> {
    db.tsresols(capture_id)
}

/// Visits every flow that matches `filter` (a compiled condition on `flows f`), in `sort` order, at most
/// `limit`; rows are read one at a time, so memory does not grow with the matches.
///
/// Time order is the order mergecap would give the flows' first frames: within a capture, flows come as they
/// began in the file (flow_no, which the tracer numbers in frame order), and captures are interleaved by the
/// time of their next flow. For a capture whose clock never goes back this is plain first-time order. It is
/// read as a merge of each capture's flows in primary-key order, a page at a time ([`super::merge`]), so no
/// sort of all matches is needed (sorting 2.9M flows cost SQLite most of the time of listing them).
pub fn search_flows(
    db: &Db,
    filter: &Compiled,
    sort: FlowSort,
    limit: Option<u64>,
    visit: &mut dyn FnMut(FlowRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    db.search_flows(filter, sort, limit, visit)
}

/// How a search runs (`flows --explain`): its SQL, each query with the database's plan for it, so a user (and
/// the benchmark) can see which index a filter uses.
pub fn explain_flows(db: &Db, filter: &Compiled) -> Result<Vec<(String, Vec<String>)>, QueryError> {
    db.explain_flows(filter)
}

/// Visits one row per group of the flows that match `filter`, at most `limit`, in `sort`'s order of groups: none
/// or bytes, most bytes first; packets, most packets first; time, the earliest first frame first; ties by key.
/// `duration` is refused ([`QueryError::Usage`]). The database aggregates, so memory grows with the number of
/// groups, not of flows.
pub fn group_flows(
    db: &Db,
    filter: &Compiled,
    by: GroupBy,
    sort: Option<FlowSort>,
    limit: Option<u64>,
    visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    db.group_flows(filter, by, sort, limit, visit)
}

/// Visits one row per group of the connections that have a flow matching `filter` (those `search_connections`
/// lists), ordered as [`group_flows`] orders groups; packets and bytes count both directions.
pub fn group_connections(
    db: &Db,
    filter: &Compiled,
    by: GroupBy,
    sort: Option<FlowSort>,
    limit: Option<u64>,
    visit: &mut dyn FnMut(GroupRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    db.group_connections(filter, by, sort, limit, visit)
}

/// How many flows match `filter`.
pub fn count_flows(db: &Db, filter: &Compiled) -> Result<i64, QueryError> {
    db.count_flows(filter)
}

/// Visits every connection that has a flow matching `filter`, in `sort` order (time: first frame; bytes and
/// packets: both directions together), at most `limit`, one row at a time.
pub fn search_connections(
    db: &Db,
    filter: &Compiled,
    sort: FlowSort,
    limit: Option<u64>,
    visit: &mut dyn FnMut(ConnRow) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    db.search_connections(filter, sort, limit, visit)
}

/// How many connections have a flow matching `filter`.
pub fn count_connections(db: &Db, filter: &Compiled) -> Result<i64, QueryError> {
    db.count_connections(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn label_time_ranges_cover_the_first_frame_time() {
        let (lo, hi) = label_time_range("10.0.0.1_1637-10.0.0.2_21477-1385474294.492448").unwrap();
        let ns = 1_385_474_294_492_448_000i64;
        assert!(lo <= ns && ns <= hi && hi - lo < 2_000, "{lo}..{hi}");
        let (lo, hi) = label_time_range("2001.db8..1_80-..ffff.192.0.2.1_443-1e-05").unwrap();
        assert!(lo <= 10_000 && 10_000 <= hi);
        assert_eq!(label_time_range("not a label"), None);
    }

    #[test]
    fn the_schema_page_shows_the_index_sql_that_runs() {
        let readme = include_str!("../../docs/schema.md");
        let shown = INDEX_SQL.replace("?1", ":capture");
        assert!(
            readme.contains(&format!("{shown};")),
            "docs/schema.md's index SQL differs from query::INDEX_SQL:\n{shown}"
        );
    }
}
