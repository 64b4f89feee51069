//! End to end across processes: three node processes on loopback (QUIC with mutual TLS, a
//! redb file each) against the same workload with the three nodes in one process.
//!
//! `cargo run --release -p multiraft-examples --bin cluster_bench -- [--groups 1000] [--clients 4096] [--secs 5] [--runs 3] [--mode all|processes|mem|quic] [--dir PATH] [--snapshot-mib N] [--redb-cache-mib N]`
//!
//! The workload is the same in every mode: three nodes, each on its own `RedbStorage` file;
//! `--groups` groups replicated on all three, group `g` led by node `g % 3 + 1` (placed with
//! `campaign` once every node has created every group); on each node `--clients / 3`
//! closed-loop clients propose 16-byte commands to the groups that node leads. Reported:
//! committed proposals/s (applied on the leader), summed over the nodes, each node counting
//! over the same `--secs` window after a 2 s warm-up; the median of `--runs` runs.
//!
//! - **processes**: this binary starts three copies of itself (`--child`), one node each,
//!   talking QUIC on 127.0.0.1 with certificates from a development CA, written to PEM files
//!   and loaded from them as a production node would. The parent steps the children through
//!   the phases with one line on stdin each and reads their answers on stdout.
//! - **mem**: the three nodes in this process on the testkit's in-memory network.
//! - **quic**: the three nodes in this process, QUIC on loopback.
//!
//! - **`--snapshot-mib N`**: instead of the above, a large snapshot across processes (the
//!   [`snapshot`] module): node 3 is stopped, group 1 (a [`BulkMachine`] of N MiB) is compacted
//!   past it, node 3 is started again and installs the N MiB snapshot over QUIC while
//!   clients on nodes 1 and 2 write to the other groups; then the same run with an empty
//!   group 1. Reported are the transfer time, each process's peak RSS and the other groups'
//!   commit latency with and without the transfer, and whether node 3 restored exactly the
//!   bytes node 1 produced. `--redb-cache-mib` sets every node's redb page cache (in every mode):
//!   reading and writing a large snapshot fills it up to its size.
//!
//! Files go to a fresh directory under `--dir` (default: the system temp directory), one per
//! run, removed at the end. `--help` lists the flags; `--child ID` (with `--dir`, `--groups`,
//! `--clients` and `--secs`, and for a snapshot run `--snapshot-mib`, `--listen` and
//! `--restarted`) is how the parent starts a node process.
//!
//! [`BulkMachine`]: multiraft_examples::bulk::BulkMachine

mod snapshot;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use multiraft_core::{Bytes, Config, GroupId, Membership, MultiRaft, NodeId};
use multiraft_examples::IndexMachine;
use multiraft_examples::measure::{load_average, median};
use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_testkit::MemNetwork;
use multiraft_transport_quic::dev::DevCa;
use multiraft_transport_quic::tls::{ClusterId, TlsConfig};
use multiraft_transport_quic::{QuicConfig, QuicTransport};

const NODES: u64 = 3;
const CLUSTER: &str = "cluster-bench";
/// Clients propose for this long before the measured window opens.
const WARMUP: Duration = Duration::from_secs(2);
/// Bound on every wait for a phase (creation, leadership, a child's answer).
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest `--snapshot-mib` and `--redb-cache-mib`: 1 TiB, far beyond any disk here,
/// and small enough that the byte count fits any `usize` of 64 bits.
const MAX_MIB: u64 = 1 << 20;

/// End to end across processes: three node processes on loopback (QUIC with mutual TLS, a
/// redb file each) against the same workload with the three nodes in one process.
#[derive(Parser)]
#[command(name = "cluster_bench", args_override_self = true)]
struct Args {
    /// Groups replicated on all three nodes (at least 3)
    #[arg(long, default_value_t = 1_000)]
    groups: u64,
    /// Closed-loop clients in all, a third on each node (at least 3)
    #[arg(long, default_value_t = 4_096)]
    clients: u64,
    /// Seconds measured per run, after a 2 s warm-up (at least 1)
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Runs per mode; the median is reported (at least 1)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Which setups to run
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Parent of the fresh directory each run's files go to [default: the system temp directory]
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// Instead of the throughput runs: install an N MiB snapshot of group 1 on a restarted
    /// node 3 over QUIC between node processes while clients on nodes 1 and 2 write to the
    /// other groups, then the same run with a 0 MiB group 1; report the transfer, peak RSS
    /// and p99 commit latency with and without it
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=MAX_MIB))]
    snapshot_mib: Option<u64>,
    /// redb page cache of each node, MiB [default: RedbOptions' default, 64]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_MIB))]
    redb_cache_mib: Option<u64>,
    /// Internal: run as node process ID of a `processes` run (with `--dir` set to its
    /// directory); the parent starts its children with this
    #[arg(long, value_name = "ID")]
    child: Option<u64>,
    /// Internal: the address a node process listens on [default: a free loopback port]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Internal: the node process starts again on the files of an earlier one
    #[arg(long)]
    restarted: bool,
}

