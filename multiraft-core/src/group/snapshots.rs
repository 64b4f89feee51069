//! Snapshots in one group (docs/design.md §4.6): when to take one and compacting the log
//! once it is stored; the leader sending its snapshot, chunk by chunk, to a follower that
//! needs entries the log no longer holds; the follower receiving, installing and restoring
//! it.
//!
//! The group does no IO: it asks the node for chunks to be read from storage
//! (`chunk_reads`), hands received chunks to be written (`snapshot_chunks`), and asks for
//! the state machine to be restored (`restore`). The node enforces the node-wide limits.

use crate::ids::{GroupId, NodeId};
use crate::message::MessageBody;
use crate::snapshot::{MAX_SNAPSHOT_CHUNKS, SnapshotChunk, SnapshotMeta};
use crate::storage::Compacted;

use super::progress::ProgressState;
use super::{LeaderSaid, Replica, Role};

/// A snapshot being received: what arrived so far.
#[derive(Clone, Debug)]
pub(crate) struct Incoming {
    /// Who sends it, in which term: two leaders may send snapshots of the same index cut
    /// into different chunks, which must never be mixed (found by the simulator, seed 126).
    from: (NodeId, u64),
    meta: SnapshotMeta,
    /// Chunks received (the next one wanted).
    next: u32,
    /// Ticks since the last chunk: an abandoned transfer is dropped after two election
    /// timeouts, freeing the node's receive slot.
    idle_ticks: u32,
}

/// A chunk to read from storage for a transfer: (to, snapshot index, chunk number).
pub type ChunkRead = (NodeId, u64, u32);

/// A stalled transfer's wait before sending its window again doubles at most this many
/// times (from two heartbeat intervals); the transfer gives its slot back after an
/// election timeout without an acknowledgement anyway.
const MAX_RESEND_DOUBLINGS: u32 = 4;

/// What the node learned of this replica's state machine snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taking {
    /// Its snapshots work (or were not tried yet): the leader holds proposals back while
    /// its log runs too far past the last one ([`Replica::snapshot_holds_back`]).
    Works,
    /// The last one failed: it is tried again after the next apply, and nothing is held
    /// back meanwhile, so a failing machine costs a longer log, not the group's writes.
    Failed,
    /// The machine takes no snapshots: none is asked for again, and the log is kept whole.
    Unsupported,
}

/// How many times its usual bound (`snapshot_entries + compaction_lag_entries` committed
/// entries past its snapshot) a leader's log may hold while it sends that snapshot and
/// defers the next ([`Replica::snapshot_deferred`]). Room for a transfer four snapshot
/// periods long before the group's writes wait for it; the node has at most
/// `max_snapshot_sends` transfers going, so at most that many groups hold the larger log.
pub const SENDING_LOG_FACTOR: u64 = 4;

/// The entries a replica of `group` applies between two snapshots: `snapshot_entries`, less
/// up to a quarter of it drawn from a hash of the group id. Groups fed alike (keys hashed
/// evenly over them) would otherwise all snapshot and compact in the same ticks, and that
/// wave of work every `snapshot_entries` proposals per group set the open loop's tail
/// latency: p99 54–69 ms at 195,000/s over 1,000 groups, 7.6–8.6 ms spread
/// (BENCHMARKS.md, "Snapshots spread over a quarter of the period"). Never more than
/// `snapshot_entries`, so the bound on each group's log holds.
pub(crate) fn snapshot_period(group: GroupId, snapshot_entries: u64) -> u64 {
    snapshot_entries - group.spread() % (snapshot_entries / 4).max(1)
}

impl Replica {
    // ----- taking snapshots and compacting ------------------------------------------------

    /// The snapshot to take now, if this replica applied `snapshot_entries` entries since
    /// its last one (and is not receiving or restoring one): of the state as of the last
    /// applied index.
    ///
    /// A leader sending its stored snapshot takes no other meanwhile
    /// ([`Replica::snapshot_deferred`]).
    pub fn snapshot_due(&self) -> Option<SnapshotMeta> {
        if !self.snapshot_due_by_count() || self.sending_stored_snapshot() {
            return None;
        }
        let applied = self.log.applied;
        Some(SnapshotMeta {
            index: applied,
            term: self.log.term(applied)?,
            membership: (*self.membership_at(applied)).clone(),
        })
    }

