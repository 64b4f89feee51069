//! Inbound checks: [`MessageBatch::validate`], [`MessageLimits`] and [`InvalidMessage`].
//! The rules and their reasons are on the public items, which is where users read them.

use crate::ids::{GroupId, NodeId};
use crate::message::{MAX_BEATS_PER_MESSAGE, Message, MessageBatch, MessageBody};

/// Default [`MessageLimits::max_items_per_message`]: 65,536 entries in one append, proposals
/// in one forwarded `Propose`, or proposal ids in one `ProposeRejected`.
///
/// An honest node never sends more: [`Config::validate`](crate::Config::validate) refuses a
/// `max_append_entries` above it, a follower splits the proposals it forwards into messages
/// of at most this many, and a `ProposeRejected` names at most this many (one answering a
/// `Propose` names no more than it held; others are cut).
pub const MAX_ITEMS_PER_MESSAGE: usize = 65_536;

/// The largest term, and the largest log index, a message may name (half of `u64`'s
/// range). No election count or log length comes near it, and the room above it keeps a
/// receiver's term and index arithmetic from overflowing: a campaign's next term, the
/// index after a log's last, a forged value adopted and counted on from. Refusing only
/// `u64::MAX` left `u64::MAX - 1`, which a replica adopted and then campaigned or
/// appended past (review).
pub const MAX_TERM_OR_INDEX: u64 = u64::MAX / 2;

/// Bounds on the counts inside one message, enforced by [`MessageBatch::validate`].
///
/// The defaults are what an honest node of this version never exceeds, independent of its
/// [`Config`](crate::Config): [`MAX_ITEMS_PER_MESSAGE`] and
/// [`MAX_BEATS_PER_MESSAGE`](crate::message::MAX_BEATS_PER_MESSAGE). They are not taken from
/// the receiver's `Config` on purpose: a per-node setting such as `max_append_entries`
/// bounds what a node *sends*, and a receiver enforcing its own value would refuse, forever,
/// the appends of a leader configured with a larger one. A transport may enforce tighter
/// limits for itself; [`Node::step`](crate::Node::step) enforces the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageLimits {
    /// Most entries in an `Append`, proposals in a `Propose`, or ids in a
    /// `ProposeRejected`. Bounds the work and memory one message costs the receiver.
    pub max_items_per_message: usize,
    /// Most beats in a coalesced `Heartbeats`, or acks in a `HeartbeatAcks`, message.
    pub max_beats_per_message: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            max_items_per_message: MAX_ITEMS_PER_MESSAGE,
            max_beats_per_message: MAX_BEATS_PER_MESSAGE,
        }
    }
}

