//! The leader's view of one follower: how far it matches, what to send next.

use std::collections::VecDeque;

use crate::ids::NodeId;

/// How the leader replicates to a follower (etcd-raft's progress states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressState {
    /// Where the follower's log matches is unknown: send one append, wait for the answer.
    Probe,
    /// The follower matches up to `matched`: stream appends, up to the inflight window.
    Replicate,
    /// The follower needs entries this log no longer holds: the snapshot in
    /// [`Progress::snapshot`] goes to it, and no append until it is installed.
    Snapshot,
}

impl Outgoing {
    /// A transfer of the snapshot at `index`, not yet admitted by the node.
    pub(crate) fn new(index: u64) -> Outgoing {
        Outgoing {
            index,
            admitted: false,
            acked: 0,
            requested: 0,
            reading: false,
            last: None,
            idle_ticks: 0,
            resends: 0,
            unacked_ticks: 0,
            gap_resent: false,
        }
    }

    /// Reads and sends again from chunk `seq`. A read under way is no longer waited for:
    /// `Replica::chunk_read` drops its chunk unless it is the one now wanted. Every
    /// resend goes through here (one that kept waiting on the read under way stalled the
    /// transfer until the resend rule: a planted fault, BENCHMARKS.md).
    pub(crate) fn rewind_to(&mut self, seq: u32) {
        self.requested = seq;
        self.reading = false;
    }
}

/// A snapshot on its way to one follower, chunk by chunk (`snapshots.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outgoing {
    /// The snapshot's index.
    pub(crate) index: u64,
    /// The node granted this transfer one of its `max_snapshot_sends` slots.
    pub(crate) admitted: bool,
    /// Chunks the follower has durably received (it wants chunk `acked` next).
    pub(crate) acked: u32,
    /// The next chunk to read from storage. Chunks are read one at a time, in order: only
    /// a chunk that is not the last says another follows.
    pub(crate) requested: u32,
    /// A read of chunk `requested - 1` is in flight.
    pub(crate) reading: bool,
    /// The last chunk's number, once read.
    pub(crate) last: Option<u32>,
    /// Ticks without an acknowledgement: past an election timeout, the chunks from
    /// `acked` go again (a chunk or its acknowledgement was lost).
    pub(crate) idle_ticks: u32,
    /// Times the chunks from `acked` went again with no acknowledgement since: each one
    /// doubles the wait before the next, so a follower that is only slow (its node behind
    /// on its inbox) is not sent the same window over and over.
    pub(crate) resends: u32,
    /// Ticks since the follower last acknowledged a chunk it had not before, or since the
    /// transfer began: unlike `idle_ticks`, not reset when the node admits the transfer
    /// again. A transfer stalled this way for an election timeout no longer defers the
    /// leader's next snapshot (`Replica::snapshot_deferred`).
    pub(crate) unacked_ticks: u32,
    /// The chunks from `acked` went again on a gap (`SnapshotAck::gap`), or since the
    /// follower started over there: once per acknowledged point, since every chunk of the
    /// window in flight past the lost one answers with the same gap. Cleared when `acked`
    /// moves on. A flag, not the point: it fits in the padding, where an `Option<u32>`
    /// took every leader's record of a replica past two cache lines (flow_control.rs).
    pub(crate) gap_resent: bool,
}

