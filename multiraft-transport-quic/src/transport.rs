//! [`QuicTransport`]: the [`Transport`] over quinn. Connection management, the send lanes
//! and the receive loop are in the child modules.

mod connection;
mod lanes;
mod receive;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use multiraft_core::{AttachError, Inbox, Message, MessageBatch, NodeId, Transport};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, IdleTimeout, VarInt};
use tokio::sync::{mpsc, watch};

use crate::config::{QuicConfig, TransportLimits};
use crate::tls::{ClusterId, TlsError};

use connection::accept_loop;
use lanes::lane_of;

/// Application close code: the transport is shutting down.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// Application close code: the peer sent a frame that failed decoding or validation.
pub const CLOSE_PROTOCOL: u32 = 1;
/// Application close code: the peer's certificate names no node of this cluster.
pub const CLOSE_IDENTITY: u32 = 2;
/// Application close code: the peer dialed although the dial rule says this node dials it
/// (the lower node id dials).
pub const CLOSE_WRONG_DIALER: u32 = 3;
/// Application close code: a newer connection from the same peer replaced this one.
pub const CLOSE_REPLACED: u32 = 4;
/// Application close code: a batch claimed a sender other than the authenticated peer.
pub const CLOSE_WRONG_SENDER: u32 = 5;
/// Application close code: every one of `max_peers` entries is connected, so there is no
/// room for one more peer.
pub const CLOSE_NO_CAPACITY: u32 = 6;

/// The lane carrying control traffic: every message but appends, forwarded proposals and
/// snapshot chunks.
pub const CONTROL_LANE: usize = 0;

/// The lane carrying snapshot chunks ([`MessageBody::InstallSnapshot`]) and nothing else, at
/// the lowest stream priority. Data lanes follow it: `SNAPSHOT_LANE + 1 ..= data_lanes + 1`.
///
/// [`MessageBody::InstallSnapshot`]: multiraft_core::MessageBody::InstallSnapshot
pub const SNAPSHOT_LANE: usize = 1;

/// Why [`QuicTransport::bind`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Not called from within a tokio runtime.
    #[error("QuicTransport::bind must run inside a tokio runtime")]
    NoRuntime,
    /// The TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A limit is out of range.
    #[error("invalid limit {field}: {reason}")]
    Limit {
        /// The field of [`TransportLimits`].
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Binding the UDP socket failed.
    #[error("binding the UDP socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of what the transport did, for metrics and tests. Lane batches are the pieces
/// a sent [`MessageBatch`] is split into, one per lane it touches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// Batches handed to [`Transport::send`].
    pub batches_sent: u64,
    /// Frames written to a stream.
    pub frames_sent: u64,
    /// Bytes written to streams.
    pub bytes_sent: u64,
    /// Lane batches dropped because the lane's queue was full.
    pub dropped_queue_full: u64,
    /// Lane batches dropped because there was no live connection to the peer.
    pub dropped_unconnected: u64,
    /// Lane batches dropped because writing to the stream failed.
    pub dropped_write_error: u64,
    /// Batches or lane batches dropped as unsendable: not from this node, to this node,
    /// holding a message whose sender or receiver is not the batch's, too large for a
    /// frame, too many peers, or sent after shutdown.
    pub dropped_unsendable: u64,
    /// Lane batches of the snapshot lane dropped, whatever the reason (each also counts in
    /// the `dropped_*` counter of its reason).
    pub dropped_snapshot: u64,
    /// Valid frames received.
    pub frames_received: u64,
    /// Inbound frames refused (the connection was closed with it).
    pub frames_rejected: u64,
    /// Received batches handed to the inbox.
    pub batches_delivered: u64,
    /// Received batches dropped: inbox full, not attached, or node stopped.
    pub inbound_dropped: u64,
    /// Connections established and authenticated (dialed or accepted).
    pub connections_established: u64,
    /// Handshaken connections refused: no node identity, the wrong side dialed, or no
    /// room for one more peer (`max_peers`, every entry connected).
    pub connections_refused: u64,
    /// Inbound handshakes that failed (bad or missing certificate, wrong ALPN, ...).
    pub handshake_failures: u64,
    /// Outbound dials that failed.
    pub dial_failures: u64,
}

