//! [`RedbStorage`]: the [`Storage`] implementation, its options, its handles and its counters.
//! The writer thread, the checkpoints, the read paths and the format check are in sibling
//! modules.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use multiraft_core::{
    Entry, GroupId, LoadedGroup, SnapshotChunk, Storage, StorageError, WriteBatch,
};
use redb::{Database, ReadableDatabase, StorageBackend};
use tokio::sync::{Semaphore, oneshot};

use crate::codec::redb_error;
use crate::format::{check_format, create_file};
use crate::metrics::RedbMetrics;
use crate::read::{load_all, read_entries, read_tail, read_term};
use crate::snapshots::{drop_incoming, read_chunk};
use crate::writer::{Job, Writer, writer_loop};

/// How to open a [`RedbStorage`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedbOptions {
    /// Memory for redb's page cache, in bytes. Default
    /// [`DEFAULT_CACHE_SIZE_BYTES`](RedbOptions::DEFAULT_CACHE_SIZE_BYTES).
    pub cache_size_bytes: usize,
    /// Verify every page checksum and rebuild the allocator state at every open, not only
    /// after an unclean shutdown (redb's `set_check_integrity_on_open`). Slower opens; a file
    /// altered behind redb's back is then refused instead of trusted. Default `false`.
    pub check_integrity_on_open: bool,
    /// How large the write-ahead records not yet checkpointed may grow, in bytes (plus 256
    /// per group they touch), before the writer starts moving groups into the group and log
    /// tables, a sixteenth of them after each commit (see the crate's design notes). Default
    /// [`DEFAULT_CHECKPOINT_BYTES`](RedbOptions::DEFAULT_CHECKPOINT_BYTES).
    ///
    /// It bounds: the write-ahead table and the writer's memory for those records (the
    /// entries are the node's own runs of them, shared, not copies); the replay at each `load`,
    /// `entries` and `term`, which decode the whole write-ahead table. Larger values
    /// amortize a checkpoint's per-group cost (one run and one metadata row) over more
    /// entries. 0 moves every group after every write.
    pub checkpoint_bytes: usize,
}

impl RedbOptions {
    /// 16 MiB. redb's own default is 1 GiB per database, too much for a library that runs
    /// next to an application and already keeps each group's live log in memory; the cache
    /// mostly holds the B-trees' upper levels and recently written pages. It fills slowly,
    /// as pages are touched: with 64 MiB, three nodes of 1,000 busy groups grew 23 % in RSS
    /// from the first to the tenth minute; with 16 MiB, 3 %, at the same write rate
    /// (BENCHMARKS.md, "Memory stays bounded").
    pub const DEFAULT_CACHE_SIZE_BYTES: usize = 16 << 20;

    /// 16 MiB: with 1,000 busy groups each checkpoint of a group moves a few hundred
    /// entries as one run; decoding it all at `load` takes tens of milliseconds.
    pub const DEFAULT_CHECKPOINT_BYTES: usize = 16 << 20;

    /// Sets [`checkpoint_bytes`](RedbOptions::checkpoint_bytes).
    pub fn with_checkpoint_bytes(mut self, bytes: usize) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Sets [`cache_size_bytes`](RedbOptions::cache_size_bytes).
    pub fn with_cache_size_bytes(mut self, bytes: usize) -> Self {
        self.cache_size_bytes = bytes;
        self
    }

    /// Sets [`check_integrity_on_open`](RedbOptions::check_integrity_on_open).
    pub fn with_check_integrity_on_open(mut self, check: bool) -> Self {
        self.check_integrity_on_open = check;
        self
    }

    pub(crate) fn builder(&self) -> redb::Builder {
        let mut b = Database::builder();
        b.set_cache_size(self.cache_size_bytes);
        b.set_check_integrity_on_open(self.check_integrity_on_open);
        b
    }
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            cache_size_bytes: Self::DEFAULT_CACHE_SIZE_BYTES,
            check_integrity_on_open: false,
            checkpoint_bytes: Self::DEFAULT_CHECKPOINT_BYTES,
        }
    }
}

