//! Snapshots the node builds (docs/design.md §4.6), one node delivered by hand.

use super::*;
use crate::snapshot::SnapshotError;
use crate::testing::{self, Io};

/// Takes every snapshot asked for at once, as one empty chunk, and remembers its index.
#[derive(Default)]
struct Snapshotting {
    taken: Vec<u64>,
}

impl Io for Snapshotting {
    fn send(&mut self, _batch: MessageBatch) {}

    fn snapshot(&mut self, take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        self.taken.push(take.meta.index);
        Ok(Vec::new())
    }
}

/// Proposes `count` commands to `group`.
fn propose(node: &mut Node, group: GroupId, count: u64) {
    for k in 0..count {
        node.propose(group, Bytes::from(format!("c{k}"))).unwrap();
    }
}

/// One ready, done whole.
fn one_ready(node: &mut Node, io: &mut Snapshotting) {
    let ready = node.ready().expect("a ready");
    testing::run(node, ready, io).unwrap();
}

/// A group that applies `snapshot_entries` more entries while its snapshot is being built
/// (the build skips it), and then nothing more, is snapshotted again once that build is
/// stored: otherwise a restart re-applies twice `snapshot_entries` (restart_bench measured
/// 2,049 with a bound of 1,280, whatever the number of build slots).
#[test]
fn a_snapshot_due_while_one_is_built_is_taken_once_that_one_is_stored() {
    let config = Config {
        snapshot_entries: 4,
        // Room for the nine entries proposed before any snapshot is stored (the leader
        // holds proposals back at `snapshot_entries + compaction_lag_entries`).
        compaction_lag_entries: 8,
        ..strict()
    };
    let mut node = new_node(1, config);
    let mut io = Snapshotting::default();
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    testing::settle(&mut node, &mut io).unwrap();
    assert!(io.taken.is_empty());
    let applied = |node: &Node| node.group_status(g(1)).unwrap().applied;
    let start = applied(&node);

    propose(&mut node, g(1), 4);
    one_ready(&mut node, &mut io); // writes the four
    propose(&mut node, g(1), 5);
    one_ready(&mut node, &mut io); // applies the four (a snapshot is due: taken), writes five
    assert_eq!(io.taken, vec![start + 4]);
    one_ready(&mut node, &mut io); // applies the five while that snapshot is written
    assert_eq!(applied(&node), start + 9);
    testing::settle(&mut node, &mut io).unwrap();

    assert_eq!(
        io.taken,
        vec![start + 4, start + 9],
        "the second snapshot was taken"
    );
    let snapshot = node
        .replica(g(1))
        .unwrap()
        .snapshot()
        .map(|(index, _)| index);
    assert_eq!(snapshot, Some(start + 9));
}

/// A single-voter group led by node 1, settled, with snapshots every `snapshot_entries`
/// (4) and `compaction_lag_entries` 2: its leader holds proposals back once its log runs
/// 6 entries past its last snapshot.
fn leader_with_snapshots_every_4(io: &mut impl Io) -> Node {
    let config = Config {
        snapshot_entries: 4,
        compaction_lag_entries: 2,
        ..strict()
    };
    let mut node = new_node(1, config);
    node.create_group(g(1), Membership::voters([1])).unwrap();
    node.campaign(g(1)).unwrap();
    testing::settle(&mut node, io).unwrap();
    node
}

/// Proposes until the leader refuses; returns how many it took and the refusal.
fn propose_until_refused(node: &mut Node) -> (u64, ProposeError) {
    for k in 0.. {
        if let Err(e) = node.propose(g(1), Bytes::from(format!("c{k}"))) {
            return (k, e);
        }
    }
    unreachable!()
}

/// The log of a group whose snapshots are not stored yet (built more slowly than entries
/// come, or not begun) does not grow without bound: its leader refuses proposals with
/// `Busy` at `snapshot_entries + compaction_lag_entries` past its last snapshot, and takes
/// them again once the next one is stored. (restart_bench under load: a burst of
/// proposals to one group ran its log 2,560 entries past its snapshot, and a restart then
/// re-applied them all, against a bound of 1,280.)
#[test]
fn a_leader_holds_proposals_back_until_its_log_is_snapshotted() {
    let mut io = Snapshotting::default();
    let mut node = leader_with_snapshots_every_4(&mut io);
    let last = node.group_status(g(1)).unwrap().last_index;
    let (taken, refusal) = propose_until_refused(&mut node);
    assert_eq!(last + taken, 6, "the log ends at 4 + 2 past snapshot 0");
    assert_eq!(
        refusal,
        ProposeError::Busy {
            limit: "snapshot_entries"
        }
    );
    testing::settle(&mut node, &mut io).unwrap();
    let snapshot = node.replica(g(1)).unwrap().snapshot().map(|s| s.0);
    assert_eq!(snapshot, Some(6), "the snapshot of all six is stored");
    let (taken, _) = propose_until_refused(&mut node);
    assert_eq!(taken, 6, "six more are taken once the snapshot is stored");
}

/// Answers every snapshot request with `error`, counting them.
struct FailingSnapshots {
    error: SnapshotError,
    asked: usize,
}

impl Io for FailingSnapshots {
    fn send(&mut self, _batch: MessageBatch) {}

    fn snapshot(&mut self, _take: &TakeSnapshot) -> Result<Vec<Bytes>, SnapshotError> {
        self.asked += 1;
        Err(self.error.clone())
    }
}

/// A group whose state machine takes no snapshots is asked once, not after every apply
/// (each of which logged a warning before), and its leader never holds proposals back:
/// its log is kept whole, as documented.
#[test]
fn a_machine_without_snapshots_is_asked_once_and_its_group_keeps_writing() {
    let mut io = FailingSnapshots {
        error: SnapshotError::Unsupported,
        asked: 0,
    };
    let mut node = leader_with_snapshots_every_4(&mut io);
    for _ in 0..10 {
        propose(&mut node, g(1), 5);
        testing::settle(&mut node, &mut io).unwrap();
    }
    assert_eq!(io.asked, 1);
    assert!(node.group_status(g(1)).unwrap().applied > 50);
}

/// A failing snapshot is tried again after later applies, and its group's leader does not
/// hold proposals back meanwhile (it would wait for a snapshot that may never come).
#[test]
fn a_failing_snapshot_is_retried_and_does_not_stop_the_group() {
    let mut io = FailingSnapshots {
        error: SnapshotError::Failed("disk full".into()),
        asked: 0,
    };
    let mut node = leader_with_snapshots_every_4(&mut io);
    for _ in 0..10 {
        propose(&mut node, g(1), 5);
        testing::settle(&mut node, &mut io).unwrap();
    }
    assert!(io.asked >= 9, "asked {} times", io.asked);
    assert!(node.group_status(g(1)).unwrap().applied > 50);
}
