//! [`RedbStorage`]: the [`Storage`] implementation, its writer thread and its read paths.

use std::collections::hash_map::Entry as Entry_;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use async_trait::async_trait;
use multiraft_core::{Compacted, Entry, GroupId, LoadedGroup, Storage, StorageError, WriteBatch};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend,
    TableError, WriteTransaction,
};
use tokio::sync::oneshot;

use crate::codec::{
    FORMAT_KEY, FORMAT_TABLE, GROUPS_TABLE, GroupMeta, LOG_TABLE, REMOVED_TABLE, SEQ_FLOOR_KEY,
    WAL_TABLE, corrupt, decode_batch, decode_meta, decode_run, encode_batch, encode_meta,
    redb_error,
};
use crate::runs;
use crate::tail::TailGroup;

/// The on-disk format this build reads and writes. Stored at creation and checked at open;
/// any other value is refused. Bumped by any change to the tables or value encodings.
///
/// History: 1 — first format; 2 — the metadata row records the compacted prefix; 3 — batches
/// are committed to a write-ahead table and checkpointed into the group and log tables.
pub const FORMAT_VERSION: u64 = 3;

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
    /// entries share their payload buffers with the node's log); the replay at each `load`,
    /// `entries` and `term`, which decode the whole write-ahead table. Larger values
    /// amortize a checkpoint's per-group cost (one run and one metadata row) over more
    /// entries. 0 moves every group after every write.
    pub checkpoint_bytes: usize,
}

impl RedbOptions {
    /// 64 MiB. redb's own default is 1 GiB per database, too much for a library that runs
    /// next to an application and already keeps each group's live log in memory; the cache
    /// mostly holds the B-trees' upper levels and recently written pages.
    pub const DEFAULT_CACHE_SIZE_BYTES: usize = 64 << 20;

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