/// How many writes may wait for the writer thread, the one it is committing included. A
/// further [`Storage::write`] waits for room before it queues, so the queue's memory is at
/// most this many batches whatever the callers do (cloned handles writing at once, futures
/// dropped before their answer). The node awaits one write at a time, so it never waits
/// here; 64 leaves room for applications that share a database between their own writers.
pub const MAX_QUEUED_WRITES: usize = 64;

/// The shared log of one node on one redb database. See the [crate docs](crate) for the
/// design: key layout, threads, crash cases and assumptions about the disk.
///
/// Cloning is cheap; clones share the database and its writer thread. The database file is
/// closed when the last clone is dropped: the drop waits for the commit in progress, if any,
/// and for reads still running on tokio's blocking pool, a cancelled one's included.
#[derive(Clone, Debug)]
pub struct RedbStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<Database>,
    /// Jobs for the writer thread. `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    /// Room in the writer's queue: [`MAX_QUEUED_WRITES`] permits, each held by one job until
    /// the writer has answered it.
    room: Arc<Semaphore>,
    writer: Option<JoinHandle<()>>,
    /// Written by the writer thread, read by handles.
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining makes the file closed (as far as
        // the writer is concerned) when the last handle is gone, so the path can be reopened.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        // A read whose future was dropped runs on to its end on the blocking pool, holding
        // the database: returning before it ends, the file stayed open a little longer and
        // an immediate reopen of the path failed (review of an earlier stop).
        self.shared.reads.wait_idle();
    }
}

/// The reads running on tokio's blocking pool, each holding the database open.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    running: Mutex<usize>,
    ended: Condvar,
}

impl Reads {
    fn wait_idle(&self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running > 0 {
            running = self
                .ended
                .wait(running)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// One read's hold on the database, given to its task on the blocking pool. The fields drop
/// in order, the database before the count, whether the read ran or its task was dropped
/// unrun (a runtime shutting down).
struct ReadHold {
    db: Arc<Database>,
    _counted: ReadCounted,
}

/// Counts a read in [`Reads`] from its creation to its drop.
struct ReadCounted(Arc<Shared>);

impl ReadCounted {
    fn new(shared: &Arc<Shared>) -> ReadCounted {
        *shared
            .reads
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        ReadCounted(Arc::clone(shared))
    }
}

impl Drop for ReadCounted {
    fn drop(&mut self) {
        let reads = &self.0.reads;
        let mut running = reads.running.lock().unwrap_or_else(PoisonError::into_inner);
        *running = running.saturating_sub(1);
        if *running == 0 {
            reads.ended.notify_all();
        }
    }
}

/// What the writer thread tells the handles.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set on the first failure; writes are refused from then on.
    pub(crate) poisoned: AtomicBool,
    pub(crate) checkpoints: AtomicU64,
    pub(crate) checkpoint_micros_total: AtomicU64,
    pub(crate) checkpoint_micros_max: AtomicU64,
    pub(crate) tail_bytes: AtomicU64,
    /// Reads running on the blocking pool: the last handle's drop waits for them.
    pub(crate) reads: Reads,
    /// Why the writer thread panicked, for the next write to report (later ones get
    /// `Poisoned`).
    pub(crate) panic: Mutex<Option<String>>,
    /// Tests: the writer panics in its next checkpoint step.
    #[cfg(test)]
    pub(crate) panic_in_checkpoint: AtomicBool,
}

impl Shared {
    fn writer_panicked(&self, panic: &(dyn std::any::Any + Send)) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        *self.panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
        self.poisoned.store(true, Ordering::Release);
    }

    /// The error for a write that finds the writer thread gone: its panic the first time,
    /// `stopped` if it is not known yet, `Poisoned` after.
    fn writer_gone(&self, stopped: StorageError) -> StorageError {
        self.poisoned.store(true, Ordering::Release);
        match self
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(message) => {
                StorageError::Backend(format!("the redb writer thread panicked: {message}").into())
            }
            None => stopped,
        }
    }
}

