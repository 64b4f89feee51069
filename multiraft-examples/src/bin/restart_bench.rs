//! Restart without replay (docs/design.md §4.6): 3 nodes in one process, each on its own
//! `RedbStorage` file, commit `--entries` entries over `--groups` groups (clients hand
//! `--batch` proposals at a time to node 1, which forwards to each group's leader), then
//! stop node 1 and start it again on the same file. Prints how long node 1 took from
//! `start` to serving — every group has a leader and took a proposal through node 1 — and
//! the most entries any of its state machines re-applied after the restart, against the
//! bound `snapshot_entries + compaction_lag_entries`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use multiraft_core::{
    Bytes, Config, GroupId, Membership, MultiRaft, NodeId, ReadPolicy, SnapshotChunk, SnapshotData,
    SnapshotError, StateMachine,
};
use multiraft_examples::IndexMachine;
use multiraft_examples::measure::rss_bytes;
use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_testkit::MemNetwork;

#[derive(Parser, Debug)]
#[command(
    about = "Restart of a node on redb after many committed entries: time to serving and entries re-applied"
)]
struct Args {
    /// Groups replicated on all three nodes.
    #[arg(long, default_value_t = 1000)]
    groups: u64,
    /// Entries committed before the restart, over all groups.
    #[arg(long, default_value_t = 10_000_000)]
    entries: u64,
    /// Proposals per `propose_many` call.
    #[arg(long, default_value_t = 256)]
    batch: u64,
    /// Clients proposing at once.
    #[arg(long, default_value_t = 64)]
    clients: u64,
    /// Instead of restarting node 1 after the writes, keep node 3 down during them, then
    /// start it and time until every group on it has caught up (counting installs).
    #[arg(long)]
    lagging: bool,
    /// `Config::max_snapshots_building` (snapshots a node builds at once).
    #[arg(long, default_value_t = Config::default().max_snapshots_building)]
    build_slots: usize,
    /// Every node's redb page cache, in MiB (default: `RedbOptions`' default).
    #[arg(long)]
    redb_cache_mib: Option<usize>,
    /// Every node's `RedbOptions::checkpoint_bytes`, in MiB (default: `RedbOptions`'
    /// default): the write-ahead records a restart decodes are at most this much.
    #[arg(long)]
    checkpoint_mib: Option<usize>,
    /// While writing, print the process's RSS and the three files' size every this many
    /// seconds (0: never).
    #[arg(long, default_value_t = 0)]
    sample_secs: u64,
}

/// An [`IndexMachine`] (its state: the index it applied) that also counts, per group in a
/// table its node shares, the entries it applied and the snapshots it restored.
struct Counting {
    inner: IndexMachine,
    group: usize,
    applies: Arc<Vec<AtomicU64>>,
    restores: Arc<Vec<AtomicU64>>,
}

impl StateMachine for Counting {
    fn apply(&mut self, index: u64, command: &Bytes) -> Bytes {
        self.applies[self.group].fetch_add(1, Ordering::Relaxed);
        self.inner.apply(index, command)
    }

    fn query(&self, query: &Bytes) -> Bytes {
        self.inner.query(query)
    }

    fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
        self.inner.snapshot()
    }

    fn restore(&mut self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        self.inner.restore(chunk)?;
        if chunk.last {
            self.restores[self.group].fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

struct Node {
    handle: MultiRaft,
    applies: Arc<Vec<AtomicU64>>,
    restores: Arc<Vec<AtomicU64>>,
}

async fn start(
    id: u64,
    dir: &Path,
    network: &MemNetwork,
    config: &Config,
    args: &Args,
) -> Result<Node, String> {
    let groups = args.groups;
    let mut options = RedbOptions::default();
    if let Some(mib) = args.redb_cache_mib {
        options = options.with_cache_size_bytes(mib << 20);
    }
    if let Some(mib) = args.checkpoint_mib {
        options = options.with_checkpoint_bytes(mib << 20);
    }
    let storage = RedbStorage::open(dir.join(format!("n{id}.redb")), options)
        .map_err(|e| format!("open: {e}"))?;
    let applies: Arc<Vec<AtomicU64>> = Arc::new((0..=groups).map(|_| AtomicU64::new(0)).collect());
    let restores: Arc<Vec<AtomicU64>> = Arc::new((0..=groups).map(|_| AtomicU64::new(0)).collect());
    let (table, restored) = (Arc::clone(&applies), Arc::clone(&restores));
    let handle = MultiRaft::builder(NodeId(id), config.clone())
        .storage(storage)
        .transport(network.transport(NodeId(id)))
        .state_machines(move |g: GroupId| Counting {
            inner: IndexMachine::default(),
            group: g.0 as usize,
            applies: Arc::clone(&table),
            restores: Arc::clone(&restored),
        })
        .seed(id)
        .start()
        .await
        .map_err(|e| format!("start: {e}"))?;
    Ok(Node {
        handle,
        applies,
        restores,
    })
}

/// Proposes one command to every group through `node`, all groups at once, each retrying
/// refusals, until each is applied or `deadline` passes. (One group after another would
/// time a thousand commits in a row, not the node coming back.)
async fn every_group_takes_a_proposal(
    node: &MultiRaft,
    groups: u64,
    deadline: Instant,
) -> Result<(), String> {
    let mut probes = tokio::task::JoinSet::new();
    for g in 1..=groups {
        let node = node.clone();
        probes.spawn(async move {
            loop {
                if Instant::now() > deadline {
                    return Err(format!("g{g} took no proposal in time"));
                }
                match node.propose(GroupId(g), Bytes::from_static(b"probe")).await {
                    Ok(_) => return Ok(()),
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        });
    }
    while let Some(probe) = probes.join_next().await {
        probe.map_err(|e| e.to_string())??;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    multiraft_examples::init_logging();
    let args = Args::parse();
    let mut config = Config::default();
    config.max_snapshots_building = args.build_slots;
    let dir = tempfile::Builder::new()
        .prefix("multiraft-restart-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let network = MemNetwork::new();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(id, dir.path(), &network, &config, &args).await?);
    }
    let voters = Membership::voters([1, 2, 3]);
    for n in &nodes {
        for g in 1..=args.groups {
            n.handle
                .create_group(GroupId(g), voters.clone())
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    every_group_takes_a_proposal(
        &nodes[0].handle,
        args.groups,
        Instant::now() + Duration::from_secs(60),
    )
    .await?;

    if args.lagging {
        let down = nodes.remove(2);
        down.handle.shutdown().await.map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    let written = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let (node, written) = (nodes[0].handle.clone(), Arc::clone(&written));
        let (groups, batch, total) = (args.groups, args.batch, args.entries);
        clients.push(tokio::spawn(async move {
            let mut g = c % groups;
            while written.load(Ordering::Relaxed) < total {
                let commands = (0..batch).map(|_| Bytes::from_static(&[7u8; 16])).collect();
                let ok = node
                    .propose_many(GroupId(g + 1), commands)
                    .await
                    .iter()
                    .filter(|r| r.is_ok())
                    .count();
                written.fetch_add(ok as u64, Ordering::Relaxed);
                g = (g + stride(groups)) % groups;
            }
        }));
    }
    let sampler = (args.sample_secs > 0).then(|| {
        let (every, dir) = (
            Duration::from_secs(args.sample_secs),
            dir.path().to_path_buf(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                println!(
                    "restart_bench: {:>5.0} s  RSS {:>5} MiB  files {:>5} MiB",
                    started.elapsed().as_secs_f64(),
                    rss_bytes().unwrap_or(0) >> 20,
                    files_bytes(&dir) >> 20
                );
            }
        })
    });
    for c in clients {
        c.await.map_err(|e| e.to_string())?;
    }
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    let secs = started.elapsed().as_secs_f64();
    let total = written.load(Ordering::Relaxed);
    println!(
        "restart_bench: {total} entries committed over {} groups in {secs:.1} s ({:.0}/s); RSS {} MiB",
        args.groups,
        total as f64 / secs,
        rss_bytes().unwrap_or(0) >> 20
    );

    if args.lagging {
        return catch_up(&args, &config, dir.path(), &network, nodes).await;
    }
    // What a node holds at the restart: its latest snapshots, and the log after them.
    let status = nodes[0]
        .handle
        .status(GroupId(1))
        .await
        .map_err(|e| e.to_string())?;
    println!("restart_bench: node 1, g1 before the restart: {status:?}");
    let mut lag = 0;
    for g in 1..=args.groups {
        let s = nodes[0]
            .handle
            .status(GroupId(g))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(s) = s {
            lag = lag.max(s.commit - s.snapshot_index);
        }
    }
    println!(
        "restart_bench: node 1 before the restart: at most {lag} committed entries past a group's snapshot"
    );
    let first = nodes.remove(0);
    first.handle.shutdown().await.map_err(|e| e.to_string())?;
    let before = Instant::now();
    let again = start(1, dir.path(), &network, &config, &args).await?;
    let opened = before.elapsed();
    every_group_takes_a_proposal(
        &again.handle,
        args.groups,
        Instant::now() + Duration::from_secs(60),
    )
    .await?;
    let serving = before.elapsed();
    let reapplied: Vec<u64> = (1..=args.groups as usize)
        .map(|g| again.applies[g].load(Ordering::Relaxed))
        .collect();
    let max = reapplied.iter().max().copied().unwrap_or(0);
    if let Some(worst) = reapplied.iter().position(|a| *a == max) {
        let g = GroupId(worst as u64 + 1);
        let status = again.handle.status(g).await.map_err(|e| e.to_string())?;
        println!("restart_bench: the group that re-applied most, after the restart: {status:?}");
    }
    let bound = config.snapshot_entries + config.compaction_lag_entries;
    println!(
        "restart_bench: node 1 started in {:.3} s and served every group in {:.3} s; its state machines applied at most {max} entries each after the restart (probe included; bound {bound}): {}",
        opened.as_secs_f64(),
        serving.as_secs_f64(),
        if max <= bound + 1 { "within" } else { "OVER" }
    );
    again.handle.shutdown().await.map_err(|e| e.to_string())?;
    for n in nodes {
        n.handle.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The total size of the files directly in `dir` (the nodes' databases), in bytes.
fn files_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Groups a client skips between calls: a prime-ish stride, so clients spread over groups.
fn stride(groups: u64) -> u64 {
    if groups > 7 { 7 } else { 1 }
}

/// Starts node 3, which missed every write, and waits until each group's state machine on
/// it holds what node 1's does; counts the groups caught up by at least one install.
async fn catch_up(
    args: &Args,
    config: &Config,
    dir: &Path,
    network: &MemNetwork,
    nodes: Vec<Node>,
) -> Result<(), String> {
    let before = Instant::now();
    let third = start(3, dir, network, config, args).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let query = || Bytes::new();
    for g in 1..=args.groups {
        let group = GroupId(g);
        let want = nodes[0]
            .handle
            .read(group, ReadPolicy::Follower, query())
            .await
            .map_err(|e| format!("g{g} on node 1: {e}"))?;
        let second = nodes[1]
            .handle
            .read(group, ReadPolicy::Follower, query())
            .await
            .map_err(|e| format!("g{g} on node 2: {e}"))?;
        if second != want {
            return Err(format!("g{g}: nodes 1 and 2 differ"));
        }
        loop {
            if let Ok(have) = third
                .handle
                .read(group, ReadPolicy::Follower, query())
                .await
                && have == want
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("g{g}: node 3 did not catch up in time"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let took = before.elapsed();
    let installed = (1..=args.groups as usize)
        .filter(|g| third.restores[*g].load(Ordering::Relaxed) > 0)
        .count();
    let applied: u64 = (1..=args.groups as usize)
        .map(|g| third.applies[g].load(Ordering::Relaxed))
        .sum();
    println!(
        "restart_bench: node 3, down during the writes, caught up every group in {:.3} s: {installed} of {} groups by at least one install, {applied} entries applied after the installs; every state machine equals nodes 1 and 2's",
        took.as_secs_f64(),
        args.groups
    );
    third.handle.shutdown().await.map_err(|e| e.to_string())?;
    for n in nodes {
        n.handle.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
