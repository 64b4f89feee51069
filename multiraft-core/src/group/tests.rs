//! Unit tests of one group, sans-IO.
//!
//! Each test cites what it checks: the Raft paper (Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", 2014) as "§5.x", Ongaro's dissertation ("Consensus:
//! Bridging Theory and Practice", 2014) as "dissertation §x.y", and the IO-ordering rules of
//! DESIGN.md §3 as "IO rule n". Outputs are compared by value. Seeds are explicit, so every
//! run is the same run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::*;

// ----- harness ------------------------------------------------------------------------------

const G: GroupId = GroupId(1);
const MAX: usize = usize::MAX;

fn n(id: u64) -> NodeId {
    NodeId(id)
}

fn pid(node: u64, seq: u64) -> ProposalId {
    ProposalId { node: n(node), seq }
}

/// The default configuration with invariant checks on.
fn strict() -> Config {
    Config {
        strict: true,
        ..Config::default()
    }
}

fn hs(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term,
        vote: vote.map(n),
        commit,
    }
}

/// A command entry whose bytes name its position, so that entries of different terms at one
/// index differ.
fn e(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Command {
            id: pid(9, index * 1000 + term),
            data: Bytes::from(format!("{index}@{term}")),
        },
    }
}

fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Noop,
    }
}

/// A log with the given terms from index 1.
fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .zip(1..)
        .map(|(&term, index)| e(index, term))
        .collect()
}

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        group: G,
        from: n(from),
        to: n(to),
        term,
        body,
    }
}

fn vote(pre_vote: bool, last_index: u64, last_term: u64) -> MessageBody {
    MessageBody::Vote {
        pre_vote,
        last_index,
        last_term,
    }
}

fn vote_resp(pre_vote: bool, granted: bool) -> MessageBody {
    MessageBody::VoteResponse { pre_vote, granted }
}

fn append(prev_index: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> MessageBody {
    MessageBody::Append {
        prev_index,
        prev_term,
        entries,
        commit,
    }
}

fn ack(index: u64) -> MessageBody {
    MessageBody::AppendResponse {
        success: true,
        index,
        hint_index: 0,
        hint_term: 0,
    }
}

fn nack(index: u64, hint_index: u64, hint_term: u64) -> MessageBody {
    MessageBody::AppendResponse {
        success: false,
        index,
        hint_index,
        hint_term,
    }
}

fn leader_changed(term: u64, leader: Option<u64>) -> GroupEvent {
    GroupEvent::LeaderChanged {
        term,
        leader: leader.map(n),
    }
}

fn carries_index(m: &Message, index: u64) -> bool {
    matches!(&m.body, MessageBody::Append { entries, .. } if entries.iter().any(|e| e.index == index))
}

/// A fresh replica `id` of a group of voters 1..=3.
fn fresh(id: u64, seed: u64) -> Group {
    Group::new(
        G,
        n(id),
        Membership::voters([1, 2, 3]),
        Arc::new(strict()),
        seed,
    )
}

/// Replica `id` of a group of voters 1..=3, restored from storage.
fn restored(id: u64, hard_state: HardState, entries: Vec<Entry>) -> Group {
    let loaded = LoadedGroup {
        group: G,
        membership: Membership::voters([1, 2, 3]),
        hard_state,
        compacted: None,
        entries,
    };
    Group::restore(n(id), loaded, Arc::new(strict()), id).unwrap()
}

/// Ticks `g` until it has output (its election timer fired); returns the tick count.
fn ticks_until_ready(g: &mut Group) -> u32 {
    for ticks in 1..=1000 {
        g.tick();
        if g.has_ready() {
            return ticks;
        }
    }
    panic!("no output after 1000 ticks");
}

/// Makes replica 1 of a fresh 3-voter group leader of term 1 by hand: its pre-vote and vote
/// are granted by replica 2. Returns the leader's first ready (not persisted).
fn hand_elected_leader(seed: u64) -> (Group, GroupReady) {
    let mut g = fresh(1, seed);
    ticks_until_ready(&mut g);
    g.ready(MAX, MAX);
    g.step(msg(2, 1, 1, vote_resp(true, true)));
    g.ready(MAX, MAX);
    g.step(msg(2, 1, 1, vote_resp(false, true)));
    assert_eq!(g.status().role, Role::Leader);
    let ready = g.ready(MAX, MAX);
    (g, ready)
}

/// What one replica's storage holds: exactly what its readies asked to persist.
#[derive(Clone, Debug, Default)]
struct Disk {
    hard_state: HardState,
    entries: Vec<Entry>,
    /// The commit index of every hard state written, in order.
    commits: Vec<u64>,
}

impl Disk {
    fn write(&mut self, ready: &GroupReady) {
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
            self.commits.push(hs.commit);
        }
        if let Some(first) = ready.entries.first() {
            // A first index at or below the stored last index replaces the stored suffix.
            self.entries.truncate(first.index as usize - 1);
            self.entries.extend(ready.entries.iter().cloned());
        }
    }
}

