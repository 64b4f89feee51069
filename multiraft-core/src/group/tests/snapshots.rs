//! Snapshots in one group (docs/design.md §4.6; Raft §7): compaction below a stored
//! snapshot, the follower's install, and the leader falling back to its snapshot.

use super::*;
use crate::message::SnapshotAck;
use crate::snapshot::SnapshotChunk;

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        membership: Membership::voters([1, 2, 3]),
    }
}

pub(super) fn chunk(index: u64, term: u64, seq: u32, last: bool) -> MessageBody {
    MessageBody::InstallSnapshot {
        chunk: Box::new(SnapshotChunk {
            meta: meta(index, term),
            seq,
            data: Bytes::from(vec![seq as u8; 4]),
            last,
        }),
    }
}

/// Chunk `seq` of the snapshot at 5 (term 2), as a leader's read returns it: not the last.
fn chunk_of_5(seq: u32) -> Option<SnapshotChunk> {
    Some(SnapshotChunk {
        meta: meta(5, 2),
        seq,
        data: Bytes::from_static(b"data"),
        last: false,
    })
}

/// A follower's answer about the snapshot at `index`: chunk `next` wanted, `done`, `gap`.
fn snapshot_ack(index: u64, next: u32, done: bool, gap: bool) -> MessageBody {
    MessageBody::SnapshotAck(SnapshotAck {
        index,
        next,
        done,
        refused: false,
        gap,
    })
}

/// A replica of voters 1..=3 restored with a snapshot at `snapshot` (index, term), its log
/// compacted there and holding `entries` after it, in `term`.
fn with_snapshot(id: u64, snapshot: (u64, u64), entries: Vec<Entry>, term: u64) -> Replica {
    let mut loaded = LoadedGroup::new(G);
    loaded.membership = Membership::voters([1, 2, 3]);
    loaded.hard_state = hs(term, None, snapshot.0);
    loaded.compacted = Some(Compacted {
        index: snapshot.0,
        term: snapshot.1,
    });
    loaded.snapshot = Some(meta(snapshot.0, snapshot.1));
    loaded.entries = entries;
    let mut g = Replica::restore(n(id), loaded, Arc::new(strict()), id).unwrap();
    g.end_vote_hold();
    let ready = g.ready(MAX, MAX);
    assert_eq!(
        ready.restore,
        Some(meta(snapshot.0, snapshot.1)),
        "restored first"
    );
    assert!(ready.apply.is_empty(), "nothing applied before the restore");
    g.restored(snapshot.0);
    g
}

/// A snapshot that replaces the log drops the acknowledgements waiting for this ready's
/// write of entries it dropped unwritten: sent after that write, they would tell the old
/// leader this replica holds entries it never stored (docs/design.md §3.1, rule 1), and it
/// could count them towards a commit. Regression (review): only a conflicting append
/// dropped them.
#[test]
fn a_snapshot_replacing_the_log_drops_the_acks_of_entries_it_dropped() {
    let mut g = restored(1, hs(2, None, 1), log_of(&[1, 1]));
    g.step(msg(2, 1, 2, append(2, 1, vec![e(3, 2), e(4, 2)], 1)));
    g.step(msg(3, 1, 3, chunk(5, 3, 0, true)));
    let r = g.ready(MAX, MAX);
    assert!(r.log_reset.is_some(), "the log was replaced");
    assert!(r.entries.is_empty(), "entries 3 and 4 are not written");
    let acks: Vec<_> = r
        .send_after_write
        .iter()
        .filter(|m| matches!(m.body, MessageBody::AppendResponse { success: true, .. }))
        .collect();
    assert!(acks.is_empty(), "acknowledged unwritten entries: {acks:?}");
}

