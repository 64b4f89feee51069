//! All groups of one node, still sans-IO: routes messages in, merges every group's outputs
//! into one numbered [`Ready`] (one storage write, one batch per destination node), and owns
//! the outcome of every request the application makes (docs/design.md §3 and §5).
//!
//! # Call order
//!
//! 1. Feed inputs in any order: [`Node::step`] (a batch from a peer node), [`Node::tick`],
//!    [`Node::propose`], [`Node::read`], [`Node::transfer_leader`], [`Node::create_group`],
//!    [`Node::remove_group`], [`Node::campaign`]. Each request the node takes returns a
//!    [`RequestId`].
//! 2. [`Node::ready`] returns the next [`Ready`] when there is work and no ready is
//!    outstanding.
//! 3. With that ready, in this order or concurrently as noted (docs/design.md §3.1):
//!    - send `send_now` (may go before the write is durable);
//!    - persist `write` with one [`Storage::write`](crate::Storage::write) call;
//!    - apply `apply` to the state machines (every entry in it is committed and already
//!      durable here); an entry listed in [`Apply::requests`] answers that request with
//!      the state machine's result; then serve `reads` (each from its group's state
//!      machine, which has now applied the read's index). Finish these applies before the
//!      next [`Node::read`]: the node counts an entry applied once a ready hands it out,
//!      so a lease read it answers at once (`ReadStart::Now`) assumes the state machine
//!      holds everything handed out so far;
//!    - once the write is durable, call [`Node::advance`] with `ready.number`, then send
//!      `send_after_write`, report `outcomes` and publish `events`.
//! 4. Go to 1. Inputs keep arriving while the write is in flight; they are batched into the
//!    next ready, which is how one fsync comes to cover many groups.
//! 5. When the node stops for good, [`Node::stop`] ends every request still without an
//!    outcome, so that every request has exactly one.

mod admission;
mod leadership;
mod lifecycle;
mod liveness;
mod outbox;
mod ready;
mod report;
mod requests;
mod rest;
mod snapshots;
mod untold;
mod warm;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::config::{Config, ConfigError};
use crate::error::{GroupNotFound, ProposeError, ReadError};
use crate::group::{GroupStatus, ReadPolicy, Replica};
use crate::ids::{GroupId, NodeId, ProposalId, RequestId};
use crate::membership::Membership;
use crate::message::{Message, MessageBatch, MessageBody, MessageLimits};
use crate::metrics::NodeMetrics;
use crate::storage::GroupWrite;

pub use self::ready::{Apply, Event, ReadPoint, Ready};
pub use self::report::{GroupReport, MAX_REPORT_GROUPS, NodeReport, PeerStatus};
pub use self::requests::{Outcome, Resolution};
pub use self::snapshots::{ChunkRead, Restore, TakeSnapshot};

use self::liveness::{Life, Peers};
use self::ready::InFlight;
use self::requests::Requests;
use self::rest::{Rest, Rests};
use self::snapshots::Snapshots;
pub(crate) use self::warm::AHEAD as READ_AHEAD;

pub use crate::message::MAX_BEATS_PER_MESSAGE;

/// Counters of what the node dropped and of its peers' failures, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
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
    /// Times a peer node was declared down after a silence longer than its liveness
    /// timeout (each verdict once; a peer heard again is live again). A verdict ends the
    /// leadership of every quiesced group the peer led here, so a count that grows on a
    /// healthy cluster says a node's event loop stalls for longer than the timeout.
    pub peers_declared_down: u64,
    /// Times a peer node was heard in a new life (it restarted): what its groups promised
    /// before is gone.
    pub peer_restarts: u64,
    /// Campaigns this node's replicas started, pre-votes included (the `ELECTIONS_TOTAL`
    /// metric's count). On a healthy cluster only new groups, transfers and lost leaders
    /// start one; a count that grows under load says leaders are being deposed.
    #[serde(default)]
    pub elections_started: u64,
}

/// Node-wide figures, for metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// Groups hosted.
    pub groups: usize,
    /// Groups not quiesced: the ones a tick visits, and the followers resting between the
    /// ticks that would only count their election timers (docs/design.md §4.10).
    pub active_groups: usize,
    /// Proposals taken and not yet resolved.
    pub pending_proposals: usize,
    /// Reads taken and not yet served or failed.
    pub pending_reads: usize,
    /// Leadership transfers taken and not yet ended (a drain's shows its progress: at
    /// most `DRAIN_WINDOW` at once). 0 when read from a status serialized without it.
    #[serde(default)]
    pub pending_transfers: usize,
    /// Ticks of the node's clock since it started, the ones a stall kept from being served
    /// included ([`Node::tick_late`]).
    pub ticks: u64,
    /// Of those, the ticks a stall kept from being served on time ([`Node::tick_late`]'s
    /// `missed`): a count that grows says the event loop falls behind its tick interval
    /// (an overloaded or starved loop), which is what makes peers look silent.
    pub ticks_missed: u64,
    /// Readies the node has handed out since it started ([`Ready::number`] of the last):
    /// per second, against the proposals committed, how well the node batches (each ready
    /// costs one storage write, and a send per peer node). 0 when read from a status
    /// serialized without it (an older node's).
    #[serde(default)]
    pub readies: u64,
    /// Peer nodes: the nodes that host a replica of a group hosted here.
    pub peers: usize,
    /// Peer nodes declared down now: not heard from within their liveness timeout.
    pub peers_down: usize,
    /// Drop and failure counters.
    pub stats: NodeStats,
}

