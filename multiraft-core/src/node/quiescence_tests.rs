//! Coalesced heartbeats, quiescence and node liveness, through three `Node`s delivered by
//! hand (no tokio): docs/design.md §4.

use std::collections::{BTreeMap, VecDeque};

use crate::config::Config;
use crate::group::Role;
use crate::ids::{GroupId, NodeId};
use crate::membership::Membership;
use crate::message::{MessageBatch, MessageBody};
use crate::node::{Apply, Node, Ready};

fn n(id: u64) -> NodeId {
    NodeId(id)
}

fn g(id: u64) -> GroupId {
    GroupId(id)
}

fn config(quiesce: bool) -> Config {
    Config {
        strict: true,
        quiesce,
        ..Config::default()
    }
}

/// Three nodes hosting the same groups. A crashed node neither steps nor sends; batches to it
/// are lost.
struct Cluster {
    nodes: Vec<Node>,
    world: World,
}

/// What the nodes' readies act on: the network, and counters of writes and applies.
struct World {
    up: Vec<bool>,
    inboxes: Vec<VecDeque<MessageBatch>>,
    /// Every batch sent since the last `clear_counters`.
    sent: Vec<MessageBatch>,
    /// Non-empty storage writes since the last `clear_counters`.
    writes: usize,
    /// Commands applied, per node and group.
    applied: Vec<BTreeMap<GroupId, u64>>,
}

/// Node `i`'s view of the [`World`] while it does a ready.
struct NodeIo<'a> {
    world: &'a mut World,
    i: usize,
}

impl crate::testing::Io for NodeIo<'_> {
    fn send(&mut self, b: MessageBatch) {
        let to = b.to.0 as usize - 1;
        self.world.sent.push(b.clone());
        if self.world.up[to] {
            self.world.inboxes[to].push_back(b);
        }
    }

    fn persist(&mut self, write: &crate::WriteBatch) -> Result<(), crate::StorageError> {
        if !write.is_empty() {
            self.world.writes += 1;
        }
        Ok(())
    }

    fn apply(&mut self, a: Apply) {
        let count = a.commands().count() as u64;
        *self.world.applied[self.i].entry(a.group).or_default() += count;
    }
}

impl Cluster {
    fn new(groups: u64, config: Config) -> Cluster {
        let mut nodes: Vec<Node> = (1..=3)
            .map(|id| Node::new(n(id), config.clone(), 40 + id).unwrap())
            .collect();
        for node in &mut nodes {
            for id in 1..=groups {
                node.create_group(g(id), Membership::voters([1, 2, 3]))
                    .unwrap();
            }
        }
        let mut c = Cluster {
            nodes,
            world: World {
                up: vec![true; 3],
                inboxes: vec![VecDeque::new(); 3],
                sent: Vec::new(),
                writes: 0,
                applied: vec![BTreeMap::new(); 3],
            },
        };
        c.run();
        c
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    fn handle(&mut self, i: usize, r: Ready) {
        let mut io = NodeIo {
            world: &mut self.world,
            i,
        };
        crate::testing::run(&mut self.nodes[i], r, &mut io).unwrap();
    }

    /// One round: every live node steps its inbox and handles at most one ready. Returns
    /// whether anything moved.
    fn round(&mut self) -> bool {
        let mut busy = false;
        for i in 0..3 {
            if !self.world.up[i] {
                continue;
            }
            while let Some(b) = self.world.inboxes[i].pop_front() {
                busy = true;
                self.nodes[i].step(b);
            }
            if let Some(r) = self.nodes[i].ready() {
                busy = true;
                self.handle(i, r);
            }
        }
        busy
    }

    fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.round() {
                return;
            }
        }
        panic!("the cluster did not go quiet");
    }

    fn tick(&mut self) {
        for i in 0..3 {
            if self.world.up[i] {
                self.nodes[i].tick();
            }
        }
        self.run();
    }

    fn elect(&mut self, leader: u64, groups: impl Iterator<Item = u64>) {
        for id in groups {
            self.node(leader).campaign(g(id)).unwrap();
        }
        self.run();
    }

    fn propose(&mut self, on: u64, group: u64) {
        self.node(on).propose(g(group), "x".into()).unwrap();
    }

    fn clear_counters(&mut self) {
        self.world.sent.clear();
        self.world.writes = 0;
    }

    /// Ticks until no node has an active group; returns how many ticks that took.
    fn tick_until_quiesced(&mut self) -> u32 {
        for t in 1..=100 {
            self.tick();
            if self.nodes.iter().all(|node| node.active_group_count() == 0) {
                return t;
            }
        }
        panic!("groups did not quiesce within 100 ticks");
    }

    fn leader_and_term(&self, node: u64, group: u64) -> (Option<NodeId>, u64) {
        let s = self.nodes[node as usize - 1]
            .group_status(g(group))
            .unwrap();
        (s.leader, s.term)
    }
}

