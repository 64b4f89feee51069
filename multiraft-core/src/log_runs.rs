//! [`LogRuns`]: a stored log's consecutive entries, kept as the runs its writes brought.

use std::collections::VecDeque;

use crate::entries::Entries;
use crate::entry::Entry;
use crate::entry_runs::EntryRuns;
use crate::ids::GroupId;
use crate::storage::{FIRST_LOG_ROOM, first_log_room, room_from_small};

/// A group's consecutive entries as a storage keeps them: the runs its writes brought
/// ([`GroupWrite::entries`](crate::GroupWrite::entries)), each shared with the node's log
/// rather than copied, found by index. For a [`Storage`](crate::Storage) that keeps a
/// group's log, or its unflushed part, in memory.
///
/// Why runs and not one vector: appending a write's entries to one vector per group copied
/// every entry once more, into the cold end of one of thousands of vectors that grew by
/// reallocation into fresh pages (a tenth of the node's time at 1,000 busy groups,
/// BENCHMARKS.md, "The in-memory log kept as its writes' runs"); keeping the write's own
/// runs costs nothing to append.
///
/// Each run's first index is kept beside it, and the end of the last: finding, appending,
/// truncating and trimming then read no entry, which another thread (the node's loop)
/// wrote, so each such read was a cache miss (a third of the redb writer's time applying
/// records, BENCHMARKS.md, "The durable ratio in one harness"). The number of runs is at
/// most the number of entries (no run is empty), which compaction bounds; a lookup is a
/// binary search over the runs.
///
/// The run list grows in its group's own steps ([`LogRuns::for_group`], as the node's logs
/// do, [`log_room`](crate::log_room)): grown by plain doubling, the lists of a thousand
/// groups fed alike all reallocated into fresh pages in the same milliseconds at every
/// power of two, a 10–30 ms stall of every loop at 512 runs (BENCHMARKS.md, "Stored run
/// lists grown in each group's steps").
#[derive(Clone, Debug)]
pub struct LogRuns {
    /// Non-empty runs, each of consecutive entries following the run before, with the
    /// index of its first entry.
    runs: VecDeque<(u64, Entries)>,
    /// One past the last entry's index; 0 when empty. Nearly every write appends right
    /// after the last entry, and this tells so without reading `runs`.
    end: u64,
    /// The room from which `runs` grows in the group's own steps ([`room_from_small`]). A
    /// `u32`: a run list never needs more.
    first_room: u32,
}

impl Default for LogRuns {
    fn default() -> LogRuns {
        LogRuns::new()
    }
}

impl LogRuns {
    /// No entries; the run list grows from [`FIRST_LOG_ROOM`]. A storage that keeps many
    /// groups' logs should use [`LogRuns::for_group`].
    pub fn new() -> LogRuns {
        LogRuns::with_first_room(FIRST_LOG_ROOM)
    }

    /// No entries, for `group`'s log: the run list grows in the group's own steps
    /// ([`first_log_room`]), so that the lists of groups fed alike do not all grow at once.
    pub fn for_group(group: GroupId) -> LogRuns {
        LogRuns::with_first_room(first_log_room(group))
    }

    fn with_first_room(first_room: usize) -> LogRuns {
        LogRuns {
            runs: VecDeque::new(),
            end: 0,
            first_room: u32::try_from(first_room).unwrap_or(u32::MAX),
        }
    }

    /// The index of the first entry, if any.
    pub fn first_index(&self) -> Option<u64> {
        self.runs.front().map(|&(start, _)| start)
    }

    /// The index of the last entry, if any (read from the bound kept inline, no run).
    pub fn last_index(&self) -> Option<u64> {
        self.end.checked_sub(1).filter(|_| !self.runs.is_empty())
    }

    /// The number of entries held. Reads the first run: where only the end matters,
    /// [`LogRuns::last_index`] reads nothing outside this value.
    pub fn len(&self) -> usize {
        self.first_index()
            .map_or(0, |first| (self.end - first) as usize)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Entry `index`, if held.
    pub fn get(&self, index: u64) -> Option<&Entry> {
        if index >= self.end {
            return None;
        }
        // The last run starting at or below `index`.
        let after = self.runs.partition_point(|&(start, _)| start <= index);
        let (start, run) = self.runs.get(after.checked_sub(1)?)?;
        run.get(usize::try_from(index - start).ok()?)
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.end = 0;
    }

    /// Appends `entries`, which must follow the last entry held (any index when empty):
    /// shared, not copied. An empty run adds nothing.
    pub fn push(&mut self, entries: Entries) {
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            debug_assert!(self.runs.is_empty() || first.index == self.end);
            self.end = last.index + 1;
            let len = self.runs.len();
            if len == self.runs.capacity() {
                self.runs
                    .reserve_exact(room_from_small(self.first_room as usize, len + 1) - len);
            }
            self.runs.push_back((first.index, entries));
        }
    }

