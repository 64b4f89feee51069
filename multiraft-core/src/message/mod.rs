//! Messages between replicas of a group, and the per-node batches that carry them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::entries::Entries;
use crate::entry::Entry;
use crate::ids::{GroupId, NodeId, ProposalId};
use crate::snapshot::SnapshotChunk;

mod validate;

pub use validate::{InvalidMessage, MAX_ITEMS_PER_MESSAGE, MAX_TERM_OR_INDEX, MessageLimits};

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
    /// The sender's term (for pre-vote requests: the term it would campaign in). Proposal
    /// forwarding takes no part in the term rules: a [`MessageBody::Propose`] carries the
    /// term its sender forwarded at, and a [`MessageBody::ProposeRejected`] the term of the
    /// `Propose` it answers (so that the forwarder knows which leadership it speaks of), of
    /// the refusal it passes on, or the sender's own when it gives up proposals it parked
    /// as a leader. A `NotLeader` refusal's term is one the sender does not lead, now or
    /// again (a `Busy` or `TransferInProgress` one comes from a leader, at any term).
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
        /// The candidate campaigns because the leader handed it leadership
        /// ([`MessageBody::TimeoutNow`], dissertation §3.10): voters answer even while they
        /// still hear from that leader. The leader gave up its lease when it sent the
        /// `TimeoutNow`, so this cannot break a lease read.
        transfer: bool,
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
        entries: Entries,
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
        /// On success: the sender is no joining replica, and its storage says so (created
        /// with the group, or joined and stored with the membership that has it,
        /// `Replica::save_joined`). A joining replica is promoted only once its answer
        /// says so (`Progress::knows_commit`): promoted before, a restart could make it a
        /// joining replica again, refusing the vote its new configuration needs.
        joined: bool,
    },
    /// Keeps followers from campaigning and carries the commit index.
    Heartbeat {
        /// The leader's commit index, capped at what the follower is known to hold.
        commit: u64,
        /// The leader node's round this heartbeat travelled in (see [`Liveness::round`]),
        /// echoed in the answer: what confirms reads and leases. Zero outside a round.
        round: u64,
    },
    /// The answer to [`MessageBody::Heartbeat`] and [`MessageBody::Quiesce`]; feeds the
    /// leader's CheckQuorum and confirms its reads and lease.
    HeartbeatResponse {
        /// The round of the heartbeat answered (zero: none).
        round: u64,
    },
    /// A heartbeat that also tells the follower the group is going quiet: everything is
    /// replicated and committed, so it may stop its election timer until the group wakes.
    /// A quiesced leader also sends it to confirm reads without waking its followers.
    Quiesce {
        /// The leader's commit index, which is also its last index.
        commit: u64,
        /// As in [`MessageBody::Heartbeat`].
        round: u64,
    },
    /// Node level (`group` is [`GroupId::NODE`]): every heartbeat one node sends another in
    /// one ready, coalesced into one message. Sent at least once per tick to every peer node,
    /// even empty, as the node liveness beat.
    Heartbeats {
        /// One per group that heartbeats.
        beats: Vec<Beat>,
        /// The sending node's liveness round. Boxed: every message is as large as the
        /// largest body, and most messages are appends.
        liveness: Box<Liveness>,
    },
    /// Node level (`group` is [`GroupId::NODE`]): every heartbeat acknowledgement one node
    /// sends another in one ready, coalesced into one message.
    HeartbeatAcks {
        /// One per group that acknowledges.
        acks: Vec<Ack>,
    },
    /// The leader hands leadership to the receiver (dissertation §3.10): campaign now,
    /// without PreVote. Sent once the receiver's log matches the leader's.
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its local reads (follower
    /// reads, dissertation §6.4). The leader confirms them in its next coalesced round.
    ReadIndex {
        /// The follower's read ids, answered together.
        ids: Vec<u64>,
    },
    /// The answer to [`MessageBody::ReadIndex`].
    ReadIndexResponse {
        /// The ids answered.
        ids: Vec<u64>,
        /// The confirmed read index; `None` when the receiver of the request was not (or no
        /// longer) the leader, or had too many reads pending.
        index: Option<u64>,
    },
    /// A follower forwarding client proposals to the leader it knows of.
    Propose {
        /// The proposals, in order.
        proposals: Vec<(ProposalId, Bytes)>,
    },
    /// These proposals were not appended, and never will be: the sender refused them when
    /// they were forwarded to it, or gave up those it had parked when it lost its
    /// leadership, or passes on a refusal sent to it of proposals it had forwarded on
    /// (docs/design.md, "Why a remote refusal is definite"). They are the receiver's
    /// node's own, except from a node that does not host the group, which refuses every
    /// id of a forward to its forwarder. With no ids, the sender says it does not lead (to
    /// a forward of other nodes' proposals, a replica that asked it, one that took it for
    /// leader).
    ProposeRejected {
        /// The proposals that were not appended.
        ids: Vec<ProposalId>,
        /// Who the receiver believes leads, if anyone.
        leader_hint: Option<NodeId>,
        /// Why.
        reason: Refusal,
    },
    // New kinds go last: a message's kind is its position on the wire.
    /// One chunk of the leader's snapshot, for a follower that needs entries the leader's
    /// log no longer holds (Raft §7; chunked and flow-controlled, docs/design.md §4.6).
    InstallSnapshot {
        /// The chunk, with the snapshot it belongs to.
        chunk: Box<SnapshotChunk>,
    },
    /// The answer to [`MessageBody::InstallSnapshot`], sent once the chunk is durable.
    SnapshotAck(SnapshotAck),
    /// The leader to a replica its membership left out, once the membership entry that
    /// removed it committed: the replica may report itself removed. Only the leader knows
    /// that no later entry adds the replica back: a replica catching up from an old log
    /// sees old removals committed too. Sent once the replica holds the entry at `index`
    /// and knows it committed (`matched`), or without catching it up when only a snapshot
    /// could: then the replica judges by what it holds, as one told by a leader of an
    /// earlier term does (removed if it does not hold `index`, or if its log names it in no
    /// membership past `index`). Sent at the leader's term to a replica of a later term too,
    /// which it cannot catch up: `index` is then the leader's commit index, whose
    /// membership leaves the replica out (docs/design.md §4.7).
    Removed {
        /// The membership entry that removed the receiver, or a commit index past it.
        index: u64,
        /// The leader knows the receiver's log to match its own through `index`: the
        /// receiver commits through `index`. Otherwise its entry there may be another
        /// leader's, and it commits nothing.
        matched: bool,
    },
    /// A follower to its leader, whose heartbeat's commit index lies beyond the follower's
    /// log: the leader caps that index at what it knows the follower to hold, so the
    /// follower lacks entries acknowledged in this term: its node lost its data (a wiped
    /// restart) and a late answer of its last life told the leader otherwise, or the
    /// replica was deleted and joined again while the leader still counted what the
    /// deleted one had acknowledged. The leader forgets what it knew the follower to hold
    /// and probes it from `last_index`.
    LogLost {
        /// The follower's last index.
        last_index: u64,
        /// The term of its entry at `last_index`.
        last_term: u64,
    },
    /// A replica asks to be tracked: it heard no leader for an election timeout, does not
    /// campaign, is not joining, and was not told it is removed. A learner (one its own
    /// membership makes no voter) sends it to the voters of its membership and the leader
    /// it knew; a follower holding back its campaign for its leader's live node, or whose
    /// timer stands still for a quiet leader, to that leader. A follower that drops a
    /// non-member's vote request while it hears its leader sends it for that replica.
    ///
    /// A leader that does not track the replica takes it for one it removed and forgot
    /// untold, and tracks it again until it can tell it ([`MessageBody::Removed`]); one
    /// that tracks it wakes if quiet. Any other replica that knows a leader relays the
    /// asker's own question there. A replica of a later term than the asker's tells it its
    /// term (its leader of an earlier term leads no more), and one of the same term that
    /// does not lead refuses as it refuses a forward (`ProposeRejected`). Without it, a
    /// removed replica whose `Removed` was lost, or that fell silent before it was told,
    /// stayed on its node for good.
    Unheard {
        /// The replica that heard no leader: the sender, or a removed replica whose vote
        /// request a follower dropped while it heard its leader, and relays.
        replica: NodeId,
        /// That replica's term (a pre-vote's is the one before the term it asks for).
        term: u64,
    },
}

