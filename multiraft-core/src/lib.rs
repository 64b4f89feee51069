//! multiraft-core: many Raft groups on one node.
#![forbid(unsafe_code)]

mod clock;
mod config;
mod entry;
mod error;
pub mod group;
mod ids;
mod membership;
mod message;
pub mod node;
mod rng;
mod state_machine;
mod storage;
mod transport;

pub use bytes::Bytes;
pub use clock::{Clock, SystemClock};
pub use config::{Config, ConfigError};
pub use entry::{Entry, HardState, Payload};
pub use error::{GroupError, Indeterminate, ProposeError, StartError, StopError, StorageError};
pub use ids::{GroupId, NodeId, ProposalId};
pub use membership::{Membership, MembershipError, VoteResult};
pub use message::{Message, MessageBatch, MessageBody};
pub use node::{Event, Node, Ready};
pub use state_machine::{SnapshotError, StateMachine};
pub use storage::{GroupWrite, LoadedGroup, Storage, WriteBatch};
pub use transport::{DeliverError, Inbox, Transport};
