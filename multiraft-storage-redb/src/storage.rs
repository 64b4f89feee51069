//! [`RedbStorage`]: the [`Storage`] implementation, its writer thread and its read paths.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use multiraft_core::{Compacted, Entry, GroupId, LoadedGroup, Storage, StorageError, WriteBatch};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend,
    TableError, WriteTransaction,
};
use tokio::sync::oneshot;

use crate::codec::{
    FORMAT_KEY, FORMAT_TABLE, GROUPS_TABLE, GroupMeta, LOG_TABLE, corrupt, decode_entry,
    decode_meta, decode_term, encode_entry, encode_meta, redb_error,
};

/// The on-disk format this build reads and writes. Stored at creation and checked at open;
/// any other value is refused. Bumped by any change to the tables or value encodings.
///
/// History: 1 — first format; 2 — the metadata row records the compacted prefix.
pub const FORMAT_VERSION: u64 = 2;

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
}

impl RedbOptions {
    /// 64 MiB. redb's own default is 1 GiB per database, too much for a library that runs
    /// next to an application and already keeps each group's live log in memory; the cache
    /// mostly holds the B-trees' upper levels and recently written pages.
    pub const DEFAULT_CACHE_SIZE_BYTES: usize = 64 << 20;

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
    /// Set by the writer thread on the first failure; writes are refused from then on.
    poisoned: Arc<AtomicBool>,
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
        Self::start(db)
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
        Self::start(db)
    }

    fn start(db: Database) -> Result<RedbStorage, StorageError> {
        check_format(&db)?;
        let db = Arc::new(db);
        let poisoned = Arc::new(AtomicBool::new(false));
        let (jobs, rx) = mpsc::channel::<Job>();
        let writer = {
            let db = Arc::clone(&db);
            let poisoned = Arc::clone(&poisoned);
            std::thread::Builder::new()
                .name("multiraft-redb-writer".into())
                .spawn(move || writer_loop(&db, &rx, &poisoned))
                .map_err(StorageError::Io)?
        };
        Ok(RedbStorage {
            inner: Arc::new(Inner {
                db,
                jobs: Some(jobs),
                writer: Some(writer),
                poisoned,
            }),
        })
    }

    /// Whether an earlier write failed, so that every write is refused until reopened.
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
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
            txn.commit().map_err(redb_error)
        }
    }
}

/// The writer thread: commits batches one at a time, in order, until the channel closes.
fn writer_loop(db: &Database, jobs: &mpsc::Receiver<Job>, poisoned: &AtomicBool) {
    while let Ok(Job { batch, reply }) = jobs.recv() {
        let result = if poisoned.load(Ordering::Acquire) {
            Err(StorageError::Poisoned)
        } else {
            match commit(db, &batch) {
                Ok(()) => Ok(()),
                Err(Failure::Invalid(e)) => Err(e),
                Err(Failure::Fatal(e)) => {
                    poisoned.store(true, Ordering::Release);
                    Err(e)
                }
            }
        };
        // The caller may have gone away (its future dropped); the outcome stands anyway.
        let _ = reply.send(result);
    }
}