/// What a follower says about a snapshot transfer ([`MessageBody::SnapshotAck`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotAck {
    /// The snapshot's index.
    pub index: u64,
    /// Chunks of it durably received: the next chunk wanted. Lower than what the leader
    /// sent when the follower started over (then the leader resends from there).
    pub next: u32,
    /// The last chunk is durable and the log follows the snapshot: the follower matches the
    /// leader up to `index`.
    pub done: bool,
    /// The follower's node has no room for another incoming snapshot now
    /// (`Config::max_snapshot_receives`): the leader tries again later.
    pub refused: bool,
    /// A chunk past `next` came first and was dropped (a follower takes chunks in order):
    /// the chunks sent from `next` on are lost to it, so the leader sends them again at
    /// once instead of after its resend wait (a reordered or lost chunk otherwise stalled a
    /// transfer for two heartbeat intervals or more).
    pub gap: bool,
}

/// Why the receiver of forwarded proposals refused them ([`MessageBody::ProposeRejected`]),
/// so that the proposer reports the same typed error the leader would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Refusal {
    /// The receiver does not lead the group.
    NotLeader,
    /// The leader's `max_uncommitted_bytes` is reached.
    Busy,
    /// The leader is handing leadership over.
    TransferInProgress,
    /// The leader waits for a snapshot (`snapshot_entries`). Sent by no current leader:
    /// they park such proposals until the snapshot is stored (docs/design.md §4.6); kept
    /// so that the wire format, and what a follower reports on receiving it, stay as they
    /// were.
    SnapshotBehind,
}

