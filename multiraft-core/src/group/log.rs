//! One group's log in memory, with the positions that matter: committed, persisted
//! (durable on this node), handed to storage, applied.

use crate::entries::Entries;
use crate::entry::Entry;
use crate::entry_runs::EntryRuns;

/// The log of one group. Entries are kept from `base.0 + 1`: everything up to `base` is
/// covered by a snapshot (docs/design.md §4.6) and compacted away, and `base.1` is the term
/// of the entry at `base.0`, which the log-matching check of the next entry needs.
///
/// The entries are kept as shared runs ([`Entries`], docs/design.md §4.8): each run is what
/// one cycle handed on (a leader's new entries, frozen when the cycle takes them for storage
/// or for an append) or what one append brought, and the same run goes to the storage
/// write, the appends and the applies, each a reference to it rather than a copy. A
/// leader's entries not yet frozen are in `tail`, after the runs.
///
/// Positions, always `applied <= committed` and `persisted <= last_index`, and all at or
/// above `base.0` except `applied`, which lags below it only while a snapshot installed
/// under it is being restored:
/// - `committed`: known committed (Raft §5.3);
/// - `persisted`: every entry up to here is durable on this node and is the entry this log
///   holds (a truncation pulls it back);
/// - `unstable`: the first index not yet handed to storage;
/// - `applied`: the last index handed to the state machine.
#[derive(Debug)]
pub(crate) struct Log {
    /// Consecutive runs, none empty, the first starting at `base.0 + 1`. A vector, not a
    /// deque: compaction drops runs from the front once per snapshot, and the deque's
    /// extra word was in every replica (`group_state_stays_small`).
    runs: Vec<Run>,
    /// The entries after the runs, not yet shared: a leader's own new entries. Boxed, and
    /// only while it has some or is busy: a follower or a quiet leader has none.
    #[allow(clippy::box_collection, reason = "one word inline instead of three")]
    tail: Option<Box<Vec<Entry>>>,
    /// The number of entries in `runs`: derivable from the last run, but kept so that
    /// `last_index`, asked on nearly every step, reads no run list.
    in_runs: u64,
    /// (index, term) of the last compacted entry; (0, 0) for a log never compacted.
    base: (u64, u64),
    pub(crate) committed: u64,
    pub(crate) persisted: u64,
    unstable: u64,
    pub(crate) applied: u64,
}

/// Runs [`Log::locate`] scans one by one from the newest before it searches: nearly every
/// lookup (98 % at 1,000 busy groups, BENCHMARKS.md, "A run found back from the newest") is
/// of an entry in one of them.
const NEWEST_RUNS: usize = 4;

/// One run of the log: its entries and the index of the first. The index is kept here, not
/// read from the entries, so that finding a run reads only the run list: reading each
/// probed run's first entry made the search a cache miss per step (14 % of the node's
/// time at 1,000 busy groups).
#[derive(Debug)]
struct Run {
    start: u64,
    entries: Entries,
}

impl std::ops::Deref for Run {
    type Target = Entries;

    fn deref(&self) -> &Entries {
        &self.entries
    }
}

/// The result of appending a leader's entries after a successful consistency check.
pub(crate) struct Appended {
    /// The index of the last entry the leader sent (now matching the leader's log).
    pub(crate) last_new: u64,
    /// The first index that was overwritten, if any stored suffix conflicted.
    pub(crate) truncated_at: Option<u64>,
}

// Not derived: an empty log's first unstable index is 1, not 0. With 0, `has_unstable` was
// true for every new group, and `take_unstable` (which slices from `unstable`) returned
// nothing for a slice starting at 0, so the first entries a new replica received were
// acknowledged but never handed to storage.
impl Default for Log {
    fn default() -> Log {
        Log::restored((0, 0), Vec::new(), 0, 0)
    }
}

impl Log {
    /// A log restored from storage: everything loaded is durable. `base` is the last
    /// compacted entry; everything up to `snapshot` (at or above `base`, 0 for none) counts
    /// as applied, since the state machine is restored from the snapshot before any apply.
    pub(crate) fn restored(
        base: (u64, u64),
        entries: Vec<Entry>,
        committed: u64,
        snapshot: u64,
    ) -> Log {
        let last = base.0 + entries.len() as u64;
        let applied = snapshot.clamp(base.0, last);
        let in_runs = entries.len() as u64;
        let runs = if entries.is_empty() {
            Vec::new()
        } else {
            vec![Run {
                start: base.0 + 1,
                entries: entries.into(),
            }]
        };
        Log {
            runs,
            tail: None,
            in_runs,
            base,
            committed: committed.clamp(applied, last),
            persisted: last,
            unstable: last + 1,
            applied,
        }
    }

