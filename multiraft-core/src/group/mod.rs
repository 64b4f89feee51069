//! One Raft group, sans-IO: a deterministic state machine over messages, ticks and
//! proposals, whose outputs are data.
//!
//! # Call order
//!
//! 1. Feed inputs: [`Replica::step`], [`Replica::tick`], [`Replica::propose`].
//! 2. When [`Replica::has_ready`], take a [`ReplicaReady`] with [`Replica::ready`].
//! 3. Persist its `hard_state` and `entries`; send `send_now` at once; apply `apply` in order.
//! 4. Once the write is durable, call [`Replica::on_persisted`] with the last written entry's
//!    index and term, then send `send_after_write`.
//!
//! The group never reads a clock, does IO or spawns; randomness comes from the seed it is
//! given. Feeding the same inputs to a group built with the same seed yields the same outputs.

// This file holds the types, construction and the dispatch of messages (`step`); the
// `impl Replica` goes on by concern in the files below.
mod changes; // membership changes on the leader: joint configurations, promotion, removal
mod configs; // the memberships in the log, and which one is in force
mod election; // the clock, CheckQuorum, campaigns, votes, role changes
mod forwarding; // proposals, forwarded to the leader from a follower
mod log; // the in-memory log and its durable/committed/applied marks
mod output; // the output buffer and `ready`
mod progress; // the leader's record of each follower
mod quiescence; // idle groups stop ticking; waking them
mod reads; // ReadIndex, lease and follower reads
mod replication; // appends and heartbeats, both sides; commit
mod report; // the leader's view of its followers, for status pages
mod snapshots; // taking, sending, receiving and restoring snapshots; compaction
mod strict; // invariant checks of `Config::strict`
mod transfer; // leadership transfer
mod warm; // what a cycle reads first, read ahead for many groups at once

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Config, ConfigError};
use crate::entries::Entries;
use crate::entry::{Entry, HardState, Payload};
use crate::entry_runs::EntryRuns;
use crate::error::{MembershipChangeError, ProposeError, ReadError, StartError};
use crate::ids::{GroupId, NodeId, ProposalId};
use crate::membership::Membership;
use crate::message::{Message, MessageBody};
use crate::rng::Rng;
use crate::snapshot::{SnapshotChunk, SnapshotMeta};
use crate::storage::{Compacted, LoadedGroup};

use self::log::Log;
use self::progress::ProgressMap;
use self::reads::Reads;
use self::transfer::Transfer;

pub use self::election::DEFERRED_TIMEOUTS;
pub use self::reads::ReadPolicy;
pub use self::report::FollowerStatus;
pub use self::snapshots::{ChunkRead, SENDING_LOG_FACTOR};

/// What a replica currently does in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win an election, without changing term (dissertation §9.6).
    PreCandidate,
    /// Campaigns in a new term (Raft §5.2).
    Candidate,
    /// Leads the group.
    Leader,
    /// Receives the log; never votes, never campaigns, never counts toward a quorum.
    Learner,
}

/// Something that happened to a group, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// The known leader or term changed. Reported on every replica, followers included.
    LeaderChanged {
        /// The current term.
        term: u64,
        /// The leader of `term`, if known.
        leader: Option<NodeId>,
    },
    /// This replica started a campaign: a pre-vote round, or a vote round not preceded by
    /// one (the vote round a won pre-vote leads to is part of the same campaign).
    ElectionStarted,
    /// A leadership transfer to `to` took an election timeout and was abandoned; this
    /// replica still leads.
    TransferAborted {
        /// The target of the transfer.
        to: NodeId,
    },
    /// The membership in force changed: a membership entry was appended (effective at
    /// once, committed or not) or truncated, or a snapshot brought one. Reported on every
    /// replica.
    MembershipChanged {
        /// The membership now in force.
        membership: Membership,
    },
    /// The membership change this leader took ended (only on the leader that took it).
    MembershipChangeEnded {
        /// The membership the change ended in, or why it did not.
        result: Result<Membership, MembershipChangeError>,
    },
    /// This replica was removed from the group, and the application may delete it
    /// (`remove_group`): the leader said so once the replica held the committed membership
    /// that left it out, or this replica led and stepped down. Reported once; a replica
    /// that restarts before it is deleted is not told again (it no longer hears from the
    /// group: compare with the leader's membership to find it).
    Removed,
}

