//! Micro-benchmarks of the node layer, sans IO: three [`Node`]s in one thread exchange
//! batches directly, every group led by node 1, no storage, driver or clients. One
//! iteration is a round: node 1 takes one proposal for each of up to 1,000 active groups
//! (the next ones in turn), then the three nodes step, ready and advance until all is
//! quiet (committed and applied everywhere). Each benchmark times one part of the round —
//! [`Node::step`], [`Node::ready`] or [`Node::advance`] summed over the three nodes — or the
//! whole round, and reports it per proposal. Hosted groups: 1, 1,000 and 100,000; a round
//! never touches more than 1,000 of them, so the 100,000-group figures show what idle
//! hosted groups cost a busy ready.
//!
//! A second set, `node_busy/<G>_groups/round`, proposes to every hosted group in every
//! round (500 and 4,096 groups): the same work per proposal at both sizes, so what grows
//! from one to the other is what a busy group's state costs once it no longer fits the
//! caches (BENCHMARKS.md, "What the memory costs at thousands of busy groups").
//!
//! `cargo bench -p multiraft-core --bench node` (add `-- round` to run only the whole
//! rounds, `-- node_busy` only the busy set, `-- --quick` for a short run).

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiraft_core::testing::{Io, begin};
use multiraft_core::{
    Bytes, Config, GroupId, Membership, MessageBatch, Node, NodeId, SnapshotError, TakeSnapshot,
};

/// Hosted group counts benchmarked.
const HOSTED: [u64; 3] = [1, 1_000, 100_000];
/// Groups proposed to per round at most.
const ACTIVE: u64 = 1_000;
/// Hosted group counts of the busy set, where every hosted group is proposed to in every
/// round: below and well above what the caches of this kind of machine hold.
const BUSY: [u64; 2] = [500, 4_096];

/// The round's parts a benchmark times.
#[derive(Clone, Copy)]
enum Part {
    Step,
    Ready,
    Advance,
    Round,
}

/// Batches in flight.
#[derive(Default)]
struct Wires {
    sent: Vec<MessageBatch>,
}

impl Io for Wires {
    fn send(&mut self, batch: MessageBatch) {
        self.sent.push(batch);
    }

    /// An empty snapshot: the logs are compacted, so memory stays flat however long
    /// criterion runs.
    fn snapshot(&mut self, _take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        Ok(Vec::new())
    }
}

struct Cluster {
    nodes: Vec<Node>,
    wires: Wires,
    groups: u64,
    /// Groups proposed to per round.
    active: u64,
    next: u64,
    payload: Bytes,
}

/// Time spent in each part during one round.
#[derive(Default)]
struct Spent {
    step: Duration,
    ready: Duration,
    advance: Duration,
}

impl Cluster {
    fn new(groups: u64, active: u64) -> Cluster {
        // Elections only when asked: a round never ticks.
        let config = Config::default();
        let mut nodes: Vec<Node> = (1..=3)
            .map(|i| Node::new(NodeId(i), config.clone(), i).expect("valid config"))
            .collect();
        let voters = Membership::voters([1, 2, 3]);
        for g in 1..=groups {
            for n in &mut nodes {
                n.create_group(GroupId(g), voters.clone())
                    .expect("new group");
            }
        }
        let mut c = Cluster {
            nodes,
            wires: Wires::default(),
            groups,
            active: active.min(groups),
            next: 0,
            payload: Bytes::from_static(&[7; 16]),
        };
        c.settle(&mut Spent::default());
        for g in 1..=groups {
            c.nodes[0].campaign(GroupId(g)).expect("campaign");
        }
        c.settle(&mut Spent::default());
        c
    }

    /// Steps, readies and advances every node until no batch is in flight and no node has
    /// a ready.
    fn settle(&mut self, spent: &mut Spent) {
        loop {
            let mut busy = false;
            for batch in std::mem::take(&mut self.wires.sent) {
                busy = true;
                let node = &mut self.nodes[batch.to.0 as usize - 1];
                let t = Instant::now();
                node.step(batch);
                spent.step += t.elapsed();
            }
            for node in &mut self.nodes {
                loop {
                    let t = Instant::now();
                    let ready = node.ready();
                    spent.ready += t.elapsed();
                    let Some(ready) = ready else { break };
                    busy = true;
                    let in_flight = begin(node, ready, &mut self.wires);
                    let t = Instant::now();
                    let durable = in_flight.acknowledge(node);
                    spent.advance += t.elapsed();
                    durable.deliver(node, &mut self.wires);
                }
            }
            if !busy {
                return;
            }
        }
    }

    /// One round: a proposal to each of the next `active` groups, then settle. Returns the
    /// time spent per part and the proposals made.
    fn round(&mut self, spent: &mut Spent) -> u64 {
        let active = self.active;
        for _ in 0..active {
            let group = GroupId(self.next % self.groups + 1);
            self.next += 1;
            self.nodes[0]
                .propose(group, self.payload.clone())
                .expect("the leader takes it");
        }
        self.settle(spent);
        active
    }
}

/// Every part of the round, at each hosted count with up to `ACTIVE` busy groups.
fn node_layer(c: &mut Criterion) {
    let parts = [
        ("step", Part::Step),
        ("ready", Part::Ready),
        ("advance", Part::Advance),
        ("round", Part::Round),
    ];
    for hosted in HOSTED {
        rounds(c, "node", hosted, ACTIVE, &parts);
    }
}

/// Every hosted group busy: whole rounds only.
fn busy_groups(c: &mut Criterion) {
    for hosted in BUSY {
        rounds(c, "node_busy", hosted, hosted, &[("round", Part::Round)]);
    }
}

/// One benchmark group, `<set>/<hosted>_groups`, timing each of `parts` over rounds of a
/// cluster hosting `hosted` groups with `active` of them proposed to per round.
fn rounds(c: &mut Criterion, set: &str, hosted: u64, active: u64, parts: &[(&str, Part)]) {
    let mut cluster = Cluster::new(hosted, active);
    let mut group = c.benchmark_group(format!("{set}/{hosted}_groups"));
    group.throughput(Throughput::Elements(cluster.active));
    group.sample_size(20);
    for &(name, part) in parts {
        group.bench_function(BenchmarkId::new(name, hosted), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut spent = Spent::default();
                    let t = Instant::now();
                    cluster.round(&mut spent);
                    let round = t.elapsed();
                    total += match part {
                        Part::Step => spent.step,
                        Part::Ready => spent.ready,
                        Part::Advance => spent.advance,
                        Part::Round => round,
                    };
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, node_layer, busy_groups);
criterion_main!(benches);