    /// The last compacted entry's index: the log holds the entries after it.
    pub(crate) fn first_index(&self) -> u64 {
        self.base.0 + 1
    }

    /// Discards the entries up to `index` (kept at or below what is applied, and so
    /// durable), remembering the last one's term. Returns whether anything was discarded.
    pub(crate) fn compact(&mut self, index: u64) -> bool {
        let index = index.min(self.applied).min(self.persisted);
        let Some(term) = self.term(index).filter(|_| index > self.base.0) else {
            return false;
        };
        // Durable entries were handed to storage, so frozen: all of them are in the runs.
        self.in_runs -= (index - self.base.0).min(self.in_runs);
        let whole = self
            .runs
            .iter()
            .take_while(|r| r.start + r.len() as u64 <= index + 1)
            .count();
        self.runs.drain(..whole);
        if let Some(front) = self.runs.first_mut()
            && front.start <= index
        {
            front.entries = front.slice((index + 1 - front.start) as usize..front.len());
            front.start = index + 1;
        }
        self.base = (index, term);
        true
    }

    /// Makes the log consistent with a snapshot of the state at (`index`, `term`), just
    /// received from the leader (Raft §7): a log that holds that entry is kept; any other
    /// is replaced by an empty log after it. `committed` moves to `index` either way; the
    /// caller restores the state machine, and `applied` follows.
    /// Returns whether the log was replaced (storage must then reset its log too).
    pub(crate) fn install(&mut self, index: u64, term: u64) -> bool {
        let replace = !self.matches(index, term);
        if replace {
            self.runs.clear();
            self.tail = None;
            self.in_runs = 0;
            self.base = (index, term);
            self.persisted = index;
            self.unstable = index + 1;
        }
        self.committed = self.committed.max(index);
        replace
    }

    /// Returns the spare capacity of the run list when it is more than the runs themselves,
    /// and frees an empty tail: it matters for the many short logs of idle groups, and
    /// copying a long list each time a busy group pauses would cost far more than its spare
    /// capacity.
    pub(crate) fn shrink(&mut self) {
        if self.runs.capacity() > 2 * self.runs.len() {
            self.runs.shrink_to_fit();
        }
        if self.tail.as_ref().is_some_and(|t| t.is_empty()) {
            self.tail = None;
        }
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.base.0 + self.in_runs + self.tail().len() as u64
    }

    /// Reads what a cycle reads first of the log's heap, `depth` pointers away from the log
    /// (0: the newest run and the tail; 1: the newest entry). See `Replica::warm`.
    pub(crate) fn warm(&self, depth: u8) -> u64 {
        if depth == 0 {
            let newest = self.runs.last().map_or(0, |r| r.start);
            newest ^ self.tail().len() as u64
        } else {
            self.last_term()
        }
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.tail()
            .last()
            .or_else(|| self.runs.last().and_then(|r| r.last()))
            .map_or(self.base.1, |e| e.term)
    }

    /// The entries after the runs.
    fn tail(&self) -> &[Entry] {
        self.tail.as_deref().map_or(&[], |t| t.as_slice())
    }

    /// The entry at `index`, if the log holds it.
    fn get(&self, index: u64) -> Option<&Entry> {
        let position = index.checked_sub(self.base.0 + 1)?;
        if position >= self.in_runs {
            return self.tail().get((position - self.in_runs) as usize);
        }
        let (run, at) = self.locate(index)?;
        self.runs.get(run)?.get(at)
    }

    /// The run holding `index` (one the runs hold) and its position in it.
    fn locate(&self, index: u64) -> Option<(usize, usize)> {
        // Most lookups are of the newest entries (the next to append, apply or send): the
        // last few runs first.
        let newest = self.runs.len().saturating_sub(NEWEST_RUNS);
        let run = match self.runs[newest..].iter().rposition(|r| r.start <= index) {
            Some(i) => newest + i,
            None => self.locate_before(newest, index)?,
        };
        let at = index.checked_sub(self.runs.get(run)?.start)?;
        Some((run, usize::try_from(at).ok()?))
    }

