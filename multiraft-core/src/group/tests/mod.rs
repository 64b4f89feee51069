//! Unit tests of one group, sans-IO.
//!
//! Each test cites what it checks: the Raft paper (Ongaro & Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", 2014) as "§5.x", Ongaro's dissertation ("Consensus:
//! Bridging Theory and Practice", 2014) as "dissertation §x.y", and the IO-ordering rules of
//! docs/design.md §3.1 as "IO rule n". Outputs are compared by value. Seeds are explicit, so every
//! run is the same run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::entry::Payload;

use super::*;

mod elections;
mod flow_control;
mod joining;
mod learners;
mod membership;
mod overload;
mod prevote_checkquorum;
mod proposals;
mod removal;
mod replication;
mod snapshots;
mod status;
mod strict;
mod transfer;

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
        transfer: false,
    }
}

fn vote_resp(pre_vote: bool, granted: bool) -> MessageBody {
    MessageBody::VoteResponse { pre_vote, granted }
}

fn append(prev_index: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> MessageBody {
    MessageBody::Append {
        prev_index,
        prev_term,
        entries: entries.into(),
        commit,
    }
}

fn ack(index: u64) -> MessageBody {
    MessageBody::AppendResponse {
        success: true,
        index,
        hint_index: 0,
        hint_term: 0,
        joined: true,
    }
}

fn nack(index: u64, hint_index: u64, hint_term: u64) -> MessageBody {
    MessageBody::AppendResponse {
        success: false,
        index,
        hint_index,
        hint_term,
        joined: false,
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
fn fresh(id: u64, seed: u64) -> Replica {
    Replica::new(
        G,
        n(id),
        Membership::voters([1, 2, 3]),
        Arc::new(strict()),
        seed,
    )
    .unwrap()
}

/// Replica `id` of a group of voters 1..=3, restored from storage.
fn restored(id: u64, hard_state: HardState, entries: Vec<Entry>) -> Replica {
    restored_in(Membership::voters([1, 2, 3]), id, hard_state, entries)
}

/// Replica `id` of a group of `membership`, restored from storage.
fn restored_in(
    membership: Membership,
    id: u64,
    hard_state: HardState,
    entries: Vec<Entry>,
) -> Replica {
    let loaded = LoadedGroup {
        group: G,
        membership,
        hard_state,
        compacted: None,
        snapshot: None,
        entries,
    };
    let mut g = Replica::restore(n(id), loaded, Arc::new(strict()), id).unwrap();
    // These tests are about the vote rules themselves, not the hold after a restart
    // (which `tests/reads.rs` covers).
    g.end_vote_hold();
    g
}

/// Ticks `g` until it has output (its election timer fired); returns the tick count.
fn ticks_until_ready(g: &mut Replica) -> u32 {
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
fn hand_elected_leader(seed: u64) -> (Replica, ReplicaReady) {
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
    /// The membership a joined replica stored (`ReplicaReady::joined`), if any.
    joined: Option<Membership>,
}

impl Disk {
    fn write(&mut self, ready: &ReplicaReady) {
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
            self.commits.push(hs.commit);
        }
        if ready.joined.is_some() {
            self.joined.clone_from(&ready.joined);
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
    groups: Vec<Replica>,
    disks: Vec<Disk>,
    /// Entries each replica handed to its state machine, in order.
    applied: Vec<Vec<Entry>>,
    /// Events each replica reported, in order.
    events: Vec<Vec<GroupEvent>>,
    /// Removed replicas each leader forgot untold, with its term (`ReplicaReady::forgotten`).
    forgotten: Vec<Vec<(NodeId, u64)>>,
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
                Replica::new(G, n(id), membership.clone(), Arc::clone(&config), seed).unwrap()
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
                joined: None,
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
                    snapshot: None,
                    entries,
                };
                let mut g =
                    Replica::restore(n(id), loaded, Arc::clone(&config), seed + id).unwrap();
                g.end_vote_hold();
                g
            })
            .collect();
        Cluster {
            disks,
            ..Cluster::with_groups(membership, groups)
        }
    }

    fn with_groups(membership: Membership, groups: Vec<Replica>) -> Cluster {
        let count = groups.len();
        Cluster {
            membership,
            groups,
            disks: vec![Disk::default(); count],
            applied: vec![Vec::new(); count],
            events: vec![Vec::new(); count],
            forgotten: vec![Vec::new(); count],
            queue: VecDeque::new(),
            isolated: BTreeSet::new(),
            sent: Vec::new(),
        }
    }

    fn g(&self, id: u64) -> &Replica {
        &self.groups[id as usize - 1]
    }

    fn g_mut(&mut self, id: u64) -> &mut Replica {
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
            snapshot: None,
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
                self.applied[i].extend(ready.apply.iter().flat_map(|r| r.iter().cloned()));
                self.events[i].extend(ready.events.iter().cloned());
                self.forgotten[i].extend(ready.forgotten.iter().copied());
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
    fn deliver_all_where(&mut self, mut keep: impl FnMut(&[Replica], &Message) -> bool) {
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

    /// Ticks leader 1 alone, delivering everything, until replica `watched` is quiesced,
    /// for at most ten election timeouts.
    fn tick_leader_until_quiesced(&mut self, watched: u64) {
        for _ in 0..10 * self.g(1).config.election_timeout_max_ticks {
            if self.g(watched).is_quiesced() {
                return;
            }
            self.g_mut(1).tick();
            self.deliver_all();
        }
        assert!(self.g(watched).is_quiesced(), "{watched} never quiesced");
    }

    /// Lets leader `id` tell its followers a commit index that no entries carried (it goes
    /// with the leader's heartbeat rounds, `Replica::commit_notice_due`), delivering
    /// everything.
    /// Replica `id` proposes `count` commands, each delivered everywhere before the next.
    fn propose_each_delivered(&mut self, id: u64, count: u64) {
        for seq in 1..=count {
            self.g_mut(id)
                .propose(pid(id, seq), Bytes::from_static(b"x"))
                .unwrap();
            self.deliver_all();
        }
    }

    fn notify_commit(&mut self, id: u64) {
        // Two rounds: a follower that got an append since the last round may be left out
        // of the next one (`Progress::skips_heartbeat`), never out of two in a row.
        for _ in 0..2 * self.g(id).config.heartbeat_interval_ticks {
            self.g_mut(id).tick();
        }
        self.deliver_all();
    }

    fn tick_all(&mut self) {
        for g in &mut self.groups {
            g.tick();
        }
    }

    /// Ticks replica `id` alone, delivering after every tick, until it leads.
    fn elect_where(&mut self, id: u64, mut keep: impl FnMut(&[Replica], &Message) -> bool) {
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
