//! The outputs of one cycle of the node — [`Ready`] — how they are collected from every
//! group with work, and how their write is acknowledged ([`Node::advance`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::entries::Entries;
use crate::entry::{Entry, Payload};
use crate::group::{GroupEvent, ReplicaReady};
use crate::ids::{GroupId, NodeId, RequestId};
use crate::message::MessageBatch;
use crate::storage::{GroupWrite, WriteBatch};

use super::outbox::Outbox;
use super::snapshots::{ChunkRead, Restore, TakeSnapshot};
use super::{Node, Outcome, Resolution, warm};
use crate::error::TransferError;
use crate::membership::Membership;
use crate::snapshot::SnapshotMeta;

/// Something that happened on the node, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A group's known leader or term changed (reported on followers too).
    LeaderChanged {
        /// The group.
        group: GroupId,
        /// Its current term.
        term: u64,
        /// The leader of `term`, if known.
        leader: Option<NodeId>,
    },
    /// The group was created on this node and its creation is durable.
    GroupCreated {
        /// The group.
        group: GroupId,
    },
    /// The group was removed from this node.
    GroupRemoved {
        /// The group.
        group: GroupId,
    },
    /// The membership in force for a group changed on this replica: an entry was appended
    /// or truncated, or a snapshot brought one (dissertation §4.1: in force when appended).
    MembershipChanged {
        /// The group.
        group: GroupId,
        /// The membership now in force.
        membership: Membership,
    },
    /// This node's replica of the group was removed from it (the leader said so once the
    /// replica held the committed membership that left it out, or the replica led and
    /// stepped down): the application may delete it with `remove_group`. Reported once; a
    /// replica that restarts before it is deleted is not told again. An application whose
    /// subscriber may lag (events are best effort) finds the same in
    /// [`GroupStatus::removed`](crate::GroupStatus::removed) while the node runs, and after
    /// a restart in the group's membership, which no longer names this node.
    ReplicaRemoved {
        /// The group.
        group: GroupId,
    },
}

/// Committed entries of one group, in order, to apply. A ready may hold several for one
/// group, in log order (one per run of the log they are in: shared, not copied).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Apply {
    /// The group.
    pub group: GroupId,
    /// The entries, consecutive; shared with the group's log.
    pub entries: Entries,
    /// The local requests these entries resolve, as (entry index, request), in index
    /// order: the application answers each with the state machine's result for that entry.
    pub requests: Vec<(u64, RequestId)>,
}

impl Apply {
    /// The commands to hand the state machine, in log order: (index, command, the local
    /// request whose answer is the state machine's result for it). No-op entries are left
    /// out: they carry nothing for the application.
    pub fn commands(&self) -> impl Iterator<Item = (u64, &Bytes, Option<RequestId>)> + '_ {
        let mut requests = self.requests.iter().peekable();
        self.entries.iter().filter_map(move |e| match &e.payload {
            Payload::Command { data, .. } => {
                let request = requests.next_if(|(index, _)| *index == e.index);
                Some((e.index, data, request.map(|(_, r)| *r)))
            }
            _ => None,
        })
    }
}

/// A read whose read point this node's state machine of `group` has reached with the
/// applies of the same ready: serve it (run the query) after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadPoint {
    /// The read, as [`Node::read`] returned it.
    pub request: RequestId,
    /// Its group.
    pub group: GroupId,
    /// The read index: the state machine has applied at least this far.
    pub index: u64,
}

/// The outputs of one cycle of the node. See the [module docs](super) for what to do with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ready {
    /// Strictly increasing; pass it to [`Node::advance`].
    pub number: u64,
    /// Everything to persist, for every group, as one write.
    pub write: WriteBatch,
    /// One batch per destination node, to send at once.
    pub send_now: Vec<MessageBatch>,
    /// One batch per destination node, to send only after `write` is durable.
    pub send_after_write: Vec<MessageBatch>,
    /// Committed entries to apply, per group, each group's in log order (a group may have
    /// several [`Apply`], one per run of its log).
    pub apply: Vec<Apply>,
    /// Reads to serve once `apply` is applied (they need not wait for the write).
    pub reads: Vec<ReadPoint>,
    /// Requests that ended other than by their entry being applied, to report once `write`
    /// is durable.
    pub outcomes: Vec<Outcome>,
    /// Events, to publish once `write` is durable.
    pub events: Vec<Event>,
    /// Snapshots to take of state machines, right after `apply` (docs/design.md §4.6).
    pub snapshots: Vec<TakeSnapshot>,
    /// Snapshot chunks to read from storage for transfers to followers; at once.
    pub chunk_reads: Vec<ChunkRead>,
    /// State machines to restore from their stored snapshot, once `write` is durable.
    pub restores: Vec<Restore>,
}