/// Replicas 1..=n of one group, a FIFO network delivered by hand, and a disk per replica
/// that persists every ready at once.
struct Cluster {
    membership: Membership,
    groups: Vec<Group>,
    disks: Vec<Disk>,
    /// Entries each replica handed to its state machine, in order.
    applied: Vec<Vec<Entry>>,
    queue: VecDeque<Message>,
    /// Replicas cut off from everyone: messages from or to them are lost.
    isolated: BTreeSet<NodeId>,
    /// Every message that left a replica (delivered or lost), in order.
    sent: Vec<Message>,
}

impl Cluster {
    /// Fresh replicas: voters 1..=voters, then learners.
    fn new(voters: u64, learners: u64, config: Config, seed: u64) -> Cluster {
        let membership =
            Membership::voters(1..=voters).with_learners(voters + 1..=voters + learners);
        let config = Arc::new(config);
        let groups = (1..=voters + learners)
            .map(|id| {
                let seed = seed.wrapping_mul(1000).wrapping_add(id);
                Group::new(G, n(id), membership.clone(), Arc::clone(&config), seed)
            })
            .collect();
        Cluster::with_groups(membership, groups)
    }

    /// Voters 1..=n restored from storage holding the given hard states and logs.
    fn restored(states: Vec<(HardState, Vec<Entry>)>, config: Config, seed: u64) -> Cluster {
        let membership = Membership::voters(1..=states.len() as u64);
        let config = Arc::new(config);
        let disks = states
            .iter()
            .map(|(hard_state, entries)| Disk {
                hard_state: *hard_state,
                entries: entries.clone(),
                commits: Vec::new(),
            })
            .collect();
        let groups = states
            .into_iter()
            .zip(1..)
            .map(|((hard_state, entries), id)| {
                let loaded = LoadedGroup {
                    group: G,
                    membership: membership.clone(),
                    hard_state,
                    compacted: None,
                    entries,
                };
                Group::restore(n(id), loaded, Arc::clone(&config), seed + id).unwrap()
            })
            .collect();
        Cluster {
            disks,
            ..Cluster::with_groups(membership, groups)
        }
    }

    fn with_groups(membership: Membership, groups: Vec<Group>) -> Cluster {
        let count = groups.len();
        Cluster {
            membership,
            groups,
            disks: vec![Disk::default(); count],
            applied: vec![Vec::new(); count],
            queue: VecDeque::new(),
            isolated: BTreeSet::new(),
            sent: Vec::new(),
        }
    }

    fn g(&self, id: u64) -> &Group {
        &self.groups[id as usize - 1]
    }

    fn g_mut(&mut self, id: u64) -> &mut Group {
        &mut self.groups[id as usize - 1]
    }

    fn status(&self, id: u64) -> GroupStatus {
        self.g(id).status()
    }

    /// The whole in-memory log of replica `id`.
    fn log(&self, id: u64) -> Vec<Entry> {
        self.g(id).entries(1, u64::MAX).to_vec()
    }