/// Regression (simulator, seed 74): a follower whose entry at the leader's compacted prefix
/// has another term must get the snapshot. The conflict hint stopped at the prefix, so the
/// leader sent the same append forever.
#[test]
fn a_follower_conflicting_at_the_compacted_prefix_gets_the_snapshot() {
    let tail = |first: u64| (first..=8).map(|i| e(i, 2)).collect::<Vec<_>>();
    let leader = with_snapshot(1, (5, 2), tail(6), 2);
    let voter = with_snapshot(3, (5, 2), tail(6), 2);
    // Replica 2 holds index 5 of term 1: the leader compacted index 5 of term 2.
    let follower = restored(2, hs(2, None, 4), log_of(&[1, 1, 1, 1, 1]));
    let mut c = Cluster::with_groups(Membership::voters([1, 2, 3]), vec![leader, follower, voter]);
    // With the bug, the append and its rejection went back and forth until `elect` gave up.
    c.elect(1);
    let reads = c.g_mut(1).admit_snapshot(n(2), true);
    assert_eq!(
        reads,
        vec![(n(2), 5, 0)],
        "the leader sends its snapshot, chunk 0 first"
    );
    assert_eq!(
        c.g_mut(1).admit_snapshot(n(3), true),
        vec![],
        "3 needs none"
    );
}

/// §7: once a snapshot is stored, the log is compacted to `compaction_lag_entries` below it
/// (in memory, and in storage through `compact_to`), never past what is applied; the next
/// snapshot is due `snapshot_entries` applies later.
#[test]
fn a_stored_snapshot_compacts_the_log_and_keeps_the_lag() {
    let config = Config {
        snapshot_entries: 6,
        compaction_lag_entries: 2,
        ..strict()
    };
    let mut loaded = LoadedGroup::new(G);
    loaded.membership = Membership::voters([1, 2, 3]);
    loaded.hard_state = hs(1, None, 10);
    loaded.entries = log_of(&[1; 12]);
    let mut g = Replica::restore(n(1), loaded, Arc::new(config), 1).unwrap();
    assert_eq!(g.snapshot_due(), None, "nothing applied yet");
    let ready = g.ready(MAX, MAX);
    assert_eq!(
        ready.apply.iter().map(|r| r.len()).sum::<usize>(),
        10,
        "the committed entries"
    );
    let due = g.snapshot_due().expect("10 applied, 6 needed");
    assert_eq!((due.index, due.term), (10, 1));
    g.snapshot_stored(due);
    assert_eq!(
        g.first_index(),
        9,
        "8 entries compacted, 2 kept below the snapshot"
    );
    assert_eq!(
        g.term_at(8),
        Some(1),
        "the last compacted entry's term is kept"
    );
    assert_eq!(g.ready(MAX, MAX).compact_to, Some(8));
    assert_eq!(g.snapshot_due(), None, "the next one is 6 applies away");
    // An older snapshot stored late changes nothing.
    g.snapshot_stored(meta(4, 1));
    assert_eq!((g.first_index(), g.snapshot()), (9, Some((10, 1))));
}

/// Groups fed alike take their snapshots at different moments: a group's period is
/// `snapshot_entries` less a share of up to a quarter drawn from its id. Over a thousand
/// groups every one of the 256 periods of the quarter is taken, none by more than twice
/// its share; and a replica's snapshot falls due after its own period, not after
/// `snapshot_entries`.
#[test]
fn groups_fed_alike_take_their_snapshots_at_different_moments() {
    use crate::group::snapshots::snapshot_period;
    let mut taken = [0usize; 256];
    for id in 1..=1_000 {
        let period = snapshot_period(GroupId(id), 1_024);
        assert!((769..=1_024).contains(&period), "{period}");
        taken[(1_024 - period) as usize] += 1;
    }
    assert!(taken.iter().all(|&n| (1..=8).contains(&n)), "{taken:?}");
    assert_eq!(
        snapshot_period(GroupId(7), 3),
        3,
        "too few entries to spread"
    );

    let config = Arc::new(Config {
        snapshot_entries: 1_024,
        ..strict()
    });
    let period = snapshot_period(G, 1_024);
    assert!(period < 1_024, "group {G} draws a share: {period}");
    for applied in [period - 1, period] {
        let mut loaded = LoadedGroup::new(G);
        loaded.membership = Membership::voters([1, 2, 3]);
        loaded.hard_state = hs(1, None, applied);
        loaded.entries = log_of(&vec![1; applied as usize]);
        let mut g = Replica::restore(n(1), loaded, Arc::clone(&config), 1).unwrap();
        g.ready(MAX, MAX);
        assert_eq!(
            g.snapshot_due().map(|m| m.index),
            (applied == period).then_some(period),
            "{applied} applied"
        );
    }
}

