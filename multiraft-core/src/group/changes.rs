//! Membership changes on the leader (dissertation §4.3): one change at a time per group,
//! voters changed only through a joint configuration that any leader leaves by itself once
//! it is committed, joining replicas promoted only once caught up, and a leader that is no
//! longer a voter stepping down once that is committed (§4.2.2). Replicas removed from the
//! group learn it from the leader, which keeps replicating to them until they hold the
//! commit that removed them, and report it ([`GroupEvent::Removed`]).
//!
//! Which membership is in force is decided by the log (`configs.rs`); this file decides
//! what the leader appends next.

use std::collections::BTreeSet;

use crate::entries::Entries;
use crate::entry::{Entry, Payload};
use crate::error::MembershipChangeError;
use crate::ids::NodeId;
use crate::membership::{Membership, MembershipChange};
use crate::message::MessageBody;

use super::log::Log;
use super::progress::{Progress, ProgressState};
use super::{GroupEvent, Join, Replica, Role};

/// A change requested of this leader and not yet complete. Leader-local: a leadership
/// change drops it (the request ends indeterminate), while a joint configuration already
/// appended is left by the next leader all the same.
#[derive(Debug)]
pub(super) struct Change {
    /// The membership the change ends in.
    target: Membership,
    /// Replicas to promote once caught up.
    promote: BTreeSet<NodeId>,
    /// Consecutive ticks every replica of `promote` was caught up.
    caught_up_ticks: u32,
    /// Ticks the replicas of `promote` made no progress, outside a snapshot transfer.
    stalled_ticks: u32,
    /// The least `matched` among them at the last tick, to tell progress.
    last_matched: u64,
    /// Ticks into the current window of `proposal_timeout_ticks`, and their distance to
    /// the log's end (the furthest behind) when it began: a window over which that
    /// distance did not shrink ends the change too. Gaining ground at every tick but less
    /// than the log grows, a learner slower than the writes reset `stalled_ticks` for good,
    /// and held the change, and every other change, while the writes went on (review).
    window: (u32, Option<u64>),
    /// Ticks the change's latest configuration has been uncommitted, once no replica is
    /// left to catch up ([`Replica::tick_committing`]).
    committing_ticks: u32,
    /// Every replica of `promote` has answered since the change began.
    answered: bool,
    /// Consecutive ticks some replica of `promote` had not answered since the last
    /// CheckQuorum round: past an election timeout, it is silent.
    unheard_ticks: u32,
    /// The index every replica of `promote` must hold to count as caught up: the log's
    /// end once the change began and appended the learners it adds, so at or past the
    /// entry that made each a learner. Within `learner_catchup_entries` of the end alone,
    /// a replica added back after its removal was promoted before it held that entry, and
    /// a late `Removed` of an index past its log (`handle_removed_unmatched`) could then have
    /// it deleted while a voter (review).
    hold: u64,
}

impl Replica {
    /// Leader: whether a membership change requested of it is still under way (its
    /// learners catching up, or its joint configuration not yet left). Such a change may
    /// still move leadership: a leader that removes itself hands over once it commits.
    pub fn membership_change_in_progress(&self) -> bool {
        self.change.is_some()
    }

