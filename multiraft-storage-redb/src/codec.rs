//! Table definitions, value encodings and the mapping of redb errors to [`StorageError`].

use multiraft_core::{
    Compacted, Entry, EntryRuns, GroupId, GroupWrite, HardState, MAX_TERM_OR_INDEX, Membership,
    Payload, SnapshotMeta, StorageError, WriteBatch,
};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// `"version"` → the format version. See the crate's design notes.
pub(crate) const FORMAT_TABLE: TableDefinition<'static, &str, u64> =
    TableDefinition::new("multiraft_format");
/// The key of the format version in [`FORMAT_TABLE`].
pub(crate) const FORMAT_KEY: &str = "version";
/// The key, in [`FORMAT_TABLE`], of a lower bound for the next write-ahead sequence number:
/// the write-ahead table may be empty, yet sequence numbers must not go below any
/// `wal_from` in the metadata rows.
pub(crate) const SEQ_FLOOR_KEY: &str = "seq_floor";
/// Group id → `wal_from` of a checkpointed removal: replay skips that group's records below
/// it (the group has no metadata row to say so). Deleted once the write-ahead table holds
/// no such record.
pub(crate) const REMOVED_TABLE: TableDefinition<'static, u64, u64> =
    TableDefinition::new("multiraft_removed");
/// Group id → postcard [`GroupMeta`].
pub(crate) const GROUPS_TABLE: TableDefinition<'static, u64, &[u8]> =
    TableDefinition::new("multiraft_groups");
/// `(group id, index of the run's first entry)` → postcard list of `(term, payload)`: a run of
/// consecutive entries, as one checkpoint moved them.
pub(crate) const LOG_TABLE: TableDefinition<'static, (u64, u64), &[u8]> =
    TableDefinition::new("multiraft_log");

/// Sequence number → postcard list of [`WalWrite`]: one committed `WriteBatch` each, until a
/// checkpoint moves them into [`GROUPS_TABLE`] and [`LOG_TABLE`].
pub(crate) const WAL_TABLE: TableDefinition<'static, u64, &[u8]> =
    TableDefinition::new("multiraft_wal");

/// Group id → postcard [`SnapshotRow`]: the group's complete and incoming snapshots. Written
/// by each commit that carries chunks (or removes the group), never by checkpoints.
pub(crate) const SNAPSHOTS_TABLE: TableDefinition<'static, u64, &[u8]> =
    TableDefinition::new("multiraft_snapshots");

/// `(group id, snapshot id, chunk seq, piece)` → a piece of the chunk's data: the chunk cut
/// into [`PIECE_BYTES`] pieces (one empty piece for an empty chunk), as the commit that
/// received it wrote them. The snapshot id is [`StoredSnapshot::id`].
pub(crate) const CHUNKS_TABLE: TableDefinition<'static, (u64, u64, u32, u32), &[u8]> =
    TableDefinition::new("multiraft_snapshot_chunks");

/// The size of a chunk's pieces in [`CHUNKS_TABLE`]. redb gives a value larger than a page
/// (4 KiB) a page of its own, of the next power of two of pages: stored whole, a 1 MiB chunk
/// would take a 2 MiB page. A piece and its leaf's header (4 bytes, a 4-byte length, a
/// 24-byte key) fit a 64 KiB page with room to spare, so a chunk wastes at most its last
/// piece's rounding.
pub(crate) const PIECE_BYTES: usize = (64 << 10) - 256;

/// One group's snapshots: the row of [`SNAPSHOTS_TABLE`]. A group without either has no row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotRow {
    /// The latest complete snapshot: what `load` reports and `snapshot_chunk` reads.
    pub(crate) complete: Option<StoredSnapshot>,
    /// The snapshot being received, never loaded.
    pub(crate) incoming: Option<StoredSnapshot>,
    /// The id the next incoming snapshot of the group gets: ids never repeat within a row,
    /// so the chunks of the complete and the incoming snapshot never share keys.
    pub(crate) next_id: u64,
}

/// A snapshot as [`SnapshotRow`] records it; its data is in [`CHUNKS_TABLE`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta,
    /// Its chunks' key in [`CHUNKS_TABLE`], with the group id and the chunk's seq.
    pub(crate) id: u64,
    /// How many chunks it has (stored so far, for an incoming one): seqs `0..chunks`.
    pub(crate) chunks: u64,
}