    fn builder(&self) -> redb::Builder {
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

/// The shared log of one node on one redb database. See the [crate docs](crate) for the
/// design: key layout, threads, crash cases and assumptions about the disk.
///
/// Cloning is cheap; clones share the database and its writer thread. The database file is
/// closed when the last clone is dropped (the drop waits for the commit in progress, if any).
#[derive(Clone, Debug)]
pub struct RedbStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Arc<Database>,
    /// Jobs for the writer thread. `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// Written by the writer thread, read by handles.
    shared: Arc<Shared>,
}

struct Job {
    batch: WriteBatch,
    reply: oneshot::Sender<Result<(), StorageError>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining makes the file closed (as far as
        // the writer is concerned) when the last handle is gone, so the path can be reopened.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// What the writer thread tells the handles.
#[derive(Debug, Default)]
struct Shared {
    /// Set on the first failure; writes are refused from then on.
    poisoned: AtomicBool,
    checkpoints: AtomicU64,
    checkpoint_micros_total: AtomicU64,
    checkpoint_micros_max: AtomicU64,
    tail_bytes: AtomicU64,
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
}

/// Why a batch was not committed.
enum Failure {
    /// The batch breaks the `Storage` contract; it was not applied and the storage stays
    /// usable.
    Invalid(StorageError),
    /// redb failed; the storage is poisoned.
    Fatal(StorageError),
}

impl<E: Into<redb::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Fatal(redb_error(e))
    }
}

impl RedbStorage {
    /// Opens the database at `path`, creating the file if it does not exist.
    ///
    /// Fails with [`StorageError::Corrupt`] when the file is not a multiraft database of
    /// [`FORMAT_VERSION`], and with [`StorageError::Backend`] when another handle or process
    /// has it open.
    ///
    /// A new file is created crash-safely: it is initialized (redb header, tables, format
    /// version, all synced) under a temporary name next to `path` — `path` with `.creating`
    /// appended — then renamed into place and the directory synced. A crash during creation
    /// leaves no file at `path` (redb's own in-place creation can leave a file it refuses to
    /// open); a stale temporary file is replaced at the next open.
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
            std::thread::Builder::new()
                .name("multiraft-redb-writer".into())
                .spawn(move || {
                    let writer = Writer {
                        db: &db,
                        tail,
                        checkpoint_bytes,
                        failed_checkpoint: None,
                    };
                    writer_loop(writer, &rx, &shared);
                })
                .map_err(StorageError::Io)?
        };
        Ok(RedbStorage {
            inner: Arc::new(Inner {
                db,
                jobs: Some(jobs),
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
        }
    }

    /// Runs a read on the database: on tokio's blocking pool inside a runtime (reads may touch
    /// the disk), inline otherwise.
    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    {
        let db = Arc::clone(&self.inner.db);
        if tokio::runtime::Handle::try_current().is_err() {
            return f(&db);
        }
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StorageError::Backend(format!("read task failed: {e}")))?
    }
}

/// Creates a new database at `path` through a temporary file and a rename, so that a crash
/// never leaves a half-initialized file at `path`.
fn create_file(path: &Path, options: &RedbOptions) -> Result<(), StorageError> {
    let name = path.file_name().ok_or_else(|| {
        StorageError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ))
    })?;
    let mut temp_name = name.to_os_string();
    temp_name.push(".creating");
    let temp = path.with_file_name(temp_name);
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    {
        let db = options.builder().create(&temp).map_err(redb_error)?;
        // Commits durably; the database is closed (and synced) when `db` drops.
        check_format(&db)?;
    }
    std::fs::rename(&temp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates the tables and the format version in a new database, or checks them in an
/// existing one.
fn check_format(db: &Database) -> Result<(), StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
    let found = match read.open_table(FORMAT_TABLE) {
        Ok(table) => Some(
            table
                .get(FORMAT_KEY)
                .map_err(redb_error)?
                .map(|v| v.value()),
        ),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(redb_error(e)),
    };
    match found {
        Some(Some(FORMAT_VERSION)) => Ok(()),
        Some(Some(v)) => Err(StorageError::Corrupt(format!(
            "database format version {v} {}; this build reads version {FORMAT_VERSION} only",
            if v > FORMAT_VERSION {
                "is newer than this build"
            } else {
                "is unknown"
            }
        ))),
        Some(None) => Err(StorageError::Corrupt(
            "the format table exists but holds no version".into(),
        )),
        None => {
            if read.list_tables().map_err(redb_error)?.next().is_some() {
                return Err(StorageError::Corrupt(
                    "the database holds tables but no multiraft format version: not a \
                     multiraft database"
                        .into(),
                ));
            }
            drop(read);
            let mut txn = db.begin_write().map_err(redb_error)?;
            txn.set_durability(Durability::Immediate)
                .map_err(redb_error)?;
            txn.open_table(FORMAT_TABLE)
                .map_err(redb_error)?
                .insert(FORMAT_KEY, FORMAT_VERSION)
                .map_err(redb_error)?;
            txn.open_table(GROUPS_TABLE).map_err(redb_error)?;
            txn.open_table(LOG_TABLE).map_err(redb_error)?;
            txn.open_table(WAL_TABLE).map_err(redb_error)?;
            txn.open_table(REMOVED_TABLE).map_err(redb_error)?;
            txn.commit().map_err(redb_error)
        }
    }
}

/// The writer thread's state: the groups with write-ahead records not yet checkpointed.
struct Writer<'a> {
    db: &'a Database,
    tail: Tail,
    /// Checkpoint steps run once `tail.bytes` reaches this ([`RedbOptions::checkpoint_bytes`]).
    checkpoint_bytes: usize,
    /// Why the last checkpoint failed, for the next write to report (later ones get
    /// `Poisoned`).
    failed_checkpoint: Option<StorageError>,
}

/// The write-ahead records not yet checkpointed, applied per group.
#[derive(Default)]
struct Tail {
    /// Every group with records not yet checkpointed.
    groups: HashMap<u64, TailGroup>,
    /// The records in the write-ahead table: sequence number and encoded size.
    records: VecDeque<(u64, usize)>,
    /// The sequence number of the next write-ahead record.
    next_seq: u64,
    /// Encoded size of the records plus [`TAIL_GROUP_BYTES`] per group: what checkpoints
    /// have to move, and roughly what the writer holds in memory for them.
    bytes: usize,
}

impl Tail {
    /// Forgets the records below `seq` (deleted from the table).
    fn drop_records_below(&mut self, seq: u64) {
        while let Some(&(s, len)) = self.records.front()
            && s < seq
        {
            self.bytes -= len;
            self.records.pop_front();
        }
    }
}

/// What one group in the tail counts for besides its records' bytes (its metadata, its map
/// slot): so that a tail of many groups with tiny writes is checkpointed too.
const TAIL_GROUP_BYTES: usize = 256;

