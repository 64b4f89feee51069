//! Snapshots: the snapshot table (one row per group: its complete and incoming snapshots)
//! and the chunk table (each chunk in pieces of [`PIECE_BYTES`]), written by the commit
//! that carries the chunks, in the same transaction as its write-ahead record. Checkpoints
//! never touch them; only a completed snapshot's effect on the log goes through the
//! write-ahead record (see [`reset_of`](crate::codec::reset_of)). The crate docs'
//! "Snapshots" section has the whole design.

use multiraft_core::{Bytes, GroupId, GroupWrite, LoadedGroup, SnapshotChunk, StorageError};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, Table};

use crate::codec::{
    CHUNKS_TABLE, PIECE_BYTES, SNAPSHOTS_TABLE, SnapshotRow, StoredSnapshot, corrupt,
    decode_snapshot_row, encode_snapshot_row, redb_error,
};
use crate::writer::Failure;

/// The chunk table as the writer changes it.
pub(crate) type ChunkTable<'txn> = Table<'txn, (u64, u64, u32, u32), &'static [u8]>;

/// The snapshot table as the writer changes it.
pub(crate) type RowTable<'txn> = Table<'txn, u64, &'static [u8]>;

/// Group `g`'s snapshot row, if it has one.
fn read_row(
    rows: &impl ReadableTable<u64, &'static [u8]>,
    g: u64,
) -> Result<Option<SnapshotRow>, StorageError> {
    match rows.get(g).map_err(redb_error)? {
        Some(v) => Ok(Some(decode_snapshot_row(g, v.value())?)),
        None => Ok(None),
    }
}

/// Checks that `write`'s chunks continue the group's incoming snapshot: a first chunk
/// with `seq` k > 0 needs an incoming snapshot of the same metadata holding exactly k
/// chunks. (That the record's chunks are consecutive, of one snapshot, is
/// `GroupWrite::validate`'s part.)
pub(crate) fn check_chunks(
    rows: &impl ReadableTable<u64, &'static [u8]>,
    write: &GroupWrite,
) -> Result<(), Failure> {
    let Some(first) = write.snapshot.first().filter(|c| c.seq > 0) else {
        return Ok(());
    };
    let row = read_row(rows, write.group.0).map_err(Failure::Fatal)?;
    let continues = row
        .and_then(|r| r.incoming)
        .is_some_and(|i| i.meta == first.meta && i.chunks == u64::from(first.seq));
    if continues {
        return Ok(());
    }
    Err(Failure::Invalid(corrupt(
        write.group,
        &format!(
            "snapshot chunk {} of {}@{} does not continue the incoming snapshot",
            first.seq, first.meta.index, first.meta.term
        ),
    )))
}

/// Stores a validated record's part of the snapshot tables: a removal deletes the group's
/// snapshots; chunks are written, a chunk 0 first deleting the incoming snapshot's, the
/// chunk marked `last` making the incoming snapshot the complete one and deleting the
/// previous complete one's chunks.
pub(crate) fn store(
    rows: &mut RowTable<'_>,
    chunks: &mut ChunkTable<'_>,
    write: &GroupWrite,
) -> Result<(), StorageError> {
    let g = write.group.0;
    if write.remove {
        delete_chunks(chunks, g, None)?;
        rows.remove(g).map_err(redb_error)?;
        return Ok(());
    }
    if write.snapshot.is_empty() {
        return Ok(());
    }
    let mut row = read_row(rows, g)?.unwrap_or_default();
    for chunk in &write.snapshot {
        if chunk.seq == 0 {
            if let Some(old) = row.incoming.take() {
                delete_chunks(chunks, g, Some(old.id))?;
            }
            row.incoming = Some(StoredSnapshot {
                meta: chunk.meta.clone(),
                id: row.next_id,
                chunks: 0,
            });
            row.next_id = row
                .next_id
                .checked_add(1)
                .ok_or_else(|| corrupt(write.group, "snapshot ids run past u64::MAX"))?;
        }
        let Some(incoming) = &mut row.incoming else {
            return Err(corrupt(
                write.group,
                "a snapshot chunk with nothing incoming",
            ));
        };
        insert_chunk(chunks, g, incoming.id, chunk)?;
        incoming.chunks += 1;
        if chunk.last {
            if let Some(old) = row.complete.take() {
                delete_chunks(chunks, g, Some(old.id))?;
            }
            row.complete = row.incoming.take();
        }
    }
    rows.insert(g, encode_snapshot_row(&row)?.as_slice())
        .map_err(redb_error)?;
    Ok(())
}

