//! Moving message batches between nodes.

use tokio::sync::mpsc;

use crate::ids::NodeId;
use crate::message::MessageBatch;

/// Sends this node's batches to peer nodes, and hands batches from peers to the node's
/// [`Inbox`].
///
/// # To ensure correctness
///
/// Raft tolerates loss and reordering of messages, so a transport may drop a batch (a full
/// queue, a broken connection) or deliver batches out of order without telling anyone. It
/// must never:
/// - deliver a batch more than once. Raft itself would survive it, but a forwarded proposal
///   delivered twice could be appended by one copy and refused in the other, and the refusal
///   is reported to the application as definite (docs/design.md §5). Stream transports (QUIC, TCP)
///   deliver each sent batch at most once as they are;
/// - alter a batch, or deliver a batch to a node other than [`MessageBatch::to`];
/// - deliver a batch whose `from` is not the node that sent it (authenticate peers);
/// - block in [`send`](Transport::send): queue and return, the event loop is waiting.
pub trait Transport: Send + Sync + 'static {
    /// Queues `batch` for delivery to `batch.to`. Must not block.
    fn send(&self, batch: MessageBatch);

    /// Called once when the node starts: from now on, batches addressed to `node` go to
    /// `inbox`.
    fn attach(&self, node: NodeId, inbox: Inbox) -> Result<(), AttachError>;

    /// Called once when the node stops: deliver nothing more to it.
    fn detach(&self, node: NodeId);
}

/// Why a transport refused to attach a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The transport was built for another node.
    #[error("this transport is {expected}'s and cannot attach {node}")]
    WrongNode {
        /// The node the transport was built for.
        expected: NodeId,
        /// The node it was asked to attach.
        node: NodeId,
    },
    /// The transport was shut down and cannot be attached again.
    #[error("the transport was shut down")]
    ShutDown,
    /// Another failure, with its source.
    #[error("attaching the transport failed")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where a transport delivers batches for one node. Bounded by
/// [`Config::max_inbox_batches`](crate::Config::max_inbox_batches): when full, the batch is
/// dropped, which Raft repairs by retransmission, so a flooding peer cannot exhaust memory.
#[derive(Clone, Debug)]
pub struct Inbox {
    tx: mpsc::Sender<MessageBatch>,
}

/// Why [`Inbox::deliver`] did not take a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// The inbox is full; the batch was dropped.
    #[error("inbox full; batch dropped")]
    Full,
    /// The node has stopped.
    #[error("node stopped")]
    Stopped,
}

impl Inbox {
    /// A new inbox holding at most `capacity` batches, and the receiving end the node (or a
    /// test standing in for it) reads delivered batches from. Once the receiver is dropped,
    /// [`deliver`](Inbox::deliver) reports [`DeliverError::Stopped`].
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    pub fn channel(capacity: usize) -> (Inbox, mpsc::Receiver<MessageBatch>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Inbox { tx }, rx)
    }

    /// Hands `batch` to the node without waiting.
    pub fn deliver(&self, batch: MessageBatch) -> Result<(), DeliverError> {
        self.tx.try_send(batch).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DeliverError::Full,
            mpsc::error::TrySendError::Closed(_) => DeliverError::Stopped,
        })
    }

    /// Hands `batch` to the node, waiting for room (for a transport that prefers
    /// backpressure on its connection to dropping).
    pub async fn deliver_wait(&self, batch: MessageBatch) -> Result<(), DeliverError> {
        self.tx.send(batch).await.map_err(|_| DeliverError::Stopped)
    }
}