/// A checkpoint step moves this fraction (1/N) of the tail's groups, oldest first, so that a
/// write waits for one step, not for all groups at once: the stall after a commit is about
/// one sixteenth of a whole checkpoint.
const CHECKPOINT_SLICES: usize = 16;

/// The writer thread: commits batches one at a time, in order, until the channel closes;
/// after a commit, one checkpoint step once the tail is large enough (more while it is
/// twice that).
fn writer_loop(mut writer: Writer<'_>, jobs: &mpsc::Receiver<Job>, shared: &Shared) {
    let poisoned = &shared.poisoned;
    while let Ok(Job { batch, reply }) = jobs.recv() {
        let result = if poisoned.load(Ordering::Acquire) {
            Err(writer
                .failed_checkpoint
                .take()
                .unwrap_or(StorageError::Poisoned))
        } else {
            match writer.commit(batch) {
                Ok(()) => Ok(()),
                Err(Failure::Invalid(e)) => Err(e),
                Err(Failure::Fatal(e)) => {
                    poisoned.store(true, Ordering::Release);
                    Err(e)
                }
            }
        };
        let committed = result.is_ok();
        // The caller may have gone away (its future dropped); the outcome stands anyway.
        let _ = reply.send(result);
        // After the reply: the batch is durable in the write-ahead table already, so its
        // caller need not wait for the checkpoint (the next batch does).
        let mut steps = 0;
        while committed
            && !poisoned.load(Ordering::Acquire)
            && !writer.tail.groups.is_empty()
            && (steps == 0 || writer.tail.bytes >= writer.checkpoint_bytes.saturating_mul(2))
            && writer.tail.bytes >= writer.checkpoint_bytes
        {
            steps += 1;
            let started = Instant::now();
            if let Err(Failure::Invalid(e) | Failure::Fatal(e)) = writer.checkpoint_step() {
                writer.failed_checkpoint = Some(e);
                poisoned.store(true, Ordering::Release);
            }
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            shared.checkpoints.fetch_add(1, Ordering::Relaxed);
            shared
                .checkpoint_micros_total
                .fetch_add(micros, Ordering::Relaxed);
            shared
                .checkpoint_micros_max
                .fetch_max(micros, Ordering::Relaxed);
        }
        shared
            .tail_bytes
            .store(writer.tail.bytes as u64, Ordering::Relaxed);
    }
}