    /// Starts changing the membership (leader only). The outcome comes as a
    /// [`GroupEvent::MembershipChangeEnded`] on this replica, or the change is dropped
    /// with the leadership. `Err` is definite: nothing was appended.
    pub fn change_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<(), MembershipChangeError> {
        if self.role != Role::Leader {
            return Err(MembershipChangeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(MembershipChangeError::TransferInProgress);
        }
        if self.change.is_some() || self.membership.is_joint() || self.config_uncommitted() {
            return Err(MembershipChangeError::ChangeInProgress);
        }
        let (target, promote) = change
            .target(&self.membership)
            .map_err(MembershipChangeError::Invalid)?;
        self.wake();
        // A replica to promote must answer again from now on to count as caught up: what
        // it said before the change may be an election timeout old (it could be gone).
        for n in &promote {
            if let Some(p) = self.progress.get_mut(n) {
                p.recent_active = false;
            }
        }
        self.change = Some(Box::new(Change {
            target,
            promote,
            caught_up_ticks: 0,
            stalled_ticks: 0,
            last_matched: 0,
            window: (0, None),
            committing_ticks: 0,
            answered: false,
            unheard_ticks: 0,
            hold: 0,
        }));
        self.advance_change();
        let end = self.log.last_index();
        if let Some(c) = self.change.as_mut() {
            c.hold = end;
        }
        Ok(())
    }

    /// Appends the next membership entry the group needs, if the last one is committed:
    /// leaving a joint configuration, or the next step of the change in progress. Ends the
    /// change once its target is committed, and steps down when this leader is no longer
    /// a voter of the committed membership.
    ///
    /// Appends nothing while a transfer runs: appended after `TimeoutNow`, the entry is
    /// missing from the target's log, the target's vote request deposes this leader, and a
    /// target elected without it erases it (review). The change goes on when the transfer
    /// is given up ([`Replica::abandon_transfer`]). If it succeeds, the change is dropped
    /// with the leadership (its request ends indeterminate, unless its target committed
    /// first); the new leader only leaves a joint configuration.
    pub(super) fn advance_change(&mut self) {
        if self.role != Role::Leader || self.config_uncommitted() {
            return;
        }
        // Only appends wait for a transfer: a change whose target committed ends, and a
        // leader the committed membership leaves out steps down (below), handing over to
        // the transfer's target.
        let appending = self.transfer.is_none();
        if self.membership.is_joint() {
            if appending {
                // Leave the joint configuration as soon as it is committed, whoever
                // entered it.
                let mut leave = (*self.membership).clone();
                leave.outgoing.clear();
                return self.append_membership(leave);
            }
        } else if let Some(c) = self.change.as_ref() {
            let current = &*self.membership;
            if *current == c.target {
                let target = c.target.clone();
                self.end_change(Ok(target));
            } else if !appending {
                // Its next entry waits for the transfer to end.
            } else if let Some(staged) = staged(current, &c.target) {
                self.append_membership(staged);
            } else if current.voters == c.target.voters {
                let target = c.target.clone();
                self.append_membership(target);
            } else if c.promote.is_empty() || c.caught_up_ticks >= self.config.learner_catchup_ticks
            {
                let mut joint = c.target.clone();
                joint.outgoing = current.voters.clone();
                joint.learners.retain(|n| !joint.outgoing.contains(n));
                self.append_membership(joint);
            }
        }
        if !self.membership.is_voter(self.node) && !self.config_uncommitted() {
            self.step_down_removed();
        }
    }

    /// Whether `node` may be handed leadership: a tracked voter of the configuration the
    /// group is changing to. A voter of a joint configuration's outgoing half only, or one
    /// the change under way leaves out, is being removed: elected, it would lead a
    /// membership that no longer has it.
    pub(super) fn may_take_over(&self, node: NodeId) -> bool {
        let demoted = (self.change.as_ref()).is_some_and(|c| !c.target.voters.contains(&node));
        self.membership.voters.contains(&node) && !demoted && self.progress.get(&node).is_some()
    }

    /// Whether a change under way waits for replicas to catch up before it promotes them
    /// (the joint configuration not yet in the log). Once that configuration is in the log
    /// they are voters: the change goes on until that entry commits, and cannot end
    /// `CatchUpTimeout` there ("it stays a learner" said the opposite of what then happened
    /// when the entry committed; review), only [`Replica::tick_committing`]'s way.
    fn is_promoting(&self) -> bool {
        self.change.as_ref().is_some_and(|c| {
            !c.promote.is_empty() && !c.promote.iter().all(|n| self.membership.voters.contains(n))
        })
    }

    /// A change whose latest configuration stays uncommitted for `timeout` ticks ends
    /// `Indeterminate(Timeout)`, as a proposal does; the group goes on with it (any leader
    /// leaves a joint configuration by itself). A leader whose new half lost its quorum
    /// may stay leader, for CheckQuorum counts a voter whose node is live whatever that
    /// node's replica does (one deleted by hand), and the change had no end for as long as
    /// that lasted (review).
    fn tick_committing(&mut self, timeout: u32) {
        let uncommitted = self.config_uncommitted();
        let Some(c) = self.change.as_mut() else {
            return;
        };
        c.committing_ticks = if uncommitted {
            c.committing_ticks + 1
        } else {
            0
        };
        if c.committing_ticks < timeout {
            return;
        }
        let error = MembershipChangeError::Indeterminate(crate::error::Indeterminate::Timeout);
        self.end_change(Err(error));
    }

    /// The change under way ended as `result`, which its event reports.
    fn end_change(&mut self, result: Result<Membership, MembershipChangeError>) {
        self.change = None;
        self.out_rare()
            .events
            .push(GroupEvent::MembershipChangeEnded { result });
    }

    /// A leader's tick: tells the replicas to promote a commit index no append told them,
    /// counts how long they have been caught up, and gives up on one that makes no
    /// progress, or on a configuration that does not commit.
    pub(super) fn tick_change(&mut self) {
        if self.heartbeat_elapsed == 0 {
            self.tell_untold_learners();
        }
        let last = self.log.last_index();
        let (within, timeout, election_timeout) = (
            self.config.learner_catchup_entries,
            self.config.proposal_timeout_ticks,
            self.config.election_timeout_min_ticks,
        );
        if !self.is_promoting() {
            return self.tick_committing(timeout);
        }
        let Some(c) = self.change.as_mut() else {
            return;
        };
        let progress: Vec<Option<&Progress>> =
            c.promote.iter().map(|n| self.progress.get(n)).collect();
        // Caught up: answering (heard from since the last CheckQuorum round), appends
        // streaming (its log matches), within `learner_catchup_entries` of the end, holding
        // the entry that made it a learner (`Change::hold`), and
        // known to have joined (`Progress::knows_commit`: an append told it a commit index
        // it held), for a joining replica votes only then (`Replica::joined`): promoted
        // earlier, a joint configuration could need the vote of a replica that will not
        // give it (simulator, seed 409). A replica caught up by a snapshot holds everything
        // committed, yet joins only once an append tells it the commit index; promoted
        // before, it was the one voter the joint configuration's new half had, still
        // refusing every vote, and when the leader then lost it to a partition no one could
        // be elected again (simulator, seed 7027970). Holding the leader's commit index at
        // the tick is not asked: a learner whose answers come after the voters' (a slower
        // link, steady writes) never does, and its promotion neither ended nor timed out
        // while the writes went on (review). A silent learner is never caught up, however
        // short the log: it must have answered since the change began, and not have
        // missed a whole CheckQuorum round since (it stops counting at most two election
        // timeouts after its last answer). Read from `recent_active` tick by tick
        // instead, the streak broke at every CheckQuorum round (which clears it) until the
        // next answer came: with `learner_catchup_ticks` near an election timeout, or
        // answers a few ticks away, it never grew long enough, and the change neither
        // ended nor timed out (review).
        let answering = progress.iter().all(|p| p.is_some_and(|p| p.recent_active));
        c.answered |= answering;
        c.unheard_ticks = if answering { 0 } else { c.unheard_ticks + 1 };
        let heard = c.answered && c.unheard_ticks <= election_timeout;
        let hold = c.hold;
        let is_caught_up = |p: Option<&Progress>| {
            p.is_some_and(|p| {
                p.state == ProgressState::Replicate
                    && p.matched + within >= last
                    && p.matched >= hold
                    && p.knows_commit
            })
        };
        let caught_up = heard && progress.iter().all(|p| is_caught_up(*p));
        let least = progress
            .iter()
            .map(|p| p.map_or(0, |p| p.matched))
            .min()
            .unwrap_or(0);
        // A snapshot on its way is progress while the replica answers, or takes chunks (up
        // to an election timeout after its last one): one waiting its turn for a send or
        // receive slot still answers. Counted as progress whatever the replica did, one
        // that went down during its transfer held the change, and every other change (its
        // own removal included), for good (review).
        let sending_snapshot = progress.iter().any(|p| {
            p.is_some_and(|p| {
                p.state == ProgressState::Snapshot
                    && (heard
                        || p.snapshot
                            .as_ref()
                            .is_some_and(|o| o.unacked_ticks < election_timeout))
            })
        });
        c.caught_up_ticks = if caught_up { c.caught_up_ticks + 1 } else { 0 };
        if least > c.last_matched || sending_snapshot || caught_up {
            c.stalled_ticks = 0;
        } else {
            c.stalled_ticks += 1;
        }
        c.last_matched = least;
        let gap = last.saturating_sub(least);
        let mut losing = false;
        // A transfer under way pauses the window: its replica's match stands still
        // meanwhile. Caught-up ticks do not reset it: a learner caught up in each lull of
        // bursty writes, never long enough to be promoted, is judged too.
        if !sending_snapshot {
            let (ticks, start) = c.window;
            if ticks + 1 >= timeout {
                // Still more than `within` behind (a replica that near is not slower than
                // the writes), and no closer than a window ago.
                losing = gap > within && start.is_some_and(|start| gap >= start);
                c.window = (0, Some(gap));
            } else {
                c.window = (ticks + 1, start.or(Some(gap)));
            }
        }
        if c.stalled_ticks >= timeout || losing {
            let behind = c
                .promote
                .iter()
                .zip(&progress)
                .find(|(_, p)| !is_caught_up(**p))
                .or_else(|| c.promote.iter().zip(&progress).next());
            let node = behind.map_or(NodeId(0), |(n, _)| *n);
            // `CatchUpTimeout` says the learner was added and stays one: not so while the
            // entry adding it is uncommitted (a leader without `check_quorum`, cut off),
            // which another leader may truncate (review).
            let error = if self.config_uncommitted() {
                MembershipChangeError::Indeterminate(crate::error::Indeterminate::Timeout)
            } else {
                MembershipChangeError::CatchUpTimeout { node }
            };
            return self.end_change(Err(error));
        }
        if c.caught_up_ticks >= self.config.learner_catchup_ticks {
            self.advance_change();
        }
    }

    /// Replicas to promote that hold everything committed without an append having told
    /// them so (a snapshot caught them up, and nothing was appended since) are told, in an
    /// append of no entries; called once per heartbeat interval, until they answer. A
    /// heartbeat will not do: its commit index is capped at what the replica is known to
    /// hold, so it cannot say that the replica holds all of it.
    fn tell_untold_learners(&mut self) {
        let committed = self.log.committed;
        let Some(c) = self.change.as_ref() else {
            return;
        };
        let untold: Vec<NodeId> = c
            .promote
            .iter()
            .copied()
            .filter(|n| {
                self.progress.get(n).is_some_and(|p| {
                    p.state == ProgressState::Replicate && p.matched >= committed && !p.knows_commit
                })
            })
            .collect();
        for n in untold {
            self.tell_commit(n);
        }
    }

    /// Sends `to` an append of no entries at its next index, carrying the commit index.
    fn tell_commit(&mut self, to: NodeId) {
        let committed = self.log.committed;
        let Some(p) = self.progress.get_mut(&to) else {
            return;
        };
        let prev_index = p.next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            return; // compacted: the replica needs a snapshot first
        };
        // Recorded as every append's commit is: an answer is read against it.
        p.commit_sent = p.commit_sent.max(committed);
        let body = MessageBody::Append {
            prev_index,
            prev_term,
            entries: Entries::default(),
            commit: committed,
        };
        self.send_now_msg(to, self.term, body);
    }

