//! What the leader knows of each follower, for status pages and operators.

use super::progress::ProgressState;
use super::{Replica, Role};
use crate::ids::NodeId;

/// The leader's view of one other replica of its group (see [`Replica::followers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct FollowerStatus {
    /// The node holding the replica.
    pub node: NodeId,
    /// Highest index known to match the leader's log and be durable there.
    pub matched: u64,
    /// The next index the leader sends it.
    pub next: u64,
    /// Heard from since the leader's last CheckQuorum round.
    pub active: bool,
    /// A snapshot is on its way to it instead of appends.
    pub snapshot: bool,
    /// A learner: it receives the log but does not vote.
    pub learner: bool,
}

impl FollowerStatus {
    /// How many entries it lacks of the leader's log ending at `last_index`.
    pub fn lag(&self, last_index: u64) -> u64 {
        last_index.saturating_sub(self.matched)
    }
}

impl Replica {
    /// On the leader, every other replica it replicates to, in node order; empty on any
    /// other role. Allocates: for status pages, not for the hot path.
    pub fn followers(&self) -> Vec<FollowerStatus> {
        if self.role != Role::Leader {
            return Vec::new();
        }
        let membership = self.membership();
        let mut out: Vec<FollowerStatus> = self
            .progress
            .iter()
            .filter(|(node, _)| **node != self.node)
            .map(|(node, p)| FollowerStatus {
                node: *node,
                matched: p.matched,
                next: p.next,
                active: p.recent_active,
                snapshot: p.state == ProgressState::Snapshot,
                learner: !membership.is_voter(*node),
            })
            .collect();
        out.sort_by_key(|f| f.node);
        out
    }
}
