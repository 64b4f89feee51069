//! One Raft group, sans-IO: a deterministic state machine over messages, ticks and
//! proposals, whose outputs are data.
//!
//! # Call order
//!
//! 1. Feed inputs: [`Group::step`], [`Group::tick`], [`Group::propose`].
//! 2. When [`Group::has_ready`], take a [`GroupReady`] with [`Group::ready`].
//! 3. Persist its `hard_state` and `entries`; send `send_now` at once; apply `apply` in order.
//! 4. Once the write is durable, call [`Group::on_persisted`] with the last written entry's
//!    index and term, then send `send_after_write`.
//!
//! The group never reads a clock, does IO or spawns; randomness comes from the seed it is
//! given. Feeding the same inputs to a group built with the same seed yields the same outputs.

mod log;
mod progress;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::entry::{Entry, HardState, Payload};
use crate::error::{ProposeError, StartError};
use crate::ids::{GroupId, NodeId, ProposalId};
use crate::membership::{Membership, VoteResult};
use crate::message::{MAX_ITEMS_PER_MESSAGE, Message, MessageBody};
use crate::rng::Rng;
use crate::storage::LoadedGroup;

use self::log::{Log, limit};
use self::progress::{Progress, ProgressMap, ReplicaState};

/// What a replica currently does in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win an election, without changing term (dissertation §9.6).
    PreCandidate,
    /// Campaigns in a new term (Raft §5.2).
    Candidate,
    /// Leads the group.
    Leader,
    /// Receives the log; never votes, never campaigns, never counts toward a quorum.
    Learner,
}

/// Something that happened to a group, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// The known leader or term changed. Reported on every replica, followers included.
    LeaderChanged {
        /// The current term.
        term: u64,
        /// The leader of `term`, if known.
        leader: Option<NodeId>,
    },
}

/// The outputs of a group, taken with [`Group::ready`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupReady {
    /// Hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist (a first index at or below the stored last index truncates).
    pub entries: Vec<Entry>,
    /// Messages that may leave now: the leader's appends and heartbeats (§10.2.1: a leader
    /// may send before its own write is durable).
    pub send_now: Vec<Message>,
    /// Messages that must wait until `hard_state` and `entries` are durable: votes, append
    /// acknowledgements, a candidate's requests.
    pub send_after_write: Vec<Message>,
    /// Committed entries, durable here, to apply in order.
    pub apply: Vec<Entry>,
    /// Forwarded proposals the leader refused: definitely not appended.
    pub rejected: Vec<(ProposalId, ProposeError)>,
    /// Events since the last ready.
    pub events: Vec<GroupEvent>,
}

impl GroupReady {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.entries.is_empty()
            && self.send_now.is_empty()
            && self.send_after_write.is_empty()
            && self.apply.is_empty()
            && self.rejected.is_empty()
            && self.events.is_empty()
    }
}

/// A snapshot of a group's state, for tests, metrics and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// This replica's role.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// Vote cast in `term`.
    pub vote: Option<NodeId>,
    /// The leader known for `term`.
    pub leader: Option<NodeId>,
    /// Index of the last entry.
    pub last_index: u64,
    /// Highest index known committed.
    pub commit: u64,
    /// Highest index durable on this node.
    pub persisted: u64,
    /// Highest index handed to the state machine.
    pub applied: u64,
}

/// One replica of one Raft group.
#[derive(Debug)]
pub struct Group {
    id: GroupId,
    node: NodeId,
    config: Arc<Config>,
    /// Shared with every group of the node that has the same members: one allocation for
    /// thousands of groups.
    membership: Arc<Membership>,
    role: Role,
    term: u64,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    log: Log,
    rng: Rng,
    election_elapsed: u32,
    randomized_timeout: u32,
    heartbeat_elapsed: u32,
    /// Votes received in the current (pre-)campaign.
    votes: BTreeMap<NodeId, bool>,
    /// The leader's record of every other replica.
    progress: ProgressMap,
    /// Bytes of entries appended by this leader and not yet committed.
    uncommitted_bytes: usize,
    /// Proposals waiting to be forwarded to the leader at the next ready.
    forward: Vec<(ProposalId, Bytes)>,
    hard_state_dirty: bool,
    /// Neither ticks nor heartbeats: everything is replicated and committed, and the leader
    /// said so (see [`Group::is_quiesced`]).
    quiesced: bool,
    /// The (term, leader) last reported in an event.
    reported: (u64, Option<NodeId>),
    /// Outputs accumulated since the last ready; `None` (no allocation) in a quiesced group.
    out: Option<Box<GroupReady>>,
}

