//! Leadership transfer (dissertation §3.10; docs/design.md §4.5) beside a membership change:
//! the change appends nothing while a transfer runs, and a transfer never goes to a voter
//! the change removes.

use super::*;
use crate::error::TransferError;
use crate::membership::MembershipChange;

/// Leader 1 of voters {1, 2, 3} and learner 4, replacing 3 by 4, every message delivered:
/// 4 is caught up, and the change waits `learner_catchup_ticks` before its joint
/// configuration.
fn replacing_3_by_4() -> Cluster {
    let mut c = leader_1_replacing_by_4(3, 25);
    c.deliver_all();
    c
}

/// Leader 1 of voters {1, 2, 3} and learner 4, having started replacing `old` by 4 (nothing
/// delivered yet).
fn leader_1_replacing_by_4(old: u64, seed: u64) -> Cluster {
    let mut c = Cluster::new(3, 1, strict(), seed);
    c.elect(1);
    c.g_mut(1)
        .change_membership(MembershipChange::Replace {
            old: n(old),
            new: n(4),
        })
        .unwrap();
    c
}

/// A transfer to the voter a change under way removes is refused (`NotAVoter`), as one to a
/// voter of a joint configuration's outgoing half is: elected, it would lead a membership
/// that is about to leave it out. Regression (review): taken, it relied on the change
/// giving the transfer up before `TimeoutNow` went out.
#[test]
fn a_transfer_to_the_voter_a_change_removes_is_refused() {
    let mut c = replacing_3_by_4();
    assert!(c.g(1).membership().voters.contains(&n(3)));
    assert_eq!(
        c.g_mut(1).transfer_leader(n(3)),
        Err(TransferError::NotAVoter(n(3)))
    );
    assert_eq!(c.g(1).transfer_target(), None);
    assert_eq!(c.g_mut(1).transfer_leader(n(2)), Ok(()));
}

/// A drain's pick (`transfer_candidate`) passes over the voter a change under way removes,
/// whichever group id spreads it: picked, the transfer was refused `NotAVoter` at every
/// retry of the drain (review).
#[test]
fn a_drain_never_picks_the_voter_a_change_removes() {
    let c = replacing_3_by_4();
    assert!(c.g(1).membership().voters.contains(&n(3)));
    for spread in 0..8 {
        assert_eq!(c.g(1).transfer_candidate(|_| true, spread), Some(n(2)));
    }
    assert_eq!(
        c.g(1).transfer_candidate(|node| node != n(2), 0),
        None,
        "nobody else may take over"
    );
}

/// While a transfer runs, a membership change appends nothing: appended after
/// `TimeoutNow`, its entry is missing from the target's log, the target's vote request
/// deposes the leader, and a target elected without the entry erases it (the change ends
/// indeterminate). The change goes on once the transfer is given up. Regression (review):
/// the joint configuration was appended `learner_catchup_ticks` after the change began,
/// transfer or not.
#[test]
fn a_change_appends_nothing_while_a_transfer_runs() {
    let mut c = replacing_3_by_4();
    c.g_mut(1).transfer_leader(n(2)).unwrap();
    let timeout_now = |m: &Message| matches!(m.body, MessageBody::TimeoutNow);
    let last = c.status(1).last_index;
    // `TimeoutNow` is lost: the transfer runs until it is given up.
    let mut ticks = 0;
    while c.g(1).transfer_target().is_some() {
        assert_eq!(c.status(1).last_index, last, "after {ticks} ticks");
        assert!(!c.g(1).membership().is_joint());
        c.g_mut(1).tick();
        ticks += 1;
        c.deliver_all_where(|_, m| !timeout_now(m));
    }
    assert!(ticks > strict().learner_catchup_ticks);
    assert_eq!(c.sent_where(timeout_now).len(), 1);
    // Given up, the change goes on: the joint configuration, then the target.
    for _ in 0..4 * strict().heartbeat_interval_ticks {
        c.g_mut(1).tick();
        c.deliver_all();
    }
    assert_eq!(c.g(1).membership().voters, [n(1), n(2), n(4)].into());
    assert!(!c.g(1).membership().is_joint());
}

/// A change whose last entry commits while a transfer runs ends, committed, before the
/// transfer hands leadership over: only appends wait for a transfer. Regression (review):
/// the end waited with the appends, the new leader dropped the change, and its caller was
/// told the outcome was unknown although the membership was committed.
#[test]
fn a_change_committed_while_a_transfer_runs_ends_before_the_hand_over() {
    let mut c = Cluster::new(3, 1, strict(), 27);
    c.elect(1);
    // Removing learner 4: one entry, appended at once, not yet committed.
    c.g_mut(1)
        .change_membership(MembershipChange::Remove(n(4)))
        .unwrap();
    let target = Membership::voters([1, 2, 3]);
    assert_eq!(c.g(1).membership(), &target);
    c.g_mut(1).transfer_leader(n(2)).unwrap();
    c.deliver_all();
    assert_eq!(c.status(2).role, Role::Leader, "handed over");
    let ended = GroupEvent::MembershipChangeEnded {
        result: Ok(target.clone()),
    };
    assert!(c.events[0].contains(&ended), "{:?}", c.events[0]);
    // Ended on the leader, committed, before it stepped down.
    let at = |e: &GroupEvent| c.events[0].iter().position(|x| x == e);
    let deposed = c.events[0].iter().position(
        |e| matches!(e, GroupEvent::LeaderChanged { leader, .. } if *leader != Some(n(1))),
    );
    assert!(at(&ended) < deposed, "{:?}", c.events[0]);
}

/// A transfer goes to no voter of a joint configuration's outgoing half only: elected, it
/// would lead a membership that no longer has it.
#[test]
fn a_transfer_to_a_voter_of_the_outgoing_half_only_is_refused() {
    let mut c = replacing_3_by_4();
    // The joint configuration {1, 2, 4} / {1, 2, 3}, appended once 4 has caught up.
    for _ in 0..2 * strict().learner_catchup_ticks {
        c.g_mut(1).tick();
        if c.g(1).membership().is_joint() {
            break;
        }
        c.deliver_all();
    }
    assert!(c.g(1).membership().is_joint());
    assert_eq!(
        c.g_mut(1).transfer_leader(n(3)),
        Err(TransferError::NotAVoter(n(3)))
    );
    assert_eq!(c.g_mut(1).transfer_leader(n(4)), Ok(()));
}

/// A leader that a committed membership leaves out hands over to the target of the transfer
/// under way when it is as up to date as any voter, so that the transfer ends as asked.
/// Before, it handed over to the lowest-numbered such voter.
#[test]
fn a_removed_leader_hands_over_to_the_transfers_target() {
    let mut c = leader_1_replacing_by_4(1, 29);
    // One message at a time (a tick when none is queued), until the entry that leaves the
    // joint configuration is appended, not yet committed.
    let target = Membership::voters([2, 3, 4]);
    for _ in 0..10_000 {
        if c.g(1).membership() == &target {
            break;
        }
        c.collect();
        match c.queue.pop_front() {
            Some(m) => c.deliver(m),
            None => c.g_mut(1).tick(),
        }
    }
    assert_eq!(c.g(1).membership(), &target);
    assert!(c.status(1).commit < c.status(1).last_index);
    c.g_mut(1).transfer_leader(n(3)).unwrap();
    c.deliver_all();
    assert_eq!(c.status(3).role, Role::Leader);
}