#[derive(Default)]
struct Counters {
    batches_sent: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_unconnected: AtomicU64,
    dropped_write_error: AtomicU64,
    dropped_unsendable: AtomicU64,
    dropped_snapshot: AtomicU64,
    frames_received: AtomicU64,
    frames_rejected: AtomicU64,
    batches_delivered: AtomicU64,
    inbound_dropped: AtomicU64,
    connections_established: AtomicU64,
    connections_refused: AtomicU64,
    handshake_failures: AtomicU64,
    dial_failures: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Why outbound batches were dropped: which counter and metric count them.
#[derive(Clone, Copy)]
enum DropReason {
    QueueFull,
    Unconnected,
    WriteError,
    Unsendable,
}

impl Inner {
    /// Counts `n` lane batches (or whole batches, counted on the control lane) dropped on
    /// `lane` for `why`, in the stats and the metrics.
    fn drop_on(&self, lane: usize, why: DropReason, n: u64) {
        let (stat, metric) = match why {
            DropReason::QueueFull => (&self.stats.dropped_queue_full, &self.dropped.queue_full),
            DropReason::Unconnected => (&self.stats.dropped_unconnected, &self.dropped.unconnected),
            DropReason::WriteError => (&self.stats.dropped_write_error, &self.dropped.write_error),
            DropReason::Unsendable => (&self.stats.dropped_unsendable, &self.dropped.unsendable),
        };
        bump(stat, n);
        metric.increment(n);
        if lane == SNAPSHOT_LANE {
            bump(&self.stats.dropped_snapshot, n);
            self.dropped.snapshot.increment(n);
        }
    }
}

/// A [`Transport`] over QUIC (quinn) with mutual TLS (rustls, ring provider).
///
/// # Connections
///
/// One connection per peer node. **The lower node id dials**: this node dials every peer
/// with a higher id in its address book, redialing with capped exponential backoff and
/// jitter whenever the connection is lost; a peer with a lower id dials this node, and a
/// connection dialed by a higher id is refused ([`CLOSE_WRONG_DIALER`]). So simultaneous
/// dials cannot happen; a newer connection from the same peer (it restarted) replaces the
/// older one ([`CLOSE_REPLACED`]). Both sides send on the one connection.
///
/// # Lanes
///
/// Each side opens up to `2 + data_lanes` long-lived unidirectional streams per connection,
/// each when it first has something to carry. Lane [`CONTROL_LANE`] carries everything that
/// is not an append, a forwarded proposal or a snapshot chunk — votes, (coalesced)
/// heartbeats, quiesce notices and every response, snapshot acknowledgements included — at
/// a higher stream priority; appends and forwarded proposals go to data lane
/// `2 + hash(group) % data_lanes`; snapshot chunks go to lane [`SNAPSHOT_LANE`], at the
/// lowest priority, with a queue of its own (`snapshot_queue_batches`). Each lane has its
/// own bounded queue and writer task, and QUIC sends a stream's buffered data only when no
/// stream of higher priority has any, so heartbeats never wait behind bulk data, appends
/// never wait behind a snapshot, and one busy group only shares its lane. A snapshot
/// stream can hold at most its stream window (`stream_receive_window`) of the connection's
/// flow-control credit.
///
/// # Send and drop policy
///
/// [`send`](Transport::send) never blocks: it splits the batch by lane (and, for very large
/// lanes, into frames under half of `max_frame_bytes`), and pushes each piece into the
/// lane's bounded queue. When the queue is full the *new* piece is dropped and counted
/// ([`TransportStats::dropped_queue_full`]). A writer that finds no live connection drops
/// what it dequeues ([`TransportStats::dropped_unconnected`]) rather than hoarding stale
/// messages. Raft repairs every drop by retransmission.
///
/// # Receive
///
/// Every inbound frame is checked against the limits before its payload is allocated,
/// decoded, and [validated](crate::frame::validate): its `from` must be the node named by
/// the peer's certificate and its `to` this node. Any failure drops the frame and closes the
/// connection. Valid batches go to the [`Inbox`] with [`Inbox::deliver`], which drops when
/// the inbox is full ([`TransportStats::inbound_dropped`]).
///
/// # Lifecycle
///
/// [`bind`](QuicTransport::bind) opens the endpoint and starts dialing;
/// [`attach`](Transport::attach) starts delivery; [`detach`](Transport::detach) (or dropping
/// the last handle) closes every connection and the endpoint; it cannot be attached again.
/// Stateless-reset tokens are derived from the node's key, so after a crash and restart on
/// the same address, peers learn of the dead connection from their next packet rather than
/// from their idle timeout.
/// [`wait_closed`](QuicTransport::wait_closed) waits until the socket is released.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
    /// Shuts the transport down when the last user handle goes (tasks hold `inner` only).
    _guard: Arc<ShutdownGuard>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("node", &self.inner.node)
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

struct ShutdownGuard(Arc<Inner>);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

struct Inner {
    node: NodeId,
    cluster: ClusterId,
    limits: TransportLimits,
    endpoint: Endpoint,
    client_config: quinn::ClientConfig,
    runtime: tokio::runtime::Handle,
    addrs: RwLock<HashMap<NodeId, SocketAddr>>,
    /// Bumped whenever an address is set: a dial loop whose peer has none waits on it
    /// instead of failing a dial at every backoff.
    addr_set: watch::Sender<()>,
    peers: Mutex<HashMap<NodeId, Arc<Peer>>>,
    inbox: RwLock<Option<Inbox>>,
    stopped: AtomicBool,
    shutdown: watch::Sender<bool>,
    stats: Counters,
    /// The drop counters as metrics ([`crate::metrics::DROPPED_TOTAL`]).
    dropped: crate::metrics::Dropped,
    /// splitmix64 state for backoff jitter.
    rng: AtomicU64,
}

struct Peer {
    id: NodeId,
    /// What is sent to it ([`crate::metrics`]).
    sent: crate::metrics::Sent,
    /// Each lane's queue: a batch, and the bytes it counts in its lane's count
    /// ([`Peer::queued`]).
    lanes: Vec<mpsc::Sender<(MessageBatch, usize)>>,
    /// Bytes queued on the control lane, and on the data lanes together, each bounded by
    /// `max_queued_bytes`: added by `send`, taken off by the lane's writer as it dequeues.
    /// Two counts, not one: data lanes filled for a peer that reads slowly (a follower
    /// catching up) used to leave no room for its heartbeats, votes and acknowledgements.
    control_queued: Arc<AtomicUsize>,
    data_queued: Arc<AtomicUsize>,
    conn: watch::Sender<Option<Connection>>,
}

impl Peer {
    /// The count of bytes queued that `lane`'s batches are held in (the snapshot lane's
    /// count 0 bytes: it is bounded by its number of batches).
    fn queued(&self, lane: usize) -> &Arc<AtomicUsize> {
        if lane == CONTROL_LANE {
            &self.control_queued
        } else {
            &self.data_queued
        }
    }

