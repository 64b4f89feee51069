//! Replacing every node of a cluster, one at a time, while clients write (issue: membership
//! changes). Three nodes host 100 groups of a key-value store; three new machines join, and
//! each old node is replaced by a new one in every group (`MembershipChange::Replace`:
//! the new replica catches up as a learner, then a joint configuration swaps the voters).
//! Clients put and get through the groups' leaders all along.
//!
//! Checked at the end: no acknowledged write is lost and the whole history is linearizable
//! (the testkit's checker, with final reads of every key); every group's voters are exactly
//! the new nodes; every old replica was reported removed (`Event::ReplicaRemoved`) and
//! deleted.
//!
//! Deterministic: the sans-IO nodes are driven by hand, in rounds (deliver every message,
//! take every ready), with a logical clock; randomness comes from one seed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use multiraft_core::node::{Outcome, Resolution};
use multiraft_core::testing::{self, Io};
use multiraft_core::{
    Apply, Bytes, Config, Event, GroupId, Membership, MembershipChange, MessageBatch, Node, NodeId,
    RequestId, SnapshotChunk, SnapshotError, Storage, TakeSnapshot,
};
use multiraft_testkit::MemStorage;
use multiraft_testkit::sim::linearizability::{
    KvOp, KvOperation, KvOutcome, KvResult, Linearizability, check_kv,
};
use multiraft_testkit::sim::{KvReplica, SimReplica, SimRng};

const GROUPS: u64 = 100;
const KEYS_PER_GROUP: u64 = 2;
/// Rounds between two ticks of every node: several message round trips per tick.
const ROUNDS_PER_TICK: u64 = 4;
/// Client operations started per round.
const OPS_PER_ROUND: usize = 8;
/// Bound on rounds for each phase: a phase that takes longer fails the test.
const MAX_ROUNDS: u64 = 20_000;

/// Polls a future that completes at once (`MemStorage` never waits).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("MemStorage futures complete at once"),
    }
}

