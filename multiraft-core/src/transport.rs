//! Moving message batches between nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet;
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
/// may also split a batch into parts, each keeping its messages' order, and deliver, delay
/// or drop each on its own (the QUIC transport sends a batch's snapshot chunks, appends and
/// the rest on separate streams; the testkit's simulator splits batches so too). It
/// must never:
/// - deliver a message more than once (a batch, or any part of one). Raft itself would
///   survive it, but a forwarded proposal delivered twice could be appended by one copy and
///   refused in the other, and the refusal is reported to the application as definite
///   (docs/design.md §5). Stream transports (QUIC, TCP) deliver each message sent at most
///   once as they are, unless they resend on a new connection what the old one may have
///   delivered;
/// - alter a message, or deliver one to a node other than [`MessageBatch::to`];
/// - deliver a batch whose `from` is not the node that sent it (authenticate peers);
/// - block in [`send`](Transport::send): queue and return, the event loop is waiting.
///
/// `send` is called from the node's event loop and, while that loop is late, from the
/// node's beacon thread (docs/design.md §4.3), which enters the loop's runtime: at the same
/// time as the loop's own sends, in either order. Never after [`detach`](Transport::detach):
/// a stop, or a loop ending in a panic, waits for the beacon's round of sends in progress
/// before it detaches.
///
/// It should bound what it delivers in one batch (QUIC's frame limit does): the node steps
/// a batch whole, and its inbox takes one batch of any size when empty, so a peer's batch
/// of millions of messages holds the event loop for all of them.
pub trait Transport: Send + Sync + 'static {
    /// Queues `batch` for delivery to `batch.to`. Must not block.
    fn send(&self, batch: MessageBatch);

    /// Called once when the node starts: from now on, batches addressed to `node` go to
    /// `inbox`. A transport that drops every clone of `inbox` before the node stops cuts
    /// the node off: it goes on serving calls and sending, and hears nothing.
    fn attach(&self, node: NodeId, inbox: Inbox) -> Result<(), AttachError>;

    /// Called once when the node stops, or its event loop ends in a panic: deliver nothing
    /// more to it. Not after [`MultiRaft::abort`](crate::MultiRaft::abort), which stands
    /// for a crash.
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
/// [`Config::max_inbox_batches`](crate::Config::max_inbox_batches) and, for a node's own
/// inbox, [`Config::max_inbox_bytes`](crate::Config::max_inbox_bytes): when full, the batch
/// is dropped, which Raft repairs by retransmission, so a flooding peer cannot exhaust
/// memory — neither with many small batches nor with a few large ones (snapshot chunks).
#[derive(Clone, Debug)]
pub struct Inbox {
    tx: Queue,
}

/// The two kinds of inbox: bounded by count alone ([`Inbox::channel`]), or a node's own,
/// bounded in bytes too, whose batches travel with the size they were counted at, so that
/// the node gives back exactly that without walking every entry again.
#[derive(Clone, Debug)]
enum Queue {
    Plain(mpsc::Sender<MessageBatch>),
    Counted {
        tx: mpsc::Sender<(MessageBatch, usize)>,
        /// The bytes waiting and their bound.
        bytes: Arc<HeldBytes>,
        /// Who sent what came since the node last looked.
        arrivals: Arc<Arrivals>,
    },
}

/// The most senders a node's inbox notes between two of the node's looks ([`Arrivals`]):
/// past it a sender goes unnoted, and is judged by the batches the node steps, as without
/// the notes. A node shares groups with far fewer peer nodes than this; the bound keeps a
/// transport that delivers under made-up sender ids from growing the set.
const MAX_NOTED_SENDERS: usize = 4096;

/// The senders of the batches that reached a node's own inbox since the node last looked,
/// whether the inbox took them or dropped them as full: each is a peer node up and
/// reaching this one, however long its batch waits behind others. The driver tells the node
/// before each tick ([`Node::batch_arrived`](crate::Node::batch_arrived)), so that a
/// backlog in this node's own inbox never makes a peer look silent (docs/design.md §4.3).
#[derive(Debug, Default)]
struct Arrivals(Mutex<FxHashSet<NodeId>>);

impl Arrivals {
    fn note(&self, from: NodeId) {
        // A poisoned lock still holds a set of node ids, whole: nothing to repair.
        let mut senders = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if senders.len() < MAX_NOTED_SENDERS {
            senders.insert(from);
        }
    }
}