/// Writes `chunk`'s data as chunk `chunk.seq` of group `g`'s snapshot `id`, in pieces.
fn insert_chunk(
    chunks: &mut ChunkTable<'_>,
    g: u64,
    id: u64,
    chunk: &SnapshotChunk,
) -> Result<(), StorageError> {
    let data: &[u8] = chunk.data.as_ref();
    // An empty chunk is one empty piece: a chunk always has a row.
    let pieces = data
        .chunks(PIECE_BYTES)
        .chain(data.is_empty().then_some(data));
    for (piece, bytes) in pieces.enumerate() {
        let piece = u32::try_from(piece).map_err(|_| {
            corrupt(
                GroupId(g),
                &format!("snapshot chunk {} is too large", chunk.seq),
            )
        })?;
        chunks
            .insert((g, id, chunk.seq, piece), bytes)
            .map_err(redb_error)?;
    }
    Ok(())
}

/// Deletes the chunks of group `g`'s snapshot `id`, or of all its snapshots.
fn delete_chunks(chunks: &mut ChunkTable<'_>, g: u64, id: Option<u64>) -> Result<(), StorageError> {
    let range = match id {
        Some(id) => (g, id, 0, 0)..=(g, id, u32::MAX, u32::MAX),
        None => (g, 0, 0, 0)..=(g, u64::MAX, u32::MAX, u32::MAX),
    };
    chunks.retain_in(range, |_, _| false).map_err(redb_error)
}

/// Chunk `seq` of `group`'s complete snapshot, if that snapshot is at `index` and has it.
/// Reads that one chunk only, into one buffer of its size.
pub(crate) fn read_chunk(
    db: &Database,
    group: GroupId,
    index: u64,
    seq: u32,
) -> Result<Option<SnapshotChunk>, StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
    let rows = read.open_table(SNAPSHOTS_TABLE).map_err(redb_error)?;
    let Some(snapshot) = read_row(&rows, group.0)?
        .and_then(|r| r.complete)
        .filter(|s| s.meta.index == index && u64::from(seq) < s.chunks)
    else {
        return Ok(None);
    };
    let table = read.open_table(CHUNKS_TABLE).map_err(redb_error)?;
    let pieces = (group.0, snapshot.id, seq, 0)..=(group.0, snapshot.id, seq, u32::MAX);
    let missing = |what: &str| {
        corrupt(
            group,
            &format!(
                "chunk {seq} of the snapshot at {index} ({} chunks): {what}",
                snapshot.chunks
            ),
        )
    };
    // Sized from the last piece's number: no reallocation while the pieces are copied. But
    // at most `PREALLOCATED_PIECES`: a damaged key numbered near `u32::MAX` asked for some
    // 280 TB and aborted the process (review); now the buffer grows, and the pieces' gap is
    // found `Corrupt` before it grows far.
    let Some(last) = table.range(pieces.clone()).map_err(redb_error)?.next_back() else {
        return Err(missing("no data"));
    };
    let last_piece = last.map_err(redb_error)?.0.value().3;
    let count = usize::try_from(last_piece).map_or(usize::MAX, |n| n.saturating_add(1));
    let mut data = Vec::with_capacity(count.min(PREALLOCATED_PIECES) * PIECE_BYTES);
    for (expected, row) in table.range(pieces).map_err(redb_error)?.enumerate() {
        let (key, value) = row.map_err(redb_error)?;
        if key.value().3 as usize != expected {
            return Err(missing(&format!(
                "piece {} where {expected} was expected",
                key.value().3
            )));
        }
        data.extend_from_slice(value.value());
    }
    Ok(Some(SnapshotChunk {
        data: Bytes::from(data),
        seq,
        last: u64::from(seq) + 1 == snapshot.chunks,
        meta: snapshot.meta,
    }))
}

