//! The read paths: replaying the write-ahead table over the tables (for the writer at open,
//! and for every read), `load`, `entries` and `term`.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Entry_;

use multiraft_core::{Compacted, Entry, GroupId, LoadedGroup, MAX_TERM_OR_INDEX, StorageError};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use crate::codec::{
    FORMAT_TABLE, GROUPS_TABLE, GroupMeta, LOG_TABLE, REMOVED_TABLE, SEQ_FLOOR_KEY, WAL_TABLE,
    corrupt, decode_batch, decode_meta, decode_run, redb_error,
};
use crate::runs;
use crate::snapshots;
use crate::tail::{TAIL_GROUP_BYTES, Tail, TailGroup};

/// The group's checkpointed metadata row, if any.
pub(crate) fn table_meta(
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
pub(crate) fn read_tail(
    read: &ReadTransaction,
    only: Option<GroupId>,
) -> Result<Tail, StorageError> {
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
    // No writer numbers a record past `MAX_TERM_OR_INDEX` (2^63 writes), so no floor is
    // past the number after it: a damaged floor, which numbered the next records up to
    // `u64::MAX` and past it.
    if floor > MAX_TERM_OR_INDEX + 1 {
        return Err(StorageError::Corrupt(format!(
            "write-ahead records numbered from {floor}"
        )));
    }
    let mut tail = Tail {
        next_seq: floor,
        ..Tail::default()
    };
    // Per group: its records below this sequence number are in the tables already.
    let mut skip_below: HashMap<u64, u64> = HashMap::new();
    for row in ReadableTable::range::<u64>(&wal, ..).map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let seq = key.value();
        // Numbered from a floor within `MAX_TERM_OR_INDEX`, one per write: no writer gets
        // past it (2^63 writes), so such a key is damaged, refused here rather than at the
        // next start, once a checkpoint made it the floor.
        if seq > MAX_TERM_OR_INDEX {
            return Err(StorageError::Corrupt(format!(
                "write-ahead record numbered {seq}"
            )));
        }
        let next = seq + 1;
        tail.next_seq = tail.next_seq.max(next);
        tail.records.push_back((seq, value.value().len()));
        tail.bytes += value.value().len();
        for (write, reset) in decode_batch(seq, value.value())? {
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
                    v.insert(TailGroup::over(GroupId(g), meta, seq))
                }
            };
            // Validated before it was committed; checked again so that a record damaged
            // behind redb's checksums is `Corrupt`, not a panic.
            let term = &mut |index| runs::term_at(&log, g, index);
            let (last, compacted) = group.bounds_after(reset);
            write.validate(last, compacted).map_err(|e| {
                StorageError::Corrupt(format!("write-ahead record {seq} does not apply: {e}"))
            })?;
            group.apply(write, reset, term)?;
        }
    }
    Ok(tail)
}

/// Every group with its full log, in group order: the checkpointed tables, checked against
/// each other, with the write-ahead records applied.
pub(crate) fn load_all(db: &Database) -> Result<Vec<LoadedGroup>, StorageError> {
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
                    entries.extend(group.appended.iter().cloned());
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
            loaded.push(loaded_group(
                g,
                meta,
                group.appended.iter().cloned().collect(),
            ));
        }
    }
    if loaded.len() > before {
        loaded.sort_unstable_by_key(|l| l.group);
    }
    snapshots::attach(&read, &mut loaded)?;
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
    let mut loaded = LoadedGroup::new(GroupId(g));
    loaded.membership = meta.membership;
    loaded.hard_state = meta.hard_state;
    loaded.compacted = (meta.compacted_index > 0).then_some(Compacted {
        index: meta.compacted_index,
        term: meta.compacted_term,
    });
    loaded.entries = entries;
    loaded
}

/// One group as the read transaction sees it: its tail, or its table state if the
/// write-ahead table does not touch it.
fn read_group(read: &ReadTransaction, group: GroupId) -> Result<TailGroup, StorageError> {
    let mut tail = read_tail(read, Some(group))?;
    match tail.groups.remove(&group.0) {
        Some(g) => Ok(g),
        None => Ok(TailGroup::over(group, read_meta(read, group)?, 0)),
    }
}

pub(crate) fn read_entries(
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
    entries.extend(state.appended.range(low, high).cloned());
    Ok(entries)
}

pub(crate) fn read_term(
    db: &Database,
    group: GroupId,
    index: u64,
) -> Result<Option<u64>, StorageError> {
    let read = db.begin_read().map_err(redb_error)?;
    let state = read_group(&read, group)?;
    let log = read.open_table(LOG_TABLE).map_err(redb_error)?;
    state.term_of(index, &mut |index| runs::term_at(&log, group.0, index))
}

