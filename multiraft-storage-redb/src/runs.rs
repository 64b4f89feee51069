//! The log table: each group's checkpointed entries, one row per run of consecutive entries.
//!
//! A checkpoint writes each group's new entries as one run keyed by `(group, first index)`,
//! so its cost grows with the number of groups and bytes, not entries. A group's runs are
//! consecutive (each starts right after the previous one ends; the last ends at the group's
//! checkpointed last index), so a run's extent follows from its key and the next key. A run
//! may straddle the compaction mark: its entries at or below the mark are skipped by every
//! read, and the row is deleted once a later compaction passes its end.

use multiraft_core::{Entry, LogRuns, StorageError};
use redb::{ReadableTable, Table};

use crate::codec::{decode_run, encode_run, redb_error};

/// The log table as read: a read-only table or the writer's table.
pub(crate) trait LogRead: ReadableTable<(u64, u64), &'static [u8]> {}
impl<T: ReadableTable<(u64, u64), &'static [u8]>> LogRead for T {}

/// The log table as the writer changes it.
pub(crate) type LogTable<'txn> = Table<'txn, (u64, u64), &'static [u8]>;

/// The run of group `g` that holds `index`, if any.
pub(crate) fn run_containing(
    log: &impl LogRead,
    g: u64,
    index: u64,
) -> Result<Option<Vec<Entry>>, StorageError> {
    let Some(row) = log
        .range((g, 0)..=(g, index))
        .map_err(redb_error)?
        .next_back()
    else {
        return Ok(None);
    };
    let (key, value) = row.map_err(redb_error)?;
    let run = decode_run(g, key.value().1, value.value())?;
    Ok(run.last().is_some_and(|e| e.index >= index).then_some(run))
}

/// The term of the stored entry `index` of group `g`, if the table holds it.
pub(crate) fn term_at(log: &impl LogRead, g: u64, index: u64) -> Result<Option<u64>, StorageError> {
    Ok(run_containing(log, g, index)?.map(|run| run[(index - run[0].index) as usize].term))
}

/// The stored entries of group `g` with index in `[low, high)`, in order.
pub(crate) fn read_range(
    log: &impl LogRead,
    g: u64,
    low: u64,
    high: u64,
) -> Result<Vec<Entry>, StorageError> {
    let mut entries = Vec::new();
    if low >= high {
        return Ok(entries);
    }
    // The run holding `low` starts at or before it.
    let start = match log
        .range((g, 0)..=(g, low))
        .map_err(redb_error)?
        .next_back()
    {
        Some(row) => row.map_err(redb_error)?.0.value().1,
        None => low,
    };
    for row in log.range((g, start)..(g, high)).map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let run = decode_run(g, key.value().1, value.value())?;
        entries.extend(run.into_iter().filter(|e| e.index >= low && e.index < high));
    }
    Ok(entries)
}

/// Deletes every stored entry of group `g` above `live_to`: the rows that start above it,
/// and the end of the row that holds it.
pub(crate) fn truncate_after(
    log: &mut LogTable<'_>,
    g: u64,
    live_to: u64,
) -> Result<(), StorageError> {
    if live_to > 0
        && let Some(mut run) = run_containing(log, g, live_to)?
        && run.last().is_some_and(|e| e.index > live_to)
    {
        run.truncate((live_to - run[0].index + 1) as usize);
        let value = encode_run(&run)?;
        log.insert((g, run[0].index), value.as_slice())
            .map_err(redb_error)?;
    }
    log.retain_in((g, live_to.saturating_add(1))..=(g, u64::MAX), |_, _| false)
        .map_err(redb_error)
}

/// Deletes the rows of group `g` whose entries all lie at or below `compacted`, given that
/// its stored log ends at `last`.
pub(crate) fn delete_compacted(
    log: &mut LogTable<'_>,
    g: u64,
    compacted: u64,
    last: u64,
) -> Result<(), StorageError> {
    // Runs are consecutive: a run ends where the next starts, the last one at `last`.
    let mut firsts = Vec::new();
    for row in log.range((g, 0)..=(g, u64::MAX)).map_err(redb_error)? {
        let first = row.map_err(redb_error)?.0.value().1;
        if first > compacted + 1 {
            break;
        }
        firsts.push(first);
    }
    let mut dead = None;
    for (i, &first) in firsts.iter().enumerate() {
        let end = match firsts.get(i + 1) {
            Some(next) => next - 1,
            None => match log
                .range((g, first + 1)..=(g, u64::MAX))
                .map_err(redb_error)?
                .next()
            {
                Some(row) => row.map_err(redb_error)?.0.value().1 - 1,
                None => last,
            },
        };
        if end > compacted {
            break;
        }
        dead = Some(first);
    }
    if let Some(through) = dead {
        log.retain_in((g, 0)..=(g, through), |_, _| false)
            .map_err(redb_error)?;
    }
    Ok(())
}

/// Writes `entries` as one row (none when there are none).
pub(crate) fn insert_run(
    log: &mut LogTable<'_>,
    g: u64,
    entries: &LogRuns,
) -> Result<(), StorageError> {
    if let Some(first) = entries.first_index() {
        let value = encode_run(entries.iter())?;
        log.insert((g, first), value.as_slice())
            .map_err(redb_error)?;
    }
    Ok(())
}
