//! PreVote, CheckQuorum and leader stickiness (dissertation §4.2.3, §6.2 and §9.6): the
//! extensions that keep a partitioned or stale replica from disrupting a healthy leader.

use super::*;

/// `strict()` with quiescence off: these tests watch an active group's own timers and
/// heartbeats, which a quiesced group stops.
fn active() -> Config {
    Config {
        quiesce: false,
        ..strict()
    }
}

/// Dissertation §9.6: a pre-vote asks "would you vote for me?" and changes no one's term: the
/// receiver answers at the proposed term without persisting anything.
#[test]
fn pre_vote_changes_no_term() {
    let mut g = restored(2, hs(1, None, 0), log_of(&[1]));
    g.step(msg(3, 2, 2, vote(true, 1, 1)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            send_after_write: vec![msg(2, 3, 2, vote_resp(true, true))],
            ..Default::default()
        }
    );
    assert_eq!(g.status().term, 1);
    assert_eq!(g.status().vote, None);
}

/// Dissertation §9.6: a pre-candidate whose round times out (no majority answered) runs
/// another pre-vote round at the same term; it never bumps its term without a majority's
/// assent. Regression test: it used to become a real candidate on its second timeout.
#[test]
fn pre_candidate_that_times_out_asks_again_without_bumping_its_term() {
    let mut g = fresh(1, 11);
    for _ in 0..5 {
        ticks_until_ready(&mut g);
        assert_eq!(
            g.ready(MAX, MAX),
            ReplicaReady {
                send_after_write: vec![
                    msg(1, 2, 1, vote(true, 0, 0)),
                    msg(1, 3, 1, vote(true, 0, 0)),
                ],
                events: vec![GroupEvent::ElectionStarted],
                ..Default::default()
            }
        );
        assert_eq!(g.status().role, Role::PreCandidate);
        assert_eq!(g.status().term, 0);
    }
}

/// Dissertation §9.6 with §4.2.3: a follower whose timer fires while the leader is healthy
/// pre-votes; the others, hearing from the leader, do not answer, so it never gets a real
/// election going; the leader's next heartbeat brings it back. No term changes anywhere.
#[test]
fn pre_vote_does_not_disrupt_a_healthy_leader() {
    let mut c = Cluster::new(3, 0, strict(), 1);
    c.elect(1);
    ticks_until_ready(c.g_mut(3));
    assert_eq!(c.status(3).role, Role::PreCandidate);
    let sent_before = c.sent.len();
    c.deliver_all();
    assert_eq!(
        c.sent[sent_before..],
        [
            msg(3, 1, 2, vote(true, 1, 1)),
            msg(3, 2, 2, vote(true, 1, 1))
        ],
        "nobody answers a pre-vote while it hears from its leader"
    );
    c.g_mut(1).tick();
    c.g_mut(1).tick();
    c.deliver_all();
    for id in 1..=3 {
        assert_eq!(c.status(id).term, 1);
        assert_eq!(c.status(id).leader, Some(n(1)));
    }
    assert_eq!(c.status(1).role, Role::Leader);
    assert_eq!(c.status(3).role, Role::Follower);
}

/// Dissertation §9.6 ("Preventing disruptions when a server rejoins the cluster"): a
/// partitioned replica keeps pre-voting but never raises its term, so when it rejoins, the
/// leader keeps leading in the same term. (Had its term grown, its first reply to the leader
/// would have deposed it, §5.1.)
#[test]
fn partitioned_replica_rejoins_without_raising_terms() {
    let mut c = Cluster::new(3, 0, strict(), 2);
    c.elect(1);
    c.isolated.insert(n(3));
    for _ in 0..200 {
        c.tick_all();
        c.deliver_all();
    }
    assert_eq!(
        c.status(3).term,
        1,
        "the partitioned replica raised its term"
    );
    assert_eq!(c.disks[2].hard_state.term, 1);
    assert_eq!(c.status(1).role, Role::Leader);

    c.isolated.clear();
    for _ in 0..40 {
        c.tick_all();
        c.deliver_all();
    }
    for id in 1..=3 {
        assert_eq!(c.status(id).term, 1, "replica {id}");
        assert_eq!(c.status(id).leader, Some(n(1)), "replica {id}");
        assert_eq!(c.disks[id as usize - 1].hard_state.term, 1);
    }
    assert_eq!(c.status(1).role, Role::Leader);
    assert_eq!(c.log(3), c.log(1));
}

