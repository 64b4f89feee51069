//! [`MemStorage`]: an in-memory [`Storage`] that can crash, lose unsynced writes and fail on
//! command.

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use multiraft_core::{
    Bytes, Compacted, Entry, GroupId, GroupWrite, HardState, LoadedGroup, LogRuns, Membership,
    SnapshotChunk, SnapshotMeta, Storage, StorageError, WriteBatch,
};
use rustc_hash::FxHashMap;

/// An in-memory [`Storage`] for tests and benchmarks.
///
/// Cloning is cheap and every clone shares the same data, so a test keeps one handle and
/// restarts a node on it (or on the handle [`crash`](MemStorage::crash) returns).
///
/// # Writes
///
/// [`write`](Storage::write) checks the whole batch first and applies it only if every part
/// is valid, so a rejected batch changes nothing. For each [`GroupWrite`]: `remove` deletes
/// the group (its snapshots too); `membership` and `hard_state` replace the stored values;
/// `snapshot` chunks are stored (sharing their `Bytes`), a chunk with `seq` 0 starting a new
/// incoming snapshot, and the chunk with `last` set making it the group's snapshot in place
/// of the previous one; `log_reset` deletes every entry and compacts the log to its index
/// and term; `entries` truncate the
/// stored log at the first new index and append; `compact_to` then discards the log up to
/// that index, keeping the index and term of the last entry discarded. A batch is rejected with
/// [`StorageError::Corrupt`] (without poisoning the storage) when it would leave a hole
/// (first index above `last + 1`, or index 0), when its entries are not consecutive or
/// rewrite the compacted prefix, when a compaction goes past the last entry, when its
/// snapshot chunks are not consecutive chunks of one snapshot or a chunk after the first
/// does not continue the incoming snapshot (same [`SnapshotMeta`], exactly as many chunks
/// stored before it), when a group appears twice, or when `remove` comes with other fields.
/// A group written without a membership gets the empty one until a membership is written.
///
/// # Durability and crashes
///
/// By default every write is durable once it returns `Ok`, and [`crash`](MemStorage::crash) keeps
/// everything acknowledged — except incoming snapshots that never completed, which `crash` and
/// [`reopen`](MemStorage::reopen) drop as the contract allows at a start (as `RedbStorage` does at
/// open), so a node that would continue a transfer across a restart instead of starting it again
/// gets [`StorageError::Corrupt`] here too. In *unsynced* mode
/// ([`set_unsynced`](MemStorage::set_unsynced)) writes land only in a volatile image (reads see
/// them) until [`sync`](MemStorage::sync); `crash` drops whatever was not synced. Unsynced mode
/// breaks the [`Storage`] contract on purpose: it models a disk that lies about fsync, to show what
/// Raft loses when storage acknowledges too early.
///
/// # Failures
///
/// [`fail_next_write`](MemStorage::fail_next_write) and
/// [`fail_writes_after`](MemStorage::fail_writes_after) make a chosen write return
/// [`StorageError::Io`] without changing anything; every later write returns
/// [`StorageError::Poisoned`] until [`reopen`](MemStorage::reopen) or `crash`. Reads keep
/// working.
///
/// # Slow disks
///
/// [`hold_writes`](MemStorage::hold_writes) makes every write wait (without completing) until
/// [`release_writes`](MemStorage::release_writes): a disk whose fsync takes as long as the
/// test wants, to put the node in the state it is in while a write is in flight.
/// [`hold_acks`](MemStorage::hold_acks) makes every write wait *after* it is stored, until
/// [`release_acks`](MemStorage::release_acks): a write that reached the disk and was never
/// acknowledged, as when a process dies between the fsync and the node seeing it — the
/// contract allows it, and `RedbStorage` does it (its writer commits a write whose caller
/// went away).
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    state: Arc<Mutex<State>>,
    /// `true` while writes are held before they are stored. Shared by clones, like the data.
    held: Arc<tokio::sync::watch::Sender<bool>>,
    /// `true` while writes are held after they are stored.
    acks_held: Arc<tokio::sync::watch::Sender<bool>>,
}

