//! [`MemNetwork`]: nodes in one process, connected through memory, with partitions and
//! seeded message loss.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use multiraft_core::{AttachError, Inbox, MessageBatch, NodeId, Transport};

/// An in-process network: each node gets a [`MemTransport`] from
/// [`transport`](MemNetwork::transport), and a batch sent through it goes straight into the
/// destination's [`Inbox`] on the sending thread, without copies or queues of its own.
///
/// A batch is dropped, silently as a real network would, when the destination is not
/// attached, when a fault control cuts the link, when seeded loss picks it, or when the
/// destination's inbox is full or closed. Fault controls take effect for the next send and
/// may be used while nodes run. Cloning is cheap and every clone controls the same network.
#[derive(Clone, Debug, Default)]
pub struct MemNetwork {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    links: RwLock<Links>,
    /// splitmix64 state for loss decisions.
    rng: AtomicU64,
    /// Hands out [`MemTransport::handle`] values.
    next_handle: AtomicU64,
    sent: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Links {
    attached: HashMap<NodeId, Attachment>,
    isolated: HashSet<NodeId>,
    /// One-way cuts, `(from, to)`.
    blocked: HashSet<(NodeId, NodeId)>,
    /// Probability of dropping a batch the links let through.
    loss: f64,
}

#[derive(Debug)]
struct Attachment {
    inbox: Inbox,
    /// Which transport handle attached it, so a stale handle's `detach` leaves a newer
    /// attachment alone.
    handle: u64,
}

impl Links {
    fn cut(&self, from: NodeId, to: NodeId) -> bool {
        (!self.isolated.is_empty()
            && (self.isolated.contains(&from) || self.isolated.contains(&to)))
            || (!self.blocked.is_empty() && self.blocked.contains(&(from, to)))
    }
}

impl MemNetwork {
    /// A network with no nodes, no faults and no loss.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Links> {
        self.inner.links.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Links> {
        self.inner.links.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The transport for `node`. Call again for a node restarted after a crash: the newest
    /// transport to [`attach`](Transport::attach) receives the node's batches.
    ///
    /// A transport need not be attached to [`send`](Transport::send): a test can take one
    /// for any node id, running or not, and inject batches as that node (say, forged or
    /// invalid ones) without disturbing the running node's own transport.
    pub fn transport(&self, node: NodeId) -> MemTransport {
        MemTransport {
            network: self.clone(),
            node,
            handle: self.inner.next_handle.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Drops every batch to and from `node` until [`heal`](MemNetwork::heal).
    pub fn isolate(&self, node: NodeId) {
        self.write().isolated.insert(node);
    }

    /// Restores every link to and from `node`: undoes [`isolate`](MemNetwork::isolate) and
    /// every [`block`](MemNetwork::block) or [`partition`](MemNetwork::partition) cut that
    /// involves it.
    pub fn heal(&self, node: NodeId) {
        let mut links = self.write();
        links.isolated.remove(&node);
        links
            .blocked
            .retain(|(from, to)| *from != node && *to != node);
    }

    /// Cuts every link between a node of `a_side` and a node of `b_side`, both ways. Links
    /// within each side are untouched, so two overlapping calls make a bridge (a node that
    /// reaches both sides while they cannot reach each other).
    pub fn partition(&self, a_side: &[NodeId], b_side: &[NodeId]) {
        let mut links = self.write();
        for a in a_side {
            for b in b_side {
                if a != b {
                    links.blocked.insert((*a, *b));
                    links.blocked.insert((*b, *a));
                }
            }
        }
    }

    /// Drops batches from `from` to `to`; the other direction is untouched.
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.write().blocked.insert((from, to));
    }

    /// Undoes [`block`](MemNetwork::block)`(from, to)` (and that direction of a partition).
    pub fn unblock(&self, from: NodeId, to: NodeId) {
        self.write().blocked.remove(&(from, to));
    }

    /// Undoes every isolation, partition and block. Loss stays as set.
    pub fn heal_all(&self) {
        let mut links = self.write();
        links.isolated.clear();
        links.blocked.clear();
    }

    /// Drops each batch that the links let through with `probability`, deciding with a
    /// generator seeded by `seed`: the same seed and the same order of sends drop the same
    /// batches. Only batches that would otherwise reach an attached node draw from the
    /// generator. `set_loss(0.0, _)` turns loss off.
    ///
    /// # Panics
    ///
    /// If `probability` is not within `0.0..=1.0`.
    pub fn set_loss(&self, probability: f64, seed: u64) {
        assert!(
            (0.0..=1.0).contains(&probability),
            "loss probability {probability} is not within 0..=1"
        );
        let mut links = self.write();
        links.loss = probability;
        self.inner.rng.store(seed, Ordering::Relaxed);
    }

    /// Whether `node` is attached (its node has started and not stopped).
    pub fn is_attached(&self, node: NodeId) -> bool {
        self.read().attached.contains_key(&node)
    }

    /// Batches handed to any transport's [`send`](Transport::send).
    pub fn batches_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }

    /// Batches accepted by the destination's inbox.
    pub fn batches_delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }

    /// Batches dropped, for any reason (faults, loss, no destination, inbox full or closed).
    pub fn batches_dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Next splitmix64 draw, mapped to `[0, 1)`.
    fn draw(&self) -> f64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .inner
            .rng
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn route(&self, sender: NodeId, batch: MessageBatch) -> bool {
        // A transport only sends for its own node (the `Transport` contract: never deliver
        // a batch whose `from` is not the sender).
        if batch.from != sender {
            return false;
        }
        let links = self.read();
        if links.cut(batch.from, batch.to) {
            return false;
        }
        let Some(attachment) = links.attached.get(&batch.to) else {
            return false;
        };
        if links.loss > 0.0 && self.draw() < links.loss {
            return false;
        }
        attachment.inbox.deliver(batch).is_ok()
    }
}

/// One node's end of a [`MemNetwork`], made by [`MemNetwork::transport`].
#[derive(Clone, Debug)]
pub struct MemTransport {
    network: MemNetwork,
    node: NodeId,
    handle: u64,
}

impl MemTransport {
    /// The node this transport sends for.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The network this transport belongs to.
    pub fn network(&self) -> &MemNetwork {
        &self.network
    }
}

impl Transport for MemTransport {
    /// Delivers `batch` into the destination's inbox now, or drops it. A batch whose `from`
    /// is not this transport's node is dropped.
    fn send(&self, batch: MessageBatch) {
        let inner = &self.network.inner;
        inner.sent.fetch_add(1, Ordering::Relaxed);
        if self.network.route(self.node, batch) {
            inner.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Attaches `inbox` for this transport's node, replacing an earlier attachment (a node
    /// restarted after a crash may not have detached). Fails if `node` is not this
    /// transport's node.
    fn attach(&self, node: NodeId, inbox: Inbox) -> Result<(), AttachError> {
        if node != self.node {
            return Err(AttachError::WrongNode {
                expected: self.node,
                node,
            });
        }
        let attachment = Attachment {
            inbox,
            handle: self.handle,
        };
        self.network.write().attached.insert(node, attachment);
        Ok(())
    }

    /// Detaches `node`, unless a newer transport has attached it since.
    fn detach(&self, node: NodeId) {
        let mut links = self.network.write();
        if links
            .attached
            .get(&node)
            .is_some_and(|a| a.handle == self.handle)
        {
            links.attached.remove(&node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiraft_core::{GroupId, Message, MessageBody};
    use tokio::sync::mpsc::Receiver;

    fn n(id: u64) -> NodeId {
        NodeId(id)
    }

    fn batch(from: u64, to: u64, tag: u64) -> MessageBatch {
        MessageBatch {
            from: n(from),
            to: n(to),
            messages: vec![Message {
                group: GroupId(tag),
                from: n(from),
                to: n(to),
                term: 1,
                body: MessageBody::HeartbeatResponse { round: 0 },
            }],
        }
    }

    /// Three attached nodes; receivers indexed by node id - 1.
    fn three() -> (MemNetwork, Vec<MemTransport>, Vec<Receiver<MessageBatch>>) {
        let net = MemNetwork::new();
        let mut transports = Vec::new();
        let mut inboxes = Vec::new();
        for id in 1..=3 {
            let t = net.transport(n(id));
            let (inbox, rx) = Inbox::channel(1024);
            t.attach(n(id), inbox).unwrap();
            transports.push(t);
            inboxes.push(rx);
        }
        (net, transports, inboxes)
    }

    /// Tags of every batch waiting in `rx`.
    fn drain(rx: &mut Receiver<MessageBatch>) -> Vec<u64> {
        let mut tags = Vec::new();
        while let Ok(b) = rx.try_recv() {
            tags.push(b.messages[0].group.0);
        }
        tags
    }

    /// Sends tag `tag` from every node to every other node.
    fn all_to_all(t: &[MemTransport], tag: u64) {
        for from in 1..=3 {
            for to in 1..=3 {
                if from != to {
                    t[from as usize - 1].send(batch(from, to, tag));
                }
            }
        }
    }

    /// Which (from, to) pairs got through, reading each batch's `from`.
    fn delivered_pairs(rx: &mut [Receiver<MessageBatch>]) -> Vec<(u64, u64)> {
        let mut pairs = Vec::new();
        for (i, rx) in rx.iter_mut().enumerate() {
            while let Ok(b) = rx.try_recv() {
                assert_eq!(b.to, n(i as u64 + 1), "delivered to the wrong node");
                pairs.push((b.from.0, b.to.0));
            }
        }
        pairs.sort_unstable();
        pairs
    }

    #[test]
    fn delivers_unchanged_in_order() {
        let (net, t, mut rx) = three();
        let sent = batch(1, 2, 7);
        t[0].send(sent.clone());
        t[0].send(batch(1, 2, 8));
        assert_eq!(rx[1].try_recv().unwrap(), sent);
        assert_eq!(drain(&mut rx[1]), [8]);
        assert!(drain(&mut rx[0]).is_empty() && drain(&mut rx[2]).is_empty());
        assert_eq!(
            (
                net.batches_sent(),
                net.batches_delivered(),
                net.batches_dropped()
            ),
            (2, 2, 0)
        );
    }

    #[test]
    fn drops_without_destination_or_with_forged_sender() {
        let (net, t, mut rx) = three();
        t[0].send(batch(1, 9, 1)); // nobody attached as 9
        t[0].send(batch(2, 3, 2)); // node 1's transport claiming to be node 2
        assert!(drain(&mut rx[2]).is_empty());

        t[2].detach(n(3));
        assert!(!net.is_attached(n(3)));
        t[0].send(batch(1, 3, 3));
        // A closed inbox (its receiver dropped: the node stopped) also drops.
        drop(rx.remove(1));
        t[0].send(batch(1, 2, 4));
        assert_eq!(net.batches_sent(), 4);
        assert_eq!(net.batches_dropped(), 4);
        assert_eq!(net.batches_delivered(), 0);
    }

    #[test]
    fn attach_checks_node_and_stale_detach_keeps_newer_attachment() {
        let net = MemNetwork::new();
        let old = net.transport(n(1));
        let (inbox, _old_rx) = Inbox::channel(8);
        assert!(old.attach(n(2), inbox.clone()).is_err());
        old.attach(n(1), inbox).unwrap();

        // Restart: a new transport attaches, then the old node's late detach arrives.
        let new = net.transport(n(1));
        let (inbox, mut new_rx) = Inbox::channel(8);
        new.attach(n(1), inbox).unwrap();
        old.detach(n(1));
        assert!(net.is_attached(n(1)));

        net.transport(n(2)).send(batch(2, 1, 5));
        assert_eq!(drain(&mut new_rx), [5]);
    }

    #[test]
    fn full_inbox_drops() {
        let net = MemNetwork::new();
        let (inbox, mut rx) = Inbox::channel(1);
        net.transport(n(1)).attach(n(1), inbox).unwrap();
        let t2 = net.transport(n(2));
        t2.send(batch(2, 1, 1));
        t2.send(batch(2, 1, 2));
        assert_eq!(drain(&mut rx), [1]);
        assert_eq!(net.batches_dropped(), 1);
    }

    #[test]
    fn isolate_drops_to_and_from_until_heal() {
        let (net, t, mut rx) = three();
        net.isolate(n(1));
        all_to_all(&t, 0);
        assert_eq!(delivered_pairs(&mut rx), [(2, 3), (3, 2)]);
        assert_eq!(net.batches_dropped(), 4);

        net.heal(n(1));
        all_to_all(&t, 0);
        assert_eq!(delivered_pairs(&mut rx).len(), 6);
    }

    #[test]
    fn partition_is_symmetric_and_leaves_sides_connected() {
        let (net, t, mut rx) = three();
        net.partition(&[n(1)], &[n(2), n(3)]);
        all_to_all(&t, 0);
        assert_eq!(delivered_pairs(&mut rx), [(2, 3), (3, 2)]);

        // A bridge: 1 and 3 cannot talk, 2 reaches both.
        net.heal_all();
        net.partition(&[n(1)], &[n(3)]);
        all_to_all(&t, 0);
        assert_eq!(delivered_pairs(&mut rx), [(1, 2), (2, 1), (2, 3), (3, 2)]);

        // heal(node) removes every cut involving the node.
        net.heal(n(3));
        all_to_all(&t, 0);
        assert_eq!(delivered_pairs(&mut rx).len(), 6);
    }

    #[test]
    fn block_is_one_way() {
        let (net, t, mut rx) = three();
        net.block(n(1), n(2));
        all_to_all(&t, 0);
        assert_eq!(
            delivered_pairs(&mut rx),
            [(1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]
        );
        net.unblock(n(1), n(2));
        all_to_all(&t, 0);
        assert_eq!(delivered_pairs(&mut rx).len(), 6);
    }

    /// Sends 1000 batches 1 -> 2 under loss and returns which tags arrived.
    fn lossy_run(probability: f64, seed: u64) -> Vec<u64> {
        let (net, t, mut rx) = three();
        net.set_loss(probability, seed);
        for tag in 0..1000 {
            t[0].send(batch(1, 2, tag));
        }
        let got = drain(&mut rx[1]);
        assert_eq!(net.batches_delivered(), got.len() as u64);
        assert_eq!(net.batches_dropped(), 1000 - got.len() as u64);
        got
    }

    #[test]
    fn loss_is_deterministic_for_a_seed() {
        let a = lossy_run(0.3, 42);
        assert_eq!(a, lossy_run(0.3, 42), "same seed, same drops");
        assert_ne!(a, lossy_run(0.3, 43), "another seed, other drops");
        // Roughly the asked-for rate (expected 700 delivered, sd ~14.5).
        assert!((600..800).contains(&a.len()), "{} delivered", a.len());

        assert_eq!(lossy_run(0.0, 1).len(), 1000);
        assert!(lossy_run(1.0, 1).is_empty());
    }

    #[test]
    fn set_loss_reseeds() {
        let (net, t, mut rx) = three();
        let run = |rx: &mut Vec<Receiver<MessageBatch>>| {
            net.set_loss(0.5, 7);
            for tag in 0..100 {
                t[0].send(batch(1, 2, tag));
            }
            drain(&mut rx[1])
        };
        let first = run(&mut rx);
        assert_eq!(first, run(&mut rx));
    }

    #[test]
    #[should_panic(expected = "not within")]
    fn loss_probability_is_checked() {
        MemNetwork::new().set_loss(1.5, 0);
    }
}