/// Dissertation §6.2: "a leader steps down if an election timeout elapses without a
/// successful round of heartbeats to a majority of its cluster". Cut off, the leader steps
/// down within two minimum election timeouts, keeping its term; connected, it stays.
#[test]
fn check_quorum_leader_steps_down_without_a_majority() {
    let mut c = Cluster::new(3, 0, strict(), 3);
    c.elect(1);
    for _ in 0..100 {
        c.tick_all();
        c.deliver_all();
    }
    assert_eq!(c.status(1).role, Role::Leader, "a connected leader stays");
    assert_eq!(c.status(1).term, 1);

    // Quiescence off: a quiesced leader does not tick, and leaves failure detection to the
    // node's liveness beats (see the node tests); this test is about an active group.
    let mut c = Cluster::new(3, 0, active(), 3);
    c.elect(1);
    c.isolated.insert(n(1));
    let mut ticks = 0;
    while c.status(1).role == Role::Leader {
        c.g_mut(1).tick();
        ticks += 1;
        assert!(
            ticks <= 20,
            "still leading after {ticks} ticks without a majority"
        );
    }
    assert!(
        ticks > 10,
        "stepped down after {ticks} ticks, within the first timeout"
    );
    let ready = c.g_mut(1).ready(MAX, MAX);
    assert_eq!(ready.events, vec![leader_changed(1, None)]);
    assert_eq!(ready.hard_state, None, "stepping down keeps the term");
    assert_eq!(c.status(1).role, Role::Follower);
}

/// Dissertation §4.2.3 (disruptive servers) and §6.2: a replica that heard from its leader
/// within the minimum election timeout ignores a vote request of a higher term: no answer,
/// no term change. The leader itself ignores it too. Once the lease is over, it votes.
#[test]
fn replicas_ignore_votes_within_the_leader_lease() {
    let mut c = Cluster::new(3, 0, strict(), 4);
    c.elect(1);
    c.notify_commit(1);
    for id in [1, 2] {
        c.g_mut(id).step(msg(3, id, 5, vote(false, 10, 1)));
        assert!(!c.g(id).has_ready(), "replica {id} answered");
        assert_eq!(c.status(id).term, 1);
    }
    assert_eq!(c.status(1).role, Role::Leader);

    // Replica 2 hears nothing for a minimum election timeout: the lease is over.
    for _ in 0..10 {
        c.g_mut(2).tick();
    }
    c.g_mut(2).ready(MAX, MAX);
    c.g_mut(2).step(msg(3, 2, 5, vote(false, 10, 1)));
    assert_eq!(
        c.g_mut(2).ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(5, Some(3), 1)),
            send_after_write: vec![msg(2, 3, 5, vote_resp(false, true))],
            events: vec![leader_changed(5, None)],
            ..Default::default()
        }
    );
}

/// Without PreVote or CheckQuorum the dissertation's rule (§4.2.3) stands alone: a replica
/// that heard its leader within the minimum election timeout ignores a vote request of a
/// higher term, a member's too. Once the timeout passed, it votes. Regression: applied to
/// non-members only, a removed replica deposed the leader through a member whose log was
/// too far behind to know of the removal, which took it for a voter and granted it
/// (simulator, seed 12008576).
#[test]
fn without_pre_vote_or_check_quorum_a_replica_hearing_its_leader_ignores_votes() {
    let config = Config {
        pre_vote: false,
        check_quorum: false,
        ..active()
    };
    let mut c = Cluster::new(3, 0, config, 4);
    c.elect(1);
    c.notify_commit(1);
    c.g_mut(2).step(msg(3, 2, 5, vote(false, 10, 1)));
    assert!(!c.g(2).has_ready(), "replica 2 answered");
    assert_eq!(c.status(2).term, 1);

    for _ in 0..10 {
        c.g_mut(2).tick();
    }
    c.g_mut(2).ready(MAX, MAX);
    c.g_mut(2).step(msg(3, 2, 5, vote(false, 10, 1)));
    assert_eq!(c.status(2).term, 5);
    let ready = c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        ready.send_after_write,
        vec![msg(2, 3, 5, vote_resp(false, true))]
    );
}

