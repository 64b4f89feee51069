//! Limits and timeouts of a [`QuicTransport`](crate::QuicTransport), each named with its
//! reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use multiraft_core::NodeId;

use crate::frame::FrameLimits;
use crate::tls::TlsConfig;

/// Default [`TransportLimits::data_lanes`]: 4 data streams, enough that one busy group
/// holds up at most a quarter of the others, few enough that each stays busy and batched.
pub const DEFAULT_DATA_LANES: usize = 4;

/// Default [`TransportLimits::lane_queue_batches`]: 256 batches per lane per peer. The node
/// sends about one batch per peer per cycle, so this is hundreds of cycles of backlog; a
/// peer that falls further behind loses the newest batches (Raft retransmits).
pub const DEFAULT_LANE_QUEUE_BATCHES: usize = 256;

/// Default [`TransportLimits::max_queued_bytes`]: 64 MiB of batches queued per peer on the
/// data lanes, and at most as much again on the control lane. A batch on a lane is at
/// most half a frame (2 MiB by default), so the count alone (`lane_queue_batches` on each
/// of 5 lanes) let a peer that stops reading hold 2.5 GiB; 64 MiB is still more than twice
/// the send window (`send_window`), so a peer that keeps up never meets it.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 << 20;

/// Default [`TransportLimits::snapshot_queue_batches`]: 32 batches of snapshot chunks per
/// peer. The core keeps at most `max_snapshot_sends` × `snapshot_window_chunks` chunks
/// unacknowledged (8 × 4 = 32 with its defaults), so with default core limits every chunk
/// the node may have in flight toward one peer fits even one per batch, and the lane drops
/// only when the peer stops reading; a dropped chunk costs its transfer an election timeout
/// before it resumes. A lane batch is at most half a frame (2 MiB by default), so the queue
/// holds at most 64 MiB, and in practice what the core's windows let out (32 MiB with
/// 1 MiB chunks).
pub const DEFAULT_SNAPSHOT_QUEUE_BATCHES: usize = 32;

/// Default [`TransportLimits::write_coalesce_bytes`]: 64 KiB, a few dozen QUIC packets
/// gathered into one stream write.
pub const DEFAULT_WRITE_COALESCE_BYTES: usize = 64 << 10;

/// Default [`TransportLimits::idle_timeout`]: 10 s without any packet closes a connection,
/// so a dead peer is noticed and redialed well within a human's patience.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`TransportLimits::keep_alive_interval`]: 2 s, well under the idle timeout so
/// an idle but healthy connection (all groups quiesced) never times out.
pub const DEFAULT_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// Default [`TransportLimits::handshake_timeout`]: 5 s for dialing a peer, so a dial to a
/// silent address fails and backs off instead of waiting for the idle timeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default [`TransportLimits::initial_rtt`]: 50 ms, a round trip within a region. QUIC
/// sends a lost handshake packet again after about three times this guess (its first probe
/// timeout), doubling each time; quinn's own default, 333 ms (RFC 9002's for a path nothing
/// is known about), made a dial whose first packet was lost — the peer restarting, its
/// socket not bound yet — wait a second before trying again, and a peer back from a restart
/// stayed unreached that long. Peers farther apart than the guess cost a few spare
/// handshake packets until the first measurement replaces it.
pub const DEFAULT_INITIAL_RTT: Duration = Duration::from_millis(50);

/// Default [`TransportLimits::connection_receive_window`]: 24 MiB in flight per connection
/// (quinn's default is unbounded), enough for loopback and LAN bandwidth-delay products.
/// Six stream windows: the data and snapshot lanes (five by default), each full, still
/// leave the control lane a whole window of credit (see `connection_receive_window`).
pub const DEFAULT_CONNECTION_RECEIVE_WINDOW: u32 = 24 << 20;

/// Default [`TransportLimits::stream_receive_window`]: 4 MiB per lane, so one lane (the
/// snapshot lane in particular) can fill at most a sixth of the connection window.
pub const DEFAULT_STREAM_RECEIVE_WINDOW: u32 = 4 << 20;

/// Default [`TransportLimits::send_window`]: 24 MiB of unacknowledged data per connection,
/// as the connection window and for the same reason.
pub const DEFAULT_SEND_WINDOW: u64 = 24 << 20;

/// Default [`TransportLimits::max_concurrent_uni_streams`]: 8, the 6 default lanes (control,
/// snapshot and 4 data lanes) plus room for lanes reopened while their old streams are
/// still being retired. A peer opening
/// streams as fast as it can is held to this by QUIC flow control.
pub const DEFAULT_MAX_CONCURRENT_UNI_STREAMS: u32 = 8;

/// Default [`TransportLimits::max_incoming_handshakes`]: 64 inbound connection attempts
/// handshaken at once, and as many more waiting their turn; more are refused. A cluster's
/// peers dial each once per connection, so this is room for a cluster of dozens restarting
/// together, and what a flood of attempts (each held up to `handshake_timeout`) can cost.
pub const DEFAULT_MAX_INCOMING_HANDSHAKES: usize = 64;

/// Default [`TransportLimits::max_peers`]: 1,024 peer nodes with queues and tasks. At the
/// limit, a new peer takes the entry of one not connected now.
pub const DEFAULT_MAX_PEERS: usize = 1024;

