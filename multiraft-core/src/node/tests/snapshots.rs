//! Snapshots the node builds and sends (docs/design.md §4.6), one node delivered by hand.

use super::*;
use crate::message::SnapshotAck;
use crate::snapshot::{SnapshotChunk, SnapshotError, SnapshotMeta};
use crate::testing::{self, Io};

/// Takes every snapshot asked for at once, as one empty chunk, and remembers its index.
#[derive(Default)]
struct Snapshotting {
    taken: Vec<u64>,
}

impl Io for Snapshotting {
    fn send(&mut self, _batch: MessageBatch) {}

    fn snapshot(&mut self, take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        self.taken.push(take.meta.index);
        Ok(Vec::new())
    }
}

/// Proposes `count` commands to `group`.
fn propose(node: &mut Node, group: GroupId, count: u64) {
    for k in 0..count {
        node.propose(group, Bytes::from(format!("c{k}"))).unwrap();
    }
}

/// One ready, done whole.
fn one_ready(node: &mut Node, io: &mut Snapshotting) {
    let ready = node.ready().expect("a ready");
    testing::run(node, ready, io).unwrap();
}

/// A group that applies `snapshot_entries` more entries while its snapshot is being built
/// (the build skips it), and then nothing more, is snapshotted again once that build is
/// stored: otherwise a restart re-applies twice `snapshot_entries` (restart_bench measured
/// 2,049 with a bound of 1,280, whatever the number of build slots).
#[test]
fn a_snapshot_due_while_one_is_built_is_taken_once_that_one_is_stored() {
    let config = Config {
        snapshot_entries: 4,
        // Room for the nine entries committed before any snapshot is stored (the leader
        // parks proposals at `snapshot_entries + compaction_lag_entries`).
        compaction_lag_entries: 8,
        ..strict()
    };
    let mut node = new_node(1, config);
    let mut io = Snapshotting::default();
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    testing::settle(&mut node, &mut io).unwrap();
    assert!(io.taken.is_empty());
    let applied = |node: &Node| node.group_status(g(1)).unwrap().applied;
    let start = applied(&node);

    propose(&mut node, g(1), 4);
    one_ready(&mut node, &mut io); // writes the four
    propose(&mut node, g(1), 5);
    one_ready(&mut node, &mut io); // applies the four (a snapshot is due: taken), writes five
    assert_eq!(io.taken, vec![start + 4]);
    one_ready(&mut node, &mut io); // applies the five while that snapshot is written
    assert_eq!(applied(&node), start + 9);
    testing::settle(&mut node, &mut io).unwrap();

    assert_eq!(
        io.taken,
        vec![start + 4, start + 9],
        "the second snapshot was taken"
    );
    let snapshot = node
        .replica(g(1))
        .unwrap()
        .snapshot()
        .map(|(index, _)| index);
    assert_eq!(snapshot, Some(start + 9));
}

/// A chunk size at the top of `usize` ("never split"), which `Config::validate` takes,
/// overflows nothing: the node wants chunks and stores the snapshot. Regression (review):
/// eight chunks' worth overflowed (a panic in a debug build; in a release one a limit of 0,
/// and no chunk taken again).
#[test]
fn chunks_of_any_size_are_taken_and_stored() {
    let config = Config {
        snapshot_entries: 4,
        compaction_lag_entries: 8,
        snapshot_chunk_bytes: usize::MAX,
        ..strict()
    };
    assert_eq!(config.validate(), Ok(()));
    let mut node = new_node(1, config);
    let mut io = Snapshotting::default();
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    testing::settle(&mut node, &mut io).unwrap();
    let start = node.group_status(g(1)).unwrap().applied;
    propose(&mut node, g(1), 4);
    testing::settle(&mut node, &mut io).unwrap();
    assert!(node.wants_snapshot_chunks());
    assert_eq!(io.taken, vec![start + 4]);
    let stored = node.replica(g(1)).unwrap().snapshot();
    assert_eq!(stored.map(|(index, _)| index), Some(start + 4));
}

