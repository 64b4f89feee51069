//! Leadership transfer (dissertation §3.10): the leader brings the target's log up to date,
//! then sends it `TimeoutNow`; the target campaigns at once, and its vote requests are
//! answered even by followers that still hear from the old leader. Meanwhile the leader
//! takes no proposal (so the target can catch up), and gives up after an election timeout.

use crate::error::TransferError;
use crate::ids::NodeId;
use crate::message::MessageBody;

use super::{GroupEvent, Replica, Role};

/// A transfer in progress on the leader.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    /// The replica to hand leadership to.
    pub(super) to: NodeId,
    /// Ticks since it started; it is abandoned at `election_timeout_min_ticks`.
    elapsed: u32,
    /// `TimeoutNow` went out.
    sent: bool,
}

impl Replica {
    /// Starts handing leadership of this group to `to`. The outcome shows in the group's
    /// leadership (`to` leads in a higher term) or in a [`GroupEvent::TransferAborted`]
    /// after an election timeout. Wakes a quiesced group. `to` being this replica is done
    /// at once.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if to == self.node {
            return Ok(());
        }
        if !self.may_take_over(to) {
            return Err(TransferError::NotAVoter(to));
        }
        if self.transfer.is_some() {
            return Err(TransferError::InProgress);
        }
        self.wake();
        self.transfer = Some(Box::new(Transfer {
            to,
            elapsed: 0,
            sent: false,
        }));
        self.maybe_send_timeout_now();
        Ok(())
    }

    /// The target of the transfer in progress, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.as_ref().map(|t| t.to)
    }

    /// Sends `TimeoutNow` once the target holds the whole log and all of it is committed:
    /// every proposal this leader took then ends applied (the leader refuses new ones
    /// meanwhile), none is left to end indeterminate when leadership moves.
    pub(super) fn maybe_send_timeout_now(&mut self) {
        let Some(t) = self.transfer.as_deref().copied() else {
            return;
        };
        if t.sent {
            return;
        }
        let last = self.log.last_index();
        // Not while proposals wait parked for a snapshot (`self.forward`, on a leader):
        // appended after the hand-over, in this term, the new leader's log truncated them
        // or left them unknown (review). They are appended once the snapshot is stored,
        // and the target's answer to them comes back here.
        if self.forward.is_empty()
            && self.log.committed == last
            && self.progress.get(&t.to).is_some_and(|p| p.matched == last)
        {
            // From here the target may be elected at once, by voters that still hear from
            // this leader: no lease read may be served in this term again.
            self.lease_revoked = true;
            if let Some(t) = self.transfer.as_mut() {
                t.sent = true;
            }
            tracing::debug!(node = %self.node, group = %self.id, term = self.term, to = %t.to, "handing leadership over");
            self.send_now_msg(t.to, self.term, MessageBody::TimeoutNow);
        }
    }

    /// A leader's tick: abandons a transfer that took an election timeout.
    pub(super) fn tick_transfer(&mut self) {
        let Some(t) = self.transfer.as_mut() else {
            return;
        };
        t.elapsed += 1;
        if t.elapsed >= self.config.election_timeout_min_ticks {
            self.abandon_transfer();
        }
    }

    /// Gives the transfer in progress up: this leader keeps leading, and a membership
    /// change it held back goes on.
    fn abandon_transfer(&mut self) {
        let Some(t) = self.transfer.take() else {
            return;
        };
        let to = t.to;
        tracing::info!(node = %self.node, group = %self.id, term = self.term, %to, "leadership transfer abandoned");
        self.out_rare()
            .events
            .push(GroupEvent::TransferAborted { to });
        self.advance_change();
    }

    /// `TimeoutNow` from the leader of our term: campaign now, skipping PreVote.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.leader != Some(from) || !self.electable() {
            return;
        }
        self.wake();
        self.campaign_for_transfer();
    }
}

impl Replica {
    /// The voter to hand leadership to: among voters other than this one whose node is
    /// `live`, those that hold the most of the log; `spread` picks among them (the group id,
    /// so that a drained node's groups spread over the others). `None` when not leading or
    /// no such voter.
    pub fn transfer_candidate(&self, live: impl Fn(NodeId) -> bool, spread: u64) -> Option<NodeId> {
        if self.role != Role::Leader {
            return None;
        }
        let candidates: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            // As `transfer_leader` would take: a drain that picked a voter being removed
            // was refused it at every retry (review).
            .filter(|(n, _)| self.may_take_over(**n) && live(**n))
            .map(|(n, p)| (*n, p.matched))
            .collect();
        let best = candidates.iter().map(|(_, m)| *m).max()?;
        let top: Vec<NodeId> = candidates
            .into_iter()
            .filter(|(_, m)| *m == best)
            .map(|(n, _)| n)
            .collect();
        top.get(spread as usize % top.len()).copied()
    }
}
