//! What a node reports of its peers' failures: the peers declared down now
//! ([`NodeStatus::peers_down`]), and the count of verdicts and restarts
//! ([`NodeStats::peers_declared_down`], [`NodeStats::peer_restarts`]).

use super::reads::led_by_node_1;
use super::*;
use crate::group::Role;
use crate::message::{Beat, Liveness};

/// A coalesced heartbeat from `from` to node 1 in life `incarnation`, beating for no group.
fn beat(from: u64, incarnation: u64) -> MessageBatch {
    beat_for(from, incarnation, Vec::new())
}

/// A coalesced heartbeat from `from` to node 1 in life `incarnation`, with `beats`.
fn beat_for(from: u64, incarnation: u64, beats: Vec<Beat>) -> MessageBatch {
    let liveness = Liveness {
        incarnation,
        round: 1,
        echo: 0,
        echo_incarnation: 0,
    };
    MessageBatch {
        from: n(from),
        to: n(1),
        messages: vec![Message {
            group: GroupId::NODE,
            from: n(from),
            to: n(1),
            term: 0,
            body: MessageBody::Heartbeats {
                beats,
                liveness: Box::new(liveness),
            },
        }],
    }
}

#[test]
fn peers_declared_down_and_restarted_are_counted_and_the_down_ones_reported() {
    let mut sim = led_by_node_1(4);
    let node = &mut sim.nodes[0];
    let before = node.stats();
    assert_eq!((node.status().peers, node.status().peers_down), (2, 0));
    assert_eq!(before.peers_declared_down, 0);

    // Node 1 hears nobody for a liveness timeout: both peers are declared down, once.
    let timeout = u64::from(strict().election_timeout_min_ticks);
    for _ in 0..=timeout {
        node.tick();
    }
    assert_eq!(node.status().peers_down, 2);
    assert_eq!(node.stats().peers_declared_down, 2);
    for _ in 0..timeout {
        node.tick();
    }
    assert_eq!(node.stats().peers_declared_down, 2, "a verdict counts once");

    // Node 2 is heard again (in a life numbered above the one `Sim` gave it, 102): live,
    // and not counted again.
    node.step(beat(2, 107));
    assert_eq!(node.peer_live(n(2)), Some(true));
    assert_eq!(node.status().peers_down, 1);
    assert_eq!(node.stats().peers_declared_down, 2);
    let restarts = node.stats().peer_restarts;

    // Node 2 in another life: a restart, counted once; its next beat is no news.
    node.step(beat(2, 108));
    node.step(beat(2, 108));
    assert_eq!(node.stats().peer_restarts, restarts + 1);
}

/// A peer that stays in a group whose membership changes keeps its record: its next life is
/// still told from this one. Regression: the change forgot the record of a peer that group
/// alone shared, and the restart that followed went unnoticed, leaving a follower waiting on
/// a leader that had restarted as a follower (simulator, seed 7001468).
#[test]
fn a_membership_change_keeps_what_is_known_of_the_peers_that_stay() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    node.step(beat(2, 7));
    let restarts = node.stats().peer_restarts;

    // Node 2 leads and adds node 4 as a learner: nodes 2 and 3 stay.
    let with_4 = Entry {
        index: 2,
        term: 1,
        payload: Payload::Membership(Box::new(voters().with_learners([4]))),
    };
    let body = append(0, 0, vec![noop(1, 1), with_4], 0);
    node.step(batch_for(2, 1, 1, &[g(1)], body));
    crate::testing::settle(&mut node, &mut crate::testing::Recorder::default()).unwrap();
    assert_eq!(node.peer_live(n(4)), Some(true));

    node.step(beat(2, 8));
    assert_eq!(node.stats().peer_restarts, restarts + 1, "node 2 restarted");
}

/// Group 1's term and leader as node 1's replica knows them.
fn leadership(node: &Node) -> (u64, Option<NodeId>) {
    node.replica(g(1)).unwrap().leadership()
}

/// Node 1 following node 2 as group 1's leader in term 1 (node 2 in life 7, node 1 holding
/// its no-op), then hearing node 2 in life 8: a restart, so group 1 has no leader here.
fn following_2_restarted() -> Node {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    node.step(beat(2, 7));
    node.step(batch_for(
        2,
        1,
        1,
        &[g(1)],
        append(0, 0, vec![noop(1, 1)], 1),
    ));
    crate::testing::settle(&mut node, &mut crate::testing::Recorder::default()).unwrap();
    assert_eq!(leadership(&node), (1, Some(n(2))));
    node.step(beat(2, 8));
    assert_eq!(leadership(&node), (1, None), "node 2 restarted");
    node
}

/// A heartbeat message of a peer's earlier life, delayed past its new life's, changes none of
/// its groups. Regression (review of late batches): the restart made node 1 forget node 2
/// as group 1's leader, then the earlier life's late quiesce notice made node 2 its leader
/// again and stopped its timer, for as long as node 2's new life lived.
#[test]
fn a_late_beat_of_a_peers_earlier_life_changes_none_of_its_groups() {
    let mut node = following_2_restarted();

    let late = Beat {
        group: g(1),
        term: 1,
        commit: 1,
        quiesce: true,
    };
    node.step(beat_for(2, 7, vec![late]));
    assert_eq!(
        leadership(&node),
        (1, None),
        "a late beat of the earlier life"
    );
    assert!(!node.replica(g(1)).unwrap().is_quiesced());
    // Its timer runs: node 1 campaigns within an election timeout.
    for _ in 0..=strict().election_timeout_max_ticks {
        node.tick();
    }
    let role = node.group_status(g(1)).unwrap().role;
    assert!(
        matches!(role, Role::PreCandidate | Role::Candidate),
        "{role:?}"
    );
}

/// A batch whose liveness part is of a peer's earlier life is stale whole: its other
/// messages left with it (a batch comes from one life of its sender), and an append of
/// that life's leadership makes no leader of it again. Regression (review): only the
/// heartbeat message was dropped, and an append beside it (before it here) was stepped.
#[test]
fn a_late_batch_of_a_peers_earlier_life_is_dropped_whole() {
    let mut node = following_2_restarted();

    let mut late = batch_for(2, 1, 1, &[g(1)], append(1, 1, Vec::new(), 1));
    late.messages.extend(beat(2, 7).messages);
    node.step(late);
    assert_eq!(
        leadership(&node),
        (1, None),
        "a late append of the earlier life"
    );
}