    fn append_membership(&mut self, membership: Membership) {
        let entry = Entry {
            index: self.log.last_index() + 1,
            term: self.term,
            payload: Payload::Membership(Box::new(membership)),
        };
        self.uncommitted_bytes += entry.size_bytes();
        self.append_own(entry.clone());
        tracing::info!(node = %self.node, group = %self.id, term = self.term, index = entry.index, "membership entry appended");
        self.appended_configs([&entry]);
        // A single-replica group commits on its own write: no answer will come to trigger it.
        self.maybe_commit();
    }

    /// The leader's membership changed: a record for every new replica; replicas that left
    /// keep theirs, marked retiring, until they hold the commit that removed them.
    pub(super) fn sync_progress(&mut self) {
        let next = self.log.last_index() + 1;
        let members = self.membership.replicas();
        let index = self.log.last_index();
        let mut records: Vec<(NodeId, Progress)> = std::mem::take(&mut self.progress)
            .into_iter()
            .map(|(n, mut p)| {
                if !members.contains(&n) && p.retire_at == 0 {
                    p.retire_at = index;
                } else if members.contains(&n) && p.retire_at != 0 {
                    // Added back while it retired, perhaps as a new replica joining again
                    // (its node deleted the removed one by hand): the record's match,
                    // window and what it was told were the retiring one's. Kept, they sent
                    // the new replica appends it cannot take, and a late answer of the
                    // retiring one, read against that window, told the leader the new one
                    // knew the commit, which its promotion waits for (review). Probed
                    // afresh. A late answer can still restore a match: group messages carry
                    // no sender life.
                    p.retire_at = 0;
                    p.forget_match(next);
                }
                (n, p)
            })
            .collect();
        for n in members {
            if n != self.node && !records.iter().any(|(m, _)| *m == n) {
                records.push((n, Progress::new(next)));
            }
        }
        self.progress = records.into_iter().collect();
    }

