//! A 3-node cluster in one process on `RedbStorage` (one database per node), driven through
//! the core's API as multiraft-core/tests/driver.rs does on `MemStorage`: elections,
//! proposals applied on every replica, restart from the file, group removal, and a failing
//! fsync that stops a node.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{FaultDisk, TempDir};
use multiraft_core::{
    Bytes, Config, GroupId, Membership, MultiRaft, NodeId, ProposeError, StopError, Storage,
};
use multiraft_storage_redb::{RedbOptions, RedbStorage};
use multiraft_testkit::MemNetwork;
use multiraft_testkit::cluster::{
    self, Journal, agreed_leader, create_everywhere, propose_on_leaders,
};

/// Every wait gives up after this long: generous, because CI shares 2 cores.
const WAIT: Duration = Duration::from_secs(30);

/// 5 ms ticks with 200–400 ms election timeouts: a real fsync on a shared CI disk can stall
/// a node's loop for tens of milliseconds, which must not look like a dead leader (an
/// election in the middle of a test makes its proposals end indeterminate).
fn test_config() -> Config {
    let mut c = Config::default();
    c.tick_interval = Duration::from_millis(5);
    c.election_timeout_min_ticks = 40;
    c.election_timeout_max_ticks = 80;
    c.strict = true;
    c
}

/// Where a node keeps its database.
enum Disk {
    File(PathBuf),
    Fault(FaultDisk),
}

struct Cluster {
    _dir: TempDir,
    network: MemNetwork,
    disks: Vec<Disk>,
    nodes: Vec<Option<MultiRaft>>,
    journal: Journal,
}

impl Cluster {
    /// Three nodes, each on its own database file.
    async fn on_files() -> Cluster {
        let dir = TempDir::new("cluster");
        let disks = (1..=3)
            .map(|i| Disk::File(dir.path().join(format!("node{i}.redb"))))
            .collect();
        Cluster::start(dir, disks).await
    }

    /// Three nodes, each on a fault-injecting in-memory disk.
    async fn on_fault_disks() -> Cluster {
        let disks = (1..=3).map(|_| Disk::Fault(FaultDisk::new())).collect();
        Cluster::start(TempDir::new("cluster-fault"), disks).await
    }

    async fn start(dir: TempDir, disks: Vec<Disk>) -> Cluster {
        let mut c = Cluster {
            _dir: dir,
            network: MemNetwork::new(),
            disks,
            nodes: Vec::new(),
            journal: Journal::default(),
        };
        for i in 1..=3 {
            let node = c.start_node(i).await;
            c.nodes.push(Some(node));
        }
        c
    }

    fn open_storage(&self, i: u64) -> RedbStorage {
        match &self.disks[i as usize - 1] {
            Disk::File(path) => RedbStorage::open(path, RedbOptions::default()).unwrap(),
            Disk::Fault(disk) => {
                RedbStorage::with_backend(disk.backend(), RedbOptions::default()).unwrap()
            }
        }
    }

    async fn start_node(&self, i: u64) -> MultiRaft {
        MultiRaft::builder(NodeId(i), test_config())
            .storage(self.open_storage(i))
            .transport(self.network.transport(NodeId(i)))
            .state_machines(self.journal.machines(NodeId(i)))
            .seed(i * 1000)
            .start()
            .await
            .unwrap()
    }

    fn node(&self, i: u64) -> &MultiRaft {
        self.nodes[i as usize - 1].as_ref().unwrap()
    }

    async fn create(&self, groups: impl IntoIterator<Item = u64>) {
        let members = Membership::voters([1, 2, 3]);
        let groups = groups.into_iter().map(GroupId);
        create_everywhere(self.nodes.iter().flatten(), groups, &members)
            .await
            .unwrap();
    }

    /// Waits until every running node knows the same leader for `group` in the same term.
    async fn leader(&self, group: u64) -> NodeId {
        agreed_leader(self.nodes.iter().flatten(), GroupId(group), WAIT)
            .await
            .expect("no agreed leader in time")
    }

    fn applied(&self, node: u64, group: u64) -> Vec<(u64, Bytes)> {
        self.journal.applied(NodeId(node), GroupId(group))
    }

