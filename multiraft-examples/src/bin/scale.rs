//! How the cost of a node grows with the number of groups: a 3-node cluster in one process.
//!
//! `cargo run --release -p multiraft-examples --bin scale -- [--groups 10000] [--idle-secs 10] [--skip-raft] [--skip-driver] [--current-thread] [--catch-up N]`
//!
//! Two phases, each on a fresh cluster (skip either; run them apart for RSS figures that the
//! other phase's freed memory does not distort):
//!
//! 1. **Raft layer** (three sans-IO `Node`s in this thread, writes discarded): time to create every
//!    group on every node and elect a leader per group (leaders spread round-robin with `campaign`)
//!    until every group is quiesced, 10,000 groups at a time; resident memory added per group
//!    replica (an upper bound: it includes what the allocator kept from the election traffic); the
//!    messages one node sends another per tick once idle.
//! 2. **Driver** (three `MultiRaft` nodes on the testkit's in-memory storage and network,
//!    real 50 ms ticks): the same groups created and elected through the API in the same
//!    chunks (each chunk quiesced before the next is created), then the
//!    process's CPU use while idle, from /proc over `--idle-secs` seconds of real time, and
//!    the batches one node sends another per second. The three event loops share a tokio
//!    runtime of two worker threads, or one thread with `--current-thread`.
//!
//! 3. **Catch-up** (`--catch-up N`, after the idle measurement): node 3 shut down while
//!    every group takes `N` commands through the other two, with snapshots every `N / 2`
//!    entries so that every log is compacted past node 3's; then node 3 started again from
//!    its storage, and the time until every group is quiet, each replica on node 3 caught
//!    up by a snapshot transfer (checked: it applied what node 1 did).
//!
//! `--help` lists the flags.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use multiraft_core::testing::{self, Io};
use multiraft_core::{
    Bytes, Config, GroupId, Membership, MessageBatch, MessageBody, MultiRaft, Node, NodeId,
};
use multiraft_examples::CountingMachine;
use multiraft_examples::measure::{process_cpu_secs, rss_bytes};
use multiraft_testkit::{MemNetwork, MemStorage};

/// How the cost of a node grows with the number of groups: a 3-node cluster in one process.
#[derive(Parser)]
#[command(name = "scale", args_override_self = true)]
struct Args {
    /// Groups replicated on all three nodes (at least 1)
    #[arg(long, default_value_t = 10_000)]
    groups: u64,
    /// Seconds of real time the driver phase measures idle CPU over (at least 1)
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Skip the driver phase (MultiRaft nodes, real ticks)
    #[arg(long)]
    skip_driver: bool,
    /// Skip the raft-layer phase (sans-IO nodes in this thread)
    #[arg(long)]
    skip_raft: bool,
    /// Run the driver phase on a current-thread tokio runtime instead of two worker threads
    #[arg(long)]
    current_thread: bool,
    /// After the idle measurement, abort node 3 and measure the two survivors' CPU over
    /// this many seconds (0: not), in windows of 10 s: the groups it led elect new leaders
    /// on the survivors, and the others should stay quiet
    #[arg(long, default_value_t = 0)]
    down_secs: u64,
    /// After the idle measurement (and before any `--down-secs`), drain node 1 (move the
    /// leadership of every group it leads to the others) and measure until every group is
    /// quiet again
    #[arg(long)]
    drain: bool,
    /// After the idle measurement (and the drain, if asked; instead of `--down-secs`): shut
    /// node 3 down, propose this many commands to every group on the other two, start node 3
    /// again from its storage and measure until every group is quiet. Snapshots are taken
    /// every half that many entries, so every group's log is compacted past node 3's and
    /// each of its replicas catches up by a snapshot (0: not)
    #[arg(long, default_value_t = 0)]
    catch_up: u64,
}

fn parse_args() -> Args {
    let mut a = Args::parse();
    a.groups = a.groups.max(1);
    a.idle_secs = a.idle_secs.max(1);
    a
}

/// Three sans-IO nodes delivered by hand; writes are acknowledged and discarded.
struct Layer {
    nodes: Vec<Node>,
    wire: Wire,
}