    /// `node`, outside the membership and not tracked, asked this leader for its vote: a
    /// replica removed and forgotten untold (it was silent for an election timeout while it
    /// retired). It campaigns for good, and its node never deletes it. Tracked again as
    /// retiring, it is caught up to the leader's last entry and told it was removed
    /// ([`MessageBody::Removed`]), or forgotten again if it falls silent. Found by a review
    /// of an earlier stop and left then. The node calls it too, to nudge a replica this
    /// leader forgot untold (`node/untold.rs`): one gone quiet never asks.
    pub(crate) fn retire_again(&mut self, node: NodeId) {
        if self.role != Role::Leader
            || node == self.node
            || self.membership.contains(node)
            || self.tracks(node)
        {
            return;
        }
        let last = self.log.last_index();
        let mut p = Progress::new(last + 1);
        // Told at the commit index when the membership there leaves it out: the last
        // index may not commit soon (a group short of a quorum), and no later entry adds
        // it back (it is in no membership of this leader's log past that).
        let committed = self.log.committed;
        let removed_then = !self.membership_at(committed).contains(node);
        p.retire_at = if removed_then { committed } else { last };
        // Woken first: waking a quiet leader clears what its records heard.
        self.wake();
        // It has just spoken (or its node is live, for a nudge): CheckQuorum's next round
        // does not forget it unheard.
        p.recent_active = true;
        self.progress.insert(node, p);
    }

