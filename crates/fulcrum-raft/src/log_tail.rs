//! [`Tail`]: the newest entries of one group's log, kept decoded in memory.
//!
//! openraft reads every entry back soon after appending it: once per
//! follower to replicate it and once to apply it. Serving those reads from
//! memory saves a storage scan and a decode each. The tail holds a
//! contiguous run of the newest entries, bounded by count and bytes; a read
//! it cannot answer entirely goes to storage.
//!
//! Kept equal to storage by the log store: appends enter after they are
//! written; truncations and purges leave it before storage changes (so a
//! concurrent reader sees an entry either in both or in storage only).

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use openraft::entry::RaftEntry;

use crate::types::Entry;

/// Entries kept at most.
pub const MAX_ENTRIES: usize = 1024;
/// Encoded bytes kept at most.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Tail {
    /// (entry, its encoded size), contiguous indexes, oldest first.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Tail {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id().index())
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id().index())
    }

    /// Adds an appended entry. An entry that does not follow the newest
    /// one (after a truncation the tail did not see) restarts the tail.
    pub fn push(&mut self, entry: Entry, size: usize) {
        let index = entry.log_id().index();
        if self.last_index().is_some_and(|last| last + 1 != index) {
            self.clear();
        }
        self.bytes += size;
        self.entries.push_back((entry, size));
        while self.entries.len() > MAX_ENTRIES || (self.bytes > MAX_BYTES && self.entries.len() > 1)
        {
            if let Some((_, s)) = self.entries.pop_front() {
                self.bytes -= s;
            }
        }
    }

    /// Drops entries above `index` (all of them for `None`).
    pub fn truncate_after(&mut self, index: Option<u64>) {
        while self
            .last_index()
            .is_some_and(|last| index.is_none_or(|i| last > i))
        {
            if let Some((_, s)) = self.entries.pop_back() {
                self.bytes -= s;
            }
        }
    }

    /// Drops entries up to and including `index`.
    pub fn purge(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            if let Some((_, s)) = self.entries.pop_front() {
                self.bytes -= s;
            }
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The entries in `range` if the tail holds every one of them; `None`
    /// if any is outside it (or the range is unbounded above).
    pub fn get<R: RangeBounds<u64>>(&self, range: &R) -> Option<Vec<Entry>> {
        let (first, last) = (self.first_index()?, self.last_index()?);
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.checked_sub(1)?,
            Bound::Unbounded => return None,
        };
        if start > end {
            return Some(Vec::new());
        }
        if start < first || end > last {
            return None;
        }
        let from = (start - first) as usize;
        let to = (end - first) as usize;
        Some(
            self.entries
                .range(from..=to)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use openraft::entry::RaftEntry;

    use super::*;
    use crate::types::{LogId, TypeConfig};

    fn entry(index: u64) -> Entry {
        let id: LogId = openraft::testing::log_id::<TypeConfig>(1, 1, index);
        Entry::new_blank(id)
    }

    fn indexes(v: &[Entry]) -> Vec<u64> {
        v.iter().map(|e| e.log_id().index()).collect()
    }

    fn tail_of(range: std::ops::RangeInclusive<u64>) -> Tail {
        let mut t = Tail::default();
        for i in range {
            t.push(entry(i), 10);
        }
        t
    }

    #[test]
    fn serves_ranges_it_holds_entirely() {
        let t = tail_of(5..=9);
        assert_eq!(indexes(&t.get(&(5..=9)).unwrap()), vec![5, 6, 7, 8, 9]);
        assert_eq!(indexes(&t.get(&(6..8)).unwrap()), vec![6, 7]);
        assert_eq!(t.get(&(7..7)).unwrap().len(), 0);
    }

    #[test]
    fn refuses_ranges_reaching_outside() {
        let t = tail_of(5..=9);
        assert!(t.get(&(4..=6)).is_none());
        assert!(t.get(&(8..=10)).is_none());
        assert!(t.get(&(5..)).is_none());
        assert!(Tail::default().get(&(1..=1)).is_none());
    }

    #[test]
    fn truncate_and_purge_drop_their_ends() {
        let mut t = tail_of(1..=10);
        t.truncate_after(Some(7));
        t.purge(3);
        assert_eq!(indexes(&t.get(&(4..=7)).unwrap()), vec![4, 5, 6, 7]);
        assert!(t.get(&(4..=8)).is_none());
        t.truncate_after(None);
        assert!(t.is_empty());
    }

    #[test]
    fn a_gap_restarts_the_tail() {
        let mut t = tail_of(1..=3);
        t.push(entry(7), 10);
        assert_eq!(t.len(), 1);
        assert!(t.get(&(3..=3)).is_none());
        assert_eq!(indexes(&t.get(&(7..=7)).unwrap()), vec![7]);
    }

    #[test]
    fn stays_within_its_bounds() {
        let mut t = Tail::default();
        for i in 1..=(MAX_ENTRIES as u64 + 10) {
            t.push(entry(i), 1);
        }
        assert_eq!(t.len(), MAX_ENTRIES);
        assert!(t.get(&(1..=1)).is_none());
        let mut big = Tail::default();
        for i in 1..=5 {
            big.push(entry(i), MAX_BYTES / 2);
        }
        assert!(big.len() <= 2, "{} entries", big.len());
        assert!(big.get(&(5..=5)).is_some());
    }
}