/// The outputs of a group, taken with [`Replica::ready`].
///
/// Laid out in the order declared (`repr(C)`): the outputs of every busy cycle first —
/// hard state, entries, messages, applies, reads, three cache lines — then those of
/// elections, reads that fail, refusals, membership changes and snapshots. A node visiting
/// a group that wrote none of the latter reads and clears only the first lines: at
/// thousands of busy groups each group's buffer is cold when its turn comes (BENCHMARKS.md,
/// "The outputs of a busy cycle first").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ReplicaReady {
    /// Hard state to persist, when it changed.
    pub hard_state: Option<HardState>,
    /// Entries to persist (a first index at or below the stored last index truncates), as
    /// the runs of the log they are in.
    pub entries: EntryRuns,
    /// Messages that may leave now: the leader's appends and heartbeats (§10.2.1: a leader
    /// may send before its own write is durable).
    pub send_now: Vec<Message>,
    /// Messages that must wait until `hard_state` and `entries` are durable: votes, append
    /// acknowledgements, a candidate's requests.
    pub send_after_write: Vec<Message>,
    /// Committed entries, durable here, to apply in order: the runs of the log they are in
    /// (shared, not copied), consecutive.
    pub apply: Vec<Entries>,
    /// Reads of this node whose read point the state machine has reached with this
    /// ready's `apply`: (read id, read index). Serve each after applying `apply`.
    pub reads: Vec<(u64, u64)>,
    /// This node's proposals that will not be appended — refused by the replica they were
    /// forwarded to (or passed on by one that forwarded them further), or given up here (no
    /// leader to forward them to, or forwarding off): definitely not appended. Another
    /// node's go to that node as `ProposeRejected`.
    pub rejected: Vec<(ProposalId, ProposeError)>,
    /// Events since the last ready.
    pub events: Vec<GroupEvent>,
    /// Reads of this node that failed.
    pub read_failures: Vec<(u64, ReadError)>,
    /// Snapshot chunks received from the leader, to persist with `entries` (before them).
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// Replace the stored log by an empty one after this entry (with `snapshot_chunks`,
    /// whose last chunk completes a snapshot the log does not hold).
    pub log_reset: Option<Compacted>,
    /// Compact the stored log up to here (a snapshot covers it).
    pub compact_to: Option<u64>,
    /// A joining replica caught up, and the membership in force at its commit index has
    /// it: store this membership in place of the one it was created with, so that it is
    /// no longer joining after a restart.
    pub joined: Option<Membership>,
    /// Followers that need the snapshot: the node admits each transfer
    /// ([`Replica::admit_snapshot`]) or asks again later.
    pub snapshot_wanted: Vec<NodeId>,
    /// Snapshot chunks to read from storage and hand back with [`Replica::chunk_read`].
    pub chunk_reads: Vec<ChunkRead>,
    /// Once this ready's write is durable, restore the state machine from the stored
    /// snapshot, then call [`Replica::restored`].
    pub restore: Option<SnapshotMeta>,
    /// Removed replicas this leader stopped tracking before it could tell them (silent for
    /// an election timeout while they retired, or still retiring when it stepped down), with
    /// the term it led in: the node nudges
    /// each for a while (docs/design.md §4.7), since one that went quiet following this
    /// leader would otherwise never ask.
    pub forgotten: Vec<(NodeId, u64)>,
}

impl ReplicaReady {
    /// Empties every list and option, keeping the lists' memory.
    pub fn clear(&mut self) {
        // Destructured, so that a new field cannot be forgotten here; a busy cycle's
        // outputs are `clear_common`'s.
        let ReplicaReady {
            hard_state: _,
            entries: _,
            send_now: _,
            send_after_write: _,
            apply: _,
            reads: _,
            rejected,
            events,
            read_failures,
            snapshot_chunks,
            log_reset,
            compact_to,
            joined,
            snapshot_wanted,
            chunk_reads,
            restore,
            forgotten,
        } = self;
        rejected.clear();
        events.clear();
        read_failures.clear();
        snapshot_chunks.clear();
        *log_reset = None;
        *compact_to = None;
        *joined = None;
        snapshot_wanted.clear();
        chunk_reads.clear();
        *restore = None;
        forgotten.clear();
        self.clear_common();
    }

    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.is_empty_common() && self.is_empty_rare()
    }

    /// Empties the outputs of a busy cycle (the first lines), keeping the lists' memory;
    /// the others must be empty already.
    pub(crate) fn clear_common(&mut self) {
        self.hard_state = None;
        self.entries = EntryRuns::new();
        self.send_now.clear();
        self.send_after_write.clear();
        self.apply.clear();
        self.reads.clear();
        debug_assert!(self.is_empty_rare(), "rare outputs left in a buffer");
    }

    /// Whether the outputs of a busy cycle are empty.
    pub(crate) fn is_empty_common(&self) -> bool {
        self.hard_state.is_none()
            && self.entries.is_empty()
            && self.send_now.is_empty()
            && self.send_after_write.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
    }

    /// Whether the other outputs are empty.
    pub(crate) fn is_empty_rare(&self) -> bool {
        self.rejected.is_empty()
            && self.events.is_empty()
            && self.read_failures.is_empty()
            && self.snapshot_chunks.is_empty()
            && self.compact_to.is_none()
            && self.joined.is_none()
            && self.log_reset.is_none()
            && self.snapshot_wanted.is_empty()
            && self.chunk_reads.is_empty()
            && self.restore.is_none()
            && self.forgotten.is_empty()
    }
}

