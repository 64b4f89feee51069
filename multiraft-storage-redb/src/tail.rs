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

use multiraft_core::{GroupId, GroupWrite, LogRuns, StorageError};

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
    /// Entries appended since its last checkpoint and still in the log, consecutive, as
    /// the runs the writes brought (shared with the node's log).
    pub(crate) appended: LogRuns,
    /// The sequence number of the first write-ahead record applied: the records from it on
    /// must stay until this group is checkpointed.
    pub(crate) first_seq: u64,
}

impl TailGroup {
    /// `group` as the tables hold it (`table` is its metadata row, if any), before any
    /// record is applied.
    pub(crate) fn over(group: GroupId, table: Option<GroupMeta>, first_seq: u64) -> TailGroup {
        let (last, compacted) = table
            .as_ref()
            .map_or((0, 0), |m| (m.last_index, m.compacted_index));
        TailGroup {
            meta: table,
            cleared: false,
            table_live_to: last,
            table_last: last,
            table_compacted: compacted,
            appended: LogRuns::for_group(group),
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
        if let Some(start) = self.appended.first_index()
            && index >= start
        {
            return Ok(self.appended.get(index).map(|e| e.term));
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
            self.appended.clear();
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
            self.appended.clear();
        }
        if let (Some(first), Some(last)) = (write.entries.first(), write.entries.last()) {
            let (first, last) = (first.index, (last.index, last.term));
            // Conflict truncation: every entry from the first new index on is replaced.
            self.table_live_to = self.table_live_to.min(first - 1);
            self.appended.append(write.entries);
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
            let term = match self.appended.first_index() {
                _ if to == meta.last_index => meta.last_term,
                Some(start) if to >= start => self.appended.get(to).ok_or_else(missing)?.term,
                _ => table_term(to)?.ok_or_else(missing)?,
            };
            self.appended.drop_through(to);
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
