//! Runnable multiraft programs: the `demo` cluster and the benchmarks. This library holds
//! what they share: an in-process cluster on the testkit's in-memory parts, two small state
//! machines, one whose large state is generated rather than held ([`bulk`]) and process
//! measurements. The programs parse their flags with `clap` (each
//! answers `--help`), sum up latencies with `hdrhistogram` and keep their files in
//! `tempfile` directories.
//!
//! With the `jemalloc` feature every program allocates with jemalloc (`tikv-jemallocator`)
//! instead of the system allocator. The benchmark figures are measured so: the library hands
//! short-lived lists of entries between the node, the storage and the state machine, and at
//! a thousand busy groups glibc's allocator cost a third of the throughput jemalloc keeps
//! (BENCHMARKS.md, "The benchmarks allocate with jemalloc"). An application that hosts many
//! busy groups should pick its allocator with the same care.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use multiraft_core::{
    Builder, Bytes, Config, Event, GroupId, Membership, MultiRaft, NodeId, SnapshotChunk,
    SnapshotData, SnapshotError, StartError, StateMachine,
};
use multiraft_testkit::{MemNetwork, MemStorage};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod bulk;
pub mod kv;
pub mod measure;

/// Logs the library's `tracing` records to standard error, filtered by the `RUST_LOG`
/// environment variable (for example `RUST_LOG=multiraft_core=debug`); warnings and errors
/// only when it is unset. Every program calls it first.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second call (tests start several programs' code in one process) keeps the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A state machine that answers each command with the index it was applied at, and keeps
/// only that index: for benchmarks, where applying should cost next to nothing. A query
/// answers the last applied index.
#[derive(Debug, Default)]
pub struct IndexMachine {
    applied: u64,
}

impl StateMachine for IndexMachine {
    fn apply(&mut self, index: u64, _command: &Bytes) -> Bytes {
        self.applied = index;
        Bytes::copy_from_slice(&index.to_le_bytes())
    }

    fn query(&self, _query: &Bytes) -> Bytes {
        Bytes::copy_from_slice(&self.applied.to_le_bytes())
    }

    /// The state is the index: eight bytes.
    fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
        let state = Bytes::copy_from_slice(&self.applied.to_le_bytes());
        Ok(SnapshotData::ready([state]))
    }

    fn restore(&mut self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        if chunk.seq == 0 {
            let bytes: [u8; 8] = chunk.data[..].try_into().map_err(|_| {
                SnapshotError::Failed("an IndexMachine snapshot is eight bytes".into())
            })?;
            self.applied = u64::from_le_bytes(bytes);
        }
        Ok(())
    }
}

/// A state machine that counts the commands it applied, in a counter shared by every group
/// of its node, so a program can watch a whole node's progress. It answers every command
/// with an empty result: the benchmarks' clients read none, and an answer of eight
/// freshly allocated bytes (the entry's index), freed on the client's thread, was about a
/// twentieth of one busy group's samples (BENCHMARKS.md, "An empty answer from the
/// benchmarks' state machine"). openraft's benchmark answers with an empty response too.
#[derive(Debug, Default)]
pub struct CountingMachine {
    applied: Arc<AtomicU64>,
}

impl CountingMachine {
    /// A machine that adds one to `applied` per command it applies.
    pub fn new(applied: Arc<AtomicU64>) -> Self {
        CountingMachine { applied }
    }
}

impl StateMachine for CountingMachine {
    fn apply(&mut self, _index: u64, _command: &Bytes) -> Bytes {
        self.applied.fetch_add(1, Ordering::Relaxed);
        Bytes::new()
    }

    /// One count for the whole batch, and no allocation: `Bytes::new` is static.
    fn apply_batch(
        &mut self,
        commands: &mut dyn Iterator<Item = (u64, &Bytes)>,
        results: &mut Vec<Bytes>,
    ) {
        let before = results.len();
        results.extend(commands.map(|_| Bytes::new()));
        let count = (results.len() - before) as u64;
        self.applied.fetch_add(count, Ordering::Relaxed);
    }

    /// The commands applied by every group of this node so far.
    fn query(&self, _query: &Bytes) -> Bytes {
        Bytes::copy_from_slice(&self.applied.load(Ordering::Relaxed).to_le_bytes())
    }