    /// A replica that heard no leader for each of its randomized election timeouts and does
    /// not campaign asks to be tracked ([`MessageBody::Unheard`]): a learner asks the voters
    /// of its membership and the leader it knew; a follower holding back its campaign for
    /// its leader's live node asks that leader. One whose timer is stopped for a quiet
    /// leader's live node (`paused`) asks too, once per maximum election timeout of its
    /// ticks: a leader that removed it after it went quiet, while it was cut off, forgot
    /// it, and it waited for that leader for good (simulator, seed 434). A leader that
    /// removed it and forgot it untold — its `Removed` lost, or it silent for an election
    /// timeout before it held the removal — tracks it again (`retire_again`), and tells it
    /// once it holds the removal. A replica that campaigns asks by its vote requests. A
    /// joining replica does not ask: it ignores `Removed` (a late one may be its node's
    /// previous replica's), so asking would only start its catch-up over. Found by the
    /// simulator's check that a removed replica is told: 85 of 400 seeds kept one for good.
    pub(super) fn ask_if_unheard(&mut self, paused: bool) {
        let due = if paused {
            // Its election timer stands still: `heartbeat_elapsed`, a leader's count, counts
            // the ticks it waits (no replica is both).
            self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
            let timeout = self.config.election_timeout_max_ticks;
            let due = u32::from(self.heartbeat_elapsed) >= timeout.min(u32::from(u16::MAX));
            if due {
                self.heartbeat_elapsed = 0;
            }
            due
        } else {
            let timeout = self.randomized_timeout.max(1);
            self.election_elapsed > 0 && self.election_elapsed.is_multiple_of(timeout)
        };
        if !due || self.is_joining() || self.removed {
            return;
        }
        let m = &self.membership;
        let mut to: BTreeSet<NodeId> = if self.role == Role::Learner {
            m.voters.iter().chain(&m.outgoing).copied().collect()
        } else {
            BTreeSet::new()
        };
        to.extend(self.leader);
        to.remove(&self.node);
        // This one says what an unsent earlier one of its own said (`drop_unsent`); those
        // passed on for a replica whose vote request was dropped stay.
        let me = self.node;
        self.drop_unsent(|m| {
            to.contains(&m.to)
                && matches!(m.body, MessageBody::Unheard { replica, .. } if replica == me)
        });
        for n in to {
            let body = MessageBody::Unheard {
                replica: self.node,
                term: self.term,
            };
            // After the write: a term raised in this cycle is durable before it is said.
            self.send_after(n, body);
        }
    }

