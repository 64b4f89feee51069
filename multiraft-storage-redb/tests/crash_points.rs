//! Crash-point test: a workload of many small batches across many groups runs on a disk
//! that keeps a live and a durable image; at every `sync_data` call the test takes what a
//! crash at that instant could leave (the durable image alone, and the durable image plus a
//! random, possibly torn, subset of the unsynced writes) and checks, on each image:
//!
//! - the database opens and `load()` succeeds;
//! - every batch whose `write` returned `Ok` is fully present (durability of acknowledged
//!   writes: the `Storage` contract, docs/design.md §3.1 rule 1);
//! - no batch is partially present: the state equals the model after exactly the
//!   acknowledged batches, or after those plus the one in flight (atomicity);
//! - every complete snapshot `load` reports has all of its chunks, with their data, and no
//!   more: the workload sends snapshot chunks over several batches, completing snapshots
//!   the log holds and snapshots that reset it, so a crash lands while a snapshot is
//!   incoming, as it completes, and as an old one's data is deleted;
//! - no group's term goes backwards, and its vote in a term never changes (Raft Figure 2:
//!   `currentTerm`/`votedFor` are persistent state);
//! - the recovered database accepts new writes.
//!
//! The model is the testkit's `MemStorage`, the reference implementation of the contract.
//! `MULTIRAFT_CRASH_BATCHES` sets the workload length (default 1,100 batches) and
//! `MULTIRAFT_CRASH_SEED` the workload's seed (default 0xC0FFEE00).

mod common;

use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use common::{FaultDisk, Rng, Transfers, entry, random_batch, snapshot_chunks};
use multiraft_core::{GroupId, GroupWrite, LoadedGroup, Storage, StorageError, WriteBatch};
use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_testkit::MemStorage;

const GROUPS: u64 = 24;
const DEFAULT_SEED: u64 = 0xC0FF_EE00;
/// Small, so that the workload checkpoints often (each checkpoint is a sync point).
const CHECKPOINT_BYTES: usize = 4_096;

fn seed() -> u64 {
    std::env::var("MULTIRAFT_CRASH_SEED")
        .ok()
        .and_then(|v| {
            let v = v.trim_start_matches("0x");
            u64::from_str_radix(v, 16).ok()
        })
        .unwrap_or(DEFAULT_SEED)
}

/// What the state may be after a crash at the current instant.
struct Expect {
    /// `RedbStorage::with_backend` has not returned yet: the database is being created.
    creating: bool,
    /// After every acknowledged batch.
    acked: Vec<LoadedGroup>,
    /// After the acknowledged batches and the one in flight (equal to `acked` when none is).
    in_flight: Vec<LoadedGroup>,
}