/// One group as stored: its log is kept from the index after the compacted prefix
/// (`offset() + 1`), as the runs its writes brought.
///
/// In the order a write reads and writes it (`repr(C)`), the snapshots boxed: a busy
/// group's write touches the hard state, the compaction mark and the run list's header,
/// and at thousands of groups each line of a group's entry is a cache miss of its own.
/// Inline, the two snapshots' headers made the entry 408 bytes, seven lines, with the
/// fields a write needs spread among them.
#[derive(Clone, Debug, Default)]
#[repr(C)]
struct StoredGroup {
    hard_state: HardState,
    compacted: Option<Compacted>,
    entries: LogRuns,
    /// The latest complete snapshot.
    snapshot: Option<Box<StoredSnapshot>>,
    /// The snapshot being received: its chunks so far.
    incoming: Option<Box<StoredSnapshot>>,
    membership: Membership,
}

/// A snapshot as stored: its chunks' data in order.
#[derive(Clone, Debug)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    chunks: Vec<Bytes>,
}

impl StoredGroup {
    /// `group`, nothing stored yet: its run list grows in the group's own steps.
    fn new(group: GroupId) -> StoredGroup {
        StoredGroup {
            entries: LogRuns::for_group(group),
            ..StoredGroup::default()
        }
    }

    /// The index before the first stored entry: the compacted prefix's end, or 0.
    fn offset(&self) -> u64 {
        self.compacted.map_or(0, |c| c.index)
    }

    fn last_index(&self) -> u64 {
        // From the bound the runs keep inline: reading the first run (`LogRuns::len`) was a
        // cache miss per group and write, 2.9 % of an open-loop run at 1,000 groups.
        self.entries.last_index().unwrap_or(self.offset())
    }

    /// Discards the entries up to `to` (validated: at most the last index).
    fn compact(&mut self, to: u64) {
        let offset = self.offset();
        if to <= offset {
            return;
        }
        // Validated: `to` is at most the last index, so the entry is there.
        let Some(term) = self.entries.get(to).map(|e| e.term) else {
            return;
        };
        self.entries.drop_through(to);
        self.compacted = Some(Compacted { index: to, term });
    }

    /// The term of entry `index`, the compaction mark's included.
    fn term(&self, index: u64) -> Option<u64> {
        if let Some(c) = self.compacted
            && c.index == index
        {
            return Some(c.term);
        }
        self.entries.get(index).map(|e| e.term)
    }

    /// Stores validated chunks: see [`GroupWrite::snapshot`].
    fn receive(&mut self, chunks: Vec<SnapshotChunk>) {
        for chunk in chunks {
            if chunk.seq == 0 {
                self.incoming = Some(Box::new(StoredSnapshot {
                    meta: chunk.meta,
                    chunks: Vec::new(),
                }));
            }
            // Validated: a chunk after the first continues the incoming snapshot.
            let Some(incoming) = &mut self.incoming else {
                continue;
            };
            incoming.chunks.push(chunk.data);
            if chunk.last {
                self.complete();
            }
        }
    }

    /// The incoming snapshot becomes the group's snapshot.
    fn complete(&mut self) {
        if let Some(done) = self.incoming.take() {
            self.snapshot = Some(done);
        }
    }
}

