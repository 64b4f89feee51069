//! Messages of one cycle sorted by destination node, with every group's heartbeats and
//! their acknowledgements coalesced into one message per destination (docs/design.md §4).

use std::collections::BTreeMap;

use crate::ids::{GroupId, NodeId};
use crate::message::{Ack, Beat, Liveness, Message, MessageBatch, MessageBody};

use super::MAX_BEATS_PER_MESSAGE;

/// Messages being sorted by destination, with heartbeats and their acknowledgements
/// coalesced into one message per destination node.
#[derive(Default)]
pub(super) struct Outbox {
    now: BTreeMap<NodeId, Vec<Message>>,
    after: BTreeMap<NodeId, Vec<Message>>,
    beats: BTreeMap<NodeId, Vec<Beat>>,
    acks: BTreeMap<NodeId, Vec<Ack>>,
}

impl Outbox {
    /// Owes `to` a coalesced heartbeat message even if no group beats there: the node
    /// liveness beat.
    pub(super) fn liveness_beat(&mut self, to: NodeId) {
        self.beats.entry(to).or_default();
    }

    /// A message of group `id` that may leave at once.
    pub(super) fn now(&mut self, id: GroupId, m: Message) {
        match m.body {
            MessageBody::Heartbeat { commit, .. } | MessageBody::Quiesce { commit, .. } => {
                let quiesce = matches!(m.body, MessageBody::Quiesce { .. });
                self.beats.entry(m.to).or_default().push(Beat {
                    group: id,
                    term: m.term,
                    commit,
                    quiesce,
                });
            }
            _ => self.now.entry(m.to).or_default().push(m),
        }
    }

    /// A message of group `id` that must wait for the write.
    pub(super) fn after(&mut self, id: GroupId, m: Message) {
        match m.body {
            MessageBody::HeartbeatResponse { round } => {
                self.acks.entry(m.to).or_default().push(Ack {
                    group: id,
                    term: m.term,
                    round,
                })
            }
            _ => self.after.entry(m.to).or_default().push(m),
        }
    }

    /// One batch per destination: (send now, send after the write). `liveness` gives the
    /// node-level part of the heartbeat message to each destination: every beat in it
    /// travels in that round.
    pub(super) fn finish(
        mut self,
        from: NodeId,
        liveness: impl Fn(NodeId) -> Liveness,
    ) -> (Vec<MessageBatch>, Vec<MessageBatch>) {
        let node_message = |to: NodeId, body: MessageBody| Message {
            group: GroupId::NODE,
            from,
            to,
            term: 0,
            body,
        };
        for (to, mut beats) in std::mem::take(&mut self.beats) {
            // First in its batch: liveness and commit indexes never wait behind appends.
            let batch = self.now.entry(to).or_default();
            let mut position = 0;
            loop {
                let rest = beats.split_off(beats.len().min(MAX_BEATS_PER_MESSAGE));
                let liveness = Box::new(liveness(to));
                let m = node_message(to, MessageBody::Heartbeats { beats, liveness });
                batch.insert(position, m);
                position += 1;
                if rest.is_empty() {
                    break;
                }
                beats = rest;
            }
        }
        for (to, mut acks) in std::mem::take(&mut self.acks) {
            while !acks.is_empty() {
                let rest = acks.split_off(acks.len().min(MAX_BEATS_PER_MESSAGE));
                let m = node_message(to, MessageBody::HeartbeatAcks { acks });
                self.after.entry(to).or_default().push(m);
                acks = rest;
            }
        }
        let pack = |map: BTreeMap<NodeId, Vec<Message>>| {
            map.into_iter()
                .map(|(to, messages)| MessageBatch { from, to, messages })
                .collect()
        };
        (pack(self.now), pack(self.after))
    }
}
