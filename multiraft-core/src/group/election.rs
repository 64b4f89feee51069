//! Leader election: the logical clock (`tick`, the election and heartbeat timers,
//! CheckQuorum), campaigns with and without PreVote, vote requests and answers, and the role
//! changes (`become_*`) they end in (Raft §5.2, dissertation §4.2.3, §6.2 and §9.6).
//!
//! Everything that decides who leads, and when a replica gives up on a leader, is here; what
//! a leader then does with its followers is in `replication.rs`.

use std::collections::BTreeMap;

use crate::entry::{Entry, Payload};
use crate::ids::NodeId;
use crate::membership::VoteResult;
use crate::message::{Message, MessageBody};

use super::progress::Progress;
use super::{GroupEvent, LeaderSaid, Replica, Role, VoteHold};

/// How many maximum election timeouts a follower whose leader's node is live holds back
/// its own campaign ([`Replica::tick_with`]). Long enough to ride out a loop that runs far
/// behind under overload (16 × 20 ticks: 16 s at the default 50 ms tick); short enough
/// that a group whose leader's node lives but lost the replica (its group removed there by
/// hand) still elects another.
pub const DEFERRED_TIMEOUTS: u32 = 16;

impl Replica {
    // ----- timers -----------------------------------------------------------------------------

    /// Advances the group's logical clock by one tick. A quiesced group ignores ticks.
    pub fn tick(&mut self) {
        self.tick_with(|_| false)
    }

    /// [`Replica::tick`], knowing which nodes are live (`node_live`, docs/design.md §4.3):
    /// - a follower whose leader said the group went quiet keeps its election timer stopped
    ///   while the leader's node is live, even after waking (failure detection is per node;
    ///   the leader's quiesced lease counts on it);
    /// - any other follower whose leader's node is live lets its timer run, but neither
    ///   campaigns itself nor answers other candidates for up to [`DEFERRED_TIMEOUTS`]
    ///   election timeouts: a live node whose heartbeats are late is busy, not dead;
    /// - a leader counts a follower whose node is live as active for CheckQuorum.
    pub fn tick_with(&mut self, node_live: impl Fn(NodeId) -> bool) {
        self.tick_knowing(node_live, |_| false);
    }

    /// [`Replica::tick_with`], knowing too which nodes are declared down (`node_down`: not
    /// heard within their liveness timeout; a node neither live nor down is unknown): a
    /// leader goes quiet without waiting for its replicas there ([`Replica::is_quiesced`];
    /// docs/design.md §4.3), once the replicas on the other nodes, a quorum with it, hold
    /// the whole log.
    pub fn tick_knowing(
        &mut self,
        node_live: impl Fn(NodeId) -> bool,
        node_down: impl Fn(NodeId) -> bool,
    ) {
        if self.quiesced {
            return;
        }
        let paused = self.leader_said == LeaderSaid::Quiet && self.leader_on_live_node(&node_live);
        if !paused {
            self.election_elapsed = self.election_elapsed.saturating_add(1);
        }
        if self.election_elapsed >= self.config.election_timeout_min_ticks {
            // A restart's hold ends with the first timeout; from then on votes are held
            // only while this follower holds back its own campaign (`VoteHold::Deferring`
            // says why).
            self.vote_hold = if self.defers_campaign(&node_live) {
                VoteHold::Deferring
            } else {
                VoteHold::None
            };
        }
        self.tick_incoming();
        match self.role {
            Role::Leader => self.tick_leader(&node_live, &node_down),
            Role::Learner => self.ask_if_unheard(paused),
            _ if paused => self.ask_if_unheard(true),
            _ => {
                if self.election_elapsed >= self.randomized_timeout {
                    if self.defers_campaign(&node_live) {
                        self.ask_if_unheard(false);
                    } else {
                        self.election_elapsed = 0;
                        self.campaign_inner();
                    }
                }
            }
        }
        self.check_invariants();
    }

