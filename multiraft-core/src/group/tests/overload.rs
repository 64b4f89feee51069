//! A group whose readies wait behind an overloaded loop (docs/design.md §4.4): its periodic
//! messages — heartbeats, vote requests, `Unheard` — replace their unsent predecessors
//! instead of piling up in its output buffer, one per beat or per election timeout.

use super::*;

fn beats(ready: &ReplicaReady) -> Vec<&Message> {
    let all = ready.send_now.iter().chain(&ready.send_after_write);
    all.filter(|m| matches!(m.body, MessageBody::Heartbeat { round: 0, .. }))
        .collect()
}

/// A leader ticked for many heartbeat intervals without its ready taken holds one beat per
/// follower, telling the commit index reached meanwhile. Regression: it held one per
/// follower per beat (at 300,000 active groups, 55 % of an 8.8 GB heap).
#[test]
fn a_leader_whose_readies_wait_holds_one_beat_per_follower() {
    let mut c = Cluster::new(3, 0, strict(), 21);
    c.elect(1);
    c.deliver_all();
    c.g_mut(1)
        .propose(pid(1, 1), Bytes::from_static(b"x"))
        .unwrap();
    c.collect();
    // The appends reach the followers; their acknowledgements wait in the queue.
    while let Some(m) = c.queue.pop_front() {
        c.deliver(m);
    }
    c.collect();
    let acks: Vec<Message> = c.queue.drain(..).collect();
    assert_eq!(acks.len(), 2, "{acks:?}");
    let interval = c.g(1).config.heartbeat_interval_ticks;
    for _ in 0..5 * interval {
        c.g_mut(1).tick();
    }
    let before = c.status(1).commit;
    for m in acks {
        c.g_mut(1).step(m);
    }
    let commit = c.status(1).commit;
    assert!(commit > before, "the acknowledgements commit the entry");
    for _ in 0..5 * interval {
        c.g_mut(1).tick();
    }
    let ready = c.g_mut(1).ready(MAX, MAX);
    let told: Vec<(NodeId, MessageBody)> = beats(&ready)
        .into_iter()
        .map(|m| (m.to, m.body.clone()))
        .collect();
    let beat = MessageBody::Heartbeat { commit, round: 0 };
    assert_eq!(told, vec![(n(2), beat.clone()), (n(3), beat)]);
}

/// A candidate whose readies wait campaigns again at each election timeout; it holds only
/// its latest round of vote requests, one per other voter. Regression: every round stayed.
#[test]
fn a_candidate_whose_readies_wait_holds_its_latest_round_of_vote_requests() {
    let config = Config {
        pre_vote: false,
        ..strict()
    };
    let mut g = Replica::new(G, n(1), Membership::voters([1, 2, 3]), Arc::new(config), 3).unwrap();
    for _ in 0..10 * g.config.election_timeout_max_ticks {
        g.tick();
    }
    let term = g.status().term;
    assert!(term >= 5, "it campaigned again and again: term {term}");
    let ready = g.ready(MAX, MAX);
    assert_eq!(ready.send_now, vec![]);
    assert_eq!(
        ready.send_after_write,
        vec![
            msg(1, 2, term, vote(false, 0, 0)),
            msg(1, 3, term, vote(false, 0, 0))
        ]
    );
}

/// A learner whose readies wait asks the voters whether it is tracked at each election
/// timeout (`MessageBody::Unheard`); it holds one question per voter. Regression: every
/// timeout's stayed.
#[test]
fn a_learner_whose_readies_wait_holds_one_question_per_voter() {
    let mut c = Cluster::new(3, 1, strict(), 10);
    for _ in 0..10 * c.g(4).config.election_timeout_max_ticks {
        c.g_mut(4).tick();
    }
    let ready = c.g_mut(4).ready(MAX, MAX);
    let asked: Vec<NodeId> = ready.send_after_write.iter().map(|m| m.to).collect();
    assert_eq!(asked, vec![n(1), n(2), n(3)], "{ready:?}");
    assert!(ready.send_after_write.iter().all(|m| matches!(
        m.body,
        MessageBody::Unheard { replica, term: 0 } if replica == n(4)
    )));
}
