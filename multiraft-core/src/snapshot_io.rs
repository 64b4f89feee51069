//! The driver's snapshot IO, off the event loop (docs/design.md §4.6): state machines
//! producing snapshot chunks on blocking threads, snapshot chunks read from storage for
//! transfers, and snapshots read back to restore a state machine. Results come back to the
//! loop through two bounded channels.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{StopError, StorageError};
use crate::ids::GroupId;
use crate::machines::Machines;
use crate::node::{ChunkRead, Node, Restore, TakeSnapshot};
use crate::snapshot::SnapshotError;
use crate::snapshot::{SnapshotChunk, SnapshotData};
use crate::storage::Storage;

/// Results of storage reads in flight, waiting for the loop. Bounds what reads finished
/// ahead of the loop may hold: each is at most one chunk.
const MAX_READS_WAITING: usize = 16;

/// Restores reading from storage at once, each one chunk at a time; the others wait their
/// turn. Without it every group restoring (all those with a snapshot, at a restart) started
/// its read at once, and each finished read held its chunk until the loop took it: as
/// many chunks in memory as groups (review). Half the results the loop holds waiting, so
/// that transfers' reads still find room.
const MAX_RESTORES_READING: usize = MAX_READS_WAITING / 2;

/// Chunks produced by state machines, waiting for the loop; the loop takes them only
/// while the node wants them ([`Node::wants_snapshot_chunks`]).
const MAX_BUILT_WAITING: usize = 2;

/// A storage read finished.
pub(crate) enum ReadDone {
    /// For a transfer.
    Chunk(ChunkRead, Result<Option<SnapshotChunk>, StorageError>),
    /// For a restore (group, snapshot index, which restore): the chunk, or `None` when
    /// storage no longer holds the snapshot.
    Restore(
        GroupId,
        u64,
        u64,
        Result<Option<SnapshotChunk>, StorageError>,
    ),
}

/// A piece of a snapshot a state machine produced: (group, index, piece or error, last).
pub(crate) type Built = (GroupId, u64, Result<Bytes, SnapshotError>, bool);

pub(crate) struct SnapshotIo {
    storage: Arc<dyn Storage>,
    reads_tx: mpsc::Sender<ReadDone>,
    pub(crate) reads: mpsc::Receiver<ReadDone>,
    built_tx: mpsc::Sender<Built>,
    pub(crate) built: mpsc::Receiver<Built>,
    /// Builds running, with the flag that tells their thread to stop.
    cancel: HashMap<GroupId, (u64, Arc<AtomicBool>)>,
    /// The snapshot each restoring group is restored from, and which restore of it: chunks
    /// of any other are dropped. The restore is told apart, not only the index: a group
    /// removed and made again can restore the same index while a read of its earlier
    /// restore is still in flight, and that read's chunks would be fed into the new one.
    restoring: HashMap<GroupId, (u64, u64)>,
    /// The number the next restore takes.
    next_restore: u64,
    /// Restores waiting for a turn to read ([`MAX_RESTORES_READING`]): (group, snapshot
    /// index, which restore). One superseded or removed meanwhile is skipped.
    restores_waiting: VecDeque<(GroupId, u64, u64)>,
    /// Restore reads in flight.
    restores_reading: usize,
}

impl SnapshotIo {
    pub(crate) fn new(storage: Arc<dyn Storage>) -> SnapshotIo {
        let (reads_tx, reads) = mpsc::channel(MAX_READS_WAITING);
        let (built_tx, built) = mpsc::channel(MAX_BUILT_WAITING);
        SnapshotIo {
            storage,
            reads_tx,
            reads,
            built_tx,
            built,
            cancel: HashMap::new(),
            restoring: HashMap::new(),
            next_restore: 0,
            restores_waiting: VecDeque::new(),
            restores_reading: 0,
        }
    }

