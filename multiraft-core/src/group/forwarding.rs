//! Proposals: `propose` appends a command on the leader or queues it on a follower;
//! `flush_forward` sends that queue to the leader (or settles it when the leader changed
//! meanwhile), and `step_proposals` handles forwarded proposals and their refusals
//! (dissertation §6.2, routing requests to the leader).
//!
//! Apart from replication because forwarding is a request path to the leader outside the
//! Raft protocol proper, with its own failure reporting (`ReplicaReady::rejected`).

use bytes::Bytes;

use crate::entry::{Entry, Payload};
use crate::error::ProposeError;
use crate::ids::{NodeId, ProposalId};
use crate::message::{MAX_ITEMS_PER_MESSAGE, Message, MessageBody, Refusal};

use super::{Replica, Role};

impl Replica {
    /// Proposes a command. On the leader it is appended, or parked while the group waits
    /// for a snapshot (docs/design.md §4.6); on a follower it is queued for
    /// forwarding to the leader (when `Config::forward_proposals`).
    pub fn propose(&mut self, id: ProposalId, data: Bytes) -> Result<(), ProposeError> {
        if data.len() > self.config.max_proposal_bytes {
            return Err(ProposeError::TooLarge {
                max: self.config.max_proposal_bytes,
            });
        }
        // Woken only to take it: a refused proposal leaves a quiet group quiet (the node
        // tracks a group it woke only on success; review).
        match self.role {
            Role::Leader if self.transfer.is_some() => Err(ProposeError::TransferInProgress),
            Role::Leader => {
                // Parked proposals count as uncommitted, so the parking lot has the same
                // bound as the log's uncommitted tail.
                let size = Entry::command_size_bytes(&data);
                if self.uncommitted_bytes + size > self.config.max_uncommitted_bytes {
                    return Err(ProposeError::Busy {
                        limit: "max_uncommitted_bytes",
                    });
                }
                self.wake();
                self.uncommitted_bytes += size;
                // Behind parked ones too (until the next ready appends them), so that the
                // leader appends in the order it took proposals.
                if self.snapshot_holds_back() || !self.forward.is_empty() {
                    // Waiting, not refused: a hot group's clients would otherwise spin on
                    // `Busy` for the few readies a snapshot takes to store.
                    self.forward.push((id, data));
                } else {
                    self.append_command(id, data);
                }
                Ok(())
            }
            _ => match self.leader {
                Some(leader) if self.config.forward_proposals && leader != self.node => {
                    self.wake();
                    self.forward.push((id, data));
                    Ok(())
                }
                Some(leader) => Err(ProposeError::NotLeader {
                    leader_hint: Some(leader),
                }),
                None => Err(ProposeError::NoLeader),
            },
        }
    }

    /// Appends a command whose bytes are already counted in `uncommitted_bytes`.
    fn append_command(&mut self, id: ProposalId, data: Bytes) {
        let entry = Entry {
            index: self.log.last_index() + 1,
            term: self.term,
            payload: Payload::Command { id, data },
        };
        self.append_own(entry);
    }

    /// Leader: whether `forward` holds proposals parked for a snapshot, which wait there
    /// (and give the group nothing to do) until one is stored.
    pub(super) fn keeps_proposals_parked(&self) -> bool {
        self.role == Role::Leader && self.snapshot_holds_back()
    }

    /// Leader: proposals parked for a snapshot, waiting to be appended.
    pub fn parked_proposals(&self) -> usize {
        if self.role == Role::Leader {
            self.forward.len()
        } else {
            0
        }
    }

    /// A new leader takes the proposals it queued as a follower as its own (counted and
    /// appended, or parked); they were never sent, or the old leader refused them.
    pub(super) fn adopt_forward(&mut self) {
        let mut refused = Vec::new();
        for (id, data) in std::mem::take(&mut self.forward) {
            if let Err(e) = self.propose(id, data) {
                refused.push((id, e));
            }
        }
        let term = self.term;
        self.refuse(refused, None, term);
    }

