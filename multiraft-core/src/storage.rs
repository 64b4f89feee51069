//! The shared log: one durable write covers every group with something to persist.

use async_trait::async_trait;

use crate::entry::{Entry, HardState};
use crate::entry_runs::EntryRuns;
use crate::error::StorageError;
use crate::ids::GroupId;
use crate::membership::Membership;
use crate::message::MAX_TERM_OR_INDEX;
use crate::snapshot::{SnapshotChunk, SnapshotMeta};

/// The least room a group's log starts with, in entries ([`first_log_room`]): small, since a
/// million idle groups each hold a short log.
pub const FIRST_LOG_ROOM: usize = 16;

/// The room, in entries, a group's log vector starts with: a size in
/// `[FIRST_LOG_ROOM, 2 * FIRST_LOG_ROOM)` drawn from a hash of the group id. It then grows
/// by doubling from there ([`log_room`]).
pub fn first_log_room(group: GroupId) -> usize {
    FIRST_LOG_ROOM + (group.spread() as usize) % FIRST_LOG_ROOM
}

/// The capacity to give a group's log vector that must grow to hold `needed` entries: the
/// least `first_log_room(group) * 2^k` that holds them. The core's own logs grow this way,
/// and so can a [`Storage`] that keeps logs in vectors. Groups fed alike then copy their
/// logs into fresh pages at lengths of their own, rather than a thousand of them in the same
/// milliseconds at every power of two; and a log that gave its room back (a quiesced
/// group's) returns to the same steps (docs/design.md §4.4).
pub fn log_room(group: GroupId, needed: usize) -> usize {
    room_in_steps(first_log_room(group), needed)
}

/// Gives a group's log vector room for `adding` more entries, growing it only to
/// [`log_room`]: what the core's own logs do, for a [`Storage`] that keeps logs in vectors.
pub fn reserve_log_room<T>(entries: &mut Vec<T>, group: GroupId, adding: usize) {
    reserve_in_steps(entries, first_log_room(group), adding);
}

/// [`reserve_log_room`] for a log that knows only its first room.
pub(crate) fn reserve_in_steps<T>(entries: &mut Vec<T>, first: usize, adding: usize) {
    let needed = entries.len() + adding;
    if needed > entries.capacity() {
        let room = room_in_steps(first, needed);
        entries.reserve_exact(room - entries.len());
    }
}

/// The least `first * 2^k` at or above `needed` ([`log_room`] for a log that knows only its
/// first room).
pub(crate) fn room_in_steps(first: usize, needed: usize) -> usize {
    let mut room = first.max(1);
    while room < needed {
        room = room.saturating_mul(2);
    }
    room
}

/// [`room_in_steps`] for a list that may stay very short: plain doubling below `first`
/// (copying a few items in step with other groups costs little, and an idle group's list of
/// one or two items keeps that little room, as a million idle groups need), then
/// `first * 2^k`. For the run lists of [`LogRuns`](crate::LogRuns).
pub(crate) fn room_from_small(first: usize, needed: usize) -> usize {
    if needed < first {
        needed.next_power_of_two().min(first)
    } else {
        room_in_steps(first, needed)
    }
}

/// Everything one ready asks storage to persist, for any number of groups.
///
/// The node layer builds exactly one `WriteBatch` per ready, so one fsync covers every
/// group that had something to persist in that cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBatch {
    /// One record per group, each group at most once, in no particular order.
    pub groups: Vec<GroupWrite>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Number of entries across all groups.
    pub fn entry_count(&self) -> usize {
        self.groups.iter().map(|g| g.entries.len()).sum()
    }

    /// Approximate bytes of entries and snapshot chunk data across all groups.
    pub fn size_bytes(&self) -> usize {
        let group = |g: &GroupWrite| {
            let entries: usize = g.entries.iter().map(Entry::size_bytes).sum();
            entries + g.snapshot.iter().map(|c| c.data.len()).sum::<usize>()
        };
        self.groups.iter().map(group).sum()
    }

    /// Checks that no group appears twice, as the node layer guarantees. For `Storage`
    /// implementations: run it (and [`GroupWrite::validate`] per group) before changing
    /// anything, so that a batch breaking the contract is refused whole.
    pub fn validate_groups_distinct(&self) -> Result<(), StorageError> {
        if self.groups.len() > 1 {
            let mut ids: Vec<GroupId> = self.groups.iter().map(|g| g.group).collect();
            ids.sort_unstable();
            if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                return Err(corrupt(w[0], "appears twice in one batch"));
            }
        }
        Ok(())
    }
}

