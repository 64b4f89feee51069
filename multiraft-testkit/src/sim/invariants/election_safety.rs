//! **Election safety**: at most one leader can be elected in a given term (Raft §5.2,
//! Figure 3; dissertation §3.4).
//!
//! Every (group, term) → leader seen during the whole run is recorded; a second node leading
//! the same group in the same term is a violation, even if the first has long stepped down.

use std::collections::HashMap;

use multiraft_core::group::{GroupStatus, Role};
use multiraft_core::{GroupId, NodeId};

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
        let me = nodes[node].id;
        let first = *self.leaders.entry((st.group, st.term)).or_insert(me);
        if first != me {
            return Err(format!(
                "{}: both {first} and {me} became leader in term {}",
                st.group, st.term
            ));
        }
        Ok(())
    }
}