    /// `from`, at `msg_term`, says `replica` (itself, or one whose vote request `from`
    /// dropped) of term `term` heard no leader ([`MessageBody::Unheard`]).
    pub(super) fn step_unheard(&mut self, from: NodeId, msg_term: u64, replica: NodeId, term: u64) {
        let asked = replica == from;
        if asked && self.role != Role::Leader && msg_term <= self.term {
            // It may hold back its campaign for this replica, taking it for its leader: at
            // an earlier term, our term (told as a stale leader is told) ends that; at ours,
            // a refusal of no proposals does, as a refused forward does
            // (`leader_disowned`). Its campaign then reaches the current leader.
            let body = if msg_term < self.term {
                MessageBody::HeartbeatResponse { round: 0 }
            } else {
                MessageBody::not_leader(self.leader)
            };
            self.send_after(from, body);
        }
        // A follower relays a replica's own question only: relays are not relayed on.
        if asked || self.role == Role::Leader {
            self.heard_unheard(replica, term);
        }
    }

    /// `replica`, of term `term`, heard no leader (`MessageBody::Unheard`, or a vote
    /// request this replica dropped): a leader tracks it again if it removed and forgot it
    /// (`retire_again`), if its term is no later than ours. One of a later term would
    /// refuse our appends and, once tracked, depose us with its answers (simulator, seeds
    /// 482, 1152 and 1335, without PreVote): if removed, it is told so by the commit index
    /// alone (`tell_removed_late`). A leader that tracks it wakes, if quiet. Any other
    /// replica that knows a leader relays it there.
    pub(super) fn heard_unheard(&mut self, replica: NodeId, term: u64) {
        if self.role == Role::Leader {
            if term > self.term {
                return self.tell_removed_late(replica);
            }
            if self.tracks(replica) {
                // A replica it tracks, left waiting: a quiet leader wakes, heartbeats it,
                // and tells it the group is quiet again once idle, so that it stops asking
                // (review: a restarted learner of a quiet group asked for good).
                return self.wake();
            }
            return self.retire_again(replica);
        }
        if let Some(leader) = self.leader.filter(|l| *l != self.node && *l != replica) {
            self.send_after(leader, MessageBody::Unheard { replica, term });
        }
    }

    /// `replica`, of a later term than this leader's, asked for a vote or to be heard. If
    /// the membership committed at the commit index leaves it out, and no later one of this
    /// leader's log adds it back, it is told so (`MessageBody::Removed` of the commit index,
    /// at this leader's earlier term; `handle_removed_unmatched`). Removed while cut off, it
    /// campaigned alone (no PreVote) past every term of the group: it refuses this leader's
    /// appends, so it can never be caught up and told as a retiring replica is, and its
    /// node kept it for good (the simulator's "of a later term" kind, 37 of seeds
    /// 0–1,999). Sent once per question, which come once per election timeout of its own
    /// (its vote request to this leader, and each follower's relay of one it dropped),
    /// until its node deletes it.
    fn tell_removed_late(&mut self, replica: NodeId) {
        let committed = self.log.committed;
        if self.membership.contains(replica) || self.membership_at(committed).contains(replica) {
            return;
        }
        self.send_now_msg(
            replica,
            self.term,
            MessageBody::Removed {
                index: committed,
                matched: false,
            },
        );
    }

