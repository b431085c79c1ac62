//! The query planner of the searches: which flows of each capture a filter's matches can be among, from the
//! flow bucket lists (`trace::buckets`) that both backends store, so that a search for a host or port reads
//! those flows one by one instead of the whole capture; and whether a connection listing with a limit walks
//! the index of its order instead.

use std::collections::HashMap;

use super::backend::BucketLists;
use super::error::QueryError;
use crate::filter::Compiled;

/// Per capture, the flow numbers (ascending) that a filter's matches are among, read from `flow_buckets`
/// (`trace::buckets`). A capture is missing from the map, and read whole, when it has no buckets (indexed before
/// schema 8), when the filter names no host or port every match has, or when its buckets hold more than a quarter
/// of its flows, 4,096 or more (reading them one by one would then be slower than reading all).
/// [`bucket_candidates`] for a connection search: none when the filter has connection terms (`conn-state`,
/// `history`, ...), which in a connection search test the connection itself, not the connection of a candidate
/// flow (they differ for a flow that spans a port reuse), so such a search tests every connection.
pub(crate) fn connection_candidates(
    db: &dyn BucketLists,
    filter: &Compiled,
) -> Result<HashMap<i64, Vec<i64>>, QueryError> {
    if filter.condition.contains(crate::filter::FLOW_CONNECTION) {
        return Ok(HashMap::new());
    }
    bucket_candidates(db, filter)
}

pub(crate) fn bucket_candidates(
    db: &dyn BucketLists,
    filter: &Compiled,
) -> Result<HashMap<i64, Vec<i64>>, QueryError> {
    Ok(candidates(db, filter, false)?
        .into_iter()
        .map(|(cid, (nos, _))| (cid, nos))
        .collect())
}

/// [`bucket_candidates`], each capture's with a flag: true when they are exactly its matches (the filter's
/// buckets are exact and every set of them was read). `for_count` keeps even a set that holds most of a
/// capture's flows when the filter's buckets are exact, since counting a list is still quicker than SQL.
pub(crate) fn candidates(
    db: &dyn BucketLists,
    filter: &Compiled,
    for_count: bool,
) -> Result<HashMap<i64, (Vec<i64>, bool)>, QueryError> {
    use crate::key::buckets::{NET16_BASE, WITH_NET16};
    let mut out = HashMap::new();
    if filter.buckets.is_empty() {
        return Ok(out);
    }
    let caps = db.bucket_captures()?;
    let keep_large = for_count && filter.exact;
    'capture: for (cid, flows, has) in caps {
        let mut cands: Option<Vec<i64>> = None;
        let mut exact = filter.exact;
        for set in &filter.buckets {
            // A capture indexed before the /16 buckets has none of them: such a set says nothing about it.
            if has < WITH_NET16 && set.iter().any(|&b| b >= NET16_BASE) {
                exact = false;
                continue;
            }
            let mut lists = Vec::new();
            // A range of buckets at a time: a /8 is 256 consecutive /16 buckets, and one query for each took most
            // of its count's time.
            for (lo, hi) in runs(set) {
                db.bucket_lists(cid, lo, hi, &mut lists)?;
            }
            // Each number ends in a byte below 0x80: how many there are, before decoding any.
            let listed: usize = lists
                .iter()
                .map(|l| l.iter().filter(|&&b| b < 0x80).count())
                .sum();
            // Small captures always take their candidates (either way is quick), which also lets the corpus's
            // tests check this path on every capture.
            if !keep_large && flows >= 4096 && listed as i64 > flows / 4 {
                exact = false;
                continue;
            }
            let mut union = Vec::with_capacity(listed);
            for l in &lists {
                if crate::key::buckets::decode_into(l, &mut union).is_none() {
                    continue 'capture;
                }
            }
            union = ascending_distinct(union);
            cands = Some(match cands {
                None => union,
                Some(c) => intersect(&c, &union),
            });
        }
        if let Some(c) = cands {
            out.insert(cid, (c, exact));
        }
    }
    Ok(out)
}

/// Whether a listing of at most `limit` is quicker walking its order's index than through the bucket candidates
/// (`flows` in the database): the walk tests about `limit / share` connections when a share of the flows
/// match, the candidates cost one lookup each, and their number bounds the share from above. So the walk is
/// taken when `limit * flows < candidates^2`, and always without candidates (a port that a sixth of the flows
/// use gives its first 20 connections within the first few hundred of the order).
pub(crate) fn walk_first(cands: &HashMap<i64, Vec<i64>>, flows: i64, limit: u64) -> bool {
    let listed: u128 = cands.values().map(|c| c.len() as u128).sum();
    cands.is_empty() || u128::from(limit) * (flows.max(0) as u128) < listed * listed
}

/// Ascending bucket numbers as runs of consecutive ones, first and last.
fn runs(set: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &b in set {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(b) => *hi = b,
            _ => out.push((b, b)),
        }
    }
    out
}

/// Flow numbers (each below 2^32) in ascending order, each once. Lists of many buckets (a /8 is 256) are merged
/// through a bitmap of the capture's flow numbers when it is small beside them: sorting 2.6M numbers of a /8 took
/// 100 ms of a 140 ms count.
fn ascending_distinct(mut nos: Vec<i64>) -> Vec<i64> {
    let max = nos.iter().copied().max().unwrap_or(0).max(0) as usize;
    if max / 64 > nos.len() || nos.windows(2).all(|w| w[0] < w[1]) {
        nos.sort_unstable();
        nos.dedup();
        return nos;
    }
    let mut bits = vec![0u64; max / 64 + 1];
    for &n in &nos {
        if let Ok(n) = usize::try_from(n) {
            bits[n / 64] |= 1 << (n % 64);
        }
    }
    nos.clear();
    for (w, &word) in bits.iter().enumerate() {
        let mut word = word;
        while word != 0 {
            nos.push((w * 64 + word.trailing_zeros() as usize) as i64);
            word &= word - 1;
        }
    }
    nos
}

/// The numbers in both of two ascending lists.
fn intersect(a: &[i64], b: &[i64]) -> Vec<i64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// At most this many bucket candidates are read one by one and sorted here; more go to the single sorted query.
pub(crate) const CANDIDATE_CAP: usize = 50_000;

/// The filter's flow bucket candidates when every capture of `with_flows` (the captures that have flows) has
/// some and they are at most [`CANDIDATE_CAP`] in all: then a page or a histogram reads those few flows by key
/// instead of every flow of the time window.
pub(crate) fn covering_candidates(
    db: &dyn BucketLists,
    with_flows: &[i64],
    filter: &Compiled,
) -> Result<Option<HashMap<i64, Vec<i64>>>, QueryError> {
    let cands = bucket_candidates(db, filter)?;
    if cands.is_empty()
        || cands.values().map(Vec::len).sum::<usize>() > CANDIDATE_CAP
        || with_flows.iter().any(|id| !cands.contains_key(id))
    {
        return Ok(None);
    }
    Ok(Some(cands))
}
