//! `kv`: a sharded key-value service on multiraft, one process per node (see the
//! `multiraft_examples::kv` module for the HTTP API).
//!
//! ```text
//! kv cluster                      # 3 nodes on loopback, until Ctrl-C
//! kv node --id 1 --data-dir … --certs … --raft … --http … --peer 2=…/… --peer 3=…/…
//! kv certs --dir certs --nodes 3  # a development CA and node certificates
//! kv load --url http://127.0.0.1:8101 --clients 64 --secs 10
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use multiraft_examples::kv::cluster::{CERTIFIED_NODES, LocalCluster};
use multiraft_examples::kv::load::{self, LoadOptions};
use multiraft_examples::kv::server::{self, NodeOptions};

/// A sharded key-value service on multiraft: one process per node, HTTP for clients.
#[derive(Parser)]
#[command(name = "kv", args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one node
    Node(NodeOptions),
    /// Runs a cluster of node processes on loopback until Ctrl-C, then stops them cleanly
    Cluster {
        /// Where the nodes keep their data and certificates (kept across runs)
        #[arg(long, default_value = "kv-data")]
        dir: PathBuf,
        /// Nodes
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Groups the keys are spread over
        #[arg(long, default_value_t = 16)]
        groups: u64,
        /// Node N's QUIC port is this plus N
        #[arg(long, default_value_t = 7100)]
        raft_port: u16,
        /// Node N's HTTP port is this plus N
        #[arg(long, default_value_t = 8100)]
        http_port: u16,
    },
    /// Writes a development CA and node certificates (never for production)
    Certs {
        /// Where to write them
        #[arg(long)]
        dir: PathBuf,
        /// Certificates for nodes 1..=NODES
        #[arg(long, default_value_t = 3)]
        nodes: u64,
    },
    /// Puts and gets against a running cluster, with a summary of throughput and latency
    Load {
        /// A node's HTTP base URL (repeat to spread clients over nodes)
        #[arg(long = "url", default_values_t = ["http://127.0.0.1:8101".to_string(), "http://127.0.0.1:8102".to_string(), "http://127.0.0.1:8103".to_string()])]
        urls: Vec<String>,
        /// Concurrent clients
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Seconds to run
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Distinct keys
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        /// Percentage of puts (the rest are gets)
        #[arg(long, default_value_t = 50)]
        write_percent: u8,
        /// Bytes per value
        #[arg(long, default_value_t = 16)]
        value_bytes: usize,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    multiraft_examples::init_logging();
    let result = match Cli::parse().command {
        Command::Node(options) => server::run(options).await,
        Command::Cluster {
            dir,
            nodes,
            groups,
            raft_port,
            http_port,
        } => cluster(dir, nodes, groups, raft_port, http_port).await,
        Command::Certs { dir, nodes } => multiraft_examples::kv::certs::generate(&dir, 1..=nodes)
            .map(|()| {
                println!(
                    "kv: development CA and {nodes} node certificates in {}",
                    dir.display()
                );
            }),
        Command::Load {
            urls,
            clients,
            secs,
            keys,
            write_percent,
            value_bytes,
        } => load::run(LoadOptions {
            urls,
            clients,
            duration: Duration::from_secs(secs),
            keys,
            write_percent: write_percent.min(100),
            value_bytes,
            progress: true,
        })
        .await
        .map(|summary| println!("kv load: {summary}")),
    };
    if let Err(e) = result {
        eprintln!("kv: {e}");
        std::process::exit(1);
    }
}

/// Starts the node processes, prints their URLs, waits for Ctrl-C (or a node's death),
/// then stops them all cleanly.
async fn cluster(
    dir: PathBuf,
    nodes: u64,
    groups: u64,
    raft_port: u16,
    http_port: u16,
) -> Result<(), String> {
    if !(1..=CERTIFIED_NODES).contains(&nodes) || groups == 0 {
        return Err(format!(
            "--nodes must be 1 to {CERTIFIED_NODES} and --groups at least 1"
        ));
    }
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = |base: u16, i: u64| {
        u16::try_from(i)
            .ok()
            .and_then(|i| base.checked_add(i))
            .ok_or_else(|| format!("port {base} + {i} is past 65535"))
    };
    let addrs = (1..=nodes)
        .map(|i| {
            Ok((
                SocketAddr::new(loopback, port(raft_port, i)?),
                SocketAddr::new(loopback, port(http_port, i)?),
            ))
        })
        .collect::<Result<Vec<(SocketAddr, SocketAddr)>, String>>()?;
    let binary = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cluster = LocalCluster::new(&binary, &dir, groups, &addrs, false)?;
    cluster.start_all()?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    println!(
        "kv cluster: {nodes} nodes, {groups} groups, data in {}",
        dir.display()
    );
    for n in &cluster.nodes {
        println!("  node {}: {}/  (status page)", n.id, n.url());
    }
    let first = cluster.nodes[0].url();
    println!("try:  curl -X PUT -d world {first}/kv/hello   then   curl {first}/kv/hello");
    println!("Ctrl-C stops the cluster");
    let died = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break None,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Some(exit) = cluster.exited() {
                    break Some(exit);
                }
            }
        }
    };
    let unclean = tokio::task::spawn_blocking(move || cluster.stop_all())
        .await
        .map_err(|e| e.to_string())??;
    if let Some((id, status)) = died {
        return Err(format!(
            "node {id} exited ({status}); the others are stopped"
        ));
    }
    if !unclean.is_empty() {
        return Err(format!("nodes {unclean:?} did not stop cleanly"));
    }
    println!("kv cluster: stopped");
    Ok(())
}
