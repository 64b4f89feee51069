//! Messages between replicas of a group, and the per-node batches that carry them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::ids::{GroupId, NodeId, ProposalId};

mod validate;

pub use validate::{InvalidMessage, MAX_ITEMS_PER_MESSAGE, MessageLimits};

/// Heartbeats (or acknowledgements) coalesced into one message. One message per peer per
/// tick carries up to this many active groups; beyond it the beats are split, so that one
/// message stays well inside a transport's frame limit (a beat encodes in about 10 bytes:
/// 64 Ki beats are under 1 MiB).
pub const MAX_BEATS_PER_MESSAGE: usize = 65_536;

/// One message from one replica of a group to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The group both replicas belong to.
    pub group: GroupId,
    /// The sending node.
    pub from: NodeId,
    /// The receiving node.
    pub to: NodeId,
    /// The sender's term (for pre-vote requests: the term it would campaign in). Zero for
    /// messages that do not take part in the term rules (proposal forwarding).
    pub term: u64,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of [`Message`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MessageBody {
    /// RequestVote (Raft §5.2), or PreVote when `pre_vote` (dissertation §9.6).
    Vote {
        /// A pre-vote asks "would you vote for me?" without anyone changing term.
        pre_vote: bool,
        /// Index of the candidate's last entry (§5.4.1 up-to-date check).
        last_index: u64,
        /// Term of the candidate's last entry.
        last_term: u64,
    },
    /// The answer to [`MessageBody::Vote`].
    VoteResponse {
        /// Answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote is granted.
        granted: bool,
    },
    /// AppendEntries (Raft §5.3). Empty `entries` is a probe or commit update.
    Append {
        /// Index of the entry just before `entries`.
        prev_index: u64,
        /// Term of that entry.
        prev_term: u64,
        /// Entries to append, consecutive from `prev_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: u64,
    },
    /// The answer to [`MessageBody::Append`].
    AppendResponse {
        /// Whether the consistency check passed.
        success: bool,
        /// On success, the highest index now known to match the leader's log (and durable
        /// on the sender). On rejection, the `prev_index` that was rejected.
        index: u64,
        /// On rejection, a hint for fast backtracking (dissertation §5.3 / etcd's
        /// `findConflictByTerm`): the largest index at or below `index` whose term is at
        /// most the leader's `prev_term`, and that term.
        hint_index: u64,
        /// The term of the follower's entry at `hint_index`.
        hint_term: u64,
    },
    /// Keeps followers from campaigning and carries the commit index.
    Heartbeat {
        /// The leader's commit index, capped at what the follower is known to hold.
        commit: u64,
    },
    /// The answer to [`MessageBody::Heartbeat`] and [`MessageBody::Quiesce`]; feeds the
    /// leader's CheckQuorum.
    HeartbeatResponse,
    /// A heartbeat that also tells the follower the group is going quiet: everything is
    /// replicated and committed, so it may stop its election timer until the group wakes.
    Quiesce {
        /// The leader's commit index, which is also its last index.
        commit: u64,
    },
    /// Node level (`group` is [`GroupId::NODE`]): every heartbeat one node sends another in
    /// one ready, coalesced into one message. Sent at least once per tick to every peer node,
    /// even empty, as the node liveness beat.
    Heartbeats {
        /// One per group that heartbeats.
        beats: Vec<Beat>,
    },
    /// Node level (`group` is [`GroupId::NODE`]): every heartbeat acknowledgement one node
    /// sends another in one ready, coalesced into one message.
    HeartbeatAcks {
        /// One per group that acknowledges, with the group's term.
        acks: Vec<(GroupId, u64)>,
    },
    /// A follower forwarding client proposals to the leader it knows of.
    Propose {
        /// The proposals, in order.
        proposals: Vec<(ProposalId, Bytes)>,
    },
    /// The receiver of a forwarded [`MessageBody::Propose`] was not the leader: none of
    /// these proposals were appended.
    ProposeRejected {
        /// The proposals that were not appended.
        ids: Vec<ProposalId>,
        /// Who the receiver believes leads, if anyone.
        leader_hint: Option<NodeId>,
    },
}

impl MessageBody {
    /// Approximate size in bytes, for batch byte limits.
    pub fn size_bytes(&self) -> usize {
        32 + match self {
            MessageBody::Append { entries, .. } => entries.iter().map(Entry::size_bytes).sum(),
            MessageBody::Propose { proposals } => proposals.iter().map(|(_, d)| 16 + d.len()).sum(),
            MessageBody::ProposeRejected { ids, .. } => 16 * ids.len(),
            MessageBody::Heartbeats { beats } => 32 * beats.len(),
            MessageBody::HeartbeatAcks { acks } => 16 * acks.len(),
            _ => 0,
        }
    }
}

/// One group's heartbeat inside a coalesced [`MessageBody::Heartbeats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    /// The group.
    pub group: GroupId,
    /// The leader's term in that group.
    pub term: u64,
    /// The leader's commit index, capped at what the receiver is known to hold.
    pub commit: u64,
    /// The group is going quiet (see [`MessageBody::Quiesce`]).
    pub quiesce: bool,
}

/// Everything one node sends another in one ready: the unit a [`Transport`](crate::Transport)
/// moves. Batching per destination node is what lets thousands of groups share one
/// connection and one system call. [`MessageBatch::validate`] checks what every honest
/// batch obeys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBatch {
    /// The sending node. A receiver drops messages whose own `from` differs.
    pub from: NodeId,
    /// The destination node.
    pub to: NodeId,
    /// The messages, in the order they were produced.
    pub messages: Vec<Message>,
}