/// A snapshot of a group's state, for tests, metrics and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// This replica's role.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// Vote cast in `term`.
    pub vote: Option<NodeId>,
    /// The leader known for `term`.
    pub leader: Option<NodeId>,
    /// Index of the last entry.
    pub last_index: u64,
    /// Highest index known committed.
    pub commit: u64,
    /// Highest index durable on this node.
    pub persisted: u64,
    /// Highest index handed to the state machine.
    pub applied: u64,
    /// The first index the log holds; the entries before it are compacted, covered by the
    /// snapshot at `snapshot_index`.
    pub first_index: u64,
    /// The index of the latest snapshot stored on this node (0: none).
    pub snapshot_index: u64,
    /// This replica was told, in this life, that its group removed it
    /// ([`Replica::is_removed`]; the node's `Event::ReplicaRemoved`): it only waits to be
    /// deleted. Events are best effort, lost to a subscriber that lags; this is not.
    #[serde(default)]
    pub removed: bool,
    /// The membership in force (the latest in the log, `MultiRaft::membership`) is
    /// committed on this replica's log: no later leader can roll it back. While it is not,
    /// a change that ended `Indeterminate` may still be undone, so an application that
    /// asks whether a change took effect reads it as done only when this holds and the
    /// membership is not joint (a committed joint configuration is a change half done).
    #[serde(default)]
    pub membership_committed: bool,
}

/// Where a replica stands in joining its group (`Node::join_group`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Join {
    /// Created to join, and not yet caught up.
    Joining,
    /// Caught up, and not yet stored so: the membership in force at the commit index does
    /// not have this replica yet (`Replica::save_joined`).
    Unsaved,
    /// A member like any other (created with the group, or joined and stored so).
    Member,
}

/// Why a replica refuses candidates for longer than its leader's lease (the election
/// timer since it last heard its leader, while it knows one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VoteHold {
    /// No reason: the lease alone.
    None,
    /// Restored from storage, not yet an election timeout old and not yet following a
    /// leader: it refuses everyone, as it may have promised a leader before the restart (a
    /// lease, §6.4.1).
    Restarted,
    /// A follower whose timer ran out but which holds back its own campaign because its
    /// leader's node is live (`defers_campaign`, refreshed at every tick past the timeout):
    /// it refuses other candidates for as long as it knows that leader. A replica that
    /// will not campaign against a busy leader does not help another to (docs/design.md
    /// §4.3).
    Deferring,
}

/// What a follower's leader of the current term said beyond leading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeaderSaid {
    /// Nothing more: the group is active.
    Nothing,
    /// The group went quiet (`Quiesce`). While the leader's node is live the election timer
    /// stays stopped, even if this replica woke: the leader's quiesced lease counts on it
    /// (`reads.rs`).
    Quiet,
    /// It leads this term no more (`Replica::leader_disowned`); the follower has no leader.
    /// What it sent in this term and arrives later left before that and is stale: it
    /// neither makes it this follower's leader again nor quiets the group. Until the term
    /// changes.
    Stopped,
}