/// The setups `--mode` picks from.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// mem, then quic, then processes
    All,
    /// Three node processes, QUIC on loopback
    Processes,
    /// Three nodes in this process on the in-memory network
    Mem,
    /// Three nodes in this process, QUIC on loopback
    Quic,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::All => "all",
            Mode::Processes => "processes",
            Mode::Mem => "mem",
            Mode::Quic => "quic",
        }
    }
}

fn parse_args() -> Args {
    let mut a = Args::parse();
    a.groups = a.groups.max(NODES);
    if a.child.is_none() {
        // A node process gets its share, which may be none.
        a.clients = a.clients.max(NODES);
    }
    if a.snapshot_mib.is_some() && !matches!(a.mode, Mode::All | Mode::Processes) {
        clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            "--snapshot-mib runs node processes: --mode mem or quic does not apply\n",
        )
        .exit();
    }
    a.secs = a.secs.max(1);
    a.runs = a.runs.max(1);
    a
}

/// The node configuration of every mode: 10 ms ticks and 1–2 s election timeouts (a
/// durable commit on a busy disk can take 100 ms or more; see redb_bench).
fn config() -> Config {
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(10);
    config.election_timeout_min_ticks = 100;
    config.election_timeout_max_ticks = 200;
    config
}

/// The storage options of every mode: redb's defaults but for `--redb-cache-mib`.
fn redb_options(args: &Args) -> RedbOptions {
    let options = RedbOptions::default();
    match args.redb_cache_mib {
        // At most MAX_MIB (clap checks it): the product fits.
        Some(mib) => options.with_cache_size_bytes((mib << 20) as usize),
        None => options,
    }
}

async fn start_node(
    id: u64,
    db: &Path,
    options: RedbOptions,
    transport: impl multiraft_core::Transport,
) -> Result<MultiRaft, String> {
    let storage = RedbStorage::open(db, options).map_err(|e| format!("open: {e}"))?;
    MultiRaft::builder(NodeId(id), config())
        .storage(storage)
        .transport(transport)
        .state_machines(|_| IndexMachine::default())
        .seed(id)
        .start()
        .await
        .map_err(|e| e.to_string())
}

/// The groups node `id` leads.
fn own_groups(id: u64, groups: u64) -> Vec<GroupId> {
    (1..=groups)
        .filter(|g| g % NODES + 1 == id)
        .map(GroupId)
        .collect()
}