/// Bytes of the batches in an inbox ([`MessageBatch::size_bytes`]) and the most it holds.
#[derive(Debug)]
struct HeldBytes {
    held: AtomicUsize,
    max: usize,
    /// Told whenever bytes are given back: [`Inbox::deliver_wait`] waits on it for room.
    room: tokio::sync::Notify,
}

impl HeldBytes {
    /// Reserves `size` bytes if they fit; an empty inbox takes one batch of any size, so
    /// that a batch above the bound still moves.
    fn reserve(&self, size: usize) -> bool {
        let before = self.held.fetch_add(size, Ordering::AcqRel);
        if before > 0 && before + size > self.max {
            // Taken back without a notice: nothing was given back, and a waiter told so
            // by its own failed try woke itself again at once, spinning.
            self.held.fetch_sub(size, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn release(&self, size: usize) {
        self.held.fetch_sub(size, Ordering::AcqRel);
        self.room.notify_waiters();
    }

    /// Reserves `size` bytes, waiting until they fit (an empty inbox takes any batch, so
    /// the wait ends once the node has taken what is there). Cancel-safe: a wait dropped
    /// holds nothing.
    async fn reserve_waiting(&self, size: usize) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Registered before the try, so that bytes given back after it wake this wait.
            room.as_mut().enable();
            if self.reserve(size) {
                return;
            }
            room.await;
        }
    }
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
        (
            Inbox {
                tx: Queue::Plain(tx),
            },
            rx,
        )
    }

    /// A node's own inbox: at most `capacity` batches and `max_bytes` bytes (one batch of
    /// any size when empty).
    pub(crate) fn bounded(capacity: usize, max_bytes: usize) -> (Inbox, InboxReceiver) {
        let (tx, rx) = mpsc::channel(capacity);
        let bytes = Arc::new(HeldBytes {
            held: AtomicUsize::new(0),
            max: max_bytes,
            room: tokio::sync::Notify::new(),
        });
        let arrivals = Arc::new(Arrivals::default());
        let inbox = Inbox {
            tx: Queue::Counted {
                tx,
                bytes: Arc::clone(&bytes),
                arrivals: Arc::clone(&arrivals),
            },
        };
        (
            inbox,
            InboxReceiver {
                rx,
                bytes,
                arrivals,
                arrived: FxHashSet::default(),
                closed: false,
            },
        )
    }

    /// Notes, in a node's own inbox, that a batch from `from` came ([`Arrivals`]).
    fn note_arrival(&self, from: NodeId) {
        if let Queue::Counted { arrivals, .. } = &self.tx {
            arrivals.note(from);
        }
    }

    /// Hands `batch` to the node without waiting.
    pub fn deliver(&self, batch: MessageBatch) -> Result<(), DeliverError> {
        // Before the bound: a batch dropped as the inbox is full came all the same.
        self.note_arrival(batch.from);
        match &self.tx {
            Queue::Plain(tx) => tx.try_send(batch).map_err(|e| refused(&e)),
            Queue::Counted { tx, bytes, .. } => {
                let size = batch.size_bytes();
                if !bytes.reserve(size) {
                    return Err(DeliverError::Full);
                }
                tx.try_send((batch, size)).map_err(|e| {
                    bytes.release(size);
                    refused(&e)
                })
            }
        }
    }

    /// Hands `batch` to the node, waiting for room (for a transport that prefers
    /// backpressure on its connection to dropping): among the batches and, in a node's own
    /// inbox, among its bytes. Only [`DeliverError::Stopped`] ends it otherwise.
    /// Cancel-safe: dropped while it waits, it holds nothing.
    pub async fn deliver_wait(&self, batch: MessageBatch) -> Result<(), DeliverError> {
        // It came, whatever it waits for.
        self.note_arrival(batch.from);
        match &self.tx {
            Queue::Plain(tx) => tx.send(batch).await.map_err(|_| DeliverError::Stopped),
            Queue::Counted { tx, bytes, .. } => {
                // Room among the batches, then among the bytes, then the send, which cannot
                // wait. The bytes were counted and never waited for before, so the inbox
                // held up to `max_inbox_batches` batches of any size (gigabytes of snapshot
                // chunks for a slow receiver); and counted before the wait, so a wait
                // cancelled left them counted for good, and every later batch was refused
                // as past the bound (review).
                let permit = tx.reserve().await.map_err(|_| DeliverError::Stopped)?;
                let size = batch.size_bytes();
                bytes.reserve_waiting(size).await;
                // And again once taken: the wait may have outlasted the liveness timeout.
                self.note_arrival(batch.from);
                permit.send((batch, size));
                Ok(())
            }
        }
    }
}