/// The store's command encoding (the simulator's key-value app decodes it).
fn encode(op: &KvOp) -> Bytes {
    let (tag, key, a) = match op {
        KvOp::Put { key, value } => (0u8, *key, *value),
        KvOp::Get { key } => (1, *key, 0),
        KvOp::Cas { .. } => unreachable!("the test puts and gets only"),
    };
    let mut v = vec![tag];
    for x in [key, a, 0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

/// What the nodes did, apart from the nodes themselves (so that a node can be taken out
/// while its ready is done).
#[derive(Default)]
struct World {
    disks: BTreeMap<u64, MemStorage>,
    stores: BTreeMap<(u64, GroupId), KvReplica>,
    /// Snapshot bytes read back so far while a replica is restored.
    restoring: BTreeMap<(u64, GroupId), Vec<u8>>,
    queue: Vec<MessageBatch>,
    round: u64,
    /// The history's clock: one tick per invocation and per return, so that no two
    /// events of the history share a time.
    clock: u64,
    history: Vec<KvOperation>,
    /// Client operations without an outcome: (node, request) → place in `history`.
    pending: HashMap<(u64, RequestId), usize>,
    /// Membership changes without an outcome: (node, request) → group.
    changes: HashMap<(u64, RequestId), GroupId>,
    /// Groups whose current change ended, with how.
    ended: BTreeMap<GroupId, Result<Membership, String>>,
    /// Replicas reported removed and not yet deleted.
    removed: BTreeSet<(u64, GroupId)>,
    /// Every (node, group) ever reported removed.
    reported_removed: BTreeSet<(u64, GroupId)>,
    /// Known leader of each group (from `LeaderChanged` events).
    leaders: BTreeMap<GroupId, (u64, Option<NodeId>)>,
}

/// One node's side of a ready.
struct NodeIo<'a> {
    world: &'a mut World,
    node: u64,
}

impl Io for NodeIo<'_> {
    fn send(&mut self, batch: MessageBatch) {
        self.world.queue.push(batch);
    }

    fn apply(&mut self, apply: Apply) {
        let (w, n) = (&mut *self.world, self.node);
        let store = w.stores.entry((n, apply.group)).or_default();
        for (index, data, request) in apply.commands() {
            let result = store.apply(index, data).expect("a command of the store");
            if let Some(request) = request
                && let Some(k) = w.pending.remove(&(n, request))
            {
                w.clock += 1;
                w.history[k].returned_at = w.clock;
                w.history[k].outcome = KvOutcome::Ok(result);
            }
        }
    }

    fn outcome(&mut self, o: Outcome) {
        let (w, n) = (&mut *self.world, self.node);
        if let Some(k) = w.pending.remove(&(n, o.request)) {
            w.clock += 1;
            w.history[k].returned_at = w.clock;
            w.history[k].outcome = match o.resolution {
                Resolution::Rejected(_) => KvOutcome::Failed,
                _ => KvOutcome::Indeterminate,
            };
        }
        if let Some(group) = w.changes.remove(&(n, o.request)) {
            let result = match o.resolution {
                Resolution::MembershipChanged(m) => Ok(m),
                other => Err(format!("{other:?}")),
            };
            w.ended.insert(group, result);
        }
    }

    fn event(&mut self, e: Event) {
        let (w, n) = (&mut *self.world, self.node);
        match e {
            Event::ReplicaRemoved { group } => {
                w.removed.insert((n, group));
                w.reported_removed.insert((n, group));
            }
            Event::LeaderChanged {
                group,
                term,
                leader,
            } => {
                let known = w.leaders.entry(group).or_insert((0, None));
                if term >= known.0 {
                    *known = (term, leader);
                }
            }
            _ => {}
        }
    }

    fn snapshot(&mut self, take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        let store = self
            .world
            .stores
            .entry((self.node, take.group))
            .or_default();
        let data = store.snapshot().ok_or(SnapshotError::Unsupported)?;
        Ok(vec![Bytes::from(data)])
    }

    fn snapshot_chunk(&mut self, group: GroupId, index: u64, seq: u32) -> Option<SnapshotChunk> {
        let disk = &self.world.disks[&self.node];
        now(disk.snapshot_chunk(group, index, seq)).ok().flatten()
    }

    fn restore(&mut self, group: GroupId, chunk: &SnapshotChunk) {
        let key = (self.node, group);
        let buffer = self.world.restoring.entry(key).or_default();
        buffer.extend_from_slice(&chunk.data);
        if chunk.last {
            let data = self.world.restoring.remove(&key).unwrap_or_default();
            let mut store = KvReplica::default();
            assert!(store.restore(&data), "{key:?}: a snapshot of the store");
            self.world.stores.insert(key, store);
        }
    }
}

struct Cluster {
    nodes: BTreeMap<u64, Node>,
    /// Whether each round starts new client operations.
    clients: bool,
    world: World,
    rng: SimRng,
    config: Config,
}

