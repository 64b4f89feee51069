//! The storage conformance suite: the properties every [`Storage`] implementation must have,
//! as one public function a crate runs from its own tests.
//!
//! ```
//! use multiraft_testkit::MemStorage;
//! use multiraft_testkit::conformance::{self, Subject};
//!
//! struct Mem;
//!
//! impl Subject for Mem {
//!     type Storage = MemStorage;
//!     fn fresh(&mut self) -> MemStorage {
//!         MemStorage::new()
//!     }
//!     fn reopen(&mut self, storage: MemStorage) -> MemStorage {
//!         storage.crash() // keeps every acknowledged write
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! conformance::check_all(&mut Mem).await;
//! # });
//! ```
//!
//! Each property starts from a fresh storage and panics, naming itself, when the storage
//! breaks it: the suite is meant to be run inside a test.

mod snapshots;

pub use snapshots::{chunk, snapshot_meta};

use multiraft_core::{
    Bytes, Compacted, Entry, GroupId, GroupWrite, HardState, LoadedGroup, Membership, NodeId,
    Payload, ProposalId, Storage, StorageError, WriteBatch,
};

/// What the suite tests: a way to get empty storages and to restart one.
pub trait Subject {
    /// The implementation under test.
    type Storage: Storage;

    /// A new, empty storage.
    fn fresh(&mut self) -> Self::Storage;

    /// The same storage after its process restarts: close it, then open what it persisted.
    fn reopen(&mut self, storage: Self::Storage) -> Self::Storage;
}

/// Runs every property, each on a fresh storage.
pub async fn check_all<S: Subject>(subject: &mut S) {
    write_then_load_every_group_in_order(subject.fresh()).await;
    hard_state_and_membership_are_replaced_not_merged(subject.fresh()).await;
    append_truncates_the_conflicting_suffix(subject.fresh()).await;
    malformed_batches_are_refused_whole(subject.fresh()).await;
    remove_deletes_the_group(subject.fresh()).await;
    entries_and_term_read_ranges(subject.fresh()).await;
    restart_keeps_every_acknowledged_write(subject).await;
    one_batch_covers_many_groups(subject).await;
    compaction_discards_a_prefix_and_survives_restart(subject).await;
    snapshots::check_all(subject).await;
}

const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);

/// An entry whose payload names its index and term, so a misplaced entry is visible.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Command {
            id: ProposalId {
                node: NodeId(1),
                seq: index,
            },
            data: Bytes::from(format!("{index}@{term}")),
        },
    }
}

/// Entries `first..=last`, all of `term`.
pub fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last).map(|i| entry(i, term)).collect()
}

/// A record appending `entries` to `group`.
pub fn append(group: GroupId, entries: Vec<Entry>) -> GroupWrite {
    GroupWrite::new(group).with_entries(entries)
}

/// A record removing `group`.
pub fn remove(group: GroupId) -> GroupWrite {
    GroupWrite::new(group).removing()
}

/// A record compacting `group`'s log up to `to`.
pub fn compact(group: GroupId, to: u64) -> GroupWrite {
    GroupWrite::new(group).compacting_to(to)
}

/// A batch of `groups`' records.
pub fn batch(groups: Vec<GroupWrite>) -> WriteBatch {
    WriteBatch::from(groups)
}

/// The (index, term) of every entry of a loaded group, for comparing logs.
pub fn terms(loaded: &LoadedGroup) -> Vec<(u64, u64)> {
    loaded.entries.iter().map(|e| (e.index, e.term)).collect()
}

/// A hard state of `term` with a vote for node 1 and commit 0.
pub fn hard_state(term: u64) -> HardState {
    HardState {
        term,
        vote: Some(NodeId(1)),
        commit: 0,
    }
}

async fn write(s: &impl Storage, b: WriteBatch, property: &str) {
    if let Err(e) = s.write(b).await {
        panic!("{property}: a valid write failed: {e}");
    }
}

