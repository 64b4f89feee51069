//! `MessageBatch::validate`: each rule, and honest traffic passing.

use bytes::Bytes;

use super::*;
use crate::entry::{Entry, Payload};
use crate::ids::ProposalId;
use crate::message::Beat;

fn msg(body: MessageBody) -> Message {
    Message {
        group: GroupId(3),
        from: NodeId(1),
        to: NodeId(2),
        term: 5,
        body,
    }
}

fn node_msg(body: MessageBody) -> Message {
    Message {
        group: GroupId::NODE,
        term: 0,
        ..msg(body)
    }
}

fn batch(messages: Vec<Message>) -> MessageBatch {
    MessageBatch {
        from: NodeId(1),
        to: NodeId(2),
        messages,
    }
}

fn pid(node: u64, seq: u64) -> ProposalId {
    ProposalId {
        node: NodeId(node),
        seq,
    }
}

/// An append after `prev_index` whose entries have the given terms.
fn append(prev_index: u64, prev_term: u64, terms: &[u64]) -> MessageBody {
    MessageBody::Append {
        prev_index,
        prev_term,
        entries: terms
            .iter()
            .enumerate()
            .map(|(i, t)| Entry {
                index: prev_index + 1 + i as u64,
                term: *t,
                payload: Payload::Command {
                    id: pid(1, i as u64),
                    data: Bytes::from_static(b"data"),
                },
            })
            .collect(),
        commit: prev_index,
    }
}

fn beats(n: u64) -> MessageBody {
    MessageBody::Heartbeats {
        liveness: Default::default(),
        beats: (1..=n)
            .map(|g| Beat {
                group: GroupId(g),
                term: 1,
                commit: 0,
                quiesce: false,
            })
            .collect(),
    }
}

fn acks(n: u64) -> MessageBody {
    MessageBody::HeartbeatAcks {
        acks: (1..=n)
            .map(|g| crate::message::Ack {
                group: GroupId(g),
                term: 1,
                round: 0,
            })
            .collect(),
    }
}

fn check(messages: Vec<Message>) -> Result<(), InvalidMessage> {
    batch(messages).validate(&MessageLimits::default())
}

/// Every kind of message an honest node sends, at the edges of the rules, passes.
#[test]
fn honest_batches_pass() {
    let messages = vec![
        node_msg(beats(2)),
        msg(append(4, 2, &[3, 5, 5])),
        msg(append(0, 0, &[1])),
        msg(append(7, 5, &[])),
        msg(MessageBody::Heartbeat {
            commit: 4,
            round: 0,
        }),
        msg(MessageBody::Vote {
            pre_vote: true,
            last_index: 4,
            last_term: 5,
            transfer: false,
        }),
        msg(MessageBody::VoteResponse {
            pre_vote: false,
            granted: true,
        }),
        msg(MessageBody::AppendResponse {
            success: false,
            index: 9,
            hint_index: 3,
            hint_term: 2,
            joined: false,
        }),
        msg(MessageBody::Propose {
            proposals: vec![(pid(1, 1), Bytes::from_static(b"x"))],
        }),
        msg(MessageBody::ProposeRejected {
            ids: vec![pid(2, 1)],
            leader_hint: None,
            reason: crate::message::Refusal::NotLeader,
        }),
        msg(MessageBody::ProposeRejected {
            ids: vec![],
            leader_hint: Some(NodeId(3)),
            reason: crate::message::Refusal::NotLeader,
        }),
        node_msg(acks(3)),
        node_msg(beats(0)),
    ];
    assert_eq!(check(messages), Ok(()));
    assert_eq!(check(vec![]), Ok(()));
    // An append whose last entry is at MAX_TERM_OR_INDEX passes; one past it does not, nor
    // an empty one after it.
    let largest = MAX_TERM_OR_INDEX;
    assert_eq!(check(vec![msg(append(largest - 1, 1, &[1]))]), Ok(()));
    assert_eq!(
        check(vec![msg(append(largest, 1, &[1]))]),
        Err(InvalidMessage::EntryIndexOverflow {
            index: 0,
            position: 0,
            prev_index: largest
        })
    );
    assert_eq!(
        check(vec![msg(append(largest + 1, 1, &[]))]),
        Err(InvalidMessage::IndexOutOfRange {
            index: 0,
            what: "append"
        })
    );
}

