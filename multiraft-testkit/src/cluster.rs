//! Helpers for tests that drive running [`MultiRaft`] nodes (the tokio driver, real or
//! manual time): a state machine that journals what it applies, bounded waits on a
//! condition (what every replica applied, among them), the leader every node agrees on, and
//! proposals in many groups at once on their leaders.
//!
//! ```
//! use std::time::Duration;
//! use multiraft_core::{Config, GroupId, Membership, MultiRaft, NodeId};
//! use multiraft_testkit::cluster::{Journal, agreed_leader, create_everywhere};
//! use multiraft_testkit::{MemNetwork, MemStorage};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let (network, journal) = (MemNetwork::new(), Journal::default());
//! let mut config = Config::default();
//! config.tick_interval = Duration::from_millis(5);
//! let mut nodes = Vec::new();
//! for i in 1..=3 {
//!     let node = MultiRaft::builder(NodeId(i), config.clone())
//!         .storage(MemStorage::new())
//!         .transport(network.transport(NodeId(i)))
//!         .state_machines(journal.machines(NodeId(i)))
//!         .start()
//!         .await
//!         .unwrap();
//!     nodes.push(node);
//! }
//! create_everywhere(&nodes, [GroupId(1)], &Membership::voters([1, 2, 3])).await.unwrap();
//! let wait = Duration::from_secs(30);
//! let leader = agreed_leader(&nodes, GroupId(1), wait).await.unwrap();
//! nodes[leader.0 as usize - 1].propose(GroupId(1), "x").await.unwrap();
//! journal
//!     .wait_until(wait, |j| (1..=3).all(|i| j.commands(NodeId(i), GroupId(1)) == ["x"]))
//!     .await
//!     .unwrap();
//! for n in &nodes {
//!     n.shutdown().await.unwrap();
//! }
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use multiraft_core::{
    Bytes, GroupError, GroupId, Membership, MultiRaft, NodeId, ProposeError, SnapshotChunk,
    SnapshotData, SnapshotError, StateMachine,
};

/// How often a bounded wait looks at its condition again.
const POLL: Duration = Duration::from_millis(2);

/// A wait ran out of time before its condition held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut(pub Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "condition not reached within {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// Polls `cond` until it yields a value, at most `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut cond: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tokio::time::timeout(timeout, async {
        loop {
            if let Some(v) = cond().await {
                return v;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
    .map_err(|_| TimedOut(timeout))
}

/// Waits until every node in `nodes` hosts `group` and knows the same leader in the same
/// term, and returns that leader. A stopped node counts as not agreeing.
pub async fn agreed_leader<'a>(
    nodes: impl IntoIterator<Item = &'a MultiRaft> + Clone,
    group: GroupId,
    timeout: Duration,
) -> Result<NodeId, TimedOut> {
    wait_for(timeout, || leader_agreed(nodes.clone(), group)).await
}

/// The leader every node of `nodes` knows for `group` in the same term, if they agree now.
async fn leader_agreed<'a>(
    nodes: impl IntoIterator<Item = &'a MultiRaft>,
    group: GroupId,
) -> Option<NodeId> {
    let mut seen = BTreeSet::new();
    for n in nodes {
        let s = n.status(group).await.ok()??;
        seen.insert((s.term, s.leader?));
    }
    let mut seen = seen.into_iter();
    match (seen.next(), seen.next()) {
        (Some((_, leader)), None) => Some(leader),
        _ => None,
    }
}

/// Creates every group of `groups` with `membership` on every node of `nodes`.
pub async fn create_everywhere<'a>(
    nodes: impl IntoIterator<Item = &'a MultiRaft>,
    groups: impl IntoIterator<Item = GroupId>,
    membership: &Membership,
) -> Result<(), GroupError> {
    let groups: Vec<GroupId> = groups.into_iter().collect();
    for n in nodes {
        for &g in &groups {
            n.create_group(g, membership.clone()).await?;
        }
    }
    Ok(())
}

