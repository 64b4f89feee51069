//! The writer thread: it commits batches one at a time, each as one durable write-ahead
//! record, and runs checkpoint steps after the commits.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

use multiraft_core::{MAX_TERM_OR_INDEX, StorageError, WriteBatch};
use redb::{Database, Durability, WriteTransaction};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::codec::{
    CHUNKS_TABLE, GROUPS_TABLE, LOG_TABLE, SNAPSHOTS_TABLE, WAL_TABLE, corrupt, encode_batch,
    redb_error, reset_of,
};
use crate::metrics::RedbMetrics;
use crate::read::table_meta;
use crate::runs;
use crate::snapshots;
use crate::storage::Shared;
use crate::tail::{TAIL_GROUP_BYTES, Tail, TailGroup};

pub(crate) struct Job {
    pub(crate) batch: WriteBatch,
    pub(crate) reply: oneshot::Sender<Result<(), StorageError>>,
    /// The job's place in the bounded queue
    /// ([`MAX_QUEUED_WRITES`](crate::storage::MAX_QUEUED_WRITES)), given back once answered.
    pub(crate) room: OwnedSemaphorePermit,
}

/// Why a batch was not committed.
pub(crate) enum Failure {
    /// The batch breaks the `Storage` contract; it was not applied and the storage stays
    /// usable.
    Invalid(StorageError),
    /// redb failed; the storage is poisoned.
    Fatal(StorageError),
}

/// A failure that poisoned the storage, as its caller gets it: a `Corrupt` one (stored data
/// that failed a check, found while committing or checkpointing) as `Backend`, since the
/// `Storage` contract keeps `Corrupt` from a write for a batch refused with the storage
/// still usable (review: a caller that took it so retried, and only then met `Poisoned`).
fn fatal(e: StorageError) -> StorageError {
    match e {
        StorageError::Corrupt(_) => StorageError::Backend(Box::new(e)),
        other => other,
    }
}

impl<E: Into<redb::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Fatal(redb_error(e))
    }
}

/// The writer thread's state: the groups with write-ahead records not yet checkpointed.
pub(crate) struct Writer<'a> {
    pub(crate) db: &'a Database,
    pub(crate) tail: Tail,
    /// Checkpoint steps run once `tail.bytes` reaches this
    /// ([`RedbOptions::checkpoint_bytes`](crate::RedbOptions::checkpoint_bytes)).
    pub(crate) checkpoint_bytes: usize,
    /// Why the last checkpoint failed, for the next write to report (later ones get
    /// `Poisoned`).
    pub(crate) failed_checkpoint: Option<StorageError>,
    /// Commit and checkpoint metrics ([`crate::metrics`]).
    pub(crate) metrics: RedbMetrics,
}

/// The writer thread: commits batches one at a time, in order, until the channel closes;
/// after a commit, one checkpoint step once the tail is large enough (more while it is
/// twice that).
pub(crate) fn writer_loop(mut writer: Writer<'_>, jobs: &mpsc::Receiver<Job>, shared: &Shared) {
    let poisoned = &shared.poisoned;
    while let Ok(Job { batch, reply, room }) = jobs.recv() {
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
                    Err(fatal(e))
                }
            }
        };
        let committed = result.is_ok();
        // The caller may have gone away (its future dropped); the outcome stands anyway.
        // Its room is given back first, so that a caller that has its answer sees the
        // queue without it.
        drop(room);
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
            #[cfg(test)]
            if shared.panic_in_checkpoint.load(Ordering::Relaxed) {
                panic!("planted in a checkpoint step");
            }
            let started = Instant::now();
            if let Err(Failure::Invalid(e) | Failure::Fatal(e)) = writer.checkpoint_step() {
                writer.failed_checkpoint = Some(fatal(e));
                poisoned.store(true, Ordering::Release);
                // Not counted as a checkpoint done (review): the failure poisons the
                // storage, and the next write reports it.
                break;
            }
            let elapsed = started.elapsed();
            writer.metrics.checkpoints.increment(1);
            writer
                .metrics
                .checkpoint_seconds
                .record(elapsed.as_secs_f64());
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
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
        let started = Instant::now();
        txn.commit()?;
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.commit_seconds.record(seconds);
        Ok(())
    }

    /// Validates `batch`, then stores it in `txn`: its snapshot chunks in the snapshot
    /// tables, the rest as one write-ahead record, applied to the tail.
    fn append(&mut self, txn: &WriteTransaction, batch: WriteBatch) -> Result<(), Failure> {
        batch.validate_groups_distinct().map_err(Failure::Invalid)?;
        let groups = txn.open_table(GROUPS_TABLE)?;
        let log = txn.open_table(LOG_TABLE)?;
        let mut snapshot_rows = txn.open_table(SNAPSHOTS_TABLE)?;
        let mut chunks = txn.open_table(CHUNKS_TABLE)?;

        // Validate everything before changing anything. Groups not in the tail yet are read
        // from the tables once, here.
        let mut bases = Vec::with_capacity(batch.groups.len());
        for write in &batch.groups {
            let g = write.group.0;
            let in_tail = self.tail.groups.get(&g);
            let base = match in_tail {
                Some(_) => None,
                None => {
                    let meta = table_meta(&groups, g).map_err(Failure::Fatal)?;
                    Some(TailGroup::over(write.group, meta, self.tail.next_seq))
                }
            };
            let group = base
                .as_ref()
                .or(in_tail)
                .ok_or_else(|| Failure::Fatal(corrupt(write.group, "left the tail")))?;
            snapshots::check_chunks(&snapshot_rows, write)?;
            let (last, compacted) = group.bounds_after(reset_of(write));
            write.validate(last, compacted).map_err(Failure::Invalid)?;
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
            snapshots::store(&mut snapshot_rows, &mut chunks, &write).map_err(Failure::Fatal)?;
            let reset = reset_of(&write);
            group
                .apply(write, reset, &mut |index| runs::term_at(&log, g, index))
                .map_err(Failure::Fatal)?;
        }
        // Records are numbered up to `MAX_TERM_OR_INDEX` (2^63 writes), which replay
        // checks (`read_tail`); past it, and a wrapped number, would order the next record
        // before every other.
        let seq = self.tail.next_seq;
        if seq > MAX_TERM_OR_INDEX {
            return Err(Failure::Fatal(StorageError::Corrupt(format!(
                "write-ahead record numbered {seq}"
            ))));
        }
        let next = seq + 1;
        let mut wal = txn.open_table(WAL_TABLE)?;
        wal.insert(seq, record.as_slice())?;
        self.tail.records.push_back((seq, record.len()));
        self.tail.next_seq = next;
        self.tail.bytes += record.len() + added * TAIL_GROUP_BYTES;
        Ok(())
    }
}
