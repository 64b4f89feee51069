//! What the API asks of the event loop ([`Call`]), how the node takes it, and how the answer
//! to a request the node took travels back ([`Reply`]): the one place where the node's
//! outcomes become the API's result types.

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::error::{CampaignError, GroupError, Indeterminate::NodeStopped, ProposeError};
use crate::error::{ReadError, TransferError};
use crate::group::{GroupStatus, ReadPolicy};
use crate::ids::{GroupId, NodeId, RequestId};
use crate::membership::Membership;
use crate::node::{Node, NodeStatus, ReadStart, Resolution};
use crate::state_machine::StateMachine;

pub(crate) type ProposeReply = oneshot::Sender<Result<Bytes, ProposeError>>;
pub(crate) type GroupReply = oneshot::Sender<Result<(), GroupError>>;
pub(crate) type ReadReply = oneshot::Sender<Result<Bytes, ReadError>>;
pub(crate) type ReadIndexReply = oneshot::Sender<Result<u64, ReadError>>;
pub(crate) type TransferReply = oneshot::Sender<Result<(), TransferError>>;
/// One pending transfer per group a drain started (or why it could not start).
pub(crate) type DrainReply =
    oneshot::Sender<Vec<(GroupId, oneshot::Receiver<Result<(), TransferError>>)>>;

/// A call from the API to the event loop.
pub(crate) enum Call {
    Propose(GroupId, Bytes, ProposeReply),
    Read(GroupId, ReadPolicy, Bytes, ReadReply),
    ReadIndex(GroupId, ReadPolicy, ReadIndexReply),
    TransferLeader(GroupId, NodeId, TransferReply),
    Drain(DrainReply),
    CreateGroup(GroupId, Membership, GroupReply),
    RemoveGroup(GroupId, GroupReply),
    Status(GroupId, oneshot::Sender<Option<GroupStatus>>),
    Campaign(GroupId, oneshot::Sender<Result<(), CampaignError>>),
    NodeStatus(oneshot::Sender<NodeStatus>),
    Shutdown,
}

/// What the event loop must still do with a call the node was handed.
pub(crate) enum Taken {
    /// Nothing.
    Done,
    /// A read was started: serve it now, wait for its read point, or answer its error.
    Read(GroupId, Result<ReadStart, ReadError>, Reply),
    /// Stop the loop.
    Shutdown,
}

/// Where the answer to each request the node took goes. A fast hash: one insert and one
/// remove per proposal.
pub(crate) type Replies = FxHashMap<RequestId, Reply>;

impl Call {
    /// Hands the call to the node; when the node takes a request, its answer waits in
    /// `replies`. Returns what the loop must still do.
    pub(crate) fn take(self, node: &mut Node, replies: &mut Replies) -> Taken {
        let mut wait = |request: RequestId, reply: Reply| drop(replies.insert(request, reply));
        match self {
            Call::Propose(group, command, reply) => match node.propose(group, command) {
                Ok(request) => wait(request, Reply::Propose(reply)),
                Err(e) => drop(reply.send(Err(e))),
            },
            Call::Read(group, policy, query, reply) => {
                return Taken::Read(group, node.read(group, policy), Reply::Read(query, reply));
            }
            Call::ReadIndex(group, policy, reply) => {
                return Taken::Read(group, node.read(group, policy), Reply::ReadIndex(reply));
            }
            Call::TransferLeader(group, to, reply) => match node.transfer_leader(group, to) {
                Ok(request) => wait(request, Reply::Transfer(reply)),
                Err(e) => drop(reply.send(Err(e))),
            },
            Call::Drain(reply) => {
                let mut pending = Vec::new();
                for (group, started) in node.drain() {
                    let (tx, rx) = oneshot::channel();
                    match started {
                        Ok(request) => wait(request, Reply::Transfer(tx)),
                        Err(e) => drop(tx.send(Err(e))),
                    }
                    pending.push((group, rx));
                }
                drop(reply.send(pending));
            }
            Call::CreateGroup(group, membership, reply) => {
                match node.create_group(group, membership) {
                    Ok(request) => wait(request, Reply::Lifecycle(reply)),
                    Err(e) => drop(reply.send(Err(e))),
                }
            }
            Call::RemoveGroup(group, reply) => match node.remove_group(group) {
                Ok(request) => wait(request, Reply::Lifecycle(reply)),
                Err(e) => drop(reply.send(Err(e))),
            },
            Call::Status(group, reply) => drop(reply.send(node.group_status(group))),
            Call::Campaign(group, reply) => {
                let _ = reply.send(node.campaign(group).map_err(CampaignError::from));
            }
            Call::NodeStatus(reply) => drop(reply.send(node.status())),
            Call::Shutdown => return Taken::Shutdown,
        }
        Taken::Done
    }

