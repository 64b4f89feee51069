//! Identifiers: which node, which group.

use serde::{Deserialize, Serialize};

/// Identifies one process taking part in Raft groups. A node hosts one *replica* of each
/// group it belongs to. `NodeId(0)` is reserved to mean "no node" and is rejected by
/// [`Config::validate`](crate::Config::validate) and [`Membership`](crate::Membership).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

/// Identifies one Raft group across the whole cluster.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct GroupId(pub u64);

impl GroupId {
    /// Marks node-level messages (coalesced heartbeats), which belong to no group. Never
    /// a valid group id.
    pub const NODE: GroupId = GroupId(0);

    /// A number drawn from the id, spread evenly over `u32` for consecutive ids (a
    /// multiplicative hash): what per-group sizes and periods are staggered by, so that
    /// groups fed alike do not reach the same step at the same moment.
    pub(crate) fn spread(self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// Names one request this node took from the application — a proposal, or a group's creation
/// or removal — from the call that took it until the node reports its outcome
/// ([`Outcome`](crate::node::Outcome), or an applied entry that carries it). Allocated by the
/// node from a sequence whose start the caller supplies
/// ([`Node::start_requests_at`](crate::Node::start_requests_at)), so that a restarted node
/// never reuses one that entries still in the log carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Names one proposal cluster-wide: the node that accepted it from a client and a sequence
/// number unique on that node. It travels inside the log entry so that whichever replica of
/// `node` applies the entry can resolve the waiting client, even when the proposal was
/// forwarded to a leader elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    /// The node whose client made the proposal.
    pub node: NodeId,
    /// The [`RequestId`] under which `node` took the proposal: unique per `node`, across
    /// restarts too.
    pub seq: u64,
}
