//! **Committed entries never change or disappear**: once an entry is committed it stays in
//! every replica's log at its index with its term (Raft §5.4, "Leader Append-Only" and
//! "Log Matching" of Figure 3, and §5.3: "the leader never overwrites committed entries";
//! a follower truncates only uncommitted suffixes).
//!
//! Per group, the committed prefix seen anywhere is recorded. Each time a replica's commit
//! index moves, its newly committed entries must equal that prefix (or extend it). A replica
//! must never write an entry other than the committed one at or below its own commit index
//! (that would overwrite a committed entry); after a restart its
//! durable log must still hold the committed prefix up to its durable commit index.

use std::collections::HashMap;

use multiraft_core::group::GroupStatus;
use multiraft_core::{Entry, GroupId, Ready};

use super::super::disk;
use super::{Check, Invariant, SimNode, sorted_groups};

#[derive(Default)]
pub(crate) struct CommittedNeverChange {
    committed: HashMap<GroupId, Vec<Entry>>,
    /// Per (node, group): the highest commit index the replica was seen with since it last
    /// started.
    replica: HashMap<(usize, GroupId), u64>,
}

impl CommittedNeverChange {
    fn check_prefix(&mut self, group: GroupId, who: &str, entries: &[Entry]) -> Check {
        let log = self.committed.entry(group).or_default();
        for e in entries {
            match log.get(e.index as usize - 1) {
                Some(c) if c != e => {
                    return Err(format!(
                        "{group}: {who} has {:?} (term {}) at committed index {}, but {:?} (term {}) was committed there",
                        e.payload, e.term, e.index, c.payload, c.term
                    ));
                }
                Some(_) => {}
                None if e.index as usize == log.len() + 1 => log.push(e.clone()),
                None => {
                    return Err(format!(
                        "{group}: {who} commits index {} beyond the known committed prefix {}",
                        e.index,
                        log.len()
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Invariant for CommittedNeverChange {
    fn on_replica_removed(&mut self, node: usize, group: GroupId) {
        self.replica.remove(&(node, group));
    }

    fn name(&self) -> &'static str {
        "committed entries never change (Raft §5.4)"
    }

    fn after_step(&mut self, nodes: &[SimNode], node: usize, st: &GroupStatus) -> Check {
        let seen = self.replica.get(&(node, st.group)).copied().unwrap_or(0);
        if st.commit <= seen {
            return Ok(());
        }
        let n = nodes[node].node.as_ref().expect("running");
        let Some(replica) = n.replica(st.group) else {
            return Ok(()); // removed in this step
        };
        let who = nodes[node].id.to_string();
        // Below the log's first index a snapshot stands for the entries: it must be of the
        // committed entry at its index (snapshot terms, §7).
        if let Some((index, term)) = replica.snapshot()
            && let Some(c) = self
                .committed
                .get(&st.group)
                .and_then(|l| l.get(index as usize - 1))
            && c.term != term
        {
            return Err(format!(
                "{}: {who} holds a snapshot at {index} of term {term}, but the entry committed there has term {}",
                st.group, c.term
            ));
        }
        let low = (seen + 1).max(replica.first_index());
        let entries = replica.entries(low, st.commit + 1);
        if (entries.len() as u64) < (st.commit + 1).saturating_sub(low) {
            return Err(format!(
                "{}: {who} commit {} beyond its log",
                st.group, st.commit
            ));
        }
        self.check_prefix(st.group, &who, &entries)?;
        self.replica.insert((node, st.group), st.commit);
        Ok(())
    }

    fn on_ready(&mut self, nodes: &[SimNode], node: usize, ready: &Ready) -> Check {
        // Applied entries are committed. Recorded here too, because a commit, the applies
        // and a compaction can all happen within one step: then the entries are gone from
        // the log by the time `after_step` looks.
        for a in &ready.apply {
            let who = format!("{} (applying)", nodes[node].id);
            self.check_prefix(a.group, &who, &a.entries)?;
        }
        for w in &ready.write.groups {
            if w.remove {
                self.replica.remove(&(node, w.group));
                continue;
            }
            let commit = self.replica.get(&(node, w.group)).copied().unwrap_or(0);
            // Entries at or below the replica's commit index are committed: a write there
            // (a write still in flight when commit moved) must carry the committed entry.
            let low: Vec<Entry> = w
                .entries
                .iter()
                .take_while(|e| e.index <= commit)
                .cloned()
                .collect();
            if !low.is_empty() {
                let who = format!(
                    "{} (writing at or below its commit index {commit})",
                    nodes[node].id
                );
                self.check_prefix(w.group, &who, &low)?;
            }
        }
        Ok(())
    }

    fn on_crash(&mut self, node: usize) {
        self.replica.retain(|(n, _), _| *n != node);
    }

    fn on_restart(&mut self, nodes: &[SimNode], node: usize) -> Check {
        let sn = &nodes[node];
        let n = sn.node.as_ref().expect("running");
        for g in sorted_groups(n) {
            let Some(img) = sn.durable.groups.get(&g) else {
                continue;
            };
            let commit = img.hard_state.commit.min(disk::last_index(img));
            let who = format!("{} (restarted)", sn.id);
            let held = commit.saturating_sub(disk::offset(img)) as usize;
            self.check_prefix(g, &who, &img.entries[..held])?;
            self.replica.insert((node, g), commit);
        }
        Ok(())
    }
}