impl Ready {
    /// Whether the ready holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.write.is_empty()
            && self.send_now.is_empty()
            && self.send_after_write.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && self.outcomes.is_empty()
            && self.events.is_empty()
            && self.snapshots.is_empty()
            && self.chunk_reads.is_empty()
            && self.restores.is_empty()
    }
}

/// The write of one ready, awaiting [`Node::advance`].
#[derive(Debug)]
pub(super) struct InFlight {
    number: u64,
    /// Per group: the last entry written (index, term).
    persisted: Vec<(GroupId, u64, u64)>,
    /// Snapshots this node built that the write completes.
    built: Vec<(GroupId, SnapshotMeta)>,
}

impl Node {
    /// Whether there may be work for [`Node::ready`] (it can still return `None` when the
    /// queued groups turn out to have nothing to output).
    pub fn has_ready(&self) -> bool {
        self.in_flight.is_none()
            && (self.beat_due
                || !self.dirty.is_empty()
                || !self.lifecycle.is_empty()
                || !self.events.is_empty()
                || self
                    .snapshots
                    .has_output(self.config.max_snapshots_building)
                || self.requests.has_ended()
                || !self.unhosted.is_empty()
                || !self.nudges.is_empty())
    }

    /// Collects the outputs of every group with work, within the per-ready limits
    /// (`max_ready_groups`, `max_ready_entries`, `max_ready_bytes`). Returns `None` when
    /// there is nothing to do or the previous ready is not yet advanced.
    pub fn ready(&mut self) -> Option<Ready> {
        if !self.has_ready() {
            return None;
        }
        // A send slot given back since (a transfer ended) goes to the next transfer now.
        self.offer_send_slots();
        self.last_number += 1;
        let mut ready = Ready {
            number: self.last_number,
            ..Default::default()
        };
        ready.write.groups = std::mem::take(&mut self.lifecycle).into_values().collect();
        self.requests.lifecycle_written();
        // Where each group's record is. A group created in this cycle already has one, and
        // its output must be merged into it: `WriteBatch` holds each group at most once, in
        // no particular order, so a second record (say, a vote) could be applied before the
        // creation's default hard state and be lost.
        // Only groups with a lifecycle record can meet a second one (a group is drained once
        // per ready with new writes), so only those are indexed.
        let record_of: HashMap<GroupId, usize> = ready
            .write
            .groups
            .iter()
            .enumerate()
            .map(|(i, w)| (w.group, i))
            .collect();
        ready.events = std::mem::take(&mut self.events);
        // Sized once for the groups queued (each gives at most one of each), rather than
        // grown by doubling every ready.
        let queued = self.dirty.len().min(self.config.max_ready_groups);
        let mut persisted = Vec::with_capacity(queued);
        ready.write.groups.reserve(queued);
        ready.apply.reserve(queued);
        // Ordered: the requests these changes end are reported in its order, and a
        // `HashMap`'s differs between instances (the core must replay from its inputs).
        let mut leadership_changed: BTreeMap<GroupId, Option<(u64, Option<NodeId>)>> =
            BTreeMap::new();
        let mut outbox = self.outbox();
        let round = self.next_round();
        // The groups with input since the last `take_sends`: this ready serves them, unless
        // it stops at its limits first (below).
        let mut since_sends = std::mem::take(&mut self.since_sends);
        let mut stopped = false;
        let (mut groups, mut entries, mut bytes) = (0usize, 0usize, 0usize);
        // The write's entries and bytes, for the storage metrics: counted here, where the
        // entries are in hand, rather than in another pass over the whole write.
        let mut written = (0usize, 0usize);
        let mut applied = 0;
        let cfg = Arc::clone(&self.config);
        let mut visited = 0usize;
        while let Some(id) = self.dirty.pop_front() {
            if visited.is_multiple_of(warm::AHEAD) {
                let ahead = std::iter::once(id).chain(self.dirty.iter().copied());
                warm::replicas(&self.groups, ahead);
            }
            visited += 1;
            let over = groups >= cfg.max_ready_groups
                || entries >= cfg.max_ready_entries
                || bytes >= cfg.max_ready_bytes;
            if over && groups > 0 {
                self.dirty.push_front(id);
                stopped = true;
                break;
            }
            let Some(slot) = self.groups.get_mut(&id) else {
                continue; // removed since it was queued
            };
            groups += 1;
            // Served: out of `since_sends` at the end of this ready, unless it is marked
            // again meanwhile, or stops (then `since_sends` is judged below).
            slot.sending = false;
            // `rare`: the group wrote outputs other than a busy cycle's; only then are
            // they looked at (`ReplicaReady`'s layout says why).
            let (mut out, rare) = slot.group.take_ready(
                round,
                cfg.max_ready_entries.saturating_sub(entries).max(1),
                cfg.max_ready_bytes.saturating_sub(bytes).max(1),
            );
            if slot.group.has_ready() {
                self.dirty.push_back(id);
            } else {
                slot.queued = false;
            }
            // Only a rare output: a quiesced leader's read round marks its buffer so
            // (`send_read_beats`), and no busy group pays for the look (at 16,384 busy
            // groups every field a ready reads can be a cache miss; BENCHMARKS.md).
            if rare && slot.group.awaits_read_round() {
                self.quiet_reads.insert(id);
            }
            let (count, size) = (out.entries.iter()).fold((0, 0), |(count, size), e| {
                (count + 1, size + e.size_bytes())
            });
            written = (written.0 + count, written.1 + size);
            (entries, bytes) = (entries + count, bytes + size);
            for e in out.apply.iter().flat_map(|r| r.iter()) {
                entries += 1;
                bytes += e.size_bytes();
            }
            if let Some(last) = out.entries.last() {
                persisted.push((id, last.index, last.term));
            }
            let rare_write = rare
                && (!out.snapshot_chunks.is_empty()
                    || out.log_reset.is_some()
                    || out.compact_to.is_some()
                    || out.joined.is_some());
            if out.hard_state.is_some() || !out.entries.is_empty() || rare_write {
                let record = match record_of.get(&id) {
                    Some(&i) => &mut ready.write.groups[i],
                    None => {
                        ready.write.groups.push(GroupWrite::new(id));
                        let last = ready.write.groups.len() - 1;
                        &mut ready.write.groups[last]
                    }
                };
                if out.hard_state.is_some() {
                    record.hard_state = out.hard_state.take();
                }
                // The runs moved, not copied (into an empty record: the common case).
                let runs = std::mem::take(&mut out.entries).into_runs();
                record.entries.extend(runs);
                if rare_write {
                    let received: usize = out.snapshot_chunks.iter().map(|c| c.data.len()).sum();
                    self.metrics.snapshot_received.increment(received as u64);
                    written.1 += received;
                    record.snapshot = std::mem::take(&mut out.snapshot_chunks);
                    record.log_reset = out.log_reset.take();
                    record.compact_to = out.compact_to.take();
                    if out.joined.is_some() {
                        record.membership = out.joined.take();
                    }
                }
            }
            if rare {
                self.take_snapshot_work(id, &mut out, &mut ready);
                self.remember_untold(id, &mut out.forgotten);
            }
            if !out.apply.is_empty() {
                self.queue_snapshot(id);
            }
            for m in out.send_now.drain(..) {
                outbox.now(id, m);
            }
            for m in out.send_after_write.drain(..) {
                outbox.after(id, m);
            }
            for run in out.apply.drain(..) {
                let requests = self.resolve_applied(id, &run);
                if let Some(last) = run.last() {
                    self.requests.settle(id, last.term);
                }
                applied += requests.len();
                ready.apply.push(Apply {
                    group: id,
                    entries: run,
                    requests,
                });
            }
            for (read, index) in out.reads.drain(..) {
                let request = RequestId(read);
                if self.requests.read_served(request) {
                    ready.reads.push(ReadPoint {
                        request,
                        group: id,
                        index,
                    });
                }
            }
            let membership_changed = rare
                && self.take_ends_and_events(id, &mut out, &mut ready, &mut leadership_changed);
            if membership_changed {
                self.rehost(id);
            }
            if let Some(slot) = self.groups.get_mut(&id) {
                slot.group.recycle_taken(out, rare);
            }
        }
        // Those of them this ready left for the next may have appends to send while its
        // write is in flight: `take_sends` looks at them still (review: forgotten, they
        // sent nothing until the write ended). Only those with input since the last
        // `take_sends`, not every group left: that one looked at the others already.
        if stopped {
            // Once each (a group served above and marked again since is in both lists),
            // and only those still queued, whose flag stays set.
            since_sends.sort_unstable();
            since_sends.dedup();
            since_sends.retain(|id| {
                self.groups.get_mut(id).is_some_and(|s| {
                    s.sending = s.queued;
                    s.queued
                })
            });
        } else {
            since_sends.clear();
        }
        since_sends.append(&mut self.since_sends);
        self.since_sends = since_sends;
        if !leadership_changed.is_empty() {
            // Judged against each group's state now, which may be newer than its events.
            for (group, now) in leadership_changed.iter_mut() {
                *now = self.groups.get(group).map(|s| s.group.leadership());
            }
            let groups = &self.groups;
            let applied_term = |g| groups.get(&g).map_or(0, |s| s.group.applied_term());
            self.requests
                .leadership_changed(&leadership_changed, self.id, applied_term);
        }
        ready.outcomes = self.requests.take_ended();
        self.requests.count_applied(applied);
        self.metrics
            .set_groups(self.groups.len(), self.active.len());
        let built = self.write_built_chunks(&mut ready.write, &mut written.1);
        if !ready.write.is_empty() {
            self.metrics.write_entries.record(written.0 as f64);
            self.metrics.write_bytes.record(written.1 as f64);
        }
        ready.snapshots = self.snapshots_to_take();
        for m in self.snapshots.take_refusals() {
            outbox.now(m.group, m);
        }
        for m in std::mem::take(&mut self.unhosted) {
            outbox.now(m.group, m);
        }
        for m in std::mem::take(&mut self.nudges) {
            outbox.now(m.group, m);
        }
        (ready.send_now, ready.send_after_write) = outbox.finish(self.id, self.liveness(round));
        if ready.is_empty() {
            // The dirty groups had nothing after all (say, an acknowledgement that moved
            // nothing): no ready, so the caller does not pay for an empty cycle.
            self.last_number -= 1;
            return None;
        }
        self.in_flight = Some(InFlight {
            number: ready.number,
            persisted,
            built,
        });
        Some(ready)
    }

