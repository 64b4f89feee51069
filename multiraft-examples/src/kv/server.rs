//! One kv node process: a multiraft node on redb and QUIC, its groups created on first
//! start, and the HTTP API, until a signal (or, under `kv cluster`, the end of its
//! standard input) stops it cleanly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use multiraft_core::{Config, Event, GroupId, Membership, MultiRaft, NodeId};
use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_transport_quic::{QuicConfig, QuicTransport};
use tokio::io::AsyncReadExt;

use super::connections::{HTTP_IDLE_TIMEOUT, Limited, MAX_HTTP_CONNECTIONS};
use super::http::{AppState, router};
use super::machine::KvMachine;

/// A peer node: its id and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// Its id.
    pub id: NodeId,
    /// Where its QUIC endpoint listens.
    pub raft: SocketAddr,
    /// Where it serves HTTP.
    pub http: SocketAddr,
}

impl std::str::FromStr for PeerAddr {
    type Err = String;

    /// `ID=RAFT_ADDR/HTTP_ADDR`, for example `2=127.0.0.1:7102/127.0.0.1:8102`.
    fn from_str(s: &str) -> Result<PeerAddr, String> {
        let usage = || format!("{s}: expected ID=RAFT_ADDR/HTTP_ADDR");
        let (id, addrs) = s.split_once('=').ok_or_else(usage)?;
        let (raft, http) = addrs.split_once('/').ok_or_else(usage)?;
        Ok(PeerAddr {
            id: NodeId(id.parse().map_err(|_| usage())?),
            raft: raft.parse().map_err(|_| usage())?,
            http: http.parse().map_err(|_| usage())?,
        })
    }
}

/// Everything one node process needs: the flags of `kv node`.
#[derive(Clone, Debug, clap::Args)]
pub struct NodeOptions {
    /// This node's id (1, 2, …)
    #[arg(long, value_parser = node_id)]
    pub id: NodeId,
    /// Where the node keeps its log and snapshots (created if missing)
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The directory of ca.pem, node-ID.pem and node-ID.key (see `kv certs`)
    #[arg(long)]
    pub certs: PathBuf,
    /// Where the node's QUIC endpoint listens
    #[arg(long)]
    pub raft: SocketAddr,
    /// Where the node serves HTTP
    #[arg(long)]
    pub http: SocketAddr,
    /// Another node: ID=RAFT_ADDR/HTTP_ADDR (repeat for each)
    #[arg(long = "peer")]
    pub peers: Vec<PeerAddr>,
    /// Groups the keys are spread over (the same on every node)
    #[arg(long, default_value_t = 16)]
    pub groups: u64,
    /// Stop cleanly when standard input ends (how `kv cluster` stops its nodes)
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
    /// On first start, join the running cluster of the peers instead of creating the
    /// groups (each replica starts empty, with the membership a peer reports); then
    /// `PUT /admin/nodes/ID` on any node adds this one
    #[arg(long)]
    pub join: bool,
}

fn node_id(s: &str) -> Result<NodeId, String> {
    s.parse().map(NodeId).map_err(|e| format!("{s}: {e}"))
}

/// The file whose presence says this node created its groups: a restarted node finds its
/// groups in its log instead, and must not create again a group a membership change
/// removed from it. It holds the group count, which keys are spread over.
const CREATED_MARK: &str = "groups-created";

/// Refuses a start with another `--groups` than the data directory was made with: keys
/// would move to other groups (old data seemingly gone), and groups past the old count
/// would never be created (review). A mark without a count (an earlier build) passes.
fn check_group_count(data_dir: &std::path::Path, groups: u64) -> Result<(), String> {
    let mark = data_dir.join(CREATED_MARK);
    let Ok(text) = std::fs::read_to_string(&mark) else {
        return Ok(()); // a new directory
    };
    match text.trim().parse::<u64>() {
        Ok(made) if made != groups => Err(format!(
            "{} was made with --groups {made}; start it with --groups {made}",
            data_dir.display()
        )),
        _ => Ok(()),
    }
}

/// The timing of kv nodes: 10 ms ticks, elections after 0.3–0.6 s of silence (long enough
/// that a busy machine or a slow fsync does not start needless ones), heartbeats every 50 ms.
pub fn config() -> Config {
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(10);
    config.election_timeout_min_ticks = 30;
    config.election_timeout_max_ticks = 60;
    config.heartbeat_interval_ticks = 5;
    config
}