/// Validates and commits one batch as one durable transaction.
fn commit(db: &Database, batch: &WriteBatch) -> Result<(), Failure> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    match apply(&txn, batch) {
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

fn apply(txn: &WriteTransaction, batch: &WriteBatch) -> Result<(), Failure> {
    batch.validate_groups_distinct().map_err(Failure::Invalid)?;
    let mut groups = txn.open_table(GROUPS_TABLE)?;
    let mut log = txn.open_table(LOG_TABLE)?;

    // Validate everything before changing anything.
    let mut metas = Vec::with_capacity(batch.groups.len());
    for write in &batch.groups {
        let meta = match groups.get(write.group.0)? {
            Some(v) => Some(decode_meta(write.group.0, v.value()).map_err(Failure::Fatal)?),
            None => None,
        };
        let (last, compacted) = meta
            .as_ref()
            .map_or((0, 0), |m| (m.last_index, m.compacted_index));
        write.validate(last, compacted).map_err(Failure::Invalid)?;
        metas.push(meta);
    }

    for (write, meta) in batch.groups.iter().zip(metas) {
        let g = write.group.0;
        if write.remove {
            if meta.is_some() {
                groups.remove(g)?;
                log.retain_in((g, 0)..=(g, u64::MAX), |_, _| false)?;
            }
            continue;
        }
        let mut meta = meta.unwrap_or_default();
        if let Some(membership) = &write.membership {
            meta.membership = membership.clone();
        }
        if let Some(hard_state) = write.hard_state {
            meta.hard_state = hard_state;
        }
        if let (Some(first), Some(last)) = (write.entries.first(), write.entries.last()) {
            if first.index <= meta.last_index {
                // Conflict truncation: delete the stored suffix from the first new index.
                log.retain_in((g, first.index)..=(g, meta.last_index), |_, _| false)?;
            }
            for entry in &write.entries {
                let value = encode_entry(entry).map_err(Failure::Fatal)?;
                log.insert((g, entry.index), value.as_slice())?;
            }
            meta.last_index = last.index;
            meta.last_term = last.term;
        }
        if let Some(to) = write.compact_to
            && to > meta.compacted_index
        {
            // Validated: `to` is at most the last index, so the entry is stored (this
            // transaction sees its own appends).
            let term = if to == meta.last_index {
                meta.last_term
            } else {
                match log.get((g, to))? {
                    Some(v) => decode_term(g, to, v.value()).map_err(Failure::Fatal)?,
                    None => {
                        return Err(Failure::Fatal(corrupt(
                            write.group,
                            &format!("entry {to} is missing below the last index"),
                        )));
                    }
                }
            };
            log.retain_in((g, meta.compacted_index + 1)..=(g, to), |_, _| false)?;
            meta.compacted_index = to;
            meta.compacted_term = term;
        }
        groups.insert(g, encode_meta(&meta).map_err(Failure::Fatal)?.as_slice())?;
    }
    Ok(())
}

/// Every group with its full log, checked against its metadata, in group order.
fn load_all(db: &Database) -> Result<Vec<LoadedGroup>, StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
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
        // Capped: a corrupt last index must not become a huge allocation.
        let capacity = usize::try_from(meta.last_index.min(1 << 16)).unwrap_or(0);
        let mut entries = Vec::with_capacity(capacity);
        loop {
            let key = match rows.peek() {
                None => break,
                Some(Ok((k, _))) => k.value(),
                Some(Err(_)) => {
                    let Some(Err(e)) = rows.next() else {
                        unreachable!("peeked an error")
                    };
                    return Err(redb_error(e));
                }
            };
            if key.0 > g {
                break;
            }
            if key.0 < g {
                return Err(corrupt(
                    GroupId(key.0),
                    &format!("log entry {} without a group", key.1),
                ));
            }
            let Some(Ok((_, value))) = rows.next() else {
                unreachable!("peeked a row")
            };
            let expected = meta.compacted_index + entries.len() as u64 + 1;
            if key.1 != expected {
                return Err(corrupt(
                    GroupId(g),
                    &format!("log has index {} where {expected} was expected", key.1),
                ));
            }
            entries.push(decode_entry(g, key.1, value.value())?);
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
        loaded.push(LoadedGroup {
            group: GroupId(g),
            membership: meta.membership,
            hard_state: meta.hard_state,
            compacted: (meta.compacted_index > 0).then_some(Compacted {
                index: meta.compacted_index,
                term: meta.compacted_term,
            }),
            entries,
        });
    }
    if let Some(row) = rows.next() {
        let (key, _) = row.map_err(redb_error)?;
        let (g, index) = key.value();
        return Err(corrupt(
            GroupId(g),
            &format!("log entry {index} without a group"),
        ));
    }
    Ok(loaded)
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
    let compacted = read_meta(&read, group)?.map_or(0, |m| m.compacted_index);
    if low <= compacted {
        return Err(StorageError::Compacted {
            group,
            index: compacted,
        });
    }
    let log = read.open_table(LOG_TABLE).map_err(redb_error)?;
    let g = group.0;
    let mut entries = Vec::new();
    for row in ReadableTable::range(&log, (g, low)..(g, high)).map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let (_, index) = key.value();
        entries.push(decode_entry(g, index, value.value())?);
    }
    Ok(entries)
}

fn read_term(db: &Database, group: GroupId, index: u64) -> Result<Option<u64>, StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
    if let Some(meta) = read_meta(&read, group)?
        && meta.compacted_index > 0
        && index <= meta.compacted_index
    {
        return Ok((index == meta.compacted_index).then_some(meta.compacted_term));
    }
    let log = read.open_table(LOG_TABLE).map_err(redb_error)?;
    match ReadableTable::get(&log, (group.0, index)).map_err(redb_error)? {
        Some(value) => Ok(Some(decode_term(group.0, index, value.value())?)),
        None => Ok(None),
    }
}

/// The group's metadata row, if it has one.
fn read_meta(read: &ReadTransaction, group: GroupId) -> Result<Option<GroupMeta>, StorageError> {
    let groups = read.open_table(GROUPS_TABLE).map_err(redb_error)?;
    match ReadableTable::get(&groups, group.0).map_err(redb_error)? {
        Some(v) => Ok(Some(decode_meta(group.0, v.value())?)),
        None => Ok(None),
    }
}

#[async_trait]
impl Storage for RedbStorage {
    async fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        if self.is_poisoned() {
            return Err(StorageError::Poisoned);
        }
        let (reply, rx) = oneshot::channel();
        let jobs = self.inner.jobs.as_ref().ok_or(StorageError::Poisoned)?;
        jobs.send(Job { batch, reply })
            .map_err(|_| StorageError::Poisoned)?;
        match rx.await {
            Ok(result) => result,
            // The writer thread is gone without answering: it panicked. Nothing is known about
            // this batch, so refuse everything from now on.
            Err(_) => {
                self.inner.poisoned.store(true, Ordering::Release);
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