    /// A group's snapshot work from its marked outputs (`ReplicaReady`'s layout): transfers
    /// to admit, chunks to read, a restore once the write is durable.
    fn take_snapshot_work(&mut self, id: GroupId, out: &mut ReplicaReady, ready: &mut Ready) {
        for to in out.snapshot_wanted.drain(..) {
            let reads = self.admit_send(id, to);
            ready.chunk_reads.extend(reads);
        }
        ready
            .chunk_reads
            .extend(out.chunk_reads.drain(..).map(|(to, index, seq)| ChunkRead {
                group: id,
                to,
                index,
                seq,
            }));
        if let Some(meta) = out.restore.take() {
            ready.restores.push(Restore { group: id, meta });
        }
    }

    /// A group's failed reads, refused proposals and events from its marked outputs: the
    /// requests they end, the events for the application, the leadership changes to judge
    /// (`leadership_changed`). Returns whether the membership in force changed.
    fn take_ends_and_events(
        &mut self,
        id: GroupId,
        out: &mut ReplicaReady,
        ready: &mut Ready,
        leadership_changed: &mut BTreeMap<GroupId, Option<(u64, Option<NodeId>)>>,
    ) -> bool {
        for (read, error) in out.read_failures.drain(..) {
            self.requests.read_failed(RequestId(read), error);
        }
        for (pid, error) in out.rejected.drain(..) {
            if pid.node == self.id {
                self.requests.rejected(id, RequestId(pid.seq), error);
            }
        }
        let mut membership_changed = false;
        let mut transfer_aborted = false;
        for e in out.events.drain(..) {
            match e {
                GroupEvent::MembershipChanged { membership } => {
                    membership_changed = true;
                    ready.events.push(super::Event::MembershipChanged {
                        group: id,
                        membership,
                    });
                }
                GroupEvent::MembershipChangeEnded { result } => {
                    let resolution = match result {
                        Ok(m) => Resolution::MembershipChanged(m),
                        Err(e) => Resolution::MembershipChangeFailed(e),
                    };
                    self.requests.change_ended(id, resolution);
                }
                GroupEvent::Removed => {
                    ready
                        .events
                        .push(super::Event::ReplicaRemoved { group: id });
                }
                GroupEvent::TransferAborted { .. } => transfer_aborted = true,
                GroupEvent::ElectionStarted => {
                    self.stats.elections_started += 1;
                    self.metrics.elections.increment(1);
                }
                GroupEvent::LeaderChanged { term, leader } => {
                    if leader.is_some() {
                        self.metrics.leader_changes.increment(1);
                    }
                    if leader == Some(self.id) {
                        self.metrics.elections_won.increment(1);
                    }
                    leadership_changed.insert(id, Some((term, leader)));
                    ready.events.push(super::Event::LeaderChanged {
                        group: id,
                        term,
                        leader,
                    });
                }
            }
        }
        // A transfer given up while this node leads fails `Timeout` (it kept its
        // leadership). Given up in the output in which this node stopped leading (the
        // target's vote request came), it ends with the leadership instead
        // (`Requests::leadership_changed`): `Done` once the target leads (review).
        let deposed = leadership_changed
            .get(&id)
            .is_some_and(|now| now.and_then(|(_, leader)| leader) != Some(self.id));
        if transfer_aborted && !deposed {
            let failed = Resolution::TransferFailed(TransferError::Timeout);
            self.requests.transfer_ended(id, failed);
        }
        membership_changed
    }