/// §7 on the follower: chunks are written and acknowledged after the write; the last one
/// replaces a log that lacks the snapshot's last entry (`log_reset`), commits up to it, and
/// asks for the state machine to be restored; nothing is applied until it is. A chunk out
/// of order is answered with the chunk wanted.
#[test]
fn a_follower_installs_a_snapshot_chunk_by_chunk() {
    let mut g = restored(2, hs(3, None, 2), log_of(&[1, 1, 1]));
    g.step(msg(1, 2, 3, chunk(9, 3, 1, false)));
    let r = g.ready(MAX, MAX);
    assert!(
        r.snapshot_chunks.is_empty(),
        "chunk 1 before chunk 0 is not written"
    );
    assert!(matches!(
        r.send_after_write[..],
        [Message {
            body: MessageBody::SnapshotAck(SnapshotAck {
                next: 0,
                done: false,
                ..
            }),
            ..
        }]
    ));
    g.step(msg(1, 2, 3, chunk(9, 3, 0, false)));
    let r = g.ready(MAX, MAX);
    assert_eq!(r.snapshot_chunks.len(), 1);
    assert!(
        r.send_now.is_empty(),
        "the acknowledgement waits for the write"
    );
    g.step(msg(1, 2, 3, chunk(9, 3, 1, true)));
    let r = g.ready(MAX, MAX);
    assert_eq!(r.snapshot_chunks.len(), 1);
    assert_eq!(r.log_reset, Some(Compacted { index: 9, term: 3 }));
    assert_eq!(r.restore, Some(meta(9, 3)));
    assert_eq!(r.hard_state.map(|h| h.commit), Some(9));
    assert!(matches!(
        r.send_after_write[..],
        [Message {
            body: MessageBody::SnapshotAck(SnapshotAck {
                index: 9,
                next: 2,
                done: true,
                ..
            }),
            ..
        }]
    ));
    let s = g.status();
    assert_eq!((s.first_index, s.last_index, s.commit), (10, 9, 9));
    // Appends after the snapshot are taken; nothing is applied before the restore.
    g.step(msg(1, 2, 3, append(9, 3, vec![e(10, 3)], 10)));
    assert!(g.ready(MAX, MAX).apply.is_empty());
    g.on_persisted(10, 3);
    assert!(g.ready(MAX, MAX).apply.is_empty(), "still restoring");
    g.restored(9);
    assert_eq!(g.ready(MAX, MAX).apply, [vec![e(10, 3)]]);
}

/// A new transfer's first chunk that arrives in the same ready as chunks of an earlier one
/// (a newer snapshot replaced the one being sent, or a new leader started over) replaces
/// them: the write carries consecutive chunks of one snapshot, as storage requires.
/// Regression (review): the write carried both, storage refused it as corrupt, and the
/// node stopped.
#[test]
fn a_new_transfer_replaces_the_chunks_of_the_last_in_the_same_write() {
    let mut g = restored(2, hs(3, None, 2), log_of(&[1, 1, 1]));
    g.step(msg(1, 2, 3, chunk(9, 3, 0, false)));
    g.step(msg(1, 2, 3, chunk(9, 3, 1, false)));
    g.step(msg(1, 2, 3, chunk(12, 3, 0, false)));
    let r = g.ready(MAX, MAX);
    let chunks: Vec<(u64, u32)> = r
        .snapshot_chunks
        .iter()
        .map(|c| (c.meta.index, c.seq))
        .collect();
    assert_eq!(chunks, [(12, 0)]);
    let mut write = crate::storage::GroupWrite::new(G);
    write.snapshot = r.snapshot_chunks.clone();
    write.validate(3, 0).expect("a write storage takes");
}

