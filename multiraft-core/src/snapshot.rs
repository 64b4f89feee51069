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

/// A snapshot's data as the state machine produces it: pieces of bytes in order, of any
/// size (the node cuts and joins them into chunks). Either already made when
/// [`StateMachine::snapshot`] returns ([`SnapshotData::ready`]), or produced on demand by an
/// iterator that the driver runs on a blocking thread ([`SnapshotData::lazy`]), after the
/// state machine has moved on: either way it must describe the state at the moment
/// `snapshot` was called. Iterating it yields the pieces.
///
/// [`StateMachine::snapshot`]: crate::StateMachine::snapshot
pub struct SnapshotData {
    pieces: Pieces,
}

enum Pieces {
    /// Made when the snapshot was taken.
    Ready(std::vec::IntoIter<Bytes>),
    /// Made on demand.
    Lazy(Box<dyn Iterator<Item = Result<Bytes, SnapshotError>> + Send>),
}

impl SnapshotData {
    /// Pieces already made. When they fit one chunk
    /// ([`Config::snapshot_chunk_bytes`](crate::Config::snapshot_chunk_bytes)) and the
    /// node wants chunks ([`Node::wants_snapshot_chunks`](crate::Node::wants_snapshot_chunks))
    /// the event loop hands them to the node itself, at once: a small state (a counter, a
    /// few records) costs no thread's wake-up. Otherwise they are handed on from a blocking
    /// thread as [`lazy`](SnapshotData::lazy) ones are, so that the chunks waiting for a
    /// write stay bounded.
    pub fn ready(pieces: impl IntoIterator<Item = Bytes>) -> SnapshotData {
        let pieces: Vec<Bytes> = pieces.into_iter().collect();
        SnapshotData {
            pieces: Pieces::Ready(pieces.into_iter()),
        }
    }

    /// Pieces made one at a time by `pieces`, on a blocking thread while the state machine
    /// goes on applying: capture the state cheaply in [`StateMachine::snapshot`] (a
    /// reference-counted copy-on-write structure, a read transaction of your store) and
    /// serialize here. An error, or a panic, fails the snapshot.
    ///
    /// [`StateMachine::snapshot`]: crate::StateMachine::snapshot
    pub fn lazy(
        pieces: impl Iterator<Item = Result<Bytes, SnapshotError>> + Send + 'static,
    ) -> SnapshotData {
        SnapshotData {
            pieces: Pieces::Lazy(Box::new(pieces)),
        }
    }

    /// The pieces, if they are made ([`SnapshotData::ready`]) and come to at most `max`
    /// bytes; otherwise the data as it was.
    pub(crate) fn made_within(self, max: usize) -> Result<std::vec::IntoIter<Bytes>, SnapshotData> {
        match self.pieces {
            Pieces::Ready(pieces) if made_bytes(&pieces) <= max => Ok(pieces),
            pieces => Err(SnapshotData { pieces }),
        }
    }
}

impl Iterator for SnapshotData {
    type Item = Result<Bytes, SnapshotError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.pieces {
            Pieces::Ready(pieces) => pieces.next().map(Ok),
            Pieces::Lazy(pieces) => pieces.next(),
        }
    }
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pieces {
            Pieces::Ready(pieces) => f
                .debug_struct("SnapshotData::Ready")
                .field("pieces", &pieces.len())
                .field("bytes", &made_bytes(pieces))
                .finish(),
            Pieces::Lazy(_) => f.write_str("SnapshotData::Lazy"),
        }
    }
}

/// The bytes of the made pieces not yet taken.
fn made_bytes(pieces: &std::vec::IntoIter<Bytes>) -> usize {
    pieces.as_slice().iter().map(Bytes::len).sum()
}

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
