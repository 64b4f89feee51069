//! The suite's snapshot properties ([`GroupWrite::snapshot`], [`LoadedGroup::snapshot`],
//! [`Storage::snapshot_chunk`]): chunks stored across batches, a completed snapshot
//! replacing the previous one and leaving the log alone, a log reset
//! ([`GroupWrite::log_reset`]), incoming snapshots never loaded, refused chunks changing
//! nothing, removal, compaction and restarts.

use std::ops::Range;

use multiraft_core::{
    Bytes, Compacted, GroupId, GroupWrite, LoadedGroup, Membership, SnapshotChunk, SnapshotMeta,
    Storage, StorageError,
};

use super::{
    G1, G2, Subject, append, batch, compact, entries, group_of, load, read_entries, read_term,
    remove, terms, write,
};

const G3: GroupId = GroupId(3);

/// A log reset to (`index`, `term`).
fn mark(index: u64, term: u64) -> Compacted {
    Compacted { index, term }
}

/// Runs every snapshot property, each on a fresh storage.
pub(super) async fn check_all<S: Subject>(subject: &mut S) {
    chunks_over_several_batches_complete_a_snapshot(subject).await;
    a_newer_snapshot_replaces_the_old(subject).await;
    completing_a_snapshot_leaves_the_log_alone(subject).await;
    a_log_reset_replaces_the_log(subject).await;
    chunks_that_do_not_continue_are_refused_whole(subject.fresh()).await;
    chunk_zero_starts_the_incoming_snapshot_again(subject.fresh()).await;
    an_incomplete_snapshot_is_never_loaded(subject).await;
    remove_deletes_the_snapshots(subject).await;
    compaction_after_a_snapshot(subject).await;
}

/// The metadata of a snapshot at `index` of `term`, with a membership that depends on the
/// index (so that two snapshots' metadata differ in it too).
pub fn snapshot_meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership::voters([1, 2, 3 + index % 5]),
    }
}

/// Chunk `seq` of the snapshot `meta`, completing it when `last`. Its data names the
/// snapshot and the position, repeated `seq + 1` times (chunks differ in size), so that a
/// chunk read back from the wrong snapshot or position is visible.
pub fn chunk(meta: &SnapshotMeta, seq: u32, last: bool) -> SnapshotChunk {
    let data = format!("{}@{}#{seq};", meta.index, meta.term).repeat(seq as usize + 1);
    SnapshotChunk {
        meta: meta.clone(),
        seq,
        data: Bytes::from(data),
        last,
    }
}

/// A record of `group` carrying `chunks`.
fn with_chunks(group: GroupId, chunks: Vec<SnapshotChunk>) -> GroupWrite {
    let mut w = GroupWrite::new(group);
    w.snapshot = chunks;
    w
}

/// A record of `group` carrying chunks `seqs` of `meta`, the last of them completing the
/// snapshot when `last`.
fn chunks(group: GroupId, meta: &SnapshotMeta, seqs: Range<u32>, last: bool) -> GroupWrite {
    let end = seqs.end;
    with_chunks(
        group,
        seqs.map(|seq| chunk(meta, seq, last && seq + 1 == end))
            .collect(),
    )
}

async fn read_chunk(
    s: &impl Storage,
    group: GroupId,
    index: u64,
    seq: u32,
    property: &str,
) -> Option<SnapshotChunk> {
    match s.snapshot_chunk(group, index, seq).await {
        Ok(c) => c,
        Err(e) => panic!("{property}: snapshot_chunk({group}, {index}, {seq}) failed: {e}"),
    }
}

/// `group`'s complete snapshot is `meta`, of `count` chunks as [`chunk`] makes them: `load`
/// reports it, `snapshot_chunk` returns each chunk, then `None`.
async fn check_snapshot(
    s: &impl Storage,
    group: GroupId,
    meta: &SnapshotMeta,
    count: u32,
    property: &str,
) {
    let loaded = group_of(&load(s, property).await, group, property);
    assert_eq!(loaded.snapshot.as_ref(), Some(meta), "{property}: loaded");
    for seq in 0..count {
        assert_eq!(
            read_chunk(s, group, meta.index, seq, property).await,
            Some(chunk(meta, seq, seq + 1 == count)),
            "{property}: chunk {seq} of {count}"
        );
    }
    for past in [count, count + 1, u32::MAX] {
        assert_eq!(
            read_chunk(s, group, meta.index, past, property).await,
            None,
            "{property}: chunk {past} past the end"
        );
    }
}

