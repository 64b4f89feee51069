//! Tunables and limits. Every limit is named, bounded and says why it exists.

use std::time::Duration;

/// Configuration shared by every group on a node. Build with `Config::default()` and
/// adjust fields; [`Config::validate`] is called when the node starts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Config {
    /// Wall-clock length of one tick; the driver ticks the node at this rate. Every other
    /// time in this struct is counted in ticks so the protocol itself never reads a clock.
    /// It also bounds how far a follower's applies trail its leader's when no new entries
    /// follow: a commit index alone reaches the followers with the leader's heartbeat
    /// rounds, every `heartbeat_interval_ticks`, within two of them (a round may leave out a
    /// follower just sent an append, never two in a row; docs/design.md §4.2).
    pub tick_interval: Duration,
    /// Lower bound (inclusive) of the randomized election timeout, in ticks (Raft §5.2).
    /// A follower whose timer runs out while its leader's node is live holds back its own
    /// campaign for up to [`DEFERRED_TIMEOUTS`](crate::group::DEFERRED_TIMEOUTS) maximum
    /// timeouts: under overload heartbeats are late, not lost (docs/design.md §4.3). It is
    /// also the peer liveness timeout, in ticks the node served, stretched after a peer's
    /// stalls or the node's own, to at most eight times this (docs/design.md §4.3).
    pub election_timeout_min_ticks: u32,
    /// Upper bound (exclusive) of the randomized election timeout, in ticks. The spread
    /// `max - min` is what keeps split votes rare.
    pub election_timeout_max_ticks: u32,
    /// How often a leader heartbeats an idle follower, in ticks. Must be well below the
    /// minimum election timeout so that one lost heartbeat does not start an election.
    /// Under steady writes a follower gets every other round: a round leaves out one that
    /// was just sent an append (docs/design.md §4.2). At most 65,535.
    pub heartbeat_interval_ticks: u32,
    /// Run a PreVote round before a real election (dissertation §9.6), so a partitioned
    /// replica that rejoins does not force the healthy leader to step down.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down
    /// (dissertation §6.2), and followers that hear from a leader ignore vote requests
    /// until an election timeout passes (leader stickiness). A follower on a live node
    /// counts as heard: a busy node answers late (docs/design.md §4.3).
    pub check_quorum: bool,
    /// Quiesce idle groups: once every replica holds and knows the whole committed log, and
    /// the leader has appended no command or membership entry for an election timeout
    /// (`election_timeout_min_ticks`; a new leader need not wait), the leader tells the
    /// followers and the group stops ticking and heartbeating until something happens. The
    /// wait keeps a group with a proposal every few ticks from going quiet and waking
    /// between each one. Failure detection for quiesced groups is per node (see
    /// [`Node`](crate::Node)), so an idle group costs nothing.
    pub quiesce: bool,
    /// Appends in flight to one follower before the leader waits for acknowledgements.
    /// Bounds the memory a slow follower can pin on the leader and the burst it receives.
    pub max_inflight_appends: usize,
    /// Entries in one append message. Bounds message size and the work one message costs
    /// the receiver. At most [`MAX_ITEMS_PER_MESSAGE`](crate::MAX_ITEMS_PER_MESSAGE), which
    /// every receiver enforces.
    pub max_append_entries: usize,
    /// Bytes of entries in one append message, and of proposals in one message forwarding
    /// them to the leader (at least one is always sent, so a large entry still moves).
    /// Bounds message and frame size: a transport with a frame limit (QUIC's
    /// `max_frame_bytes`, 4 MiB by default) never sends a message past it, so keep this,
    /// `max_proposal_bytes` and `snapshot_chunk_bytes` under it.
    pub max_append_bytes: usize,
    /// Bytes of one proposal; larger proposals are rejected with `TooLarge`. Bounds the
    /// size of every entry, and so of every write and message that carries one.
    pub max_proposal_bytes: usize,
    /// Bytes of appended-but-uncommitted entries per group; further proposals are rejected
    /// with `Busy` until some commit. Keeps a group whose followers are unreachable from
    /// growing its log, and memory, without bound.
    pub max_uncommitted_bytes: usize,
    /// Groups drained into one ready. Bounds the latency one ready adds; groups left over
    /// are served first in the next ready, so none starves.
    pub max_ready_groups: usize,
    /// Entries (to persist plus to apply) after which a ready takes no further group, and
    /// the most a group may apply in the ready that reaches it, so that one busy group
    /// cannot hold up the others. A group's new entries are persisted whole (they are
    /// already bounded per group by `max_uncommitted_bytes` and by what one append
    /// carries), so one ready's write can exceed it by one group's new entries.
    pub max_ready_entries: usize,
    /// Bytes of entries (to persist plus to apply) in one ready; the byte form of
    /// `max_ready_entries`, with the same meaning.
    pub max_ready_bytes: usize,
    /// Proposals accepted by the API and not yet resolved, per node. Further proposals are
    /// rejected with `Busy`. Bounds client memory held by the node. One group holds at most
    /// half of them (at least one), so that a group whose proposals cannot commit and pile
    /// up until their timeout leaves the rest to the node's other groups; a node hosting
    /// one group holds at most half of them too.
    pub max_pending_proposals: usize,
    /// Batches received from peer nodes and not yet stepped. A full inbox drops the batch
    /// (Raft retransmits), so a flooding peer cannot exhaust memory.
    pub max_inbox_batches: usize,
    /// Bytes of the batches received from peer nodes and not yet stepped
    /// (`MessageBatch::size_bytes`); beyond it a batch is dropped as when the inbox is full
    /// (an empty inbox still takes one batch of any size). `max_inbox_batches` alone let a
    /// slow node hold thousands of snapshot chunks a leader sent again while it was behind
    /// (cluster_bench: 270 MiB more on the receiver of a 1 GiB snapshot).
    pub max_inbox_bytes: usize,
    /// API calls queued to the event loop, and proposals queued to it (apart: one queue
    /// each). A call waits for room (backpressure); a proposal beyond it is refused at once
    /// with `Busy`, since it would only wait behind more than the loop can take.
    pub max_api_queue: usize,
    /// Bytes of commands queued to the event loop and not yet taken, by `propose` and
    /// `propose_many` together, each command counted at its payload and
    /// [`COMMAND_OVERHEAD_BYTES`](crate::COMMAND_OVERHEAD_BYTES) for its handle, so that
    /// empty commands are bounded too. A proposal that would pass it is refused at once with
    /// `Busy` (a `propose_many` call: its commands from there on); an empty queue still
    /// takes one proposal of any size `max_proposal_bytes` allows. `max_api_queue` counts
    /// proposals, which bounds memory only with their size: 65,536 of a MiB each is 64 GiB.
    pub max_api_queue_bytes: usize,
    /// Events buffered for each subscriber of `MultiRaft::events`. A subscriber that falls
    /// further behind loses the oldest events (and is told how many), so a slow reader can
    /// never make the node buffer without bound.
    pub max_event_backlog: usize,
    /// A follower forwards proposals to the leader it knows instead of rejecting them
    /// with `NotLeader`.
    pub forward_proposals: bool,
    /// A proposal still unresolved after this many ticks ends `Indeterminate` (and so does
    /// a membership change whose configuration stays uncommitted this long): a timeout
    /// never means "failed", because the entry may still commit.
    pub proposal_timeout_ticks: u32,
    /// Admission control (docs/design.md §5): while most proposals this node applied during
    /// the last tick had waited more than this many ticks since they were queued for it,
    /// the node holds at most what it applied in that tick times this many, and refuses the
    /// rest with `Busy` at once. A node past what it can serve then sheds load with a
    /// definite refusal, instead of queueing until latency reaches the proposal timeout and
    /// its callers learn nothing (`Indeterminate`). Bounds the wait inside the node of what
    /// it takes under sustained overload to about this many ticks. `u32::MAX` turns it off
    /// (a wait counts from the queueing, the proposal timeout from the taking, so a value at
    /// `proposal_timeout_ticks` can still act when the queue is long).
    pub max_commit_wait_ticks: u32,
    /// How long a leader's lease lasts, in ticks, counted from the tick a heartbeat round
    /// left to the moment a quorum had acknowledged it (dissertation §6.4.1). A follower
    /// refuses other candidates for `election_timeout_min_ticks` after hearing the leader,
    /// of its own ticks. If one node's ticks may run slower than another's by a fraction
    /// `ρ`, a lease is safe when `lease_ticks ≤ (election_timeout_min_ticks − 1)·(1 − ρ) − 1`
    /// (one tick on each side for where in a tick a message lands). The default, 7 with a
    /// minimum election timeout of 10, allows ρ up to 11 %. Must be at most
    /// `election_timeout_min_ticks − 2`; lease reads also need `check_quorum`.
    ///
    /// The promise is the followers': it holds only if every node of the group runs with
    /// `check_quorum` on, an `election_timeout_min_ticks` at least the leader's and the
    /// same tick interval. A node checks its own configuration, not its peers' (nothing
    /// carries it), so a cluster serving lease reads must change these together, or read
    /// with [`ReadPolicy::ReadIndex`](crate::ReadPolicy::ReadIndex) meanwhile.
    pub lease_ticks: u32,
    /// Reads taken and not yet served or failed, per node; and per group, counting reads
    /// followers asked the leader for. Further reads fail with `Busy`. Bounds the memory
    /// reads hold.
    pub max_pending_reads: usize,
    /// A replica takes a snapshot of its state machine once it has applied this many entries since
    /// its last one (less up to a quarter, drawn from its group id, so that groups fed alike do not
    /// all snapshot in the same tick), stores it, and compacts its log below it (docs/design.md
    /// §4.6). Bounds the log each group keeps in memory and on disk, and what a restart re-applies,
    /// to about `snapshot_entries + compaction_lag_entries` committed entries (a leader past it
    /// parks new proposals until the snapshot is stored), plus the proposals in flight when that
    /// hold began; while a leader sends its stored snapshot to a follower, up to
    /// [`SENDING_LOG_FACTOR`](crate::group::SENDING_LOG_FACTOR) times that; a follower compacts as
    /// it applies, so a lagging follower's log is not held to it (docs/design.md §11). Lower values
    /// cost more snapshots; `u64::MAX` turns them off. Machines that do not support snapshots keep
    /// their whole log regardless.
    pub snapshot_entries: u64,
    /// Entries kept below a new snapshot when the log is compacted, so that a follower a
    /// little behind still catches up by appends rather than by a whole snapshot.
    pub compaction_lag_entries: u64,
    /// Bytes of one snapshot chunk: the unit a snapshot is written, read and sent in (the
    /// state machine's pieces are cut and joined into chunks of this size, the last one
    /// shorter). Bounds the memory one transfer holds per chunk, the size of the messages
    /// and writes that carry it, and what a build holds before its next chunk is cut: a
    /// value past the snapshot's size keeps the whole snapshot in memory until its end.
    pub snapshot_chunk_bytes: usize,
    /// Chunks of one snapshot transfer sent and not yet acknowledged. Bounds the memory a
    /// transfer pins and the burst a follower receives, while keeping the link busy.
    pub snapshot_window_chunks: u32,
    /// Snapshots this node produces at once (the state machine serializing one, its chunks
    /// being written). Bounds the CPU and threads snapshots take from the groups' ordinary
    /// work; a group over its threshold waits for a slot. A slot produces at most one
    /// snapshot per ready, so this must exceed the snapshots a busy node needs per ready:
    /// 1,000 groups committing 600,000 entries/s at ~100 readies/s need about 6 (with 4
    /// the builds fell behind without end; docs/design.md §4.6). The bytes built ahead of
    /// the disk are bounded apart from this, at eight chunks per write.
    pub max_snapshots_building: usize,
    /// Snapshot transfers this node sends at once, over all groups and peers. Bounds the
    /// bandwidth and storage reads they take, so a peer returning after a long outage does
    /// not flood the node's links; further transfers wait.
    pub max_snapshot_sends: usize,
    /// Snapshot transfers this node receives at once. Further first chunks are refused and
    /// sent again later, so a node returning after a long outage is not flooded.
    pub max_snapshot_receives: usize,
    /// A learner being added as a voter ([`MembershipChange::AddVoter`]) counts as caught
    /// up while its log is within this many entries of the leader's last index (and holds
    /// at least the log's end as of the change's start, so the entry that made it a
    /// learner). Promoting a replica far behind would leave the new configuration's quorum
    /// waiting on it.
    ///
    /// [`MembershipChange::AddVoter`]: crate::MembershipChange::AddVoter
    pub learner_catchup_entries: u64,
    /// Consecutive leader ticks a learner must stay caught up before it is promoted: one
    /// lucky moment is no proof it keeps up with the write rate.
    pub learner_catchup_ticks: u32,
    /// Extra invariant checks that panic, naming group, term and index, when the protocol
    /// reaches a state it must never reach. For tests and simulation.
    pub strict: bool,
}