    /// Counts `bytes` more queued on `lane`, unless that passes `limit` with some already
    /// queued there.
    fn hold(&self, lane: usize, bytes: usize, limit: usize) -> bool {
        self.queued(lane)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                (queued == 0 || queued.saturating_add(bytes) <= limit)
                    .then(|| queued.saturating_add(bytes))
            })
            .is_ok()
    }
}

fn quinn_transport_config(limits: &TransportLimits) -> Result<quinn::TransportConfig, BindError> {
    let mut t = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(limits.idle_timeout).map_err(|_| BindError::Limit {
        field: "idle_timeout",
        reason: "too large for QUIC",
    })?;
    t.max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(limits.keep_alive_interval))
        .initial_rtt(limits.initial_rtt)
        .receive_window(VarInt::from_u32(limits.connection_receive_window))
        .stream_receive_window(VarInt::from_u32(limits.stream_receive_window))
        .send_window(limits.send_window)
        .max_concurrent_uni_streams(VarInt::from_u32(limits.max_concurrent_uni_streams))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    Ok(t)
}

fn check_limits(l: &TransportLimits) -> Result<(), BindError> {
    let err = |field, reason| Err(BindError::Limit { field, reason });
    if l.data_lanes == 0 {
        return err("data_lanes", "must be positive");
    }
    if l.max_concurrent_uni_streams as usize <= l.data_lanes.saturating_add(1) {
        return err(
            "max_concurrent_uni_streams",
            "must exceed data_lanes + 1 (the data, control and snapshot lanes all open)",
        );
    }
    // Connection credit is shared: the data and snapshot lanes, each at its stream window,
    // must leave the control lane a window of its own (review: with 16 MiB against five
    // 4 MiB lanes, heartbeats waited behind bulk data for credit).
    let lanes_and_control = (l.data_lanes as u64).saturating_add(2);
    let needed = lanes_and_control.saturating_mul(u64::from(l.stream_receive_window));
    if u64::from(l.connection_receive_window) < needed {
        return err(
            "connection_receive_window",
            "must be at least (data_lanes + 2) x stream_receive_window",
        );
    }
    if l.send_window < needed {
        return err(
            "send_window",
            "must be at least (data_lanes + 2) x stream_receive_window",
        );
    }
    // Queues and the handshake permits are tokio's channels and semaphores, which panic
    // past this many.
    let permits = 1..=tokio::sync::Semaphore::MAX_PERMITS;
    if !permits.contains(&l.lane_queue_batches) {
        return err(
            "lane_queue_batches",
            "must be positive, at most usize::MAX >> 3",
        );
    }
    if l.max_queued_bytes == 0 {
        return err("max_queued_bytes", "must be positive");
    }
    if !permits.contains(&l.snapshot_queue_batches) {
        return err(
            "snapshot_queue_batches",
            "must be positive, at most usize::MAX >> 3",
        );
    }
    if l.frame.max_frame_bytes < 1024 {
        return err("frame.max_frame_bytes", "must be at least 1 KiB");
    }
    if l.frame.max_messages_per_frame == 0 {
        // A peer with the same limits would refuse every frame and close the connection.
        return err("frame.max_messages_per_frame", "must be positive");
    }
    if l.keep_alive_interval >= l.idle_timeout {
        return err("keep_alive_interval", "must be shorter than idle_timeout");
    }
    if l.initial_rtt.is_zero() || l.initial_rtt >= l.handshake_timeout {
        return err(
            "initial_rtt",
            "must be positive and shorter than handshake_timeout",
        );
    }
    if l.reconnect_backoff_min.is_zero() || l.reconnect_backoff_max < l.reconnect_backoff_min {
        return err(
            "reconnect_backoff_min",
            "must be positive and at most reconnect_backoff_max",
        );
    }
    if l.max_peers == 0 || !permits.contains(&l.max_incoming_handshakes) {
        return err(
            "max_peers",
            "max_peers and max_incoming_handshakes must be positive, the second at most usize::MAX >> 3",
        );
    }
    Ok(())
}

