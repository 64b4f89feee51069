//! Removed replicas a leader of this node forgot before it could tell them
//! ([`ReplicaReady::forgotten`](crate::group::ReplicaReady::forgotten)), nudged for a while
//! so that they ask and are told (docs/design.md §4.7).
//!
//! A leader forgets a retiring replica that was silent for an election timeout, and a leader
//! that steps down forgets them all. One that went quiet following this node's leader,
//! then was cut off while the group removed it, waits for that leader's live node for good:
//! quiet, it never ticks, so it never asks (`MessageBody::Unheard`), and no leader knows of
//! it. Its own node wakes it only if this node is declared down there, which a short cut
//! does not do (simulator's check that removed replicas are told: the "quiesced" kind).
//! So this node nudges it, every maximum election timeout for [`NUDGE_TIMEOUTS`] of them:
//! while it leads the group, it tracks the replica again as retiring (`retire_again`), and
//! catches it up and tells it; when it does not, it sends the replica a refusal "not the
//! leader" at the term the replica followed it in, so that it disowns this node and
//! campaigns, and the current leader hears of it through its vote requests. A nudge ends
//! with its time, or when the replica is back in the membership.

use crate::ids::{GroupId, NodeId};
use crate::message::{Message, MessageBody};

use super::Node;
use super::liveness::MAX_TIMEOUT_STRETCH;

/// How many forgotten replicas the node nudges at once: the oldest gives way to a new one
/// past this (each costs a message, or a leader's record of it, per maximum election
/// timeout). Removing a dead node from many groups forgets one per group this node leads;
/// those are not nudged while the node is known to be down, and give way to newer ones.
pub(crate) const MAX_UNTOLD: usize = 1024;

/// For how many maximum election timeouts a forgotten replica is nudged: as long as the
/// longest a peer's liveness timeout stretches ([`MAX_TIMEOUT_STRETCH`]). A cut that outlasts
/// that makes the replica's node declare this one down, and that wakes it.
pub(crate) const NUDGE_TIMEOUTS: u64 = MAX_TIMEOUT_STRETCH;

/// One removed replica to nudge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Untold {
    group: GroupId,
    node: NodeId,
    /// The term this node's replica led in when it forgot it.
    term: u64,
    /// The node's tick of the next nudge.
    next: u64,
    /// The node's tick after which it is no longer nudged.
    until: u64,
}

impl Node {
    /// Ticks between two nudges of one replica: a maximum election timeout.
    fn nudge_period(&self) -> u64 {
        u64::from(self.config.election_timeout_max_ticks.max(1))
    }

    /// Starts nudging the replicas `group`'s leader here forgot untold. One already being
    /// nudged keeps its end: tracked again by a nudge and forgotten again (a node that stays
    /// down), it is not nudged for good.
    pub(super) fn remember_untold(&mut self, group: GroupId, forgotten: &mut Vec<(NodeId, u64)>) {
        let period = self.nudge_period();
        for (node, term) in forgotten.drain(..) {
            if let Some(u) = self
                .untold
                .iter_mut()
                .find(|u| (u.group, u.node) == (group, node))
            {
                u.term = term;
                u.next = self.ticks + period;
                continue;
            }
            if self.untold.len() >= MAX_UNTOLD {
                self.untold.remove(0);
            }
            self.untold.push(Untold {
                group,
                node,
                term,
                next: self.ticks + period,
                until: self.ticks + period.saturating_mul(NUDGE_TIMEOUTS),
            });
        }
    }

    /// Nudges the replicas due at this tick, for the next ready, unless their node is known
    /// to be down (a nudge would be lost; it resumes once the node is heard again). Ends
    /// the ones back in the membership, and the ones past their time: kept a grace of two
    /// maximum election timeouts after it (or for as long as their leader tracks them), so
    /// that the last nudge's forgetting, which comes a CheckQuorum round or two later,
    /// finds them ended instead of starting them over (review: a dead replica of a busy
    /// group was tracked again for good, and the group never went quiet).
    pub(super) fn nudge_untold(&mut self) {
        if self.untold.is_empty() {
            return;
        }
        let (now, period) = (self.ticks, self.nudge_period());
        // The last nudges wait for a ready (a write is in flight): the refusals due now stay
        // due until they leave, so that each replica has one nudge queued, not one per
        // period of the write (review).
        let queued = !self.nudges.is_empty();
        let mut kept = Vec::with_capacity(self.untold.len());
        for mut u in std::mem::take(&mut self.untold) {
            let slot = self.groups.get_mut(&u.group);
            if slot
                .as_ref()
                .is_some_and(|s| s.group.membership().contains(u.node))
            {
                continue;
            }
            let tracked = slot.as_ref().is_some_and(|s| s.group.tracks(u.node));
            // Past its time, unless its last nudge fell due and waited (`queued`): that
            // one still goes.
            if now > u.until && u.next > u.until {
                if tracked || now <= u.until.saturating_add(2 * period) {
                    kept.push(u);
                }
                continue;
            }
            let down = self.peers.is_down(u.node);
            if u.next <= now && !tracked && !down {
                let leader = slot.as_ref().and_then(|s| s.group.leadership().1);
                match slot {
                    Some(slot) if leader == Some(self.id) => {
                        // Leading still (or again): tracked as retiring, it is caught up
                        // and told. A message asking it to ask would not do: anything
                        // from its leader restarts the election timer that makes it ask.
                        slot.group.retire_again(u.node);
                        self.touched(u.group);
                        u.next = now + period;
                    }
                    // Refused even where the group left this node (a leader that removed
                    // itself): the refusal needs no replica here. Not while the last
                    // nudges wait: it stays due until they leave.
                    _ if !queued => {
                        self.nudges.push(Message {
                            group: u.group,
                            from: self.id,
                            to: u.node,
                            term: u.term,
                            body: MessageBody::not_leader(leader),
                        });
                        u.next = now + period;
                    }
                    _ => {}
                }
            }
            kept.push(u);
        }
        self.untold = kept;
    }
}
