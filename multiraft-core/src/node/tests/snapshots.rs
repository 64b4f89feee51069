//! Snapshots the node builds (docs/design.md §4.6), one node delivered by hand.

use super::*;
use crate::testing::{self, Io};

/// Takes every snapshot asked for at once, as one empty chunk, and remembers its index.
#[derive(Default)]
struct Snapshotting {
    taken: Vec<u64>,
}

impl Io for Snapshotting {
    fn send(&mut self, _batch: MessageBatch) {}

    fn snapshot(&mut self, take: &TakeSnapshot) -> Option<Vec<Bytes>> {
        self.taken.push(take.meta.index);
        Some(Vec::new())
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
        compaction_lag_entries: 0,
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