/// Tells a transport, once, that its node stopped ([`Transport::detach`]): when the event
/// loop stops, or, dropped while its thread panics, when the loop ended in a panic (a state
/// machine's) and never reached its stop — the transport then let go of nothing (a QUIC
/// transport kept its endpoint bound, and a node started again in this process could not
/// bind it; review). Not on an abort, which stands for a crash and leaves the transport as
/// it was ([`MultiRaft::abort`](crate::MultiRaft::abort)).
pub(crate) struct Detach {
    transport: Arc<dyn Transport>,
    node: NodeId,
    done: bool,
}

impl Detach {
    pub(crate) fn new(transport: Arc<dyn Transport>, node: NodeId) -> Detach {
        Detach {
            transport,
            node,
            done: false,
        }
    }

    /// Detaches the node, unless it was already.
    pub(crate) fn now(&mut self) {
        if !self.done {
            self.done = true;
            self.transport.detach(self.node);
        }
    }
}

impl Drop for Detach {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.now();
        }
    }
}

/// The refusal a full or closed queue means.
fn refused<T>(e: &mpsc::error::TrySendError<T>) -> DeliverError {
    match e {
        mpsc::error::TrySendError::Full(_) => DeliverError::Full,
        mpsc::error::TrySendError::Closed(_) => DeliverError::Stopped,
    }
}

/// The node's end of its [`Inbox`]: gives the bytes of each batch taken back to the inbox.
#[derive(Debug)]
pub(crate) struct InboxReceiver {
    rx: mpsc::Receiver<(MessageBatch, usize)>,
    bytes: Arc<HeldBytes>,
    arrivals: Arc<Arrivals>,
    /// The senders last taken from `arrivals`, kept for its room.
    arrived: FxHashSet<NodeId>,
    /// Every inbox is gone, and that was logged (once).
    closed: bool,
}

impl InboxReceiver {
    /// The next batch, waiting for one; `None` once every inbox is gone.
    pub(crate) async fn recv(&mut self) -> Option<MessageBatch> {
        let Some((batch, size)) = self.rx.recv().await else {
            if !self.closed {
                self.closed = true;
                // The node stays up but deaf: say so once, where it would otherwise be
                // silent (the transport dropped the inbox while the node ran).
                tracing::warn!("every inbox is gone: this node hears no peer until restarted");
            }
            return None;
        };
        self.bytes.release(size);
        Some(batch)
    }

    /// The next batch if one is waiting, while `budget` — the bytes this wake may still step
    /// — lasts: each batch costs its [`MessageBatch::size_bytes`], one at least.
    pub(crate) fn next_within(&mut self, budget: &mut usize) -> Option<MessageBatch> {
        if *budget == 0 {
            return None;
        }
        let (batch, size) = self.rx.try_recv().ok()?;
        self.bytes.release(size);
        *budget = budget.saturating_sub(size.max(1));
        Some(batch)
    }

