//! The application a [`Simulation`](super::Simulation) runs: its state machine, its client
//! workload and its own invariants — [`SimApp`].
//!
//! The simulator owns consensus, the network, the disks and the faults; the application
//! owns what the commands *mean*. A downstream crate implements [`SimApp`] for its own
//! state machine and runs it with [`Simulation::with_app`](super::Simulation::with_app)
//! under every fault of the seed, with every Raft invariant checked as usual plus its own.
//! Without an app, [`Simulation::new`](super::Simulation::new) runs the built-in
//! [`KvApp`](super::KvApp): a key-value store whose client history is checked for
//! linearizability at the end. The contract is on [`SimApp`].
//!
//! A worked example is `examples/bank.rs` (accounts and transfers; money is conserved).

use std::fmt;

use multiraft_core::{Bytes, GroupId, NodeId};

use super::SimRng;

/// One node's copy of one group's state machine.
pub trait SimReplica {
    /// What applying a command returns to its client. Compared across replicas: every
    /// replica must compute the same output for the same index.
    type Output: Clone + Eq + fmt::Debug;

    /// Applies the committed command at `index` (indexes increase by one at a time, but
    /// indexes of entries that are not commands — leader no-ops, membership changes — are
    /// skipped). Must be deterministic; see the contract on [`SimApp`].
    fn apply(&mut self, index: u64, command: &[u8]) -> Self::Output;
}

/// The output type of app `A`'s replicas.
pub type AppOutput<A> = <<A as SimApp>::Replica as SimReplica>::Output;

/// An application run by the simulator: its state machine ([`SimApp::Replica`]), its client
/// workload ([`SimApp::next_command`]) and its invariants ([`SimApp::check_replicas`] after
/// every step, [`SimApp::check_history`] at the end). A worked example is
/// `multiraft-testkit/examples/bank.rs`.
///
/// # The contract
///
/// - **Replicas.** Every node keeps one [`SimApp::Replica`] per group it is a member of,
///   made by [`SimApp::new_replica`] when the node first applies an entry of the group. Each
///   committed command is applied to every replica, in log order, exactly once per replica
///   life, with [`SimReplica::apply`]. A crash drops the node's replicas; after the restart
///   fresh ones are made and the node re-applies its log from index 1 (the core does not
///   compact), so `new_replica` followed by the applies of indexes `1..=n` must rebuild the
///   same state.
/// - **Determinism.** `apply` must be a pure function of the replica's state, the index and
///   the command bytes: no clock, no thread, no randomness, no iteration over a `HashMap`
///   into the result. The simulator compares the result of every index across replicas (the
///   request-outcome invariant) and reports a difference as a violation, and it replays a
///   run from its seed.
/// - **No deduplication needed.** A proposal is appended to the log at most once (forwarded
///   proposals are never duplicated by the transport; the request-outcome invariant fails
///   the run if one is applied at two indexes), so a replica needs no client-session table.
/// - **Workload.** [`SimApp::next_command`] makes the bytes of the next client command for a
///   group, from the run's own [`SimRng`]: draw every random choice from it, and nothing
///   else, so that the seed determines the run. The simulator chooses when and through which
///   node to propose (now and then several at once through one member, to reach the batched
///   paths).
/// - **Invariants.** [`SimApp::check_replicas`] runs after every step for each group whose
///   replicas changed in that step (an apply, or a replica dropped by a crash), over the
///   replicas of that group on the nodes that are up. It sees *applied* state: each replica
///   as far as its node has applied, so replicas of one group may be at different indexes.
///   [`SimApp::check_history`] runs once at the end over every client operation, with the
///   outcome the proposing node reported.
pub trait SimApp {
    /// One node's copy of one group's state machine.
    type Replica: SimReplica;

    /// A fresh replica of `group` on `node`, as before index 1 was applied. Called when the
    /// node first applies an entry of the group, and again after each restart of the node.
    fn new_replica(&self, node: NodeId, group: GroupId) -> Self::Replica;

    /// The next client command for `group`. Draw every random choice from `rng` (the run's
    /// generator) and from nothing else.
    fn next_command(&mut self, group: GroupId, rng: &mut SimRng) -> Vec<u8>;

    /// The app's invariant over the replicas of `group` on the nodes that are up, in node
    /// order, after a step that changed one of them. `Err(detail)` is reported as a
    /// violation with the seed and the run's configuration. By default, nothing to check.
    fn check_replicas(
        &self,
        group: GroupId,
        replicas: &[(NodeId, &Self::Replica)],
    ) -> Result<(), String> {
        let _ = (group, replicas);
        Ok(())
    }

    /// A check of the whole client history at the end of a run that broke nothing else (the
    /// built-in [`KvApp`](super::KvApp) checks linearizability). By default, nothing to
    /// check.
    fn check_history(&mut self, history: &[ClientOp<AppOutput<Self>>]) -> HistoryVerdict {
        let _ = history;
        HistoryVerdict::Ok
    }
}

/// One client operation of a run: a command proposed through a node, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOp<R> {
    /// The group it was proposed to.
    pub group: GroupId,
    /// The node it was proposed through (the client's connection).
    pub client: NodeId,
    /// The command, as [`SimApp::next_command`] made it.
    pub command: Bytes,
    /// Simulated time of the proposal, in microseconds.
    pub invoked_at_us: u64,
    /// Simulated time the node reported it applied, if it did.
    pub returned_at_us: Option<u64>,
    /// The outcome the node reported.
    pub outcome: ClientOutcome<R>,
}

/// How a client operation ended, as the node that took it reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutcome<R> {
    /// Applied once, with this output, between its invocation and its return.
    Applied(R),
    /// Definitely not applied.
    Rejected,
    /// May or may not have been applied, at any time after its invocation: the leader
    /// changed, its node crashed or stopped, or the run ended first.
    Indeterminate,
}

/// The verdict of [`SimApp::check_history`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryVerdict {
    /// The history is correct (or there is nothing to check).
    Ok,
    /// The check gave up (too large a search): counted in
    /// [`SimReport::linearizability_unknown`](super::SimReport::linearizability_unknown), or a
    /// violation with
    /// [`SimConfig::require_linearizability_verdict`](super::SimConfig::require_linearizability_verdict).
    Unknown,
    /// The history is wrong.
    Violation {
        /// The property broken, as printed in the [`Violation`](super::Violation).
        property: &'static str,
        /// What was seen.
        detail: String,
    },
}
