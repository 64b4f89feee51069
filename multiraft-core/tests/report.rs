//! `MultiRaft::report`, what a status page shows: the node's groups page by page, each
//! with its leader and, on the leader, each follower's progress; the peers' liveness.

mod common;

use multiraft_core::{Bytes, GroupId, NodeId, Role};

use common::{Cluster, test_config, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_pages_through_groups_and_shows_followers() {
    let mut c = Cluster::start(3, test_config()).await;
    c.create(1..=5).await;
    let leader = c.leader(3).await;
    for k in 0..10 {
        c.node(leader.0)
            .propose(GroupId(3), Bytes::from(format!("c{k}")))
            .await
            .unwrap();
    }

    // Every group, or a page of them from a given id on.
    let all = c.node(1).report(GroupId(0), 100).await.unwrap();
    assert_eq!(all.node, NodeId(1));
    let ids: Vec<u64> = all.groups.iter().map(|g| g.status.group.0).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    assert!(!all.more);
    let page = c.node(1).report(GroupId(2), 2).await.unwrap();
    let ids: Vec<u64> = page.groups.iter().map(|g| g.status.group.0).collect();
    assert_eq!(ids, [2, 3]);
    assert!(page.more);
    let peers: Vec<(NodeId, bool)> = all.peers.iter().map(|p| (p.node, p.live)).collect();
    assert_eq!(peers, [(NodeId(2), true), (NodeId(3), true)]);
    assert_eq!(all.status.groups, 5);

    // The leader of group 3 lists both followers; once they hold everything, no lag.
    let followers = wait_for(|| async {
        let report = c.node(leader.0).report(GroupId(3), 1).await.unwrap();
        let g = report.groups.into_iter().next().unwrap();
        assert_eq!(g.status.role, Role::Leader);
        let last = g.status.last_index;
        (g.followers.len() == 2 && g.followers.iter().all(|f| f.lag(last) == 0))
            .then_some(g.followers)
    })
    .await;
    let nodes: Vec<NodeId> = followers.iter().map(|f| f.node).collect();
    assert!(!nodes.contains(&leader));
    assert!(
        followers
            .iter()
            .all(|f| !f.learner && !f.snapshot && f.matched >= 10)
    );
    // A follower's report of the same group lists no followers, and names the leader.
    let follower = (1..=3).find(|n| *n != leader.0).unwrap();
    let there = c.node(follower).report(GroupId(3), 1).await.unwrap();
    assert!(there.groups[0].followers.is_empty());
    assert_eq!(there.groups[0].status.leader, Some(leader));
    c.shutdown().await;
}
