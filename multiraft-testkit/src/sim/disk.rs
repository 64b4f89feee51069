//! A node's durable image in the simulator: per group, what `Storage::load` would return
//! (log after the compacted prefix, hard state, latest complete snapshot) plus the stored
//! snapshot chunks, changed only by writes that became durable.

use std::collections::BTreeMap;

use multiraft_core::{
    Bytes, Compacted, Entry, GroupId, GroupWrite, LoadedGroup, SnapshotChunk, SnapshotMeta,
};

/// One group's stored snapshots: the complete one, and one being received or built.
#[derive(Clone, Debug, Default)]
pub(crate) struct SnapStore {
    pub(crate) complete: Option<(SnapshotMeta, Vec<Bytes>)>,
    incoming: Option<(SnapshotMeta, Vec<Bytes>)>,
}

/// What survives a crash of one node.
#[derive(Clone, Debug, Default)]
pub(crate) struct Disk {
    pub(crate) groups: BTreeMap<GroupId, LoadedGroup>,
    pub(crate) snapshots: BTreeMap<GroupId, SnapStore>,
}

/// The index before the first entry of `img`'s log.
pub(crate) fn offset(img: &LoadedGroup) -> u64 {
    img.compacted.map_or(0, |c| c.index)
}

/// The last index of `img`'s log (the compacted prefix's end when it holds no entry).
pub(crate) fn last_index(img: &LoadedGroup) -> u64 {
    offset(img) + img.entries.len() as u64
}

/// The entry of `img`'s log at `index`, if it holds one.
pub(crate) fn entry_at(img: &LoadedGroup, index: u64) -> Option<&Entry> {
    let i = index.checked_sub(offset(img) + 1)?;
    img.entries.get(usize::try_from(i).ok()?)
}

/// The term at `index` in `img`: of an entry held, or of the last compacted one.
pub(crate) fn term_at(img: &LoadedGroup, index: u64) -> Option<u64> {
    match img.compacted {
        Some(c) if c.index == index => Some(c.term),
        _ if index == 0 => Some(0),
        _ => entry_at(img, index).map(|e| e.term),
    }
}

impl Disk {
    /// Chunk `seq` of `group`'s complete snapshot, if it is the one at `index`.
    pub(crate) fn snapshot_chunk(
        &self,
        group: GroupId,
        index: u64,
        seq: u32,
    ) -> Option<SnapshotChunk> {
        let (meta, chunks) = self.snapshots.get(&group)?.complete.as_ref()?;
        if meta.index != index {
            return None;
        }
        let data = chunks.get(seq as usize)?.clone();
        Some(SnapshotChunk {
            meta: meta.clone(),
            seq,
            data,
            last: seq as usize + 1 == chunks.len(),
        })
    }

    /// Makes one record durable, as the `Storage` contract says; an error is a record that
    /// breaks the contract (the node must never build one).
    pub(crate) fn write(&mut self, w: GroupWrite) -> Result<(), String> {
        if w.remove {
            self.groups.remove(&w.group);
            self.snapshots.remove(&w.group);
            return Ok(());
        }
        let img = self
            .groups
            .entry(w.group)
            .or_insert_with(|| LoadedGroup::new(w.group));
        let (last, compacted) = match w.log_reset {
            Some(c) => (c.index, c.index),
            None => (last_index(img), offset(img)),
        };
        w.validate(last, compacted).map_err(|e| e.to_string())?;
        if let Some(m) = w.membership {
            img.membership = m;
        }
        if let Some(hs) = w.hard_state {
            img.hard_state = hs;
        }
        let store = self.snapshots.entry(w.group).or_default();
        for chunk in w.snapshot {
            if chunk.seq == 0 {
                store.incoming = Some((chunk.meta.clone(), Vec::new()));
            }
            let Some((meta, chunks)) = store.incoming.as_mut() else {
                return Err(format!(
                    "{}: snapshot chunk {} with none started",
                    w.group, chunk.seq
                ));
            };
            if *meta != chunk.meta || chunks.len() != chunk.seq as usize {
                return Err(format!(
                    "{}: snapshot chunk {} of index {} does not continue the incoming one",
                    w.group, chunk.seq, chunk.meta.index
                ));
            }
            chunks.push(chunk.data);
            if chunk.last {
                store.complete = store.incoming.take();
                img.snapshot = Some(chunk.meta);
            }
        }
        if let Some(c) = w.log_reset {
            img.entries.clear();
            img.compacted = Some(c);
        }
        if let Some(first) = w.entries.first() {
            let keep = first.index - offset(img) - 1;
            img.entries.truncate(keep as usize);
            img.entries.extend(w.entries.iter().cloned());
        }
        if let Some(to) = w.compact_to
            && to > offset(img)
        {
            let term = term_at(img, to)
                .ok_or_else(|| format!("{}: compaction to {to} past the log", w.group))?;
            let drop = (to - offset(img)) as usize;
            img.entries.drain(..drop);
            img.compacted = Some(Compacted { index: to, term });
            if img.snapshot.as_ref().is_none_or(|s| s.index < to) {
                return Err(format!(
                    "{}: log compacted to {to}, past its snapshot",
                    w.group
                ));
            }
        }
        Ok(())
    }
}