/// Chunks written over several batches, mixed with other groups' writes, become the group's
/// snapshot with the chunk marked `last`: not before, and for that group and index only.
/// It survives a restart.
async fn chunks_over_several_batches_complete_a_snapshot<S: Subject>(subject: &mut S) {
    const P: &str = "chunks_over_several_batches_complete_a_snapshot";
    let s = subject.fresh();
    write(
        &s,
        batch(vec![
            append(G1, entries(1, 5, 1)),
            append(G2, entries(1, 1, 1)),
        ]),
        P,
    )
    .await;
    let m = snapshot_meta(3, 1);
    write(&s, batch(vec![chunks(G1, &m, 0..1, false)]), P).await;
    let incomplete = |loaded: Vec<LoadedGroup>, what: &str| {
        assert_eq!(group_of(&loaded, G1, P).snapshot, None, "{P}: {what}");
    };
    incomplete(load(&s, P).await, "after chunk 0");
    assert_eq!(read_chunk(&s, G1, 3, 0, P).await, None, "{P}: incomplete");
    write(
        &s,
        batch(vec![
            append(G2, entries(2, 2, 1)),
            chunks(G1, &m, 1..3, false),
        ]),
        P,
    )
    .await;
    incomplete(load(&s, P).await, "after chunk 2");
    write(&s, batch(vec![chunks(G1, &m, 3..4, true)]), P).await;
    check_snapshot(&s, G1, &m, 4, P).await;
    let loaded = load(&s, P).await;
    let g1 = group_of(&loaded, G1, P);
    assert_eq!(
        terms(&g1),
        (1..=5).map(|i| (i, 1)).collect::<Vec<_>>(),
        "{P}"
    );
    assert_eq!(g1.compacted, None, "{P}: the log holds 3@1, it stays");
    let g2 = group_of(&loaded, G2, P);
    assert_eq!(g2.snapshot, None, "{P}: other groups have none");
    assert_eq!(terms(&g2), [(1, 1), (2, 1)], "{P}");
    assert_eq!(
        read_chunk(&s, G1, 2, 0, P).await,
        None,
        "{P}: another index"
    );
    assert_eq!(
        read_chunk(&s, G1, 4, 0, P).await,
        None,
        "{P}: another index"
    );
    assert_eq!(
        read_chunk(&s, G2, 3, 0, P).await,
        None,
        "{P}: another group"
    );

    let s = subject.reopen(s);
    assert_eq!(load(&s, P).await, loaded, "{P}: after a restart");
    check_snapshot(&s, G1, &m, 4, P).await;
}

/// The complete snapshot stays while a newer one is incoming; once that completes, the old
/// one is gone. A snapshot received again at the same index replaces the stored one whole.
async fn a_newer_snapshot_replaces_the_old<S: Subject>(subject: &mut S) {
    const P: &str = "a_newer_snapshot_replaces_the_old";
    let s = subject.fresh();
    write(&s, batch(vec![append(G1, entries(1, 10, 1))]), P).await;
    let m1 = snapshot_meta(4, 1);
    write(&s, batch(vec![chunks(G1, &m1, 0..2, true)]), P).await;
    check_snapshot(&s, G1, &m1, 2, P).await;
    let m2 = snapshot_meta(8, 1);
    write(&s, batch(vec![chunks(G1, &m2, 0..1, false)]), P).await;
    check_snapshot(&s, G1, &m1, 2, P).await;
    write(&s, batch(vec![chunks(G1, &m2, 1..3, true)]), P).await;
    check_snapshot(&s, G1, &m2, 3, P).await;
    assert_eq!(read_chunk(&s, G1, 4, 0, P).await, None, "{P}: the old one");
    assert_eq!(read_chunk(&s, G1, 4, 1, P).await, None, "{P}: the old one");

    let again = SnapshotChunk {
        data: Bytes::from_static(b"sent again"),
        ..chunk(&m2, 0, true)
    };
    write(&s, batch(vec![with_chunks(G1, vec![again.clone()])]), P).await;
    let mut s = s;
    for restarted in [false, true] {
        if restarted {
            s = subject.reopen(s);
        }
        assert_eq!(
            read_chunk(&s, G1, 8, 0, P).await.as_ref(),
            Some(&again),
            "{P}: the snapshot received again (restarted: {restarted})"
        );
        assert_eq!(
            read_chunk(&s, G1, 8, 1, P).await,
            None,
            "{P}: its one chunk"
        );
        assert_eq!(read_chunk(&s, G1, 4, 0, P).await, None, "{P}");
        let g1 = group_of(&load(&s, P).await, G1, P);
        assert_eq!(g1.snapshot.as_ref(), Some(&m2), "{P}");
        assert_eq!(terms(&g1).len(), 10, "{P}: the log holds both snapshots");
    }
}

