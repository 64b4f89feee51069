//! Unit tests of the node layer, sans-IO (no tokio): how every group's output is merged into
//! one numbered ready, and the IO ordering of docs/design.md §3.1 ("IO rule n"). Outputs are
//! compared by value; seeds are explicit.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::entry::{Entry, HardState, Payload};
use crate::error::{GroupError, ProposeError};
use crate::message::MessageBody;
use crate::storage::{GroupWrite, WriteBatch};

// ----- helpers ------------------------------------------------------------------------------

fn n(id: u64) -> NodeId {
    NodeId(id)
}

fn g(id: u64) -> GroupId {
    GroupId(id)
}

fn strict() -> Config {
    Config {
        strict: true,
        ..Config::default()
    }
}

fn new_node(id: u64, config: Config) -> Node {
    Node::new(n(id), config, 7).unwrap()
}

fn voters() -> Membership {
    Membership::voters([1, 2, 3])
}

fn msg(group: GroupId, from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        group,
        from: n(from),
        to: n(to),
        term,
        body,
    }
}

/// A batch from `from` to `to` carrying `body` at `term` for each of `groups`.
fn batch_for(from: u64, to: u64, term: u64, groups: &[GroupId], body: MessageBody) -> MessageBatch {
    MessageBatch {
        from: n(from),
        to: n(to),
        messages: groups
            .iter()
            .map(|&id| msg(id, from, to, term, body.clone()))
            .collect(),
    }
}

fn vote(pre_vote: bool) -> MessageBody {
    MessageBody::Vote {
        pre_vote,
        last_index: 0,
        last_term: 0,
        transfer: false,
    }
}

fn granted(pre_vote: bool) -> MessageBody {
    MessageBody::VoteResponse {
        pre_vote,
        granted: true,
    }
}

fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Noop,
    }
}

