//! The demo: a 3-node cluster in one process, 100 groups, 10,000 proposals.
//!
//! `cargo run --release -p multiraft-examples --bin demo [-- [--transport quic|mem] [--storage redb|mem]]`
//!
//! By default the nodes talk QUIC on loopback (127.0.0.1, one endpoint per node) with mutual
//! TLS and development certificates generated at start, and each keeps its log in a redb
//! database in a fresh temporary directory (removed at the end, or when the demo fails);
//! `--transport mem` and `--storage mem` keep the in-process parts. `--help` lists the flags.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use multiraft_core::{Builder, Config, GroupId, MultiRaft, NodeId, ProposeError};
use multiraft_examples::{ClusterNode, CountingMachine, create_groups};
use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_testkit::{MemNetwork, MemStorage};
use multiraft_transport_quic::dev::DevCa;
use multiraft_transport_quic::tls::ClusterId;
use multiraft_transport_quic::{QuicConfig, QuicTransport};
use tempfile::TempDir;

const NODES: u64 = 3;
const GROUPS: u64 = 100;
const PROPOSALS: u64 = 10_000;
/// Proposals outstanding at once.
const IN_FLIGHT: usize = 500;
/// Bound on every wait, so the demo fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How long a proposal refused for want of a leader, or by a busy node, waits before it is
/// proposed again: a fraction of an election, so that a retry neither spins nor lags.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    multiraft_examples::init_logging();
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

