//! Who belongs to a group: voters, outgoing voters during joint consensus, and learners.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::NodeId;

/// The members of one group.
///
/// A value, not a process: the group layer consults it for every quorum decision, so a
/// runtime membership change (joint consensus, dissertation §4.3) only has to swap the
/// value. While `outgoing` is non-empty the group is in a joint configuration and every
/// decision needs a majority of `voters` *and* a majority of `outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// Voters of the (incoming) configuration.
    pub voters: BTreeSet<NodeId>,
    /// Voters of the outgoing configuration; empty unless a joint change is in progress.
    pub outgoing: BTreeSet<NodeId>,
    /// Replicas that receive the log but never vote and never count toward a quorum.
    pub learners: BTreeSet<NodeId>,
}

/// A change to a group's membership, made with
/// [`MultiRaft::change_membership`](crate::MultiRaft::change_membership).
///
/// Changes of voters go through a joint configuration (dissertation §4.3): the leader
/// appends one in which every decision needs a majority of the old voters and of the new,
/// and leaves it by itself once it is committed. A replica joining as a voter is first a
/// learner, and is promoted once it has caught up (`Config::learner_catchup_entries` for
/// `Config::learner_catchup_ticks`, holding at least the log's end as of the change's
/// start), so that the new configuration's quorum never waits on an empty log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MembershipChange {
    /// Adds a learner: it receives the log and never votes (a permanent learner).
    AddLearner(NodeId),
    /// Adds a voter: it joins as a learner and is promoted once caught up. Also promotes
    /// a replica that is already a learner.
    AddVoter(NodeId),
    /// Promotes a learner to voter once it is caught up.
    Promote(NodeId),
    /// Removes a voter or a learner. A leader that removes itself steps down once the
    /// change is committed.
    Remove(NodeId),
    /// Replaces voter `old` by `new`, in one joint configuration: `new` joins as a learner,
    /// and once it is caught up the voters swap.
    Replace {
        /// The voter to remove.
        old: NodeId,
        /// The replica to add as a voter in its place.
        new: NodeId,
    },
}

impl MembershipChange {
    /// The membership this change leads to from `current` (not joint), and the replicas it
    /// promotes (each must catch up first); or why it does not apply.
    pub(crate) fn target(
        &self,
        current: &Membership,
    ) -> Result<(Membership, BTreeSet<NodeId>), &'static str> {
        let mut target = current.clone();
        let mut promote = BTreeSet::new();
        let absent = |n: &NodeId| !current.contains(*n);
        match *self {
            MembershipChange::AddLearner(n) => {
                if !absent(&n) {
                    return Err("the replica is already a member");
                }
                target.learners.insert(n);
            }
            MembershipChange::AddVoter(n) | MembershipChange::Promote(n) => {
                if current.voters.contains(&n) {
                    return Err("the replica is already a voter");
                }
                if matches!(self, MembershipChange::Promote(_)) && !current.learners.contains(&n) {
                    return Err("only a learner can be promoted");
                }
                target.learners.remove(&n);
                target.voters.insert(n);
                promote.insert(n);
            }
            MembershipChange::Remove(n) => {
                if absent(&n) {
                    return Err("the replica is not a member");
                }
                target.voters.remove(&n);
                target.learners.remove(&n);
            }
            MembershipChange::Replace { old, new } => {
                if !current.voters.contains(&old) {
                    return Err("the replica to replace is not a voter");
                }
                if current.voters.contains(&new) || old == new {
                    return Err("the new replica is already a voter");
                }
                target.voters.remove(&old);
                target.learners.remove(&new);
                target.voters.insert(new);
                promote.insert(new);
            }
        }
        if target.voters.is_empty() {
            return Err("a group needs at least one voter");
        }
        if target.validate().is_err() {
            return Err("the resulting membership is invalid");
        }
        Ok((target, promote))
    }
}

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted.
    Won,
    /// A quorum can no longer be reached.
    Lost,
    /// Neither yet.
    Pending,
}

/// Why a [`Membership`] value is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// There must be at least one voter.
    #[error("a membership needs at least one voter")]
    NoVoters,
    /// `NodeId(0)` means "no node".
    #[error("NodeId(0) is reserved and cannot be a member")]
    ReservedNodeId,
    /// A node cannot be both a voter and a learner.
    #[error("{0} is both a voter and a learner")]
    VoterAndLearner(NodeId),
}

impl Membership {
    /// A plain (non-joint) configuration of the given voters and no learners.
    pub fn voters(ids: impl IntoIterator<Item = u64>) -> Self {
        Membership {
            voters: ids.into_iter().map(NodeId).collect(),
            ..Default::default()
        }
    }

    /// Adds learners to this configuration.
    pub fn with_learners(mut self, ids: impl IntoIterator<Item = u64>) -> Self {
        self.learners.extend(ids.into_iter().map(NodeId));
        self
    }