/// A single-voter group led by node 1, settled, with snapshots every `snapshot_entries`
/// (4) and `compaction_lag_entries` 2: its leader parks proposals once it has committed 6
/// entries past its last snapshot.
fn leader_with_snapshots_every_4(io: &mut impl Io) -> Node {
    let config = Config {
        snapshot_entries: 4,
        compaction_lag_entries: 2,
        ..strict()
    };
    let mut node = new_node(1, config);
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    testing::settle(&mut node, io).unwrap();
    node
}

/// The log of a group whose snapshots are not stored yet (built more slowly than entries
/// come, or not begun) does not grow without bound: once it has committed
/// `snapshot_entries + compaction_lag_entries` past its last snapshot, its leader parks
/// new proposals, unappended, and appends them once the next snapshot is stored.
/// (restart_bench under load: a burst of proposals to one group ran its log 2,560 entries
/// past its snapshot, and a restart then re-applied them all, against a bound of 1,280.)
#[test]
fn a_leader_parks_proposals_until_its_log_is_snapshotted() {
    let mut io = Snapshotting::default();
    let mut node = leader_with_snapshots_every_4(&mut io);
    let status = |node: &Node| node.group_status(g(1)).unwrap();
    propose(&mut node, g(1), 6);
    one_ready(&mut node, &mut io); // writes the six: all committed, none snapshotted
    let last = status(&node).last_index;
    assert_eq!(status(&node).commit, last);
    assert!(last >= 6, "6 committed past snapshot 0: the hold is on");
    propose(&mut node, g(1), 3);
    assert_eq!(status(&node).last_index, last, "parked, not appended");
    testing::settle(&mut node, &mut io).unwrap();
    let snapshot = node.replica(g(1)).unwrap().snapshot().map(|s| s.0);
    assert_eq!(
        snapshot,
        Some(last),
        "the snapshot of the first six is stored"
    );
    assert_eq!(
        status(&node).applied,
        last + 3,
        "then the three are appended"
    );
}

/// A busy group's window of proposals in flight does not itself hold its leader back:
/// the hold counts committed entries past the snapshot, not appended ones. (Counted on
/// the last index, one group with 4,096 clients ran into `Busy` nearly all the time, at
/// 0.67x the rate without the hold: BENCHMARKS.md.)
#[test]
fn entries_in_flight_do_not_hold_a_leader_back() {
    let mut io = Snapshotting::default();
    let mut node = leader_with_snapshots_every_4(&mut io);
    let before = node.group_status(g(1)).unwrap().last_index;
    propose(&mut node, g(1), 20);
    assert_eq!(
        node.group_status(g(1)).unwrap().last_index,
        before + 20,
        "all twenty appended, against a hold of 6"
    );
}

/// Answers every snapshot request with `error`, counting them.
struct FailingSnapshots {
    error: SnapshotError,
    asked: usize,
}

impl Io for FailingSnapshots {
    fn send(&mut self, _batch: MessageBatch) {}

    fn snapshot(&mut self, _take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        self.asked += 1;
        Err(self.error.clone())
    }
}

/// A group whose state machine takes no snapshots is asked once, not after every apply
/// (each of which logged a warning before), and its leader never holds proposals back:
/// its log is kept whole, as documented.
#[test]
fn a_machine_without_snapshots_is_asked_once_and_its_group_keeps_writing() {
    let mut io = FailingSnapshots {
        error: SnapshotError::Unsupported,
        asked: 0,
    };
    let mut node = leader_with_snapshots_every_4(&mut io);
    for _ in 0..10 {
        propose(&mut node, g(1), 5);
        testing::settle(&mut node, &mut io).unwrap();
    }
    assert_eq!(io.asked, 1);
    assert!(node.group_status(g(1)).unwrap().applied > 50);
}