    /// How many of the coming ticks would do nothing to this replica but count its
    /// election timer: a follower's, whose timer runs (its leader did not say `Quiet`) and
    /// stays below `election_timeout_min_ticks`, where the first thing a tick decides is
    /// met (the hold on votes), with no snapshot arriving to time out. Its node may leave
    /// it unticked for that many ticks and count them later ([`Replica::count_quiet_ticks`]),
    /// before anything else reaches it (docs/design.md §4.10). 0 for every other replica.
    pub(crate) fn quiet_ticks(&self) -> u32 {
        let counting = self.role == Role::Follower
            && !self.quiesced
            && self.leader_said != LeaderSaid::Quiet
            && self.incoming.is_none();
        if !counting {
            return 0;
        }
        let min = self.config.election_timeout_min_ticks;
        min.saturating_sub(1).saturating_sub(self.election_elapsed)
    }

    /// Counts `ticks` ticks that [`Replica::quiet_ticks`] said would only count the
    /// election timer, served while its node left this replica unticked.
    pub(crate) fn count_quiet_ticks(&mut self, ticks: u32) {
        self.election_elapsed = self.election_elapsed.saturating_add(ticks);
    }

    /// Starts an election now, as if the election timeout had fired (PreVote first when
    /// enabled). For tests, scripted scenarios and operator tools; a leader or a learner
    /// ignores it.
    pub fn campaign(&mut self) {
        self.wake();
        if self.role != Role::Leader {
            self.election_elapsed = 0;
            self.campaign_inner();
        }
        self.check_invariants();
    }

    /// Whether this follower, its election timer run out, holds back its campaign: its
    /// leader is a voter whose node is live, and the timer has not yet run
    /// [`DEFERRED_TIMEOUTS`] maximum election timeouts. Under overload a leader's heartbeats
    /// come late while its node's batches still arrive; campaigning then would
    /// cost the group its leader for nothing (an election at 4,096 busy groups cost
    /// thousands of proposals, BENCHMARKS.md). The bound keeps a group whose leader's node
    /// lives but no longer hosts it (removed there by hand) from waiting forever.
    fn defers_campaign(&self, node_live: &impl Fn(NodeId) -> bool) -> bool {
        self.role == Role::Follower
            && self.election_elapsed < self.deferral_bound()
            && self.leader_on_live_node(node_live)
    }

    /// The election timer's count at which a follower stops holding back for its leader's
    /// live node: [`DEFERRED_TIMEOUTS`] maximum election timeouts.
    fn deferral_bound(&self) -> u32 {
        self.config
            .election_timeout_max_ticks
            .saturating_mul(DEFERRED_TIMEOUTS)
    }

    /// The leader this follower follows refused, as not the leader, proposals forwarded to
    /// it at this follower's current term (the refusal echoes the term; a node that does
    /// not host the group refuses too), or said so otherwise at that term (a `NotLeader`
    /// refusal's term is one its sender does not lead, now or again: `Message::term`): the
    /// follower forgets
    /// that leader, so it stops
    /// holding back its campaign, and refusing other candidates, for that leader's live
    /// node (`defers_campaign`), quiesced leader or not, and campaigns when its own
    /// randomized timeout runs out (followers refused together do not campaign together).
    /// The leader's messages of this term that arrive later are dropped
    /// (`LeaderSaid::Stopped`): reordered behind the refusal, a late append made that
    /// replica its leader again, and a late quiesce notice stopped its timer for as long as
    /// the old leader's node lived (review).
    ///
    /// Why that is safe: within one term a follower takes only the replica that sent it a
    /// leader's message of that term for leader, so the leader led at this term before the
    /// forward left, and leads no more when the forward arrived (it stepped down, moved to
    /// a later term, restarted, or its replica is gone); a replica that does not lead
    /// serves no reads, so no lease counts on this follower's vote. A refusal of a forward
    /// sent at an earlier term says nothing of this leadership and is ignored by the
    /// caller: before the echo, a refusal carried no term, so the follower acted only past
    /// its election timeout, and a follower whose quiesced leader had removed itself held
    /// back for that leader's live node for good (simulator, seed 7022963).
    pub(super) fn leader_disowned(&mut self) {
        if self.role == Role::Follower {
            self.leader = None;
            self.leader_said = LeaderSaid::Stopped;
            self.quiet_seen = 0;
            self.vote_hold = VoteHold::None;
            self.report_leader();
        }
    }