fn append(prev_index: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> MessageBody {
    MessageBody::Append {
        prev_index,
        prev_term,
        entries: entries.into(),
        commit,
    }
}

/// Asserts that `batches` is exactly one batch from `from` to each of `peers` (ascending),
/// each carrying one message per group of `ids`, every message `term` and `body`.
fn assert_one_batch_per_peer(
    batches: &[MessageBatch],
    from: u64,
    peers: &[u64],
    ids: &BTreeSet<GroupId>,
    term: u64,
    body: &MessageBody,
) {
    let to: Vec<NodeId> = batches.iter().map(|b| b.to).collect();
    assert_eq!(to, peers.iter().copied().map(n).collect::<Vec<_>>());
    for b in batches {
        assert_eq!(b.from, n(from));
        assert_eq!(b.messages.len(), ids.len(), "one message per group");
        let groups: BTreeSet<GroupId> = b.messages.iter().map(|m| m.group).collect();
        assert_eq!(&groups, ids);
        for m in &b.messages {
            assert_eq!(m, &msg(m.group, from, b.to.0, term, body.clone()));
        }
    }
}

/// Asserts that `batches` holds only the node liveness beat: one empty coalesced heartbeat
/// message to each of `peers`.
fn assert_only_liveness_beats(batches: &[MessageBatch], from: u64, peers: &[u64]) {
    let to: Vec<NodeId> = batches.iter().map(|b| b.to).collect();
    assert_eq!(to, peers.iter().copied().map(n).collect::<Vec<_>>());
    for b in batches {
        assert_eq!(b.messages.len(), 1);
        let m = &b.messages[0];
        assert_eq!(
            (m.group, m.from, m.to, m.term),
            (GroupId::NODE, n(from), b.to, 0)
        );
        assert!(
            matches!(&m.body, MessageBody::Heartbeats { beats, .. } if beats.is_empty()),
            "{m:?}"
        );
    }
}

/// The shape every ready must have, whatever is in it.
fn check_ready_shape(node: NodeId, ready: &Ready) {
    let groups: BTreeSet<GroupId> = ready.write.groups.iter().map(|w| w.group).collect();
    assert_eq!(
        groups.len(),
        ready.write.groups.len(),
        "{node}: a group appears twice in one WriteBatch: {:?}",
        ready.write.groups
    );
    for batches in [&ready.send_now, &ready.send_after_write] {
        let to: BTreeSet<NodeId> = batches.iter().map(|b| b.to).collect();
        assert_eq!(to.len(), batches.len(), "{node}: two batches to one node");
        for b in batches {
            assert_eq!(b.from, node);
            assert!(!b.messages.is_empty());
            assert!(b.messages.iter().all(|m| m.from == node && m.to == b.to));
        }
    }
    // IO rule 1: what depends on this ready's write never leaves before it.
    for m in ready.send_now.iter().flat_map(|b| &b.messages) {
        let depends_on_write = matches!(
            m.body,
            MessageBody::VoteResponse { .. }
                | MessageBody::AppendResponse { .. }
                | MessageBody::HeartbeatResponse { round: 0 }
                | MessageBody::Vote {
                    pre_vote: false,
                    ..
                }
        );
        assert!(!depends_on_write, "{node}: {m:?} left before the write");
    }
}

/// Takes the ready of the creations and advances it.
fn settle_creation(node: &mut Node) {
    let r = node.ready().expect("the creations are written");
    assert!(r.send_now.is_empty() && r.send_after_write.is_empty());
    crate::testing::complete(node, r);
}

// ----- one write, one batch per peer ----------------------------------------------------------

/// docs/design.md §3/§4 (shared log, one batch per destination): with `count` groups that all have
/// work, every ready holds one `WriteBatch` with one record per group that has something to
/// persist, and one `MessageBatch` per destination node in `send_now` and in
/// `send_after_write` separately. Walks a whole election by hand: pre-votes (nothing to
/// persist), candidacies (each group's vote persisted, requests after the write), leadership
/// (no-ops written while the appends leave at once, dissertation §10.2.1), commit.
fn one_write_and_one_batch_per_peer(count: u64) {
    let mut node = new_node(1, strict());
    let list: Vec<GroupId> = (1..=count).map(g).collect();
    let ids: BTreeSet<GroupId> = list.iter().copied().collect();
    for &id in &list {
        node.create_group(id, voters()).unwrap();
    }
    let created = node.ready().unwrap();
    assert_eq!(created.number, 1);
    assert_eq!(created.write.groups.len(), list.len());
    for (w, &id) in created.write.groups.iter().zip(&list) {
        let expected = GroupWrite {
            group: id,
            membership: Some(voters()),
            hard_state: Some(HardState::default()),
            ..Default::default()
        };
        assert_eq!(w, &expected);
    }
    crate::testing::complete(&mut node, created.clone());

    // Every election timer fires once (timeouts are in [10, 20) ticks): pre-votes only.
    for _ in 0..19 {
        node.tick();
    }
    let r = node.ready().unwrap();
    check_ready_shape(n(1), &r);
    assert!(r.write.is_empty(), "a pre-vote persists nothing");
    // Nothing per group leaves now: only the node's liveness beat, owed after the ticks.
    assert_only_liveness_beats(&r.send_now, 1, &[2, 3]);
    assert_one_batch_per_peer(&r.send_after_write, 1, &[2, 3], &ids, 1, &vote(true));
    crate::testing::complete(&mut node, r.clone());

    // Node 2 grants every pre-vote: every group becomes a candidate.
    node.step(batch_for(2, 1, 1, &list, granted(true)));
    let r = node.ready().unwrap();
    check_ready_shape(n(1), &r);
    let candidate = HardState {
        term: 1,
        vote: Some(n(1)),
        commit: 0,
    };
    assert_eq!(r.write.groups.len(), list.len());
    for w in &r.write.groups {
        let expected = GroupWrite {
            group: w.group,
            hard_state: Some(candidate),
            ..Default::default()
        };
        assert_eq!(w, &expected);
    }
    assert!(r.send_now.is_empty());
    assert_one_batch_per_peer(&r.send_after_write, 1, &[2, 3], &ids, 1, &vote(false));
    crate::testing::complete(&mut node, r.clone());

    // Node 3 grants every vote: every group leads.
    node.step(batch_for(3, 1, 1, &list, granted(false)));
    let r = node.ready().unwrap();
    check_ready_shape(n(1), &r);
    assert_eq!(r.write.groups.len(), list.len());
    for w in &r.write.groups {
        let expected = GroupWrite {
            group: w.group,
            entries: vec![noop(1, 1)].into(),
            ..Default::default()
        };
        assert_eq!(w, &expected);
    }
    let first_append = append(0, 0, vec![noop(1, 1)], 0);
    assert_one_batch_per_peer(&r.send_now, 1, &[2, 3], &ids, 1, &first_append);
    assert!(r.send_after_write.is_empty());
    assert_eq!(r.events.len(), list.len());
    crate::testing::complete(&mut node, r.clone());
    assert!(node.ready().is_none(), "one durable copy is no majority");

    // Node 2 acknowledges every no-op: every group commits and applies it.
    let ack = MessageBody::AppendResponse {
        success: true,
        index: 1,
        hint_index: 0,
        hint_term: 0,
        joined: true,
    };
    node.step(batch_for(2, 1, 1, &list, ack));
    let r = node.ready().unwrap();
    check_ready_shape(n(1), &r);
    let committed = HardState {
        commit: 1,
        ..candidate
    };
    assert_eq!(r.write.groups.len(), list.len());
    for w in &r.write.groups {
        let expected = GroupWrite {
            group: w.group,
            hard_state: Some(committed),
            ..Default::default()
        };
        assert_eq!(w, &expected);
    }
    let applied: BTreeSet<GroupId> = r.apply.iter().map(|a| a.group).collect();
    assert_eq!(applied, ids);
    assert!(r.apply.iter().all(|a| a.entries == vec![noop(1, 1)]));
    // The new commit index alone waits for the next heartbeat round (or the next entries).
    assert!(r.send_now.is_empty());
    assert!(r.send_after_write.is_empty());
    crate::testing::complete(&mut node, r.clone());
    assert!(node.ready().is_none());

    // The heartbeat rounds tell it, in one coalesced message per peer, capped at what each
    // peer holds, with no per-group notice. The first round leaves node 2 out: it got the
    // no-ops since the last round (`Progress::skips_heartbeat`). Node 3, whose probe is
    // still unanswered, is told 0 in each round; node 2 learns commit 1 in the second.
    for (round, told_2) in [(1, None), (2, Some(1))] {
        for _ in 0..node.config().heartbeat_interval_ticks {
            node.tick();
        }
        let r = node.ready().unwrap();
        check_ready_shape(n(1), &r);
        for (peer, commit) in [(2, told_2), (3, Some(0))] {
            let beats: Vec<_> = r
                .send_now
                .iter()
                .filter(|b| b.to == n(peer))
                .flat_map(|b| &b.messages)
                .flat_map(|m| match &m.body {
                    MessageBody::Heartbeats { beats, .. } => beats.clone(),
                    other => panic!("round {round}: {other:?}"),
                })
                .collect();
            let told: BTreeSet<GroupId> = beats.iter().map(|beat| beat.group).collect();
            match commit {
                None => assert!(beats.is_empty(), "round {round} to {peer}: {beats:?}"),
                Some(commit) => {
                    assert_eq!(told, ids, "round {round} to {peer}");
                    assert_eq!(beats.len(), ids.len(), "round {round} to {peer}");
                    assert!(
                        beats
                            .iter()
                            .all(|beat| beat.commit == commit && beat.term == 1)
                    );
                }
            }
        }
        for b in &r.send_now {
            assert_eq!(b.messages.len(), 1, "one coalesced heartbeat to {}", b.to);
        }
        assert!(r.write.is_empty() && r.send_after_write.is_empty());
        crate::testing::complete(&mut node, r.clone());
        assert!(node.ready().is_none());
    }
}

/// docs/design.md §4, shared log: one group.
#[test]
fn one_write_and_one_batch_per_peer_with_1_group() {
    one_write_and_one_batch_per_peer(1);
}

/// docs/design.md §4, shared log: 100 groups.
#[test]
fn one_write_and_one_batch_per_peer_with_100_groups() {
    one_write_and_one_batch_per_peer(100);
}

/// docs/design.md §4, shared log: 10,000 groups, one fsync per cycle however many groups.
#[test]
fn one_write_and_one_batch_per_peer_with_10_000_groups() {
    one_write_and_one_batch_per_peer(10_000);
}

/// `WriteBatch` holds each group at most once, "in no particular order". Regression test: a
/// group created and stepped in the same cycle got two records (its creation with a default
/// hard state, and its vote); a storage applying them in the other order would forget the
/// vote, and vote twice after a restart (§5.2). Now they are merged.
#[test]
fn group_created_and_stepped_in_one_cycle_has_one_record() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    node.step(batch_for(2, 1, 1, &[g(1)], vote(false)));
    let r = node.ready().unwrap();
    check_ready_shape(n(1), &r);
    assert_eq!(
        r.write.groups,
        vec![GroupWrite {
            group: g(1),
            membership: Some(voters()),
            hard_state: Some(HardState {
                term: 1,
                vote: Some(n(2)),
                commit: 0
            }),
            ..Default::default()
        }]
    );
    assert_eq!(
        r.send_after_write,
        vec![MessageBatch {
            from: n(1),
            to: n(2),
            messages: vec![msg(g(1), 1, 2, 1, granted(false))],
        }]
    );
}