/// Why [`MessageBatch::validate`] refused a batch: the first rule it found broken. `index`
/// is the position of the offending message in [`MessageBatch::messages`], and `position`
/// that of the offending entry in an append's `entries`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// The batch's `from` or `to` is `NodeId(0)`, which is reserved to mean "no node" and
    /// is never a node's id ([`Node::new`](crate::Node::new) refuses it). No honest node
    /// sends such a batch.
    #[error("batch from {from} to {to} names the reserved node id 0")]
    ReservedNodeInBatch {
        /// `MessageBatch::from`.
        from: NodeId,
        /// `MessageBatch::to`.
        to: NodeId,
    },
    /// A `Vote` whose candidate's last entry has a term above the vote's term. A candidate
    /// only holds entries from its own or earlier terms (Raft §5.4.1), so the claim is false,
    /// and granting a vote on it could elect a leader missing committed entries.
    #[error("message {index}: vote with last_term {last_term} above its term {term}")]
    VoteLastTermAboveTerm {
        /// Position of the message in the batch.
        index: usize,
        /// The vote's `last_term`.
        last_term: u64,
        /// The message's term.
        term: u64,
    },
    /// An `Append` whose `prev_term` is above the message's term. A leader's log only
    /// holds entries of its term or earlier (Raft §5.3, log matching), so the append cannot
    /// come from the leader it claims to be.
    #[error("message {index}: append with prev_term {prev_term} above its term {term}")]
    AppendPrevTermAboveTerm {
        /// Position of the message in the batch.
        index: usize,
        /// The append's `prev_term`.
        prev_term: u64,
        /// The message's term.
        term: u64,
    },
    /// An `Append` whose entries would run past [`MAX_TERM_OR_INDEX`]. No log reaches
    /// that index, and accepting it could overflow the receiver's index arithmetic.
    #[error("message {index}: entry {position} after prev_index {prev_index} overflows the index")]
    EntryIndexOverflow {
        /// Position of the message in the batch.
        index: usize,
        /// Position of the entry in `entries`.
        position: usize,
        /// The append's `prev_index`.
        prev_index: u64,
    },
    /// An `Append` whose entries are not consecutive from `prev_index + 1`. The receiver
    /// places entries by position after `prev_index` (Raft §5.3); a gap or a wrong index
    /// would put an entry at an index its leader did not give it.
    #[error("message {index}: entry {position} has index {found}, expected {expected}")]
    NonConsecutiveEntries {
        /// Position of the message in the batch.
        index: usize,
        /// Position of the entry in `entries`.
        position: usize,
        /// The index the entry must have.
        expected: u64,
        /// The index it has.
        found: u64,
    },
    /// An `Append` entry whose term is below `prev_term` or below the term of the entry
    /// before it. Terms in a Raft log never decrease (a leader appends in its own term, after
    /// the entries it holds), so no leader's log looks like this.
    #[error(
        "message {index}: entry {position} has term {term}, below the preceding term {preceding}"
    )]
    EntryTermDecreases {
        /// Position of the message in the batch.
        index: usize,
        /// Position of the entry in `entries`.
        position: usize,
        /// The entry's term.
        term: u64,
        /// `prev_term` or the previous entry's term.
        preceding: u64,
    },
    /// An `Append` entry whose term is above the message's term. A leader of term `t` only
    /// holds entries of terms up to `t`; such an entry would make the receiver's log claim a
    /// term no leader has written yet.
    #[error(
        "message {index}: entry {position} has term {entry_term}, above the message term {term}"
    )]
    EntryTermAboveTerm {
        /// Position of the message in the batch.
        index: usize,
        /// Position of the entry in `entries`.
        position: usize,
        /// The entry's term.
        entry_term: u64,
        /// The message's term.
        term: u64,
    },
    /// A message carries more entries, proposals, proposal ids, beats or acks than
    /// [`MessageLimits`] allows. An honest node never sends that many; refusing bounds the
    /// work and memory one message can cost the receiver.
    #[error("message {index}: {count} {what}, above the limit of {max}")]
    TooManyItems {
        /// Position of the message in the batch.
        index: usize,
        /// What was counted: `"entries"`, `"proposals"`, `"proposal ids"`, `"beats"`,
        /// `"acks"` or `"read ids"`.
        what: &'static str,
        /// How many there were.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A forwarded `Propose` holds a proposal id whose `node` is `NodeId(0)`. Proposal ids
    /// name the node whose client is waiting; the reserved id names none, so the leader
    /// would append an entry no replica can ever resolve.
    #[error("message {index}: proposal with the reserved node id 0")]
    ReservedProposer {
        /// Position of the message in the batch.
        index: usize,
    },
    /// A `ProposeRejected` whose `leader_hint` is `Some(NodeId(0))`. "No leader known" is
    /// `None`; the reserved id would send the proposer's clients to a node that cannot exist.
    #[error("message {index}: proposal rejection with the reserved leader hint 0")]
    ReservedLeaderHint {
        /// Position of the message in the batch.
        index: usize,
    },
    /// An `Unheard` naming the reserved node id 0 as the replica that heard no leader: a
    /// leader would track it as a replica to tell, and send it messages.
    #[error("message {index}: unheard replica with the reserved node id 0")]
    ReservedUnheardReplica {
        /// Position of the message in the batch.
        index: usize,
    },
    /// An `InstallSnapshot` whose snapshot cannot come from an honest leader: its last
    /// term is above the message's term (a leader of term `t` holds nothing later), or its
    /// membership is unusable ([`Membership::validate`](crate::Membership::validate)) or
    /// names more members than `max_items_per_message`. Installing it would give the
    /// receiver a log or a configuration no leader wrote.
    #[error("message {index}: snapshot {reason}")]
    InvalidSnapshot {
        /// Position of the message in the batch.
        index: usize,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An `Append` entry carrying a membership that is unusable
    /// ([`Membership::validate`](crate::Membership::validate)) or has more members than a
    /// message may carry items: no leader appends one, and a replica would take it as its
    /// membership on receipt.
    #[error("message {index}: entry {position} carries an invalid membership")]
    InvalidMembershipEntry {
        /// Position of the message in the batch.
        index: usize,
        /// Position of the entry in `entries`.
        position: usize,
    },
    /// An append (its `prev_index`), a snapshot (`InstallSnapshot`) or an append response
    /// (`AppendResponse`) naming an index past [`MAX_TERM_OR_INDEX`]. No log reaches it,
    /// and the receiver's index arithmetic could overflow: a follower installing a
    /// snapshot at `u64::MAX`, or a leader counting a response of it, panicked in a debug
    /// build and wrapped to index 0 in a release one (review).
    #[error("message {index}: {what} index past the largest a log reaches")]
    IndexOutOfRange {
        /// Position of the message in the batch.
        index: usize,
        /// `"append"`, `"snapshot"`, `"append response"`, `"removed"`, `"read index"`,
        /// `"log lost"` or `"vote"`.
        what: &'static str,
    },
    /// A term past [`MAX_TERM_OR_INDEX`]: a message's, or a beat's or an acknowledgement's
    /// in a coalesced heartbeat. No election reaches it, and a replica adopting one near
    /// `u64::MAX` overflowed its next term when it campaigned: a panic in a debug build,
    /// and in a release one a term that wrapped to 0 and a group that never elected again
    /// (review).
    #[error("message {index}: term past the largest an election reaches")]
    TermOutOfRange {
        /// Position of the message in the batch.
        index: usize,
    },
    /// A node-level body (`Heartbeats` or `HeartbeatAcks`) in a message whose `group` is
    /// not [`GroupId::NODE`]. Such bodies carry many groups' beats and belong to no group;
    /// honest nodes send them only at node level.
    #[error("message {index}: node-level message in group {group}")]
    NodeLevelOutsideNodeGroup {
        /// Position of the message in the batch.
        index: usize,
        /// The message's group.
        group: GroupId,
    },
}

impl MessageBatch {
    /// Checks the rules every batch an honest node of this version sends obeys, whoever
    /// receives it and whatever either side's [`Config`](crate::Config): the term and index
    /// relations Raft itself guarantees, no reserved id where a node must be named,
    /// node-level bodies only at node level, and counts within `limits`. Returns the first
    /// violation found; [`InvalidMessage`] documents each rule and why it holds.
    ///
    /// A batch that breaks one comes from a buggy or hostile peer, or was corrupted on the
    /// way, and nothing in it can be trusted. [`Node::step`](crate::Node::step) calls this
    /// with [`MessageLimits::default`] on every batch, whatever transport delivered it, and
    /// drops a failing batch whole, counting its messages in
    /// [`NodeStats::dropped_invalid`](crate::NodeStats::dropped_invalid). A transport may
    /// call it too, to refuse the batch earlier (say, and close the connection).
    ///
    /// Not checked here:
    ///
    /// - Addressing: whether the batch is for this node and from the peer the transport
    ///   authenticated, and whether each message's `from` and `to` agree with the batch's.
    ///   The receiver knows who it is and who sent the batch: [`Node::step`](crate::Node::step)
    ///   drops misaddressed batches and messages itself and counts them in
    ///   [`NodeStats::dropped_misaddressed`](crate::NodeStats::dropped_misaddressed), and an
    ///   authenticating transport checks the sender.
    /// - Anything that depends on the receiver's state (a stale term, an unknown group, a
    ///   sender that is not a member): that is ordinary traffic, which Raft handles.
    /// - Sizes in bytes. Proposals and entries are bounded by the *sender's*
    ///   `Config::max_proposal_bytes`; a receiver refusing them by its own, possibly smaller,
    ///   limit would stall replication for good. A leader refuses an oversized forwarded
    ///   proposal with a rejection, and a byte transport bounds its frames itself.
    ///
    /// The cost is one pass over the messages and an append's entries, allocating nothing.
    pub fn validate(&self, limits: &MessageLimits) -> Result<(), InvalidMessage> {
        if self.from == NodeId(0) || self.to == NodeId(0) {
            return Err(InvalidMessage::ReservedNodeInBatch {
                from: self.from,
                to: self.to,
            });
        }
        for (index, m) in self.messages.iter().enumerate() {
            validate_message(index, m, limits)?;
        }
        Ok(())
    }
}

fn validate_message(
    index: usize,
    m: &Message,
    limits: &MessageLimits,
) -> Result<(), InvalidMessage> {
    let count = |what, count, max| {
        if count > max {
            Err(InvalidMessage::TooManyItems {
                index,
                what,
                count,
                max,
            })
        } else {
            Ok(())
        }
    };
    let items = limits.max_items_per_message;
    let beats = limits.max_beats_per_message;
    let node_level = || {
        if m.group == GroupId::NODE {
            Ok(())
        } else {
            Err(InvalidMessage::NodeLevelOutsideNodeGroup {
                index,
                group: m.group,
            })
        }
    };
    let beyond = |value: u64| value > MAX_TERM_OR_INDEX;
    let named = match &m.body {
        MessageBody::Heartbeats { beats, .. } => beats.iter().any(|b| beyond(b.term)),
        MessageBody::HeartbeatAcks { acks } => acks.iter().any(|a| beyond(a.term)),
        MessageBody::Unheard { term, .. } => beyond(*term),
        _ => false,
    };
    if beyond(m.term) || named {
        return Err(InvalidMessage::TermOutOfRange { index });
    }
    match &m.body {
        MessageBody::Vote { last_term, .. } if *last_term > m.term => {
            Err(InvalidMessage::VoteLastTermAboveTerm {
                index,
                last_term: *last_term,
                term: m.term,
            })
        }
        MessageBody::Vote { last_index, .. } if beyond(*last_index) => {
            Err(InvalidMessage::IndexOutOfRange {
                index,
                what: "vote",
            })
        }
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } => {
            count("entries", entries.len(), items)?;
            if *prev_term > m.term {
                return Err(InvalidMessage::AppendPrevTermAboveTerm {
                    index,
                    prev_term: *prev_term,
                    term: m.term,
                });
            }
            let mut preceding = *prev_term;
            for (position, e) in entries.iter().enumerate() {
                let expected = prev_index
                    .checked_add(1 + position as u64)
                    .filter(|&i| i <= MAX_TERM_OR_INDEX)
                    .ok_or(InvalidMessage::EntryIndexOverflow {
                        index,
                        position,
                        prev_index: *prev_index,
                    })?;
                if e.index != expected {
                    return Err(InvalidMessage::NonConsecutiveEntries {
                        index,
                        position,
                        expected,
                        found: e.index,
                    });
                }
                if e.term < preceding {
                    return Err(InvalidMessage::EntryTermDecreases {
                        index,
                        position,
                        term: e.term,
                        preceding,
                    });
                }
                if e.term > m.term {
                    return Err(InvalidMessage::EntryTermAboveTerm {
                        index,
                        position,
                        entry_term: e.term,
                        term: m.term,
                    });
                }
                preceding = e.term;
                if let crate::entry::Payload::Membership(members) = &e.payload
                    && (members.places() > items || members.validate().is_err())
                {
                    return Err(InvalidMessage::InvalidMembershipEntry { index, position });
                }
            }
            if *prev_index > MAX_TERM_OR_INDEX {
                return Err(InvalidMessage::IndexOutOfRange {
                    index,
                    what: "append",
                });
            }
            Ok(())
        }
        MessageBody::InstallSnapshot { chunk } => {
            let invalid = |reason| Err(InvalidMessage::InvalidSnapshot { index, reason });
            let members = &chunk.meta.membership;
            if chunk.meta.term > m.term {
                return invalid("term above the message term");
            }
            if chunk.seq == crate::snapshot::MAX_SNAPSHOT_CHUNKS {
                return invalid("chunk numbered past the last a snapshot has");
            }
            if members.places() > items {
                return invalid("membership too large");
            }
            if members.validate().is_err() {
                return invalid("membership invalid");
            }
            if chunk.meta.index > MAX_TERM_OR_INDEX {
                return Err(InvalidMessage::IndexOutOfRange {
                    index,
                    what: "snapshot",
                });
            }
            Ok(())
        }
        MessageBody::AppendResponse { index: at, .. } if beyond(*at) => {
            Err(InvalidMessage::IndexOutOfRange {
                index,
                what: "append response",
            })
        }
        // A `Removed` past any log made every replica that does not hold it report itself
        // removed; a read index past any log kept its read confirmed for good (review).
        MessageBody::Removed { index: at, .. } if beyond(*at) => {
            Err(InvalidMessage::IndexOutOfRange {
                index,
                what: "removed",
            })
        }
        MessageBody::LogLost { last_index, .. } if beyond(*last_index) => {
            Err(InvalidMessage::IndexOutOfRange {
                index,
                what: "log lost",
            })
        }
        MessageBody::Unheard { replica, .. } if *replica == NodeId(0) => {
            Err(InvalidMessage::ReservedUnheardReplica { index })
        }
        MessageBody::Propose { proposals } => {
            count("proposals", proposals.len(), items)?;
            if proposals.iter().any(|(id, _)| id.node == NodeId(0)) {
                return Err(InvalidMessage::ReservedProposer { index });
            }
            Ok(())
        }
        MessageBody::ProposeRejected {
            ids, leader_hint, ..
        } => {
            count("proposal ids", ids.len(), items)?;
            if *leader_hint == Some(NodeId(0)) {
                return Err(InvalidMessage::ReservedLeaderHint { index });
            }
            Ok(())
        }
        MessageBody::Heartbeats { beats: b, .. } => {
            count("beats", b.len(), beats)?;
            node_level()
        }
        MessageBody::HeartbeatAcks { acks } => {
            count("acks", acks.len(), beats)?;
            node_level()
        }
        MessageBody::ReadIndexResponse {
            index: Some(at), ..
        } if beyond(*at) => Err(InvalidMessage::IndexOutOfRange {
            index,
            what: "read index",
        }),
        MessageBody::ReadIndex { ids } | MessageBody::ReadIndexResponse { ids, .. } => {
            count("read ids", ids.len(), items)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