/// docs/design.md §4, coalesced heartbeats: with 10,000 active groups led by node 1 with replicas
/// on nodes 2 and 3, the tick on which they heartbeat produces exactly one heartbeat message from
/// node 1 to each peer, carrying (group, term, commit) for all 10,000 groups, and no per-group
/// heartbeat. The acknowledgements come back coalesced the same way.
#[test]
fn one_tick_sends_one_heartbeat_message_per_peer_for_10_000_groups() {
    const GROUPS: u64 = 10_000;
    let mut c = Cluster::new(GROUPS, config(false));
    c.elect(1, 1..=GROUPS);
    let heartbeat_tick = (1..=10)
        .find(|_| {
            c.clear_counters();
            c.tick();
            c.world.sent.iter().any(|b| {
                b.messages.iter().any(
                    |m| matches!(&m.body, MessageBody::Heartbeats { beats, .. } if !beats.is_empty()),
                )
            })
        })
        .expect("the groups heartbeat within 10 ticks");
    // The first round after the election's appends leaves the followers out (they just
    // heard from their leader, `Progress::skips_heartbeat`); the next one does not.
    assert!(heartbeat_tick <= 2 * c.nodes[0].config().heartbeat_interval_ticks);
    for peer in [2, 3] {
        let to_peer: Vec<_> = c
            .world
            .sent
            .iter()
            .filter(|b| b.from == n(1) && b.to == n(peer))
            .flat_map(|b| &b.messages)
            .collect();
        let heartbeat_messages: Vec<_> = to_peer
            .iter()
            .filter(|m| {
                matches!(
                    m.body,
                    MessageBody::Heartbeats { .. } | MessageBody::Heartbeat { .. }
                )
            })
            .collect();
        assert_eq!(
            heartbeat_messages.len(),
            1,
            "one heartbeat message to node {peer}"
        );
        let MessageBody::Heartbeats { beats, .. } = &heartbeat_messages[0].body else {
            panic!("not coalesced: {:?}", heartbeat_messages[0]);
        };
        assert_eq!(beats.len() as u64, GROUPS);
        assert!(
            beats
                .iter()
                .all(|b| b.term == 1 && b.commit == 1 && !b.quiesce)
        );
        let acks: Vec<_> = c
            .world
            .sent
            .iter()
            .filter(|b| b.from == n(peer) && b.to == n(1))
            .flat_map(|b| &b.messages)
            .filter(|m| {
                matches!(
                    m.body,
                    MessageBody::HeartbeatAcks { .. } | MessageBody::HeartbeatResponse { round: 0 }
                )
            })
            .collect();
        assert_eq!(
            acks.len(),
            1,
            "one coalesced acknowledgement from node {peer}"
        );
        assert!(
            matches!(&acks[0].body, MessageBody::HeartbeatAcks { acks } if acks.len() as u64 == GROUPS)
        );
    }
}

