//! A node whose event loop stalled (docs/design.md §4.3): the tick it serves late counts the
//! ticks it missed on the clock that leases rest on, and one on the timers and the count of
//! its peers' silence.

use super::reads::{elect_node_1, led_by_node_1, taken};
use super::three_nodes::Sim;
use super::*;
use crate::group::{ReadPolicy, Role};
use crate::node::liveness::MAX_TIMEOUT_STRETCH;

/// A leader that stalls for longer than its lease serves no read on that lease when it
/// resumes: its followers' nodes may have declared it down and elected another leader
/// meanwhile. The lease read falls back to a round.
#[test]
fn a_stalled_leader_counts_the_missed_ticks_against_its_lease() {
    let mut sim = led_by_node_1(10);
    let commit = sim.nodes[0].group_status(g(1)).unwrap().commit;
    assert_eq!(
        sim.nodes[0].read(g(1), ReadPolicy::Lease),
        Ok(ReadStart::Now { index: commit }),
        "served on the lease before the stall"
    );
    let lease = u64::from(strict().lease_ticks);
    let status = sim.nodes[0].status();
    sim.nodes[0].tick_late(lease); // one tick served, `lease + 1` passed
    taken(sim.nodes[0].read(g(1), ReadPolicy::Lease));
    let after = sim.nodes[0].status();
    assert_eq!(after.ticks, status.ticks + lease + 1);
    assert_eq!(after.ticks_missed, status.ticks_missed + lease);
}

/// A node's own stall is one tick of its peers' silence, whatever its length: when it
/// resumes, it does not declare down the peers it could not hear while it was stalled.
/// And for a while it gives them as long as it stalled itself, up to the stretch's cap,
/// since the load that stalled it likely stalls them too (docs/design.md §4.3).
#[test]
fn a_nodes_own_stall_does_not_make_its_peers_look_silent() {
    let mut sim = led_by_node_1(10);
    let timeout = u64::from(strict().election_timeout_min_ticks);
    sim.nodes[0].tick_late(100 * timeout);
    assert_eq!(sim.nodes[0].peer_live(n(2)), Some(true));
    assert_eq!(sim.nodes[0].peer_live(n(3)), Some(true));
    // Silence served tick by tick still counts, against the stretched timeout.
    for _ in 0..=timeout {
        sim.nodes[0].tick();
    }
    assert_eq!(sim.nodes[0].peer_live(n(2)), Some(true));
    for _ in timeout..MAX_TIMEOUT_STRETCH * timeout {
        sim.nodes[0].tick();
    }
    assert_eq!(sim.nodes[0].peer_live(n(2)), Some(false));
}

/// A leader's node that falls behind under load (docs/design.md §4.3): one follower's node
/// hears nothing from it and declares it down, so the replicas there campaign; the other
/// follower's node still hears it, but none of its groups' heartbeats in time for their
/// election timers. That follower holds back its own campaigns and refuses the others', so
/// no group changes leader. Regression: it granted them, and overload cost tens to
/// hundreds of elections at 4,096 busy groups (BENCHMARKS.md).
#[test]
fn a_leader_declared_down_by_one_peer_keeps_its_groups_while_the_other_hears_its_node() {
    const GROUPS: u64 = 8;
    let active = Config {
        quiesce: false,
        ..strict()
    };
    let mut sim = Sim::with_config(GROUPS, active.clone());
    elect_node_1(&mut sim, GROUPS);
    let terms: Vec<u64> = (1..=GROUPS)
        .map(|id| sim.nodes[0].group_status(g(id)).unwrap().term)
        .collect();
    // Node 3 hears nothing from node 1; node 2 hears its liveness beats and nothing else.
    let late = |b: &mut MessageBatch| {
        if b.from != n(1) {
            return true;
        }
        b.messages.retain_mut(|m| match &mut m.body {
            MessageBody::Heartbeats { beats, .. } => {
                beats.clear();
                true
            }
            _ => false,
        });
        b.to == n(2)
    };
    for _ in 0..4 * active.election_timeout_max_ticks {
        for node in &mut sim.nodes {
            node.tick();
        }
        sim.run_filtered(late);
    }
    assert_eq!(
        sim.nodes[2].peer_live(n(1)),
        Some(false),
        "node 3 declared it down"
    );
    assert_eq!(sim.nodes[1].peer_live(n(1)), Some(true), "node 2 hears it");
    for id in 1..=GROUPS {
        let s = sim.nodes[0].group_status(g(id)).unwrap();
        assert_eq!(
            (s.role, s.term),
            (Role::Leader, terms[id as usize - 1]),
            "{}",
            g(id)
        );
    }
}