    /// Whether this replica applied a period's entries since its last snapshot, and could
    /// take one (it is not receiving or restoring one, and its machine takes them).
    fn snapshot_due_by_count(&self) -> bool {
        let since = self.snapshot.map_or(0, |s| s.0);
        self.taking != Taking::Unsupported
            && self.restoring.is_none()
            && self.incoming.is_none()
            // Saturating: a period of `u64::MAX` less the spread (snapshots turned off)
            // wrapped past a stored snapshot's index (review).
            && self.log.applied >= since.saturating_add(self.snapshot_period())
    }

    /// Leader: a snapshot is due, but its stored one is being sent, so it waits until that
    /// transfer ends or stalls (the node asks again every tick). A new snapshot replaces the
    /// stored one, and a transfer whose snapshot was replaced starts over with the newer: a
    /// hot group, snapshotting faster than a transfer took, never caught a new replica up.
    /// Meanwhile the log may hold [`SENDING_LOG_FACTOR`] times its usual bound before the
    /// leader parks proposals (docs/design.md §4.6).
    pub fn snapshot_deferred(&self) -> bool {
        self.snapshot_due_by_count() && self.sending_stored_snapshot()
    }

    /// Leader: a transfer of the stored snapshot holds a send slot and goes on (a chunk
    /// acknowledged within an election timeout), so a newer snapshot would make it start
    /// over. A stalled one does not count: a follower that answers heartbeats but takes no
    /// chunk (its snapshot lane starved, its inbox full) has its transfer given back and
    /// admitted again every election timeout, and would otherwise defer the snapshot, and
    /// park the group's proposals, for good (review).
    fn sending_stored_snapshot(&self) -> bool {
        let Some((index, _)) = self.snapshot else {
            return false;
        };
        let timeout = self.config.election_timeout_min_ticks;
        self.role == Role::Leader
            && self.progress.values().any(|p| {
                p.snapshot
                    .as_ref()
                    .is_some_and(|o| o.admitted && o.index == index && o.unacked_ticks < timeout)
            })
    }

    /// The entries this replica applies between two snapshots ([`snapshot_period`]).
    fn snapshot_period(&self) -> u64 {
        snapshot_period(self.id, self.config.snapshot_entries)
    }

    /// The latest snapshot stored durably on this node, if any, as (index, term).
    pub fn snapshot(&self) -> Option<(u64, u64)> {
        self.snapshot
    }

    /// A snapshot of this replica is durable in storage: it becomes the one sent to
    /// followers, and the log is compacted to `compaction_lag_entries` before it (the tail
    /// kept so that a follower slightly behind still gets appends).
    pub fn snapshot_stored(&mut self, meta: SnapshotMeta) {
        self.taking = Taking::Works;
        if self.snapshot.is_some_and(|s| s.0 >= meta.index) {
            return;
        }
        let to = meta
            .index
            .saturating_sub(self.config.compaction_lag_entries);
        self.snapshot = Some((meta.index, meta.term));
        if self.log.compact(to) {
            let first = self.log.first_index();
            self.out_rare().compact_to = Some(first - 1);
        }
    }

    /// The snapshot the node took for this replica failed; `unsupported`: the state
    /// machine takes none at all.
    pub fn snapshot_failed(&mut self, unsupported: bool) {
        self.taking = if unsupported {
            Taking::Unsupported
        } else {
            Taking::Failed
        };
    }