impl Cluster {
    fn new(seed: u64) -> Cluster {
        let mut config = Config::default();
        config.strict = true;
        // Small thresholds, so that snapshots are taken and new replicas may be caught up
        // by InstallSnapshot as well as by appends.
        config.snapshot_entries = 64;
        config.compaction_lag_entries = 8;
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            clients: true,
            world: World::default(),
            rng: SimRng::new(seed),
            config,
        };
        for n in 1..=3 {
            c.add_node(n);
            for g in 1..=GROUPS {
                let node = c.nodes.get_mut(&n).expect("added");
                node.create_group(GroupId(g), Membership::voters([1, 2, 3]))
                    .expect("created");
            }
        }
        c
    }

    fn add_node(&mut self, n: u64) {
        let node = Node::new(NodeId(n), self.config.clone(), n).expect("valid config");
        self.nodes.insert(n, node);
        self.world.disks.insert(n, MemStorage::new());
    }

    /// One round: every queued batch delivered, every node's readies done, a tick every
    /// `ROUNDS_PER_TICK` rounds, and new client operations.
    fn round(&mut self) {
        self.world.round += 1;
        for batch in std::mem::take(&mut self.world.queue) {
            if let Some(node) = self.nodes.get_mut(&batch.to.0) {
                node.step(batch);
            }
        }
        if self.world.round.is_multiple_of(ROUNDS_PER_TICK) {
            for node in self.nodes.values_mut() {
                node.tick();
            }
        }
        for _ in 0..if self.clients { OPS_PER_ROUND } else { 0 } {
            self.client_op(None);
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for n in ids {
            self.settle(n);
        }
        for (n, group) in std::mem::take(&mut self.world.removed) {
            if let Some(node) = self.nodes.get_mut(&n)
                && node.replica(group).is_some()
            {
                node.remove_group(group).expect("hosted");
                self.world.stores.remove(&(n, group));
            }
        }
    }

    /// Does node `n`'s readies until it has none.
    fn settle(&mut self, n: u64) {
        let Some(mut node) = self.nodes.remove(&n) else {
            return;
        };
        let disk = self.world.disks[&n].clone();
        while let Some(ready) = node.ready() {
            let mut io = NodeIo {
                world: &mut self.world,
                node: n,
            };
            let mut in_flight = testing::begin(&mut node, ready, &mut io);
            now(disk.write(in_flight.take_write())).expect("write");
            in_flight.acknowledge(&mut node).deliver(&mut node, &mut io);
        }
        self.nodes.insert(n, node);
    }

    /// The node that leads `group`, as the latest `LeaderChanged` says.
    fn leader(&self, group: GroupId) -> Option<u64> {
        let leader = self.world.leaders.get(&group)?.1?.0;
        self.nodes.contains_key(&leader).then_some(leader)
    }

    /// A client operation on a random group: a put of a fresh value, or a get (`Some`: a
    /// get of that key, for the final reads), proposed through the group's leader.
    fn client_op(&mut self, get: Option<(GroupId, u64)>) -> bool {
        let (group, key, op) = match get {
            Some((group, key)) => (group, key, KvOp::Get { key }),
            None => {
                let group = GroupId(1 + self.rng.below(GROUPS));
                let key = self.rng.below(KEYS_PER_GROUP);
                let op = if self.rng.chance(700) {
                    KvOp::Put {
                        key,
                        value: self.world.history.len() as u64 + 1,
                    }
                } else {
                    KvOp::Get { key }
                };
                (group, key, op)
            }
        };
        let Some(n) = self.leader(group) else {
            return false;
        };
        let node = self.nodes.get_mut(&n).expect("leader hosted");
        let Ok(request) = node.propose(group, encode(&op)) else {
            return false;
        };
        let client = self.world.history.len() as u64;
        self.world.clock += 1;
        let mut op = KvOperation::new(client, op, self.world.clock, 0, KvOutcome::Indeterminate);
        // Keys of different groups never collide in the checker.
        op.op = match op.op {
            KvOp::Put { value, .. } => KvOp::Put {
                key: group.0 * KEYS_PER_GROUP + key,
                value,
            },
            _ => KvOp::Get {
                key: group.0 * KEYS_PER_GROUP + key,
            },
        };
        self.world
            .pending
            .insert((n, request), self.world.history.len());
        self.world.history.push(op);
        true
    }

    /// Runs rounds until `done` holds.
    fn run_until(&mut self, what: &str, mut done: impl FnMut(&Cluster) -> bool) {
        for _ in 0..MAX_ROUNDS {
            if done(self) {
                return;
            }
            self.round();
        }
        panic!("{what}: not done within {MAX_ROUNDS} rounds");
    }

    /// Replaces `old` by `new` in every group, each change retried until it completes.
    fn replace(&mut self, old: u64, new: u64) {
        self.add_node(new);
        let mut todo: BTreeSet<GroupId> = (1..=GROUPS).map(GroupId).collect();
        let mut joined = BTreeSet::new();
        for _ in 0..MAX_ROUNDS {
            if todo.is_empty() {
                return;
            }
            for group in todo.clone() {
                // A change that failed is tried again below.
                if let Some(Ok(m)) = self.world.ended.remove(&group) {
                    assert!(m.voters.contains(&NodeId(new)) && !m.contains(NodeId(old)));
                    todo.remove(&group);
                    continue;
                }
                if self.world.changes.values().any(|g| *g == group) {
                    continue; // in progress
                }
                let Some(leader) = self.leader(group) else {
                    continue;
                };
                let current = self.nodes[&leader]
                    .replica(group)
                    .expect("leader hosts")
                    .membership()
                    .clone();
                if !current.contains(NodeId(old)) && current.voters.contains(&NodeId(new)) {
                    todo.remove(&group); // an earlier attempt completed after all
                    continue;
                }
                if joined.insert(group) {
                    let node = self.nodes.get_mut(&new).expect("added");
                    node.join_group(group, current).expect("joins");
                }
                let change = MembershipChange::Replace {
                    old: NodeId(old),
                    new: NodeId(new),
                };
                let node = self.nodes.get_mut(&leader).expect("leader");
                if let Ok(request) = node.change_membership(group, change) {
                    self.world.changes.insert((leader, request), group);
                }
            }
            self.round();
        }
        panic!("replacing {old} by {new}: {} groups left", todo.len());
    }
}

