//! Answers nobody asked for: a heartbeat acknowledgement of a round the node never sent, a
//! read index for reads that are not the group's, a proposal rejection naming another
//! group's proposal. An honest peer sends none of them; each could end or confirm a
//! request that is not its own, so the node drops them.

use super::reads::{elect_node_1, led_by_node_1, taken};
use super::three_nodes::Sim;
use super::*;
use crate::group::ReadPolicy;
use crate::ids::ProposalId;
use crate::message::{Ack, MAX_TERM_OR_INDEX, Refusal};

/// An acknowledgement of a round later than any the leader's node sent confirms no read:
/// rounds only grow, so it would count for every round to come, reads and the lease alike.
/// Regression (review): one such ack from one follower, with the leader, made a quorum for
/// a read whose round's heartbeats were all lost.
#[test]
fn an_ack_of_a_round_never_sent_confirms_no_read() {
    let mut sim = led_by_node_1(1);
    let term = sim.nodes[0].group_status(g(1)).unwrap().term;
    let read = taken(sim.nodes[0].read(g(1), ReadPolicy::ReadIndex));
    // The round's heartbeats are lost.
    sim.run_filtered(|b| b.from != n(1));
    let ack = Ack {
        group: g(1),
        term,
        round: u64::MAX,
    };
    let acks = MessageBody::HeartbeatAcks { acks: vec![ack] };
    sim.nodes[0].step(batch_for(2, 1, 0, &[GroupId::NODE], acks));
    sim.run_filtered(|b| b.from != n(1));
    assert_eq!(sim.logs[0].reads, [], "no read confirmed");
    // A later round, delivered, serves it.
    for _ in 0..strict().election_timeout_min_ticks {
        if !sim.logs[0].reads.is_empty() {
            break;
        }
        sim.tick();
    }
    assert_eq!(sim.logs[0].reads.len(), 1);
    assert_eq!(sim.logs[0].reads[0].0.request, read);
}

/// A read index answered for reads the node does not await in that group is dropped: a read
/// of another group served at that index would be stale, and confirmed reads that no read
/// awaits held a follower's `max_pending_reads` for as long as their index was not applied.
/// Regression (review).
#[test]
fn a_read_index_for_reads_not_awaited_in_the_group_is_dropped() {
    let config = Config {
        max_pending_reads: 2,
        ..strict()
    };
    let mut sim = Sim::with_config(2, config);
    elect_node_1(&mut sim, 2);
    let term = sim.nodes[0].group_status(g(1)).unwrap().term;
    let read = taken(sim.nodes[1].read(g(1), ReadPolicy::Follower));
    // Group 2's leader "answers" node 2's read of group 1 at index 0, and two reads node 2
    // never asked for at an index no log reaches yet.
    let stray = MessageBody::ReadIndexResponse {
        ids: vec![read.0, read.0 + 1000, read.0 + 1001],
        index: Some(0),
    };
    sim.nodes[1].step(batch_for(1, 2, term, &[g(2)], stray));
    let far = MessageBody::ReadIndexResponse {
        ids: vec![read.0 + 1002, read.0 + 1003],
        index: Some(MAX_TERM_OR_INDEX),
    };
    sim.nodes[1].step(batch_for(1, 2, term, &[g(2)], far));
    let r = sim.nodes[1].ready().unwrap();
    assert_eq!(r.reads, [], "nothing served");
    sim.handle(1, r);
    taken(sim.nodes[1].read(g(2), ReadPolicy::Follower));
    sim.run();
    let served: Vec<(RequestId, GroupId)> = sim.logs[1]
        .reads
        .iter()
        .map(|(p, _)| (p.request, p.group))
        .collect();
    assert!(served.contains(&(read, g(1))), "{served:?}");
    assert_eq!(served.len(), 2, "{served:?}");
}

/// A proposal rejection is taken only from the group the proposal went to: one naming a
/// proposal of group 1 in a message of group 2 ends nothing (an honest leader of group 2
/// never saw it). Regression (review): it ended the proposal `Rejected`, a definite "not
/// appended", while the leader of group 1 may have appended it.
#[test]
fn a_rejection_in_another_group_ends_no_proposal() {
    let mut sim = led_by_node_1(2);
    let term = sim.nodes[0].group_status(g(2)).unwrap().term;
    let request = sim.nodes[1]
        .propose(g(1), Bytes::from_static(b"x"))
        .unwrap();
    let rejected = MessageBody::ProposeRejected {
        ids: vec![ProposalId {
            node: n(2),
            seq: request.0,
        }],
        leader_hint: Some(n(1)),
        reason: Refusal::NotLeader,
    };
    sim.nodes[1].step(batch_for(1, 2, term, &[g(2)], rejected));
    sim.run();
    let ends: Vec<&Outcome> = sim.logs[1]
        .outcomes
        .iter()
        .filter(|o| o.request == request)
        .collect();
    assert_eq!(
        ends,
        [] as [&Outcome; 0],
        "applied: no outcome but the apply"
    );
    // The commit index reaches node 2 with the leader's next heartbeat rounds.
    for _ in 0..2 * strict().heartbeat_interval_ticks {
        sim.tick();
    }
    assert_eq!(sim.commands(1, g(1)), [Bytes::from_static(b"x")]);
}