/// Stickiness protects the leader a replica hears, not one that an election already
/// replaced: a candidate whose last entry is of a later term than the replica's shows that a
/// leader of that term was elected, so the replica answers it, even within the lease (its
/// leader's lease ended before that election). Regression: a follower that missed its
/// leader leaving the group, and later leaders too, stayed silent to every candidate for as
/// long as that leader's node lived, and the group never elected (simulator pauses, seed
/// 421).
#[test]
fn a_candidate_with_an_entry_of_a_later_term_is_answered_within_the_lease() {
    let mut c = Cluster::new(3, 0, strict(), 4);
    c.elect(1);
    c.notify_commit(1);
    c.g_mut(2).step(msg(3, 2, 5, vote(true, 10, 1)));
    assert!(!c.g(2).has_ready(), "an entry of our term: no answer");
    c.g_mut(2).step(msg(3, 2, 5, vote(true, 10, 2)));
    assert_eq!(
        c.g_mut(2).ready(MAX, MAX).send_after_write,
        vec![msg(2, 3, 5, vote_resp(true, true))]
    );
    assert_eq!(c.status(2).term, 1, "a pre-vote changes no term");
}

/// §5.1: "If a server receives a request with a stale term number, it rejects the request",
/// and "if a candidate or leader discovers that its term is out of date, it immediately
/// reverts to follower state". The reply to a stale append carries the newer term, and the
/// stale leader steps down on it.
#[test]
fn reply_to_a_stale_leader_makes_it_step_down() {
    let mut g = restored(2, hs(3, None, 0), Vec::new());
    g.step(msg(1, 2, 1, append(0, 0, vec![], 0)));
    let ready = g.ready(MAX, MAX);
    assert_eq!(
        ready,
        ReplicaReady {
            send_after_write: vec![msg(2, 1, 3, MessageBody::HeartbeatResponse { round: 0 })],
            ..Default::default()
        }
    );
    g.step(msg(
        1,
        2,
        1,
        MessageBody::Heartbeat {
            commit: 0,
            round: 0,
        },
    ));
    assert_eq!(
        g.ready(MAX, MAX).send_after_write,
        ready.send_after_write,
        "a stale heartbeat gets the same answer"
    );

    let mut c = Cluster::new(3, 0, strict(), 5);
    c.elect(1);
    c.g_mut(1).step(ready.send_after_write[0].clone());
    let s = c.status(1);
    assert_eq!((s.role, s.term, s.leader), (Role::Follower, 3, None));
    let stepped_down = c.g_mut(1).ready(MAX, MAX);
    assert_eq!(stepped_down.hard_state, Some(hs(3, None, 1)));
    assert_eq!(stepped_down.events, vec![leader_changed(3, None)]);
}

