//! The application's replicated state.

use bytes::Bytes;

use crate::ids::GroupId;
use crate::snapshot::{SnapshotChunk, SnapshotData, SnapshotError};

/// One group's replicated state on one node. The driver creates one per hosted group with
/// the factory given to the builder, and applies committed commands to it in log order, a
/// batch per group per cycle ([`apply_batch`](StateMachine::apply_batch)).
///
/// # To ensure correctness
///
/// - `apply` must be deterministic: the same commands in the same order produce the same
///   state and results on every replica.
/// - `apply` is called on the event loop: keep it short (no blocking IO); a slow state machine
///   slows every group of the node.
/// - Snapshots (docs/design.md §4.6). The node takes one of every group that applied
///   [`Config::snapshot_entries`](crate::Config::snapshot_entries) entries since its last,
///   stores it through the [`Storage`](crate::Storage), and then compacts the log. After a
///   restart, or when this replica fell behind the leader's compacted log, the state is
///   rebuilt with [`restore`](StateMachine::restore) from a stored snapshot, and only the
///   entries after it are applied. A machine that does not support snapshots (the default
///   methods) keeps the whole log in memory and on disk, and is rebuilt by re-applying it.
/// - Two kinds of machine. *In-memory*: `snapshot` serializes the state, `restore`
///   replaces it. *On-disk* (the application keeps its own durable store): also report
///   [`applied_index`](StateMachine::applied_index), the last index the store holds
///   durably; after a restart the node then skips every entry and snapshot up to it.
pub trait StateMachine: Send + 'static {
    /// Applies the command committed at `index` and returns its result, which resolves the
    /// proposer's future.
    fn apply(&mut self, index: u64, command: &Bytes) -> Bytes;

    /// Applies the commands of this group that one cycle of the node committed, in log
    /// order, pushing one result per command onto `results`, in the same order. The
    /// default calls [`apply`](StateMachine::apply) for each; override it to apply a batch
    /// at once (one transaction of an on-disk machine's store, say). A machine that pushes
    /// another number of results than it was given commands has broken this contract and
    /// its state is unknown: the node stops ([`StopError::StateMachine`]).
    ///
    /// [`StopError::StateMachine`]: crate::StopError::StateMachine
    fn apply_batch(
        &mut self,
        commands: &mut dyn Iterator<Item = (u64, &Bytes)>,
        results: &mut Vec<Bytes>,
    ) {
        for (index, command) in commands {
            results.push(self.apply(index, command));
        }
    }

    /// Answers a read-only `query` from the state as of the last applied index, changing
    /// nothing. Called for [`MultiRaft::read`](crate::MultiRaft::read) once the read's
    /// linearizable read point is applied; like `apply`, on the event loop.
    fn query(&self, query: &Bytes) -> Bytes;

    /// The state as of the last applied index, as a sequence of pieces.
    ///
    /// Called on the event loop, right after an apply. A small state can be returned made
    /// ([`SnapshotData::ready`]); a large one must not block the other groups: capture it
    /// here cheaply (a reference-counted copy-on-write structure, a read transaction of
    /// your store) and serialize in an iterator ([`SnapshotData::lazy`]), which the driver
    /// runs off the loop while this machine goes on applying. Pieces may be of any size,
    /// empty too; the node cuts and joins them into chunks of
    /// [`Config::snapshot_chunk_bytes`](crate::Config::snapshot_chunk_bytes). An error of
    /// the iterator, or a panic in it, fails that snapshot (the node tries again later); a
    /// panic in this method itself, on the event loop, ends the loop, as one in `apply`
    /// does.
    fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
        Err(SnapshotError::Unsupported)
    }

    /// Replaces the state with a snapshot, fed one chunk at a time in order: the chunk with
    /// `seq` 0 starts a new state (drop the current one), the one with `last` set ends it,
    /// and then the state is that of `chunk.meta.index`. Between those calls the node
    /// neither applies nor queries this machine. The bytes are those [`snapshot`] produced
    /// (on this replica or another), in order, but cut into chunks by the node: read them
    /// as one stream, not chunk by chunk.
    ///
    /// [`snapshot`]: StateMachine::snapshot
    fn restore(&mut self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        let _ = chunk;
        Err(SnapshotError::Unsupported)
    }

    /// For on-disk machines: the last index whose effect the machine's own store holds
    /// durably, asked once when the node makes the machine. The node applies nothing at or
    /// below it and restores no snapshot that it covers; after a crash it may have applied
    /// less (the node writes a commit index after applying up to it), and takes no snapshot
    /// of this machine until it has applied as far (the state is that index's). In-memory
    /// machines keep the default, 0. It must be this replica's: a store left from a replica
    /// of the same group removed earlier on this node makes a new one skip entries it never
    /// applied.
    fn applied_index(&self) -> u64 {
        0
    }
}

/// Makes the state machine of each group a node hosts, called once per group on its first
/// use on this node: an apply, a read, a snapshot taken or restored, or the check at start
/// of whether an on-disk machine already holds a stored snapshot
/// ([`StateMachine::applied_index`] is asked then). So a machine may be made before any
/// entry is applied: an on-disk one opens its store here, not in `apply`.
pub type StateMachineFactory = Box<dyn FnMut(GroupId) -> Box<dyn StateMachine> + Send>;
