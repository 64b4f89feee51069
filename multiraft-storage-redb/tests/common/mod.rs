//! Helpers shared by the integration tests: a temporary directory, a seeded RNG, and a redb
//! `StorageBackend` that models a disk with a volatile cache (crashes, torn writes, failing
//! fsync).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use multiraft_core::{
    Bytes, Compacted, Entries, Entry, EntryRuns, GroupId, GroupWrite, HardState, LoadedGroup,
    Membership, NodeId, Payload, ProposalId, SnapshotChunk, SnapshotMeta, WriteBatch,
};
use multiraft_storage_redb::redb::StorageBackend;
use multiraft_testkit::conformance::snapshot_meta;
use multiraft_testkit::sim::SimRng;

/// A directory under `std::env::temp_dir()` with a unique name, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "multiraft-redb-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The testkit's seeded RNG (splitmix64, so that a failing seed replays exactly), with
/// chances in percent as these tests write them.
#[derive(Clone, Debug)]
pub struct Rng(SimRng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SimRng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A command entry whose payload names it.
pub fn entry(index: u64, term: u64, data: impl Into<Bytes>) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Command {
            id: ProposalId {
                node: NodeId(1),
                seq: index,
            },
            data: data.into(),
        },
    }
}

/// One change to the file that is not yet synced.
#[derive(Clone, Debug)]
pub enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

fn apply_op(image: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(offset, data) => {
            let offset = *offset as usize;
            if image.len() < offset + data.len() {
                image.resize(offset + data.len(), 0);
            }
            image[offset..offset + data.len()].copy_from_slice(data);
        }
        Op::SetLen(len) => image.resize(*len as usize, 0),
    }
}

/// What a crash at one sync point can leave on disk.
#[derive(Debug)]
pub struct SyncPoint<'a> {
    /// 1-based count of `sync_data` calls on this disk.
    pub number: u64,
    /// The image as of the previous sync: what a crash before this sync leaves.
    pub durable: &'a [u8],
    /// The changes since, in order; any subset may have reached the disk.
    pub unsynced: &'a [Op],
}

impl SyncPoint<'_> {
    /// The image after a crash that kept none of the unsynced changes.
    pub fn clean_image(&self) -> Vec<u8> {
        self.durable.to_vec()
    }

    /// The image after a crash that kept every unsynced change (the sync completed, the
    /// process died before it returned).
    pub fn full_image(&self) -> Vec<u8> {
        let mut image = self.durable.to_vec();
        for op in self.unsynced {
            apply_op(&mut image, op);
        }
        image
    }

    /// The image after a crash that kept a random subset of the unsynced changes, one of them
    /// possibly torn at a 512-byte sector boundary.
    pub fn torn_image(&self, rng: &mut Rng) -> Vec<u8> {
        let mut image = self.durable.to_vec();
        for op in self.unsynced {
            match op {
                Op::Write(offset, data) if rng.chance(50) => {
                    if data.len() > 512 && rng.chance(30) {
                        let sectors = data.len().div_ceil(512) as u64;
                        let keep = (rng.below(sectors) as usize * 512).min(data.len());
                        apply_op(&mut image, &Op::Write(*offset, data[..keep].to_vec()));
                    } else {
                        apply_op(&mut image, op);
                    }
                }
                Op::Write(..) => {}
                Op::SetLen(_) => apply_op(&mut image, op),
            }
        }
        image
    }
}

