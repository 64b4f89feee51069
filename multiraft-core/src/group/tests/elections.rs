//! Elections: randomized timeouts and what resets them, vote requests and grants, the
//! persistence a vote needs, and election safety under a lossy network (Raft §5.2, §5.4.1,
//! Figure 2; IO rules 1 and 2).

use super::*;

// ----- elections: timeouts ------------------------------------------------------------------

/// §5.2: "election timeouts are chosen randomly from a fixed interval". A follower that hears
/// nothing campaigns after a timeout in `[election_timeout_min_ticks, election_timeout_max_ticks)`,
/// and different seeds pick different timeouts (which is what keeps split votes rare).
#[test]
fn election_timeout_fires_within_the_randomized_range() {
    let mut seen = BTreeSet::new();
    for seed in 0..64 {
        let mut g = fresh(1, seed);
        let ticks = ticks_until_ready(&mut g);
        assert!(
            (10..20).contains(&ticks),
            "seed {seed}: fired after {ticks}"
        );
        seen.insert(ticks);
        // What fired is a campaign (a pre-vote, dissertation §9.6) for term 1.
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
    }
    assert!(seen.len() >= 6, "too few distinct timeouts: {seen:?}");
}

/// §5.2 (randomized timeouts) and docs/design.md §9.1 (deterministic core): the timeout is a
/// function of the seed only, so a run can be replayed; distinct seeds give distinct timeouts; and
/// a re-armed timer is randomized again rather than repeating the first value.
#[test]
fn election_timeout_is_a_function_of_the_seed() {
    let first: Vec<u32> = (0..16)
        .map(|s| ticks_until_ready(&mut fresh(1, s)))
        .collect();
    let again: Vec<u32> = (0..16)
        .map(|s| ticks_until_ready(&mut fresh(1, s)))
        .collect();
    assert_eq!(first, again);
    assert!(first.iter().collect::<BTreeSet<_>>().len() > 1);

    // Successive timeouts of one replica vary too.
    let mut g = fresh(1, 3);
    let successive: Vec<u32> = (0..12)
        .map(|_| {
            let t = ticks_until_ready(&mut g);
            g.ready(MAX, MAX);
            t
        })
        .collect();
    assert!(successive.iter().all(|t| (10..20).contains(t)));
    assert!(successive.iter().collect::<BTreeSet<_>>().len() > 1);
}

// ----- elections: votes ---------------------------------------------------------------------

/// §5.2 with dissertation §9.6 and IO rule 1: a pre-candidate asks without changing its term;
/// once a majority would vote for it, it becomes a candidate whose new term and own vote are
/// in the ready's hard state, and whose vote requests wait for that write
/// (`send_after_write`). Winning appends a no-op and sends it at once (`send_now`,
/// dissertation §10.2.1).
#[test]
fn candidate_persists_its_own_vote_before_asking_for_votes() {
    let mut g = fresh(1, 5);
    ticks_until_ready(&mut g);
    g.ready(MAX, MAX);
    assert_eq!(g.status().role, Role::PreCandidate);
    assert_eq!(g.status().term, 0);

    g.step(msg(2, 1, 1, vote_resp(true, true)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, Some(1), 0)),
            send_after_write: vec![
                msg(1, 2, 1, vote(false, 0, 0)),
                msg(1, 3, 1, vote(false, 0, 0)),
            ],
            ..Default::default()
        }
    );

    g.step(msg(3, 1, 1, vote_resp(false, true)));
    assert_eq!(
        g.ready(MAX, MAX),
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
}

/// Figure 2 ("Persistent state on all servers, updated on stable storage before responding
/// to RPCs") and IO rule 1: the grant travels in `send_after_write` of the very ready whose
/// hard state records the vote, never in `send_now`.
#[test]
fn vote_grant_waits_for_the_hard_state_that_records_it() {
    let mut g = fresh(1, 1);
    g.step(msg(2, 1, 1, vote(false, 0, 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, Some(2), 0)),
            send_after_write: vec![msg(1, 2, 1, vote_resp(false, true))],
            events: vec![leader_changed(1, None)],
            ..Default::default()
        }
    );
}

