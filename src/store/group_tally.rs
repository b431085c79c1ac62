//! `--group-by` tallied here rather than by the database: each thread adds its share of the flows to a hash map
//! of groups, the maps are merged and the groups sorted as the grouping SQL sorts them. SQLite's GROUP BY sorts
//! every matching flow first; a hash map of a few thousand groups does not, so grouping every flow costs about
//! what reading them does. Bounded: past [`MAX_GROUPS`] groups the caller leaves it to the database, whose
//! sorter spills to disk.

use std::collections::HashMap;

use super::rows::{FlowSort, GroupRow};
use super::types::LISTING_DIGITS;

/// Groups past which a tally gives up (about 100 bytes each, per thread).
pub(crate) const MAX_GROUPS: usize = 200_000;

/// One key column's value, ordered as the grouping SQL orders keys: integers by value, text bytewise, NULL
/// last (`k IS NULL, k`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    Int(i64),
    Text(Vec<u8>),
    Null,
}

impl Key {
    fn json(&self) -> serde_json::Value {
        match self {
            Key::Int(i) => serde_json::Value::from(*i),
            Key::Text(t) => serde_json::Value::from(String::from_utf8_lossy(t).into_owned()),
            Key::Null => serde_json::Value::Null,
        }
    }
}

/// A group's totals, as `rows::flow_totals` sums them.
#[derive(Clone, Copy, Debug)]
struct Totals {
    n: i64,
    packets: i64,
    bytes: i64,
    payload: i64,
    first_ns: i64,
    last_ns: i64,
}

impl Totals {
    /// Adds `o`; false if a sum overflows.
    fn absorb(&mut self, o: &Totals) -> bool {
        let (Some(p), Some(b), Some(y)) = (
            self.packets.checked_add(o.packets),
            self.bytes.checked_add(o.bytes),
            self.payload.checked_add(o.payload),
        ) else {
            return false;
        };
        self.n += o.n;
        (self.packets, self.bytes, self.payload) = (p, b, y);
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
        true
    }
}

/// The groups of a share of the flows. `None` once there are too many of them or a sum overflows (the SQL's
/// sum fails there too): the caller then groups in SQL.
#[derive(Debug, Default)]
pub(crate) struct GroupTally {
    groups: HashMap<Vec<Key>, Totals>,
    given_up: bool,
}

impl GroupTally {
    /// Adds one flow of key `key`.
    pub(crate) fn add(
        &mut self,
        key: Vec<Key>,
        packets: i64,
        bytes: i64,
        payload: i64,
        first_ns: i64,
        last_ns: i64,
    ) {
        let one = Totals {
            n: 1,
            packets,
            bytes,
            payload,
            first_ns,
            last_ns,
        };
        self.put(key, one);
    }

    /// True once the tally has given up.
    pub(crate) fn given_up(&self) -> bool {
        self.given_up
    }

    /// Adds another share's groups.
    pub(crate) fn merge(&mut self, other: GroupTally) {
        if other.given_up {
            self.give_up();
        }
        for (key, t) in other.groups {
            self.put(key, t);
        }
    }

    fn put(&mut self, key: Vec<Key>, more: Totals) {
        if self.given_up {
            return;
        }
        let full = self.groups.len() >= MAX_GROUPS;
        let ok = match self.groups.get_mut(&key) {
            Some(t) => t.absorb(&more),
            None if full => false,
            None => {
                self.groups.insert(key, more);
                true
            }
        };
        if !ok {
            self.give_up();
        }
    }

    fn give_up(&mut self) {
        self.given_up = true;
        self.groups = HashMap::new();
    }

    /// The groups in `sort`'s order (most bytes first, most packets first, or earliest first), ties by the keys,
    /// at most `limit`; `names` are the key columns' names. `None` if the tally gave up.
    pub(crate) fn rows(
        self,
        names: &[&'static str],
        sort: Option<FlowSort>,
        limit: Option<u64>,
    ) -> Option<Vec<GroupRow>> {
        if self.given_up {
            return None;
        }
        let mut all: Vec<(Vec<Key>, Totals)> = self.groups.into_iter().collect();
        all.sort_by(|(ka, a), (kb, b)| {
            let first = match sort {
                Some(FlowSort::Packets) => b.packets.cmp(&a.packets),
                Some(FlowSort::Time) => a.first_ns.cmp(&b.first_ns),
                _ => b.bytes.cmp(&a.bytes),
            };
            first.then_with(|| ka.cmp(kb))
        });
        if let Some(l) = limit {
            all.truncate(l.min(usize::MAX as u64) as usize);
        }
        let ts = |ns| crate::capture::Timestamp::from_ns(ns, LISTING_DIGITS).rfc3339();
        Some(
            all.into_iter()
                .map(|(key, t)| GroupRow {
                    keys: names
                        .iter()
                        .copied()
                        .zip(key.iter().map(Key::json))
                        .collect(),
                    unit: "flows",
                    count: t.n,
                    packets: t.packets,
                    bytes: t.bytes,
                    payload_bytes: t.payload,
                    first_time: ts(t.first_ns),
                    last_time: ts(t.last_ns),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_as_the_sql_orders_them() {
        let mut k = vec![
            Key::Null,
            Key::Text(b"b".to_vec()),
            Key::Int(10),
            Key::Text(b"B".to_vec()),
            Key::Int(-3),
        ];
        k.sort();
        assert_eq!(
            k,
            [
                Key::Int(-3),
                Key::Int(10),
                Key::Text(b"B".to_vec()),
                Key::Text(b"b".to_vec()),
                Key::Null
            ]
        );
    }

    #[test]
    fn a_tally_of_too_many_groups_gives_up_and_so_does_a_merge_with_it() {
        let mut a = GroupTally::default();
        for i in 0..=MAX_GROUPS as i64 {
            a.add(vec![Key::Int(i)], 1, 1, 1, 0, 0);
        }
        assert!(a.given_up());
        let mut b = GroupTally::default();
        b.add(vec![Key::Int(1)], 1, 1, 1, 0, 0);
        b.merge(a);
        assert!(b.rows(&["k"], None, None).is_none());
    }
}
