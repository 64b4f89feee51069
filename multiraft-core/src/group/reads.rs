//! Linearizable reads without a log write (dissertation §6.4; docs/design.md §4.5).
//!
//! - **ReadIndex**: the leader notes its commit index, confirms it still leads with one
//!   heartbeat round, and serves the read once its state machine has applied that index. The
//!   round is the node's: every group's pending reads ride one coalesced heartbeat message
//!   per peer node, and each acknowledgement names the round it answers, so a lost or late
//!   message can only delay a read, never confirm it early.
//! - **Lease**: the same acknowledgements, counted from the tick their round left, give the
//!   leader a lease during which no other replica can be elected; while it holds, the read
//!   needs no round at all. A quiesced group's lease rests on node liveness instead (see
//!   `lease_holds`), so it costs no per-group message.
//! - **Follower reads**: a follower asks the leader for a read index (`ReadIndex` message),
//!   the leader confirms it in its next round, and the follower serves once it has applied
//!   up to it.
//!
//! A read is confirmed only by a leader that has committed an entry of its own term, so
//! its commit index covers every entry committed before it was elected (§6.4 step 1).

use std::collections::{BTreeSet, VecDeque};

use crate::error::ReadError;
use crate::ids::NodeId;
use crate::membership::VoteResult;
use crate::message::{MAX_ITEMS_PER_MESSAGE, MessageBody, ROUND_SEQ_BITS};

use super::{Replica, Role};

/// How a read finds its linearizable read point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadPolicy {
    /// On the leader only: one quorum round per read (coalesced across every group of the
    /// node). Safe whatever the clocks do.
    ReadIndex,
    /// On the leader only: no round while the leader's lease holds (`Config::lease_ticks`),
    /// a ReadIndex round otherwise. Safe while the tick rates of any two nodes differ by
    /// less than the margin `Config::lease_ticks` leaves (see its docs); needs
    /// `Config::check_quorum`.
    Lease,
    /// On any replica: a follower asks the leader for the read index (the leader confirms
    /// it with a round) and serves from its own state machine once it has applied that far.
    /// On the leader it is [`ReadPolicy::ReadIndex`].
    Follower,
}

/// Who asked for a read the leader is confirming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// A read of this node, by its id.
    Local(u64),
    /// A follower's read, answered with a `ReadIndexResponse`.
    Remote(NodeId, u64),
}

/// A read waiting for the leader's confirming round.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    origin: Origin,
    /// The commit index when the read's round was chosen (0 until then).
    index: u64,
    /// The round that confirms it; 0 until the read joins one.
    round: u64,
    /// The node's tick at the first flush with a round after the read came (0 until
    /// then): a follower's read is refused once it waited twice `proposal_timeout_ticks`
    /// from there.
    since: u64,
}

/// The reads of one replica: its queues, boxed and allocated only while it has reads. Most
/// groups have none, and every group pays for the inline size (docs/design.md §4).
#[derive(Debug, Default)]
pub(super) struct Reads(Option<Box<ReadQueues>>);

/// What a replica with no reads reads through [`Reads`].
static NO_READS: ReadQueues = ReadQueues {
    waiting: VecDeque::new(),
    confirmed: BTreeSet::new(),
    forward: Vec::new(),
};

impl std::ops::Deref for Reads {
    type Target = ReadQueues;

    fn deref(&self) -> &ReadQueues {
        self.0.as_deref().unwrap_or(&NO_READS)
    }
}

impl std::ops::DerefMut for Reads {
    fn deref_mut(&mut self) -> &mut ReadQueues {
        self.0.get_or_insert_with(Box::default)
    }
}

impl Reads {
    /// Frees the queues once no read is left.
    pub(super) fn release(&mut self) {
        if self.0.as_ref().is_some_and(|q| q.is_idle()) {
            self.0 = None;
        }
    }
}