/// One replica of one Raft group.
#[derive(Debug)]
pub struct Replica {
    id: GroupId,
    node: NodeId,
    config: Arc<Config>,
    /// Shared with every group of the node that has the same members: one allocation for
    /// thousands of groups.
    membership: Arc<Membership>,
    role: Role,
    term: u64,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    log: Log,
    rng: Rng,
    election_elapsed: u32,
    randomized_timeout: u32,
    /// Leader: ticks since its last heartbeat round. A replica whose election timer stands
    /// still for a quiet leader's live node: ticks since it last asked to be tracked
    /// (`Replica::ask_if_unheard`). Two bytes, as `idle_ticks`: together they take the room
    /// one `u32` took, and every replica pays for its inline size.
    heartbeat_elapsed: u16,
    /// Leader: ticks since it last appended a command or a membership entry (not counting
    /// while quiesced; from the maximum after its election). It quiesces only once this
    /// reaches an election timeout: a group with a proposal every few ticks went quiet and
    /// woke again between each, paying a quiesce notice, a wake and its buffers' shrinking
    /// and regrowth every time (BENCHMARKS.md, "Quiescence after an idle election
    /// timeout").
    idle_ticks: u16,
    /// Leader: a heartbeat round went out since commit notices last did. A follower owed
    /// only a newer commit index (no entries) that the round's heartbeat did not carry (it
    /// holds less) is told when this is set; between rounds the notice waits for the next
    /// append with entries, which carries it anyway. Sent at once, it doubled the messages
    /// of a group whose every append is followed by its commit (a few closed-loop clients
    /// per group, BENCHMARKS.md), for followers that apply nothing the clients wait for;
    /// sent at every tick, it repeated what the heartbeats tell. Deferred, a follower
    /// applies at most two heartbeat intervals later (a round may leave it out,
    /// `Progress::skips_heartbeat`).
    commit_notice_due: bool,
    /// Votes received in the current (pre-)campaign.
    votes: self::election::Votes,
    /// The leader's record of every other replica.
    progress: ProgressMap,
    /// Bytes of entries appended by this leader and not yet committed.
    uncommitted_bytes: usize,
    /// Proposals waiting to be forwarded to the leader at the next ready.
    forward: Vec<(ProposalId, Bytes)>,
    hard_state_dirty: bool,
    /// Neither ticks nor heartbeats: everything is replicated and committed, and the leader
    /// said so (see [`Replica::is_quiesced`]).
    quiesced: bool,
    /// The (term, leader) last reported in an event.
    reported: (u64, Option<NodeId>),
    /// Reads in progress (`reads.rs`).
    reads: Reads,
    /// Leader: a leadership transfer in progress (boxed: rare, and every group pays for the
    /// inline size).
    transfer: Option<Box<Transfer>>,
    /// Leader: a `TimeoutNow` went out in this term, so the lease is gone for good.
    lease_revoked: bool,
    /// Quiesced leader: the round its quiesce notice left in (0: not yet sent).
    quiet_round: u64,
    /// Follower: what its leader of this term said beyond leading (the group went quiet,
    /// or it leads no more).
    leader_said: LeaderSaid,
    /// Follower: the round of the latest quiesce notice from the current leader (0: none).
    quiet_seen: u64,
    /// Why this replica refuses candidates beyond its leader's lease, if it does.
    vote_hold: VoteHold,
    /// The latest snapshot of this replica durable in storage, as (index, term): what
    /// compaction stays below and what a leader sends to a follower behind its log.
    snapshot: Option<(u64, u64)>,
    /// Whether this replica's snapshots work, failed, or are unsupported.
    taking: self::snapshots::Taking,
    /// Follower: a snapshot being received from the leader (boxed: rare, and every group
    /// pays for the inline size).
    incoming: Option<Box<self::snapshots::Incoming>>,
    /// The state machine is being restored from the snapshot at this index: nothing is
    /// applied until the node says it is done ([`Replica::restored`]).
    restoring: Option<u64>,
    /// Membership entries above the applied index (`configs.rs`); `None` in a group
    /// whose log holds none, which is nearly every group.
    configs: Option<Box<self::configs::Configs>>,
    /// Leader: the membership change in progress (`changes.rs`).
    change: Option<Box<self::changes::Change>>,
    /// [`GroupEvent::Removed`] was reported.
    removed: bool,
    /// Created to join a running group and not yet caught up (`Node::join_group`): it
    /// neither campaigns nor votes, whatever the memberships in its log say, until it holds
    /// everything its leader had committed (`changes.rs`); then joined but not yet stored
    /// so (`Join::Unsaved`); then a member like any other. Joining is persisted as a stored
    /// membership that leaves this node out. One byte for the three states: the replica's
    /// inline size is what every quiesced group costs.
    join: Join,
    /// Leader elected by its own vote alone (the only voter), in a term not yet durable:
    /// until its first entry of the term is, nothing it sends may leave before the write
    /// (`send_now_msg`), or a crash could bring it back in the old term after a learner
    /// took entries of the new one — and a second leader of that term could write others
    /// at the same indexes (simulator, seed 193).
    term_unsaved: bool,
    /// Outputs accumulated since the last ready; `None` (no allocation) in a quiesced group.
    out: Option<Box<ReplicaReady>>,
    /// What was put in `out` since it was last taken or dropped. Only if something was
    /// does [`Replica::has_ready`] look inside it: the buffer is a separate allocation of
    /// nine cache lines, and at thousands of busy groups reading it for a group with
    /// nothing new missed the caches (BENCHMARKS.md).
    out_written: Written,
}

/// What a replica put in its output buffer since it was last taken or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    Nothing,
    /// Only the outputs of a busy cycle (messages, entries, applies, reads).
    Busy,
    /// Others too (events, refusals, failed reads, snapshots, membership): only then does
    /// the node read the buffer's other lines ([`ReplicaReady`]'s layout says why).
    Rare,
}

impl Replica {
    /// A new, empty replica of `id` on `node`. `Err` if `config` fails
    /// [`Config::validate`]: the group layer used alone panicked on some (equal election
    /// timeouts divided by zero) and ran unsafely on others (a lease past the election
    /// timeout).
    pub fn new(
        id: GroupId,
        node: NodeId,
        membership: impl Into<Arc<Membership>>,
        config: Arc<Config>,
        seed: u64,
    ) -> Result<Replica, ConfigError> {
        config.validate()?;
        Ok(Self::create(id, node, membership.into(), config, seed))
    }

    /// [`Replica::new`] with a config already validated (the node's, by `Node::new`).
    pub(crate) fn create(
        id: GroupId,
        node: NodeId,
        membership: Arc<Membership>,
        config: Arc<Config>,
        seed: u64,
    ) -> Replica {
        Self::build(
            id,
            node,
            membership,
            HardState::default(),
            Log::default(),
            config,
            seed,
        )
    }

