//! Reads and leadership transfer through the node layer, three nodes delivered by hand
//! (docs/design.md §4.5): a read round is one message per peer node whatever the number of
//! groups, quiesced groups serve lease reads with no message at all, and a drain moves
//! every group's leadership with every proposal ending definitely.

use super::three_nodes::Sim;
use super::*;
use crate::group::ReadPolicy;

/// The request of a read the node took (not served at once).
pub(super) fn taken(start: Result<ReadStart, ReadError>) -> RequestId {
    match start {
        Ok(ReadStart::Taken(request)) => request,
        other => panic!("not taken: {other:?}"),
    }
}

/// Node 1 campaigns for every group and the cluster settles: node 1 leads all of them, and
/// they go quiet. A few more ticks let liveness beats (and their echoes) flow.
pub(super) fn led_by_node_1(groups: u64) -> Sim {
    let mut sim = Sim::new(groups);
    elect_node_1(&mut sim, groups);
    assert_eq!(sim.nodes[0].active_group_count(), 0, "every group quiesced");
    for log in &mut sim.logs {
        *log = Default::default();
    }
    sim
}

/// Node 1 campaigns for groups 1 to `groups` of `sim` and the cluster runs two election
/// timeouts (of `strict`): node 1 leads every one of them.
pub(super) fn elect_node_1(sim: &mut Sim, groups: u64) {
    for id in 1..=groups {
        sim.nodes[0].campaign(g(id)).unwrap();
    }
    sim.run();
    for _ in 0..2 * strict().election_timeout_min_ticks {
        sim.tick();
    }
    for id in 1..=groups {
        assert_eq!(sim.agreed_leader(g(id)), Some(n(1)), "{}", g(id));
    }
}

/// Messages in `batches` that belong to one group, and coalesced heartbeat messages (node
/// level) with at least one group's beat in them.
fn per_group_and_beat_messages(batches: &[MessageBatch]) -> (usize, usize) {
    let mut per_group = 0;
    let mut beats = 0;
    for m in batches.iter().flat_map(|b| &b.messages) {
        match &m.body {
            MessageBody::Heartbeats { beats: b, .. } if !b.is_empty() => beats += 1,
            MessageBody::Heartbeats { .. } | MessageBody::HeartbeatAcks { .. } => {}
            _ => per_group += 1,
        }
    }
    (per_group, beats)
}

/// Dissertation §6.4 with one round per peer node: 10,000 groups led by node 1, each with a
/// pending ReadIndex read, produce exactly one confirmation message from node 1 to each
/// peer (one coalesced heartbeat message carrying all 10,000 beats), and every read is
/// served once the answers come back — at the commit index, which is applied.
#[test]
fn read_index_rounds_are_one_message_per_peer_for_10_000_groups() {
    const GROUPS: u64 = 10_000;
    let mut sim = led_by_node_1(GROUPS);
    let reads: Vec<RequestId> = (1..=GROUPS)
        .map(|id| taken(sim.nodes[0].read(g(id), ReadPolicy::ReadIndex)))
        .collect();
    assert_eq!(sim.nodes[0].status().pending_reads, GROUPS as usize);

    let r = sim.nodes[0].ready().unwrap();
    assert!(r.reads.is_empty(), "no read is served before its round");
    for to in [2, 3] {
        let batch: Vec<&MessageBatch> = r.send_now.iter().filter(|b| b.to == n(to)).collect();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].messages.len(), 1, "one message to node {to}");
        let MessageBody::Heartbeats { beats, liveness } = &batch[0].messages[0].body else {
            panic!("not a coalesced heartbeat: {:?}", batch[0].messages[0]);
        };
        assert_eq!(beats.len(), GROUPS as usize);
        assert!(liveness.round != 0);
        assert!(
            beats.iter().all(|b| b.quiesce),
            "quiesced groups confirm quietly"
        );
    }
    sim.handle(0, r);
    sim.run();

    let served: BTreeMap<RequestId, (ReadPoint, u64)> = sim.logs[0]
        .reads
        .iter()
        .map(|(p, applied)| (p.request, (*p, *applied)))
        .collect();
    assert_eq!(served.len(), GROUPS as usize);
    for (id, request) in (1..=GROUPS).zip(&reads) {
        let (point, applied) = served[request];
        let commit = sim.nodes[0].group_status(g(id)).unwrap().commit;
        assert_eq!((point.group, point.index), (g(id), commit));
        assert!(applied >= point.index);
    }
    assert_eq!(sim.nodes[0].status().pending_reads, 0);
    assert_eq!(
        sim.nodes[0].active_group_count(),
        0,
        "the reads woke no group"
    );
    assert_eq!(sim.nodes[1].active_group_count(), 0);
}