#[test]
fn every_node_of_a_100_group_cluster_is_replaced_while_clients_write() {
    let mut c = Cluster::new(7);
    c.run_until("leaders elected", |c| {
        (1..=GROUPS).all(|g| c.leader(GroupId(g)).is_some())
    });
    for (old, new) in [(1, 4), (2, 5), (3, 6)] {
        c.replace(old, new);
        // The old node's replicas are reported removed and deleted, then it goes.
        c.run_until("old replicas removed", |c| c.nodes[&old].group_count() == 0);
        // Stopped for good: its requests without an outcome end indeterminate.
        let mut node = c.nodes.remove(&old).expect("old node");
        let mut io = NodeIo {
            world: &mut c.world,
            node: old,
        };
        for o in node.stop() {
            io.outcome(o);
        }
        c.world.leaders.retain(|_, (_, l)| *l != Some(NodeId(old)));
    }
    // Clients keep writing a while, then read every key back; every operation ends.
    for _ in 0..200 {
        c.round();
    }
    c.clients = false;
    c.run_until("every write answered", |c| c.world.pending.is_empty());
    for g in 1..=GROUPS {
        for key in 0..KEYS_PER_GROUP {
            c.run_until("a leader for the final read", |c| {
                c.leader(GroupId(g)).is_some()
            });
            assert!(
                c.client_op(Some((GroupId(g), key))),
                "final read of g{g}/{key}"
            );
        }
    }
    c.run_until("every operation answered", |c| c.world.pending.is_empty());

    let new: BTreeSet<NodeId> = [4, 5, 6].into_iter().map(NodeId).collect();
    for g in 1..=GROUPS {
        for n in 4..=6 {
            let m = c.nodes[&n]
                .replica(GroupId(g))
                .expect("hosted")
                .membership();
            assert_eq!(m.voters, new, "g{g} on n{n}");
            assert!(
                m.outgoing.is_empty() && m.learners.is_empty(),
                "g{g} on n{n}: {m:?}"
            );
        }
    }
    for old in 1..=3 {
        for g in 1..=GROUPS {
            assert!(
                c.world.reported_removed.contains(&(old, GroupId(g))),
                "n{old}'s replica of g{g} was not reported removed"
            );
        }
    }
    let history = &c.world.history;
    let acknowledged = history
        .iter()
        .filter(|o| matches!(o.outcome, KvOutcome::Ok(KvResult::Put)))
        .count();
    let indeterminate = history
        .iter()
        .filter(|o| o.outcome == KvOutcome::Indeterminate)
        .count();
    eprintln!(
        "{} operations, {acknowledged} acknowledged writes, {indeterminate} indeterminate, {} rounds, {} replicas reported removed",
        history.len(),
        c.world.round,
        c.world.reported_removed.len()
    );
    assert!(
        acknowledged > 500,
        "only {acknowledged} acknowledged writes"
    );
    assert_eq!(check_kv(history), Linearizability::Ok);
    // Every acknowledged write is still there: the final reads are in the history, and
    // the last acknowledged put of each key (no put overlaps the final reads) is what they
    // read unless a later indeterminate put may have overwritten it.
    let mut last_put: HashMap<u64, (u64, u64)> = HashMap::new();
    for o in history {
        if let (KvOp::Put { key, value }, KvOutcome::Ok(_)) = (&o.op, &o.outcome) {
            let e = last_put.entry(*key).or_insert((0, 0));
            if o.returned_at >= e.0 {
                *e = (o.returned_at, *value);
            }
        }
    }
    let finals = &history[history.len() - (GROUPS * KEYS_PER_GROUP) as usize..];
    for o in finals {
        let (KvOp::Get { key }, KvOutcome::Ok(KvResult::Get(read))) = (&o.op, &o.outcome) else {
            panic!("final read {o:?} did not complete");
        };
        if let Some((_, value)) = last_put.get(key) {
            assert!(read.is_some(), "key {key}: acknowledged write {value} lost");
        }
    }
}