async fn read_entries(
    s: &impl Storage,
    group: GroupId,
    low: u64,
    high: u64,
    property: &str,
) -> Vec<Entry> {
    match s.entries(group, low, high).await {
        Ok(e) => e,
        Err(e) => panic!("{property}: entries({group}, {low}, {high}) failed: {e}"),
    }
}

async fn read_term(s: &impl Storage, group: GroupId, index: u64, property: &str) -> Option<u64> {
    match s.term(group, index).await {
        Ok(t) => t,
        Err(e) => panic!("{property}: term({group}, {index}) failed: {e}"),
    }
}

async fn load(s: &impl Storage, property: &str) -> Vec<LoadedGroup> {
    match s.load().await {
        Ok(l) => l,
        Err(e) => panic!("{property}: load failed: {e}"),
    }
}

/// `group`'s state in `loaded`; a storage that left it out fails `property` by name (an
/// index into the list panicked without naming it).
pub(crate) fn group_of(loaded: &[LoadedGroup], group: GroupId, property: &str) -> LoadedGroup {
    match loaded.iter().find(|l| l.group == group) {
        Some(l) => l.clone(),
        None => panic!("{property}: {group} is not loaded"),
    }
}

/// `load` returns every group written, in group order, with exactly what was written.
async fn write_then_load_every_group_in_order(s: impl Storage) {
    const P: &str = "write_then_load_every_group_in_order";
    let b = batch(vec![
        GroupWrite::new(G2)
            .with_membership(Membership::voters([1, 2, 3]))
            .with_hard_state(hard_state(2))
            .with_entries(entries(1, 2, 2)),
        GroupWrite::new(G1)
            .with_membership(Membership::voters([1]))
            .with_hard_state(HardState::default()),
    ]);
    write(&s, b, P).await;
    let loaded = load(&s, P).await;
    let groups: Vec<GroupId> = loaded.iter().map(|g| g.group).collect();
    assert_eq!(groups, [G1, G2], "{P}");
    assert_eq!(loaded[0].membership, Membership::voters([1]), "{P}");
    assert_eq!(loaded[0].hard_state, HardState::default(), "{P}");
    assert!(loaded[0].entries.is_empty(), "{P}");
    assert_eq!(loaded[1].membership, Membership::voters([1, 2, 3]), "{P}");
    assert_eq!(loaded[1].hard_state, hard_state(2), "{P}");
    assert_eq!(loaded[1].entries, entries(1, 2, 2), "{P}");
}

/// A hard state or membership in a write replaces the stored one; a write without one keeps
/// it.
async fn hard_state_and_membership_are_replaced_not_merged(s: impl Storage) {
    const P: &str = "hard_state_and_membership_are_replaced_not_merged";
    let set = |m: Option<Membership>, h: Option<HardState>| {
        batch(vec![{
            let mut w = GroupWrite::new(G1);
            (w.membership, w.hard_state) = (m, h);
            w
        }])
    };
    write(
        &s,
        set(Some(Membership::voters([1, 2])), Some(hard_state(1))),
        P,
    )
    .await;
    write(&s, set(None, Some(hard_state(3))), P).await;
    write(&s, set(Some(Membership::voters([2, 3])), None), P).await;
    let loaded = group_of(&load(&s, P).await, G1, P);
    assert_eq!(loaded.hard_state, hard_state(3), "{P}");
    assert_eq!(loaded.membership, Membership::voters([2, 3]), "{P}");
}

/// An append at or below the stored last index first deletes the stored suffix from that
/// index (Raft §5.3, receiver step 3).
async fn append_truncates_the_conflicting_suffix(s: impl Storage) {
    const P: &str = "append_truncates_the_conflicting_suffix";
    write(&s, batch(vec![append(G1, entries(1, 5, 1))]), P).await;
    write(&s, batch(vec![append(G1, entries(3, 4, 2))]), P).await;
    assert_eq!(
        terms(&group_of(&load(&s, P).await, G1, P)),
        [(1, 1), (2, 1), (3, 2), (4, 2)],
        "{P}"
    );
    write(&s, batch(vec![append(G1, entries(5, 5, 2))]), P).await;
    write(&s, batch(vec![append(G1, entries(1, 1, 3))]), P).await;
    assert_eq!(
        terms(&group_of(&load(&s, P).await, G1, P)),
        [(1, 3)],
        "{P}: rewrite from 1"
    );
    assert_eq!(
        read_term(&s, G1, 2, P).await,
        None,
        "{P}: the suffix is gone"
    );
}