/// A failing snapshot is tried again after later applies, and its group's leader does not
/// hold proposals back meanwhile (it would wait for a snapshot that may never come).
#[test]
fn a_failing_snapshot_is_retried_and_does_not_stop_the_group() {
    let mut io = FailingSnapshots {
        error: SnapshotError::Failed("disk full".into()),
        asked: 0,
    };
    let mut node = leader_with_snapshots_every_4(&mut io);
    for _ in 0..10 {
        propose(&mut node, g(1), 5);
        testing::settle(&mut node, &mut io).unwrap();
    }
    assert!(io.asked >= 9, "asked {} times", io.asked);
    assert!(node.group_status(g(1)).unwrap().applied > 50);
}

/// Takes snapshots whose chunks reach the node later (`Io::snapshot_later`), as from a
/// driver that builds them off its loop: they wait in `late` until the test hands them over.
/// Reads back the chunks written (`stored`), so that an installed snapshot is restored.
#[derive(Default)]
struct LateSnapshots {
    late: Vec<(GroupId, u64)>,
    stored: Vec<SnapshotChunk>,
    /// The outcomes reported.
    ended: Vec<Outcome>,
}

impl Io for LateSnapshots {
    fn send(&mut self, _batch: MessageBatch) {}

    fn snapshot(&mut self, _take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        Ok(vec![Bytes::from_static(b"built")])
    }

    fn snapshot_later(&mut self, take: &TakeSnapshot, _chunks: &[Bytes]) -> bool {
        self.late.push((take.group, take.meta.index));
        true
    }

    fn persist(&mut self, write: &WriteBatch) -> Result<(), crate::error::StorageError> {
        self.stored
            .extend(write.groups.iter().flat_map(|w| w.snapshot.iter().cloned()));
        Ok(())
    }

    fn snapshot_chunk(&mut self, _group: GroupId, index: u64, seq: u32) -> Option<SnapshotChunk> {
        let mut newest_first = self.stored.iter().rev();
        newest_first
            .find(|c| c.meta.index == index && c.seq == seq)
            .cloned()
    }

    fn outcome(&mut self, outcome: Outcome) {
        self.ended.push(outcome);
    }
}

/// A follower of group 1 (node 3; snapshots every two entries) whose build of a snapshot
/// at index 3 began and waits for its chunks (`LateSnapshots`).
fn building_at_3() -> (Node, LateSnapshots) {
    let config = Config {
        snapshot_entries: 2,
        compaction_lag_entries: 0,
        ..strict()
    };
    let mut node = new_node(3, config);
    let mut io = LateSnapshots::default();
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    let entries = (1..=3).map(|i| noop(i, 1)).collect();
    node.step(batch_for(1, 3, 1, &[g(1)], append(0, 0, entries, 3)));
    testing::settle(&mut node, &mut io).unwrap();
    assert_eq!(io.late, vec![(g(1), 3)], "a build of index 3 began");
    (node, io)
}

/// A first chunk of an earlier term's leader, delayed past a newer term, starts no
/// transfer and leaves the group's own build going. Regression (review of late batches):
/// the node took a receive slot for it and dropped the build before the group dropped the
/// chunk on its term.
#[test]
fn a_late_first_chunk_of_an_earlier_term_leaves_the_build_going() {
    let (mut node, mut io) = building_at_3();
    // Node 2 leads term 2.
    node.step(batch_for(2, 3, 2, &[g(1)], append(3, 1, Vec::new(), 3)));
    testing::settle(&mut node, &mut io).unwrap();
    assert_eq!(node.replica(g(1)).unwrap().leadership(), (2, Some(n(2))));

    node.step(batch_for(1, 3, 1, &[g(1)], leaders_chunk_at_10(false)));
    testing::settle(&mut node, &mut io).unwrap();
    assert!(!node.replica(g(1)).unwrap().is_receiving_snapshot());
    assert!(
        node.snapshot_chunk(g(1), 3, Bytes::from_static(b"whole"), true),
        "the build goes on"
    );
}

/// The leader's first chunk of its snapshot at index 10 (the only one when `last`).
fn leaders_chunk_at_10(last: bool) -> MessageBody {
    first_chunk_of(10, 1, last)
}