/// A transfer whose follower stays silent (its node is behind on its inbox, or the chunks
/// were lost) sends its window again after two heartbeat intervals, then waits twice as
/// long before each next time, until an acknowledgement comes. (cluster_bench: a leader
/// sending the same window every two intervals to a loaded follower filled its inbox with
/// hundreds of MiB of copies.)
#[test]
fn a_stalled_transfer_sends_again_less_and_less_often() {
    let config = Arc::new(Config {
        heartbeat_interval_ticks: 1,
        election_timeout_min_ticks: 40,
        election_timeout_max_ticks: 80,
        ..strict()
    });
    let mut c = snapshot_at_5_and_2_empty(&config, (6..=8).map(|i| e(i, 2)).collect());
    let leader = c.g_mut(1);
    assert_eq!(leader.admit_snapshot(n(2), true), vec![(n(2), 5, 0)]);
    let chunk0 = || chunk_of_5(0);
    assert!(leader.chunk_read(n(2), 5, 0, chunk0()));
    let _ = leader.ready(MAX, MAX);
    // Silence from 2's transfer, but a heartbeat answer every tick.
    let mut resent_at = Vec::new();
    for tick in 1..=39 {
        leader.tick();
        leader.handle_heartbeat_response(n(2), 0);
        let reads = leader.ready(MAX, MAX).chunk_reads;
        if reads.contains(&(n(2), 5, 0)) {
            resent_at.push(tick);
            leader.chunk_read(n(2), 5, 0, chunk0());
            let _ = leader.ready(MAX, MAX);
        }
    }
    assert_eq!(
        resent_at,
        vec![2, 6, 14, 30],
        "waits of 2, 4, 8 and 16 ticks"
    );
}

/// A chunk that arrives past the one wanted is dropped and answered with a gap
/// (`SnapshotAck::gap`); a copy of one already taken is not a gap.
#[test]
fn a_follower_answers_a_chunk_past_the_one_wanted_with_a_gap() {
    let mut g = restored(2, hs(3, None, 2), log_of(&[1, 1, 1]));
    let acks = |g: &mut Replica| -> Vec<(u32, bool)> {
        let r = g.ready(MAX, MAX);
        assert!(r.send_now.is_empty(), "acknowledgements follow the write");
        r.send_after_write
            .iter()
            .filter_map(|m| match &m.body {
                MessageBody::SnapshotAck(a) => Some((a.next, a.gap)),
                _ => None,
            })
            .collect()
    };
    g.step(msg(1, 2, 3, chunk(9, 3, 1, false)));
    assert_eq!(
        acks(&mut g),
        [(0, true)],
        "nothing received yet: chunk 0 lost"
    );
    g.step(msg(1, 2, 3, chunk(9, 3, 0, false)));
    assert_eq!(acks(&mut g), [(1, false)]);
    g.step(msg(1, 2, 3, chunk(9, 3, 2, false)));
    assert_eq!(acks(&mut g), [(1, true)], "chunk 1 was lost: a gap");
    g.step(msg(1, 2, 3, chunk(9, 3, 0, false)));
    assert_eq!(acks(&mut g), [(1, false)], "a copy of chunk 0: no gap");
    g.step(msg(1, 2, 3, chunk(9, 3, 1, false)));
    assert_eq!(acks(&mut g), [(2, false)]);
}

/// A gap sends the chunks from the acknowledged point again at once, not after the resend
/// wait of two heartbeat intervals; and once per point, though every chunk of the window
/// past the lost one answers with it. (Simulator, seed 19006498: a reordered chunk stalled
/// each transfer for 200 ms, and groups waiting for the node's one send slot stayed
/// without a quorum past the liveness bound.)
#[test]
fn a_gap_sends_the_lost_chunks_again_at_once_and_once() {
    let config = Arc::new(Config {
        snapshot_window_chunks: 3,
        ..strict()
    });
    let mut c = snapshot_at_5_and_2_empty(&config, (6..=8).map(|i| e(i, 2)).collect());
    let term = c.g(1).term;
    let leader = c.g_mut(1);
    let chunk = chunk_of_5;
    assert_eq!(leader.admit_snapshot(n(2), true), vec![(n(2), 5, 0)]);
    for seq in 0..3 {
        assert!(leader.chunk_read(n(2), 5, seq, chunk(seq)));
        let reads = leader.ready(MAX, MAX).chunk_reads;
        let next = (seq < 2).then_some((n(2), 5, seq + 1));
        assert_eq!(
            reads,
            Vec::from_iter(next),
            "reads in order, three in flight"
        );
    }
    let ack = |next: u32, gap: bool| msg(2, 1, term, snapshot_ack(5, next, false, gap));
    // Chunk 0 taken; chunk 1 lost, so chunk 2 comes first.
    leader.step(ack(1, false));
    assert_eq!(leader.ready(MAX, MAX).chunk_reads, vec![(n(2), 5, 3)]);
    assert!(leader.chunk_read(n(2), 5, 3, chunk(3)));
    let _ = leader.ready(MAX, MAX);
    leader.step(ack(1, true));
    assert_eq!(
        leader.ready(MAX, MAX).chunk_reads,
        vec![(n(2), 5, 1)],
        "chunk 1 again, at once"
    );
    // Chunk 3's gap, for the same point: the resend is already under way.
    leader.step(ack(1, true));
    assert!(
        leader.ready(MAX, MAX).chunk_reads.is_empty(),
        "once per point"
    );
    assert!(leader.chunk_read(n(2), 5, 1, chunk(1)));
    assert_eq!(leader.ready(MAX, MAX).chunk_reads, vec![(n(2), 5, 2)]);
    assert!(leader.chunk_read(n(2), 5, 2, chunk(2)));
    assert_eq!(leader.ready(MAX, MAX).chunk_reads, vec![(n(2), 5, 3)]);
    // Chunk 1 taken; the first chunk 3, late, came before the second chunk 2: a gap at a
    // later point, while chunk 3 is being read. The chunks go again from 2, and the read
    // under way is no longer waited for.
    leader.step(ack(2, true));
    assert_eq!(leader.ready(MAX, MAX).chunk_reads, vec![(n(2), 5, 2)]);
    assert!(!leader.chunk_read(n(2), 5, 3, chunk(3)), "not sent");
    assert!(leader.chunk_read(n(2), 5, 2, chunk(2)));
    assert_eq!(leader.ready(MAX, MAX).chunk_reads, vec![(n(2), 5, 3)]);
}