    /// The senders noted since the last call, taken (the driver tells the node of them
    /// before each tick). The two sets swap, so neither allocates once warm.
    pub(crate) fn arrivals(&mut self) -> impl Iterator<Item = NodeId> + '_ {
        let mut noted = self.arrivals.0.lock().unwrap_or_else(|e| e.into_inner());
        self.arrived.clear();
        std::mem::swap(&mut *noted, &mut self.arrived);
        drop(noted);
        self.arrived.drain()
    }

    /// The next batch if one is waiting, whatever its size.
    #[cfg(test)]
    fn try_recv(&mut self) -> Option<MessageBatch> {
        let mut any = usize::MAX;
        self.next_within(&mut any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GroupId;
    use crate::message::{Message, MessageBody};

    /// A batch of one message whose size is 32 + 8 × `ids` bytes.
    fn batch(ids: usize) -> MessageBatch {
        MessageBatch {
            from: NodeId(2),
            to: NodeId(1),
            messages: vec![Message {
                group: GroupId(1),
                from: NodeId(2),
                to: NodeId(1),
                term: 1,
                body: MessageBody::ReadIndex { ids: vec![0; ids] },
            }],
        }
    }

    /// A node's inbox refuses a batch that would take it past its bytes, however few batches
    /// it holds, and takes batches again as the node reads them; an empty inbox takes one
    /// batch of any size, so that a large one still moves.
    #[tokio::test]
    async fn a_node_inbox_is_bounded_in_bytes() {
        let (inbox, mut rx) = Inbox::bounded(16, 200);
        assert_eq!(batch(10).size_bytes(), 112);
        assert_eq!(inbox.deliver(batch(10)), Ok(()));
        assert_eq!(inbox.deliver(batch(10)), Err(DeliverError::Full));
        assert_eq!(inbox.deliver(batch(5)), Ok(()), "72 more bytes fit: 184");
        assert!(rx.recv().await.is_some());
        assert_eq!(
            inbox.deliver(batch(10)),
            Ok(()),
            "the first batch's bytes are back"
        );
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_none());
        assert_eq!(
            inbox.deliver(batch(100)),
            Ok(()),
            "an empty inbox takes any batch"
        );
        assert_eq!(inbox.deliver(batch(1)), Err(DeliverError::Full));
    }

    /// A wake steps inbound batches while its budget of bytes lasts: a batch is taken whole
    /// even past it, and an empty one costs one, so that a wake always moves on.
    #[test]
    fn a_wake_takes_batches_while_its_bytes_last() {
        let (inbox, mut rx) = Inbox::bounded(16, 1 << 20);
        let of = |count: usize| MessageBatch {
            messages: vec![batch(0).messages[0].clone(); count],
            ..batch(0)
        };
        for count in [3, 3, 0, 2] {
            assert_eq!(inbox.deliver(of(count)), Ok(()));
        }
        assert_eq!(of(3).size_bytes(), 96);
        let mut budget = 160;
        let taken = std::iter::from_fn(|| rx.next_within(&mut budget));
        let sizes: Vec<usize> = taken.map(|b| b.messages.len()).collect();
        assert_eq!(
            sizes,
            vec![3, 3],
            "the second batch goes past the budget, whole"
        );
        assert_eq!(budget, 0);
        let mut budget = 1;
        assert_eq!(
            rx.next_within(&mut budget).map(|b| b.messages.len()),
            Some(0)
        );
        assert_eq!(rx.next_within(&mut budget).map(|b| b.messages.len()), None);
        assert_eq!(rx.try_recv().map(|b| b.messages.len()), Some(2));
    }

    /// The inbox notes the sender of every batch that came, taken or dropped as full, once
    /// until the node looks, and at most `MAX_NOTED_SENDERS` of them.
    #[test]
    fn an_inbox_notes_who_sent_what_came_taken_or_dropped() {
        let (inbox, mut rx) = Inbox::bounded(16, 200);
        let from = |node: u64, ids: usize| MessageBatch {
            from: NodeId(node),
            ..batch(ids)
        };
        assert_eq!(inbox.deliver(from(2, 10)), Ok(()));
        assert_eq!(inbox.deliver(from(3, 10)), Err(DeliverError::Full));
        assert_eq!(inbox.deliver(from(2, 1)), Ok(()));
        let mut noted: Vec<NodeId> = rx.arrivals().collect();
        noted.sort();
        assert_eq!(noted, vec![NodeId(2), NodeId(3)]);
        assert_eq!(
            rx.arrivals().count(),
            0,
            "nothing came since the node looked"
        );
        for node in 0..MAX_NOTED_SENDERS as u64 + 10 {
            let _ = inbox.deliver(from(node + 10, 1));
        }
        assert_eq!(rx.arrivals().count(), MAX_NOTED_SENDERS);
    }

    /// Waiting delivery waits for room in bytes as well as among the batches, and a wait
    /// cancelled holds nothing. Regression (review): its bytes were counted but never waited
    /// for (the inbox held up to its batch count of any size), and counted before the wait,
    /// so a wait cancelled left them counted for good and every later batch was refused.
    #[tokio::test]
    async fn waiting_delivery_is_bounded_in_bytes_and_cancel_safe() {
        let (inbox, mut rx) = Inbox::bounded(1, 200);
        assert_eq!(inbox.deliver_wait(batch(10)).await, Ok(()));
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            inbox.deliver_wait(batch(10)),
        );
        assert!(
            waiting.await.is_err(),
            "no room among the batches: it waits"
        );
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_none());
        assert_eq!(inbox.deliver(batch(10)), Ok(()), "nothing left counted");
        assert!(rx.try_recv().is_some());
        let (inbox, mut rx) = Inbox::bounded(16, 200);
        assert_eq!(inbox.deliver_wait(batch(10)).await, Ok(()));
        let past_the_bytes = inbox.deliver_wait(batch(10));
        tokio::pin!(past_the_bytes);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(1), &mut past_the_bytes).await;
        assert!(waited.is_err(), "past the bytes: it waits");
        assert!(rx.try_recv().is_some());
        assert_eq!(
            past_the_bytes.await,
            Ok(()),
            "room once the node took a batch"
        );
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_none());
    }
}
