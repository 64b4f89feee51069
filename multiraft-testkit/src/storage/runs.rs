//! [`Runs`]: one group's stored log as the runs of entries its writes brought, kept as
//! they came.

use std::collections::VecDeque;

use multiraft_core::{Entries, Entry};

/// A group's stored log: the entries of its writes, in order, each kept as the write handed
/// it over (shared with the node's log, [`Entries`]).
///
/// Why not one vector: appending a write's entries to one vector per group copied every
/// entry once more, into the cold tail of one of thousands of vectors, and grew those
/// vectors by reallocation into fresh pages. At 1,000 busy groups that copy and its page
/// faults were a tenth of the whole node's time (BENCHMARKS.md, "The in-memory log kept as
/// its writes' runs"). Keeping the write's own vector costs nothing to append. The number
/// of runs is bounded by the number of entries (no run is empty), which compaction bounds;
/// a lookup by position is a binary search over the runs.
///
/// Positions count from the first entry kept: position 0 is the entry after the compacted
/// prefix.
#[derive(Clone, Debug, Default)]
pub(super) struct Runs {
    /// The runs, none empty, each continuing the one before.
    runs: VecDeque<Entries>,
    /// Entries in all runs.
    len: usize,
}

impl Runs {
    /// The number of entries kept.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends a write's entries, which continue the log, without copying them.
    pub(super) fn append(&mut self, entries: Entries) {
        if !entries.is_empty() {
            self.len += entries.len();
            self.runs.push_back(entries);
        }
    }

    /// Drops every entry.
    pub(super) fn clear(&mut self) {
        self.runs.clear();
        self.len = 0;
    }

    /// The run holding `position` and the position within it; `None` past the end.
    fn locate(&self, position: usize) -> Option<(usize, usize)> {
        if position >= self.len {
            return None;
        }
        // Entries are consecutive, so a run's first index says where it starts: a binary
        // search over the runs.
        let first = self.runs.front()?.first()?.index;
        let index = first + position as u64;
        let run = self
            .runs
            .partition_point(|r| r.first().is_some_and(|e| e.index <= index))
            .checked_sub(1)?;
        let start = self.runs.get(run)?.first()?.index;
        Some((run, (index - start) as usize))
    }

    /// The entry at `position`.
    pub(super) fn get(&self, position: usize) -> Option<&Entry> {
        let (run, at) = self.locate(position)?;
        self.runs.get(run).and_then(|r| r.get(at))
    }

    /// Keeps the first `keep` entries.
    pub(super) fn truncate(&mut self, keep: usize) {
        let Some((run, at)) = self.locate(keep) else {
            return;
        };
        self.runs.truncate(run + 1);
        if at == 0 {
            self.runs.pop_back();
        } else if let Some(last) = self.runs.back_mut() {
            *last = last.slice(0..at);
        }
        self.len = keep;
    }

    /// Drops the first `drop` entries (at most [`Runs::len`]).
    pub(super) fn drain_front(&mut self, mut drop: usize) {
        drop = drop.min(self.len);
        self.len -= drop;
        while let Some(first) = self.runs.front_mut() {
            if drop < first.len() {
                *first = first.slice(drop..first.len());
                return;
            }
            drop -= first.len();
            self.runs.pop_front();
        }
    }

    /// Copies of the entries at positions `start..end` (`end` at most [`Runs::len`]).
    pub(super) fn copy(&self, start: usize, end: usize) -> Vec<Entry> {
        let mut out = Vec::with_capacity(end.saturating_sub(start));
        self.iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .for_each(|e| out.push(e.clone()));
        out
    }

    /// Every entry, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.runs.iter().flat_map(|r| r.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::entries;

    fn runs(lengths: &[u64]) -> Runs {
        let mut runs = Runs::default();
        let mut next = 1;
        for &n in lengths {
            runs.append(entries(next, next + n - 1, 1).into());
            next += n;
        }
        runs
    }

    fn indexes(runs: &Runs) -> Vec<u64> {
        runs.iter().map(|e| e.index).collect()
    }

    #[test]
    fn positions_cross_runs() {
        let r = runs(&[2, 1, 3]);
        assert_eq!(r.len(), 6);
        assert_eq!(
            (0..7)
                .map(|p| r.get(p).map(|e| e.index))
                .collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3), Some(4), Some(5), Some(6), None]
        );
        assert_eq!(r.copy(1, 5), entries(2, 5, 1));
        assert_eq!(r.copy(3, 3), Vec::new());
    }

    #[test]
    fn truncation_inside_a_run_and_at_its_start() {
        let mut r = runs(&[2, 1, 3]);
        r.truncate(4);
        assert_eq!(indexes(&r), [1, 2, 3, 4]);
        assert_eq!(r.len(), 4);
        r.truncate(2);
        assert_eq!(indexes(&r), [1, 2]);
        r.truncate(9);
        assert_eq!(indexes(&r), [1, 2], "past the end keeps everything");
        r.append(entries(3, 3, 2).into());
        assert_eq!(r.get(2).map(|e| e.term), Some(2));
        r.truncate(0);
        assert_eq!(r.len(), 0);
        assert_eq!(r.runs.len(), 0, "no empty run is kept");
    }

    #[test]
    fn draining_the_front_drops_whole_runs_and_part_of_one() {
        let mut r = runs(&[2, 1, 3]);
        r.drain_front(4);
        assert_eq!(indexes(&r), [5, 6]);
        assert_eq!(r.runs.len(), 1);
        r.drain_front(2);
        assert_eq!(r.len(), 0);
        assert_eq!(r.runs.len(), 0);
        r.append(Vec::new().into());
        assert_eq!(r.runs.len(), 0, "an empty write adds no run");
    }
}