    /// A leader stepping down: the replicas it tracked while they retired are forgotten
    /// untold (the next leader knows nothing of them), for the node to nudge.
    pub(super) fn forget_retiring(&mut self) {
        let retiring: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, p)| p.retire_at != 0)
            .map(|(n, _)| *n)
            .collect();
        for n in retiring {
            self.forgot_untold(n);
        }
    }

    /// Hands `node`, forgotten before it was told it was removed, to this node's nudges,
    /// with the term this replica leads in.
    fn forgot_untold(&mut self, node: NodeId) {
        let term = self.term;
        self.out_rare().forgotten.push((node, term));
    }

    /// Whether this leader tracks `node` (a member, or a replica retiring).
    pub(crate) fn tracks(&self, node: NodeId) -> bool {
        self.progress.get(&node).is_some()
    }

    /// Forgets retiring replicas that hold and know the commit that removed them — telling
    /// them they were removed ([`MessageBody::Removed`]) — or that did not answer for an
    /// election timeout (`silent_too`). One that only a snapshot could catch up to the
    /// removal (this log is compacted past what it holds) is told once the removal
    /// commits, without the snapshot and without `matched`, and judges by what it holds
    /// (`handle_removed_unmatched`). Caught up by the snapshot first, it waited for a
    /// send slot that transfers to the group's new replicas held, and its node kept it past
    /// the simulator's bound (seed 1,700,266): a whole stream for a replica about to go.
    pub(super) fn drop_retired(&mut self, silent_too: bool) {
        let forget_silent = |p: &Progress| silent_too && p.retire_at != 0 && !p.recent_active;
        let stays = |log: &Log, p: &Progress| removal_notice(log, p).is_none() && !forget_silent(p);
        if self.progress.values().all(|p| stays(&self.log, p)) {
            return;
        }
        let mut kept = Vec::new();
        for (n, p) in std::mem::take(&mut self.progress) {
            match removal_notice(&self.log, &p) {
                Some(matched) => {
                    let index = p.retire_at;
                    self.send_now_msg(n, self.term, MessageBody::Removed { index, matched });
                }
                None if forget_silent(&p) => self.forgot_untold(n),
                None => kept.push((n, p)),
            }
        }
        self.progress = kept.into_iter().collect();
    }

    /// A joining replica holds everything its leader had committed: from now on it is a
    /// replica like any other, and its stored membership says so once written.
    pub(super) fn joined(&mut self) {
        if !self.membership.contains(self.node) {
            return; // not yet added: the entry adding it is still to come
        }
        self.join = Join::Unsaved;
        tracing::info!(node = %self.node, group = %self.id, "joining replica caught up");
        self.save_joined();
        self.refresh_role();
    }

    /// Stores that this replica joined once the membership in force at the commit index
    /// has it: that membership becomes its stored one, so that after a restart it is no
    /// longer joining, and it is what a restart puts below every membership entry its log
    /// holds past its snapshot. Stored at once, the membership of the entry that added it
    /// was that base while the entry was uncommitted: when a new leader truncated the
    /// entry, a restarted replica fell back to it and took itself for a member the group
    /// never had (simulator's check that removed replicas are told, seed 113: a learner
    /// the leader had never added refused `Removed` for good).
    pub(super) fn save_joined(&mut self) {
        if self.join != Join::Unsaved {
            return;
        }
        let base = self.membership_at(self.log.committed);
        if base.contains(self.node) {
            self.join = Join::Member;
            self.out_rare().joined = Some((*base).clone());
        }
    }

    /// The leader says the membership entry at `index` removed this replica, and that this
    /// replica's log matches its own through `index` (`Removed` with `matched`): reported
    /// if this replica holds that entry committed and is in no later membership. `index` is
    /// committed, so it commits through `index` as a heartbeat's commit would: the message
    /// that carried the commit may have been lost or overtaken, and the leader tells once.
    pub(super) fn handle_removed(&mut self, from: NodeId, index: u64) {
        if self.leader != Some(from) || self.is_joining() {
            return;
        }
        self.commit_to(index.min(self.log.last_index()));
        if index > self.log.committed {
            return;
        }
        let then = self.membership_at(index);
        if !then.contains(self.node) && !self.membership.contains(self.node) {
            self.report_removed();
        }
    }

    /// A leader of an earlier term says the membership committed at `index` leaves this
    /// replica out (`tell_removed_late`): this replica campaigned past that leader's term,
    /// so that leader cannot catch it up to tell it as `handle_removed` is told. What it
    /// says still holds — an index committed stays committed, whoever says so — but not
    /// the entry's term, so this replica's own entry there may be another's. It is removed:
    /// - if it does not hold `index`. Then it never acknowledged an entry from `index` on
    ///   (one it acknowledged, it would hold: a committed entry is never truncated), so no
    ///   quorum since counts it; and a membership that adds it back makes it a voter only
    ///   once caught up past `index` (a replica is added as a learner first). Its stale
    ///   membership may still name it a voter: that is why it campaigns.
    /// - if it holds `index`, and its log names it in no membership past `index`
    ///   (`left_out_after`). Up to `index` the leader's word stands: the membership
    ///   committed there leaves it out, whatever this log holds there (an entry of another
    ///   term is uncommitted). Past it, only being added back could make it a voter again,
    ///   and a membership that does so, committed, is in this log once it is a voter: a
    ///   learner is promoted only once it holds the entry that added it (`Change::hold`).
    ///   Judged by its membership at `index` and its latest alone, a
    ///   node added back after `index` and being removed again (the joint configuration
    ///   committed, the last entry not) was deleted while a voter of the joint
    ///   configuration (review); judged by its own commit index instead, one that held
    ///   its removal but had not learned it committed was kept for good (review).
    ///
    /// Its own leader says the same without `matched` when only a snapshot could catch this
    /// replica up to `index` (`drop_retired`): that leader cannot know what this log holds
    /// there either.
    ///
    /// A joining replica ignores it, as it ignores `Removed` of its own term: a late one
    /// may be meant for its node's previous replica of the group.
    pub(super) fn handle_removed_unmatched(&mut self, index: u64) {
        if self.is_joining() {
            return;
        }
        let holds = index <= self.log.last_index();
        if !holds || self.left_out_after(index) {
            self.report_removed();
        }
    }

    /// This leader is no longer a voter of the committed membership (§4.2.2): it hands over
    /// to the most up-to-date voter at once (`TimeoutNow`) and steps down.
    fn step_down_removed(&mut self) {
        // The transfer under way, if any, is the one asked for: its target first among
        // the most up to date, so that the transfer ends as asked.
        let asked = self.transfer.as_ref().map(|t| t.to);
        let best = self
            .progress
            .iter()
            .filter(|(n, _)| self.membership.voters.contains(n))
            .max_by_key(|(n, p)| (p.matched, asked == Some(**n), std::cmp::Reverse(**n)))
            .map(|(n, p)| (*n, p.matched));
        tracing::info!(node = %self.node, group = %self.id, term = self.term, "stepping down: no longer a voter");
        if let Some((to, matched)) = best
            && matched == self.log.last_index()
        {
            self.send_now_msg(to, self.term, MessageBody::TimeoutNow);
        }
        self.become_follower(self.term, None);
        if !self.membership.contains(self.node) {
            self.report_removed();
        }
    }

    /// Reports, once, that this replica was removed: the application may delete it.
    fn report_removed(&mut self) {
        if !self.removed {
            self.removed = true;
            tracing::info!(node = %self.node, group = %self.id, "replica removed from the group");
            self.out_rare().events.push(GroupEvent::Removed);
        }
    }
}