/// Counters of a [`RedbStorage`], for monitoring and benchmarks ([`RedbStorage::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedbStats {
    /// Checkpoints done since the database was opened.
    pub checkpoints: u64,
    /// Their total duration, in microseconds. A write waits for a checkpoint in progress.
    pub checkpoint_micros_total: u64,
    /// The longest one, in microseconds.
    pub checkpoint_micros_max: u64,
    /// The size of the write-ahead records not yet checkpointed, as counted against
    /// [`RedbOptions::checkpoint_bytes`].
    pub tail_bytes: u64,
    /// Writes queued for the writer thread and not yet answered, the one being committed
    /// included: at most [`MAX_QUEUED_WRITES`].
    pub queued_writes: u64,
}

impl RedbStorage {
    /// Opens the database at `path`, creating the file if it does not exist.
    ///
    /// Fails with [`StorageError::Corrupt`] when the file is not a multiraft database of
    /// [`FORMAT_VERSION`](crate::FORMAT_VERSION), and with [`StorageError::Backend`] when
    /// another handle or process has it open.
    ///
    /// A new file is created crash-safely: it is initialized (redb header, tables, format
    /// version, all synced) under a temporary name next to `path` — `path` with
    /// `.<random>.creating` appended — then moved into place if no file is there yet, and
    /// the directory synced. A crash during creation leaves no file at `path` (redb's own
    /// in-place creation can leave a file it refuses to open); the temporary file it left
    /// is deleted by the next creation. Openers racing to create one file end with one
    /// database, held by the first to open it; the others get `Backend`, as a second handle
    /// does.
    ///
    /// Snapshots still incoming (a transfer the last run did not complete) are deleted at
    /// open, in one durable transaction when there are any: see the crate docs' "Snapshots".
    pub fn open(path: impl AsRef<Path>, options: RedbOptions) -> Result<RedbStorage, StorageError> {
        let path = path.as_ref();
        if !path.try_exists()? {
            create_file(path, &options)?;
        }
        let db = options.builder().open(path).map_err(redb_error)?;
        Self::start(db, &options)
    }

    /// Opens (or initializes, when empty) a database on a custom redb [`StorageBackend`]:
    /// an in-memory one, or one that injects faults in tests.
    pub fn with_backend(
        backend: impl StorageBackend,
        options: RedbOptions,
    ) -> Result<RedbStorage, StorageError> {
        let db = options
            .builder()
            .create_with_backend(backend)
            .map_err(redb_error)?;
        Self::start(db, &options)
    }

    fn start(db: Database, options: &RedbOptions) -> Result<RedbStorage, StorageError> {
        check_format(&db)?;
        drop_incoming(&db)?;
        let tail = read_tail(&db.begin_read().map_err(redb_error)?, None)?;
        let checkpoint_bytes = options.checkpoint_bytes;
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            tail_bytes: AtomicU64::new(tail.bytes as u64),
            ..Shared::default()
        });
        let (jobs, rx) = mpsc::channel::<Job>();
        let writer = {
            let db = Arc::clone(&db);
            let shared = Arc::clone(&shared);
            // Registered here, under the recorder of the thread that opens the storage.
            let metrics = RedbMetrics::new();
            std::thread::Builder::new()
                .name("multiraft-redb-writer".into())
                .spawn(move || {
                    let writer = Writer {
                        db: &db,
                        tail,
                        checkpoint_bytes,
                        failed_checkpoint: None,
                        metrics,
                    };
                    // A panic (a bug here or in redb) ends the thread. It poisons the
                    // storage and leaves its message for the next write before `rx` goes,
                    // whose drop answers the jobs still queued (review: a panic after a
                    // reply, in a checkpoint step, left `is_poisoned` false and the
                    // message lost).
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        writer_loop(writer, &rx, &shared)
                    }));
                    if let Err(panic) = run {
                        shared.writer_panicked(&*panic);
                    }
                    drop(rx);
                })
                .map_err(StorageError::Io)?
        };
        Ok(RedbStorage {
            inner: Arc::new(Inner {
                db,
                jobs: Some(jobs),
                room: Arc::new(Semaphore::new(MAX_QUEUED_WRITES)),
                writer: Some(writer),
                shared,
            }),
        })
    }

    /// Whether an earlier write failed, so that every write is refused until reopened.
    pub fn is_poisoned(&self) -> bool {
        self.inner.shared.poisoned.load(Ordering::Acquire)
    }

    /// Checkpoint counters and the size of the write-ahead records not yet checkpointed.
    pub fn stats(&self) -> RedbStats {
        let s = &self.inner.shared;
        RedbStats {
            checkpoints: s.checkpoints.load(Ordering::Relaxed),
            checkpoint_micros_total: s.checkpoint_micros_total.load(Ordering::Relaxed),
            checkpoint_micros_max: s.checkpoint_micros_max.load(Ordering::Relaxed),
            tail_bytes: s.tail_bytes.load(Ordering::Relaxed),
            queued_writes: (MAX_QUEUED_WRITES - self.inner.room.available_permits()) as u64,
        }
    }

    /// Runs a read on the database: on tokio's blocking pool inside a runtime (reads may touch
    /// the disk), inline otherwise.
    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return f(&self.inner.db);
        }
        let hold = ReadHold {
            db: Arc::clone(&self.inner.db),
            _counted: ReadCounted::new(&self.inner.shared),
        };
        tokio::task::spawn_blocking(move || {
            // The whole hold, not only the field the call names (a closure captures fields
            // apart): its count must end with the task.
            let hold = hold;
            f(&hold.db)
        })
        .await
        .map_err(|e| StorageError::Backend(Box::new(e)))?
    }
}