/// A transfer waiting for a send slot asks for one once per ready, however often it is
/// offered one or hears its follower meanwhile. Regression (review): asked twice, the
/// node admitted it at the first ask and, counting that slot taken, refused and un-admitted
/// it at the second; its first chunk, read meanwhile, was dropped, and on a node whose
/// readies outlast a heartbeat interval it went so at every ready, never sent.
#[test]
fn a_waiting_transfer_asks_for_a_send_slot_once_per_ready() {
    let config = Arc::new(strict());
    let mut c = snapshot_at_5_and_2_empty(&config, Vec::new());
    assert!(c.g_mut(1).admit_snapshot(n(2), false).is_empty(), "refused");
    assert!(c.g_mut(1).want_snapshot_slot(n(2)), "a tick's offer");
    assert!(c.g_mut(1).want_snapshot_slot(n(2)), "a heartbeat answer");
    assert_eq!(c.g_mut(1).ready(MAX, MAX).snapshot_wanted, vec![n(2)]);
}

/// A late chunk of a snapshot the follower already holds leaves the newer transfer under
/// way alone. Regression (review): it dropped that transfer, and its next chunk was
/// answered with a gap back to chunk 0, which the leader sent again from the start.
#[test]
fn a_late_chunk_of_a_held_snapshot_leaves_the_transfer_under_way() {
    let mut g = restored(2, hs(2, None, 6), log_of(&[2; 6]));
    for seq in 0..2 {
        g.step(msg(1, 2, 2, chunk(10, 2, seq, false)));
    }
    g.step(msg(1, 2, 2, chunk(5, 2, 0, false)));
    g.step(msg(1, 2, 2, chunk(10, 2, 2, false)));
    let acks: Vec<_> = g
        .ready(MAX, MAX)
        .send_after_write
        .into_iter()
        .filter_map(|m| match m.body {
            MessageBody::SnapshotAck(a) if a.index == 10 => Some((a.next, a.gap)),
            _ => None,
        })
        .collect();
    assert_eq!(acks.last(), Some(&(3, false)), "{acks:?}");
}

/// Voters 1..=3, replica 1 elected: 1 and 3 hold a snapshot at 5 (term 2) and `tail`
/// after it, 2 holds nothing, so that 1 must send 2 its snapshot.
fn snapshot_at_5_and_2_empty(config: &Arc<Config>, tail: Vec<Entry>) -> Cluster {
    snapshot_at_5_but_one_empty(config, tail, Membership::voters([1, 2, 3]), 2)
}

