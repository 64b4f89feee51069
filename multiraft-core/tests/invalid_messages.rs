//! Inbound validation end to end: semantically invalid batches injected through the
//! in-memory network into running nodes are dropped whole and counted
//! (`NodeStats::dropped_invalid`), panic nothing and change no group's state, whatever
//! transport carried them. Every wait is bounded and on a condition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use multiraft_core::group::GroupStatus;
use multiraft_core::{
    Beat, Bytes, Config, Entry, GroupId, InvalidMessage, MAX_ITEMS_PER_MESSAGE, Membership,
    Message, MessageBatch, MessageBody, MessageLimits, MultiRaft, NodeId, Payload, ProposalId,
    SnapshotChunk, SnapshotMeta, Transport,
};
use multiraft_testkit::cluster::{self, Journal, agreed_leader, create_everywhere};
use multiraft_testkit::{MemNetwork, MemStorage};

/// Every wait gives up after this long: generous, because CI shares 2 cores.
const WAIT: Duration = Duration::from_secs(30);

const GROUP: GroupId = GroupId(1);

/// Short ticks; an election timeout of 1-2 s, so that a loaded machine causes no election
/// while the test compares states (the first leader is made with `campaign`).
fn config() -> Config {
    let mut c = Config::default();
    c.tick_interval = Duration::from_millis(5);
    c.heartbeat_interval_ticks = 4;
    c.election_timeout_min_ticks = 200;
    c.election_timeout_max_ticks = 400;
    c.strict = true;
    c
}

async fn start(network: &MemNetwork, journal: &Journal, n: u64) -> Vec<MultiRaft> {
    let mut nodes = Vec::new();
    for i in 1..=n {
        let node = MultiRaft::builder(NodeId(i), config())
            .storage(MemStorage::new())
            .transport(network.transport(NodeId(i)))
            .state_machines(journal.machines(NodeId(i)))
            .seed(i * 1000)
            .start()
            .await
            .unwrap();
        nodes.push(node);
    }
    nodes
}

async fn statuses(nodes: &[MultiRaft]) -> Vec<GroupStatus> {
    let mut all = Vec::new();
    for n in nodes {
        all.push(n.status(GROUP).await.unwrap().expect("hosted"));
    }
    all
}

async fn dropped_invalid(node: &MultiRaft) -> u64 {
    node.node_status().await.unwrap().stats.dropped_invalid
}

/// The kind of violation, by name (`InvalidMessage` is non-exhaustive).
fn kind(e: &InvalidMessage) -> &'static str {
    match e {
        InvalidMessage::ReservedNodeInBatch { .. } => "ReservedNodeInBatch",
        InvalidMessage::VoteLastTermAboveTerm { .. } => "VoteLastTermAboveTerm",
        InvalidMessage::AppendPrevTermAboveTerm { .. } => "AppendPrevTermAboveTerm",
        InvalidMessage::EntryIndexOverflow { .. } => "EntryIndexOverflow",
        InvalidMessage::NonConsecutiveEntries { .. } => "NonConsecutiveEntries",
        InvalidMessage::EntryTermDecreases { .. } => "EntryTermDecreases",
        InvalidMessage::EntryTermAboveTerm { .. } => "EntryTermAboveTerm",
        InvalidMessage::TooManyItems { .. } => "TooManyItems",
        InvalidMessage::ReservedProposer { .. } => "ReservedProposer",
        InvalidMessage::ReservedLeaderHint { .. } => "ReservedLeaderHint",
        InvalidMessage::NodeLevelOutsideNodeGroup { .. } => "NodeLevelOutsideNodeGroup",
        InvalidMessage::IndexOutOfRange { .. } => "IndexOutOfRange",
        InvalidMessage::TermOutOfRange { .. } => "TermOutOfRange",
        other => panic!("a kind this test does not know: {other:?}"),
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Command {
            id: ProposalId {
                node: NodeId(9),
                seq: index,
            },
            data: Bytes::from_static(b"forged"),
        },
    }
}

