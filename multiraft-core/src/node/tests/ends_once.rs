//! A membership change or a leadership transfer ends once, with its own outcome: while it
//! leads the group, the node takes no second one while the group has events it has not yet
//! read, one of which may end the first (docs/design.md §5). Regression (review): the second
//! took the first one's table entry, and the first one's end went to it.

use super::reads::led_by_node_1;
use super::*;
use crate::membership::MembershipChange;
use crate::testing::{self, Recorder};
use crate::{MembershipChangeError, TransferError};

/// A change whose entry is durable, and with it committed and ended, before the ready that
/// reports its end: a second change of the group is refused `ChangeInProgress` until then;
/// taken after it, each ends with its own membership.
#[test]
fn a_change_taken_while_the_last_ones_end_is_unread_is_refused() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    let mut io = Recorder::default();
    testing::settle(&mut node, &mut io).unwrap();
    io.outcomes.clear(); // the group's creation
    let add =
        |node: &mut Node, id| node.change_membership(g(1), MembershipChange::AddLearner(n(id)));
    let first = add(&mut node, 2).unwrap();
    let ready = node.ready().expect("the change is written");
    let durable = testing::begin(&mut node, ready, &mut io).acknowledge(&mut node);
    assert_eq!(
        add(&mut node, 3),
        Err(MembershipChangeError::ChangeInProgress),
        "the first one's end is not yet read"
    );
    durable.deliver(&mut node, &mut io);
    testing::settle(&mut node, &mut io).unwrap();
    let second = add(&mut node, 3).unwrap();
    testing::settle(&mut node, &mut io).unwrap();
    let ended: Vec<_> = io
        .outcomes
        .iter()
        .map(|o| (o.request, o.resolution.clone()))
        .collect();
    let learners = |ids: &[u64]| {
        Resolution::MembershipChanged(Membership::voters([1]).with_learners(ids.iter().copied()))
    };
    assert_eq!(
        ended,
        [(first, learners(&[2])), (second, learners(&[2, 3]))]
    );
}

/// A transfer abandoned after an election timeout, before the ready that reports it: a
/// second transfer of the group is refused `InProgress` until then (but one to the leader
/// itself, done at once), and the first ends `Timeout`.
#[test]
fn a_transfer_taken_while_the_last_ones_end_is_unread_is_refused() {
    let mut sim = led_by_node_1(1);
    let first = sim.nodes[0].transfer_leader(g(1), n(2)).unwrap();
    for _ in 0..strict().election_timeout_min_ticks {
        sim.nodes[0].tick();
    }
    assert_eq!(
        sim.nodes[0].transfer_leader(g(1), n(3)),
        Err(TransferError::InProgress),
        "the first one's end is not yet read"
    );
    // A transfer to the leader itself is done at once, and takes nothing in the table.
    let to_itself = sim.nodes[0].transfer_leader(g(1), n(1)).unwrap();
    let ready = sim.nodes[0]
        .ready()
        .expect("the abandoned transfer is reported");
    sim.handle(0, ready);
    let ended: Vec<_> = sim.logs[0]
        .outcomes
        .iter()
        .map(|o| (o.request, o.resolution.clone()))
        .collect();
    assert_eq!(
        ended,
        [
            (to_itself, Resolution::Done),
            (first, Resolution::TransferFailed(TransferError::Timeout))
        ]
    );
}

/// A leader deposed with its change in the table and its leadership change not yet read
/// answers a new change `NotLeader`, naming the new leader, as its group would: the
/// refusal above holds only while this node leads.
#[test]
fn a_deposed_leader_still_says_where_to_go() {
    let mut sim = led_by_node_1(1);
    let node = &mut sim.nodes[0];
    node.change_membership(g(1), MembershipChange::Remove(n(3)))
        .unwrap();
    let (term, _) = node.group_status(g(1)).map(|s| (s.term, s.leader)).unwrap();
    // Node 2 leads a later term: its append, at the log's start, deposes node 1.
    node.step(batch_for(2, 1, term + 1, &[g(1)], append(0, 0, vec![], 0)));
    assert_eq!(
        node.change_membership(g(1), MembershipChange::Remove(n(3))),
        Err(MembershipChangeError::NotLeader {
            leader_hint: Some(n(2))
        })
    );
}

