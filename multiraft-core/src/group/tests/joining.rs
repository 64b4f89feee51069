//! Joining replicas (`Node::join_group`): what a joined replica stores, and when its leader
//! knows it joined (docs/design.md §4.7).

use super::*;
use crate::membership::MembershipChange;

/// A joining replica that caught up while the entry adding it was uncommitted stores its
/// membership only once that entry commits, and stores the committed one. Regression
/// (simulator's check that removed replicas are told, seed 113): it stored the membership
/// of the uncommitted entry at once; a new leader truncated the entry, and after a restart
/// the replica fell back to the stored membership, took itself for a learner the group
/// never had, and refused `Removed` for good.
#[test]
fn a_joined_replica_stores_its_membership_once_the_entry_adding_it_commits() {
    let (mut c, add) = adding_learner_4(53);
    // Replicas 2 and 3 hear nothing: the entry adding 4 stays uncommitted.
    let cut = |_: &[Replica], m: &Message| m.to != n(2) && m.to != n(3);
    for _ in 0..2 * strict().heartbeat_interval_ticks {
        c.g_mut(1).tick();
        c.deliver_all_where(cut);
    }
    assert_eq!(c.status(4).last_index, add);
    assert!(
        !c.g(4).is_joining(),
        "caught up with what its leader committed"
    );
    assert!(c.status(4).commit < add);
    assert_eq!(c.disks[3].joined, None, "stored while uncommitted");

    for _ in 0..4 * strict().heartbeat_interval_ticks {
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert!(c.status(4).commit >= add);
    assert_eq!(
        c.disks[3].joined,
        Some(Membership::voters([1, 2, 3]).with_learners([4]))
    );
}

/// Voters 1, 2 and 3, led by 1, and replica 4 joining (`Node::join_group`), which leader 1
/// adds as a learner: the cluster, and the index of the entry that adds it.
fn adding_learner_4(seed: u64) -> (Cluster, u64) {
    let mut c = Cluster::new(3, 0, strict(), seed);
    c.elect(1);
    push_joining_replica_4(&mut c);
    c.g_mut(1)
        .change_membership(MembershipChange::AddLearner(n(4)))
        .unwrap();
    let add = c.status(1).last_index;
    (c, add)
}

/// Adds replica 4 to a cluster of voters 1, 2 and 3, joining (`Node::join_group`).
fn push_joining_replica_4(c: &mut Cluster) {
    let config = Arc::new(strict());
    c.groups
        .push(Replica::new(G, n(4), Membership::voters([1, 2, 3]), config, 54).unwrap());
    c.disks.push(Disk::default());
    c.applied.push(Vec::new());
    c.events.push(Vec::new());
    c.forgotten.push(Vec::new());
    assert!(c.g(4).is_joining());
}

/// The leader knows a joining replica joined (`Progress::knows_commit`) only from an
/// answer that says it stored so (`AppendResponse::joined`): the replica says it once the
/// membership in force at its commit index has it, in an answer sent after the write that
/// stored it. Its answers to appends sent before the entry adding it committed do not say
/// so, however late they arrive.
#[test]
fn a_joining_replica_is_known_to_have_joined_only_once_told_the_commit_that_added_it() {
    let (mut c, add) = adding_learner_4(71);
    // The voters' answers are held back, so the entry adding 4 is not yet committed when
    // replica 4 catches up; so is 4's answer that it holds it all.
    let (mut voters, mut caught_up) = (Vec::new(), Vec::new());
    c.deliver_all_where(|_, m| {
        if m.from == n(2) || m.from == n(3) {
            voters.push(m.clone());
            return false;
        }
        if m.from == n(4) && matches!(m.body, MessageBody::AppendResponse { success: true, .. }) {
            caught_up.push(m.clone());
            return false;
        }
        true
    });
    assert!(!c.g(4).is_joining());
    assert!(c.status(4).commit < add, "{:?}", c.status(4));
    assert_eq!(caught_up.len(), 1);
    for m in voters {
        c.deliver(m);
    }
    c.deliver_all_where(|_, m| m.to != n(4));
    assert!(c.status(1).commit >= add);
    for m in caught_up {
        c.deliver(m);
    }
    assert!(
        !c.g(1).progress.get(&n(4)).expect("tracked").knows_commit,
        "known from answers to appends sent before the entry adding it committed"
    );
    // Its promotion tells it the commit index (`tell_untold_learners`), and goes through.
    c.g_mut(1)
        .change_membership(MembershipChange::Promote(n(4)))
        .unwrap();
    for _ in 0..4 * strict().election_timeout_max_ticks {
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert!(c.disks[3].joined.is_some());
    assert_eq!(c.g(1).membership(), &Membership::voters([1, 2, 3, 4]));
}
