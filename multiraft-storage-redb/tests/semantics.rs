//! `RedbStorage` against the `Storage` contract: the same semantics as the testkit's
//! `MemStorage` (the reference implementation), on a real file, across reopen.

mod common;

use common::{FaultDisk, Rng, TempDir, Transfers, entry, random_batch};
use multiraft_core::{Entry, GroupId, GroupWrite, HardState, Membership, Storage, StorageError};
use multiraft_storage_redb::{MAX_QUEUED_WRITES, RedbOptions, RedbStorage};
use multiraft_testkit::MemStorage;
use multiraft_testkit::conformance::{append, batch, compact, hard_state, remove, terms};
use std::sync::Arc;

const G1: GroupId = GroupId(1);
const G2: GroupId = GroupId(2);

/// Entries `first..=last`, all of `term`.
fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
    (first..=last)
        .map(|i| entry(i, term, format!("{i}@{term}")))
        .collect()
}

/// A fresh database file in its own directory.
fn open_new(tag: &str) -> (TempDir, RedbStorage) {
    let dir = TempDir::new(tag);
    let storage = RedbStorage::open(dir.path().join("log.redb"), RedbOptions::default()).unwrap();
    (dir, storage)
}

fn reopen(dir: &TempDir, storage: RedbStorage) -> RedbStorage {
    drop(storage);
    RedbStorage::open(dir.path().join("log.redb"), RedbOptions::default()).unwrap()
}

#[tokio::test]
async fn write_then_load_every_group_sorted_and_after_reopen() {
    let (dir, s) = open_new("load");
    s.write(batch(vec![
        GroupWrite::new(G2)
            .with_membership(Membership::voters([1, 2, 3]))
            .with_hard_state(hard_state(2))
            .with_entries(entries(1, 2, 2)),
        GroupWrite::new(G1).with_membership(Membership::voters([1])),
    ]))
    .await
    .unwrap();

    let mut s = s;
    for round in 0..2 {
        if round == 1 {
            s = reopen(&dir, s);
        }
        let loaded = s.load().await.unwrap();
        assert_eq!(loaded.iter().map(|g| g.group).collect::<Vec<_>>(), [G1, G2]);
        assert_eq!(loaded[0].membership, Membership::voters([1]));
        assert_eq!(loaded[0].hard_state, HardState::default());
        assert!(loaded[0].entries.is_empty());
        assert_eq!(loaded[1].membership, Membership::voters([1, 2, 3]));
        assert_eq!(loaded[1].hard_state, hard_state(2));
        assert_eq!(loaded[1].entries, entries(1, 2, 2));
    }
}

#[tokio::test]
async fn a_group_written_without_membership_gets_the_empty_one() {
    let (_dir, s) = open_new("nomember");
    s.write(batch(vec![
        GroupWrite::new(G1).with_hard_state(hard_state(1)),
    ]))
    .await
    .unwrap();
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded[0].membership, Membership::default());
    assert_eq!(loaded[0].hard_state, hard_state(1));
}

#[tokio::test]
async fn hard_state_and_membership_are_replaced_not_merged() {
    let (dir, s) = open_new("replace");
    let set = |m: Option<Membership>, h: Option<HardState>| {
        let mut w = GroupWrite::new(G1);
        (w.membership, w.hard_state) = (m, h);
        batch(vec![w])
    };
    s.write(set(Some(Membership::voters([1, 2])), Some(hard_state(1))))
        .await
        .unwrap();
    s.write(set(None, Some(hard_state(3)))).await.unwrap();
    s.write(set(Some(Membership::voters([2, 3])), None))
        .await
        .unwrap();
    let s = reopen(&dir, s);
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded[0].hard_state, hard_state(3));
    assert_eq!(loaded[0].membership, Membership::voters([2, 3]));
}