/// Completing a snapshot keeps the log as it is — whether the log holds the snapshot's last
/// entry or not — in the same record as an append after it too.
async fn completing_a_snapshot_leaves_the_log_alone<S: Subject>(subject: &mut S) {
    const P: &str = "completing_a_snapshot_leaves_the_log_alone";
    let s = subject.fresh();
    let mut two_terms = entries(1, 6, 1);
    two_terms.extend(entries(7, 10, 2));
    let first = append(G1, two_terms);
    write(&s, batch(vec![first]), P).await;
    let log: Vec<(u64, u64)> = (1..=10).map(|i| (i, if i <= 6 { 1 } else { 2 })).collect();
    let m = snapshot_meta(8, 2);
    write(&s, batch(vec![chunks(G1, &m, 0..1, true)]), P).await;
    let g1 = group_of(&load(&s, P).await, G1, P);
    assert_eq!(terms(&g1), log, "{P}: the log stays");
    assert_eq!(g1.compacted, None, "{P}: and is not compacted");
    check_snapshot(&s, G1, &m, 1, P).await;

    let m2 = snapshot_meta(9, 2);
    let w = chunks(G1, &m2, 0..2, true).with_entries(entries(11, 12, 2));
    write(&s, batch(vec![w]), P).await;
    let mut log = log;
    log.extend([(11, 2), (12, 2)]);
    assert_eq!(terms(&group_of(&load(&s, P).await, G1, P)), log, "{P}");
    check_snapshot(&s, G1, &m2, 2, P).await;

    // A snapshot of another term at 10, or beyond the end: the log stays all the same.
    for m in [snapshot_meta(10, 5), snapshot_meta(30, 5)] {
        write(&s, batch(vec![chunks(G1, &m, 0..1, true)]), P).await;
        assert_eq!(terms(&group_of(&load(&s, P).await, G1, P)), log, "{P}");
        check_snapshot(&s, G1, &m, 1, P).await;
    }
    let m2 = snapshot_meta(9, 2);
    write(&s, batch(vec![chunks(G1, &m2, 0..2, true)]), P).await;

    write(&s, batch(vec![compact(G1, 10)]), P).await;
    let m3 = snapshot_meta(10, 2);
    write(&s, batch(vec![chunks(G1, &m3, 0..1, true)]), P).await;
    let check = |loaded: Vec<LoadedGroup>| {
        let g1 = group_of(&loaded, G1, P);
        assert_eq!(g1.compacted, Some(Compacted { index: 10, term: 2 }), "{P}");
        assert_eq!(terms(&g1), [(11, 2), (12, 2)], "{P}: the mark holds 10@2");
        assert_eq!(g1.snapshot, Some(m3.clone()), "{P}");
    };
    check(load(&s, P).await);
    let s = subject.reopen(s);
    check(load(&s, P).await);
    check_snapshot(&s, G1, &m3, 1, P).await;
}