struct Case {
    sync: u64,
    creating: bool,
    /// Not a sync point: a crash between two writes.
    between_writes: bool,
    images: Vec<(&'static str, Vec<u8>)>,
    acked: Vec<LoadedGroup>,
    in_flight: Vec<LoadedGroup>,
}

#[test]
fn a_crash_at_every_sync_point_recovers_exactly_the_acknowledged_batches() {
    let batches: u64 = std::env::var("MULTIRAFT_CRASH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_100);
    let started = Instant::now();
    let expect = Arc::new(Mutex::new(Expect {
        creating: true,
        acked: Vec::new(),
        in_flight: Vec::new(),
    }));
    let (cases, rx) = sync_channel::<Case>(4);
    let verifier = std::thread::spawn(move || verify_all(&rx));

    let disk = FaultDisk::new();
    let between_writes = cases.clone();
    {
        let expect = Arc::clone(&expect);
        disk.on_sync(move |point| {
            let e = expect.lock().unwrap();
            let mut rng = Rng::new(seed() ^ point.number);
            let mut images = vec![
                ("clean", point.clean_image()),
                ("torn", point.torn_image(&mut rng)),
            ];
            if point.number % 4 == 0 {
                images.push(("torn", point.torn_image(&mut rng)));
            }
            let case = Case {
                sync: point.number,
                creating: e.creating,
                between_writes: false,
                images,
                acked: e.acked.clone(),
                in_flight: e.in_flight.clone(),
            };
            cases.send(case).expect("the verifier stopped");
        });
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (mut chunk_records, mut completions) = (0u64, 0u64);
    rt.block_on(async {
        // Checkpoints every dozen batches or so: crash points fall in checkpoints too.
        let options = RedbOptions::default().with_checkpoint_bytes(CHECKPOINT_BYTES);
        let storage = RedbStorage::with_backend(disk.backend(), options).unwrap();
        expect.lock().unwrap().creating = false;
        let model = MemStorage::new();
        let mut rng = Rng::new(seed());
        let mut transfers = Transfers::default();
        for i in 0..batches {
            let state = model.load().await.unwrap();
            let batch = random_batch(&mut rng, &state, GROUPS, false, &mut transfers);
            for w in &batch.groups {
                chunk_records += u64::from(!w.snapshot.is_empty());
                completions += u64::from(w.completed_snapshot().is_some());
            }
            model.write(batch.clone()).await.unwrap();
            expect.lock().unwrap().in_flight = model.load().await.unwrap();
            storage
                .write(batch)
                .await
                .unwrap_or_else(|e| panic!("batch {i}: {e}"));
            let acked = {
                let mut e = expect.lock().unwrap();
                e.acked = e.in_flight.clone();
                e.acked.clone()
            };
            if i % 50 == 49 {
                // A crash between writes, with nothing in flight: exactly the acknowledged
                // state. (Catches a commit that never syncs, which has no sync point.) A
                // checkpoint step may be running meanwhile; it does not change what a load
                // returns. Lock order: the disk's lock is taken without holding `expect`,
                // since the sync hook (run by the writer thread under the disk's lock) takes
                // `expect`.
                let (sync, image) = (disk.syncs(), disk.durable_image());
                between_writes
                    .send(Case {
                        sync,
                        creating: false,
                        between_writes: true,
                        images: vec![("between writes", image)],
                        acked: acked.clone(),
                        in_flight: acked,
                    })
                    .unwrap();
            }
        }
        let loaded = storage.load().await.unwrap();
        assert_eq!(loaded, model.load().await.unwrap());
        check_snapshot_data(&storage, &loaded).await;
    });
    // The storage is closed (its clean-shutdown syncs were checked too); the hook holds the
    // last sender.
    disk.clear_hook();
    drop(between_writes);
    let Counts {
        points,
        between,
        images,
        creation_points,
        creation_refused,
    } = verifier.join().expect("verifier panicked");
    eprintln!(
        "{batches} batches ({chunk_records} group writes with snapshot chunks, \
         {completions} completing a snapshot): {points} sync points after creation and \
         {between} points between writes, {images} crash images verified; plus \
         {creation_points} sync points during creation ({creation_refused} images refused as \
         not a database); in {:?}",
        started.elapsed()
    );
    assert_eq!(
        points + creation_points,
        disk.syncs(),
        "every sync point was checked"
    );
    assert_eq!(between, batches / 50);
    if batches >= 1_100 {
        assert!(points >= 1_000, "only {points} crash points");
        assert!(
            completions >= 40 && chunk_records >= completions + 20,
            "the workload sent too few snapshots: {chunk_records} records with chunks, \
             {completions} completions"
        );
    }
}

/// Every complete snapshot in `loaded` has exactly the chunks the workload sent for it.
async fn check_snapshot_data(storage: &RedbStorage, loaded: &[LoadedGroup]) {
    for l in loaded {
        let Some(meta) = &l.snapshot else { continue };
        let chunks = snapshot_chunks(l.group.0, meta);
        for c in &chunks {
            let read = storage.snapshot_chunk(l.group, meta.index, c.seq).await;
            assert_eq!(
                read.unwrap_or_else(|e| panic!("snapshot_chunk fails: {e}"))
                    .as_ref(),
                Some(c),
                "{}: chunk {} of the snapshot at {}",
                l.group.0,
                c.seq,
                meta.index
            );
        }
        let past = chunks.len() as u32;
        assert_eq!(
            storage
                .snapshot_chunk(l.group, meta.index, past)
                .await
                .unwrap(),
            None,
            "{}: a chunk past the snapshot at {}",
            l.group.0,
            meta.index
        );
    }
}

/// Prints which crash image was being checked if the check panics.
struct Context<'a>(&'a str, u64);

impl Drop for Context<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "while checking the {} image of sync point {} (MULTIRAFT_CRASH_SEED={:#x})",
                self.0,
                self.1,
                seed()
            );
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// Sync points after the database was created, each checked on several images.
    points: u64,
    /// Crashes between writes (not at a sync point), one image each.
    between: u64,
    images: u64,
    /// Sync points while `with_backend` was creating the database: nothing was acknowledged
    /// yet. redb writes its magic number last, so a crash there leaves either a database or
    /// a file that is refused as "not a redb database" (a typed error, never a panic).
    /// `RedbStorage::open` avoids the latter for files by creating under a temporary name
    /// and renaming.
    creation_points: u64,
    creation_refused: u64,
}

