//! Snapshots at node level (docs/design.md §4.6): the node-wide limits on snapshots built,
//! sent and received at once, the chunks of snapshots this node builds on their way to
//! storage, and the IO a ready asks for ([`TakeSnapshot`], [`ChunkRead`], [`Restore`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};

use crate::ids::{GroupId, NodeId};
use crate::message::{Message, MessageBody, SnapshotAck};
use crate::snapshot::{MAX_SNAPSHOT_CHUNKS, SnapshotChunk, SnapshotError, SnapshotMeta};
use crate::storage::WriteBatch;

use super::Node;

/// Take a snapshot of `group`'s state machine now, right after the applies of the ready
/// that asks for it: its state is then exactly that of `meta.index`. Feed the chunks it
/// produces to [`Node::snapshot_chunk`], or end it with [`Node::snapshot_failed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakeSnapshot {
    /// The group.
    pub group: GroupId,
    /// What the snapshot will be.
    pub meta: SnapshotMeta,
}

/// Read chunk `seq` of `group`'s snapshot at `index` with
/// [`Storage::snapshot_chunk`](crate::Storage::snapshot_chunk) and hand the result to
/// [`Node::chunk_read`]: the leader sends it to `to`. Needs no write to be durable first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRead {
    /// The group.
    pub group: GroupId,
    /// The follower the chunk goes to.
    pub to: NodeId,
    /// The snapshot's index.
    pub index: u64,
    /// The chunk's number.
    pub seq: u32,
}

/// Once the ready's write is durable: restore `group`'s state machine from the stored
/// snapshot at `meta.index`, chunk by chunk (`StateMachine::restore`), then call
/// [`Node::restored`]. Nothing of the group is applied meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restore {
    /// The group.
    pub group: GroupId,
    /// The snapshot to restore.
    pub meta: SnapshotMeta,
}

/// Chunks of the snapshots a node builds that may wait for one write, in units of
/// `Config::snapshot_chunk_bytes` (8 MiB by default): the memory builds hold ahead of the
/// disk, whatever the number of snapshots being built. Small snapshots, thousands of
/// them in a write, are not held back; a large one still goes to disk several chunks per
/// write.
pub(crate) const BUILT_BYTES_PER_WRITE: usize = 8;

/// A snapshot this node is building: its chunks go to storage as they come.
#[derive(Debug)]
struct Building {
    meta: SnapshotMeta,
    next_seq: u32,
    /// The machine's pieces since the last chunk, less than a chunk in all
    /// (`Config::snapshot_chunk_bytes`): small pieces gather into whole chunks. Each piece
    /// made a chunk of its own before, and a machine yielding one piece per key made
    /// millions, each a storage read at a restore and a window slot in a transfer (review).
    /// At most one chunk's bytes per build, and `max_snapshots_building` builds.
    pending: BytesMut,
}

/// The node's snapshot bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Snapshots {
    building: BTreeMap<GroupId, Building>,
    /// Chunks of snapshots being built, for the next write, and their bytes.
    chunks: Vec<(GroupId, SnapshotChunk)>,
    chunk_bytes: usize,
    /// Transfers holding a send slot (checked against the replicas when a slot is asked).
    sending: BTreeSet<(GroupId, NodeId)>,
    /// Transfers refused a send slot, first come first served: as slots free up, the node asks them
    /// again every tick. Before, only the follower's next heartbeat answer did, and with every
    /// group's answers in one round the slot stood idle between rounds (simulator, seed 18008678:
    /// one slot, transfers of a few milliseconds started 0.3 s apart, and 7 groups waited past the
    /// liveness bound). Bounded by the transfers the node's groups want: one per group and
    /// follower.
    waiting_sends: FifoSet<(GroupId, NodeId)>,
    /// Transfers offered a send slot whose group has not asked for it yet: each counts as
    /// holding one until it asks, so that an offer made meanwhile (the next ready's, or a
    /// tick's) does not hand the same slot out again — the second to ask would be refused
    /// and sent to the back of the queue. At most `max_snapshot_sends`.
    offered: Vec<(GroupId, NodeId)>,
    /// Groups holding a receive slot (likewise).
    receiving: BTreeSet<GroupId>,
    /// Refusals of first chunks for want of a receive slot, to send in the next ready.
    refusals: Vec<Message>,
    /// Groups due a snapshot, first come first served as build slots free up (so that no
    /// group starves under load, and one that goes quiet right after still gets its
    /// snapshot).
    waiting: FifoSet<GroupId>,
    /// Leaders whose snapshot is due but deferred while their stored one is sent
    /// ([`Replica::snapshot_deferred`](crate::group::Replica::snapshot_deferred)), checked
    /// again every tick: the transfer may end with nothing else applied to queue them. At
    /// most one per send slot.
    deferred: BTreeSet<GroupId>,
}