/// A log reset (with the last chunk of a snapshot the log lacks, as the node sends it)
/// deletes every entry and compacts the log to the reset's entry: the next append is at its
/// index + 1, lower ones are refused. The reset comes before the record's entries, and a
/// refused record completes nothing.
async fn a_log_reset_replaces_the_log<S: Subject>(subject: &mut S) {
    const P: &str = "a_log_reset_replaces_the_log";
    let s = subject.fresh();
    write(
        &s,
        batch(vec![
            append(G1, entries(1, 5, 1)),
            append(G2, entries(1, 2, 1)),
        ]),
        P,
    )
    .await;
    let m = snapshot_meta(8, 3);
    write(&s, batch(vec![chunks(G1, &m, 0..1, false)]), P).await;
    let last = chunks(G1, &m, 1..2, true).with_log_reset(mark(8, 3));
    write(&s, batch(vec![last]), P).await;
    let loaded = load(&s, P).await;
    let g1 = group_of(&loaded, G1, P);
    assert!(g1.entries.is_empty(), "{P}: every entry is deleted");
    assert_eq!(g1.compacted, Some(Compacted { index: 8, term: 3 }), "{P}");
    assert_eq!(terms(&group_of(&loaded, G2, P)), [(1, 1), (2, 1)], "{P}");
    check_snapshot(&s, G1, &m, 2, P).await;
    assert_eq!(
        read_term(&s, G1, 8, P).await,
        Some(3),
        "{P}: the mark's term"
    );
    assert_eq!(
        read_term(&s, G1, 5, P).await,
        None,
        "{P}: the old log is gone"
    );
    assert!(
        matches!(
            s.entries(G1, 1, 10).await,
            Err(StorageError::Compacted {
                group: G1,
                index: 8
            })
        ),
        "{P}: a read below the mark"
    );
    assert!(read_entries(&s, G1, 9, 20, P).await.is_empty(), "{P}");

    let before = load(&s, P).await;
    for (what, low) in [("below the mark", 7), ("at the old end", 6), ("a hole", 10)] {
        let refused = s.write(batch(vec![append(G1, entries(low, 10, 3))])).await;
        assert!(refused.is_err(), "{P}: an append {what} was accepted");
        assert_eq!(load(&s, P).await, before, "{P}: an append {what}");
    }
    write(&s, batch(vec![append(G1, entries(9, 12, 3))]), P).await;
    assert_eq!(
        terms(&group_of(&load(&s, P).await, G1, P)),
        [(9, 3), (10, 3), (11, 3), (12, 3)],
        "{P}: the append at index + 1"
    );

    // 10 is held, of term 3: a snapshot at 10 of term 4 conflicts; the entries after it go
    // too.
    let m2 = snapshot_meta(10, 4);
    let w = chunks(G1, &m2, 0..1, true).with_log_reset(mark(10, 4));
    write(&s, batch(vec![w]), P).await;
    let g1 = group_of(&load(&s, P).await, G1, P);
    assert_eq!(g1.compacted, Some(Compacted { index: 10, term: 4 }), "{P}");
    assert!(g1.entries.is_empty(), "{P}: after the conflict: {g1:?}");
    assert_eq!(
        read_term(&s, G1, 11, P).await,
        None,
        "{P}: after the conflict"
    );
    assert!(read_entries(&s, G1, 11, 20, P).await.is_empty(), "{P}");
    check_snapshot(&s, G1, &m2, 1, P).await;

    // The record's own entries follow its snapshot step.
    let m3 = snapshot_meta(15, 4);
    let w = chunks(G1, &m3, 0..2, true)
        .with_log_reset(mark(15, 4))
        .with_entries(entries(16, 17, 4));
    write(&s, batch(vec![w]), P).await;
    let check = |loaded: Vec<LoadedGroup>| {
        let g1 = group_of(&loaded, G1, P);
        assert_eq!(g1.compacted, Some(Compacted { index: 15, term: 4 }), "{P}");
        assert_eq!(terms(&g1), [(16, 4), (17, 4)], "{P}: after the reset");
        assert_eq!(g1.snapshot, Some(m3.clone()), "{P}");
    };
    check(load(&s, P).await);

    // Entries continuing the old log in the record that resets it leave a hole: refused,
    // the snapshot with them.
    let before = load(&s, P).await;
    let m4 = snapshot_meta(20, 4);
    let w = chunks(G1, &m4, 0..1, true)
        .with_log_reset(mark(20, 4))
        .with_entries(entries(18, 18, 4));
    assert!(
        s.write(batch(vec![w])).await.is_err(),
        "{P}: a hole after a reset"
    );
    assert_eq!(load(&s, P).await, before, "{P}: the refused record");
    assert_eq!(read_chunk(&s, G1, 20, 0, P).await, None, "{P}");
    check_snapshot(&s, G1, &m3, 2, P).await;
    let s = subject.reopen(s);
    check(load(&s, P).await);
    write(&s, batch(vec![append(G1, entries(18, 18, 4))]), P).await;
    assert_eq!(read_term(&s, G1, 18, P).await, Some(4), "{P}");
}