impl From<Vec<GroupWrite>> for WriteBatch {
    fn from(groups: Vec<GroupWrite>) -> WriteBatch {
        WriteBatch { groups }
    }
}

/// What to persist for one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupWrite {
    /// The group.
    pub group: GroupId,
    /// Delete every record of the group. When set, the other fields are empty.
    pub remove: bool,
    /// Set the group's membership (written at creation, and on membership changes).
    pub membership: Option<Membership>,
    /// Replace the group's hard state.
    pub hard_state: Option<HardState>,
    /// Chunks of a snapshot, consecutive, all of one snapshot. Stored before `entries`.
    ///
    /// - A chunk with `seq` 0 starts a new *incoming* snapshot of the group, replacing any
    ///   incoming one (a complete snapshot is kept until another completes).
    /// - Chunk `seq` k > 0 extends the incoming snapshot of the same [`SnapshotMeta`], which
    ///   holds exactly k chunks; anything else is [`StorageError::Corrupt`].
    /// - The chunk with `last` set completes it: the incoming snapshot becomes the group's
    ///   snapshot ([`LoadedGroup::snapshot`], [`Storage::snapshot_chunk`]) and the previous
    ///   one is deleted. Completing a snapshot does not touch the log: see `log_reset`.
    ///
    /// An incoming snapshot that never completes is never loaded; storage may delete it
    /// at the next start.
    pub snapshot: Vec<SnapshotChunk>,
    /// Delete every entry of the group's log and make it start after this entry, as if
    /// compacted to it: the next entry appended is `index + 1`. Done after `snapshot` and
    /// before `entries`. The node sets it with the last chunk of a snapshot received from
    /// the leader whose last entry its log does not hold (Raft §7: the log is replaced).
    pub log_reset: Option<Compacted>,
    /// Entries to append, consecutive. If the first index is at or below the stored last
    /// index, every stored entry from that index on is deleted first (conflict truncation).
    /// They must start above the compacted prefix: compacted entries are never rewritten.
    /// Held as the runs of the node's log they are in ([`EntryRuns::runs`]), shared: a
    /// storage that keeps them may keep those runs (a clone is a reference) rather than
    /// copies.
    pub entries: EntryRuns,
    /// Log compaction: discard every entry up to and including this index, after this
    /// record's appends. The storage keeps the index and the term of that last discarded entry
    /// ([`LoadedGroup::compacted`]), which the log-matching check of the next entry needs.
    /// At or below an earlier compaction it changes nothing; past the last entry it is refused.
    ///
    /// The node compacts only below a complete snapshot of the group, so a restart loads
    /// the snapshot and the entries after it.
    pub compact_to: Option<u64>,
}

impl GroupWrite {
    /// A record for `group` that changes nothing yet: add what to write with the `with_*`
    /// methods, or set the fields.
    pub fn new(group: GroupId) -> GroupWrite {
        GroupWrite {
            group,
            ..GroupWrite::default()
        }
    }

    /// Sets the membership to write.
    pub fn with_membership(mut self, membership: Membership) -> GroupWrite {
        self.membership = Some(membership);
        self
    }

    /// Sets the hard state to write.
    pub fn with_hard_state(mut self, hard_state: HardState) -> GroupWrite {
        self.hard_state = Some(hard_state);
        self
    }

    /// Sets the entries to append.
    pub fn with_entries(mut self, entries: impl Into<EntryRuns>) -> GroupWrite {
        self.entries = entries.into();
        self
    }

    /// Makes this record a removal of the group.
    pub fn removing(mut self) -> GroupWrite {
        self.remove = true;
        self
    }

    /// Adds a snapshot chunk to write.
    pub fn with_snapshot_chunk(mut self, chunk: SnapshotChunk) -> GroupWrite {
        self.snapshot.push(chunk);
        self
    }