    /// The run holding `index` among the runs before `end` (the runs from `end` on all start
    /// after `index`): spans back from `end` that double in length until one starts at or
    /// below `index`, then a binary search of that span. A binary search of the whole list began
    /// in its cold middle, a miss at nearly every probe, for the one lookup in fifty that is
    /// a few runs further back than the newest (BENCHMARKS.md, "A run found back from the
    /// newest").
    fn locate_before(&self, mut end: usize, index: u64) -> Option<usize> {
        let mut span = NEWEST_RUNS;
        loop {
            let start = end.saturating_sub(span);
            if start == 0 || self.runs[start].start <= index {
                let after = self.runs[start..end].partition_point(|r| r.start <= index);
                return (start + after).checked_sub(1);
            }
            (end, span) = (start, span * 2);
        }
    }

    /// Moves the tail into a run of its own, so that it can be shared.
    /// `first_room` as for [`Log::make_room`].
    fn freeze(&mut self, first_room: usize) {
        if let Some(tail) = self.tail.as_mut().filter(|t| !t.is_empty()) {
            // Collected, not converted: the tail keeps its capacity for the next cycle.
            let run: Entries = tail.drain(..).collect();
            self.push_run(run, first_room);
        }
    }

    /// Appends a run after the runs (the tail must be empty).
    fn push_run(&mut self, run: Entries, first_room: usize) {
        debug_assert!(self.tail().is_empty());
        debug_assert_eq!(run.first().map(|e| e.index), Some(self.last_index() + 1));
        self.make_room(first_room);
        let start = self.last_index() + 1;
        self.in_runs += run.len() as u64;
        self.runs.push(Run {
            start,
            entries: run,
        });
    }

    /// Keeps the entries before `index` (in the log), dropping the rest.
    fn truncate_from(&mut self, index: u64) {
        let keep = index.saturating_sub(self.base.0 + 1);
        if keep >= self.in_runs {
            if let Some(tail) = &mut self.tail {
                tail.truncate((keep - self.in_runs) as usize);
            }
            return;
        }
        self.tail = None;
        if let Some((run, at)) = self.locate(index) {
            self.runs.truncate(run + 1);
            if at == 0 {
                self.runs.pop();
            } else if let Some(last) = self.runs.last_mut() {
                last.entries = last.slice(0..at);
            }
        }
        self.in_runs = keep;
    }