impl MessageBody {
    /// A refusal of no proposals, as not the leader: the receiver, which took the sender
    /// for its leader, stops holding back its campaign for it (`Replica::leader_disowned`).
    /// `leader_hint` names the leader the sender knows, if any.
    pub(crate) fn not_leader(leader_hint: Option<NodeId>) -> MessageBody {
        MessageBody::ProposeRejected {
            ids: Vec::new(),
            leader_hint,
            reason: Refusal::NotLeader,
        }
    }

    /// Approximate size in bytes, for batch byte limits.
    pub fn size_bytes(&self) -> usize {
        32 + match self {
            MessageBody::Append { entries, .. } => entries.iter().map(Entry::size_bytes).sum(),
            MessageBody::Propose { proposals } => proposals.iter().map(|(_, d)| 16 + d.len()).sum(),
            MessageBody::ProposeRejected { ids, .. } => 16 * ids.len(),
            MessageBody::Heartbeats { beats, .. } => 32 * beats.len(),
            MessageBody::HeartbeatAcks { acks } => 24 * acks.len(),
            MessageBody::ReadIndex { ids } | MessageBody::ReadIndexResponse { ids, .. } => {
                8 * ids.len()
            }
            MessageBody::InstallSnapshot { chunk } => chunk.size_bytes(),
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

/// The node-level part of a coalesced heartbeat message: liveness, and the round that
/// confirms reads and leases of every group at once (docs/design.md §4.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    /// Which life of the sending node this is: it changes when the node restarts, so a
    /// peer knows that what the node's groups promised before (to follow a leader) is gone.
    /// A beat of the life before the one last heard is a delayed message, and its
    /// liveness is ignored.
    pub incarnation: u64,
    /// The sender's round: strictly increasing within one life, and the tick it was sent
    /// in is `round >> ROUND_SEQ_BITS`. Every beat of the message carries it. Zero: none.
    pub round: u64,
    /// The highest round of the receiver's that the sender has received (zero: none).
    /// Confirms the sender's node heard the receiver at or after that round's tick: what a
    /// lease on quiesced groups rests on.
    pub echo: u64,
    /// The receiver's incarnation that `echo` belongs to: an echo of an earlier life's
    /// round says nothing about this one.
    pub echo_incarnation: u64,
}

/// Bits of a round that count rounds within one tick; the rest is the tick.
pub const ROUND_SEQ_BITS: u32 = 20;

/// One group's acknowledgement inside a coalesced [`MessageBody::HeartbeatAcks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The group.
    pub group: GroupId,
    /// The acknowledging replica's term.
    pub term: u64,
    /// The round of the heartbeat acknowledged (zero: none).
    pub round: u64,
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

impl MessageBatch {
    /// Approximate size in bytes: its messages' [`MessageBody::size_bytes`]. What an
    /// [`Inbox`](crate::Inbox) counts against `Config::max_inbox_bytes`.
    pub fn size_bytes(&self) -> usize {
        self.messages.iter().map(|m| m.body.size_bytes()).sum()
    }
}