/// Storage contract: an append at or below the last index first deletes the stored suffix
/// from that index (Raft §5.3, receiver step 3).
#[tokio::test]
async fn append_truncates_conflicting_suffix() {
    let (dir, s) = open_new("truncate");
    s.write(batch(vec![append(G1, entries(1, 5, 1))]))
        .await
        .unwrap();
    s.write(batch(vec![append(G1, entries(3, 4, 2))]))
        .await
        .unwrap();
    let loaded = s.load().await.unwrap();
    assert_eq!(terms(&loaded[0]), [(1, 1), (2, 1), (3, 2), (4, 2)]);
    assert_eq!(s.term(G1, 5).await.unwrap(), None, "the suffix is gone");
    s.write(batch(vec![append(G1, entries(5, 5, 2))]))
        .await
        .unwrap();
    let s = reopen(&dir, s);
    assert_eq!(
        terms(&s.load().await.unwrap()[0]),
        [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
    );
    // Rewriting from index 1 replaces the whole log.
    s.write(batch(vec![append(G1, entries(1, 1, 3))]))
        .await
        .unwrap();
    let s = reopen(&dir, s);
    assert_eq!(terms(&s.load().await.unwrap()[0]), [(1, 3)]);
    assert!(s.entries(G1, 2, 10).await.unwrap().is_empty());
}

/// Regression: a checkpointed run straddling the compaction mark, cut by a conflict
/// truncation to end at or below the mark, was left in the log table, and the next `load`
/// refused the file as corrupt ("log run at 1 lies below the compacted index").
#[tokio::test]
async fn a_truncation_that_leaves_a_run_wholly_compacted_deletes_it() {
    let dir = TempDir::new("straddle");
    let path = dir.path().join("log.redb");
    // Checkpoint after every write: each write below is one run or one change to runs.
    let options = RedbOptions::default().with_checkpoint_bytes(0);
    let s = RedbStorage::open(&path, options.clone()).unwrap();
    s.write(batch(vec![append(G1, entries(1, 3, 1))]))
        .await
        .unwrap();
    // The run 1..=3 now straddles the mark at 1.
    s.write(batch(vec![compact(G1, 1)])).await.unwrap();
    // Truncation from 2 cuts the run to 1..=1, wholly compacted; 2..=2 is the new run.
    s.write(batch(vec![append(G1, entries(2, 2, 2))]))
        .await
        .unwrap();
    drop(s);
    let s = RedbStorage::open(&path, options).unwrap();
    let loaded = s.load().await.unwrap();
    assert_eq!(terms(&loaded[0]), [(2, 2)]);
    assert_eq!(s.term(G1, 1).await.unwrap(), Some(1), "the compaction mark");
    assert_eq!(s.entries(G1, 2, 3).await.unwrap(), entries(2, 2, 2));
}

#[tokio::test]
async fn holes_and_malformed_batches_are_rejected_and_change_nothing() {
    let (dir, s) = open_new("invalid");
    s.write(batch(vec![append(G1, entries(1, 2, 1))]))
        .await
        .unwrap();
    let before = s.load().await.unwrap();

    let bad = [
        // A hole after index 2.
        batch(vec![append(G1, entries(4, 5, 1))]),
        // A new group must start at 1.
        batch(vec![append(G2, entries(2, 2, 1))]),
        // Index 0 does not exist.
        batch(vec![append(G1, vec![entry(0, 1, "zero")])]),
        // Not consecutive.
        batch(vec![append(G1, vec![entry(3, 1, "a"), entry(5, 1, "b")])]),
        // A valid part with an invalid part: all or nothing.
        batch(vec![
            append(G2, entries(1, 1, 1)),
            append(G1, entries(9, 9, 1)),
        ]),
        // The same group twice.
        batch(vec![
            append(G1, entries(3, 3, 1)),
            append(G1, entries(4, 4, 1)),
        ]),
        // Remove with other fields.
        batch(vec![
            GroupWrite::new(G1)
                .removing()
                .with_hard_state(hard_state(1)),
        ]),
    ];
    for b in bad {
        let err = s.write(b.clone()).await.unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{b:?}: {err}");
        assert_eq!(s.load().await.unwrap(), before, "{b:?} changed the state");
    }
    assert!(!s.is_poisoned(), "a rejected batch does not poison");
    s.write(batch(vec![append(G1, entries(3, 3, 1))]))
        .await
        .unwrap();
    let s = reopen(&dir, s);
    assert_eq!(s.entries(G1, 1, 10).await.unwrap(), entries(1, 3, 1));
}

#[tokio::test]
async fn remove_deletes_the_group_and_its_rows() {
    let (dir, s) = open_new("remove");
    s.write(batch(vec![
        append(G1, entries(1, 3, 1)),
        append(G2, entries(1, 1, 1)),
    ]))
    .await
    .unwrap();
    s.write(batch(vec![remove(G1)])).await.unwrap();
    // Removing a group that does not exist is allowed and changes nothing.
    s.write(batch(vec![remove(GroupId(42))])).await.unwrap();
    let s = reopen(&dir, s);
    let loaded = s.load().await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].group, G2);
    assert!(s.entries(G1, 1, 10).await.unwrap().is_empty());
    assert_eq!(s.term(G1, 1).await.unwrap(), None);
    // A removed group starts again from index 1 (a hole check against nothing).
    let err = s
        .write(batch(vec![append(G1, entries(2, 2, 5))]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
    s.write(batch(vec![append(G1, entries(1, 1, 5))]))
        .await
        .unwrap();
    assert_eq!(s.term(G1, 1).await.unwrap(), Some(5));
    assert_eq!(s.term(G1, 2).await.unwrap(), None);
}

#[tokio::test]
async fn entries_and_term_ranges() {
    let (_dir, s) = open_new("ranges");
    s.write(batch(vec![
        append(G1, entries(1, 5, 1)),
        append(G2, entries(1, 3, 7)),
    ]))
    .await
    .unwrap();
    s.write(batch(vec![append(G1, entries(4, 5, 2))]))
        .await
        .unwrap();
    let idx = |v: Vec<Entry>| v.iter().map(|e| e.index).collect::<Vec<_>>();
    assert_eq!(idx(s.entries(G1, 2, 4).await.unwrap()), [2, 3]);
    assert_eq!(idx(s.entries(G1, 0, 3).await.unwrap()), [1, 2]);
    assert_eq!(idx(s.entries(G1, 4, 100).await.unwrap()), [4, 5]);
    assert_eq!(
        idx(s.entries(G1, 1, u64::MAX).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(s.entries(G1, 4, 6).await.unwrap(), entries(4, 5, 2));
    assert!(s.entries(G1, 3, 3).await.unwrap().is_empty());
    assert!(s.entries(G1, 4, 2).await.unwrap().is_empty());
    assert!(s.entries(G1, 6, 9).await.unwrap().is_empty());
    assert!(s.entries(GroupId(3), 1, 9).await.unwrap().is_empty());
    // Ranges never leak into the next group's keys.
    assert_eq!(s.entries(G2, 1, 100).await.unwrap(), entries(1, 3, 7));

    assert_eq!(s.term(G1, 0).await.unwrap(), None);
    assert_eq!(s.term(G1, 3).await.unwrap(), Some(1));
    assert_eq!(s.term(G1, 4).await.unwrap(), Some(2));
    assert_eq!(s.term(G1, 6).await.unwrap(), None);
    assert_eq!(s.term(G1, u64::MAX).await.unwrap(), None);
    assert_eq!(s.term(GroupId(3), 1).await.unwrap(), None);
}

/// Reads use read transactions: they see the last commit and complete while a commit is
/// in flight (here, held inside its fsync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_an_in_flight_commit() {
    let disk = FaultDisk::new();
    let s = RedbStorage::with_backend(disk.backend(), RedbOptions::default()).unwrap();
    s.write(batch(vec![append(G1, entries(1, 2, 1))]))
        .await
        .unwrap();
    let before = s.load().await.unwrap();
    let gate = disk.hold_syncs();
    let in_flight = {
        let s = s.clone();
        tokio::spawn(async move { s.write(batch(vec![append(G1, entries(3, 3, 1))])).await })
    };
    tokio::task::spawn_blocking({
        let gate = Arc::clone(&gate);
        move || gate.wait_for_held_sync()
    })
    .await
    .unwrap();
    let reads = async {
        assert_eq!(s.load().await.unwrap(), before);
        assert_eq!(s.term(G1, 2).await.unwrap(), Some(1));
        assert_eq!(s.term(G1, 3).await.unwrap(), None, "not committed yet");
        assert_eq!(s.entries(G1, 1, 10).await.unwrap(), entries(1, 2, 1));
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), reads)
        .await
        .expect("reads blocked behind the in-flight commit");
    assert!(!in_flight.is_finished());
    gate.open();
    in_flight.await.unwrap().unwrap();
    assert_eq!(s.term(G1, 3).await.unwrap(), Some(1));
}

/// The writer's queue is bounded: while a commit is held in its fsync, writes past
/// `MAX_QUEUED_WRITES` wait before they queue, and every one commits once the disk goes on.
/// Each writes a group of its own: a writer counts in `queued_writes` once it holds its
/// place, a moment before it sends its job, so waiting for the count does not order two
/// writers' jobs. Regression: the first ones appended the next entry of one group each,
/// and under load one sent its job before the one before it, which was then refused as
/// out of order (a flaky failure in a full test run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_queue_bound_wait_for_room() {
    /// Opens the gate however the test ends: a writer thread held in its fsync would
    /// hang the storage's drop instead of letting a failure show.
    struct OpenOnDrop(Arc<common::SyncGate>);
    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            self.0.open();
        }
    }
    let disk = FaultDisk::new();
    let s = RedbStorage::with_backend(disk.backend(), RedbOptions::default()).unwrap();
    let gate = disk.hold_syncs();
    let _open = OpenOnDrop(Arc::clone(&gate));
    let extra = 10;
    let started = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    let queued = MAX_QUEUED_WRITES as u64;
    for i in 0..queued + extra {
        let writer = s.clone();
        let write = append(GroupId(1_000 + i), entries(1, 1, 1));
        let started = Arc::clone(&started);
        writers.push(tokio::spawn(async move {
            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            writer.write(batch(vec![write])).await
        }));
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while s.stats().queued_writes < (i + 1).min(queued) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("a write with room did not queue");
    }
    tokio::task::spawn_blocking({
        let gate = Arc::clone(&gate);
        move || gate.wait_for_held_sync()
    })
    .await
    .unwrap();
    // Every task has started its write (it queues or waits in that same poll), and had
    // time to finish that poll.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while started.load(std::sync::atomic::Ordering::SeqCst) < queued + extra {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a writer task never ran");
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(s.stats().queued_writes, queued);
    assert_eq!(writers.iter().filter(|w| w.is_finished()).count(), 0);
    gate.open();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    assert_eq!(s.stats().queued_writes, 0);
    for i in 0..queued + extra {
        assert_eq!(s.term(GroupId(1_000 + i), 1).await.unwrap(), Some(1));
    }
}