    /// The term at `index`: known for the entries held and for the last compacted one
    /// (index 0 is the empty prefix, of term 0); `None` below it or past the end.
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.base.0 {
            return Some(self.base.1);
        }
        self.get(index).map(|e| e.term)
    }

    pub(crate) fn matches(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a candidate whose log ends at (`last_term`, `last_index`) is at least as
    /// up to date as this log (Raft §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends a leader's own new entry.
    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.tail.get_or_insert_default().push(entry);
    }

    /// Gives the run list room for one more run, in the group's own steps: its first room
    /// (`first_room`, drawn from the group id), doubled as often as needed
    /// ([`crate::log_room`]). Groups fed in turn fill their logs together, and lists that
    /// grow alike double together: at 1,000 groups and 20,000–40,000 proposals/s, a thousand
    /// logs (on each node, and as many stored) copying themselves into fresh pages in the
    /// same milliseconds stalled every loop for 10–160 ms at 64, 128, 256 and 512 entries
    /// (BENCHMARKS.md, when the log was one vector of entries). Setting only an empty
    /// list's first room was not enough: a group that quiesces gives its spare room back
    /// ([`Log::shrink`]), and from there the list's own doubling put it back in step with
    /// every other group.
    fn make_room(&mut self, first_room: usize) {
        let needed = self.runs.len() + 1;
        if needed > self.runs.capacity() {
            let room = crate::storage::room_in_steps(first_room, needed);
            self.runs.reserve_exact(room - self.runs.len());
        }
    }

    /// Appends entries received from the leader after `prev_index` matched, skipping those
    /// already present and truncating at the first conflict (Raft §5.3, receiver step 3-4).
    /// The new ones are kept as the message's run, shared. `first_room` as for
    /// [`Log::make_room`].
    pub(crate) fn append_from_leader(
        &mut self,
        prev_index: u64,
        entries: Entries,
        first_room: usize,
    ) -> Appended {
        let last_new = prev_index + entries.len() as u64;
        let first_new = entries
            .iter()
            .position(|e| !self.matches(e.index, e.term))
            .unwrap_or(entries.len());
        let mut truncated_at = None;
        if let Some(first) = entries.get(first_new) {
            let at = first.index;
            if at <= self.last_index() {
                truncated_at = Some(at);
                self.truncate_from(at);
                self.persisted = self.persisted.min(at - 1);
            }
            self.unstable = self.unstable.min(at);
            self.freeze(first_room);
            self.push_run(entries.slice(first_new..entries.len()), first_room);
        }
        Appended {
            last_new,
            truncated_at,
        }
    }

    /// The entries with index in `[low, high)` that the log holds (none below its first
    /// index), as copies: for inspection, not for the paths that hand entries on.
    pub(crate) fn copied(&self, low: u64, high: u64) -> Vec<Entry> {
        self.range(low, high).cloned().collect()
    }

    /// The entries with index in `[low, high)` that the log holds (none below its first
    /// index), in order.
    pub(crate) fn range(&self, low: u64, high: u64) -> impl Iterator<Item = &Entry> {
        let low = low.max(self.first_index());
        let count = high.min(self.last_index() + 1).saturating_sub(low) as usize;
        let (run, at) = self.locate(low).unwrap_or((self.runs.len(), 0));
        let tail_from = low.saturating_sub(self.base.0 + 1 + self.in_runs) as usize;
        self.runs[run.min(self.runs.len())..]
            .iter()
            .enumerate()
            .flat_map(move |(i, r)| r.iter().skip(if i == 0 { at } else { 0 }))
            .chain(self.tail().iter().skip(tail_from))
            .take(count)
    }

    /// The entries with index in `[low, high)`, within the log, at most `max_entries` of
    /// them and about `max_bytes` bytes (at least one entry), shared: the run they are in,
    /// or copied into one when they span runs. The tail is frozen first if they reach it.
    /// `first_room` as for [`Log::make_room`].
    pub(crate) fn shared(
        &mut self,
        low: u64,
        high: u64,
        limits: (usize, usize),
        first_room: usize,
    ) -> Entries {
        // Gathered in an `EntryRuns`, which holds one run inline: no vector per append.
        let mut runs = EntryRuns::new();
        self.shared_runs(low, high, limits, first_room, &mut runs);
        runs.joined()
    }

    /// [`Log::shared`], as the parts of each run they are in (none copied), added to `out`
    /// (a `Vec`, or an [`EntryRuns`], which holds one run without allocating).
    /// Returns how many entries that is.
    fn shared_runs(
        &mut self,
        low: u64,
        high: u64,
        (max_entries, max_bytes): (usize, usize),
        first_room: usize,
        out: &mut impl Extend<Entries>,
    ) -> u64 {
        let low = low.max(self.first_index());
        let high = high.min(self.last_index() + 1);
        if low >= high {
            return 0;
        }
        if high > self.base.0 + 1 + self.in_runs {
            self.freeze(first_room);
        }
        let Some((mut run, mut at)) = self.locate(low) else {
            return 0;
        };
        let (mut left, mut bytes, mut taken) = ((high - low).min(max_entries as u64), 0, 0);
        while let Some(r) = self.runs.get(run)
            && left > 0
        {
            let available = r.len().saturating_sub(at).min(left as usize);
            let mut n = available;
            if max_bytes != usize::MAX {
                // Sizes are summed only under a byte limit: a storage write takes every
                // unstable entry, and summing them was work for nothing on every cycle.
                n = 0;
                for e in r.iter().skip(at).take(available) {
                    bytes += e.size_bytes();
                    if bytes > max_bytes && (n > 0 || taken > 0) {
                        left = 0;
                        break;
                    }
                    n += 1;
                }
            }
            if n > 0 {
                out.extend([r.slice(at..at + n)]);
            }
            taken += n as u64;
            left = left.saturating_sub(n as u64);
            (run, at) = (run + 1, 0);
        }
        taken
    }

    /// Entries not yet handed to storage; from now on they count as handed.
    /// `first_room` as for [`Log::make_room`].
    /// They come as the runs they are in, none copied ([`EntryRuns`]).
    pub(crate) fn take_unstable(&mut self, first_room: usize) -> EntryRuns {
        let all = (usize::MAX, usize::MAX);
        let mut runs = EntryRuns::new();
        self.shared_runs(self.unstable, u64::MAX, all, first_room, &mut runs);
        self.unstable = self.last_index() + 1;
        runs
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable <= self.last_index()
    }

    /// Storage confirmed entries up to `index` (whose term was `term`) durable. Ignored when
    /// those entries were replaced meanwhile: then a later write carries the replacement.
    pub(crate) fn on_persisted(&mut self, index: u64, term: u64) -> bool {
        if index < self.unstable && self.matches(index, term) && index > self.persisted {
            self.persisted = index;
            return true;
        }
        false
    }

    /// The last index that may be applied: committed and durable here (IO-ordering rule 3).
    pub(crate) fn applicable(&self) -> u64 {
        self.committed.min(self.persisted)
    }

    pub(crate) fn has_applicable(&self) -> bool {
        self.applicable() > self.applied
    }

    /// Up to `max_entries` entries and about `max_bytes` bytes (at least one entry) ready to
    /// apply, added to `out` as the runs they are in; `applied` moves past them.
    /// `first_room` as for [`Log::make_room`].
    pub(crate) fn take_applicable(
        &mut self,
        (max_entries, max_bytes): (usize, usize),
        first_room: usize,
        out: &mut Vec<Entries>,
    ) {
        let (low, high) = (self.applied + 1, self.applicable() + 1);
        let limits = (max_entries, max_bytes);
        self.applied += self.shared_runs(low, high, limits, first_room, out);
    }

    /// The largest index at or below `index` whose term is at most `term`, with that term:
    /// the conflict hint of a rejected append (etcd's `findConflictByTerm`).
    pub(crate) fn conflict_hint(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index.min(self.last_index());
        loop {
            // Below the compacted prefix nothing is known: answered as term 0, so that the
            // leader goes back that far — and so sends its snapshot. (Stopping at the
            // prefix's own entry instead made a leader whose follower held another term
            // there retry the same append forever: simulator, seed 74.)
            let t = self.term(i).unwrap_or(0);
            if t <= term || i == 0 {
                return (i, t);
            }
            i -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Payload;

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            payload: Payload::Noop,
        }
    }

    /// An empty log starts with the room it is given (`make_room`), whether a leader
    /// appends to it or a follower, not with a list's own first size.
    #[test]
    fn an_empty_log_starts_with_the_room_it_is_given() {
        let mut led = Log::default();
        led.push(entry(1));
        let _ = led.take_unstable(23);
        let mut followed = Log::default();
        followed.append_from_leader(0, vec![entry(1), entry(2)].into(), 23);
        for log in [led, followed] {
            assert!(
                (23..46).contains(&log.runs.capacity()),
                "{}",
                log.runs.capacity()
            );
        }
    }

    /// A log that gave its room back (a quiesced group's, `shrink`) grows again in its own
    /// steps, 23 · 2^k, not from its length by the list's doubling, which put every
    /// group of a benchmark back at 64, 128, 256 entries together. Regression: 10–160 ms
    /// stalls at 1,000 groups and 40,000 proposals/s (BENCHMARKS.md).
    #[test]
    fn a_log_that_gave_its_room_back_grows_in_its_own_steps() {
        let mut led = Log::default();
        led.push(entry(1));
        let _ = led.take_unstable(23);
        led.shrink();
        assert_eq!(led.runs.capacity(), 1);
        let mut followed = Log::default();
        followed.append_from_leader(0, vec![entry(1)].into(), 23);
        followed.shrink();
        for i in 2..=100 {
            led.push(entry(i));
            let _ = led.take_unstable(23);
            followed.append_from_leader(i - 1, vec![entry(i)].into(), 23);
            for log in [&led, &followed] {
                let room = log.runs.capacity();
                assert!(
                    [23, 46, 92, 184].contains(&room),
                    "capacity {room} at {i} entries"
                );
            }
        }
    }

    /// The runs are what the log's positions say: none empty, each starting where its
    /// `start` says, consecutive from the first index, `in_runs` entries in all.
    fn check_runs(log: &Log) {
        let mut next = log.first_index();
        for r in &log.runs {
            assert!(!r.is_empty());
            assert_eq!(r.start, next);
            assert_eq!(
                indexes(r),
                (next..next + r.len() as u64).collect::<Vec<_>>()
            );
            next += r.len() as u64;
        }
        assert_eq!(next - log.first_index(), log.in_runs);
    }

    fn indexes(e: &[Entry]) -> Vec<u64> {
        e.iter().map(|e| e.index).collect()
    }

    /// A log of runs 1–3, 4–5, 6 and a tail 7–8.
    fn log_in_runs() -> Log {
        let mut log = Log::default();
        let run = |low: u64, high: u64| -> Entries { (low..high).map(entry).collect() };
        log.append_from_leader(0, run(1, 4), 1);
        log.append_from_leader(3, run(4, 6), 1);
        log.append_from_leader(5, run(6, 7), 1);
        log.push(entry(7));
        log.push(entry(8));
        log
    }

    /// Lookups, shared ranges and limits across runs and the tail.
    #[test]
    fn ranges_across_runs_and_the_tail() {
        let mut log = log_in_runs();
        assert_eq!(log.last_index(), 8);
        assert_eq!(
            (1..=8).map(|i| log.term(i)).collect::<Vec<_>>(),
            [Some(1); 8]
        );
        assert_eq!(log.term(9), None);
        let all = (usize::MAX, usize::MAX);
        // Within one run: shared, not copied.
        let in_one = log.shared(4, 6, all, 1);
        assert_eq!(indexes(&in_one), [4, 5]);
        assert!(std::ptr::eq(&in_one[0], &log.runs[1][0]));
        // Across runs and into the tail, which is frozen.
        assert_eq!(indexes(&log.shared(2, 100, all, 1)), [2, 3, 4, 5, 6, 7, 8]);
        assert!(log.tail().is_empty());
        assert_eq!(log.runs.len(), 4);
        check_runs(&log);
        // The limits: entries, then bytes (at least one entry).
        assert_eq!(
            indexes(&log.shared(2, 100, (4, usize::MAX), 1)),
            [2, 3, 4, 5]
        );
        let two = 2 * entry(1).size_bytes();
        assert_eq!(indexes(&log.shared(3, 100, (usize::MAX, two), 1)), [3, 4]);
        assert_eq!(indexes(&log.shared(3, 100, (usize::MAX, 1), 1)), [3]);
        assert_eq!(indexes(&log.copied(0, 4)), [1, 2, 3]);
    }

    /// Every entry is found in its run at every distance from the newest run: among the
    /// newest four, in each span of doubling length further back, and in the oldest run;
    /// and nothing below the first run.
    #[test]
    fn every_entry_is_found_at_every_distance_from_the_newest_run() {
        let mut log = Log::default();
        let mut last = 0;
        // 150 runs of one, two and three entries in turn.
        for n in 0..150 {
            let len = n % 3 + 1;
            let run: Entries = (last + 1..=last + len).map(entry).collect();
            log.append_from_leader(last, run, 1);
            last += len;
        }
        assert_eq!(log.runs.len(), 150);
        check_runs(&log);
        for index in 1..=last {
            let expected = log
                .runs
                .iter()
                .position(|r| r.start <= index && index < r.start + r.len() as u64);
            let found = log.locate(index);
            assert_eq!(found.map(|(run, _)| run), expected, "index {index}");
            let (run, at) = found.unwrap_or_default();
            assert_eq!(log.runs[run].start + at as u64, index);
            assert_eq!(log.get(index).map(|e| e.index), Some(index));
        }
        assert_eq!(log.locate(0), None);
    }

    /// Truncation and compaction inside a run keep the right part of it, at a run's first
    /// entry drop the whole run, and in the tail cut only the tail.
    #[test]
    fn truncation_and_compaction_inside_and_at_the_edges_of_runs() {
        for (at, kept) in [(8, 7), (7, 6), (6, 5), (5, 4), (4, 3), (2, 1), (1, 0)] {
            let mut log = log_in_runs();
            log.truncate_from(at);
            assert_eq!(log.last_index(), kept, "truncated at {at}");
            assert_eq!(indexes(&log.copied(1, 100)), (1..=kept).collect::<Vec<_>>());
            check_runs(&log);
        }
        for (to, first) in [(2, 3), (3, 4), (5, 6), (6, 7)] {
            let mut log = log_in_runs();
            let _ = log.take_unstable(1);
            (log.persisted, log.committed, log.applied) = (8, 8, 8);
            assert!(log.compact(to));
            assert_eq!(log.first_index(), first, "compacted to {to}");
            assert_eq!(log.term(to), Some(1));
            assert_eq!(log.term(to - 1), None);
            assert_eq!(
                indexes(&log.copied(0, 100)),
                (first..=8).collect::<Vec<_>>()
            );
            check_runs(&log);
            assert_eq!(log.last_index(), 8);
        }
    }
}
