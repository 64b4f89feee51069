//! [`TailGroup`]: one group as its write-ahead records not yet checkpointed leave it, on top
//! of its rows in the tables.
//!
//! The writer thread keeps one per group written since its last checkpoint (to validate the
//! next batch and to write the group's next checkpoint); reads and `load` rebuild them from the
//! write-ahead table of their read transaction. Both apply the same records in the same
//! order through [`TailGroup::apply`], so they agree.
//!
//! [`Tail`] holds every such group together with the write-ahead records not yet checkpointed.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use multiraft_core::{Entries, Entry, GroupWrite, StorageError};

use crate::codec::{GroupMeta, Reset, corrupt};

/// The write-ahead records not yet checkpointed, applied per group.
#[derive(Default)]
pub(crate) struct Tail {
    /// Every group with records not yet checkpointed. Every write looks up each of its
    /// groups here, so the hash is `FxHash`, not SipHash: the keys are the ids of the
    /// node's own groups, which the application assigns.
    pub(crate) groups: FxHashMap<u64, TailGroup>,
    /// The records in the write-ahead table: sequence number and encoded size.
    pub(crate) records: VecDeque<(u64, usize)>,
    /// The sequence number of the next write-ahead record.
    pub(crate) next_seq: u64,
    /// Encoded size of the records plus [`TAIL_GROUP_BYTES`] per group: what checkpoints
    /// have to move, and roughly what the writer holds in memory for them.
    pub(crate) bytes: usize,
}

impl Tail {
    /// Forgets the records below `seq` (deleted from the table).
    pub(crate) fn drop_records_below(&mut self, seq: u64) {
        while let Some(&(s, len)) = self.records.front()
            && s < seq
        {
            self.bytes -= len;
            self.records.pop_front();
        }
    }
}

/// What one group in the tail counts for besides its records' bytes (its metadata, its map
/// slot): so that a tail of many groups with tiny writes is checkpointed too.
pub(crate) const TAIL_GROUP_BYTES: usize = 256;

/// Reads the term of a live table row of the group (see [`TailGroup::apply`]).
pub(crate) type TableTerm<'a> = dyn FnMut(u64) -> Result<Option<u64>, StorageError> + 'a;

/// One group's state after the write-ahead records, over its checkpointed rows.
///
/// The group's log is: its table rows with index in `(meta.compacted_index, table_live_to]`
/// (none when `cleared`), then `run`.
#[derive(Clone, Debug)]
pub(crate) struct TailGroup {
    /// The group's metadata now; `None` while it does not exist (never written, or removed
    /// and not written since).
    pub(crate) meta: Option<GroupMeta>,
    /// The group was removed, or its log reset by a snapshot, since its last checkpoint:
    /// none of its table rows is live.
    pub(crate) cleared: bool,
    /// Table log rows above this index are dead: replaced by `run` or truncated.
    pub(crate) table_live_to: u64,
    /// The last index and the compacted index of the table rows (the checkpointed metadata),
    /// so that a checkpoint deletes only rows that exist.
    pub(crate) table_last: u64,
    pub(crate) table_compacted: u64,
    /// Entries appended since its last checkpoint and still in the log, consecutive.
    pub(crate) run: Run,
    /// The sequence number of the first write-ahead record applied: the records from it on
    /// must stay until this group is checkpointed.
    pub(crate) first_seq: u64,
}

impl TailGroup {
    /// The group as the tables hold it (`table` is its metadata row, if any), before any
    /// record is applied.
    pub(crate) fn over(table: Option<GroupMeta>, first_seq: u64) -> TailGroup {
        let (last, compacted) = table
            .as_ref()
            .map_or((0, 0), |m| (m.last_index, m.compacted_index));
        TailGroup {
            meta: table,
            cleared: false,
            table_live_to: last,
            table_last: last,
            table_compacted: compacted,
            run: Run::default(),
            first_seq,
        }
    }

    /// The index of the last entry and the compacted index now (0, 0 for a group that does
    /// not exist): what [`GroupWrite::validate`] checks a new record against.
    pub(crate) fn bounds(&self) -> (u64, u64) {
        self.meta
            .as_ref()
            .map_or((0, 0), |m| (m.last_index, m.compacted_index))
    }

    /// The term of entry `index` of the log now, the compaction mark's included (what
    /// `Storage::term` reports). `table_term` reads the term of a live table row.
    pub(crate) fn term_of(
        &self,
        index: u64,
        table_term: &mut TableTerm<'_>,
    ) -> Result<Option<u64>, StorageError> {
        let Some(meta) = &self.meta else {
            return Ok(None);
        };
        if index == 0 || index > meta.last_index {
            return Ok(None);
        }
        if index <= meta.compacted_index {
            return Ok((index == meta.compacted_index).then_some(meta.compacted_term));
        }
        if index == meta.last_index {
            return Ok(Some(meta.last_term));
        }
        if let Some(start) = self.run.first_index()
            && index >= start
        {
            return Ok(self.run.get(index).map(|e| e.term));
        }
        if self.table_row_live(index) {
            return table_term(index);
        }
        Ok(None)
    }

