//! The send lanes: which lane a message travels on, and the writer task that drains a lane's
//! queue into its stream.

use std::sync::Arc;

use multiraft_core::{Message, MessageBatch, MessageBody};
use quinn::{Connection, SendStream};
use tokio::sync::{mpsc, watch};

use crate::frame;

use super::{CONTROL_LANE, Inner, bump, live};

/// Which lane a message travels on.
pub(super) fn lane_of(m: &Message, data_lanes: usize) -> usize {
    match m.body {
        MessageBody::Append { .. } | MessageBody::Propose { .. } => {
            let h = m.group.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            1 + (h % data_lanes as u64) as usize
        }
        _ => CONTROL_LANE,
    }
}

pub(super) async fn lane_writer(
    inner: Arc<Inner>,
    lane: usize,
    mut rx: mpsc::Receiver<MessageBatch>,
    conn_rx: watch::Receiver<Option<Connection>>,
    sent: crate::metrics::Sent,
) {
    let limits = inner.limits.frame;
    let coalesce = inner.limits.write_coalesce_bytes;
    let mut stream: Option<(usize, SendStream)> = None;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(first) = rx.recv().await {
        let Some(conn) = live(&conn_rx.borrow()) else {
            bump(&inner.stats.dropped_unconnected, 1);
            inner.dropped.unconnected.increment(1);
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
                    bump(&inner.stats.dropped_unsendable, 1);
                    inner.dropped.unsendable.increment(1);
                    tracing::warn!(node = %inner.node, error = %e, "dropping unsendable batch");
                }
            }
            if buf.len() < coalesce {
                next = rx.try_recv().ok();
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
                    if lane == CONTROL_LANE {
                        let _ = s.set_priority(1);
                    }
                    stream = Some((conn.stable_id(), s));
                }
                Err(_) => {
                    bump(&inner.stats.dropped_write_error, frames);
                    inner.dropped.write_error.increment(frames);
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
                bump(&inner.stats.dropped_write_error, frames);
                inner.dropped.write_error.increment(frames);
            }
        }
        if buf.capacity() > 4 * coalesce.max(limits.max_frame_bytes as usize) {
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

    #[test]
    fn control_traffic_has_its_own_lane_and_groups_spread() {
        let m = |group, body| Message {
            group: GroupId(group),
            from: NodeId(1),
            to: NodeId(2),
            term: 1,
            body,
        };
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
                entries: vec![],
                commit: 0,
            };
            let lane = lane_of(&m(g, append), 4);
            assert!((1..=4).contains(&lane));
            used.insert(lane);
        }
        assert_eq!(used.len(), 4);
    }
}