/// How [`Node::read`] started a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStart {
    /// The read point `index` is already applied on this node: serve the read now.
    Now {
        /// The read index.
        index: u64,
    },
    /// The node took the read; it ends in a later ready.
    Taken(RequestId),
}

/// One hosted replica and its place in the ready queue.
struct Slot {
    group: Replica,
    /// Whether the group is in `Node::dirty`.
    queued: bool,
    /// Whether the group is in `Node::since_sends`: each group goes there once, however
    /// many inputs and ticks come before the next `take_sends` or ready. Pushed per input,
    /// the list grew by every active group at each tick of a wake that stepped batches for
    /// seconds: at 300,000 groups, to 2 GiB during a drain (BENCHMARKS.md, 2026-12-06
    /// evening).
    sending: bool,
    /// Whether the group is in `Node::active`: every message and proposal touches its
    /// group, and searching the ordered set each time showed in profiles of a thousand
    /// busy groups (4 % of instructions).
    ticking: bool,
    /// The group rests: a follower out of `Node::active` while its ticks would only count
    /// its election timer (`rest.rs`).
    rest: Option<Rest>,
    /// The served tick of the group's place in `Node::rests`, if it has one.
    parked: Option<u64>,
    /// The membership the node counts this group under (`peers`, the shared table): the
    /// group's own until it changes, when the next ready moves the count
    /// ([`Node::rehost`](lifecycle.rs)).
    hosted: Arc<Membership>,
}

impl Slot {
    /// Lists group `id` (this slot's) for the next `take_sends` and queues it for the next
    /// ready, each at most once (`sending`, `queued`).
    fn queue(
        &mut self,
        id: GroupId,
        since_sends: &mut Vec<GroupId>,
        dirty: &mut VecDeque<GroupId>,
    ) {
        if !self.sending {
            self.sending = true;
            since_sends.push(id);
        }
        if !self.queued {
            self.queued = true;
            dirty.push_back(id);
        }
    }
}