/// How often the process's recorder folds its histograms' samples into their summaries
/// ([`keep_metrics_up`]): the exporter's own default. Until then it keeps each sample.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the process's Prometheus recorder (once; later calls get the same handle), and
/// its upkeep ([`keep_metrics_up`]).
pub fn metrics_recorder() -> Result<PrometheusHandle, String> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    keep_metrics_up(handle.clone(), METRICS_UPKEEP_INTERVAL)?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Runs `handle`'s upkeep every `every`, on a thread of its own for the rest of the
/// process, and returns how many upkeeps have run so far. A recorder keeps every histogram
/// sample until an upkeep or a scrape folds it away, and `install_recorder` starts no
/// upkeep: a node nobody scraped held each sample it ever recorded, several per write
/// (review).
pub fn keep_metrics_up(
    handle: PrometheusHandle,
    every: Duration,
) -> Result<Arc<std::sync::atomic::AtomicU64>, String> {
    let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&runs);
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                handle.run_upkeep();
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .map_err(|e| format!("metrics upkeep thread: {e}"))?;
    Ok(runs)
}

/// Runs one node until a signal (or the end of standard input) stops it, or the node stops
/// on its own (then with the error that stopped it).
pub async fn run(options: NodeOptions) -> Result<(), String> {
    let metrics = metrics_recorder()?;
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("{}: {e}", options.data_dir.display()))?;
    let tls = super::certs::load(&options.certs, options.id)?;
    let mut quic = QuicConfig::new(options.id, options.raft, tls);
    for p in &options.peers {
        // A node dials the peers with higher ids; the others dial it.
        if p.id > options.id {
            quic.peers.insert(p.id, p.raft);
        }
    }
    check_group_count(&options.data_dir, options.groups)?;
    let transport =
        QuicTransport::bind(quic).map_err(|e| format!("QUIC on {}: {e}", options.raft))?;
    let storage = RedbStorage::open(options.data_dir.join("raft.redb"), RedbOptions::default())
        .map_err(|e| format!("storage in {}: {e}", options.data_dir.display()))?;
    let raft = MultiRaft::builder(options.id, config())
        .storage(storage)
        .transport(transport.clone())
        .state_machines(|_| KvMachine::default())
        .seed(options.id.0)
        .start()
        .await
        .map_err(|e| format!("starting node {}: {e}", options.id.0))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mark = options.data_dir.join(CREATED_MARK);
    if !mark.exists() && options.join {
        for g in 1..=options.groups {
            // Hosted already: joined by an earlier start that stopped midway.
            if raft
                .status(GroupId(g))
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                continue;
            }
            let membership = peer_membership(&client, &options.peers, GroupId(g)).await?;
            raft.join_group(GroupId(g), membership)
                .await
                .map_err(|e| format!("joining group {g}: {e}"))?;
        }
        std::fs::write(&mark, options.groups.to_string())
            .map_err(|e| format!("{}: {e}", mark.display()))?;
    } else if !mark.exists() {
        let voters = Membership::voters(
            std::iter::once(options.id.0).chain(options.peers.iter().map(|p| p.id.0)),
        );
        for g in 1..=options.groups {
            if raft
                .status(GroupId(g))
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                raft.create_group(GroupId(g), voters.clone())
                    .await
                    .map_err(|e| format!("creating group {g}: {e}"))?;
            }
        }
        std::fs::write(&mark, options.groups.to_string())
            .map_err(|e| format!("{}: {e}", mark.display()))?;
    }
    let mut http_urls: BTreeMap<NodeId, String> = options
        .peers
        .iter()
        .map(|p| (p.id, format!("http://{}", p.http)))
        .collect();
    http_urls.insert(options.id, format!("http://{}", options.http));
    let state = AppState {
        raft: raft.clone(),
        transport,
        groups: options.groups,
        http_urls: Arc::new(RwLock::new(http_urls)),
        metrics,
        client,
    };
    tokio::spawn(delete_removed_replicas(raft.clone()));
    let listener = tokio::net::TcpListener::bind(options.http)
        .await
        .map_err(|e| format!("HTTP on {}: {e}", options.http))?;
    tracing::info!(node = options.id.0, http = %options.http, raft = %options.raft, "kv node serving");
    println!(
        "kv node {}: http://{} (raft {})",
        options.id.0, options.http, options.raft
    );
    // A node that stops on its own (a storage error) ends the process too, with its error,
    // so that a supervisor starts it again: serving 503s forever would hide it (review).
    let node = raft.clone();
    let stop = async move {
        tokio::select! {
            () = stop_signal(options.stop_on_stdin_eof) => {}
            () = node.stopped() => tracing::error!("the node stopped; the process ends"),
        }
    };
    let listener = Limited::new(listener, MAX_HTTP_CONNECTIONS, HTTP_IDLE_TIMEOUT);
    let serve = axum::serve(listener, router(state)).with_graceful_shutdown(stop);
    let served = serve.await.map_err(|e| format!("HTTP: {e}"));
    let stopped = raft
        .shutdown()
        .await
        .map_err(|e| format!("node stopped: {e}"));
    served.and(stopped)
}