    /// Checks the value is usable for a group.
    pub fn validate(&self) -> Result<(), MembershipError> {
        if self.voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        let all = self
            .voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners);
        if all.clone().any(|n| n.0 == 0) {
            return Err(MembershipError::ReservedNodeId);
        }
        if let Some(n) = self
            .learners
            .iter()
            .find(|n| self.voters.contains(n) || self.outgoing.contains(n))
        {
            return Err(MembershipError::VoterAndLearner(*n));
        }
        Ok(())
    }

    /// Whether this is a joint configuration (a change of voters in progress).
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `node` may vote (it is a voter of either configuration).
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.voters.contains(&node) || self.outgoing.contains(&node)
    }

    /// Whether `node` is a member in any role.
    pub fn contains(&self, node: NodeId) -> bool {
        self.is_voter(node) || self.learners.contains(&node)
    }

    /// How many places the three sets hold (a voter of both configurations counts twice): a
    /// bound on the members, counted without allocating, for size limits and estimates.
    pub fn places(&self) -> usize {
        self.voters.len() + self.outgoing.len() + self.learners.len()
    }

    /// Every member, each once, in ascending order.
    pub fn replicas(&self) -> BTreeSet<NodeId> {
        self.voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .copied()
            .collect()
    }

    /// The highest index a quorum has reached, given each voter's match index.
    /// In a joint configuration the lower of the two majorities' results.
    pub fn committed_index(&self, matched: impl Fn(NodeId) -> u64) -> u64 {
        let incoming = majority_index(&self.voters, &matched);
        if self.outgoing.is_empty() {
            incoming
        } else {
            incoming.min(majority_index(&self.outgoing, &matched))
        }
    }

    /// Counts votes: `vote(n)` is `Some(granted)` for nodes that answered.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let incoming = majority_vote(&self.voters, &vote);
        if self.outgoing.is_empty() {
            return incoming;
        }
        match (incoming, majority_vote(&self.outgoing, &vote)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

/// Configurations of up to this many voters are counted on the stack. Every commit check of
/// every busy leader counts one, and a vector on the heap per count was about 8 % of the
/// node layer's instructions per replicated proposal (BENCHMARKS.md). Larger ones take the
/// heap: they are rare, and the stack array stays small.
const STACK_VOTERS: usize = 16;

fn majority_index(voters: &BTreeSet<NodeId>, matched: &impl Fn(NodeId) -> u64) -> u64 {
    let count = voters.len();
    if count == 0 {
        // An empty configuration does not constrain the joint result.
        return u64::MAX;
    }
    let mut stack = [0u64; STACK_VOTERS];
    let mut heap = Vec::new();
    let indexes: &mut [u64] = if count <= STACK_VOTERS {
        &mut stack[..count]
    } else {
        heap.resize(count, 0);
        &mut heap
    };
    for (slot, n) in indexes.iter_mut().zip(voters) {
        *slot = matched(*n);
    }
    // The highest index a majority has reached: the middle one, counted from the top. (A
    // sort of so few is an insertion sort, cheaper here than a selection.)
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    indexes[count / 2]
}

fn majority_vote(voters: &BTreeSet<NodeId>, vote: &impl Fn(NodeId) -> Option<bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let quorum = voters.len() / 2 + 1;
    let (mut yes, mut no) = (0, 0);
    for n in voters {
        match vote(*n) {
            Some(true) => yes += 1,
            Some(false) => no += 1,
            None => {}
        }
    }
    if yes >= quorum {
        VoteResult::Won
    } else if voters.len() - no < quorum {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The highest index reached by more than half of `matched`, counted the plain way.
    fn reached_by_majority(matched: &[u64]) -> u64 {
        let mut sorted = matched.to_vec();
        sorted.sort_unstable();
        // The index that at least `len / 2 + 1` voters have reached.
        sorted[(sorted.len() - 1) / 2]
    }

    #[test]
    fn committed_index_is_what_a_majority_reached_on_the_stack_and_on_the_heap() {
        // Sizes on both sides of the stack array's, with repeated and scattered indexes.
        for count in 1..=2 * STACK_VOTERS as u64 + 1 {
            let members = Membership::voters(1..=count);
            let matched = |n: NodeId| (n.0 * 7919) % 13;
            let all: Vec<u64> = (1..=count).map(|n| matched(NodeId(n))).collect();
            assert_eq!(
                members.committed_index(matched),
                reached_by_majority(&all),
                "{count} voters, matched {all:?}"
            );
        }
    }

    #[test]
    fn a_joint_configuration_commits_what_both_majorities_reached() {
        let mut joint = Membership::voters([1, 2, 3]);
        joint.outgoing = [4, 5, 6].into_iter().map(NodeId).collect();
        // The incoming majority reached 9, the outgoing one only 5.
        let matched = |n: NodeId| [0, 9, 9, 1, 5, 5, 2][n.0 as usize];
        assert_eq!(joint.committed_index(matched), 5);
        joint.outgoing.clear();
        assert_eq!(joint.committed_index(matched), 9);
    }
}