    /// Ends proposals this replica will not append. Its own are reported to its node
    /// (`ReplicaReady::rejected`); another node's — forwarded here while this replica led
    /// and parked, or named in a refusal of the ones it forwarded on — go to their
    /// proposer as a `ProposeRejected`, a definite "not appended" there too. Dropped, the
    /// proposer waited for a later term's apply or its timeout and ended them
    /// indeterminate (review).
    ///
    /// The refusals carry `term`, which the receiver reads as "at this term, the sender
    /// does not lead" when they say `NotLeader` (`step_proposals`): the term of the forward
    /// answered, or of the refusal passed on (its sender did not lead then), or this
    /// replica's own when it gives up proposals it no longer leads for. The `forwarder` of
    /// an answered `Propose` is told even if it is no member.
    fn refuse(
        &mut self,
        refused: Vec<(ProposalId, ProposeError)>,
        forwarder: Option<NodeId>,
        term: u64,
    ) {
        // (proposer, reason, leader hint, ids): few distinct keys, a refusal is rare.
        let mut to_others: Vec<(NodeId, Refusal, Option<NodeId>, Vec<ProposalId>)> = Vec::new();
        for (id, error) in refused {
            if id.node == self.node {
                self.out_rare().rejected.push((id, error));
                continue;
            }
            let asked = forwarder == Some(id.node);
            if !asked && !self.membership.contains(id.node) {
                // No replica there to tell (removed since, or a forged id): a send to a
                // node named by a message alone would go wherever that message says. The
                // forwarder itself is answered, member or not, as before.
                continue;
            }
            let (reason, hint) = match error {
                ProposeError::NotLeader { leader_hint } => (Refusal::NotLeader, leader_hint),
                ProposeError::NoLeader => (Refusal::NotLeader, None),
                ref other => (refusal(other), self.leader),
            };
            match to_others
                .iter_mut()
                .find(|(to, r, h, _)| *to == id.node && *r == reason && *h == hint)
            {
                Some((.., ids)) => ids.push(id),
                None => to_others.push((id.node, reason, hint, vec![id])),
            }
        }
        for (to, reason, leader_hint, ids) in to_others {
            // Receivers refuse a message naming more (`MessageBatch::validate`).
            for ids in ids.chunks(MAX_ITEMS_PER_MESSAGE) {
                let body = MessageBody::ProposeRejected {
                    ids: ids.to_vec(),
                    leader_hint,
                    reason,
                };
                self.send_now_msg(to, term, body);
            }
        }
    }

    pub(super) fn step_proposals(&mut self, msg: Message) {
        match msg.body {
            MessageBody::Propose { proposals } => {
                // Every refusal echoes the term the forwarder sent at: what tells it
                // whether the refusal is news about its leader (below).
                let echo = msg.term;
                let refused = if self.role == Role::Leader {
                    // Busy or in a transfer: the proposer learns which, definitely not
                    // appended. One message per reason.
                    let mut refused = Vec::new();
                    for (id, data) in proposals {
                        if let Err(e) = self.propose(id, data) {
                            refused.push((id, e));
                        }
                    }
                    refused
                } else {
                    if proposals.iter().all(|(id, _)| id.node != msg.from) {
                        // Only other nodes' proposals (a deposed leader passing its parked
                        // ones on): their refusals go to them, and the forwarder, which
                        // takes this replica for its leader, is told it is not (review).
                        let body = MessageBody::not_leader(self.leader);
                        self.send_now_msg(msg.from, echo, body);
                    }
                    let error = ProposeError::NotLeader {
                        leader_hint: self.leader,
                    };
                    let ids = proposals.into_iter().map(|(id, _)| id);
                    ids.map(|id| (id, error.clone())).collect()
                };
                self.refuse(refused, Some(msg.from), echo);
            }
            MessageBody::ProposeRejected {
                ids,
                leader_hint,
                reason,
            } => {
                if reason == Refusal::NotLeader
                    && self.leader == Some(msg.from)
                    && leader_hint != self.leader
                    && msg.term == self.term
                {
                    self.leader_disowned();
                }
                let err = match (reason, leader_hint) {
                    (Refusal::Busy, _) => ProposeError::Busy {
                        limit: "max_uncommitted_bytes",
                    },
                    // Sent by no leader now (they park such proposals); kept so that
                    // the refusal still reads as what it says.
                    (Refusal::SnapshotBehind, _) => ProposeError::Busy {
                        limit: "snapshot_entries",
                    },
                    (Refusal::TransferInProgress, _) => ProposeError::TransferInProgress,
                    (_, Some(l)) => ProposeError::NotLeader {
                        leader_hint: Some(l),
                    },
                    (_, None) => ProposeError::NoLeader,
                };
                // Other nodes' ids are passed on at this refusal's term: its sender did not
                // lead then. At this replica's own term, one that leads now, a follower
                // taking it for leader would disown it (review). Only at a term this
                // replica does not lead: an honest refusal it passes on answers its own
                // forward, sent as a follower, and one at a term it leads (from anyone,
                // member or not) would have it disown itself through its followers.
                let passes_on =
                    msg.term < self.term || msg.term == self.term && self.role != Role::Leader;
                let refused = (ids.into_iter())
                    .filter(|id| passes_on || id.node == self.node)
                    .map(|id| (id, err.clone()))
                    .collect();
                self.refuse(refused, None, msg.term);
            }
            _ => {}
        }
    }