/// docs/design.md §4.3: a follower whose leader's node is live does not campaign when its
/// election timer runs out — the leader's heartbeats are late, not lost, as when the
/// leader's node is overloaded — until `DEFERRED_TIMEOUTS` maximum timeouts have passed; once
/// the leader's node is down, it campaigns at its next tick.
#[test]
fn a_follower_whose_leaders_node_is_live_holds_back_its_campaign() {
    let active = active();
    let bound = active.election_timeout_max_ticks * DEFERRED_TIMEOUTS;
    let mut c = Cluster::new(3, 0, active.clone(), 5);
    c.elect(1);
    let leader_live = |node: NodeId| node == n(1);
    for tick in 1..bound {
        c.g_mut(3).tick_with(leader_live);
        if c.g(3).has_ready() {
            // Nothing but its question to its leader (`MessageBody::Unheard`).
            let ready = c.g_mut(3).ready(MAX, MAX);
            assert_eq!(ready.hard_state, None, "tick {tick}");
            assert_eq!(ready.send_now, vec![], "tick {tick}");
            for m in &ready.send_after_write {
                let asks =
                    matches!(m.body, MessageBody::Unheard { replica, .. } if replica == n(3));
                assert!(m.to == n(1) && asks, "tick {tick}: {m:?}");
            }
        }
    }
    assert_eq!(c.status(3).role, Role::Follower);
    assert_eq!(c.status(3).leader, Some(n(1)));
    c.g_mut(3).tick_with(|_| false);
    assert_eq!(c.status(3).role, Role::PreCandidate, "leader's node down");

    // The bound: a live node that no longer hosts the leader (its group removed there by
    // hand) is waited for `bound` ticks, then the follower campaigns regardless.
    let mut c = Cluster::new(3, 0, active, 5);
    c.elect(1);
    for _ in 1..bound {
        c.g_mut(3).tick_with(leader_live);
    }
    assert_eq!(c.status(3).role, Role::Follower);
    c.g_mut(3).tick_with(leader_live);
    assert_eq!(
        c.status(3).role,
        Role::PreCandidate,
        "campaigns at the bound"
    );
}

/// Replica 3 asks replica 2 for a pre-vote at term 2, as up to date as replica 2: what
/// replica 2 answers (nothing, while it refuses; its own questions to its leader,
/// `MessageBody::Unheard`, are no answer).
fn ask_for_pre_vote(c: &mut Cluster) -> Vec<Message> {
    let last = c.g_mut(2).status().last_index;
    c.g_mut(2).step(msg(3, 2, 2, vote(true, last, 1)));
    let mut sent = c.g_mut(2).ready(MAX, MAX).send_after_write;
    sent.retain(|m| m.to == n(3));
    sent
}

/// A follower that holds back its own campaign refuses other candidates for as long: its
/// leader's heartbeats are late, not lost, and a vote would depose a busy leader as surely as
/// a campaign (docs/design.md §4.3). Once its node finds the leader's node down, or the
/// bound passes, it answers as usual.
#[test]
fn a_follower_holding_back_refuses_other_candidates_until_its_leaders_node_is_down() {
    let leader_live = |node: NodeId| node == n(1);
    let mut c = Cluster::new(3, 0, strict(), 6);
    c.elect(1);
    for _ in 0..strict().election_timeout_max_ticks {
        c.g_mut(2).tick_with(leader_live);
    }
    assert_eq!(c.status(2).role, Role::Follower);
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![],
        "answered while its leader's node is live"
    );
    c.g_mut(2).on_node_down(n(1));
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![msg(2, 3, 2, vote_resp(true, true))]
    );

    // The bound: a live node that no longer hosts the leader is not waited for forever.
    let active = active();
    let bound = active.election_timeout_max_ticks * DEFERRED_TIMEOUTS;
    let mut c = Cluster::new(3, 0, active, 6);
    c.elect(1);
    for _ in 1..bound {
        c.g_mut(2).tick_with(leader_live);
    }
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![],
        "answered before the bound"
    );
    c.g_mut(2).tick_with(leader_live);
    assert_eq!(
        c.status(2).role,
        Role::PreCandidate,
        "campaigns at the bound"
    );
}

/// A restarted follower refuses every vote until an election timeout passed or it hears a
/// leader, whom it then backs as any follower does: once that leader's node is found down,
/// it answers the next candidate at once. Regression (review): its restart's refusal held
/// for as long as it heard the leader (the timer that would end it restarts at every
/// heartbeat), and when that leader's node died it refused the successor's pre-vote until
/// its own timer ran out, an election timeout later than designed.
#[test]
fn a_restarted_follower_that_heard_its_leader_answers_once_the_leaders_node_is_down() {
    let mut c = Cluster::new(3, 0, strict(), 6);
    c.elect(1);
    let config = Arc::new(strict());
    c.groups[1] = Replica::restore(n(2), c.loaded(2), config, 62).unwrap();
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![],
        "answered right after its restart"
    );
    c.notify_commit(1);
    assert_eq!(c.status(2).leader, Some(n(1)));
    assert!(c.status(2).term >= 1);
    c.g_mut(2).on_node_down(n(1));
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![msg(2, 3, 2, vote_resp(true, true))]
    );
}

