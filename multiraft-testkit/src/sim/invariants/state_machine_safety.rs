//! **State machine safety**: if a server has applied a log entry at a given index to its
//! state machine, no other server will ever apply a different log entry for the same index
//! (Raft §5.4.3, Figure 3).
//!
//! Every entry handed out in `Ready::apply`, by any replica, is recorded per group and index;
//! each replica must also apply consecutively from index 1, or from the index after the
//! snapshot its state machine was last restored from (after a restart, or an install).

use std::collections::HashMap;

use multiraft_core::{Entry, GroupId, Ready};

use super::{Check, Invariant, SimNode};

#[derive(Default)]
pub(crate) struct StateMachineSafety {
    /// Per group, the entry applied at each index (index `i` at position `i - 1`).
    applied: HashMap<GroupId, Vec<Entry>>,
    /// Per (node, group), the next index the replica must apply.
    next: HashMap<(usize, GroupId), u64>,
}

impl Invariant for StateMachineSafety {
    fn on_replica_removed(&mut self, node: usize, group: GroupId) {
        self.next.remove(&(node, group));
    }

    fn name(&self) -> &'static str {
        "state machine safety (Raft §5.4.3)"
    }

    fn on_ready(&mut self, nodes: &[SimNode], node: usize, ready: &Ready) -> Check {
        let me = nodes[node].id;
        for r in &ready.restores {
            // Restored once the write is durable, before any later apply of the group.
            self.next.insert((node, r.group), r.meta.index + 1);
        }
        for a in &ready.apply {
            let log = self.applied.entry(a.group).or_default();
            let next = self.next.entry((node, a.group)).or_insert(1);
            for e in &a.entries {
                if e.index != *next {
                    return Err(format!(
                        "{}: {me} applies index {} but the next to apply is {}",
                        a.group, e.index, next
                    ));
                }
                *next += 1;
                match log.get(e.index as usize - 1) {
                    Some(other) if other != e => {
                        return Err(format!(
                            "{}: {me} applies {:?} at index {} (term {}), another replica applied {:?} (term {})",
                            a.group, e.payload, e.index, e.term, other.payload, other.term
                        ));
                    }
                    Some(_) => {}
                    None => log.push(e.clone()),
                }
            }
        }
        Ok(())
    }

    fn on_crash(&mut self, node: usize) {
        self.next.retain(|(n, _), _| *n != node);
    }
}
