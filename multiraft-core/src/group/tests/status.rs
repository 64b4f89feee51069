//! What a replica's status says (`Replica::status`, `GroupStatus`).

use super::*;
use crate::membership::MembershipChange;

/// `GroupStatus::membership_committed` says whether the membership in force (the latest in
/// the log) is committed: until it is, a new leader may roll it back, so an application
/// that asks whether a change took effect must not read it as done.
#[test]
fn the_status_says_whether_the_membership_in_force_is_committed() {
    let mut c = Cluster::new(3, 0, strict(), 22);
    c.elect(1);
    c.deliver_all();
    assert!(
        c.status(1).membership_committed,
        "the creation's membership"
    );
    c.g_mut(1)
        .change_membership(MembershipChange::Remove(n(3)))
        .unwrap();
    // Node 2 stores the joint configuration; nothing comes back to node 1.
    c.deliver_all_where(|_, m| m.to != n(1));
    assert!(c.g(2).membership().is_joint());
    assert!(!c.status(2).membership_committed, "in force, not committed");
    assert!(!c.status(1).membership_committed);
    c.deliver_all();
    // The joint configuration commits, then the new one is appended and commits.
    for _ in 0..10 {
        c.notify_commit(1);
    }
    assert_eq!(c.g(1).membership(), &Membership::voters([1, 2]));
    assert!(c.status(1).membership_committed);
    assert!(c.status(2).membership_committed);
}