    /// Stores a write's entries ([`GroupWrite::entries`](crate::GroupWrite::entries)) as
    /// the contract of [`Storage`](crate::Storage) asks: every entry held from their first
    /// index on is dropped first (the suffix an append replaces), then their runs are
    /// pushed, none copied. No entries change nothing.
    pub fn append(&mut self, entries: EntryRuns) {
        if let Some(first) = entries.first() {
            self.truncate_from(first.index);
            for run in entries.into_runs() {
                self.push(run);
            }
        }
    }

    /// Drops every entry from `index` on.
    pub fn truncate_from(&mut self, index: u64) {
        if index >= self.end {
            return;
        }
        self.end = index;
        while let Some((start, run)) = self.runs.back_mut() {
            if *start >= index {
                self.runs.pop_back();
            } else {
                let keep = usize::try_from(index - *start).unwrap_or(usize::MAX);
                if keep < run.len() {
                    *run = run.slice(0..keep);
                }
                return;
            }
        }
    }

    /// Drops every entry up to and including `index`.
    pub fn drop_through(&mut self, index: u64) {
        while let Some((start, run)) = self.runs.front_mut() {
            if *start > index {
                return;
            }
            let drop = usize::try_from(index - *start + 1).unwrap_or(usize::MAX);
            if drop >= run.len() {
                self.runs.pop_front();
            } else {
                *run = run.slice(drop..run.len());
                *start = index + 1;
                return;
            }
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.runs.iter().flat_map(|(_, run)| run.iter())
    }

    /// The entries held with index in `[low, high)`, in order.
    pub fn range(&self, low: u64, high: u64) -> impl Iterator<Item = &Entry> + '_ {
        let high = high.min(self.end);
        // From the run holding `low` (or the first, when `low` is below it).
        let from = self
            .runs
            .partition_point(|&(start, _)| start <= low)
            .saturating_sub(1);
        self.runs
            .range(from..)
            .flat_map(|(_, run)| run.iter())
            .skip_while(move |e| e.index < low)
            .take_while(move |e| e.index < high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Payload;
    use crate::storage::room_in_steps;

    fn entries(from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term: index / 4 + 1,
                payload: Payload::Noop,
            })
            .collect()
    }

    fn indexes<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<u64> {
        entries.map(|e| e.index).collect()
    }

    /// Two groups fed alike grow their run lists at lengths of their own, each in the steps
    /// of its first room, and a list emptied by compaction keeps its room.
    #[test]
    fn run_lists_grow_in_their_groups_steps() {
        let groups = [GroupId(1), GroupId(2)];
        let firsts = groups.map(first_log_room);
        assert_ne!(
            firsts[0], firsts[1],
            "pick two groups with different first rooms"
        );
        let mut lists = groups.map(LogRuns::for_group);
        for i in 1..=200 {
            for (list, first) in lists.iter_mut().zip(firsts) {
                list.push(entries(i, i).into());
                let capacity = list.runs.capacity();
                assert!(capacity >= i as usize, "at {i} runs");
                if i as usize >= first {
                    assert_eq!(capacity, room_in_steps(first, i as usize), "at {i} runs");
                } else {
                    assert!(capacity <= first, "at {i} runs");
                }
            }
        }
        let capacity = lists[0].runs.capacity();
        lists[0].drop_through(200);
        lists[0].push(entries(201, 201).into());
        assert_eq!(lists[0].runs.capacity(), capacity);
        // A list of one run holds no more room than that (idle groups).
        let mut idle = LogRuns::new();
        idle.push(entries(1, 1).into());
        assert_eq!(idle.runs.capacity(), 1);
    }

    /// Three runs: 1..=3, 4..=4, 5..=9.
    fn three_runs() -> LogRuns {
        let mut runs = LogRuns::new();
        runs.push(entries(1, 3).into());
        runs.push(Vec::new().into()); // an empty write adds no run
        runs.push(entries(4, 4).into());
        runs.push(entries(5, 9).into());
        runs
    }

    /// What a `LogRuns` holds, checked against the indexes it must hold.
    fn check(runs: &LogRuns, model: &[u64], at: &str) {
        assert_eq!(indexes(runs.iter()), model, "{at}");
        assert_eq!(runs.first_index(), model.first().copied(), "{at}");
        assert_eq!(runs.last_index(), model.last().copied(), "{at}");
        assert_eq!(runs.len(), model.len(), "{at}");
        assert_eq!(runs.is_empty(), model.is_empty(), "{at}");
        for &index in model {
            assert_eq!(runs.get(index).map(|e| e.index), Some(index), "{at}");
        }
        let (below, above) = (
            model.first().map_or(1, |f| f - 1),
            model.last().map_or(0, |l| l + 1),
        );
        assert!(
            runs.get(below).is_none() && runs.get(above).is_none(),
            "{at}"
        );
    }

