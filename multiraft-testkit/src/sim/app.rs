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

use multiraft_core::{Bytes, GroupId, NodeId, ReadPolicy};

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

    /// Answers the read `query` (as [`SimApp::next_query`] made it) from the replica's state,
    /// changing nothing. Called when the node serves a read through
    /// [`Node::read`](multiraft_core::Node::read): after the applies of the ready that
    /// reached the read point, on the node the read was made through, which may be a
    /// follower. Must be deterministic, like `apply`.
    ///
    /// `None`, the default, means the replica answers no query: an app that makes reads
    /// (overrides [`SimApp::next_query`]) must override this too, and a read it leaves
    /// unanswered is reported as a violation.
    fn query(&self, query: &[u8]) -> Option<Self::Output> {
        let _ = query;
        None
    }

    /// The replica's state as bytes, for a snapshot of the group (taken when the node
    /// asks, right after an apply). `None`, the default, means the app takes no
    /// snapshots: its nodes then never compact their logs.
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// Replaces the state with one [`SimReplica::snapshot`] produced (on any replica of the
    /// group). Returns false when the bytes are not such a state, which the simulator
    /// reports as a violation.
    fn restore(&mut self, snapshot: &[u8]) -> bool {
        let _ = snapshot;
        false
    }
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
///   life, with [`SimReplica::apply`] — or, when the app takes snapshots
///   ([`SimReplica::snapshot`]), restored from one and then applied from the index after it.
///   A crash drops the node's replicas; after the restart fresh ones are made, restored from
///   the node's stored snapshot if it has one, and the log after it is re-applied, so
///   `new_replica` (and `restore`) followed by those applies must rebuild the same state.
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
/// - **Reads.** An app that overrides [`SimApp::next_query`] makes reads as well as
///   commands: each is served without a log write ([`Node::read`](multiraft_core::Node::read)
///   under a random [`ReadPolicy`]) by [`SimReplica::query`] on the replica of the node it
///   was made through, once that node has applied up to the read point. A served read is
///   in the history as an applied operation with [`ClientOp::read`] set; a read that failed
///   changed nothing and is left out of the history.
pub trait SimApp {
    /// One node's copy of one group's state machine.
    type Replica: SimReplica;

    /// A fresh replica of `group` on `node`, as before index 1 was applied. Called when the
    /// node first applies an entry of the group, and again after each restart of the node.
    fn new_replica(&self, node: NodeId, group: GroupId) -> Self::Replica;

    /// The next client command for `group`. Draw every random choice from `rng` (the run's
    /// generator) and from nothing else. Keep it to 256 bytes: some seeds of
    /// [`SimConfig::for_seed`](super::SimConfig::for_seed) refuse longer ones.
    fn next_command(&mut self, group: GroupId, rng: &mut SimRng) -> Vec<u8>;

    /// Whether the next client operation on `group` is a read, and if so its query: the
    /// simulator serves it through [`Node::read`](multiraft_core::Node::read), without a log
    /// write, under a policy it draws, on a random member, and answers it with
    /// [`SimReplica::query`] on that node's replica. `None` (the default): the operation is
    /// a command, from [`SimApp::next_command`]. Called before `next_command` for every
    /// client operation; draw every random choice from `rng`.
    fn next_query(&mut self, group: GroupId, rng: &mut SimRng) -> Option<Vec<u8>> {
        let _ = (group, rng);
        None
    }

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

/// One client operation of a run: a command proposed through a node, or a read served by
/// one, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOp<R> {
    /// The group it was proposed to (or read from).
    pub group: GroupId,
    /// The node it was proposed through (the client's connection).
    pub client: NodeId,
    /// The command, as [`SimApp::next_command`] made it; for a read, the query, as
    /// [`SimApp::next_query`] made it.
    pub command: Bytes,
    /// `None` for a proposal; for a read, the policy it was served under.
    pub read: Option<ReadPolicy>,
    /// Simulated time of the proposal (or of the call to `Node::read`), in microseconds.
    pub invoked_at_us: u64,
    /// Simulated time the node reported it applied (or served the read), if it did.
    pub returned_at_us: Option<u64>,
    /// The outcome the node reported.
    pub outcome: ClientOutcome<R>,
}

/// How a client operation ended, as the node that took it reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutcome<R> {
    /// Applied once, with this output, between its invocation and its return. For a read:
    /// served, with the answer of [`SimReplica::query`].
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