/// Three voters, 1 elected and left alone until the group went quiet (replica 2 quiesced).
fn quiesced(seed: u64) -> Cluster {
    let mut c = Cluster::new(3, 0, strict(), seed);
    c.elect(1);
    c.tick_leader_until_quiesced(2);
    c
}

/// Leader 1's quiesce notice to replica 2, in `term`, telling commit index `commit`.
fn quiesce_notice(term: u64, commit: u64) -> Message {
    msg(1, 2, term, MessageBody::Quiesce { commit, round: 0 })
}

/// A refusal by the leader, as not the leader, of proposals forwarded at `echo`.
fn refused_as_not_leader(echo: u64) -> Message {
    msg(
        1,
        2,
        echo,
        MessageBody::ProposeRejected {
            ids: vec![pid(2, 1)],
            leader_hint: None,
            reason: crate::message::Refusal::NotLeader,
        },
    )
}

/// A follower holding back for its leader's live node stops once that leader refuses, as
/// not the leader, proposals forwarded at the follower's term: it answers other candidates,
/// and campaigns at its next tick. A refusal echoing an earlier term changes nothing, even
/// past the timeout: it may be from before this leadership. Regression: simulator, seeds
/// 7009305, 7010494 and 7011289 (a leader that removed itself; a follower that missed the
/// change kept waiting on it).
#[test]
fn a_follower_stops_holding_back_once_its_leader_says_it_does_not_lead() {
    let leader_live = |node: NodeId| node == n(1);
    let mut c = Cluster::new(3, 0, strict(), 6);
    c.elect(1);
    let term = c.status(2).term;
    assert!(term > 0);
    for _ in 0..strict().election_timeout_max_ticks {
        c.g_mut(2).tick_with(leader_live);
    }
    c.g_mut(2).step(refused_as_not_leader(term - 1));
    c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![],
        "a refusal of an earlier term changed something"
    );
    assert_eq!(c.status(2).leader, Some(n(1)));

    c.g_mut(2).step(refused_as_not_leader(term));
    c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![msg(2, 3, 2, vote_resp(true, true))]
    );
    c.g_mut(2).tick_with(leader_live);
    assert_eq!(
        c.status(2).role,
        Role::PreCandidate,
        "campaigns at its next tick"
    );
}

/// A follower whose leader said the group went quiet keeps its timer stopped while the
/// leader's node lives, and so refuses other candidates for as long; the leader's refusal of
/// a forward of this term ends that too, at once. Regression: simulator, seed 7022963 (the
/// quiesced leader removed itself; a follower that missed the change refused every
/// candidate, and the leader's refusals, carrying no term then, counted only past an
/// election timeout the follower's stopped timer never reached).
#[test]
fn a_quiesced_leaders_refusal_of_this_term_ends_the_followers_wait() {
    let leader_live = |node: NodeId| node == n(1);
    let mut c = Cluster::new(3, 0, strict(), 6);
    c.elect(1);
    let (term, last) = (c.status(2).term, c.status(2).last_index);
    c.g_mut(2).step(quiesce_notice(term, last));
    c.g_mut(2).ready(MAX, MAX);
    assert!(c.g(2).is_quiesced());
    // A client's proposal wakes it; it forwards the proposal to its leader.
    c.g_mut(2)
        .propose(pid(2, 1), Bytes::from_static(b"x"))
        .expect("forwarded");
    let forwarded = c.g_mut(2).ready(MAX, MAX);
    assert!(!c.g(2).is_quiesced());
    assert!(
        forwarded
            .send_now
            .iter()
            .chain(&forwarded.send_after_write)
            .any(|m| m.term == term && matches!(m.body, MessageBody::Propose { .. })),
        "forwarded at its term"
    );
    for _ in 0..4 * strict().election_timeout_max_ticks {
        c.g_mut(2).tick_with(leader_live);
    }
    assert_eq!(c.status(2).role, Role::Follower);
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![],
        "answered while its quiet leader's node lives"
    );

    c.g_mut(2).step(refused_as_not_leader(term));
    c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        ask_for_pre_vote(&mut c),
        vec![msg(2, 3, 2, vote_resp(true, true))]
    );
}