#[test]
fn reserved_node_in_batch() {
    for (from, to) in [(0, 2), (1, 0)] {
        let b = MessageBatch {
            from: NodeId(from),
            to: NodeId(to),
            messages: vec![],
        };
        assert_eq!(
            b.validate(&MessageLimits::default()),
            Err(InvalidMessage::ReservedNodeInBatch {
                from: NodeId(from),
                to: NodeId(to)
            })
        );
    }
}

#[test]
fn vote_last_term_above_term() {
    let vote = MessageBody::Vote {
        pre_vote: false,
        last_index: 1,
        last_term: 9,
        transfer: false,
    };
    let ok = msg(MessageBody::HeartbeatResponse { round: 0 });
    assert_eq!(
        check(vec![ok, msg(vote)]),
        Err(InvalidMessage::VoteLastTermAboveTerm {
            index: 1,
            last_term: 9,
            term: 5
        })
    );
}

#[test]
fn append_prev_term_above_term() {
    assert_eq!(
        check(vec![msg(append(4, 6, &[]))]),
        Err(InvalidMessage::AppendPrevTermAboveTerm {
            index: 0,
            prev_term: 6,
            term: 5
        })
    );
}

#[test]
fn entry_index_overflow() {
    let body = MessageBody::Append {
        prev_index: u64::MAX,
        prev_term: 1,
        entries: vec![Entry {
            index: 0,
            term: 1,
            payload: Payload::Noop,
        }]
        .into(),
        commit: 0,
    };
    assert_eq!(
        check(vec![msg(body)]),
        Err(InvalidMessage::EntryIndexOverflow {
            index: 0,
            position: 0,
            prev_index: u64::MAX
        })
    );
}

#[test]
fn non_consecutive_entries() {
    // A gap.
    let mut body = append(4, 2, &[3, 3]);
    if let MessageBody::Append { entries, .. } = &mut body {
        entries.make_mut()[1].index = 9;
    }
    assert_eq!(
        check(vec![msg(body)]),
        Err(InvalidMessage::NonConsecutiveEntries {
            index: 0,
            position: 1,
            expected: 6,
            found: 9
        })
    );
    // Not starting right after prev_index.
    let mut body = append(4, 2, &[3]);
    if let MessageBody::Append { entries, .. } = &mut body {
        entries.make_mut()[0].index = 4;
    }
    assert_eq!(
        check(vec![msg(body)]),
        Err(InvalidMessage::NonConsecutiveEntries {
            index: 0,
            position: 0,
            expected: 5,
            found: 4
        })
    );
}

#[test]
fn entry_term_decreases() {
    // Below prev_term.
    assert_eq!(
        check(vec![msg(append(4, 2, &[1]))]),
        Err(InvalidMessage::EntryTermDecreases {
            index: 0,
            position: 0,
            term: 1,
            preceding: 2
        })
    );
    // Below the previous entry's term.
    assert_eq!(
        check(vec![msg(append(4, 2, &[4, 3]))]),
        Err(InvalidMessage::EntryTermDecreases {
            index: 0,
            position: 1,
            term: 3,
            preceding: 4
        })
    );
}

#[test]
fn entry_term_above_term() {
    assert_eq!(
        check(vec![msg(append(4, 2, &[3, 6]))]),
        Err(InvalidMessage::EntryTermAboveTerm {
            index: 0,
            position: 1,
            entry_term: 6,
            term: 5
        })
    );
}

#[test]
fn too_many_items() {
    let limits = MessageLimits {
        max_items_per_message: 2,
        max_beats_per_message: 2,
    };
    let proposals = |n: u64| MessageBody::Propose {
        proposals: (1..=n).map(|s| (pid(1, s), Bytes::new())).collect(),
    };
    let rejected = |n: u64| MessageBody::ProposeRejected {
        ids: (1..=n).map(|s| pid(2, s)).collect(),
        leader_hint: None,
        reason: crate::message::Refusal::NotLeader,
    };
    let cases = [
        (
            msg(append(0, 0, &[1, 1])),
            msg(append(0, 0, &[1, 1, 1])),
            "entries",
        ),
        (msg(proposals(2)), msg(proposals(3)), "proposals"),
        (msg(rejected(2)), msg(rejected(3)), "proposal ids"),
        (node_msg(beats(2)), node_msg(beats(3)), "beats"),
        (node_msg(acks(2)), node_msg(acks(3)), "acks"),
    ];
    for (at_limit, over, what) in cases {
        assert_eq!(batch(vec![at_limit]).validate(&limits), Ok(()), "{what}");
        assert_eq!(
            batch(vec![over]).validate(&limits),
            Err(InvalidMessage::TooManyItems {
                index: 0,
                what,
                count: 3,
                max: 2
            })
        );
    }
    // The defaults are the protocol's.
    assert_eq!(
        MessageLimits::default(),
        MessageLimits {
            max_items_per_message: MAX_ITEMS_PER_MESSAGE,
            max_beats_per_message: MAX_BEATS_PER_MESSAGE,
        }
    );
}