    /// Refuses a call the loop will never take: the node stopped.
    pub(crate) fn refuse(self) {
        let _ = match self {
            Call::Propose(_, _, reply) => reply.send(Err(ProposeError::Stopped)).ok(),
            Call::Read(_, _, _, reply) => reply.send(Err(ReadError::Stopped)).ok(),
            Call::ReadIndex(_, _, reply) => reply.send(Err(ReadError::Stopped)).ok(),
            Call::TransferLeader(_, _, reply) => reply.send(Err(TransferError::Stopped)).ok(),
            Call::CreateGroup(_, _, reply) | Call::RemoveGroup(_, reply) => {
                reply.send(Err(GroupError::Stopped)).ok()
            }
            Call::Campaign(_, reply) => reply.send(Err(CampaignError::Stopped)).ok(),
            Call::Drain(_) | Call::Status(..) | Call::NodeStatus(_) | Call::Shutdown => None,
        };
    }
}

/// Where the answer to one request goes.
pub(crate) enum Reply {
    Propose(ProposeReply),
    /// A read, with the query to run once its read point is applied.
    Read(Bytes, ReadReply),
    ReadIndex(ReadIndexReply),
    Transfer(TransferReply),
    Lifecycle(GroupReply),
}

impl Reply {
    /// Serves a read whose read point `index` the state machine `sm` has applied.
    pub(crate) fn serve(self, sm: &dyn StateMachine, index: u64) {
        let _ = match self {
            Reply::Read(query, r) => r.send(Ok(sm.query(&query))).ok(),
            Reply::ReadIndex(r) => r.send(Ok(index)).ok(),
            _ => None,
        };
    }

    /// Fails a read the node refused.
    pub(crate) fn refuse_read(self, error: ReadError) {
        let _ = match self {
            Reply::Read(_, r) => r.send(Err(error)).ok(),
            Reply::ReadIndex(r) => r.send(Err(error)).ok(),
            _ => None,
        };
    }

    pub(crate) fn send(self, resolution: Resolution) {
        use Resolution::*;
        let _ = match (self, resolution) {
            (Reply::Propose(r), Rejected(e)) => r.send(Err(e)).ok(),
            (Reply::Propose(r), Indeterminate(why)) => {
                r.send(Err(ProposeError::Indeterminate(why))).ok()
            }
            (Reply::Lifecycle(r), Done) => r.send(Ok(())).ok(),
            (Reply::Transfer(r), Done) => r.send(Ok(())).ok(),
            (Reply::Transfer(r), TransferFailed(e)) => r.send(Err(e)).ok(),
            (Reply::Read(_, r), ReadFailed(e)) => r.send(Err(e)).ok(),
            (Reply::ReadIndex(r), ReadFailed(e)) => r.send(Err(e)).ok(),
            // Anything else ends a request only when the node stops.
            (Reply::Lifecycle(r), _) => r.send(Err(GroupError::Stopped)).ok(),
            (Reply::Propose(r), _) => r.send(Err(ProposeError::Indeterminate(NodeStopped))).ok(),
            (Reply::Read(_, r), _) => r.send(Err(ReadError::Stopped)).ok(),
            (Reply::ReadIndex(r), _) => r.send(Err(ReadError::Stopped)).ok(),
            (Reply::Transfer(r), _) => r.send(Err(TransferError::Stopped)).ok(),
        };
    }
}