/// Once its leader of this term refused a forward of this term as not the leader, that
/// leader's messages of this term arriving later (reordered behind the refusal) are stale:
/// a late append does not make it the follower's leader again, nor a late quiesce notice
/// stop the follower's timer, and the follower campaigns within an election timeout
/// although the old leader's node lives. Regression (review): the late append restarted
/// the holding back for up to `DEFERRED_TIMEOUTS` election timeouts, and the late notice
/// quiesced the follower for as long as the old leader's node lived.
#[test]
fn a_disowned_leaders_late_messages_change_nothing() {
    let leader_live = |node: NodeId| node == n(1);
    let mut c = Cluster::new(3, 0, strict(), 6);
    c.elect(1);
    let (term, last) = (c.status(2).term, c.status(2).last_index);
    let last_term = c.g(2).log.last_term();
    c.g_mut(2).step(refused_as_not_leader(term));
    c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        c.status(2).leader,
        None,
        "the refusal ends the leadership here"
    );
    c.g_mut(2)
        .step(msg(1, 2, term, append(last, last_term, vec![], last)));
    c.g_mut(2).step(quiesce_notice(term, last));
    c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        c.status(2).leader,
        None,
        "a late message made it leader again"
    );
    assert!(!c.g(2).is_quiesced());
    for _ in 0..strict().election_timeout_max_ticks {
        c.g_mut(2).tick_with(leader_live);
    }
    assert_eq!(c.status(2).role, Role::PreCandidate, "campaigned");
}

/// A follower that answered its leader's round holds its vote for that leader (the
/// leader's lease reads count on it): a late answer of a later term from another replica —
/// here a candidate's refusal of a pre-vote the follower asked for before it heard the
/// leader again — changes neither its term nor its leader, and the candidate's vote request
/// still gets no answer. The leader itself telling a later term is still taken. Regression
/// (review): the follower adopted the candidate's term without a leader and granted it the
/// vote, while the old leader's lease still counted the follower.
#[test]
fn a_late_answer_of_a_later_term_does_not_end_the_lease() {
    let mut c = Cluster::new(3, 0, active(), 8);
    c.elect(1);
    let (term, last) = (c.status(2).term, c.status(2).last_index);
    c.g_mut(2).step(msg(3, 2, term + 1, vote_resp(true, false)));
    c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        (c.status(2).term, c.status(2).leader),
        (term, Some(n(1))),
        "the late answer ended the lease"
    );
    c.g_mut(2)
        .step(msg(3, 2, term + 1, vote(false, last, term)));
    let answers = c.g_mut(2).ready(MAX, MAX).send_after_write;
    assert!(answers.is_empty(), "answered a candidate: {answers:?}");

    c.g_mut(2).step(msg(
        1,
        2,
        term + 2,
        MessageBody::HeartbeatResponse { round: 0 },
    ));
    c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        c.status(2).term,
        term + 2,
        "the leader's news of a later term"
    );
}

/// An append that left before the quiesce notice and arrives after it brings nothing new:
/// the follower answers it but keeps its timer stopped while its quiet leader's node lives,
/// so it goes on refusing candidates — the quiesced leader's lease counts on it. Regression
/// (review): the late append restarted the timer, and once the holding back ran out
/// (`DEFERRED_TIMEOUTS` election timeouts) the follower answered candidates while the
/// leader's lease still counted it.
#[test]
fn a_late_append_keeps_a_quiet_followers_timer_stopped() {
    let mut c = quiesced(6);
    let (term, last) = (c.status(2).term, c.status(2).last_index);
    let late = c.log(2).pop().expect("an entry");
    let prev_term = c.g(2).log.term(last - 1).expect("held");
    c.g_mut(2).step(msg(
        1,
        2,
        term,
        append(last - 1, prev_term, vec![late], last - 1),
    ));
    let answer = c.g_mut(2).ready(MAX, MAX).send_after_write;
    assert!(
        matches!(
            answer[..],
            [Message {
                body: MessageBody::AppendResponse { success: true, .. },
                ..
            }]
        ),
        "answered: {answer:?}"
    );
    keeps_refusing_candidates(&mut c);
}

