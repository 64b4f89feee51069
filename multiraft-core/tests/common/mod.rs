//! The harness the driver tests share: a cluster of `MultiRaft` nodes on the testkit's
//! in-memory storage and network, and bounded waits.

#![allow(dead_code)] // each test file uses its own part of it

use std::time::Duration;

use multiraft_core::{Bytes, Config, GroupId, Membership, MultiRaft, NodeId};
use multiraft_testkit::cluster::{self, Journal, agreed_leader, create_everywhere};
use multiraft_testkit::{MemNetwork, MemStorage};

/// Every wait in these tests gives up after this long: generous, because CI shares 2 cores.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Short ticks keep the tests fast; a long election timeout in ticks (200-400 ms) keeps a
/// runtime stalled by a loaded CI machine from causing needless elections, which would end
/// proposals `Indeterminate` and make exact-order assertions meaningless.
pub(crate) fn test_config() -> Config {
    let mut c = Config::default();
    c.tick_interval = Duration::from_millis(5);
    c.heartbeat_interval_ticks = 4;
    c.election_timeout_min_ticks = 40;
    c.election_timeout_max_ticks = 80;
    c.strict = true;
    c
}

pub(crate) struct Cluster {
    pub(crate) network: MemNetwork,
    pub(crate) storages: Vec<MemStorage>,
    pub(crate) nodes: Vec<Option<MultiRaft>>,
    pub(crate) journal: Journal,
    pub(crate) config: Config,
}

impl Cluster {
    pub(crate) async fn start(n: u64, config: Config) -> Cluster {
        let mut c = Cluster {
            network: MemNetwork::new(),
            storages: (0..n).map(|_| MemStorage::new()).collect(),
            nodes: Vec::new(),
            journal: Journal::default(),
            config,
        };
        for i in 1..=n {
            let node = c.start_node(i).await;
            c.nodes.push(Some(node));
        }
        c
    }

    pub(crate) async fn start_node(&self, i: u64) -> MultiRaft {
        MultiRaft::builder(NodeId(i), self.config.clone())
            .storage(self.storages[i as usize - 1].clone())
            .transport(self.network.transport(NodeId(i)))
            .state_machines(self.journal.machines(NodeId(i)))
            .seed(i * 1000)
            .start()
            .await
            .unwrap()
    }

    pub(crate) fn node(&self, i: u64) -> &MultiRaft {
        self.nodes[i as usize - 1].as_ref().unwrap()
    }

    pub(crate) async fn create(&self, groups: impl IntoIterator<Item = u64> + Clone) {
        let members = Membership::voters(1..=self.nodes.len() as u64);
        let groups = groups.into_iter().map(GroupId);
        create_everywhere(self.nodes.iter().flatten(), groups, &members)
            .await
            .unwrap();
    }

    /// Waits until every running node knows the same leader for `group` in the same term,
    /// and returns it.
    pub(crate) async fn leader(&self, group: u64) -> NodeId {
        agreed_leader(self.nodes.iter().flatten(), GroupId(group), WAIT)
            .await
            .expect("no agreed leader in time")
    }

    pub(crate) fn applied(&self, node: u64, group: u64) -> Vec<(u64, Bytes)> {
        self.journal.applied(NodeId(node), GroupId(group))
    }

    pub(crate) async fn shutdown(&mut self) {
        for n in self.nodes.iter_mut().filter_map(Option::take) {
            n.shutdown().await.unwrap();
        }
    }
}

/// Polls `cond` until it yields a value, at most [`WAIT`].
pub(crate) async fn wait_for<T, F, Fut>(cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    cluster::wait_for(WAIT, cond)
        .await
        .expect("condition not reached in time")
}

/// Makes group 1 on `node` alone and waits until the node leads it.
pub(crate) async fn lead_group_1_alone(node: &MultiRaft) {
    let g = GroupId(1);
    node.create_group(g, Membership::voters([1])).await.unwrap();
    // It may have won an election of its own already; then the campaign is refused.
    let _ = node.campaign(g).await;
    wait_for(|| async {
        let status = node.status(g).await.ok().flatten()?;
        (status.leader == Some(NodeId(1))).then_some(())
    })
    .await;
}

/// One node leading group 1 alone, with a submission queue of `max_api_queue`, and a
/// handle to it: for the tests of a full queue.
pub(crate) async fn one_leader_with_api_queue(max_api_queue: usize) -> (Cluster, MultiRaft) {
    let mut config = test_config();
    config.max_api_queue = max_api_queue;
    let c = Cluster::start(1, config).await;
    c.create([1]).await;
    c.leader(1).await;
    let node = c.node(1).clone();
    (c, node)
}

/// Polls each of `proposals` once, without letting the event loop run in between (the
/// runtime has one thread, and this task does not yield): each submits its proposal.
/// Returns the answers that came at once, by position.
pub(crate) fn submit_all<F: std::future::Future + Unpin>(
    proposals: &mut [F],
) -> Vec<Option<F::Output>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    proposals
        .iter_mut()
        .map(|p| match std::pin::Pin::new(p).poll(&mut cx) {
            std::task::Poll::Ready(answer) => Some(answer),
            std::task::Poll::Pending => None,
        })
        .collect()
}