/// The group's metadata row, if it has one.
fn read_meta(read: &ReadTransaction, group: GroupId) -> Result<Option<GroupMeta>, StorageError> {
    table_meta(&read.open_table(GROUPS_TABLE).map_err(redb_error)?, group.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_batch;
    use crate::format::tests::in_memory_database;
    use multiraft_core::WriteBatch;

    /// A write-ahead record that breaks the contract (damaged behind redb's checksums, or
    /// written by a bug) is `Corrupt` at replay, not a panic (an entry at index 0 made
    /// `TailGroup::apply` underflow).
    #[test]
    fn an_invalid_write_ahead_record_is_corrupt_not_a_panic() {
        use multiraft_core::{GroupWrite, Payload};
        let db = in_memory_database();
        let bad = WriteBatch::from(vec![GroupWrite::new(GroupId(1)).with_entries(vec![
            Entry {
                index: 0,
                term: 1,
                payload: Payload::Noop,
            },
        ])]);
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

    /// Metadata damaged into a last index past `MAX_TERM_OR_INDEX`, or a compacted index
    /// past the last, is `Corrupt` when decoded: the reads add one to both unchecked.
    #[test]
    fn metadata_with_indexes_no_log_reaches_is_corrupt() {
        use crate::codec::{GroupMeta, encode_meta};
        let meta = |last_index, compacted_index| GroupMeta {
            hard_state: multiraft_core::HardState::default(),
            membership: multiraft_core::Membership::voters([1]),
            last_index,
            last_term: 1,
            compacted_index,
            compacted_term: 1,
            wal_from: 0,
        };
        let decode = |m: GroupMeta| decode_meta(1, &encode_meta(&m).unwrap());
        assert!(decode(meta(5, 3)).is_ok());
        assert!(decode(meta(5, 5)).is_ok());
        let top = multiraft_core::MAX_TERM_OR_INDEX;
        assert!(decode(meta(top, 3)).is_ok());
        assert!(matches!(
            decode(meta(top + 1, 3)),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            decode(meta(u64::MAX, 3)),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(decode(meta(5, 6)), Err(StorageError::Corrupt(_))));
    }

    /// A write-ahead floor damaged past what any writer numbers is `Corrupt` at replay. Read
    /// as it was, the next records were numbered up to `u64::MAX`, and the next write
    /// overflowed the writer's count (a panic in a debug build, records numbered from 0
    /// again in a release build: replayed before the older ones at the next start).
    #[test]
    fn a_write_ahead_floor_past_any_number_written_is_corrupt() {
        let db = in_memory_database();
        let floor = |value: u64| {
            let txn = db.begin_write().unwrap();
            txn.open_table(FORMAT_TABLE)
                .unwrap()
                .insert(SEQ_FLOOR_KEY, value)
                .unwrap();
            txn.commit().unwrap();
            read_tail(&db.begin_read().unwrap(), None).map(|tail| tail.next_seq)
        };
        let top = multiraft_core::MAX_TERM_OR_INDEX;
        assert_eq!(
            floor(top + 1).ok(),
            Some(top + 1),
            "after a record numbered top"
        );
        for damaged in [top + 2, u64::MAX] {
            assert!(matches!(floor(damaged), Err(StorageError::Corrupt(_))));
        }
    }

    /// A write-ahead record numbered past what any writer numbers is `Corrupt` at replay:
    /// at the end of `u64`, not an overflow of the next number (a panic in a debug build);
    /// past `MAX_TERM_OR_INDEX`, at the start that finds it, not one start later, once a
    /// checkpoint made its number the floor.
    #[test]
    fn a_write_ahead_record_numbered_past_any_writer_is_corrupt() {
        let top = multiraft_core::MAX_TERM_OR_INDEX;
        let tail = |seq: u64| {
            let db = in_memory_database();
            let txn = db.begin_write().unwrap();
            txn.open_table(WAL_TABLE)
                .unwrap()
                .insert(
                    seq,
                    encode_batch(&WriteBatch::default()).unwrap().as_slice(),
                )
                .unwrap();
            txn.commit().unwrap();
            read_tail(&db.begin_read().unwrap(), None).map(|tail| tail.next_seq)
        };
        assert_eq!(tail(top).ok(), Some(top + 1));
        for damaged in [top + 1, u64::MAX] {
            assert!(matches!(tail(damaged), Err(StorageError::Corrupt(_))));
        }
    }
}