/// §5.2: "each server will vote for at most one candidate in a given term, on a
/// first-come-first-served basis". A repeated request from the same candidate is granted
/// again (it may have lost the first answer); another candidate is refused.
#[test]
fn at_most_one_vote_per_term() {
    let mut g = fresh(1, 1);
    g.step(msg(2, 1, 1, vote(false, 0, 0)));
    g.ready(MAX, MAX);

    g.step(msg(3, 1, 1, vote(false, 0, 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            send_after_write: vec![msg(1, 3, 1, vote_resp(false, false))],
            ..Default::default()
        }
    );

    g.step(msg(2, 1, 1, vote(false, 0, 0)));
    let again = g.ready(MAX, MAX);
    assert_eq!(
        again.send_after_write,
        vec![msg(1, 2, 1, vote_resp(false, true))]
    );
    assert_eq!(g.status().vote, Some(n(2)));
}

/// Figure 2 (RequestVote: "reply false if term < currentTerm", with currentTerm "for
/// candidate to update itself"): a stale candidate's vote request is refused in our term,
/// and the candidate adopts it. Ignoring it deadlocked a group in the simulator (seed
/// 13142): the only other live voter had a stale membership without the candidate, so it
/// never asked the candidate for a vote, and stayed a few terms ahead by campaigning.
#[test]
fn a_stale_candidate_is_refused_in_the_higher_term_and_adopts_it() {
    let mut g = fresh(1, 1);
    g.step(msg(2, 1, 5, vote(false, 0, 0)));
    g.ready(MAX, MAX);
    g.step(msg(3, 1, 3, vote(false, 0, 0)));
    assert_eq!(
        g.ready(MAX, MAX).send_after_write,
        vec![msg(1, 3, 5, vote_resp(false, false))]
    );

    let mut candidate = fresh(3, 3);
    candidate.step(msg(1, 3, 5, vote_resp(false, false)));
    assert_eq!(candidate.status().term, 5);
    assert_eq!(candidate.status().role, Role::Follower);
}

/// The other side of the rule above: a candidate refused in a higher term adopts it but
/// keeps its election timer, as for a vote request it refuses (seed 182). Resetting it let
/// replicas with stale logs, which cannot win, hold back with their refusals the one that
/// can (simulator, seeds 286 and 389).
#[test]
fn a_refusal_in_a_higher_term_does_not_reset_the_election_timer() {
    let config = Config {
        pre_vote: false,
        check_quorum: false,
        ..strict()
    };
    let mut g = Replica::new(G, n(1), Membership::voters([1, 2, 3]), Arc::new(config), 1).unwrap();
    let mut first_campaign = None;
    for tick in 1..=60 {
        g.tick();
        let campaigned = g
            .ready(MAX, MAX)
            .send_after_write
            .iter()
            .any(|m| matches!(m.body, MessageBody::Vote { .. }));
        match (first_campaign, campaigned) {
            (None, true) => first_campaign = Some(tick),
            (Some(first), true) => {
                assert!(
                    tick - first <= 21,
                    "campaigned again only {} ticks later",
                    tick - first
                );
                return;
            }
            _ => {}
        }
        if first_campaign.is_some() {
            // Replica 2 refuses it in a higher term, every tick.
            let higher = g.status().term + 1;
            g.step(msg(2, 1, higher, vote_resp(false, false)));
        }
    }
    panic!("never campaigned twice");
}

/// Figure 2 (`votedFor` is persistent) and §5.2: a vote outlives a restart. A replica
/// restored from the hard state its ready asked to persist refuses a second candidate of the
/// same term.
#[test]
fn vote_survives_restart() {
    let mut g = fresh(1, 1);
    g.step(msg(2, 1, 1, vote(false, 0, 0)));
    let ready = g.ready(MAX, MAX);
    let persisted = ready.hard_state.expect("the vote is persisted");

    let mut g = restored(1, persisted, Vec::new());
    assert_eq!(g.status().vote, Some(n(2)));
    g.step(msg(3, 1, 1, vote(false, 0, 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            send_after_write: vec![msg(1, 3, 1, vote_resp(false, false))],
            ..Default::default()
        }
    );
}

/// §5.4.1: "If the logs have last entries with different terms, then the log with the later
/// term is more up-to-date." A longer log ending in an older term loses; a shorter log ending
/// in a newer term wins.
#[test]
fn vote_compares_last_terms_before_lengths() {
    let mut g = restored(1, hs(2, None, 0), log_of(&[1, 2]));
    g.step(msg(2, 1, 3, vote(false, 5, 1)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(3, None, 0)),
            send_after_write: vec![msg(1, 2, 3, vote_resp(false, false))],
            events: vec![leader_changed(3, None)],
            ..Default::default()
        }
    );

    g.step(msg(3, 1, 3, vote(false, 1, 3)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(3, Some(3), 0)),
            send_after_write: vec![msg(1, 3, 3, vote_resp(false, true))],
            ..Default::default()
        }
    );
}