/// The key for QUIC stateless reset tokens, derived from the node's private key so that it
/// survives restarts (RFC 9000 §10.3): when a node comes back after a crash, the first packet
/// a peer sends on the dead connection is answered with a stateless reset the peer can
/// verify, and the peer redials at once instead of waiting for its idle timeout.
fn reset_key(tls: &crate::tls::TlsConfig) -> ring::hmac::Key {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"multiraft/1 stateless reset key\0");
    ctx.update(tls.identity.key.secret_der());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ctx.finish().as_ref())
}

impl QuicTransport {
    /// Binds the UDP socket, starts accepting connections and dials every peer in the
    /// address book with a higher node id. Must be called within a tokio runtime; the
    /// transport's tasks run on it.
    pub fn bind(config: QuicConfig) -> Result<QuicTransport, BindError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BindError::NoRuntime)?;
        check_limits(&config.limits)?;
        let transport = Arc::new(quinn_transport_config(&config.limits)?);

        let server_crypto =
            QuicServerConfig::try_from(config.tls.server_crypto()?).map_err(TlsError::from)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server
            .transport_config(transport.clone())
            .max_incoming(config.limits.max_incoming_handshakes)
            .migration(false);
        let client_crypto =
            QuicClientConfig::try_from(config.tls.client_crypto()?).map_err(TlsError::from)?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
        client_config.transport_config(transport);

        let socket = std::net::UdpSocket::bind(config.listen)?;
        let endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key(&config.tls)));
        let endpoint = Endpoint::new(
            endpoint_config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        let seed = config.node.0
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        let inner = Arc::new(Inner {
            node: config.node,
            cluster: config.tls.cluster.clone(),
            limits: config.limits,
            endpoint,
            client_config,
            runtime,
            addrs: RwLock::new(config.peers),
            addr_set: watch::channel(()).0,
            peers: Mutex::new(HashMap::new()),
            inbox: RwLock::new(None),
            stopped: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            stats: Counters::default(),
            dropped: crate::metrics::Dropped::new(config.node),
            rng: AtomicU64::new(seed),
        });
        inner.runtime.spawn(accept_loop(inner.clone()));
        let higher: Vec<NodeId> = read(&inner.addrs)
            .keys()
            .copied()
            .filter(|p| *p > inner.node)
            .collect();
        for peer in higher {
            inner.peer(peer);
        }
        Ok(QuicTransport {
            _guard: Arc::new(ShutdownGuard(inner.clone())),
            inner,
        })
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// The address the endpoint listens on (useful after binding port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// Sets or changes where `peer` listens. A peer with a higher id is dialed at the new
    /// address from the next attempt on (an existing connection is kept).
    pub fn set_peer_addr(&self, peer: NodeId, addr: SocketAddr) {
        write(&self.inner.addrs).insert(peer, addr);
        self.inner.addr_set.send_replace(());
        if peer > self.inner.node {
            self.inner.peer(peer);
        }
    }

    /// Forgets where `peer` listens; it is no longer dialed after the current connection,
    /// which stays until it closes, so that what is already queued for the peer (a removed
    /// replica's last word from its leader, say) still leaves. Its dial loop then waits
    /// for an address, without dialing or counting failed dials. Once not connected, its
    /// entry is the first taken for a new peer at `max_peers`.
    pub fn remove_peer_addr(&self, peer: NodeId) {
        write(&self.inner.addrs).remove(&peer);
    }

    /// Peers with a live connection now.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = lock(&self.inner.peers)
            .values()
            .filter(|p| live(&p.conn.borrow()).is_some())
            .map(|p| p.id)
            .collect();
        peers.sort_unstable();
        peers
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        let c = &self.inner.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransportStats {
            batches_sent: g(&c.batches_sent),
            frames_sent: g(&c.frames_sent),
            bytes_sent: g(&c.bytes_sent),
            dropped_queue_full: g(&c.dropped_queue_full),
            dropped_unconnected: g(&c.dropped_unconnected),
            dropped_write_error: g(&c.dropped_write_error),
            dropped_unsendable: g(&c.dropped_unsendable),
            dropped_snapshot: g(&c.dropped_snapshot),
            frames_received: g(&c.frames_received),
            frames_rejected: g(&c.frames_rejected),
            batches_delivered: g(&c.batches_delivered),
            inbound_dropped: g(&c.inbound_dropped),
            connections_established: g(&c.connections_established),
            connections_refused: g(&c.connections_refused),
            handshake_failures: g(&c.handshake_failures),
            dial_failures: g(&c.dial_failures),
        }
    }

    /// Shuts down like [`detach`](Transport::detach), without needing the node id.
    pub fn close(&self) {
        self.inner.shutdown();
    }

    /// Waits until every connection has finished closing and the endpoint is idle (call
    /// after [`close`](QuicTransport::close) or `detach`; bound it with a timeout). Once
    /// every handle is dropped as well, the UDP port is free to bind again.
    pub async fn wait_closed(&self) {
        self.inner.endpoint.wait_idle().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

fn live(conn: &Option<Connection>) -> Option<Connection> {
    conn.as_ref()
        .filter(|c| c.close_reason().is_none())
        .cloned()
}

impl Transport for QuicTransport {
    /// Splits `batch` by lane and queues each piece without blocking; see the type's docs
    /// for the drop policy.
    fn send(&self, batch: MessageBatch) {
        let inner = &self.inner;
        bump(&inner.stats.batches_sent, 1);
        if batch.from != inner.node || batch.to == inner.node {
            return inner.drop_on(CONTROL_LANE, DropReason::Unsendable, 1);
        }
        let (from, to) = (batch.from, batch.to);
        let data_lanes = inner.limits.data_lanes;
        // First pass: messages per lane and the total size, so that a batch for one lane
        // (most heartbeat-only or single-group batches) is queued as it is, and the others
        // are split into exactly sized vectors without regrowth.
        let mut counts = vec![0usize; data_lanes + 2];
        let mut total_bytes = 0;
        for m in &batch.messages {
            // A message of another sender or receiver than its batch: the peer would
            // refuse the frame and close the connection, losing what else it carried.
            if m.from != from || m.to != to {
                return inner.drop_on(CONTROL_LANE, DropReason::Unsendable, 1);
            }
            counts[lane_of(m, data_lanes)] += 1;
            total_bytes += m.body.size_bytes();
        }
        // Only then the peer's entry: a batch dropped above neither makes one nor, at
        // `max_peers`, evicts another's.
        let Some(peer) = inner.peer(to) else {
            return inner.drop_on(CONTROL_LANE, DropReason::Unsendable, 1);
        };
        let target = inner.limits.frame.max_frame_bytes as usize / 2;
        // A frame's message count is bounded too (a peer with these limits refuses more
        // and closes the connection): pieces are cut at whichever comes first.
        let max_messages = inner.limits.frame.max_messages_per_frame;
        let enqueue = |lane: usize, piece: MessageBatch, bytes: usize| {
            // The snapshot lane is bounded by its count (`snapshot_queue_batches`).
            let counted = if lane == SNAPSHOT_LANE { 0 } else { bytes };
            if counted > 0 && !peer.hold(lane, counted, inner.limits.max_queued_bytes) {
                return inner.drop_on(lane, DropReason::QueueFull, 1);
            }
            let refused = match peer.lanes[lane].try_send((piece, counted)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => DropReason::QueueFull,
                Err(mpsc::error::TrySendError::Closed(_)) => DropReason::Unsendable,
            };
            peer.queued(lane).fetch_sub(counted, Ordering::Relaxed);
            inner.drop_on(lane, refused, 1);
        };
        let mut used = counts.iter().enumerate().filter(|(_, c)| **c > 0);
        if let (Some((lane, _)), None) = (used.next(), used.next())
            && total_bytes <= target
            && batch.messages.len() <= max_messages
        {
            return enqueue(lane, batch, total_bytes);
        }
        let mut pieces: Vec<(Vec<Message>, usize)> =
            counts.iter().map(|c| (Vec::with_capacity(*c), 0)).collect();
        for m in batch.messages {
            let lane = lane_of(&m, data_lanes);
            let size = m.body.size_bytes();
            counts[lane] -= 1;
            let (messages, bytes) = &mut pieces[lane];
            if !messages.is_empty() && (*bytes + size > target || messages.len() == max_messages) {
                let rest = Vec::with_capacity(counts[lane] + 1);
                let full = std::mem::replace(messages, rest);
                let piece = MessageBatch {
                    from,
                    to,
                    messages: full,
                };
                enqueue(lane, piece, std::mem::take(bytes));
            }
            *bytes += size;
            messages.push(m);
        }
        for (lane, (messages, bytes)) in pieces.into_iter().enumerate() {
            if !messages.is_empty() {
                enqueue(lane, MessageBatch { from, to, messages }, bytes);
            }
        }
    }

    /// Starts delivering to `inbox`. Fails for another node id, or after shutdown.
    fn attach(&self, node: NodeId, inbox: Inbox) -> Result<(), AttachError> {
        if node != self.inner.node {
            return Err(AttachError::WrongNode {
                expected: self.inner.node,
                node,
            });
        }
        if self.inner.stopped.load(Ordering::Acquire) {
            // Bind a new transport to attach again.
            return Err(AttachError::ShutDown);
        }
        *write(&self.inner.inbox) = Some(inbox);
        Ok(())
    }

    /// Stops delivery, closes every connection and the endpoint.
    fn detach(&self, node: NodeId) {
        if node == self.inner.node {
            self.inner.shutdown();
        }
    }
}