/// The network between the three nodes, counting what it carries.
struct Wire {
    inboxes: Vec<VecDeque<MessageBatch>>,
    /// Messages sent from node i to node j since the last reset, and how many were per group.
    messages: [[u64; 3]; 3],
    per_group_messages: u64,
}

impl Io for Wire {
    fn send(&mut self, b: MessageBatch) {
        let (f, t) = (b.from.0 as usize - 1, b.to.0 as usize - 1);
        for m in &b.messages {
            self.messages[f][t] += 1;
            if m.group != GroupId::NODE
                || matches!(&m.body, MessageBody::Heartbeats { beats, .. } if !beats.is_empty())
            {
                self.per_group_messages += 1;
            }
        }
        self.inboxes[t].push_back(b);
    }
}

impl Layer {
    fn run(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..3 {
                while let Some(b) = self.wire.inboxes[i].pop_front() {
                    busy = true;
                    self.nodes[i].step(b);
                }
                if let Some(r) = self.nodes[i].ready() {
                    busy = true;
                    // Nothing fails: the writes are discarded.
                    let _ = testing::run(&mut self.nodes[i], r, &mut self.wire);
                }
            }
            if !busy {
                return;
            }
        }
    }

    fn tick(&mut self) {
        for n in &mut self.nodes {
            n.tick();
        }
        self.run();
    }
}

