//! A kv cluster of node processes on loopback: what `kv cluster` runs and what the
//! process-level tests drive (start, kill -9, restart, stop).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiraft_testkit::cluster::wait_for;

use super::status::StatusBody;

/// Node ids a new cluster's development CA issues certificates for: room for nodes added
/// later (the CA's key is not kept).
pub const CERTIFIED_NODES: u64 = 7;

/// How long a node gets to stop cleanly, once asked, before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// One node of a [`LocalCluster`].
#[derive(Debug)]
pub struct NodeProcess {
    /// Its id.
    pub id: u64,
    /// Where its QUIC endpoint listens.
    pub raft: SocketAddr,
    /// Where it serves HTTP.
    pub http: SocketAddr,
    /// Started with `--join`: it joins the running cluster instead of creating groups.
    pub join: bool,
    child: Option<Child>,
}

impl NodeProcess {
    /// Its HTTP base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Whether its process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// Node processes on loopback, each with its data directory under one directory.
#[derive(Debug)]
pub struct LocalCluster {
    binary: PathBuf,
    dir: PathBuf,
    groups: u64,
    /// Node output goes to `dir/node-N.log` (else it is inherited).
    log_to_files: bool,
    /// The nodes, by id order (node `i + 1` at `i`).
    pub nodes: Vec<NodeProcess>,
}

impl LocalCluster {
    /// Plans `addrs.len()` nodes (ids from 1, at the given QUIC and HTTP addresses) running
    /// `binary` (a `kv` executable) with `groups` groups, data under `dir`; writes
    /// development certificates for nodes 1 to [`CERTIFIED_NODES`] (at least) to `dir/certs`
    /// unless there already are some. Starts nothing.
    pub fn new(
        binary: &Path,
        dir: &Path,
        groups: u64,
        addrs: &[(SocketAddr, SocketAddr)],
        log_to_files: bool,
    ) -> Result<LocalCluster, String> {
        let certs = dir.join("certs");
        if !certs.join("ca.pem").exists() {
            super::certs::generate(&certs, 1..=CERTIFIED_NODES.max(addrs.len() as u64))?;
        }
        let nodes = addrs
            .iter()
            .zip(1..)
            .map(|(&(raft, http), id)| NodeProcess {
                id,
                raft,
                http,
                join: false,
                child: None,
            })
            .collect();
        Ok(LocalCluster {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            groups,
            log_to_files,
            nodes,
        })
    }

    /// For tests: `nodes` nodes of `binary` on free loopback addresses, data, logs
    /// (`node-N.log`) and certificates under `dir`, started and ready (every group with a
    /// leader) within `timeout`. On failure, the error ends with node 1's last log lines.
    pub async fn launch(
        binary: &Path,
        dir: &Path,
        nodes: usize,
        groups: u64,
        timeout: Duration,
    ) -> Result<LocalCluster, String> {
        let addrs = LocalCluster::free_addrs(nodes)?;
        let mut cluster = LocalCluster::new(binary, dir, groups, &addrs, true)?;
        cluster.start_all()?;
        if let Err(e) = cluster.wait_ready(timeout).await {
            return Err(format!(
                "{e}\nnode 1's log ends:\n{}",
                cluster.log_tail(1, 20)
            ));
        }
        Ok(cluster)
    }

