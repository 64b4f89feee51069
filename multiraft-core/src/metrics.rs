//! The metrics the core records, through the [`metrics`] facade: the library installs no
//! recorder (exporter), so with none installed every handle is a no-op. Install one (say,
//! `metrics-exporter-prometheus`) before starting nodes: each node registers its handles
//! once, when it is made, under the recorder in force then.
//!
//! Every series carries the label `node`: the node id as a decimal string. The names:
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | [`PROPOSALS_TOTAL`] | counter | `node`, `outcome` | proposals ended, by outcome |
//! | [`COMMIT_LATENCY_SECONDS`] | histogram | `node` | proposal taken → applied here |
//! | [`STORAGE_WRITE_SECONDS`] | histogram | `node` | one storage write, fsync included |
//! | [`STORAGE_WRITE_ENTRIES`] | histogram | `node` | log entries per storage write |
//! | [`STORAGE_WRITE_BYTES`] | histogram | `node` | entry and snapshot bytes per write |
//! | [`READY_SECONDS`] | histogram | `node` | one ready cycle in the driver |
//! | [`GROUPS`] | gauge | `node` | groups hosted |
//! | [`GROUPS_ACTIVE`] | gauge | `node` | groups not quiesced |
//! | [`GROUPS_QUIESCED`] | gauge | `node` | groups quiesced |
//! | [`ELECTIONS_TOTAL`] | counter | `node` | campaigns started |
//! | [`ELECTIONS_WON_TOTAL`] | counter | `node` | elections won |
//! | [`LEADER_CHANGES_TOTAL`] | counter | `node` | a replica learned of a new leader |
//! | [`SNAPSHOT_BYTES_TOTAL`] | counter | `node`, `direction` | snapshot chunk bytes |
//! | [`DROPPED_MESSAGES_TOTAL`] | counter | `node`, `reason` | inbound messages dropped |
//! | [`TICKS_MISSED_TOTAL`] | counter | `node` | ticks a stalled event loop served late |
//! | [`PEERS_DOWN`] | gauge | `node` | peer nodes declared down now |
//! | [`BEACON_BATCHES_TOTAL`] | counter | `node` | liveness beats sent while the event loop was late |
//! | [`PEER_FAILURES_TOTAL`] | counter | `node`, `kind` | a peer declared down, or heard restarted |
//!
//! The storage and transport crates document their own (`multiraft_redb_*`,
//! `multiraft_transport_*`). Nothing is recorded per proposal or per message beyond a
//! counter increment or a histogram sample on handles registered in advance.

use ::metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::error::ProposeError;
use crate::ids::NodeId;

