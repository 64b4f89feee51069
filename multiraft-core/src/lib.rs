//! multiraft-core: many Raft groups on one node.
//!
//! One process (a *node*) takes part in many Raft groups whose memberships overlap. The
//! groups share the node's costs: one storage write per cycle covers every group with
//! something to persist, and one message batch per peer node per cycle carries every group's
//! traffic to that node.
//!
//! The crate has three layers:
//!
//! 1. [`group`] — one Raft group, sans-IO: [`group::Replica`] takes messages, ticks and
//!    proposals and returns its outputs as data.
//! 2. [`node`] — every group of this node, still sans-IO: [`Node`] routes inbound batches,
//!    merges all groups' outputs into one numbered [`Ready`] and is acknowledged with
//!    [`Node::advance`].
//! 3. The driver and API — a thin tokio event loop behind [`MultiRaft`], which does the IO
//!    through the [`Storage`], [`Transport`] and [`Clock`] traits and applies committed
//!    commands through each group's [`StateMachine`].
//!
//! # The whole loop, by hand
//!
//! Three nodes in one process, one group, storage and network played by the example itself.
//! This is exactly what the driver does for you, and what a test or a custom runtime does
//! with the sans-IO layers:
//!
//! ```
//! use multiraft_core::{Config, GroupId, Membership, MessageBatch, Node, NodeId, Role};
//!
//! let group = GroupId(7);
//! let mut nodes: Vec<Node> = (1..=3)
//!     .map(|i| Node::new(NodeId(i), Config::default(), /* seed */ i).unwrap())
//!     .collect();
//! for node in &mut nodes {
//!     node.create_group(group, Membership::voters([1, 2, 3])).unwrap();
//! }
//!
//! let mut wire: Vec<MessageBatch> = Vec::new(); // the network
//! let mut applied: Vec<(NodeId, u64, Vec<u8>)> = Vec::new(); // the state machines
//! let mut proposed = false;
//! for _round in 0..100 {
//!     // Inputs: the batches on the wire, and one tick of the clock per round.
//!     for batch in std::mem::take(&mut wire) {
//!         let to = batch.to.0 as usize - 1;
//!         nodes[to].step(batch);
//!     }
//!     for node in &mut nodes {
//!         node.tick();
//!     }
//!     // Once a leader is elected, propose a command on it.
//!     let leader = nodes
//!         .iter_mut()
//!         .find(|n| n.group_status(group).unwrap().role == Role::Leader);
//!     if let (Some(leader), false) = (leader, proposed) {
//!         // The node takes the proposal and will report its one outcome.
//!         let _request = leader.propose(group, "set x 1".into()).unwrap();
//!         proposed = true;
//!     }
//!     // Outputs: one ready per node per cycle.
//!     for node in &mut nodes {
//!         while let Some(ready) = node.ready() {
//!             wire.extend(ready.send_now); // appends may leave before our own write (§10.2.1)
//!             let _one_write_for_every_group = &ready.write; // Storage::write, durably
//!             for apply in &ready.apply {
//!                 // The third item is the local request this entry answers, if any.
//!                 for (index, command, _request) in apply.commands() {
//!                     applied.push((node.id(), index, command.to_vec()));
//!                 }
//!             }
//!             // Reads whose read point this ready's applies reached: query the state
//!             // machines now (`Node::read` starts one; none in this example).
//!             let _ = &ready.reads;
//!             // Snapshots to take of the state machines just applied (every
//!             // `snapshot_entries` applies; feed their chunks to `Node::snapshot_chunk`),
//!             // and stored chunks to read for a follower (`Node::chunk_read`): none here.
//!             assert!(ready.snapshots.is_empty() && ready.chunk_reads.is_empty());
//!             node.advance(ready.number); // the write is durable
//!             wire.extend(ready.send_after_write); // votes and acks only now
//!             // State machines to restore from a snapshot that write installed (then
//!             // `Node::restored`): none here.
//!             assert!(ready.restores.is_empty());
//!             let _ = &ready.outcomes; // requests that ended otherwise: report them now
//!         }
//!     }
//! }
//! // Every replica applied the command at the same index.
//! assert_eq!(applied.len(), 3);
//! assert!(applied.iter().all(|(_, index, data)| *index == applied[0].1 && data == b"set x 1"));
//! ```
//!
//! # The same with the driver
//!
//! ```
//! use multiraft_core::{
//!     Bytes, Config, Event, GroupId, Membership, MultiRaft, NodeId, ReadPolicy, StateMachine,
//! };
//! use multiraft_testkit::{MemNetwork, MemStorage};
//!
//! /// A state machine that counts the commands it applied.
//! #[derive(Default)]
//! struct Counter(u64);
//! impl StateMachine for Counter {
//!     fn apply(&mut self, _index: u64, _command: &Bytes) -> Bytes {
//!         self.0 += 1;
//!         Bytes::from(self.0.to_string())
//!     }
//!     /// Reads change nothing: the count as of the last applied command.
//!     fn query(&self, _query: &Bytes) -> Bytes {
//!         Bytes::from(self.0.to_string())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let network = MemNetwork::new();
//! let mut config = Config::default();
//! config.tick_interval = std::time::Duration::from_millis(5);
//! let mut nodes = Vec::new();
//! for i in 1..=3 {
//!     let node = MultiRaft::builder(NodeId(i), config.clone())
//!         .storage(MemStorage::new())
//!         .transport(network.transport(NodeId(i)))
//!         .state_machines(|_group| Counter::default())
//!         .start()
//!         .await
//!         .unwrap();
//!     nodes.push(node);
//! }
//! let group = GroupId(7);
//! let mut events = nodes[0].events();
//! for node in &nodes {
//!     node.create_group(group, Membership::voters([1, 2, 3])).await.unwrap();
//! }
//! // Wait (bounded) until node 1 knows the leader, then propose through node 1: a follower
//! // forwards to the leader.
//! tokio::time::timeout(std::time::Duration::from_secs(10), async {
//!     while let Ok(event) = events.recv().await {
//!         if let Event::LeaderChanged { leader: Some(_), .. } = event {
//!             break;
//!         }
//!     }
//! })
//! .await
//! .expect("a leader within 10 s");
//! let result = nodes[0].propose(group, "incr").await.unwrap();
//! assert_eq!(result, Bytes::from("1"));
//! // A linearizable read, with no log write: on any replica, through the leader's read index.
//! let count = nodes[1].read(group, ReadPolicy::Follower, "count").await.unwrap();
//! assert_eq!(count, Bytes::from("1"));
//! for node in &nodes {
//!     node.shutdown().await.unwrap();
//! }
//! # }
//! ```
//!
//! # Design notes
//!
//! The design document is `docs/design.md` in the repository: the layers and the
//! IO-ordering rules (§3), the multi-group mechanisms (§4), requests and outcomes (§5), the
//! traits' contracts (§6), inbound validation (§7) and every named limit (§8).
//!
//! - The node owns every request's outcome: it allocates a [`RequestId`] per proposal or
//!   group creation and removal, and reports each one's end exactly once — an applied entry
//!   that carries it ([`Apply::requests`]) or an [`Outcome`] in a [`Ready`]. The driver only
//!   maps ids to the callers waiting on them.
//! - Reads need no log write: [`MultiRaft::read`] confirms leadership with one heartbeat
//!   round per peer node for every group's pending reads, or serves on the leader's lease
//!   (on quiesced groups, a lease resting on node liveness), or on a follower after asking
//!   the leader for the read index (docs/design.md §4.5).
//! - Each group keeps its log in memory above its latest snapshot (compacted below it, less
//!   `Config::compaction_lag_entries`); storage is written for durability and read at
//!   start, and for snapshot chunks a transfer sends.
//! - The driver keeps one storage write in flight at a time (pipeline depth 1): while it is
//!   in flight the loop keeps stepping messages and taking API calls, and everything that
//!   arrives meanwhile is persisted by the next write. This is group commit; a deeper
//!   pipeline would add little, since one write already covers every group.
#![forbid(unsafe_code)]