    /// The local requests that `entries` of `group` resolve, ending them.
    fn resolve_applied(&mut self, group: GroupId, entries: &[Entry]) -> Vec<(u64, RequestId)> {
        if self.requests.pending_proposals() == 0 {
            return Vec::new();
        }
        let mut resolved = Vec::new();
        for e in entries {
            if let Payload::Command { id, .. } = &e.payload
                && id.node == self.id
            {
                if resolved.is_empty() {
                    // On a leader most applied entries are its own: one allocation.
                    resolved.reserve(entries.len());
                }
                resolved.push((e.index, RequestId(id.seq)));
            }
        }
        self.requests.applied(group, &mut resolved, self.ticks);
        resolved
    }

    /// Messages that may leave before any write — the leaders' appends and heartbeats,
    /// forwarded proposals, the liveness beat — one batch per destination. For use while a
    /// ready's write is in flight, so that a slow fsync delays neither replication to
    /// followers (dissertation §10.2.1: the leader writes in parallel with them) nor
    /// heartbeats. Everything else waits for the next [`Node::ready`].
    pub fn take_sends(&mut self) -> Vec<MessageBatch> {
        let mut outbox = self.outbox();
        let round = self.next_round();
        let mut touched = std::mem::take(&mut self.since_sends);
        touched.sort_unstable();
        touched.dedup();
        for id in &touched {
            if let Some(slot) = self.groups.get_mut(id) {
                slot.sending = false;
                for m in slot.group.take_send_now_in_round(round) {
                    outbox.now(*id, m);
                }
            }
        }
        // Keep the capacity: this runs on every wake while a write is in flight.
        touched.clear();
        self.since_sends = touched;
        outbox.finish(self.id, self.liveness(round)).0
    }

