//! Hosting and dropping replicas: restore at start, create, remove, and the table of shared
//! memberships.

use std::sync::Arc;

use crate::entry::Payload;
use crate::error::{GroupError, StartError, StorageError};
use crate::group::Replica;
use crate::ids::{GroupId, RequestId};
use crate::membership::Membership;
use crate::message::{Message, MessageBody, Refusal};
use crate::rng::group_seed;
use crate::storage::{GroupWrite, LoadedGroup};

use super::{Event, Node, Slot};

/// Refusals of proposals forwarded for groups this node does not host, kept for one
/// ready: bounds what a flood of them costs. Past it they are dropped, and their
/// proposals end at their proposal timeout, as before there were refusals.
pub(super) const MAX_UNHOSTED_REFUSALS: usize = 1024;

impl Node {
    /// Proposals forwarded here for a group this node does not host (its replica was
    /// removed and deleted, or never created): refused, as a replica that does not lead
    /// refuses them, so that the forwarder learns at once that this node does not lead the
    /// group. A follower that still took this node for its leader held back its campaign,
    /// and refused other candidates, for as long as this node lived (simulator, seeds
    /// 7009305, 7010494, 7011289: a leader that removed itself, and a follower that missed
    /// the change). A follower's read index request is answered with no index, as a
    /// replica that does not lead answers it: dropped, the follower's reads waited for their
    /// deadline (the kv membership test: a read at a follower that still took the removed
    /// leader's node for leader timed out). A replica's own `Unheard` is refused the same
    /// way.
    pub(super) fn refuse_unhosted(&mut self, msg: Message) {
        let body = match msg.body {
            MessageBody::Propose { proposals } => MessageBody::ProposeRejected {
                ids: proposals.into_iter().map(|(id, _)| id).collect(),
                leader_hint: None,
                reason: Refusal::NotLeader,
            },
            MessageBody::ReadIndex { ids } => MessageBody::ReadIndexResponse { ids, index: None },
            // A replica that took this node for its leader asks it: refused as a forward
            // is, so that it stops holding back its campaign for this node (simulator's
            // check that removed replicas are told, seed 547).
            MessageBody::Unheard { replica, .. } if replica == msg.from => {
                MessageBody::not_leader(None)
            }
            _ => return,
        };
        if self.unhosted.len() >= MAX_UNHOSTED_REFUSALS {
            return;
        }
        self.unhosted.push(Message {
            group: msg.group,
            from: self.id,
            to: msg.from,
            // The forwarder's term, echoed as a replica's refusal echoes it.
            term: msg.term,
            body,
        });
    }

    /// The shared copy of `membership`.
    fn intern(&mut self, membership: &Membership) -> Arc<Membership> {
        if let Some(shared) = self.memberships.get(membership) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(membership.clone());
        self.memberships
            .insert(membership.clone(), Arc::clone(&shared));
        shared
    }

    /// Drops the shared copy of a membership no group uses any more (the table's own
    /// reference and the caller's are the last two).
    fn release(&mut self, membership: &Arc<Membership>) {
        if Arc::strong_count(membership) <= 2 {
            self.memberships.remove(&**membership);
        }
    }

    /// Starts hosting `group`, in the set of ticking groups if `ticking`.
    fn host(&mut self, group: Replica, ticking: bool) {
        let id = group.id();
        self.peers.add(self.id, group.membership());
        let hosted = Arc::clone(group.membership_arc());
        self.groups.insert(
            id,
            Box::new(Slot {
                group,
                queued: false,
                sending: false,
                ticking,
                rest: None,
                parked: None,
                hosted,
            }),
        );
        if ticking {
            self.active.insert(id);
        }
    }

    /// The membership of `group` changed: its peers are counted under the new one, which
    /// is shared with the other groups that have it.
    pub(super) fn rehost(&mut self, id: GroupId) {
        let Some(slot) = self.groups.get(&id) else {
            return;
        };
        if *slot.hosted == *slot.group.membership() {
            return;
        }
        let now = slot.group.membership().clone();
        let shared = self.intern(&now);
        let Some(slot) = self.groups.get_mut(&id) else {
            return;
        };
        slot.group.share_membership(Arc::clone(&shared));
        let old = std::mem::replace(&mut slot.hosted, shared);
        // Added before removed: a node in both memberships keeps its record (its
        // incarnation, silence and lease). Removed first, a peer this group alone shared
        // was forgotten and heard anew, so its next restart went unnoticed and its groups'
        // followers kept following the leader it no longer was (simulator, seed 7001468).
        self.peers.add(self.id, &now);
        self.peers.remove(&old);
        self.release(&old);
    }