    /// The chunk completing a snapshot in this record, if any.
    pub fn completed_snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.last().filter(|c| c.last).map(|c| &c.meta)
    }

    /// Sets the entry the log is reset to (see [`GroupWrite::log_reset`]).
    pub fn with_log_reset(mut self, to: Compacted) -> GroupWrite {
        self.log_reset = Some(to);
        self
    }

    /// Sets the index to compact the log to.
    pub fn compacting_to(mut self, index: u64) -> GroupWrite {
        self.compact_to = Some(index);
        self
    }

    /// Checks this record against the [`Storage`] contract, given the index of the last
    /// entry the group has in storage and the index its log is compacted to (0 for none),
    /// both as they are *after this record's `log_reset`*, if it has one (then both are its
    /// index): a removal carries nothing else; snapshot chunks are consecutive and of one
    /// snapshot, with nothing after the last; the entries are consecutive and start above
    /// the compacted prefix and at or below `stored_last_index + 1` (no hole); a compaction
    /// does not go past the last entry; no index lies past [`MAX_TERM_OR_INDEX`], where no
    /// log reaches. Whether chunk numbers continue the stored incoming
    /// snapshot is for the storage to check. Errors are [`StorageError::Corrupt`]: the node
    /// layer never builds such a record.
    pub fn validate(
        &self,
        stored_last_index: u64,
        compacted_index: u64,
    ) -> Result<(), StorageError> {
        let group = self.group;
        if self.remove {
            if self.membership.is_some()
                || self.hard_state.is_some()
                || !self.entries.is_empty()
                || !self.snapshot.is_empty()
                || self.log_reset.is_some()
                || self.compact_to.is_some()
            {
                return Err(corrupt(group, "remove comes with other fields"));
            }
            return Ok(());
        }
        if let Some(first) = self.snapshot.first() {
            let broken = self.snapshot.iter().enumerate().any(|(i, c)| {
                c.meta != first.meta
                    || u64::from(c.seq) != u64::from(first.seq) + i as u64
                    || c.last && i + 1 != self.snapshot.len()
            });
            if broken {
                return Err(corrupt(
                    group,
                    "snapshot chunks are not consecutive chunks of one snapshot",
                ));
            }
        }
        let reset = self.log_reset.map(|c| c.index);
        let appended_last = self.entries.last().map(|e| e.index);
        let snapshot = self.snapshot.first().map(|c| c.meta.index);
        if let Some(index) = [reset, appended_last, snapshot]
            .into_iter()
            .flatten()
            .find(|&i| i > MAX_TERM_OR_INDEX)
        {
            return Err(corrupt(
                group,
                &format!("index {index} lies past MAX_TERM_OR_INDEX"),
            ));
        }
        let new_last = appended_last.unwrap_or(stored_last_index);
        if let Some(to) = self.compact_to
            && to > new_last
        {
            return Err(corrupt(
                group,
                &format!("compaction to {to} goes past the last entry {new_last}"),
            ));
        }
        let Some(first) = self.entries.first() else {
            return Ok(());
        };
        let last = stored_last_index;
        if first.index <= compacted_index {
            return Err(corrupt(
                group,
                &format!(
                    "append at {} rewrites the log compacted to {compacted_index}",
                    first.index
                ),
            ));
        }
        // `first.index - 1`, not `last + 1`: a damaged `last` at the end of u64 must not
        // overflow (replay validates records read back from disk).
        if first.index == 0 || first.index - 1 > last {
            return Err(corrupt(
                group,
                &format!("append at {} leaves a hole after {last}", first.index),
            ));
        }
        if let Some((i, e)) = self
            .entries
            .iter()
            .enumerate()
            .find(|(i, e)| first.index.checked_add(*i as u64) != Some(e.index))
        {
            return Err(corrupt(
                group,
                &format!(
                    "entries not consecutive: index {} at position {i} after {}",
                    e.index, first.index
                ),
            ));
        }
        Ok(())
    }
}

fn corrupt(group: GroupId, what: &str) -> StorageError {
    StorageError::Corrupt(format!("{group}: {what}"))
}

/// The largest term [`LoadedGroup::validate`] accepts. [`MAX_TERM_OR_INDEX`] bounds the
/// terms peers send, but a replica counts on from a term at that bound with each campaign,
/// so terms above it are its own; none gets within 2^32 of `u64::MAX` (four billion
/// campaigns), where the next campaigns would overflow.
pub const MAX_LOADED_TERM: u64 = u64::MAX - (1 << 32);

/// One group's persisted state, as returned by [`Storage::load`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadedGroup {
    /// The group.
    pub group: GroupId,
    /// Its last persisted membership.
    pub membership: Membership,
    /// Its last persisted hard state.
    pub hard_state: HardState,
    /// The last discarded entry, if the log was ever compacted.
    pub compacted: Option<Compacted>,
    /// The group's latest complete snapshot, if it has one. The log then holds every entry
    /// after `snapshot.index` (the compaction never passes a complete snapshot).
    pub snapshot: Option<SnapshotMeta>,
    /// Its log, consecutive from index 1 (from `compacted.index + 1` after a compaction or a
    /// log reset).
    pub entries: Vec<Entry>,
}