    /// Leader: whether new proposals wait, parked unappended, for a snapshot, because the
    /// log has committed `snapshot_entries + compaction_lag_entries` entries past the last
    /// one stored. This bounds, per group, what a restart re-applies and the log held in
    /// memory and on disk, even when snapshots are built more slowly than entries commit (a
    /// burst, a loaded machine): to that many committed entries plus those already in
    /// flight when the hold began (bounded by `max_uncommitted_bytes`). Counted on the
    /// committed index, not the last one, so that a busy group's window of entries in flight
    /// does not itself hold it back. Not when snapshots fail or are unsupported: those logs
    /// grow instead.
    ///
    /// While the stored snapshot is being sent ([`Replica::snapshot_deferred`]) the bound is
    /// [`SENDING_LOG_FACTOR`] times as many: past that, proposals park until the transfer
    /// ends and the next snapshot is stored, so a transfer slower than that many snapshot
    /// periods costs the group its writes for the rest of it, not the follower its catch-up.
    pub(super) fn snapshot_holds_back(&self) -> bool {
        let since = self.snapshot.map_or(0, |s| s.0);
        // Saturating: snapshots set as far off as a `u64` goes (turned off) wrapped the
        // bound to a few hundred entries, parking every proposal past it for good (review).
        let limit = self
            .config
            .snapshot_entries
            .saturating_add(self.config.compaction_lag_entries);
        let held = |limit: u64| self.log.committed >= since.saturating_add(limit);
        self.taking == Taking::Works
            && held(limit)
            && (!self.sending_stored_snapshot() || held(limit.saturating_mul(SENDING_LOG_FACTOR)))
    }

    // ----- leader: sending ----------------------------------------------------------------

    /// `to` needs entries before the log's first index: from now on it gets the snapshot,
    /// once the node admits the transfer. Returns false when there is no snapshot to send.
    /// A replica retiring gets none: it is told it was removed once the removal commits
    /// (`drop_retired`).
    pub(super) fn need_snapshot(&mut self, to: NodeId) -> bool {
        let Some(index) = self.snapshot.map(|s| s.0) else {
            return false;
        };
        if let Some(pr) = self.progress.get_mut(&to)
            && pr.state != ProgressState::Snapshot
            && pr.retire_at == 0
        {
            pr.become_snapshot(index);
            self.ask_send_slot(to);
        }
        true
    }

    /// Asks the node for a send slot for the transfer to `to`, once per ready. Asked
    /// twice, the node admitted the transfer at the first ask and, counting that slot
    /// taken, refused and un-admitted it at the second: its first chunk, read meanwhile,
    /// was dropped, and a node whose readies outlast a heartbeat interval never sent it
    /// (review).
    fn ask_send_slot(&mut self, to: NodeId) {
        let wanted = &mut self.out_rare().snapshot_wanted;
        if !wanted.contains(&to) {
            wanted.push(to);
        }
    }

    /// Whether this replica asks its node for a send slot for the transfer to `to` in its
    /// next ready.
    pub(crate) fn asks_send_slot(&self, to: NodeId) -> bool {
        self.out
            .as_ref()
            .is_some_and(|o| o.snapshot_wanted.contains(&to))
    }

    /// Whether a snapshot transfer to `to` holds one of the node's send slots.
    pub fn is_sending_snapshot(&self, to: NodeId) -> bool {
        self.role == Role::Leader
            && self
                .progress
                .get(&to)
                .and_then(|p| p.snapshot.as_ref())
                .is_some_and(|o| o.admitted)
    }

    /// The node admitted the transfer to `to` (`admitted`) or has no slot for it now: then
    /// it is asked again after the next heartbeat answer from `to`. Returns the chunks to
    /// read first.
    pub fn admit_snapshot(&mut self, to: NodeId, admitted: bool) -> Vec<ChunkRead> {
        let Some(o) = self.outgoing(to) else {
            return Vec::new();
        };
        o.admitted = admitted;
        if !admitted {
            return Vec::new();
        }
        // Resume from what the follower acknowledged (it says where it is if that is wrong),
        // a pass of its own: a gap in it is sent again at once, wherever the last one was.
        o.rewind_to(o.acked);
        o.gap_resent = false;
        o.idle_ticks = 0;
        self.request_chunks(to)
    }

    fn outgoing(&mut self, to: NodeId) -> Option<&mut super::progress::Outgoing> {
        if self.role != Role::Leader {
            return None;
        }
        self.progress.get_mut(&to)?.snapshot.as_mut()
    }