/// docs/design.md §4, quiescence: once 10,000 groups have replicated and committed everything, they
/// quiesce; over the next 1,000 ticks they emit no per-group message and no storage write,
/// and no tick visits them, while every node keeps sending one liveness beat per peer per
/// tick and sees every peer live.
#[test]
fn quiesced_groups_send_nothing_and_write_nothing_while_liveness_beats_continue() {
    const GROUPS: u64 = 10_000;
    let mut c = Cluster::new(GROUPS, config(true));
    c.elect(1, 1..=GROUPS);
    let ticks = c.tick_until_quiesced();
    assert!(ticks <= 2 * c.nodes[0].config().heartbeat_interval_ticks);
    for i in 1..=3 {
        for id in 1..=GROUPS {
            assert!(c.node(i).replica(g(id)).unwrap().is_quiesced());
        }
    }

    c.clear_counters();
    for _ in 0..1_000 {
        c.tick();
    }
    assert_eq!(c.world.writes, 0, "no storage write while quiesced");
    let mut beats_per_pair: BTreeMap<(NodeId, NodeId), u32> = BTreeMap::new();
    for b in &c.world.sent {
        for m in &b.messages {
            assert_eq!(
                m.group,
                GroupId::NODE,
                "a per-group message while quiesced: {m:?}"
            );
            assert!(
                matches!(&m.body, MessageBody::Heartbeats { beats, .. } if beats.is_empty()),
                "{m:?}"
            );
            *beats_per_pair.entry((b.from, b.to)).or_default() += 1;
        }
    }
    // Six ordered node pairs, one liveness beat each per tick.
    assert_eq!(beats_per_pair.len(), 6);
    assert!(beats_per_pair.values().all(|&count| count == 1_000));
    for i in 1..=3u64 {
        assert_eq!(c.node(i).active_group_count(), 0);
        for peer in (1..=3).filter(|p| *p != i) {
            assert_eq!(c.node(i).peer_live(n(peer)), Some(true));
        }
    }
}

/// docs/design.md §4, node liveness: when the node that leads 1,000 quiesced groups stops, the
/// survivors declare it down after the liveness timeout and every one of those groups elects
/// a new leader within two election timeouts, in staggered elections; the 1,000 groups led
/// elsewhere keep their leader and term.
#[test]
fn groups_of_a_stopped_node_elect_new_leaders_and_others_are_undisturbed() {
    let mut c = Cluster::new(2_000, config(true));
    c.elect(1, 1..=1_000);
    c.elect(2, 1_001..=2_000);
    c.tick_until_quiesced();

    c.world.up[0] = false; // node 1 stops
    let cfg = c.nodes[1].config().clone();
    let bound = 2 * cfg.election_timeout_max_ticks;
    let mut elected_at: BTreeMap<u64, u32> = BTreeMap::new();
    for t in 1..=bound {
        c.tick();
        for id in 1..=1_000 {
            if elected_at.contains_key(&id) {
                continue;
            }
            let (l2, t2) = c.leader_and_term(2, id);
            let (l3, t3) = c.leader_and_term(3, id);
            if l2.is_some() && l2 != Some(n(1)) && (l2, t2) == (l3, t3) {
                elected_at.insert(id, t);
            }
        }
        // No group led by node 2 is disturbed, at any tick.
        for id in 1_001..=2_000 {
            assert_eq!(c.leader_and_term(2, id), (Some(n(2)), 1), "group {id}");
            assert_eq!(c.leader_and_term(3, id), (Some(n(2)), 1), "group {id}");
        }
        if elected_at.len() == 1_000 {
            break;
        }
    }
    assert_eq!(
        elected_at.len(),
        1_000,
        "every group of the stopped node has a new leader within {bound} ticks"
    );
    assert_eq!(c.nodes[1].peer_live(n(1)), Some(false));
    // Staggered: the elections did not all happen on one tick.
    let first = elected_at.values().min().unwrap();
    let last = elected_at.values().max().unwrap();
    assert!(last > first, "elections were not staggered");
    println!(
        "new leaders elected between tick {first} and tick {last} after the stop (bound {bound})"
    );
    // The new leaders lead for real.
    for id in 1..=1_000 {
        let (leader, _) = c.leader_and_term(2, id);
        let leader = leader.unwrap().0;
        assert_eq!(
            c.node(leader).group_status(g(id)).unwrap().role,
            Role::Leader
        );
    }
}