    /// Starts a ready's snapshot work that needs no write: builds (the state machines have
    /// just applied the ready) and chunk reads.
    pub(crate) fn start(
        &mut self,
        takes: &[TakeSnapshot],
        reads: &[ChunkRead],
        machines: &mut Machines,
        node: &mut Node,
    ) {
        for take in takes {
            match machines.snapshot(take.group, take.meta.index) {
                Ok(data) => self.hand_over_or_build(take, data, node),
                Err(SnapshotError::Unsupported) => {
                    // Asked once per group: from now on its log is kept whole.
                    tracing::debug!(node = %node.id(), group = %take.group, "snapshots unsupported");
                    node.snapshot_failed(take.group, take.meta.index, &SnapshotError::Unsupported);
                }
                Err(error) => {
                    tracing::warn!(node = %node.id(), group = %take.group, %error, "snapshot not taken");
                    node.snapshot_failed(take.group, take.meta.index, &error);
                }
            }
        }
        for read in reads.iter().copied() {
            let (storage, tx) = (Arc::clone(&self.storage), self.reads_tx.clone());
            tokio::spawn(async move {
                let chunk = read_chunk(storage, read.group, read.index, read.seq).await;
                let _ = tx.send(ReadDone::Chunk(read, chunk)).await;
            });
        }
    }

    /// Hands `data` to the node at once if it is made, fits one chunk and the node wants
    /// chunks: no thread's wake-up, where a snapshot per 1,024 entries of a group written
    /// at full speed made the kernel's task switches a seventh of its samples
    /// (BENCHMARKS.md, "Small snapshots handed over on the loop"). Otherwise builds it on a
    /// blocking thread.
    fn hand_over_or_build(&mut self, take: &TakeSnapshot, data: SnapshotData, node: &mut Node) {
        let made = if node.wants_snapshot_chunks() {
            data.made_within(node.config().snapshot_chunk_bytes)
        } else {
            Err(data)
        };
        match made {
            Ok(pieces) => {
                self.stop_building(take.group);
                node.hand_over_snapshot(take.group, take.meta.index, pieces);
            }
            Err(data) => self.build(take, data),
        }
    }

    /// A build of `group` running on a blocking thread, if any, stops: a newer one replaces
    /// it, or the group is gone.
    fn stop_building(&mut self, group: GroupId) {
        if let Some((_, old)) = self.cancel.remove(&group) {
            old.store(true, Ordering::Relaxed);
        }
    }