    /// The next chunk read, if one is due: one read at a time, until
    /// `snapshot_window_chunks` chunks are unacknowledged or the last was read.
    fn request_chunks(&mut self, to: NodeId) -> Vec<ChunkRead> {
        let window = self.config.snapshot_window_chunks;
        let Some(o) = self.outgoing(to).filter(|o| o.admitted) else {
            return Vec::new();
        };
        if o.reading
            || o.requested >= o.acked.saturating_add(window)
            || o.last.is_some_and(|last| o.requested > last)
        {
            return Vec::new();
        }
        o.reading = true;
        o.requested += 1;
        vec![(to, o.index, o.requested - 1)]
    }

    /// The node read a chunk for the transfer to `to` (`None`: storage no longer holds
    /// that snapshot, a newer one replaced it). Sends it, if the transfer still wants it;
    /// returns whether it did.
    pub fn chunk_read(
        &mut self,
        to: NodeId,
        index: u64,
        seq: u32,
        chunk: Option<SnapshotChunk>,
    ) -> bool {
        let term = self.term;
        let Some(o) = self
            .outgoing(to)
            .filter(|o| o.admitted && o.index == index && o.reading && seq + 1 == o.requested)
        else {
            return false; // a read the transfer no longer waits for
        };
        o.reading = false;
        let Some(chunk) = chunk.filter(|c| c.seq == seq && c.meta.index == index) else {
            // Storage no longer holds that snapshot (a newer one replaced it). Reads go in
            // order and a chunk that is not the last says another follows, so this is never
            // the end of the data. Start over with the snapshot held then, after the next
            // heartbeat answer: not at once, which could spin if storage lost it for good.
            o.admitted = false;
            return false;
        };
        if chunk.last {
            o.last = Some(seq);
        }
        let send = seq >= o.acked;
        if send {
            if chunk.last {
                tracing::info!(node = %self.node, group = %self.id, %to, index, chunks = seq + 1, "snapshot sent");
            }
            self.send_now_msg(
                to,
                term,
                MessageBody::InstallSnapshot {
                    chunk: Box::new(chunk),
                },
            );
        }
        let reads = self.request_chunks(to);
        self.out_rare().chunk_reads.extend(reads);
        send
    }

    pub(super) fn handle_snapshot_ack(&mut self, from: NodeId, ack: SnapshotAck) {
        let Some(o) = self.outgoing(from).filter(|o| o.index == ack.index) else {
            return;
        };
        if ack.refused {
            // The follower's node has no receive slot now: ask again after a heartbeat.
            o.admitted = false;
            return;
        }
        if !o.admitted {
            return;
        }
        o.idle_ticks = 0;
        if ack.done {
            let index = o.index;
            if let Some(pr) = self.progress.get_mut(&from) {
                pr.recent_active = true;
                pr.become_probe();
                pr.matched = pr.matched.max(index);
                pr.next = pr.matched + 1;
            }
            return self.maybe_commit();
        }
        if ack.next < o.acked {
            // The follower started over (a leader change, a restart): so do we. The rest of
            // the window in flight answers with a gap at that point: already sent again.
            o.rewind_to(ack.next);
            o.gap_resent = true;
        }
        if ack.next > o.acked {
            o.resends = 0;
            o.unacked_ticks = 0;
            o.gap_resent = false;
        }
        o.acked = ack.next;
        if ack.gap && o.requested > o.acked && !o.gap_resent {
            // Chunks from `acked` on were lost to the follower: send them again now, once
            // per acknowledged point — the other chunks of the window in flight answer with
            // the same gap, and a resend lost again waits for `retry_snapshot`.
            o.gap_resent = true;
            o.rewind_to(o.acked);
        }
        if o.requested < o.acked {
            o.rewind_to(o.acked);
        }
        let reads = self.request_chunks(from);
        self.out_rare().chunk_reads.extend(reads);
    }

    /// A leader's tick: a transfer with no acknowledgement for an election timeout gives
    /// its node slot back (a chunk or its acknowledgement was lost, or the follower is
    /// down). It asks again after the follower's next heartbeat answer and resumes from what
    /// was acknowledged, so a follower that is down holds no slot.
    pub(super) fn tick_snapshots(&mut self) {
        let timeout = self.config.election_timeout_min_ticks;
        for pr in self.progress.values_mut() {
            if let Some(o) = pr.snapshot.as_mut() {
                o.unacked_ticks = o.unacked_ticks.saturating_add(1);
            }
            if let Some(o) = pr.snapshot.as_mut().filter(|o| o.admitted) {
                o.idle_ticks += 1;
                if o.idle_ticks >= timeout {
                    o.admitted = false;
                    o.reading = false;
                }
            }
        }
    }