/// docs/design.md §4: a proposal to a quiesced group is applied in as many delivery rounds as one
/// to an active group. Both proposals are made at once; their followers are woken by the
/// append itself, so waking costs no round trip.
#[test]
fn a_proposal_to_a_quiesced_group_is_applied_as_fast_as_to_an_active_one() {
    let mut c = Cluster::new(2, config(true));
    c.elect(1, 1..=2);
    c.tick_until_quiesced();
    // Wake group 2 and keep it active (no tick follows, so it cannot quiesce again).
    c.propose(1, 2);
    c.run();
    assert!(!c.node(1).replica(g(2)).unwrap().is_quiesced());
    assert!(c.node(1).replica(g(1)).unwrap().is_quiesced());
    let before: Vec<u64> = (1..=2)
        .map(|id| c.world.applied[0].get(&g(id)).copied().unwrap_or(0))
        .collect();

    c.propose(1, 1);
    c.propose(1, 2);
    let mut applied_round = [None, None];
    for round in 1..=20 {
        c.round();
        for (k, id) in [1u64, 2].into_iter().enumerate() {
            let now = c.world.applied[0].get(&g(id)).copied().unwrap_or(0);
            if applied_round[k].is_none() && now > before[k] {
                applied_round[k] = Some(round);
            }
        }
    }
    let (quiesced, active) = (applied_round[0].unwrap(), applied_round[1].unwrap());
    assert_eq!(
        quiesced, active,
        "quiesced group took {quiesced} rounds, active {active}"
    );
}

/// A leader whose quorum stops hearing from it: its node sees both peers down and wakes the
/// quiesced groups it leads, so CheckQuorum steps them down instead of leaving stale
/// leaders that accept proposals they can never commit.
#[test]
fn a_cut_off_node_wakes_and_steps_down_the_quiesced_groups_it_leads() {
    let mut c = Cluster::new(10, config(true));
    c.elect(1, 1..=10);
    c.tick_until_quiesced();
    c.world.up[1] = false;
    c.world.up[2] = false;
    let bound = 4 * c.nodes[0].config().election_timeout_max_ticks;
    for _ in 0..bound {
        c.tick();
    }
    for id in 1..=10 {
        let s = c.node(1).group_status(g(id)).unwrap();
        assert_ne!(
            s.role,
            Role::Leader,
            "group {id} still led by a cut-off node"
        );
    }
}

/// A node down does not keep the groups with a replica there awake: once the survivors have
/// elected where they must and caught up, every group goes quiet again without it; and
/// once it is heard again (the same life), its replicas are caught up, commits made
/// meanwhile included. Regression: a leader waited for every replica to answer before it
/// went quiet, so each group with a replica on a node down stayed awake on the survivors,
/// ticked and heartbeating, for as long as the node was down (at 100,000 groups the
/// survivors' whole box, and they declared each other down; BENCHMARKS.md).
#[test]
fn a_node_down_leaves_the_groups_quiet_and_is_caught_up_when_back() {
    let mut c = Cluster::new(20, config(true));
    c.elect(1, 1..=10);
    c.elect(3, 11..=20);
    c.tick_until_quiesced();
    c.world.up[2] = false; // node 3 stops
    c.propose(1, 1);
    c.run();
    let bound = 6 * c.nodes[0].config().election_timeout_max_ticks;
    let survivors_quiet = |c: &Cluster| c.nodes[..2].iter().all(|n| n.active_group_count() == 0);
    let mut quiet_at = None;
    for t in 1..=bound {
        c.tick();
        if c.nodes[0].peer_live(n(3)) == Some(false) && survivors_quiet(&c) {
            quiet_at = Some(t);
            break;
        }
    }
    assert!(quiet_at.is_some(), "the survivors' groups stayed awake");
    for id in 11..=20 {
        let (leader, _) = c.leader_and_term(1, id);
        assert!(
            leader.is_some_and(|l| l != n(3)),
            "group {id} led by {leader:?}"
        );
    }
    c.world.up[2] = true; // heard again, the same life
    let caught_up = |c: &Cluster| c.world.applied[2].get(&g(1)) == Some(&1);
    for _ in 0..bound {
        c.tick();
        if caught_up(&c) && c.nodes.iter().all(|n| n.active_group_count() == 0) {
            break;
        }
    }
    assert!(
        caught_up(&c),
        "node 3 never applied the write made while it was down"
    );
    assert!(survivors_quiet(&c), "quiet again once caught up");
}

