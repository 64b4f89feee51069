//! Typed errors, one enum per kind of operation.

use crate::ids::{GroupId, NodeId};
use crate::membership::MembershipError;

/// Why a proposal did not end with the state machine's result.
///
/// Every variant but [`ProposeError::Indeterminate`] is a definite "not applied": the command
/// never entered the log and never will. `Indeterminate` means the entry may or may not
/// commit; a client that must know reads back through the state machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// This replica is not the leader and did not forward: forwarding is off, or the replica
    /// it forwarded to no longer led and refused (with forwarding on, retry at the hint).
    #[error("not the leader; try {leader_hint:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader_hint: Option<NodeId>,
    },
    /// No leader is known right now (an election is in progress).
    #[error("the group has no leader right now")]
    NoLeader,
    /// This node hosts no such group.
    #[error("group {0} not found on this node")]
    GroupNotFound(GroupId),
    /// The proposal exceeds `Config::max_proposal_bytes`.
    #[error("proposal too large: the limit is {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// A named limit is reached; retry later.
    #[error("busy: limit {limit} reached")]
    Busy {
        /// The name of the `Config` field whose limit was reached.
        limit: &'static str,
    },
    /// The node is stopped (after `shutdown` or a fatal storage error) and accepts nothing.
    #[error("the node is stopped")]
    Stopped,
    /// The entry may or may not commit.
    #[error("outcome unknown: {0}")]
    Indeterminate(Indeterminate),
    /// The leader is handing leadership to another replica
    /// ([`MultiRaft::transfer_leader`](crate::MultiRaft::transfer_leader)) and takes no
    /// proposal until the transfer ends (at most an election timeout): retry, at the new
    /// leader if it moved.
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
}

/// Why a read did not return the state machine's answer. A read changes nothing, so its
/// failure is always definite: retry it, here or where the hint points.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// This replica is not the leader and the policy does not read on followers.
    #[error("not the leader; try {leader_hint:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader_hint: Option<NodeId>,
    },
    /// No leader is known right now (an election is in progress).
    #[error("the group has no leader right now")]
    NoLeader,
    /// The leader lost its leadership before confirming the read.
    #[error("leadership changed before the read was confirmed")]
    LeadershipChanged,
    /// This node hosts no such group.
    #[error("group {0} not found on this node")]
    GroupNotFound(GroupId),
    /// `Config::proposal_timeout_ticks` passed before the read point was confirmed and
    /// applied (the leader is unreachable, or this replica is far behind).
    #[error("timed out")]
    Timeout,
    /// A named limit is reached; retry later.
    #[error("busy: limit {limit} reached")]
    Busy {
        /// The name of the `Config` field whose limit was reached.
        limit: &'static str,
    },
    /// The node is stopped, or stopped before the read completed.
    #[error("the node is stopped")]
    Stopped,
}

/// Why a leadership transfer did not end with the target leading.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// This replica is not the leader: only the leader hands leadership over.
    #[error("not the leader; try {leader_hint:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader_hint: Option<NodeId>,
    },
    /// The target is not a voter of the group.
    #[error("{0} is not a voter of the group")]
    NotAVoter(NodeId),
    /// Another transfer of this group is in progress, or may have ended with its end not
    /// yet reported (until the node's next ready).
    #[error("a transfer of this group is already in progress")]
    InProgress,
    /// No other voter of the group that may take over (not one a membership change under
    /// way removes) is on a live node: [`Node::drain`] has nobody to hand the group to.
    ///
    /// [`Node::drain`]: crate::Node::drain
    #[error("no other voter of the group that may take over is on a live node")]
    NoLiveVoter,
    /// The target was not caught up and elected within an election timeout; the old leader
    /// kept leading. A campaign the target already started may still win: watch
    /// `LeaderChanged` events to see where leadership is.
    #[error("the transfer timed out; the leader kept its leadership")]
    Timeout,
    /// Another replica than the target took leadership.
    #[error("leadership moved to {leader:?}, not to the target")]
    LeadershipChanged {
        /// The leader now known, if any.
        leader: Option<NodeId>,
    },
    /// This node hosts no such group.
    #[error("group {0} not found on this node")]
    GroupNotFound(GroupId),
    /// The node is stopped, or stopped before the transfer ended.
    #[error("the node is stopped")]
    Stopped,
}

/// Why a membership change did not end with the group in the requested membership.
///
/// Every variant but [`MembershipChangeError::Indeterminate`] and
/// [`MembershipChangeError::CatchUpTimeout`] is a definite "nothing changed".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipChangeError {
    /// This replica is not the leader: only the leader changes the membership.
    #[error("not the leader; try {leader_hint:?}")]
    NotLeader {
        /// The leader this replica knows of.
        leader_hint: Option<NodeId>,
    },
    /// Another change of this group is in progress (one at a time per group): a change
    /// this or an earlier leader started is not yet committed, or the group is in a joint
    /// configuration it has not yet left, or the last change may have ended with its end
    /// not yet reported (until the node's next ready). Retry once it ends.
    #[error("another membership change of this group is in progress")]
    ChangeInProgress,
    /// The change does not fit the current membership (the reason says why); nothing was
    /// appended.
    #[error("invalid membership change: {0}")]
    Invalid(&'static str),
    /// A leadership transfer is in progress; retry at the new leader.
    #[error("a leadership transfer is in progress")]
    TransferInProgress,
    /// The replica to promote made no progress towards the leader's log for
    /// `Config::proposal_timeout_ticks` ticks, or fell no closer to its end over that many
    /// (slower than the writes). It was added as a learner (that part of the change is
    /// committed; while it is not, the change ends `Indeterminate` instead) and stays one;
    /// retry the promotion once it is caught up, or remove it.
    #[error("{node} did not catch up; it stays a learner")]
    CatchUpTimeout {
        /// The replica that did not catch up.
        node: NodeId,
    },
    /// This node hosts no such group.
    #[error("group {0} not found on this node")]
    GroupNotFound(GroupId),
    /// The node is stopped and did not take the change: nothing changed. (A change it took
    /// before it stopped ends [`MembershipChangeError::Indeterminate`].)
    #[error("the node is stopped")]
    Stopped,
    /// The change may or may not complete: leadership changed, or the node stopped, with
    /// part of it appended. A joint configuration is always left by whichever replica
    /// leads; read the outcome from `MembershipChanged` events or the group's status.
    #[error("outcome unknown: {0}")]
    Indeterminate(Indeterminate),
}