/// §6.4.1 on node liveness: quiesced groups serve lease reads with zero per-group messages
/// and stay quiesced; each read is served at once, at the commit index.
#[test]
fn quiesced_groups_serve_lease_reads_without_messages() {
    const GROUPS: u64 = 1_000;
    let mut sim = led_by_node_1(GROUPS);
    for id in 1..=GROUPS {
        let commit = sim.nodes[0].group_status(g(id)).unwrap().commit;
        assert_eq!(
            sim.nodes[0].read(g(id), ReadPolicy::Lease),
            Ok(ReadStart::Now { index: commit }),
            "served on the lease, at once"
        );
    }
    assert_eq!(sim.nodes[0].status().pending_reads, 0);
    if let Some(r) = sim.nodes[0].ready() {
        assert_eq!(per_group_and_beat_messages(&r.send_now), (0, 0));
        sim.handle(0, r);
    }
    sim.run();
    for log in &sim.logs {
        assert_eq!(per_group_and_beat_messages(&log.sent), (0, 0));
    }
    for node in &sim.nodes {
        assert_eq!(node.active_group_count(), 0, "{} stayed quiet", node.id());
    }
}

/// A lease is a promise of the followers' nodes: once a peer's liveness lapses (its node
/// unheard for `lease_ticks`), a Lease read falls back to a ReadIndex round. Once the peers
/// are heard again, the quiesce beats of a round acknowledged after that renew the lease,
/// and Lease reads are served at once again — with no wake.
#[test]
fn without_peer_liveness_a_lease_read_needs_a_round_which_renews_the_lease() {
    let mut sim = led_by_node_1(10);
    let lease = u64::from(strict().lease_ticks);
    for _ in 0..=lease {
        sim.nodes[0].tick(); // node 1 alone: nothing reaches it
    }
    taken(sim.nodes[0].read(g(1), ReadPolicy::Lease));
    let r = sim.nodes[0].ready().unwrap();
    assert!(r.reads.is_empty(), "no lease without live peers");
    let (_, beats) = per_group_and_beat_messages(&r.send_now);
    assert_eq!(beats, 2, "a ReadIndex round to each peer instead");
    sim.handle(0, r);
    sim.run();
    assert_eq!(sim.logs[0].reads.len(), 1, "served by the round");

    sim.tick(); // liveness flows again: the peer leases start anew (this tick)
    sim.tick(); // a round must leave after the tick they started in
    // The round above was acknowledged before the peer leases started again: not enough.
    taken(sim.nodes[0].read(g(1), ReadPolicy::Lease));
    sim.run();
    assert_eq!(sim.logs[0].reads.len(), 2);
    let commit = sim.nodes[0].group_status(g(1)).unwrap().commit;
    assert_eq!(
        sim.nodes[0].read(g(1), ReadPolicy::Lease),
        Ok(ReadStart::Now { index: commit }),
        "renewed by the second round"
    );
    assert_eq!(sim.nodes[0].active_group_count(), 0);
}

/// A follower read: the follower asks the leader (one `ReadIndex` message), the leader
/// confirms with a round, and the follower serves once it has applied the index.
#[test]
fn follower_reads_ask_the_leader_and_wait_for_the_apply() {
    let mut sim = led_by_node_1(3);
    sim.nodes[0]
        .propose(g(2), Bytes::from_static(b"x"))
        .unwrap();
    let read = taken(sim.nodes[1].read(g(2), ReadPolicy::Follower));
    assert_eq!(
        sim.nodes[1].read(g(2), ReadPolicy::ReadIndex),
        Err(ReadError::NotLeader {
            leader_hint: Some(n(1))
        })
    );
    sim.run();
    let (point, applied) = sim.logs[1].reads[0];
    assert_eq!(point.request, read);
    assert!(applied >= point.index);
    assert_eq!(sim.commands(1, g(2)), vec![Bytes::from_static(b"x")]);
}