    /// Sends proposals queued on a follower to the leader, or settles them if the leader
    /// changed meanwhile; on a leader, appends those parked for a snapshot once it is stored.
    pub(super) fn flush_forward(&mut self) {
        if self.forward.is_empty() || self.keeps_proposals_parked() {
            return;
        }
        let proposals = std::mem::take(&mut self.forward);
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                // Parked by this leadership (`adopt_forward` emptied the queue when it
                // began), so already counted.
                for (id, data) in proposals {
                    self.append_command(id, data);
                }
            }
            (_, Some(leader)) if self.config.forward_proposals => {
                // Receivers refuse a message of more than MAX_ITEMS_PER_MESSAGE proposals,
                // and a transport bounds its frames: a message holds at most
                // `max_append_bytes` of them, as an append does (one at least). Cut by
                // count alone, a forward past the QUIC frame limit was dropped whole
                // (review).
                let mut proposals = proposals;
                while !proposals.is_empty() {
                    let mut bytes = 0usize;
                    let cut = proposals
                        .iter()
                        .take(MAX_ITEMS_PER_MESSAGE)
                        .position(|(_, data)| {
                            bytes = bytes.saturating_add(data.len());
                            bytes > self.config.max_append_bytes && bytes > data.len()
                        })
                        .unwrap_or(proposals.len().min(MAX_ITEMS_PER_MESSAGE));
                    let rest = proposals.split_off(cut);
                    // At this replica's term: the refusal echoes it (`leader_disowned`).
                    self.send_now_msg(leader, self.term, MessageBody::Propose { proposals });
                    proposals = rest;
                }
            }
            // Parked by a leader that lost its leadership, and never appended: refused
            // definitely, as a follower refuses a proposal it may not forward.
            (_, Some(leader)) => {
                let err = ProposeError::NotLeader {
                    leader_hint: Some(leader),
                };
                let dropped = proposals.into_iter().map(|(id, _)| (id, err.clone()));
                let term = self.term;
                self.refuse(dropped.collect(), None, term);
            }
            (_, None) => {
                let dropped = proposals
                    .into_iter()
                    .map(|(id, _)| (id, ProposeError::NoLeader));
                let term = self.term;
                self.refuse(dropped.collect(), None, term);
            }
        }
    }
}

/// How a leader's refusal of a forwarded proposal travels back.
fn refusal(error: &ProposeError) -> Refusal {
    match error {
        ProposeError::TransferInProgress => Refusal::TransferInProgress,
        // The follower checked the size, so the leader refuses only for room or a
        // transfer: `Busy` is the one other answer.
        _ => Refusal::Busy,
    }
}