    /// What replica `id`'s storage holds, as `Storage::load` would return it.
    fn loaded(&self, id: u64) -> LoadedGroup {
        let disk = &self.disks[id as usize - 1];
        LoadedGroup {
            group: G,
            membership: self.membership.clone(),
            hard_state: disk.hard_state,
            compacted: None,
            entries: disk.entries.clone(),
        }
    }

    /// Takes every replica's ready, in the documented order: `send_now` leaves, the write is
    /// persisted, `on_persisted` is called with the last written entry, then
    /// `send_after_write` leaves.
    fn collect(&mut self) {
        for i in 0..self.groups.len() {
            while self.groups[i].has_ready() {
                let ready = self.groups[i].ready(MAX, MAX);
                self.queue.extend(ready.send_now.iter().cloned());
                self.disks[i].write(&ready);
                if let Some(last) = ready.entries.last() {
                    self.groups[i].on_persisted(last.index, last.term);
                }
                self.applied[i].extend(ready.apply.iter().cloned());
                self.queue.extend(ready.send_after_write);
            }
        }
    }

    fn deliver(&mut self, m: Message) {
        self.sent.push(m.clone());
        if !self.isolated.contains(&m.from) && !self.isolated.contains(&m.to) {
            self.groups[m.to.0 as usize - 1].step(m);
        }
    }

    /// Delivers messages in order until the cluster is quiet, losing those `keep` refuses.
    fn deliver_all_where(&mut self, mut keep: impl FnMut(&[Group], &Message) -> bool) {
        for _ in 0..100_000 {
            self.collect();
            let Some(m) = self.queue.pop_front() else {
                return;
            };
            if keep(&self.groups, &m) {
                self.deliver(m);
            } else {
                self.sent.push(m);
            }
        }
        panic!("the cluster did not go quiet");
    }

    fn deliver_all(&mut self) {
        self.deliver_all_where(|_, _| true);
    }

    fn tick_all(&mut self) {
        for g in &mut self.groups {
            g.tick();
        }
    }

    /// Ticks replica `id` alone, delivering after every tick, until it leads.
    fn elect_where(&mut self, id: u64, mut keep: impl FnMut(&[Group], &Message) -> bool) {
        for _ in 0..500 {
            self.g_mut(id).tick();
            self.deliver_all_where(&mut keep);
            if self.status(id).role == Role::Leader {
                return;
            }
        }
        panic!("replica {id} was not elected");
    }

    fn elect(&mut self, id: u64) {
        self.elect_where(id, |_, _| true);
    }

    /// Messages sent so far matching `f`.
    fn sent_where(&self, f: impl Fn(&Message) -> bool) -> Vec<Message> {
        self.sent.iter().filter(|m| f(m)).cloned().collect()
    }
}

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
            GroupReady {
                send_after_write: vec![
                    msg(1, 2, 1, vote(true, 0, 0)),
                    msg(1, 3, 1, vote(true, 0, 0)),
                ],
                ..Default::default()
            }
        );
    }
    assert!(seen.len() >= 6, "too few distinct timeouts: {seen:?}");
}

