//! Quiescence: how an idle group stops ticking and heartbeating, and how it wakes.
//!
//! A node holds thousands of groups and most of them are idle; a quiesced group needs no
//! ticks and sends no heartbeats, so it costs only its state. A leader quiesces once every
//! replica holds and knows the whole committed log (`can_quiesce`, `quiesce`); a follower goes
//! quiet on the leader's `Quiesce` notice (see `step_inner`). Any activity wakes the group
//! (`wake`), and so does the loss of a node it depends on (`on_node_down`), since a quiesced
//! group has no election timer of its own to notice it.

use crate::ids::NodeId;
use crate::message::MessageBody;

use super::{LeaderSaid, Replica, Role};

impl Replica {
    /// Whether the group is quiesced: its leader saw every replica hold and know the whole
    /// committed log, and told the followers to stop their election timers. A quiesced group
    /// needs no ticks; its node stops ticking it until it wakes. It wakes on a proposal, on
    /// any message but a heartbeat acknowledgement, or when [`Replica::on_node_down`] says
    /// a node it depends on is down.
    pub fn is_quiesced(&self) -> bool {
        self.quiesced
    }

    pub(super) fn wake(&mut self) {
        if self.quiesced {
            self.quiesced = false;
            self.election_elapsed = 0;
            self.heartbeat_elapsed = 0;
            self.quiet_round = 0;
            tracing::debug!(node = %self.node, group = %self.id, term = self.term, "group woken");
            // A woken leader must hear from every follower again before it goes quiet, and
            // CheckQuorum judges it on what it hears from now on.
            for pr in self.progress.values_mut() {
                pr.recent_active = false;
            }
        }
    }

    /// Node `peer`, declared down, is heard again (the same life): a quiesced leader with a
    /// replica there wakes, to catch it up — it may have gone quiet without waiting for
    /// that replica ([`Replica::tick_knowing`]), and nothing else wakes an idle group. Even
    /// one known to hold the whole log: it may have missed the notice of its commit
    /// (simulator, seed 286). The group goes quiet again once the replica answers.
    pub fn on_node_back(&mut self, peer: NodeId) {
        if self.role == Role::Leader && self.quiesced && self.progress.get(&peer).is_some() {
            self.wake();
        }
    }

    /// Node `peer` restarted (a new incarnation): as [`Replica::on_node_down`], and a
    /// leader also forgets what the peer was known to hold, since its data may have been
    /// wiped: it probes where the peer stands, and sends its snapshot if need be.
    pub fn on_node_restarted(&mut self, peer: NodeId) {
        // No `LeaderSaid::Stopped` for this term's leader messages from that node: the
        // restart may be seen only after the new life was elected in this term and
        // followed, and then they are its (simulator, seed 15012724). A late append of the
        // last life's leadership is answered, and the new life disowns it
        // (`handle_append_response`).
        self.on_node_down(peer);
        if self.role == Role::Leader {
            // What the peer held may be gone (its data was wiped): forget what it was known
            // to match, and probe where it stands. Lowering a match never lowers the commit
            // index, which only moves forward; it only holds the next commits to the others.
            let next = self.log.last_index() + 1;
            if let Some(pr) = self.progress.get_mut(&peer) {
                pr.forget_match(next);
                // The probe goes only from an awake leader. A voter's restart woke it
                // already (`on_node_down`); a learner's did not, and a learner wiped and
                // joined again was never caught up while the group stayed idle (review).
                self.wake();
            }
        }
    }

    /// Node `peer` is down (its liveness beats stopped): [`Replica::on_node_down_with`]
    /// knowing no node live, so a quiesced leader with a voter there always wakes.
    pub fn on_node_down(&mut self, peer: NodeId) {
        self.on_node_down_with(peer, |_| false);
    }