/// Reads work outside a tokio runtime too (they run inline there).
#[test]
fn reads_work_without_a_runtime() {
    let (_dir, s) = open_new("noruntime");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(s.write(batch(vec![append(G1, entries(1, 2, 1))])))
        .unwrap();
    drop(rt);
    let loaded = futures_lite_block_on(s.load()).unwrap();
    assert_eq!(loaded[0].entries, entries(1, 2, 1));
}

/// Drives a future on the current thread without a tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Storage contract: after a write fails, no later write reports success, and reopening
/// recovers the last durable state (here, a failing fsync).
#[tokio::test]
async fn a_failed_fsync_fails_the_write_poisons_and_reopen_recovers() {
    let disk = FaultDisk::new();
    let s = RedbStorage::with_backend(disk.backend(), RedbOptions::default()).unwrap();
    s.write(batch(vec![append(G1, entries(1, 2, 1))]))
        .await
        .unwrap();
    let before = s.load().await.unwrap();

    disk.fail_syncs_after(0);
    let err = s
        .write(batch(vec![append(G1, entries(3, 3, 1))]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Io(_)), "{err}");
    assert!(s.is_poisoned());
    assert_eq!(s.load().await.unwrap(), before, "reads see the last commit");
    for _ in 0..2 {
        let err = s
            .write(batch(vec![append(G1, entries(3, 3, 1))]))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Poisoned), "{err}");
    }
    drop(s);

    // A power loss keeps only what was synced: the failed batch is not there.
    let restarted = FaultDisk::from_image(disk.durable_image());
    let s = RedbStorage::with_backend(restarted.backend(), RedbOptions::default()).unwrap();
    assert_eq!(s.load().await.unwrap(), before);
    s.write(batch(vec![append(G1, entries(3, 3, 2))]))
        .await
        .unwrap();
    assert_eq!(s.term(G1, 3).await.unwrap(), Some(2));
}