/// A chunk that does not continue the incoming snapshot (skipping or repeating a chunk, of
/// other metadata, with nothing incoming, after the last), or chunks in a record that are not
/// consecutive chunks of one snapshot, are `Corrupt`, and the batch changes nothing: not
/// its valid parts, not the incoming snapshot, which can then be completed.
async fn chunks_that_do_not_continue_are_refused_whole(s: impl Storage) {
    const P: &str = "chunks_that_do_not_continue_are_refused_whole";
    write(&s, batch(vec![append(G1, entries(1, 3, 1))]), P).await;
    let m = snapshot_meta(2, 1);
    write(&s, batch(vec![chunks(G1, &m, 0..1, true)]), P).await;
    let n = snapshot_meta(3, 1);
    write(&s, batch(vec![chunks(G1, &n, 0..2, false)]), P).await;
    let before = load(&s, P).await;
    let other_term = snapshot_meta(3, 2);
    let other_membership = SnapshotMeta {
        membership: Membership::voters([9]),
        ..n.clone()
    };
    let bad = [
        ("a chunk skipped", chunks(G1, &n, 3..4, true)),
        ("a chunk repeated", chunks(G1, &n, 1..2, false)),
        ("a chunk before", chunks(G1, &n, 1..3, true)),
        ("another term", chunks(G1, &other_term, 2..3, true)),
        (
            "another membership",
            chunks(G1, &other_membership, 2..3, true),
        ),
        ("nothing incoming", chunks(G2, &n, 1..2, true)),
        ("continuing the complete one", chunks(G1, &m, 1..2, true)),
        (
            "not consecutive",
            with_chunks(G1, vec![chunk(&n, 2, false), chunk(&n, 4, true)]),
        ),
        (
            "a chunk after the last",
            with_chunks(G1, vec![chunk(&n, 2, true), chunk(&n, 3, false)]),
        ),
        (
            "two snapshots in a record",
            with_chunks(G1, vec![chunk(&other_term, 0, false), chunk(&n, 1, true)]),
        ),
        (
            "remove with a chunk",
            GroupWrite::new(G1)
                .removing()
                .with_snapshot_chunk(chunk(&n, 2, true)),
        ),
    ];
    for (what, w) in bad {
        let refused = s.write(batch(vec![append(G3, entries(1, 1, 1)), w])).await;
        assert!(
            matches!(refused, Err(StorageError::Corrupt(_))),
            "{P}: {what}: {refused:?}"
        );
        assert_eq!(load(&s, P).await, before, "{P}: {what} changed the state");
        check_snapshot(&s, G1, &m, 1, P).await;
    }
    // A valid new snapshot in a batch with an invalid part does not replace the incoming one.
    let w = chunks(G1, &other_term, 0..1, false);
    let refused = s.write(batch(vec![w, append(G3, entries(5, 5, 1))])).await;
    assert!(refused.is_err(), "{P}: a hole was accepted");
    assert_eq!(
        load(&s, P).await,
        before,
        "{P}: a refused batch changed the state"
    );
    write(&s, batch(vec![chunks(G1, &n, 2..3, true)]), P).await;
    check_snapshot(&s, G1, &n, 3, P).await;
    assert_eq!(read_chunk(&s, G1, 2, 0, P).await, None, "{P}: replaced");
}

/// A chunk 0 replaces the incoming snapshot, whatever it holds (of another snapshot, or of
/// the same one: a transfer started again).
async fn chunk_zero_starts_the_incoming_snapshot_again(s: impl Storage) {
    const P: &str = "chunk_zero_starts_the_incoming_snapshot_again";
    write(&s, batch(vec![append(G1, entries(1, 5, 1))]), P).await;
    let a = snapshot_meta(4, 1);
    let b = snapshot_meta(5, 1);
    write(&s, batch(vec![chunks(G1, &a, 0..3, false)]), P).await;
    write(&s, batch(vec![chunks(G1, &b, 0..1, false)]), P).await;
    let refused = s.write(batch(vec![chunks(G1, &a, 3..4, true)])).await;
    assert!(
        matches!(refused, Err(StorageError::Corrupt(_))),
        "{P}: the replaced snapshot was continued: {refused:?}"
    );
    write(&s, batch(vec![chunks(G1, &b, 0..1, false)]), P).await;
    write(&s, batch(vec![chunks(G1, &b, 1..2, true)]), P).await;
    check_snapshot(&s, G1, &b, 2, P).await;
    assert_eq!(
        read_chunk(&s, G1, 4, 0, P).await,
        None,
        "{P}: never complete"
    );
}