/// A 3-node multiraft cluster in one process: 100 groups, 10,000 proposals.
#[derive(Parser)]
#[command(name = "demo", args_override_self = true)]
struct Cli {
    /// How the nodes talk to each other
    #[arg(long, value_enum, default_value_t = TransportChoice::Quic)]
    transport: TransportChoice,
    /// Where the nodes keep their logs
    #[arg(long, value_enum, default_value_t = StorageChoice::Redb)]
    storage: StorageChoice,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportChoice {
    /// QUIC on 127.0.0.1 with mutual TLS and development certificates
    Quic,
    /// The testkit's in-process network
    Mem,
}

#[derive(Clone, Copy, ValueEnum)]
enum StorageChoice {
    /// One redb file per node in a fresh temporary directory, removed at the end
    Redb,
    /// The testkit's in-memory storage
    Mem,
}

/// Where the nodes keep their logs.
enum StorageKind {
    /// One redb file per node in this directory (removed when dropped).
    Redb(TempDir),
    Mem,
}

/// What the command line asked for.
struct Options {
    quic: bool,
    storage: StorageKind,
}

fn parse_options() -> Result<Options, String> {
    let cli = Cli::parse();
    let storage = match cli.storage {
        StorageChoice::Redb => StorageKind::Redb(
            tempfile::Builder::new()
                .prefix("multiraft-demo-")
                .tempdir()
                .map_err(|e| format!("temporary directory: {e}"))?,
        ),
        StorageChoice::Mem => StorageKind::Mem,
    };
    Ok(Options {
        quic: cli.transport == TransportChoice::Quic,
        storage,
    })
}

/// One builder per node with its transport: QUIC endpoints on loopback with certificates
/// from a development CA generated now, or the in-process network.
fn transports(nodes: u64, config: &Config, quic: bool) -> Result<Vec<Builder>, String> {
    if !quic {
        let network = MemNetwork::new();
        return Ok((1..=nodes)
            .map(|i| {
                MultiRaft::builder(NodeId(i), config.clone())
                    .transport(network.transport(NodeId(i)))
            })
            .collect());
    }
    let ca = DevCa::new(ClusterId::new("demo").map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let loopback: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    // Bind the highest id first: a node dials the peers with higher ids, so it needs their
    // addresses.
    let mut addrs = vec![loopback; nodes as usize];
    let mut builders = Vec::new();
    for i in (1..=nodes).rev() {
        let tls = ca.tls_config(NodeId(i)).map_err(|e| e.to_string())?;
        let mut quic = QuicConfig::new(NodeId(i), loopback, tls);
        for peer in (i + 1)..=nodes {
            quic.peers.insert(NodeId(peer), addrs[peer as usize - 1]);
        }
        let t = QuicTransport::bind(quic).map_err(|e| e.to_string())?;
        addrs[i as usize - 1] = t.local_addr().map_err(|e| e.to_string())?;
        builders.push(MultiRaft::builder(NodeId(i), config.clone()).transport(t));
    }
    builders.reverse();
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    println!("demo: QUIC endpoints {}", list.join(", "));
    Ok(builders)
}

/// Starts the nodes: transport, storage and a counting state machine each.
async fn start_cluster(config: &Config, options: &Options) -> Result<Vec<ClusterNode>, String> {
    let mut out = Vec::new();
    for (builder, i) in transports(NODES, config, options.quic)?
        .into_iter()
        .zip(1..)
    {
        let builder = match &options.storage {
            StorageKind::Redb(dir) => {
                let path = dir.path().join(format!("node{i}.redb"));
                let storage =
                    RedbStorage::open(&path, RedbOptions::default()).map_err(|e| e.to_string())?;
                builder.storage(storage)
            }
            StorageKind::Mem => builder.storage(MemStorage::new()),
        };
        let applied = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&applied);
        let handle = builder
            .state_machines(move |_| CountingMachine::new(Arc::clone(&counter)))
            .seed(i)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        out.push(ClusterNode { handle, applied });
    }
    Ok(out)
}

async fn run() -> Result<(), String> {
    let start = Instant::now();
    let options = parse_options()?;
    let mut config = Config::default();
    // Short ticks for a quick demo, with an election timeout (0.3-0.6 s) long enough that a
    // slow disk or a busy machine does not trigger needless elections.
    config.tick_interval = Duration::from_millis(10);
    config.election_timeout_min_ticks = 30;
    config.election_timeout_max_ticks = 60;
    config.heartbeat_interval_ticks = 5;
    let transport = if options.quic {
        "QUIC on loopback with mutual TLS"
    } else {
        "in-process network"
    };
    let storage = match &options.storage {
        StorageKind::Redb(dir) => format!("redb files in {}", dir.path().display()),
        StorageKind::Mem => "in-memory storage".to_string(),
    };
    println!("demo: starting {NODES} nodes in one process ({transport}, {storage})");
    let cluster = start_cluster(&config, &options).await?;
    let leaders = create_groups(&cluster, GROUPS, TIMEOUT).await?;
    println!(
        "demo: {GROUPS} groups created, every group has a leader ({:.2} s)",
        start.elapsed().as_secs_f64()
    );

    // Every proposal goes to a node chosen round-robin; followers forward to the leader.
    // Clients keep at most IN_FLIGHT proposals outstanding, as a real client pool would; an
    // unbounded burst would only measure how the transport's bounded queues drop.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = Vec::new();
    for i in 0..PROPOSALS {
        let group = GroupId(i % GROUPS + 1);
        let node = cluster[(i % NODES) as usize].handle.clone();
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let command = format!("set k{i} {i}");
            // A proposal that raced an election, or met a busy node, gets a definite "not
            // appended" answer and is retried after a pause (an election takes a few
            // hundred milliseconds); an indeterminate one is reported, never silently
            // retried.
            let deadline = Instant::now() + TIMEOUT;
            loop {
                match node.propose(group, command.clone()).await {
                    Ok(_) => return Ok(()),
                    Err(
                        e @ (ProposeError::NoLeader
                        | ProposeError::NotLeader { .. }
                        | ProposeError::Busy { .. }),
                    ) => {
                        if Instant::now() >= deadline {
                            return Err(format!("proposal {i} to {group}: {e} for {TIMEOUT:?}"));
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    Err(e) => return Err(format!("proposal {i} to {group}: {e}")),
                }
            }
        }));
    }
    let mut done = 0;
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
        done += 1;
        if done % 2_500 == 0 {
            println!("demo: {done} / {PROPOSALS} proposals applied on their proposing node");
        }
    }
    // Each replica applies on its own schedule: wait (bounded) until all have all.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let counts: Vec<u64> = cluster
            .iter()
            .map(|n| n.applied.load(Ordering::Relaxed))
            .collect();
        if counts.iter().all(|&c| c == PROPOSALS) {
            break;
        }
        if counts.iter().any(|&c| c > PROPOSALS) {
            return Err(format!(
                "a replica applied more commands than proposed: {counts:?}"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "replicas applied {counts:?} of {PROPOSALS} within {TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let distinct_leaders: std::collections::BTreeSet<_> = leaders.iter().collect();
    println!("demo: leaders spread over {} nodes", distinct_leaders.len());
    for n in &cluster {
        n.handle.shutdown().await.map_err(|e| e.to_string())?;
    }
    drop(cluster);
    if let StorageKind::Redb(dir) = options.storage {
        let path = dir.path().to_path_buf();
        dir.close()
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "demo: {GROUPS} groups, {PROPOSALS} proposals applied on every replica in {secs:.2} s"
    );
    Ok(())
}