/// The queues of [`Reads`].
#[derive(Debug, Default)]
pub(super) struct ReadQueues {
    /// Leader: reads waiting for their round, in the order they joined one.
    waiting: VecDeque<Waiting>,
    /// Reads of this node with a confirmed read index, by (index, id): served once the
    /// state machine has applied the index.
    confirmed: BTreeSet<(u64, u64)>,
    /// Follower: reads of this node to ask the leader about at the next ready. Reads asked
    /// and not yet answered are the node's to time out.
    forward: Vec<u64>,
}

impl ReadQueues {
    /// No read of any kind: the common case, checked first on every ready.
    fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.confirmed.is_empty() && self.forward.is_empty()
    }

    /// Reads held, for the per-group bound.
    fn len(&self) -> usize {
        self.waiting.len() + self.confirmed.len() + self.forward.len()
    }
}

impl Replica {
    /// Starts a read of this node, named `id`, under `policy`. `now` is the node's tick (for the
    /// lease); `peer_lease` gives, for a peer node whose liveness lease holds, the tick since which
    /// it has held without a break (for a quiesced group's lease). The read point appears later in
    /// [`ReplicaReady::reads`] (after that ready's applies), or the read fails in
    /// [`ReplicaReady::read_failures`](super::ReplicaReady::read_failures).
    ///
    /// [`ReplicaReady::reads`]: super::ReplicaReady::reads
    pub fn read(
        &mut self,
        id: u64,
        policy: ReadPolicy,
        now: u64,
        peer_lease: impl Fn(NodeId) -> Option<u64>,
    ) -> Result<(), ReadError> {
        if self.reads.len() >= self.config.max_pending_reads {
            return Err(ReadError::Busy {
                limit: "max_pending_reads",
            });
        }
        if self.role != Role::Leader {
            return match (policy, self.leader) {
                (ReadPolicy::Follower, Some(_)) => {
                    self.reads.forward.push(id);
                    Ok(())
                }
                (ReadPolicy::Follower, None) => Err(ReadError::NoLeader),
                (_, leader) => Err(ReadError::NotLeader {
                    leader_hint: leader,
                }),
            };
        }
        if policy == ReadPolicy::Lease && self.lease_holds(now, &peer_lease) {
            self.reads.confirmed.insert((self.log.committed, id));
            return Ok(());
        }
        self.reads.waiting.push_back(Waiting {
            origin: Origin::Local(id),
            index: 0,
            round: 0,
            since: 0,
        });
        Ok(())
    }

    /// The read index of a lease read that can be served at once: the lease holds and the
    /// state machine has been handed everything committed.
    pub fn read_now(&self, now: u64, peer_lease: impl Fn(NodeId) -> Option<u64>) -> Option<u64> {
        let applied_all = self.log.applied >= self.log.committed && self.restoring.is_none();
        (applied_all && self.lease_holds(now, &peer_lease)).then_some(self.log.committed)
    }

