//! The kv example deletes a replica its group removed even when the node's event that
//! says so was lost to a lagging subscriber: its status says so too.

use std::time::Duration;

use multiraft_core::{Config, GroupId, MembershipChange, NodeId};
use multiraft_examples::kv::server::delete_reported_removed;
use multiraft_examples::{create_groups, start_mem_cluster};
use multiraft_testkit::cluster::wait_for;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_replica_is_deleted_by_its_status() {
    let mut config = Config::default();
    config.tick_interval = Duration::from_millis(10);
    let cluster = start_mem_cluster(3, &config).await.unwrap();
    let leaders = create_groups(&cluster, 2, WAIT).await.unwrap();
    let group = GroupId(1);
    // Remove a replica other than the leader's, through the leader.
    let leader = leaders[0];
    let removed = NodeId(leader.0 % 3 + 1);
    let node = &cluster[removed.0 as usize - 1].handle;
    cluster[leader.0 as usize - 1]
        .handle
        .change_membership(group, MembershipChange::Remove(removed))
        .await
        .unwrap();
    wait_for(WAIT, || async {
        let status = node.status(group).await.ok().flatten()?;
        status.removed.then_some(())
    })
    .await
    .expect("the removed replica is told");

    assert_eq!(delete_reported_removed(node).await, 1);
    assert_eq!(node.status(group).await.unwrap(), None, "deleted");
    assert!(
        node.status(GroupId(2)).await.unwrap().is_some(),
        "the other kept"
    );
    assert_eq!(delete_reported_removed(node).await, 0);
    for n in &cluster {
        n.handle.shutdown().await.unwrap();
    }
}