    /// [`bounds`](TailGroup::bounds) after a record's log reset, if it has one: what
    /// [`GroupWrite::validate`] checks the record against.
    pub(crate) fn bounds_after(&self, reset: Reset) -> (u64, u64) {
        match reset {
            Some((index, _)) => (index, index),
            None => self.bounds(),
        }
    }

    /// Applies one validated record, taking its entries (no copy). `reset` is its log
    /// reset, if any: every entry is dropped and the log compacted to it, before the
    /// record's entries. `table_term` reads the term of a live table row; it is called only
    /// for a compaction to an index below `run`.
    pub(crate) fn apply(
        &mut self,
        write: GroupWrite,
        reset: Reset,
        table_term: &mut TableTerm<'_>,
    ) -> Result<(), StorageError> {
        if write.remove {
            self.meta = None;
            self.cleared = true;
            self.table_live_to = 0;
            self.run.clear();
            return Ok(());
        }
        let meta = self.meta.get_or_insert_with(GroupMeta::default);
        if let Some(membership) = write.membership {
            meta.membership = membership;
        }
        if let Some(hard_state) = write.hard_state {
            meta.hard_state = hard_state;
        }
        if let Some(mark) = reset {
            (meta.last_index, meta.last_term) = mark;
            (meta.compacted_index, meta.compacted_term) = mark;
            self.cleared = true;
            self.table_live_to = 0;
            self.run.clear();
        }
        if let (Some(first), Some(last)) = (write.entries.first(), write.entries.last()) {
            let (first, last) = (first.index, (last.index, last.term));
            // Conflict truncation: every entry from the first new index on is replaced.
            self.table_live_to = self.table_live_to.min(first - 1);
            self.run.truncate_from(first);
            for run in write.entries.into_runs() {
                self.run.push(run);
            }
            (meta.last_index, meta.last_term) = last;
        }
        if let Some(to) = write.compact_to
            && to > meta.compacted_index
        {
            let missing = || {
                corrupt(
                    write.group,
                    &format!("entry {to} is missing below the last index"),
                )
            };
            let term = match self.run.first_index() {
                _ if to == meta.last_index => meta.last_term,
                Some(start) if to >= start => self.run.get(to).ok_or_else(missing)?.term,
                _ => table_term(to)?.ok_or_else(missing)?,
            };
            self.run.drop_through(to);
            meta.compacted_index = to;
            meta.compacted_term = term;
        }
        Ok(())
    }

    /// Whether table row `index` is part of the log now.
    pub(crate) fn table_row_live(&self, index: u64) -> bool {
        let compacted = self.meta.as_ref().map_or(0, |m| m.compacted_index);
        !self.cleared && index > compacted && index <= self.table_live_to
    }
}

/// A group's entries appended since its last checkpoint, consecutive, kept as the pieces the
/// writes brought, shared with the node's log ([`Entries`]). Moving them into one vector
/// cost the writer thread a copy of every entry and a free of an allocation another thread
/// made, per write (3.7 % of the whole durable benchmark's CPU, BENCHMARKS.md).
///
/// Each piece's first index is kept beside it: finding, truncating and trimming then read
/// no piece's entries, which another thread wrote (reading a piece's first entry was a
/// cache miss per probe, a third of the writer's time applying records to the tail).
#[derive(Clone, Debug, Default)]
pub(crate) struct Run {
    /// Non-empty pieces, each consecutive, each following the one before, with the index
    /// of its first entry.
    pieces: VecDeque<(u64, Entries)>,
    /// No entry is at or above this index. Nearly every write appends right after the last
    /// entry, and this tells so without reading `pieces` (a cache miss per group and
    /// write: the groups' tails are many, and cold between their writes).
    end: u64,
}

impl Run {
    /// The index of the first entry, if any.
    pub(crate) fn first_index(&self) -> Option<u64> {
        self.pieces.front().map(|&(start, _)| start)
    }

    /// Entry `index`, if the run holds it.
    pub(crate) fn get(&self, index: u64) -> Option<&Entry> {
        // The last piece starting at or below `index`.
        let after = self.pieces.partition_point(|&(start, _)| start <= index);
        let (start, piece) = self.pieces.get(after.checked_sub(1)?)?;
        piece.get(usize::try_from(index - start).ok()?)
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.pieces.clear();
        self.end = 0;
    }

