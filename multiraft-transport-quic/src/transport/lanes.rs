//! The send lanes: which lane a message travels on, and the writer task that drains a lane's
//! queue into its stream at the lane's priority.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use multiraft_core::{Message, MessageBatch, MessageBody};
use quinn::{Connection, SendStream};
use tokio::sync::{mpsc, watch};

use crate::frame;

use super::{CONTROL_LANE, DropReason, Inner, SNAPSHOT_LANE, bump, live};

/// The first data lane; data lanes are `FIRST_DATA_LANE..FIRST_DATA_LANE + data_lanes`.
const FIRST_DATA_LANE: usize = SNAPSHOT_LANE + 1;

/// Which lane a message travels on: snapshot chunks on the snapshot lane, appends and
/// forwarded proposals on a data lane chosen by group, the rest on the control lane.
pub(super) fn lane_of(m: &Message, data_lanes: usize) -> usize {
    match m.body {
        MessageBody::InstallSnapshot { .. } => SNAPSHOT_LANE,
        MessageBody::Append { .. } | MessageBody::Propose { .. } => {
            let h = m.group.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            FIRST_DATA_LANE + (h % data_lanes as u64) as usize
        }
        _ => CONTROL_LANE,
    }
}

/// A lane's QUIC stream priority (higher goes first; quinn's default is 0): control above
/// the data lanes, snapshot chunks below them.
fn priority(lane: usize) -> i32 {
    match lane {
        CONTROL_LANE => 1,
        SNAPSHOT_LANE => -1,
        _ => 0,
    }
}

/// A lane's queue, as its writer sees it: the batches, and the peer's count of bytes
/// queued, which a batch leaves as it is dequeued.
pub(super) struct LaneQueue {
    pub(super) rx: mpsc::Receiver<(MessageBatch, usize)>,
    pub(super) queued: Arc<AtomicUsize>,
}

impl LaneQueue {
    /// Dequeues a batch, taking its bytes off the peer's count.
    fn dequeued(&self, (batch, bytes): (MessageBatch, usize)) -> MessageBatch {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
        batch
    }

    async fn recv(&mut self) -> Option<MessageBatch> {
        let item = self.rx.recv().await?;
        Some(self.dequeued(item))
    }

    fn try_recv(&mut self) -> Option<MessageBatch> {
        let item = self.rx.try_recv().ok()?;
        Some(self.dequeued(item))
    }
}

pub(super) async fn lane_writer(
    inner: Arc<Inner>,
    lane: usize,
    mut rx: LaneQueue,
    conn_rx: watch::Receiver<Option<Connection>>,
    sent: crate::metrics::Sent,
) {
    let limits = inner.limits.frame;
    let coalesce = inner.limits.write_coalesce_bytes;
    let mut stream: Option<(usize, SendStream)> = None;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(first) = rx.recv().await {
        let Some(conn) = live(&conn_rx.borrow()) else {
            inner.drop_on(lane, DropReason::Unconnected, 1);
            continue;
        };
        buf.clear();
        let (mut frames, mut messages) = (0u64, 0u64);
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            match frame::encode(&batch, &limits, &mut buf) {
                Ok(()) => {
                    frames += 1;
                    messages += batch.messages.len() as u64;
                }
                Err(e) => {
                    inner.drop_on(lane, DropReason::Unsendable, 1);
                    tracing::warn!(node = %inner.node, error = %e, "dropping unsendable batch");
                }
            }
            if buf.len() < coalesce {
                next = rx.try_recv();
            }
        }
        if frames == 0 {
            continue;
        }
        if stream
            .as_ref()
            .is_none_or(|(id, _)| *id != conn.stable_id())
        {
            stream = None;
            match conn.open_uni().await {
                Ok(s) => {
                    let _ = s.set_priority(priority(lane));
                    stream = Some((conn.stable_id(), s));
                }
                Err(_) => {
                    inner.drop_on(lane, DropReason::WriteError, frames);
                    continue;
                }
            }
        }
        let Some((_, s)) = stream.as_mut() else {
            continue;
        };
        match s.write_all(&buf).await {
            Ok(()) => {
                bump(&inner.stats.frames_sent, frames);
                bump(&inner.stats.bytes_sent, buf.len() as u64);
                sent.messages.increment(messages);
                sent.bytes.increment(buf.len() as u64);
            }
            Err(_) => {
                stream = None;
                inner.drop_on(lane, DropReason::WriteError, frames);
            }
        }
        if buf.capacity()
            > coalesce
                .max(limits.max_frame_bytes as usize)
                .saturating_mul(4)
        {
            buf = Vec::new();
        }
    }
    if let Some((_, mut s)) = stream {
        let _ = s.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiraft_core::{GroupId, NodeId};

    /// A message of `group` from node 1 to node 2.
    fn m(group: u64, body: MessageBody) -> Message {
        Message {
            group: GroupId(group),
            from: NodeId(1),
            to: NodeId(2),
            term: 1,
            body,
        }
    }

    #[test]
    fn control_traffic_has_its_own_lane_and_groups_spread() {
        assert_eq!(
            lane_of(
                &m(
                    1,
                    MessageBody::Heartbeat {
                        commit: 0,
                        round: 0
                    }
                ),
                4
            ),
            CONTROL_LANE
        );
        assert_eq!(
            lane_of(&m(1, MessageBody::HeartbeatResponse { round: 0 }), 4),
            CONTROL_LANE
        );
        let mut used = std::collections::BTreeSet::new();
        for g in 0..64 {
            let append = MessageBody::Append {
                prev_index: 0,
                prev_term: 0,
                entries: vec![].into(),
                commit: 0,
            };
            let lane = lane_of(&m(g, append), 4);
            assert!((FIRST_DATA_LANE..FIRST_DATA_LANE + 4).contains(&lane));
            used.insert(lane);
        }
        assert_eq!(used.len(), 4);
    }

    #[test]
    fn snapshot_chunks_and_only_they_take_the_snapshot_lane_at_the_lowest_priority() {
        for g in 0..64 {
            let chunk = MessageBody::InstallSnapshot {
                chunk: Box::default(),
            };
            assert_eq!(lane_of(&m(g, chunk), 4), SNAPSHOT_LANE);
        }
        let ack = MessageBody::SnapshotAck(multiraft_core::SnapshotAck {
            index: 5,
            next: 1,
            done: false,
            refused: false,
            gap: false,
        });
        assert_eq!(
            lane_of(&m(1, ack), 4),
            CONTROL_LANE,
            "acks are control traffic"
        );
        assert!(priority(CONTROL_LANE) > priority(FIRST_DATA_LANE));
        assert!(priority(FIRST_DATA_LANE) > priority(SNAPSHOT_LANE));
    }
}