#[test]
fn reserved_proposer() {
    let body = MessageBody::Propose {
        proposals: vec![
            (pid(1, 1), Bytes::new()),
            (pid(0, 2), Bytes::from_static(b"y")),
        ],
    };
    assert_eq!(
        check(vec![msg(body)]),
        Err(InvalidMessage::ReservedProposer { index: 0 })
    );
}

#[test]
fn reserved_leader_hint() {
    let body = MessageBody::ProposeRejected {
        ids: vec![],
        leader_hint: Some(NodeId(0)),
        reason: crate::message::Refusal::NotLeader,
    };
    assert_eq!(
        check(vec![msg(body)]),
        Err(InvalidMessage::ReservedLeaderHint { index: 0 })
    );
}

#[test]
fn node_level_outside_node_group() {
    for body in [beats(1), acks(1)] {
        assert_eq!(
            check(vec![node_msg(beats(1)), msg(body)]),
            Err(InvalidMessage::NodeLevelOutsideNodeGroup {
                index: 1,
                group: GroupId(3)
            })
        );
    }
}

/// The first violation is the one reported; the rest of the batch is not looked at.
#[test]
fn first_violation_wins() {
    let bad_vote = msg(MessageBody::Vote {
        pre_vote: true,
        last_index: 0,
        last_term: 6,
        transfer: false,
    });
    assert!(matches!(
        check(vec![msg(append(4, 6, &[])), bad_vote]),
        Err(InvalidMessage::AppendPrevTermAboveTerm { index: 0, .. })
    ));
}

/// Indexes and terms that only a log or an election past `MAX_TERM_OR_INDEX` could name, in
/// the messages that carry one beside an append's and a snapshot's, are refused; the
/// largest a log reaches passes. Regression (review): a `Removed` at `u64::MAX` made any
/// replica that does not hold it report itself removed, and a `ReadIndexResponse` at
/// `u64::MAX` kept a read confirmed that no apply would ever serve, for good.
#[test]
fn indexes_and_terms_past_the_largest_in_other_messages() {
    let largest = MAX_TERM_OR_INDEX;
    let removed = |index| MessageBody::Removed {
        index,
        matched: true,
    };
    let read = |index| MessageBody::ReadIndexResponse {
        ids: vec![1],
        index: Some(index),
    };
    let lost = |last_index| MessageBody::LogLost {
        last_index,
        last_term: 1,
    };
    let vote = |last_index| MessageBody::Vote {
        pre_vote: false,
        last_index,
        last_term: 1,
        transfer: false,
    };
    let cases: [(&dyn Fn(u64) -> MessageBody, &str); 4] = [
        (&removed, "removed"),
        (&read, "read index"),
        (&lost, "log lost"),
        (&vote, "vote"),
    ];
    for (body, what) in cases {
        assert_eq!(check(vec![msg(body(largest))]), Ok(()), "{what}");
        assert_eq!(
            check(vec![msg(body(largest + 1))]),
            Err(InvalidMessage::IndexOutOfRange { index: 0, what })
        );
    }
    let unheard = |replica, term| MessageBody::Unheard {
        replica: NodeId(replica),
        term,
    };
    assert_eq!(check(vec![msg(unheard(3, largest))]), Ok(()));
    assert_eq!(
        check(vec![msg(unheard(3, largest + 1))]),
        Err(InvalidMessage::TermOutOfRange { index: 0 })
    );
}

/// An `Unheard` naming the reserved node id 0 is refused. Regression (review): a leader
/// tracked node 0 as a replica to tell, and sent it messages.
#[test]
fn reserved_unheard_replica() {
    let body = MessageBody::Unheard {
        replica: NodeId(0),
        term: 1,
    };
    assert_eq!(
        check(vec![msg(body)]),
        Err(InvalidMessage::ReservedUnheardReplica { index: 0 })
    );
}
