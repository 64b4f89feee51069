//! Membership changes through the driver's API (docs/design.md §4.7), on the testkit's
//! in-memory storage and network: a fourth node joins a running group as a voter, then a
//! voter is removed and reported removed, and the typed refusals. Every wait is bounded
//! and on a condition.

mod common;

use multiraft_core::{
    Bytes, Event, GroupId, Membership, MembershipChange, MembershipChangeError, NodeId,
};
use multiraft_testkit::MemStorage;

use common::{Cluster, test_config, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_as_a_voter_and_another_is_removed() {
    let mut c = Cluster::start(3, test_config()).await;
    c.create(1..=1).await;
    let g = GroupId(1);
    let leader = c.leader(1).await;
    for k in 0..20 {
        let command = Bytes::from(format!("c{k}"));
        c.node(leader.0).propose(g, command).await.unwrap();
    }

    // Node 4 starts its replica with the membership the leader reports, then is added.
    c.storages.push(MemStorage::new());
    let n4 = c.start_node(4).await;
    let current = c.node(leader.0).membership(g).await.unwrap().unwrap();
    assert_eq!(current, Membership::voters([1, 2, 3]));
    n4.join_group(g, current).await.unwrap();
    c.nodes.push(Some(n4));
    let added = c
        .node(leader.0)
        .change_membership(g, MembershipChange::AddVoter(NodeId(4)))
        .await
        .unwrap();
    assert_eq!(added, Membership::voters([1, 2, 3, 4]));
    // Its state machine holds every command.
    wait_for(|| async { (c.applied(4, 1).len() >= 20).then_some(()) }).await;
    assert_eq!(c.applied(4, 1), c.applied(leader.0, 1));

    // A second change while none runs is fine; an invalid one is a typed refusal.
    let refused = c
        .node(leader.0)
        .change_membership(g, MembershipChange::Remove(NodeId(9)))
        .await;
    assert!(matches!(refused, Err(MembershipChangeError::Invalid(_))));
    let follower = (1..=3).find(|n| *n != leader.0).unwrap();
    let not_leader = c
        .node(follower)
        .change_membership(g, MembershipChange::Remove(NodeId(4)))
        .await;
    assert!(matches!(
        not_leader,
        Err(MembershipChangeError::NotLeader { .. })
    ));

    // Removing a voter other than the leader: it is told, and reports it.
    let removed = (1..=3).find(|n| *n != leader.0 && *n != follower).unwrap();
    let node = c.node(removed).clone();
    assert!(!node.status(g).await.unwrap().unwrap().removed, "a member");
    let mut events = c.node(removed).events();
    let left = c
        .node(leader.0)
        .change_membership(g, MembershipChange::Remove(NodeId(removed)))
        .await
        .unwrap();
    assert!(!left.contains(NodeId(removed)) && left.voters.len() == 3);
    let told = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(Event::ReplicaRemoved { group }) if group == g => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert_eq!(told, Ok(true), "n{removed} was not told it was removed");
    assert!(
        node.status(g).await.unwrap().unwrap().removed,
        "the status says so too, for a subscriber that lagged"
    );
    c.node(removed).remove_group(g).await.unwrap();
    c.shutdown().await;
}

/// A change the node took and then could not persist ends `Indeterminate`, not `Stopped`
/// (which says nothing changed): the storage failure stopped the node with the change's
/// entry written or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_cut_short_by_a_storage_failure_is_indeterminate() {
    let mut c = Cluster::start(3, test_config()).await;
    c.create(1..=1).await;
    let g = GroupId(1);
    let leader = c.leader(1).await;
    let node = c.node(leader.0).clone();
    // Quiet first, so that the next write is the change's.
    wait_for(|| async {
        let s = node.node_status().await.ok()?;
        (s.active_groups == 0).then_some(())
    })
    .await;
    c.storages[leader.0 as usize - 1].fail_next_write();
    let follower = (1..=3).find(|n| *n != leader.0).unwrap();
    let r = node
        .change_membership(g, MembershipChange::Remove(NodeId(follower)))
        .await;
    assert!(
        matches!(r, Err(MembershipChangeError::Indeterminate(_))),
        "{r:?}"
    );
    c.nodes[leader.0 as usize - 1] = None;
    c.shutdown().await;
}