    /// A replica restored from what storage held at start: its log after the compacted
    /// prefix, and its latest snapshot, which the state machine is restored from first (the
    /// first ready asks for it). A log compacted past its snapshot, or without one, cannot
    /// be restored ([`StartError::CompactedLog`]); nor can one that breaks what every
    /// correct storage returns ([`LoadedGroup::validate`], as [`StartError::Storage`]); nor
    /// with a `config` that fails [`Config::validate`] ([`StartError::Config`]).
    pub fn restore(
        node: NodeId,
        loaded: LoadedGroup,
        config: Arc<Config>,
        seed: u64,
    ) -> Result<Replica, StartError> {
        config.validate()?;
        Self::restore_valid(node, loaded, config, seed)
    }

    /// [`Replica::restore`] with a config already validated (the node's, by `Node::new`).
    pub(crate) fn restore_valid(
        node: NodeId,
        loaded: LoadedGroup,
        config: Arc<Config>,
        seed: u64,
    ) -> Result<Replica, StartError> {
        loaded.validate()?;
        let base = loaded.compacted.map_or((0, 0), |c| (c.index, c.term));
        let snapshot_index = loaded.snapshot.as_ref().map_or(0, |s| s.index);
        if base.0 > snapshot_index {
            return Err(StartError::CompactedLog(loaded.group));
        }
        // Membership entries past the snapshot are in force as in any log (dissertation
        // §4.1); before them, the snapshot's membership, or the one the group was created
        // with.
        let configs: Vec<Entry> = loaded
            .entries
            .iter()
            .filter(|e| e.index > snapshot_index && matches!(e.payload, Payload::Membership(_)))
            .cloned()
            .collect();
        // Joining until caught up, as the stored membership says (`Node::join_group`); not
        // as a snapshot's says, which may be from a time this node was a member before.
        let joining = !loaded.membership.contains(node);
        let membership = loaded
            .snapshot
            .as_ref()
            .map_or(loaded.membership, |s| s.membership.clone());
        let log = Log::restored(
            base,
            loaded.entries,
            loaded.hard_state.commit,
            snapshot_index,
        );
        let mut replica = Self::build(
            loaded.group,
            node,
            Arc::new(membership),
            loaded.hard_state,
            log,
            config,
            seed,
        );
        if replica.config.check_quorum {
            replica.vote_hold = VoteHold::Restarted;
        }
        replica.join = if joining { Join::Joining } else { Join::Member };
        replica.refresh_role();
        if let Some(meta) = loaded.snapshot {
            replica.restoring = Some(meta.index);
            replica.snapshot = Some((meta.index, meta.term));
            replica.out_rare().restore = Some(meta);
        }
        replica.appended_configs(&configs);
        Ok(replica)
    }

    fn build(
        id: GroupId,
        node: NodeId,
        membership: Arc<Membership>,
        hs: HardState,
        log: Log,
        config: Arc<Config>,
        seed: u64,
    ) -> Replica {
        let mut g = Replica {
            id,
            node,
            config,
            membership,
            role: Role::Follower,
            term: hs.term,
            vote: hs.vote,
            leader: None,
            log,
            rng: Rng::new(seed),
            election_elapsed: 0,
            randomized_timeout: 0,
            heartbeat_elapsed: 0,
            idle_ticks: 0,
            commit_notice_due: false,
            votes: Default::default(),
            progress: ProgressMap::default(),
            uncommitted_bytes: 0,
            forward: Vec::new(),
            hard_state_dirty: false,
            quiesced: false,
            reported: (hs.term, None),
            reads: Reads::default(),
            transfer: None,
            lease_revoked: false,
            quiet_round: 0,
            leader_said: LeaderSaid::Nothing,
            quiet_seen: 0,
            vote_hold: VoteHold::None,
            snapshot: None,
            taking: self::snapshots::Taking::Works,
            incoming: None,
            restoring: None,
            configs: None,
            change: None,
            removed: false,
            term_unsaved: false,
            join: Join::Member,
            out: None,
            out_written: Written::Nothing,
        };
        if !g.membership.contains(node) {
            g.join = Join::Joining;
        }
        g.become_follower(hs.term, None);
        g
    }