impl LoadedGroup {
    /// The state of `group` with nothing persisted yet: set the fields that storage holds.
    pub fn new(group: GroupId) -> LoadedGroup {
        LoadedGroup {
            group,
            ..LoadedGroup::default()
        }
    }

    /// Checks what every correct storage returns, which the node relies on when it restores
    /// the group: no compacted, snapshot or entry index past [`MAX_TERM_OR_INDEX`] (writes
    /// of such indexes are refused), no term past [`MAX_LOADED_TERM`] (a restored term of
    /// `u64::MAX` overflowed at the next election), and a log consecutive from the
    /// compacted index on, its terms never decreasing nor below the compacted entry's.
    /// [`StorageError::Corrupt`] otherwise. (The commit index is not checked: the node
    /// clamps it to the log.) `Node::restore` runs it on every group it is given, so a
    /// corrupt storage stops the node at start, not later (`Replica::restore` runs it for
    /// each).
    pub fn validate(&self) -> Result<(), StorageError> {
        let group = self.group;
        let (base_index, base_term) = self.compacted.map_or((0, 0), |c| (c.index, c.term));
        let snapshot = self.snapshot.as_ref().map(|s| (s.index, s.term));
        let (snapshot_index, snapshot_term) = snapshot.unwrap_or_default();
        let terms = [self.hard_state.term, base_term, snapshot_term];
        if let Some(past) = terms.into_iter().find(|&t| t > MAX_LOADED_TERM) {
            return Err(corrupt(
                group,
                &format!("loaded term {past} lies past MAX_LOADED_TERM"),
            ));
        }
        if let Some(past) = [base_index, snapshot_index]
            .into_iter()
            .find(|&i| i > MAX_TERM_OR_INDEX)
        {
            return Err(corrupt(
                group,
                &format!("loaded index {past} lies past MAX_TERM_OR_INDEX"),
            ));
        }
        let (mut index, mut term) = (base_index, base_term);
        for e in &self.entries {
            if Some(e.index) != index.checked_add(1) || e.term < term || e.term > MAX_LOADED_TERM {
                return Err(corrupt(
                    group,
                    &format!("loaded entry {}@{} follows {index}@{term}", e.index, e.term),
                ));
            }
            (index, term) = (e.index, e.term);
        }
        if index > MAX_TERM_OR_INDEX {
            return Err(corrupt(
                group,
                &format!("loaded index {index} lies past MAX_TERM_OR_INDEX"),
            ));
        }
        Ok(())
    }
}

/// Where a group's compacted log prefix ends: the index and term of the last entry discarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Index of the last discarded entry.
    pub index: u64,
    /// Its term.
    pub term: u64,
}

