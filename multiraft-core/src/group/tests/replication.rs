//! Log replication: the consistency check, truncation of conflicting suffixes, fast
//! backtracking, the commit rule of Figure 8, and when entries may be persisted, counted and
//! applied (Raft §5.3, §5.4; IO rules 1 to 3).

use super::*;

/// §5.3 (AppendEntries receiver, steps 2, 4 and 5): after the consistency check passes, new
/// entries are appended and the commit index moves to min(leaderCommit, last new entry); the
/// acknowledgement waits for the write. Committed entries are applied only as far as they are
/// durable here (IO rule 3): the restored entries now, the new one after `on_persisted`.
#[test]
fn append_after_a_matching_entry_is_accepted() {
    let mut g = restored(1, hs(1, None, 0), log_of(&[1, 1]));
    g.step(msg(2, 1, 1, append(2, 1, vec![e(3, 1), e(4, 1)], 3)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, None, 3)),
            entries: vec![e(3, 1), e(4, 1)].into(),
            send_after_write: vec![msg(1, 2, 1, ack(4))],
            apply: vec![vec![e(1, 1), e(2, 1)].into()],
            events: vec![leader_changed(1, Some(2))],
            ..Default::default()
        }
    );
    assert!(!g.has_ready());
    g.on_persisted(4, 1);
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            apply: vec![vec![e(3, 1)].into()],
            ..Default::default()
        }
    );
}

/// IO rule 1 and Figure 2: a new replica's first ready hands the first entries it received
/// to storage. Regression test: an empty log's first unstable index used to be 0, so every
/// new group reported output, and entries received before its first ready were acknowledged
/// but never written.
#[test]
fn new_replica_writes_the_first_entries_it_receives() {
    let mut g = fresh(2, 1);
    assert!(!g.has_ready(), "a new replica has nothing to say");
    g.step(msg(1, 2, 1, append(0, 0, vec![noop(1, 1)], 0)));
    let ready = g.ready(MAX, MAX);
    assert_eq!(ready.entries, vec![noop(1, 1)]);
    assert_eq!(ready.send_after_write, vec![msg(2, 1, 1, ack(1))]);
}

