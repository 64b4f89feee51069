//! A node's state in one value, for status pages and operators: its figures, its peers'
//! liveness and a page of its groups.

use super::Node;
use crate::group::{FollowerStatus, GroupStatus};
use crate::ids::{GroupId, NodeId};
use crate::membership::Membership;

/// The most groups one [`Node::report`] lists: a status page of a node hosting a million
/// groups pages through them rather than building one answer of a million entries.
pub const MAX_REPORT_GROUPS: usize = 1_000;

/// One peer node and whether it is heard from (`Config::election_timeout_min_ticks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct PeerStatus {
    /// The peer.
    pub node: NodeId,
    /// A batch from it arrived within the liveness timeout.
    pub live: bool,
}

/// One hosted group, as a status page shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct GroupReport {
    /// Role, term, leader and the log's marks.
    pub status: GroupStatus,
    /// Quiesced: idle, costing no ticks.
    pub quiesced: bool,
    /// The membership in force (the latest in the log).
    pub membership: Membership,
    /// On the leader, each other replica's progress; empty elsewhere.
    pub followers: Vec<FollowerStatus>,
}

/// What [`Node::report`] returns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NodeReport {
    /// This node.
    pub node: NodeId,
    /// Node-wide figures.
    pub status: super::NodeStatus,
    /// Every peer node, in id order.
    pub peers: Vec<PeerStatus>,
    /// Hosted groups from the requested one on, in id order, at most the requested limit.
    pub groups: Vec<GroupReport>,
    /// More groups follow the last one listed.
    pub more: bool,
}

impl Node {
    /// The node's figures, its peers and up to `limit` (at most [`MAX_REPORT_GROUPS`])
    /// hosted groups with ids from `from` on. Costs one pass over the hosted groups' ids:
    /// for status pages and operators, not for every request.
    pub fn report(&self, from: GroupId, limit: usize) -> NodeReport {
        let limit = limit.min(MAX_REPORT_GROUPS);
        let mut ids: Vec<GroupId> = self.group_ids().filter(|g| *g >= from).collect();
        let more = ids.len() > limit;
        if more {
            ids.select_nth_unstable(limit);
            ids.truncate(limit);
        }
        ids.sort_unstable();
        let groups = ids
            .into_iter()
            .filter_map(|g| self.replica(g))
            .map(|r| GroupReport {
                status: r.status(),
                quiesced: r.is_quiesced(),
                membership: r.membership().clone(),
                followers: r.followers(),
            })
            .collect();
        NodeReport {
            node: self.id,
            status: self.status(),
            peers: self
                .peers
                .ids()
                .map(|node| PeerStatus {
                    node,
                    live: self.peers.live(node).unwrap_or(false),
                })
                .collect(),
            groups,
            more,
        }
    }
}