impl Writer<'_> {
    /// Validates one batch and commits it as one write-ahead record, durably.
    fn commit(&mut self, batch: WriteBatch) -> Result<(), Failure> {
        if batch.is_empty() {
            // Nothing to make durable; no record (it would hold the tail's bytes up).
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        match self.append(&txn, batch) {
            Ok(()) => {}
            Err(Failure::Invalid(e)) => {
                txn.abort()?;
                return Err(Failure::Invalid(e));
            }
            Err(fatal) => return Err(fatal),
        }
        txn.commit()?;
        Ok(())
    }

    fn append(&mut self, txn: &WriteTransaction, batch: WriteBatch) -> Result<(), Failure> {
        batch.validate_groups_distinct().map_err(Failure::Invalid)?;
        let groups = txn.open_table(GROUPS_TABLE)?;
        let log = txn.open_table(LOG_TABLE)?;

        // Validate everything before changing anything. Groups not in the tail yet are read
        // from the tables once, here.
        let mut bases = Vec::with_capacity(batch.groups.len());
        for write in &batch.groups {
            let g = write.group.0;
            let (bounds, base) = match self.tail.groups.get(&g) {
                Some(group) => (group.bounds(), None),
                None => {
                    let meta = table_meta(&groups, g).map_err(Failure::Fatal)?;
                    let base = TailGroup::over(meta, self.tail.next_seq);
                    (base.bounds(), Some(base))
                }
            };
            write
                .validate(bounds.0, bounds.1)
                .map_err(Failure::Invalid)?;
            bases.push(base);
        }

        let record = encode_batch(&batch).map_err(Failure::Fatal)?;
        let mut added = 0;
        for (write, base) in batch.groups.into_iter().zip(bases) {
            let g = write.group.0;
            let group = match base {
                Some(base) => {
                    added += 1;
                    self.tail.groups.entry(g).or_insert(base)
                }
                None => self
                    .tail
                    .groups
                    .get_mut(&g)
                    .ok_or_else(|| Failure::Fatal(corrupt(write.group, "left the tail")))?,
            };
            group
                .apply(write, &mut |index| runs::term_at(&log, g, index))
                .map_err(Failure::Fatal)?;
        }
        let mut wal = txn.open_table(WAL_TABLE)?;
        wal.insert(self.tail.next_seq, record.as_slice())?;
        self.tail
            .records
            .push_back((self.tail.next_seq, record.len()));
        self.tail.next_seq += 1;
        self.tail.bytes += record.len() + added * TAIL_GROUP_BYTES;
        Ok(())
    }

    /// One checkpoint step, one durable transaction: moves the oldest slice of the tail's
    /// groups into the tables, then deletes the write-ahead records no remaining group needs
    /// (those below the oldest `first_seq` left) and the removal marks they made useless.
    fn checkpoint_step(&mut self) -> Result<(), Failure> {
        let mut oldest: Vec<(u64, u64)> = self
            .tail
            .groups
            .iter()
            .map(|(&g, group)| (group.first_seq, g))
            .collect();
        let take = oldest.len().div_ceil(CHECKPOINT_SLICES);
        if take < oldest.len() {
            oldest.select_nth_unstable(take);
            oldest.truncate(take);
        }
        // In key order: neighbouring groups share B-tree pages.
        let mut ids: Vec<u64> = oldest.into_iter().map(|(_, g)| g).collect();
        ids.sort_unstable();
        let wal_from = self.tail.next_seq;

        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let keep_from = self
            .tail
            .groups
            .iter()
            .filter(|(g, _)| ids.binary_search(g).is_err())
            .map(|(_, group)| group.first_seq)
            .min()
            .unwrap_or(wal_from);
        {
            let mut groups = txn.open_table(GROUPS_TABLE)?;
            let mut log = txn.open_table(LOG_TABLE)?;
            let mut removed = txn.open_table(REMOVED_TABLE)?;
            for &g in &ids {
                if let Some(group) = self.tail.groups.get(&g) {
                    checkpoint_group(&mut groups, &mut log, &mut removed, g, group, wal_from)
                        .map_err(Failure::Fatal)?;
                }
            }
            txn.open_table(WAL_TABLE)?
                .retain_in(..keep_from, |_, _| false)?;
            removed.retain(|_, from| from > keep_from)?;
            txn.open_table(FORMAT_TABLE)?
                .insert(SEQ_FLOOR_KEY, wal_from)?;
        }
        txn.commit()?;
        for g in &ids {
            self.tail.groups.remove(g);
        }
        self.tail.bytes -= ids.len() * TAIL_GROUP_BYTES;
        self.tail.drop_records_below(keep_from);
        Ok(())
    }
}

/// Writes one group's tail into the tables: deletes the table rows it made dead, adds its
/// new entries as one run, replaces (or deletes) its metadata row.
fn checkpoint_group(
    groups: &mut redb::Table<'_, u64, &'static [u8]>,
    log: &mut runs::LogTable<'_>,
    removed: &mut redb::Table<'_, u64, u64>,
    g: u64,
    group: &TailGroup,
    wal_from: u64,
) -> Result<(), StorageError> {
    if group.cleared {
        log.retain_in((g, 0)..=(g, u64::MAX), |_, _| false)
            .map_err(redb_error)?;
    } else {
        let truncated = group.table_live_to < group.table_last;
        if truncated {
            runs::truncate_after(log, g, group.table_live_to)?;
        }
        // A truncation can leave a straddling run wholly compacted, too.
        let compacted = group.meta.as_ref().map_or(0, |m| m.compacted_index);
        if compacted > group.table_compacted || (truncated && compacted > 0) {
            runs::delete_compacted(log, g, compacted, group.table_live_to)?;
        }
    }
    match &group.meta {
        None => {
            groups.remove(g).map_err(redb_error)?;
            removed.insert(g, wal_from).map_err(redb_error)?;
        }
        Some(meta) => {
            runs::insert_run(log, g, &group.run)?;
            let meta = GroupMeta {
                wal_from,
                ..meta.clone()
            };
            groups
                .insert(g, encode_meta(&meta)?.as_slice())
                .map_err(redb_error)?;
            // A removal mark of an earlier incarnation is superseded by this row.
            removed.remove(g).map_err(redb_error)?;
        }
    }
    Ok(())
}

