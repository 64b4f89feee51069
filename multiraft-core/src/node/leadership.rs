//! Moving leadership on purpose: transferring one group's leadership, and draining every
//! group a node leads (for a rolling restart).

use crate::error::{MembershipChangeError, TransferError};
use crate::group::Replica;
use crate::ids::{GroupId, NodeId, RequestId};
use crate::membership::MembershipChange;

use super::Node;

impl Node {
    /// Hands leadership of `group` to `to` (dissertation §3.10). On `Ok` the node took it: it
    /// ends exactly once, `Done` when `to` leads, or `TransferFailed` (timed out after an
    /// election timeout with this node still leading, leadership moved elsewhere, the node
    /// stopped). While it runs the group refuses proposals with `TransferInProgress`.
    /// Works on a quiesced group (it wakes). Refused `InProgress` while another transfer
    /// of the group runs, or while the group has events the node has not yet read, one of
    /// which may have ended it (until the next ready).
    pub fn transfer_leader(
        &mut self,
        group: GroupId,
        to: NodeId,
    ) -> Result<RequestId, TransferError> {
        let slot = self
            .groups
            .get_mut(&group)
            .ok_or(TransferError::GroupNotFound(group))?;
        if to != self.id && unread_end(&slot.group, self.id, self.requests.holds_transfer(group)) {
            return Err(TransferError::InProgress);
        }
        slot.group.transfer_leader(to)?;
        // Twice the longest election: the leader gives up after one, and the election the
        // target started may take another.
        let deadline = self.ticks + 2 * u64::from(self.config.election_timeout_max_ticks);
        let request = self
            .requests
            .transfer(group, to, self.id, deadline, to == self.id);
        self.touched(group);
        Ok(request)
    }

    /// Changes the membership of `group`, which this node's replica leads (see
    /// [`MembershipChange`] for what each change does; dissertation §4.3). One change at a
    /// time per group. On `Ok` the node took it: it ends exactly once, with
    /// [`Resolution::MembershipChanged`](super::Resolution::MembershipChanged) once the
    /// requested membership is committed, or
    /// [`Resolution::MembershipChangeFailed`](super::Resolution::MembershipChangeFailed) —
    /// indeterminate if leadership changes or the node stops before, or if one of its
    /// configurations stays uncommitted for `Config::proposal_timeout_ticks` (it may
    /// still commit). `Err` is definite:
    /// nothing changed. Refused `ChangeInProgress` while another change of the group runs,
    /// or while the group has events the node has not yet read, one of which may have
    /// ended it (until the next ready).
    pub fn change_membership(
        &mut self,
        group: GroupId,
        change: MembershipChange,
    ) -> Result<RequestId, MembershipChangeError> {
        let slot = self
            .groups
            .get_mut(&group)
            .ok_or(MembershipChangeError::GroupNotFound(group))?;
        if unread_end(&slot.group, self.id, self.requests.holds_change(group)) {
            return Err(MembershipChangeError::ChangeInProgress);
        }
        slot.group.change_membership(change)?;
        let (term, _) = slot.group.leadership();
        let request = self.requests.change(group, term, self.id);
        self.touched(group);
        Ok(request)
    }

    /// Transfers the leadership of every group this node leads to another voter whose node
    /// is live, choosing among the most up-to-date ones by group id so that the groups
    /// spread over the other nodes. For draining a node before a restart. Returns one
    /// transfer request per group led (or why that group could not start one: no live
    /// voter to take it, or a transfer already in progress).
    ///
    /// All at once: at hundreds of thousands of groups led, the elections that follow
    /// overload the nodes ([`Node::drain_groups`] a window at a time, as
    /// `MultiRaft::drain` does, paces them).
    pub fn drain(&mut self) -> Vec<(GroupId, Result<RequestId, TransferError>)> {
        let led = self.led_groups();
        self.drain_groups(&led)
    }

    /// The groups this node's replica leads, in id order: what [`Node::drain`] moves.
    pub fn led_groups(&self) -> Vec<GroupId> {
        let mut led: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, s)| s.group.leadership().1 == Some(self.id))
            .map(|(id, _)| *id)
            .collect();
        led.sort_unstable();
        led
    }

    /// [`Node::drain`] for `groups` alone (say, the next window of [`Node::led_groups`]):
    /// those of them this node still leads. A group no longer led here, or no longer
    /// hosted, is left out: its leadership moved already.
    pub fn drain_groups(
        &mut self,
        groups: &[GroupId],
    ) -> Vec<(GroupId, Result<RequestId, TransferError>)> {
        let mut started = Vec::with_capacity(groups.len());
        for &group in groups {
            let Some(slot) = self.groups.get(&group) else {
                continue;
            };
            if slot.group.leadership().1 != Some(self.id) {
                continue;
            }
            let live = |n: NodeId| self.peers.is_live(n);
            let result = match slot.group.transfer_candidate(live, group.0) {
                Some(to) => self.transfer_leader(group, to),
                None => Err(TransferError::NoLiveVoter),
            };
            started.push((group, result));
        }
        started
    }
}

/// Whether a new change or transfer of `group`, led by this node `me`, waits for the next
/// ready: the node's table `held` one of that kind, and the group's output holds events the
/// node has not yet read. Any event may have ended the one held — its end, or a leadership
/// change (`LeaderChanged` to a transfer's target is its success) — and the node, which
/// keeps one per group, would then end the new one in its place (review). Only while this
/// node leads: otherwise the group refuses with the better answer (`NotLeader` and where
/// to go). The next ready reads the events, so the refusal lasts about one write.
fn unread_end(group: &Replica, me: NodeId, held: bool) -> bool {
    held && group.leadership().1 == Some(me) && group.has_events()
}