/// §5.3, consistency check: "If the follower does not find an entry in its log with the same
/// index and term, then it refuses the new entries." The refusal names the rejected index
/// and a hint (the last index whose term is at most the leader's `prev_term`); nothing is
/// written.
#[test]
fn append_without_a_matching_entry_is_refused() {
    let mut g = restored(1, hs(2, None, 0), log_of(&[1, 1, 2]));
    // Missing entry: the log is too short.
    g.step(msg(2, 1, 2, append(5, 2, vec![e(6, 2)], 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            send_after_write: vec![msg(1, 2, 2, nack(5, 3, 2))],
            events: vec![leader_changed(2, Some(2))],
            ..Default::default()
        }
    );
    // Entry present with another term.
    g.step(msg(2, 1, 2, append(3, 3, vec![e(4, 3)], 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            send_after_write: vec![msg(1, 2, 2, nack(3, 3, 2))],
            ..Default::default()
        }
    );
    assert_eq!(g.entries(1, 10), &log_of(&[1, 1, 2])[..]);
}

/// §5.3, AppendEntries receiver step 3: "If an existing entry conflicts with a new one (same
/// index but different terms), delete the existing entry and all that follow it." The write
/// starts at the conflict, which tells storage to drop its stored suffix.
#[test]
fn conflicting_suffix_is_truncated_and_replaced() {
    let mut g = restored(1, hs(2, None, 1), log_of(&[1, 1, 2, 2]));
    g.step(msg(3, 1, 3, append(2, 1, vec![e(3, 3)], 1)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(3, None, 1)),
            entries: vec![e(3, 3)].into(),
            send_after_write: vec![msg(1, 3, 3, ack(3))],
            apply: vec![vec![e(1, 1)].into()],
            events: vec![leader_changed(3, Some(3))],
            ..Default::default()
        }
    );
    assert_eq!(g.entries(1, 10), &[e(1, 1), e(2, 1), e(3, 3)]);
    assert_eq!(
        g.status().persisted,
        2,
        "the replaced entry is no longer durable"
    );
}

/// §5.3 with two leaders between two readies: entries 3 and 4 of term 2 arrive, then, before
/// they are written, the term-3 leader's append replaces them from index 3. The write holds
/// only the replacement, so the acknowledgement of 4 waiting for it must go: it would tell
/// the term-2 leader that entries are durable here that never will be. (Found by the
/// simulator's pauses, seed 282: a paused follower took both leaders' appends at once.)
#[test]
fn an_acknowledgement_of_entries_replaced_before_their_write_is_dropped() {
    let mut g = restored(1, hs(2, None, 1), log_of(&[1, 1]));
    g.step(msg(2, 1, 2, append(2, 1, vec![e(3, 2), e(4, 2)], 1)));
    g.step(msg(3, 1, 3, append(2, 1, vec![e(3, 3)], 1)));
    let ready = g.ready(MAX, MAX);
    assert_eq!(ready.entries, vec![e(3, 3)]);
    assert_eq!(ready.send_after_write, vec![msg(1, 3, 3, ack(3))]);
}

/// §5.3: only a *conflicting* entry is deleted. A delayed, retransmitted append whose
/// entries are already present must not truncate what follows them (that could drop entries
/// this replica already acknowledged).
#[test]
fn retransmitted_append_does_not_truncate() {
    let mut g = restored(1, hs(1, None, 0), log_of(&[1, 1, 1, 1]));
    g.step(msg(2, 1, 1, append(1, 1, vec![e(2, 1)], 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            send_after_write: vec![msg(1, 2, 1, ack(2))],
            events: vec![leader_changed(1, Some(2))],
            ..Default::default()
        }
    );
    assert_eq!(g.status().last_index, 4);
}

/// §5.3, Log Matching after repair: Figure 7's follower (f) — eleven entries of terms 1, 2, 3
/// — against the term-8 leader's log of terms 1, 4, 5, 6. With the conflict hint ("the
/// follower can include the term of the conflicting entry...", end of §5.3) the leader needs
/// one rejection (two round trips) instead of seven, and the follower ends with the leader's
/// log.
#[test]
fn fast_backtracking_repairs_figure_7_f_in_two_round_trips() {
    let leader = log_of(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
    let f = log_of(&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
    let mut c = Cluster::restored(
        vec![
            (hs(7, None, 3), leader.clone()),
            (hs(7, None, 3), leader.clone()),
            (hs(7, None, 3), f),
        ],
        strict(),
        6,
    );
    c.elect(1);
    assert_eq!(c.status(1).term, 8);

    let mut repaired = leader[3..].to_vec();
    repaired.push(noop(11, 8));
    let with_3 = c.sent_where(|m| {
        (m.to == n(3) && matches!(m.body, MessageBody::Append { .. }))
            || (m.from == n(3) && matches!(m.body, MessageBody::AppendResponse { .. }))
    });
    assert_eq!(
        with_3,
        vec![
            msg(1, 3, 8, append(10, 6, vec![noop(11, 8)], 3)),
            msg(3, 1, 8, nack(10, 10, 3)),
            msg(1, 3, 8, append(3, 1, repaired, 11)),
            msg(3, 1, 8, ack(11)),
        ]
    );
    assert_eq!(c.log(3), c.log(1));
    assert_eq!(c.disks[2].entries, c.log(1));
}

/// §5.4.2 and Figure 8: "Raft never commits log entries from previous terms by counting
/// replicas." The term-4 leader S1 knows its term-2 entry at index 2 is stored on S1, S2
/// and S3 (a majority of five), yet does not commit it; and rightly so: S5 is then elected
/// in term 5 and replaces that entry on S3.
#[test]
fn figure_8_entry_of_a_previous_term_on_a_majority_is_not_committed() {
    let mut c = figure_8_until_index_2_is_on_a_majority();
    assert_eq!(c.status(1).commit, 1);

    // S1 crashes, and the others' nodes declare its node down (while they hear it they
    // refuse other candidates, §4.2.3); S5 (whose last entry is of term 3) wins with S3
    // and S4.
    c.isolated = BTreeSet::from([n(1)]);
    for id in 2..=4 {
        c.g_mut(id).on_node_down(n(1));
    }
    c.elect(5);
    assert_eq!(c.status(5).term, 5);
    assert_eq!(
        c.g(3).entries(2, 3),
        &[e(2, 3)],
        "S3's index 2 was replaced"
    );
    assert_eq!(c.status(5).commit, 3);
    assert_eq!(c.g(3).entries(1, 10), c.g(5).entries(1, 10));
}

/// §5.4.2: "once an entry from the current term has been committed ..., all prior entries
/// are committed indirectly". In the Figure 8 set-up, once S1's term-4 no-op reaches a
/// majority, index 2 and 3 commit together: S1 never persists a commit index of 2.
#[test]
fn figure_8_entries_of_previous_terms_commit_with_one_of_the_current_term() {
    let mut c = figure_8_until_index_2_is_on_a_majority();
    // The lost append to S3 is resent once heartbeats show S3 made no progress.
    for _ in 0..20 {
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert_eq!(c.status(1).commit, 3);
    assert_eq!(c.disks[0].commits, vec![1, 3]);
    assert_eq!(c.applied[0], vec![e(1, 1), e(2, 2), noop(3, 4)]);
}

/// Figure 8 (c): S1 leads term 4 with S2 and S3 (S4 and S5 unreachable). Appends carry one
/// entry each, and the append that would give S3 the term-4 no-op is lost, so S1 knows index
/// 2 is on three of five replicas and index 3 on two.
fn figure_8_until_index_2_is_on_a_majority() -> Cluster {
    let config = Config {
        pre_vote: false,
        check_quorum: false,
        max_append_entries: 1,
        ..strict()
    };
    let mut c = Cluster::restored(
        vec![
            (hs(3, None, 1), log_of(&[1, 2])),
            (hs(3, None, 1), log_of(&[1])),
            (hs(3, None, 1), log_of(&[1])),
            (hs(3, None, 1), log_of(&[1])),
            (hs(3, Some(5), 1), log_of(&[1, 3])),
        ],
        config,
        7,
    );
    c.isolated = BTreeSet::from([n(4), n(5)]);
    let lost_to_s3 = |gs: &[Replica], m: &Message| {
        m.to == n(3) && carries_index(m, 3) && gs[2].status().last_index >= 2
    };
    c.elect_where(1, |gs, m| !lost_to_s3(gs, m));
    assert_eq!(c.status(1).term, 4);
    for id in [1, 2, 3] {
        assert_eq!(c.g(id).entries(2, 3), &[e(2, 2)], "S{id}");
    }
    assert_eq!(c.status(2).last_index, 3);
    assert_eq!(c.status(3).last_index, 2);
    c
}

/// Dissertation §10.2.1: the leader sends appends before its own write is durable, but
/// "counts itself" toward a majority only once it is (IO rule 2). One follower's
/// acknowledgement plus an unwritten leader entry is not a majority; `on_persisted` makes it
/// one.
#[test]
fn leader_counts_its_own_entry_only_after_on_persisted() {
    let (mut g, first) = hand_elected_leader(2);
    assert_eq!(
        first,
        ReplicaReady {
            entries: vec![noop(1, 1)].into(),
            send_now: vec![
                msg(1, 2, 1, append(0, 0, vec![noop(1, 1)], 0)),
                msg(1, 3, 1, append(0, 0, vec![noop(1, 1)], 0)),
            ],
            events: vec![leader_changed(1, Some(1))],
            ..Default::default()
        }
    );
    g.step(msg(2, 1, 1, ack(1)));
    assert_eq!(g.status().commit, 0);
    assert!(!g.has_ready());

    g.on_persisted(1, 1);
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, Some(1), 1)),
            apply: vec![vec![noop(1, 1)].into()],
            ..Default::default()
        }
    );
}

/// docs/design.md §4.2: under steady writes a heartbeat round leaves out a replicating
/// follower that got an append since the previous round (it has just heard from its leader,
/// and its answer counts it active), but never in two rounds in a row. A follower being
/// probed, or one that got nothing, always gets its heartbeat.
#[test]
fn a_heartbeat_round_skips_a_follower_that_just_got_an_append_never_twice_in_a_row() {
    let (mut g, _) = hand_elected_leader(2);
    g.on_persisted(1, 1);
    // Node 2 replicates; node 3's probe (the no-op) stays unanswered.
    g.step(msg(2, 1, 1, ack(1)));
    g.ready(MAX, MAX);
    let round = |g: &mut Replica| -> Vec<NodeId> {
        g.tick();
        g.tick();
        let sent = g.ready(MAX, MAX).send_now;
        sent.iter()
            .filter(|m| matches!(m.body, MessageBody::Heartbeat { .. }))
            .map(|m| m.to)
            .collect()
    };
    let mut rounds = Vec::new();
    for seq in 1..=4 {
        g.propose(pid(1, seq), Bytes::from_static(b"x")).unwrap();
        let sent = g.ready(MAX, MAX).send_now;
        let to: Vec<NodeId> = sent.iter().map(|m| m.to).collect();
        assert_eq!(
            to,
            vec![n(2)],
            "the append goes to the replicating follower"
        );
        let last = g.status().last_index;
        g.on_persisted(last, 1);
        g.step(msg(2, 1, 1, ack(last)));
        rounds.push(round(&mut g));
    }
    assert_eq!(
        rounds,
        vec![vec![n(3)], vec![n(2), n(3)], vec![n(3)], vec![n(2), n(3)]]
    );
    // With no appends, every round has every follower.
    assert_eq!(round(&mut g), vec![n(2), n(3)]);
    assert_eq!(round(&mut g), vec![n(2), n(3)]);
}

/// A new commit index alone is not sent at once: it rides on the next append with entries,
/// or goes with a heartbeat round (`Replica::commit_notice_due`; the round after next for a
/// follower that the next one leaves out, `Progress::skips_heartbeat`): in the heartbeats,
/// capped at what each follower holds, and in a notice to a follower that holds less. Sent
/// at once, every append of a group with a few closed-loop clients was followed by a second
/// append and a second acknowledgement carrying nothing but the commit; sent at every tick,
/// it doubled what the heartbeats tell anyway.
#[test]
fn a_commit_alone_waits_for_the_next_entries_or_the_next_heartbeat_round() {
    let (mut g, _) = hand_elected_leader(2);
    g.on_persisted(1, 1);
    g.step(msg(2, 1, 1, ack(1)));
    g.step(msg(3, 1, 1, ack(1)));
    let r = g.ready(MAX, MAX);
    assert_eq!(g.status().commit, 1);
    assert!(r.send_now.is_empty(), "{:?}", r.send_now);
    assert!(!g.has_ready());

    // The next entries carry it.
    g.propose(pid(1, 1), Bytes::from_static(b"x")).unwrap();
    let r = g.ready(MAX, MAX);
    let commits: Vec<(NodeId, u64)> = r
        .send_now
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::Append {
                entries, commit, ..
            } if !entries.is_empty() => Some((m.to, *commit)),
            _ => None,
        })
        .collect();
    assert_eq!(commits, vec![(n(2), 1), (n(3), 1)]);
    g.on_persisted(2, 1);
    g.step(msg(2, 1, 1, ack(2)));
    let r = g.ready(MAX, MAX);
    assert_eq!(g.status().commit, 2);
    assert!(r.send_now.is_empty(), "{:?}", r.send_now);

    // Nothing more to send until the heartbeat round (every other tick here). Both
    // followers got the entry since the last round, so this round leaves them out, and
    // sends no notice in place of the heartbeat (`Progress::skips_heartbeat`).
    g.tick();
    assert!(g.ready(MAX, MAX).send_now.is_empty());
    g.tick();
    let skipped = g.ready(MAX, MAX).send_now;
    assert!(skipped.is_empty(), "{skipped:?}");
    // The next round leaves nobody out.
    g.tick();
    g.tick();
    let sent = g.ready(MAX, MAX).send_now;
    let told: Vec<(NodeId, u64)> = sent
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat { commit, .. } => Some((m.to, commit)),
            _ => None,
        })
        .collect();
    assert_eq!(told, vec![(n(2), 2), (n(3), 1)]);
    let notices: Vec<&Message> = sent
        .iter()
        .filter(|m| matches!(m.body, MessageBody::Append { .. }))
        .collect();
    assert_eq!(notices, vec![&msg(1, 3, 1, append(2, 1, vec![], 2))]);
    // Told once.
    g.tick();
    g.tick();
    let appends = g.ready(MAX, MAX).send_now.into_iter();
    let appends: Vec<Message> = appends
        .filter(|m| matches!(m.body, MessageBody::Append { .. }))
        .collect();
    assert!(appends.is_empty(), "{appends:?}");
}