// ----- IO ordering ----------------------------------------------------------------------------

/// IO rules 1 and 5: a vote grant leaves only in `send_after_write`, with its hard state in
/// the same ready; and while a ready is outstanding the node produces no other, however much
/// input arrives, so nothing can leave ahead of an unacknowledged write.
#[test]
fn responses_wait_for_the_write_and_no_ready_comes_before_it_is_acknowledged() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    let first = node.ready().unwrap();
    node.step(batch_for(2, 1, 1, &[g(1)], vote(false)));
    assert!(node.is_write_in_flight());
    assert!(!node.has_ready());
    assert_eq!(node.ready(), None);

    crate::testing::complete(&mut node, first.clone());
    let r = node.ready().unwrap();
    let grant = msg(g(1), 1, 2, 1, granted(false));
    assert_eq!(
        r,
        Ready {
            number: 2,
            write: WriteBatch {
                groups: vec![GroupWrite {
                    group: g(1),
                    hard_state: Some(HardState {
                        term: 1,
                        vote: Some(n(2)),
                        commit: 0
                    }),
                    ..Default::default()
                }],
            },
            send_now: vec![],
            send_after_write: vec![MessageBatch {
                from: n(1),
                to: n(2),
                messages: vec![grant],
            }],
            apply: vec![],
            reads: vec![],
            outcomes: vec![],
            events: vec![Event::LeaderChanged {
                group: g(1),
                term: 1,
                leader: None
            }],
            ..Ready::default()
        }
    );
}

