//! The demo: a 3-node cluster in one process, 100 groups, 10,000 proposals.
//!
//! `cargo run --release -p multiraft-examples --bin demo`

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use multiraft_core::{Config, GroupId, ProposeError};
use multiraft_examples::{create_groups, start_mem_cluster};

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

async fn run() -> Result<(), String> {
    let start = Instant::now();
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(10);
    println!("demo: starting {NODES} nodes in one process (in-memory storage and network)");
    let cluster = start_mem_cluster(NODES, &config)
        .await
        .map_err(|e| e.to_string())?;
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