/// A checkpoint whose commit fails poisons the storage, the next write reports its error,
/// and it is not counted as a checkpoint done. Regression (review): the count and the
/// metric took failed steps too.
#[tokio::test]
async fn a_failed_checkpoint_poisons_and_is_not_counted() {
    let disk = FaultDisk::new();
    let options = RedbOptions::default().with_checkpoint_bytes(0);
    let s = RedbStorage::with_backend(disk.backend(), options).unwrap();
    // The write's commit syncs; the checkpoint after it does not.
    disk.fail_syncs_after(1);
    s.write(batch(vec![append(G1, entries(1, 2, 1))]))
        .await
        .unwrap();
    let err = s
        .write(batch(vec![append(G1, entries(3, 3, 1))]))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Io(_)), "{err}");
    assert!(s.is_poisoned());
    assert_eq!(s.stats().checkpoints, 0);
}

#[tokio::test]
async fn a_second_handle_on_an_open_file_is_refused() {
    let (dir, s) = open_new("locked");
    let err = RedbStorage::open(dir.path().join("log.redb"), RedbOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Backend(_)), "{err}");
    // A clone shares the open database and keeps it open.
    let clone = s.clone();
    drop(s);
    assert!(RedbStorage::open(dir.path().join("log.redb"), RedbOptions::default()).is_err());
    drop(clone);
    RedbStorage::open(dir.path().join("log.redb"), RedbOptions::default()).unwrap();
}