fn verify_all(cases: &Receiver<Case>) -> Counts {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut counts = Counts::default();
    for case in cases {
        if case.creating {
            counts.creation_points += 1;
        } else if case.between_writes {
            counts.between += 1;
        } else {
            counts.points += 1;
        }
        for (variant, image) in case.images {
            let _context = Context(variant, case.sync);
            if case.creating {
                let disk = FaultDisk::from_image(image);
                match RedbStorage::with_backend(disk.backend(), RedbOptions::default()) {
                    Ok(s) => assert!(rt.block_on(s.load()).unwrap().is_empty()),
                    Err(StorageError::Corrupt(_)) => counts.creation_refused += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
                continue;
            }
            counts.images += 1;
            rt.block_on(verify(image, &case.acked, &case.in_flight));
        }
    }
    counts
}

async fn verify(image: Vec<u8>, acked: &[LoadedGroup], in_flight: &[LoadedGroup]) {
    let disk = FaultDisk::from_image(image);
    let storage = RedbStorage::with_backend(disk.backend(), RedbOptions::default())
        .unwrap_or_else(|e| panic!("the database does not open: {e}"));
    let loaded = storage
        .load()
        .await
        .unwrap_or_else(|e| panic!("load fails: {e}"));
    // Hard state never goes backwards for an acknowledged group (unless the in-flight batch
    // removed it).
    for l in &loaded {
        if let Some(a) = acked.iter().find(|a| a.group == l.group) {
            assert!(
                l.hard_state.term >= a.hard_state.term,
                "{}: term went back from {} to {}",
                l.group.0,
                a.hard_state.term,
                l.hard_state.term
            );
            if l.hard_state.term == a.hard_state.term && a.hard_state.vote.is_some() {
                assert!(
                    l.hard_state.vote == a.hard_state.vote || in_flight.contains(l),
                    "{}: vote changed within a term",
                    l.group.0
                );
            }
        }
    }
    if loaded != acked && loaded != in_flight {
        let diff: Vec<GroupId> = loaded
            .iter()
            .filter(|l| !acked.contains(l) && !in_flight.contains(l))
            .map(|l| l.group)
            .collect();
        panic!(
            "the recovered state is neither the acknowledged state nor that plus the batch in \
             flight: {} groups loaded, {} acknowledged, {} with the batch in flight; groups \
             matching neither: {diff:?}",
            loaded.len(),
            acked.len(),
            in_flight.len()
        );
    }
    check_snapshot_data(&storage, &loaded).await;
    // Still writable after recovery.
    let g = GroupId(GROUPS + 1);
    storage
        .write(WriteBatch::from(vec![
            GroupWrite::new(g).with_entries(vec![entry(1, 1, "after the crash")]),
        ]))
        .await
        .unwrap_or_else(|e| panic!("write after recovery fails: {e}"));
    assert_eq!(storage.term(g, 1).await.unwrap(), Some(1));
}
