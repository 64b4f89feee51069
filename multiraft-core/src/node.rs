//! All groups of one node, still sans-IO: routes messages in, merges every group's outputs
//! into one numbered [`Ready`] (one storage write, one batch per destination node).
//!
//! # Call order
//!
//! 1. Feed inputs in any order: [`Node::step`] (a batch from a peer node), [`Node::tick`],
//!    [`Node::propose`], [`Node::create_group`], [`Node::remove_group`].
//! 2. [`Node::ready`] returns the next [`Ready`] when there is work and no ready is
//!    outstanding.
//! 3. With that ready, in this order or concurrently as noted:
//!    - send `send_now` (may go before the write is durable);
//!    - persist `write` with one [`Storage::write`](crate::Storage::write) call;
//!    - apply `apply` to the state machines (every entry in it is committed and already
//!      durable here);
//!    - once the write is durable, call [`Node::advance`] with `ready.number`, then send
//!      `send_after_write`.
//! 4. Go to 1. Inputs keep arriving while the write is in flight; they are batched into the
//!    next ready, which is how one fsync comes to cover many groups.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Config, ConfigError};
use crate::entry::Entry;
use crate::error::{GroupError, ProposeError, StartError};
use crate::group::{Group, GroupEvent, GroupStatus};
use crate::ids::{GroupId, NodeId, ProposalId};
use crate::membership::Membership;
use crate::message::{Beat, Message, MessageBatch, MessageBody, MessageLimits};
use crate::rng::group_seed;
use crate::storage::{GroupWrite, LoadedGroup, WriteBatch};

/// Heartbeats (or acknowledgements) coalesced into one message. One message per peer per
/// tick carries up to this many active groups; beyond it the beats are split, so that one
/// message stays well inside a transport's frame limit (a beat encodes in about 10 bytes:
/// 64 Ki beats are under 1 MiB).
pub const MAX_BEATS_PER_MESSAGE: usize = 65_536;

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
}

/// Committed entries of one group, in order, to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apply {
    /// The group.
    pub group: GroupId,
    /// The entries, consecutive.
    pub entries: Vec<Entry>,
}

/// A proposal that definitely did not enter the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The group it was proposed to.
    pub group: GroupId,
    /// The proposal.
    pub id: ProposalId,
    /// Why.
    pub error: ProposeError,
}

/// The outputs of one cycle of the node. See the [module docs](self) for what to do with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Strictly increasing; pass it to [`Node::advance`].
    pub number: u64,
    /// Everything to persist, for every group, as one write.
    pub write: WriteBatch,
    /// One batch per destination node, to send at once.
    pub send_now: Vec<MessageBatch>,
    /// One batch per destination node, to send only after `write` is durable.
    pub send_after_write: Vec<MessageBatch>,
    /// Committed entries to apply, per group.
    pub apply: Vec<Apply>,
    /// Proposals that definitely did not enter the log.
    pub rejected: Vec<Rejected>,
    /// Events, to publish once `write` is durable.
    pub events: Vec<Event>,
}

impl Ready {
    /// Whether the ready holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.write.is_empty()
            && self.send_now.is_empty()
            && self.send_after_write.is_empty()
            && self.apply.is_empty()
            && self.rejected.is_empty()
            && self.events.is_empty()
    }
}

/// Counters of what the node dropped, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Inbound messages for a group this node does not host (never creates the group).
    pub dropped_unknown_group: u64,
    /// Inbound messages whose sender or recipient did not match the batch.
    pub dropped_misaddressed: u64,
    /// Inbound messages dropped because their batch failed
    /// [`MessageBatch::validate`]: every message of such a batch counts, valid or not, since
    /// the whole batch is dropped (it comes from a buggy or hostile peer). A nonzero value
    /// means a peer or a transport is broken; honest traffic never adds to it.
    pub dropped_invalid: u64,
}

