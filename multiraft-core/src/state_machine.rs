//! The application's replicated state.

use bytes::Bytes;

use crate::ids::GroupId;

/// One group's replicated state on one node. The driver creates one per hosted group with
/// the factory given to the builder, and applies committed commands to it in log order.
///
/// # To ensure correctness
///
/// - `apply` must be deterministic: the same commands in the same order produce the same
///   state and results on every replica.
/// - `apply` is called on the event loop: keep it short (no blocking IO); a slow state machine
///   slows every group of the node.
/// - Until snapshots are supported, state machines are rebuilt from the log after a restart:
///   `apply` is called again from index 1.
pub trait StateMachine: Send + 'static {
    /// Applies the command committed at `index` and returns its result, which resolves the
    /// proposer's future.
    fn apply(&mut self, index: u64, command: &Bytes) -> Bytes;

    /// Answers a read-only `query` from the state as of the last applied index, changing
    /// nothing. Called for [`MultiRaft::read`](crate::MultiRaft::read) once the read's
    /// linearizable read point is applied; like `apply`, on the event loop.
    fn query(&self, query: &Bytes) -> Bytes;

    /// Serializes the state as of the last applied index.
    fn snapshot(&mut self) -> Result<Bytes, SnapshotError> {
        Err(SnapshotError::Unsupported)
    }

    /// Replaces the state with `snapshot`, taken at `index`.
    fn restore(&mut self, index: u64, snapshot: Bytes) -> Result<(), SnapshotError> {
        let _ = (index, snapshot);
        Err(SnapshotError::Unsupported)
    }
}

/// Makes the state machine of each group a node hosts, called once per group the first time
/// an entry of that group is applied on this node.
pub type StateMachineFactory = Box<dyn FnMut(GroupId) -> Box<dyn StateMachine> + Send>;

/// Why a snapshot could not be taken or restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// This state machine does not support snapshots.
    #[error("snapshots are not supported by this state machine")]
    Unsupported,
    /// The snapshot could not be made or read.
    #[error("snapshot failed: {0}")]
    Failed(String),
}