/// Sets the complete snapshot of every group of `loaded` (sorted by group) that has one.
/// A snapshot row of a group that does not exist is `Corrupt`: a group's removal deletes
/// its row in the same transaction.
pub(crate) fn attach(
    read: &ReadTransaction,
    loaded: &mut [LoadedGroup],
) -> Result<(), StorageError> {
    let rows = read.open_table(SNAPSHOTS_TABLE).map_err(redb_error)?;
    for row in rows.range::<u64>(..).map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let g = key.value();
        let Ok(at) = loaded.binary_search_by_key(&GroupId(g), |l| l.group) else {
            return Err(corrupt(GroupId(g), "a snapshot row without a group"));
        };
        loaded[at].snapshot = decode_snapshot_row(g, value.value())?
            .complete
            .map(|s| s.meta);
    }
    Ok(())
}

/// At open: deletes every incoming snapshot (a transfer a crash or a shutdown interrupted
/// cannot be continued: the node starts it again from chunk 0), in one durable transaction
/// when there is one.
pub(crate) fn drop_incoming(db: &Database) -> Result<(), StorageError> {
    let incoming: Vec<(u64, SnapshotRow)> = {
        let read = db.begin_read().map_err(redb_error)?;
        let rows = read.open_table(SNAPSHOTS_TABLE).map_err(redb_error)?;
        let mut found = Vec::new();
        for row in rows.range::<u64>(..).map_err(redb_error)? {
            let (key, value) = row.map_err(redb_error)?;
            let row = decode_snapshot_row(key.value(), value.value())?;
            if row.incoming.is_some() {
                found.push((key.value(), row));
            }
        }
        found
    };
    if incoming.is_empty() {
        return Ok(());
    }
    let mut txn = db.begin_write().map_err(redb_error)?;
    txn.set_durability(Durability::Immediate)
        .map_err(redb_error)?;
    {
        let mut rows = txn.open_table(SNAPSHOTS_TABLE).map_err(redb_error)?;
        let mut chunks = txn.open_table(CHUNKS_TABLE).map_err(redb_error)?;
        for (g, mut row) in incoming {
            if let Some(old) = row.incoming.take() {
                delete_chunks(&mut chunks, g, Some(old.id))?;
            }
            if row.complete.is_some() {
                rows.insert(g, encode_snapshot_row(&row)?.as_slice())
                    .map_err(redb_error)?;
            } else {
                rows.remove(g).map_err(redb_error)?;
            }
        }
    }
    txn.commit().map_err(redb_error)
}