    async fn shutdown(&mut self) {
        for n in self.nodes.iter_mut().filter_map(Option::take) {
            n.shutdown().await.unwrap();
        }
    }
}

/// Polls `cond` until it yields a value, at most [`WAIT`].
async fn wait_for<T, F, Fut>(cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    cluster::wait_for(WAIT, cond)
        .await
        .expect("condition not reached in time")
}

/// Election safety, log matching and state machine safety (Raft §5.2–§5.4) on redb, then a
/// restart of one node from its database file: its log is there before any leader contact
/// (durability of acknowledged appends), and it re-applies and keeps up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_redb_elect_apply_everywhere_and_restart_from_file() {
    let mut c = Cluster::on_files().await;
    let groups = 1..=10u64;
    c.create(groups.clone()).await;
    let nodes = c.nodes.iter().flatten();
    let answers = propose_on_leaders(nodes, groups.clone().map(GroupId), 20, "", WAIT)
        .await
        .unwrap();
    for answers in answers {
        for (p, r) in answers.into_iter().enumerate() {
            assert_eq!(r.unwrap(), Bytes::from(format!("{}", p + 1)));
        }
    }
    for g in groups.clone() {
        let on = (1..=3).map(NodeId);
        let applied = c
            .journal
            .wait_applied(on, GroupId(g), 20, WAIT)
            .await
            .unwrap();
        let expected: Vec<Bytes> = (0..20).map(|p| Bytes::from(format!("g{g}p{p}"))).collect();
        let commands = applied[0].iter().map(|(_, b)| b.clone());
        assert_eq!(commands.collect::<Vec<_>>(), expected);
        assert_eq!(applied[1], applied[0]);
        assert_eq!(applied[2], applied[0]);
    }

    // Restart node 3 from its file.
    let before = c.node(3).status(GroupId(1)).await.unwrap().unwrap();
    c.nodes[2].take().unwrap().shutdown().await.unwrap();
    c.journal.forget_node(NodeId(3));
    {
        // The file holds every group with its log: 20 commands plus the leaders' no-ops.
        let storage = c.open_storage(3);
        let loaded = storage.load().await.unwrap();
        assert_eq!(loaded.len(), 10);
        for l in &loaded {
            assert!(l.entries.len() >= 21, "{:?}: {}", l.group, l.entries.len());
            assert!(l.hard_state.term >= 1);
            assert_eq!(l.membership, Membership::voters([1, 2, 3]));
        }
    }
    c.nodes[2] = Some(c.start_node(3).await);
    let after = c.node(3).status(GroupId(1)).await.unwrap().unwrap();
    assert!(
        after.last_index >= before.last_index,
        "{after:?} vs {before:?}"
    );
    assert!(after.term >= before.term);
    for g in groups {
        let leader = c.leader(g).await;
        for p in 0..5 {
            c.node(leader.0)
                .propose(GroupId(g), format!("after{p}"))
                .await
                .unwrap();
        }
        wait_for(|| async { (c.applied(3, g).len() == 25).then_some(()) }).await;
        assert_eq!(c.applied(3, g), c.applied(leader.0, g));
    }
    c.shutdown().await;
}

/// A whole-cluster restart: every node comes back from its file alone, elects again and
/// still holds every applied command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restart_keeps_every_committed_command() {
    let mut c = Cluster::on_files().await;
    c.create([1, 2]).await;
    for g in [1, 2] {
        let leader = c.leader(g).await;
        for p in 0..10 {
            c.node(leader.0)
                .propose(GroupId(g), format!("p{p}"))
                .await
                .unwrap();
        }
    }
    wait_for(|| async {
        (1..=3)
            .all(|i| [1, 2].iter().all(|g| c.applied(i, *g).len() == 10))
            .then_some(())
    })
    .await;
    c.shutdown().await;
    c.journal.clear();
    for i in 1..=3 {
        c.nodes[i as usize - 1] = Some(c.start_node(i).await);
    }
    for g in [1, 2] {
        let leader = c.leader(g).await;
        c.node(leader.0)
            .propose(GroupId(g), "after restart")
            .await
            .unwrap();
        wait_for(|| async { (1..=3).all(|i| c.applied(i, g).len() == 11).then_some(()) }).await;
        let cmds: Vec<Bytes> = c.applied(1, g).into_iter().map(|(_, b)| b).collect();
        let mut expected: Vec<Bytes> = (0..10).map(|p| Bytes::from(format!("p{p}"))).collect();
        expected.push(Bytes::from("after restart"));
        assert_eq!(cmds, expected);
    }
    c.shutdown().await;
}