/// Replica 2, quiet under leader 1 whose node lives, goes on refusing candidates for longer
/// than its holding back lasts (`DEFERRED_TIMEOUTS` election timeouts): its timer is
/// stopped.
fn keeps_refusing_candidates(c: &mut Cluster) {
    let leader_live = |node: NodeId| node == n(1);
    for _ in 0..(DEFERRED_TIMEOUTS + 2) * strict().election_timeout_max_ticks {
        c.g_mut(2).tick_with(leader_live);
    }
    assert_eq!(c.status(2).role, Role::Follower);
    assert_eq!(ask_for_pre_vote(c), vec![], "answered a candidate");
}

/// A snapshot chunk of what the follower already holds, arriving after the quiesce notice
/// (late or duplicated), keeps its timer stopped as such an append does. Regression
/// (review): it restarted the timer, and the follower answered candidates while the
/// quiesced leader's lease still counted it.
#[test]
fn a_late_snapshot_chunk_keeps_a_quiet_followers_timer_stopped() {
    let mut c = quiesced(6);
    let (term, commit) = (c.status(2).term, c.status(2).commit);
    let late = super::snapshots::chunk(commit, term, 0, true);
    c.g_mut(2).step(msg(1, 2, term, late));
    c.g_mut(2).ready(MAX, MAX);
    keeps_refusing_candidates(&mut c);
}

/// docs/design.md §4.3: CheckQuorum counts a follower whose node is live as active, so a
/// leader whose followers' answers wait behind their busy nodes keeps leading; with their
/// nodes down it steps down as before.
#[test]
fn check_quorum_counts_followers_on_live_nodes() {
    let mut c = Cluster::new(3, 0, active(), 7);
    c.elect(1);
    c.isolated.insert(n(1));
    let followers_live = |node: NodeId| node == n(2) || node == n(3);
    for _ in 0..100 {
        c.g_mut(1).tick_with(followers_live);
    }
    assert_eq!(c.status(1).role, Role::Leader, "followers' nodes live");
    let mut ticks = 0;
    while c.status(1).role == Role::Leader {
        c.g_mut(1).tick_with(|_| false);
        ticks += 1;
        assert!(
            ticks <= 20,
            "still leading {ticks} ticks after the nodes went down"
        );
    }
}

/// A leader deposed by a later term tells its followers that term, so that they stop
/// following it: otherwise a follower holding back for its leader's live node refused the
/// candidate that deposed it, while the old leader, now granting that candidate its vote,
/// never campaigned itself, and the group had no leader for `DEFERRED_TIMEOUTS` election
/// timeouts. Regression: simulator, seed 7003456.
#[test]
fn a_deposed_leader_tells_its_followers_the_term_that_deposed_it() {
    let active = active();
    let mut c = Cluster::new(3, 0, active.clone(), 7);
    c.elect(1);
    let (term, last) = (c.status(1).term, c.status(1).last_index);
    let leader_live = |node: NodeId| node == n(1);
    for _ in 0..active.election_timeout_max_ticks {
        c.g_mut(2).tick_with(leader_live);
    }
    assert_eq!(
        c.status(2).leader,
        Some(n(1)),
        "holding back for its leader"
    );

    // Replica 3 campaigned alone (a partition) up to a later term; its answer to the
    // leader's next heartbeat deposes it.
    c.g_mut(1).step(msg(
        3,
        1,
        term + 5,
        MessageBody::HeartbeatResponse { round: 0 },
    ));
    assert_eq!(c.status(1).role, Role::Follower);
    let told = c.g_mut(1).ready(MAX, MAX).send_after_write;
    let notice = msg(1, 2, term + 5, MessageBody::HeartbeatResponse { round: 0 });
    assert!(told.contains(&notice), "followers told: {told:?}");

    c.g_mut(2).step(notice);
    assert_eq!((c.status(2).term, c.status(2).leader), (term + 5, None));
    c.g_mut(2).ready(MAX, MAX);
    c.g_mut(2)
        .step(msg(3, 2, term + 6, vote(false, last, term)));
    assert_eq!(
        c.g_mut(2).ready(MAX, MAX).send_after_write,
        vec![msg(2, 3, term + 6, vote_resp(false, true))],
        "the candidate gets the vote"
    );
}