/// A node down wakes only the groups that need it: those it led (their followers elect),
/// not the quiesced ones led by a survivor with a replica there, whose quorum is on live
/// nodes. Regression: every quiesced leader with a voter on the node down woke to let
/// CheckQuorum judge it, sent a round of heartbeats and went quiet again; at 100,000
/// groups that burst made the survivors declare each other down (BENCHMARKS.md,
/// 2026-12-06 evening). A leader whose live voters are no quorum still wakes
/// (`a_cut_off_node_wakes_and_steps_down_the_quiesced_groups_it_leads`).
#[test]
fn a_node_down_wakes_only_the_groups_it_led() {
    let mut c = Cluster::new(20, config(true));
    c.elect(1, 1..=10);
    c.elect(3, 11..=20);
    c.tick_until_quiesced();
    c.world.up[2] = false; // node 3 stops
    let bound = 6 * c.nodes[0].config().election_timeout_max_ticks;
    let mut woke = BTreeMap::new();
    for _ in 0..bound {
        c.tick();
        for id in 1..=20 {
            for node in 0..2 {
                if !c.nodes[node].replica(g(id)).unwrap().is_quiesced() {
                    *woke.entry(id).or_insert(0) += 1;
                }
            }
        }
    }
    assert_eq!(
        c.nodes[0].peer_live(n(3)),
        Some(false),
        "never declared down"
    );
    assert!(
        woke.keys().all(|id| *id > 10),
        "groups led by node 1 woke: {woke:?}"
    );
    assert_eq!(
        woke.keys().copied().collect::<Vec<_>>(),
        (11..=20).collect::<Vec<_>>(),
        "the groups node 3 led elect again"
    );
}

/// docs/design.md §4 per-group cost: a replica's inline state stays small (it is what every
/// quiesced group costs, besides its log tail and, on a leader, one record per follower).
#[test]
fn group_state_stays_small() {
    let size = std::mem::size_of::<crate::group::Replica>();
    assert!(size <= 384, "a Replica is {size} bytes");
}

/// Dissertation §10.2.1 through the node: while a ready's write is in flight, `take_sends`
/// lets the leader's appends of new proposals and its liveness beats leave at once, without
/// waiting for the fsync, and holds back everything that depends on a write.
#[test]
fn appends_and_beats_leave_while_a_write_is_in_flight() {
    let mut c = Cluster::new(1, config(false));
    c.elect(1, 1..=1);
    c.propose(1, 1);
    let r = c.node(1).ready().expect("the proposal's ready");
    assert!(c.node(1).is_write_in_flight());
    // A second proposal and a tick arrive while the first write is in flight.
    c.propose(1, 1);
    c.node(1).tick();
    assert!(c.node(1).ready().is_none(), "one write at a time");
    let sends = c.node(1).take_sends();
    assert_eq!(sends.iter().map(|b| b.to).collect::<Vec<_>>(), [n(2), n(3)]);
    for b in &sends {
        let appended: Vec<u64> = b
            .messages
            .iter()
            .filter_map(|m| match &m.body {
                MessageBody::Append { entries, .. } => Some(entries.iter().map(|e| e.index)),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            appended,
            [3],
            "the second proposal's entry leaves before any write"
        );
        assert!(b.messages.iter().all(|m| matches!(
            m.body,
            MessageBody::Append { .. } | MessageBody::Heartbeats { .. }
        )));
        assert!(
            b.messages
                .iter()
                .any(|m| matches!(m.body, MessageBody::Heartbeats { .. })),
            "the liveness beat owed by the tick"
        );
    }
    // Nothing more to send until new input.
    assert!(c.node(1).take_sends().is_empty());
    let number = r.number;
    c.handle(0, r);
    let next = c.node(1).ready().expect("the second entry is written next");
    assert_eq!(next.number, number + 1);
    assert_eq!(next.write.entry_count(), 1);
}