mod api;
mod beacon;
mod call;
mod clock;
mod config;
mod driver;
mod entries;
mod entry;
mod entry_runs;
mod error;
pub mod group;
mod ids;
mod in_flight;
mod log_runs;
mod machines;
mod membership;
mod message;
pub mod metrics;
pub mod node;
mod queued_bytes;
mod rng;
mod snapshot;
mod snapshot_io;
mod state_machine;
mod storage;
mod submit;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod transport;

pub use api::{Builder, DRAIN_WINDOW, MAX_COMMANDS_PER_CALL, MultiRaft};
pub use beacon::{BEACON_WAKES_PER_TIMEOUT, MAX_BEACON_TIMEOUTS};
pub use bytes::Bytes;
pub use clock::{Clock, SystemClock};
pub use config::{Config, ConfigError, MAX_EVENT_BACKLOG, MAX_QUEUE_CAPACITY, MAX_TICK_INTERVAL};
pub use entries::Entries;
pub use entry::{Entry, HardState, Payload};
pub use entry_runs::EntryRuns;
pub use error::{
    CampaignError, GroupError, GroupNotFound, Indeterminate, MembershipChangeError, ProposeError,
    ReadError, StartError, StopError, Stopped, StorageError, TransferError,
};
pub use group::{FollowerStatus, GroupStatus, ReadPolicy, Role};
pub use ids::{GroupId, NodeId, ProposalId, RequestId};
pub use log_runs::LogRuns;
pub use membership::{Membership, MembershipChange, MembershipError, VoteResult};
pub use message::{
    Ack, Beat, InvalidMessage, Liveness, MAX_ITEMS_PER_MESSAGE, MAX_TERM_OR_INDEX, Message,
    MessageBatch, MessageBody, MessageLimits, ROUND_SEQ_BITS, Refusal, SnapshotAck,
};
pub use node::{
    Apply, ChunkRead, Event, GroupReport, MAX_REPORT_GROUPS, Node, NodeReport, NodeStats,
    NodeStatus, Outcome, PeerStatus, ReadPoint, ReadStart, Ready, Resolution, Restore,
    TakeSnapshot,
};
pub use queued_bytes::COMMAND_OVERHEAD_BYTES;
pub use snapshot::{MAX_SNAPSHOT_CHUNKS, SnapshotChunk, SnapshotData, SnapshotError, SnapshotMeta};
pub use state_machine::{StateMachine, StateMachineFactory};
pub use storage::{
    Compacted, FIRST_LOG_ROOM, GroupWrite, LoadedGroup, MAX_LOADED_TERM, Storage, WriteBatch,
    first_log_room, log_room, reserve_log_room,
};
pub use transport::{AttachError, DeliverError, Inbox, Transport};