impl Snapshots {
    /// Whether the next ready has snapshot work: chunks to write, refusals to send, or a
    /// queued group and a free build slot among `max_building`.
    pub(super) fn has_output(&self, max_building: usize) -> bool {
        !self.chunks.is_empty()
            || !self.refusals.is_empty()
            || !self.waiting.is_empty() && self.building.len() < max_building
    }

    pub(super) fn take_refusals(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.refusals)
    }

    pub(super) fn forget(&mut self, group: GroupId) {
        self.building.remove(&group);
        let before = self.chunks.len();
        self.chunks.retain(|(g, _)| *g != group);
        if self.chunks.len() != before {
            self.chunk_bytes = self.chunks.iter().map(|(_, c)| c.size_bytes()).sum();
        }
        self.waiting.remove(group);
    }
}

/// Items first come first served, each at most once: a queue that a repeated ask does not
/// grow.
#[derive(Debug)]
struct FifoSet<T> {
    order: VecDeque<T>,
    members: BTreeSet<T>,
}

impl<T> Default for FifoSet<T> {
    fn default() -> Self {
        FifoSet {
            order: VecDeque::new(),
            members: BTreeSet::new(),
        }
    }
}

impl<T: Ord + Copy> FifoSet<T> {
    /// Adds `item` at the back, unless it is in already.
    fn push(&mut self, item: T) {
        if self.members.insert(item) {
            self.order.push_back(item);
        }
    }

    fn pop(&mut self) -> Option<T> {
        let item = self.order.pop_front()?;
        self.members.remove(&item);
        Some(item)
    }

