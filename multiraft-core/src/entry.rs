//! Log entries and the persistent per-group state.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, ProposalId};
use crate::membership::Membership;

/// One entry of a group's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, starting at 1.
    pub index: u64,
    /// The term of the leader that created the entry.
    pub term: u64,
    /// What the entry carries.
    pub payload: Payload,
}

/// What an [`Entry`] carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Payload {
    /// Appended by a new leader at the start of its term so that it can commit entries of
    /// earlier terms (Raft §5.4.2 / dissertation §3.6.2). Not shown to the state machine.
    Noop,
    /// An application command, handed to the [`StateMachine`](crate::StateMachine).
    Command {
        /// Who proposed it, so the proposing node can answer its client.
        id: ProposalId,
        /// The command bytes, opaque to Raft.
        data: Bytes,
    },
    /// The group's membership from this entry on (dissertation §4.1): every replica uses
    /// the latest membership in its log, committed or not, so a joint configuration takes
    /// effect where it is appended. Appended by the leader for
    /// [`MultiRaft::change_membership`](crate::MultiRaft::change_membership); not shown to
    /// the state machine. Last among the variants: the stored encodings of the others stay
    /// as they were. Boxed (the encoding is the same): rare, and inline it made every entry
    /// of every log 24 bytes larger.
    Membership(Box<Membership>),
}

impl Entry {
    /// Approximate size in bytes, used for the byte limits of batches and windows.
    pub fn size_bytes(&self) -> usize {
        match &self.payload {
            Payload::Noop => ENTRY_HEADER_BYTES,
            Payload::Command { data, .. } => Self::command_size_bytes(data),
            Payload::Membership(m) => ENTRY_HEADER_BYTES + 8 * m.places(),
        }
    }

    /// [`Entry::size_bytes`] of a command entry carrying `data`, before it is one: the
    /// header, the proposal id, the data.
    pub(crate) fn command_size_bytes(data: &[u8]) -> usize {
        ENTRY_HEADER_BYTES + 16 + data.len()
    }
}

/// Index + term + tag, counted in every entry's [`Entry::size_bytes`]: a fixed overhead
/// that keeps empty entries from being free.
const ENTRY_HEADER_BYTES: usize = 24;

/// The state a replica must persist before it answers votes or appends (Raft Figure 2:
/// `currentTerm` and `votedFor`), plus the commit index, which is kept so a restarted
/// replica can re-apply without waiting for the leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this replica has seen.
    pub term: u64,
    /// Who this replica voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
    /// The highest index known committed. May lag behind the truth after a restart; never
    /// ahead of it.
    pub commit: u64,
}