/// §5.4.1: "If the logs end with the same term, then whichever log is longer is more
/// up-to-date." A shorter log with the same last term is refused; an equal one is granted.
#[test]
fn vote_with_equal_last_terms_compares_lengths() {
    let mut g = restored(1, hs(2, None, 0), log_of(&[1, 2, 2]));
    g.step(msg(2, 1, 3, vote(false, 2, 2)));
    assert_eq!(
        g.ready(MAX, MAX).send_after_write,
        vec![msg(1, 2, 3, vote_resp(false, false))]
    );
    g.step(msg(3, 1, 3, vote(false, 3, 2)));
    assert_eq!(
        g.ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(3, Some(3), 0)),
            send_after_write: vec![msg(1, 3, 3, vote_resp(false, true))],
            ..Default::default()
        }
    );
}

/// Figure 3, Election Safety: "at most one leader can be elected in a given term" (§5.2);
/// with State Machine Safety (§5.4.3) and Log Matching (§5.3) checked at the end. Five
/// replicas with short, close timeouts (so elections collide), no PreVote or CheckQuorum (so
/// nothing damps them), changing partitions, messages delivered in random order and one in
/// five lost, proposals at every leader each round.
#[test]
fn election_safety_under_loss_reordering_and_partitions() {
    let config = Config {
        pre_vote: false,
        check_quorum: false,
        election_timeout_min_ticks: 4,
        election_timeout_max_ticks: 7,
        heartbeat_interval_ticks: 1,
        // Within the shorter election timeout, as `Config::validate` asks.
        lease_ticks: 2,
        ..strict()
    };
    let mut terms_with_leader = 0;
    let mut commands_applied = 0;
    for seed in 0..12 {
        let mut c = Cluster::new(5, 0, config.clone(), seed);
        let mut rng = Rng::new(seed ^ 0x5EED);
        let mut leader_of: BTreeMap<u64, NodeId> = BTreeMap::new();
        let mut seq = 0;
        for round in 0..250 {
            if round % 30 == 0 {
                c.isolated = (1..=5)
                    .filter(|_| rng.next_u64().is_multiple_of(4))
                    .map(n)
                    .collect();
            }
            c.tick_all();
            for g in &mut c.groups {
                if g.status().role == Role::Leader {
                    seq += 1;
                    g.propose(pid(9, seq), Bytes::from_static(b"x")).unwrap();
                }
            }
            for _ in 0..100_000 {
                c.collect();
                for s in c.groups.iter().map(Replica::status) {
                    if s.role == Role::Leader {
                        let first = *leader_of.entry(s.term).or_insert(s.leader.unwrap());
                        assert_eq!(
                            first,
                            s.leader.unwrap(),
                            "seed {seed}: two leaders in term {}",
                            s.term
                        );
                    }
                }
                if c.queue.is_empty() {
                    break;
                }
                let i = (rng.next_u64() % c.queue.len() as u64) as usize;
                let m = c.queue.remove(i).unwrap();
                if rng.next_u64().is_multiple_of(5) {
                    c.sent.push(m); // lost
                } else {
                    c.deliver(m);
                }
            }
        }
        // Every replica applied a prefix of one sequence, consecutive from index 1.
        let longest = c.applied.iter().max_by_key(|a| a.len()).unwrap().clone();
        for (i, applied) in c.applied.iter().enumerate() {
            assert_eq!(
                applied[..],
                longest[..applied.len()],
                "seed {seed}: replica {}",
                i + 1
            );
        }
        assert!(longest.iter().zip(1..).all(|(e, i)| e.index == i));
        // Committed prefixes agree.
        for a in 1..=5 {
            for b in 1..=5 {
                let k = c.status(a).commit.min(c.status(b).commit);
                assert_eq!(c.g(a).entries(1, k + 1), c.g(b).entries(1, k + 1));
            }
        }
        terms_with_leader += leader_of.len();
        commands_applied += longest.len();
    }
    // Not vacuous: many elections happened and much was committed.
    assert!(
        terms_with_leader >= 12 * 4,
        "only {terms_with_leader} terms had leaders"
    );
    assert!(
        commands_applied >= 12 * 50,
        "only {commands_applied} entries applied"
    );
}