type SyncHook = Box<dyn FnMut(&SyncPoint<'_>) + Send>;

/// Holds every `sync_data` call at its start until opened; see [`FaultDisk::hold_syncs`].
#[derive(Debug, Default)]
pub struct SyncGate {
    /// (open, syncs waiting)
    state: Mutex<(bool, u64)>,
    changed: std::sync::Condvar,
}

impl SyncGate {
    /// Waits (bounded) until a sync is held at the gate.
    pub fn wait_for_held_sync(&self) {
        let guard = self.state.lock().unwrap();
        let (guard, timeout) = self
            .changed
            .wait_timeout_while(guard, std::time::Duration::from_secs(30), |s| s.1 == 0)
            .unwrap();
        assert!(!timeout.timed_out() || guard.1 > 0, "no sync arrived");
    }

    /// Lets every held and future sync through.
    pub fn open(&self) {
        self.state.lock().unwrap().0 = true;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut guard = self.state.lock().unwrap();
        guard.1 += 1;
        self.changed.notify_all();
        let mut guard = self.changed.wait_while(guard, |s| !s.0).unwrap();
        guard.1 -= 1;
    }
}

struct DiskState {
    live: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Op>,
    syncs: u64,
    /// Syncs still to succeed before every later one fails.
    fail_syncs_after: Option<u64>,
    on_sync: Option<SyncHook>,
    gate: Option<Arc<SyncGate>>,
}

/// A disk with a volatile cache: reads and writes go to the live image; `sync_data` makes it
/// durable. Cloning shares the disk. [`backend`](FaultDisk::backend) plugs it into redb.
#[derive(Clone)]
pub struct FaultDisk {
    state: Arc<Mutex<DiskState>>,
}

impl std::fmt::Debug for FaultDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("FaultDisk")
            .field("live_len", &s.live.len())
            .field("durable_len", &s.durable.len())
            .field("syncs", &s.syncs)
            .finish()
    }
}

impl FaultDisk {
    /// An empty disk.
    pub fn new() -> FaultDisk {
        FaultDisk::from_image(Vec::new())
    }