/// The leader's record of one replica.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to match the leader's log and be durable on the replica.
    pub(crate) matched: u64,
    /// Next index to send.
    pub(crate) next: u64,
    pub(crate) state: ProgressState,
    /// In probe state: an append is out and unanswered.
    pub(crate) probe_sent: bool,
    /// Each append in flight (replicate state), oldest first: its last index, and the
    /// commit index it carried (what its answer tells of the replica's commit index,
    /// `told_commit`). Bounded by `Config::max_inflight_appends`.
    pub(crate) inflight: VecDeque<(u64, u64)>,
    /// Heard from since the last CheckQuorum round (dissertation §6.2).
    pub(crate) recent_active: bool,
    /// The last commit index this replica was told, so a commit change reaches it once.
    pub(crate) commit_sent: u64,
    /// The last index sent to the replica when it answered the previous new heartbeat round.
    /// In replicate state, a later round's answer with that index still unanswered and no
    /// append answered between (`answered_since_beat`) means appends were lost: they were
    /// out a whole round before.
    /// Appends sent since that answer are not judged by this one: an answer may overtake
    /// them (a heartbeat goes first in its batch; over QUIC, on a lane of its own).
    pub(crate) heartbeat_sent: u64,
    /// The highest heartbeat round this replica acknowledged in this term: what confirms
    /// reads and the lease (`reads.rs`).
    pub(crate) read_round: u64,
    /// In snapshot state: the transfer.
    pub(crate) snapshot: Option<Outgoing>,
    /// 0 for a member. Otherwise the replica was removed by the membership entry at this
    /// index: it gets the log until it holds and knows that entry committed, then the
    /// record goes (`changes.rs`).
    pub(crate) retire_at: u64,
    /// An append went to the replica since the leader's last heartbeat round
    /// (`Progress::skips_heartbeat`).
    pub(crate) appended_since_beat: bool,
    /// The leader's last heartbeat round left the replica out.
    pub(crate) beat_skipped: bool,
    /// An append's answer raised `matched` since the replica answered the previous new
    /// heartbeat round (`heartbeat_sent`).
    pub(crate) answered_since_beat: bool,
    /// The replica acknowledged an append whose commit index it held, once the leader's
    /// latest membership was committed, and said it is no joining replica and its storage
    /// says so (`AppendResponse::joined`): a joining replica has then joined (it votes;
    /// `Replica::joined`) and stored it, which is what promoting it needs (`changes.rs`).
    /// Read from a successful `AppendResponse` (`told_commit`); a joining replica answers a
    /// snapshot chunk it no longer needs with a snapshot acknowledgement, so that only an
    /// append's answer reads so. Forgotten with the match, when the replica's node restarts.
    /// Without `joined`, a replica that joined while the entry adding it was uncommitted
    /// was known to have joined before it stored so (review).
    pub(crate) knows_commit: bool,
}