/// Proposes `count` commands to each group of `groups` on the leader every node of `nodes`
/// agrees on ([`agreed_leader`]), the groups at once and each group's commands in order;
/// group `g`'s `p`-th command is `{prefix}g{g}p{p}`. Returns each group's answers, in the
/// order of `groups` and of its commands. Gives up with [`TimedOut`] on a leader not agreed
/// within `timeout` (a leader outside `nodes` waits as one not agreed), or a command not
/// answered within it: a proposal that hangs is a failure for the test to see, not a hang
/// of the test.
pub async fn propose_on_leaders<'a>(
    nodes: impl IntoIterator<Item = &'a MultiRaft> + Clone,
    groups: impl IntoIterator<Item = GroupId>,
    count: usize,
    prefix: &str,
    timeout: Duration,
) -> Result<Vec<Vec<Result<Bytes, ProposeError>>>, TimedOut> {
    let mut tasks = Vec::new();
    for group in groups {
        let node = wait_for(timeout, || {
            let nodes = nodes.clone();
            async move {
                let leader = leader_agreed(nodes.clone(), group).await?;
                nodes.into_iter().find(|n| n.id() == leader).cloned()
            }
        })
        .await?;
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::with_capacity(count);
            for p in 0..count {
                let command = format!("{prefix}g{}p{p}", group.0);
                let answer = tokio::time::timeout(timeout, node.propose(group, command));
                answers.push(answer.await.map_err(|_| TimedOut(timeout))?);
            }
            Ok(answers)
        }));
    }
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(answers) => all.push(answers?),
            // A proposer's panic is the test's.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down, and nothing will answer.
            Err(_) => return Err(TimedOut(timeout)),
        }
    }
    Ok(all)
}

/// What every (node, group) state machine made by [`Journal::machines`] applied, in order:
/// (index, command). Cheap to clone; clones share the record.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    applied: Arc<Mutex<Record>>,
}

/// Per (node, group): (index, command) in applied order, and how the state machine got
/// there.
type Record = BTreeMap<(NodeId, GroupId), Replay>;

/// One state machine's record.
#[derive(Clone, Debug, Default)]
struct Replay {
    /// (index, command), in applied order: the state, which a restore replaces.
    applied: Vec<(u64, Bytes)>,
    /// `apply` calls in this life of the machine.
    applies: u64,
    /// Restores completed.
    restores: u64,
    /// The snapshot bytes a restore in progress has received so far.
    restoring: Vec<u8>,
}