/// Dissertation §10.2.1: "the leader may even commit an entry before it has been written to
/// its own disk, if a majority of followers have written it". It still applies it only once
/// it is durable here (IO rule 3).
#[test]
fn followers_alone_can_commit_but_the_leader_applies_after_its_write() {
    let (mut g, _) = hand_elected_leader(2);
    g.step(msg(2, 1, 1, ack(1)));
    g.step(msg(3, 1, 1, ack(1)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, Some(1), 1)),
            ..Default::default()
        }
    );
    g.on_persisted(1, 1);
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            apply: vec![vec![noop(1, 1)].into()],
            ..Default::default()
        }
    );
}

/// §5.3 ("once the leader learns an entry is committed ... it applies it") with IO rule 3: an
/// entry is applied only once it is both committed and durable on this replica. Committed
/// but not written: not applied. Written but not committed: not applied.
#[test]
fn entries_are_applied_only_when_committed_and_durable() {
    // Committed by the leader's append, not yet durable here.
    let mut g = fresh(2, 1);
    g.step(msg(1, 2, 1, append(0, 0, vec![noop(1, 1), e(2, 1)], 2)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, None, 2)),
            entries: vec![noop(1, 1), e(2, 1)].into(),
            send_after_write: vec![msg(2, 1, 1, ack(2))],
            events: vec![leader_changed(1, Some(1))],
            ..Default::default()
        }
    );
    assert!(!g.has_ready());
    g.on_persisted(2, 1);
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            apply: vec![vec![noop(1, 1), e(2, 1)].into()],
            ..Default::default()
        }
    );

    // Durable here, not yet committed.
    let mut g = fresh(2, 1);
    g.step(msg(1, 2, 1, append(0, 0, vec![noop(1, 1), e(2, 1)], 0)));
    g.ready(MAX, MAX);
    g.on_persisted(2, 1);
    assert!(!g.has_ready());
    g.step(msg(
        1,
        2,
        1,
        MessageBody::Heartbeat {
            commit: 1,
            round: 0,
        },
    ));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, None, 1)),
            send_after_write: vec![msg(2, 1, 1, MessageBody::HeartbeatResponse { round: 0 })],
            apply: vec![vec![noop(1, 1)].into()],
            ..Default::default()
        }
    );
}

