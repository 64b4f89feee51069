//! **Leader completeness**: if a log entry is committed in a given term, that entry will be
//! present in the logs of the leaders for all higher-numbered terms (Raft §5.4, Figure 3;
//! proof in §5.4.3).
//!
//! A replica that knows an index committed learned it from a leader of its own term or an
//! earlier one (or led that term itself), so the entry was committed in that term or an
//! earlier one: the least such term seen is recorded with each index (lowered for earlier
//! indexes too, which were committed no later). Every leader of a strictly higher term must
//! then hold it. By log matching (checked separately) holding the last such entry implies
//! holding all earlier ones, so each check is one lookup. (The highest term any replica
//! had reached, recorded before, let a cut-off candidate's rising term exempt the leaders
//! the majority elected meanwhile: review.)

use std::collections::HashMap;

use multiraft_core::group::{GroupStatus, Role};
use multiraft_core::{GroupId, Ready};

use super::{Check, Invariant, SimNode};

#[derive(Default)]
struct PerGroup {
    /// Term of each committed entry (index `i` at position `i - 1`).
    terms: Vec<u64>,
    /// A term each entry was committed in or after: the least term of a replica seen
    /// knowing it committed. Non-decreasing.
    floor: Vec<u64>,
}

impl PerGroup {
    /// A replica at `term` knows the first `commit` entries committed: none was committed
    /// after `term`.
    fn known_by(&mut self, commit: u64, term: u64) {
        let mut i = self.floor.len().min(commit as usize);
        while i > 0 && self.floor[i - 1] > term {
            self.floor[i - 1] = term;
            i -= 1;
        }
    }
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
    fn on_ready(&mut self, nodes: &[SimNode], node: usize, ready: &Ready) -> Check {
        for a in &ready.apply {
            // The applying replica's term now: it knew these committed by then.
            let Some(term) = nodes[node]
                .node
                .as_ref()
                .and_then(|n| n.group_status(a.group))
                .map(|s| s.term)
            else {
                continue;
            };
            let pg = self.groups.entry(a.group).or_default();
            for e in &a.entries {
                if e.index == pg.terms.len() as u64 + 1 {
                    pg.terms.push(e.term);
                    pg.floor.push(term);
                }
                pg.known_by(e.index, term);
            }
        }
        Ok(())
    }

    fn after_step(&mut self, nodes: &[SimNode], node: usize, st: &GroupStatus) -> Check {
        let n = nodes[node].node.as_ref().expect("running");
        let pg = self.groups.entry(st.group).or_default();
        pg.known_by(st.commit, st.term);
        let known = pg.terms.len() as u64;
        let Some(group) = n.replica(st.group) else {
            return Ok(()); // removed in this step
        };
        // A replica whose log starts past what is recorded (it installed a snapshot) has
        // nothing to add: the leader that committed those entries recorded them.
        if st.commit > known && group.first_index() <= known + 1 {
            for e in group.entries(known + 1, st.commit + 1) {
                pg.terms.push(e.term);
                pg.floor.push(st.term);
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