impl Progress {
    pub(crate) fn new(next: u64) -> Progress {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: false,
            commit_sent: 0,
            heartbeat_sent: 0,
            read_round: 0,
            snapshot: None,
            retire_at: 0,
            appended_since_beat: false,
            beat_skipped: false,
            knows_commit: false,
            answered_since_beat: false,
        }
    }

    /// Whether the leader's heartbeat round, now, leaves this replica out (docs/design.md
    /// §4.2): it is replicating and got an append since the previous round, which reset its
    /// election timer as a heartbeat would, and its answer counts it active. At most every
    /// other round is skipped, so a probe for lost appends (`heartbeat_sent`), the lease
    /// a round's acknowledgements renew (`reads.rs`) and a commit index no append carried
    /// still come with the round after. Records the round either way.
    pub(crate) fn skips_heartbeat(&mut self) -> bool {
        let skip = self.state == ProgressState::Replicate
            && self.appended_since_beat
            && !self.beat_skipped;
        self.appended_since_beat = false;
        self.beat_skipped = skip;
        skip
    }

    /// Whether another append may go out now.
    pub(crate) fn can_send(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => !self.probe_sent,
            ProgressState::Replicate => self.inflight.len() < max_inflight,
            ProgressState::Snapshot => false,
        }
    }

    /// Whether an append is owed and may go now, to a leader whose log ends at `last` and
    /// has committed `committed`: entries it lacks, a probe, or (when `notice_due`, at the
    /// leader's heartbeat round) a commit index it was not told. The one rule for
    /// `send_appends` and `has_appends_to_send`.
    pub(crate) fn owes_append(
        &self,
        max_inflight: usize,
        last: u64,
        committed: u64,
        notice_due: bool,
    ) -> bool {
        let behind = self.next <= last;
        let probe = self.state == ProgressState::Probe && !self.probe_sent;
        // A replica the heartbeat round skipped learns the commit from the next append or
        // round instead: a notice in its place would cost more than the heartbeat saved.
        let notice = notice_due && !self.beat_skipped && self.commit_sent < committed;
        self.can_send(max_inflight) && (behind || probe || notice)
    }

    /// Records an append carrying entries up to `last` and commit index `commit` as sent.
    pub(crate) fn sent(&mut self, last: u64, had_entries: bool, commit: u64) {
        self.appended_since_beat = true;
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate if had_entries => {
                self.next = last + 1;
                self.inflight.push_back((last, commit));
            }
            ProgressState::Replicate | ProgressState::Snapshot => {}
        }
    }

    /// Whether a successful answer up to `index` shows that the replica held the commit
    /// index of the append it answers (before `on_success` takes that append off the
    /// window): a joining replica has then joined (`knows_commit`). Either the append in
    /// flight that ends at `index` carried a commit index at or below it, or every append
    /// sent since the replica's match was last forgotten did (`commit_sent`, the highest
    /// any carried). In flight, an append is known by its last index: one sent earlier to
    /// the same index (before the window was last cleared) carried no higher a commit index,
    /// and none is sent to it later while this one is in flight. Compared with the leader's
    /// commit index now instead, a replica whose answers always came after the voters' had
    /// moved it on (a slower link, steady writes) was never known to have joined, and its
    /// promotion never ended (review).
    pub(crate) fn told_commit(&self, index: u64) -> bool {
        let in_flight = self
            .inflight
            .iter()
            .any(|&(last, commit)| last == index && commit <= index);
        in_flight || self.commit_sent != 0 && index >= self.commit_sent
    }

    /// A successful append response up to `index`. Returns whether `matched` moved.
    pub(crate) fn on_success(&mut self, index: u64) -> bool {
        let moved = index > self.matched;
        if moved {
            self.matched = index;
            self.answered_since_beat = true;
        }
        self.next = self.next.max(index + 1);
        while self.inflight.front().is_some_and(|&(i, _)| i <= index) {
            self.inflight.pop_front();
        }
        if self.state == ProgressState::Probe || self.state == ProgressState::Snapshot && moved {
            // A follower in snapshot state whose match moved caught up another way (it
            // already held the snapshot's entries): the transfer is moot. If it is still
            // behind the log's first index, the next append starts another.
            self.become_replicate();
        }
        moved
    }

    /// A rejected append of `rejected` (its prev_index). `next` is the new guess computed
    /// from the follower's hint. Returns false for a stale rejection.
    pub(crate) fn on_reject(&mut self, rejected: u64, next: u64) -> bool {
        match self.state {
            // A rejection of something older than what we already know matches is stale.
            ProgressState::Replicate if rejected <= self.matched => false,
            ProgressState::Replicate => {
                self.become_probe();
                self.next = next.max(self.matched + 1);
                true
            }
            // In probe only the answer to the probe we sent (prev = next - 1) counts.
            ProgressState::Probe if rejected + 1 != self.next => false,
            ProgressState::Probe => {
                self.next = next.max(self.matched + 1).min(self.next);
                self.probe_sent = false;
                true
            }
            // The transfer decides; a rejected append from before it says nothing new.
            ProgressState::Snapshot => false,
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.send_from_match(ProgressState::Probe);
    }

    fn become_replicate(&mut self) {
        self.send_from_match(ProgressState::Replicate);
    }

    /// Enters `state` (probe or replicate) sending from past the match, with nothing in
    /// flight and nothing out yet to judge lost (`heartbeat_sent`).
    fn send_from_match(&mut self, state: ProgressState) {
        self.state = state;
        self.heartbeat_sent = 0;
        self.probe_sent = false;
        self.inflight.clear();
        self.snapshot = None;
        self.next = self.matched + 1;
    }

    /// Forgets what the replica was known to hold (its node restarted, or went down), and
    /// probes from `next`.
    pub(crate) fn forget_match(&mut self, next: u64) {
        self.matched = 0;
        self.commit_sent = 0;
        // A wiped replica comes back joining: what the last incarnation was told is no
        // longer known to it (review: a stale flag let the leader promote it untold).
        self.knows_commit = false;
        self.become_probe();
        self.next = next;
    }

    /// Starts sending the snapshot at `index`; the node admits the transfer first.
    pub(crate) fn become_snapshot(&mut self, index: u64) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.inflight.clear();
        self.snapshot = Some(Outgoing::new(index));
    }
}