    /// Hosts the groups storage held at start. Their state is already durable. A group with
    /// a snapshot has its state machine restored from it first ([`Ready::restores`]).
    ///
    /// Refuses a group whose log was compacted past its snapshot, or without one
    /// ([`StartError::CompactedLog`]): its state could not be rebuilt; and one that breaks
    /// what every correct storage returns ([`LoadedGroup::validate`], as
    /// [`StartError::Storage`]; `Replica::restore` checks both); and a group loaded twice,
    /// or already hosted (as [`StartError::Storage`]). Nothing is restored then.
    ///
    /// [`Ready::restores`]: super::Ready::restores
    pub fn restore(&mut self, loaded: Vec<LoadedGroup>) -> Result<(), StartError> {
        // One replica per group: hosted, a second copy replaced the first unseen, and the
        // peers the first counted were never released (review).
        let mut ids: Vec<GroupId> = loaded.iter().map(|l| l.group).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            let twice = format!("{} loaded twice", w[0]);
            return Err(StartError::Storage(StorageError::Corrupt(twice)));
        }
        if let Some(group) = ids.iter().find(|g| self.groups.contains_key(g)) {
            let hosted = format!("{group} is hosted already: restore only at start");
            return Err(StartError::Storage(StorageError::Corrupt(hosted)));
        }
        // Build every group before hosting any, so that a refusal leaves the node untouched.
        let mut groups = Vec::with_capacity(loaded.len());
        // Request ids start past every one of this node's that its logs carry, wherever
        // they were told to start: those entries are applied again, and one must answer
        // no request of this life. A wall clock set back across the restart (the
        // driver's ids start from it) otherwise gave the new proposals ids the log held
        // (review).
        let own = loaded
            .iter()
            .flat_map(|l| &l.entries)
            .filter_map(|e| match &e.payload {
                Payload::Command { id, .. } if id.node == self.id => Some(id.seq),
                _ => None,
            });
        let last_own = own.max();
        for l in loaded {
            let seed = group_seed(self.seed, l.group.0);
            groups.push(Replica::restore_valid(
                self.id,
                l,
                Arc::clone(&self.config),
                seed,
            )?);
        }
        if let Some(last) = last_own {
            self.requests.start_past(last);
        }
        for mut group in groups {
            let id = group.id();
            let shared = self.intern(group.membership());
            group.share_membership(shared);
            self.host(group, false);
            self.touched(id);
        }
        Ok(())
    }

    /// Starts hosting a new replica of `group`. Its creation is part of the next write; the
    /// returned request ends [`Done`](super::Resolution::Done) in the ready that writes it.
    pub fn create_group(
        &mut self,
        group: GroupId,
        membership: Membership,
    ) -> Result<RequestId, GroupError> {
        membership.validate()?;
        if !membership.contains(self.id) {
            return Err(GroupError::NotAMember(self.id));
        }
        self.host_new(group, membership)
    }

    /// Starts hosting a replica of `group`, a running group this node is joining: the
    /// replica waits for the leader, which adds it with
    /// [`change_membership`](Node::change_membership) (`AddVoter`, `AddLearner` or
    /// `Replace`) and catches it up by appends or a snapshot. `membership` is the group's
    /// current membership, as its leader reports it; this node is left out of it (the log
    /// says what this replica is).
    ///
    /// Until it holds everything its leader had committed, the replica neither campaigns
    /// nor votes, whatever memberships it reads in the log it catches up on: an old one
    /// may name this node a voter from a time it was a member before, with a log this
    /// replica no longer has (docs/design.md §4.7). Like a creation, it is part of the
    /// next write and the returned request ends `Done` in the ready that writes it.
    pub fn join_group(
        &mut self,
        group: GroupId,
        mut membership: Membership,
    ) -> Result<RequestId, GroupError> {
        for set in [
            &mut membership.voters,
            &mut membership.outgoing,
            &mut membership.learners,
        ] {
            set.remove(&self.id);
        }
        self.host_new(group, membership)
    }

    /// Hosts a new replica of `group` with `membership` (a joining one when this node is
    /// not in it), and writes its creation in the next ready.
    fn host_new(
        &mut self,
        group: GroupId,
        membership: Membership,
    ) -> Result<RequestId, GroupError> {
        if group == GroupId::NODE {
            return Err(GroupError::ReservedGroupId);
        }
        membership.validate()?;
        if self.groups.contains_key(&group) {
            return Err(GroupError::GroupExists(group));
        }
        if self.lifecycle.get(&group).is_some_and(|w| w.remove) {
            // One write holds each group at most once: the removal must be durable first.
            return Err(GroupError::RemovalPending(group));
        }
        let g = Replica::create(
            group,
            self.id,
            self.intern(&membership),
            Arc::clone(&self.config),
            group_seed(self.seed, group.0),
        );
        let mut record = GroupWrite::new(group);
        record.membership = Some(membership);
        record.hard_state = Some(Default::default());
        self.lifecycle.insert(group, record);
        self.events.push(Event::GroupCreated { group });
        self.host(g, true);
        Ok(self.requests.lifecycle(group))
    }

    /// Stops hosting `group` and deletes its persisted state in the next write. Its pending
    /// proposals end indeterminate; the returned request ends
    /// [`Done`](super::Resolution::Done) in the ready that writes the removal.
    pub fn remove_group(&mut self, group: GroupId) -> Result<RequestId, GroupError> {
        let mut slot = self
            .groups
            .remove(&group)
            .ok_or(GroupError::GroupNotFound(group))?;
        slot.forget_rest(&mut self.rests);
        self.peers.remove(&slot.hosted);
        let shared = Arc::clone(&slot.hosted);
        drop(slot);
        self.release(&shared);
        self.active.remove(&group);
        self.snapshots.forget(group);
        // Replaces a creation not yet written: storage is told only to delete.
        let mut record = GroupWrite::new(group);
        record.remove = true;
        self.lifecycle.insert(group, record);
        self.events.push(Event::GroupRemoved { group });
        self.requests.group_removed(group);
        Ok(self.requests.lifecycle(group))
    }
}