    /// Appends `entries`, which follow the run's last entry.
    pub(crate) fn push(&mut self, entries: Entries) {
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            self.end = last.index + 1;
            self.pieces.push_back((first.index, entries));
        }
    }

    /// Drops every entry from `index` on.
    pub(crate) fn truncate_from(&mut self, index: u64) {
        if index >= self.end {
            return;
        }
        self.end = index;
        while let Some((start, piece)) = self.pieces.back_mut() {
            if *start >= index {
                self.pieces.pop_back();
            } else {
                let keep = usize::try_from(index - *start).unwrap_or(usize::MAX);
                if keep < piece.len() {
                    *piece = piece.slice(0..keep);
                }
                return;
            }
        }
    }

    /// Drops every entry up to and including `index`.
    pub(crate) fn drop_through(&mut self, index: u64) {
        while let Some((start, piece)) = self.pieces.front_mut() {
            if *start > index {
                return;
            }
            let drop = usize::try_from(index - *start + 1).unwrap_or(usize::MAX);
            if drop >= piece.len() {
                self.pieces.pop_front();
            } else {
                *piece = piece.slice(drop..piece.len());
                *start = index + 1;
                return;
            }
        }
    }

    /// The entries in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.pieces.iter().flat_map(|(_, p)| p.iter())
    }
}

#[cfg(test)]
mod tests {
    use multiraft_core::Payload;

    use super::*;

    fn entries(from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term: index / 4 + 1,
                payload: Payload::Noop,
            })
            .collect()
    }

    fn indexes(run: &Run) -> Vec<u64> {
        run.iter().map(|e| e.index).collect()
    }

    /// A run of three pieces: 1..=3, 4..=4, 5..=9.
    fn three_pieces() -> Run {
        let mut run = Run::default();
        run.push(entries(1, 3).into());
        run.push(Vec::new().into()); // an empty write adds no piece
        run.push(entries(4, 4).into());
        run.push(entries(5, 9).into());
        run
    }

    #[test]
    fn a_run_finds_every_entry_across_its_pieces_and_nothing_else() {
        let run = three_pieces();
        assert_eq!(run.first_index(), Some(1));
        for index in 1..=9 {
            let e = run.get(index).expect("held");
            assert_eq!((e.index, e.term), (index, index / 4 + 1));
        }
        assert!(run.get(0).is_none());
        assert!(run.get(10).is_none());
        assert_eq!(indexes(&run), (1..=9).collect::<Vec<_>>());
        assert_eq!(Run::default().first_index(), None);
        assert!(Run::default().get(1).is_none());
    }

    #[test]
    fn truncating_a_run_keeps_exactly_the_entries_below_the_index() {
        for from in 0..=10 {
            let mut run = three_pieces();
            run.truncate_from(from);
            assert_eq!(
                indexes(&run),
                (1..from.clamp(1, 10)).collect::<Vec<_>>(),
                "from {from}"
            );
            // What follows the cut can be appended again and found.
            run.push(entries(from.clamp(1, 10), 12).into());
            assert_eq!(indexes(&run), (1..=12).collect::<Vec<_>>(), "from {from}");
            assert_eq!(run.get(12).map(|e| e.index), Some(12));
        }
    }

    /// Cuts, trims and appends in turn, each checked against a plain vector of the indexes
    /// the run must hold: the run's bound on its last entry must never let a cut pass
    /// unseen.
    #[test]
    fn a_run_agrees_with_a_vector_through_cuts_trims_and_appends() {
        let mut run = Run::default();
        let mut model: Vec<u64> = Vec::new();
        let mut next = 1;
        // (operation, argument): 0 push `arg` entries, 1 truncate from `arg` below the
        // next index, 2 drop through `arg` above the first.
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
        ];
        for (op, arg) in steps {
            match op {
                0 => {
                    run.push(entries(next, next + arg - 1).into());
                    model.extend(next..next + arg);
                    next += arg;
                }
                1 => {
                    let from = next.saturating_sub(arg).max(1);
                    run.truncate_from(from);
                    model.retain(|&i| i < from);
                    next = from;
                }
                _ => {
                    let through = model.first().map_or(0, |&f| f + arg - 1);
                    run.drop_through(through);
                    model.retain(|&i| i > through);
                }
            }
            assert_eq!(indexes(&run), model, "after ({op}, {arg})");
            assert_eq!(run.first_index(), model.first().copied());
            for &index in &model {
                assert_eq!(run.get(index).map(|e| e.index), Some(index));
            }
        }
    }

    #[test]
    fn compacting_a_run_drops_exactly_the_entries_through_the_index() {
        for through in 0..=10 {
            let mut run = three_pieces();
            run.drop_through(through);
            let left: Vec<u64> = (through + 1..=9).collect();
            assert_eq!(indexes(&run), left, "through {through}");
            assert_eq!(run.first_index(), left.first().copied());
            for &index in &left {
                assert_eq!(run.get(index).map(|e| e.index), Some(index));
            }
            assert!(run.get(through).is_none());
        }
    }
}