/// Counter: proposals this node took or refused, once each as it ends, labelled `outcome`:
/// `applied` (applied here, the state machine's result returned), `indeterminate` (may or
/// may not apply: leadership changed, timed out, group removed, node stopped), or the
/// refusal — `not_leader`, `no_leader`, `busy`, `too_large`, `group_not_found`, `stopped`
/// (the node stopped before taking it), `transfer_in_progress`.
pub const PROPOSALS_TOTAL: &str = "multiraft_proposals_total";
/// Histogram, seconds: from when the driver took a proposal to when its entry was applied
/// on this node (successful proposals only). Measured on the node's `Clock`, stamped once
/// per event-loop wake (not per proposal), so it reads a little high under load.
pub const COMMIT_LATENCY_SECONDS: &str = "multiraft_commit_latency_seconds";
/// Histogram, seconds: each `Storage::write` the driver awaits (the fsync as the node sees it).
pub const STORAGE_WRITE_SECONDS: &str = "multiraft_storage_write_seconds";
/// Histogram: log entries in each storage write.
pub const STORAGE_WRITE_ENTRIES: &str = "multiraft_storage_write_entries";
/// Histogram: bytes of entries and snapshot chunks in each storage write.
pub const STORAGE_WRITE_BYTES: &str = "multiraft_storage_write_bytes";
/// Histogram, seconds: one ready cycle in the driver, from taking the ready to finishing
/// its write (sends, applies, write, advance, outcomes).
pub const READY_SECONDS: &str = "multiraft_ready_seconds";
/// Gauge: groups hosted on the node.
pub const GROUPS: &str = "multiraft_groups";
/// Gauge: groups not quiesced (the ones a tick visits, and the followers resting between
/// ticks, docs/design.md §4.10).
pub const GROUPS_ACTIVE: &str = "multiraft_groups_active";
/// Gauge: groups quiesced (hosted, not active).
pub const GROUPS_QUIESCED: &str = "multiraft_groups_quiesced";
/// Counter: campaigns a replica on this node started (a pre-vote round and the vote round
/// it leads to count as one).
pub const ELECTIONS_TOTAL: &str = "multiraft_elections_total";
/// Counter: elections a replica on this node won.
pub const ELECTIONS_WON_TOTAL: &str = "multiraft_elections_won_total";
/// Counter: times a replica on this node learned of a new leader (a leader of a new term,
/// or another leader than the one it knew).
pub const LEADER_CHANGES_TOTAL: &str = "multiraft_leader_changes_total";
/// Counter, bytes: snapshot chunk data, labelled `direction`: `sent` (chunks a leader here
/// sent to followers) or `received` (chunks accepted here, on their way to storage).
pub const SNAPSHOT_BYTES_TOTAL: &str = "multiraft_snapshot_bytes_total";
/// Counter: inbound messages dropped, labelled `reason`: `unknown_group`, `misaddressed` or
/// `invalid` (the counters of `NodeStats`).
pub const DROPPED_MESSAGES_TOTAL: &str = "multiraft_dropped_messages_total";
/// Counter: ticks of the node's clock that a stall kept the event loop from serving on
/// time (`NodeStatus::ticks_missed`). Growing: the loop falls behind its tick interval,
/// overloaded or starved of its thread, and its peers may soon declare it down.
pub const TICKS_MISSED_TOTAL: &str = "multiraft_ticks_missed_total";
/// Gauge: peer nodes (nodes hosting a replica of a group hosted here) this node declares
/// down now, not heard from within their liveness timeout. Set on every tick.
pub const PEERS_DOWN: &str = "multiraft_peers_down";
/// Counter: batches the node's beacon sent, one per peer at each of its wakes while its
/// event loop was late by a tick or more — in one long turn, or left unpolled by its
/// runtime (docs/design.md §4.3). Growing: the loop falls behind by enough that, but for the
/// beacon, its peers would count it silent.
pub const BEACON_BATCHES_TOTAL: &str = "multiraft_beacon_batches_total";
/// Counter: failures of peer nodes this node saw, labelled `kind`: `silent` (declared down
/// after a silence longer than its liveness timeout) or `restarted` (heard in a new life).
/// Either ends the leadership of the quiesced groups the peer led here; `silent` growing on
/// a healthy cluster says some node's event loop stalls for longer than the timeout.
pub const PEER_FAILURES_TOTAL: &str = "multiraft_peer_failures_total";

/// One counter per proposal outcome (see [`PROPOSALS_TOTAL`]).
#[derive(Clone, Debug)]
pub(crate) struct ProposalCounters {
    pub(crate) applied: Counter,
    pub(crate) indeterminate: Counter,
    not_leader: Counter,
    no_leader: Counter,
    busy: Counter,
    too_large: Counter,
    group_not_found: Counter,
    pub(crate) stopped: Counter,
    transfer_in_progress: Counter,
}

impl Default for ProposalCounters {
    fn default() -> Self {
        let n = Counter::noop;
        ProposalCounters {
            applied: n(),
            indeterminate: n(),
            not_leader: n(),
            no_leader: n(),
            busy: n(),
            too_large: n(),
            group_not_found: n(),
            stopped: n(),
            transfer_in_progress: n(),
        }
    }
}

impl ProposalCounters {
    fn new(node: &str) -> Self {
        let c = |outcome: &'static str| counter!(PROPOSALS_TOTAL, "node" => node.to_owned(), "outcome" => outcome);
        ProposalCounters {
            applied: c("applied"),
            indeterminate: c("indeterminate"),
            not_leader: c("not_leader"),
            no_leader: c("no_leader"),
            busy: c("busy"),
            too_large: c("too_large"),
            group_not_found: c("group_not_found"),
            stopped: c("stopped"),
            transfer_in_progress: c("transfer_in_progress"),
        }
    }