/// `NodeStatus::readies` counts the readies handed out: not a call that found a write in
/// flight, nor one that found nothing to do.
#[test]
fn readies_counts_the_readies_handed_out() {
    let mut node = new_node(1, strict());
    assert_eq!(node.status().readies, 0);
    node.create_group(g(1), voters()).unwrap();
    let first = node.ready().unwrap();
    assert_eq!(node.status().readies, 1);
    node.step(batch_for(2, 1, 1, &[g(1)], vote(false)));
    assert_eq!(node.ready(), None, "a write is in flight");
    assert_eq!(node.status().readies, 1);
    crate::testing::complete(&mut node, first);
    let second = node.ready().unwrap();
    assert_eq!((second.number, node.status().readies), (2, 2));
    crate::testing::complete(&mut node, second);
    assert_eq!(node.ready(), None, "nothing to do");
    assert_eq!(node.status().readies, 2);
}

// ----- routing hygiene ----------------------------------------------------------------------

/// Each campaign a replica starts is counted once (`NodeStats::elections_started`), when
/// the ready reports it: what the benchmarks read at their window's edges.
#[test]
fn campaigns_started_are_counted() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.create_group(g(2), Membership::voters([1])).unwrap();
    settle_creation(&mut node);
    assert_eq!(node.stats().elections_started, 0);
    node.campaign(g(1)).unwrap();
    node.campaign(g(2)).unwrap();
    crate::testing::settle(&mut node, &mut crate::testing::Recorder::default()).unwrap();
    assert_eq!(node.stats().elections_started, 2);
    assert_eq!(node.group_status(g(2)).unwrap().leader, Some(n(1)));
}