/// The group's last index and compacted index after `write`'s log reset (see
/// [`GroupWrite::validate`]), once its chunks are checked to continue the incoming snapshot.
fn bounds_after_snapshot(
    stored: Option<&StoredGroup>,
    write: &GroupWrite,
) -> Result<(u64, u64), StorageError> {
    if let Some(first) = write.snapshot.first()
        && first.seq > 0
    {
        let continues = stored
            .and_then(|g| g.incoming.as_ref())
            .is_some_and(|i| i.meta == first.meta && i.chunks.len() as u64 == u64::from(first.seq));
        if !continues {
            return Err(StorageError::Corrupt(format!(
                "{}: snapshot chunk {} of {}@{} does not continue the incoming snapshot",
                write.group, first.seq, first.meta.index, first.meta.term
            )));
        }
    }
    Ok(match write.log_reset {
        Some(c) => (c.index, c.index),
        None => stored.map_or((0, 0), |g| (g.last_index(), g.offset())),
    })
}

/// Forgets every incoming snapshot: what a start may do.
fn drop_incoming(image: &mut Image) {
    for group in image.values_mut() {
        group.incoming = None;
    }
}

/// Hashed, not ordered: every write looks up each of its groups twice (to validate, then
/// to apply), and at thousands of busy groups a B-tree's search was most of this storage's
/// cost (cache misses; BENCHMARKS.md). `load` sorts what it returns.
type Image = FxHashMap<GroupId, StoredGroup>;

#[derive(Debug, Default)]
struct State {
    /// What reads see: every acknowledged write.
    current: Image,
    /// Set in unsynced mode: what a crash would leave.
    unsynced: Option<Unsynced>,
    /// An injected failure happened, or this handle was crashed.
    poisoned: bool,
    /// Writes still to succeed before the injected failure.
    fail_after: Option<u64>,
    write_count: u64,
    entries_written: u64,
}

#[derive(Debug)]
struct Unsynced {
    /// The image as of the last sync.
    durable: Image,
    /// What changed the disk since, in order.
    pending: Vec<Pending>,
}

/// One change to the disk not yet synced.
#[derive(Debug)]
enum Pending {
    /// An acknowledged write.
    Write(WriteBatch),
    /// A start's drop of incoming snapshots ([`MemStorage::reopen`]): after the writes
    /// before it, so that a snapshot they completed is kept.
    DropIncoming,
}

impl MemStorage {
    /// Empty storage, every write durable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes writes wait until [`release_writes`](MemStorage::release_writes); a write
    /// already past its wait is not affected.
    pub fn hold_writes(&self) {
        self.held.send_replace(true);
    }

    /// Writes waiting now for [`release_writes`](MemStorage::release_writes): a test's
    /// condition that a node has a write in flight.
    pub fn held_writes(&self) -> usize {
        self.held.receiver_count()
    }

    /// Lets held writes (and later ones) proceed: all at once, in no set order (a node has
    /// one write in flight at a time).
    pub fn release_writes(&self) {
        self.held.send_replace(false);
    }

    /// Makes writes wait, once stored (a crash keeps them, as it keeps any acknowledged
    /// write: in unsynced mode, until it is synced), until
    /// [`release_acks`](MemStorage::release_acks); a write already past its wait is not
    /// affected.
    pub fn hold_acks(&self) {
        self.acks_held.send_replace(true);
    }

    /// Writes stored and waiting now for [`release_acks`](MemStorage::release_acks).
    pub fn held_acks(&self) -> usize {
        self.acks_held.receiver_count()
    }

    /// Lets writes stored and held return `Ok` (and later ones at once).
    pub fn release_acks(&self) {
        self.acks_held.send_replace(false);
    }