/// Creation goes through a temporary file and a move, so a crash during creation leaves
/// no half-made database at the path; leftover temporary files are deleted (the name
/// earlier builds used too), and nothing else.
#[tokio::test]
async fn a_stale_file_from_an_interrupted_creation_is_replaced() {
    let dir = TempDir::new("creating");
    let path = dir.path().join("log.redb");
    let stale = ["log.redb.creating", "log.redb.x7Yq2b.creating"];
    let kept = [
        "log.redb.x7Yq2b",
        "other.redb.x7Yq2b.creating",
        // Another database's (`log.redb.old`) creation under way.
        "log.redb.old.x7Yq2b.creating",
    ];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.path().join(name), vec![0x5a; 8192]).unwrap();
    }
    let s = RedbStorage::open(&path, RedbOptions::default()).unwrap();
    s.write(batch(vec![append(G1, entries(1, 1, 1))]))
        .await
        .unwrap();
    for name in stale {
        assert!(!dir.path().join(name).exists(), "{name}");
    }
    for name in kept {
        assert!(dir.path().join(name).exists(), "{name}");
    }
    // Made as redb makes a file in place: 0666 less the umask, as `File::create` does.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        assert_eq!(mode(&path) & 0o777, mode(&plain) & 0o777);
    }
    let s = reopen(&dir, s);
    assert_eq!(s.term(G1, 1).await.unwrap(), Some(1));
}