impl Journal {
    /// A state-machine factory for node `node`, for
    /// [`Builder::state_machines`](multiraft_core::Builder::state_machines).
    pub fn machines(&self, node: NodeId) -> impl FnMut(GroupId) -> Recorder + Send + 'static {
        let journal = self.clone();
        move |group| Recorder {
            node,
            group,
            journal: journal.clone(),
        }
    }

    /// What `node`'s replica of `group` holds: (index, command) of every command applied,
    /// in order — restored from a snapshot, then applied.
    pub fn applied(&self, node: NodeId, group: GroupId) -> Vec<(u64, Bytes)> {
        self.lock()
            .get(&(node, group))
            .map(|r| r.applied.clone())
            .unwrap_or_default()
    }

    /// The commands `node`'s replica of `group` holds, in order.
    pub fn commands(&self, node: NodeId, group: GroupId) -> Vec<Bytes> {
        self.lock()
            .get(&(node, group))
            .map(|r| r.applied.iter().map(|(_, c)| c.clone()).collect())
            .unwrap_or_default()
    }

    /// How many commands `node`'s replica of `group` was handed by `apply` (since
    /// [`Journal::forget_node`]), and how many snapshots it restored.
    pub fn applies_and_restores(&self, node: NodeId, group: GroupId) -> (u64, u64) {
        self.lock()
            .get(&(node, group))
            .map_or((0, 0), |r| (r.applies, r.restores))
    }

    /// Forgets what `node` applied: before restarting it, since its new state machines replay
    /// the log from the start.
    pub fn forget_node(&self, node: NodeId) {
        self.lock().retain(|(n, _), _| *n != node);
    }

    /// Forgets everything recorded.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Waits until `cond` holds for the journal, at most `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&Journal) -> bool,
    ) -> Result<(), TimedOut> {
        wait_for(timeout, || std::future::ready(cond(self).then_some(()))).await
    }

    /// Waits until the replica of `group` on every node of `nodes` has applied at least
    /// `count` commands, at most `timeout`; returns what each holds, as
    /// [`Journal::applied`], in the order of `nodes`.
    pub async fn wait_applied(
        &self,
        nodes: impl IntoIterator<Item = NodeId> + Clone,
        group: GroupId,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Vec<(u64, Bytes)>>, TimedOut> {
        let held = |j: &Journal| {
            let record = j.lock();
            (nodes.clone().into_iter()).all(|n| {
                record
                    .get(&(n, group))
                    .is_some_and(|r| r.applied.len() >= count)
            })
        };
        self.wait_until(timeout, held).await?;
        Ok(nodes.into_iter().map(|n| self.applied(n, group)).collect())
    }

    fn lock(&self) -> MutexGuard<'_, Record> {
        // A test that panicked while recording leaves the record as it was: still readable.
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A state machine that records every command in its [`Journal`] and answers with how many
/// commands its replica has applied so far (as decimal text), so a test can check both the
/// order on every replica and the result a proposer gets.
#[derive(Debug)]
pub struct Recorder {
    node: NodeId,
    group: GroupId,
    journal: Journal,
}

/// Commands per snapshot chunk of a [`Recorder`]: small, so that snapshots of a test's
/// few hundred commands span several chunks.
const COMMANDS_PER_CHUNK: usize = 32;

impl StateMachine for Recorder {
    fn apply(&mut self, index: u64, command: &Bytes) -> Bytes {
        let mut j = self.journal.lock();
        let r = j.entry((self.node, self.group)).or_default();
        r.applied.push((index, command.clone()));
        r.applies += 1;
        Bytes::from(r.applied.len().to_string())
    }

    /// How many commands this replica has applied, as `apply` answers.
    fn query(&self, _query: &Bytes) -> Bytes {
        let j = self.journal.lock();
        let n = j
            .get(&(self.node, self.group))
            .map_or(0, |r| r.applied.len());
        Bytes::from(n.to_string())
    }

    /// The applied commands, 32 per chunk, each as its index, its
    /// length and its bytes.
    fn snapshot(&mut self) -> Result<SnapshotData, SnapshotError> {
        let state = self.journal.applied(self.node, self.group);
        let chunks: Vec<Bytes> = state
            .chunks(COMMANDS_PER_CHUNK)
            .map(|commands| {
                let mut b = Vec::new();
                for (index, command) in commands {
                    b.extend_from_slice(&index.to_le_bytes());
                    b.extend_from_slice(&(command.len() as u64).to_le_bytes());
                    b.extend_from_slice(command);
                }
                Bytes::from(b)
            })
            .collect();
        Ok(SnapshotData::ready(chunks))
    }

    /// Chunk boundaries are the node's, not the ones `snapshot` made: the bytes are
    /// gathered and decoded once the last chunk is in.
    fn restore(&mut self, chunk: &SnapshotChunk) -> Result<(), SnapshotError> {
        let mut j = self.journal.lock();
        let r = j.entry((self.node, self.group)).or_default();
        if chunk.seq == 0 {
            r.restoring.clear();
        }
        r.restoring.extend_from_slice(&chunk.data);
        if chunk.last {
            let bytes = std::mem::take(&mut r.restoring);
            r.applied = decode_commands(&bytes).ok_or_else(|| {
                SnapshotError::Failed("a Recorder snapshot that does not decode".into())
            })?;
            r.restores += 1;
        }
        Ok(())
    }
}

/// The commands of a [`Recorder`] snapshot.
fn decode_commands(mut data: &[u8]) -> Option<Vec<(u64, Bytes)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let word = |b: &[u8]| Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?));
        let index = word(data)?;
        let len = usize::try_from(word(data.get(8..)?)?).ok()?;
        let command = data.get(16..16 + len)?;
        out.push((index, Bytes::copy_from_slice(command)));
        data = &data[16 + len..];
    }
    Some(out)
}