    /// Node `peer` is down (its liveness beats stopped), knowing which nodes are live
    /// (`node_live`, as for [`Replica::tick_with`]). A group that depends on it reacts:
    /// - a follower whose leader ran there forgets that leader (leaving its lease, so it
    ///   grants votes) and wakes. One surviving voter per group, chosen by group id so that
    ///   the dead node's groups spread over the survivors, campaigns within the randomized
    ///   part of the election timeout — which also staggers the elections of the many groups
    ///   the dead node led; the others wait a whole timeout, so they rarely split the vote;
    /// - a quiesced leader with a voter there wakes, so that CheckQuorum can tell whether it
    ///   still leads — unless the voters on live nodes, with it, are a quorum: CheckQuorum
    ///   would count them as active (`quorum_active`), and its quiesced lease rests on
    ///   their nodes' liveness (`lease_holds`), so waking would only send a round of
    ///   heartbeats and quiesce again. At 100,000 groups that wake of every group with a
    ///   voter on the node down took the survivors' whole box for seconds, long enough for
    ///   one to declare the other down (BENCHMARKS.md, 2026-12-06 evening). Its replica
    ///   there is caught up when the node is heard again (`on_node_back`).
    pub fn on_node_down_with(&mut self, peer: NodeId, node_live: impl Fn(NodeId) -> bool) {
        if self.role == Role::Leader {
            if self.quiesced && self.membership.is_voter(peer) {
                let me = self.node;
                let live_quorum = self
                    .membership
                    .vote_result(|n| Some(n == me || n != peer && node_live(n)))
                    == crate::membership::VoteResult::Won;
                if !live_quorum {
                    self.wake();
                }
            }
            return;
        }
        if self.leader != Some(peer) {
            return;
        }
        self.quiesced = false;
        self.leader = None;
        self.leader_said = LeaderSaid::Nothing;
        self.report_leader();
        let survivors: Vec<NodeId> = self
            .membership
            .voters
            .union(&self.membership.outgoing)
            .copied()
            .filter(|n| *n != peer)
            .collect();
        let successor = survivors
            .get(self.id.0 as usize % survivors.len().max(1))
            .copied();
        self.election_elapsed = if successor == Some(self.node) {
            self.config.election_timeout_min_ticks
        } else {
            0
        };
    }

    /// Nothing left to do: every replica on a live node answered lately and holds the whole
    /// log, which is committed and durable here (the quiesce notice tells them the commit
    /// index); nothing is queued. A replica on a node declared down is not waited for: it
    /// answers nothing while down, and every group with a replica there stayed awake,
    /// ticked and heartbeating, for as long as the node was down — at 100,000 groups that
    /// took the two survivors' whole box, and they declared each other down (BENCHMARKS.md,
    /// 2026-12-06). It is caught up once it comes back: its node heard again wakes the group
    /// (`on_node_back`), and so do a restart (`on_node_restarted`) and any message of its
    /// replica (a question, a vote). Not while a snapshot transfer to it holds a send slot
    /// (`admitted`): quiet, the group no longer ticks the transfer's timeout, which gives
    /// the slot back, and the slot stayed taken for as long as the node was down (review).
    pub(super) fn can_quiesce(&self, node_down: &impl Fn(NodeId) -> bool) -> bool {
        let last = self.log.last_index();
        self.config.quiesce
            && self.role == Role::Leader
            && self.forward.is_empty()
            && self.transfer.is_none()
            && self.change.is_none()
            && !self.membership.is_joint()
            && self.log.committed == last
            && self.log.persisted == last
            && self.log.applied == last
            && self
                .progress
                .iter()
                .all(|(n, pr)| {
                    let sending = pr.snapshot.as_ref().is_some_and(|o| o.admitted);
                    pr.recent_active && pr.matched == last || node_down(*n) && !sending
                })
            // And a quorum of voters with it, this one included: a leader cut off from its
            // quorum stays awake, so that CheckQuorum steps it down.
            && self.membership.vote_result(|n| {
                let held = |pr: &super::progress::Progress| pr.recent_active && pr.matched == last;
                Some(n == self.node || self.progress.get(&n).is_some_and(held))
            }) == crate::membership::VoteResult::Won
    }

    /// Whether this leader has appended nothing for an election timeout (capped at what
    /// `idle_ticks` counts to).
    pub(super) fn idle_for_a_timeout(&self) -> bool {
        let timeout = self.config.election_timeout_min_ticks;
        u32::from(self.idle_ticks) >= timeout.min(u32::from(u16::MAX))
    }

    /// Tells every follower to stop its election timer, and stops ticking.
    pub(super) fn quiesce(&mut self) {
        let commit = self.log.committed;
        let mut position = 0;
        while let Some((to, pr)) = self.progress.at_mut(position) {
            position += 1;
            // The notice tells the commit index (every replica on a live node holds it:
            // `can_quiesce`), so a commit that no notice has carried yet does not hold
            // quiescence back. Capped, as a heartbeat's, at what the replica is known to
            // hold: one on a node declared down may hold another log there.
            let commit = pr.matched.min(commit);
            pr.commit_sent = pr.commit_sent.max(commit);
            self.send_now_msg(to, self.term, MessageBody::Quiesce { commit, round: 0 });
        }
        self.quiesced = true;
        self.shrink();
        tracing::debug!(node = %self.node, group = %self.id, term = self.term, commit, "group quiesced");
    }

    /// Returns memory that buffers grew to while the group was busy: a quiet group should
    /// cost only its state.
    pub(super) fn shrink(&mut self) {
        self.log.shrink();
        self.progress.shrink();
        if self.forward.is_empty() {
            // Not while proposals wait in it: they would be lost unanswered.
            self.forward = Vec::new();
        }
        if self.out.as_ref().is_some_and(|o| o.is_empty()) {
            self.out = None;
            self.out_written = super::Written::Nothing;
        }
    }
}