/// What the node knows of one peer node: the nodes it shares a group with.
struct Peer {
    /// The tick at which a batch from it last arrived.
    last_heard: u64,
    /// Heard from within the liveness timeout (`Config::election_timeout_min_ticks`).
    live: bool,
    /// How many hosted groups have a replica there; the peer is forgotten at zero.
    groups: usize,
}

struct Slot {
    group: Group,
    /// Whether the group is in `Node::dirty`.
    queued: bool,
}

/// Messages being sorted by destination, with heartbeats and their acknowledgements
/// coalesced into one message per destination node.
#[derive(Default)]
struct Outbox {
    now: BTreeMap<NodeId, Vec<Message>>,
    after: BTreeMap<NodeId, Vec<Message>>,
    beats: BTreeMap<NodeId, Vec<Beat>>,
    acks: BTreeMap<NodeId, Vec<(GroupId, u64)>>,
}

impl Outbox {
    /// A message of group `id` that may leave at once.
    fn now(&mut self, id: GroupId, m: Message) {
        match m.body {
            MessageBody::Heartbeat { commit } | MessageBody::Quiesce { commit } => {
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
    fn after(&mut self, id: GroupId, m: Message) {
        match m.body {
            MessageBody::HeartbeatResponse => self.acks.entry(m.to).or_default().push((id, m.term)),
            _ => self.after.entry(m.to).or_default().push(m),
        }
    }

    /// One batch per destination: (send now, send after the write).
    fn finish(mut self, from: NodeId) -> (Vec<MessageBatch>, Vec<MessageBatch>) {
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
                let m = node_message(to, MessageBody::Heartbeats { beats });
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

/// The write of one ready, awaiting [`Node::advance`].
struct Outstanding {
    number: u64,
    /// Per group: the last entry written (index, term).
    persisted: Vec<(GroupId, u64, u64)>,
}

/// Every group hosted by one node.
pub struct Node {
    id: NodeId,
    config: Arc<Config>,
    seed: u64,
    /// Ordered, not hashed: `tick` visits groups in map order and queues them in that order,
    /// and a `HashMap`'s order differs between instances, which made the node's outputs
    /// differ between runs fed the same inputs and seed (DESIGN §9.1, deterministic core).
    groups: BTreeMap<GroupId, Box<Slot>>,
    /// One shared value per distinct membership: most groups of a node have one of a few
    /// memberships, so sharing saves an allocation per group.
    memberships: HashMap<Membership, Arc<Membership>>,
    /// Groups that are not quiesced: the only ones `tick` visits, so that an idle group
    /// costs nothing per tick.
    active: BTreeSet<GroupId>,
    /// Peer nodes and their liveness, one heartbeat per node pair per tick.
    peers: BTreeMap<NodeId, Peer>,
    ticks: u64,
    /// A liveness beat to every peer is owed in the next ready.
    beat_due: bool,
    /// Groups that received input since the last `take_sends` or `ready`: the only ones
    /// `take_sends` looks at.
    since_sends: Vec<GroupId>,
    /// Groups that may have output, each at most once, served in order so none starves.
    dirty: VecDeque<GroupId>,
    /// Creations and removals to put in the next write.
    /// Keyed by group: each group has at most one record in a write, and creating many
    /// groups in one cycle stays linear.
    lifecycle: BTreeMap<GroupId, GroupWrite>,
    events: Vec<Event>,
    last_number: u64,
    outstanding: Option<Outstanding>,
    stats: NodeStats,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("groups", &self.groups.len())
            .field("last_number", &self.last_number)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node with no groups. `seed` drives every random choice (election jitter).
    pub fn new(id: NodeId, config: Config, seed: u64) -> Result<Node, ConfigError> {
        config.validate()?;
        if id.0 == 0 {
            return Err(ConfigError {
                field: "node id",
                reason: "NodeId(0) is reserved",
            });
        }
        Ok(Node {
            id,
            config: Arc::new(config),
            seed,
            groups: BTreeMap::new(),
            memberships: HashMap::new(),
            active: BTreeSet::new(),
            peers: BTreeMap::new(),
            ticks: 0,
            beat_due: false,
            since_sends: Vec::new(),
            dirty: VecDeque::new(),
            lifecycle: BTreeMap::new(),
            events: Vec::new(),
            last_number: 0,
            outstanding: None,
            stats: NodeStats::default(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Drop counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// Number of hosted groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The ids of every hosted group, in no particular order.
    pub fn group_ids(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.keys().copied()
    }

    /// Number of groups that are not quiesced (the ones a tick visits).
    pub fn active_group_count(&self) -> usize {
        self.active.len()
    }

    /// Whether `peer` is considered live: a batch from it arrived within the liveness
    /// timeout. `None` for a node this node shares no group with.
    pub fn peer_live(&self, peer: NodeId) -> Option<bool> {
        self.peers.get(&peer).map(|p| p.live)
    }

    /// The shared copy of `membership`.
    fn intern(&mut self, membership: &Membership) -> Arc<Membership> {
        if let Some(shared) = self.memberships.get(membership) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(membership.clone());
        self.memberships
            .insert(membership.clone(), Arc::clone(&shared));
        shared
    }

    /// Drops the shared copy of a membership no group uses any more (the table's own
    /// reference and the caller's are the last two).
    fn release(&mut self, membership: &Arc<Membership>) {
        if Arc::strong_count(membership) <= 2 {
            self.memberships.remove(&**membership);
        }
    }

    fn add_peers(&mut self, membership: &Membership) {
        for n in membership.replicas() {
            if n != self.id {
                let ticks = self.ticks;
                let p = self.peers.entry(n).or_insert(Peer {
                    last_heard: ticks,
                    live: true,
                    groups: 0,
                });
                p.groups += 1;
            }
        }
    }

    fn remove_peers(&mut self, membership: &Membership) {
        for n in membership.replicas() {
            if let Some(p) = self.peers.get_mut(&n) {
                p.groups -= 1;
                if p.groups == 0 {
                    self.peers.remove(&n);
                }
            }
        }
    }

    /// The state of one group.
    pub fn group_status(&self, group: GroupId) -> Option<GroupStatus> {
        self.groups.get(&group).map(|s| s.group.status())
    }

    /// One hosted group, for inspection.
    pub fn group(&self, group: GroupId) -> Option<&Group> {
        self.groups.get(&group).map(|s| &s.group)
    }

    /// Hosts the groups storage held at start. Their state is already durable.
    ///
    /// Refuses a group whose log was compacted ([`StartError::CompactedLog`]): its state
    /// machine would need a snapshot this version cannot restore. Nothing is restored then.
    pub fn restore(&mut self, loaded: Vec<LoadedGroup>) -> Result<(), StartError> {
        // Build every group before hosting any, so that a refusal leaves the node untouched.
        let mut groups = Vec::with_capacity(loaded.len());
        for l in loaded {
            let seed = group_seed(self.seed, l.group.0);
            groups.push(Group::restore(self.id, l, Arc::clone(&self.config), seed)?);
        }
        for mut group in groups {
            let id = group.id();
            self.add_peers(group.membership());
            let shared = self.intern(group.membership());
            group.share_membership(shared);
            self.groups.insert(
                id,
                Box::new(Slot {
                    group,
                    queued: false,
                }),
            );
            self.touched(id);
        }
        Ok(())
    }

    /// Starts hosting a new replica of `group`. Its creation is part of the next write.
    pub fn create_group(
        &mut self,
        group: GroupId,
        membership: Membership,
    ) -> Result<(), GroupError> {
        membership.validate()?;
        if !membership.contains(self.id) {
            return Err(GroupError::NotAMember(self.id));
        }
        if self.groups.contains_key(&group) {
            return Err(GroupError::GroupExists(group));
        }
        if self.lifecycle.get(&group).is_some_and(|w| w.remove) {
            // One write holds each group at most once: the removal must be durable first.
            return Err(GroupError::RemovalPending(group));
        }
        let g = Group::new(
            group,
            self.id,
            self.intern(&membership),
            Arc::clone(&self.config),
            group_seed(self.seed, group.0),
        );
        self.lifecycle.insert(
            group,
            GroupWrite {
                group,
                membership: Some(membership),
                hard_state: Some(Default::default()),
                ..Default::default()
            },
        );
        self.events.push(Event::GroupCreated { group });
        self.add_peers(g.membership());
        self.active.insert(group);
        self.groups.insert(
            group,
            Box::new(Slot {
                group: g,
                queued: false,
            }),
        );
        Ok(())
    }

    /// Stops hosting `group` and deletes its persisted state in the next write.
    pub fn remove_group(&mut self, group: GroupId) -> Result<(), GroupError> {
        let slot = self
            .groups
            .remove(&group)
            .ok_or(GroupError::GroupNotFound(group))?;
        self.remove_peers(slot.group.membership());
        let shared = Arc::clone(slot.group.membership_arc());
        drop(slot);
        self.release(&shared);
        self.active.remove(&group);
        // Replaces a creation not yet written: storage is told only to delete.
        self.lifecycle.insert(
            group,
            GroupWrite {
                group,
                remove: true,
                ..Default::default()
            },
        );
        self.events.push(Event::GroupRemoved { group });
        Ok(())
    }

    /// Feeds a batch received from a peer node. Messages for groups this node does not host
    /// are dropped (a message never creates a group), as are misaddressed ones. A batch
    /// that fails [`MessageBatch::validate`] is dropped whole, before anything (peer
    /// liveness included) is touched, and counted in [`NodeStats::dropped_invalid`]; the
    /// addressing check comes first, so a batch for another node counts as misaddressed.
    pub fn step(&mut self, batch: MessageBatch) {
        if batch.to != self.id || batch.from == self.id {
            self.stats.dropped_misaddressed += batch.messages.len() as u64;
            return;
        }
        if let Err(error) = batch.validate(&MessageLimits::default()) {
            tracing::debug!(node = %self.id, peer = %batch.from, %error, "dropping invalid batch");
            self.stats.dropped_invalid += batch.messages.len() as u64;
            return;
        }
        if let Some(p) = self.peers.get_mut(&batch.from) {
            p.last_heard = self.ticks;
            p.live = true;
        }
        for msg in batch.messages {
            self.step_message(batch.from, msg);
        }
    }

    fn step_message(&mut self, from: NodeId, msg: Message) {
        if msg.from != from || msg.to != self.id {
            self.stats.dropped_misaddressed += 1;
            return;
        }
        match msg.body {
            MessageBody::Heartbeats { beats } => {
                for b in beats {
                    let commit = b.commit;
                    let body = if b.quiesce {
                        MessageBody::Quiesce { commit }
                    } else {
                        MessageBody::Heartbeat { commit }
                    };
                    self.step_group(Message {
                        group: b.group,
                        from,
                        to: self.id,
                        term: b.term,
                        body,
                    });
                }
            }
            MessageBody::HeartbeatAcks { acks } => {
                for (group, term) in acks {
                    self.step_group(Message {
                        group,
                        from,
                        to: self.id,
                        term,
                        body: MessageBody::HeartbeatResponse,
                    });
                }
            }
            _ => self.step_group(msg),
        }
    }

    fn step_group(&mut self, msg: Message) {
        let id = msg.group;
        match self.groups.get_mut(&id) {
            Some(slot) => {
                slot.group.step(msg);
                self.touched(id);
            }
            None => self.stats.dropped_unknown_group += 1,
        }
    }

    /// Starts an election for `group` now (see [`Group::campaign`]).
    pub fn campaign(&mut self, group: GroupId) -> Result<(), GroupError> {
        let slot = self
            .groups
            .get_mut(&group)
            .ok_or(GroupError::GroupNotFound(group))?;
        slot.group.campaign();
        self.touched(group);
        Ok(())
    }

    /// Advances the node's logical clock by one tick: every group that is not quiesced
    /// ticks, a liveness beat to every peer node is owed, and peers not heard from within
    /// the liveness timeout are declared down, waking the quiesced groups they led.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.beat_due = !self.peers.is_empty();
        let timeout = u64::from(self.config.election_timeout_min_ticks);
        let mut down = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            if p.live && self.ticks - p.last_heard > timeout {
                p.live = false;
                down.push(*id);
            }
        }
        if !down.is_empty() {
            // Rare (a node went down): the one time a scan of every group is worth it.
            for (id, slot) in self.groups.iter_mut() {
                for peer in &down {
                    slot.group.on_node_down(*peer);
                }
                if !slot.group.is_quiesced() {
                    self.active.insert(*id);
                }
            }
        }
        let mut quiesced = Vec::new();
        for id in &self.active {
            let Some(slot) = self.groups.get_mut(id) else {
                continue;
            };
            slot.group.tick();
            if slot.group.is_quiesced() {
                quiesced.push(*id);
            }
            if slot.group.has_ready() {
                self.since_sends.push(*id);
                if !slot.queued {
                    slot.queued = true;
                    self.dirty.push_back(*id);
                }
            }
        }
        for id in quiesced {
            self.active.remove(&id);
        }
    }

    /// Proposes `data` to `group` under the proposal id `id`.
    pub fn propose(
        &mut self,
        group: GroupId,
        id: ProposalId,
        data: Bytes,
    ) -> Result<(), ProposeError> {
        let slot = self
            .groups
            .get_mut(&group)
            .ok_or(ProposeError::GroupNotFound(group))?;
        slot.group.propose(id, data)?;
        self.touched(group);
        Ok(())
    }

    /// A group received input: queue it for the next ready, and keep ticking it unless it
    /// is quiesced.
    fn touched(&mut self, id: GroupId) {
        if let Some(slot) = self.groups.get(&id)
            && !slot.group.is_quiesced()
        {
            self.active.insert(id);
        }
        self.mark(id);
    }

    fn mark(&mut self, id: GroupId) {
        self.since_sends.push(id);
        if let Some(slot) = self.groups.get_mut(&id)
            && !slot.queued
        {
            slot.queued = true;
            self.dirty.push_back(id);
        }
    }

    /// Whether there may be work for [`Node::ready`] (it can still return `None` when the
    /// queued groups turn out to have nothing to output).
    pub fn has_ready(&self) -> bool {
        self.outstanding.is_none()
            && (self.beat_due
                || !self.dirty.is_empty()
                || !self.lifecycle.is_empty()
                || !self.events.is_empty())
    }

    /// Collects the outputs of every group with work, within the per-ready limits
    /// (`max_ready_groups`, `max_ready_entries`, `max_ready_bytes`). Returns `None` when
    /// there is nothing to do or the previous ready is not yet advanced.
    pub fn ready(&mut self) -> Option<Ready> {
        if !self.has_ready() {
            return None;
        }
        self.last_number += 1;
        let mut ready = Ready {
            number: self.last_number,
            ..Default::default()
        };
        ready.write.groups = std::mem::take(&mut self.lifecycle).into_values().collect();
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
        let mut persisted = Vec::new();
        let mut outbox = self.outbox();
        self.since_sends.clear();
        let (mut groups, mut entries, mut bytes) = (0usize, 0usize, 0usize);
        let cfg = Arc::clone(&self.config);
        while let Some(id) = self.dirty.pop_front() {
            let over = groups >= cfg.max_ready_groups
                || entries >= cfg.max_ready_entries
                || bytes >= cfg.max_ready_bytes;
            if over && groups > 0 {
                self.dirty.push_front(id);
                break;
            }
            let Some(slot) = self.groups.get_mut(&id) else {
                continue; // removed since it was queued
            };
            groups += 1;
            let out = slot.group.ready(
                cfg.max_ready_entries.saturating_sub(entries).max(1),
                cfg.max_ready_bytes.saturating_sub(bytes).max(1),
            );
            if slot.group.has_ready() {
                self.dirty.push_back(id);
            } else {
                slot.queued = false;
            }
            for e in out.entries.iter().chain(&out.apply) {
                entries += 1;
                bytes += e.size_bytes();
            }
            if let Some(last) = out.entries.last() {
                persisted.push((id, last.index, last.term));
            }
            if out.hard_state.is_some() || !out.entries.is_empty() {
                match record_of.get(&id) {
                    Some(&i) => {
                        let record = &mut ready.write.groups[i];
                        if out.hard_state.is_some() {
                            record.hard_state = out.hard_state;
                        }
                        record.entries.extend(out.entries);
                    }
                    None => {
                        ready.write.groups.push(GroupWrite {
                            group: id,
                            hard_state: out.hard_state,
                            entries: out.entries,
                            ..Default::default()
                        });
                    }
                }
            }
            for m in out.send_now {
                outbox.now(id, m);
            }
            for m in out.send_after_write {
                outbox.after(id, m);
            }
            if !out.apply.is_empty() {
                ready.apply.push(Apply {
                    group: id,
                    entries: out.apply,
                });
            }
            ready
                .rejected
                .extend(out.rejected.into_iter().map(|(pid, error)| Rejected {
                    group: id,
                    id: pid,
                    error,
                }));
            ready.events.extend(out.events.into_iter().map(|e| match e {
                GroupEvent::LeaderChanged { term, leader } => Event::LeaderChanged {
                    group: id,
                    term,
                    leader,
                },
            }));
        }
        (ready.send_now, ready.send_after_write) = outbox.finish(self.id);
        if ready.is_empty() {
            // The dirty groups had nothing after all (say, an acknowledgement that moved
            // nothing): no ready, so the caller does not pay for an empty cycle.
            self.last_number -= 1;
            return None;
        }
        self.outstanding = Some(Outstanding {
            number: ready.number,
            persisted,
        });
        Some(ready)
    }

    /// Messages that may leave before any write — the leaders' appends and heartbeats,
    /// forwarded proposals, the liveness beat — one batch per destination. For use while a
    /// ready's write is in flight, so that a slow fsync delays neither replication to
    /// followers (dissertation §10.2.1: the leader writes in parallel with them) nor
    /// heartbeats. Everything else waits for the next [`Node::ready`].
    pub fn take_sends(&mut self) -> Vec<MessageBatch> {
        let mut outbox = self.outbox();
        let mut touched = std::mem::take(&mut self.since_sends);
        touched.sort_unstable();
        touched.dedup();
        for id in &touched {
            if let Some(slot) = self.groups.get_mut(id) {
                for m in slot.group.take_send_now() {
                    outbox.now(*id, m);
                }
            }
        }
        // Keep the capacity: this runs on every wake while a write is in flight.
        touched.clear();
        self.since_sends = touched;
        outbox.finish(self.id).0
    }

    /// An outbox holding the liveness beat to every peer, if one is due.
    fn outbox(&mut self) -> Outbox {
        let mut outbox = Outbox::default();
        if std::mem::take(&mut self.beat_due) {
            for peer in self.peers.keys() {
                outbox.beats.entry(*peer).or_default();
            }
        }
        outbox
    }

    /// Confirms that the write of ready `number` is durable.
    ///
    /// # Panics
    ///
    /// If `number` is not the outstanding ready's number: acknowledging a write out of
    /// order would let the node act on state that is not durable (IO-ordering rule 5).
    pub fn advance(&mut self, number: u64) {
        let out = self.outstanding.take();
        let expected = out.as_ref().map(|o| o.number);
        assert_eq!(
            expected,
            Some(number),
            "node {}: advance({number}) but the outstanding ready is {expected:?}",
            self.id
        );
        for (id, index, term) in out.map(|o| o.persisted).unwrap_or_default() {
            if let Some(slot) = self.groups.get_mut(&id) {
                slot.group.on_persisted(index, term);
                if slot.group.has_ready() {
                    self.mark(id);
                }
            }
        }
    }

    /// Whether a ready is awaiting [`Node::advance`].
    pub fn is_write_outstanding(&self) -> bool {
        self.outstanding.is_some()
    }
}

#[cfg(test)]
mod quiescence_tests;
#[cfg(test)]
mod tests;
