//! `--snapshot-mib N`: a large snapshot installed across processes while the other groups
//! write (docs/design.md §4.6), and the same run without it.
//!
//! Three node processes as in the `processes` mode, but placed for the purpose: group 1 runs
//! a [`BulkMachine`] (a state generated from a seed, never held in memory), every other
//! group an [`IndexMachine`]; nodes 1 and 2 lead the groups (node 1 the odd ones, group 1
//! included; node 2 the even ones), node 3 leads none, and the clients (`--clients`, half on
//! each) run on nodes 1 and 2, each against the groups it leads but group 1. A run:
//!
//! 1. node 1 grows group 1 to N MiB (one command); nodes 1 and 2 commit to each other group
//!    enough that it has taken a snapshot and compacted, a different amount per group so
//!    that the logs, and the nodes' memory, are in a steady state ([`prime`]).
//! 2. *before*: clients write for a 2 s warm-up and a `--secs` window.
//! 3. node 3 stops; node 1 commits enough to group 1 that nodes 1 and 2 take a snapshot of
//!    it (N MiB each, written to redb) and compact their logs past node 3's.
//! 4. *during*: clients write; after the warm-up node 3 starts again on its files, so the
//!    leader must send it group 1's snapshot. The window opens when node 3 is connected to
//!    node 1 and closes once node 3's machine has restored the snapshot, and `--secs` at the
//!    earliest.
//! 5. *after*: a warm-up and a window as long as *during*'s.
//!
//! Then the control: the same run with a 0 MiB group 1 (its snapshot is the 16-byte
//! header), whose *during* window is as long as the first run's, without *after*.
//!
//! Each window records the commit latency of every proposal started and committed in it (an
//! HdrHistogram per node, merged by the parent) and each process's peak RSS over it (`VmHWM`, reset
//! when the window opens, with the RSS then). The extra RSS of the transfer is how much more a
//! process's peak rose over the *during* window above its RSS at the start than in the control: the
//! processes' sizes differ between runs by tens of MiB (allocator, timing), their rise over a
//! window of the same length much less. RSS depends on more than the library: redb's page cache
//! (`--redb-cache-mib`) fills with the snapshot's pages up to its size, and glibc's malloc, whose
//! mmap threshold adapts, ends up serving the 1 MiB chunk buffers from arenas that fragment; the
//! environment variable `MALLOC_MMAP_THRESHOLD_` fixes the threshold (BENCHMARKS.md has both
//! effects measured). Node 3's machine reports the hash and length of the stream it restored, node
//! 1's those of the stream it produced: they must be equal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use multiraft_core::{
    Bytes, GroupId, MultiRaft, NodeId, ProposeError, SnapshotChunk, SnapshotData, SnapshotError,
    StateMachine,
};
use multiraft_examples::IndexMachine;
use multiraft_examples::bulk::{BulkMachine, BulkReport, Digest};
use multiraft_examples::measure::{
    histogram, load_average, peak_rss_bytes, record, reset_peak_rss, rss_bytes,
};
use multiraft_storage_redb::RedbStorage;
use tokio::task::JoinHandle;

use super::{
    Args, NODES, NodeProcess, PHASE_TIMEOUT, ParentLink, WARMUP, child_transport, config,
    create_all, lead, redb_options, spawn_child, write_certs,
};

/// The group whose snapshot is sent.
const BIG: GroupId = GroupId(1);
/// The seed of the big group's generated state.
const SEED: u64 = 0x05EE_DB16;
/// Bound on waiting for a snapshot to be built or installed: a GiB written through redb on a
/// busy 2-core box takes a while.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(900);
/// Latencies a client keeps before adding them to its node's histogram.
const FLUSH_LATENCIES: usize = 1024;

/// Which node leads group `g`: node 1 the odd groups, node 2 the even ones.
fn leader_of(g: u64) -> u64 {
    if g % 2 == 1 { 1 } else { 2 }
}

/// The groups node `id` leads.
fn led_by(id: u64, groups: u64) -> Vec<GroupId> {
    (1..=groups)
        .filter(|g| leader_of(*g) == id)
        .map(GroupId)
        .collect()
}

/// Group 1's machine, or every other group's.
enum Machine {
    Bulk(BulkMachine),
    Index(IndexMachine),
}