/// A restarted node told to start its request ids at or below one that an entry of its log
/// carries (its wall clock set back across the restart: a host with no clock of its own, a
/// virtual machine restored) starts past it: re-applied, that entry must answer no
/// proposal of this life. Regression (review): ids started where told, and the re-applied
/// entry's result went to the new proposal of the same id.
#[test]
fn a_restarted_node_starts_its_request_ids_past_those_its_log_carries() {
    let mut node = new_node(1, strict());
    node.start_requests_at(5);
    let command = |seq| Entry {
        index: 1,
        term: 1,
        payload: Payload::Command {
            id: crate::ids::ProposalId { node: n(1), seq },
            data: Bytes::from_static(b"of the last life"),
        },
    };
    let loaded = crate::storage::LoadedGroup {
        membership: Membership::voters([1]),
        hard_state: HardState {
            term: 1,
            vote: Some(n(1)),
            commit: 0,
        },
        entries: vec![command(9)],
        ..crate::storage::LoadedGroup::new(g(1))
    };
    node.restore(vec![loaded]).unwrap();
    node.campaign(g(1)).unwrap();
    let mut io = Recorder::default();
    testing::settle(&mut node, &mut io).unwrap();
    let ids: Vec<u64> = (0..8)
        .map(|_| node.propose(g(1), Bytes::from_static(b"x")).unwrap().0)
        .collect();
    assert!(ids.iter().all(|&id| id > 9), "{ids:?}");
}

/// docs/design.md §9.1 (deterministic core): the ends of several groups' membership changes,
/// all cut by one message that deposes their leader, come in the same order on every
/// instance — by group. Regression (review): the groups whose leadership changed in a ready
/// were gathered in a `HashMap`, whose order differs between instances, so a simulator seed
/// that acted on these ends in order did not replay.
#[test]
fn changes_ended_by_one_step_down_end_in_group_order() {
    let groups = 4;
    let ended_order = || {
        let mut sim = led_by_node_1(groups);
        let node = &mut sim.nodes[0];
        let mut term = 0;
        for id in 1..=groups {
            node.change_membership(g(id), MembershipChange::Remove(n(3)))
                .unwrap();
            term = term.max(node.group_status(g(id)).unwrap().term);
        }
        let all: Vec<_> = (1..=groups).map(g).collect();
        node.step(batch_for(2, 1, term + 1, &all, append(0, 0, vec![], 0)));
        let ready = node.ready().expect("the changes' ends are reported");
        let order: Vec<GroupId> = ready.outcomes.iter().map(|o| o.group).collect();
        for o in &ready.outcomes {
            assert!(
                matches!(
                    o.resolution,
                    Resolution::MembershipChangeFailed(MembershipChangeError::Indeterminate(_))
                ),
                "{o:?}"
            );
        }
        order
    };
    let all: Vec<GroupId> = (1..=groups).map(g).collect();
    for _ in 0..20 {
        assert_eq!(ended_order(), all);
    }
}

/// A transfer given up by the leader (its election timeout) in the ready in which the
/// target's vote request deposed it ends with the leadership, not `Timeout` ("the leader
/// kept its leadership"): here `Done`, once the target leads. Regression (review): the
/// group's abort was read before its leadership change, and the caller was told `Timeout`
/// while the target took over.
#[test]
fn a_transfer_given_up_as_its_target_campaigns_ends_with_the_leadership() {
    let mut sim = led_by_node_1(1);
    let transfer = sim.nodes[0].transfer_leader(g(1), n(2)).unwrap();
    // `TimeoutNow` reaches node 2; its vote requests are held.
    let mut held = Vec::new();
    sim.run_filtered(|b| {
        if b.from == n(2) {
            held.push(b.clone());
            return false;
        }
        true
    });
    assert!(!held.is_empty(), "node 2 campaigned");
    // The leader's transfer times out, and the vote request comes, before its next ready.
    for _ in 0..strict().election_timeout_min_ticks {
        sim.nodes[0].tick();
    }
    for b in held.into_iter().filter(|b| b.to == n(1)) {
        sim.nodes[0].step(b);
    }
    sim.run();
    let ends: Vec<&Resolution> = sim.logs[0]
        .outcomes
        .iter()
        .filter(|o| o.request == transfer)
        .map(|o| &o.resolution)
        .collect();
    assert_eq!(sim.agreed_leader(g(1)), Some(n(2)));
    assert_eq!(ends, [&Resolution::Done]);
}