    /// Leader: the node has a send slot for the transfer to `to`, which was refused one:
    /// it asks for it in its next ready, for the latest snapshot. Returns false when it no
    /// longer waits for one (the transfer ended, holds a slot, or this replica no longer
    /// leads).
    pub fn want_snapshot_slot(&mut self, to: NodeId) -> bool {
        let latest = self.snapshot.map(|s| s.0);
        let Some(o) = self.outgoing(to).filter(|o| !o.admitted) else {
            return false;
        };
        if let Some(index) = latest.filter(|i| *i != o.index) {
            *o = super::progress::Outgoing::new(index);
        }
        self.ask_send_slot(to);
        true
    }

    /// A heartbeat answer from `to`: the follower is there. A transfer waiting for a node
    /// slot asks again, for the latest snapshot; one with no acknowledgement for two
    /// heartbeat intervals sends again from what was acknowledged (a chunk or its
    /// acknowledgement was lost), without waiting for the election timeout that gives its
    /// slot back.
    pub(super) fn retry_snapshot(&mut self, to: NodeId) {
        let first_wait = 2 * self.config.heartbeat_interval_ticks;
        let Some(o) = self.outgoing(to) else {
            return;
        };
        if o.admitted {
            if o.idle_ticks >= first_wait << o.resends.min(MAX_RESEND_DOUBLINGS) {
                o.idle_ticks = 0;
                o.resends += 1;
                o.rewind_to(o.acked);
                let reads = self.request_chunks(to);
                self.out_rare().chunk_reads.extend(reads);
            }
            return;
        }
        // Waiting for a node slot: ask again, for the latest snapshot.
        self.want_snapshot_slot(to);
    }

    // ----- follower: receiving ------------------------------------------------------------

    /// Whether this replica holds a partly received snapshot (one of the node's receive
    /// slots).
    pub fn is_receiving_snapshot(&self) -> bool {
        self.incoming.is_some()
    }