/// Creates groups `1..=groups` on `node`, 256 calls in flight so creations share writes.
async fn create_all(node: &MultiRaft, groups: u64) -> Result<(), String> {
    const IN_FLIGHT: u64 = 256;
    let mut tasks = Vec::new();
    for lane in 1..=IN_FLIGHT.min(groups) {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let members = Membership::voters(1..=NODES);
            let mut g = lane;
            while g <= groups {
                node.create_group(GroupId(g), members.clone())
                    .await
                    .map_err(|e| format!("create group {g}: {e}"))?;
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

/// Makes node `id` campaign for the groups `own` and waits until it leads every one.
async fn lead(node: &MultiRaft, id: u64, own: &[GroupId]) -> Result<(), String> {
    for &g in own {
        node.campaign(g)
            .await
            .map_err(|e| format!("campaign {g}: {e}"))?;
    }
    let deadline = Instant::now() + PHASE_TIMEOUT;
    for &g in own {
        loop {
            let status = node.status(g).await.map_err(|e| e.to_string())?;
            if status.and_then(|s| s.leader) == Some(NodeId(id)) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "node {id} does not lead {g} after {PHASE_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// What one node's clients achieved in the measured window.
struct LoadResult {
    committed: u64,
    errors: u64,
    secs: f64,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.committed as f64 / self.secs
    }
}

/// Runs `clients` closed-loop clients on node `id` against the groups it leads: a warm-up,
/// then the measured window of `secs`.
async fn run_load(
    node: &MultiRaft,
    id: u64,
    groups: u64,
    clients: u64,
    secs: u64,
) -> Result<LoadResult, String> {
    let own = own_groups(id, groups);
    let running = Arc::new(AtomicBool::new(true));
    let measuring = Arc::new(AtomicBool::new(false));
    let (committed, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let group = own[c as usize % own.len()];
        let node = node.clone();
        let (running, measuring) = (Arc::clone(&running), Arc::clone(&measuring));
        let (committed, errors) = (Arc::clone(&committed), Arc::clone(&errors));
        // One payload per client: a shared one would bounce its reference count between cores.
        let payload = Bytes::from(vec![7u8; 16]);
        tasks.push(tokio::spawn(async move {
            let mut first_error = None;
            while running.load(Ordering::Relaxed) {
                let r = node.propose(group, payload.clone()).await;
                let counter = if r.is_ok() { &committed } else { &errors };
                if measuring.load(Ordering::Relaxed) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(e) = r {
                    first_error.get_or_insert(e.to_string());
                    // Do not spin on a refusal: that would measure the retry loop.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            first_error
        }));
    }
    tokio::time::sleep(WARMUP).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    for t in tasks {
        if let Some(e) = t.await.map_err(|e| e.to_string())? {
            eprintln!("cluster_bench: node {id}: a client saw: {e}");
        }
    }
    Ok(LoadResult {
        committed: committed.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        secs,
    })
}

/// One run with the three nodes in this process; `quic` picks the transport.
async fn in_process(dir: &Path, args: &Args, quic: bool) -> Result<(f64, u64), String> {
    let mut nodes = Vec::new();
    if quic {
        let ca = DevCa::new(ClusterId::new(CLUSTER).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let mut transports = Vec::new();
        for id in 1..=NODES {
            let tls = ca.tls_config(NodeId(id)).map_err(|e| e.to_string())?;
            transports.push(bind(id, tls)?);
        }
        let addrs: Vec<SocketAddr> = transports
            .iter()
            .map(|t| t.local_addr().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for (id, t) in (1..).zip(transports) {
            set_peers(&t, id, &addrs);
            let db = dir.join(format!("node{id}.redb"));
            nodes.push(start_node(id, &db, redb_options(args), t).await?);
        }
    } else {
        let network = MemNetwork::new();
        for id in 1..=NODES {
            let t = network.transport(NodeId(id));
            let db = dir.join(format!("node{id}.redb"));
            nodes.push(start_node(id, &db, redb_options(args), t).await?);
        }
    }
    for node in &nodes {
        create_all(node, args.groups).await?;
    }
    for (id, node) in (1..).zip(&nodes) {
        lead(node, id, &own_groups(id, args.groups)).await?;
    }
    let per_node = args.clients / NODES;
    let loads = (1..).zip(&nodes).map(|(id, node)| {
        let node = node.clone();
        let (groups, secs) = (args.groups, args.secs);
        tokio::spawn(async move { run_load(&node, id, groups, per_node, secs).await })
    });
    let mut total = (0.0, 0);
    for load in loads.collect::<Vec<_>>() {
        let r = load.await.map_err(|e| e.to_string())??;
        total.0 += r.rate();
        total.1 += r.errors;
    }
    for node in &nodes {
        node.shutdown().await.map_err(|e| e.to_string())?;
    }
    Ok(total)
}

fn bind(id: u64, tls: TlsConfig) -> Result<QuicTransport, String> {
    bind_at(id, tls, SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn bind_at(id: u64, tls: TlsConfig, listen: SocketAddr) -> Result<QuicTransport, String> {
    QuicTransport::bind(QuicConfig::new(NodeId(id), listen, tls)).map_err(|e| e.to_string())
}

/// Tells node `id`'s transport where the peers it dials (those with higher ids) listen.
fn set_peers(t: &QuicTransport, id: u64, addrs: &[SocketAddr]) {
    for (peer, addr) in (1..).zip(addrs) {
        if peer > id {
            t.set_peer_addr(NodeId(peer), *addr);
        }
    }
}

/// A node process seen from the parent: one line in, one line out per phase.
struct NodeProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl NodeProcess {
    fn say(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.stdin, "{line}").map_err(|e| format!("to child: {e}"))
    }

    /// The child's next line, which must start with `word`; returns the rest.
    fn expect(&mut self, word: &str) -> Result<String, String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("from child: {e}"))?;
        match line.trim_end().strip_prefix(word) {
            Some(rest) => Ok(rest.trim().to_string()),
            None => Err(format!("child said {line:?}, expected {word}")),
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // A child that already exited makes kill fail; either way it is reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a development CA and the three nodes' certificates and keys as PEM files into
/// `dir`, where the node processes load them as a production node would.
fn write_certs(dir: &Path) -> Result<(), String> {
    let ca = DevCa::new(ClusterId::new(CLUSTER).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).map_err(|e| e.to_string())?;
    for id in 1..=NODES {
        let cert = ca.node(NodeId(id)).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("node{id}.pem")), &cert.cert_pem)
            .map_err(|e| e.to_string())?;
        std::fs::write(dir.join(format!("node{id}.key")), &cert.key_pem)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Starts node process `id` on `dir` with `clients` clients and the run's flags, plus
/// `extra`.
fn spawn_child(
    dir: &Path,
    args: &Args,
    id: u64,
    clients: u64,
    extra: &[String],
) -> Result<NodeProcess, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(&exe);
    command
        .args(["--child", &id.to_string(), "--dir"])
        .arg(dir)
        .args(["--groups", &args.groups.to_string()])
        .args(["--clients", &clients.to_string()])
        .args(["--secs", &args.secs.to_string()])
        .args(extra);
    if let Some(mib) = args.redb_cache_mib {
        command.args(["--redb-cache-mib", &mib.to_string()]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn node {id}: {e}"))?;
    let stdin = child.stdin.take().ok_or("no child stdin")?;
    let stdout = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
    Ok(NodeProcess {
        child,
        stdin,
        stdout,
    })
}

/// One run with three node processes.
fn processes(dir: &Path, args: &Args) -> Result<(f64, u64), String> {
    write_certs(dir)?;
    let mut children = Vec::new();
    for id in 1..=NODES {
        children.push(spawn_child(dir, args, id, args.clients / NODES, &[])?);
    }
    let mut addrs = Vec::new();
    for c in &mut children {
        addrs.push(c.expect("addr")?);
    }
    let peers = format!("peers {}", addrs.join(" "));
    for (phase, answer) in [(&*peers, "created"), ("campaign", "ready")] {
        for c in &mut children {
            c.say(phase)?;
        }
        for c in &mut children {
            c.expect(answer)?;
        }
    }
    for c in &mut children {
        c.say("go")?;
    }
    let mut total = (0.0, 0);
    for c in &mut children {
        let result = c.expect("result")?;
        let mut fields = result.split_whitespace().map(str::parse::<f64>);
        let mut next = || -> Result<f64, String> {
            fields
                .next()
                .ok_or("short result line")?
                .map_err(|e| e.to_string())
        };
        total.0 += next()?;
        total.1 += next()? as u64;
    }
    for c in &mut children {
        c.say("stop")?;
    }
    for mut c in children {
        let status = c.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("a node process ended with {status}"));
        }
    }
    Ok(total)
}

/// A node process's side of the conversation with the parent: one line in, one line out.
struct ParentLink {
    stdin: std::io::Lines<BufReader<std::io::Stdin>>,
}

impl ParentLink {
    fn new() -> Self {
        ParentLink {
            stdin: BufReader::new(std::io::stdin()).lines(),
        }
    }

    /// The parent's next line.
    fn next_line(&mut self) -> Result<String, String> {
        match self.stdin.next() {
            Some(line) => line.map_err(|e| e.to_string()),
            None => Err("parent closed stdin".to_string()),
        }
    }

    fn say(&self, line: String) -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    }
}

/// A node process's start: loads its certificates from `dir`, binds its transport (on
/// `--listen` if given), tells the parent where it listens and learns its peers' addresses.
fn child_transport(
    id: u64,
    args: &Args,
    dir: &Path,
    link: &mut ParentLink,
) -> Result<QuicTransport, String> {
    let cluster = ClusterId::new(CLUSTER).map_err(|e| e.to_string())?;
    let tls = TlsConfig::from_pem_files(
        cluster,
        &dir.join("ca.pem"),
        &dir.join(format!("node{id}.pem")),
        &dir.join(format!("node{id}.key")),
    )
    .map_err(|e| e.to_string())?;
    let transport = match args.listen {
        Some(addr) => bind_at(id, tls, addr)?,
        None => bind(id, tls)?,
    };
    link.say(format!(
        "addr {}",
        transport.local_addr().map_err(|e| e.to_string())?
    ))?;
    let peers = link.next_line()?;
    let addrs: Vec<SocketAddr> = peers
        .strip_prefix("peers ")
        .ok_or(format!("expected peers, got {peers:?}"))?
        .split_whitespace()
        .map(|a| a.parse().map_err(|e| format!("{a}: {e}")))
        .collect::<Result<_, String>>()?;
    set_peers(&transport, id, &addrs);
    Ok(transport)
}

/// A child: runs node `id`, one phase per line from the parent.
async fn child(id: u64, args: &Args) -> Result<(), String> {
    let mut link = ParentLink::new();
    let dir = &args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let transport = child_transport(id, args, dir, &mut link)?;
    let db = dir.join(format!("node{id}.redb"));
    let node = start_node(id, &db, redb_options(args), transport).await?;
    create_all(&node, args.groups).await?;
    link.say("created".into())?;
    link.next_line()?;
    lead(&node, id, &own_groups(id, args.groups)).await?;
    link.say("ready".into())?;
    link.next_line()?;
    let r = run_load(&node, id, args.groups, args.clients, args.secs).await?;
    link.say(format!("result {} {} {}", r.rate(), r.errors, r.committed))?;
    link.next_line()?;
    node.shutdown().await.map_err(|e| e.to_string())
}

fn main() {
    multiraft_examples::init_logging();
    let args = parse_args();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cluster_bench: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = match (args.child, args.snapshot_mib) {
        (Some(id), None) => rt.block_on(child(id, &args)),
        (Some(id), Some(_)) => rt.block_on(snapshot::child(id, &args)),
        (None, None) => parent(&rt, &args),
        (None, Some(mib)) => snapshot::parent(&args, mib),
    };
    if let Err(e) = result {
        eprintln!("cluster_bench failed: {e}");
        std::process::exit(1);
    }
}

fn parent(rt: &tokio::runtime::Runtime, args: &Args) -> Result<(), String> {
    println!(
        "cluster_bench: 3 nodes on redb, {} groups, {} clients, 16-byte proposals, {} s per run, median of {} runs",
        args.groups, args.clients, args.secs, args.runs
    );
    let modes = match args.mode {
        Mode::All => vec![Mode::Mem, Mode::Quic, Mode::Processes],
        one => vec![one],
    };
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut medians = Vec::new();
    for mode in modes.into_iter().map(Mode::name) {
        let mut rates = Vec::new();
        for run in 0..args.runs {
            let dir = tempfile::Builder::new()
                .prefix(&format!("multiraft-cluster-bench-{mode}-"))
                .tempdir_in(&parent)
                .map_err(|e| format!("{}: {e}", parent.display()))?;
            let (rate, errors) = match mode {
                "processes" => processes(dir.path(), args)?,
                quic_or_mem => rt.block_on(in_process(dir.path(), args, quic_or_mem == "quic"))?,
            };
            println!("  {mode:<9} run {run}: {rate:>9.0} committed proposals/s, {errors} errors");
            rates.push(rate);
        }
        let m = median(rates);
        println!(
            "{mode:<9} median: {m:>9.0} committed proposals/s (load {})",
            load_average()
        );
        medians.push((mode, m));
    }
    let get = |name| medians.iter().find(|(m, _)| *m == name).map(|(_, r)| *r);
    if let (Some(p), Some(mem)) = (get("processes"), get("mem")) {
        println!("processes / in-process (mem network): {:.2}x", p / mem);
    }
    if let (Some(p), Some(quic)) = (get("processes"), get("quic")) {
        println!("processes / in-process (QUIC): {:.2}x", p / quic);
    }
    Ok(())
}