/// Default [`TransportLimits::reconnect_backoff_min`]: 50 ms before the first redial.
pub const DEFAULT_RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Default [`TransportLimits::reconnect_backoff_max`]: redials back off to at most 5 s.
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Limits, windows and timeouts. Every field has a `DEFAULT_*` constant whose doc gives the
/// reason for its value.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportLimits {
    /// Frame limits enforced on every inbound frame (and respected outbound).
    pub frame: FrameLimits,
    /// Data lanes (unidirectional streams) per connection, chosen by group; two more lanes
    /// carry control traffic and snapshot chunks. A peer lets this node open only its own
    /// `max_concurrent_uni_streams`: a lane past that waits for the connection to close,
    /// and the groups on it send nothing (their batches count as `dropped_queue_full`).
    /// `bind` checks this node's own limits only, so a cluster raising `data_lanes` raises
    /// every node's `max_concurrent_uni_streams` first.
    pub data_lanes: usize,
    /// Batches queued per control or data lane per peer before
    /// [`send`](multiraft_core::Transport::send) drops new ones.
    pub lane_queue_batches: usize,
    /// Bytes of batches (`MessageBatch::size_bytes`) queued per peer on the data lanes
    /// together, and apart on the control lane, before
    /// [`send`](multiraft_core::Transport::send) drops new ones, counted as when a queue is
    /// full; a lane (the data lanes as one) with none queued still takes one batch of any
    /// size. Apart so that data lanes full for a peer that reads slowly never refuse its
    /// heartbeats and votes. The snapshot lane has its own bound
    /// (`snapshot_queue_batches`).
    pub max_queued_bytes: usize,
    /// Batches queued on the snapshot lane per peer before
    /// [`send`](multiraft_core::Transport::send) drops new ones.
    pub snapshot_queue_batches: usize,
    /// Bytes of frames gathered into one stream write.
    pub write_coalesce_bytes: usize,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval.
    pub keep_alive_interval: Duration,
    /// Handshake timeout, of dials and of inbound attempts alike.
    pub handshake_timeout: Duration,
    /// The round-trip time QUIC assumes until it has measured one: it sets how soon a
    /// lost handshake packet is sent again. Positive, and shorter than `handshake_timeout`.
    pub initial_rtt: Duration,
    /// QUIC connection-level receive window, bytes. At least `data_lanes + 2` stream
    /// windows: QUIC's connection credit is shared by every stream, and a stream's priority
    /// only orders data already buffered, so data and snapshot lanes that each fill their
    /// stream window must leave the control lane (heartbeats, votes, acknowledgements) a
    /// window of its own, or it waits behind bulk data for credit. That holds with one
    /// stream per lane and peers configured alike; a lane's old stream still unread while
    /// the lane reopens can take more.
    pub connection_receive_window: u32,
    /// QUIC per-stream receive window, bytes.
    pub stream_receive_window: u32,
    /// QUIC send window, bytes: shared by the streams as the connection window is, and
    /// bounded below by the same rule.
    pub send_window: u64,
    /// Unidirectional streams a peer may have open at once. Must exceed `data_lanes + 1`
    /// (every lane open at once: the data lanes, the control lane and the snapshot lane).
    pub max_concurrent_uni_streams: u32,
    /// Inbound handshakes run at once; as many more wait unaccepted, and further attempts
    /// are refused. Each is held at most `handshake_timeout`.
    pub max_incoming_handshakes: usize,
    /// Peer nodes this transport keeps queues and tasks for. A new peer beyond it takes the
    /// entry of one not connected now (whose queued batches are dropped); with every one
    /// connected, sends to it are dropped as unsendable.
    pub max_peers: usize,
    /// First redial delay.
    pub reconnect_backoff_min: Duration,
    /// Largest redial delay.
    pub reconnect_backoff_max: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            frame: FrameLimits::default(),
            data_lanes: DEFAULT_DATA_LANES,
            lane_queue_batches: DEFAULT_LANE_QUEUE_BATCHES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            snapshot_queue_batches: DEFAULT_SNAPSHOT_QUEUE_BATCHES,
            write_coalesce_bytes: DEFAULT_WRITE_COALESCE_BYTES,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keep_alive_interval: DEFAULT_KEEP_ALIVE_INTERVAL,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            initial_rtt: DEFAULT_INITIAL_RTT,
            connection_receive_window: DEFAULT_CONNECTION_RECEIVE_WINDOW,
            stream_receive_window: DEFAULT_STREAM_RECEIVE_WINDOW,
            send_window: DEFAULT_SEND_WINDOW,
            max_concurrent_uni_streams: DEFAULT_MAX_CONCURRENT_UNI_STREAMS,
            max_incoming_handshakes: DEFAULT_MAX_INCOMING_HANDSHAKES,
            max_peers: DEFAULT_MAX_PEERS,
            reconnect_backoff_min: DEFAULT_RECONNECT_BACKOFF_MIN,
            reconnect_backoff_max: DEFAULT_RECONNECT_BACKOFF_MAX,
        }
    }
}

/// Everything [`QuicTransport::bind`](crate::QuicTransport::bind) needs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QuicConfig {
    /// This node.
    pub node: NodeId,
    /// The UDP address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Cluster CA, this node's certificate and key.
    pub tls: TlsConfig,
    /// Where peer nodes listen. Must contain every peer with a *higher* node id (this node
    /// dials those); peers with lower ids dial this node. Updatable later with
    /// [`QuicTransport::set_peer_addr`](crate::QuicTransport::set_peer_addr).
    pub peers: HashMap<NodeId, SocketAddr>,
    /// Limits and timeouts.
    pub limits: TransportLimits,
}

impl QuicConfig {
    /// A configuration with no peers and default limits.
    pub fn new(node: NodeId, listen: SocketAddr, tls: TlsConfig) -> QuicConfig {
        QuicConfig {
            node,
            listen,
            tls,
            peers: HashMap::new(),
            limits: TransportLimits::default(),
        }
    }
}
