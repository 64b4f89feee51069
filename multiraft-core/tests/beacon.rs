//! A node's beacon (docs/design.md §4.3): while its event loop is late — one turn runs long
//! (here a state machine that blocks in `apply`), or its runtime leaves it unpolled — its
//! peers still hear the node and do not declare it down; a loop late by more than
//! `MAX_BEACON_TIMEOUTS` liveness timeouts is taken for a wedged one, and they do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use multiraft_core::{
    Bytes, Config, GroupId, MAX_BEACON_TIMEOUTS, Membership, MultiRaft, NodeId, StateMachine,
};
use multiraft_testkit::cluster::{agreed_leader, create_everywhere};
use multiraft_testkit::{MemNetwork, MemStorage};

mod common;

use common::{WAIT, test_config, wait_for};

/// The command that blocks node 1's machine.
const BLOCK: &[u8] = b"block";

/// Where node 1's machine blocks: it says it entered, then waits until the sender is
/// dropped.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<AtomicBool>,
    wait: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

/// Applies anything; on node 1 (with a gate), `BLOCK` blocks the event loop until the gate
/// opens.
struct Machine {
    gate: Option<Gate>,
}

impl StateMachine for Machine {
    fn apply(&mut self, _index: u64, command: &Bytes) -> Bytes {
        if let Some(gate) = self.gate.as_ref().filter(|_| command.as_ref() == BLOCK) {
            gate.entered.store(true, Ordering::SeqCst);
            if let Some(wait) = gate.wait.lock().unwrap().take() {
                // Blocks the loop's thread: one long turn, the loop serving nothing.
                let _ = wait.recv();
            }
        }
        Bytes::new()
    }

    fn query(&self, _query: &Bytes) -> Bytes {
        Bytes::new()
    }
}

/// Where node 1's loop is held.
#[derive(Clone, Copy, PartialEq)]
enum Hold {
    /// In one long turn: its machine blocks in `apply`.
    InATurn,
    /// Unpolled: another task blocks the only worker of its runtime while the loop waits.
    Unpolled,
}

/// Three nodes on the real clock, each hosting group 1, node 1's machine gated and its loop
/// on a runtime of its own (one worker); returns the nodes, the sender that opens the gate
/// when dropped and node 1's runtime, once a leader is agreed and node 1's loop is held as
/// `hold` says. On a shared runtime, a loop blocked in a worker holds whatever task it woke
/// last in that worker's slot (tokio's LIFO slot, which no other worker takes): a peer's
/// loop waited there for the whole turn.
async fn node_1_held(config: &Config, hold: Hold) -> (Vec<MultiRaft>, mpsc::Sender<()>, Runtime) {
    let own = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let network = MemNetwork::new();
    let gate = Gate::default();
    let (open, wait) = mpsc::channel();
    *gate.wait.lock().unwrap() = Some(wait);
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let gate = (i == 1 && hold == Hold::InATurn).then(|| gate.clone());
        let mut builder = MultiRaft::builder(NodeId(i), config.clone());
        if i == 1 {
            builder = builder.runtime(own.handle().clone());
        }
        let node = builder
            .storage(MemStorage::new())
            .transport(network.transport(NodeId(i)))
            .state_machines(move |_| Machine { gate: gate.clone() })
            .seed(i)
            .start()
            .await
            .unwrap();
        nodes.push(node);
    }
    let members = Membership::voters([1, 2, 3]);
    create_everywhere(&nodes, [GroupId(1)], &members)
        .await
        .unwrap();
    let leader = agreed_leader(&nodes, GroupId(1), WAIT).await.unwrap();
    let leader = nodes[leader.0 as usize - 1].clone();
    if hold == Hold::InATurn {
        // Answered once node 1's turn ends, as its replica applies too.
        tokio::spawn(async move { leader.propose(GroupId(1), Bytes::from_static(BLOCK)).await });
    } else {
        let gate = gate.clone();
        own.spawn(async move {
            gate.entered.store(true, Ordering::SeqCst);
            let wait = gate.wait.lock().unwrap().take();
            // Blocks the runtime's only worker: the loop, waiting, is not polled.
            let _ = wait.map(|w| w.recv());
        });
    }
    wait_for(|| async { gate.entered.load(Ordering::SeqCst).then_some(()) }).await;
    (nodes, open, own)
}

/// How many times node `i` declared a peer down.
async fn declared_down(nodes: &[MultiRaft], i: usize) -> u64 {
    let status = nodes[i - 1].node_status().await.unwrap();
    status.stats.peers_declared_down
}

/// Node 1's loop is held for five liveness timeouts (the fault this test injects; it
/// waits on nothing): its beacon beats, and neither peer declares it down.
async fn held_but_not_declared_down(hold: Hold) {
    let config = test_config();
    let timeout = config.tick_interval * config.election_timeout_min_ticks;
    let (nodes, open, own) = node_1_held(&config, hold).await;
    let before = (
        declared_down(&nodes, 2).await,
        declared_down(&nodes, 3).await,
    );
    tokio::time::sleep(5 * timeout).await;
    let after = (
        declared_down(&nodes, 2).await,
        declared_down(&nodes, 3).await,
    );
    drop(open);
    assert_eq!(
        after, before,
        "a peer declared node 1 down while it was held"
    );
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    own.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_node_whose_loop_is_in_one_long_turn_is_not_declared_down() {
    held_but_not_declared_down(Hold::InATurn).await;
}

/// A loop its runtime leaves unpolled (another task holds the only worker) is late all the
/// same, though it waits: the beacon beats for it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_node_whose_loop_is_left_unpolled_is_not_declared_down() {
    held_but_not_declared_down(Hold::Unpolled).await;
}

/// A turn that outlasts `MAX_BEACON_TIMEOUTS` liveness timeouts is a wedged loop: the
/// beacon falls silent and the peers declare the node down, none of them before the
/// bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_node_whose_loop_is_wedged_is_declared_down_after_the_beacons_bound() {
    let config = test_config();
    let timeout = config.tick_interval * config.election_timeout_min_ticks;
    let bound = timeout * MAX_BEACON_TIMEOUTS;
    let (nodes, open, own) = node_1_held(&config, Hold::InATurn).await;
    let blocked = Instant::now();
    let before = declared_down(&nodes, 2).await;
    wait_for(|| async { (declared_down(&nodes, 2).await > before).then_some(()) }).await;
    let waited = blocked.elapsed();
    drop(open);
    // The turn began before `blocked`; the verdict came a timeout after the beacon's
    // last beat at the earliest.
    assert!(
        waited + Duration::from_millis(1) >= bound.saturating_sub(timeout),
        "declared down after {waited:?}, before the beacon's bound of {bound:?}"
    );
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    own.shutdown_background();
}
