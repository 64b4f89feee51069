//! The metrics the transport records, through the [`metrics`] facade (no recorder is
//! installed by the library; with none, recording is a no-op), next to the counters of
//! [`TransportStats`](crate::TransportStats). Every series carries the label `node` (this
//! node's id, decimal); per-peer ones carry `peer` too. Handles are registered once per
//! transport, peer or connection, never per message.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | [`MESSAGES_SENT_TOTAL`] | counter | `node`, `peer` | messages written to a stream |
//! | [`BYTES_SENT_TOTAL`] | counter | `node`, `peer` | bytes written to streams |
//! | [`BYTES_RECEIVED_TOTAL`] | counter | `node`, `peer` | bytes of valid frames received |
//! | [`DROPPED_TOTAL`] | counter | `node`, `reason` | batches dropped |
//! | [`SNAPSHOT_DROPPED_TOTAL`] | counter | `node` | of those, snapshot-lane batches |

use ::metrics::{Counter, counter};
use multiraft_core::NodeId;

/// Counter: messages written to a stream to `peer` (in frames that were written whole).
pub const MESSAGES_SENT_TOTAL: &str = "multiraft_transport_messages_sent_total";
/// Counter: bytes (frames with their headers) written to streams to `peer`.
pub const BYTES_SENT_TOTAL: &str = "multiraft_transport_bytes_sent_total";
/// Counter: bytes (frames with their headers) of valid frames received from `peer`.
pub const BYTES_RECEIVED_TOTAL: &str = "multiraft_transport_bytes_received_total";
/// Counter: batches or lane batches dropped, labelled `reason`: `queue_full`,
/// `unconnected`, `write_error`, `unsendable` (outbound) or `inbound` (a received batch the
/// inbox refused) — the `dropped_*` and `inbound_dropped` counters of
/// [`TransportStats`](crate::TransportStats).
pub const DROPPED_TOTAL: &str = "multiraft_transport_dropped_total";
/// Counter: lane batches of the snapshot lane dropped, whatever the reason (each is also
/// counted in [`DROPPED_TOTAL`] under its reason) — the `dropped_snapshot` counter of
/// [`TransportStats`](crate::TransportStats). Each costs its snapshot transfer a pause
/// until the core resends.
pub const SNAPSHOT_DROPPED_TOTAL: &str = "multiraft_transport_snapshot_dropped_total";

/// The transport's drop counters, one per reason.
pub(crate) struct Dropped {
    pub(crate) queue_full: Counter,
    pub(crate) unconnected: Counter,
    pub(crate) write_error: Counter,
    pub(crate) unsendable: Counter,
    pub(crate) inbound: Counter,
    /// Snapshot-lane batches among the outbound drops.
    pub(crate) snapshot: Counter,
}

impl Dropped {
    pub(crate) fn new(node: NodeId) -> Dropped {
        let c = |reason: &'static str| counter!(DROPPED_TOTAL, "node" => node.0.to_string(), "reason" => reason);
        Dropped {
            queue_full: c("queue_full"),
            unconnected: c("unconnected"),
            write_error: c("write_error"),
            unsendable: c("unsendable"),
            inbound: c("inbound"),
            snapshot: counter!(SNAPSHOT_DROPPED_TOTAL, "node" => node.0.to_string()),
        }
    }
}

/// What is sent to one peer.
#[derive(Clone)]
pub(crate) struct Sent {
    pub(crate) messages: Counter,
    pub(crate) bytes: Counter,
}

impl Sent {
    pub(crate) fn new(node: NodeId, peer: NodeId) -> Sent {
        let (n, p) = (node.0.to_string(), peer.0.to_string());
        Sent {
            messages: counter!(MESSAGES_SENT_TOTAL, "node" => n.clone(), "peer" => p.clone()),
            bytes: counter!(BYTES_SENT_TOTAL, "node" => n, "peer" => p),
        }
    }
}

/// Bytes received from `peer`.
pub(crate) fn received(node: NodeId, peer: NodeId) -> Counter {
    let (n, p) = (node.0.to_string(), peer.0.to_string());
    counter!(BYTES_RECEIVED_TOTAL, "node" => n, "peer" => p)
}