    fn remove(&mut self, item: T) {
        if self.members.remove(&item) {
            self.order.retain(|i| *i != item);
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Node {
    /// Whether the node takes more chunks of the snapshots it builds now
    /// ([`Node::snapshot_chunk`]): while those waiting for a write hold less than eight
    /// chunks' worth of bytes (`Config::snapshot_chunk_bytes`), so that fast state machines
    /// cannot fill memory ahead of the disk, however many snapshots are being built. What
    /// waits is at most that plus the piece (or the made pieces) taken last.
    pub fn wants_snapshot_chunks(&self) -> bool {
        self.snapshots.chunk_bytes < self.built_bytes_limit()
    }

    /// Eight chunks' worth of bytes ([`BUILT_BYTES_PER_WRITE`]). Saturating: a chunk size
    /// near `usize::MAX` ("never split") passes `Config::validate`, and the product
    /// overflowed, a panic on the event loop's first pass in a debug build and a limit of
    /// 0 in a release build, which took no chunk again (review).
    fn built_bytes_limit(&self) -> usize {
        BUILT_BYTES_PER_WRITE.saturating_mul(self.config.snapshot_chunk_bytes)
    }

    /// Every piece of the snapshot of `group` at `index` at once ([`Node::snapshot_chunk`]),
    /// the last one marked so; none at all is one empty piece.
    pub(crate) fn hand_over_snapshot(
        &mut self,
        group: GroupId,
        index: u64,
        pieces: impl IntoIterator<Item = Bytes>,
    ) {
        let mut pieces = pieces.into_iter().peekable();
        let mut piece = pieces.next().unwrap_or_default();
        // Stops at the first piece the node no longer wants: it wants none after it.
        while self.snapshot_chunk(group, index, piece, pieces.peek().is_none()) {
            let Some(next) = pieces.next() else { return };
            piece = next;
        }
    }

    /// The next piece of the snapshot of `group` at `index` that a [`TakeSnapshot`] asked
    /// for; `last` ends it. Pieces are cut and joined into chunks of
    /// `Config::snapshot_chunk_bytes` (the last one shorter). Returns
    /// false when the node no longer wants that snapshot (the group was removed, or is
    /// receiving or has installed one from its leader, noticed at the next write): stop
    /// producing it.
    pub fn snapshot_chunk(&mut self, group: GroupId, index: u64, data: Bytes, last: bool) -> bool {
        let max = self.config.snapshot_chunk_bytes;
        let Some(b) = self
            .snapshots
            .building
            .get_mut(&group)
            .filter(|b| b.meta.index == index)
        else {
            return false;
        };
        // Each byte is copied into `pending` at most twice: once as it comes, once more if
        // it is left over after the whole chunks are cut. (Taking the buffer out at every
        // piece and copying it back copied a chunk's worth per piece, review.)
        let mut rest = if b.pending.is_empty() && (last || data.len() >= max) {
            data
        } else {
            b.pending.extend_from_slice(&data);
            if !last && b.pending.len() < max {
                return true;
            }
            std::mem::take(&mut b.pending).freeze()
        };
        loop {
            if !last && rest.len() < max {
                // Less than a chunk left: kept for the pieces to come.
                b.pending.extend_from_slice(&rest);
                return true;
            }
            if b.next_seq == MAX_SNAPSHOT_CHUNKS {
                let error = SnapshotError::Failed(format!(
                    "more than {MAX_SNAPSHOT_CHUNKS} chunks: raise snapshot_chunk_bytes"
                ));
                self.snapshot_failed(group, index, &error);
                return false;
            }
            let piece = rest.split_to(rest.len().min(max));
            let chunk = SnapshotChunk {
                meta: b.meta.clone(),
                seq: b.next_seq,
                data: piece,
                last: last && rest.is_empty(),
            };
            b.next_seq += 1;
            self.snapshots.chunk_bytes += chunk.size_bytes();
            self.snapshots.chunks.push((group, chunk));
            if rest.is_empty() {
                break;
            }
        }
        true
    }

    /// The snapshot of `group` at `index` could not be made: it is dropped. After
    /// [`SnapshotError::Unsupported`] none is asked for again (the group keeps its whole
    /// log); after another error one is tried again after the group's next apply, and its
    /// leader takes proposals past `snapshot_entries` meanwhile.
    pub fn snapshot_failed(&mut self, group: GroupId, index: u64, error: &SnapshotError) {
        if self
            .snapshots
            .building
            .get(&group)
            .is_some_and(|b| b.meta.index == index)
        {
            self.snapshots.forget(group);
            if let Some(slot) = self.groups.get_mut(&group) {
                slot.group
                    .snapshot_failed(matches!(error, SnapshotError::Unsupported));
            }
            // Proposals parked for this snapshot are appended now.
            self.mark(group);
        }
    }

    /// The result of a [`ChunkRead`]: `None` when storage no longer holds that snapshot.
    pub fn chunk_read(&mut self, read: ChunkRead, chunk: Option<SnapshotChunk>) {
        if let Some(slot) = self.groups.get_mut(&read.group) {
            let bytes = chunk.as_ref().map_or(0, |c| c.data.len() as u64);
            if slot.group.chunk_read(read.to, read.index, read.seq, chunk) {
                self.metrics.snapshot_sent.increment(bytes);
            }
            self.mark(read.group);
        }
    }

    /// `group`'s state machine was restored from its snapshot at `index` ([`Restore`]).
    pub fn restored(&mut self, group: GroupId, index: u64) {
        if let Some(slot) = self.groups.get_mut(&group) {
            slot.group.restored(index);
            let applied_term = slot.group.applied_term();
            self.requests.settle(group, applied_term);
            self.mark(group);
        }
    }

    /// Queues `group` for a snapshot if one is due (after this ready's applies).
    pub(super) fn queue_snapshot(&mut self, group: GroupId) {
        let s = &mut self.snapshots;
        let Some(replica) = self.groups.get(&group).map(|slot| &slot.group) else {
            return;
        };
        if replica.snapshot_deferred() {
            s.deferred.insert(group);
            return;
        }
        let due = replica.snapshot_due().is_some();
        if due && !s.building.contains_key(&group) {
            s.waiting.push(group);
        }
    }

    /// A tick: the groups whose snapshot was deferred for a transfer are queued if it is
    /// due now (the transfer ended), deferred again if not.
    pub(super) fn recheck_deferred_snapshots(&mut self) {
        for group in std::mem::take(&mut self.snapshots.deferred) {
            self.queue_snapshot(group);
        }
    }

    /// Snapshots to take now: the queued groups, first come first served, while build slots
    /// are free. Each is of the state its machine holds once this ready's applies are done.
    pub(super) fn snapshots_to_take(&mut self) -> Vec<TakeSnapshot> {
        let mut takes = Vec::new();
        let s = &mut self.snapshots;
        while s.building.len() < self.config.max_snapshots_building {
            let Some(group) = s.waiting.pop() else {
                break;
            };
            let Some(replica) = self.groups.get(&group).map(|slot| &slot.group) else {
                continue;
            };
            if replica.snapshot_deferred() {
                // A transfer of its stored snapshot began while it waited for a build
                // slot: deferred now, it is taken once the transfer ends (simulator, seed
                // 1304: dropped here, no apply came to queue it again, and its proposals
                // stayed parked).
                s.deferred.insert(group);
                continue;
            }
            let Some(meta) = replica.snapshot_due() else {
                continue; // no longer due (it installed one from its leader, say)
            };
            s.building.insert(
                group,
                Building {
                    meta: meta.clone(),
                    next_seq: 0,
                    pending: BytesMut::new(),
                },
            );
            takes.push(TakeSnapshot { group, meta });
        }
        takes
    }

    /// A leader's replica wants to send its snapshot to `to`: a send slot if one is free.
    /// Returns the chunks to read first (none when it must wait).
    pub(super) fn admit_send(&mut self, group: GroupId, to: NodeId) -> Vec<ChunkRead> {
        let holds = self
            .groups
            .get(&group)
            .is_some_and(|slot| slot.group.is_sending_snapshot(to));
        if holds && self.snapshots.sending.contains(&(group, to)) {
            // Asked again while it holds its slot: counted taken, it was refused and
            // un-admitted, and its first chunk, read meanwhile, dropped (review).
            return Vec::new();
        }
        let admitted = self.free_send_slots() > 0;
        let s = &mut self.snapshots;
        if admitted {
            s.sending.insert((group, to));
        } else {
            s.waiting_sends.push((group, to));
        }
        let Some(slot) = self.groups.get_mut(&group) else {
            return Vec::new();
        };
        slot.group
            .admit_snapshot(to, admitted)
            .into_iter()
            .map(|(to, index, seq)| ChunkRead {
                group,
                to,
                index,
                seq,
            })
            .collect()
    }

    /// At each tick and each ready: transfers refused a send slot ask again, oldest first, as
    /// many as slots are free now (their groups then ask in their next ready, `admit_send`);
    /// those to a follower whose node is not live are dropped from the queue. Offered at
    /// ticks alone, a slot that a transfer gave back stood idle until the next tick: a node
    /// back from an outage with 2,000 groups to catch up took 6.5 s at 20 ticks a second,
    /// one transfer per slot per tick (BENCHMARKS.md, "Catching up a node that was down").
    pub(super) fn offer_send_slots(&mut self) {
        if self.snapshots.waiting_sends.is_empty() {
            return;
        }
        let mut free = self.free_send_slots();
        let (groups, peers) = (&mut self.groups, &self.peers);
        let mut asked = Vec::new();
        while free > 0
            && let Some((group, to)) = self.snapshots.waiting_sends.pop()
        {
            // Only to a live follower: one that is down would hold the slot for an
            // election timeout and take no chunk (simulator, seed 19006498: transfers to
            // a lost node took the one slot in turn while others waited). It asks again
            // at its next heartbeat answer.
            let wants = peers.is_live(to)
                && groups
                    .get_mut(&group)
                    .is_some_and(|slot| slot.group.want_snapshot_slot(to));
            if wants {
                free -= 1;
                asked.push(group);
                self.snapshots.offered.push((group, to));
            }
        }
        for group in asked {
            self.mark(group);
        }
    }

    /// The send slots free now: `max_snapshot_sends` less the transfers that still hold
    /// one (those that ended, or whose group went, give theirs back here) and those offered
    /// one that have not asked yet (those that asked, or whose group went, no longer count).
    fn free_send_slots(&mut self) -> usize {
        let groups = &self.groups;
        self.snapshots.sending.retain(|(g, n)| {
            groups
                .get(g)
                .is_some_and(|slot| slot.group.is_sending_snapshot(*n))
        });
        self.snapshots.offered.retain(|(g, n)| {
            groups
                .get(g)
                .is_some_and(|slot| slot.group.asks_send_slot(*n))
        });
        let held = self.snapshots.sending.len() + self.snapshots.offered.len();
        self.config.max_snapshot_sends.saturating_sub(held)
    }

    /// Before a snapshot chunk reaches its replica: a first chunk that would start a new
    /// incoming snapshot needs a receive slot. Without one it is refused (the leader asks
    /// again later) and false is returned.
    pub(super) fn admit_receive(&mut self, msg: &Message) -> bool {
        let MessageBody::InstallSnapshot { chunk } = &msg.body else {
            return true;
        };
        let Some(slot) = self.groups.get(&msg.group) else {
            return true;
        };
        // A chunk of an earlier term is dropped by its group: it starts nothing, and must
        // not drop the group's own build below (review of late batches).
        if msg.term < slot.group.leadership().0 || !slot.group.would_start_receiving(chunk) {
            return true;
        }
        let groups = &self.groups;
        let s = &mut self.snapshots;
        s.receiving.retain(|g| {
            groups
                .get(g)
                .is_some_and(|slot| slot.group.is_receiving_snapshot())
        });
        if s.receiving.len() < self.config.max_snapshot_receives || s.receiving.contains(&msg.group)
        {
            s.receiving.insert(msg.group);
            // Storage starts its incoming snapshot over with this chunk: a build of this
            // group's own no longer continues it, even once this transfer is given up, and
            // its next chunk then made storage refuse the write as corrupt and stop the
            // node (review). The group asks for a snapshot again later.
            s.forget(msg.group);
            return true;
        }
        s.refusals.push(Message {
            group: msg.group,
            from: self.id,
            to: msg.from,
            // The leader's own term, so that it takes the refusal as of its transfer.
            term: msg.term,
            body: MessageBody::SnapshotAck(SnapshotAck {
                index: chunk.meta.index,
                next: 0,
                done: false,
                refused: true,
                gap: false,
            }),
        });
        false
    }

    /// Puts the chunks of snapshots being built into `write`, in order, up to
    /// [`BUILT_BYTES_PER_WRITE`] chunks' worth of bytes (one chunk at least), adding their
    /// bytes to `written_bytes`; returns the snapshots this write completes. The rest wait
    /// for the next write: a machine may yield its whole state as one piece, cut into
    /// chunks here all at once, and every chunk went into one write before (review). A
    /// build whose group is gone, or now receives or restores a snapshot from its leader,
    /// is dropped.
    pub(super) fn write_built_chunks(
        &mut self,
        write: &mut WriteBatch,
        written_bytes: &mut usize,
    ) -> Vec<(GroupId, SnapshotMeta)> {
        let mut completed = Vec::new();
        let limit = self.built_bytes_limit();
        let mut taken = 0;
        let mut chunks = std::mem::take(&mut self.snapshots.chunks).into_iter();
        for (group, chunk) in chunks.by_ref() {
            // Not over a newer one the group installed from its leader while this build
            // ran: storage keeps the snapshot written last, and the log is compacted to
            // the newer one, so a restart would find the log compacted past its snapshot.
            let live = self.groups.get(&group).is_some_and(|slot| {
                let g = &slot.group;
                !g.is_receiving_snapshot()
                    && !g.is_restoring()
                    && g.snapshot()
                        .is_none_or(|(index, _)| index < chunk.meta.index)
            });
            if !live || !self.snapshots.building.contains_key(&group) {
                self.snapshots.forget(group);
                continue;
            }
            if chunk.last {
                self.snapshots.building.remove(&group);
                completed.push((group, chunk.meta.clone()));
            }
            let record = match write.groups.iter().position(|w| w.group == group) {
                Some(i) => &mut write.groups[i],
                None => {
                    write.groups.push(crate::storage::GroupWrite::new(group));
                    let last = write.groups.len() - 1;
                    &mut write.groups[last]
                }
            };
            *written_bytes += chunk.data.len();
            // With each chunk's own bytes (`SnapshotChunk::size_bytes`), as
            // `chunk_bytes` counts them: empty chunks cost nothing here before.
            taken += chunk.size_bytes();
            record.snapshot.push(chunk);
            if taken >= limit {
                break;
            }
        }
        self.snapshots.chunks = chunks.collect();
        self.snapshots.chunk_bytes = self
            .snapshots
            .chunks
            .iter()
            .map(|(_, c)| c.size_bytes())
            .sum();
        completed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Membership};

    /// A node building `group`'s snapshot at index 5 whose next chunk is numbered `next`.
    fn building_at(next: u32) -> (Node, GroupId) {
        let config = Config {
            strict: true,
            ..Config::default()
        };
        let mut node = Node::new(NodeId(1), config, 7).unwrap();
        let group = GroupId(1);
        node.create_group(group, Membership::voters([1])).unwrap();
        let meta = SnapshotMeta {
            index: 5,
            term: 1,
            membership: Membership::voters([1]),
        };
        let building = Building {
            meta,
            next_seq: next,
            pending: BytesMut::new(),
        };
        node.snapshots.building.insert(group, building);
        (node, group)
    }

    /// A build whose state machine yields more pieces than a snapshot may have chunks fails,
    /// with what it had queued; one that ends with the last number a snapshot may use is
    /// whole. Regression (review): the count wrapped to chunk 0 in a release build (storage
    /// refuses that as out of order, which stops the node) and panicked in a debug one.
    #[test]
    fn a_build_of_more_chunks_than_a_snapshot_has_fails() {
        // A chunk's worth each: smaller pieces are joined.
        let piece = || Bytes::from(vec![b'x'; Config::default().snapshot_chunk_bytes]);
        let (mut node, group) = building_at(MAX_SNAPSHOT_CHUNKS - 2);
        assert!(node.snapshot_chunk(group, 5, piece(), false));
        assert!(node.snapshot_chunk(group, 5, piece(), false));
        assert!(
            !node.snapshot_chunk(group, 5, piece(), true),
            "one too many"
        );
        assert!(node.snapshots.building.is_empty(), "the build failed");
        assert!(node.snapshots.chunks.is_empty(), "its chunks dropped");

        let (mut node, group) = building_at(MAX_SNAPSHOT_CHUNKS - 1);
        assert!(node.snapshot_chunk(group, 5, piece(), true));
        let seqs: Vec<(u32, bool)> = (node.snapshots.chunks.iter())
            .map(|(_, c)| (c.seq, c.last))
            .collect();
        assert_eq!(seqs, [(MAX_SNAPSHOT_CHUNKS - 1, true)]);
    }

    /// Pieces smaller than a chunk, empty ones among them (a machine yielding one piece per
    /// key), are joined into whole chunks, in order; the last chunk holds what is left.
    /// Regression (review): each piece made a chunk of its own, and empty chunks counted
    /// nothing against the bytes builds may hold, so a machine of tiny pieces queued
    /// millions of chunks ahead of the disk.
    #[test]
    fn small_pieces_are_joined_into_whole_chunks() {
        let (mut node, group) = building_at(0);
        let max = node.config.snapshot_chunk_bytes;
        let whole: Vec<u8> = (0..3 * max + 5).map(|i| (i % 251) as u8).collect();
        for piece in whole.chunks(1000) {
            assert!(node.snapshot_chunk(group, 5, Bytes::new(), false));
            assert!(node.snapshot_chunk(group, 5, Bytes::copy_from_slice(piece), false));
        }
        assert!(node.snapshot_chunk(group, 5, Bytes::new(), true));
        let chunks: Vec<&SnapshotChunk> = node.snapshots.chunks.iter().map(|(_, c)| c).collect();
        let shape: Vec<(u32, usize, bool)> = (chunks.iter())
            .map(|c| (c.seq, c.data.len(), c.last))
            .collect();
        assert_eq!(
            shape,
            [
                (0, max, false),
                (1, max, false),
                (2, max, false),
                (3, 5, true)
            ]
        );
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.to_vec()).collect();
        assert!(joined == whole, "the bytes in order");
        let sizes: usize = chunks.iter().map(|c| c.size_bytes()).sum();
        assert_eq!(node.snapshots.chunk_bytes, sizes);
    }

    /// An empty snapshot's one chunk counts against what builds may hold ahead of the disk
    /// (`SnapshotChunk::size_bytes`): many small snapshots fill the limit too.
    #[test]
    fn an_empty_chunk_counts_against_the_limit() {
        let (mut node, group) = building_at(0);
        assert!(node.snapshot_chunk(group, 5, Bytes::new(), true));
        assert_eq!(node.snapshots.chunks.len(), 1);
        assert!(node.snapshots.chunk_bytes > 0);
    }
}
