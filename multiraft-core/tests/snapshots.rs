//! Snapshots and compaction through the driver (docs/design.md §4.6), on the testkit's
//! in-memory storage and network: the log stays bounded, a restart restores from the
//! snapshot and re-applies only the tail, a lagging or wiped follower is caught up by
//! InstallSnapshot. Every wait is bounded and on a condition.

mod common;

use multiraft_core::{Bytes, Config, GroupId, Membership, NodeId, Storage};
use multiraft_testkit::MemStorage;

use common::{Cluster, test_config, wait_for};

const SNAPSHOT_ENTRIES: u64 = 40;
const LAG: u64 = 8;

fn config() -> Config {
    let mut c = test_config();
    c.snapshot_entries = SNAPSHOT_ENTRIES;
    c.compaction_lag_entries = LAG;
    // Small chunks: a Recorder snapshot of a few hundred commands spans many.
    c.snapshot_chunk_bytes = 256;
    c.snapshot_window_chunks = 2;
    c
}

/// [`config`] with chunks that hold a whole Recorder snapshot of these tests: made at once
/// and within a chunk, each is handed to the node on the event loop rather than from a
/// blocking thread (docs/design.md §4.6).
fn one_chunk_config() -> Config {
    let mut c = config();
    c.snapshot_chunk_bytes = 1 << 20;
    c
}

/// Proposes `count` commands to `group`, each through a running node that leads it and
/// awaited until it is applied.
async fn write(c: &Cluster, group: u64, count: u64) {
    for k in 0..count {
        let command = Bytes::from(format!("g{group} c{k}"));
        wait_for(|| async {
            let leader = c.leader(group).await;
            let node = c.nodes[leader.0 as usize - 1].as_ref()?;
            // Refused or ended indeterminate by a leadership change: try again (a duplicate
            // only adds a command, which every replica then holds as well).
            node.propose(GroupId(group), command.clone()).await.ok()
        })
        .await;
    }
}

/// Waits until every running node holds the same commands for `group`, at least `count`.
async fn converged(c: &Cluster, group: u64, count: usize) -> Vec<(u64, Bytes)> {
    let running: Vec<u64> = (1..=c.nodes.len() as u64)
        .filter(|i| c.nodes[*i as usize - 1].is_some())
        .collect();
    wait_for(|| {
        let states: Vec<_> = running
            .iter()
            .map(|i| c.journal.applied(NodeId(*i), GroupId(group)))
            .collect();
        let same = states.windows(2).all(|w| w[0] == w[1]);
        std::future::ready((same && states[0].len() >= count).then(|| states[0].clone()))
    })
    .await
}

/// What `storage` holds for `group`: (first index, entries held, snapshot index).
async fn stored(storage: &MemStorage, group: u64) -> (u64, usize, u64) {
    let loaded = storage.load().await.unwrap();
    let g = loaded.iter().find(|l| l.group == GroupId(group)).unwrap();
    let first = g.compacted.map_or(1, |c| c.index + 1);
    let snapshot = g.snapshot.as_ref().map_or(0, |s| s.index);
    (first, g.entries.len(), snapshot)
}

/// §7 log compaction: after many more entries than `snapshot_entries`, every replica has
/// a snapshot and a log of at most `snapshot_entries + compaction_lag_entries` entries (plus
/// what is not yet applied), in memory and in storage; every state machine holds every
/// command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_compacted_below_each_snapshot() {
    let mut c = Cluster::start(3, config()).await;
    c.create([1]).await;
    write(&c, 1, 300).await;
    let state = converged(&c, 1, 300).await;
    assert_eq!(state.len(), 300);
    let bound = (SNAPSHOT_ENTRIES + LAG + 1) as usize;
    for i in 1..=3u64 {
        let s = c.node(i).status(GroupId(1)).await.unwrap().unwrap();
        assert!(
            s.snapshot_index >= 200,
            "n{i}: snapshot at {}",
            s.snapshot_index
        );
        assert!(
            (s.last_index - s.first_index + 1) as usize <= bound,
            "n{i}: {} entries held in memory",
            s.last_index - s.first_index + 1
        );
        let (first, held, snapshot) = stored(&c.storages[i as usize - 1], 1).await;
        assert!(
            first > 1 && snapshot >= first - 1,
            "n{i}: compacted below its snapshot"
        );
        assert!(held <= bound, "n{i}: {held} entries stored");
    }
    c.shutdown().await;
}

/// Restart without replay: a restarted node restores every state machine from its stored
/// snapshot and re-applies only the entries after it — at most `snapshot_entries +
/// compaction_lag_entries` — and ends with the same state as the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_the_snapshot_and_applies_only_the_tail() {
    restart_restores_the_snapshot(config()).await;
}

/// The same with snapshots handed over on the event loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_a_snapshot_handed_over_on_the_loop() {
    restart_restores_the_snapshot(one_chunk_config()).await;
}

