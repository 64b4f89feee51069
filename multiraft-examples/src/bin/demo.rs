//! The demo: a 3-node cluster in one process, 100 groups, 10,000 proposals.
//!
//! `cargo run --release -p multiraft-examples --bin demo [-- --transport quic|mem]`
//!
//! By default the nodes talk QUIC on loopback (127.0.0.1, one endpoint per node) with mutual
//! TLS and development certificates generated at start; `--transport mem` keeps the
//! in-process network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multiraft_core::{Config, GroupId, MultiRaft, NodeId, ProposeError};
use multiraft_examples::{ClusterNode, CountingMachine, create_groups, start_mem_cluster};
use multiraft_testkit::MemStorage;
use multiraft_transport_quic::dev::DevCa;
use multiraft_transport_quic::tls::ClusterId;
use multiraft_transport_quic::{QuicConfig, QuicTransport};

const NODES: u64 = 3;
const GROUPS: u64 = 100;
const PROPOSALS: u64 = 10_000;
/// Bound on every wait, so the demo fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

/// Starts `nodes` nodes in this process, each with its own QUIC endpoint on loopback, a
/// certificate from a development CA generated now, and in-memory storage.
async fn start_quic_cluster(nodes: u64, config: &Config) -> Result<Vec<ClusterNode>, String> {
    let ca = DevCa::new(ClusterId::new("demo").map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let loopback: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    // Bind the highest id first: a node dials the peers with higher ids, so it needs their
    // addresses.
    let mut addrs = vec![loopback; nodes as usize];
    let mut transports = Vec::new();
    for i in (1..=nodes).rev() {
        let tls = ca.tls_config(NodeId(i)).map_err(|e| e.to_string())?;
        let mut quic = QuicConfig::new(NodeId(i), loopback, tls);
        for peer in (i + 1)..=nodes {
            quic.peers.insert(NodeId(peer), addrs[peer as usize - 1]);
        }
        let t = QuicTransport::bind(quic).map_err(|e| e.to_string())?;
        addrs[i as usize - 1] = t.local_addr().map_err(|e| e.to_string())?;
        transports.push(t);
    }
    transports.reverse();
    let mut out = Vec::new();
    for (t, i) in transports.into_iter().zip(1..) {
        let applied = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&applied);
        let handle = MultiRaft::builder(NodeId(i), config.clone())
            .storage(MemStorage::new())
            .transport(t)
            .state_machines(move |_| CountingMachine::new(Arc::clone(&counter)))
            .seed(i)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        out.push(ClusterNode { handle, applied });
    }
    println!(
        "demo: QUIC endpoints {}",
        addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(out)
}

/// `--transport quic` (the default) or `--transport mem`.
fn quic_transport_wanted() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] | ["--transport", "quic"] => Ok(true),
        ["--transport", "mem"] => Ok(false),
        _ => Err(format!("usage: demo [--transport quic|mem]; got {args:?}")),
    }
}

async fn run() -> Result<(), String> {
    let start = Instant::now();
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(10);
    let cluster = if quic_transport_wanted()? {
        println!(
            "demo: starting {NODES} nodes in one process (QUIC on loopback with mutual TLS, in-memory storage)"
        );
        start_quic_cluster(NODES, &config).await?
    } else {
        println!("demo: starting {NODES} nodes in one process (in-memory storage and network)");
        start_mem_cluster(NODES, &config)
            .await
            .map_err(|e| e.to_string())?
    };
    let leaders = create_groups(&cluster, GROUPS, TIMEOUT).await?;
    println!(
        "demo: {GROUPS} groups created, every group has a leader ({:.2} s)",
        start.elapsed().as_secs_f64()
    );

    // Every proposal goes to a node chosen round-robin; followers forward to the leader.
    let mut tasks = Vec::new();
    for i in 0..PROPOSALS {
        let group = GroupId(i % GROUPS + 1);
        let node = cluster[(i % NODES) as usize].handle.clone();
        tasks.push(tokio::spawn(async move {
            let command = format!("set k{i} {i}");
            // A proposal that raced an election gets a definite "not appended" answer and
            // is retried; an indeterminate one is reported, never silently retried.
            for _ in 0..100 {
                match node.propose(group, command.clone()).await {
                    Ok(_) => return Ok(()),
                    Err(ProposeError::NoLeader | ProposeError::NotLeader { .. }) => {
                        tokio::task::yield_now().await
                    }
                    Err(e) => return Err(format!("proposal {i} to {group}: {e}")),
                }
            }
            Err(format!(
                "proposal {i} to {group}: no leader after 100 tries"
            ))
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
    println!(
        "demo: {GROUPS} groups, {PROPOSALS} proposals applied on every replica in {secs:.2} s"
    );
    Ok(())
}
