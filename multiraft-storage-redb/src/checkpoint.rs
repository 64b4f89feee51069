//! Checkpointing: moving the oldest groups of the tail from the write-ahead table into the
//! group and log tables, a slice at a time.

use multiraft_core::StorageError;
use redb::Durability;

use crate::codec::{
    FORMAT_TABLE, GROUPS_TABLE, GroupMeta, LOG_TABLE, REMOVED_TABLE, SEQ_FLOOR_KEY, WAL_TABLE,
    encode_meta, redb_error,
};
use crate::runs;
use crate::tail::{TAIL_GROUP_BYTES, TailGroup};
use crate::writer::{Failure, Writer};

/// A checkpoint step moves this fraction (1/N) of the tail's groups, oldest first, so that a
/// write waits for one step, not for all groups at once: the stall after a commit is about
/// one sixteenth of a whole checkpoint.
const CHECKPOINT_SLICES: usize = 16;

impl Writer<'_> {
    /// One checkpoint step, one durable transaction: moves the oldest slice of the tail's
    /// groups into the tables, then deletes the write-ahead records no remaining group needs
    /// (those below the oldest `first_seq` left) and the removal marks they made useless.
    pub(crate) fn checkpoint_step(&mut self) -> Result<(), Failure> {
        let mut oldest: Vec<(u64, u64)> = self
            .tail
            .groups
            .iter()
            .map(|(&g, group)| (group.first_seq, g))
            .collect();
        let take = oldest.len().div_ceil(CHECKPOINT_SLICES);
        if take < oldest.len() {
            oldest.select_nth_unstable(take);
            oldest.truncate(take);
        }
        // In key order: neighbouring groups share B-tree pages.
        let mut ids: Vec<u64> = oldest.into_iter().map(|(_, g)| g).collect();
        ids.sort_unstable();
        let wal_from = self.tail.next_seq;

        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let keep_from = self
            .tail
            .groups
            .iter()
            .filter(|(g, _)| ids.binary_search(g).is_err())
            .map(|(_, group)| group.first_seq)
            .min()
            .unwrap_or(wal_from);
        {
            let mut groups = txn.open_table(GROUPS_TABLE)?;
            let mut log = txn.open_table(LOG_TABLE)?;
            let mut removed = txn.open_table(REMOVED_TABLE)?;
            for &g in &ids {
                if let Some(group) = self.tail.groups.get(&g) {
                    checkpoint_group(&mut groups, &mut log, &mut removed, g, group, wal_from)
                        .map_err(Failure::Fatal)?;
                }
            }
            txn.open_table(WAL_TABLE)?
                .retain_in(..keep_from, |_, _| false)?;
            removed.retain(|_, from| from > keep_from)?;
            txn.open_table(FORMAT_TABLE)?
                .insert(SEQ_FLOOR_KEY, wal_from)?;
        }
        txn.commit()?;
        for g in &ids {
            self.tail.groups.remove(g);
        }
        self.tail.bytes -= ids.len() * TAIL_GROUP_BYTES;
        self.tail.drop_records_below(keep_from);
        Ok(())
    }
}

/// Writes one group's tail into the tables: deletes the table rows it made dead, adds its
/// new entries as one run, replaces (or deletes) its metadata row.
fn checkpoint_group(
    groups: &mut redb::Table<'_, u64, &'static [u8]>,
    log: &mut runs::LogTable<'_>,
    removed: &mut redb::Table<'_, u64, u64>,
    g: u64,
    group: &TailGroup,
    wal_from: u64,
) -> Result<(), StorageError> {
    if group.cleared {
        log.retain_in((g, 0)..=(g, u64::MAX), |_, _| false)
            .map_err(redb_error)?;
    } else {
        let truncated = group.table_live_to < group.table_last;
        if truncated {
            runs::truncate_after(log, g, group.table_live_to)?;
        }
        // A truncation can leave a straddling run wholly compacted, too.
        let compacted = group.meta.as_ref().map_or(0, |m| m.compacted_index);
        if compacted > group.table_compacted || (truncated && compacted > 0) {
            runs::delete_compacted(log, g, compacted, group.table_live_to)?;
        }
    }
    match &group.meta {
        None => {
            groups.remove(g).map_err(redb_error)?;
            removed.insert(g, wal_from).map_err(redb_error)?;
        }
        Some(meta) => {
            runs::insert_run(log, g, &group.appended)?;
            let meta = GroupMeta {
                wal_from,
                ..meta.clone()
            };
            groups
                .insert(g, encode_meta(&meta)?.as_slice())
                .map_err(redb_error)?;
            // A removal mark of an earlier incarnation is superseded by this row.
            removed.remove(g).map_err(redb_error)?;
        }
    }
    Ok(())
}