    #[test]
    fn finds_every_entry_across_its_runs_and_nothing_else() {
        check(&three_runs(), &(1..=9).collect::<Vec<_>>(), "three runs");
        check(&LogRuns::new(), &[], "empty");
        let from_five = {
            let mut r = LogRuns::new();
            r.push(entries(5, 6).into());
            r
        };
        check(&from_five, &[5, 6], "starting at 5");
    }

    #[test]
    fn ranges_within_and_across_runs() {
        let runs = three_runs();
        for low in 0..=10 {
            for high in 0..=11 {
                let want: Vec<u64> = (low.max(1)..high.min(10)).collect();
                assert_eq!(indexes(runs.range(low, high)), want, "[{low}, {high})");
            }
        }
    }

    #[test]
    fn truncating_keeps_exactly_the_entries_below_the_index() {
        for from in 0..=10 {
            let mut runs = three_runs();
            runs.truncate_from(from);
            check(
                &runs,
                &(1..from.clamp(1, 10)).collect::<Vec<_>>(),
                "truncated",
            );
            // What follows the cut can be appended again and found.
            runs.push(entries(from.clamp(1, 10), 12).into());
            check(&runs, &(1..=12).collect::<Vec<_>>(), "appended again");
        }
    }

    /// A write's entries replace the suffix from their first index, in their runs.
    #[test]
    fn an_append_replaces_the_suffix_from_its_first_index() {
        // Entries of term 100: none held has it.
        let new = |from: u64, to: u64| -> Entries {
            let mut e = entries(from, to);
            e.iter_mut().for_each(|e| e.term = 100);
            e.into()
        };
        for at in 1..=10 {
            let mut runs = three_runs();
            let mut write = EntryRuns::from(new(at, at));
            write.push(new(at + 1, 11));
            runs.append(write);
            check(&runs, &(1..=11).collect::<Vec<_>>(), "appended");
            let terms: Vec<u64> = runs.iter().map(|e| e.term).collect();
            let kept = (1..at).map(|i| i / 4 + 1);
            let want: Vec<u64> = kept.chain((at..=11).map(|_| 100)).collect();
            assert_eq!(terms, want, "appended at {at}");
        }
        let mut runs = three_runs();
        runs.append(EntryRuns::new());
        check(&runs, &(1..=9).collect::<Vec<_>>(), "nothing appended");
    }

    #[test]
    fn compacting_drops_exactly_the_entries_through_the_index() {
        for through in 0..=10 {
            let mut runs = three_runs();
            runs.drop_through(through);
            check(&runs, &(through + 1..=9).collect::<Vec<_>>(), "compacted");
        }
    }

    /// Cuts, trims and appends in turn, each checked against a plain vector of the indexes
    /// the runs must hold: the bound on the last entry must never let a cut pass unseen.
    #[test]
    fn agrees_with_a_vector_through_cuts_trims_and_appends() {
        let mut runs = LogRuns::new();
        let mut model: Vec<u64> = Vec::new();
        let mut next = 1;
        // (operation, argument): 0 push `arg` entries, 1 truncate from `arg` below the
        // next index, 2 drop through `arg` above the first, 3 clear and go on at `arg`.
        let steps = [
            (0, 3),
            (0, 1),
            (1, 2),
            (1, 1),
            (0, 4),
            (2, 1),
            (1, 3),
            (1, 1),
            (0, 2),
            (2, 10),
            (1, 0),
            (0, 3),
            (1, 5),
            (0, 1),
            (3, 40),
            (0, 2),
            (1, 1),
            (0, 3),
        ];
        for (op, arg) in steps {
            match op {
                0 => {
                    runs.push(entries(next, next + arg - 1).into());
                    model.extend(next..next + arg);
                    next += arg;
                }
                1 => {
                    let from = next.saturating_sub(arg).max(1);
                    runs.truncate_from(from);
                    model.retain(|&i| i < from);
                    next = from;
                }
                2 => {
                    let through = model.first().map_or(0, |&f| f + arg - 1);
                    runs.drop_through(through);
                    model.retain(|&i| i > through);
                }
                _ => {
                    runs.clear();
                    model.clear();
                    next = arg;
                }
            }
            check(&runs, &model, &format!("after ({op}, {arg})"));
        }
    }
}