/// Why a proposal's outcome is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Indeterminate {
    /// Leadership changed after the entry was appended or forwarded.
    #[error("leadership changed after the entry was appended")]
    LeadershipChanged,
    /// `Config::proposal_timeout_ticks` passed without an outcome.
    #[error("timed out")]
    Timeout,
    /// The node stopped (shutdown or storage failure) before the entry was applied.
    #[error("the node stopped before the entry was applied")]
    NodeStopped,
    /// The group was removed from this node before the entry was applied.
    #[error("the group was removed")]
    GroupRemoved,
}

/// The node hosts no such group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("group {0} not found on this node")]
pub struct GroupNotFound(pub GroupId);

/// The node is stopped (after `shutdown` or a fatal storage error) and answers nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the node is stopped")]
pub struct Stopped;

/// Why [`MultiRaft::campaign`](crate::MultiRaft::campaign) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CampaignError {
    /// This node hosts no such group.
    #[error("group {0} not found on this node")]
    GroupNotFound(GroupId),
    /// The node is stopped.
    #[error("the node is stopped")]
    Stopped,
}

impl From<GroupNotFound> for CampaignError {
    fn from(e: GroupNotFound) -> Self {
        CampaignError::GroupNotFound(e.0)
    }
}

/// Why creating or removing a group failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// `create_group` of a group this node already hosts.
    #[error("group {0} already exists on this node")]
    GroupExists(GroupId),
    /// This node hosts no such group.
    #[error("group {0} not found on this node")]
    GroupNotFound(GroupId),
    /// `GroupId(0)` is reserved for node-level messages ([`GroupId::NODE`]).
    #[error("GroupId(0) is reserved")]
    ReservedGroupId,
    /// The membership is not usable.
    #[error("invalid membership: {0}")]
    InvalidMembership(#[from] MembershipError),
    /// `create_group` with a membership that does not have this node (to join a running
    /// group, `join_group`).
    #[error("node {0} is not a member of the group")]
    NotAMember(NodeId),
    /// The group was removed in this cycle and the removal is not yet durable; retry once
    /// `remove_group` has returned.
    #[error("group {0} is being removed; retry when the removal is durable")]
    RemovalPending(GroupId),
    /// The node is stopped, or stopped before the creation or removal was durable: one it
    /// took before a storage failure may or may not be durable (the group's state after a
    /// restart says).
    #[error("the node is stopped")]
    Stopped,
}

/// A storage failure. Fatal for the node: it stops and acknowledges nothing further.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The operating system reported an I/O error.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data failed a consistency check.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
    /// The backend failed for another reason; the source says why.
    #[error("storage backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An earlier write failed; the storage refuses further writes until reopened.
    #[error("storage stopped after an earlier failure")]
    Poisoned,
    /// Entries were asked for that log compaction discarded.
    #[error("{group}: entries up to {index} are compacted")]
    Compacted {
        /// The group.
        group: crate::ids::GroupId,
        /// The last compacted index: entries from `index + 1` on are still stored.
        index: u64,
    },
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A required part was not given to the builder.
    #[error("missing {0}: call the builder's `{0}` method")]
    Missing(&'static str),
    /// Loading persisted state failed.
    #[error("loading persisted state failed: {0}")]
    Storage(#[from] StorageError),
    /// The transport refused to attach.
    #[error("the transport refused to attach")]
    Transport(#[source] crate::transport::AttachError),
    /// Storage holds a group whose log was compacted past its stored snapshot (or that has
    /// no snapshot at all): entries between the snapshot and the log's first are gone, so
    /// its state machine cannot be rebuilt, and the node refuses to start rather than apply
    /// a partial log. The storage lost or corrupted something: restore it, or remove the
    /// replica and let the group send it a snapshot.
    #[error("{0}: its log is compacted past its stored snapshot; its state cannot be rebuilt")]
    CompactedLog(crate::ids::GroupId),
}

/// Why the node stopped, reported by [`MultiRaft::shutdown`](crate::MultiRaft::shutdown).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// A storage write failed; nothing after it was acknowledged.
    #[error("stopped after a storage failure: {0}")]
    Storage(#[from] StorageError),
    /// A state machine could not be restored from a stored snapshot: its state is unknown,
    /// so the node applies nothing more.
    #[error("stopped: restoring a state machine from its snapshot failed: {0}")]
    Restore(crate::snapshot::SnapshotError),
    /// A state machine's [`apply_batch`](crate::StateMachine::apply_batch) gave another
    /// number of results than it was given commands: its state is unknown, so the node
    /// applies nothing more.
    #[error("stopped: the state machine of {group} answered {results} of {commands} commands")]
    StateMachine {
        /// The group.
        group: crate::ids::GroupId,
        /// Commands handed over.
        commands: usize,
        /// Results given back.
        results: usize,
    },
    /// The event loop panicked.
    #[error("the event loop panicked")]
    Panicked,
}