pub(crate) fn encode_snapshot_row(row: &SnapshotRow) -> Result<Vec<u8>, StorageError> {
    postcard::to_stdvec(row).map_err(|e| StorageError::Backend(Box::new(e)))
}

pub(crate) fn decode_snapshot_row(group: u64, bytes: &[u8]) -> Result<SnapshotRow, StorageError> {
    let row: SnapshotRow =
        decode_exact(bytes).map_err(|e| corrupt(GroupId(group), &format!("snapshot row: {e}")))?;
    // Ids are handed out in order from `next_id`: one at or past it, or the two snapshots
    // sharing one, would have the next incoming snapshot's chunks written over the
    // complete one's keys.
    let ids = [&row.complete, &row.incoming].map(|s| s.as_ref().map(|s| s.id));
    let reused = ids[0].is_some() && ids[0] == ids[1];
    if reused || ids.into_iter().flatten().any(|id| id >= row.next_id) {
        return Err(corrupt(
            GroupId(group),
            &format!(
                "snapshot row: ids {ids:?} with the next one {}",
                row.next_id
            ),
        ));
    }
    Ok(row)
}

/// One group's metadata row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupMeta {
    pub(crate) hard_state: HardState,
    pub(crate) membership: Membership,
    /// Index of the last entry in the log, 0 when the log is empty.
    pub(crate) last_index: u64,
    /// Term of that entry, 0 when the log is empty.
    pub(crate) last_term: u64,
    /// Index of the last entry discarded by compaction, 0 when the log was never compacted:
    /// the log's rows start at the next index.
    pub(crate) compacted_index: u64,
    /// Term of that entry, 0 when the log was never compacted.
    pub(crate) compacted_term: u64,
    /// The row (and the group's log rows) include every write-ahead record with a lower
    /// sequence number: replay skips this group's records below it.
    pub(crate) wal_from: u64,
}

/// An entry as stored in a run: its index follows from the run's key and its position.
#[derive(Serialize)]
struct StoredEntryRef<'a> {
    term: u64,
    payload: &'a Payload,
}

#[derive(Deserialize)]
struct StoredEntry {
    term: u64,
    payload: Payload,
}

/// A run of consecutive entries as one log row.
pub(crate) fn encode_run<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Result<Vec<u8>, StorageError> {
    let stored: Vec<StoredEntryRef<'_>> = entries
        .into_iter()
        .map(|e| StoredEntryRef {
            term: e.term,
            payload: &e.payload,
        })
        .collect();
    postcard::to_stdvec(&stored).map_err(|e| StorageError::Backend(Box::new(e)))
}

/// The run stored under `(group, first)`.
pub(crate) fn decode_run(group: u64, first: u64, bytes: &[u8]) -> Result<Vec<Entry>, StorageError> {
    let stored: Vec<StoredEntry> = decode_exact(bytes)
        .map_err(|e| corrupt(GroupId(group), &format!("log run at {first}: {e}")))?;
    if stored.is_empty() {
        return Err(corrupt(
            GroupId(group),
            &format!("log run at {first} is empty"),
        ));
    }
    if first == 0 || first.checked_add(stored.len() as u64).is_none() {
        return Err(corrupt(
            GroupId(group),
            &format!("log run at {first} of {} entries", stored.len()),
        ));
    }
    Ok(stored
        .into_iter()
        .zip(first..)
        .map(|(s, index)| Entry {
            index,
            term: s.term,
            payload: s.payload,
        })
        .collect())
}

/// A `GroupWrite` as the write-ahead table stores it.
#[derive(Serialize)]
struct WalWriteRef<'a> {
    group: u64,
    remove: bool,
    membership: Option<&'a Membership>,
    hard_state: Option<HardState>,
    /// The entry the log is reset to (`GroupWrite::log_reset`), as (index, term). The
    /// chunks themselves are in the snapshot tables.
    reset: Reset,
    entries: &'a EntryRuns,
    compact_to: Option<u64>,
}

#[derive(Deserialize)]
struct WalWrite {
    group: u64,
    remove: bool,
    membership: Option<Membership>,
    hard_state: Option<HardState>,
    reset: Reset,
    entries: Vec<Entry>,
    compact_to: Option<u64>,
}

