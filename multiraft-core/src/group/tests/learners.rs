//! Learners (dissertation §4.2.1, non-voting members): they receive the log but never vote,
//! campaign or count toward a commit.

use super::*;

/// Dissertation §4.2.1 (non-voting members): candidates do not ask a learner for its vote,
/// and would not count it. Asked all the same, it answers as any replica does (§4.1): it
/// may be a voter of the candidate's membership before it holds the entry promoting it,
/// and a joint configuration may need its vote (simulator, seed 51).
#[test]
fn learner_votes_only_when_asked() {
    let mut c = Cluster::new(3, 1, strict(), 9);
    c.g_mut(4).step(msg(1, 4, 1, vote(false, 0, 0)));
    assert_eq!(
        c.g_mut(4).ready(MAX, MAX),
        ReplicaReady {
            hard_state: Some(hs(1, Some(1), 0)),
            send_after_write: vec![msg(4, 1, 1, vote_resp(false, true))],
            events: vec![leader_changed(1, None)],
            ..Default::default()
        }
    );
    c.g_mut(4).step(msg(2, 4, 2, vote(true, 0, 0)));
    assert_eq!(
        c.g_mut(4).ready(MAX, MAX).send_after_write,
        vec![msg(4, 2, 2, vote_resp(true, true))]
    );

    let mut c = Cluster::new(3, 1, strict(), 9);
    c.elect(1);
    assert_eq!(
        c.sent_where(|m| matches!(m.body, MessageBody::Vote { .. }) && m.to == n(4)),
        vec![]
    );
    assert_eq!(c.status(4).role, Role::Learner);
    assert_eq!(c.status(4).vote, None);
}

/// Dissertation §4.2.1: a learner never campaigns, however long it hears nothing. All it
/// sends is, every election timeout, its question to the voters (`MessageBody::Unheard`).
#[test]
fn learner_never_campaigns() {
    let mut c = Cluster::new(3, 1, strict(), 10);
    let mut asked = 0;
    for _ in 0..1000 {
        c.g_mut(4).tick();
        if c.g(4).has_ready() {
            let ready = c.g_mut(4).ready(MAX, MAX);
            assert_eq!(ready.hard_state, None);
            assert_eq!(ready.send_now, vec![]);
            for m in &ready.send_after_write {
                assert!(matches!(m.body, MessageBody::Unheard { .. }), "{m:?}");
                asked += 1;
            }
        }
    }
    let timeouts = 1000 / strict().election_timeout_max_ticks as usize;
    assert!(
        (3 * timeouts..=3 * 1000 / strict().election_timeout_min_ticks as usize).contains(&asked),
        "{asked}"
    );
    assert_eq!(c.status(4).role, Role::Learner);
    assert_eq!(c.status(4).term, 0);
}

/// Dissertation §4.2.1: learners "do not count toward majorities". With both voting
/// followers cut off, the learner's acknowledgement does not commit anything; a voter's
/// does.
#[test]
fn learner_acknowledgements_do_not_count_toward_commit() {
    let mut c = Cluster::new(3, 1, strict(), 11);
    c.elect(1);
    assert_eq!(c.status(1).commit, 1);
    c.isolated = BTreeSet::from([n(2), n(3)]);
    c.g_mut(1)
        .propose(pid(1, 1), Bytes::from_static(b"x"))
        .unwrap();
    c.deliver_all();
    assert_eq!(c.status(4).last_index, 2);
    assert_eq!(
        c.sent_where(|m| m.from == n(4)).last(),
        Some(&msg(4, 1, 1, ack(2)))
    );
    assert_eq!(c.status(1).commit, 1);

    c.isolated = BTreeSet::from([n(3)]);
    for _ in 0..10 {
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert_eq!(c.status(1).commit, 2);
}

/// A quiesced leader whose learner's node restarted (its data perhaps wiped) wakes and
/// probes it, as it does for a voter's. Regression (review): only a voter's restart woke
/// it, and a learner wiped and joined again was never caught up while the group stayed
/// idle.
#[test]
fn a_quiesced_leader_probes_a_restarted_learner() {
    let mut c = Cluster::new(3, 1, strict(), 23);
    c.elect(1);
    c.tick_leader_until_quiesced(1);
    c.g_mut(1).on_node_restarted(n(4));
    assert!(!c.g(1).is_quiesced(), "woken");
    let ready = c.g_mut(1).ready(MAX, MAX);
    let probed = ready
        .send_now
        .iter()
        .chain(&ready.send_after_write)
        .any(|m| m.to == n(4) && matches!(m.body, MessageBody::Append { .. }));
    assert!(probed, "no append to 4: {ready:?}");
}