/// The longest `Config::tick_interval`: one hour. Ticks far apart make elections take
/// hours; past `Duration::MAX` minus the clock's reading, the event loop's next deadline
/// would overflow when the node starts.
pub const MAX_TICK_INTERVAL: Duration = Duration::from_secs(3600);

/// The largest `Config::max_inbox_batches` and `Config::max_api_queue`: what tokio's
/// bounded channels take (`usize::MAX >> 3` permits; more panics at start).
pub const MAX_QUEUE_CAPACITY: usize = usize::MAX >> 3;

/// The largest `Config::max_event_backlog`: the event channel allocates one slot per event
/// when the node starts (rounded up to a power of two), so about 64 MiB at this bound, 16
/// times the default.
pub const MAX_EVENT_BACKLOG: usize = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Config {
            tick_interval: Duration::from_millis(50),
            election_timeout_min_ticks: 10,
            election_timeout_max_ticks: 20,
            heartbeat_interval_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            quiesce: true,
            max_inflight_appends: 256,
            max_append_entries: 512,
            max_append_bytes: 1 << 20,
            max_proposal_bytes: 1 << 20,
            max_uncommitted_bytes: 64 << 20,
            max_ready_groups: 16_384,
            max_ready_entries: 65_536,
            max_ready_bytes: 32 << 20,
            max_pending_proposals: 1 << 20,
            max_inbox_batches: 4_096,
            max_inbox_bytes: 32 << 20,
            max_api_queue: 65_536,
            max_api_queue_bytes: 64 << 20,
            max_event_backlog: 65_536,
            forward_proposals: true,
            proposal_timeout_ticks: 200,
            max_commit_wait_ticks: 20,
            lease_ticks: 7,
            max_pending_reads: 1 << 20,
            snapshot_entries: 1_024,
            compaction_lag_entries: 256,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_window_chunks: 4,
            max_snapshots_building: 32,
            max_snapshot_sends: 8,
            max_snapshot_receives: 8,
            learner_catchup_entries: 64,
            learner_catchup_ticks: 4,
            strict: false,
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {field}: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Config {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, reason| Err(ConfigError { field, reason });
        if self.tick_interval.is_zero() {
            return err("tick_interval", "must be positive");
        }
        if self.tick_interval > MAX_TICK_INTERVAL {
            return err(
                "tick_interval",
                "must be at most MAX_TICK_INTERVAL (one hour)",
            );
        }
        if self.heartbeat_interval_ticks == 0 {
            return err("heartbeat_interval_ticks", "must be positive");
        }
        if self.heartbeat_interval_ticks > u32::from(u16::MAX) {
            // A replica counts the ticks to its next heartbeat in two bytes.
            return err("heartbeat_interval_ticks", "must be at most 65,535");
        }
        if self.election_timeout_min_ticks <= self.heartbeat_interval_ticks {
            return err(
                "election_timeout_min_ticks",
                "must exceed heartbeat_interval_ticks",
            );
        }
        if self.election_timeout_max_ticks <= self.election_timeout_min_ticks {
            return err(
                "election_timeout_max_ticks",
                "must exceed election_timeout_min_ticks",
            );
        }
        // Saturating: near `u32::MAX` the sum wrapped past this check (review).
        if self.lease_ticks.saturating_add(2) > self.election_timeout_min_ticks {
            return err(
                "lease_ticks",
                "must be at most election_timeout_min_ticks - 2, or a lease could outlive a follower's promise",
            );
        }
        let positive: [(&'static str, usize); 22] = [
            ("learner_catchup_ticks", self.learner_catchup_ticks as usize),
            ("snapshot_entries", self.snapshot_entries as usize),
            ("snapshot_chunk_bytes", self.snapshot_chunk_bytes),
            (
                "snapshot_window_chunks",
                self.snapshot_window_chunks as usize,
            ),
            ("max_snapshots_building", self.max_snapshots_building),
            ("max_snapshot_sends", self.max_snapshot_sends),
            ("max_snapshot_receives", self.max_snapshot_receives),
            ("max_pending_reads", self.max_pending_reads),
            ("max_inflight_appends", self.max_inflight_appends),
            ("max_append_entries", self.max_append_entries),
            ("max_append_bytes", self.max_append_bytes),
            ("max_proposal_bytes", self.max_proposal_bytes),
            ("max_uncommitted_bytes", self.max_uncommitted_bytes),
            ("max_ready_groups", self.max_ready_groups),
            ("max_ready_entries", self.max_ready_entries),
            ("max_ready_bytes", self.max_ready_bytes),
            ("max_pending_proposals", self.max_pending_proposals),
            ("max_inbox_batches", self.max_inbox_batches),
            ("max_inbox_bytes", self.max_inbox_bytes),
            ("max_api_queue", self.max_api_queue),
            ("max_api_queue_bytes", self.max_api_queue_bytes),
            ("max_event_backlog", self.max_event_backlog),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return err(field, "must be positive");
        }
        // Queue capacities the runtime's channels take (their semaphores hold at most
        // `usize::MAX >> 3` permits), and a backlog its broadcast channel allocates at
        // start, one slot per event: larger values used to panic, or allocate without
        // bound, when the node started (review).
        let capacities = [
            (
                "max_inbox_batches",
                self.max_inbox_batches,
                MAX_QUEUE_CAPACITY,
            ),
            ("max_api_queue", self.max_api_queue, MAX_QUEUE_CAPACITY),
            (
                "max_event_backlog",
                self.max_event_backlog,
                MAX_EVENT_BACKLOG,
            ),
        ];
        if let Some((field, _, _)) = capacities.iter().find(|(_, v, max)| v > max) {
            return err(
                field,
                "too large: queues hold at most MAX_QUEUE_CAPACITY, the event backlog MAX_EVENT_BACKLOG",
            );
        }
        if self.max_append_entries > crate::message::MAX_ITEMS_PER_MESSAGE {
            return err(
                "max_append_entries",
                "must be at most MAX_ITEMS_PER_MESSAGE, or receivers would refuse the appends",
            );
        }
        if self.max_uncommitted_bytes < self.max_proposal_bytes {
            return err(
                "max_uncommitted_bytes",
                "must be at least max_proposal_bytes, or large proposals could never be accepted",
            );
        }
        if self.max_api_queue_bytes < self.max_proposal_bytes {
            return err(
                "max_api_queue_bytes",
                "must be at least max_proposal_bytes, or large proposals could never be queued",
            );
        }
        if self.proposal_timeout_ticks == 0 {
            return err("proposal_timeout_ticks", "must be positive");
        }
        if self.max_commit_wait_ticks == 0 {
            // A proposal taken in one tick and applied in the next waited one tick.
            return err(
                "max_commit_wait_ticks",
                "must be positive, or a node would refuse proposals whenever it applies any",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica counts the ticks to its next heartbeat in two bytes, so a longer interval
    /// is refused.
    #[test]
    fn heartbeat_interval_fits_the_replicas_counter() {
        let mut c = Config {
            heartbeat_interval_ticks: u32::from(u16::MAX),
            election_timeout_min_ticks: u32::from(u16::MAX) + 1,
            election_timeout_max_ticks: u32::from(u16::MAX) + 2,
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.heartbeat_interval_ticks += 1;
        assert_eq!(c.validate().unwrap_err().field, "heartbeat_interval_ticks");
    }

    /// `lease_ticks` and `tick_interval` at the top of their types are refused with the field's
    /// name, never wrapped past the check nor panicking in it. Regression (review): `lease_ticks`
    /// near `u32::MAX` wrapped past the lease bound in release builds (a lease of four billion
    /// ticks: stale reads from a deposed leader) and panicked `validate` in debug builds; a
    /// `tick_interval` near `Duration::MAX` passed and panicked the node when it started.
    #[test]
    fn lease_ticks_and_tick_interval_at_the_top_of_their_types_are_refused() {
        for lease_ticks in [u32::MAX, u32::MAX - 1] {
            let c = Config {
                lease_ticks,
                ..Config::default()
            };
            assert_eq!(c.validate().unwrap_err().field, "lease_ticks");
        }
        let mut c = Config {
            tick_interval: Duration::from_secs(3600),
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.tick_interval = Duration::MAX;
        assert_eq!(c.validate().unwrap_err().field, "tick_interval");
    }

    /// A leader never sends more entries in one append than every receiver accepts
    /// (`MessageBatch::validate`), so a config that would is refused.
    #[test]
    fn max_append_entries_is_bounded_by_the_receivers_limit() {
        let mut c = Config {
            max_append_entries: crate::MAX_ITEMS_PER_MESSAGE,
            ..Config::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.max_append_entries += 1;
        assert_eq!(c.validate().unwrap_err().field, "max_append_entries");
    }
}