    /// Waits while `hold` holds. Subscribed only while it does: a subscription per write
    /// cost every write of every node a round of atomic operations on the shared channel.
    async fn wait_while(hold: &tokio::sync::watch::Sender<bool>) {
        if *hold.borrow() {
            let mut held = hold.subscribe();
            // Only fails if the sender is gone, which cannot happen while `self` holds it.
            let _ = held.wait_for(|held| !held).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held with the state half-changed: validation runs
        // before any mutation.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulates a power loss: returns a new handle, on separate data, holding only what was
    /// durable (everything acknowledged, less unsynced writes in unsynced mode). The new
    /// handle keeps this one's unsynced mode, starts with counters at zero, no failure
    /// planned and not poisoned. This handle (and its clones) is poisoned so that writes from
    /// the node that "died" with it go nowhere.
    pub fn crash(&self) -> MemStorage {
        let mut state = self.lock();
        state.poisoned = true;
        let mut durable = match &state.unsynced {
            Some(u) => u.durable.clone(),
            None => state.current.clone(),
        };
        drop_incoming(&mut durable);
        let unsynced = state.unsynced.as_ref().map(|_| Unsynced {
            durable: durable.clone(),
            pending: Vec::new(),
        });
        MemStorage {
            state: Arc::new(Mutex::new(State {
                current: durable,
                unsynced,
                ..State::default()
            })),
            // A new disk: not held, whatever the crashed one was.
            held: Arc::default(),
            acks_held: Arc::default(),
        }
    }

    /// Simulates restarting the process on the same disk: clears the poison and any planned
    /// failure, keeping every write (synced or not: the operating system still holds them)
    /// but incoming snapshots that never completed, which a start drops.
    pub fn reopen(&self) {
        let mut state = self.lock();
        state.poisoned = false;
        state.fail_after = None;
        drop_incoming(&mut state.current);
        if let Some(u) = &mut state.unsynced {
            u.pending.push(Pending::DropIncoming);
        }
    }

    /// Turns unsynced mode on or off. Turning it off syncs first.
    pub fn set_unsynced(&self, unsynced: bool) {
        let mut state = self.lock();
        match (unsynced, state.unsynced.is_some()) {
            (true, false) => {
                let durable = state.current.clone();
                state.unsynced = Some(Unsynced {
                    durable,
                    pending: Vec::new(),
                });
            }
            (false, true) => state.unsynced = None,
            _ => {}
        }
    }

    /// Makes every write acknowledged so far durable. Does nothing outside unsynced mode.
    pub fn sync(&self) {
        let mut state = self.lock();
        if let Some(u) = &mut state.unsynced {
            for change in u.pending.drain(..) {
                match change {
                    Pending::Write(batch) => apply(&mut u.durable, batch),
                    Pending::DropIncoming => drop_incoming(&mut u.durable),
                }
            }
        }
    }

    /// The next write fails with [`StorageError::Io`], changes nothing, and poisons the
    /// storage.
    pub fn fail_next_write(&self) {
        self.fail_writes_after(0);
    }

    /// The next `n` writes proceed as usual; the one after fails as with
    /// [`fail_next_write`](MemStorage::fail_next_write).
    pub fn fail_writes_after(&self, n: u64) {
        self.lock().fail_after = Some(n);
    }

    /// Whether writes are refused until [`reopen`](MemStorage::reopen).
    pub fn is_poisoned(&self) -> bool {
        self.lock().poisoned
    }

    /// Number of writes that returned `Ok` on this handle.
    pub fn write_count(&self) -> u64 {
        self.lock().write_count
    }

    /// Number of entries in writes that returned `Ok` on this handle.
    pub fn entries_written(&self) -> u64 {
        self.lock().entries_written
    }
}

/// Records looked up together before any is checked ([`validate`]).
const LOOKUP_STRETCH: usize = 32;

/// Checks `batch` against `image` without changing anything.
fn validate(image: &Image, batch: &WriteBatch) -> Result<(), StorageError> {
    batch.validate_groups_distinct()?;
    // The records of a stretch of groups are looked up before any is checked: at thousands
    // of busy groups each is out of the caches, and looked up one check at a time the
    // misses came one after the other (the probe's key comparison, 3 % of a 4,096-group
    // run); looked up together they overlap, and `apply`'s own lookups find them in the
    // caches (BENCHMARKS.md, "A replica's first line and a stored record read ahead").
    for stretch in batch.groups.chunks(LOOKUP_STRETCH) {
        let mut stored: [Option<&StoredGroup>; LOOKUP_STRETCH] = [None; LOOKUP_STRETCH];
        let mut read = 0;
        for (found, write) in stored.iter_mut().zip(stretch) {
            *found = image.get(&write.group);
            // The record's run list sits past its key's line: the checks read its end.
            read ^= found.map_or(0, StoredGroup::last_index);
        }
        std::hint::black_box(read);
        for (write, stored) in stretch.iter().zip(stored) {
            let (last, compacted) = bounds_after_snapshot(stored, write)?;
            write.validate(last, compacted)?;
        }
    }
    Ok(())
}

/// Applies a validated batch.
fn apply(image: &mut Image, mut batch: WriteBatch) {
    // Each record is read in place and only what moves is taken from it: moving the whole
    // record out copied its 240 bytes to the stack per group, and the first read of that
    // copy held 7 % of an open-loop run's time (BENCHMARKS.md, "A stored group's record
    // read in place").
    for write in &mut batch.groups {
        if write.remove {
            image.remove(&write.group);
            continue;
        }
        let stored = image
            .entry(write.group)
            .or_insert_with(|| StoredGroup::new(write.group));
        if let Some(membership) = write.membership.take() {
            stored.membership = membership;
        }
        if let Some(hard_state) = write.hard_state {
            stored.hard_state = hard_state;
        }
        stored.receive(std::mem::take(&mut write.snapshot));
        if let Some(c) = write.log_reset {
            stored.entries.clear();
            stored.compacted = Some(c);
        }
        stored.entries.append(std::mem::take(&mut write.entries));
        if let Some(to) = write.compact_to {
            stored.compact(to);
        }
    }
}

impl MemStorage {
    /// Stores `batch` (a write's work, past any hold before it), or refuses it.
    fn store(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut state = self.lock();
        if state.poisoned {
            return Err(StorageError::Poisoned);
        }
        if let Some(n) = state.fail_after {
            if n == 0 {
                state.fail_after = None;
                state.poisoned = true;
                return Err(StorageError::Io(std::io::Error::other(
                    "MemStorage: injected write failure",
                )));
            }
            state.fail_after = Some(n - 1);
        }
        validate(&state.current, &batch)?;
        let entries = batch.entry_count() as u64;
        let state = &mut *state;
        if let Some(u) = &mut state.unsynced {
            u.pending.push(Pending::Write(batch.clone()));
        }
        apply(&mut state.current, batch);
        state.write_count += 1;
        state.entries_written += entries;
        Ok(())
    }
}

#[async_trait]
impl Storage for MemStorage {
    async fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        MemStorage::wait_while(&self.held).await;
        self.store(batch)?;
        MemStorage::wait_while(&self.acks_held).await;
        Ok(())
    }

    async fn load(&self) -> Result<Vec<LoadedGroup>, StorageError> {
        let state = self.lock();
        let mut groups: Vec<_> = state.current.iter().collect();
        groups.sort_unstable_by_key(|(group, _)| **group);
        Ok(groups
            .into_iter()
            .map(|(group, stored)| {
                let mut loaded = LoadedGroup::new(*group);
                loaded.membership = stored.membership.clone();
                loaded.hard_state = stored.hard_state;
                loaded.compacted = stored.compacted;
                loaded.snapshot = stored.snapshot.as_ref().map(|s| s.meta.clone());
                loaded.entries = stored.entries.iter().cloned().collect();
                loaded
            })
            .collect())
    }

    async fn entries(
        &self,
        group: GroupId,
        low: u64,
        high: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let state = self.lock();
        let Some(stored) = state.current.get(&group) else {
            return Ok(Vec::new());
        };
        let offset = stored.offset();
        let low = low.max(1);
        if low >= high {
            return Ok(Vec::new());
        }
        if low <= offset {
            return Err(StorageError::Compacted {
                group,
                index: offset,
            });
        }
        Ok(stored.entries.range(low, high).cloned().collect())
    }

    async fn term(&self, group: GroupId, index: u64) -> Result<Option<u64>, StorageError> {
        let state = self.lock();
        Ok(state.current.get(&group).and_then(|g| g.term(index)))
    }

    async fn snapshot_chunk(
        &self,
        group: GroupId,
        index: u64,
        seq: u32,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        let state = self.lock();
        let Some(snapshot) = state
            .current
            .get(&group)
            .and_then(|g| g.snapshot.as_ref())
            .filter(|s| s.meta.index == index)
        else {
            return Ok(None);
        };
        let position = usize::try_from(seq).unwrap_or(usize::MAX);
        Ok(snapshot.chunks.get(position).map(|data| SnapshotChunk {
            meta: snapshot.meta.clone(),
            seq,
            data: data.clone(),
            last: position + 1 == snapshot.chunks.len(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{append, batch, chunk, entries, hard_state, snapshot_meta, terms};

    const G1: GroupId = GroupId(1);
    const G2: GroupId = GroupId(2);

    async fn full_load(s: &MemStorage) -> Vec<LoadedGroup> {
        s.load().await.unwrap()
    }

    /// A stored group's entry stays within three cache lines, the fields a write touches
    /// first (see [`StoredGroup`]); it fails if a snapshot's header moves back inline.
    #[test]
    fn a_stored_group_stays_small() {
        assert!(
            std::mem::size_of::<StoredGroup>() <= 192,
            "{} bytes",
            std::mem::size_of::<StoredGroup>()
        );
        assert!(std::mem::offset_of!(StoredGroup, entries) < 64);
    }

    struct Mem;

    impl crate::conformance::Subject for Mem {
        type Storage = MemStorage;
        fn fresh(&mut self) -> MemStorage {
            MemStorage::new()
        }
        fn reopen(&mut self, storage: MemStorage) -> MemStorage {
            storage.crash()
        }
    }

    #[tokio::test]
    async fn mem_storage_passes_the_conformance_suite() {
        crate::conformance::check_all(&mut Mem).await;
    }

    /// A storage that leaves a group out of `load` fails the conformance property that
    /// looked for it, by name. Regression (review): five properties indexed the loaded
    /// list, and such a storage failed with "index out of bounds", naming none.
    #[test]
    #[should_panic(expected = "a_property: g1 is not loaded")]
    fn a_group_left_out_of_load_fails_its_property_by_name() {
        let g2 = LoadedGroup::new(GroupId(2));
        crate::conformance::group_of(&[g2], GroupId(1), "a_property");
    }

    #[tokio::test]
    async fn counters_count_acknowledged_writes_only() {
        let s = MemStorage::new();
        s.write(batch(vec![
            append(G1, entries(1, 2, 1)),
            append(G2, entries(1, 1, 1)),
        ]))
        .await
        .unwrap();
        // A hole: refused, not counted, and (unlike an injected failure) not poisoning.
        let err = s
            .write(batch(vec![append(G1, entries(4, 4, 1))]))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
        assert!(!s.is_poisoned());
        assert_eq!(s.write_count(), 1);
        assert_eq!(s.entries_written(), 3);
        assert_eq!(full_load(&s).await.len(), 2);
    }

    /// Storage contract: after a write returns `Err`, no later call reports success for
    /// data it did not persist.
    #[tokio::test]
    async fn failed_write_changes_nothing_and_poisons_until_reopen() {
        let s = MemStorage::new();
        s.write(batch(vec![append(G1, entries(1, 2, 1))]))
            .await
            .unwrap();
        let before = full_load(&s).await;

        s.fail_next_write();
        let err = s
            .write(batch(vec![append(G1, entries(3, 3, 1))]))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Io(_)), "{err}");
        assert_eq!(full_load(&s).await, before);
        assert!(s.is_poisoned());

        let err = s
            .write(batch(vec![append(G1, entries(3, 3, 1))]))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Poisoned), "{err}");
        assert_eq!(full_load(&s).await, before);
        assert_eq!(s.write_count(), 1);

        s.reopen();
        s.write(batch(vec![append(G1, entries(3, 3, 1))]))
            .await
            .unwrap();
        assert_eq!(s.entries(G1, 1, 10).await.unwrap(), entries(1, 3, 1));
    }

    #[tokio::test]
    async fn fail_writes_after_n() {
        let s = MemStorage::new();
        s.fail_writes_after(2);
        for i in 1..=2 {
            s.write(batch(vec![append(G1, entries(i, i, 1))]))
                .await
                .unwrap();
        }
        let err = s
            .write(batch(vec![append(G1, entries(3, 3, 1))]))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Io(_)), "{err}");
        assert_eq!(s.entries(G1, 1, 10).await.unwrap(), entries(1, 2, 1));

        // A crash also clears the poison, on the new handle.
        let restarted = s.crash();
        assert!(!restarted.is_poisoned());
        restarted
            .write(batch(vec![append(G1, entries(3, 3, 1))]))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn crash_keeps_every_acknowledged_write_by_default() {
        let s = MemStorage::new();
        s.write(batch(vec![append(G1, entries(1, 3, 1))]))
            .await
            .unwrap();
        let restarted = s.crash();
        assert_eq!(full_load(&restarted).await, full_load(&s).await);
        assert_eq!(restarted.write_count(), 0, "counters are per handle");

        // The crashed handle is dead: its writes fail and do not reach the new one.
        assert!(matches!(
            s.write(batch(vec![append(G1, entries(4, 4, 1))])).await,
            Err(StorageError::Poisoned)
        ));
        restarted
            .write(batch(vec![append(G1, entries(4, 4, 2))]))
            .await
            .unwrap();
        assert_eq!(s.term(G1, 4).await.unwrap(), None);
        assert_eq!(restarted.term(G1, 4).await.unwrap(), Some(2));
    }

    #[tokio::test]
    async fn unsynced_writes_are_readable_but_lost_on_crash() {
        let s = MemStorage::new();
        s.write(batch(vec![append(G1, entries(1, 2, 1))]))
            .await
            .unwrap();
        s.set_unsynced(true);
        s.write(batch(vec![append(G1, entries(3, 3, 1))]))
            .await
            .unwrap();
        s.sync();
        // Unsynced: a truncation, a new group and a removal.
        s.write(batch(vec![
            append(G1, entries(2, 4, 2)),
            GroupWrite::new(G2).with_hard_state(hard_state(7)),
        ]))
        .await
        .unwrap();
        assert_eq!(
            s.term(G1, 4).await.unwrap(),
            Some(2),
            "reads see unsynced data"
        );
        let synced_snapshot = {
            let restarted = s.crash();
            full_load(&restarted).await
        };
        assert_eq!(synced_snapshot.len(), 1);
        assert_eq!(
            terms(&synced_snapshot[0]),
            [(1, 1), (2, 1), (3, 1)],
            "the crash drops the unsynced truncation and append"
        );

        // The new handle is still in unsynced mode.
        let s = s.crash();
        s.write(batch(vec![append(G1, entries(4, 4, 1))]))
            .await
            .unwrap();
        assert_eq!(s.crash().term(G1, 4).await.unwrap(), None);
        s.reopen();
        // Turning unsynced mode off syncs.
        s.set_unsynced(false);
        assert_eq!(s.crash().term(G1, 4).await.unwrap(), Some(1));
    }

    /// A start (`crash`, `reopen`) forgets the incoming snapshot, as the contract allows, so
    /// a transfer continued across it is refused; complete snapshots stay, and snapshots
    /// written unsynced are lost in a crash like the rest.
    #[tokio::test]
    async fn a_start_drops_incoming_snapshots_and_keeps_complete_ones() {
        let s = MemStorage::new();
        let (m, n, p) = (
            snapshot_meta(1, 1),
            snapshot_meta(2, 1),
            snapshot_meta(3, 1),
        );
        s.write(batch(vec![append(G1, entries(1, 3, 1))]))
            .await
            .unwrap();
        let one = |c| batch(vec![GroupWrite::new(G1).with_snapshot_chunk(c)]);
        s.write(one(chunk(&m, 0, true))).await.unwrap();
        s.write(one(chunk(&n, 0, false))).await.unwrap();
        let s = s.crash();
        let err = s.write(one(chunk(&n, 1, true))).await.unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
        assert_eq!(
            s.snapshot_chunk(G1, 1, 0).await.unwrap(),
            Some(chunk(&m, 0, true))
        );
        s.write(one(chunk(&n, 0, false))).await.unwrap();
        s.reopen();
        let err = s.write(one(chunk(&n, 1, true))).await.unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
        s.write(one(chunk(&n, 0, false))).await.unwrap();
        s.write(one(chunk(&n, 1, true))).await.unwrap();
        assert_eq!(full_load(&s).await[0].snapshot.as_ref(), Some(&n));

        s.set_unsynced(true);
        s.write(one(chunk(&p, 0, true))).await.unwrap();
        assert_eq!(full_load(&s).await[0].snapshot.as_ref(), Some(&p));
        let restarted = s.crash();
        assert_eq!(full_load(&restarted).await[0].snapshot.as_ref(), Some(&n));
        assert_eq!(restarted.snapshot_chunk(G1, 3, 0).await.unwrap(), None);
        assert!(restarted.snapshot_chunk(G1, 2, 1).await.unwrap().is_some());
    }

    /// A restart on the same disk (`reopen`) between a snapshot's last chunk, written
    /// unsynced, and the sync that makes it durable keeps the snapshot: the sync replays the
    /// chunk before the start's drop of incoming snapshots, in the order they happened.
    /// Regression (review): the drop went to the synced image at once, the chunk replayed
    /// after it found no incoming snapshot and was skipped, and a crash then left the log
    /// reset to the snapshot's index with no snapshot at all.
    #[tokio::test]
    async fn a_sync_after_a_reopen_keeps_a_snapshot_completed_before_it() {
        let s = MemStorage::new();
        s.set_unsynced(true);
        let m = snapshot_meta(8, 1);
        let one = |c| batch(vec![GroupWrite::new(G1).with_snapshot_chunk(c)]);
        s.write(one(chunk(&m, 0, false))).await.unwrap();
        s.sync();
        let mut last = GroupWrite::new(G1).with_snapshot_chunk(chunk(&m, 1, true));
        last.log_reset = Some(Compacted { index: 8, term: 1 });
        s.write(batch(vec![last])).await.unwrap();
        s.reopen();
        s.sync();
        let restarted = s.crash();
        let loaded = full_load(&restarted).await;
        assert_eq!(loaded, full_load(&s).await);
        assert_eq!(loaded[0].snapshot.as_ref(), Some(&m));
        assert_eq!(loaded[0].compacted, Some(Compacted { index: 8, term: 1 }));
    }

    #[tokio::test]
    async fn sync_replays_removals_in_order() {
        let s = MemStorage::new();
        s.set_unsynced(true);
        s.write(batch(vec![append(G1, entries(1, 2, 1))]))
            .await
            .unwrap();
        s.write(batch(vec![GroupWrite::new(G1).removing()]))
            .await
            .unwrap();
        s.write(batch(vec![append(G1, entries(1, 1, 3))]))
            .await
            .unwrap();
        s.sync();
        let restarted = s.crash();
        assert_eq!(full_load(&restarted).await, full_load(&s).await);
        assert_eq!(terms(&full_load(&restarted).await[0]), [(1, 3)]);
    }
}