/// The entry a group write resets its log to, as (index, term) (`GroupWrite::log_reset`).
pub(crate) type Reset = Option<(u64, u64)>;

/// [`Reset`] of `write`.
pub(crate) fn reset_of(write: &GroupWrite) -> Reset {
    write.log_reset.map(|c| (c.index, c.term))
}

/// One write-ahead record: the batch's group writes, in batch order, without their snapshot
/// chunks' data (see [`reset`](WalWriteRef::reset)).
pub(crate) fn encode_batch(batch: &WriteBatch) -> Result<Vec<u8>, StorageError> {
    let writes: Vec<WalWriteRef<'_>> = batch
        .groups
        .iter()
        .map(|w| WalWriteRef {
            group: w.group.0,
            remove: w.remove,
            membership: w.membership.as_ref(),
            hard_state: w.hard_state,
            reset: reset_of(w),
            entries: &w.entries,
            compact_to: w.compact_to,
        })
        .collect();
    postcard::to_stdvec(&writes).map_err(|e| StorageError::Backend(Box::new(e)))
}

/// The group writes of write-ahead record `seq`, each with its log reset (its `snapshot`
/// field stays empty: chunks are not in the record).
pub(crate) fn decode_batch(
    seq: u64,
    bytes: &[u8],
) -> Result<Vec<(GroupWrite, Reset)>, StorageError> {
    let writes: Vec<WalWrite> = decode_exact(bytes)
        .map_err(|e| StorageError::Corrupt(format!("write-ahead record {seq}: {e}")))?;
    Ok(writes
        .into_iter()
        .map(|w| {
            let mut g = GroupWrite::new(GroupId(w.group)).with_entries(w.entries);
            (g.remove, g.membership) = (w.remove, w.membership);
            (g.hard_state, g.compact_to) = (w.hard_state, w.compact_to);
            g.log_reset = w.reset.map(|(index, term)| Compacted { index, term });
            (g, w.reset)
        })
        .collect())
}

pub(crate) fn encode_meta(meta: &GroupMeta) -> Result<Vec<u8>, StorageError> {
    postcard::to_stdvec(meta).map_err(|e| StorageError::Backend(Box::new(e)))
}

pub(crate) fn decode_meta(group: u64, bytes: &[u8]) -> Result<GroupMeta, StorageError> {
    let meta: GroupMeta =
        decode_exact(bytes).map_err(|e| corrupt(GroupId(group), &format!("metadata: {e}")))?;
    // What every writer keeps (a compaction never passes the last entry, and no log
    // reaches `MAX_TERM_OR_INDEX`), and what lets the reads add to either without overflow.
    if meta.compacted_index > meta.last_index || meta.last_index > MAX_TERM_OR_INDEX {
        return Err(corrupt(
            GroupId(group),
            &format!(
                "metadata: compacted to {} with last entry {}",
                meta.compacted_index, meta.last_index
            ),
        ));
    }
    Ok(meta)
}

/// Decodes a whole value: postcard's `from_bytes` ignores trailing bytes, which would hide a
/// format mismatch.
fn decode_exact<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} trailing bytes", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn corrupt(group: GroupId, what: &str) -> StorageError {
    StorageError::Corrupt(format!("{group}: {what}"))
}

