//! Proposals and read index requests sent to a node that does not host their group:
//! refused at once, as a replica that does not lead refuses them, so that the sender learns
//! that this node does not lead the group.

use super::*;
use crate::ids::ProposalId;
use crate::message::Refusal;
use crate::node::lifecycle::MAX_UNHOSTED_REFUSALS;

/// The term node 2 forwards at: the refusal echoes it.
const FORWARD_TERM: u64 = 5;

/// A batch from node 2 forwarding `count` proposals of group 7, one message each.
fn forwarded(count: u64) -> MessageBatch {
    let messages = (1..=count)
        .map(|seq| {
            let id = ProposalId { node: n(2), seq };
            let proposals = vec![(id, Bytes::from_static(b"x"))];
            msg(g(7), 2, 1, FORWARD_TERM, MessageBody::Propose { proposals })
        })
        .collect();
    MessageBatch {
        from: n(2),
        to: n(1),
        messages,
    }
}

/// Regression: such proposals were dropped, the forwarder's follower kept taking this node
/// for the group's leader, and held back its campaign for as long as this node lived
/// (simulator, seeds 7009305, 7010494, 7011289: a leader that removed itself and deleted
/// its replica).
#[test]
fn proposals_forwarded_for_a_group_not_hosted_are_refused() {
    let mut node = new_node(1, strict());
    node.create_group(g(1), voters()).unwrap();
    settle_creation(&mut node);
    node.step(forwarded(1));
    assert_eq!(node.stats().dropped_unknown_group, 1);
    let ready = node.ready().expect("the refusal goes out");
    let refusal = msg(
        g(7),
        1,
        2,
        FORWARD_TERM,
        MessageBody::ProposeRejected {
            ids: vec![ProposalId { node: n(2), seq: 1 }],
            leader_hint: None,
            reason: Refusal::NotLeader,
        },
    );
    let sent: Vec<&Message> = ready.send_now.iter().flat_map(|b| &b.messages).collect();
    assert_eq!(sent, vec![&refusal]);
    crate::testing::complete(&mut node, ready);
    assert_eq!(node.ready(), None, "refused once");
}

/// What one ready refuses is bounded; past it, proposals are dropped as before.
#[test]
fn the_refusals_of_one_ready_are_bounded() {
    let mut node = new_node(1, strict());
    node.step(forwarded(MAX_UNHOSTED_REFUSALS as u64 + 10));
    let ready = node.ready().expect("the refusals go out");
    let refused = ready.send_now.iter().flat_map(|b| &b.messages).count();
    assert_eq!(refused, MAX_UNHOSTED_REFUSALS);
}

/// A follower's read index request for a group not hosted here is answered with no index,
/// as a replica that does not lead answers it, so the follower's reads fail at once.
/// Regression: it was dropped, and a read at a follower that still took this node for
/// the group's leader waited for its deadline (the kv membership test, 2 runs in 10).
#[test]
fn read_index_requests_for_a_group_not_hosted_are_answered() {
    let mut node = new_node(1, strict());
    let ask = msg(
        g(7),
        2,
        1,
        FORWARD_TERM,
        MessageBody::ReadIndex { ids: vec![4, 5] },
    );
    node.step(MessageBatch {
        from: n(2),
        to: n(1),
        messages: vec![ask],
    });
    let ready = node.ready().expect("the answer goes out");
    let answer = msg(
        g(7),
        1,
        2,
        FORWARD_TERM,
        MessageBody::ReadIndexResponse {
            ids: vec![4, 5],
            index: None,
        },
    );
    let sent: Vec<&Message> = ready.send_now.iter().flat_map(|b| &b.messages).collect();
    assert_eq!(sent, vec![&answer]);
}

/// A replica's own question (`MessageBody::Unheard`) to a node that does not host its
/// group is refused as a forward is, at its term, so that a follower that took this node
/// for its leader stops holding back its campaign. A relayed one (another replica's) is
/// not answered. Regression (simulator's check that removed replicas are told, seed 547):
/// dropped, it left a removed follower holding back for a deleted leader's live node.
#[test]
fn a_replicas_question_for_a_group_not_hosted_is_refused() {
    let mut node = new_node(1, strict());
    let question = |replica: u64| {
        msg(
            g(7),
            2,
            1,
            FORWARD_TERM,
            MessageBody::Unheard {
                replica: n(replica),
                term: FORWARD_TERM,
            },
        )
    };
    node.step(MessageBatch {
        from: n(2),
        to: n(1),
        messages: vec![question(3), question(2)],
    });
    let ready = node.ready().expect("the refusal goes out");
    let refusal = msg(
        g(7),
        1,
        2,
        FORWARD_TERM,
        MessageBody::ProposeRejected {
            ids: Vec::new(),
            leader_hint: None,
            reason: Refusal::NotLeader,
        },
    );
    let sent: Vec<&Message> = ready.send_now.iter().flat_map(|b| &b.messages).collect();
    assert_eq!(sent, vec![&refusal]);
}
