//! What the API asks of the event loop ([`Call`]), and how the answer to a request the node
//! took travels back ([`Reply`]): the one place where the node's outcomes become the API's
//! result types.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::{CampaignError, GroupError, Indeterminate::NodeStopped, ProposeError};
use crate::group::GroupStatus;
use crate::ids::GroupId;
use crate::membership::Membership;
use crate::node::{NodeStatus, Resolution};

pub(crate) type ProposeReply = oneshot::Sender<Result<Bytes, ProposeError>>;
pub(crate) type GroupReply = oneshot::Sender<Result<(), GroupError>>;

/// A call from the API to the event loop.
pub(crate) enum Call {
    Propose(GroupId, Bytes, ProposeReply),
    CreateGroup(GroupId, Membership, GroupReply),
    RemoveGroup(GroupId, GroupReply),
    Status(GroupId, oneshot::Sender<Option<GroupStatus>>),
    Campaign(GroupId, oneshot::Sender<Result<(), CampaignError>>),
    NodeStatus(oneshot::Sender<NodeStatus>),
    Shutdown,
}

/// Where the answer to one request goes.
pub(crate) enum Reply {
    Propose(ProposeReply),
    Lifecycle(GroupReply),
}

impl Reply {
    pub(crate) fn send(self, resolution: Resolution) {
        use Resolution::*;
        let _ = match (self, resolution) {
            (Reply::Propose(r), Rejected(e)) => r.send(Err(e)).ok(),
            (Reply::Propose(r), Indeterminate(why)) => {
                r.send(Err(ProposeError::Indeterminate(why))).ok()
            }
            (Reply::Lifecycle(r), Done) => r.send(Ok(())).ok(),
            // A lifecycle request ends otherwise only when the node stops; a proposal never
            // ends `Done`.
            (Reply::Lifecycle(r), _) => r.send(Err(GroupError::Stopped)).ok(),
            (Reply::Propose(r), _) => r.send(Err(ProposeError::Indeterminate(NodeStopped))).ok(),
        };
    }
}