/// Maps any redb error to the core's [`StorageError`]: I/O stays I/O, checksum and structure
/// failures are `Corrupt`, the rest is `Backend` with redb's message.
pub(crate) fn redb_error(e: impl Into<redb::Error>) -> StorageError {
    match e.into() {
        // redb reports a file that is not a database (bad magic number) as invalid data.
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            StorageError::Corrupt(format!("redb: {e}"))
        }
        redb::Error::Io(e) => StorageError::Io(e),
        redb::Error::Corrupted(what) => StorageError::Corrupt(format!("redb: {what}")),
        redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_) => {
            StorageError::Corrupt("redb: a multiraft table has an unexpected type".into())
        }
        redb::Error::UpgradeRequired(v) => StorageError::Corrupt(format!(
            "redb: the file uses redb file format {v}, which this build cannot open"
        )),
        other => StorageError::Backend(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiraft_core::{Bytes, NodeId, ProposalId};

    #[test]
    fn runs_and_meta_round_trip_and_reject_trailing_bytes() {
        let entry = Entry {
            index: 9,
            term: 300,
            payload: Payload::Command {
                id: ProposalId {
                    node: NodeId(2),
                    seq: 5,
                },
                data: Bytes::from_static(b"set x 1"),
            },
        };
        let run = vec![
            entry.clone(),
            Entry {
                index: 10,
                term: 301,
                payload: Payload::Noop,
            },
        ];
        let bytes = encode_run(&run).unwrap();
        assert_eq!(decode_run(1, 9, &bytes).unwrap(), run);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_run(1, 9, &longer),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            decode_run(1, 9, &bytes[..bytes.len() - 1]),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            decode_run(1, 9, &encode_run(&[]).unwrap()),
            Err(StorageError::Corrupt(_))
        ));

        let meta = GroupMeta {
            hard_state: HardState {
                term: 4,
                vote: Some(NodeId(3)),
                commit: 2,
            },
            membership: Membership::voters([1, 2, 3]),
            last_index: 9,
            last_term: 4,
            compacted_index: 5,
            compacted_term: 3,
            wal_from: 12,
        };
        assert_eq!(decode_meta(1, &encode_meta(&meta).unwrap()).unwrap(), meta);
    }

    /// A write-ahead record keeps a group write's log reset, and none of the chunks' data.
    #[test]
    fn a_record_notes_the_log_reset_without_the_chunks() {
        use multiraft_core::SnapshotChunk;
        let meta = SnapshotMeta {
            index: 7,
            term: 2,
            membership: Membership::voters([1, 2]),
        };
        let chunk = |seq, last| SnapshotChunk {
            meta: meta.clone(),
            seq,
            data: Bytes::from(vec![9u8; 10_000]),
            last,
        };
        let entry = Entry {
            index: 8,
            term: 2,
            payload: Payload::Noop,
        };
        let batch = WriteBatch::from(vec![
            GroupWrite::new(GroupId(1))
                .with_snapshot_chunk(chunk(0, false))
                .with_snapshot_chunk(chunk(1, true))
                .with_log_reset(Compacted { index: 7, term: 2 })
                .with_entries(vec![entry.clone()]),
            GroupWrite::new(GroupId(2)).with_snapshot_chunk(chunk(0, false)),
        ]);
        let bytes = encode_batch(&batch).unwrap();
        assert!(
            bytes.len() < 100,
            "{} bytes: chunk data in the record",
            bytes.len()
        );
        let decoded = decode_batch(3, &bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].1, Some((7, 2)));
        assert_eq!(decoded[0].0.entries, [entry]);
        assert!(decoded[0].0.snapshot.is_empty());
        assert_eq!((decoded[1].0.group, decoded[1].1), (GroupId(2), None));

        let row = SnapshotRow {
            complete: Some(StoredSnapshot {
                meta: meta.clone(),
                id: 4,
                chunks: 2,
            }),
            incoming: None,
            next_id: 5,
        };
        let encoded = encode_snapshot_row(&row).unwrap();
        assert_eq!(decode_snapshot_row(1, &encoded).unwrap(), row);
        assert!(matches!(
            decode_snapshot_row(1, &encoded[..encoded.len() - 1]),
            Err(StorageError::Corrupt(_))
        ));

        // Ids the row could not have handed out: the next incoming snapshot would write its
        // chunks over the complete one's keys (its id at `next_id`, or wrapped there).
        let stored = |id| {
            Some(StoredSnapshot {
                meta: meta.clone(),
                id,
                chunks: 1,
            })
        };
        let fine = SnapshotRow {
            incoming: stored(3),
            ..row.clone()
        };
        let decode = |r: &SnapshotRow| decode_snapshot_row(1, &encode_snapshot_row(r).unwrap());
        assert_eq!(decode(&fine).unwrap(), fine);
        for damaged in [
            SnapshotRow {
                next_id: 4,
                ..row.clone()
            },
            SnapshotRow {
                incoming: stored(4),
                ..row.clone()
            },
            SnapshotRow {
                complete: stored(u64::MAX),
                next_id: 0,
                incoming: None,
            },
        ] {
            assert!(
                matches!(decode(&damaged), Err(StorageError::Corrupt(_))),
                "{damaged:?}"
            );
        }
    }
}