/// A wake that steps batches for seconds serves many ticks between two readies (the
/// driver serves a due tick before each batch): the list of groups `take_sends` looks at
/// holds each group once, however many ticks and inputs come. Regression: every tick
/// pushed every active group with output, and during a drain at 300,000 groups the list
/// grew until its doubling to 2 GiB failed (BENCHMARKS.md, 2026-12-06 evening).
#[test]
fn ticks_and_inputs_between_readies_list_each_group_once() {
    let mut node = new_node(1, strict());
    let list: Vec<GroupId> = (1..=50).map(g).collect();
    for &id in &list {
        node.create_group(id, voters()).unwrap();
    }
    settle_creation(&mut node);
    // Hold a write in flight, so that no ready comes between the inputs below.
    node.step(batch_for(2, 1, 1, &list, vote(false)));
    let r = node.ready().expect("the votes are written");
    assert!(node.ready().is_none(), "one write at a time");
    let timeout = node.config().election_timeout_max_ticks;
    for _ in 0..4 * timeout {
        node.tick();
        node.step(batch_for(3, 1, 1, &list, vote(false)));
    }
    assert_eq!(
        node.since_sends.len(),
        list.len(),
        "groups listed for take_sends, each with input"
    );
    crate::testing::complete(&mut node, r);
    // Taken, the list starts again: a group is listed anew on its next input.
    node.take_sends();
    assert!(node.since_sends.is_empty());
    node.step(batch_for(3, 1, 1, &list[..10], vote(false)));
    assert_eq!(node.since_sends, list[..10].to_vec());
}

/// A node that steps its inbox slower than it fills hears the peers whose batches wait
/// there: told of their arrival before each tick, it declares none down however long they
/// wait (docs/design.md §4.3). A peer whose batch it refused unread (invalid) is heard by
/// its arrivals no longer, until a batch of it is stepped: it is declared down as before.
#[test]
fn a_peer_whose_batches_wait_in_the_inbox_is_not_declared_down() {
    let mut sim = led_by_node_1(10);
    let timeout = u64::from(strict().election_timeout_min_ticks);
    for _ in 0..10 * timeout {
        sim.nodes[0].batch_arrived(n(2));
        sim.nodes[0].tick();
    }
    assert_eq!(sim.nodes[0].peer_live(n(2)), Some(true));
    assert_eq!(sim.nodes[0].peer_live(n(3)), Some(false), "silent");
    let invalid = MessageBatch {
        from: n(2),
        to: n(1),
        messages: vec![Message {
            group: g(1),
            from: n(2),
            to: n(1),
            term: u64::MAX,
            body: MessageBody::HeartbeatResponse { round: 0 },
        }],
    };
    sim.nodes[0].step(invalid);
    assert_eq!(sim.nodes[0].stats().dropped_invalid, 1);
    for _ in 0..MAX_TIMEOUT_STRETCH * timeout + 1 {
        sim.nodes[0].batch_arrived(n(2));
        sim.nodes[0].tick();
    }
    assert_eq!(
        sim.nodes[0].peer_live(n(2)),
        Some(false),
        "refused: not heard"
    );
}

/// A node's beacon beat (docs/design.md §4.3) is heard, and is nothing else: a peer that
/// steps only node 1's beacon beats while node 1 serves nothing never declares it down,
/// judges no restart and answers nothing; and node 1, hearing only its peers' beacon beats
/// while its own clock runs past its lease, serves no read on that lease — a beacon beat
/// echoes no round, so no lease rests on it.
#[test]
fn a_beacon_beat_is_heard_and_extends_no_lease() {
    let mut sim = led_by_node_1(10);
    let timeout = u64::from(strict().election_timeout_min_ticks);
    let restarts = sim.nodes[1].stats().peer_restarts;
    for _ in 0..10 * timeout {
        for batch in sim.nodes[0].beacon_batches() {
            assert!(only_liveness(&batch));
            if batch.to == n(2) {
                sim.nodes[1].step(batch);
            }
        }
        assert!(
            sim.nodes[1].ready().is_none(),
            "a beacon beat asks for no answer"
        );
        sim.nodes[1].tick();
        // Its outputs are queued, never delivered: node 1 hears nothing of node 2.
        if let Some(ready) = sim.nodes[1].ready() {
            sim.handle(1, ready);
        }
    }
    assert_eq!(
        sim.nodes[1].peer_live(n(1)),
        Some(true),
        "heard by its beacon"
    );
    assert_eq!(sim.nodes[1].peer_live(n(3)), Some(false), "silent");
    assert_eq!(sim.nodes[1].stats().peer_restarts, restarts);
    // Node 1's lease: its clock runs past it while its peers hear its beats (and its
    // rounds) but it hears nothing from them but their beacon beats.
    let commit = sim.nodes[0].group_status(g(1)).unwrap().commit;
    assert_eq!(
        sim.nodes[0].read(g(1), ReadPolicy::Lease),
        Ok(ReadStart::Now { index: commit }),
        "served on the lease before"
    );
    for _ in 0..=u64::from(strict().lease_ticks) {
        sim.nodes[0].tick();
        sim.run_filtered(|b| b.from == n(1));
        for i in 1..3 {
            for batch in sim.nodes[i].beacon_batches() {
                if batch.to == n(1) {
                    sim.nodes[0].step(batch);
                }
            }
        }
    }
    assert_eq!(sim.nodes[0].peer_live(n(2)), Some(true));
    taken(sim.nodes[0].read(g(1), ReadPolicy::Lease));
}

/// Whether `batch` is one node-level heartbeat message with no group's beat, no round and
/// no echo.
fn only_liveness(batch: &MessageBatch) -> bool {
    let [m] = &batch.messages[..] else {
        return false;
    };
    matches!(&m.body, MessageBody::Heartbeats { beats, liveness }
        if beats.is_empty() && liveness.round == 0 && liveness.echo == 0)
}