/// §5.2 (randomized timeouts) and DESIGN §9.1 (deterministic core): the timeout is a function
/// of the seed only, so a run can be replayed; distinct seeds give distinct timeouts; and a
/// re-armed timer is randomized again rather than repeating the first value.
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
        GroupReady {
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
        GroupReady {
            entries: vec![noop(1, 1)],
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
        GroupReady {
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
        GroupReady {
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
        GroupReady {
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
        GroupReady {
            hard_state: Some(hs(3, None, 0)),
            send_after_write: vec![msg(1, 2, 3, vote_resp(false, false))],
            events: vec![leader_changed(3, None)],
            ..Default::default()
        }
    );

    g.step(msg(3, 1, 3, vote(false, 1, 3)));
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
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
        GroupReady {
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
                for s in c.groups.iter().map(Group::status) {
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

// ----- PreVote, CheckQuorum, leader stickiness ----------------------------------------------

/// Dissertation §9.6: a pre-vote asks "would you vote for me?" and changes no one's term: the
/// receiver answers at the proposed term without persisting anything.
#[test]
fn pre_vote_changes_no_term() {
    let mut g = restored(2, hs(1, None, 0), log_of(&[1]));
    g.step(msg(3, 2, 2, vote(true, 1, 1)));
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
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
            GroupReady {
                send_after_write: vec![
                    msg(1, 2, 1, vote(true, 0, 0)),
                    msg(1, 3, 1, vote(true, 0, 0)),
                ],
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
    let active = Config {
        quiesce: false,
        ..strict()
    };
    let mut c = Cluster::new(3, 0, active, 3);
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
        GroupReady {
            hard_state: Some(hs(5, Some(3), 1)),
            send_after_write: vec![msg(2, 3, 5, vote_resp(false, true))],
            events: vec![leader_changed(5, None)],
            ..Default::default()
        }
    );
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
        GroupReady {
            send_after_write: vec![msg(2, 1, 3, MessageBody::HeartbeatResponse)],
            ..Default::default()
        }
    );
    g.step(msg(1, 2, 1, MessageBody::Heartbeat { commit: 0 }));
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

// ----- log replication ----------------------------------------------------------------------

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
        GroupReady {
            hard_state: Some(hs(1, None, 3)),
            entries: vec![e(3, 1), e(4, 1)],
            send_after_write: vec![msg(1, 2, 1, ack(4))],
            apply: vec![e(1, 1), e(2, 1)],
            events: vec![leader_changed(1, Some(2))],
            ..Default::default()
        }
    );
    assert!(!g.has_ready());
    g.on_persisted(4, 1);
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
            apply: vec![e(3, 1)],
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
        GroupReady {
            send_after_write: vec![msg(1, 2, 2, nack(5, 3, 2))],
            events: vec![leader_changed(2, Some(2))],
            ..Default::default()
        }
    );
    // Entry present with another term.
    g.step(msg(2, 1, 2, append(3, 3, vec![e(4, 3)], 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
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
        GroupReady {
            hard_state: Some(hs(3, None, 1)),
            entries: vec![e(3, 3)],
            send_after_write: vec![msg(1, 3, 3, ack(3))],
            apply: vec![e(1, 1)],
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

/// §5.3: only a *conflicting* entry is deleted. A delayed, retransmitted append whose
/// entries are already present must not truncate what follows them (that could drop entries
/// this replica already acknowledged).
#[test]
fn retransmitted_append_does_not_truncate() {
    let mut g = restored(1, hs(1, None, 0), log_of(&[1, 1, 1, 1]));
    g.step(msg(2, 1, 1, append(1, 1, vec![e(2, 1)], 0)));
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
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

    // S1 crashes; S5 (whose last entry is of term 3) wins with S3 and S4.
    c.isolated = BTreeSet::from([n(1)]);
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
    let lost_to_s3 = |gs: &[Group], m: &Message| {
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
        GroupReady {
            entries: vec![noop(1, 1)],
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
        GroupReady {
            hard_state: Some(hs(1, Some(1), 1)),
            send_now: vec![msg(1, 2, 1, append(1, 1, vec![], 1))],
            apply: vec![noop(1, 1)],
            ..Default::default()
        }
    );
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
        GroupReady {
            hard_state: Some(hs(1, Some(1), 1)),
            send_now: vec![
                msg(1, 2, 1, append(1, 1, vec![], 1)),
                msg(1, 3, 1, append(1, 1, vec![], 1)),
            ],
            ..Default::default()
        }
    );
    g.on_persisted(1, 1);
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
            apply: vec![noop(1, 1)],
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
        GroupReady {
            hard_state: Some(hs(1, None, 2)),
            entries: vec![noop(1, 1), e(2, 1)],
            send_after_write: vec![msg(2, 1, 1, ack(2))],
            events: vec![leader_changed(1, Some(1))],
            ..Default::default()
        }
    );
    assert!(!g.has_ready());
    g.on_persisted(2, 1);
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
            apply: vec![noop(1, 1), e(2, 1)],
            ..Default::default()
        }
    );

    // Durable here, not yet committed.
    let mut g = fresh(2, 1);
    g.step(msg(1, 2, 1, append(0, 0, vec![noop(1, 1), e(2, 1)], 0)));
    g.ready(MAX, MAX);
    g.on_persisted(2, 1);
    assert!(!g.has_ready());
    g.step(msg(1, 2, 1, MessageBody::Heartbeat { commit: 1 }));
    assert_eq!(
        g.ready(MAX, MAX),
        GroupReady {
            hard_state: Some(hs(1, None, 1)),
            send_after_write: vec![msg(2, 1, 1, MessageBody::HeartbeatResponse)],
            apply: vec![noop(1, 1)],
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
        .map(|(l, id)| Group::restore(n(id), l, Arc::clone(&config), 100 + id).unwrap())
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

// ----- learners -----------------------------------------------------------------------------

/// Dissertation §4.2.1 (non-voting members): a learner never grants a vote, though it
/// follows terms like anyone; candidates do not even ask it.
#[test]
fn learner_never_votes() {
    let mut c = Cluster::new(3, 1, strict(), 9);
    c.g_mut(4).step(msg(1, 4, 1, vote(false, 0, 0)));
    assert_eq!(
        c.g_mut(4).ready(MAX, MAX),
        GroupReady {
            hard_state: Some(hs(1, None, 0)),
            send_after_write: vec![msg(4, 1, 1, vote_resp(false, false))],
            events: vec![leader_changed(1, None)],
            ..Default::default()
        }
    );
    c.g_mut(4).step(msg(2, 4, 2, vote(true, 0, 0)));
    assert_eq!(
        c.g_mut(4).ready(MAX, MAX).send_after_write,
        vec![msg(4, 2, 1, vote_resp(true, false))]
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

/// Dissertation §4.2.1: a learner never campaigns, however long it hears nothing.
#[test]
fn learner_never_campaigns() {
    let mut c = Cluster::new(3, 1, strict(), 10);
    for _ in 0..1000 {
        c.g_mut(4).tick();
        assert!(!c.g(4).has_ready());
    }
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

// ----- proposals ----------------------------------------------------------------------------

/// Dissertation §6.2 (routing requests to the leader): a follower that knows the leader
/// forwards the proposal, untouched, in `send_now`; the leader appends it and it commits and
/// applies everywhere, on the proposing follower included.
#[test]
fn follower_forwards_proposals_to_the_leader() {
    let mut c = Cluster::new(3, 0, strict(), 12);
    c.elect(1);
    let data = Bytes::from_static(b"hello");
    assert_eq!(c.g_mut(2).propose(pid(2, 7), data.clone()), Ok(()));
    let ready = c.g_mut(2).ready(MAX, MAX);
    assert_eq!(
        ready,
        GroupReady {
            send_now: vec![msg(
                2,
                1,
                0,
                MessageBody::Propose {
                    proposals: vec![(pid(2, 7), data.clone())]
                }
            )],
            ..Default::default()
        }
    );
    c.queue.extend(ready.send_now);
    c.deliver_all();
    let entry = Entry {
        index: 2,
        term: 1,
        payload: Payload::Command {
            id: pid(2, 7),
            data,
        },
    };
    for id in 1..=3 {
        assert_eq!(c.applied[id - 1].last(), Some(&entry), "replica {id}");
    }
}

/// A follower forwards at most `MAX_ITEMS_PER_MESSAGE` proposals in one message, which
/// every receiver enforces (`MessageBatch::validate`): more are split, in order.
#[test]
fn forwarded_proposals_are_split_within_the_item_limit() {
    let mut c = Cluster::new(3, 0, strict(), 12);
    c.elect(1);
    let count = crate::MAX_ITEMS_PER_MESSAGE as u64 + 1;
    for seq in 0..count {
        assert_eq!(c.g_mut(2).propose(pid(2, seq), Bytes::new()), Ok(()));
    }
    let sent = c.g_mut(2).ready(MAX, MAX).send_now;
    let mut seqs = Vec::new();
    let mut sizes = Vec::new();
    for m in &sent {
        let MessageBody::Propose { proposals } = &m.body else {
            panic!("not a proposal: {m:?}");
        };
        sizes.push(proposals.len());
        seqs.extend(proposals.iter().map(|(id, _)| id.seq));
    }
    assert_eq!(sizes, [crate::MAX_ITEMS_PER_MESSAGE, 1]);
    assert!(seqs.iter().copied().eq(0..count), "in order");
    let batch = crate::MessageBatch {
        from: n(2),
        to: n(1),
        messages: sent,
    };
    assert_eq!(batch.validate(&crate::MessageLimits::default()), Ok(()));
}

/// Dissertation §6.2: a replica that cannot forward tells the client where to go:
/// `NotLeader` with the leader it knows when forwarding is off, `NoLeader` when it knows no
/// leader (forwarding or not). Nothing is queued.
#[test]
fn proposals_without_a_reachable_leader_fail_with_the_reason() {
    let no_forwarding = Config {
        forward_proposals: false,
        ..strict()
    };
    let mut c = Cluster::new(3, 0, no_forwarding.clone(), 13);
    c.elect(1);
    assert_eq!(
        c.g_mut(2).propose(pid(2, 1), Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader {
            leader_hint: Some(n(1))
        })
    );
    assert!(!c.g(2).has_ready());

    for config in [no_forwarding, strict()] {
        let mut g = Group::new(G, n(1), Membership::voters([1, 2, 3]), Arc::new(config), 1);
        assert_eq!(
            g.propose(pid(1, 1), Bytes::from_static(b"x")),
            Err(ProposeError::NoLeader)
        );
        assert!(!g.has_ready());
    }
}

/// `Config::max_proposal_bytes` (DESIGN §9.7, a named limit): a larger proposal is refused
/// with `TooLarge`, on the leader and on a follower alike; one at the limit is accepted.
#[test]
fn proposal_over_max_proposal_bytes_is_too_large() {
    let config = Config {
        max_proposal_bytes: 8,
        ..strict()
    };
    let mut c = Cluster::new(3, 0, config, 14);
    c.elect(1);
    for id in [1, 2] {
        assert_eq!(
            c.g_mut(id)
                .propose(pid(id, 1), Bytes::from_static(b"123456789")),
            Err(ProposeError::TooLarge { max: 8 })
        );
    }
    assert_eq!(
        c.g_mut(1)
            .propose(pid(1, 2), Bytes::from_static(b"12345678")),
        Ok(())
    );
}

/// `Config::max_uncommitted_bytes`: a leader refuses proposals with `Busy` once its
/// uncommitted entries would exceed the limit, and accepts again after they commit.
#[test]
fn proposals_beyond_max_uncommitted_bytes_are_busy_until_commit() {
    let config = Config {
        max_proposal_bytes: 100,
        max_uncommitted_bytes: 200,
        ..strict()
    };
    let mut c = Cluster::new(1, 0, config, 15);
    c.elect(1);
    let data = Bytes::from(vec![7u8; 50]); // 90 bytes as an entry
    assert_eq!(c.g_mut(1).propose(pid(1, 1), data.clone()), Ok(()));
    assert_eq!(c.g_mut(1).propose(pid(1, 2), data.clone()), Ok(()));
    assert_eq!(
        c.g_mut(1).propose(pid(1, 3), data.clone()),
        Err(ProposeError::Busy {
            limit: "max_uncommitted_bytes"
        })
    );
    c.deliver_all();
    assert_eq!(c.status(1).commit, 3);
    assert_eq!(c.g_mut(1).propose(pid(1, 3), data), Ok(()));
}

/// Dissertation §6.2 with `max_uncommitted_bytes`: a forwarded proposal the leader refuses
/// comes back as `ProposeRejected`, and the follower reports it as `Busy` (definitely not
/// appended) instead of leaving its client waiting.
#[test]
fn forwarded_proposal_refused_by_a_busy_leader_is_reported() {
    let config = Config {
        max_proposal_bytes: 100,
        max_uncommitted_bytes: 200,
        ..strict()
    };
    let mut c = Cluster::new(3, 0, config, 16);
    c.elect(1);
    let data = Bytes::from(vec![7u8; 50]);
    c.g_mut(1).propose(pid(1, 1), data.clone()).unwrap();
    c.g_mut(1).propose(pid(1, 2), data.clone()).unwrap();
    c.g_mut(2).propose(pid(2, 1), data).unwrap();

    let forwarded = c.g_mut(2).ready(MAX, MAX).send_now;
    c.g_mut(1).step(forwarded[0].clone());
    let refusal: Vec<Message> = c
        .g_mut(1)
        .ready(MAX, MAX)
        .send_now
        .into_iter()
        .filter(|m| m.to == n(2) && matches!(m.body, MessageBody::ProposeRejected { .. }))
        .collect();
    assert_eq!(
        refusal,
        vec![msg(
            1,
            2,
            0,
            MessageBody::ProposeRejected {
                ids: vec![pid(2, 1)],
                leader_hint: Some(n(1))
            }
        )]
    );
    c.g_mut(2).step(refusal[0].clone());
    assert_eq!(
        c.g_mut(2).ready(MAX, MAX),
        GroupReady {
            rejected: vec![(
                pid(2, 1),
                ProposeError::Busy {
                    limit: "max_uncommitted_bytes"
                }
            )],
            ..Default::default()
        }
    );
}

// ----- flow control -------------------------------------------------------------------------

/// `Config::max_inflight_appends` (etcd-raft's flow control; §5.3 replication pipelined): in
/// replicate state the leader streams appends to a follower up to the window and then waits;
/// each acknowledgement opens room for one more.
#[test]
fn inflight_window_bounds_appends_in_replicate_state() {
    let config = Config {
        max_inflight_appends: 2,
        max_append_entries: 1,
        ..strict()
    };
    let mut c = Cluster::new(3, 0, config, 17);
    c.elect(1);
    for seq in 2..=6 {
        c.g_mut(1)
            .propose(pid(1, seq), Bytes::from_static(b"x"))
            .unwrap();
    }
    let cmd = |index| Entry {
        index,
        term: 1,
        payload: Payload::Command {
            id: pid(1, index),
            data: Bytes::from_static(b"x"),
        },
    };
    let ready = c.g_mut(1).ready(MAX, MAX);
    assert_eq!(ready.entries, (2..=6).map(cmd).collect::<Vec<_>>());
    assert_eq!(
        ready.send_now,
        vec![
            msg(1, 2, 1, append(1, 1, vec![cmd(2)], 1)),
            msg(1, 2, 1, append(2, 1, vec![cmd(3)], 1)),
            msg(1, 3, 1, append(1, 1, vec![cmd(2)], 1)),
            msg(1, 3, 1, append(2, 1, vec![cmd(3)], 1)),
        ]
    );
    assert!(!c.g(1).has_ready(), "the window is full");

    c.g_mut(1).step(msg(2, 1, 1, ack(2)));
    assert_eq!(
        c.g_mut(1).ready(MAX, MAX),
        GroupReady {
            send_now: vec![msg(1, 2, 1, append(3, 1, vec![cmd(4)], 1))],
            ..Default::default()
        }
    );
}

/// §5.3 with etcd-raft's probe state: while the leader does not know where a follower's log
/// matches, it sends one append and waits for the answer, however many entries pile up. A
/// heartbeat response allows one new probe (the first may have been lost), which then
/// carries everything.
#[test]
fn probe_state_sends_one_append_until_answered() {
    let mut c = Cluster::new(3, 0, strict(), 18);
    c.isolated.insert(n(3));
    c.elect(1);
    for seq in 1..=3 {
        c.g_mut(1)
            .propose(pid(1, seq), Bytes::from_static(b"x"))
            .unwrap();
        c.deliver_all();
    }
    let appends_to_3 = |c: &Cluster| {
        c.sent_where(|m| m.to == n(3) && matches!(m.body, MessageBody::Append { .. }))
    };
    assert_eq!(
        appends_to_3(&c),
        vec![msg(1, 3, 1, append(0, 0, vec![noop(1, 1)], 0))]
    );
    assert_eq!(c.status(1).commit, 4);

    c.isolated.clear();
    c.g_mut(1).tick();
    c.g_mut(1).tick();
    c.deliver_all();
    let log = c.log(1);
    assert_eq!(
        appends_to_3(&c),
        vec![
            msg(1, 3, 1, append(0, 0, vec![noop(1, 1)], 0)),
            msg(1, 3, 1, append(0, 0, log.clone(), 4)),
        ]
    );
    assert_eq!(c.log(3), log);
    assert_eq!(c.status(3).commit, 4);
}

/// §5.3 (followers learn the commit index from the leader) with etcd-raft's rule: a
/// heartbeat carries the leader's commit index capped at what that follower is known to
/// hold, so a lagging follower is never told to commit an index where its log may differ.
#[test]
fn heartbeat_commit_is_capped_at_the_followers_match() {
    let mut c = Cluster::new(3, 0, strict(), 19);
    c.elect(1);
    c.isolated.insert(n(3));
    c.g_mut(1)
        .propose(pid(1, 1), Bytes::from_static(b"x"))
        .unwrap();
    c.g_mut(1)
        .propose(pid(1, 2), Bytes::from_static(b"y"))
        .unwrap();
    c.deliver_all();
    assert_eq!(c.status(1).commit, 3);

    c.g_mut(1).tick();
    c.g_mut(1).tick();
    assert_eq!(
        c.g_mut(1).ready(MAX, MAX),
        GroupReady {
            send_now: vec![
                msg(1, 2, 1, MessageBody::Heartbeat { commit: 3 }),
                msg(1, 3, 1, MessageBody::Heartbeat { commit: 1 }),
            ],
            ..Default::default()
        }
    );
}

// ----- input hygiene and strict mode ----------------------------------------------------------

/// The group's contract (`Group::step`): messages for another group or node, or from a
/// non-member, change nothing and produce nothing.
#[test]
fn misaddressed_and_foreign_messages_are_ignored() {
    let mut g = fresh(1, 1);
    let mut other_group = msg(2, 1, 1, vote(false, 0, 0));
    other_group.group = GroupId(2);
    for m in [
        other_group,
        msg(2, 4, 1, vote(false, 0, 0)),
        msg(9, 1, 1, vote(false, 0, 0)),
        msg(1, 1, 1, vote(false, 0, 0)),
    ] {
        g.step(m);
        assert!(!g.has_ready());
    }
    assert_eq!(g.status().term, 0);
}

/// `Config::strict` (DESIGN §9.6, invariants are asserted): a log holding an entry of a
/// term later than the replica's own (corrupt storage) is reported with group, node, term and
/// index.
#[test]
#[should_panic(
    expected = "invariant violated in group g1 on node n1 at term 1, index 1: log holds an entry from a future term"
)]
fn strict_mode_panics_on_an_entry_from_a_future_term() {
    let mut g = restored(1, hs(1, None, 0), log_of(&[2]));
    g.tick();
}

/// `Config::strict` and Figure 3, Leader Append-Only / State Machine Safety: an append that
/// would overwrite a committed entry (here a malformed one whose entries do not follow
/// `prev_index`) is an invariant violation, not something to do quietly.
#[test]
#[should_panic(expected = "truncated a committed entry")]
fn strict_mode_panics_when_a_committed_entry_would_be_truncated() {
    let mut g = restored(1, hs(1, None, 2), log_of(&[1, 1]));
    g.step(msg(2, 1, 2, append(2, 1, vec![e(2, 2)], 2)));
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
        entries: log_of(&[1, 1]),
    };
    let mut g = Group::restore(n(1), loaded, Arc::new(config), 1).unwrap();
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