/// `Node::step`: a message for a group this node does not host is dropped and counted; it
/// never creates the group (a stale message must not resurrect a removed replica).
#[test]
fn messages_for_unknown_groups_are_dropped_and_counted() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    node.step(batch_for(2, 1, 1, &[g(7), g(8)], vote(false)));
    assert_eq!(
        node.stats(),
        NodeStats {
            dropped_unknown_group: 2,
            dropped_misaddressed: 0,
            dropped_invalid: 0,
            peers_declared_down: 0,
            peer_restarts: 0,
            elections_started: 0,
        }
    );
    assert_eq!(node.group_count(), 1);
    assert!(node.replica(g(7)).is_none());
    assert_eq!(node.ready(), None);

    node.remove_group(g(1)).unwrap();
    settle_creation(&mut node);
    node.step(batch_for(2, 1, 1, &[g(1)], vote(false)));
    assert_eq!(node.stats().dropped_unknown_group, 3);
    assert_eq!(node.group_count(), 0);
    assert_eq!(node.ready(), None);
}

/// `Node::step`: a batch for another node or from this node is dropped whole; a message
/// whose own sender or recipient disagrees with its batch is dropped alone. All counted.
#[test]
fn misaddressed_batches_and_messages_are_dropped() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);

    node.step(batch_for(2, 3, 1, &[g(1), g(1)], vote(false)));
    node.step(batch_for(1, 1, 1, &[g(1)], vote(false)));
    assert_eq!(node.stats().dropped_misaddressed, 3);

    let mut mixed = batch_for(2, 1, 1, &[g(1)], vote(false));
    mixed.messages.push(msg(g(1), 3, 1, 1, vote(false))); // claims another sender
    mixed.messages.push(msg(g(1), 2, 3, 1, vote(false))); // for another node
    mixed.messages.rotate_left(1);
    node.step(mixed);
    assert_eq!(node.stats().dropped_misaddressed, 5);
    assert_eq!(node.stats().dropped_unknown_group, 0);

    // Only the well-addressed message got through.
    let r = node.ready().unwrap();
    assert_eq!(
        r.send_after_write,
        vec![MessageBatch {
            from: n(1),
            to: n(2),
            messages: vec![msg(g(1), 1, 2, 1, granted(false))],
        }]
    );
}

/// Group 0 carries node-level messages (heartbeats, liveness): neither a creation nor a join
/// may host it. Regression (review): `join_group` hosted and stored group 0.
#[test]
fn the_node_level_group_id_is_refused_to_a_join_as_to_a_creation() {
    let mut node = new_node(1, strict());
    assert_eq!(
        node.create_group(GroupId::NODE, voters()),
        Err(GroupError::ReservedGroupId)
    );
    assert_eq!(
        node.join_group(GroupId::NODE, Membership::voters([2, 3])),
        Err(GroupError::ReservedGroupId)
    );
    assert!(node.ready().is_none(), "nothing to write");
}

/// `Node::create_group`: a second creation of a hosted group is `GroupExists` and changes
/// nothing; so is a membership without this node (`NotAMember`) or an invalid one.
#[test]
fn creating_a_group_twice_is_group_exists() {
    let mut node = new_node(1, strict());
    assert!(node.create_group(g(1), voters()).is_ok());
    assert_eq!(
        node.create_group(g(1), voters()),
        Err(GroupError::GroupExists(g(1)))
    );
    assert_eq!(
        node.create_group(g(2), Membership::voters([2, 3])),
        Err(GroupError::NotAMember(n(1)))
    );
    assert_eq!(
        node.create_group(g(3), Membership::default()),
        Err(GroupError::InvalidMembership(
            crate::membership::MembershipError::NoVoters
        ))
    );
    assert_eq!(node.group_count(), 1);
    let r = node.ready().unwrap();
    assert_eq!(r.write.groups.len(), 1, "one creation written");
    assert_eq!(r.events, vec![Event::GroupCreated { group: g(1) }]);
    assert_eq!(
        node.propose(g(2), Bytes::new()),
        Err(ProposeError::GroupNotFound(g(2)))
    );
}

// ----- limits and fairness ------------------------------------------------------------------

