//! **Monotonic term, commit and applied**: a replica's current term only grows (Raft §5.1:
//! "current terms are exchanged ... if one server's current term is smaller than the
//! other's, then it updates"; Figure 2 `currentTerm` "increases monotonically"), and so do
//! `commitIndex` and `lastApplied` (Figure 2: "increases monotonically").
//!
//! A crash ends a replica's volatile state. After a restart the baseline is what storage
//! held: the durable term, the durable commit index (which may lag: it is re-learned from
//! the leader), and applied index 0 (the state machine is rebuilt by re-applying).

use std::collections::HashMap;

use multiraft_core::GroupId;
use multiraft_core::group::GroupStatus;

use super::{Check, Invariant, SimNode, sorted_groups};

#[derive(Default)]
pub(crate) struct Monotonic {
    /// Per (node, group): (term, commit, applied) last seen.
    seen: HashMap<(usize, GroupId), (u64, u64, u64)>,
}

impl Invariant for Monotonic {
    fn on_replica_removed(&mut self, node: usize, group: GroupId) {
        self.seen.remove(&(node, group));
    }

    fn name(&self) -> &'static str {
        "monotonic term/commit/applied (Raft Figure 2)"
    }

    fn after_step(&mut self, nodes: &[SimNode], node: usize, st: &GroupStatus) -> Check {
        let now = (st.term, st.commit, st.applied);
        if let Some(&(term, commit, applied)) = self.seen.get(&(node, st.group)) {
            let who = nodes[node].id;
            if st.term < term {
                return Err(format!(
                    "{}: {who} term went back from {term} to {}",
                    st.group, st.term
                ));
            }
            if st.commit < commit {
                return Err(format!(
                    "{}: {who} commit index went back from {commit} to {}",
                    st.group, st.commit
                ));
            }
            if st.applied < applied {
                return Err(format!(
                    "{}: {who} applied index went back from {applied} to {}",
                    st.group, st.applied
                ));
            }
        }
        self.seen.insert((node, st.group), now);
        Ok(())
    }

    fn on_crash(&mut self, node: usize) {
        self.seen.retain(|(n, _), _| *n != node);
    }

    fn on_restart(&mut self, nodes: &[SimNode], node: usize) -> Check {
        let sn = &nodes[node];
        let n = sn.node.as_ref().expect("running");
        for g in sorted_groups(n) {
            let st = n.group_status(g).expect("listed");
            let loaded = sn.durable.groups.get(&g);
            let img = loaded.map(|l| l.hard_state).unwrap_or_default();
            // The state machine starts from the stored snapshot, if any.
            let snapshot = loaded
                .and_then(|l| l.snapshot.as_ref())
                .map_or(0, |s| s.index);
            if st.term != img.term || st.applied != snapshot || st.commit > img.commit.max(snapshot)
            {
                return Err(format!(
                    "{g}: {} restarted with term {} commit {} applied {}, but storage holds term {} commit {} snapshot {snapshot}",
                    sn.id, st.term, st.commit, st.applied, img.term, img.commit
                ));
            }
            self.seen
                .insert((node, g), (st.term, st.commit, st.applied));
        }
        Ok(())
    }
}