/// §5.4.1 and Figure 3, Leader Completeness: "if a log entry is committed in a given term,
/// then that entry will be present in the logs of the leaders for all higher-numbered
/// terms" — across restarts too. Every replica restarts from what its readies persisted;
/// the replica that missed the committed entry cannot win; the new leader has the entry.
#[test]
fn leader_completeness_across_restart() {
    let mut c = Cluster::new(3, 0, strict(), 8);
    c.elect(1);
    c.isolated.insert(n(3));
    c.g_mut(1)
        .propose(pid(1, 1), Bytes::from_static(b"x"))
        .unwrap();
    c.deliver_all();
    let x = Entry {
        index: 2,
        term: 1,
        payload: Payload::Command {
            id: pid(1, 1),
            data: Bytes::from_static(b"x"),
        },
    };
    assert_eq!(c.status(1).commit, 2);
    assert_eq!(c.status(3).last_index, 1);

    let loaded: Vec<LoadedGroup> = (1..=3).map(|id| c.loaded(id)).collect();
    assert_eq!(loaded[0].entries, vec![noop(1, 1), x.clone()]);
    let config = Arc::new(strict());
    let groups = loaded
        .into_iter()
        .zip(1..)
        .map(|(l, id)| {
            let mut g = Replica::restore(n(id), l, Arc::clone(&config), 100 + id).unwrap();
            // Every replica restarted at once: no lease to protect (the hold is tested in
            // `reads.rs`).
            g.end_vote_hold();
            g
        })
        .collect();
    let mut c = Cluster::with_groups(Membership::voters([1, 2, 3]), groups);
    c.collect(); // re-apply what each replica knows committed

    ticks_until_ready(c.g_mut(3));
    c.deliver_all();
    assert_ne!(c.status(3).role, Role::Leader);
    assert_eq!(
        c.sent_where(|m| m.to == n(3)),
        vec![
            msg(1, 3, 1, vote_resp(true, false)),
            msg(2, 3, 1, vote_resp(true, false))
        ],
        "the replica without the committed entry is refused"
    );

    c.elect(2);
    assert_eq!(c.status(2).term, 2);
    assert_eq!(c.g(2).entries(2, 3), std::slice::from_ref(&x));
    assert_eq!(
        c.g(3).entries(2, 3),
        &[x],
        "the new leader repaired replica 3"
    );
}