/// The replicas of `membership` (ids 1 to n, voters first), replica 1 elected: all but
/// `empty` hold a snapshot at 5 (term 2) and `tail` after it, `empty` holds nothing, so
/// that 1 must send it its snapshot.
pub(super) fn snapshot_at_5_but_one_empty(
    config: &Arc<Config>,
    tail: Vec<Entry>,
    membership: Membership,
    empty: u64,
) -> Cluster {
    let members = membership.voters.len() + membership.learners.len();
    let compacted = |id: u64| {
        let mut loaded = LoadedGroup::new(G);
        loaded.membership = membership.clone();
        loaded.hard_state = hs(2, None, 5);
        loaded.compacted = Some(Compacted { index: 5, term: 2 });
        loaded.snapshot = Some(SnapshotMeta {
            membership: membership.clone(),
            ..meta(5, 2)
        });
        loaded.entries = tail.clone();
        let mut g = Replica::restore(n(id), loaded, Arc::clone(config), id).unwrap();
        g.end_vote_hold();
        let _ = g.ready(MAX, MAX);
        g.restored(5);
        g
    };
    let groups = (1..=members as u64)
        .map(|id| {
            if id == empty {
                restored_in(membership.clone(), id, hs(1, None, 0), Vec::new())
            } else {
                compacted(id)
            }
        })
        .collect();
    let mut c = Cluster::with_groups(membership.clone(), groups);
    c.elect(1);
    assert!(
        c.g(1).progress.get(&n(empty)).unwrap().snapshot.is_some(),
        "{empty} needs the snapshot"
    );
    c
}

/// [`snapshot_at_5_and_2_empty`] with snapshots every 8 entries and a lag of 2 (so the
/// leader parks proposals 10 committed entries past its snapshot), the transfer to 2
/// admitted, and 2 cut off so that the transfer stays under way.
fn sending_to_2() -> Cluster {
    let config = Arc::new(Config {
        snapshot_entries: 8,
        compaction_lag_entries: 2,
        ..strict()
    });
    let mut c = snapshot_at_5_and_2_empty(&config, Vec::new());
    assert_eq!(c.g_mut(1).admit_snapshot(n(2), true), vec![(n(2), 5, 0)]);
    c.isolated.insert(n(2));
    c
}

/// While a leader sends its stored snapshot it takes no other: a newer one would replace
/// the one the transfer reads, and the transfer would start over with it, so a hot group
/// snapshotting faster than a transfer takes never caught a new replica up. Its log may
/// hold `SENDING_LOG_FACTOR` times its usual bound meanwhile; past that, proposals park.
/// Once the transfer ends, the snapshot is due again.
#[test]
fn a_leader_sending_its_snapshot_defers_the_next_until_the_transfer_ends() {
    use crate::group::SENDING_LOG_FACTOR;
    let mut c = sending_to_2();
    let limit = 8 + 2;
    let mut seq = 0;
    let mut propose_one = |c: &mut Cluster| {
        seq += 1;
        c.g_mut(1)
            .propose(pid(1, seq), Bytes::from_static(b"x"))
            .unwrap();
        c.deliver_all();
    };
    while c.g(1).log.applied < 5 + limit {
        propose_one(&mut c);
        assert_eq!(c.g(1).snapshot_due(), None, "deferred while sending");
    }
    assert!(c.g(1).snapshot_deferred());
    assert_eq!(
        c.g(1).parked_proposals(),
        0,
        "past the usual bound, not held"
    );
    while c.g(1).log.committed < 5 + limit * SENDING_LOG_FACTOR {
        propose_one(&mut c);
        assert_eq!(c.g(1).parked_proposals(), 0);
    }
    propose_one(&mut c);
    assert_eq!(
        c.g(1).parked_proposals(),
        1,
        "held at the larger bound, until the transfer ends"
    );
    // The follower has the snapshot: the transfer ends and the next is taken.
    let term = c.g(1).term;
    let done = snapshot_ack(5, 1, true, false);
    c.g_mut(1).step(msg(2, 1, term, done));
    assert!(!c.g(1).snapshot_deferred());
    let due = c.g(1).snapshot_due().expect("due once the transfer ended");
    assert_eq!(due.index, c.g(1).log.applied);
}