/// The leader's records of the other replicas, in a small vector sorted by node. A group has
/// a handful of replicas; a tree map's nodes would cost several times the records' own size
/// in every group a node leads (docs/design.md §4: per-group state stays small).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgressMap(Vec<(NodeId, Progress)>);

impl ProgressMap {
    /// Reads every follower's record (depth 0), or the oldest append in flight to each
    /// (depth 1). See `Replica::warm`.
    pub(crate) fn warm(&self, depth: u8) -> u64 {
        self.0.iter().fold(0, |acc, (_, p)| match depth {
            0 => acc ^ p.matched ^ p.next ^ p.inflight.len() as u64,
            _ => acc ^ p.inflight.front().map_or(0, |f| f.0),
        })
    }

    pub(crate) fn get(&self, node: &NodeId) -> Option<&Progress> {
        self.0.iter().find(|(n, _)| n == node).map(|(_, p)| p)
    }

    pub(crate) fn get_mut(&mut self, node: &NodeId) -> Option<&mut Progress> {
        self.0.iter_mut().find(|(n, _)| n == node).map(|(_, p)| p)
    }

    /// The follower at `position` (in node order), if there are that many.
    pub(crate) fn node_at(&self, position: usize) -> Option<NodeId> {
        self.0.get(position).map(|(n, _)| *n)
    }

    /// The replica at `position` and its record, for a walk by position that sends as it
    /// goes (`broadcast_heartbeat`, `quiesce`).
    pub(crate) fn at_mut(&mut self, position: usize) -> Option<(NodeId, &mut Progress)> {
        self.0.get_mut(position).map(|(n, p)| (*n, p))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Progress> {
        self.0.iter().map(|(_, p)| p)
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Progress> {
        self.0.iter_mut().map(|(_, p)| p)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &Progress)> {
        self.0.iter().map(|(n, p)| (n, p))
    }

    /// Adds the record of `node`, which has none, in node order.
    pub(crate) fn insert(&mut self, node: NodeId, p: Progress) {
        let at = self.0.partition_point(|(n, _)| *n < node);
        self.0.insert(at, (node, p));
    }

    /// Forgets every record and frees their memory.
    pub(crate) fn clear(&mut self) {
        self.0 = Vec::new();
    }

    /// Returns memory the inflight windows grew to; for a group going quiet.
    pub(crate) fn shrink(&mut self) {
        for (_, p) in &mut self.0 {
            p.inflight.shrink_to_fit();
        }
    }
}

impl IntoIterator for ProgressMap {
    type Item = (NodeId, Progress);
    type IntoIter = std::vec::IntoIter<(NodeId, Progress)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(NodeId, Progress)> for ProgressMap {
    fn from_iter<I: IntoIterator<Item = (NodeId, Progress)>>(iter: I) -> Self {
        let mut v: Vec<(NodeId, Progress)> = iter.into_iter().collect();
        v.sort_by_key(|(n, _)| *n);
        v.shrink_to_fit();
        ProgressMap(v)
    }
}