async fn restart_restores_the_snapshot(config: Config) {
    let mut c = Cluster::start(3, config).await;
    c.create(1..=4).await;
    for g in 1..=4 {
        write(&c, g, 150).await;
    }
    for g in 1..=4 {
        converged(&c, g, 150).await;
    }
    let old = c.nodes[2].take().unwrap();
    old.shutdown().await.unwrap();
    c.journal.forget_node(NodeId(3));
    c.nodes[2] = Some(c.start_node(3).await);
    for g in 1..=4 {
        let state = converged(&c, g, 150).await;
        assert_eq!(state.len(), 150, "g{g}");
        let (applies, restores) = c.journal.applies_and_restores(NodeId(3), GroupId(g));
        assert_eq!(restores, 1, "g{g}: restored once from its snapshot");
        assert!(
            applies <= SNAPSHOT_ENTRIES + LAG,
            "g{g}: re-applied {applies} entries after the restart"
        );
    }
    c.shutdown().await;
}

/// InstallSnapshot (§7): a follower that was down while the others committed and compacted
/// far past what it holds is caught up by the leader's snapshot, sent in chunks, and then
/// by appends; its state machine ends equal to the others'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_is_caught_up_by_snapshot() {
    lagging_follower_caught_up(config()).await;
}

/// The same with snapshots handed over on the event loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_is_caught_up_by_a_snapshot_handed_over_on_the_loop() {
    lagging_follower_caught_up(one_chunk_config()).await;
}

async fn lagging_follower_caught_up(config: Config) {
    let mut c = Cluster::start(3, config).await;
    c.create(1..=3).await;
    for g in 1..=3 {
        c.leader(g).await;
    }
    let down = c.nodes[2].take().unwrap();
    down.shutdown().await.unwrap();
    for g in 1..=3 {
        write(&c, g, 200).await;
    }
    c.nodes[2] = Some(c.start_node(3).await);
    for g in 1..=3 {
        let state = converged(&c, g, 200).await;
        assert_eq!(state.len(), 200, "g{g}");
        let (_, restores) = c.journal.applies_and_restores(NodeId(3), GroupId(g));
        assert!(restores >= 1, "g{g}: caught up without an install");
    }
    c.shutdown().await;
}

/// A follower is caught up by snapshot while its group keeps writing faster than the
/// transfer goes: the leader takes no new snapshot while it sends its stored one. Before,
/// each new snapshot (every `SNAPSHOT_ENTRIES` entries) replaced the one being sent, and the
/// transfer started over for as long as the writes went on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_is_caught_up_while_its_group_keeps_writing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut c = Cluster::start(3, config()).await;
    c.create([1]).await;
    let leader = c.leader(1).await;
    let down = if leader == NodeId(3) { 2 } else { 3 };
    let node = c.nodes[down as usize - 1].take().unwrap();
    node.shutdown().await.unwrap();
    write(&c, 1, 300).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (node, stop) = (c.node(leader.0).clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let commands = (0..32)
                    .map(|i| Bytes::from(format!("w{round} {i}")))
                    .collect();
                let _ = node.propose_many(GroupId(1), commands).await;
                round += 1;
            }
        })
    };
    c.nodes[down as usize - 1] = Some(c.start_node(down).await);
    let journal = c.journal.clone();
    let installed = multiraft_testkit::cluster::wait_for(common::WAIT, || {
        let (_, restores) = journal.applies_and_restores(NodeId(down), GroupId(1));
        std::future::ready((restores >= 1).then_some(()))
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        installed.is_ok(),
        "n{down} was not caught up while the group wrote"
    );
    // Its snapshot, deferred while the transfer went on, is taken once it ended (the node
    // checks every tick, since proposals parked meanwhile apply nothing to prompt it),
    // and the group writes again.
    write(&c, 1, 20).await;
    converged(&c, 1, 320).await;
    c.shutdown().await;
}

/// A node whose data is wiped rejoins: the application creates its groups again, empty,
/// and each is caught up by a snapshot from its leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_is_caught_up_by_snapshots() {
    let mut c = Cluster::start(3, config()).await;
    c.create(1..=3).await;
    for g in 1..=3 {
        write(&c, g, 120).await;
        converged(&c, g, 120).await;
    }
    let wiped = c.nodes[2].take().unwrap();
    wiped.shutdown().await.unwrap();
    c.storages[2] = MemStorage::new();
    c.journal.forget_node(NodeId(3));
    let node = c.start_node(3).await;
    for g in 1..=3 {
        node.create_group(GroupId(g), Membership::voters([1, 2, 3]))
            .await
            .unwrap();
    }
    c.nodes[2] = Some(node);
    for g in 1..=3 {
        let state = converged(&c, g, 120).await;
        assert_eq!(state.len(), 120, "g{g}");
        let (_, restores) = c.journal.applies_and_restores(NodeId(3), GroupId(g));
        assert!(restores >= 1, "g{g}: caught up without an install");
    }
    c.shutdown().await;
}