/// Transfer (§3.10) and a whole-node drain: 1,000 groups led by node 1 move their
/// leadership to nodes 2 and 3 within two election timeouts of the manual clock, spread over
/// both, with every proposal node 1 took during the drain ending applied or definitely
/// rejected (`TransferInProgress`) — none indeterminate.
#[test]
fn a_drain_moves_1000_groups_within_two_election_timeouts() {
    const GROUPS: u64 = 1_000;
    let mut sim = led_by_node_1(GROUPS);
    let started = sim.nodes[0].drain();
    assert_eq!(started.len(), GROUPS as usize);
    assert!(started.iter().all(|(_, r)| r.is_ok()));
    let mut taken = Vec::new();
    let mut refused = 0;
    let timeout = strict().election_timeout_min_ticks;
    for tick in 0..2 * timeout {
        for id in 1..=GROUPS {
            match sim.nodes[0].propose(g(id), Bytes::from(format!("{tick}"))) {
                Ok(request) => taken.push(request),
                Err(ProposeError::TransferInProgress) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        sim.run();
        sim.tick();
    }
    // Two election timeouts after the drain started: every group has moved.
    let mut led = [0; 4];
    for id in 1..=GROUPS {
        let leader = sim.agreed_leader(g(id)).expect("a leader");
        led[leader.0 as usize] += 1;
    }
    assert_eq!(led[1], 0, "node 1 leads nothing");
    assert!(
        led[2] > GROUPS as usize / 4 && led[3] > GROUPS as usize / 4,
        "{led:?}"
    );
    for _ in 0..timeout {
        sim.tick(); // let the last proposals, forwarded to the new leaders, finish
    }
    let ended: BTreeMap<RequestId, &Resolution> = sim.logs[0]
        .outcomes
        .iter()
        .map(|o| (o.request, &o.resolution))
        .collect();
    let transfers_done = started
        .iter()
        .filter(|(_, r)| ended.get(r.as_ref().unwrap()) == Some(&&Resolution::Done))
        .count();
    assert_eq!(transfers_done, GROUPS as usize);
    for request in &taken {
        assert_eq!(
            ended.get(request),
            None,
            "{request} ended {:?}",
            ended.get(request)
        );
    }
    assert!(refused > 0, "proposals during the transfers are refused");
    assert_eq!(
        sim.nodes[0].pending_proposals(),
        0,
        "every taken proposal was applied"
    );
}

/// A proposal a follower forwards to a leader that is handing leadership over ends
/// `TransferInProgress` at the proposer, as it would on the leader. Regression: the refusal
/// carried no reason and was reported as `Busy { max_uncommitted_bytes }`.
#[test]
fn a_forwarded_proposal_refused_during_a_transfer_says_so() {
    let mut sim = led_by_node_1(1);
    let request = sim.nodes[2]
        .propose(g(1), Bytes::from_static(b"x"))
        .unwrap();
    let forward = sim.nodes[2].ready().unwrap();
    sim.handle(2, forward); // the forwarded proposal is on its way to node 1
    sim.nodes[0].transfer_leader(g(1), n(2)).unwrap();
    sim.run();
    let outcome = sim.logs[2]
        .outcomes
        .iter()
        .find(|o| o.request == request)
        .expect("an outcome");
    assert_eq!(
        outcome.resolution,
        Resolution::Rejected(ProposeError::TransferInProgress)
    );
}

/// A follower restarted on a snapshot serves no read until its state machine is restored
/// from it: its applied index is the snapshot's from the start, and a read index at or
/// below it was served from the machine half restored (or empty). Regression (review of
/// the driver's reads).
#[test]
fn a_follower_serves_no_read_until_its_snapshot_is_restored() {
    let mut node = new_node(3, strict());
    let snapshot = crate::snapshot::SnapshotMeta {
        index: 3,
        term: 1,
        membership: voters(),
    };
    let loaded = crate::storage::LoadedGroup {
        membership: voters(),
        hard_state: HardState {
            term: 1,
            vote: None,
            commit: 3,
        },
        compacted: Some(crate::storage::Compacted { index: 3, term: 1 }),
        snapshot: Some(snapshot),
        ..crate::storage::LoadedGroup::new(g(1))
    };
    node.restore(vec![loaded]).unwrap();
    let ready = node.ready().expect("the restore is asked for");
    assert_eq!(ready.restores.len(), 1);
    crate::testing::complete(&mut node, ready);

    // Node 1 leads term 1, committed at 3.
    node.step(batch_for(1, 3, 1, &[g(1)], append(3, 1, Vec::new(), 3)));
    let mut io = crate::testing::Recorder::default();
    crate::testing::settle(&mut node, &mut io).unwrap();
    let read = taken(node.read(g(1), ReadPolicy::Follower));
    let ready = node.ready().expect("the read index is asked for");
    let asked = ready.send_now.iter().chain(&ready.send_after_write);
    let ids = asked
        .flat_map(|b| &b.messages)
        .find_map(|m| match &m.body {
            MessageBody::ReadIndex { ids } => Some(ids.clone()),
            _ => None,
        })
        .expect("a ReadIndex to node 1");
    crate::testing::complete(&mut node, ready);

    let answer = MessageBody::ReadIndexResponse {
        ids,
        index: Some(3),
    };
    node.step(batch_for(1, 3, 1, &[g(1)], answer));
    while let Some(ready) = node.ready() {
        assert!(ready.reads.is_empty(), "served while restoring");
        crate::testing::complete(&mut node, ready);
    }

    node.restored(g(1), 3);
    let ready = node.ready().expect("the read is served");
    assert_eq!(ready.reads.len(), 1);
    assert_eq!((ready.reads[0].request, ready.reads[0].index), (read, 3));
}

/// A quiesced leader's read round whose beats were lost is sent again: the group is not
/// ticked, yet the node sends its quiet beats again every heartbeat interval, and the
/// read is served within a few, with the group still quiet. Regression (review): nothing
/// sent them again, and the read waited for its deadline (`proposal_timeout_ticks`)
/// though every peer was up.
#[test]
fn a_quiet_read_round_whose_beats_were_lost_is_sent_again() {
    let mut sim = led_by_node_1(3);
    taken(sim.nodes[0].read(g(1), ReadPolicy::ReadIndex));
    // The round's beats leave with node 1's next ready, and are lost.
    sim.run_filtered(|b| b.from != n(1));
    assert_eq!(sim.logs[0].reads.len(), 0);
    for _ in 0..2 * strict().heartbeat_interval_ticks {
        sim.tick();
    }
    assert_eq!(sim.logs[0].reads.len(), 1, "served by the beats sent again");
    assert_eq!(
        sim.nodes[0].active_group_count(),
        0,
        "the group stayed quiet"
    );
    assert_eq!(sim.nodes[0].status().pending_reads, 0);
}

/// A drain of a group with no other voter says so (`NoLiveVoter`). Regression (review): it
/// said `NotAVoter` of the draining node itself, which is a voter.
#[test]
fn a_drain_with_nobody_to_hand_a_group_to_says_so() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    crate::testing::settle(&mut node, &mut crate::testing::Recorder::default()).unwrap();
    assert_eq!(
        node.drain(),
        [(g(1), Err(crate::TransferError::NoLiveVoter))]
    );
}

/// A follower's read that a leader cannot confirm (cut off, `check_quorum` off, so it stays
/// leader) is refused after twice `proposal_timeout_ticks` (the follower waits for it
/// `proposal_timeout_ticks` of its own ticks, which may run slower), and not before:
/// it no longer holds a place in `max_pending_reads`. Regression (review): only this node's
/// own reads expired, and a follower retrying its timed-out reads filled the leader's
/// queue, after which every read of the leader's own was refused `Busy` for good.
#[test]
fn a_followers_read_the_leader_cannot_confirm_expires() {
    let config = Config {
        check_quorum: false,
        max_pending_reads: 1,
        ..strict()
    };
    let mut sim = Sim::with_config(1, config.clone());
    elect_node_1(&mut sim, 1);
    let term = sim.nodes[0].group_status(g(1)).unwrap().term;
    let cut_off = |b: &mut MessageBatch| b.from != n(1) && b.to != n(1);
    sim.nodes[0].step(batch_for(
        2,
        1,
        term,
        &[g(1)],
        MessageBody::ReadIndex { ids: vec![7] },
    ));
    sim.run_filtered(cut_off);
    assert_eq!(
        sim.nodes[0].read(g(1), ReadPolicy::ReadIndex),
        Err(ReadError::Busy {
            limit: "max_pending_reads"
        }),
        "the follower's read holds the only place"
    );
    let refused = |sim: &Sim| {
        sim.logs[0].sent.iter().flat_map(|b| &b.messages).any(|m| {
            m.to == n(2)
                && matches!(&m.body, MessageBody::ReadIndexResponse { ids, index: None } if ids == &[7])
        })
    };
    for _ in 0..2 * config.proposal_timeout_ticks - 2 {
        sim.nodes[0].tick();
        sim.run_filtered(cut_off);
    }
    assert!(!refused(&sim), "the follower may still wait for it");
    for _ in 0..4 {
        sim.nodes[0].tick();
        sim.run_filtered(cut_off);
    }
    assert!(refused(&sim), "the follower is told its read is refused");
    assert_eq!(sim.nodes[0].group_status(g(1)).unwrap().leader, Some(n(1)));
    taken(sim.nodes[0].read(g(1), ReadPolicy::ReadIndex));
}
