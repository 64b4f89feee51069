//! `MessageBatch::validate` on snapshots and log indexes and terms no log reaches.

use super::*;
use crate::membership::Membership;
use crate::snapshot::{MAX_SNAPSHOT_CHUNKS, SnapshotChunk, SnapshotMeta};

fn install(term: u64, membership: Membership) -> MessageBatch {
    let chunk = SnapshotChunk {
        meta: SnapshotMeta {
            index: 10,
            term,
            membership,
        },
        ..SnapshotChunk::default()
    };
    MessageBatch {
        from: NodeId(1),
        to: NodeId(2),
        messages: vec![Message {
            group: GroupId(3),
            from: NodeId(1),
            to: NodeId(2),
            term: 5,
            body: MessageBody::InstallSnapshot {
                chunk: Box::new(chunk),
            },
        }],
    }
}

/// A snapshot whose last term is above the message's term, or whose membership is
/// unusable, is refused; an honest one passes.
#[test]
fn a_snapshot_no_leader_could_send_is_refused() {
    let limits = MessageLimits::default();
    let ok = Membership::voters([1, 2, 3]);
    assert_eq!(install(5, ok.clone()).validate(&limits), Ok(()));
    let reason = |b: MessageBatch| match b.validate(&limits) {
        Err(InvalidMessage::InvalidSnapshot { index: 0, reason }) => reason,
        other => panic!("expected InvalidSnapshot, got {other:?}"),
    };
    assert_eq!(reason(install(6, ok)), "term above the message term");
    assert_eq!(
        reason(install(5, Membership::default())),
        "membership invalid"
    );
    let huge = Membership::voters(1..=(MAX_ITEMS_PER_MESSAGE as u64 + 1));
    assert_eq!(reason(install(5, huge)), "membership too large");
    // Numbered past the last chunk a snapshot has: counting one past it overflowed.
    let numbered = |seq| {
        let mut b = install(5, Membership::voters([1, 2, 3]));
        if let MessageBody::InstallSnapshot { chunk } = &mut b.messages[0].body {
            chunk.seq = seq;
        }
        b
    };
    assert_eq!(numbered(MAX_SNAPSHOT_CHUNKS - 1).validate(&limits), Ok(()));
    assert_eq!(
        reason(numbered(MAX_SNAPSHOT_CHUNKS)),
        "chunk numbered past the last a snapshot has"
    );
}

/// A snapshot or an append response past `MAX_TERM_OR_INDEX` is refused: installed or
/// counted at `u64::MAX`, it overflowed the receiver's index arithmetic (review).
/// `MAX_TERM_OR_INDEX` itself passes.
#[test]
fn an_index_no_log_reaches_is_refused() {
    let limits = MessageLimits::default();
    let at = |index| {
        let mut b = install(5, Membership::voters([1, 2, 3]));
        if let MessageBody::InstallSnapshot { chunk } = &mut b.messages[0].body {
            chunk.meta.index = index;
        }
        b.validate(&limits)
    };
    assert_eq!(at(MAX_TERM_OR_INDEX), Ok(()));
    let refused = |what| Err(InvalidMessage::IndexOutOfRange { index: 0, what });
    assert_eq!(at(MAX_TERM_OR_INDEX + 1), refused("snapshot"));
    assert_eq!(at(u64::MAX), refused("snapshot"));
    let response = |index| {
        let mut b = install(5, Membership::voters([1, 2, 3]));
        b.messages[0].body = MessageBody::AppendResponse {
            success: true,
            index,
            hint_index: 0,
            hint_term: 0,
            joined: true,
        };
        b.validate(&limits)
    };
    assert_eq!(response(MAX_TERM_OR_INDEX), Ok(()));
    assert_eq!(response(MAX_TERM_OR_INDEX + 1), refused("append response"));
}

/// A term past `MAX_TERM_OR_INDEX`, a message's or a beat's, is refused: a replica
/// adopting one near `u64::MAX` overflowed its next term when it campaigned (review).
/// `MAX_TERM_OR_INDEX` itself passes.
#[test]
fn a_term_no_election_reaches_is_refused() {
    let limits = MessageLimits::default();
    let message = |term| {
        let mut b = install(5, Membership::voters([1, 2, 3]));
        b.messages[0].term = term;
        b.validate(&limits)
    };
    assert_eq!(message(MAX_TERM_OR_INDEX), Ok(()));
    assert_eq!(
        message(MAX_TERM_OR_INDEX + 1),
        Err(InvalidMessage::TermOutOfRange { index: 0 })
    );
    let beat = |term| {
        let mut b = install(5, Membership::voters([1, 2, 3]));
        b.messages[0].group = GroupId::NODE;
        b.messages[0].term = 0;
        b.messages[0].body = MessageBody::Heartbeats {
            liveness: Default::default(),
            beats: vec![crate::message::Beat {
                group: GroupId(3),
                term,
                commit: 0,
                quiesce: false,
            }],
        };
        b.validate(&limits)
    };
    assert_eq!(beat(MAX_TERM_OR_INDEX), Ok(()));
    assert_eq!(
        beat(u64::MAX - 1),
        Err(InvalidMessage::TermOutOfRange { index: 0 })
    );
}