/// `Config::max_ready_groups` (docs/design.md §4, fairness): a ready serves at most that many
/// groups; the rest wait for the next ready, first come first served, and every group is served
/// exactly once.
#[test]
fn max_ready_groups_leaves_the_rest_for_the_next_ready_in_order() {
    let config = Config {
        max_ready_groups: 7,
        ..strict()
    };
    let mut node = new_node(1, config);
    let list: Vec<GroupId> = (1..=20).map(g).collect();
    for &id in &list {
        node.create_group(id, voters()).unwrap();
    }
    settle_creation(&mut node);

    node.step(batch_for(2, 1, 1, &list, vote(false)));
    let mut served = Vec::new();
    while let Some(r) = node.ready() {
        check_ready_shape(n(1), &r);
        let written: Vec<GroupId> = r.write.groups.iter().map(|w| w.group).collect();
        let answered: Vec<GroupId> = r.send_after_write[0]
            .messages
            .iter()
            .map(|m| m.group)
            .collect();
        assert_eq!(written, answered);
        served.push(written);
        crate::testing::complete(&mut node, r.clone());
    }
    assert_eq!(
        served,
        vec![
            list[0..7].to_vec(),
            list[7..14].to_vec(),
            list[14..20].to_vec()
        ]
    );
}

/// `Config::max_ready_entries` (docs/design.md §4: "a flood on one group cannot starve the
/// others"): a group with a long backlog to apply is served a slice per ready and goes to the back
/// of the queue; the other groups' entries are applied long before the backlog is through, and no
/// ready applies more than the limit.
#[test]
fn a_busy_group_does_not_starve_the_others() {
    let config = Config {
        max_ready_entries: 8,
        ..strict()
    };
    let mut node = new_node(1, config);
    for id in 1..=4 {
        node.create_group(g(id), Membership::voters([1])).unwrap();
    }
    settle_creation(&mut node);
    // Single-voter groups elect themselves within one timeout.
    for _ in 0..19 {
        node.tick();
    }
    while let Some(r) = node.ready() {
        crate::testing::complete(&mut node, r.clone());
    }
    for id in 1..=4 {
        assert_eq!(node.group_status(g(id)).unwrap().applied, 1);
    }

    let propose = |node: &mut Node, group: u64, count: u64| {
        for _ in 0..count {
            node.propose(g(group), Bytes::from_static(b"x")).unwrap();
        }
    };
    propose(&mut node, 1, 30);
    for id in 2..=4 {
        propose(&mut node, id, 1);
    }

    // For each group, the number of the ready that applied its last entry.
    let mut finished: BTreeMap<GroupId, usize> = BTreeMap::new();
    let mut applied: BTreeMap<GroupId, Vec<u64>> = BTreeMap::new();
    for number in 0.. {
        let Some(r) = node.ready() else { break };
        assert!(number < 100, "no progress");
        check_ready_shape(n(1), &r);
        let count: usize = r.apply.iter().map(|a| a.entries.len()).sum();
        assert!(count <= 8, "ready {number} applied {count} entries");
        for a in &r.apply {
            applied
                .entry(a.group)
                .or_default()
                .extend(a.entries.iter().map(|e| e.index));
            finished.insert(a.group, number);
        }
        crate::testing::complete(&mut node, r.clone());
    }
    assert_eq!(applied[&g(1)], (2..=31).collect::<Vec<u64>>());
    for id in 2..=4 {
        assert_eq!(applied[&g(id)], vec![2]);
        assert!(
            finished[&g(id)] < finished[&g(1)],
            "group {id} waited for the busy group: {finished:?}"
        );
    }
}

// ----- determinism --------------------------------------------------------------------------

/// docs/design.md §9.1 (deterministic core: ticks and seeds are inputs): two nodes built with the
/// same id and seed and fed the same inputs produce equal readies, down to the order of
/// groups and messages. Regression test: groups lived in a `HashMap`, whose iteration order
/// differs between instances, so `tick` queued groups in a different order on each node.
#[test]
fn same_inputs_and_seed_give_the_same_readies() {
    let run = || {
        let mut node = new_node(1, strict());
        for id in 1..=50 {
            node.create_group(g(id), voters()).unwrap();
        }
        let mut readies = Vec::new();
        for _ in 0..40 {
            node.tick();
            if let Some(r) = node.ready() {
                crate::testing::complete(&mut node, r.clone());
                readies.push(r);
            }
        }
        readies
    };
    let (first, second) = (run(), run());
    let order = |readies: &[Ready]| -> Vec<Vec<GroupId>> {
        readies
            .iter()
            .map(|r| {
                r.send_after_write
                    .iter()
                    .flat_map(|b| b.messages.iter().map(|m| m.group))
                    .collect()
            })
            .collect()
    };
    assert!(order(&first).iter().map(Vec::len).sum::<usize>() > 0);
    assert_eq!(
        order(&first),
        order(&second),
        "groups served in another order"
    );
    assert_eq!(first, second);
}

