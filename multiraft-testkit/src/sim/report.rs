//! The outcome of a run: [`Violation`] when it broke a property, [`SimReport`] when not.

use std::fmt;

/// A safety or liveness property the run broke.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The property, with its paper section.
    pub invariant: String,
    /// The seed of the run.
    pub seed: u64,
    /// The step at which it was detected.
    pub step: u64,
    /// Simulated time of detection, in microseconds.
    pub at_us: u64,
    /// What was seen.
    pub detail: String,
    /// The last trace lines before the violation, oldest first.
    pub trace_tail: Vec<String>,
    /// The run's configuration, in one line (nodes, groups, faults, core options).
    pub setup: String,
    /// The command that replays the run.
    pub replay: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "violation of {}", self.invariant)?;
        writeln!(
            f,
            "  seed {} at step {} ({}.{:06} simulated s)",
            self.seed,
            self.step,
            self.at_us / 1_000_000,
            self.at_us % 1_000_000
        )?;
        writeln!(f, "  {}", self.detail)?;
        writeln!(f, "  setup: {}", self.setup)?;
        writeln!(f, "  last {} trace lines:", self.trace_tail.len())?;
        for l in &self.trace_tail {
            writeln!(f, "    {l}")?;
        }
        write!(f, "  replay: {}", self.replay)
    }
}

impl std::error::Error for Violation {}