    /// Ends the refusal to vote that follows a restart, as if an election timeout had
    /// passed: for tests of the vote rules.
    #[cfg(test)]
    pub(crate) fn end_vote_hold(&mut self) {
        self.vote_hold = VoteHold::None;
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The current membership.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Whether this replica joins a group that already runs (`Node::join_group`) and has
    /// not yet caught up with what its leader had committed: it neither votes nor
    /// campaigns, and ignores `MessageBody::Removed` (a late one may be meant for its
    /// node's previous replica of the group).
    pub fn is_joining(&self) -> bool {
        self.join == Join::Joining
    }

    /// Whether this replica reported, in this life, that it was removed from its group
    /// ([`GroupEvent::Removed`], the node's `Event::ReplicaRemoved`): it only waits to be
    /// deleted.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Whether this replica's storage says it is a member: created with the group, or
    /// joined and stored so (`Replica::save_joined`). What its answers say
    /// (`AppendResponse::joined`).
    pub(crate) fn stored_member(&self) -> bool {
        self.join == Join::Member
    }

    /// The current membership, shared.
    pub(crate) fn membership_arc(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// Replaces the membership by an equal value shared with other groups.
    pub(crate) fn share_membership(&mut self, shared: Arc<Membership>) {
        debug_assert_eq!(*shared, *self.membership);
        self.membership = shared;
    }

    /// The state of this replica.
    pub fn status(&self) -> GroupStatus {
        GroupStatus {
            group: self.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            last_index: self.log.last_index(),
            commit: self.log.committed,
            persisted: self.log.persisted,
            applied: self.log.applied,
            first_index: self.log.first_index(),
            snapshot_index: self.snapshot.map_or(0, |s| s.0),
            removed: self.removed,
            membership_committed: !self.config_uncommitted(),
        }
    }

    /// The current term and the leader known for it: what a request's outcome depends on,
    /// without building a whole [`GroupStatus`] on the proposal path.
    pub fn leadership(&self) -> (u64, Option<NodeId>) {
        (self.term, self.leader)
    }

    /// The term of the last entry handed to the state machine (or of the snapshot it was
    /// restored from); 0 while a snapshot past it is being installed.
    pub(crate) fn applied_term(&self) -> u64 {
        self.log.term(self.log.applied).unwrap_or(0)
    }

    /// Copies of the entries with index in `[low, high)` held in memory (none below
    /// [`Replica::first_index`]).
    pub fn entries(&self, low: u64, high: u64) -> Vec<Entry> {
        self.log.copied(low, high)
    }

    /// The first index the log holds: entries before it are compacted away, covered by a
    /// snapshot.
    pub fn first_index(&self) -> u64 {
        self.log.first_index()
    }

    /// The term of the entry at `index`, if the log holds it or it is the last compacted
    /// one.
    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Feeds a message from another replica. Messages for another group or node, and
    /// messages from non-members, are ignored.
    pub fn step(&mut self, msg: Message) {
        if msg.group != self.id || msg.to != self.node || msg.from == self.node {
            return;
        }
        if let MessageBody::Unheard { replica, term } = msg.body {
            // No news of a term, whoever sends it: a replica of a later term, once
            // tracked, would refuse the appends and depose this leader.
            return self.step_unheard(msg.from, msg.term, replica, term);
        }
        // A non-member's answers that would raise this replica's term are dropped: a
        // removed replica that campaigned alone must not depose a leader it answers.
        // Everything else is heard whoever sends it. What a leader sends (§4.1): this
        // replica's membership may be one that leader's log truncates, or one that removed
        // the leader, which leads until that is committed (§4.2.2) — dropping it, the
        // replica would never learn better (simulator, seeds 1385 and 1608). Vote
        // requests: this replica's membership may be stale, and its vote needed by a
        // candidate whose membership is newer (seed 2139); the candidate counts only its
        // own membership's voters. But while this replica hears from a leader, a
        // non-member's vote request is dropped, CheckQuorum or not (dissertation §4.2.3):
        // a removed replica that never learned it would otherwise depose the leader at
        // every election timeout of its own (seed 3499, without PreVote).
        // A replica this leader tracks while it retires is no member here either: tracked
        // again by its node's nudge (`node/untold.rs`), one that had campaigned alone to a
        // later term deposed the leader with its first answer (review).
        let member = self.membership.contains(msg.from)
            || self.leader == Some(msg.from)
            || self.role == Role::Leader
                && self
                    .progress
                    .get(&msg.from)
                    .is_some_and(|p| p.retire_at == 0);
        let heard = matches!(
            msg.body,
            MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Quiesce { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::TimeoutNow
                | MessageBody::Removed { .. }
                | MessageBody::Vote { .. }
                // Forwarding's term is the forwarder's, outside the term rules.
                | MessageBody::Propose { .. }
                | MessageBody::ProposeRejected { .. }
        );
        if !member && !heard && msg.term > self.term {
            return;
        }
        // A leader hears itself: its election timer is no measure of that, and a leader
        // that quiesced on the tick its timer reached the minimum kept it there, so the
        // first vote to wake it was answered (simulator, seed 121).
        let hears_a_leader = self.role == Role::Leader
            || self.leader.is_some()
                && self.election_elapsed < self.config.election_timeout_min_ticks;
        // A replica the leader still tracks while it retires is no member here: its vote
        // counts for nothing, and a leader without CheckQuorum adopted its term and was
        // deposed by a removed replica that never learned it (simulator, seed 121).
        let voter_or_leader = self.membership.contains(msg.from) || self.leader == Some(msg.from);
        if !voter_or_leader && hears_a_leader && matches!(msg.body, MessageBody::Vote { .. }) {
            // Unanswered, but a removed replica that never learned it is told now — if its
            // own term is no later than ours (a pre-vote asks for the term after its own).
            // One of a later term would refuse our appends and, once tracked, depose us
            // with its answers (simulator, seeds 482, 1152 and 1335, without PreVote).
            // A follower relays the request to its leader (`MessageBody::Unheard`): the
            // removed replica's membership may not name the current leader, and it asks
            // only the voters it names.
            let pre_vote = matches!(msg.body, MessageBody::Vote { pre_vote: true, .. });
            let term = msg.term.saturating_sub(u64::from(pre_vote));
            self.heard_unheard(msg.from, term);
            return;
        }
        self.step_inner(msg);
        self.check_invariants();
    }

    fn step_inner(&mut self, msg: Message) {
        if let MessageBody::Heartbeat { commit, round } = msg.body
            && round != 0
            && round < self.quiet_seen
            && msg.term == self.term
            && self.leader == Some(msg.from)
        {
            // A heartbeat that left before the quiesce notice (a read round's, say) and
            // arrived after it: answered, since a read round counts the answer, but it is
            // no news — waking on it would restart an election timer the leader no longer
            // feeds (found by the simulator, seed 308).
            self.commit_to(commit.min(self.log.last_index()));
            self.answer_beat(msg.from, round);
            return;
        }
        // Acknowledgements of heartbeats, and the quiesce notice itself, do not wake a
        // quiesced group: they are the tail of going quiet. Anything else is activity.
        // Read requests and answers do not either: a quiesced group serves reads quietly.
        // An acknowledgement of a later term is news, not the tail of going quiet: a deposed
        // leader telling its followers the term that deposed it (`become_follower`).
        let quiet_tail = match msg.body {
            MessageBody::HeartbeatResponse { .. } => msg.term <= self.term,
            MessageBody::Quiesce { .. }
            | MessageBody::ReadIndex { .. }
            | MessageBody::ReadIndexResponse { .. } => true,
            _ => false,
        };
        if !quiet_tail {
            self.wake();
        }
        match &msg.body {
            MessageBody::Propose { .. } | MessageBody::ProposeRejected { .. } => {
                return self.step_proposals(msg);
            }
            MessageBody::ReadIndex { .. } | MessageBody::ReadIndexResponse { .. } => {
                return self.step_reads(msg.from, msg.body);
            }
            // Node-level messages: the node expands them into per-group ones.
            MessageBody::Heartbeats { .. } | MessageBody::HeartbeatAcks { .. } => return,
            _ => {}
        }
        if msg.term > self.term {
            let timer_running = self.election_elapsed < self.config.election_timeout_min_ticks;
            let in_lease = self.config.check_quorum
                && match self.vote_hold {
                    VoteHold::None => self.leader.is_some() && timer_running,
                    VoteHold::Restarted => timer_running,
                    VoteHold::Deferring => self.leader.is_some(),
                };
            // An answer of a later term from anyone but the leader — to a campaign of this
            // replica's, or to a leadership it held in an earlier term, arriving late — is
            // no news of a leader, and adopting its term would end the lease as surely as a
            // vote request: this follower, then without a leader, would grant a candidate
            // the vote its leader's lease reads count on it to refuse (review: a pre-vote
            // refusal of the candidate's term arrived after the follower had answered the
            // leader's round). Dropped while the lease holds; the leader itself telling the
            // term that deposed it is news.
            let answer = matches!(
                msg.body,
                MessageBody::VoteResponse { .. }
                    | MessageBody::AppendResponse { .. }
                    | MessageBody::HeartbeatResponse { .. }
                    | MessageBody::SnapshotAck(_)
                    | MessageBody::LogLost { .. }
            );
            if answer && in_lease && self.role == Role::Follower && self.leader != Some(msg.from) {
                return;
            }
            match msg.body {
                MessageBody::Vote {
                    pre_vote,
                    transfer,
                    last_term,
                    ..
                } => {
                    // The leader itself campaigning means it gave up leading (it restarted,
                    // or stepped down): nothing to protect from it. Nor from a candidate
                    // holding an entry of a later term than ours: a leader of that term was
                    // elected, so ours leads no more and its lease is over. Without this, a
                    // follower that missed its leader leaving the group stayed silent to
                    // every candidate for as long as that leader's node lived (simulator
                    // pauses, seed 421).
                    let later_leader = last_term > self.term;
                    // Without PreVote or CheckQuorum the vote request is the disruption
                    // itself, and the dissertation's rule (§4.2.3) stands alone: a replica
                    // that heard its leader within the minimum election timeout neither
                    // adopts the term nor votes. Applied to non-members only (`step`), a
                    // removed replica still deposed the leader through a member whose log
                    // was so far behind that it took the removed one for a voter and
                    // granted it (simulator, seed 12008576).
                    let sticky = in_lease
                        || !pre_vote
                            && !self.config.pre_vote
                            && !self.config.check_quorum
                            && self.leader.is_some()
                            && timer_running;
                    if sticky && !transfer && self.leader != Some(msg.from) && !later_leader {
                        // Leader stickiness (dissertation §4.2.3 / §9.6): while we hear from a
                        // leader, a disruptive candidate gets no answer at all.
                        return;
                    }
                    if !pre_vote {
                        // Raft Figure 2 (Rules for Servers, Followers): only hearing from the
                        // current leader or granting a vote resets the election timer. Adopting
                        // a higher term for a vote we may reject must not, or a replica that
                        // cannot win (stale log) but times out sooner (a faster clock) keeps
                        // every other replica from ever campaigning: a livelock without PreVote,
                        // found by the simulator (testkit `sim`, seed 182). `handle_vote`
                        // resets the timer when it grants.
                        let elapsed = self.election_elapsed;
                        self.become_follower(msg.term, None);
                        self.election_elapsed = elapsed;
                    }
                }
                // A granted pre-vote carries the term we would campaign in; no term change.
                MessageBody::VoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                // Our vote request was stale: adopt the term, but keep the election timer,
                // for the reason above. Resetting it let replicas that cannot win (stale
                // logs) hold back, with their refusals, the one that can (simulator, seeds
                // 286 and 389).
                MessageBody::VoteResponse {
                    pre_vote: false,
                    granted: false,
                } => {
                    let elapsed = self.election_elapsed;
                    self.become_follower(msg.term, None);
                    self.election_elapsed = elapsed;
                }
                MessageBody::Append { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Quiesce { .. } => {
                    self.become_follower(msg.term, Some(msg.from));
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match msg.body {
                MessageBody::Append { .. }
                | MessageBody::InstallSnapshot { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::Quiesce { .. } => {
                    // A stale leader: tell it our term so it steps down. Needed with
                    // CheckQuorum/PreVote, where our higher term may never reach it otherwise.
                    self.send_after(msg.from, MessageBody::HeartbeatResponse { round: 0 });
                }
                MessageBody::Vote {
                    pre_vote,
                    last_index,
                    last_term,
                    ..
                } => {
                    // Raft Figure 2: a stale candidate is refused with our term, which it
                    // adopts. Ignoring a real vote (as etcd does) can deadlock a group: a
                    // replica whose membership is stale never contacts a voter it does not
                    // know, yet keeps a higher term than that voter by campaigning, and
                    // ignores every vote request of it (simulator, seed 13142: voters
                    // {2, 3, 4}, 2 lost, 3 with the old membership {1, 2, 3}).
                    self.send_after(
                        msg.from,
                        MessageBody::VoteResponse {
                            pre_vote,
                            granted: false,
                        },
                    );
                    self.defer_to_better_candidate(last_index, last_term);
                }
                MessageBody::Removed { index, .. } => self.handle_removed_unmatched(index),
                _ => {}
            }
            return;
        }
        if self.leader_said == LeaderSaid::Stopped
            && matches!(
                msg.body,
                MessageBody::Append { .. }
                    | MessageBody::InstallSnapshot { .. }
                    | MessageBody::Heartbeat { .. }
                    | MessageBody::Quiesce { .. }
            )
        {
            return; // sent before its leader stopped leading this term (`LeaderSaid::Stopped`)
        }

        let from = msg.from;
        let term = msg.term;
        match msg.body {
            MessageBody::Vote {
                pre_vote,
                last_index,
                last_term,
                ..
            } => self.handle_vote(from, term, pre_vote, last_index, last_term),
            MessageBody::VoteResponse { pre_vote, granted } => {
                self.handle_vote_response(from, pre_vote, granted)
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.handle_append(from, prev_index, prev_term, entries, commit),
            MessageBody::AppendResponse {
                success,
                index,
                hint_index,
                hint_term,
                joined,
            } => {
                let hint = (hint_index, hint_term);
                self.handle_append_response(from, success, index, hint, joined)
            }
            MessageBody::Heartbeat { commit, round } => self.handle_heartbeat(from, commit, round),
            MessageBody::Quiesce { commit, round } => {
                self.handle_heartbeat(from, commit, round);
                self.leader_said = LeaderSaid::Quiet;
                self.quiet_seen = self.quiet_seen.max(round);
                // Quiesce only when holding exactly what the leader committed; a replica that
                // is behind keeps its timer, so a leader that went quiet early is woken.
                if self.leader == Some(from)
                    && self.log.last_index() == commit
                    && self.log.committed == commit
                {
                    self.quiesced = true;
                    self.shrink();
                }
            }
            MessageBody::HeartbeatResponse { round } => {
                self.handle_heartbeat_response(from, round);
                if self.role == Role::Leader {
                    self.on_round_acked(from, round);
                }
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::InstallSnapshot { chunk } => self.handle_install_snapshot(from, *chunk),
            MessageBody::SnapshotAck(ack) => self.handle_snapshot_ack(from, ack),
            MessageBody::Removed {
                index,
                matched: true,
            } => self.handle_removed(from, index),
            MessageBody::Removed {
                index,
                matched: false,
            } => self.handle_removed_unmatched(index),
            MessageBody::LogLost {
                last_index,
                last_term,
            } => self.handle_log_lost(from, last_index, last_term),
            MessageBody::Propose { .. }
            | MessageBody::ProposeRejected { .. }
            | MessageBody::ReadIndex { .. }
            | MessageBody::ReadIndexResponse { .. }
            | MessageBody::Heartbeats { .. }
            | MessageBody::HeartbeatAcks { .. }
            | MessageBody::Unheard { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests;