/// Chunks without the last one are never loaded, nor readable, nor change the log; the
/// complete snapshot stays loaded, across a restart too. After a restart a new snapshot can
/// start.
async fn an_incomplete_snapshot_is_never_loaded<S: Subject>(subject: &mut S) {
    const P: &str = "an_incomplete_snapshot_is_never_loaded";
    let s = subject.fresh();
    write(&s, batch(vec![append(G1, entries(1, 4, 1))]), P).await;
    let m = snapshot_meta(2, 1);
    write(&s, batch(vec![chunks(G1, &m, 0..2, true)]), P).await;
    let n = snapshot_meta(9, 2);
    let n2 = snapshot_meta(6, 1);
    write(
        &s,
        batch(vec![
            chunks(G1, &n, 0..2, false),
            chunks(G2, &n2, 0..1, false).with_membership(Membership::voters([1])),
        ]),
        P,
    )
    .await;
    let check = |loaded: Vec<LoadedGroup>| {
        let g1 = group_of(&loaded, G1, P);
        assert_eq!(g1.snapshot, Some(m.clone()), "{P}: the complete one");
        assert_eq!(terms(&g1).len(), 4, "{P}: the log is untouched");
        assert_eq!(g1.compacted, None, "{P}");
        let g2 = group_of(&loaded, G2, P);
        assert_eq!(g2.snapshot, None, "{P}: only an incoming one");
        assert_eq!(g2.compacted, None, "{P}");
        assert_eq!(g2.membership, Membership::voters([1]), "{P}");
    };
    check(load(&s, P).await);
    assert_eq!(read_chunk(&s, G1, 9, 0, P).await, None, "{P}");
    assert_eq!(read_chunk(&s, G2, 6, 0, P).await, None, "{P}");
    check_snapshot(&s, G1, &m, 2, P).await;

    let s = subject.reopen(s);
    check(load(&s, P).await);
    assert_eq!(
        read_chunk(&s, G1, 9, 0, P).await,
        None,
        "{P}: after a restart"
    );
    assert_eq!(
        read_chunk(&s, G2, 6, 0, P).await,
        None,
        "{P}: after a restart"
    );
    check_snapshot(&s, G1, &m, 2, P).await;
    write(&s, batch(vec![chunks(G1, &n, 0..1, true)]), P).await;
    check_snapshot(&s, G1, &n, 1, P).await;
}

/// Removing a group deletes its complete and incoming snapshots; other groups keep theirs.
async fn remove_deletes_the_snapshots<S: Subject>(subject: &mut S) {
    const P: &str = "remove_deletes_the_snapshots";
    let s = subject.fresh();
    write(
        &s,
        batch(vec![
            append(G1, entries(1, 3, 1)),
            append(G2, entries(1, 3, 1)),
        ]),
        P,
    )
    .await;
    let m1 = snapshot_meta(3, 1);
    let n1 = snapshot_meta(5, 1);
    let m2 = snapshot_meta(2, 1);
    write(
        &s,
        batch(vec![
            chunks(G1, &m1, 0..2, true),
            chunks(G2, &m2, 0..1, true),
        ]),
        P,
    )
    .await;
    write(&s, batch(vec![chunks(G1, &n1, 0..1, false)]), P).await;
    write(&s, batch(vec![remove(G1)]), P).await;
    let loaded = load(&s, P).await;
    assert_eq!(loaded.len(), 1, "{P}: {loaded:?}");
    check_snapshot(&s, G2, &m2, 1, P).await;
    for seq in 0..2 {
        assert_eq!(
            read_chunk(&s, G1, 3, seq, P).await,
            None,
            "{P}: chunk {seq}"
        );
    }

    write(&s, batch(vec![append(G1, entries(1, 1, 4))]), P).await;
    let refused = s.write(batch(vec![chunks(G1, &n1, 1..2, true)])).await;
    assert!(
        matches!(refused, Err(StorageError::Corrupt(_))),
        "{P}: the incoming snapshot survived the removal: {refused:?}"
    );
    let check = |loaded: Vec<LoadedGroup>| {
        let g1 = group_of(&loaded, G1, P);
        assert_eq!(g1.snapshot, None, "{P}: a new group has none");
        assert_eq!(terms(&g1), [(1, 4)], "{P}");
    };
    check(load(&s, P).await);
    let s = subject.reopen(s);
    check(load(&s, P).await);
    assert_eq!(
        read_chunk(&s, G1, 3, 0, P).await,
        None,
        "{P}: after a restart"
    );
    assert_eq!(
        read_chunk(&s, G1, 5, 0, P).await,
        None,
        "{P}: after a restart"
    );
    check_snapshot(&s, G2, &m2, 1, P).await;
}