    /// Whether a new transfer's first chunk would start receiving here (the node checks
    /// its receive slots first).
    pub fn would_start_receiving(&self, chunk: &SnapshotChunk) -> bool {
        chunk.seq == 0 && chunk.meta.index > self.log.committed && self.incoming.is_none()
    }

    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, chunk: SnapshotChunk) {
        // A chunk of what this replica already holds, from a leader that said the group
        // went quiet, left before that notice (a late or duplicated one): as such an append,
        // it does not restart the timer (`handle_append`; review).
        let quiet = self.leader_said == LeaderSaid::Quiet && self.leader == Some(from);
        self.follow(from);
        let index = chunk.meta.index;
        self.stay_quiet(quiet && index <= self.log.committed);
        if self.restoring.is_some() {
            return; // restoring the previous one: the leader sends again later
        }
        if index <= self.log.committed {
            // Nothing to install: the entries are here. The leader goes on with appends. A
            // newer transfer under way stays (review: a late chunk dropped it, and the
            // leader sent it again from chunk 0).
            self.drop_stale_incoming();
            if self.is_joining() {
                // The answer must not read as an append's (`Progress::knows_commit`): a
                // joining replica joins only once an append tells it the commit index, and
                // its leader promotes it only once it has. The done acknowledgement moves
                // the leader on to appends as well.
                let next = chunk.seq.saturating_add(1);
                return self.ack_snapshot(from, index, next, true, false);
            }
            let committed = self.log.committed;
            return self.send_after(
                from,
                MessageBody::AppendResponse {
                    success: true,
                    index: committed,
                    hint_index: 0,
                    hint_term: 0,
                    joined: self.stored_member(),
                },
            );
        }
        if chunk.seq == MAX_SNAPSHOT_CHUNKS {
            return; // no snapshot has it (`MessageBatch::validate` refuses it)
        }
        let sender = (from, self.term);
        let expected = match &self.incoming {
            Some(i) if i.meta == chunk.meta && i.from == sender => i.next,
            _ => 0,
        };
        if chunk.seq != expected {
            // A chunk past the one wanted says those between were lost or reordered: the
            // leader sends them again at once (`SnapshotAck::gap`). One before it is a copy.
            let gap = chunk.seq > expected;
            return self.ack_snapshot(from, index, expected, false, gap);
        }
        let last = chunk.last;
        let meta = chunk.meta.clone();
        let out = self.out_rare();
        if expected == 0 {
            // A new transfer: storage starts its incoming snapshot over at chunk 0, so chunks
            // of an earlier transfer still waiting for this ready's write are moot — and
            // written before it, not consecutive with it, they made storage refuse the
            // write as corrupt and stop the node (review).
            out.snapshot_chunks.clear();
        }
        out.snapshot_chunks.push(chunk);
        if !last {
            self.incoming = Some(Box::new(Incoming {
                from: sender,
                meta,
                next: expected + 1,
                idle_ticks: 0,
            }));
            return self.ack_snapshot(from, index, expected + 1, false, false);
        }
        self.install(meta);
        self.ack_snapshot(from, index, expected + 1, true, false);
    }

    /// The last chunk arrived (it is written with this ready): the log follows the
    /// snapshot now, and the state machine is restored once the write is durable.
    fn install(&mut self, meta: SnapshotMeta) {
        tracing::info!(node = %self.node, group = %self.id, index = meta.index, term = meta.term, "snapshot installed");
        self.incoming = None;
        let committed = self.log.committed;
        let replaced = self.log.install(meta.index, meta.term);
        if replaced {
            // Entries past the commit index were dropped, perhaps unwritten: an ack of them
            // waiting for this ready's write would be false once it is durable (§3.1 rule
            // 1). Those through the commit index stay true: committed entries are in the
            // snapshot and in every leader's log.
            self.drop_acks_from(committed + 1);
            self.out_rare().log_reset = Some(Compacted {
                index: meta.index,
                term: meta.term,
            });
        }
        self.installed_configs(meta.index, meta.membership.clone(), !replaced);
        self.hard_state_dirty = true;
        self.restoring = Some(meta.index);
        self.snapshot = Some((meta.index, meta.term));
        self.out_rare().restore = Some(meta);
    }

    /// Sent once this ready's write (the chunk) is durable.
    fn ack_snapshot(&mut self, to: NodeId, index: u64, next: u32, done: bool, gap: bool) {
        let body = MessageBody::SnapshotAck(SnapshotAck {
            index,
            next,
            done,
            refused: false,
            gap,
        });
        self.send_after(to, body);
    }

    /// The log caught up past a snapshot being received (by appends, from another leader):
    /// the transfer is moot, and gives its node slot back at once — a quiesced replica
    /// would never tick it away.
    pub(super) fn drop_stale_incoming(&mut self) {
        if self
            .incoming
            .as_ref()
            .is_some_and(|i| i.meta.index <= self.log.committed)
        {
            self.incoming = None;
        }
    }

    /// A follower's tick: a transfer abandoned by its leader is dropped.
    pub(super) fn tick_incoming(&mut self) {
        let timeout = self.config.election_timeout_min_ticks.saturating_mul(2);
        if let Some(i) = self.incoming.as_mut() {
            i.idle_ticks += 1;
            if i.idle_ticks >= timeout {
                self.incoming = None;
            }
        }
    }

    /// The state machine was restored from the snapshot at `index` (after a restart, or
    /// an install): applying resumes after it.
    pub fn restored(&mut self, index: u64) {
        if self.restoring == Some(index) {
            self.restoring = None;
            self.log.applied = self.log.applied.max(index);
            self.applied_configs(self.log.applied);
        }
        self.check_invariants();
    }

    /// Whether the state machine is being restored from a snapshot (nothing is applied
    /// meanwhile).
    pub fn is_restoring(&self) -> bool {
        self.restoring.is_some()
    }
}

use crate::message::SnapshotAck;