impl StateMachine for Machine {
    fn apply(&mut self, index: u64, command: &Bytes) -> Bytes {
        match self {
            Machine::Bulk(m) => m.apply(index, command),
            Machine::Index(m) => m.apply(index, command),
        }
    }

    fn query(&self, query: &Bytes) -> Bytes {
        match self {
            Machine::Bulk(m) => m.query(query),
            Machine::Index(m) => m.query(query),
        }
    }

    fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
        match self {
            Machine::Bulk(m) => m.snapshot(),
            Machine::Index(m) => m.snapshot(),
        }
    }

    fn restore(&mut self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        match self {
            Machine::Bulk(m) => m.restore(chunk),
            Machine::Index(m) => m.restore(chunk),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The node processes.

/// Closed-loop clients on one node, recording the latency of each commit started since the
/// last [`mark`](Load::mark).
struct Load {
    running: Arc<AtomicBool>,
    /// Bumped by `mark`: a latency counts only in the window its proposal started in.
    window: Arc<AtomicU64>,
    /// The current window's latencies (µs), with the window they belong to.
    shared: Arc<Mutex<(u64, Histogram<u64>)>>,
    errors: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
    marked: Instant,
    rss_at_mark: u64,
}

impl Load {
    fn start(node: &MultiRaft, groups: &[GroupId], clients: u64) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let window = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Mutex::new((0, histogram([]))));
        let errors = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        let clients = if groups.is_empty() { 0 } else { clients };
        for c in 0..clients {
            let group = groups[c as usize % groups.len()];
            let node = node.clone();
            let (running, window) = (Arc::clone(&running), Arc::clone(&window));
            let (shared, errors) = (Arc::clone(&shared), Arc::clone(&errors));
            let payload = Bytes::from(vec![7u8; 16]);
            tasks.push(tokio::spawn(async move {
                let mut buffer: Vec<u32> = Vec::with_capacity(FLUSH_LATENCIES);
                let mut buffered_window = 0;
                while running.load(Ordering::Relaxed) {
                    let w = window.load(Ordering::Relaxed);
                    let t = Instant::now();
                    let r = node.propose(group, payload.clone()).await;
                    // Not in the warm-up, nor across a mark.
                    let counted = w != 0 && window.load(Ordering::Relaxed) == w;
                    if counted && w != buffered_window {
                        buffer.clear();
                        buffered_window = w;
                    }
                    match r {
                        Ok(_) if counted => {
                            let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                            buffer.push(us);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if counted {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            // Do not spin on a refusal: that would measure the retry loop.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    if buffer.len() >= FLUSH_LATENCIES {
                        flush(&shared, buffered_window, &mut buffer);
                    }
                }
                flush(&shared, buffered_window, &mut buffer);
            }));
        }
        Load {
            running,
            window,
            shared,
            errors,
            tasks,
            marked: Instant::now(),
            rss_at_mark: 0,
        }
    }

    /// Opens a measured window: latencies and errors from now on, and the peak RSS from now.
    fn mark(&mut self) -> Result<(), String> {
        let w = self.window.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut s) = self.shared.lock() {
            s.0 = w;
            s.1.reset();
        }
        self.errors.store(0, Ordering::Relaxed);
        reset_peak_rss().map_err(|e| format!("cannot reset the peak RSS: {e}"))?;
        self.rss_at_mark = rss_bytes().unwrap_or(0);
        self.marked = Instant::now();
        Ok(())
    }

    /// Closes the window and stops the clients: the `result` line for the parent. Only
    /// proposals started and committed inside the window count.
    async fn end(self) -> Result<String, String> {
        self.window.fetch_add(1, Ordering::Relaxed);
        let secs = self.marked.elapsed().as_secs_f64();
        let peak = peak_rss_bytes().unwrap_or(0);
        self.running.store(false, Ordering::Relaxed);
        for t in self.tasks {
            t.await.map_err(|e| e.to_string())?;
        }
        let (_, h) = &*self.shared.lock().map_err(|e| e.to_string())?;
        let buckets: Vec<String> = h
            .iter_recorded()
            .map(|v| format!("{}:{}", v.value_iterated_to(), v.count_at_value()))
            .collect();
        Ok(format!(
            "result {secs} {} {peak} {} {}",
            self.errors.load(Ordering::Relaxed),
            self.rss_at_mark,
            if buckets.is_empty() {
                "-".to_string()
            } else {
                buckets.join(",")
            }
        ))
    }
}

/// Adds `buffer` to the shared histogram if it is still `window`'s, and empties it.
fn flush(shared: &Mutex<(u64, Histogram<u64>)>, window: u64, buffer: &mut Vec<u32>) {
    if let Ok(mut s) = shared.lock()
        && s.0 == window
    {
        for v in buffer.iter() {
            record(&mut s.1, u64::from(*v));
        }
    }
    buffer.clear();
}

/// Waits, up to `timeout`, until `cond` holds, checking every 20 ms.
async fn wait_for<F: AsyncFnMut() -> Result<bool, String>>(
    what: &str,
    timeout: Duration,
    mut cond: F,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !cond().await? {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn status(node: &MultiRaft, g: GroupId) -> Result<multiraft_core::GroupStatus, String> {
    node.status(g)
        .await
        .map_err(|e| e.to_string())?
        .ok_or(format!("{g} is not hosted"))
}

/// A node process of a snapshot run: runs node `id`, one phase per line from the parent.
pub(super) async fn child(id: u64, args: &Args) -> Result<(), String> {
    let mut link = ParentLink::new();
    let dir = &args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let transport = child_transport(id, args, dir, &mut link)?;
    let report = Arc::new(BulkReport::default());
    let node = {
        let storage = RedbStorage::open(dir.join(format!("node{id}.redb")), redb_options(args))
            .map_err(|e| format!("open: {e}"))?;
        let report = Arc::clone(&report);
        MultiRaft::builder(NodeId(id), config())
            .storage(storage)
            .transport(transport.clone())
            .state_machines(move |g| match g {
                BIG => Machine::Bulk(BulkMachine::new(SEED, Arc::clone(&report))),
                _ => Machine::Index(IndexMachine::default()),
            })
            .seed(id)
            .start()
            .await
            .map_err(|e| e.to_string())?
    };
    let mut connected = Instant::now();
    if args.restarted {
        // Its groups come back from storage. The transfer starts once node 1 reaches it.
        wait_for("connected to node 1", PHASE_TIMEOUT, async || {
            Ok(transport.connected_peers().contains(&NodeId(1)))
        })
        .await?;
        connected = Instant::now();
        link.say("connected".into())?;
    } else {
        create_all(&node, args.groups).await?;
        link.say("created".into())?;
        link.next_line()?;
        lead(&node, id, &led_by(id, args.groups)).await?;
        link.say("ready".into())?;
    }
    let clients_groups: Vec<GroupId> = led_by(id, args.groups)
        .into_iter()
        .filter(|g| *g != BIG)
        .collect();
    let mut load: Option<Load> = None;
    loop {
        let line = link.next_line()?;
        let mut words = line.split_whitespace();
        let answer = match words.next() {
            Some("grow") => {
                let bytes: u64 = words.next().and_then(|b| b.parse().ok()).ok_or("grow N")?;
                node.propose(BIG, BulkMachine::resize_command(bytes))
                    .await
                    .map_err(|e| format!("grow: {e}"))?;
                "grown".to_string()
            }
            Some("fill") => fill(&node).await?,
            Some("prime") => {
                prime(&node, &clients_groups).await?;
                "primed".to_string()
            }
            Some("settle") => {
                let index: u64 = words
                    .next()
                    .and_then(|i| i.parse().ok())
                    .ok_or("settle N")?;
                wait_for(
                    "node's own snapshot of group 1",
                    SNAPSHOT_TIMEOUT,
                    async || Ok(status(&node, BIG).await?.snapshot_index >= index),
                )
                .await?;
                "settled".to_string()
            }
            Some("go") => {
                load = Some(Load::start(&node, &clients_groups, args.clients));
                "going".to_string()
            }
            Some("mark") => {
                load.as_mut().ok_or("mark before go")?.mark()?;
                "marked".to_string()
            }
            Some("end") => load.take().ok_or("end before go")?.end().await?,
            Some("restore-wait") => {
                let index: u64 = words
                    .next()
                    .and_then(|i| i.parse().ok())
                    .ok_or("restore-wait N")?;
                let mut restored = None;
                wait_for(
                    "group 1 restored from the leader's snapshot",
                    SNAPSHOT_TIMEOUT,
                    async || {
                        restored = *report.restored.lock().map_err(|e| e.to_string())?;
                        Ok(restored.is_some_and(|(d, _, _)| d.index >= index))
                    },
                )
                .await?;
                let (d, started, ended) = restored.ok_or("no restore")?;
                format!(
                    "restored {} {} {} {} {}",
                    started.duration_since(connected).as_secs_f64(),
                    ended.duration_since(connected).as_secs_f64(),
                    d.index,
                    d.bytes,
                    d.hash
                )
            }
            Some("digest") => match *report.produced.lock().map_err(|e| e.to_string())? {
                Some(d) => format!("digest {} {} {}", d.index, d.bytes, d.hash),
                None => "digest none".to_string(),
            },
            Some("transport") => {
                let t = transport.stats();
                format!(
                    "transport {} {} {} {} {}",
                    t.bytes_sent,
                    t.dropped_snapshot,
                    t.dropped_queue_full,
                    t.dropped_unconnected + t.dropped_write_error + t.dropped_unsendable,
                    t.inbound_dropped
                )
            }
            Some("stop") => break,
            _ => return Err(format!("unknown phase {line:?}")),
        };
        link.say(answer)?;
    }
    node.shutdown().await.map_err(|e| e.to_string())?;
    link.say("stopped".into())
}

/// Commits `snapshot_entries + compaction_lag_entries` entries and up to `snapshot_entries`
/// more, a different number per group, to each of `groups` (`propose_many` of 256, 64
/// groups at a time). Every group has then taken a snapshot and compacted, and the groups
/// are spread over their snapshot cycles: a group's log grows from the lag to
/// `snapshot_entries` past it and drops back, and with the groups out of step the sum, the
/// node's memory, stays level. Primed in step, every log would grow together for a whole
/// cycle and the windows would compare different points of it.
async fn prime(node: &MultiRaft, groups: &[GroupId]) -> Result<(), String> {
    const IN_FLIGHT: usize = 64;
    let c = config();
    let base = c.snapshot_entries + c.compaction_lag_entries;
    let spread = c.snapshot_entries.max(1);
    let mut tasks = Vec::new();
    for lane in 0..IN_FLIGHT.min(groups.len()) {
        let node = node.clone();
        let mine: Vec<GroupId> = groups
            .iter()
            .copied()
            .skip(lane)
            .step_by(IN_FLIGHT)
            .collect();
        tasks.push(tokio::spawn(async move {
            for g in mine {
                // 389 is prime: consecutive groups land far apart in the cycle.
                let per_group = base + g.0.wrapping_mul(389) % spread;
                propose_count(&node, g, per_group, &[7u8; 16])
                    .await
                    .map_err(|e| format!("prime {g}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Commits `count` copies of `command` to `group` through `node`, in `propose_many` calls
/// of at most 256, proposing again what was refused as `Busy` (a leader holds proposals
/// back while its log runs ahead of its snapshots) after a moment. Any other error ends it.
async fn propose_count(
    node: &MultiRaft,
    group: GroupId,
    count: u64,
    command: &'static [u8],
) -> Result<(), ProposeError> {
    let mut done = 0;
    while done < count {
        let n = (count - done).min(256);
        let commands = (0..n).map(|_| Bytes::from_static(command)).collect();
        let mut busy = false;
        for r in node.propose_many(group, commands).await {
            match r {
                Ok(_) => done += 1,
                Err(ProposeError::Busy { .. }) => busy = true,
                Err(e) => return Err(e),
            }
        }
        if busy {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Ok(())
}

/// On group 1's leader: commits enough to group 1 that every replica takes a snapshot of it
/// and compacts its log past everything committed before (all a stopped node holds), and
/// waits until that is durable here. Answers `filled SNAPSHOT_INDEX`.
async fn fill(node: &MultiRaft) -> Result<String, String> {
    let before = status(node, BIG).await?;
    let c = config();
    // One snapshot (every `snapshot_entries` applies), the lag kept below it, and a margin.
    let total = c.snapshot_entries + c.compaction_lag_entries + 64;
    propose_count(node, BIG, total, b"filler")
        .await
        .map_err(|e| format!("fill: {e}"))?;
    let mut snapshot = 0;
    wait_for(
        "group 1 compacted past node 3",
        SNAPSHOT_TIMEOUT,
        async || {
            let s = status(node, BIG).await?;
            snapshot = s.snapshot_index;
            Ok(s.first_index > before.last_index + 1)
        },
    )
    .await?;
    Ok(format!("filled {snapshot}"))
}

// ---------------------------------------------------------------------------------------
// The parent.

/// What a node process reported for one window.
struct Window {
    secs: f64,
    errors: u64,
    peak_rss: u64,
    rss_at_mark: u64,
    latencies: Histogram<u64>,
}

fn parse_window(line: &str) -> Result<Window, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [secs, errors, peak, at_mark, buckets] = f[..] else {
        return Err(format!("bad result line {line:?}"));
    };
    let num = |s: &str| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
    let mut latencies = histogram([]);
    if buckets != "-" {
        for b in buckets.split(',') {
            let (v, n) = b.split_once(':').ok_or("bad bucket")?;
            latencies
                .record_n(num(v)?, num(n)?)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(Window {
        secs: secs.parse().map_err(|e| format!("{secs}: {e}"))?,
        errors: num(errors)?,
        peak_rss: num(peak)?,
        rss_at_mark: num(at_mark)?,
        latencies,
    })
}

/// The three node processes, by id; node 3's slot is empty while it is down.
struct Nodes {
    procs: Vec<Option<NodeProcess>>,
}

impl Nodes {
    fn get(&mut self, id: u64) -> Result<&mut NodeProcess, String> {
        self.procs[id as usize - 1]
            .as_mut()
            .ok_or(format!("node {id} is down"))
    }

    /// Says `line` to each of `ids`, then reads each one's answer, which must start with
    /// `word`; returns the rest of each.
    fn all(&mut self, ids: &[u64], line: &str, word: &str) -> Result<Vec<String>, String> {
        for &id in ids {
            self.get(id)?.say(line)?;
        }
        ids.iter().map(|&id| self.get(id)?.expect(word)).collect()
    }
}

/// Runs clients for a warm-up, then a window of `length`; the nodes' reports by id.
fn window(nodes: &mut Nodes, length: Duration) -> Result<Vec<Window>, String> {
    let ids = [1, 2, 3];
    nodes.all(&ids, "go", "going")?;
    std::thread::sleep(WARMUP);
    nodes.all(&ids, "mark", "marked")?;
    std::thread::sleep(length);
    let lines = nodes.all(&ids, "end", "result")?;
    lines.iter().map(|l| parse_window(l)).collect()
}

/// What one run measured.
struct Run {
    before: Vec<Window>,
    during: Vec<Window>,
    /// None in the control run.
    after: Option<Vec<Window>>,
    /// From node 3's connection to node 1 until the snapshot was stored (restore started)
    /// and restored.
    received_secs: f64,
    restored_secs: f64,
    /// What node 1 produced and node 3 restored.
    sent: Digest,
    got: Digest,
    /// Per node: bytes sent, snapshot-lane drops, queue-full drops, other outbound drops,
    /// inbound drops.
    transport: Vec<[u64; 5]>,
}

fn numbers<const N: usize>(line: &str) -> Result<[u64; N], String> {
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().map_err(|e| format!("{x}: {e}")))
        .collect::<Result<_, _>>()?;
    v.try_into()
        .map_err(|_| format!("expected {N} numbers: {line:?}"))
}

/// One run with a `mib` MiB state in group 1: the phases of the module docs. The *during*
/// window lasts until node 3 has restored the snapshot and at least `min_during`; *after*
/// (if `after`) as long as *during*.
fn run(args: &Args, mib: u64, min_during: Duration, after: bool) -> Result<Run, String> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("multiraft-cluster-bench-snapshot-")
        .tempdir_in(&parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let dir = dir.path();
    write_certs(dir)?;
    let flag = ["--snapshot-mib".to_string(), mib.to_string()];
    let clients = (args.clients / 2).max(1);
    let mut nodes = Nodes { procs: Vec::new() };
    for id in 1..=NODES {
        let share = if id == 3 { 0 } else { clients };
        nodes
            .procs
            .push(Some(spawn_child(dir, args, id, share, &flag)?));
    }
    let ids = [1, 2, 3];
    let mut addrs = Vec::new();
    for id in ids {
        addrs.push(nodes.get(id)?.expect("addr")?);
    }
    let peers = format!("peers {}", addrs.join(" "));
    nodes.all(&ids, &peers, "created")?;
    nodes.all(&ids, "campaign", "ready")?;
    nodes.all(&[1], &format!("grow {}", mib << 20), "grown")?;
    let t = Instant::now();
    nodes.all(&[1, 2], "prime", "primed")?;
    println!(
        "  {mib} MiB: primed in {:.1} s; before: {} s",
        t.elapsed().as_secs_f64(),
        args.secs
    );
    let before = window(&mut nodes, Duration::from_secs(args.secs))?;

    // Node 3 stops; group 1's log moves past it and both other nodes store its snapshot.
    nodes.all(&[3], "stop", "stopped")?;
    if let Some(mut p) = nodes.procs[2].take() {
        let status = p.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("node 3 ended with {status}"));
        }
    }
    let t = Instant::now();
    let filled = nodes.all(&[1], "fill", "filled")?.remove(0);
    nodes.all(&[2], &format!("settle {filled}"), "settled")?;
    println!(
        "  {mib} MiB: node 3 stopped; group 1's snapshot at index {filled} stored on nodes 1 and 2, logs compacted past node 3, in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // During: node 3 comes back on its files while the clients write.
    nodes.all(&[1, 2], "go", "going")?;
    std::thread::sleep(WARMUP);
    let restart = [
        flag.to_vec(),
        vec!["--restarted".into(), "--listen".into(), addrs[2].clone()],
    ]
    .concat();
    nodes.procs[2] = Some(spawn_child(dir, args, 3, 0, &restart)?);
    nodes.get(3)?.expect("addr")?;
    nodes.get(3)?.say(&peers)?;
    nodes.get(3)?.expect("connected")?;
    nodes.all(&[3], "go", "going")?;
    nodes.all(&ids, "mark", "marked")?;
    let t = Instant::now();
    let restored = nodes.all(&[3], &format!("restore-wait {filled}"), "restored")?;
    std::thread::sleep(min_during.saturating_sub(t.elapsed()));
    let length = t.elapsed();
    let during: Vec<Window> = nodes
        .all(&ids, "end", "result")?
        .iter()
        .map(|l| parse_window(l))
        .collect::<Result<_, _>>()?;
    println!(
        "  {mib} MiB: node 3 restarted, during: {:.1} s",
        length.as_secs_f64()
    );

    let after = if after {
        Some(window(&mut nodes, length)?)
    } else {
        None
    };
    let produced = nodes.all(&[1], "digest", "digest")?.remove(0);
    let mut transport = Vec::new();
    for line in nodes.all(&ids, "transport", "transport")? {
        transport.push(numbers::<5>(&line)?);
    }
    nodes.all(&ids, "stop", "stopped")?;
    for p in nodes.procs.iter_mut().flatten() {
        let status = p.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("a node process ended with {status}"));
        }
    }

    let r: Vec<&str> = restored[0].split_whitespace().collect();
    let [received, done, rest @ ..] = &r[..] else {
        return Err(format!("bad restored line {:?}", restored[0]));
    };
    let secs = |s: &str| s.parse::<f64>().map_err(|e| format!("{s}: {e}"));
    let digest = |[index, bytes, hash]: [u64; 3]| Digest { index, bytes, hash };
    Ok(Run {
        before,
        during,
        after,
        received_secs: secs(received)?,
        restored_secs: secs(done)?,
        sent: digest(numbers::<3>(&produced)?),
        got: digest(numbers::<3>(&rest.join(" "))?),
        transport,
    })
}

/// Latencies of nodes 1 and 2 together, their errors and the window's length.
fn merged(w: &[Window]) -> Result<(Histogram<u64>, u64, f64), String> {
    let mut h = histogram([]);
    for n in &w[..2] {
        h.add(&n.latencies).map_err(|e| e.to_string())?;
    }
    Ok((h, w[0].errors + w[1].errors, w[0].secs))
}

/// p99 in milliseconds of a window's merged latencies.
fn p99(w: &[Window]) -> Result<f64, String> {
    Ok(merged(w)?.0.value_at_quantile(0.99) as f64 / 1000.0)
}

fn print_latency(name: &str, w: &[Window]) -> Result<(), String> {
    let (h, errors, secs) = merged(w)?;
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "  {name:<30} {secs:>6.1} s: {:>7.0} commits/s, p50 {:>7.2} ms, p99 {:>7.2} ms, max {:>7.2} ms, {errors} errors",
        h.len() as f64 / secs,
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    );
    Ok(())
}

/// A snapshot run and its control: see the module docs.
pub(super) fn parent(args: &Args, mib: u64) -> Result<(), String> {
    println!(
        "cluster_bench: a {} MiB snapshot of group 1 across processes; 3 nodes on redb, {} groups, {} clients on each of nodes 1 and 2 (16-byte proposals to the groups they lead, group 1 excepted); then the same run with a 0 MiB group 1",
        mib,
        args.groups,
        (args.clients / 2).max(1)
    );
    let big = run(args, mib, Duration::from_secs(args.secs), true)?;
    let length = Duration::from_secs_f64(big.during[0].secs);
    let control = run(args, 0, length, false)?;
    let big_after = big.after.as_deref().ok_or("no after window")?;

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "transfer: group 1's snapshot (index {}, {} bytes) node 1 -> node 3: stored on node 3 {:.2} s after it connected ({:.1} MiB/s), restored into its machine by {:.2} s",
        big.sent.index,
        big.sent.bytes,
        big.received_secs,
        mib(big.sent.bytes) / big.received_secs,
        big.restored_secs
    );
    let same = big.sent.same_bytes(&big.got);
    println!(
        "  node 1 produced {} bytes, hash {:#018x}; node 3 restored {} bytes, hash {:#018x}: {}",
        big.sent.bytes,
        big.sent.hash,
        big.got.bytes,
        big.got.hash,
        if same { "EQUAL" } else { "DIFFERENT" }
    );
    println!(
        "commit latency of the other groups (proposals started in the window, nodes 1 and 2 merged):"
    );
    print_latency("before", &big.before)?;
    print_latency("during the transfer", &big.during)?;
    print_latency("after", big_after)?;
    print_latency("control: before", &control.before)?;
    print_latency("control: during (no transfer)", &control.during)?;
    let p = p99(&big.during)?;
    println!(
        "  p99 during the transfer / control during: {:.2}x (target <= 2x); / after the transfer: {:.2}x",
        p / p99(&control.during)?,
        p / p99(big_after)?
    );
    println!(
        "peak RSS over each window, MiB (VmHWM reset when the window opens; in brackets the RSS then):"
    );
    for (i, role) in ["node 1 (sender)", "node 2", "node 3 (receiver)"]
        .iter()
        .enumerate()
    {
        let w = |r: &Run| -> String {
            [Some(&r.before), Some(&r.during), r.after.as_ref()]
                .iter()
                .flatten()
                .map(|w| format!("{:.1} [{:.1}]", mib(w[i].peak_rss), mib(w[i].rss_at_mark)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rise = |r: &Run| mib(r.during[i].peak_rss) - mib(r.during[i].rss_at_mark);
        println!(
            "  {role:<17} before, during, after: {}; control before, during: {}",
            w(&big),
            w(&control),
        );
        println!(
            "  {:<17} rise over the during window: {:.1} with the transfer, {:.1} in the control: extra {:+.1} (target <= 64); during peaks differ by {:+.1}",
            "",
            rise(&big),
            rise(&control),
            rise(&big) - rise(&control),
            mib(big.during[i].peak_rss) - mib(control.during[i].peak_rss)
        );
    }
    println!("transport counters over the run (node 3's since its restart), transfer run:");
    for (id, [sent, snapshot, full, other, inbound]) in (1..).zip(&big.transport) {
        println!(
            "  node {id}: {sent} bytes sent; dropped: {snapshot} snapshot-lane batches, {full} for a full queue (any lane), {other} unconnected or unsendable, {inbound} inbound"
        );
    }
    println!("load average {}", load_average());
    if !same {
        return Err("node 3 did not restore the bytes node 1 produced".into());
    }
    Ok(())
}