#[async_trait]
impl Storage for RedbStorage {
    async fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        // Even when poisoned the writer answers: the first write after a failed checkpoint
        // gets the checkpoint's error, later ones `Poisoned`.
        let (reply, rx) = oneshot::channel();
        let jobs = self.inner.jobs.as_ref().ok_or(StorageError::Poisoned)?;
        // The semaphore is never closed; an error would mean it was, so refuse as poisoned.
        let room = Arc::clone(&self.inner.room)
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Poisoned)?;
        let shared = &self.inner.shared;
        jobs.send(Job { batch, reply, room })
            .map_err(|_| shared.writer_gone(StorageError::Poisoned))?;
        match rx.await {
            Ok(result) => result,
            // The writer thread is gone without answering: it panicked. Nothing is known about
            // this batch, so refuse everything from now on.
            Err(_) => Err(shared.writer_gone(StorageError::Backend(
                "the redb writer thread stopped".into(),
            ))),
        }
    }

    async fn load(&self) -> Result<Vec<LoadedGroup>, StorageError> {
        self.read(load_all).await
    }

    async fn entries(
        &self,
        group: GroupId,
        low: u64,
        high: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read(move |db| read_entries(db, group, low, high))
            .await
    }

    async fn term(&self, group: GroupId, index: u64) -> Result<Option<u64>, StorageError> {
        self.read(move |db| read_term(db, group, index)).await
    }

    async fn snapshot_chunk(
        &self,
        group: GroupId,
        index: u64,
        seq: u32,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        self.read(move |db| read_chunk(db, group, index, seq)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Duration;

    use super::*;

    /// Long enough for a drop that does not wait to have returned and reported; the drop
    /// that waits is released after it.
    const NOT_BEFORE: Duration = Duration::from_millis(200);
    const WAIT: Duration = Duration::from_secs(10);

    /// A database whose write-ahead records reached the last number a writer gives refuses
    /// the next write, its data found corrupt: numbered past it, the record would be
    /// refused at the next start, and a number wrapped to 0 ordered it before every other.
    /// The storage is poisoned then, so the refusal comes as `Backend` (over the `Corrupt`
    /// found), not as the `Corrupt` of a batch refused with the storage still usable; the
    /// next write is `Poisoned`.
    #[tokio::test]
    async fn a_write_past_the_last_record_number_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        drop(RedbStorage::open(&path, RedbOptions::default()).unwrap());
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(crate::codec::FORMAT_TABLE)
            .unwrap()
            .insert(
                crate::codec::SEQ_FLOOR_KEY,
                multiraft_core::MAX_TERM_OR_INDEX + 1,
            )
            .unwrap();
        txn.commit().unwrap();
        drop(db);
        let storage = RedbStorage::open(&path, RedbOptions::default()).unwrap();
        let write = WriteBatch::from(vec![
            multiraft_core::GroupWrite::new(GroupId(1)).with_hard_state(
                multiraft_core::HardState {
                    term: 1,
                    vote: None,
                    commit: 0,
                },
            ),
        ]);
        let refused = storage.write(write.clone()).await;
        assert!(
            matches!(&refused, Err(StorageError::Backend(e)) if e.to_string().contains("corrupt")),
            "{refused:?}"
        );
        assert!(matches!(
            storage.write(write).await,
            Err(StorageError::Poisoned)
        ));
    }

    /// The last handle's drop closes the file even while a read whose future was dropped
    /// still runs on the blocking pool: the path reopens at once. The drop used to return
    /// before the read ended, and the reopen failed while the read held the database.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_drop_waits_for_a_cancelled_read_so_the_path_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let storage = RedbStorage::open(&path, RedbOptions::default()).unwrap();
        let (started, is_started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let reader = storage.clone();
        let read = tokio::spawn(async move {
            reader
                .read(move |_db| {
                    let _ = started.send(());
                    let _ = released.recv_timeout(WAIT);
                    Ok(())
                })
                .await
        });
        tokio::task::spawn_blocking(move || is_started.recv_timeout(WAIT))
            .await
            .unwrap()
            .expect("the read started");
        read.abort();
        assert!(read.await.unwrap_err().is_cancelled());

        // The last handle goes on a thread of its own, which then reopens the path.
        let (reopened, reopen) = mpsc::channel();
        let reopen_path = path.clone();
        let dropper = std::thread::spawn(move || {
            drop(storage);
            let _ = reopened.send(RedbStorage::open(&reopen_path, RedbOptions::default()));
        });
        let early = match reopen.recv_timeout(NOT_BEFORE) {
            Ok(result) => Some(result),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the dropping thread failed"),
        };
        release.send(()).unwrap();
        let result = match early {
            Some(result) => result,
            None => reopen.recv_timeout(WAIT).expect("the drop ended"),
        };
        dropper.join().unwrap();
        assert!(
            result.is_ok(),
            "reopen after the last drop: {:?}",
            result.err()
        );
    }

    /// A writer thread that panics after answering (in a checkpoint step) poisons the
    /// storage, and the next write reports the panic. Regression (review): `is_poisoned`
    /// stayed false while every write failed `Poisoned`, and the panic's message was lost.
    #[tokio::test]
    async fn a_writer_that_panics_after_answering_poisons_the_storage() {
        use multiraft_core::{GroupWrite, Payload};
        let dir = tempfile::tempdir().unwrap();
        let options = RedbOptions::default().with_checkpoint_bytes(1);
        let storage = RedbStorage::open(dir.path().join("node.redb"), options).unwrap();
        let write = |index| {
            WriteBatch::from(vec![GroupWrite::new(GroupId(1)).with_entries(vec![
                Entry {
                    index,
                    term: 1,
                    payload: Payload::Noop,
                },
            ])])
        };
        storage
            .inner
            .shared
            .panic_in_checkpoint
            .store(true, Ordering::Relaxed);
        storage
            .write(write(1))
            .await
            .expect("answered before the checkpoint");
        let writer = storage.inner.writer.as_ref().expect("running");
        let deadline = std::time::Instant::now() + WAIT;
        while !writer.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never ended"
            );
            tokio::task::yield_now().await;
        }
        assert!(storage.is_poisoned());
        let error = storage
            .write(write(2))
            .await
            .expect_err("the writer is gone");
        assert!(
            error.to_string().contains("planted in a checkpoint step"),
            "{error}"
        );
        let later = storage.write(write(3)).await.expect_err("still gone");
        assert!(matches!(later, StorageError::Poisoned), "{later}");
    }
}
