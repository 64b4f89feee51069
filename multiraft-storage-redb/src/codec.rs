//! Table definitions, value encodings and the mapping of redb errors to [`StorageError`].

use multiraft_core::{
    Entry, GroupId, GroupWrite, HardState, Membership, Payload, StorageError, WriteBatch,
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
pub(crate) fn encode_run(entries: &[Entry]) -> Result<Vec<u8>, StorageError> {
    let stored: Vec<StoredEntryRef<'_>> = entries
        .iter()
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
    entries: &'a [Entry],
    compact_to: Option<u64>,
}

#[derive(Deserialize)]
struct WalWrite {
    group: u64,
    remove: bool,
    membership: Option<Membership>,
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    compact_to: Option<u64>,
}

/// One write-ahead record: the batch's group writes, in batch order.
pub(crate) fn encode_batch(batch: &WriteBatch) -> Result<Vec<u8>, StorageError> {
    let writes: Vec<WalWriteRef<'_>> = batch
        .groups
        .iter()
        .map(|w| WalWriteRef {
            group: w.group.0,
            remove: w.remove,
            membership: w.membership.as_ref(),
            hard_state: w.hard_state,
            entries: &w.entries,
            compact_to: w.compact_to,
        })
        .collect();
    postcard::to_stdvec(&writes).map_err(|e| StorageError::Backend(Box::new(e)))
}

pub(crate) fn decode_batch(seq: u64, bytes: &[u8]) -> Result<Vec<GroupWrite>, StorageError> {
    let writes: Vec<WalWrite> = decode_exact(bytes)
        .map_err(|e| StorageError::Corrupt(format!("write-ahead record {seq}: {e}")))?;
    Ok(writes
        .into_iter()
        .map(|w| {
            let mut g = GroupWrite::new(GroupId(w.group)).with_entries(w.entries);
            (g.remove, g.membership) = (w.remove, w.membership);
            (g.hard_state, g.compact_to) = (w.hard_state, w.compact_to);
            g
        })
        .collect())
}

pub(crate) fn encode_meta(meta: &GroupMeta) -> Result<Vec<u8>, StorageError> {
    postcard::to_stdvec(meta).map_err(|e| StorageError::Backend(Box::new(e)))
}

pub(crate) fn decode_meta(group: u64, bytes: &[u8]) -> Result<GroupMeta, StorageError> {
    decode_exact(bytes).map_err(|e| corrupt(GroupId(group), &format!("metadata: {e}")))
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
}