/// The first chunk of a leader's snapshot at `index`, whose entry is of `term` (the only
/// chunk when `last`).
fn first_chunk_of(index: u64, term: u64, last: bool) -> MessageBody {
    let chunk = SnapshotChunk {
        meta: SnapshotMeta {
            index,
            term,
            membership: voters(),
        },
        seq: 0,
        data: Bytes::from_static(b"leader's"),
        last,
    };
    MessageBody::InstallSnapshot {
        chunk: Box::new(chunk),
    }
}

/// A proposal taken under a leadership that has changed since ends once its replica is
/// restored from a snapshot of a later term: everything the old leadership committed is in
/// that snapshot, so a proposal not applied by then never will be in that leadership
/// (`Node::restored` settles it, as an apply of a later term's entry does). Until then it
/// waits: it may yet be applied. Without the restore's settle it waited for its group's
/// next entry, or for its timeout.
#[test]
fn a_restore_of_a_later_terms_snapshot_ends_a_proposal_of_an_earlier_leadership() {
    let mut node = new_node(3, strict());
    let mut io = LateSnapshots::default();
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    // Node 1 leads term 1 (its entry applied here); node 3's proposal is forwarded to it.
    let first = append(0, 0, vec![noop(1, 1)], 1);
    node.step(batch_for(1, 3, 1, &[g(1)], first));
    testing::settle(&mut node, &mut io).unwrap();
    let request = node.propose(g(1), Bytes::from_static(b"x")).unwrap();
    testing::settle(&mut node, &mut io).unwrap();

    // Node 2 leads term 2: the proposal may still be in what node 1 committed.
    node.step(batch_for(2, 3, 2, &[g(1)], append(1, 1, Vec::new(), 1)));
    testing::settle(&mut node, &mut io).unwrap();
    assert_eq!(node.status().pending_proposals, 1, "waits to be settled");

    // Node 2's snapshot at 10, of term 2, is installed and restored.
    node.step(batch_for(2, 3, 2, &[g(1)], first_chunk_of(10, 2, true)));
    testing::settle(&mut node, &mut io).unwrap();
    assert_eq!(node.group_status(g(1)).unwrap().applied, 10, "restored");
    let ends: Vec<_> = io.ended.iter().filter(|o| o.request == request).collect();
    assert_eq!(ends.len(), 1, "{:?}", io.ended);
    assert_eq!(
        ends[0].resolution,
        Resolution::Indeterminate(crate::error::Indeterminate::LeadershipChanged)
    );
}

/// A snapshot this node builds that ends after its group installed a newer one from the
/// leader is dropped, not written over the newer one: storage keeps the snapshot written
/// last while the log stays compacted to the newer one, so a restart found its log
/// compacted past its snapshot (the simulator, seed 45, once snapshots reached the node
/// late).
#[test]
fn a_build_that_ends_after_a_newer_install_is_not_written() {
    let (mut node, mut io) = building_at_3();

    node.step(batch_for(1, 3, 1, &[g(1)], leaders_chunk_at_10(true)));
    testing::settle(&mut node, &mut io).unwrap();
    let snapshot = |node: &Node| node.replica(g(1)).unwrap().snapshot();
    assert_eq!(snapshot(&node), Some((10, 1)), "the leader's is installed");

    assert!(!node.replica(g(1)).unwrap().is_restoring(), "and restored");

    node.snapshot_chunk(g(1), 3, Bytes::from_static(b"built"), true);
    while let Some(ready) = node.ready() {
        let older = ready.write.groups.iter().flat_map(|w| &w.snapshot);
        assert!(older.count() == 0, "the older build is not written");
        testing::run(&mut node, ready, &mut io).unwrap();
    }
    assert_eq!(snapshot(&node), Some((10, 1)));
}

