//! A QUIC transport for multiraft nodes: [`QuicTransport`] implements
//! [`multiraft_core::Transport`] on quinn 0.11 and rustls 0.23 (ring provider).
//!
//! - **One connection per peer node**, the lower node id dials; redial with capped
//!   exponential backoff and jitter.
//! - **Lanes**: a few long-lived unidirectional streams per connection, each with its own
//!   bounded queue: one for control traffic (votes, heartbeats, responses) at a higher
//!   priority, data lanes for appends chosen by group, and one for snapshot chunks at the
//!   lowest priority, so heartbeats never wait behind bulk data and appends never wait
//!   behind a snapshot transfer.
//! - **Frames** ([`frame`]): versioned, length-prefixed postcard [`MessageBatch`]es, length
//!   checked before allocating, trailing bytes rejected, contents validated.
//! - **Mutual TLS** ([`tls`]): a cluster CA, TLS 1.3 only, ALPN `multiraft/1`, no 0-RTT;
//!   each certificate names `node-<id>.<cluster>.multiraft`; every inbound batch's sender
//!   must be the node its peer's certificate names, or the connection is closed.
//! - **Limits** ([`config`]): windows, stream counts, queues, timeouts — all explicit.
//! - **Development certificates** (`dev`, behind the `dev-certs` feature): an rcgen CA for
//!   tests and demos.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use multiraft_core::NodeId;
//! use multiraft_transport_quic::{QuicConfig, QuicTransport, dev::DevCa, tls::ClusterId};
//!
//! let ca = DevCa::new(ClusterId::new("demo")?)?;
//! let mut config = QuicConfig::new(NodeId(1), "127.0.0.1:7001".parse()?, ca.tls_config(NodeId(1))?);
//! config.peers.insert(NodeId(2), "127.0.0.1:7002".parse()?);
//! let transport = QuicTransport::bind(config)?;
//! // MultiRaft::builder(NodeId(1), raft_config).transport(transport.clone())...
//! # Ok(()) }
//! ```
//!
//! # Design notes
//!
//! - *Dial rule instead of dial races.* Resolving simultaneous dials needs both sides to
//!   agree on which connection survives; making the lower id the only dialer avoids the race
//!   altogether. The cost: a node must have every higher-id peer in its address book, and a
//!   partition in which only the higher id can reach the lower leaves the pair disconnected.
//! - *Drop, do not block.* The core's [`Transport::send`](multiraft_core::Transport::send)
//!   must not block and Raft repairs loss, so every queue drops (and counts) when full, and
//!   the receiver uses [`Inbox::deliver`](multiraft_core::Inbox::deliver), never
//!   backpressure: a slow node cannot stall a peer's event loop.
//! - *One message, one frame.* The transport splits a batch between messages, never inside
//!   one, so a single message must fit in `max_frame_bytes` (4 MiB by default) or it is
//!   dropped as unsendable and counted. The core's appends are bounded by its
//!   `max_append_bytes`; a coalesced `Heartbeats` message grows with the number of groups
//!   (about 10 bytes per beat), and the node layer splits it at
//!   `MAX_BEATS_PER_MESSAGE` (65,536) beats. The core's `max_proposal_bytes`,
//!   `max_append_bytes` and `snapshot_chunk_bytes` must stay under the frame limit, with
//!   room for a message's framing, or their messages never leave.
//! - *Stateless reset keys* are derived from the node's private key, so a node restarted
//!   after a crash is noticed by its peers at their next packet instead of their idle timeout.
//! - *Reordering across lanes.* Messages of one group on different lanes (an append and its
//!   commit-only heartbeat, a snapshot chunk and a heartbeat) can overtake each other. Raft
//!   tolerates reordering; messages of one group on one lane keep their order, so a
//!   transfer's chunks arrive in order.
//! - *One snapshot lane per connection.* Transfers to the same peer share it in turn
//!   rather than each opening a stream: the core already bounds them
//!   (`max_snapshot_sends`, `snapshot_window_chunks`), and at the lowest priority a second
//!   stream would only compete with the first for what the other lanes leave.

pub mod config;
#[cfg(feature = "dev-certs")]
pub mod dev;
pub mod frame;
pub mod metrics;
pub mod tls;
mod transport;

pub use config::{QuicConfig, TransportLimits};
pub use transport::{
    BindError, CLOSE_IDENTITY, CLOSE_NO_CAPACITY, CLOSE_PROTOCOL, CLOSE_REPLACED, CLOSE_SHUTDOWN,
    CLOSE_WRONG_DIALER, CLOSE_WRONG_SENDER, CONTROL_LANE, QuicTransport, SNAPSHOT_LANE,
    TransportStats,
};

#[doc(no_inline)]
pub use multiraft_core::MessageBatch;
