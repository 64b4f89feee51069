//! One group's log in memory, with the positions that matter: committed, persisted
//! (durable on this node), handed to storage, applied.

use crate::entry::Entry;

/// The log of one group. Entries are kept from `base.0 + 1`: everything up to `base` is
/// covered by a snapshot (docs/design.md §4.6) and compacted away, and `base.1` is the term
/// of the entry at `base.0`, which the log-matching check of the next entry needs.
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
    entries: Vec<Entry>,
    /// (index, term) of the last compacted entry; (0, 0) for a log never compacted.
    base: (u64, u64),
    pub(crate) committed: u64,
    pub(crate) persisted: u64,
    unstable: u64,
    pub(crate) applied: u64,
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
        Log {
            entries,
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
        self.entries.drain(..(index - self.base.0) as usize);
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
            self.entries.clear();
            self.base = (index, term);
            self.persisted = index;
            self.unstable = index + 1;
        }
        self.committed = self.committed.max(index);
        replace
    }

    /// Returns the spare capacity of the entry vector when it is more than the entries
    /// themselves: it matters for the many short logs of idle groups, and copying a long log
    /// each time a busy group pauses would cost far more than its spare capacity.
    pub(crate) fn shrink(&mut self) {
        if self.entries.capacity() > 2 * self.entries.len() {
            self.entries.shrink_to_fit();
        }
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.base.0 + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.base.1, |e| e.term)
    }

    /// The term at `index`: known for the entries held and for the last compacted one
    /// (index 0 is the empty prefix, of term 0); `None` below it or past the end.
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.base.0 {
            return Some(self.base.1);
        }
        if index < self.base.0 {
            return None;
        }
        self.entries
            .get((index - self.base.0) as usize - 1)
            .map(|e| e.term)
    }

    pub(crate) fn matches(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a candidate whose log ends at (`last_term`, `last_index`) is at least as
    /// up to date as this log (Raft §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends a leader's own new entry; `first_room` as for [`Log::make_room`].
    pub(crate) fn push(&mut self, entry: Entry, first_room: usize) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.make_room(first_room, 1);
        self.entries.push(entry);
    }

    /// Gives the vector room for `adding` more entries, in the group's own steps: its first
    /// room (`first_room`, drawn from the group id), doubled as often as needed
    /// ([`crate::log_room`]). Groups fed in turn fill their logs together, and vectors that
    /// grow alike double together: at 1,000 groups and 20,000–40,000 proposals/s, a thousand
    /// logs (on each node, and as many stored) copying themselves into fresh pages in the
    /// same milliseconds stalled every loop for 10–160 ms at 64, 128, 256 and 512 entries
    /// (BENCHMARKS.md). Setting only an empty vector's first room was not enough: a group
    /// that quiesces gives its spare room back ([`Log::shrink`]), and from there the
    /// vector's own doubling put it back in step with every other group.
    fn make_room(&mut self, first_room: usize, adding: usize) {
        crate::storage::reserve_in_steps(&mut self.entries, first_room, adding);
    }

    /// Appends entries received from the leader after `prev_index` matched, skipping those
    /// already present and truncating at the first conflict (Raft §5.3, receiver step 3-4).
    /// `first_room` as for [`Log::make_room`].
    pub(crate) fn append_from_leader(
        &mut self,
        prev_index: u64,
        entries: Vec<Entry>,
        first_room: usize,
    ) -> Appended {
        let last_new = prev_index + entries.len() as u64;
        let first_new = entries
            .iter()
            .position(|e| !self.matches(e.index, e.term))
            .unwrap_or(entries.len());
        let mut truncated_at = None;
        let adding = entries.len() - first_new;
        let mut rest = entries.into_iter().skip(first_new).peekable();
        if let Some(first) = rest.peek() {
            let at = first.index;
            if at <= self.last_index() {
                truncated_at = Some(at);
                self.entries.truncate((at - self.base.0) as usize - 1);
                self.persisted = self.persisted.min(at - 1);
            }
            self.unstable = self.unstable.min(at);
            self.make_room(first_room, adding);
            self.entries.extend(rest);
        }
        Appended {
            last_new,
            truncated_at,
        }
    }

    /// Entries with index in `[low, high)` that the log holds (none below its first index).
    pub(crate) fn slice(&self, low: u64, high: u64) -> &[Entry] {
        let low = low.max(self.first_index());
        let high = high.min(self.last_index() + 1);
        if low >= high {
            return &[];
        }
        let b = self.base.0;
        &self.entries[(low - b) as usize - 1..(high - b) as usize - 1]
    }

    /// Entries not yet handed to storage; from now on they count as handed.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        let out = self.slice(self.unstable, u64::MAX).to_vec();
        self.unstable = self.last_index() + 1;
        out
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
    /// apply; `applied` moves past them.
    pub(crate) fn take_applicable(&mut self, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        let (low, high) = (self.applied + 1, self.applicable() + 1);
        let out = limit(self.slice(low, high), max_entries, max_bytes).to_vec();
        self.applied += out.len() as u64;
        out
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

/// The longest prefix of `entries` within `max_entries` and `max_bytes`, but at least one
/// entry so that an entry larger than `max_bytes` still moves.
pub(crate) fn limit(entries: &[Entry], max_entries: usize, max_bytes: usize) -> &[Entry] {
    let mut bytes = 0;
    let mut n = 0;
    for e in entries.iter().take(max_entries) {
        bytes += e.size_bytes();
        if n > 0 && bytes > max_bytes {
            break;
        }
        n += 1;
    }
    &entries[..n]
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
    /// appends to it or a follower, not with a vector's own first size.
    #[test]
    fn an_empty_log_starts_with_the_room_it_is_given() {
        let mut led = Log::default();
        led.push(entry(1), 23);
        let mut followed = Log::default();
        followed.append_from_leader(0, vec![entry(1), entry(2)], 23);
        for log in [led, followed] {
            assert!(
                (23..46).contains(&log.entries.capacity()),
                "{}",
                log.entries.capacity()
            );
        }
    }

    /// A log that gave its room back (a quiesced group's, `shrink`) grows again in its own
    /// steps, 23 · 2^k, not from its length by the vector's doubling, which put every
    /// group of a benchmark back at 64, 128, 256 entries together. Regression: 10–160 ms
    /// stalls at 1,000 groups and 40,000 proposals/s (BENCHMARKS.md).
    #[test]
    fn a_log_that_gave_its_room_back_grows_in_its_own_steps() {
        let mut led = Log::default();
        led.push(entry(1), 23);
        led.shrink();
        assert_eq!(led.entries.capacity(), 1);
        let mut followed = Log::default();
        followed.append_from_leader(0, vec![entry(1)], 23);
        followed.shrink();
        for i in 2..=100 {
            led.push(entry(i), 23);
            followed.append_from_leader(i - 1, vec![entry(i)], 23);
            for log in [&led, &followed] {
                let room = log.entries.capacity();
                assert!(
                    [23, 46, 92, 184].contains(&room),
                    "capacity {room} at {i} entries"
                );
            }
        }
    }
}
