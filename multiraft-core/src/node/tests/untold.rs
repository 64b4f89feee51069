//! Removed replicas a leader of this node forgot untold are nudged (`node/untold.rs`): once
//! every maximum election timeout, for `NUDGE_TIMEOUTS` of them, unless they are tracked or
//! members again.

use super::*;
use crate::message::Refusal;
use crate::node::untold::{MAX_UNTOLD, NUDGE_TIMEOUTS};

/// The ticks at which `node` sent group 1's nudges to `to`, ticking `ticks` times.
fn nudged_at(node: &mut Node, to: u64, ticks: u64) -> Vec<(u64, Message)> {
    let mut sent = Vec::new();
    for _ in 0..ticks {
        node.tick();
        while let Some(ready) = node.ready() {
            for m in ready.send_now.iter().flat_map(|b| &b.messages) {
                if m.to == n(to) && m.group == g(1) {
                    sent.push((node.ticks(), m.clone()));
                }
            }
            crate::testing::complete(node, ready);
        }
    }
    sent
}

/// A replica forgotten untold by a leadership this node no longer holds is told "not the
/// leader" at the term it followed in, once per maximum election timeout for
/// `NUDGE_TIMEOUTS` of them; a member is never nudged. Regression (simulator's check that
/// removed replicas are told, seeds 12000694, 12003567 and 12004101): a quiet removed
/// replica its leader forgot while it was cut off waited for that leader's node for good.
#[test]
fn a_replica_forgotten_untold_is_nudged_each_election_timeout_for_a_while() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    node.remember_untold(g(1), &mut vec![(n(4), 3), (n(2), 3)]);
    let period = u64::from(strict().election_timeout_max_ticks);

    let sent = nudged_at(&mut node, 4, (NUDGE_TIMEOUTS + 2) * period);
    let ticks: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        ticks,
        (1..=NUDGE_TIMEOUTS).map(|k| k * period).collect::<Vec<_>>()
    );
    for (_, m) in &sent {
        assert_eq!(m.term, 3, "at the term it followed in");
        assert!(
            matches!(
                &m.body,
                MessageBody::ProposeRejected { ids, reason: Refusal::NotLeader, .. } if ids.is_empty()
            ),
            "{m:?}"
        );
    }
    let to_member = nudged_at(&mut node, 2, period);
    assert!(
        !to_member
            .iter()
            .any(|(_, m)| matches!(m.body, MessageBody::ProposeRejected { .. })),
        "a member nudged"
    );
}

/// Nudges wait for the next ready, and while a write stays in flight for several periods
/// a replica's nudge is queued once, not once a period. Regression (review): each period
/// queued another, up to `NUDGE_TIMEOUTS` times `MAX_UNTOLD` messages held for the ready.
#[test]
fn a_write_in_flight_for_several_periods_queues_one_nudge_per_replica() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    node.remember_untold(g(1), &mut vec![(n(4), 3)]);
    let period = u64::from(strict().election_timeout_max_ticks);
    node.create_group(g(2), voters()).unwrap();
    let in_flight = node.ready().expect("the creation's write");
    for _ in 0..3 * period {
        node.tick();
    }
    crate::testing::complete(&mut node, in_flight);
    let ready = node.ready().expect("the nudge");
    let nudges = ready
        .send_now
        .iter()
        .flat_map(|b| &b.messages)
        .filter(|m| m.to == n(4) && matches!(m.body, MessageBody::ProposeRejected { .. }))
        .count();
    assert_eq!(nudges, 1);
}

/// Node 1, the leader of group 1 (its single voter), whose replica forgot node 4's untold;
/// and the nudges' period.
fn leader_that_forgot_4() -> (Node, u64) {
    let mut node = new_node(1, strict());
    node.create_group(g(1), Membership::voters([1])).unwrap();
    settle_creation(&mut node);
    let period = u64::from(strict().election_timeout_max_ticks);
    nudged_at(&mut node, 4, 2 * period);
    let (term, leader) = node.groups[&g(1)].group.leadership();
    assert_eq!(leader, Some(n(1)), "the single voter leads");
    node.remember_untold(g(1), &mut vec![(n(4), term)]);
    (node, period)
}

/// A replica forgotten untold by a leadership this node still holds is tracked again as
/// retiring when its nudge is due (then caught up and told), not sent a message: anything
/// from its leader restarts the election timer that would make it ask (simulator, seed
/// 1836, with a first version that sent it an empty heartbeat every election timeout).
/// Forgotten again (it stays silent), it keeps its end: it is not tracked again for good.
#[test]
fn a_replica_forgotten_untold_by_a_leader_still_leading_is_tracked_again() {
    let (mut node, period) = leader_that_forgot_4();

    let sent = nudged_at(&mut node, 4, period);
    assert!(node.groups[&g(1)].group.tracks(n(4)), "tracked again");
    assert!(
        sent.iter()
            .any(|(_, m)| matches!(m.body, MessageBody::Append { .. })),
        "caught up: {sent:?}"
    );
    // Silent, it is forgotten again, and tracked again while its nudges last; not after.
    let sent = nudged_at(&mut node, 4, (NUDGE_TIMEOUTS + 2) * period);
    assert!(!sent.is_empty());
    assert!(!node.groups[&g(1)].group.tracks(n(4)), "tracked for good");
    assert!(
        nudged_at(&mut node, 4, 4 * period).is_empty(),
        "nudged for good"
    );
}

/// A replica that stays silent (its node dead, or its replica deleted) is tracked again
/// by each nudge and forgotten again a CheckQuorum round or two later; in a busy group the
/// last forgetting comes after the nudges' end, and must not start them over. Regression
/// (review): it did, and the group, tracking a silent replica, never went quiet.
#[test]
fn a_silent_replica_is_not_tracked_again_for_good_in_a_busy_group() {
    let (mut node, period) = leader_that_forgot_4();
    let mut tracked_at = Vec::new();
    for _ in 0..(NUDGE_TIMEOUTS + 12) * period {
        node.propose(g(1), Bytes::from_static(b"busy")).unwrap();
        nudged_at(&mut node, 4, 1);
        if node.groups[&g(1)].group.tracks(n(4)) {
            tracked_at.push(node.ticks());
        }
    }
    let last = tracked_at.last().copied().unwrap_or(0);
    assert!(!tracked_at.is_empty(), "never tracked again");
    assert!(
        last < node.ticks() - 4 * period,
        "still tracked at {last} of {}",
        node.ticks()
    );
}

/// The list of replicas to nudge is bounded: past `MAX_UNTOLD` the oldest gives way.
#[test]
fn the_replicas_to_nudge_are_at_most_max_untold() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    let many = MAX_UNTOLD as u64 + 10;
    let mut forgotten: Vec<(NodeId, u64)> = (0..many).map(|i| (n(100 + i), 1)).collect();
    node.remember_untold(g(1), &mut forgotten);
    assert_eq!(node.untold.len(), MAX_UNTOLD);
    let period = u64::from(strict().election_timeout_max_ticks);
    let nudged: BTreeSet<NodeId> = (0..period)
        .flat_map(|_| {
            node.tick();
            let mut to = Vec::new();
            while let Some(ready) = node.ready() {
                to.extend(ready.send_now.iter().map(|b| b.to));
                crate::testing::complete(&mut node, ready);
            }
            to
        })
        .filter(|to| to.0 >= 100)
        .collect();
    assert_eq!(nudged.len(), MAX_UNTOLD);
    assert!(!nudged.contains(&n(100)), "the oldest gave way");
    assert!(nudged.contains(&n(100 + many - 1)));
}