/// A transfer that takes no chunk for an election timeout defers nothing, even when the
/// node admits it again (as it does after each heartbeat answer): otherwise a follower
/// that answers heartbeats but never takes a chunk would defer the snapshot, and park the
/// group's proposals, for good. Regression (review).
#[test]
fn a_stalled_transfer_no_longer_defers_the_snapshot() {
    let mut c = sending_to_2();
    c.propose_each_delivered(1, 10);
    assert!(c.g(1).snapshot_deferred(), "a period applied while sending");
    let timeout = c.g(1).config.election_timeout_min_ticks;
    for tick in 1..=timeout {
        c.g_mut(1).tick();
        c.deliver_all();
        // The node admits the transfer again whenever it was given back.
        if !c.g(1).is_sending_snapshot(n(2)) {
            c.g_mut(1).admit_snapshot(n(2), true);
        }
        assert_eq!(
            c.g(1).snapshot_deferred(),
            tick < timeout,
            "tick {tick}: deferred only within an election timeout without a chunk taken"
        );
    }
    assert!(c.g(1).snapshot_due().is_some());
}

/// A snapshot holding, committed, the membership a replica already had pending — one that
/// leaves it out — ends its part in elections, though its membership does not change: it
/// becomes a learner, and asks to be told it was removed (`MessageBody::Unheard`).
/// Regression (simulator's check that removed replicas are told, seed 1184): it stayed a
/// follower that could not campaign, and never asked.
#[test]
fn a_snapshot_committing_a_pending_removal_makes_the_replica_a_learner() {
    let removal = Entry {
        index: 4,
        term: 1,
        payload: Payload::Membership(Box::new(Membership::voters([1, 2]))),
    };
    let mut g = restored(3, hs(1, None, 3), vec![e(1, 1), e(2, 1), e(3, 1), removal]);
    assert_eq!(g.membership(), &Membership::voters([1, 2]));
    assert_eq!(
        g.status().role,
        Role::Follower,
        "a voter of the committed membership while the removal is pending"
    );
    let snapshot = MessageBody::InstallSnapshot {
        chunk: Box::new(SnapshotChunk {
            meta: SnapshotMeta {
                index: 9,
                term: 1,
                membership: Membership::voters([1, 2]),
            },
            seq: 0,
            data: Bytes::from_static(b"s"),
            last: true,
        }),
    };
    g.step(msg(1, 3, 1, snapshot));
    assert_eq!(g.status().commit, 9);
    assert_eq!(g.status().role, Role::Learner);
}

/// A late `Removed` (of an earlier term) leaves a replica restoring a snapshot whose
/// membership names it: that membership is the base before the applied index reaches the
/// snapshot. Regression (review): judged from the applied index, below the snapshot, a
/// replica added back by the snapshot was told removed by a leader that had removed its
/// node before.
#[test]
fn a_late_removed_leaves_a_replica_restoring_a_snapshot_that_names_it() {
    let mut g = restored(2, hs(3, None, 2), log_of(&[1, 1, 1]));
    g.step(msg(1, 2, 3, chunk(9, 3, 0, true)));
    let r = g.ready(MAX, MAX);
    assert_eq!(r.restore, Some(meta(9, 3)));
    assert!(g.membership().contains(n(2)));
    assert!(g.log.applied < 5, "not yet restored");
    g.step(msg(
        3,
        2,
        2,
        MessageBody::Removed {
            index: 5,
            matched: false,
        },
    ));
    let r = g.ready(MAX, MAX);
    assert!(!r.events.contains(&GroupEvent::Removed));
    assert!(!g.is_removed());
}

/// A leader does not go quiet while a snapshot transfer to a replica on a node declared
/// down holds a send slot: quiet, it no longer timed the transfer out, and the slot stayed
/// taken for as long as that node was down (review). Once the transfer gives its slot back
/// (an election timeout without an answer), the group goes quiet without that replica.
#[test]
fn a_transfer_holding_a_slot_keeps_its_group_awake_until_given_back() {
    let mut c = sending_to_2();
    let down = |node: NodeId| node == n(2);
    let bound = 10 * c.g(1).config.election_timeout_max_ticks;
    let mut quiet_at = None;
    for tick in 0..bound {
        if c.g(1).is_quiesced() {
            let sending = c.g(1).is_sending_snapshot(n(2));
            assert!(
                !sending,
                "quiet at tick {tick} while its transfer holds a slot"
            );
            quiet_at = Some(tick);
            break;
        }
        c.g_mut(1).tick_knowing(|node| !down(node), down);
        c.deliver_all();
    }
    assert!(
        quiet_at.is_some(),
        "never quiet once the slot was given back"
    );
}