    /// A disk holding `image`, all of it durable (a restart after a crash).
    pub fn from_image(image: Vec<u8>) -> FaultDisk {
        FaultDisk {
            state: Arc::new(Mutex::new(DiskState {
                live: image.clone(),
                durable: image,
                unsynced: Vec::new(),
                syncs: 0,
                fail_syncs_after: None,
                on_sync: None,
                gate: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A redb backend on this disk.
    pub fn backend(&self) -> FaultBackend {
        FaultBackend(self.clone())
    }

    /// The next `n` syncs succeed; every later one fails with an I/O error and makes
    /// nothing durable.
    pub fn fail_syncs_after(&self, n: u64) {
        self.lock().fail_syncs_after = Some(n);
    }

    /// Calls `hook` at every successful sync, before the sync takes effect.
    pub fn on_sync(&self, hook: impl FnMut(&SyncPoint<'_>) + Send + 'static) {
        self.lock().on_sync = Some(Box::new(hook));
    }

    /// From now on every `sync_data` waits at its start (before touching the disk, so reads
    /// go on) until the returned gate is opened.
    pub fn hold_syncs(&self) -> Arc<SyncGate> {
        let gate = Arc::new(SyncGate::default());
        self.lock().gate = Some(Arc::clone(&gate));
        gate
    }

    pub fn clear_hook(&self) {
        self.lock().on_sync = None;
    }

    /// Number of `sync_data` calls so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// What a power loss now leaves: the durable image.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }
}

/// The redb side of a [`FaultDisk`].
#[derive(Debug)]
pub struct FaultBackend(FaultDisk);

impl StorageBackend for FaultBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.0.lock().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let s = self.0.lock();
        let start = offset as usize;
        let end = start + out.len();
        if end > s.live.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        out.copy_from_slice(&s.live[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        apply_op(&mut s.live, &Op::SetLen(len));
        s.unsynced.push(Op::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let gate = self.0.lock().gate.clone();
        if let Some(gate) = gate {
            gate.pass();
        }
        let mut guard = self.0.lock();
        let s = &mut *guard;
        s.syncs += 1;
        if let Some(n) = s.fail_syncs_after {
            if n == 0 {
                return Err(std::io::Error::other("FaultDisk: injected fsync failure"));
            }
            s.fail_syncs_after = Some(n - 1);
        }
        if let Some(hook) = &mut s.on_sync {
            hook(&SyncPoint {
                number: s.syncs,
                durable: &s.durable,
                unsynced: &s.unsynced,
            });
        }
        for op in s.unsynced.drain(..) {
            apply_op(&mut s.durable, &op);
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut s = self.0.lock();
        let op = Op::Write(offset, data.to_vec());
        apply_op(&mut s.live, &op);
        s.unsynced.push(op);
        Ok(())
    }
}

/// Every chunk of group `group`'s snapshot `meta`: a function of the group and the
/// snapshot's index and term alone, so that a test can check a snapshot's data knowing only
/// its metadata. One to four chunks, mostly of tens of bytes, some of several pages.
pub fn snapshot_chunks(group: u64, meta: &SnapshotMeta) -> Vec<SnapshotChunk> {
    let seed = group.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ meta.index.rotate_left(24) ^ meta.term;
    let mut rng = Rng::new(seed);
    let count = rng.below(4) as u32 + 1;
    (0..count)
        .map(|seq| {
            let len = if rng.chance(15) {
                rng.below(12_000)
            } else {
                rng.below(80)
            };
            let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            SnapshotChunk {
                meta: meta.clone(),
                seq,
                data: Bytes::from(data),
                last: seq + 1 == count,
            }
        })
        .collect()
}

/// The snapshots [`random_batch`] started and did not complete: per group, the snapshot and
/// how many of its chunks were sent. Updated as if every batch were accepted: after a
/// refused batch (or a restart, which drops incoming snapshots) a continuation is refused
/// too, which a differential test compares like anything else.
#[derive(Debug, Default)]
pub struct Transfers(HashMap<u64, (SnapshotMeta, usize)>);

/// The term of `group`'s entry `index` in `current`, the compaction mark's included.
fn term_at(current: Option<&LoadedGroup>, index: u64) -> Option<u64> {
    let current = current?;
    let compacted = current.compacted.unwrap_or_default();
    if index > 0 && index == compacted.index {
        return Some(compacted.term);
    }
    let position = index.checked_sub(compacted.index + 1)?;
    current.entries.get(position as usize).map(|e| e.term)
}

/// Adds snapshot chunks to `w` (a record of `g`): a new snapshot or more of one `transfers`
/// holds, completed or not. A new snapshot's last entry is one the log holds, or not (past
/// its end, or at an entry of another term). Returns the log's last and compacted index
/// after the record's snapshot step.
fn random_chunks(
    rng: &mut Rng,
    w: &mut GroupWrite,
    current: Option<&LoadedGroup>,
    (last, compacted): (u64, u64),
    transfers: &mut Transfers,
    invalid: bool,
) -> (u64, u64) {
    let g = w.group.0;
    let term = current.map_or(0, |c| c.hard_state.term).max(1);
    let (meta, from) = match transfers.0.get(&g) {
        Some((meta, sent)) if rng.chance(75) => (meta.clone(), *sent),
        _ => {
            // The log's entries and its compaction mark: indexes `low..=last`.
            let low = compacted.max(1);
            let held = last >= low && rng.chance(50);
            let index = if held || (last >= low && rng.chance(40)) {
                low + rng.below(last - low + 1)
            } else {
                last + rng.below(5) + 1
            };
            let held_term = term_at(current, index);
            let term = match held_term {
                Some(t) if held => t,
                Some(t) => t + 1,
                None => term,
            };
            (snapshot_meta(index, term), 0)
        }
    };
    let all = snapshot_chunks(g, &meta);
    let to = from + 1 + rng.below((all.len() - from) as u64) as usize;
    w.snapshot = all[from..to].to_vec();
    if invalid && from > 0 && rng.chance(10) {
        // A chunk skipped.
        for c in &mut w.snapshot {
            c.seq += 1;
        }
    }
    if to < all.len() {
        transfers.0.insert(g, (meta, to));
        return (last, compacted);
    }
    transfers.0.remove(&g);
    // As the node does: a snapshot the log lacks comes with a log reset.
    if term_at(current, meta.index) == Some(meta.term) {
        (last, compacted)
    } else {
        w.log_reset = Some(Compacted {
            index: meta.index,
            term: meta.term,
        });
        (meta.index, meta.index)
    }
}

/// A random batch for up to `groups` groups given the current state (as `load` returns it):
/// appends, conflict truncations, hard states (term never decreasing), memberships, removals,
/// compactions, snapshot chunks (started, continued and completed across batches, with
/// `transfers` to remember which, completing snapshots the log holds and snapshots that reset
/// it).
/// With `invalid`, about one in ten breaks the contract (hole, index 0, group twice, remove
/// with fields, a snapshot chunk skipped).
pub fn random_batch(
    rng: &mut Rng,
    state: &[LoadedGroup],
    groups: u64,
    invalid: bool,
    transfers: &mut Transfers,
) -> WriteBatch {
    let mut writes = Vec::new();
    let n = rng.below(4) + 1;
    let mut chosen: Vec<u64> = Vec::new();
    while (chosen.len() as u64) < n {
        let g = rng.below(groups) + 1;
        if !chosen.contains(&g) || (invalid && rng.chance(2)) {
            chosen.push(g);
        }
    }
    for g in chosen {
        let group = GroupId(g);
        let current = state.iter().find(|l| l.group == group);
        let compacted = current.and_then(|c| c.compacted).map_or(0, |c| c.index);
        let last = compacted + current.map_or(0, |c| c.entries.len() as u64);
        let term = current.map_or(0, |c| c.hard_state.term);
        if rng.chance(4) {
            writes.push(GroupWrite::new(group).removing());
            transfers.0.remove(&g);
            continue;
        }
        let mut w = GroupWrite::new(group);
        if current.is_none() || rng.chance(5) {
            w.membership = Some(Membership::voters(1..=rng.below(5) + 1));
        }
        let new_term = term + rng.below(2);
        if rng.chance(50) {
            w.hard_state = Some(HardState {
                term: new_term,
                vote: Some(NodeId(rng.below(3) + 1)),
                commit: last / 2,
            });
        }
        let (last, compacted) = if rng.chance(12) {
            random_chunks(rng, &mut w, current, (last, compacted), transfers, invalid)
        } else {
            (last, compacted)
        };
        if rng.chance(70) {
            let first = if last > compacted && rng.chance(25) {
                compacted + rng.below(last - compacted) + 1
            } else {
                last + 1
            };
            let count = rng.below(4) + 1;
            let mut entries: Vec<Entry> = (first..first + count)
                .map(|i| entry(i, new_term.max(1), format!("{g}/{i}/{}", rng.next_u64())))
                .collect();
            if invalid && rng.chance(3) {
                // A hole or index 0.
                let shift = if rng.chance(50) { 2 } else { 0 };
                for e in &mut entries {
                    e.index = if shift == 0 {
                        0
                    } else {
                        e.index + last + shift
                    };
                }
            }
            // As the node hands them over: in one run, or in the runs of its log they are
            // in (a follower that received two appends in one cycle).
            let split = rng.below(count + 1) as usize;
            let second = Entries::from(entries.split_off(split));
            w.entries = EntryRuns::from(Entries::from(entries));
            w.entries.push(second);
        }
        let new_last = w.entries.last().map_or(last, |e| e.index);
        if new_last > compacted && rng.chance(10) {
            // Anywhere from the current mark (no change) to the last entry.
            w.compact_to = Some(compacted + rng.below(new_last - compacted + 1));
        }
        if invalid && rng.chance(2) {
            w.remove = true;
        }
        writes.push(w);
    }
    WriteBatch::from(writes)
}
