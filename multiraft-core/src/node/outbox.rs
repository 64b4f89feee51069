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
    /// The room each destination's `now` and `after` lists start with: what they held in
    /// the node's last ready ([`Outbox::counts`]). Grown by doubling instead, a busy ready's
    /// lists (a message per group) were copied into fresh memory a dozen times each, 2.6 %
    /// of the instructions and of the last-level cache misses per proposal at 4,096 busy
    /// groups (BENCHMARKS.md, "Outbox lists sized from the last ready").
    room: BTreeMap<NodeId, [usize; 2]>,
}

impl Outbox {
    /// An outbox whose lists start with `room` (as [`Outbox::counts`] gave it).
    pub(super) fn with_room(room: BTreeMap<NodeId, [usize; 2]>) -> Outbox {
        Outbox {
            room,
            ..Outbox::default()
        }
    }

    /// How many messages each destination's lists hold now: the room for the next
    /// outbox's. One entry per destination, so bounded by the peers.
    pub(super) fn counts(&self) -> BTreeMap<NodeId, [usize; 2]> {
        let mut counts: BTreeMap<NodeId, [usize; 2]> = BTreeMap::new();
        for (list, messages) in [&self.now, &self.after].into_iter().enumerate() {
            for (to, m) in messages {
                counts.entry(*to).or_default()[list] = m.len();
            }
        }
        counts
    }

    /// A new list for `to`'s messages (`list` 0: now, 1: after), with the room of
    /// [`Outbox::room`].
    fn list(room: &BTreeMap<NodeId, [usize; 2]>, to: NodeId, list: usize) -> Vec<Message> {
        Vec::with_capacity(room.get(&to).map_or(0, |r| r[list]))
    }

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
            _ => {
                let room = &self.room;
                let list = self
                    .now
                    .entry(m.to)
                    .or_insert_with(|| Self::list(room, m.to, 0));
                list.push(m);
            }
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
            _ => {
                let room = &self.room;
                let list = self
                    .after
                    .entry(m.to)
                    .or_insert_with(|| Self::list(room, m.to, 1));
                list.push(m);
            }
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