/// Raft Figure 2 (Rules for Servers, Followers): the election timer is reset by hearing from
/// the current leader or by granting a vote, not by adopting the higher term of a vote
/// request that is rejected. Bug story: the testkit simulator (seed 182: no PreVote, clock
/// skew) found groups with no leader for good, because a replica with a stale log whose
/// clock ran fast campaigned every ~5 nominal ticks, and each of its rejected requests reset
/// the up-to-date replicas' timers (10–20 ticks) before they could ever fire.
#[test]
fn rejected_higher_term_vote_requests_do_not_reset_the_election_timer() {
    let config = Config {
        pre_vote: false,
        check_quorum: false,
        ..strict()
    };
    let loaded = LoadedGroup {
        group: G,
        membership: Membership::voters([1, 2, 3]),
        hard_state: hs(1, None, 2),
        compacted: None,
        snapshot: None,
        entries: log_of(&[1, 1]),
    };
    let mut g = Replica::restore(n(1), loaded, Arc::new(config), 1).unwrap();
    let mut term = 1;
    for tick in 1..=40 {
        if tick % 5 == 0 {
            // Replica 2's log (last 1/1) is behind ours (2/1): its requests are rejected.
            term += 1;
            g.step(msg(2, 1, term, vote(false, 1, 1)));
        }
        g.tick();
        let ready = g.ready(MAX, MAX);
        let campaigned = ready
            .send_after_write
            .iter()
            .any(|m| m.from == n(1) && matches!(m.body, MessageBody::Vote { .. }));
        if campaigned {
            assert!(tick < 20, "campaigned only after {tick} ticks");
            return;
        }
        assert!(
            ready
                .send_after_write
                .iter()
                .all(|m| m.body == vote_resp(false, false)),
            "{ready:?}"
        );
    }
    panic!("replica 1 never campaigned while a stale candidate kept raising the term");
}

/// Ticks `g` until it asks for votes; how many ticks that took.
fn ticks_until_campaign(g: &mut Replica, limit: u32) -> Option<u32> {
    (1..=limit).find(|_| {
        g.tick();
        g.ready(MAX, MAX)
            .send_after_write
            .iter()
            .any(|m| matches!(m.body, MessageBody::Vote { .. }))
    })
}

/// A replica that refuses a candidate whose log is more up to date than its own — it voted
/// for itself in that term, or the request's term was behind — puts off its own campaign to
/// between one and two maximum timeouts (20 + [10, 20) ticks), so that the candidate asks
/// again first, at a term this replica has not voted in. Regression: simulator, seed
/// 7011887 (without PreVote, a replica whose clock ran fast and whose membership no longer
/// held the up-to-date candidate kept campaigning one term ahead of it for good).
#[test]
fn a_replica_refusing_a_more_up_to_date_candidate_puts_off_its_own_campaign() {
    let config = Arc::new(Config {
        pre_vote: false,
        check_quorum: false,
        ..strict()
    });
    for seed in 0..8 {
        // In the term it voted for itself in.
        let mut g =
            Replica::new(G, n(1), Membership::voters([1, 2, 3]), config.clone(), seed).unwrap();
        ticks_until_campaign(&mut g, 20).expect("campaigns");
        let term = g.status().term;
        g.step(msg(3, 1, term, vote(false, 5, term)));
        assert_eq!(
            g.ready(MAX, MAX).send_after_write,
            vec![msg(1, 3, term, vote_resp(false, false))]
        );
        let again = ticks_until_campaign(&mut g, 40).expect("campaigns again");
        assert!(
            again >= 30,
            "seed {seed}: campaigned again after {again} ticks"
        );

        // In a later term than the request's.
        let mut g =
            Replica::new(G, n(1), Membership::voters([1, 2, 3]), config.clone(), seed).unwrap();
        g.step(msg(2, 1, 5, vote_resp(false, false)));
        g.step(msg(3, 1, 3, vote(false, 5, 3)));
        assert_eq!(
            g.ready(MAX, MAX).send_after_write,
            vec![msg(1, 3, 5, vote_resp(false, false))]
        );
        let first = ticks_until_campaign(&mut g, 40).expect("campaigns");
        assert!(first >= 30, "seed {seed}: campaigned after {first} ticks");
    }
}

/// The group layer used alone refuses a config `Config::validate` refuses, with a typed
/// error. Regression (review): only `Node::new` validated, and a replica made with equal
/// election timeouts panicked at once (a remainder by zero drawing its timeout).
#[test]
fn a_replica_with_an_invalid_config_is_a_typed_error() {
    let config = Arc::new(Config {
        election_timeout_min_ticks: 10,
        election_timeout_max_ticks: 10,
        ..strict()
    });
    let made = Replica::new(
        G,
        n(1),
        Membership::voters([1, 2, 3]),
        Arc::clone(&config),
        1,
    );
    assert_eq!(
        made.map(|_| ()).map_err(|e| e.field),
        Err("election_timeout_max_ticks")
    );
    let loaded = LoadedGroup {
        membership: Membership::voters([1, 2, 3]),
        ..LoadedGroup::new(G)
    };
    let restored = Replica::restore(n(1), loaded, config, 1);
    assert!(
        matches!(restored, Err(StartError::Config(ref e)) if e.field == "election_timeout_max_ticks"),
        "{:?}",
        restored.map(|_| ())
    );
}