    /// A group's own state is empty (the counter belongs to the node): an empty snapshot,
    /// so that the log is compacted all the same.
    fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
        Ok(SnapshotData::ready([]))
    }

    fn restore(&mut self, _chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        Ok(())
    }
}

/// One node of an in-process cluster, with its applied-command counter.
#[derive(Debug)]
pub struct ClusterNode {
    /// The node's handle.
    pub handle: MultiRaft,
    /// Commands applied by every group of this node.
    pub applied: Arc<AtomicU64>,
}

/// `threads` runtimes of one worker thread each, for nodes' event loops
/// ([`multiraft_core::Builder::runtime`]); none for 0. Leaked: a benchmark's runtimes live
/// as long as the process, and dropping a runtime inside another one's task panics.
pub fn loop_runtimes(threads: usize) -> Vec<tokio::runtime::Handle> {
    (0..threads)
        .map(|i| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(format!("node-loop-{i}"))
                .enable_all()
                .build()
                .expect("tokio runtime");
            let handle = rt.handle().clone();
            std::mem::forget(rt);
            handle
        })
        .collect()
}

/// `builder` for node `node` (ids from 1), its event loop on a runtime of `runtimes` in
/// turn, or on the current one if `runtimes` is empty.
pub fn on_loop_runtime(
    builder: Builder,
    runtimes: &[tokio::runtime::Handle],
    node: u64,
) -> Builder {
    if runtimes.is_empty() {
        return builder;
    }
    let at = (node.saturating_sub(1) as usize) % runtimes.len();
    builder.runtime(runtimes[at].clone())
}

/// Starts `nodes` nodes (ids 1..=nodes) in this process on in-memory storage and network.
pub async fn start_mem_cluster(
    nodes: u64,
    config: &Config,
) -> Result<Vec<ClusterNode>, StartError> {
    start_mem_cluster_on(nodes, config, &[]).await
}

/// [`start_mem_cluster`], each node's event loop on a runtime of `runtimes`
/// ([`on_loop_runtime`]; see [`multiraft_core::Builder::runtime`]).
pub async fn start_mem_cluster_on(
    nodes: u64,
    config: &Config,
    runtimes: &[tokio::runtime::Handle],
) -> Result<Vec<ClusterNode>, StartError> {
    let network = MemNetwork::new();
    let mut out = Vec::new();
    for i in 1..=nodes {
        let applied = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&applied);
        let builder = MultiRaft::builder(NodeId(i), config.clone())
            .storage(MemStorage::new())
            .transport(network.transport(NodeId(i)))
            .state_machines(move |_| CountingMachine {
                applied: Arc::clone(&counter),
            })
            .seed(i);
        let handle = on_loop_runtime(builder, runtimes, i).start().await?;
        out.push(ClusterNode { handle, applied });
    }
    Ok(out)
}

/// Creates `groups` groups (ids 1..=groups) replicated on every node of `cluster` and waits,
/// up to `timeout`, until node 1 knows a leader for each. Returns each group's leader.
pub async fn create_groups(
    cluster: &[ClusterNode],
    groups: u64,
    timeout: Duration,
) -> Result<Vec<NodeId>, String> {
    let voters = Membership::voters(1..=cluster.len() as u64);
    let mut events = cluster[0].handle.events();
    for g in 1..=groups {
        for n in cluster {
            n.handle
                .create_group(GroupId(g), voters.clone())
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let mut leaders = vec![NodeId(0); groups as usize];
    let mut known = 0;
    let wait = async {
        while known < groups {
            match events.recv().await {
                Ok(Event::LeaderChanged {
                    group,
                    leader: Some(l),
                    ..
                }) if (1..=groups).contains(&group.0) => {
                    let slot = &mut leaders[group.0 as usize - 1];
                    if slot.0 == 0 {
                        known += 1;
                    }
                    *slot = l;
                }
                Ok(_) => {}
                Err(e) => return Err(format!("events: {e}")),
            }
        }
        Ok(())
    };
    tokio::time::timeout(timeout, wait).await.map_err(|_| {
        format!("only {known} of {groups} groups elected a leader within {timeout:?}")
    })??;
    Ok(leaders)
}
