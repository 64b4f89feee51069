//! **Election safety**: at most one leader can be elected in a given term (Raft §5.2,
//! Figure 3; dissertation §3.4).
//!
//! Every (group, term) → leader seen during the whole run is recorded; a second node leading
//! the same group in the same term is a violation, even if the first has long stepped down.

use std::collections::HashMap;

use multiraft_core::group::{GroupStatus, Role};
use multiraft_core::{Event, GroupId, NodeId, Ready};

use super::{Check, Invariant, SimNode};

#[derive(Default)]
pub(crate) struct ElectionSafety {
    leaders: HashMap<(GroupId, u64), NodeId>,
}

impl Invariant for ElectionSafety {
    fn name(&self) -> &'static str {
        "election safety (Raft §5.2)"
    }

    fn after_step(&mut self, nodes: &[SimNode], node: usize, st: &GroupStatus) -> Check {
        if st.role != Role::Leader {
            return Ok(());
        }
        self.saw(st.group, st.term, nodes[node].id)
    }

    /// A leader is also taken from the node's own report of it: a node elected in a step
    /// whose write then fails goes down before the step ends, unseen by `after_step`,
    /// though its ready may already have sent what a leader sends (review).
    fn on_ready(&mut self, nodes: &[SimNode], node: usize, ready: &Ready) -> Check {
        let me = nodes[node].id;
        for event in &ready.events {
            if let Event::LeaderChanged {
                group,
                term,
                leader: Some(leader),
            } = *event
                && leader == me
            {
                self.saw(group, term, me)?;
            }
        }
        Ok(())
    }
}

impl ElectionSafety {
    /// `me` led `group` in `term`.
    fn saw(&mut self, group: GroupId, term: u64, me: NodeId) -> Check {
        let first = *self.leaders.entry((group, term)).or_insert(me);
        if first != me {
            return Err(format!(
                "{group}: both {first} and {me} became leader in term {term}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes that each report leading a group in one term are caught from their
    /// readies alone, without a step's status.
    #[test]
    fn two_leaders_of_a_term_reported_in_readies_are_caught() {
        let nodes = [SimNode::down(NodeId(1), 1), SimNode::down(NodeId(2), 1)];
        let led = |leader: u64| {
            let mut ready = Ready::default();
            ready.events.push(Event::LeaderChanged {
                group: GroupId(1),
                term: 3,
                leader: Some(NodeId(leader)),
            });
            ready
        };
        let mut check = ElectionSafety::default();
        assert_eq!(check.on_ready(&nodes, 0, &led(1)), Ok(()));
        // Node 2 hears of node 1's leadership: not a claim of its own.
        assert_eq!(check.on_ready(&nodes, 1, &led(1)), Ok(()));
        assert!(check.on_ready(&nodes, 1, &led(2)).is_err());
    }
}
