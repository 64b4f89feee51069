//! The shared log of a multiraft node on one redb database.
//!
//! Not built yet. This crate will hold `RedbStorage`, an implementation of
//! `multiraft_core::Storage` in which one `WriteBatch` from the node layer becomes one durable
//! redb write transaction (group commit across every group of the node), with a log table
//! keyed by `(group, index)`, a per-group metadata table, a format-version record, a
//! dedicated writer thread, compaction and group removal. See the storage-redb issue.