/// A snapshot this node builds is dropped once its group starts receiving one from the
/// leader: storage starts its incoming snapshot over with the leader's first chunk, so the
/// build's next chunks no longer continue it — even once that transfer is given up.
/// Regression (review): the build's next chunk, written after the transfer timed out, made
/// storage refuse the write as corrupt and stop the node.
#[test]
fn a_build_is_dropped_when_its_group_starts_receiving_a_snapshot() {
    let (mut node, mut io) = building_at_3();
    let timeout = node.config().election_timeout_min_ticks;
    assert!(node.snapshot_chunk(g(1), 3, Bytes::from_static(b"first"), false));
    testing::settle(&mut node, &mut io).unwrap();

    node.step(batch_for(1, 3, 1, &[g(1)], leaders_chunk_at_10(false)));
    testing::settle(&mut node, &mut io).unwrap();
    assert!(node.replica(g(1)).unwrap().is_receiving_snapshot());
    for _ in 0..2 * timeout {
        node.tick();
        testing::settle(&mut node, &mut io).unwrap();
    }
    assert!(
        !node.replica(g(1)).unwrap().is_receiving_snapshot(),
        "the transfer was given up"
    );

    node.snapshot_chunk(g(1), 3, Bytes::from_static(b"rest"), true);
    while let Some(ready) = node.ready() {
        let built = ready.write.groups.iter().flat_map(|w| &w.snapshot);
        assert_eq!(
            built.filter(|c| c.meta.index == 3).count(),
            0,
            "the build's next chunk is not written after the leader's first"
        );
        testing::run(&mut node, ready, &mut io).unwrap();
    }
}

/// A machine that yields its whole state as one piece has it cut into chunks, and no write
/// holds more than `BUILT_BYTES_PER_WRITE` chunks' worth of it: the snapshot goes to
/// storage over several writes, in order, and completes. Regression (review): every chunk
/// went into the next write, one storage transaction holding the whole snapshot.
#[test]
fn a_snapshot_yielded_in_one_piece_is_written_over_several_writes() {
    use crate::node::snapshots::BUILT_BYTES_PER_WRITE;
    let (mut node, mut io) = building_at_3();
    let chunk_bytes = node.config().snapshot_chunk_bytes;
    let chunks = 3 * BUILT_BYTES_PER_WRITE + 1;
    let whole = Bytes::from(vec![7u8; chunks * chunk_bytes]);
    assert!(node.snapshot_chunk(g(1), 3, whole, true));
    let mut written = Vec::new();
    while let Some(ready) = node.ready() {
        let seqs: Vec<u32> = ready
            .write
            .groups
            .iter()
            .flat_map(|w| &w.snapshot)
            .map(|c| c.seq)
            .collect();
        assert!(
            seqs.len() <= BUILT_BYTES_PER_WRITE,
            "one write held {seqs:?}"
        );
        written.extend(seqs);
        testing::run(&mut node, ready, &mut io).unwrap();
    }
    assert_eq!(written, (0..chunks as u32).collect::<Vec<_>>());
    assert_eq!(node.replica(g(1)).unwrap().snapshot(), Some((3, 1)));
}

/// Builds every snapshot at once as one chunk, stores the chunks written, serves them back,
/// and keeps every batch sent.
#[derive(Default)]
struct Transfers {
    stored: Vec<(GroupId, SnapshotChunk)>,
    sent: Vec<MessageBatch>,
}

impl Io for Transfers {
    fn send(&mut self, batch: MessageBatch) {
        self.sent.push(batch);
    }

    fn snapshot(&mut self, _take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        Ok(vec![Bytes::from_static(b"state")])
    }

    fn persist(&mut self, write: &WriteBatch) -> Result<(), crate::error::StorageError> {
        for w in &write.groups {
            self.stored
                .extend(w.snapshot.iter().map(|c| (w.group, c.clone())));
        }
        Ok(())
    }

    fn snapshot_chunk(&mut self, group: GroupId, index: u64, seq: u32) -> Option<SnapshotChunk> {
        let mut newest_first = self.stored.iter().rev();
        newest_first
            .find(|(g, c)| *g == group && c.meta.index == index && c.seq == seq)
            .map(|(_, c)| c.clone())
    }
}