/// A heartbeat that left before the quiesce notice (a read round's) but arrives after it is
/// answered — with its round, which a read round counts — yet neither wakes the quiet
/// follower nor restarts its election timer; a newer one does wake it. Regression: waking on
/// the late heartbeat let the follower campaign against a quiet, healthy leader (simulator
/// seed 308).
#[test]
fn a_heartbeat_older_than_the_quiesce_notice_does_not_wake_the_follower() {
    let mut f = restored(2, hs(1, Some(1), 1), log_of(&[1]));
    f.step(msg(1, 2, 1, append(1, 1, vec![], 1)));
    f.step(msg(
        1,
        2,
        1,
        MessageBody::Quiesce {
            commit: 1,
            round: 10,
        },
    ));
    let _ = f.ready(MAX, MAX);
    assert!(f.is_quiesced());

    f.step(msg(
        1,
        2,
        1,
        MessageBody::Heartbeat {
            commit: 1,
            round: 5,
        },
    ));
    assert!(f.is_quiesced(), "the late heartbeat woke the follower");
    let out = f.ready(MAX, MAX);
    assert_eq!(
        out.send_after_write,
        vec![msg(2, 1, 1, MessageBody::HeartbeatResponse { round: 5 })]
    );

    f.step(msg(
        1,
        2,
        1,
        MessageBody::Heartbeat {
            commit: 1,
            round: 11,
        },
    ));
    assert!(!f.is_quiesced(), "a heartbeat after the notice is news");
}