/// A batch that would leave a hole, or is malformed, is refused with an error and changes
/// nothing, not even the valid parts of it.
async fn malformed_batches_are_refused_whole(s: impl Storage) {
    const P: &str = "malformed_batches_are_refused_whole";
    write(&s, batch(vec![append(G1, entries(1, 2, 1))]), P).await;
    let before = load(&s, P).await;
    let bad = [
        (
            "a hole after the last index",
            batch(vec![append(G1, entries(4, 5, 1))]),
        ),
        (
            "a new group not starting at 1",
            batch(vec![append(G2, entries(2, 2, 1))]),
        ),
        ("index 0", batch(vec![append(G1, vec![entry(0, 1)])])),
        (
            "entries not consecutive",
            batch(vec![append(G1, vec![entry(3, 1), entry(5, 1)])]),
        ),
        (
            "a valid part with an invalid part",
            batch(vec![
                append(G2, entries(1, 1, 1)),
                append(G1, entries(9, 9, 1)),
            ]),
        ),
        (
            "the same group twice",
            batch(vec![
                append(G1, entries(3, 3, 1)),
                append(G1, entries(4, 4, 1)),
            ]),
        ),
        (
            "a compaction past the last entry",
            batch(vec![GroupWrite::new(G1).compacting_to(3)]),
        ),
        (
            "remove with other fields",
            batch(vec![
                GroupWrite::new(G1)
                    .removing()
                    .with_hard_state(hard_state(1)),
            ]),
        ),
    ];
    for (what, b) in bad {
        assert!(s.write(b).await.is_err(), "{P}: {what} was accepted");
        assert_eq!(load(&s, P).await, before, "{P}: {what} changed the state");
    }
}

/// Removing a group deletes its log, hard state and membership; it can start again from 1.
async fn remove_deletes_the_group(s: impl Storage) {
    const P: &str = "remove_deletes_the_group";
    write(
        &s,
        batch(vec![
            append(G1, entries(1, 3, 1)),
            append(G2, entries(1, 1, 1)),
        ]),
        P,
    )
    .await;
    let remove = remove(G1);
    write(&s, batch(vec![remove]), P).await;
    let loaded = load(&s, P).await;
    assert_eq!(loaded.len(), 1, "{P}");
    assert_eq!(loaded[0].group, G2, "{P}");
    assert!(read_entries(&s, G1, 1, 10, P).await.is_empty(), "{P}");
    assert_eq!(read_term(&s, G1, 1, P).await, None, "{P}");
    write(&s, batch(vec![append(G1, entries(1, 1, 5))]), P).await;
    assert_eq!(read_term(&s, G1, 1, P).await, Some(5), "{P}");
}

