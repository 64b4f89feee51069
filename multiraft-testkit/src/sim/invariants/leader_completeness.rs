//! **Leader completeness**: if a log entry is committed in a given term, that entry will be
//! present in the logs of the leaders for all higher-numbered terms (Raft §5.4, Figure 3;
//! proof in §5.4.3).
//!
//! When an index is first seen committed (on any replica), the highest term any replica of
//! the group has reached is recorded with it: the entry was committed in that term or an
//! earlier one. Every leader of a strictly higher term must then hold it. By log matching
//! (checked separately) holding the last such entry implies holding all earlier ones, so
//! each check is one lookup.

use std::collections::HashMap;

use multiraft_core::group::{GroupStatus, Role};
use multiraft_core::{GroupId, Ready};

use super::{Check, Invariant, SimNode};

#[derive(Default)]
struct PerGroup {
    /// Highest term any replica has reached.
    max_term: u64,
    /// Term of each committed entry (index `i` at position `i - 1`).
    terms: Vec<u64>,
    /// `max_term` when each entry was first seen committed; non-decreasing.
    floor: Vec<u64>,
}

#[derive(Default)]
pub(crate) struct LeaderCompleteness {
    groups: HashMap<GroupId, PerGroup>,
}

impl Invariant for LeaderCompleteness {
    fn name(&self) -> &'static str {
        "leader completeness (Raft §5.4)"
    }

    /// Applied entries are committed: recorded here too, since a commit, its applies and a
    /// compaction can happen within one step, before `after_step` looks at the log.
    fn on_ready(&mut self, _nodes: &[SimNode], _node: usize, ready: &Ready) -> Check {
        for a in &ready.apply {
            let pg = self.groups.entry(a.group).or_default();
            for e in &a.entries {
                if e.index == pg.terms.len() as u64 + 1 {
                    pg.terms.push(e.term);
                    pg.floor.push(pg.max_term);
                }
            }
        }
        Ok(())
    }

    fn after_step(&mut self, nodes: &[SimNode], node: usize, st: &GroupStatus) -> Check {
        let n = nodes[node].node.as_ref().expect("running");
        let pg = self.groups.entry(st.group).or_default();
        pg.max_term = pg.max_term.max(st.term);
        let known = pg.terms.len() as u64;
        let Some(group) = n.replica(st.group) else {
            return Ok(()); // removed in this step
        };
        // A replica whose log starts past what is recorded (it installed a snapshot) has
        // nothing to add: the leader that committed those entries recorded them.
        if st.commit > known && group.first_index() <= known + 1 {
            for e in group.entries(known + 1, st.commit + 1) {
                pg.terms.push(e.term);
                pg.floor.push(pg.max_term);
            }
        }
        if st.role == Role::Leader {
            // Committed entries whose commit term is below this leader's term.
            let k = pg.floor.partition_point(|f| *f < st.term) as u64;
            if k > 0 {
                let want = pg.terms[k as usize - 1];
                // Below the log's first index the entry is covered by the snapshot; only the
                // last compacted one's term is still known.
                let have = group.term_at(k);
                let compacted = k + 1 < group.first_index();
                if !compacted && have != Some(want) {
                    return Err(format!(
                        "{}: {} leads term {} but its entry at committed index {k} has term {:?}, \
                         committed with term {want} no later than term {}",
                        st.group,
                        nodes[node].id,
                        st.term,
                        have,
                        pg.floor[k as usize - 1]
                    ));
                }
            }
        }
        Ok(())
    }
}