/// Regression: removing a group and creating it again in one cycle used to put two records
/// for that group in one write, which the `WriteBatch` contract forbids (storage may apply
/// them in any order). The re-creation now waits until the removal is durable.
#[test]
fn recreating_a_group_waits_for_its_removal_to_be_durable() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    let r = node.ready().unwrap();
    crate::testing::complete(&mut node, r.clone());
    node.remove_group(g(1)).unwrap();
    assert_eq!(
        node.create_group(g(1), voters()),
        Err(GroupError::RemovalPending(g(1)))
    );
    let r = node.ready().unwrap();
    assert_eq!(r.write.groups.len(), 1);
    assert!(r.write.groups[0].remove);
    crate::testing::complete(&mut node, r.clone());
    assert!(node.create_group(g(1), voters()).is_ok());
    let r = node.ready().unwrap();
    let records: Vec<_> = r.write.groups.iter().filter(|w| w.group == g(1)).collect();
    assert_eq!(records.len(), 1);
    assert!(!records[0].remove && records[0].membership.is_some());
}

mod admission;
mod ends_once;
mod metrics;
mod peer_failures;
mod reads;
mod restore;
mod rests;
mod settled;
mod snapshots;
mod stalls;
mod stray_answers;
mod three_nodes;
mod unhosted;
mod untold;

/// docs/design.md §4.7: node-level state follows each group's membership. A membership entry
/// from the leader that adds node 4 makes it a peer of node 1 (liveness, heartbeats) as soon
/// as it is appended, and an event reports the membership; a later entry removing node 3
/// drops node 3 as a peer (no other group is shared with it), and a truncation of that entry
/// brings it back.
#[test]
fn peers_follow_the_membership_in_force() {
    /// Keeps the events; sends nothing.
    #[derive(Default)]
    struct Events(Vec<Event>);
    impl crate::testing::Io for Events {
        fn send(&mut self, _: MessageBatch) {}
        fn event(&mut self, e: Event) {
            self.0.push(e);
        }
    }
    let mut io = Events::default();
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    crate::testing::settle(&mut node, &mut io).unwrap();
    assert_eq!(node.peer_live(n(4)), None);
    let conf = |index: u64, m: Membership| Entry {
        index,
        term: 1,
        payload: Payload::Membership(Box::new(m)),
    };
    let with_4 = voters().with_learners([4]);
    let without_3 = Membership::voters([1, 2]).with_learners([4]);
    let body = append(0, 0, vec![noop(1, 1), conf(2, with_4.clone())], 0);
    node.step(batch_for(2, 1, 1, &[g(1)], body));
    crate::testing::settle(&mut node, &mut io).unwrap();
    assert!(io.0.contains(&Event::MembershipChanged {
        group: g(1),
        membership: with_4.clone()
    }));
    assert_eq!(node.peer_live(n(4)), Some(true));
    assert_eq!(node.peer_live(n(3)), Some(true));

    let body = append(2, 1, vec![conf(3, without_3.clone())], 0);
    node.step(batch_for(2, 1, 1, &[g(1)], body));
    crate::testing::settle(&mut node, &mut io).unwrap();
    assert_eq!(node.peer_live(n(3)), None, "no group shared with node 3");
    assert_eq!(node.replica(g(1)).unwrap().membership(), &without_3);

    // A leader of term 2 overwrites index 3: the membership before it is back.
    let body = append(2, 1, vec![noop(3, 2)], 0);
    node.step(batch_for(2, 1, 2, &[g(1)], body));
    crate::testing::settle(&mut node, &mut io).unwrap();
    assert_eq!(node.replica(g(1)).unwrap().membership(), &with_4);
    assert_eq!(node.peer_live(n(3)), Some(true));
}