/// `entries(low, high)` returns `[low, high)` clipped to the log; `term` is `None` where
/// there is no entry, index 0 included.
async fn entries_and_term_read_ranges(s: impl Storage) {
    const P: &str = "entries_and_term_read_ranges";
    write(&s, batch(vec![append(G1, entries(1, 5, 1))]), P).await;
    write(&s, batch(vec![append(G1, entries(4, 5, 2))]), P).await;
    let idx = |v: Vec<Entry>| v.iter().map(|e| e.index).collect::<Vec<_>>();
    assert_eq!(idx(read_entries(&s, G1, 2, 4, P).await), [2, 3], "{P}");
    assert_eq!(idx(read_entries(&s, G1, 0, 3, P).await), [1, 2], "{P}");
    assert_eq!(idx(read_entries(&s, G1, 4, 100, P).await), [4, 5], "{P}");
    assert_eq!(read_entries(&s, G1, 4, 6, P).await, entries(4, 5, 2), "{P}");
    assert!(read_entries(&s, G1, 3, 3, P).await.is_empty(), "{P}");
    assert!(read_entries(&s, G1, 4, 2, P).await.is_empty(), "{P}");
    assert!(read_entries(&s, G1, 6, 9, P).await.is_empty(), "{P}");
    assert!(read_entries(&s, G2, 1, 9, P).await.is_empty(), "{P}");
    // Bounds at the end of the index space are clipped, not overflowed.
    assert_eq!(
        idx(read_entries(&s, G1, 1, u64::MAX, P).await),
        [1, 2, 3, 4, 5],
        "{P}"
    );
    assert!(
        read_entries(&s, G1, u64::MAX - 1, u64::MAX, P)
            .await
            .is_empty(),
        "{P}"
    );
    assert!(
        read_entries(&s, G1, u64::MAX, u64::MAX, P).await.is_empty(),
        "{P}"
    );
    assert_eq!(read_term(&s, G1, 0, P).await, None, "{P}");
    assert_eq!(read_term(&s, G1, 3, P).await, Some(1), "{P}");
    assert_eq!(read_term(&s, G1, 4, P).await, Some(2), "{P}");
    assert_eq!(read_term(&s, G1, 6, P).await, None, "{P}");
    assert_eq!(read_term(&s, G1, u64::MAX, P).await, None, "{P}");
    assert_eq!(read_term(&s, G2, 1, P).await, None, "{P}");
}

/// Everything a write acknowledged survives a restart, truncations and removals included.
async fn restart_keeps_every_acknowledged_write<S: Subject>(subject: &mut S) {
    const P: &str = "restart_keeps_every_acknowledged_write";
    let s = subject.fresh();
    write(
        &s,
        batch(vec![
            append(G1, entries(1, 4, 1)),
            append(G2, entries(1, 2, 1)),
        ]),
        P,
    )
    .await;
    write(
        &s,
        batch(vec![
            GroupWrite::new(G1)
                .with_hard_state(hard_state(2))
                .with_membership(Membership::voters([1, 2, 3]).with_learners([4]))
                .with_entries(entries(3, 3, 2)),
        ]),
        P,
    )
    .await;
    let remove = remove(G2);
    write(&s, batch(vec![remove]), P).await;
    let before = load(&s, P).await;
    let s = subject.reopen(s);
    assert_eq!(load(&s, P).await, before, "{P}");
    assert_eq!(read_entries(&s, G1, 1, 10, P).await.len(), 3, "{P}");
    write(&s, batch(vec![append(G1, entries(4, 4, 2))]), P).await;
    let s = subject.reopen(s);
    assert_eq!(
        terms(&group_of(&load(&s, P).await, G1, P)),
        [(1, 1), (2, 1), (3, 2), (4, 2)],
        "{P}"
    );
}

/// One write carries many groups' appends and hard states, and all of them land.
async fn one_batch_covers_many_groups<S: Subject>(subject: &mut S) {
    const P: &str = "one_batch_covers_many_groups";
    let s = subject.fresh();
    let groups: Vec<GroupWrite> = (1..=1_000)
        .map(|g| {
            GroupWrite::new(GroupId(g))
                .with_hard_state(hard_state(g))
                .with_entries(entries(1, 1 + g % 3, g))
        })
        .collect();
    write(&s, batch(groups), P).await;
    let s = subject.reopen(s);
    let loaded = load(&s, P).await;
    assert_eq!(loaded.len(), 1_000, "{P}");
    for l in &loaded {
        let g = l.group.0;
        assert_eq!(l.hard_state, hard_state(g), "{P}: group {g}");
        assert_eq!(l.entries, entries(1, 1 + g % 3, g), "{P}: group {g}");
    }
}