/// A transfer target that catches up to exactly the commit index (the other follower
/// already committed every entry with the leader) is handed leadership on the
/// acknowledgement that completes its log: that acknowledgement moves no commit, but must
/// still send `TimeoutNow`. Regression guard for the commit check that runs only when a
/// match passes the commit index: the transfer check must not be skipped with it (the
/// transfer would end `Timeout` instead).
#[test]
fn a_transfer_target_catching_up_to_the_commit_index_is_handed_leadership() {
    let mut c = Cluster::new(3, 0, strict(), 1);
    c.elect(1);
    c.isolated.insert(n(3));
    for seq in 1..=3 {
        c.g_mut(1)
            .propose(pid(1, seq), Bytes::from_static(b"x"))
            .unwrap();
    }
    c.deliver_all();
    let last = c.status(1).last_index;
    assert_eq!(c.status(1).commit, last, "committed with replica 2");
    assert!(
        c.status(3).last_index < last,
        "replica 3 missed the entries"
    );
    c.isolated.remove(&n(3));
    c.g_mut(1).transfer_leader(n(3)).unwrap();
    // Heartbeats bring replica 3's answers, which make the leader send what it lacks.
    for _ in 0..strict().election_timeout_min_ticks - 1 {
        if c.status(3).role == Role::Leader {
            break;
        }
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert!(
        !c.sent_where(|m| m.to == n(3) && matches!(m.body, MessageBody::TimeoutNow))
            .is_empty(),
        "TimeoutNow was sent"
    );
    assert_eq!(c.status(3).role, Role::Leader);
}

/// A leader holding proposals parked for a snapshot hands leadership over only once they
/// are appended and its target holds them: sent `TimeoutNow` before, it appended them in
/// its old term after the hand-over, where the new leader's log truncates them or leaves
/// them unknown, and voters holding them refused the target (review). Every proposal the
/// leader took ends applied (docs/design.md §4.5).
#[test]
fn a_leader_hands_over_only_once_its_parked_proposals_are_appended() {
    let config = Config {
        snapshot_entries: 4,
        compaction_lag_entries: 1,
        ..strict()
    };
    let mut c = Cluster::new(3, 0, config, 5);
    c.elect(1);
    let mut seq = 0;
    while c.g(1).parked_proposals() == 0 {
        seq += 1;
        assert!(seq < 100, "never parked");
        c.g_mut(1)
            .propose(pid(1, seq), Bytes::from_static(b"x"))
            .unwrap();
        c.deliver_all();
    }
    let parked = pid(1, seq);
    c.g_mut(1).transfer_leader(n(2)).unwrap();
    c.deliver_all();
    let handed_over = |c: &Cluster| {
        !c.sent_where(|m| m.to == n(2) && matches!(m.body, MessageBody::TimeoutNow))
            .is_empty()
    };
    assert!(!handed_over(&c), "TimeoutNow while a proposal is parked");
    // The snapshot is stored: the parked proposal is appended, then the target catches
    // up and is handed leadership.
    let meta = SnapshotMeta {
        index: c.g(1).log.applied,
        term: c.g(1).term,
        membership: c.g(1).membership().clone(),
    };
    c.g_mut(1).snapshot_stored(meta);
    c.deliver_all();
    for _ in 0..c.g(1).config.election_timeout_min_ticks {
        if handed_over(&c) {
            break;
        }
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert!(
        handed_over(&c),
        "handed over once the proposal was appended"
    );
    assert_eq!(c.status(2).role, Role::Leader);
    let carries = |e: &Entry| matches!(&e.payload, Payload::Command { id, .. } if *id == parked);
    assert!(
        c.log(2).iter().any(carries),
        "the parked proposal is in the new leader's log"
    );
}

/// A leader quiesces only once it has appended nothing for an election timeout. A group
/// with a proposal every few ticks stays awake between them: it went quiet and woke again
/// between each one, paying a quiesce notice, a wake and its buffers' shrinking and regrowth
/// every time (BENCHMARKS.md, "Quiescence after an idle election timeout"). Left idle, it
/// goes quiet at the first heartbeat after the timeout.
#[test]
fn a_leader_quiesces_only_after_an_idle_election_timeout() {
    let config = strict();
    let (min, beat) = (
        config.election_timeout_min_ticks,
        config.heartbeat_interval_ticks,
    );
    let mut c = Cluster::new(3, 0, config, 31);
    c.elect(1);
    // Ticks since the leader last appended.
    let mut idle = 0;
    for tick in 0..3 * min {
        if tick % (beat + 1) == 0 {
            let seq = u64::from(tick) + 1;
            c.g_mut(1)
                .propose(pid(1, seq), Bytes::from_static(b"x"))
                .unwrap();
            idle = 0;
        }
        c.g_mut(1).tick();
        idle += 1;
        c.deliver_all();
        assert!(
            !c.g(1).is_quiesced(),
            "quiet {tick} ticks in, between proposals"
        );
    }
    while !c.g(1).is_quiesced() {
        assert!(idle < min + beat, "still awake after {idle} idle ticks");
        c.g_mut(1).tick();
        idle += 1;
        c.deliver_all();
    }
    assert!(idle >= min, "quiet after {idle} idle ticks");
    assert!(c.g(2).is_quiesced() && c.g(3).is_quiesced());
}

/// A follower restarted with its data wiped, whose last life's late answer restored the
/// match its leader had forgotten at the restart, is still caught up: the leader's next
/// heartbeat carries a commit index beyond the follower's log, the follower says it lost
/// its log (`LogLost`), and the leader forgets the match and sends what is missing, though
/// it has nothing new to send. Regression (review): the leader, taking the follower to hold
/// its whole log, sent it nothing, and refusals of later appends at the match were taken
/// for late ones: the follower was never caught up.
#[test]
fn a_wiped_follower_whose_late_answer_restored_its_match_is_caught_up() {
    let mut c = Cluster::new(3, 0, strict(), 31);
    c.elect(1);
    c.propose_each_delivered(1, 3);
    let (term, last) = (c.status(1).term, c.status(1).last_index);
    assert_eq!(c.status(3).last_index, last);
    // Node 3 comes back wiped; its leader sees the new life, then a late answer of the last.
    c.groups[2] = fresh(3, 32);
    c.disks[2] = Disk::default();
    c.g_mut(1).on_node_restarted(n(3));
    c.deliver(msg(3, 1, term, ack(last)));
    assert_eq!(c.g(1).progress.get(&n(3)).expect("tracked").matched, last);
    for _ in 0..4 * strict().election_timeout_max_ticks {
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert_eq!(c.log(3), c.log(1));
}