/// The deposed leader's notice wakes a quiesced follower: a later term is news, not the
/// tail of going quiet, and a quiesced follower with no leader would never campaign. An
/// answer of the same term still wakes nothing.
#[test]
fn a_later_terms_heartbeat_answer_wakes_a_quiesced_follower() {
    for (later, wakes) in [(1, true), (0, false)] {
        let mut c = quiesced(8);
        let term = c.status(2).term + later;
        // From the deposed leader itself: another replica's answer of a later term is no
        // news while the follower holds its vote for its leader
        // (`a_late_answer_of_a_later_term_does_not_end_the_lease`).
        c.g_mut(2)
            .step(msg(1, 2, term, MessageBody::HeartbeatResponse { round: 0 }));
        assert_eq!(!c.g(2).is_quiesced(), wakes, "an answer of term {term}");
        assert_eq!(c.status(2).term, term);
    }
}

/// A follower keeps taking this term's leader messages from a node whose restart it sees:
/// the restart may be seen only after the new life was elected in this term and followed.
/// Regression: dropping them (`LeaderSaid::Stopped`) left a learner deaf to its leader for
/// good (simulator, seed 15012724); nor may a follower that merely voted for the restarted
/// node drop another leader's messages of the term (seed 15007803).
#[test]
fn a_follower_still_hears_the_terms_leader_after_a_restart_is_seen() {
    let mut g = restored(2, hs(22, None, 0), log_of(&[1]));
    g.step(msg(1, 2, 22, append(1, 1, Vec::new(), 1)));
    assert_eq!(g.leadership(), (22, Some(n(1))));
    g.on_node_restarted(n(1));
    g.step(msg(1, 2, 22, append(1, 1, vec![e(2, 22)], 1)));
    assert_eq!(g.leadership(), (22, Some(n(1))));
    assert_eq!(g.status().last_index, 2);

    let mut voter = restored(2, hs(8, Some(3), 0), log_of(&[1]));
    voter.on_node_restarted(n(3));
    voter.step(msg(1, 2, 8, append(1, 1, vec![e(2, 8)], 1)));
    assert_eq!(voter.leadership(), (8, Some(n(1))));
    assert_eq!(voter.status().last_index, 2);
}

/// A replica that gets an answer, at its term, to appends of a leadership it does not hold
/// (its node's last life's, or its own before it stepped down) tells the sender it does not
/// lead; the sender, which took it for leader, disowns it and stops waiting on its live
/// node. Regression: a leader crashed right after its election, its append arrived after
/// its restart was seen by a follower that had only voted for it, and that follower waited
/// on the new life for good (simulator, seed 14019315).
#[test]
fn an_answer_to_a_leadership_not_held_is_refused_and_the_sender_disowns_it() {
    // Node 3's new life: a follower in term 8, with no leader.
    let mut new_life = restored(3, hs(8, Some(3), 0), log_of(&[1]));
    new_life.step(msg(2, 3, 8, ack(2)));
    let refusal = new_life.ready(MAX, MAX).send_now;
    let expected = MessageBody::ProposeRejected {
        ids: Vec::new(),
        leader_hint: None,
        reason: crate::message::Refusal::NotLeader,
    };
    assert_eq!(refusal, vec![msg(3, 2, 8, expected.clone())]);

    // Node 2 took node 3 for leader on its last life's late append.
    let mut follower = restored(2, hs(8, Some(3), 0), log_of(&[1]));
    follower.step(msg(3, 2, 8, append(1, 1, vec![e(2, 8)], 1)));
    assert_eq!(follower.leadership(), (8, Some(n(3))));
    follower.step(msg(3, 2, 8, expected));
    assert_eq!(follower.leadership(), (8, None), "disowned");
}
