//! The shared log of a multiraft node on one [redb](https://docs.rs/redb) database.
//!
//! [`RedbStorage`] implements [`multiraft_core::Storage`]: every group hosted by the node keeps
//! its log, hard state and membership in one database file, and one
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
//!     .write(WriteBatch {
//!         groups: vec![GroupWrite {
//!             group: GroupId(7),
//!             hard_state: Some(HardState { term: 1, vote: Some(NodeId(1)), commit: 0 }),
//!             entries: vec![Entry { index: 1, term: 1, payload: Payload::Noop }],
//!             ..Default::default()
//!         }],
//!     })
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
//! ## Key layout
//!
//! Three tables, all written only by [`Storage::write`](multiraft_core::Storage::write) (and
//! once at creation):
//!
//! | table              | key                      | value                                                  |
//! |--------------------|--------------------------|--------------------------------------------------------|
//! | `multiraft_format` | `&str` (`"version"`)     | `u64`: the format version, [`FORMAT_VERSION`]          |
//! | `multiraft_groups` | `u64` group id           | postcard `(hard state, membership, last index, term, compacted index, term)` |
//! | `multiraft_log`    | `(u64 group, u64 index)` | postcard `(term, payload)` of one entry                |
//!
//! `(u64, u64)` keys are fixed width and order element-wise, so one group's log is one
//! contiguous key range: a read of `[low, high)` is one range scan, a conflict truncation is
//! one range delete (`retain_in`) from the first new index to the stored last index, and
//! removing a group is one range delete plus one metadata delete; so is compaction
//! (`GroupWrite::compact_to`): the rows from the previous compacted index + 1 up to the new
//! one are deleted and the metadata row records the new compacted index and its entry's
//! term (format version 2). redb puts the freed pages back into use, so under a steady
//! workload with periodic compaction the file stops growing (`redb_bench --only compact`).
//! The entry index is the key, so it is not repeated in the value.
//!
//! A group has a metadata row as soon as anything was written for it (a group written without
//! a membership gets the empty one, as in the testkit's `MemStorage`). The row's last index and
//! last term are kept in step with the log in the same transaction, so validation of a batch
//! (no holes, consecutive entries) reads one row per group, not the log.
//! [`Storage::load`](multiraft_core::Storage::load) checks that they agree with the log: every group's log is consecutive from
//! the index after its compacted prefix (1 if never compacted) and ends at the recorded last
//! index and term (the compaction mark if everything was compacted), and no log row exists without a group; any
//! disagreement is [`StorageError::Corrupt`](multiraft_core::StorageError::Corrupt).
//!
//! Values are postcard encodings; the metadata row holds the core's `HardState` and
//! `Membership` as they serialize today, so a change to those types' serde shape is a format
//! change and must bump [`FORMAT_VERSION`].
//!
//! The format version is checked at open: a database without it (but with other tables), or
//! with a version other than [`FORMAT_VERSION`] (for example one written by a newer build), is
//! refused with `StorageError::Corrupt` and a message naming both versions; nothing is written
//! to it. A new (empty) database gets the version in its first, durable, transaction.
//!
//! ## Writes, threads and ordering
//!
//! - One `WriteBatch` is one write transaction: validation (each group once; no index 0, no
//!   hole after the stored last index, consecutive entries; `remove` alone) happens inside the
//!   transaction before anything is changed. An invalid batch is aborted and returned as
//!   `StorageError::Corrupt`, leaving the database unchanged and the storage usable — the same
//!   semantics as `MemStorage`.
//! - Commits run on one dedicated writer thread per database (`multiraft-redb-writer`), fed
//!   by a channel; [`Storage::write`](multiraft_core::Storage::write) awaits a oneshot reply,
//!   so it never blocks the event loop. Batches are committed one at a time, in call order.
//! - Reads ([`entries`](multiraft_core::Storage::entries), [`term`](multiraft_core::Storage::term),
//!   [`load`](multiraft_core::Storage::load)) use redb read transactions (MVCC: they see the
//!   last committed state and never wait for an in-flight commit). Inside a tokio runtime they
//!   run on its blocking pool; outside one they run inline.
//! - Any failure of redb in the write path (I/O, a failed fsync, corruption) **poisons** the
//!   storage: that write returns the error and every later write returns
//!   [`StorageError::Poisoned`](multiraft_core::StorageError::Poisoned) without touching the
//!   file. redb itself refuses new write transactions after a failed commit. Nothing is ever
//!   acknowledged that was not committed with `Durability::Immediate`; there is no retry.
//!   Reopening the file recovers the last durable state.
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
//! - After `write` returned `Ok`: the batch is on disk (the fsync returned).
//! - During creation: [`RedbStorage::open`] initializes a new file under a temporary name
//!   (`<path>.creating`) and renames it into place once the format version is durable, then
//!   syncs the directory, so `path` never holds a half-made database. (redb writes its magic
//!   number last, so a crash in the middle of an in-place creation — as with
//!   [`RedbStorage::with_backend`] on an empty backend — leaves a file that redb refuses as
//!   "not a redb database", reported as `StorageError::Corrupt`; it holds nothing that was
//!   acknowledged.)
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
//! The redb page cache defaults to [`RedbOptions::DEFAULT_CACHE_SIZE_BYTES`] (64 MiB), not
//! redb's 1 GiB: a node keeps its live logs in memory already, so the cache mostly serves the
//! B-tree's upper levels and recent pages. One redb value is at most ~3.75 GiB; the node's
//! `max_proposal_bytes` keeps entries far below that.
//!
//! ## Not done yet
//!
//! - **Compaction from the node.** This crate compacts whatever `compact_to` asks for, but the
//!   core does not issue compactions yet: restarting from a compacted log needs a state
//!   machine snapshot, which the core cannot take or restore yet (a node refuses to start on
//!   a compacted group: `StartError::CompactedLog`). Until then a node's logs grow until its
//!   groups are removed. Freed pages are reused; the file never shrinks.
//! - Snapshot data is not stored, for the same reason.
#![forbid(unsafe_code)]

mod codec;
mod runs;
mod storage;
mod tail;

pub use redb;
pub use storage::{FORMAT_VERSION, RedbOptions, RedbStats, RedbStorage};
