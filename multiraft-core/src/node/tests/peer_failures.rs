//! What a node reports of its peers' failures: the peers declared down now
//! ([`NodeStatus::peers_down`]), and the count of verdicts and restarts
//! ([`NodeStats::peers_declared_down`], [`NodeStats::peer_restarts`]).

use super::reads::led_by_node_1;
use super::*;
use crate::message::Liveness;

/// A coalesced heartbeat from `from` to node 1 in life `incarnation`, beating for no group.
fn beat(from: u64, incarnation: u64) -> MessageBatch {
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
                beats: Vec::new(),
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

    // Node 2 is heard again: live, and not counted again.
    node.step(beat(2, 7));
    assert_eq!(node.peer_live(n(2)), Some(true));
    assert_eq!(node.status().peers_down, 1);
    assert_eq!(node.stats().peers_declared_down, 2);
    let restarts = node.stats().peer_restarts;

    // Node 2 in another life: a restart, counted once; its next beat is no news.
    node.step(beat(2, 8));
    node.step(beat(2, 8));
    assert_eq!(node.stats().peer_restarts, restarts + 1);
}