/// A group's membership as the first peer that answers reports it.
async fn peer_membership(
    client: &reqwest::Client,
    peers: &[PeerAddr],
    group: GroupId,
) -> Result<Membership, String> {
    let mut why = String::from("no peer given");
    for p in peers {
        let url = format!("http://{}/admin/groups/{}/membership", p.http, group.0);
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                return r.json().await.map_err(|e| format!("{url}: {e}"));
            }
            Ok(r) => why = format!("{url}: HTTP {}", r.status()),
            Err(e) => why = format!("{url}: {e}"),
        }
    }
    Err(format!("membership of group {}: {why}", group.0))
}

/// Deletes each replica the node reports removed from its group: a removed replica only
/// waits to be deleted (`Event::ReplicaRemoved`).
async fn delete_removed_replicas(raft: MultiRaft) {
    let mut events = raft.events();
    loop {
        match events.recv().await {
            Ok(Event::ReplicaRemoved { group }) => {
                if let Err(e) = raft.remove_group(group).await {
                    tracing::warn!(group = %group, %e, "deleting a removed replica");
                }
            }
            Ok(_) => {}
            // Lagged: the missed events are gone (a `ReplicaRemoved` among them would leave
            // its replica for good: review); the statuses still say which were removed.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                delete_reported_removed(&raft).await;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Deletes every hosted replica whose status says its group removed it
/// (`GroupStatus::removed`): what the `ReplicaRemoved` events a lagging subscriber lost
/// asked for. Reads the node's report page by page; returns how many it deleted.
pub async fn delete_reported_removed(raft: &MultiRaft) -> usize {
    let (mut from, mut deleted) = (GroupId(0), 0);
    loop {
        let Ok(report) = raft.report(from, multiraft_core::MAX_REPORT_GROUPS).await else {
            return deleted;
        };
        for g in report.groups.iter().filter(|g| g.status.removed) {
            match raft.remove_group(g.status.group).await {
                Ok(()) => deleted += 1,
                Err(e) => tracing::warn!(group = %g.status.group, %e, "deleting a removed replica"),
            }
        }
        match report.groups.last() {
            Some(last) if report.more => from = GroupId(last.status.group.0 + 1),
            _ => return deleted,
        }
    }
}

/// Resolves on Ctrl-C, SIGTERM, or (if asked) the end of standard input.
async fn stop_signal(stdin_eof: bool) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let eof = async {
        if !stdin_eof {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
        () = eof => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data directory made with one group count refuses a start with another; a new
    /// directory, or a mark without a count, takes any.
    #[test]
    fn a_data_directory_keeps_its_group_count() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_group_count(dir.path(), 32), Ok(()), "new");
        std::fs::write(dir.path().join(CREATED_MARK), "").unwrap();
        assert_eq!(check_group_count(dir.path(), 32), Ok(()), "no count");
        std::fs::write(dir.path().join(CREATED_MARK), "16").unwrap();
        assert_eq!(check_group_count(dir.path(), 16), Ok(()));
        let refused = check_group_count(dir.path(), 32).unwrap_err();
        assert!(refused.contains("--groups 16"), "{refused}");
    }
}