/// The membership that adds, as learners, the replicas `target` has and `current` lacks;
/// `None` when there are none.
fn staged(current: &Membership, target: &Membership) -> Option<Membership> {
    let missing: Vec<NodeId> = target
        .replicas()
        .into_iter()
        .filter(|n| !current.contains(*n))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut staged = current.clone();
    staged.learners.extend(missing);
    Some(staged)
}

/// Whether the replica `p` tracks, retiring, is to be told now that it was removed, and
/// with `matched` (`drop_retired`): once its removal commits, when it holds the removal
/// and was sent a commit covering it (`Some(true)`), or when only a snapshot could bring it
/// that far (`Some(false)`).
fn removal_notice(log: &Log, p: &Progress) -> Option<bool> {
    if p.retire_at == 0 || p.retire_at > log.committed {
        return None;
    }
    if p.matched >= p.retire_at {
        (p.commit_sent >= p.retire_at).then_some(true)
    } else {
        only_a_snapshot_reaches(log, p).then_some(false)
    }
}

/// Whether only a snapshot can bring the replica `p` tracks further: a transfer to it is
/// under way or waits for a send slot, or `log` is compacted past the entry its next
/// append would follow. (A predicate, unlike `Replica::need_snapshot`, which starts a
/// transfer.)
fn only_a_snapshot_reaches(log: &Log, p: &Progress) -> bool {
    p.state == ProgressState::Snapshot || log.term(p.next - 1).is_none()
}
