//! The shared log of a multiraft node on one [redb](https://docs.rs/redb) database.
//!
//! [`RedbStorage`] implements [`multiraft_core::Storage`]: every group hosted by the node keeps
//! its log, hard state, membership and snapshots in one database file, and one
//! [`WriteBatch`](multiraft_core::WriteBatch) from the node layer — whatever the number of
//! groups in it — becomes one redb write transaction committed with
//! [`Durability::Immediate`](redb::Durability::Immediate): one fsync per cycle for the whole
//! node (group commit).
//!
//! ```
//! use multiraft_core::{Entry, GroupId, GroupWrite, HardState, NodeId, Payload, Storage, WriteBatch};
//! use multiraft_storage_redb::{RedbOptions, RedbStorage};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("multiraft-redb-doctest-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("node1.redb");
//! let storage = RedbStorage::open(&path, RedbOptions::default()).unwrap();
//! storage
//!     .write(WriteBatch::from(vec![GroupWrite::new(GroupId(7))
//!         .with_hard_state(HardState { term: 1, vote: Some(NodeId(1)), commit: 0 })
//!         .with_entries(vec![Entry { index: 1, term: 1, payload: Payload::Noop }])]))
//!     .await
//!     .unwrap();
//! drop(storage); // closes the file (once every clone is gone)
//!
//! let reopened = RedbStorage::open(&path, RedbOptions::default()).unwrap();
//! let groups = reopened.load().await.unwrap();
//! assert_eq!(groups[0].group, GroupId(7));
//! assert_eq!(groups[0].entries.len(), 1);
//! # drop(reopened);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```
//!
//! # Design notes
//!
//! ## Why a write-ahead table
//!
//! A node's write carries a little for many groups: in a busy cycle, one or two entries and a
//! hard state for each of hundreds or thousands of groups. Stored as one row per entry keyed
//! by `(group, index)`, those rows land on as many different B-tree leaves, and redb's
//! copy-on-write rewrites each of those pages in every commit: measured on the build box,
//! about 20 µs per group per commit, so a commit of 1,000 groups took 20 ms and of 10,000
//! groups 110 ms, whatever the fsync cost. So a `WriteBatch` is stored as **one row** — the
//! batch as it came, in a write-ahead table keyed by sequence number — and later
//! **checkpoints** move each group's accumulated changes into per-group tables, where a
//! group's new entries become one row (a *run*) however many commits brought them. A
//! commit then costs one row append plus one fsync; a checkpoint costs one run and one
//! metadata row per group, amortized over everything the group wrote since its last one.
//! (`redb_bench` in `multiraft-examples` has the numbers, kept in the repository's
//! `BENCHMARKS.md`.)
//!
//! ## Key layout
//!
//! | table               | key                            | value                                                  |
//! |---------------------|--------------------------------|--------------------------------------------------------|
//! | `multiraft_format`  | `&str`: `"version"`, `"seq_floor"` | `u64`: the format version ([`FORMAT_VERSION`]); a lower bound for the next write-ahead sequence number |
//! | `multiraft_wal`     | `u64` sequence number          | postcard list of group writes: one committed `WriteBatch`, without its snapshot chunks (a group write records only its log reset, if it has one) |
//! | `multiraft_groups`  | `u64` group id                 | postcard `(hard state, membership, last index, term, compacted index, term, wal_from)` |
//! | `multiraft_log`     | `(u64 group, u64 first index)` | postcard list of `(term, payload)`: a run of consecutive entries |
//! | `multiraft_removed` | `u64` group id                 | `u64` `wal_from` of a checkpointed removal             |
//! | `multiraft_snapshots` | `u64` group id               | postcard `(complete, incoming, next id)`, each snapshot as `(SnapshotMeta, id, chunk count)` |
//! | `multiraft_snapshot_chunks` | `(u64 group, u64 snapshot id, u32 seq, u32 piece)` | bytes: a piece of a chunk's data (see [Snapshots](#snapshots)) |
//!
//! A group's state is its checkpointed rows (metadata and runs) with its write-ahead records
//! from its `wal_from` on applied in sequence order. Records below a group's `wal_from` are
//! in its rows already and are skipped; a removed group has no metadata row, so its
//! `wal_from` is kept in `multiraft_removed` for as long as older records of it remain.
//! The writer thread keeps the applied records of every group not yet checkpointed in
//! memory (the *tail*: per group, its metadata now, which of its checkpointed entries a
//! truncation or removal made dead, and the entries appended since, the very runs the
//! node's log holds: shared, not copied); reads and `load` rebuild the same from their read
//! transaction, through the same code.
//!
//! A group's runs are consecutive (each starts right after the previous one ends; the last
//! ends at the metadata's last index), so a run's extent follows from its key and the next
//! key. A conflict truncation rewrites the run it cuts and deletes the runs after it;
//! compaction (`GroupWrite::compact_to`) deletes the runs that end at or below the new
//! compacted index and records that index and its entry's term in the metadata row (a run
//! straddling the mark stays until a later compaction passes its end; reads skip its dead
//! entries). Removing a group deletes its runs and metadata row. redb puts freed pages back
//! into use, so under a steady workload with periodic compaction the file stops growing
//! (`redb_bench --only compact`).
//!
//! `load` checks the tables against each other: every group's runs are consecutive, its
//! entries above the compacted prefix start right after it and end at the recorded last
//! index and term, no run is wholly compacted, and no run exists without a group; any
//! disagreement is [`StorageError::Corrupt`](multiraft_core::StorageError::Corrupt).
//!
//! Values are postcard encodings; the metadata row and the write-ahead records hold the
//! core's `HardState`, `Membership` and `Entry` as they serialize today, so a change to those
//! types' serde shape is a format change and must bump [`FORMAT_VERSION`].
//!
//! The format version is checked at open: a database without it (but with other tables), or
//! with a version other than [`FORMAT_VERSION`] (for example one written by a newer build), is
//! refused with `StorageError::Corrupt` and a message naming both versions; nothing is written
//! to it. A new (empty) database gets the version in its first, durable, transaction.
//!
//! ## Snapshots
//!
//! Snapshot data does not go through the write-ahead table: the commit that carries a
//! group's chunks (`GroupWrite::snapshot`) writes them straight into their two tables, in
//! the same transaction as the batch's write-ahead record, so a chunk is durable when
//! `write` returns and a batch is still all or nothing. Checkpoints never touch these
//! tables.
//!
//! - **Metadata**: one row per group in `multiraft_snapshots`: its *complete* snapshot
//!   (what `load` reports as `LoadedGroup::snapshot` and
//!   [`snapshot_chunk`](multiraft_core::Storage::snapshot_chunk) reads) and its *incoming*
//!   one (being received), each as its `SnapshotMeta`, an id and a chunk count, and the id
//!   the next incoming snapshot gets. Ids never repeat in a row, so a complete and an
//!   incoming snapshot never share chunk keys, even at the same index.
//! - **Data**: `multiraft_snapshot_chunks`, keyed by group, snapshot id, chunk seq and piece:
//!   each chunk is cut into pieces of just under 64 KiB. redb gives a value larger than a
//!   page a page of its own of the next power of two of pages, so a 1 MiB chunk stored
//!   whole would take 2 MiB; in pieces it takes its size, to a few KiB. A read
//!   (`snapshot_chunk`) copies one chunk's pieces into one buffer: a snapshot is never in
//!   memory whole, in a read or a write (a write holds what the batch holds), and its data
//!   never enters the writer's tail or the replay of the write-ahead table.
//! - **Receiving**: a chunk 0 deletes the incoming snapshot's data and starts a new
//!   incoming snapshot; a later chunk is checked to continue it (same metadata, exactly
//!   `seq` chunks stored) before anything of the batch is written, or the batch is refused
//!   with `StorageError::Corrupt`. The chunk marked `last` makes the incoming snapshot the
//!   complete one and deletes the previous complete one's data, so the file holds at most
//!   one complete and one incoming snapshot per group (redb reuses the freed pages).
//! - **The log**: completing a snapshot never touches the log. A group write with a
//!   `log_reset` (the node sets one with the last chunk of a snapshot its log lacks) records
//!   it in its write-ahead record; applying the record (at commit, and at every replay)
//!   drops every entry and compacts the log to that entry, before the record's own entries.
//!   A checkpoint then deletes the dropped runs like a removal's.
//! - **Removal** deletes the group's row and all its chunks, in the removal's commit.
//! - **Open**: incoming snapshots are deleted (one durable transaction, only when there is
//!   one): an interrupted transfer cannot be continued by the node anyway, which starts it
//!   again from chunk 0 (a later chunk is then refused as not continuing anything).
//!   `load` returns complete snapshots only, and refuses (`Corrupt`) a snapshot row of a
//!   group that does not exist.
//!
//! ## Checkpoints
//!
//! After a commit, once the write-ahead records not yet checkpointed (plus a small
//! allowance per group) reach [`RedbOptions::checkpoint_bytes`], the writer runs one
//! checkpoint **step**: one durable transaction that moves the sixteenth of the tail's groups
//! whose first uncheckpointed record is oldest into the group and log tables (their
//! `wal_from` becomes the next sequence number), then deletes the write-ahead records below
//! the oldest first record of the groups still in the tail, and the removal marks those
//! deletions made useless. Moving a slice rather than every group bounds the stall a write
//! sees behind a checkpoint to about a sixteenth of a whole one; while the tail stays at
//! twice the limit, steps repeat until it does not. `RedbStorage::stats` counts the steps
//! and their durations.
//!
//! ## Writes, threads and ordering
//!
//! - One `WriteBatch` is one write transaction appending one write-ahead record (and
//!   writing its snapshot chunks): validation (each group once; snapshot chunks consecutive,
//!   of one snapshot, continuing the incoming one; no index 0, no hole after the last index
//!   as the snapshot step leaves it, consecutive entries, nothing at or below the compacted
//!   index, no compaction past the last entry; `remove` alone) happens against the tail, the
//!   metadata rows and the snapshot rows before anything is changed. An invalid batch is
//!   aborted and returned as `StorageError::Corrupt`, leaving the database unchanged and the
//!   storage usable — the same semantics as `MemStorage`. Stored data found corrupt while
//!   committing or checkpointing poisons the storage instead, and comes back as
//!   `StorageError::Backend` over that `Corrupt`, then `Poisoned`.
//! - Commits run on one dedicated writer thread per database (`multiraft-redb-writer`), fed
//!   by a channel of at most [`MAX_QUEUED_WRITES`] jobs;
//!   [`Storage::write`](multiraft_core::Storage::write) awaits room in it, then a oneshot
//!   reply, so it never blocks the event loop. Batches are committed one at a time, in the
//!   order they are queued: call order while the queue has room (the node awaits each write
//!   before the next, so its order always holds); writes that waited for room, from
//!   handles used at once, may queue in another order.
//! - Reads ([`entries`](multiraft_core::Storage::entries), [`term`](multiraft_core::Storage::term),
//!   [`load`](multiraft_core::Storage::load),
//!   [`snapshot_chunk`](multiraft_core::Storage::snapshot_chunk)) use redb read transactions (MVCC:
//!   they see the last committed state and never wait for an in-flight commit). Each decodes the
//!   write-ahead records of its transaction (at most about `checkpoint_bytes`), so a read costs
//!   that much more than a table lookup; the node reads only at start (`load`). `snapshot_chunk`
//!   reads the snapshot row and one chunk, no write-ahead record. Inside a tokio runtime they run
//!   on its blocking pool; outside one they run inline.
//! - Any failure of redb in the write path (I/O, a failed fsync, corruption, in a commit or a
//!   checkpoint step) **poisons** the storage: that write (for a checkpoint step, the next write)
//!   returns the error and every later write returns
//!   [`StorageError::Poisoned`](multiraft_core::StorageError::Poisoned) without touching the file.
//!   redb itself refuses new write transactions after a failed commit. Nothing is ever acknowledged
//!   that was not committed with `Durability::Immediate`; there is no retry. A panic of the writer
//!   thread (a bug) poisons it the same way: writes it had queued fail (`Backend`), the next one
//!   returns the panic's message, later ones `Poisoned`. Reopening the file recovers the last
//!   durable state.
//!
//! ## Crash cases
//!
//! redb commits with one fsync ("1PC+C": the new pages, then the commit slot with checksums
//! over the new root, then `sync_data`). After a crash:
//!
//! - Before `write` returned `Ok`: either the commit slot reached the disk with valid
//!   checksums (the whole batch is present) or it did not (none of it is). A torn commit slot
//!   or torn data pages fail the checksum and redb rolls back to the previous commit. Since a
//!   batch is one transaction, no batch is ever partially present, and conflict truncation and
//!   the append that follows it can never be separated.
//! - During a checkpoint step: the step is one transaction too. Lost, the write-ahead records
//!   it would have deleted are still there and the rows it would have written are not;
//!   present, both changed together. Either way every acknowledged batch is in the tables or
//!   in the write-ahead records at or above its groups' `wal_from`.
//! - After `write` returned `Ok`: the batch is on disk (the fsync returned).
//! - Snapshots: receiving a chunk, completing a snapshot (the row's switch from incoming to
//!   complete, the previous snapshot's deletion and the log's reset) and removing a group
//!   are each part of one batch's transaction, so a crash leaves each all done or not
//!   started. A crash while a snapshot is incoming (between the batches carrying its
//!   chunks) leaves the previous complete snapshot, loaded and readable, and the log as the
//!   last acknowledged batch left it; the incoming chunks are deleted at the next open.
//!   A crash in the batch completing a snapshot leaves either the previous snapshot with
//!   the log before that batch, or the new snapshot with the log reset (if it was to be):
//!   never a snapshot with missing chunks, never a half-installed one.
//! - During creation: [`RedbStorage::open`] initializes a new file under a temporary name of its
//!   own (`<path>.<random>.creating`) and moves it into place once the format version is durable —
//!   only if no file is there yet, so openers racing to create one database end with one — then
//!   syncs the directory, so `path` never holds a half-made database. A temporary file a crash left
//!   is deleted by the next creation. (redb writes its magic number last, so a crash in the middle
//!   of an in-place creation — as with [`RedbStorage::with_backend`] on an empty backend — leaves a
//!   file that redb refuses as "not a redb database", reported as `StorageError::Corrupt`; it holds
//!   nothing that was acknowledged.)
//! - Opening after an unclean shutdown runs redb's repair (it walks the file to rebuild the
//!   allocator state), which takes time proportional to the file size. Quick repair is not
//!   enabled: it would add work to every commit to make the rare crash recovery faster.
//!
//! The crate's tests check this with a fault-injecting backend (a crash at every sync point of
//! a workload, with and without a torn unsynced tail) and with `kill -9` of a writing process.
//!
//! ## Assumptions about the disk
//!
//! As redb's own design: `fdatasync` returns only when the data written before it is durable
//! (a disk or controller that acknowledges a flush from a volatile cache breaks every
//! guarantee above), and a write may be torn at any point but is never spread to a location
//! that was not written. Checksums are XXH3-128, which detects torn and lost writes but is
//! not a defence against an adversary who controls the workload and the crash timing (redb's
//! two-phase commit would be; it costs a second fsync per commit and is not enabled).
//!
//! ## Limits and memory
//!
//! - The redb page cache defaults to [`RedbOptions::DEFAULT_CACHE_SIZE_BYTES`] (16 MiB), not
//!   redb's 1 GiB: a node keeps its live logs in memory already, so the cache mostly serves
//!   the B-trees' upper levels and recent pages.
//! - Writes waiting for the writer thread: at most [`MAX_QUEUED_WRITES`] batches; a further
//!   write waits for room before it queues.
//! - The write-ahead records not yet checkpointed: about
//!   [`RedbOptions::checkpoint_bytes`] (16 MiB by default), held in the file and, applied,
//!   in the writer's memory; twice that before steps run back to back.
//! - One redb value is at most ~3.75 GiB. A write-ahead record is one batch (the node layer
//!   bounds a ready's entries and bytes); a run is what one group wrote between two of its
//!   checkpoints, bounded by the tail's size; a chunk piece is under 64 KiB.
//! - Snapshots: on disk, per group, at most one complete and one incoming snapshot (the
//!   file may reach about twice a group's snapshot size while one replaces another, plus
//!   redb's growth steps); in memory, one chunk per `snapshot_chunk` call and nothing per
//!   snapshot in the writer. Completing a snapshot deletes the previous one in the same
//!   commit, which reads (through the page cache) the pages it frees: that commit takes
//!   longer for a large snapshot.
//!
//! ## Not done yet
//!
//! - The file never shrinks: pages freed by compaction (the node compacts each group's log
//!   below its snapshots) are reused for new writes, not returned to the file system.
#![forbid(unsafe_code)]

mod checkpoint;
mod codec;
mod format;
pub mod metrics;
mod read;
mod runs;
mod snapshots;
mod storage;
mod tail;
mod writer;

pub use format::FORMAT_VERSION;
pub use redb;
pub use storage::{MAX_QUEUED_WRITES, RedbOptions, RedbStats, RedbStorage};