    /// One proposal ended with `error`.
    pub(crate) fn refused(&self, error: &ProposeError) {
        let c = match error {
            ProposeError::NotLeader { .. } => &self.not_leader,
            ProposeError::NoLeader => &self.no_leader,
            ProposeError::GroupNotFound(_) => &self.group_not_found,
            ProposeError::TooLarge { .. } => &self.too_large,
            ProposeError::Busy { .. } => &self.busy,
            ProposeError::Stopped => &self.stopped,
            ProposeError::Indeterminate(_) => &self.indeterminate,
            ProposeError::TransferInProgress => &self.transfer_in_progress,
        };
        c.increment(1);
    }
}

/// The handles of [`PEER_FAILURES_TOTAL`], one per kind.
#[derive(Clone, Debug)]
pub(crate) struct PeerFailures {
    pub(crate) silent: Counter,
    pub(crate) restarted: Counter,
}

/// The handles of one node's metrics, registered once when the node is made (labelled with
/// its id), so that recording costs no lookup.
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    pub(crate) proposals: ProposalCounters,
    pub(crate) commit_latency: Histogram,
    pub(crate) write_seconds: Histogram,
    pub(crate) write_entries: Histogram,
    pub(crate) write_bytes: Histogram,
    pub(crate) ready_seconds: Histogram,
    groups: Gauge,
    groups_active: Gauge,
    groups_quiesced: Gauge,
    pub(crate) elections: Counter,
    pub(crate) elections_won: Counter,
    pub(crate) leader_changes: Counter,
    pub(crate) snapshot_sent: Counter,
    pub(crate) snapshot_received: Counter,
    pub(crate) dropped_unknown_group: Counter,
    pub(crate) dropped_misaddressed: Counter,
    pub(crate) dropped_invalid: Counter,
    pub(crate) ticks_missed: Counter,
    pub(crate) beacon_batches: Counter,
    peers_down: Gauge,
    pub(crate) peer_failures: PeerFailures,
}

impl NodeMetrics {
    /// Registers the handles of node `id` with the recorder in force.
    pub fn new(id: NodeId) -> NodeMetrics {
        let node = id.0.to_string();
        let label = || node.clone();
        let snapshot = |direction: &'static str| counter!(SNAPSHOT_BYTES_TOTAL, "node" => label(), "direction" => direction);
        let dropped = |reason: &'static str| counter!(DROPPED_MESSAGES_TOTAL, "node" => label(), "reason" => reason);
        NodeMetrics {
            proposals: ProposalCounters::new(&node),
            commit_latency: histogram!(COMMIT_LATENCY_SECONDS, "node" => label()),
            write_seconds: histogram!(STORAGE_WRITE_SECONDS, "node" => label()),
            write_entries: histogram!(STORAGE_WRITE_ENTRIES, "node" => label()),
            write_bytes: histogram!(STORAGE_WRITE_BYTES, "node" => label()),
            ready_seconds: histogram!(READY_SECONDS, "node" => label()),
            groups: gauge!(GROUPS, "node" => label()),
            groups_active: gauge!(GROUPS_ACTIVE, "node" => label()),
            groups_quiesced: gauge!(GROUPS_QUIESCED, "node" => label()),
            elections: counter!(ELECTIONS_TOTAL, "node" => label()),
            elections_won: counter!(ELECTIONS_WON_TOTAL, "node" => label()),
            leader_changes: counter!(LEADER_CHANGES_TOTAL, "node" => label()),
            snapshot_sent: snapshot("sent"),
            snapshot_received: snapshot("received"),
            dropped_unknown_group: dropped("unknown_group"),
            dropped_misaddressed: dropped("misaddressed"),
            dropped_invalid: dropped("invalid"),
            ticks_missed: counter!(TICKS_MISSED_TOTAL, "node" => label()),
            beacon_batches: counter!(BEACON_BATCHES_TOTAL, "node" => label()),
            peers_down: gauge!(PEERS_DOWN, "node" => label()),
            peer_failures: PeerFailures {
                silent: counter!(PEER_FAILURES_TOTAL, "node" => label(), "kind" => "silent"),
                restarted: counter!(PEER_FAILURES_TOTAL, "node" => label(), "kind" => "restarted"),
            },
        }
    }

    /// The group gauges, from the counts the node keeps (no scan of the groups).
    pub(crate) fn set_groups(&self, groups: usize, active: usize) {
        self.groups.set(groups as f64);
        self.groups_active.set(active as f64);
        self.groups_quiesced
            .set(groups.saturating_sub(active) as f64);
    }

    /// The peers-down gauge.
    pub(crate) fn set_peers_down(&self, down: usize) {
        self.peers_down.set(down as f64);
    }
}