    /// Runs the state machine's chunk iterator on a blocking thread, one chunk ahead so
    /// that the last one is marked. An error or a panic of the iterator fails the snapshot.
    fn build(&mut self, take: &TakeSnapshot, data: SnapshotData) {
        let cancel = Arc::new(AtomicBool::new(false));
        self.stop_building(take.group);
        self.cancel
            .insert(take.group, (take.meta.index, Arc::clone(&cancel)));
        let (group, index, tx) = (take.group, take.meta.index, self.built_tx.clone());
        tokio::task::spawn_blocking(move || {
            let mut data = data;
            let mut held: Option<Bytes> = None;
            loop {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                // A panic fails the snapshot: uncaught, it ended this thread unseen, and the
                // group held its build slot and never snapshotted again (review).
                let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| data.next()))
                    .unwrap_or_else(|panic| Some(Err(panicked(panic.as_ref()))))
                    .transpose();
                let (piece, last) = match (next, held.take()) {
                    (Err(e), _) => return drop(tx.blocking_send((group, index, Err(e), true))),
                    (Ok(Some(chunk)), None) => {
                        held = Some(chunk);
                        continue;
                    }
                    (Ok(Some(chunk)), Some(prev)) => {
                        held = Some(chunk);
                        (prev, false)
                    }
                    (Ok(None), prev) => (prev.unwrap_or_default(), true),
                };
                if tx.blocking_send((group, index, Ok(piece), last)).is_err() || last {
                    return;
                }
            }
        });
    }

    /// A piece a state machine produced: to the node, which writes it.
    pub(crate) fn built(&mut self, node: &mut Node, (group, index, piece, last): Built) {
        let more = match piece {
            Ok(data) => node.snapshot_chunk(group, index, data, last),
            Err(error) => {
                tracing::warn!(node = %node.id(), %group, %error, "snapshot failed");
                node.snapshot_failed(group, index, &error);
                false
            }
        };
        // Done, or no longer wanted: its thread stops (a newer build of the group stays).
        if (!more || last)
            && self.cancel.get(&group).is_some_and(|(i, _)| *i == index)
            && let Some((_, flag)) = self.cancel.remove(&group)
        {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Starts restoring state machines once the write that installed their snapshot is
    /// durable. A machine that already holds the state durably is skipped.
    pub(crate) fn restore(
        &mut self,
        restores: Vec<Restore>,
        machines: &mut Machines,
        node: &mut Node,
    ) {
        for r in restores {
            let index = r.meta.index;
            if machines.covers(r.group, index) {
                node.restored(r.group, index);
                continue;
            }
            let restore = self.next_restore;
            self.next_restore += 1;
            self.restoring.insert(r.group, (index, restore));
            self.restores_waiting.push_back((r.group, index, restore));
        }
        self.start_restores();
    }

    /// Starts the first chunk reads of waiting restores, while fewer than
    /// [`MAX_RESTORES_READING`] read.
    fn start_restores(&mut self) {
        while self.restores_reading < MAX_RESTORES_READING
            && let Some((group, index, restore)) = self.restores_waiting.pop_front()
        {
            if self.restoring.get(&group) == Some(&(index, restore)) {
                self.read_for_restore(group, index, restore, 0);
            }
        }
    }

    /// `group` was removed: its state machine goes, and a restore or a build of it in
    /// flight is of no use and must not reach a group made again under the same id.
    pub(crate) fn group_removed(&mut self, group: GroupId, machines: &mut Machines) {
        machines.remove(group);
        self.restoring.remove(&group);
        self.stop_building(group);
    }

    fn read_for_restore(&mut self, group: GroupId, index: u64, restore: u64, seq: u32) {
        self.restores_reading += 1;
        let (storage, tx) = (Arc::clone(&self.storage), self.reads_tx.clone());
        tokio::spawn(async move {
            let chunk = read_chunk(storage, group, index, seq).await;
            let _ = tx
                .send(ReadDone::Restore(group, index, restore, chunk))
                .await;
        });
    }

    /// A storage read finished. A storage error, or a state machine that cannot restore a
    /// stored snapshot, stops the node.
    pub(crate) fn read_done(
        &mut self,
        done: ReadDone,
        machines: &mut Machines,
        node: &mut Node,
    ) -> Result<(), StopError> {
        match done {
            ReadDone::Chunk(read, chunk) => node.chunk_read(read, chunk?),
            ReadDone::Restore(group, index, restore, chunk) => {
                self.restores_reading -= 1;
                if self.restoring.get(&group) == Some(&(index, restore)) {
                    self.restore_read(group, (index, restore), chunk, machines, node)?;
                } // else superseded, or of a group removed since
                self.start_restores();
            }
        }
        Ok(())
    }

    /// A chunk read for the current restore of `group`: into its machine, then the next
    /// read, or the group told it is restored.
    fn restore_read(
        &mut self,
        group: GroupId,
        (index, restore): (u64, u64),
        chunk: Result<Option<SnapshotChunk>, StorageError>,
        machines: &mut Machines,
        node: &mut Node,
    ) -> Result<(), StopError> {
        let Some(chunk) = chunk? else {
            // Nothing replaces a snapshot while its group restores from it (installs and
            // builds wait, a removal ends the restore), so storage lost one it holds. Taken
            // as done instead, the group stayed restoring for good: it applied nothing
            // and answered no proposal or read again (review).
            let why = format!("{group}: snapshot {index} is gone while its machine restores");
            return Err(StopError::Storage(StorageError::Corrupt(why)));
        };
        machines
            .restore(group, &chunk)
            .map_err(StopError::Restore)?;
        if chunk.last {
            self.restoring.remove(&group);
            node.restored(group, index);
        } else {
            self.read_for_restore(group, index, restore, chunk.seq + 1);
        }
        Ok(())
    }
}

/// Reads one stored chunk in a task of its own, so that a storage that panics fails the
/// read (`StorageError::Backend`, which stops the node) instead of never answering: a
/// restore held its reading slot for good (review), and a transfer stalled until given up.
async fn read_chunk(
    storage: Arc<dyn Storage>,
    group: GroupId,
    index: u64,
    seq: u32,
) -> Result<Option<SnapshotChunk>, StorageError> {
    let read = tokio::spawn(async move { storage.snapshot_chunk(group, index, seq).await });
    read.await
        .unwrap_or_else(|panicked| Err(StorageError::Backend(Box::new(panicked))))
}

/// What a snapshot fails with when the state machine's chunk iterator panics.
const DATA_PANICKED: &str = "the state machine's snapshot data panicked";

/// The failure of a snapshot whose data panicked with `panic`, naming its message.
fn panicked(panic: &(dyn std::any::Any + Send)) -> SnapshotError {
    let message = (panic.downcast_ref::<&str>().copied())
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    SnapshotError::Failed(format!("{DATA_PANICKED}: {message}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::entry::Entry;
    use crate::ids::NodeId;
    use crate::membership::Membership;
    use crate::snapshot::SnapshotMeta;
    use crate::state_machine::{StateMachine, StateMachineFactory};
    use crate::storage::{LoadedGroup, WriteBatch};

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            index: 10,
            term: 1,
            membership: Membership::voters([1]),
        }
    }

    /// Storage holding one snapshot of every group, at index 10, in two chunks.
    struct TwoChunks;

    #[async_trait::async_trait]
    impl Storage for TwoChunks {
        async fn write(&self, _batch: WriteBatch) -> Result<(), StorageError> {
            Ok(())
        }

        async fn load(&self) -> Result<Vec<LoadedGroup>, StorageError> {
            Ok(Vec::new())
        }

        async fn entries(&self, _: GroupId, _: u64, _: u64) -> Result<Vec<Entry>, StorageError> {
            Ok(Vec::new())
        }

        async fn term(&self, _: GroupId, _: u64) -> Result<Option<u64>, StorageError> {
            Ok(None)
        }

        async fn snapshot_chunk(
            &self,
            _group: GroupId,
            index: u64,
            seq: u32,
        ) -> Result<Option<SnapshotChunk>, StorageError> {
            Ok((index == 10 && seq < 2).then(|| SnapshotChunk {
                meta: meta(),
                seq,
                data: Bytes::from(vec![seq as u8; 4]),
                last: seq == 1,
            }))
        }
    }

    /// [`TwoChunks`], counting the reads started; `gone` holds no snapshot at all, and
    /// a read of `panics` panics.
    #[derive(Default)]
    struct Counted {
        started: std::sync::atomic::AtomicUsize,
        gone: bool,
        panics: bool,
    }

    #[async_trait::async_trait]
    impl Storage for Counted {
        async fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
            TwoChunks.write(batch).await
        }

        async fn load(&self) -> Result<Vec<LoadedGroup>, StorageError> {
            TwoChunks.load().await
        }

        async fn entries(&self, g: GroupId, a: u64, b: u64) -> Result<Vec<Entry>, StorageError> {
            TwoChunks.entries(g, a, b).await
        }

        async fn term(&self, group: GroupId, index: u64) -> Result<Option<u64>, StorageError> {
            TwoChunks.term(group, index).await
        }

        async fn snapshot_chunk(
            &self,
            group: GroupId,
            index: u64,
            seq: u32,
        ) -> Result<Option<SnapshotChunk>, StorageError> {
            self.started.fetch_add(1, Ordering::Relaxed);
            assert!(!self.panics, "a storage that panics");
            if self.gone {
                return Ok(None);
            }
            TwoChunks.snapshot_chunk(group, index, seq).await
        }
    }

    /// (Which machine, chunk) for every chunk restored into a machine.
    type Restored = Arc<Mutex<Vec<(u32, u32)>>>;

    /// Records every chunk restored into it in [`Restored`].
    struct Recording(Restored, u32);

    impl StateMachine for Recording {
        fn apply(&mut self, _index: u64, _command: &Bytes) -> Bytes {
            Bytes::new()
        }

        fn query(&self, _query: &Bytes) -> Bytes {
            Bytes::new()
        }

        fn restore(&mut self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
            self.0.lock().unwrap().push((self.1, chunk.seq));
            Ok(())
        }
    }

    /// The next storage read to finish.
    async fn next(io: &mut SnapshotIo) -> ReadDone {
        tokio::time::timeout(Duration::from_secs(10), io.reads.recv())
            .await
            .expect("a read finishes")
            .expect("the channel is open")
    }

    /// A state machine whose snapshot data panics fails that snapshot: the node hears of it
    /// (`Node::snapshot_failed` frees the group's build slot) instead of waiting for good.
    #[tokio::test]
    async fn a_panic_in_snapshot_data_fails_the_snapshot() {
        let mut io = SnapshotIo::new(Arc::new(TwoChunks));
        let take = TakeSnapshot {
            group: GroupId(1),
            meta: meta(),
        };
        io.build(
            &take,
            SnapshotData::lazy(std::iter::from_fn(|| panic!("a bug"))),
        );
        let built = tokio::time::timeout(Duration::from_secs(10), io.built.recv())
            .await
            .expect("the build answers")
            .expect("the channel is open");
        let failed = SnapshotError::Failed(format!("{DATA_PANICKED}: a bug"));
        assert!(
            matches!(&built, (GroupId(1), 10, Err(e), true) if *e == failed),
            "{built:?}"
        );
    }

    /// A state machine whose snapshot is `self.0` bytes, made when asked.
    struct Made(usize);

    impl StateMachine for Made {
        fn apply(&mut self, _index: u64, _command: &Bytes) -> Bytes {
            Bytes::new()
        }

        fn query(&self, _query: &Bytes) -> Bytes {
            Bytes::new()
        }

        fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
            let half = Bytes::from(vec![7u8; self.0 / 2]);
            let rest = Bytes::from(vec![7u8; self.0 - half.len()]);
            Ok(SnapshotData::ready([half, rest]))
        }
    }

    /// Keeps the snapshots a node asks for, making none, and the bytes of the snapshot
    /// chunks it writes.
    #[derive(Default)]
    struct Asked(Vec<TakeSnapshot>, usize);

    impl crate::testing::Io for Asked {
        fn send(&mut self, _batch: crate::MessageBatch) {}

        fn persist(&mut self, write: &WriteBatch) -> Result<(), StorageError> {
            let chunks = write.groups.iter().flat_map(|g| &g.snapshot);
            self.1 += chunks.map(|c| c.data.len()).sum::<usize>();
            Ok(())
        }

        fn snapshot(&mut self, take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
            self.0.push(take.clone());
            Ok(Vec::new())
        }

        fn snapshot_later(&mut self, _take: &TakeSnapshot, _chunks: &[Bytes]) -> bool {
            true
        }
    }

    /// A node of `groups` single-voter groups, with chunks of `chunk_bytes`, that asked for
    /// a snapshot of each, and those snapshots' takes.
    fn asking(chunk_bytes: usize, groups: u64) -> (Node, Asked, Vec<TakeSnapshot>) {
        let config = crate::Config {
            snapshot_entries: 4,
            snapshot_chunk_bytes: chunk_bytes,
            ..crate::Config::default()
        };
        let mut node = Node::new(NodeId(1), config, 1).unwrap();
        let mut io = Asked::default();
        for g in 1..=groups {
            node.create_group(GroupId(g), Membership::voters([1]))
                .unwrap();
            node.campaign(GroupId(g)).unwrap();
            crate::testing::settle(&mut node, &mut io).unwrap();
            for k in 0..8u8 {
                node.propose(GroupId(g), Bytes::from(vec![k])).unwrap();
                crate::testing::settle(&mut node, &mut io).unwrap();
            }
        }
        let takes = std::mem::take(&mut io.0);
        assert_eq!(takes.len() as u64, groups, "a snapshot asked of each group");
        (node, io, takes)
    }

    /// The index of the snapshot `node` holds of `group`, once its writes are done.
    fn stored(node: &mut Node, io: &mut Asked, group: GroupId) -> Option<u64> {
        crate::testing::settle(node, io).unwrap();
        let replica = node.replica(group).unwrap();
        replica.snapshot().map(|(index, _)| index)
    }

    /// Machines whose snapshots are `bytes` bytes, made when asked.
    fn made(bytes: usize) -> Machines {
        Machines::new(Box::new(move |_| Box::new(Made(bytes))))
    }

    /// A snapshot made already and within a chunk is handed to the node on the loop: no
    /// build starts on a thread, the node stores it with its next write, and a build of the
    /// same group still running on a thread is told to stop. One a byte past a chunk is
    /// handed over from a thread, as a lazy one is.
    #[tokio::test]
    async fn a_made_snapshot_within_a_chunk_is_handed_over_at_once_and_a_larger_one_later() {
        const CHUNK: usize = 64;
        let (mut node, mut asked, takes) = asking(CHUNK, 1);
        let take = &takes[0];
        let mut io = SnapshotIo::new(Arc::new(TwoChunks));
        // An older build of the group, still running.
        io.build(take, SnapshotData::lazy(std::iter::empty()));
        let older = Arc::clone(&io.cancel[&take.group].1);
        io.start(std::slice::from_ref(take), &[], &mut made(CHUNK), &mut node);
        assert!(io.cancel.is_empty(), "a build on a thread is left");
        assert!(
            older.load(Ordering::Relaxed),
            "the older build was not stopped"
        );
        let index = stored(&mut node, &mut asked, take.group);
        assert_eq!(index, Some(take.meta.index));
        assert_eq!(asked.1, CHUNK, "the snapshot's bytes written");

        let (mut node, mut asked, takes) = asking(CHUNK, 1);
        let take = &takes[0];
        let mut io = SnapshotIo::new(Arc::new(TwoChunks));
        io.start(
            std::slice::from_ref(take),
            &[],
            &mut made(CHUNK + 1),
            &mut node,
        );
        assert!(io.cancel.contains_key(&take.group), "no build on a thread");
        hand_over_built(&mut io, &mut node).await;
        let index = stored(&mut node, &mut asked, take.group);
        assert_eq!(index, Some(take.meta.index));
        assert_eq!(asked.1, CHUNK + 1, "the snapshot's bytes written");
    }

    /// A small made snapshot is not handed over at once while the node wants no more
    /// chunks (eight chunks' worth wait for a write): it comes from a thread, taken by the
    /// loop only once the node wants chunks again, so that what waits stays bounded.
    #[tokio::test]
    async fn a_made_snapshot_waits_for_a_thread_while_the_node_wants_no_chunks() {
        const CHUNK: usize = 64;
        let (mut node, mut asked, takes) = asking(CHUNK, 2);
        let (first, second) = (&takes[0], &takes[1]);
        let eight = Bytes::from(vec![7u8; 8 * CHUNK]);
        assert!(node.snapshot_chunk(first.group, first.meta.index, eight, false));
        assert!(!node.wants_snapshot_chunks());
        let mut io = SnapshotIo::new(Arc::new(TwoChunks));
        io.start(std::slice::from_ref(second), &[], &mut made(1), &mut node);
        assert!(
            io.cancel.contains_key(&second.group),
            "handed over past the bound"
        );
        crate::testing::settle(&mut node, &mut asked).unwrap();
        assert!(
            node.wants_snapshot_chunks(),
            "the waiting chunks were written"
        );
        hand_over_built(&mut io, &mut node).await;
        let index = stored(&mut node, &mut asked, second.group);
        assert_eq!(index, Some(second.meta.index));
    }

    /// Hands the node the pieces built on a thread until the last one.
    async fn hand_over_built(io: &mut SnapshotIo, node: &mut Node) {
        let mut last = false;
        while !last {
            let built = tokio::time::timeout(Duration::from_secs(10), io.built.recv())
                .await
                .expect("the build answers")
                .expect("the channel is open");
            last = built.3;
            io.built(node, built);
        }
    }

    /// An on-disk machine whose store holds past the index of the snapshot asked of it.
    struct Ahead(Arc<std::sync::atomic::AtomicUsize>);

    /// What [`Ahead`] reports durable.
    const AHEAD: u64 = 20;

    impl StateMachine for Ahead {
        fn apply(&mut self, _index: u64, _command: &Bytes) -> Bytes {
            Bytes::new()
        }

        fn query(&self, _query: &Bytes) -> Bytes {
            Bytes::new()
        }

        fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            // Lazy, so that the build answers through the channel this test reads.
            Ok(SnapshotData::lazy(std::iter::once(Ok(Bytes::from_static(
                b"20",
            )))))
        }

        fn applied_index(&self) -> u64 {
            AHEAD
        }
    }

    /// An on-disk machine that holds more than the node has applied (a crash after the
    /// machine's own commit and before the node's write of the commit index; its entries
    /// are skipped since) is not snapshotted under the node's lower index: its state is a
    /// later one's, and a replica restoring the snapshot would apply the entries between
    /// the two again. The build fails, to be tried after a later apply; at the machine's
    /// index it goes ahead. Regression (review): the state was taken under any index.
    #[tokio::test]
    async fn a_machine_ahead_of_the_snapshot_index_is_not_snapshotted_under_it() {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let made = Arc::clone(&asked);
        let mut machines = Machines::new(Box::new(move |_| Box::new(Ahead(Arc::clone(&made)))));
        let mut node = Node::new(NodeId(1), crate::Config::default(), 1).unwrap();
        let mut io = SnapshotIo::new(Arc::new(TwoChunks));
        let take = |index| TakeSnapshot {
            group: GroupId(1),
            meta: SnapshotMeta { index, ..meta() },
        };
        io.start(&[take(AHEAD - 1)], &[], &mut machines, &mut node);
        assert_eq!(asked.load(Ordering::Relaxed), 0);
        assert!(io.cancel.is_empty(), "a build started");
        io.start(&[take(AHEAD)], &[], &mut machines, &mut node);
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        let built = tokio::time::timeout(Duration::from_secs(10), io.built.recv())
            .await
            .expect("the build answers")
            .expect("the channel is open");
        assert!(matches!(&built, (GroupId(1), AHEAD, Ok(_), _)), "{built:?}");
    }

    /// A chunk read of a group's restore that finishes after the group was removed and
    /// made again, and after the new replica began restoring the same snapshot, is dropped:
    /// the new machine gets the new restore's chunks, in order, and nothing else.
    /// Regression (review): restores were told apart by index only, so that read's chunk
    /// went into the new machine and its chain of reads went on beside the new one's.
    #[tokio::test]
    async fn a_removed_groups_late_restore_read_never_reaches_it_made_again() {
        let (mut machines, restored) = recording_machines();
        let mut node = Node::new(NodeId(1), crate::Config::default(), 1).unwrap();
        let mut io = SnapshotIo::new(Arc::new(TwoChunks));
        let restore = || Restore {
            group: GroupId(1),
            meta: meta(),
        };
        io.restore(vec![restore()], &mut machines, &mut node);
        let late = next(&mut io).await;
        io.group_removed(GroupId(1), &mut machines);
        io.restore(vec![restore()], &mut machines, &mut node);
        io.read_done(late, &mut machines, &mut node).unwrap();
        while !io.restoring.is_empty() {
            let done = next(&mut io).await;
            io.read_done(done, &mut machines, &mut node).unwrap();
        }
        // Machine 1 was the removed group's (made to ask whether it covers the snapshot).
        assert_eq!(*restored.lock().unwrap(), vec![(2, 0), (2, 1)]);
    }

    fn recording_machines() -> (Machines, Restored) {
        let restored = Arc::new(Mutex::new(Vec::new()));
        let mut made = 0;
        let log = Arc::clone(&restored);
        let factory: StateMachineFactory = Box::new(move |_| {
            made += 1;
            Box::new(Recording(Arc::clone(&log), made))
        });
        (Machines::new(factory), restored)
    }

    /// Many groups restoring at once (every group with a snapshot, at a restart) read at
    /// most [`MAX_RESTORES_READING`] chunks at a time, and every one is restored. Regression
    /// (review): each started its read at once, and each finished read held its chunk until
    /// the loop took it, so memory grew with the number of groups.
    #[tokio::test(flavor = "current_thread")]
    async fn restores_read_a_bounded_number_of_chunks_at_once_and_all_end() {
        const GROUPS: u64 = 100;
        let (mut machines, restored) = recording_machines();
        let mut node = Node::new(NodeId(1), crate::Config::default(), 1).unwrap();
        let storage = Arc::new(Counted::default());
        let mut io = SnapshotIo::new(Arc::clone(&storage) as Arc<dyn Storage>);
        let restores = (1..=GROUPS)
            .map(|g| Restore {
                group: GroupId(g),
                meta: meta(),
            })
            .collect();
        io.restore(restores, &mut machines, &mut node);
        let mut taken = 0;
        while !io.restoring.is_empty() {
            // Every read task spawned so far runs before this task resumes (one thread).
            tokio::task::yield_now().await;
            let started = storage.started.load(Ordering::Relaxed);
            assert!(
                started - taken <= MAX_RESTORES_READING,
                "{} reads in flight",
                started - taken
            );
            let done = next(&mut io).await;
            taken += 1;
            io.read_done(done, &mut machines, &mut node).unwrap();
        }
        assert_eq!(restored.lock().unwrap().len() as u64, 2 * GROUPS);
    }

    /// How restoring group 1 from `storage` ends its first chunk read.
    async fn first_restore_read(storage: Counted) -> Result<(), StopError> {
        let (mut machines, _) = recording_machines();
        let mut node = Node::new(NodeId(1), crate::Config::default(), 1).unwrap();
        let mut io = SnapshotIo::new(Arc::new(storage));
        let restore = Restore {
            group: GroupId(1),
            meta: meta(),
        };
        io.restore(vec![restore], &mut machines, &mut node);
        let done = next(&mut io).await;
        io.read_done(done, &mut machines, &mut node)
    }

    /// A snapshot that storage no longer holds while its group's machine restores from it
    /// stops the node: nothing replaces it meanwhile, so storage lost it. Regression
    /// (review): the restore was taken as done, and the group stayed restoring for good,
    /// applying nothing and answering nothing.
    #[tokio::test]
    async fn a_snapshot_gone_while_its_machine_restores_stops_the_node() {
        let stopped = first_restore_read(Counted {
            gone: true,
            ..Counted::default()
        })
        .await;
        assert!(
            matches!(stopped, Err(StopError::Storage(StorageError::Corrupt(_)))),
            "{stopped:?}"
        );
    }

    /// A storage read that panics stops the node, as a storage error does. Regression
    /// (review): its task ended without an answer, and the restore held its reading slot
    /// for good; after `MAX_RESTORES_READING` such reads no restore started again.
    #[tokio::test]
    async fn a_storage_read_that_panics_stops_the_node() {
        let stopped = first_restore_read(Counted {
            panics: true,
            ..Counted::default()
        })
        .await;
        assert!(
            matches!(stopped, Err(StopError::Storage(StorageError::Backend(_)))),
            "{stopped:?}"
        );
    }
}