    /// Whether an entry of this replica's current term is committed, as far as it knows. On
    /// a leader, from then on an entry of its term or an earlier one that its log lacks can
    /// never commit: every later leader holds its committed entry, and entries past it are
    /// of its term or later. So what such a leader's membership ([`Replica::membership`])
    /// leaves out, no membership change proposed in its term or earlier can still add (it
    /// may have been deposed unawares by a leader of a later term).
    pub fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }

    /// Whether the leader's lease holds at tick `now` (dissertation §6.4.1). Needs
    /// CheckQuorum (followers ignore candidates while they hear from a leader), an entry of
    /// this term committed, and no transfer started in this term (a `TimeoutNow` lets the
    /// target be elected at once). Then either:
    /// - active group: a quorum acknowledged heartbeats of rounds that left at most
    ///   `lease_ticks` ago; each of those followers reset its election timer on receipt and
    ///   refuses other candidates for a whole `election_timeout_min_ticks`;
    /// - quiesced group: a quorum of followers acknowledged a quiesce notice (the one that quieted
    ///   the group, or one of a later read round), and the liveness lease of each one's node has
    ///   held without a break since before that notice left. Such a follower keeps its election
    ///   timer stopped while its node hears this one, and its node declares this one down only
    ///   after the lease ran out, so it cannot vote for another candidate meanwhile: zero per-group
    ///   messages. (A peer that restarts loses its lease, and its groups hold their votes for an
    ///   election timeout.)
    pub(super) fn lease_holds(&self, now: u64, peer_lease: &dyn Fn(NodeId) -> Option<u64>) -> bool {
        if self.role != Role::Leader
            || !self.config.check_quorum
            || !self.committed_in_term()
            || self.lease_revoked
            || self.transfer.is_some()
        {
            return false;
        }
        let me = self.node;
        if self.quiesced {
            // Every beat since the group went quiet is a quiesce notice, so a follower that
            // acknowledged round `r >= quiet_round` went quiet following us when it got it;
            // a peer lease unbroken since before `r` left means its node has heard ours ever
            // since, so it still follows us. (A later read round renews this after a lapse.)
            let quiet_round = self.quiet_round;
            let follows_quietly = |n: NodeId| {
                self.progress.get(&n).is_some_and(|p| {
                    let acked_at = p.read_round >> ROUND_SEQ_BITS;
                    p.read_round >= quiet_round
                        && peer_lease(n).is_some_and(|since| since < acked_at)
                })
            };
            let result = self
                .membership
                .vote_result(|n| Some(n == me || quiet_round != 0 && follows_quietly(n)));
            return result == VoteResult::Won;
        }
        let round = self.quorum_round();
        round != 0 && (round >> ROUND_SEQ_BITS) + u64::from(self.config.lease_ticks) > now
    }

    /// The highest round a quorum of voters acknowledged in this term (this replica counts
    /// as having acknowledged every round).
    fn quorum_round(&self) -> u64 {
        let me = self.node;
        self.membership.committed_index(|n| {
            if n == me {
                u64::MAX
            } else {
                self.progress.get(&n).map_or(0, |p| p.read_round)
            }
        })
    }

    /// Puts every read waiting for a round into round `round` (the node's round of the
    /// ready being built; 0 when none is available), sending one heartbeat per voter, and
    /// sends a follower's reads to the leader. Called when outputs are taken.
    pub(super) fn flush_reads(&mut self, round: u64) {
        if self.reads.is_idle() && !(self.quiesced && self.quiet_round == 0) {
            return;
        }
        if self.role != Role::Leader {
            self.forward_reads();
            return;
        }
        // Reads queued to forward while this replica was a follower: it leads now.
        for id in std::mem::take(&mut self.reads.forward) {
            self.reads.waiting.push_back(Waiting {
                origin: Origin::Local(id),
                index: 0,
                round: 0,
                since: 0,
            });
        }
        if round != 0 {
            self.expire_remote_reads(round >> ROUND_SEQ_BITS);
        }
        if self.quiet_round == 0 && self.quiesced && round != 0 {
            // The round the quiesce notice leaves in: its acknowledgements show which
            // followers went quiet (see `lease_holds`).
            self.quiet_round = round;
        }
        if round == 0 || !self.committed_in_term() {
            return;
        }
        let committed = self.log.committed;
        let mut joined = false;
        for w in self.reads.waiting.iter_mut().rev() {
            if w.round != 0 {
                break;
            }
            w.round = round;
            w.index = committed;
            joined = true;
        }
        if !joined {
            return;
        }
        if self.quorum_round() == u64::MAX {
            // The only voter: nobody to ask.
            return self.confirm_reads();
        }
        self.send_read_beats();
    }

    /// Refuses the followers' reads waiting since twice `proposal_timeout_ticks` before
    /// `now` (a tick), and stamps those first seen now. A follower gives up on its read
    /// after `proposal_timeout_ticks` of its own ticks; twice that leaves room for a
    /// leader whose ticks run up to twice as fast, whose refusal would otherwise end a read
    /// its follower still waits for. Only this node's own reads have deadlines in the
    /// node: without this, a leader that cannot confirm rounds and stays leader
    /// (`check_quorum` off) kept every follower's read, and a follower retrying them filled
    /// `max_pending_reads` for good.
    fn expire_remote_reads(&mut self, now: u64) {
        if self.reads.waiting.is_empty() {
            return;
        }
        let timeout = 2 * u64::from(self.config.proposal_timeout_ticks);
        let mut expired = Vec::new();
        self.reads.waiting.retain_mut(|w| {
            if w.since == 0 {
                w.since = now;
            }
            match w.origin {
                Origin::Remote(node, id) if w.since.saturating_add(timeout) <= now => {
                    expired.push((node, id, 0));
                    false
                }
                _ => true,
            }
        });
        if !expired.is_empty() {
            self.answer_remote(expired, false);
            self.reads.release();
        }
    }

    /// One heartbeat per voter, for the reads waiting on a round; the node stamps the
    /// round on the way out. A quiesced leader's marks its output rare, which tells the
    /// node to send them again if need be (`Node::resend_quiet_reads`).
    fn send_read_beats(&mut self) {
        if self.quiesced {
            self.out_rare();
        }
        let committed = self.log.committed;
        let peers: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .filter(|(n, _)| self.membership.is_voter(**n) || self.membership.outgoing.contains(n))
            .map(|(n, pr)| (*n, pr.matched.min(committed)))
            .collect();
        for (to, commit) in peers {
            // A quiesced group confirms with the quiesce notice, which does not wake the
            // followers. The node stamps the round on the way out.
            let body = if self.quiesced {
                MessageBody::Quiesce { commit, round: 0 }
            } else {
                MessageBody::Heartbeat { commit, round: 0 }
            };
            self.send_now_msg(to, self.term, body);
        }
    }

    fn forward_reads(&mut self) {
        if self.reads.forward.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.reads.forward);
        match self.leader {
            Some(leader) => {
                while !ids.is_empty() {
                    let rest = ids.split_off(ids.len().min(MAX_ITEMS_PER_MESSAGE));
                    self.send_now_msg(leader, 0, MessageBody::ReadIndex { ids });
                    ids = rest;
                }
            }
            None => {
                let failed = ids.into_iter().map(|id| (id, ReadError::NoLeader));
                self.out_rare().read_failures.extend(failed);
            }
        }
    }

    /// A follower acknowledged a heartbeat of `round`.
    pub(super) fn on_round_acked(&mut self, from: NodeId, round: u64) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if round > pr.read_round {
            pr.read_round = round;
            // Every heartbeat acknowledgement lands here: only reads waiting need the
            // quorum's round worked out.
            if !self.reads.waiting.is_empty() {
                self.confirm_reads();
            }
        }
    }

    /// Confirms every waiting read whose round a quorum acknowledged.
    fn confirm_reads(&mut self) {
        let quorum = self.quorum_round();
        let mut remote: Vec<(NodeId, u64, u64)> = Vec::new();
        while let Some(w) = self.reads.waiting.front() {
            if w.round == 0 || w.round > quorum {
                break;
            }
            let w = *w;
            self.reads.waiting.pop_front();
            match w.origin {
                Origin::Local(id) => {
                    self.reads.confirmed.insert((w.index, id));
                }
                Origin::Remote(node, id) => remote.push((node, id, w.index)),
            }
        }
        self.answer_remote(remote, true);
    }

    /// Answers followers' reads: with their index when `confirmed`, refused otherwise.
    fn answer_remote(&mut self, mut answers: Vec<(NodeId, u64, u64)>, confirmed: bool) {
        // One message per (follower, index): most rounds confirm many reads at one index.
        answers.sort_unstable_by_key(|(n, _, index)| (*n, *index));
        let mut i = 0;
        while i < answers.len() {
            let (node, _, index) = answers[i];
            let mut ids = Vec::new();
            while i < answers.len()
                && answers[i].0 == node
                && answers[i].2 == index
                && ids.len() < MAX_ITEMS_PER_MESSAGE
            {
                ids.push(answers[i].1);
                i += 1;
            }
            let index = confirmed.then_some(index);
            self.send_now_msg(node, 0, MessageBody::ReadIndexResponse { ids, index });
        }
    }

    /// A follower's `ReadIndex` request, or the leader's answer to ours.
    pub(super) fn step_reads(&mut self, from: NodeId, body: MessageBody) {
        match body {
            MessageBody::ReadIndex { ids } => {
                let room = self
                    .config
                    .max_pending_reads
                    .saturating_sub(self.reads.len());
                if self.role != Role::Leader || ids.len() > room {
                    let refused = ids.into_iter().map(|id| (from, id, 0)).collect();
                    return self.answer_remote(refused, false);
                }
                for id in ids {
                    self.reads.waiting.push_back(Waiting {
                        origin: Origin::Remote(from, id),
                        index: 0,
                        round: 0,
                        since: 0,
                    });
                }
            }
            MessageBody::ReadIndexResponse { ids, index } => match index {
                Some(index) => {
                    for id in ids {
                        self.reads.confirmed.insert((index, id));
                    }
                }
                None => {
                    let hint = self.leader.filter(|l| *l != from);
                    let failed = ids.into_iter().map(|id| {
                        let e = match hint {
                            Some(l) => ReadError::NotLeader {
                                leader_hint: Some(l),
                            },
                            None => ReadError::LeadershipChanged,
                        };
                        (id, e)
                    });
                    self.out_rare().read_failures.extend(failed);
                }
            },
            _ => {}
        }
    }

    /// Reads whose index the state machine has now been handed, for the ready being built.
    pub(super) fn take_served_reads(&mut self) -> Vec<(u64, u64)> {
        let mut served = Vec::new();
        // While its snapshot is restored the machine holds none of what `applied` counts
        // (a restart sets it to the snapshot's index at once): a read waits for
        // `restored`. Served, it read the machine half restored (review).
        if self.reads.confirmed.is_empty() || self.restoring.is_some() {
            return served;
        }
        while let Some(&(index, id)) = self.reads.confirmed.first() {
            if index > self.log.applied {
                break;
            }
            self.reads.confirmed.pop_first();
            served.push((id, index));
        }
        served
    }

    /// Whether reads need a ready: some can be served, join a round, or go to the leader.
    /// Whether this quiesced leader's reads wait on a round it sent
    /// ([`Replica::resend_read_beats`]).
    pub fn awaits_read_round(&self) -> bool {
        self.role == Role::Leader
            && self.quiesced
            && self.reads.waiting.front().is_some_and(|w| w.round != 0)
    }

    /// Sends the beats of the reads waiting on a round again, if [`awaits_read_round`]
    /// (else returns false): a quiesced leader is not ticked, and has no later heartbeat
    /// to carry a round. The reads keep their round; an acknowledgement of the later one
    /// confirms them too, so a slow answer to the first still counts.
    ///
    /// [`awaits_read_round`]: Replica::awaits_read_round
    pub fn resend_read_beats(&mut self) -> bool {
        if !self.awaits_read_round() {
            return false;
        }
        self.send_read_beats();
        true
    }

    pub(super) fn has_read_work(&self) -> bool {
        if self.reads.is_idle() {
            return false;
        }
        self.reads
            .confirmed
            .first()
            .is_some_and(|(index, _)| *index <= self.log.applied && self.restoring.is_none())
            || !self.reads.forward.is_empty()
            || self.role == Role::Leader
                && self.committed_in_term()
                && self.reads.waiting.back().is_some_and(|w| w.round == 0)
    }

    /// This replica stopped leading: reads it had not confirmed fail (their leader is gone;
    /// confirmed ones stay valid and wait for the apply).
    pub(super) fn abandon_reads(&mut self) {
        if self.reads.waiting.is_empty() {
            return;
        }
        let mut remote = Vec::new();
        for w in std::mem::take(&mut self.reads.waiting) {
            match w.origin {
                Origin::Local(id) => self
                    .out_rare()
                    .read_failures
                    .push((id, ReadError::LeadershipChanged)),
                Origin::Remote(node, id) => remote.push((node, id, 0)),
            }
        }
        self.answer_remote(remote, false);
    }

    /// Forgets a read the node gave up on (timed out).
    pub fn forget_read(&mut self, id: u64) {
        if self.reads.is_idle() {
            return;
        }
        self.reads.confirmed.retain(|(_, r)| *r != id);
        self.reads.forward.retain(|r| *r != id);
        self.reads.waiting.retain(|w| w.origin != Origin::Local(id));
        self.reads.release();
    }
}