/// `compact_to` discards the prefix up to an index and keeps that entry's term; reads below
/// it are `Compacted`; appends continue above it and may not rewrite it; compacting lower
/// again changes nothing; a compaction in the same record as an append sees the append; all
/// of it survives a restart.
async fn compaction_discards_a_prefix_and_survives_restart<S: Subject>(subject: &mut S) {
    const P: &str = "compaction_discards_a_prefix_and_survives_restart";
    let s = subject.fresh();
    let mut two_terms = entries(1, 6, 1);
    two_terms.extend(entries(7, 10, 2));
    let first = append(G1, two_terms);
    write(&s, batch(vec![first, append(G2, entries(1, 3, 1))]), P).await;
    write(&s, batch(vec![compact(G1, 7)]), P).await;
    let compacted = Some(Compacted { index: 7, term: 2 });
    let check = |loaded: Vec<LoadedGroup>, last: u64| {
        assert_eq!(loaded.len(), 2, "{P}");
        assert_eq!(loaded[0].compacted, compacted, "{P}: compaction mark");
        let expected: Vec<(u64, u64)> = (8..=last).map(|i| (i, 2)).collect();
        assert_eq!(terms(&loaded[0]), expected, "{P}: the log after the mark");
        assert_eq!(loaded[1].compacted, None, "{P}: other groups untouched");
        assert_eq!(terms(&loaded[1]), [(1, 1), (2, 1), (3, 1)], "{P}");
    };
    check(load(&s, P).await, 10);
    assert!(
        matches!(
            s.entries(G1, 3, 9).await,
            Err(StorageError::Compacted {
                group: G1,
                index: 7
            })
        ),
        "{P}: a read into the compacted prefix"
    );
    let idx = |v: Vec<Entry>| v.iter().map(|e| e.index).collect::<Vec<_>>();
    assert_eq!(
        idx(read_entries(&s, G1, 8, 100, P).await),
        [8, 9, 10],
        "{P}"
    );
    assert_eq!(
        read_term(&s, G1, 7, P).await,
        Some(2),
        "{P}: the mark's term"
    );
    assert_eq!(read_term(&s, G1, 6, P).await, None, "{P}: below the mark");
    assert_eq!(read_term(&s, G1, 8, P).await, Some(2), "{P}");

    let before = load(&s, P).await;
    let rewrite = batch(vec![append(G1, entries(7, 7, 3))]);
    assert!(
        s.write(rewrite).await.is_err(),
        "{P}: rewrote a compacted entry"
    );
    assert_eq!(
        load(&s, P).await,
        before,
        "{P}: a refused write changed the state"
    );
    write(&s, batch(vec![compact(G1, 5)]), P).await;
    assert_eq!(
        load(&s, P).await,
        before,
        "{P}: compacting lower changed the state"
    );

    let s = subject.reopen(s);
    check(load(&s, P).await, 10);
    // Conflict truncation above the mark, then an append and a compaction in one record.
    let mut w = append(G1, entries(9, 12, 3));
    w.compact_to = Some(9);
    write(&s, batch(vec![w]), P).await;
    let s = subject.reopen(s);
    let loaded = group_of(&load(&s, P).await, G1, P);
    assert_eq!(
        loaded.compacted,
        Some(Compacted { index: 9, term: 3 }),
        "{P}"
    );
    assert_eq!(terms(&loaded), [(10, 3), (11, 3), (12, 3)], "{P}");
    // The whole log may go: the mark then stands for it, and appends continue after it.
    write(&s, batch(vec![compact(G1, 12)]), P).await;
    let s = subject.reopen(s);
    let loaded = group_of(&load(&s, P).await, G1, P);
    assert_eq!(
        loaded.compacted,
        Some(Compacted { index: 12, term: 3 }),
        "{P}"
    );
    assert!(loaded.entries.is_empty(), "{P}: everything compacted");
    assert!(read_entries(&s, G1, 13, 20, P).await.is_empty(), "{P}");
    write(&s, batch(vec![append(G1, entries(13, 13, 4))]), P).await;
    assert_eq!(read_term(&s, G1, 13, P).await, Some(4), "{P}");
}