/// What a run did, when it broke nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Events processed.
    pub steps: u64,
    /// Hash of every delivered batch, ready, tick and fault: equal for equal seeds.
    pub trace_hash: u64,
    /// Simulated time covered, in microseconds.
    pub simulated_us: u64,
    /// Batches delivered.
    pub batches_delivered: u64,
    /// Batches lost, or dropped by a partition or a down node.
    pub batches_dropped: u64,
    /// Client proposals made.
    pub proposals: u64,
    /// Proposals applied on the node that took them.
    pub applied: u64,
    /// Proposals definitely rejected.
    pub rejected: u64,
    /// Proposals with no definite outcome (the node crashed, or the run ended first).
    pub indeterminate: u64,
    /// Proposals the node reported indeterminate that a replica applied all the same: an
    /// outcome the node could have told. Counted, not failed: "unknown" is always true.
    pub indeterminate_applied: u64,
    /// Times a replica became leader.
    pub leader_changes: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Storage write failures (each stops a node).
    pub storage_failures: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Nodes paused (`Faults::pauses`): stalled or busy.
    pub pauses: u64,
    /// Of those, busy ones whose inputs waited meanwhile (a backlog).
    pub backlog_pauses: u64,
    /// Peer nodes declared down by a node's tick, summed over the nodes (each verdict once).
    pub peers_declared_down: u64,
    /// Of those, declared by a node stepping a backlog (`backlog_pauses`).
    pub declared_down_in_backlog: u64,
    /// Stalled pauses that are one long turn of a loop whose process runs: its beacon
    /// beats meanwhile.
    pub long_turns: u64,
    /// Batches those beacons sent (`Node::beacon_batches`).
    pub beacon_batches: u64,
    /// Peers declared down (of `peers_declared_down`) while their beacon beat: a node in
    /// one long turn that had lasted a tick and at most `MAX_BEACON_TIMEOUTS` timeouts.
    pub declared_down_while_beaten: u64,
    /// Batches held back as stragglers (`Faults::straggler_per_mille`).
    pub stragglers: u64,
    /// Batches split into pieces sent apart (`Faults::split_per_mille`).
    pub batches_split: u64,
    /// Simulated microseconds from healing to every group having committed a new entry.
    pub liveness_us: u64,
    /// 1 when the linearizability search gave up (too many concurrent operations on one
    /// key), so the history was not judged. [`SimConfig::require_linearizability_verdict`]
    /// makes that a violation instead.
    ///
    /// [`SimConfig::require_linearizability_verdict`]: super::SimConfig::require_linearizability_verdict
    pub linearizability_unknown: u64,
    /// Nodes kept crashed or cut off through the liveness phase
    /// ([`Faults::lost_nodes`](super::Faults::lost_nodes)).
    pub lost_nodes: u64,
    /// Groups left without a live majority by the lost nodes: reported, not required to
    /// elect.
    pub groups_without_majority: u64,
    /// Client reads made through `Node::read` (served, failed, or cut short by a crash or
    /// the end of the run).
    pub reads: u64,
    /// Reads served under `ReadPolicy::ReadIndex`.
    pub reads_read_index: u64,
    /// Reads served under `ReadPolicy::Lease`.
    pub reads_lease: u64,
    /// Reads served under `ReadPolicy::Follower`.
    pub reads_follower: u64,
    /// Reads that failed: refused when made (not the leader, no leader, busy) or later
    /// (`Resolution::ReadFailed`: leadership changed, timed out, node stopped).
    pub reads_failed: u64,
    /// Leadership transfers a node took (alone, or in a drain).
    pub transfers_started: u64,
    /// Transfers that ended with their target leading.
    pub transfers_done: u64,
    /// Transfers that ended without it (`Resolution::TransferFailed`).
    pub transfers_failed: u64,
    /// Transfers refused when asked (not the leader, one already in progress, no live
    /// target).
    pub transfers_refused: u64,
    /// Nodes drained (every group they led handed off).
    pub drains: u64,
    /// Snapshots taken of state machines (and written, unless a crash came first).
    pub snapshots_taken: u64,
    /// Snapshots that failed on purpose (`Faults::snapshot_failure_per_mille`).
    pub snapshot_failures: u64,
    /// Proposals a leader took while it had proposals parked for a snapshot (it had
    /// committed too far past its last one), so parked too: counted when proposed there.
    pub parked_for_snapshots: u64,
    /// Proposals a leader took while its next snapshot was deferred for a transfer of its
    /// stored one (`Replica::snapshot_deferred`): counted when proposed there.
    pub deferred_for_transfers: u64,
    /// Simulated microseconds the late node took to catch up with its group, once back
    /// ([`SimConfig::hot_group_per_sec`](super::SimConfig::hot_group_per_sec)): 0 when no
    /// node was kept down.
    pub late_catch_up_us: u64,
    /// 1 when that node had not caught up by the end of the run: it began receiving a
    /// snapshot too late in the liveness phase to be judged, or waited all of it for a
    /// receive slot. Counted, not failed.
    pub late_behind_at_end: u64,
    /// Proposals refused by admission control (`Config::max_commit_wait_ticks`): counted
    /// in `rejected` too.
    pub refused_by_admission: u64,
    /// Proposals refused at `Config::max_pending_proposals`, the node's or the half a group
    /// may hold: counted in `rejected` too.
    pub refused_by_table: u64,
    /// Log compactions written.
    pub compactions: u64,
    /// Snapshots installed from a leader (the last chunk written).
    pub installs: u64,
    /// State machines restored from a stored snapshot (after an install or a restart).
    pub restores: u64,
    /// First chunks of a transfer refused for want of a receive slot.
    pub snapshot_refusals: u64,
    /// `LogLost` messages sent: a replica joined again after its node deleted the group's
    /// earlier one, whose leader still took it to hold what that one acknowledged.
    pub log_lost: u64,
    /// Membership changes a leader took.
    pub changes_started: u64,
    /// Changes that ended with their membership committed.
    pub changes_done: u64,
    /// Changes that ended otherwise (`Resolution::MembershipChangeFailed`: leadership
    /// changed, a learner did not catch up, the node stopped).
    pub changes_failed: u64,
    /// Changes refused when asked (not the leader, another change in progress, invalid).
    pub changes_refused: u64,
    /// Joint configurations committed (entered).
    pub joint_entered: u64,
    /// Joint configurations left (the configuration after one committed).
    pub joint_left: u64,
    /// Learners promoted to voters by a committed joint configuration.
    pub promotions: u64,
    /// Changes completed that removed the leader that took them.
    pub leader_removals: u64,
    /// Replicas deleted after reporting themselves removed.
    pub replicas_removed: u64,
    /// Joining replicas deleted because the change they joined for failed or ended
    /// indeterminate (its proposing node crashed) and the leader, once it has committed an
    /// entry of its term, does not name them, as `MultiRaft::join_group` asks of an
    /// application.
    pub joins_abandoned: u64,
    /// Replicas removed and left untold past the bound of the liveness phase's check, of
    /// the kinds the library does not yet tell (counted, not failed): removed while still
    /// joining (a joining replica ignores `Removed`).
    pub removed_untold_joining: u64,
    /// The same, for a replica whose membership names no voter that still hosts the group:
    /// it has no one to ask (`MessageBody::Unheard`), and no leader hears of it.
    pub removed_untold_orphaned: u64,
    /// The same, for a replica its leader quiesced and then, while it was cut off, removed
    /// and forgot: it does not tick, so it never asks, and its leader's node stays live.
    pub removed_untold_quiesced: u64,
}

impl SimReport {
    /// Removed replicas left untold, of every kind counted (`removed_untold_*`).
    pub fn removed_untold(&self) -> u64 {
        self.removed_untold_joining + self.removed_untold_orphaned + self.removed_untold_quiesced
    }

    /// Reads served, under every policy.
    pub fn reads_served(&self) -> u64 {
        self.reads_read_index + self.reads_lease + self.reads_follower
    }
}