/// The node's shared log and per-group state.
///
/// # To ensure correctness
///
/// - [`write`](Storage::write) is **atomic and durable**: when it returns `Ok`, every part of
///   the batch survives a crash (power loss included); if the process dies before it returns,
///   after restart either all of the batch is present or none of it. Never return `Ok` for
///   data that is only in a cache.
/// - Writes are applied in call order. The driver never issues a write before the previous
///   one has returned.
/// - After a write returns `Err`, the node stops. Later calls may fail with
///   [`StorageError::Poisoned`]; none may report success for data it did not persist.
///   The one exception: a batch that breaks this contract (see [`GroupWrite::validate`]),
///   refused as [`StorageError::Corrupt`] before anything is written, changes nothing and
///   leaves the storage usable, reads and writes alike (the node never builds one; the
///   testkit's conformance suite checks both).
/// - A group's log has no holes: entries are consecutive, and an append whose first index is
///   at or below the stored last index first deletes the stored suffix from that index.
/// - `write` must not block the calling thread for IO: run blocking IO on a thread of your own
///   and await it. The event loop keeps stepping groups while a write is in flight.
/// - [`load`](Storage::load) returns exactly what durable writes left, for every group not
///   removed.
///
/// A storage that keeps a group's entries in memory (all of them, or those not yet flushed)
/// can keep them in a [`LogRuns`](crate::LogRuns): the runs each write brings
/// ([`EntryRuns::into_runs`](crate::EntryRuns::into_runs)), shared with the node's log
/// rather than copied.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Persists `batch` atomically and durably.
    async fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;

    /// Returns the persisted state of every group, at start, in [`GroupId`] order (the
    /// node takes any order; the conformance suite asks this one, so that two loads of one
    /// state compare equal). Each group at most once: the node refuses a group loaded
    /// twice ([`Node::restore`](crate::Node::restore)).
    async fn load(&self) -> Result<Vec<LoadedGroup>, StorageError>;

    /// Entries of `group` with index in `[low, high)`, in order. The node itself does not
    /// call this nor [`Storage::term`] today (it keeps each log above its snapshot in memory
    /// and reads storage at start, through `load`): they serve tools and tests, and the
    /// conformance suite checks them. Fewer are returned if the log
    /// ends earlier; none if `group` is unknown. A range reaching into the compacted prefix
    /// (`low <= compacted.index`, with `low < high`) is [`StorageError::Compacted`].
    async fn entries(
        &self,
        group: GroupId,
        low: u64,
        high: u64,
    ) -> Result<Vec<Entry>, StorageError>;

    /// The term of `group`'s entry at `index`, or `None` when there is no such entry. The
    /// last compacted entry's term is known; those before it are `None`.
    async fn term(&self, group: GroupId, index: u64) -> Result<Option<u64>, StorageError>;

    /// Chunk `seq` of `group`'s complete snapshot, if that snapshot is the one at `index`
    /// and has such a chunk; `None` otherwise (a newer snapshot replaced it, or the group
    /// is gone). The node reads a snapshot this way, one chunk at a time, to send it to a
    /// lagging replica or to restore its own state machine.
    async fn snapshot_chunk(
        &self,
        group: GroupId,
        index: u64,
        seq: u32,
    ) -> Result<Option<SnapshotChunk>, StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups fed alike must not double their logs together: their first room is spread
    /// over the whole octave `[FIRST_LOG_ROOM, 2 * FIRST_LOG_ROOM)`, and evenly enough
    /// that no size is taken by more than twice its share of a thousand groups.
    #[test]
    fn first_log_rooms_spread_over_one_octave() {
        let mut taken = [0usize; FIRST_LOG_ROOM];
        for id in 1..=1_000 {
            let room = first_log_room(GroupId(id));
            assert!(
                (FIRST_LOG_ROOM..2 * FIRST_LOG_ROOM).contains(&room),
                "{room}"
            );
            taken[room - FIRST_LOG_ROOM] += 1;
        }
        let share = 1_000 / FIRST_LOG_ROOM;
        assert!(taken.iter().all(|&n| n > 0 && n <= 2 * share), "{taken:?}");
    }

    /// A record damaged into indexes no log reaches (read back from a storage, where
    /// `validate` guards replay) is `Corrupt`, not an overflow: `last + 1` and
    /// `first + position` were computed unchecked, a panic in a debug build.
    #[test]
    fn indexes_at_the_end_of_u64_are_corrupt_not_an_overflow() {
        let entry = |index| Entry {
            index,
            term: 1,
            payload: crate::Payload::Noop,
        };
        let write = |entries: Vec<Entry>| GroupWrite::new(GroupId(1)).with_entries(entries);
        let corrupt = |r: Result<(), StorageError>| matches!(r, Err(StorageError::Corrupt(_)));
        let top = MAX_TERM_OR_INDEX;
        assert!(write(vec![entry(top)]).validate(top, 0).is_ok());
        assert!(corrupt(write(vec![entry(top + 1)]).validate(top, 0)));
        assert!(corrupt(write(vec![entry(u64::MAX)]).validate(u64::MAX, 0)));
        assert!(corrupt(
            write(vec![entry(u64::MAX), entry(0)]).validate(u64::MAX - 1, 0)
        ));
        assert!(corrupt(write(vec![entry(top)]).validate(7, 0)));
        let mut reset = GroupWrite::new(GroupId(1));
        reset.log_reset = Some(Compacted {
            index: u64::MAX,
            term: 1,
        });
        assert!(corrupt(reset.validate(u64::MAX, u64::MAX)));
        let snapshot = |index| {
            GroupWrite::new(GroupId(1)).with_snapshot_chunk(crate::SnapshotChunk {
                meta: crate::SnapshotMeta {
                    index,
                    term: 1,
                    membership: crate::Membership::voters([1]),
                },
                seq: 0,
                data: bytes::Bytes::new(),
                last: true,
            })
        };
        assert!(snapshot(top).validate(0, 0).is_ok());
        assert!(corrupt(snapshot(top + 1).validate(0, 0)));
    }

    /// A log grows only in its group's own steps: the first room, doubled.
    #[test]
    fn a_log_grows_in_its_groups_steps() {
        let group = GroupId(7);
        let first = first_log_room(group);
        assert_eq!(log_room(group, 0), first);
        assert_eq!(log_room(group, first), first);
        assert_eq!(log_room(group, first + 1), 2 * first);
        assert_eq!(log_room(group, 5 * first), 8 * first);
        assert_eq!(room_in_steps(0, 3), 4);
    }
}