/// One batch from `from` to `to` of each kind of violation, built against the target's
/// current state `s` so that every message would change that state if it were accepted
/// (a higher term, a new leader, new entries) — except for the violation.
fn invalid_batches(from: NodeId, to: NodeId, s: &GroupStatus) -> Vec<MessageBatch> {
    let term = s.term;
    let next = term + 1;
    let last = s.last_index;
    let m = |from: NodeId, group: GroupId, term: u64, body: MessageBody| Message {
        group,
        from,
        to,
        term,
        body,
    };
    let append = |prev_index, prev_term, entries| MessageBody::Append {
        prev_index,
        prev_term,
        entries,
        commit: last + 1,
    };
    // Valid on its own: a leader of the next term, which every replica would follow.
    let valid_append = m(
        from,
        GROUP,
        next,
        append(last, term, vec![entry(last + 1, next)].into()),
    );
    let pid = |node, seq| ProposalId {
        node: NodeId(node),
        seq,
    };
    let batch = |from: NodeId, messages| MessageBatch { from, to, messages };
    vec![
        // The reserved node id as the sender (the only id whose transport may send it).
        batch(
            NodeId(0),
            vec![m(NodeId(0), GROUP, next, append(last, term, vec![].into()))],
        ),
        batch(
            from,
            vec![m(
                from,
                GROUP,
                next,
                MessageBody::Vote {
                    pre_vote: false,
                    last_index: last + 10,
                    last_term: next + 1,
                    transfer: false,
                },
            )],
        ),
        batch(
            from,
            vec![m(from, GROUP, next, append(last, next + 1, vec![].into()))],
        ),
        batch(
            from,
            vec![m(
                from,
                GROUP,
                next,
                append(u64::MAX, term, vec![entry(0, next)].into()),
            )],
        ),
        // A gap after a valid append of the next term, in one batch: dropped whole, so not
        // even the valid message is stepped (two messages counted).
        batch(
            from,
            vec![
                valid_append.clone(),
                m(
                    from,
                    GROUP,
                    next,
                    append(last, term, vec![entry(last + 2, next)].into()),
                ),
            ],
        ),
        batch(
            from,
            vec![m(
                from,
                GROUP,
                next,
                append(
                    last,
                    term,
                    vec![entry(last + 1, next), entry(last + 2, term)].into(),
                ),
            )],
        ),
        batch(
            from,
            vec![m(
                from,
                GROUP,
                next,
                append(last, term, vec![entry(last + 1, next + 1)].into()),
            )],
        ),
        // Forwarded proposals, which a leader would append: one too many.
        batch(
            from,
            vec![m(
                from,
                GROUP,
                0,
                MessageBody::Propose {
                    proposals: (0..=MAX_ITEMS_PER_MESSAGE as u64)
                        .map(|seq| (pid(from.0, seq), Bytes::new()))
                        .collect(),
                },
            )],
        ),
        batch(
            from,
            vec![m(
                from,
                GROUP,
                0,
                MessageBody::Propose {
                    proposals: vec![(pid(0, 1), Bytes::from_static(b"orphan"))],
                },
            )],
        ),
        batch(
            from,
            vec![m(
                from,
                GROUP,
                0,
                MessageBody::ProposeRejected {
                    ids: vec![pid(to.0, 1)],
                    leader_hint: Some(NodeId(0)),
                    reason: multiraft_core::Refusal::NotLeader,
                },
            )],
        ),
        // A snapshot at index u64::MAX, of the next term: installed, it overflowed the
        // index after the log's last (a panic in a debug build).
        batch(
            from,
            vec![m(
                from,
                GROUP,
                next,
                MessageBody::InstallSnapshot {
                    chunk: Box::new(SnapshotChunk {
                        meta: SnapshotMeta {
                            index: u64::MAX,
                            term: next,
                            membership: Membership::voters([1, 2, 3]),
                        },
                        seq: 0,
                        data: Bytes::from_static(b"forged"),
                        last: true,
                    }),
                },
            )],
        ),
        // An acknowledgement of index u64::MAX in the current term: counted by a leader,
        // it overflowed the next index to send.
        batch(
            from,
            vec![m(
                from,
                GROUP,
                term,
                MessageBody::AppendResponse {
                    success: true,
                    index: u64::MAX,
                    hint_index: 0,
                    hint_term: 0,
                    joined: true,
                },
            )],
        ),
        // An append of term u64::MAX, which a replica would follow: its next campaign
        // overflowed the term.
        batch(
            from,
            vec![m(from, GROUP, u64::MAX, append(last, term, vec![].into()))],
        ),
        // Coalesced heartbeats of the next term, addressed to a group instead of the node.
        batch(
            from,
            vec![m(
                from,
                GROUP,
                0,
                MessageBody::Heartbeats {
                    liveness: Default::default(),
                    beats: vec![Beat {
                        group: GROUP,
                        term: next,
                        commit: last,
                        quiesce: false,
                    }],
                },
            )],
        ),
    ]
}