    /// Whether this replica follows a leader that is a voter of its membership, on a live
    /// node. A leader that removed itself is no voter: once the membership without it is
    /// here, waiting for its live node would wait forever, for it may already have deleted
    /// its replica. Regression: a quiesce notice that arrived after the appends removing its
    /// leader left a follower waiting for good (simulator, seed 1954).
    fn leader_on_live_node(&self, node_live: &impl Fn(NodeId) -> bool) -> bool {
        self.role != Role::Leader
            && self
                .leader
                .is_some_and(|l| l != self.node && self.membership.is_voter(l) && node_live(l))
    }

    fn tick_leader(
        &mut self,
        node_live: &impl Fn(NodeId) -> bool,
        node_down: &impl Fn(NodeId) -> bool,
    ) {
        self.tick_transfer();
        self.tick_change();
        if self.role != Role::Leader {
            return; // the change stepped this replica down
        }
        self.tick_snapshots();
        self.heartbeat_elapsed = self.heartbeat_elapsed.saturating_add(1);
        self.idle_ticks = self.idle_ticks.saturating_add(1);
        if u32::from(self.heartbeat_elapsed) >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            if self.idle_for_a_timeout() && self.can_quiesce(node_down) {
                self.quiesce();
                return;
            }
            self.broadcast_heartbeat();
            // A commit index no entries carried goes with the heartbeat round, not every
            // tick (`commit_notice_due`).
            self.commit_notice_due = true;
        }
        if self.election_elapsed >= self.config.election_timeout_min_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_active(node_live) {
                // CheckQuorum (dissertation §6.2): a leader cut off from a quorum steps down
                // so that clients stop waiting on it.
                tracing::info!(node = %self.node, group = %self.id, term = self.term, "stepping down: no quorum heard (CheckQuorum)");
                self.become_follower(self.term, None);
            }
            if self.role == Role::Leader {
                self.drop_retired(true);
            }
            for pr in self.progress.values_mut() {
                pr.recent_active = false;
            }
        }
    }

    /// Whether a quorum answered in the last election timeout, or has its node live: a
    /// follower whose node is live but whose answers wait behind a busy loop is still there.
    fn quorum_active(&self, node_live: &impl Fn(NodeId) -> bool) -> bool {
        let me = self.node;
        let result = self.membership.vote_result(|n| {
            Some(n == me || node_live(n) || self.progress.get(&n).is_some_and(|p| p.recent_active))
        });
        result == VoteResult::Won
    }

    // ----- elections ------------------------------------------------------------------------

    fn campaign_inner(&mut self) {
        if !self.electable() {
            return;
        }
        self.election_started();
        // A pre-candidate whose round timed out runs another pre-vote round: it must not
        // raise its term without a majority's assent (dissertation §9.6), or a partitioned
        // replica would come back with a higher term and depose a healthy leader.
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate(false);
        }
    }

    /// Campaigns at once in a new term, without PreVote, asking voters to answer even if
    /// they hear from the leader: that leader handed over (`transfer.rs`).
    pub(super) fn campaign_for_transfer(&mut self) {
        self.election_started();
        self.become_candidate(true);
    }

    fn election_started(&mut self) {
        tracing::debug!(node = %self.node, group = %self.id, term = self.term, "campaign started");
        self.out_rare().events.push(GroupEvent::ElectionStarted);
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.request_votes(true, false);
    }

    fn become_candidate(&mut self, transfer: bool) {
        self.role = Role::Candidate;
        self.term += 1;
        self.leader_said = LeaderSaid::Nothing;
        self.vote = Some(self.node);
        self.leader = None;
        self.hard_state_dirty = true;
        self.votes.clear();
        self.reset_election_timer();
        self.request_votes(false, transfer);
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        self.votes.insert(self.node, true);
        if self.tally() == VoteResult::Won {
            // The only voter: elected before its new term is durable.
            self.term_unsaved = !pre_vote;
            return self.won(pre_vote);
        }
        // A new round replaces the requests of an earlier one not yet sent: their answers
        // would not count (`drop_unsent`).
        self.drop_unsent(|m| matches!(m.body, MessageBody::Vote { .. }));
        let term = if pre_vote { self.term + 1 } else { self.term };
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let voters: Vec<NodeId> = self.voters_except_self();
        for to in voters {
            // After the write: a candidate's own vote is durable before any vote counts.
            let m = Message {
                group: self.id,
                from: self.node,
                to,
                term,
                body: MessageBody::Vote {
                    pre_vote,
                    last_index,
                    last_term,
                    transfer,
                },
            };
            self.out_after().push(m);
        }
    }

    fn voters_except_self(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .membership
            .voters
            .union(&self.membership.outgoing)
            .copied()
            .filter(|n| *n != self.node)
            .collect();
        v.dedup();
        v
    }

    fn tally(&self) -> VoteResult {
        self.membership.vote_result(|n| self.votes.get(&n).copied())
    }

    fn won(&mut self, pre_vote: bool) {
        if pre_vote {
            self.become_candidate(false);
        } else {
            self.become_leader();
        }
    }

    pub(super) fn handle_vote(
        &mut self,
        from: NodeId,
        term: u64,
        pre_vote: bool,
        last_index: u64,
        last_term: u64,
    ) {
        // For a real vote the term rules above already moved us to `term`.
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        // Whatever this replica's own membership: the candidate counts the votes of its own
        // membership's voters (dissertation §4.1), and a learner that has not yet received
        // the entry promoting it may be one of them — refusing would leave a joint
        // configuration unable to elect (simulator, seed 51).
        // A joining replica does not vote: its log lacks committed entries (see `joining`).
        let grant = can_vote && !self.is_joining() && self.log.is_up_to_date(last_index, last_term);
        if grant {
            if !pre_vote {
                self.vote = Some(from);
                self.hard_state_dirty = true;
                self.election_elapsed = 0;
            }
            let m = Message {
                group: self.id,
                from: self.node,
                to: from,
                term,
                body: MessageBody::VoteResponse {
                    pre_vote,
                    granted: true,
                },
            };
            self.out_after().push(m);
        } else {
            self.send_after(
                from,
                MessageBody::VoteResponse {
                    pre_vote,
                    granted: false,
                },
            );
            self.defer_to_better_candidate(last_index, last_term);
        }
    }

    /// This replica refused a vote to a candidate whose log is more up to date than its
    /// own (it had voted in that term, or the request's term was behind): it puts off its
    /// own campaign to between one and two maximum election timeouts from now, so that the
    /// candidate, which times out within one, asks again first, at a term this replica
    /// has not voted in. A replica that cannot win campaigning on a faster clock otherwise
    /// kept raising the term past the one that can: without PreVote, with a membership
    /// that no longer holds the other (so never asking it), it campaigned every 0.4 s at
    /// a term the up-to-date candidate learned only from the refusal, while that one
    /// campaigned every 0.55 s, always one term behind (simulator, seed 7011887). Granting
    /// resets the timer anyway; refusing a candidate no more up to date leaves it alone
    /// (seed 182: such a candidate must not hold back the replicas that can win).
    pub(super) fn defer_to_better_candidate(&mut self, last_index: u64, last_term: u64) {
        let better = (last_term, last_index) > (self.log.last_term(), self.log.last_index());
        if better
            && matches!(
                self.role,
                Role::Follower | Role::PreCandidate | Role::Candidate
            )
        {
            let (min, max) = (
                self.config.election_timeout_min_ticks,
                self.config.election_timeout_max_ticks,
            );
            self.election_elapsed = 0;
            self.randomized_timeout = max.saturating_add(self.rng.range(min, max));
        }
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let expected = if pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        if self.role != expected {
            return;
        }
        self.votes.insert(from, granted);
        match self.tally() {
            VoteResult::Won => self.won(pre_vote),
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    // ----- roles ------------------------------------------------------------------------------

    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.randomized_timeout = self.rng.range(
            self.config.election_timeout_min_ticks,
            self.config.election_timeout_max_ticks,
        );
    }

    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        let new_term = term > self.term;
        if self.role == Role::Leader {
            self.forget_retiring();
        }
        if new_term {
            self.term = term;
            self.vote = None;
            self.hard_state_dirty = true;
        }
        if self.role == Role::Leader {
            tracing::info!(node = %self.node, group = %self.id, term = self.term, leader = ?leader.map(|l| l.0), "stepped down");
            self.abandon_reads();
            if new_term {
                self.tell_followers_of_new_term(leader);
            }
        }
        self.role = if self.electable() {
            Role::Follower
        } else {
            Role::Learner
        };
        self.transfer = None;
        self.change = None;
        if leader != self.leader || new_term {
            self.leader_said = LeaderSaid::Nothing;
            self.quiet_seen = 0;
        }
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.uncommitted_bytes = 0;
        self.reset_election_timer();
        self.report_leader();
    }

    /// A leader deposed by a later term tells its followers that term (with the answer a
    /// stale leader gets, `HeartbeatResponse`), so that they stop following it. Without
    /// this, a follower whose timer ran out kept holding back, and refusing candidates, for
    /// as long as the old leader's node lived (`defers_campaign`, up to
    /// [`DEFERRED_TIMEOUTS`] election timeouts): the old leader, now a follower granting
    /// votes to the candidate that deposed it, never campaigned, and that candidate never
    /// got the others' votes (simulator, seed 7003456). Sent after this ready's write, as
    /// every message that carries a new term. `new_leader` (when known) needs no telling.
    fn tell_followers_of_new_term(&mut self, new_leader: Option<NodeId>) {
        let mut position = 0;
        while let Some(to) = self.progress.node_at(position) {
            position += 1;
            if to != self.node && Some(to) != new_leader {
                self.send_after(to, MessageBody::HeartbeatResponse { round: 0 });
            }
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.node);
        self.leader_said = LeaderSaid::Nothing;
        self.lease_revoked = false;
        self.quiet_round = 0;
        self.transfer = None;
        self.votes.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        let next = self.log.last_index() + 1;
        self.progress = self
            .membership
            .replicas()
            .into_iter()
            .filter(|n| *n != self.node)
            .map(|n| (n, Progress::new(next)))
            .collect();
        // A new leader commits entries of earlier terms only by committing one of its own
        // (Raft §5.4.2), so it appends an empty entry at once.
        let noop = Entry {
            index: next,
            term: self.term,
            payload: Payload::Noop,
        };
        self.log.push(noop);
        // Every uncommitted entry counts, earlier terms' too: their commit frees them as it
        // frees this leader's (review: counting the no-op alone, that commit erased the
        // count of the leader's own proposals).
        let committed = self.log.committed;
        self.uncommitted_bytes = self
            .log
            .range(committed + 1, next + 1)
            .map(Entry::size_bytes)
            .sum();
        // No proposal yet: once the followers hold the no-op, the group may go quiet at
        // once, as a million groups elected together must (`idle_ticks`).
        self.idle_ticks = u16::MAX;
        self.adopt_forward();
        tracing::info!(node = %self.node, group = %self.id, term = self.term, "election won");
        self.report_leader();
        self.maybe_commit();
    }

    pub(super) fn report_leader(&mut self) {
        let now = (self.term, self.leader);
        if now != self.reported {
            let (previous_term, previous) = std::mem::replace(&mut self.reported, now);
            let (term, leader) = now;
            if let Some(l) = leader {
                tracing::info!(node = %self.node, group = %self.id, term, leader = %l, previous_term, previous = ?previous.map(|p| p.0), "leader changed");
            }
            self.out_rare()
                .events
                .push(GroupEvent::LeaderChanged { term, leader });
        }
    }
}

/// The votes of a campaign in progress, by voter. Held only while campaigning: an empty
/// map inline cost every replica 16 bytes more than none (docs/design.md §4, per-group
/// cost; `group_state_stays_small`).
#[derive(Debug, Default)]
#[allow(clippy::box_collection, reason = "one word inline instead of three")]
pub(super) struct Votes(Option<Box<BTreeMap<NodeId, bool>>>);

impl Votes {
    pub(super) fn clear(&mut self) {
        self.0 = None;
    }

    pub(super) fn insert(&mut self, voter: NodeId, granted: bool) {
        self.0.get_or_insert_default().insert(voter, granted);
    }

    pub(super) fn get(&self, voter: &NodeId) -> Option<&bool> {
        self.0.as_ref().and_then(|v| v.get(voter))
    }
}
