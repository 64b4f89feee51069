//! A proposal whose group changed leadership ends indeterminate only once it is settled:
//! once this node's replica has applied an entry of a later term than the proposal's, every
//! entry the old leadership committed has been applied before it, so one not applied by
//! then never will be in that leadership. Until then it may still be applied, and ends so
//! (docs/design.md §5). Regression (review): it ended `Indeterminate(LeadershipChanged)` at
//! the change, and transfers broke their promise that every proposal taken ends applied.

use super::reads::{elect_node_1, led_by_node_1};
use super::three_nodes::Sim;
use super::*;
use crate::error::Indeterminate;

/// The outcomes node `i` reported for `request`.
fn ends(sim: &Sim, i: usize, request: RequestId) -> Vec<Resolution> {
    sim.logs[i]
        .outcomes
        .iter()
        .filter(|o| o.request == request)
        .map(|o| o.resolution.clone())
        .collect()
}

/// A follower's forwarded proposal, committed by the leader and the transfer's target
/// while the follower heard nothing of it, ends applied when leadership moves: the
/// follower learns of the new term (the target's vote request) before the entry.
#[test]
fn a_forwarded_proposal_committed_before_a_transfer_ends_applied() {
    let mut sim = led_by_node_1(1);
    let request = sim.nodes[2]
        .propose(g(1), Bytes::from_static(b"x"))
        .unwrap();
    // Node 3 hears nothing from node 1: its proposal is committed by nodes 1 and 2.
    sim.run_filtered(|b| !(b.from == n(1) && b.to == n(3)));
    sim.nodes[0].transfer_leader(g(1), n(2)).unwrap();
    sim.run();
    for _ in 0..2 * strict().election_timeout_max_ticks {
        sim.tick();
    }
    assert_eq!(sim.agreed_leader(g(1)), Some(n(2)));
    assert_eq!(ends(&sim, 2, request), []);
    assert_eq!(sim.commands(2, g(1)), [Bytes::from_static(b"x")]);
    assert_eq!(
        sim.nodes[2].status().pending_proposals,
        0,
        "ended by the apply"
    );
}

/// The leader's own proposals, committed but not all applied when the transfer's target
/// deposes it (one entry applied per ready), end applied.
#[test]
fn proposals_committed_but_not_applied_when_the_leader_is_deposed_end_applied() {
    let config = Config {
        max_ready_entries: 1,
        ..strict()
    };
    let mut sim = Sim::with_config(1, config);
    elect_node_1(&mut sim, 1);
    let requests: Vec<RequestId> = (0..10)
        .map(|i| sim.nodes[0].propose(g(1), Bytes::from(vec![i])).unwrap())
        .collect();
    sim.nodes[0].transfer_leader(g(1), n(2)).unwrap();
    sim.run();
    for _ in 0..2 * strict().election_timeout_max_ticks {
        sim.tick();
    }
    assert_eq!(sim.agreed_leader(g(1)), Some(n(2)));
    for request in requests {
        assert_eq!(ends(&sim, 0, request), [], "{request:?}");
    }
    assert_eq!(sim.commands(0, g(1)).len(), 10);
    assert_eq!(
        sim.nodes[0].status().pending_proposals,
        0,
        "ended by the applies"
    );
}

/// A proposal its leader appended alone, then lost to a leader of a later term, ends
/// `Indeterminate(LeadershipChanged)` once the old leader's replica applies the new term's
/// first entry — within a few heartbeats of hearing of it, not at the proposal timeout.
#[test]
fn a_proposal_lost_with_its_leadership_ends_once_a_later_term_is_applied() {
    let mut sim = led_by_node_1(1);
    let request = sim.nodes[0]
        .propose(g(1), Bytes::from_static(b"x"))
        .unwrap();
    let cut_off = |b: &mut MessageBatch| b.from != n(1) && b.to != n(1);
    sim.run_filtered(cut_off);
    // Nodes 2 and 3 find node 1 gone, and elect one of them.
    for _ in 0..4 * strict().election_timeout_max_ticks {
        sim.nodes[1].tick();
        sim.nodes[2].tick();
        sim.run_filtered(cut_off);
    }
    let elected = sim.nodes[1].group_status(g(1)).unwrap();
    assert!(elected.term > sim.nodes[0].group_status(g(1)).unwrap().term);
    assert!(
        matches!(elected.leader, Some(l) if l != n(1)),
        "{elected:?}"
    );
    assert_eq!(ends(&sim, 0, request), [], "node 1 has heard nothing yet");
    let mut ticks = 0;
    while ends(&sim, 0, request).is_empty() {
        assert!(ticks < 2 * strict().election_timeout_max_ticks, "not ended");
        sim.tick();
        ticks += 1;
    }
    assert_eq!(
        ends(&sim, 0, request),
        [Resolution::Indeterminate(Indeterminate::LeadershipChanged)]
    );
    assert_eq!(
        sim.commands(0, g(1)),
        [] as [Bytes; 0],
        "truncated, never applied"
    );
}

/// A proposal applied after its group's leadership changed waited for the change, not for
/// an overloaded node: admission control does not count its wait. Counted, one such late
/// apply was "most of what the node applied" and set the overload cap (a failover's worth
/// of them refused every proposal `Busy` for a while).
#[test]
fn a_proposal_applied_after_its_leadership_changed_sets_no_overload_cap() {
    let config = Config {
        max_commit_wait_ticks: 2,
        ..strict()
    };
    let mut sim = Sim::with_config(1, config);
    elect_node_1(&mut sim, 1);
    let request = sim.nodes[2]
        .propose(g(1), Bytes::from_static(b"x"))
        .unwrap();
    // Committed by nodes 1 and 2; node 3 hears only of the transfer's new term.
    sim.run_filtered(|b| !(b.from == n(1) && b.to == n(3)));
    sim.nodes[0].transfer_leader(g(1), n(2)).unwrap();
    let only_votes = |b: &mut MessageBatch| {
        if b.to == n(3) {
            b.messages
                .retain(|m| matches!(m.body, MessageBody::Vote { .. }));
        }
        true
    };
    sim.run_filtered(only_votes);
    assert_eq!(sim.nodes[1].group_status(g(1)).unwrap().leader, Some(n(2)));
    let term = |i: usize| sim.nodes[i].group_status(g(1)).unwrap().term;
    assert_eq!(term(2), term(1), "node 3 heard of the new term");
    assert_eq!(sim.commands(2, g(1)), [] as [Bytes; 0]);
    // Node 3 hears nothing for longer than the limit (within an election timeout).
    for _ in 0..5 {
        for node in &mut sim.nodes {
            node.tick();
        }
        sim.run_filtered(|b| b.to != n(3));
    }
    let mut ticks = 0;
    while sim.commands(2, g(1)).is_empty() {
        assert!(ticks < strict().election_timeout_min_ticks, "never applied");
        sim.tick();
        ticks += 1;
    }
    assert_eq!(ends(&sim, 2, request), [], "ended applied");
    sim.tick();
    assert_eq!(sim.nodes[2].admission_cap(), None);
}