/// Every group hosted by one node.
pub struct Node {
    id: NodeId,
    config: Arc<Config>,
    seed: u64,
    /// Hashed, for the lookup every message and every ready makes (a B-tree's search showed
    /// as cache misses in profiles of a thousand busy groups). Never iterated in hash
    /// order where the order could reach an output: `tick` visits `active`, which is
    /// ordered, and the few scans of every group sort the ids first (docs/design.md §9.1,
    /// deterministic core).
    groups: FxHashMap<GroupId, Box<Slot>>,
    /// One shared value per distinct membership: most groups of a node have one of a few
    /// memberships, so sharing saves an allocation per group.
    memberships: HashMap<Membership, Arc<Membership>>,
    /// Groups that are not quiesced: the only ones `tick` visits, so that an idle group
    /// costs nothing per tick.
    active: BTreeSet<GroupId>,
    /// Followers out of `active` for a while: their ticks would only count their election
    /// timers (`rest.rs`).
    rests: Rests,
    /// Ticks served (one per [`Node::tick_late`], missed ones not counted): what resting
    /// groups' election timers are counted in.
    served: u64,
    /// Quiesced leaders whose reads wait on a round: not ticked, so `tick` sends their
    /// quiet beats again itself ([`Node::resend_quiet_reads`]). At most one entry per
    /// group with a read pending, which `max_pending_reads` bounds.
    quiet_reads: BTreeSet<GroupId>,
    /// Peer nodes and their liveness, one heartbeat per node pair per tick.
    peers: Peers,
    /// Ticks of the node's clock since it started, missed ones included
    /// ([`Node::tick_late`]): the time leases, rounds and deadlines are measured in.
    ticks: u64,
    /// Of `ticks`, those served late ([`NodeStatus::ticks_missed`]).
    ticks_missed: u64,
    /// Which life of this node this is (see [`Liveness::incarnation`](crate::message::Liveness)).
    incarnation: u64,
    /// The last heartbeat round issued (see [`Node::next_round`]).
    round: u64,
    /// A liveness beat to every peer is owed in the next ready.
    beat_due: bool,
    /// Groups that received input since the last `take_sends` or `ready` (and, after a
    /// ready that stopped at its limits, those of them it left for the next): the only
    /// ones `take_sends` looks at. Each at most once while its slot is `sending` (a group
    /// removed and hosted again may appear twice), so no longer than the groups hosted.
    since_sends: Vec<GroupId>,
    /// Groups that may have output, each at most once, served in order so none starves.
    dirty: VecDeque<GroupId>,
    /// Creations and removals to put in the next write.
    /// Keyed by group: each group has at most one record in a write, and creating many
    /// groups in one cycle stays linear.
    lifecycle: BTreeMap<GroupId, GroupWrite>,
    /// Requests without an outcome yet.
    requests: Requests,
    events: Vec<Event>,
    last_number: u64,
    /// The write in flight: the ready awaiting `advance`.
    in_flight: Option<InFlight>,
    /// Snapshots built, sent and received, within the node-wide limits.
    snapshots: Snapshots,
    /// Refusals of proposals forwarded here for groups this node does not host, for the
    /// next ready (at most [`lifecycle::MAX_UNHOSTED_REFUSALS`]).
    unhosted: Vec<Message>,
    /// Removed replicas a leader here forgot untold, nudged for a while
    /// (at most [`untold::MAX_UNTOLD`]).
    untold: Vec<untold::Untold>,
    /// The nudges due, for the next ready (at most one per entry of `untold`).
    nudges: Vec<Message>,
    stats: NodeStats,
    /// Metric handles, registered once (docs/design.md §9, observability).
    metrics: NodeMetrics,
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
    /// A node with no groups. `seed` drives every random choice (election jitter). Request
    /// ids start at 1; a node restarted on the same storage must start them past every id
    /// its earlier lives used ([`Node::start_requests_at`]).
    pub fn new(id: NodeId, config: Config, seed: u64) -> Result<Node, ConfigError> {
        config.validate()?;
        if id.0 == 0 {
            return Err(ConfigError {
                field: "node id",
                reason: "NodeId(0) is reserved",
            });
        }
        let metrics = NodeMetrics::new(id);
        let mut requests = Requests::starting_at(1);
        requests.count_into(metrics.proposals.clone());
        requests.limit_waits(u64::from(config.max_commit_wait_ticks));
        Ok(Node {
            id,
            config: Arc::new(config),
            seed,
            groups: FxHashMap::default(),
            memberships: HashMap::new(),
            active: BTreeSet::new(),
            rests: Rests::default(),
            served: 0,
            quiet_reads: BTreeSet::new(),
            peers: Peers::default(),
            ticks: 0,
            ticks_missed: 0,
            incarnation: seed.max(1),
            round: 0,
            beat_due: false,
            since_sends: Vec::new(),
            dirty: VecDeque::new(),
            lifecycle: BTreeMap::new(),
            requests,
            events: Vec::new(),
            last_number: 0,
            in_flight: None,
            snapshots: Snapshots::default(),
            unhosted: Vec::new(),
            untold: Vec::new(),
            nudges: Vec::new(),
            stats: NodeStats::default(),
            metrics,
        })
    }

    /// Makes the next request id `first`. Proposal ids travel in log entries, and a
    /// restarted node re-applies its log: an entry proposed by an earlier life must not
    /// answer a request of this one, so a restarted node starts past every id it used
    /// before. The driver uses the wall clock in nanoseconds; a simulation, a counter per
    /// life. Call it before [`Node::restore`], which moves the next id past every one of
    /// this node's that the restored logs carry, whatever `first` was (a wall clock set
    /// back across the restart); ids of this node's earlier lives that only other
    /// replicas' logs carry it cannot see, so `first` must still pass them.
    ///
    /// The same value names this life of the node to its peers (its incarnation): a peer
    /// that sees it change knows the promises this node's groups made before a restart are
    /// gone (docs/design.md §4.5). Each life must pass a larger value than the last: a peer
    /// takes a beat of a lower one for a delayed message of an earlier life, and a restart
    /// to a lower value only once it beats three ticks in a row. Without a call, the seed
    /// names it.
    pub fn start_requests_at(&mut self, first: u64) {
        self.requests.start_at(first);
        self.incarnation = first.max(1);
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Drop and failure counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// This node's metric handles (see [`crate::metrics`]).
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// Number of hosted groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The ids of every hosted group, in ascending order.
    pub fn group_ids(&self) -> impl Iterator<Item = GroupId> + '_ {
        let mut ids: Vec<GroupId> = self.groups.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
    }

    /// Number of groups that are not quiesced: the ones a tick visits, and the resting
    /// followers ([`NodeStatus::active_groups`]).
    pub fn active_group_count(&self) -> usize {
        self.active.len() + self.rests.resting()
    }