/// A removed group is gone from what the node's database loads and reads, and stays gone
/// across a restart. (The rows themselves go at a checkpoint, which this test's default
/// checkpoint size does not reach: the differential test against `MemStorage`, with
/// `checkpoint_bytes` 0, fails its load on any row a removal left.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_group_stays_gone_across_a_restart() {
    let mut c = Cluster::on_files().await;
    c.create([1, 2]).await;
    let leader = c.leader(1).await;
    c.node(leader.0).propose(GroupId(1), "x").await.unwrap();
    c.node(leader.0).remove_group(GroupId(1)).await.unwrap();
    assert_eq!(c.node(leader.0).status(GroupId(1)).await.unwrap(), None);
    let n = leader.0 as usize - 1;
    c.nodes[n].take().unwrap().shutdown().await.unwrap();
    {
        let storage = c.open_storage(leader.0);
        let loaded = storage.load().await.unwrap();
        assert_eq!(
            loaded.iter().map(|l| l.group).collect::<Vec<_>>(),
            [GroupId(2)]
        );
        assert!(
            storage
                .entries(GroupId(1), 1, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }
    c.nodes[n] = Some(c.start_node(leader.0).await);
    assert_eq!(c.node(leader.0).status(GroupId(1)).await.unwrap(), None);
    c.shutdown().await;
}

/// IO ordering rule 4 (docs/design.md §3.1): a failing fsync is fatal for the node. The write
/// returns an error, the node stops and reports it, the pending proposal ends indeterminate,
/// nothing is acknowledged or applied on that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fsync_stops_the_node_and_acknowledges_nothing() {
    let mut c = Cluster::on_fault_disks().await;
    c.create([1]).await;
    let leader = c.leader(1).await;
    let node = c.node(leader.0).clone();
    node.propose(GroupId(1), "ok").await.unwrap();
    let Disk::Fault(disk) = &c.disks[leader.0 as usize - 1] else {
        unreachable!()
    };
    disk.fail_syncs_after(0);
    let pending: Vec<_> = (0..5)
        .map(|i| {
            let node = node.clone();
            tokio::spawn(async move { node.propose(GroupId(1), format!("lost{i}")).await })
        })
        .collect();
    // None is acknowledged: a proposal the node took ends indeterminate (its entry may be in
    // a log), one still queued when the node stopped ends `Stopped` (never taken). Which
    // happens to each depends on when the failed write is seen.
    for p in pending {
        let r = tokio::time::timeout(WAIT, p).await.unwrap().unwrap();
        assert!(
            matches!(
                r,
                Err(ProposeError::Indeterminate(_) | ProposeError::Stopped)
            ),
            "{r:?}"
        );
    }
    let stop = node.shutdown().await;
    assert!(matches!(stop, Err(StopError::Storage(_))), "{stop:?}");
    assert_eq!(
        node.propose(GroupId(1), "x").await,
        Err(ProposeError::Stopped)
    );
    assert!(
        !c.applied(leader.0, 1)
            .iter()
            .any(|(_, b)| b.starts_with(b"lost")),
        "the failed node applied nothing it could not persist"
    );
    // What the failed node's disk kept: "ok" at most, never a "lost" entry.
    let restarted = FaultDisk::from_image(disk.durable_image());
    let storage = RedbStorage::with_backend(restarted.backend(), RedbOptions::default()).unwrap();
    for l in storage.load().await.unwrap() {
        for e in l.entries {
            if let multiraft_core::Payload::Command { data, .. } = e.payload {
                assert!(!data.starts_with(b"lost"), "{data:?} persisted");
            }
        }
    }
    c.nodes[leader.0 as usize - 1] = None;
    c.shutdown().await;
}