/// The group's checkpointed metadata row, if any.
fn table_meta(
    groups: &impl ReadableTable<u64, &'static [u8]>,
    g: u64,
) -> Result<Option<GroupMeta>, StorageError> {
    match groups.get(g).map_err(redb_error)? {
        Some(v) => Ok(Some(decode_meta(g, v.value())?)),
        None => Ok(None),
    }
}

/// Replays the write-ahead table of `read` over the tables: every group it touches, or only
/// `only`.
fn read_tail(read: &ReadTransaction, only: Option<GroupId>) -> Result<Tail, StorageError> {
    let groups = read.open_table(GROUPS_TABLE).map_err(redb_error)?;
    let log = read.open_table(LOG_TABLE).map_err(redb_error)?;
    let wal = read.open_table(WAL_TABLE).map_err(redb_error)?;
    let removed = read.open_table(REMOVED_TABLE).map_err(redb_error)?;
    let floor = read
        .open_table(FORMAT_TABLE)
        .map_err(redb_error)?
        .get(SEQ_FLOOR_KEY)
        .map_err(redb_error)?
        .map_or(0, |v| v.value());
    let mut tail = Tail {
        next_seq: floor,
        ..Tail::default()
    };
    // Per group: its records below this sequence number are in the tables already.
    let mut skip_below: HashMap<u64, u64> = HashMap::new();
    for row in ReadableTable::range::<u64>(&wal, ..).map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let seq = key.value();
        tail.next_seq = tail.next_seq.max(seq + 1);
        tail.records.push_back((seq, value.value().len()));
        tail.bytes += value.value().len();
        for write in decode_batch(seq, value.value())? {
            if only.is_some_and(|g| g != write.group) {
                continue;
            }
            let g = write.group.0;
            let group = match tail.groups.entry(g) {
                Entry_::Occupied(o) => o.into_mut(),
                Entry_::Vacant(v) => {
                    if skip_below.get(&g).is_some_and(|&from| seq < from) {
                        continue;
                    }
                    // Read once per group: its floor is remembered if this record is skipped.
                    let meta = table_meta(&groups, g)?;
                    let from = match &meta {
                        Some(meta) => meta.wal_from,
                        None => removed.get(g).map_err(redb_error)?.map_or(0, |v| v.value()),
                    };
                    if seq < from {
                        skip_below.insert(g, from);
                        continue;
                    }
                    tail.bytes += TAIL_GROUP_BYTES;
                    v.insert(TailGroup::over(meta, seq))
                }
            };
            // Validated before it was committed; checked again so that a record damaged
            // behind redb's checksums is `Corrupt`, not a panic.
            let (last, compacted) = group.bounds();
            write.validate(last, compacted).map_err(|e| {
                StorageError::Corrupt(format!("write-ahead record {seq} does not apply: {e}"))
            })?;
            group.apply(write, &mut |index| runs::term_at(&log, g, index))?;
        }
    }
    Ok(tail)
}

/// Every group with its full log, in group order: the checkpointed tables, checked against
/// each other, with the write-ahead records applied.
fn load_all(db: &Database) -> Result<Vec<LoadedGroup>, StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
    let mut tail = read_tail(&read, None)?;
    let groups = read.open_table(GROUPS_TABLE).map_err(redb_error)?;
    let log = read.open_table(LOG_TABLE).map_err(redb_error)?;
    let mut rows = ReadableTable::range::<(u64, u64)>(&log, ..)
        .map_err(redb_error)?
        .peekable();
    let mut loaded = Vec::new();
    for row in ReadableTable::range::<u64>(&groups, ..).map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let g = key.value();
        let meta = decode_meta(g, value.value())?;
        let mut entries = checked_log(&mut rows, g, &meta)?;
        match tail.groups.remove(&g) {
            None => loaded.push(loaded_group(g, meta, entries)),
            Some(group) => {
                entries.retain(|e| group.table_row_live(e.index));
                if let Some(meta) = group.meta {
                    entries.extend(group.run);
                    loaded.push(loaded_group(g, meta, entries));
                }
            }
        }
    }
    if let Some(row) = rows.next() {
        let (key, _) = row.map_err(redb_error)?;
        let (g, first) = key.value();
        return Err(corrupt(
            GroupId(g),
            &format!("log run at {first} without a group"),
        ));
    }
    // Groups created since the checkpoint.
    let before = loaded.len();
    for (g, group) in tail.groups {
        if let Some(meta) = group.meta {
            loaded.push(loaded_group(g, meta, group.run));
        }
    }
    if loaded.len() > before {
        loaded.sort_unstable_by_key(|l| l.group);
    }
    Ok(loaded)
}