    /// The liveness part of this cycle's heartbeat message to each peer, in `round`.
    fn liveness(&self, round: u64) -> impl Fn(NodeId) -> crate::message::Liveness + '_ {
        move |to| self.peers.liveness_to(to, self.incarnation, round)
    }

    /// An outbox holding the liveness beat to every peer, if one is due.
    fn outbox(&mut self) -> Outbox {
        let mut outbox = Outbox::default();
        if std::mem::take(&mut self.beat_due) {
            for peer in self.peers.ids() {
                outbox.liveness_beat(peer);
            }
        }
        outbox
    }

    /// Confirms that the write of ready `number` is durable.
    ///
    /// # Panics
    ///
    /// If `number` is not the outstanding ready's number: acknowledging a write out of
    /// order would let the node act on state that is not durable (docs/design.md §3.1, IO rule 5).
    pub fn advance(&mut self, number: u64) {
        let out = self.in_flight.take();
        let expected = out.as_ref().map(|o| o.number);
        assert_eq!(
            expected,
            Some(number),
            "node {}: advance({number}) but the outstanding ready is {expected:?}",
            self.id
        );
        let Some(out) = out else { return };
        let (groups, mut queues) = self.groups_and_queues();
        for stretch in out.persisted.chunks(warm::AHEAD) {
            warm::replicas(groups, stretch.iter().map(|p| p.0));
            for &(id, index, term) in stretch {
                if let Some(slot) = groups.get_mut(&id) {
                    slot.group.on_persisted(index, term);
                    if slot.group.has_ready() {
                        queues.mark(id, slot);
                    }
                }
            }
        }
        let mut stored = Vec::with_capacity(out.built.len());
        for (id, meta) in out.built {
            if let Some(slot) = groups.get_mut(&id) {
                slot.group.snapshot_stored(meta);
                if slot.group.has_ready() {
                    queues.mark(id, slot);
                }
                stored.push(id);
            }
        }
        // A group that applied another `snapshot_entries` while this snapshot was built was
        // not queued then (one build per group at a time), and may apply nothing more: queue
        // it now, or a restart would re-apply up to twice `snapshot_entries`.
        for id in stored {
            self.queue_snapshot(id);
        }
    }

    /// Whether a ready is awaiting [`Node::advance`].
    pub fn is_write_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
}