/// Honest traffic is never counted invalid; every batch of each kind of violation, sent by
/// a member (or claiming the reserved id) to the leader and to each follower, is dropped
/// whole and counted per message; no node panics and no replica's state moves; the group
/// still commits afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_batches_are_dropped_counted_and_change_nothing() {
    let (network, journal) = (MemNetwork::new(), Journal::default());
    let nodes = start(&network, &journal, 3).await;
    create_everywhere(&nodes, [GROUP], &Membership::voters([1, 2, 3]))
        .await
        .unwrap();
    nodes[0].campaign(GROUP).await.unwrap();
    let leader = agreed_leader(&nodes, GROUP, WAIT).await.expect("a leader");
    let leader_node = &nodes[leader.0 as usize - 1];
    leader_node.propose(GROUP, "before").await.unwrap();
    // Settled: every replica holds, has committed and has applied the same log.
    let before = cluster::wait_for(WAIT, || async {
        let all = statuses(&nodes).await;
        let settled = all.iter().all(|s| {
            s.leader == Some(leader)
                && s.last_index == all[0].last_index
                && s.commit == s.last_index
                && s.applied == s.last_index
                && s.persisted == s.last_index
        });
        settled.then_some(all)
    })
    .await
    .expect("replicas settled");
    for n in &nodes {
        assert_eq!(
            dropped_invalid(n).await,
            0,
            "honest traffic counted invalid"
        );
    }

    // Inject, as a member, into every replica: the leader and both followers.
    let mut expected = BTreeMap::new();
    let mut kinds = BTreeSet::new();
    for (i, target) in before.iter().enumerate() {
        let to = NodeId(i as u64 + 1);
        let from = NodeId(to.0 % 3 + 1);
        let mut messages = 0;
        for batch in invalid_batches(from, to, target) {
            let error = batch
                .validate(&MessageLimits::default())
                .expect_err("the test builds invalid batches only");
            kinds.insert(kind(&error));
            messages += batch.messages.len() as u64;
            // A transport of the sender's, never attached: MemNetwork only requires that
            // the batch's `from` be the transport's node.
            network.transport(batch.from).send(batch);
        }
        expected.insert(to, messages);
    }
    assert_eq!(kinds.len(), 13, "one batch of each kind: {kinds:?}");

    // Each target drops and counts exactly what it was sent.
    for (to, messages) in &expected {
        let node = &nodes[to.0 as usize - 1];
        let got = cluster::wait_for(WAIT, || async {
            let got = dropped_invalid(node).await;
            (got >= *messages).then_some(got)
        })
        .await
        .unwrap_or_else(|_| panic!("{to} did not count its invalid batches"));
        assert_eq!(got, *messages, "{to}");
    }
    // The nodes still run (no panic in the event loop) and nothing moved.
    assert_eq!(statuses(&nodes).await, before);
    for (to, messages) in &expected {
        assert_eq!(dropped_invalid(&nodes[to.0 as usize - 1]).await, *messages);
    }

    // The group is as live as before.
    leader_node.propose(GROUP, "after").await.unwrap();
    for n in &nodes {
        n.shutdown().await.unwrap();
    }
}