/// Openers racing to create one new file end with one database at the path, held by one of
/// them; the others are refused, as a second handle on an open file is. Before, an opener
/// could rename its new file over one another opener had already opened, which then wrote
/// to a file no longer at the path: its acknowledged writes were gone at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openers_racing_to_create_one_file_share_one_database() {
    const OPENERS: usize = 4;
    for round in 0..20 {
        let dir = TempDir::new("race");
        let path = dir.path().join("log.redb");
        let start = Arc::new(std::sync::Barrier::new(OPENERS));
        let openers: Vec<_> = (0..OPENERS)
            .map(|_| {
                let (path, start) = (path.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    RedbStorage::open(&path, RedbOptions::default())
                })
            })
            .collect();
        let mut opened = Vec::new();
        for opener in openers {
            match opener.join().unwrap() {
                Ok(s) => opened.push(s),
                Err(e) => assert!(matches!(e, StorageError::Backend(_)), "round {round}: {e}"),
            }
        }
        assert_eq!(opened.len(), 1, "round {round}: openers holding a database");
        let s = opened.remove(0);
        s.write(batch(vec![append(G1, entries(1, 1, 1))]))
            .await
            .unwrap();
        let s = reopen(&dir, s);
        assert_eq!(s.term(G1, 1).await.unwrap(), Some(1), "round {round}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["log.redb"], "round {round}");
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_typed_error() {
    let dir = TempDir::new("garbage");
    let path = dir.path().join("log.redb");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = RedbStorage::open(&path, RedbOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
}

/// Differential test: a random workload of valid and invalid batches (appends, conflict
/// truncations, hard states, memberships, removals, many groups per batch) gives the same
/// results, reads and loaded state on `RedbStorage` as on the reference `MemStorage`,
/// including after a reopen.
#[tokio::test]
async fn matches_mem_storage_on_a_random_workload() {
    // Checkpoints after every write (reads see the tables only), every few writes (reads
    // merge the write-ahead records over the tables), and never in this run.
    for checkpoint_bytes in [0, 2_048, RedbOptions::DEFAULT_CHECKPOINT_BYTES] {
        matches_mem_storage(RedbOptions::default().with_checkpoint_bytes(checkpoint_bytes)).await;
    }
}

async fn matches_mem_storage(options: RedbOptions) {
    let dir = TempDir::new("differential");
    let path = dir.path().join("log.redb");
    let mut redb = RedbStorage::open(&path, options.clone()).unwrap();
    let mem = MemStorage::new();
    let mut rng = Rng::new(0x5eed);
    let mut transfers = Transfers::default();
    for step in 0..400u64 {
        let b = random_batch(
            &mut rng,
            &mem.load().await.unwrap(),
            12,
            true,
            &mut transfers,
        );
        let expected = mem.write(b.clone()).await;
        let got = redb.write(b.clone()).await;
        assert_eq!(
            got.is_ok(),
            expected.is_ok(),
            "step {step}: {b:?}: redb {got:?}, mem {expected:?}"
        );
        if let Err(e) = got {
            assert!(matches!(e, StorageError::Corrupt(_)), "{e}");
        }
        if step % 50 == 49 {
            drop(redb);
            redb = RedbStorage::open(&path, options.clone()).unwrap();
            // Both drop incoming snapshots at a start.
            mem.reopen();
        }
        assert_eq!(
            redb.load().await.unwrap(),
            mem.load().await.unwrap(),
            "step {step}, {options:?}"
        );
        let g = GroupId(rng.below(12) + 1);
        let (lo, hi) = (rng.below(8), rng.below(12));
        assert_eq!(
            redb.entries(g, lo, hi).await.map_err(|e| e.to_string()),
            mem.entries(g, lo, hi).await.map_err(|e| e.to_string()),
            "step {step}, entries({g}, {lo}, {hi}), {options:?}"
        );
        let i = rng.below(10);
        assert_eq!(
            redb.term(g, i).await.unwrap(),
            mem.term(g, i).await.unwrap(),
            "step {step}, term({g}, {i}), {options:?}"
        );
        // A chunk of the group's snapshot, or past its end, or at another index.
        let loaded = mem.load().await.unwrap();
        let at = loaded
            .iter()
            .find(|l| l.group == g)
            .and_then(|l| l.snapshot.as_ref())
            .map_or(i, |m| m.index + u64::from(rng.chance(10)));
        let seq = rng.below(5) as u32;
        assert_eq!(
            redb.snapshot_chunk(g, at, seq).await.unwrap(),
            mem.snapshot_chunk(g, at, seq).await.unwrap(),
            "step {step}, snapshot_chunk({g}, {at}, {seq}), {options:?}"
        );
    }
}