/// The most pieces a chunk read allocates room for before it has read them: 64, about
/// 4 MiB, above the core's default chunk (1 MiB); larger chunks grow as they are read.
const PREALLOCATED_PIECES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RedbOptions, RedbStorage};
    use multiraft_core::{Entry, Payload, SnapshotMeta, Storage, WriteBatch};
    use std::path::{Path, PathBuf};

    /// A directory under the system's temporary one, removed on drop (a failing test too).
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_path(tag: &str) -> (TempDir, PathBuf) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "multiraft-redb-unit-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.redb");
        (TempDir(dir), path)
    }

    /// The chunks in the chunk table of the (closed) database at `path`: group, snapshot
    /// id, seq and number of pieces.
    fn chunk_keys(path: &Path) -> Vec<(u64, u64, u32, u32)> {
        let db = Database::open(path).unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(CHUNKS_TABLE).unwrap();
        let mut chunks: Vec<(u64, u64, u32, u32)> = Vec::new();
        for row in table.range::<(u64, u64, u32, u32)>(..).unwrap() {
            let (g, id, seq, piece) = row.unwrap().0.value();
            match chunks.last_mut() {
                Some(c) if (c.0, c.1, c.2) == (g, id, seq) && c.3 == piece => c.3 += 1,
                _ => {
                    assert_eq!(piece, 0, "pieces of {g}/{id}/{seq} start at 0");
                    chunks.push((g, id, seq, 1));
                }
            }
        }
        chunks
    }

    fn chunk(index: u64, seq: u32, last: bool) -> SnapshotChunk {
        SnapshotChunk {
            meta: SnapshotMeta {
                index,
                term: 1,
                membership: multiraft_core::Membership::voters([1]),
            },
            seq,
            // Chunk 1 takes two pieces, chunk 2 three; the snapshot at 5 is empty.
            data: Bytes::from(vec![
                index as u8;
                (index != 5) as usize * (100 + seq as usize * 70_000)
            ]),
            last,
        }
    }

    async fn send(s: &RedbStorage, group: u64, chunks: Vec<SnapshotChunk>) {
        let mut w = GroupWrite::new(GroupId(group));
        w.snapshot = chunks;
        s.write(WriteBatch::from(vec![w])).await.unwrap();
    }

    /// The file keeps the data of one complete and one incoming snapshot per group at most:
    /// a chunk 0 deletes the incoming snapshot's chunks, a completion the previous complete
    /// one's, a removal all of the group's, an open every incoming one's.
    #[tokio::test]
    async fn replaced_removed_and_interrupted_snapshots_leave_no_chunks() {
        let (_dir, path) = temp_path("chunks");
        let s = RedbStorage::open(&path, RedbOptions::default()).unwrap();
        let entries: Vec<Entry> = (1..=3)
            .map(|index| Entry {
                index,
                term: 1,
                payload: Payload::Noop,
            })
            .collect();
        let w = GroupWrite::new(GroupId(1)).with_entries(entries);
        s.write(WriteBatch::from(vec![w])).await.unwrap();
        send(&s, 1, vec![chunk(2, 0, false), chunk(2, 1, false)]).await;
        send(&s, 1, vec![chunk(2, 2, true)]).await; // complete: id 0
        send(&s, 1, vec![chunk(3, 0, false), chunk(3, 1, false)]).await; // id 1
        send(&s, 1, vec![chunk(3, 0, false)]).await; // again: id 2
        send(&s, 1, vec![chunk(3, 1, true)]).await;
        send(&s, 1, vec![chunk(3, 0, false)]).await; // incoming: id 3
        send(&s, 2, vec![chunk(5, 0, true)]).await;
        send(&s, 3, vec![chunk(6, 0, false)]).await; // incoming only
        drop(s);
        assert_eq!(
            chunk_keys(&path),
            [
                (1, 2, 0, 1),
                (1, 2, 1, 2),
                (1, 3, 0, 1),
                (2, 0, 0, 1),
                (3, 0, 0, 1)
            ]
        );

        let s = RedbStorage::open(&path, RedbOptions::default()).unwrap();
        assert_eq!(
            s.snapshot_chunk(GroupId(1), 3, 1).await.unwrap(),
            Some(chunk(3, 1, true))
        );
        assert_eq!(
            s.snapshot_chunk(GroupId(2), 5, 0).await.unwrap(),
            Some(chunk(5, 0, true)),
            "an empty chunk"
        );
        drop(s);
        assert_eq!(
            chunk_keys(&path),
            [(1, 2, 0, 1), (1, 2, 1, 2), (2, 0, 0, 1)]
        );

        let s = RedbStorage::open(&path, RedbOptions::default()).unwrap();
        // Group 3's row went with its incoming snapshot: ids start again, on a clean slate.
        send(&s, 3, vec![chunk(7, 0, true)]).await;
        s.write(WriteBatch::from(vec![
            GroupWrite::new(GroupId(1)).removing(),
        ]))
        .await
        .unwrap();
        assert_eq!(
            s.snapshot_chunk(GroupId(3), 7, 0).await.unwrap(),
            Some(chunk(7, 0, true))
        );
        drop(s);
        assert_eq!(chunk_keys(&path), [(2, 0, 0, 1), (3, 0, 0, 1)]);
    }

    /// A chunk whose pieces' keys were damaged (one numbered `u32::MAX`) is `Corrupt`
    /// when read, not an allocation the size of its number. Regression (review): the read
    /// sized its buffer from the last piece's number, some 280 TB, and the process aborted.
    #[tokio::test]
    async fn a_damaged_piece_number_is_corrupt_not_an_abort() {
        let (_dir, path) = temp_path("damaged");
        let s = RedbStorage::open(&path, RedbOptions::default()).unwrap();
        send(&s, 1, vec![chunk(2, 0, true)]).await;
        drop(s);
        let [(group, id, seq, _)] = chunk_keys(&path)[..] else {
            panic!("one chunk");
        };
        {
            let db = Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut table = txn.open_table(CHUNKS_TABLE).unwrap();
                table
                    .insert((group, id, seq, u32::MAX), b"damaged".as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let s = RedbStorage::open(&path, RedbOptions::default()).unwrap();
        let read = s.snapshot_chunk(GroupId(1), 2, 0).await;
        assert!(matches!(read, Err(StorageError::Corrupt(_))), "{read:?}");
    }
}
