//! Deterministic fakes for testing and benchmarking multiraft in one process.
//!
//! - [`ManualClock`]: a [`Clock`](multiraft_core::Clock) whose time moves only when the test
//!   calls [`advance_by`](ManualClock::advance_by), waking the sleepers whose deadline passed.
//! - [`MemStorage`]: an in-memory [`Storage`](multiraft_core::Storage) that can simulate a
//!   crash ([`crash`](MemStorage::crash)), lose writes that were never synced (in
//!   [unsynced mode](MemStorage::set_unsynced)), and fail a chosen write.
//! - [`MemNetwork`]: an in-process network whose [`MemTransport`]s deliver straight into
//!   each node's [`Inbox`](multiraft_core::Inbox), with isolation, symmetric and one-way
//!   partitions, and message loss from a seed.
//! - [`cluster`]: for tests of running nodes — a state machine journaling what each replica
//!   applied, bounded waits on a condition, the leader every node agrees on.
//! - [`conformance`]: the storage conformance suite any `Storage` implementation can run.
//!
//! - [`sim::Simulation`]: a deterministic whole-cluster simulator (N nodes × G groups, one
//!   thread, one seed) with fault injection, safety invariants checked after every step, a
//!   liveness phase and a replayable failure report. The `sim` binary soaks many seeds. It
//!   runs the built-in key-value app ([`sim::KvApp`], checked for linearizability) or your
//!   own state machine, workload and invariant ([`sim::SimApp`]).
//!
//! Every handle is cheap to clone and clones share state, so a test keeps one handle to
//! control time, disks and links while the nodes it drives hold the others.
//!
//! # Using the test kit from another crate
//!
//! - **Build profile.** The simulator drives the core for millions of steps; in a plain
//!   debug build it runs about 15–17 times slower. Optimize the two crates in your
//!   workspace's `Cargo.toml` (debug assertions stay on):
//!   ```toml
//!   [profile.dev.package.multiraft-core]
//!   opt-level = 2
//!   [profile.dev.package.multiraft-testkit]
//!   opt-level = 2
//!   ```
//! - **Seeds and budgets.** Every simulated run is replayed from its [`sim::SimConfig`];
//!   a violation prints the configuration (`setup`) and, when the `sim` binary can rebuild
//!   it from the seed and its flags, the command that does. Each seed has a step and a
//!   wall-time budget (`max_steps`, `max_wall`): a livelock ends as a violation. Out-of-range
//!   fault rates are refused. A report with `linearizability_unknown > 0` was not judged;
//!   set `require_linearizability_verdict` to make that a failure.
//! - **Your own state machine under the simulator.** Implement [`sim::SimApp`]: a replica
//!   type ([`sim::SimReplica`], a deterministic `apply(index, command) -> output`), fresh
//!   replicas (also after a crash: the log is re-applied from index 1), the clients' next
//!   command from the run's [`sim::SimRng`], and optionally an invariant over the live
//!   replicas of a group checked after every step and a check of the client history at the
//!   end. Run it with [`sim::Simulation::with_app`]. The worked example
//!   `multiraft-testkit/examples/bank.rs` (accounts and transfers; money is conserved and
//!   no balance goes negative) soaks 200 seeds of the full fault mix:
//!   ```text
//!   cargo run --release -p multiraft-testkit --example bank -- --seeds 200
//!   ```
//!   and prints `bank: 200 seeds, 0 violations` (exiting non-zero on a violation). The crate
//!   `examples-downstream/bank-sim` in the repository does the same from outside the
//!   workspace, with the public API only: `cargo test --manifest-path
//!   examples-downstream/bank-sim/Cargo.toml`.
//! - **Crashing a running node.** [`MultiRaft::abort`](multiraft_core::MultiRaft::abort)
//!   kills a node's event loop as a crash would (nothing in flight finishes);
//!   [`MemStorage::crash`] keeps only what was synced. Start a new node on the storage it
//!   returns. `shutdown` is the clean stop.
//! - **Real time and the manual clock.** The [`cluster`] helpers wait on real time with a
//!   bound and never move a [`ManualClock`]: with a manual clock, advance it in a loop and
//!   check the condition between steps (the driver's loop is biased, so the same inputs are
//!   served in the same order). Runs of the tokio-level fakes are not reproducible from a
//!   seed; the simulator's are.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use multiraft_core::{
//!     Clock, GroupId, GroupWrite, HardState, Inbox, MessageBatch, NodeId, Storage, Transport,
//!     WriteBatch,
//! };
//! use multiraft_testkit::{ManualClock, MemNetwork, MemStorage};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Time moves by hand.
//! let clock = ManualClock::new();
//! clock.advance_by(Duration::from_millis(100));
//! assert_eq!(clock.now(), Duration::from_millis(100));
//!
//! // A disk that keeps only what was synced when it crashes.
//! let storage = MemStorage::new();
//! storage.set_unsynced(true);
//! let hard_state = HardState { term: 1, vote: Some(NodeId(1)), commit: 0 };
//! let batch = WriteBatch::from(vec![GroupWrite::new(GroupId(1)).with_hard_state(hard_state)]);
//! storage.write(batch).await.unwrap();
//! assert_eq!(storage.load().await.unwrap().len(), 1);
//! let restarted = storage.crash();
//! assert!(restarted.load().await.unwrap().is_empty(), "never synced, so lost");
//!
//! // Two nodes on one network; node 2 cut off from node 1.
//! let network = MemNetwork::new();
//! let (inbox, mut node2_rx) = Inbox::channel(64);
//! network.transport(NodeId(2)).attach(NodeId(2), inbox).unwrap();
//! let node1 = network.transport(NodeId(1));
//! let hello = MessageBatch { from: NodeId(1), to: NodeId(2), messages: vec![] };
//! node1.send(hello.clone());
//! assert_eq!(node2_rx.try_recv().unwrap(), hello);
//! network.block(NodeId(1), NodeId(2));
//! node1.send(hello);
//! assert!(node2_rx.try_recv().is_err());
//! assert_eq!(network.batches_dropped(), 1);
//! # });
//! ```

mod clock;
pub mod cluster;
pub mod conformance;
pub mod interaction;
mod network;
pub mod sim;
mod storage;

pub use clock::ManualClock;
pub use network::{MemNetwork, MemTransport};
pub use storage::MemStorage;