fn raft_layer(groups: u64) -> Result<(), String> {
    let rss0 = rss_bytes().unwrap_or(0);
    let t0 = Instant::now();
    let mut layer = Layer {
        nodes: (1..=3)
            .map(|i| Node::new(NodeId(i), Config::default(), i).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?,
        wire: Wire {
            inboxes: vec![VecDeque::new(); 3],
            messages: [[0; 3]; 3],
            per_group_messages: 0,
        },
    };
    // Groups are brought up in chunks, as a node would load or create them: the memory the
    // election traffic of one chunk takes is reused by the next, so the RSS figure below is
    // dominated by what the groups keep, not by a burst of messages.
    const CHUNK: u64 = 10_000;
    let members = Membership::voters([1, 2, 3]);
    let mut created = Duration::ZERO;
    let mut ticks = 0;
    let mut first = 1;
    while first <= groups {
        let last = (first + CHUNK - 1).min(groups);
        let t = Instant::now();
        for node in &mut layer.nodes {
            for g in first..=last {
                node.create_group(GroupId(g), members.clone())
                    .map_err(|e| e.to_string())?;
            }
        }
        layer.run();
        created += t.elapsed();
        for g in first..=last {
            let leader = (g % 3) as usize;
            layer.nodes[leader]
                .campaign(GroupId(g))
                .map_err(|e| e.to_string())?;
        }
        layer.run();
        while layer.nodes.iter().any(|n| n.active_group_count() > 0) {
            layer.tick();
            ticks += 1;
            if ticks > 100_000 {
                return Err("groups did not quiesce".into());
            }
        }
        first = last + 1;
    }
    let elected = t0.elapsed();
    let rss = rss_bytes().unwrap_or(0).saturating_sub(rss0);
    // Idle: CPU time (not wall time, which other processes on the machine distort) of
    // ticking all three nodes, delivering their liveness beats.
    layer.wire.messages = [[0; 3]; 3];
    layer.wire.per_group_messages = 0;
    let idle_ticks = 2_000;
    let cpu0 = process_cpu_secs().unwrap_or(0.0);
    for _ in 0..idle_ticks {
        layer.tick();
    }
    let per_tick_us = (process_cpu_secs().unwrap_or(0.0) - cpu0) * 1e6 / f64::from(idle_ticks);
    let pair = layer.wire.messages[0][1] as f64 / f64::from(idle_ticks);
    println!(
        "scale raft-layer: groups={groups} replicas={}: created in {:.2} s, created+elected+quiesced in {:.2} s ({ticks} ticks in all), \
         RSS {:.0} bytes per replica, idle: {pair:.2} messages per node pair per tick, {} per-group messages, {per_tick_us:.1} us CPU per tick for all 3 nodes",
        groups * 3,
        created.as_secs_f64(),
        elected.as_secs_f64(),
        rss as f64 / (groups * 3) as f64,
        layer.wire.per_group_messages,
    );
    Ok(())
}

async fn driver(args: &Args) -> Result<(), String> {
    let (groups, idle_secs, down_secs) = (args.groups, args.idle_secs, args.down_secs);
    let rss0 = rss_bytes().unwrap_or(0);
    let t0 = Instant::now();
    let network = MemNetwork::new();
    let mut config = Config::default();
    if args.catch_up > 0 {
        // Compacted past node 3's log by the commands proposed while it is down: a
        // snapshot every half of them, kept back by a quarter.
        config.snapshot_entries = (args.catch_up / 2).max(1);
        config.compaction_lag_entries = args.catch_up / 4;
    }
    let storages: Vec<MemStorage> = (0..3).map(|_| MemStorage::new()).collect();
    let mut nodes = Vec::new();
    for (i, storage) in (1..=3).zip(&storages) {
        nodes.push(start_node(i, &config, storage.clone(), &network).await?);
    }
    let nodes = Arc::new(nodes);
    // Groups are brought up CHUNK at a time, as in the raft-layer phase: a chunk is created
    // on every node, its leaders are placed with `campaign`, and the next chunk starts once
    // the chunk has quiesced. Creating everything first would leave a million groups
    // active (ticked every 50 ms) and electing on their own timers all at once.
    const CHUNK: u64 = 10_000;
    let mut created = Duration::ZERO;
    let mut first = 1;
    while first <= groups {
        let last = (first + CHUNK - 1).min(groups);
        let t = Instant::now();
        for_each_group(&nodes, first, last, |nodes, g| async move {
            let members = Membership::voters([1, 2, 3]);
            for n in nodes.iter() {
                n.create_group(GroupId(g), members.clone())
                    .await
                    .map_err(|e| format!("create {g}: {e}"))?;
            }
            Ok(())
        })
        .await?;
        created += t.elapsed();
        for_each_group(&nodes, first, last, |nodes, g| async move {
            nodes[(g % 3) as usize]
                .campaign(GroupId(g))
                .await
                .map_err(|e| format!("campaign {g}: {e}"))
        })
        .await?;
        wait_quiesced(&nodes).await?;
        first = last + 1;
    }
    let elected = t0.elapsed();
    let rss = rss_bytes().unwrap_or(0).saturating_sub(rss0);
    eprintln!("scale driver: {groups} groups quiesced; measuring idle for {idle_secs} s");
    let cpu0 = process_cpu_secs().unwrap_or(0.0);
    let sent0 = network.batches_sent();
    let t_idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let secs = t_idle.elapsed().as_secs_f64();
    let cpu = (process_cpu_secs().unwrap_or(0.0) - cpu0) / secs * 100.0;
    let pair_per_sec = (network.batches_sent() - sent0) as f64 / 6.0 / secs;
    println!(
        "scale driver: groups={groups} replicas={}: creation calls took {:.2} s, created+elected+quiesced in {:.2} s, \
         RSS {:.0} bytes per replica (with in-memory storage), idle CPU {cpu:.2} % of one core over {secs:.1} s, \
         {pair_per_sec:.1} batches per node pair per second (tick rate {:.0}/s)",
        groups * 3,
        created.as_secs_f64(),
        elected.as_secs_f64(),
        rss as f64 / (groups * 3) as f64,
        1.0 / config.tick_interval.as_secs_f64(),
    );
    if args.drain {
        drain_node_1(&nodes).await?;
    }
    if args.catch_up > 0 {
        let nodes = catch_up(args, nodes, &config, &storages[2], &network).await?;
        for n in nodes.iter() {
            n.shutdown().await.map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let survivors = if down_secs > 0 {
        let before = node_counts(&nodes[..2]).await?;
        nodes[2].abort();
        // CPU per window of at most 10 s: the wake right after the node goes down is a
        // burst that an average over the whole stretch would hide.
        let mut windows = Vec::new();
        let t_down = Instant::now();
        let cpu_start = process_cpu_secs().unwrap_or(0.0);
        let mut left = down_secs;
        while left > 0 {
            let step = left.min(10);
            let cpu0 = process_cpu_secs().unwrap_or(0.0);
            let t = Instant::now();
            tokio::time::sleep(Duration::from_secs(step)).await;
            let cpu = (process_cpu_secs().unwrap_or(0.0) - cpu0) / t.elapsed().as_secs_f64();
            windows.push(format!("{:.1}", cpu * 100.0));
            left -= step;
        }
        let secs = t_down.elapsed().as_secs_f64();
        let cpu = (process_cpu_secs().unwrap_or(0.0) - cpu_start) / secs * 100.0;
        let after = node_counts(&nodes[..2]).await?;
        println!(
            "scale driver: node 3 down: the two survivors' CPU {cpu:.1} % of one core over {secs:.1} s \
             (per 10 s: {}), {} ticks missed, {} elections started, {} declarations of a peer down \
             (node 3 counts twice), {} replicas active at the end",
            windows.join(", "),
            after.ticks_missed - before.ticks_missed,
            after.elections - before.elections,
            after.declared_down - before.declared_down,
            after.active,
        );
        &nodes[..2]
    } else {
        &nodes[..]
    };
    for n in survivors {
        n.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn start_node(
    i: u64,
    config: &Config,
    storage: MemStorage,
    network: &MemNetwork,
) -> Result<MultiRaft, String> {
    MultiRaft::builder(NodeId(i), config.clone())
        .storage(storage)
        .transport(network.transport(NodeId(i)))
        .state_machines(|_| CountingMachine::default())
        .seed(i)
        .start()
        .await
        .map_err(|e| e.to_string())
}

/// `--catch-up`: node 3 down while every group takes `args.catch_up` commands, then back;
/// measures until every group is quiet again, and returns the three nodes.
async fn catch_up(
    args: &Args,
    nodes: Arc<Vec<MultiRaft>>,
    config: &Config,
    storage: &MemStorage,
    network: &MemNetwork,
) -> Result<Arc<Vec<MultiRaft>>, String> {
    let (groups, entries) = (args.groups, args.catch_up);
    nodes[2].shutdown().await.map_err(|e| e.to_string())?;
    let survivors = Arc::new(nodes[..2].to_vec());
    let t = Instant::now();
    for_each_group(&survivors, 1, groups, move |nodes, g| async move {
        // Through either survivor (a follower forwards to its leader); the groups node 3
        // led have no leader until they elect one, so a proposal that finds none is tried
        // again a little later (bounded: a minute per group). A command that ended
        // indeterminate may have been applied as well: a group may take a few more.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut left = entries;
        while left > 0 {
            let commands = (0..left)
                .map(|p| Bytes::from(format!("catch-up {p}")))
                .collect();
            let answers = nodes[(g % 2) as usize]
                .propose_many(GroupId(g), commands)
                .await;
            left = answers.iter().filter(|a| a.is_err()).count() as u64;
            if left > 0 {
                if Instant::now() > deadline {
                    return Err(format!(
                        "group {g}: {left} commands not applied after a minute"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    })
    .await?;
    wait_quiesced(&survivors).await?;
    let written = t.elapsed().as_secs_f64();
    storage.reopen();
    let back = start_node(3, config, storage.clone(), network).await?;
    let nodes = Arc::new(vec![survivors[0].clone(), survivors[1].clone(), back]);
    let before = node_counts(&nodes).await?;
    let cpu0 = process_cpu_secs().unwrap_or(0.0);
    let t = Instant::now();
    wait_quiesced(&nodes).await?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = (process_cpu_secs().unwrap_or(0.0) - cpu0) / secs * 100.0;
    let after = node_counts(&nodes).await?;
    let behind = behind(&nodes, groups).await?;
    if behind > 0 {
        return Err(format!(
            "catch-up: {behind} groups quiet with node 3 behind"
        ));
    }
    println!(
        "scale driver: catch-up: node 3 down while {groups} groups took {entries} commands each \
         ({written:.2} s), then back: every group quiet after {secs:.2} s ({:.0} groups/s), \
         CPU {cpu:.1} % of one core meanwhile, {} ticks missed, {} elections started, {} \
         declarations of a peer down",
        groups as f64 / secs,
        after.ticks_missed - before.ticks_missed,
        after.elections - before.elections,
        after.declared_down - before.declared_down,
    );
    Ok(nodes)
}

/// The groups in `1..=groups` whose replica on node 3 applied less than node 1's.
async fn behind(nodes: &[MultiRaft], groups: u64) -> Result<u64, String> {
    let mut behind = 0;
    for g in 1..=groups {
        if applied(&nodes[2], g).await? < applied(&nodes[0], g).await? {
            behind += 1;
        }
    }
    Ok(behind)
}

/// What `node`'s replica of group `g` applied (0 where it has none).
async fn applied(node: &MultiRaft, g: u64) -> Result<u64, String> {
    let status = node.status(GroupId(g)).await.map_err(|e| e.to_string())?;
    Ok(status.map_or(0, |s| s.applied))
}

/// Drains node 1 and measures the cluster until every group is quiet again.
async fn drain_node_1(nodes: &[MultiRaft]) -> Result<(), String> {
    let before = node_counts(nodes).await?;
    let cpu0 = process_cpu_secs().unwrap_or(0.0);
    let t = Instant::now();
    let results = nodes[0].drain().await.map_err(|e| e.to_string())?;
    let moved_in = t.elapsed().as_secs_f64();
    let moved = results.iter().filter(|(_, r)| r.is_ok()).count();
    wait_quiesced(nodes).await?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = (process_cpu_secs().unwrap_or(0.0) - cpu0) / secs * 100.0;
    let after = node_counts(nodes).await?;
    println!(
        "scale driver: drain of node 1: {} groups led, {moved} moved in {moved_in:.2} s, all quiet \
         after {secs:.2} s, CPU {cpu:.1} % of one core meanwhile, {} ticks missed, {} elections \
         started, {} declarations of a peer down",
        results.len(),
        after.ticks_missed - before.ticks_missed,
        after.elections - before.elections,
        after.declared_down - before.declared_down,
    );
    Ok(())
}

/// Counts summed over some nodes' status, for the drain and node-down phases.
struct NodeCounts {
    ticks_missed: u64,
    elections: u64,
    declared_down: u64,
    active: usize,
}

async fn node_counts(nodes: &[MultiRaft]) -> Result<NodeCounts, String> {
    let mut counts = NodeCounts {
        ticks_missed: 0,
        elections: 0,
        declared_down: 0,
        active: 0,
    };
    for n in nodes {
        let status = n.node_status().await.map_err(|e| e.to_string())?;
        counts.ticks_missed += status.ticks_missed;
        counts.elections += status.stats.elections_started;
        counts.declared_down += status.stats.peers_declared_down;
        counts.active += status.active_groups;
    }
    Ok(counts)
}

/// Runs `call(nodes, g)` for every group `g` in `first..=last`, 256 calls in flight, so
/// that creations share storage writes as concurrent callers' would.
async fn for_each_group<F, Fut>(
    nodes: &Arc<Vec<MultiRaft>>,
    first: u64,
    last: u64,
    call: F,
) -> Result<(), String>
where
    F: Fn(Arc<Vec<MultiRaft>>, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    const IN_FLIGHT: u64 = 256;
    let mut tasks = Vec::new();
    for lane in 0..IN_FLIGHT.min(last - first + 1) {
        let (nodes, call) = (Arc::clone(nodes), call.clone());
        tasks.push(tokio::spawn(async move {
            let mut g = first + lane;
            while g <= last {
                call(Arc::clone(&nodes), g).await?;
                g += IN_FLIGHT;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Waits until no node has an active group (bounded: 600 s).
async fn wait_quiesced(nodes: &[MultiRaft]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut active = 0;
        for n in nodes {
            active += n
                .node_status()
                .await
                .map_err(|e| e.to_string())?
                .active_groups;
        }
        if active == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{active} groups still active after 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    multiraft_examples::init_logging();
    let args = parse_args();
    if !args.skip_raft
        && let Err(e) = raft_layer(args.groups)
    {
        eprintln!("scale failed: {e}");
        std::process::exit(1);
    }
    if args.skip_driver {
        return;
    }
    let mut rt = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let rt = rt.enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(driver(&args)) {
        eprintln!("scale failed: {e}");
        std::process::exit(1);
    }
}
