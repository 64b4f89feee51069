//! Helpers shared by the integration tests: a temporary directory, a seeded RNG, and a redb
//! `StorageBackend` that models a disk with a volatile cache (crashes, torn writes, failing
//! fsync).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use multiraft_core::{
    Bytes, Entry, GroupId, GroupWrite, HardState, LoadedGroup, Membership, NodeId, Payload,
    ProposalId, WriteBatch,
};
use multiraft_storage_redb::redb::StorageBackend;
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

/// A random batch for up to `groups` groups given the current state (as `load` returns it):
/// appends, conflict truncations, hard states (term never decreasing), memberships, removals,
/// compactions.
/// With `invalid`, about one in ten breaks the contract (hole, index 0, group twice, remove
/// with fields).
pub fn random_batch(
    rng: &mut Rng,
    state: &[LoadedGroup],
    groups: u64,
    invalid: bool,
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
        if rng.chance(70) {
            let first = if last > compacted && rng.chance(25) {
                compacted + rng.below(last - compacted) + 1
            } else {
                last + 1
            };
            let count = rng.below(4) + 1;
            w.entries = (first..first + count)
                .map(|i| entry(i, new_term.max(1), format!("{g}/{i}/{}", rng.next_u64())))
                .collect();
            if invalid && rng.chance(3) {
                // A hole or index 0.
                let shift = if rng.chance(50) { 2 } else { 0 };
                for e in &mut w.entries {
                    e.index = if shift == 0 {
                        0
                    } else {
                        e.index + last + shift
                    };
                }
            }
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
