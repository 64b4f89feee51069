//! Snapshots of a group's state machine: what identifies one ([`SnapshotMeta`]), and the
//! unit it moves in, to storage and between nodes ([`SnapshotChunk`]). docs/design.md §4.6.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;

/// Where a snapshot stands in its group's log: the state machine state it holds is the
/// result of applying every entry up to `index`, whose term is `term`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry the snapshot covers.
    pub index: u64,
    /// That entry's term: what the log-matching check of the entry after it needs.
    pub term: u64,
    /// The group's membership as of `index`.
    pub membership: Membership,
}

/// One piece of a snapshot's data. A snapshot is a sequence of chunks numbered from 0; the
/// one with `last` set ends it. Chunks never hold more than
/// [`Config::snapshot_chunk_bytes`](crate::Config::snapshot_chunk_bytes) bytes, so neither a
/// write nor a message ever holds a whole snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The snapshot this chunk belongs to.
    pub meta: SnapshotMeta,
    /// Its position in the snapshot, from 0.
    pub seq: u32,
    /// The bytes, opaque to Raft: whatever the state machine produced.
    pub data: Bytes,
    /// The last chunk: the snapshot is complete with it.
    pub last: bool,
}

/// The most chunks a snapshot has, numbered 0 to `MAX_SNAPSHOT_CHUNKS - 1`: every chunk's
/// successor number fits the `u32` it is counted in (the builder, the receiver and the
/// sender each count one past a chunk). A build that comes to more chunks fails
/// ([`SnapshotError::Failed`]; raise `Config::snapshot_chunk_bytes`), and a chunk numbered past the
/// last is refused ([`InvalidMessage::InvalidSnapshot`]). Before, the count wrapped to
/// chunk 0 in a release build, which storage refuses as out of order, stopping the node.
///
/// [`InvalidMessage::InvalidSnapshot`]: crate::InvalidMessage::InvalidSnapshot
pub const MAX_SNAPSHOT_CHUNKS: u32 = u32::MAX;

impl SnapshotChunk {
    /// Approximate size in bytes, for batch and message limits.
    pub fn size_bytes(&self) -> usize {
        64 + self.data.len()
    }
}

/// A snapshot's data as the state machine produces it: chunks in order, produced on demand.
/// It may be consumed off the event loop (it is `Send`), after the state machine has moved
/// on: it must describe the state at the moment [`StateMachine::snapshot`] was called.
///
/// [`StateMachine::snapshot`]: crate::StateMachine::snapshot
pub type SnapshotData = Box<dyn Iterator<Item = Result<Bytes, SnapshotError>> + Send>;

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