/// Compaction after a snapshot: in the record completing it, or later; it leaves the
/// snapshot alone. After a snapshot that reset the log, compacting to its index or below
/// changes nothing, past it is refused, and appends compact as usual.
async fn compaction_after_a_snapshot<S: Subject>(subject: &mut S) {
    const P: &str = "compaction_after_a_snapshot";
    let s = subject.fresh();
    write(&s, batch(vec![append(G1, entries(1, 10, 1))]), P).await;
    let m = snapshot_meta(6, 1);
    write(
        &s,
        batch(vec![chunks(G1, &m, 0..2, true).compacting_to(6)]),
        P,
    )
    .await;
    let g1 = group_of(&load(&s, P).await, G1, P);
    assert_eq!(g1.compacted, Some(Compacted { index: 6, term: 1 }), "{P}");
    assert_eq!(
        terms(&g1),
        (7..=10).map(|i| (i, 1)).collect::<Vec<_>>(),
        "{P}"
    );
    check_snapshot(&s, G1, &m, 2, P).await;
    assert!(
        matches!(
            s.entries(G1, 5, 8).await,
            Err(StorageError::Compacted { index: 6, .. })
        ),
        "{P}: a read below the mark"
    );
    write(&s, batch(vec![compact(G1, 9)]), P).await;
    let g1 = group_of(&load(&s, P).await, G1, P);
    assert_eq!(g1.compacted, Some(Compacted { index: 9, term: 1 }), "{P}");
    assert_eq!(terms(&g1), [(10, 1)], "{P}");
    check_snapshot(&s, G1, &m, 2, P).await;

    let m2 = snapshot_meta(20, 2);
    let w = chunks(G1, &m2, 0..2, true).with_log_reset(mark(20, 2));
    write(&s, batch(vec![w]), P).await;
    let before = load(&s, P).await;
    let g1 = group_of(&before, G1, P);
    assert_eq!(g1.compacted, Some(Compacted { index: 20, term: 2 }), "{P}");
    assert!(g1.entries.is_empty(), "{P}");
    for to in [20, 15] {
        write(&s, batch(vec![compact(G1, to)]), P).await;
        assert_eq!(load(&s, P).await, before, "{P}: compacting to {to}");
    }
    let refused = s.write(batch(vec![compact(G1, 21)])).await;
    assert!(refused.is_err(), "{P}: a compaction past the last entry");
    assert_eq!(load(&s, P).await, before, "{P}: the refused compaction");
    let w = append(G1, entries(21, 24, 2)).compacting_to(22);
    write(&s, batch(vec![w]), P).await;
    let check = |loaded: Vec<LoadedGroup>| {
        let g1 = group_of(&loaded, G1, P);
        assert_eq!(g1.compacted, Some(Compacted { index: 22, term: 2 }), "{P}");
        assert_eq!(terms(&g1), [(23, 2), (24, 2)], "{P}");
        assert_eq!(g1.snapshot, Some(m2.clone()), "{P}");
    };
    check(load(&s, P).await);
    let s = subject.reopen(s);
    check(load(&s, P).await);
    check_snapshot(&s, G1, &m2, 2, P).await;
    assert_eq!(
        read_chunk(&s, G1, 6, 0, P).await,
        None,
        "{P}: the replaced one"
    );
}