    /// The last `lines` lines of node `id`'s log (with `log_to_files`).
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let path = self.dir.join(format!("node-{id}.log"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `count` pairs of free loopback addresses (UDP for QUIC, TCP for HTTP), found by
    /// binding port 0 and letting go: another process could take one meanwhile, which a
    /// test shows as a node failing to start.
    pub fn free_addrs(count: usize) -> Result<Vec<(SocketAddr, SocketAddr)>, String> {
        let mut held = Vec::new();
        for _ in 0..count {
            let udp = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let tcp = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            held.push((udp, tcp));
        }
        held.iter()
            .map(|(u, t)| {
                Ok((
                    u.local_addr().map_err(|e| e.to_string())?,
                    t.local_addr().map_err(|e| e.to_string())?,
                ))
            })
            .collect()
    }

    /// Plans one more node, at the given addresses, that joins the running cluster
    /// (`kv node --join`); returns its id. Its certificate must exist: [`LocalCluster::new`]
    /// issues `certificates` of them. Start it with [`LocalCluster::start`], then add it
    /// with `PUT /admin/nodes/{id}` on any node.
    pub fn plan_joiner(&mut self, raft: SocketAddr, http: SocketAddr) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        self.nodes.push(NodeProcess {
            id,
            raft,
            http,
            join: true,
            child: None,
        });
        id
    }

    /// Node `id`'s place in `nodes`, or why there is none.
    fn index(&self, id: u64) -> Result<usize, String> {
        (1..=self.nodes.len() as u64)
            .contains(&id)
            .then(|| id as usize - 1)
            .ok_or_else(|| format!("no node {id} in a cluster of {}", self.nodes.len()))
    }

    /// The command line of node `id` (an index checked by the caller).
    fn args(&self, id: u64) -> Vec<String> {
        let me = &self.nodes[id as usize - 1];
        let mut args = vec![
            "node".to_string(),
            format!("--id={id}"),
            format!(
                "--data-dir={}",
                self.dir.join(format!("node-{id}")).display()
            ),
            format!("--certs={}", self.dir.join("certs").display()),
            format!("--raft={}", me.raft),
            format!("--http={}", me.http),
            format!("--groups={}", self.groups),
            "--stop-on-stdin-eof".to_string(),
        ];
        for p in self.nodes.iter().filter(|p| p.id != id) {
            args.push(format!("--peer={}={}/{}", p.id, p.raft, p.http));
        }
        if me.join {
            args.push("--join".to_string());
        }
        args
    }

    /// Starts node `id` (no-op if it runs).
    pub fn start(&mut self, id: u64) -> Result<(), String> {
        let at = self.index(id)?;
        if self.nodes[at].child.is_some() {
            return Ok(());
        }
        let mut command = Command::new(&self.binary);
        command.args(self.args(id)).stdin(Stdio::piped());
        if self.log_to_files {
            let path = self.dir.join(format!("node-{id}.log"));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            command.stdout(log).stderr(err);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        self.nodes[at].child = Some(child);
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<(), String> {
        for id in 1..=self.nodes.len() as u64 {
            self.start(id)?;
        }
        Ok(())
    }

    /// Kills node `id` at once (SIGKILL: nothing is flushed, as in a crash) and reaps it.
    pub fn kill(&mut self, id: u64) -> Result<(), String> {
        let at = self.index(id)?;
        if let Some(mut child) = self.nodes[at].child.take() {
            child.kill().map_err(|e| e.to_string())?;
            child.wait().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Asks node `id` to stop (closes its standard input), waits up to [`STOP_TIMEOUT`],
    /// then kills it. Returns whether it stopped by itself with success.
    pub fn stop(&mut self, id: u64) -> Result<bool, String> {
        let at = self.index(id)?;
        let Some(mut child) = self.nodes[at].child.take() else {
            return Ok(true);
        };
        drop(child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                child.kill().map_err(|e| e.to_string())?;
                child.wait().map_err(|e| e.to_string())?;
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops every node; returns the ids of those that did not stop cleanly.
    pub fn stop_all(&mut self) -> Result<Vec<u64>, String> {
        // Ask all first, so they stop together rather than one by one.
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut() {
                drop(child.stdin.take());
            }
        }
        let mut unclean = Vec::new();
        for id in 1..=self.nodes.len() as u64 {
            if !self.stop(id)? {
                unclean.push(id);
            }
        }
        Ok(unclean)
    }

    /// Reaps a node whose process ended by itself; returns its id and exit status.
    pub fn exited(&mut self) -> Option<(u64, std::process::ExitStatus)> {
        for n in &mut self.nodes {
            if let Some(child) = n.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                n.child = None;
                return Some((n.id, status));
            }
        }
        None
    }

    /// Waits, up to `timeout`, until every running node serves HTTP and knows a leader
    /// for each of its groups.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| e.to_string())?;
        let running: Vec<(u64, String)> = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| (n.id, n.url()))
            .collect();
        let all_ready = || async {
            for (_, url) in &running {
                ready(&client, url, self.groups).await.ok()?;
            }
            Some(())
        };
        if wait_for(timeout, all_ready).await.is_ok() {
            return Ok(());
        }
        for (id, url) in &running {
            if let Err(why) = ready(&client, url, self.groups).await {
                return Err(format!("node {id} not ready within {timeout:?}: {why}"));
            }
        }
        Ok(())
    }
}

/// Whether the node at `url` hosts `groups` groups, each with a leader: every page of its
/// status (review: the first page alone, at most `MAX_REPORT_GROUPS`, never counted more, so
/// a cluster of more groups was never ready).
async fn ready(client: &reqwest::Client, url: &str, groups: u64) -> Result<(), String> {
    let (mut led, mut from) = (0u64, 0u64);
    loop {
        let status: StatusBody = client
            .get(format!("{url}/status.json?from={from}"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        led += status.groups.iter().filter(|g| g.leader.is_some()).count() as u64;
        match status.groups.last() {
            Some(last) if status.more => from = last.group + 1,
            _ => break,
        }
    }
    if led < groups {
        return Err(format!("{led} of {groups} groups have a leader"));
    }
    Ok(())
}

impl Drop for LocalCluster {
    /// No node outlives its cluster: the ones still running are killed.
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