    /// Proposals taken and not yet ended.
    pub fn pending_proposals(&self) -> usize {
        self.requests.pending_proposals()
    }

    /// While admission control finds the node overloaded (`Config::max_commit_wait_ticks`,
    /// docs/design.md §5), the most proposals it holds before it refuses new ones with
    /// `Busy`: what it applies in the limit (what it applied since the last tick, over the
    /// ticks that passed, at most the limit, times the limit), plus the proposals it took
    /// four limits ago or earlier (rounded up to a power of two, at most 4,096 ticks) and
    /// still holds (stuck, not queued: they do not count against the cap). Past
    /// half the cap the node refuses the proposals of a group that holds four even shares
    /// of it (the cap over the groups holding proposals) or half of it, whichever is less,
    /// but at least one share, so that one slow group cannot hold the whole cap and make
    /// every other group `Busy`. A driver can refuse before queueing for the node once its
    /// queue and [`Node::pending_proposals`] reach the cap.
    pub fn admission_cap(&self) -> Option<u64> {
        self.requests.admission_cap()
    }

    /// Node-wide figures.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            groups: self.groups.len(),
            active_groups: self.active_group_count(),
            pending_proposals: self.requests.pending_proposals(),
            pending_reads: self.requests.pending_reads(),
            pending_transfers: self.requests.pending_transfers(),
            ticks: self.ticks,
            ticks_missed: self.ticks_missed,
            readies: self.last_number,
            peers: self.peers.ids().count(),
            peers_down: self.peers.down_count(),
            stats: self.stats,
        }
    }

    /// Ticks of the node's clock since it started, missed ones included
    /// ([`Node::tick_late`]).
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Whether `peer` is considered live: a batch from it arrived within the liveness
    /// timeout. `None` for a node this node shares no group with.
    pub fn peer_live(&self, peer: NodeId) -> Option<bool> {
        self.peers.live(peer)
    }

    /// The state of one group.
    pub fn group_status(&self, group: GroupId) -> Option<GroupStatus> {
        self.groups.get(&group).map(|s| s.group.status())
    }

    /// One hosted group, for inspection.
    pub fn replica(&self, group: GroupId) -> Option<&Replica> {
        self.groups.get(&group).map(|s| &s.group)
    }

    /// Feeds a batch received from a peer node. Messages for groups this node does not host
    /// are dropped (a message never creates a group), as are misaddressed ones. A batch
    /// that fails [`MessageBatch::validate`] is dropped whole, before anything is read of
    /// it, and counted in [`NodeStats::dropped_invalid`]; the addressing check comes first,
    /// so a batch for another node counts as misaddressed. Either counts its sender unheard:
    /// its batches' arrivals ([`Node::batch_arrived`]) stop keeping it live until one of
    /// them is stepped. Every transport's batches get these checks (docs/design.md §7).
    pub fn step(&mut self, batch: MessageBatch) {
        let count = batch.messages.len() as u64;
        if batch.to != self.id || batch.from == self.id {
            self.stats.dropped_misaddressed += count;
            self.metrics.dropped_misaddressed.increment(count);
            self.peers.refused(batch.from);
            return;
        }
        if let Err(error) = batch.validate(&MessageLimits::default()) {
            tracing::debug!(node = %self.id, peer = %batch.from, %error, "dropping invalid batch");
            self.stats.dropped_invalid += count;
            self.metrics.dropped_invalid.increment(count);
            self.peers.refused(batch.from);
            return;
        }
        if self.of_an_earlier_life(&batch) {
            return;
        }
        if self.peers.heard(batch.from) {
            self.node_back(batch.from);
        }
        let mut messages = batch.messages.into_iter();
        while messages.len() > 0 {
            let ahead = messages.as_slice().iter().map(|m| m.group);
            warm::replicas(&self.groups, ahead);
            for msg in messages.by_ref().take(warm::AHEAD) {
                self.step_message(batch.from, msg);
            }
        }
    }

    /// A batch from `from` reached this node's inbox, where it waits behind others to be
    /// stepped, or was dropped there as the inbox was full: a peer declared live stays live,
    /// heard from now, unless the last batch of it stepped was refused unread. A driver that
    /// queues batches before stepping them tells the node, before each tick, of every
    /// sender since the last one, so that its own backlog never
    /// makes a peer look silent: a node that steps its inbox slower than it fills would
    /// otherwise declare down the peers whose batches wait in it, their groups would
    /// elect, and the elections load every node more (docs/design.md §4.3). A peer
    /// declared down stays down until a batch of it is stepped: only then is its life
    /// judged, and the groups it left behind caught up.
    pub fn batch_arrived(&mut self, from: NodeId) {
        self.peers.arrived(from);
    }

    /// What a beacon sends for this node while its event loop is late: to every peer, a
    /// heartbeat message of this life carrying no group's beat, no round and no echo. A
    /// peer that steps it hears this node and learns nothing else: no lease rests on it (a
    /// lease counts echoed rounds, which only the loop's own beats carry), and it asks for
    /// no answer. The driver sends these from a thread of its own while the loop is late by
    /// a tick or more — one turn of it (a long call, one ready of a hundred thousand
    /// groups) has lasted that long, or its runtime has left it unpolled that long past
    /// its tick — up to [`MAX_BEACON_TIMEOUTS`](crate::MAX_BEACON_TIMEOUTS) liveness
    /// timeouts, so that a busy node is not declared down while a wedged one still is
    /// (docs/design.md §4.3). Build it again when [`Node::peers_version`] changes.
    pub fn beacon_batches(&self) -> Vec<MessageBatch> {
        // The outbox of a cycle with nothing but the liveness beat, in no round.
        let mut outbox = outbox::Outbox::default();
        for peer in self.peers.ids() {
            outbox.liveness_beat(peer);
        }
        let liveness = crate::message::Liveness {
            incarnation: self.incarnation,
            ..Default::default()
        };
        outbox.finish(self.id, |_| liveness).0
    }

    /// A number that changes whenever this node's peers do (a group added or removed
    /// brings or drops the last one on a node): when [`Node::beacon_batches`] must be
    /// built again.
    pub fn peers_version(&self) -> u64 {
        self.peers.version()
    }

    /// Judges which life of its sender `batch` comes from, by the liveness part of its
    /// first heartbeat message, if it has one (a batch without one cannot tell), and acts
    /// on a restart; returns whether the batch is of an earlier life. Such a batch is stale
    /// whole: a batch comes from one life of its sender, and its other messages left with
    /// its heartbeats (review: only the heartbeats were dropped, an append beside them made
    /// that life leader again, and the batch counted the peer heard).
    fn of_an_earlier_life(&mut self, batch: &MessageBatch) -> bool {
        let liveness = batch.messages.iter().find_map(|m| match &m.body {
            MessageBody::Heartbeats { liveness, .. } if m.from == batch.from && m.to == self.id => {
                Some(liveness)
            }
            _ => None,
        });
        let Some(liveness) = liveness else {
            return false;
        };
        let mine = (self.incarnation, self.round);
        let lease_ticks = u64::from(self.config.lease_ticks);
        let from = batch.from;
        match self
            .peers
            .beat(from, liveness, mine, self.ticks, lease_ticks)
        {
            Life::Current => false,
            Life::New => {
                // Whatever the peer's earlier life led, it leads no more; what it held may
                // be gone.
                self.stats.peer_restarts += 1;
                self.metrics.peer_failures.restarted.increment(1);
                self.nodes_down(&[from], true);
                false
            }
            Life::Earlier => true,
        }
    }

    fn step_message(&mut self, from: NodeId, mut msg: Message) {
        if msg.from != from || msg.to != self.id {
            self.stats.dropped_misaddressed += 1;
            self.metrics.dropped_misaddressed.increment(1);
            return;
        }
        match msg.body {
            MessageBody::Heartbeats { beats, liveness } => {
                // Its life was judged with the batch (`of_an_earlier_life`).
                let round = liveness.round;
                for b in beats {
                    let commit = b.commit;
                    let body = if b.quiesce {
                        MessageBody::Quiesce { commit, round }
                    } else {
                        MessageBody::Heartbeat { commit, round }
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
                for ack in acks {
                    if ack.round > self.round {
                        continue; // see `answers_what_was_asked`
                    }
                    self.step_group(Message {
                        group: ack.group,
                        from,
                        to: self.id,
                        term: ack.term,
                        body: MessageBody::HeartbeatResponse { round: ack.round },
                    });
                }
            }
            _ => {
                if self.admit_receive(&msg) && self.answers_what_was_asked(&mut msg) {
                    self.step_group(msg);
                }
            }
        }
    }

    /// Whether `msg`, if an answer, answers something this node asked, trimmed to what it
    /// asked. An honest peer sends nothing else; each would end or confirm a request that
    /// is not its own (review):
    /// - a heartbeat acknowledgement of a round later than any this node sent: rounds only
    ///   grow, so it would count for every round to come, confirming reads and lease
    ///   without the follower;
    /// - a read index for reads this node does not await in that group: a read of another
    ///   group would be served at that group's index, and a read no one awaits would hold
    ///   a place of `max_pending_reads` until its index is applied.
    fn answers_what_was_asked(&self, msg: &mut Message) -> bool {
        match &mut msg.body {
            MessageBody::HeartbeatResponse { round } => *round <= self.round,
            MessageBody::ReadIndexResponse { ids, .. } => {
                ids.retain(|id| self.requests.awaits_read(msg.group, RequestId(*id)));
                !ids.is_empty()
            }
            _ => true,
        }
    }

    fn step_group(&mut self, msg: Message) {
        let id = msg.group;
        let (groups, mut queues) = self.groups_and_queues();
        if let Some(slot) = groups.get_mut(&id) {
            slot.settle(queues.served);
            slot.group.step(msg);
            return queues.touched(id, slot);
        }
        self.stats.dropped_unknown_group += 1;
        self.metrics.dropped_unknown_group.increment(1);
        self.refuse_unhosted(msg);
    }

    /// Starts an election for `group` now (see [`Replica::campaign`]).
    pub fn campaign(&mut self, group: GroupId) -> Result<(), GroupNotFound> {
        let slot = self.groups.get_mut(&group).ok_or(GroupNotFound(group))?;
        slot.settle(self.served);
        slot.group.campaign();
        self.touched(group);
        Ok(())
    }

    /// Advances the node's logical clock by one tick: every group that is not quiesced
    /// ticks, a liveness beat to every peer node is owed, peers not heard from within the
    /// liveness timeout are declared down (waking the quiesced groups they led), and
    /// proposals past `Config::proposal_timeout_ticks` end indeterminate.
    ///
    /// The same as [`Node::tick_late`] with none missed.
    pub fn tick(&mut self) {
        self.tick_late(0);
    }

    /// Serves a tick that comes late, after `missed` ticks that a stall (an overloaded
    /// event loop, a paused process) kept from being served: the node's clock advances by
    /// `1 + missed` ticks, everything else as for one [`Node::tick`].
    ///
    /// What rests on the clock keeping up with real time counts every tick: a leader's
    /// lease (a lease counted in served ticks would outlive, after a stall, the promise
    /// its followers made, and serve a stale read), proposal and transfer deadlines.
    /// What counts down to an action counts one: election timers and the silence of peer
    /// nodes, so that a stall neither fires elections all at once nor makes the peers
    /// look silent (docs/design.md §4.3). A driver that falls behind must call this, not
    /// skip ticks.
    pub fn tick_late(&mut self, missed: u64) {
        self.ticks += 1 + missed;
        if missed > 0 {
            self.ticks_missed += missed;
            self.metrics.ticks_missed.increment(missed);
        }
        self.beat_due = !self.peers.is_empty();
        for (group, id) in self.requests.expire(self.ticks) {
            if let Some(slot) = self.groups.get_mut(&group) {
                slot.group.forget_read(id.0);
            }
        }
        self.requests.judge_load(self.ticks);
        let timeout = u64::from(self.config.election_timeout_min_ticks);
        let (down, down_now) = self.peers.expire(timeout, missed);
        for peer in &down {
            tracing::warn!(node = %self.id, %peer, "peer node declared down: silent past its liveness timeout");
        }
        self.stats.peers_declared_down += down.len() as u64;
        self.metrics
            .peer_failures
            .silent
            .increment(down.len() as u64);
        self.metrics.set_peers_down(down_now);
        self.nodes_down(&down, false);
        let tick = self.served + 1;
        // Rests that end now rejoin `active` to be ticked with the others, not on the spot:
        // every group then ticks in id order, as without rests, so their outputs come in
        // the same order.
        for id in self.rests.take_due(tick) {
            let Some(slot) = self.groups.get_mut(&id) else {
                continue;
            };
            if slot.place_due(id, tick, &mut self.rests) {
                self.active.insert(id);
            }
        }
        // Quiesced, or resting.
        let mut left = Vec::new();
        let peers = &self.peers;
        let rests = &mut self.rests;
        let mut ids = self.active.iter();
        while ids.len() > 0 {
            warm::replicas(&self.groups, ids.clone().copied());
            for id in ids.by_ref().take(warm::AHEAD) {
                let Some(slot) = self.groups.get_mut(id) else {
                    continue;
                };
                debug_assert!(
                    slot.ticking,
                    "group {id} in `active` but not marked ticking"
                );
                slot.group
                    .tick_knowing(|n| peers.is_live(n), |n| peers.is_down(n));
                if slot.group.is_quiesced() {
                    left.push(*id);
                    slot.ticking = false;
                } else if slot.try_rest(*id, tick, rests) {
                    left.push(*id);
                }
                if slot.group.has_ready() {
                    slot.queue(*id, &mut self.since_sends, &mut self.dirty);
                }
            }
        }
        for id in left {
            self.active.remove(&id);
        }
        self.served = tick;
        // After the groups' ticks, which end stalled transfers.
        self.recheck_deferred_snapshots();
        self.nudge_untold();
        // Once per heartbeat interval of the clock, a late tick's missed ones included.
        let interval = u64::from(self.config.heartbeat_interval_ticks.max(1));
        if (self.ticks - 1 - missed) / interval != self.ticks / interval {
            self.resend_quiet_reads();
        }
        self.offer_send_slots();
        self.metrics
            .set_groups(self.groups.len(), self.active_group_count());
    }

    /// Proposes `data` to `group`. On `Ok` the node took the proposal: its outcome comes
    /// later, exactly once — the entry applied with the returned id in
    /// [`Apply::requests`], or an [`Outcome`] in a ready. `Err` is a definite "not taken".
    pub fn propose(&mut self, group: GroupId, data: Bytes) -> Result<RequestId, ProposeError> {
        self.propose_queued(group, data, self.ticks)
    }

    /// [`Node::propose`] for a proposal that has waited in a queue since tick `queued_at`
    /// (a value of [`Node::ticks`]) before reaching the node: admission control
    /// (`Config::max_commit_wait_ticks`) counts its wait from then, so that a backlog
    /// before the node counts too (docs/design.md §5).
    pub fn propose_queued(
        &mut self,
        group: GroupId,
        data: Bytes,
        queued_at: u64,
    ) -> Result<RequestId, ProposeError> {
        let taken = self.take_proposal(group, data, queued_at.min(self.ticks));
        if let Err(e) = &taken {
            self.metrics.proposals.refused(e);
        }
        taken
    }

    fn take_proposal(
        &mut self,
        group: GroupId,
        data: Bytes,
        queued_at: u64,
    ) -> Result<RequestId, ProposeError> {
        self.requests
            .admits(group, self.config.max_pending_proposals)?;
        let slot = self
            .groups
            .get_mut(&group)
            .ok_or(ProposeError::GroupNotFound(group))?;
        let (term, leader) = slot.group.leadership();
        let deadline = self.ticks + u64::from(self.config.proposal_timeout_ticks);
        let request = self
            .requests
            .propose(group, (term, leader), deadline, queued_at);
        let id = ProposalId {
            node: self.id,
            seq: request.0,
        };
        slot.settle(self.served);
        match slot.group.propose(id, data) {
            Ok(()) => {
                // The slot is at hand: no second lookup (`touched` would make one).
                let mut queues = Queues {
                    served: self.served,
                    rests: &mut self.rests,
                    active: &mut self.active,
                    dirty: &mut self.dirty,
                    since_sends: &mut self.since_sends,
                };
                queues.touched(group, slot);
                Ok(request)
            }
            Err(e) => {
                self.requests.withdraw(request);
                Err(e)
            }
        }
    }

    /// `peer`, declared down, is heard again (the same life: a restart is judged apart).
    /// The leaders that went quiet without its replicas (`Replica::tick_knowing`) wake to
    /// catch them up: nothing else would while the group is idle. Like `nodes_down`, rare,
    /// so a scan of every group.
    fn node_back(&mut self, peer: NodeId) {
        for id in self.group_ids().collect::<Vec<_>>() {
            let Some(slot) = self.groups.get_mut(&id) else {
                continue;
            };
            slot.settle(self.served);
            slot.group.on_node_back(peer);
            if slot.keep_ticking(self.served, &mut self.rests) {
                self.active.insert(id);
            }
        }
    }

    /// Peer nodes went down, or `restarted` (which ends their earlier life's leadership and
    /// perhaps their data): every group that depends on one reacts
    /// ([`Replica::on_node_down`], [`Replica::on_node_restarted`]). Rare, so one of the two
    /// times (with `node_back`) a scan of every group is worth it.
    fn nodes_down(&mut self, down: &[NodeId], restarted: bool) {
        if down.is_empty() {
            return;
        }
        let peers = &self.peers;
        for id in self.group_ids().collect::<Vec<_>>() {
            let Some(slot) = self.groups.get_mut(&id) else {
                continue;
            };
            slot.settle(self.served);
            for peer in down {
                if restarted {
                    slot.group.on_node_restarted(*peer);
                } else {
                    slot.group.on_node_down_with(*peer, |n| peers.is_live(n));
                }
            }
            if slot.keep_ticking(self.served, &mut self.rests) {
                self.active.insert(id);
            }
        }
    }

    /// Sends the quiet beats of every quiesced leader whose reads wait on a round again,
    /// every heartbeat interval as an active leader's heartbeats go: a quiesced group is
    /// not ticked, so a beat or an acknowledgement lost left its reads waiting until their
    /// deadline (review). An acknowledgement of the later round confirms them as well.
    fn resend_quiet_reads(&mut self) {
        let mut quiet = std::mem::take(&mut self.quiet_reads);
        let (groups, mut queues) = self.groups_and_queues();
        quiet.retain(|id| {
            let Some(slot) = groups.get_mut(id) else {
                return false;
            };
            if !slot.group.resend_read_beats() {
                return false;
            }
            queues.mark(*id, slot);
            true
        });
        self.quiet_reads = quiet;
    }

    /// Starts a linearizable read of `group` under `policy`.
    ///
    /// - [`ReadStart::Now`]: the read point is already applied here (a lease read on an
    ///   up-to-date leader): serve the read at once, before anything else is applied.
    /// - [`ReadStart::Taken`]: the node took it, and it ends exactly once — in
    ///   [`Ready::reads`] once this node's state machine of the group has applied the read
    ///   point (serve the read there, after that ready's applies), or with a
    ///   [`Resolution::ReadFailed`] outcome.
    ///
    /// A read never changes anything, so no outcome is indeterminate.
    pub fn read(&mut self, group: GroupId, policy: ReadPolicy) -> Result<ReadStart, ReadError> {
        if policy == ReadPolicy::Lease
            && let Some(slot) = self.groups.get(&group)
        {
            let (peers, now) = (&self.peers, self.ticks);
            if let Some(index) = slot.group.read_now(now, |n| peers.leased_since(n, now)) {
                return Ok(ReadStart::Now { index });
            }
        }
        if self.requests.pending_reads() >= self.config.max_pending_reads {
            return Err(ReadError::Busy {
                limit: "max_pending_reads",
            });
        }
        let slot = self
            .groups
            .get_mut(&group)
            .ok_or(ReadError::GroupNotFound(group))?;
        let deadline = self.ticks + u64::from(self.config.proposal_timeout_ticks);
        let request = self.requests.read(group, deadline);
        let (peers, now) = (&self.peers, self.ticks);
        match slot
            .group
            .read(request.0, policy, now, |n| peers.leased_since(n, now))
        {
            Ok(()) => {
                // No `touched`: a read does not wake a quiesced group.
                self.mark(group);
                Ok(ReadStart::Taken(request))
            }
            Err(e) => {
                self.requests.withdraw(request);
                Err(e)
            }
        }
    }

    /// The next heartbeat round: strictly greater than every earlier one of this life, with
    /// the current tick in its high bits (`ROUND_SEQ_BITS`). 0 when this tick's rounds ran
    /// out (a million readies in one tick): reads then wait for the next tick.
    fn next_round(&mut self) -> u64 {
        use crate::message::ROUND_SEQ_BITS;
        let base = self.ticks << ROUND_SEQ_BITS;
        let next = if self.round >= base {
            self.round + 1
        } else {
            base | 1
        };
        if next >> ROUND_SEQ_BITS != self.ticks {
            return 0;
        }
        self.round = next;
        next
    }

    /// Ends every request still without an outcome as indeterminate (the node stopped), and
    /// returns those outcomes. For the driver's shutdown; the node takes no request after it.
    pub fn stop(&mut self) -> Vec<Outcome> {
        self.requests.stop()
    }

    /// A group received input: queue it for the next ready, and keep ticking it unless it
    /// is quiesced.
    fn touched(&mut self, id: GroupId) {
        let (groups, mut queues) = self.groups_and_queues();
        if let Some(slot) = groups.get_mut(&id) {
            queues.touched(id, slot);
        }
    }

    fn mark(&mut self, id: GroupId) {
        let (groups, mut queues) = self.groups_and_queues();
        if let Some(slot) = groups.get_mut(&id) {
            queues.mark(id, slot);
        }
    }

    /// The map of groups and the queues, borrowed apart.
    fn groups_and_queues(&mut self) -> (&mut FxHashMap<GroupId, Box<Slot>>, Queues<'_>) {
        let queues = Queues {
            served: self.served,
            rests: &mut self.rests,
            active: &mut self.active,
            dirty: &mut self.dirty,
            since_sends: &mut self.since_sends,
        };
        (&mut self.groups, queues)
    }
}

/// The node's queues of groups, borrowed apart from its map of groups, so that a caller
/// holding a group's slot queues it without looking it up again (a lookup per message
/// showed in profiles of a thousand busy groups).
struct Queues<'a> {
    /// [`Node::served`](Node): what a resting group's timer is counted up to.
    served: u64,
    rests: &'a mut Rests,
    active: &'a mut BTreeSet<GroupId>,
    dirty: &'a mut VecDeque<GroupId>,
    since_sends: &'a mut Vec<GroupId>,
}

impl Queues<'_> {
    /// `slot`'s group received input: queue it for the next ready, and keep ticking it
    /// unless it is quiesced.
    fn touched(&mut self, id: GroupId, slot: &mut Slot) {
        if slot.keep_ticking(self.served, self.rests) {
            self.active.insert(id);
        }
        self.mark(id, slot);
    }

    /// `slot`'s group may have output: queue it for the next ready and the next
    /// `take_sends`.
    fn mark(&mut self, id: GroupId, slot: &mut Slot) {
        slot.queue(id, self.since_sends, self.dirty);
    }
}

#[cfg(test)]
mod quiescence_tests;
#[cfg(test)]
mod tests;