impl Group {
    /// A new, empty replica of `id` on `node`.
    pub fn new(
        id: GroupId,
        node: NodeId,
        membership: impl Into<Arc<Membership>>,
        config: Arc<Config>,
        seed: u64,
    ) -> Group {
        Self::build(
            id,
            node,
            membership.into(),
            HardState::default(),
            Log::default(),
            config,
            seed,
        )
    }

    /// A replica restored from what storage held at start. A compacted log is refused
    /// ([`StartError::CompactedLog`]): the log is kept, and replayed, from index 1.
    pub fn restore(
        node: NodeId,
        loaded: LoadedGroup,
        config: Arc<Config>,
        seed: u64,
    ) -> Result<Group, StartError> {
        if loaded.compacted.is_some() {
            return Err(StartError::CompactedLog(loaded.group));
        }
        let log = Log::restored(loaded.entries, loaded.hard_state.commit);
        Ok(Self::build(
            loaded.group,
            node,
            Arc::new(loaded.membership),
            loaded.hard_state,
            log,
            config,
            seed,
        ))
    }

    fn build(
        id: GroupId,
        node: NodeId,
        membership: Arc<Membership>,
        hs: HardState,
        log: Log,
        config: Arc<Config>,
        seed: u64,
    ) -> Group {
        let mut g = Group {
            id,
            node,
            config,
            membership,
            role: Role::Follower,
            term: hs.term,
            vote: hs.vote,
            leader: None,
            log,
            rng: Rng::new(seed),
            election_elapsed: 0,
            randomized_timeout: 0,
            heartbeat_elapsed: 0,
            votes: BTreeMap::new(),
            progress: ProgressMap::default(),
            uncommitted_bytes: 0,
            forward: Vec::new(),
            hard_state_dirty: false,
            quiesced: false,
            reported: (hs.term, None),
            out: None,
        };
        g.become_follower(hs.term, None);
        g
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The current membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The current membership, shared.
    pub(crate) fn membership_arc(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// Replaces the membership by an equal value shared with other groups.
    pub(crate) fn share_membership(&mut self, shared: Arc<Membership>) {
        debug_assert_eq!(*shared, *self.membership);
        self.membership = shared;
    }

    /// The state of this replica.
    pub fn status(&self) -> GroupStatus {
        GroupStatus {
            group: self.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            last_index: self.log.last_index(),
            commit: self.log.committed,
            persisted: self.log.persisted,
            applied: self.log.applied,
        }
    }

    /// Entries with index in `[low, high)` held in memory.
    pub fn entries(&self, low: u64, high: u64) -> &[Entry] {
        self.log.slice(low, high)
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Whether the group is quiesced: its leader saw every replica hold and know the whole
    /// committed log, and told the followers to stop their election timers. A quiesced group
    /// needs no ticks; its node stops ticking it until it wakes. It wakes on a proposal, on
    /// any message but a heartbeat acknowledgement, or when [`Group::on_node_down`] says
    /// a node it depends on is down.
    pub fn is_quiesced(&self) -> bool {
        self.quiesced
    }

    fn wake(&mut self) {
        if self.quiesced {
            self.quiesced = false;
            self.election_elapsed = 0;
            self.heartbeat_elapsed = 0;
            tracing::debug!(group = %self.id, term = self.term, "group woken");
            // A woken leader must hear from every follower again before it goes quiet, and
            // CheckQuorum judges it on what it hears from now on.
            for pr in self.progress.values_mut() {
                pr.recent_active = false;
            }
        }
    }

    /// Node `peer` is down (its liveness beats stopped). A group that depends on it reacts:
    /// - a follower whose leader ran there forgets that leader (leaving its lease, so it
    ///   grants votes) and wakes. One surviving voter per group, chosen by group id so that
    ///   the dead node's groups spread over the survivors, campaigns within the randomized
    ///   part of the election timeout — which also staggers the elections of the many groups
    ///   the dead node led; the others wait a whole timeout, so they rarely split the vote;
    /// - a quiesced leader with a voter there wakes, so that CheckQuorum can tell whether it
    ///   still leads.
    pub fn on_node_down(&mut self, peer: NodeId) {
        if self.role == Role::Leader {
            if self.quiesced && self.membership.is_voter(peer) {
                self.wake();
            }
            return;
        }
        if self.leader != Some(peer) {
            return;
        }
        self.quiesced = false;
        self.leader = None;
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

    /// Advances the group's logical clock by one tick. A quiesced group ignores ticks.
    pub fn tick(&mut self) {
        if self.quiesced {
            return;
        }
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Learner => {}
            _ => {
                if self.election_elapsed >= self.randomized_timeout {
                    self.election_elapsed = 0;
                    self.campaign_inner();
                }
            }
        }
        self.check_invariants();
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

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            if self.can_quiesce() {
                self.quiesce();
                return;
            }
            self.broadcast_heartbeat();
        }
        if self.election_elapsed >= self.config.election_timeout_min_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_active() {
                // CheckQuorum (dissertation §6.2): a leader cut off from a quorum steps down
                // so that clients stop waiting on it.
                self.become_follower(self.term, None);
            }
            for pr in self.progress.values_mut() {
                pr.recent_active = false;
            }
        }
    }

    /// Nothing left to do: every replica answered lately, holds the whole log, which is
    /// committed and durable here, and has been told the commit index; nothing is queued.
    /// A group with an unreachable replica stays active, heartbeating.
    fn can_quiesce(&self) -> bool {
        let last = self.log.last_index();
        self.config.quiesce
            && self.role == Role::Leader
            && self.forward.is_empty()
            && self.log.committed == last
            && self.log.persisted == last
            && self.log.applied == last
            && self
                .progress
                .values()
                .all(|pr| pr.recent_active && pr.matched == last && pr.commit_sent == last)
    }

    /// Tells every follower to stop its election timer, and stops ticking.
    fn quiesce(&mut self) {
        let commit = self.log.committed;
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for to in peers {
            self.send_now_msg(to, self.term, MessageBody::Quiesce { commit });
        }
        self.quiesced = true;
        self.shrink();
        tracing::debug!(group = %self.id, term = self.term, commit, "group quiesced");
    }

    /// Returns memory that buffers grew to while the group was busy: a quiet group should
    /// cost only its state.
    fn shrink(&mut self) {
        self.log.shrink();
        self.progress.shrink();
        self.forward = Vec::new();
        if self.out.as_ref().is_some_and(|o| o.is_empty()) {
            self.out = None;
        }
    }

    fn quorum_active(&self) -> bool {
        let me = self.node;
        let result = self.membership.vote_result(|n| {
            Some(n == me || self.progress.get(&n).is_some_and(|p| p.recent_active))
        });
        result == VoteResult::Won
    }

    /// Proposes a command. On the leader it is appended; on a follower it is queued for
    /// forwarding to the leader (when `Config::forward_proposals`).
    pub fn propose(&mut self, id: ProposalId, data: Bytes) -> Result<(), ProposeError> {
        if data.len() > self.config.max_proposal_bytes {
            return Err(ProposeError::TooLarge {
                max: self.config.max_proposal_bytes,
            });
        }
        self.wake();
        match self.role {
            Role::Leader => {
                let entry = Entry {
                    index: self.log.last_index() + 1,
                    term: self.term,
                    payload: Payload::Command { id, data },
                };
                let size = entry.size_bytes();
                if self.uncommitted_bytes + size > self.config.max_uncommitted_bytes {
                    return Err(ProposeError::Busy {
                        limit: "max_uncommitted_bytes",
                    });
                }
                self.uncommitted_bytes += size;
                self.log.push(entry);
                Ok(())
            }
            _ => match self.leader {
                Some(leader) if self.config.forward_proposals && leader != self.node => {
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

    /// Feeds a message from another replica. Messages for another group or node, and
    /// messages from non-members, are ignored.
    pub fn step(&mut self, msg: Message) {
        if msg.group != self.id || msg.to != self.node || msg.from == self.node {
            return;
        }
        if !self.membership.contains(msg.from) {
            return;
        }
        self.step_inner(msg);
        self.check_invariants();
    }

    fn step_inner(&mut self, msg: Message) {
        // Acknowledgements of heartbeats, and the quiesce notice itself, do not wake a
        // quiesced group: they are the tail of going quiet. Anything else is activity.
        if !matches!(
            msg.body,
            MessageBody::HeartbeatResponse | MessageBody::Quiesce { .. }
        ) {
            self.wake();
        }
        match &msg.body {
            MessageBody::Propose { .. } | MessageBody::ProposeRejected { .. } => {
                return self.step_proposals(msg);
            }
            // Node-level messages: the node expands them into per-group ones.
            MessageBody::Heartbeats { .. } | MessageBody::HeartbeatAcks { .. } => return,
            _ => {}
        }
        if msg.term > self.term {
            match msg.body {
                MessageBody::Vote { pre_vote, .. } => {
                    let in_lease = self.config.check_quorum
                        && self.leader.is_some()
                        && self.election_elapsed < self.config.election_timeout_min_ticks;
                    if in_lease {
                        // Leader stickiness (dissertation §4.2.3 / §9.6): while we hear from a
                        // leader, a disruptive candidate gets no answer at all.
                        return;
                    }
                    if !pre_vote {
                        // Raft Figure 2 (Rules for Servers, Followers): only hearing from the
                        // current leader or granting a vote resets the election timer. Adopting
                        // a higher term for a vote we may reject must not, or a replica that
                        // cannot win (stale log) but times out sooner (a faster clock) keeps
                        // every other replica from ever campaigning: a livelock without PreVote,
                        // found by the simulator (testkit `sim`, seed 182). `handle_vote`
                        // resets the timer when it grants.
                        let elapsed = self.election_elapsed;
                        self.become_follower(msg.term, None);
                        self.election_elapsed = elapsed;
                    }
                }
                // A granted pre-vote carries the term we would campaign in; no term change.
                MessageBody::VoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Quiesce { .. } => {
                    self.become_follower(msg.term, Some(msg.from));
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match msg.body {
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Quiesce { .. } => {
                    // A stale leader: tell it our term so it steps down. Needed with
                    // CheckQuorum/PreVote, where our higher term may never reach it otherwise.
                    self.send_after(msg.from, MessageBody::HeartbeatResponse);
                }
                MessageBody::Vote { pre_vote: true, .. } => {
                    self.send_after(
                        msg.from,
                        MessageBody::VoteResponse {
                            pre_vote: true,
                            granted: false,
                        },
                    );
                }
                _ => {}
            }
            return;
        }

        let from = msg.from;
        let term = msg.term;
        match msg.body {
            MessageBody::Vote {
                pre_vote,
                last_index,
                last_term,
            } => self.handle_vote(from, term, pre_vote, last_index, last_term),
            MessageBody::VoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted)
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.handle_append(from, prev_index, prev_term, entries, commit),
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
            } => self.handle_append_response(from, success, index, hint_index, hint_term),
            MessageBody::Heartbeat { commit } => self.handle_heartbeat(from, commit),
            MessageBody::Quiesce { commit } => {
                self.handle_heartbeat(from, commit);
                // Quiesce only when holding exactly what the leader committed; a replica that
                // is behind keeps its timer, so a leader that went quiet early is woken.
                if self.leader == Some(from)
                    && self.log.last_index() == commit
                    && self.log.committed == commit
                {
                    self.quiesced = true;
                    self.shrink();
                }
            }
            MessageBody::HeartbeatResponse => self.handle_heartbeat_response(from),
            MessageBody::Propose { .. }
            | MessageBody::ProposeRejected { .. }
            | MessageBody::Heartbeats { .. }
            | MessageBody::HeartbeatAcks { .. } => {}
        }
    }

    fn step_proposals(&mut self, msg: Message) {
        match msg.body {
            MessageBody::Propose { proposals } => {
                if self.role == Role::Leader {
                    let mut refused = Vec::new();
                    for (id, data) in proposals {
                        if let Err(e) = self.propose(id, data) {
                            refused.push((id, e));
                        }
                    }
                    // Busy or too large: the proposer learns it, definitely not appended.
                    if !refused.is_empty() {
                        let ids = refused.iter().map(|(id, _)| *id).collect();
                        self.send_now_msg(
                            msg.from,
                            0,
                            MessageBody::ProposeRejected {
                                ids,
                                leader_hint: Some(self.node),
                            },
                        );
                    }
                } else {
                    let ids = proposals.into_iter().map(|(id, _)| id).collect();
                    self.send_now_msg(
                        msg.from,
                        0,
                        MessageBody::ProposeRejected {
                            ids,
                            leader_hint: self.leader,
                        },
                    );
                }
            }
            MessageBody::ProposeRejected { ids, leader_hint } => {
                let err = match leader_hint {
                    Some(l) if l == msg.from => ProposeError::Busy {
                        limit: "max_uncommitted_bytes",
                    },
                    Some(l) => ProposeError::NotLeader {
                        leader_hint: Some(l),
                    },
                    None => ProposeError::NoLeader,
                };
                self.out()
                    .rejected
                    .extend(ids.into_iter().map(|id| (id, err.clone())));
            }
            _ => {}
        }
    }

    // ----- elections ------------------------------------------------------------------------

    fn campaign_inner(&mut self) {
        if !self.membership.is_voter(self.node) {
            return;
        }
        // A pre-candidate whose round timed out runs another pre-vote round: it must not
        // raise its term without a majority's assent (dissertation §9.6), or a partitioned
        // replica would come back with a higher term and depose a healthy leader.
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    fn become_pre_candidate(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.request_votes(true);
    }

    fn become_candidate(&mut self) {
        self.role = Role::Candidate;
        self.term += 1;
        self.vote = Some(self.node);
        self.leader = None;
        self.hard_state_dirty = true;
        self.votes.clear();
        self.reset_election_timer();
        self.request_votes(false);
    }

    fn request_votes(&mut self, pre_vote: bool) {
        self.votes.insert(self.node, true);
        if self.tally() == VoteResult::Won {
            return self.won(pre_vote);
        }
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
                },
            };
            self.out().send_after_write.push(m);
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
            self.become_candidate();
        } else {
            self.become_leader();
        }
    }

    fn handle_vote(
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
        let grant = can_vote
            && self.membership.is_voter(self.node)
            && self.log.is_up_to_date(last_index, last_term);
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
            self.out().send_after_write.push(m);
        } else {
            self.send_after(
                from,
                MessageBody::VoteResponse {
                    pre_vote,
                    granted: false,
                },
            );
        }
    }

    fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
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

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.randomized_timeout = self.rng.range(
            self.config.election_timeout_min_ticks,
            self.config.election_timeout_max_ticks,
        );
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.hard_state_dirty = true;
        }
        self.role = if self.membership.is_voter(self.node) {
            Role::Follower
        } else {
            Role::Learner
        };
        self.leader = leader;
        self.progress.clear();
        self.votes.clear();
        self.uncommitted_bytes = 0;
        self.reset_election_timer();
        self.report_leader();
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.node);
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
        self.uncommitted_bytes = noop.size_bytes();
        self.log.push(noop);
        self.report_leader();
        self.maybe_commit();
    }

    fn report_leader(&mut self) {
        let now = (self.term, self.leader);
        if now != self.reported {
            self.reported = now;
            let (term, leader) = now;
            self.out()
                .events
                .push(GroupEvent::LeaderChanged { term, leader });
        }
    }

    // ----- replication: follower side ----------------------------------------------------

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) {
        self.follow(from);
        if prev_index < self.log.committed {
            // Already committed here: the leader's entries up to `committed` match ours.
            let index = self.log.committed;
            return self.send_append_response(from, true, index, 0, 0);
        }
        if !self.log.matches(prev_index, prev_term) {
            let (hint_index, hint_term) = self.log.conflict_hint(prev_index, prev_term);
            return self.send_append_response(from, false, prev_index, hint_index, hint_term);
        }
        let appended = self.log.append_from_leader(prev_index, entries);
        if let Some(at) = appended.truncated_at {
            self.strict_check(
                at > self.log.committed,
                at,
                "truncated a committed entry (committed entries never change)",
            );
        }
        self.commit_to(commit.min(appended.last_new));
        self.send_append_response(from, true, appended.last_new, 0, 0);
    }

    fn handle_heartbeat(&mut self, from: NodeId, commit: u64) {
        self.follow(from);
        // The leader caps `commit` at what it knows we hold, so this never commits an entry
        // of ours that differs from the leader's.
        self.commit_to(commit.min(self.log.last_index()));
        self.send_after(from, MessageBody::HeartbeatResponse);
    }

    /// Hearing from the leader of our term.
    fn follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower && self.role != Role::Learner || self.leader != Some(leader)
        {
            self.become_follower(self.term, Some(leader));
        }
        self.election_elapsed = 0;
    }

    fn send_append_response(
        &mut self,
        to: NodeId,
        success: bool,
        index: u64,
        hint_index: u64,
        hint_term: u64,
    ) {
        self.send_after(
            to,
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
            },
        );
    }

    fn commit_to(&mut self, index: u64) {
        if index > self.log.committed {
            self.log.committed = index;
            self.hard_state_dirty = true;
        }
    }

    // ----- replication: leader side -----------------------------------------------------

    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: u64,
        hint_index: u64,
        hint_term: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if success {
            if pr.on_success(index) {
                self.maybe_commit();
            }
        } else {
            // Fast backtracking: skip every index whose term rules it out at once.
            let (j, _) = self.log.conflict_hint(hint_index, hint_term);
            if let Some(pr) = self.progress.get_mut(&from) {
                pr.on_reject(index, j + 1);
            }
        }
    }

    fn handle_heartbeat_response(&mut self, from: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        if let Some(pr) = self.progress.get_mut(&from) {
            pr.recent_active = true;
            if pr.state == ReplicaState::Probe {
                // The probe may have been lost: allow another.
                pr.probe_sent = false;
            } else if pr.matched < last && pr.matched == pr.heartbeat_matched {
                // No progress for a whole heartbeat interval: appends were lost. Probe again
                // from what is known to match.
                pr.become_probe();
            }
            pr.heartbeat_matched = pr.matched;
        }
    }

    fn broadcast_heartbeat(&mut self) {
        let peers: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .map(|(n, pr)| (*n, pr.matched.min(self.log.committed)))
            .collect();
        for (to, commit) in peers {
            self.send_now_msg(to, self.term, MessageBody::Heartbeat { commit });
        }
    }

    /// Commits the highest index a quorum holds, if it is of the current term (§5.4.2).
    fn maybe_commit(&mut self) {
        let me = self.node;
        let persisted = self.log.persisted;
        let index = self.membership.committed_index(|n| {
            if n == me {
                persisted
            } else {
                self.progress.get(&n).map_or(0, |p| p.matched)
            }
        });
        if index > self.log.committed && self.log.term(index) == Some(self.term) {
            let freed: usize = self
                .log
                .slice(self.log.committed + 1, index + 1)
                .iter()
                .map(Entry::size_bytes)
                .sum();
            self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(freed);
            self.commit_to(index);
        }
    }

    /// Sends what each follower lacks: new entries, or the new commit index.
    fn flush_appends(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for to in peers {
            self.send_appends(to);
        }
    }

    fn send_appends(&mut self, to: NodeId) {
        let cfg = Arc::clone(&self.config);
        loop {
            let Some(pr) = self.progress.get_mut(&to) else {
                return;
            };
            let last = self.log.last_index();
            let committed = self.log.committed;
            let behind = pr.next <= last;
            let probe = pr.state == ReplicaState::Probe && !pr.probe_sent;
            if !pr.can_send(cfg.max_inflight_appends)
                || !(behind || probe || pr.commit_sent < committed)
            {
                return;
            }
            let prev_index = pr.next - 1;
            let Some(prev_term) = self.log.term(prev_index) else {
                return;
            };
            let entries = limit(
                self.log.slice(pr.next, last + 1),
                cfg.max_append_entries,
                cfg.max_append_bytes,
            )
            .to_vec();
            let sent_last = prev_index + entries.len() as u64;
            pr.sent(sent_last, !entries.is_empty());
            pr.commit_sent = committed;
            let more =
                pr.state == ReplicaState::Replicate && sent_last < last && !entries.is_empty();
            self.send_now_msg(
                to,
                self.term,
                MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit: committed,
                },
            );
            if !more {
                return;
            }
        }
    }

    // ----- outputs ----------------------------------------------------------------------------

    fn out(&mut self) -> &mut GroupReady {
        self.out.get_or_insert_with(Box::default)
    }

    fn send_now_msg(&mut self, to: NodeId, term: u64, body: MessageBody) {
        let m = Message {
            group: self.id,
            from: self.node,
            to,
            term,
            body,
        };
        self.out().send_now.push(m);
    }

    /// A message that depends on this ready's write, or follows one that does.
    fn send_after(&mut self, to: NodeId, body: MessageBody) {
        let m = Message {
            group: self.id,
            from: self.node,
            to,
            term: self.term,
            body,
        };
        self.out().send_after_write.push(m);
    }

    /// Whether [`Group::ready`] would return something.
    pub fn has_ready(&self) -> bool {
        self.out.as_ref().is_some_and(|o| !o.is_empty())
            || self.hard_state_dirty
            || self.log.has_unstable()
            || self.log.has_applicable()
            || !self.forward.is_empty()
            || self.role == Role::Leader && self.has_appends_to_send()
    }

    fn has_appends_to_send(&self) -> bool {
        let last = self.log.last_index();
        let committed = self.log.committed;
        self.progress.values().any(|pr| {
            pr.can_send(self.config.max_inflight_appends)
                && (pr.next <= last
                    || pr.commit_sent < committed
                    || pr.state == ReplicaState::Probe && !pr.probe_sent)
        })
    }

    /// Takes the outputs accumulated since the last call, applying at most
    /// `max_apply_entries` entries and about `max_apply_bytes` bytes.
    pub fn ready(&mut self, max_apply_entries: usize, max_apply_bytes: usize) -> GroupReady {
        self.flush_appends();
        self.flush_forward();
        // The buffer stays allocated while the group is busy (no allocation per ready); a
        // quiet group frees it.
        let mut ready = self
            .out
            .as_mut()
            .map(|b| std::mem::take(&mut **b))
            .unwrap_or_default();
        if std::mem::take(&mut self.hard_state_dirty) {
            ready.hard_state = Some(self.hard_state());
        }
        ready.entries = self.log.take_unstable();
        ready.apply = self.log.take_applicable(max_apply_entries, max_apply_bytes);
        ready
    }

    /// Takes only the messages that may leave before any write (the leader's appends and
    /// heartbeats, forwarded proposals); everything else stays for [`Group::ready`].
    pub fn take_send_now(&mut self) -> Vec<Message> {
        self.flush_appends();
        self.flush_forward();
        self.out
            .as_mut()
            .map(|o| std::mem::take(&mut o.send_now))
            .unwrap_or_default()
    }

    /// Sends proposals queued on a follower to the leader, or settles them if the leader
    /// changed meanwhile.
    fn flush_forward(&mut self) {
        if self.forward.is_empty() {
            return;
        }
        let proposals = std::mem::take(&mut self.forward);
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                for (id, data) in proposals {
                    if let Err(e) = self.propose(id, data) {
                        self.out().rejected.push((id, e));
                    }
                }
            }
            (_, Some(leader)) => {
                // Receivers refuse a message of more than MAX_ITEMS_PER_MESSAGE proposals.
                let mut proposals = proposals;
                while !proposals.is_empty() {
                    let rest = proposals.split_off(proposals.len().min(MAX_ITEMS_PER_MESSAGE));
                    self.send_now_msg(leader, 0, MessageBody::Propose { proposals });
                    proposals = rest;
                }
            }
            (_, None) => {
                let dropped = proposals
                    .into_iter()
                    .map(|(id, _)| (id, ProposeError::NoLeader));
                self.out().rejected.extend(dropped);
            }
        }
    }

    /// Storage made entries up to `index` (of `term`) durable. On a leader this may commit.
    pub fn on_persisted(&mut self, index: u64, term: u64) {
        if self.log.on_persisted(index, term) && self.role == Role::Leader {
            self.maybe_commit();
        }
        self.check_invariants();
    }

    // ----- strict mode --------------------------------------------------------------------------

    fn strict_check(&self, ok: bool, index: u64, what: &str) {
        if self.config.strict && !ok {
            panic!(
                "invariant violated in group {} on node {} at term {}, index {}: {}",
                self.id, self.node, self.term, index, what
            );
        }
    }

    fn check_invariants(&self) {
        if !self.config.strict {
            return;
        }
        let log = &self.log;
        self.strict_check(
            log.committed <= log.last_index(),
            log.committed,
            "commit beyond the log",
        );
        self.strict_check(
            log.applied <= log.committed,
            log.applied,
            "applied beyond commit",
        );
        self.strict_check(
            log.applied <= log.persisted,
            log.applied,
            "applied an entry not durable here",
        );
        self.strict_check(
            log.persisted <= log.last_index(),
            log.persisted,
            "persisted beyond the log",
        );
        self.strict_check(
            log.last_term() <= self.term,
            log.last_index(),
            "log holds an entry from a future term",
        );
        if self.role == Role::Leader {
            self.strict_check(
                self.leader == Some(self.node),
                0,
                "leader does not know itself",
            );
            self.strict_check(
                self.vote == Some(self.node),
                0,
                "leader did not vote for itself",
            );
        }
    }
}

#[cfg(test)]
mod tests;