type Rows<'a> = std::iter::Peekable<redb::Range<'a, (u64, u64), &'static [u8]>>;

/// Group `g`'s log from its runs (the next rows of `rows`), checked against its metadata:
/// runs consecutive, the live entries starting right after the compacted prefix and ending
/// at the recorded last index and term.
fn checked_log(rows: &mut Rows<'_>, g: u64, meta: &GroupMeta) -> Result<Vec<Entry>, StorageError> {
    // Capped: a corrupt last index must not become a huge allocation.
    let capacity = usize::try_from(meta.last_index.min(1 << 16)).unwrap_or(0);
    let mut entries: Vec<Entry> = Vec::with_capacity(capacity);
    loop {
        let (group, first) = match rows.peek() {
            None => break,
            Some(Ok((k, _))) => k.value(),
            Some(Err(_)) => {
                let Some(Err(e)) = rows.next() else {
                    unreachable!("peeked an error")
                };
                return Err(redb_error(e));
            }
        };
        if group > g {
            break;
        }
        if group < g {
            return Err(corrupt(
                GroupId(group),
                &format!("log run at {first} without a group"),
            ));
        }
        let Some(Ok((_, value))) = rows.next() else {
            unreachable!("peeked a row")
        };
        if let Some(last) = entries.last()
            && first != last.index + 1
        {
            return Err(corrupt(
                GroupId(g),
                &format!("log run at {first} after entry {}", last.index),
            ));
        }
        let run = decode_run(g, first, value.value())?;
        if entries.is_empty() && run.last().is_some_and(|e| e.index <= meta.compacted_index) {
            // A run wholly compacted is deleted by the compaction.
            return Err(corrupt(
                GroupId(g),
                &format!("log run at {first} lies below the compacted index"),
            ));
        }
        entries.extend(run);
    }
    let dead = entries
        .iter()
        .take_while(|e| e.index <= meta.compacted_index)
        .count();
    entries.drain(..dead);
    if let Some(first) = entries.first()
        && first.index != meta.compacted_index + 1
    {
        return Err(corrupt(
            GroupId(g),
            &format!(
                "log starts at index {} where {} was expected",
                first.index,
                meta.compacted_index + 1
            ),
        ));
    }
    let last = entries
        .last()
        .map_or((meta.compacted_index, meta.compacted_term), |e| {
            (e.index, e.term)
        });
    if last != (meta.last_index, meta.last_term) {
        return Err(corrupt(
            GroupId(g),
            &format!(
                "log ends at index {} term {}, metadata says index {} term {}",
                last.0, last.1, meta.last_index, meta.last_term
            ),
        ));
    }
    Ok(entries)
}

fn loaded_group(g: u64, meta: GroupMeta, entries: Vec<Entry>) -> LoadedGroup {
    LoadedGroup {
        group: GroupId(g),
        membership: meta.membership,
        hard_state: meta.hard_state,
        compacted: (meta.compacted_index > 0).then_some(Compacted {
            index: meta.compacted_index,
            term: meta.compacted_term,
        }),
        entries,
    }
}

/// One group as the read transaction sees it: its tail, or its table state if the
/// write-ahead table does not touch it.
fn read_group(read: &ReadTransaction, group: GroupId) -> Result<TailGroup, StorageError> {
    let mut tail = read_tail(read, Some(group))?;
    match tail.groups.remove(&group.0) {
        Some(g) => Ok(g),
        None => Ok(TailGroup::over(read_meta(read, group)?, 0)),
    }
}

fn read_entries(
    db: &Database,
    group: GroupId,
    low: u64,
    high: u64,
) -> Result<Vec<Entry>, StorageError> {
    let low = low.max(1);
    if low >= high {
        return Ok(Vec::new());
    }
    let read = db.begin_read().map_err(redb_error)?;
    let state = read_group(&read, group)?;
    let Some(meta) = &state.meta else {
        return Ok(Vec::new());
    };
    if low <= meta.compacted_index {
        return Err(StorageError::Compacted {
            group,
            index: meta.compacted_index,
        });
    }
    let log = read.open_table(LOG_TABLE).map_err(redb_error)?;
    let mut entries = Vec::new();
    if !state.cleared {
        let table_high = high.min(state.table_live_to.saturating_add(1));
        entries = runs::read_range(&log, group.0, low, table_high)?;
    }
    entries.extend(
        state
            .run
            .iter()
            .filter(|e| e.index >= low && e.index < high)
            .cloned(),
    );
    Ok(entries)
}