impl Transfers {
    /// Takes the batches sent so far: the messages of each, with their group.
    fn take_sent(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.sent)
            .into_iter()
            .flat_map(|b| b.messages)
            .collect()
    }
}

/// The chunks sent to node 2 among `sent`: each transfer's group, snapshot index and term.
fn chunks_to_2(sent: Vec<Message>) -> Vec<(GroupId, u64, u64)> {
    sent.into_iter()
        .filter_map(|m| match m.body {
            MessageBody::InstallSnapshot { chunk } if m.to == n(2) => {
                Some((m.group, chunk.meta.index, m.term))
            }
            _ => None,
        })
        .collect()
}

/// A send slot that a finished transfer gives back goes to the next transfer waiting for
/// one in the node's next ready, not at its next tick, and the transfers take the slot in
/// the order they asked for one. Node 1 leads groups 1 to 5 alone, node 2 a learner of
/// each that holds nothing; with one send slot, group 1's transfer takes it and the others
/// wait. Each time node 2 acknowledges a whole snapshot, the next group's goes out, without
/// a tick; with a tick first, the tick's offer and the ready's do not both hand the slot
/// out (the second group to ask would be refused and sent to the back of the queue). Before,
/// a slot waited for the tick: a node back from an outage with 2,000 groups to catch up
/// took 6.5 s at 20 ticks a second, one transfer per slot per tick (BENCHMARKS.md,
/// "Catching up a node that was down").
#[test]
fn a_send_slot_given_back_goes_to_the_next_waiting_transfer_without_a_tick() {
    let config = Config {
        snapshot_entries: 4,
        compaction_lag_entries: 2,
        max_snapshot_sends: 1,
        ..strict()
    };
    let mut node = new_node(1, config);
    let mut io = Transfers::default();
    let groups: Vec<GroupId> = (1..=5).map(g).collect();
    for &group in &groups {
        let members = Membership::voters([1]).with_learners([2]);
        node.create_group(group, members).unwrap();
        node.campaign(group).unwrap();
        testing::settle(&mut node, &mut io).unwrap();
        propose(&mut node, group, 12);
        testing::settle(&mut node, &mut io).unwrap();
    }
    // Node 2 rejects each group's latest append, in group order: it holds nothing, below
    // each log's first index now, so each group needs a snapshot sent.
    let appends: BTreeMap<GroupId, (u64, u64)> = (io.take_sent().into_iter())
        .filter_map(|m| match m.body {
            MessageBody::Append { prev_index, .. } if m.to == n(2) => {
                Some((m.group, (prev_index, m.term)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        appends.len(),
        groups.len(),
        "an append to node 2 in each group"
    );
    for (&group, &(prev_index, term)) in &appends {
        let reject = MessageBody::AppendResponse {
            success: false,
            index: prev_index,
            hint_index: 0,
            hint_term: 0,
            joined: false,
        };
        node.step(batch_for(2, 1, term, &[group], reject));
        testing::settle(&mut node, &mut io).unwrap();
    }
    let mut sending = chunks_to_2(io.take_sent());
    let mut order = Vec::new();
    for turn in 0..groups.len() {
        assert_eq!(sending.len(), 1, "one transfer at a time: {sending:?}");
        let (done, index, term) = sending[0];
        order.push(done);
        // Node 2 has the whole snapshot: the slot is free, and the next transfer takes it.
        let ack = MessageBody::SnapshotAck(SnapshotAck {
            index,
            next: 1,
            done: true,
            refused: false,
            gap: false,
        });
        node.step(batch_for(2, 1, term, &[done], ack));
        if turn == 1 {
            node.tick();
        }
        testing::settle(&mut node, &mut io).unwrap();
        sending = chunks_to_2(io.take_sent());
    }
    assert_eq!(sending, vec![], "every transfer ended");
    assert_eq!(
        order, groups,
        "the slot taken in the order asked, without a tick"
    );
}