fn read_term(db: &Database, group: GroupId, index: u64) -> Result<Option<u64>, StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
    let state = read_group(&read, group)?;
    let Some(meta) = &state.meta else {
        return Ok(None);
    };
    if meta.compacted_index > 0 && index <= meta.compacted_index {
        return Ok((index == meta.compacted_index).then_some(meta.compacted_term));
    }
    if let Some(entry) = state.run.iter().find(|e| e.index == index) {
        return Ok(Some(entry.term));
    }
    if !state.table_row_live(index) {
        return Ok(None);
    }
    let log = read.open_table(LOG_TABLE).map_err(redb_error)?;
    runs::term_at(&log, group.0, index)
}

/// The group's metadata row, if it has one.
fn read_meta(read: &ReadTransaction, group: GroupId) -> Result<Option<GroupMeta>, StorageError> {
    table_meta(&read.open_table(GROUPS_TABLE).map_err(redb_error)?, group.0)
}

#[async_trait]
impl Storage for RedbStorage {
    async fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        // Even when poisoned the writer answers: the first write after a failed checkpoint
        // gets the checkpoint's error, later ones `Poisoned`.
        let (reply, rx) = oneshot::channel();
        let jobs = self.inner.jobs.as_ref().ok_or(StorageError::Poisoned)?;
        jobs.send(Job { batch, reply })
            .map_err(|_| StorageError::Poisoned)?;
        match rx.await {
            Ok(result) => result,
            // The writer thread is gone without answering: it panicked. Nothing is known about
            // this batch, so refuse everything from now on.
            Err(_) => {
                self.inner.shared.poisoned.store(true, Ordering::Release);
                Err(StorageError::Backend(
                    "the redb writer thread stopped".into(),
                ))
            }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    /// Format check: a database written by a newer build is a typed error, not a panic, and
    /// the file is left untouched.
    #[test]
    fn a_newer_format_version_is_refused_at_open() {
        let backend = InMemoryBackend::new();
        let db = Database::builder().create_with_backend(backend).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(FORMAT_TABLE)
            .unwrap()
            .insert(FORMAT_KEY, FORMAT_VERSION + 1)
            .unwrap();
        txn.commit().unwrap();
        let err = check_format(&db).unwrap_err();
        match err {
            StorageError::Corrupt(msg) => {
                let newer = format!("version {} is newer", FORMAT_VERSION + 1);
                assert!(msg.contains(&newer), "{msg}");
                let ours = format!("reads version {FORMAT_VERSION}");
                assert!(msg.contains(&ours), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A write-ahead record that breaks the contract (damaged behind redb's checksums, or
    /// written by a bug) is `Corrupt` at replay, not a panic (an entry at index 0 made
    /// `TailGroup::apply` underflow).
    #[test]
    fn an_invalid_write_ahead_record_is_corrupt_not_a_panic() {
        use multiraft_core::{GroupWrite, Payload};
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        check_format(&db).unwrap();
        let bad = WriteBatch {
            groups: vec![GroupWrite {
                group: GroupId(1),
                entries: vec![Entry {
                    index: 0,
                    term: 1,
                    payload: Payload::Noop,
                }],
                ..Default::default()
            }],
        };
        let txn = db.begin_write().unwrap();
        txn.open_table(WAL_TABLE)
            .unwrap()
            .insert(0, encode_batch(&bad).unwrap().as_slice())
            .unwrap();
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        match read_tail(&read, None) {
            Err(StorageError::Corrupt(m)) => assert!(m.contains("record 0"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("an entry at index 0 was replayed"),
        }
    }

    #[test]
    fn a_foreign_redb_database_is_refused_at_open() {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        let other: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("other");
        txn.open_table(other).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
        assert!(
            matches!(check_format(&db), Err(StorageError::Corrupt(m)) if m.contains("not a multiraft"))
        );
    }

    #[test]
    fn a_new_database_gets_the_current_version() {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        check_format(&db).unwrap();
        check_format(&db).unwrap();
        let read = db.begin_read().unwrap();
        let t = read.open_table(FORMAT_TABLE).unwrap();
        assert_eq!(t.get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT_VERSION);
    }
}
