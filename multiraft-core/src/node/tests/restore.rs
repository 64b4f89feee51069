//! What `Node::restore` refuses: a group storage could not have written, or whose state
//! machine could not be rebuilt. Nothing is restored then.

use super::*;
use crate::error::StartError;
use crate::error::StorageError;
use crate::storage::{Compacted, LoadedGroup, MAX_LOADED_TERM};

/// Group 1 as storage returned it: term 2, entries 1–3 of term 1 and 4 of term 2, all
/// committed.
fn loaded() -> LoadedGroup {
    LoadedGroup {
        membership: voters(),
        hard_state: HardState {
            term: 2,
            vote: None,
            commit: 4,
        },
        entries: vec![noop(1, 1), noop(2, 1), noop(3, 1), noop(4, 2)],
        ..LoadedGroup::new(g(1))
    }
}

/// Restores `group` on a fresh node 1; the node hosts nothing after a refusal.
fn restore(group: LoadedGroup) -> Result<(), StartError> {
    let mut node = new_node(1, strict());
    let restored = node.restore(vec![loaded_other(), group]);
    if restored.is_err() {
        assert!(node.replica(g(2)).is_none(), "restored in part");
    }
    restored
}

/// Group 2, restored fine on its own: a refusal of group 1 beside it must leave it out too.
fn loaded_other() -> LoadedGroup {
    LoadedGroup {
        membership: voters(),
        ..LoadedGroup::new(g(2))
    }
}

fn is_corrupt(r: Result<(), StartError>) -> bool {
    matches!(r, Err(StartError::Storage(StorageError::Corrupt(_))))
}

/// A term or index no election or append could reach is refused at start. Restored, a term
/// of `u64::MAX` overflowed at the group's next election (a panic in a debug build; in a
/// release build the term wrapped to 0, and the replica voted in terms long past).
#[test]
fn a_term_or_index_past_the_bound_is_refused_at_start() {
    assert_eq!(restore(loaded()).map_err(|e| e.to_string()), Ok(()));
    // Peers send terms up to MAX_TERM_OR_INDEX; a replica campaigns on from there, and
    // must start again with what it stored.
    let campaigned = crate::message::MAX_TERM_OR_INDEX + 1;
    let mut past_peers = loaded();
    past_peers.hard_state.term = campaigned;
    past_peers.entries[3].term = campaigned;
    assert_eq!(restore(past_peers).map_err(|e| e.to_string()), Ok(()));
    let mut at_bound = loaded();
    at_bound.hard_state.term = MAX_LOADED_TERM;
    assert_eq!(restore(at_bound).map_err(|e| e.to_string()), Ok(()));

    let mut term = loaded();
    term.hard_state.term = u64::MAX;
    assert!(is_corrupt(restore(term)));
    let mut entry_term = loaded();
    entry_term.entries[3].term = MAX_LOADED_TERM + 1;
    assert!(is_corrupt(restore(entry_term)));
    let mut compacted = loaded();
    compacted.compacted = Some(Compacted {
        index: u64::MAX,
        term: 1,
    });
    compacted.snapshot = Some(snapshot_at(u64::MAX, 1));
    compacted.entries.clear();
    assert!(is_corrupt(restore(compacted)));
    let mut snapshot = loaded();
    snapshot.snapshot = Some(snapshot_at(4, MAX_LOADED_TERM + 1));
    assert!(is_corrupt(restore(snapshot)));
    let mut snapshot_index = loaded();
    snapshot_index.snapshot = Some(snapshot_at(u64::MAX, 1));
    assert!(is_corrupt(restore(snapshot_index)));
    let mut compacted_term = loaded();
    compacted_term.compacted = Some(Compacted {
        index: 4,
        term: MAX_LOADED_TERM + 1,
    });
    compacted_term.snapshot = Some(snapshot_at(4, 2));
    compacted_term.entries.clear();
    assert!(is_corrupt(restore(compacted_term)));
    let mut last = loaded();
    last.compacted = Some(Compacted {
        index: crate::message::MAX_TERM_OR_INDEX - 1,
        term: 1,
    });
    last.snapshot = Some(snapshot_at(crate::message::MAX_TERM_OR_INDEX - 1, 1));
    last.entries = vec![noop(crate::message::MAX_TERM_OR_INDEX, 1)];
    assert_eq!(restore(last.clone()).map_err(|e| e.to_string()), Ok(()));
    last.entries
        .push(noop(crate::message::MAX_TERM_OR_INDEX + 1, 1));
    assert!(is_corrupt(restore(last)), "a log running past the bound");
}

/// A snapshot of group 1 at `index`, of `term`.
fn snapshot_at(index: u64, term: u64) -> crate::snapshot::SnapshotMeta {
    crate::snapshot::SnapshotMeta {
        index,
        term,
        membership: voters(),
    }
}

/// A log that is not consecutive from its compacted index, or whose terms go down, is
/// refused: the node would index into it as if it were.
#[test]
fn a_log_with_a_gap_or_a_falling_term_is_refused_at_start() {
    let mut gap = loaded();
    gap.entries.remove(2);
    assert!(is_corrupt(restore(gap)));
    let mut falling = loaded();
    falling.entries[1].term = 2;
    assert!(is_corrupt(restore(falling)));
    let mut misplaced = loaded();
    misplaced.compacted = Some(Compacted { index: 1, term: 1 });
    misplaced.snapshot = Some(snapshot_at(1, 1));
    assert!(
        is_corrupt(restore(misplaced)),
        "entry 1 follows compacted 1"
    );
    let mut below = loaded();
    below.compacted = Some(Compacted { index: 0, term: 3 });
    assert!(
        is_corrupt(restore(below)),
        "terms below the compacted entry's"
    );
}

/// A log compacted past its snapshot, or without one, cannot rebuild its state machine.
#[test]
fn a_log_compacted_past_its_snapshot_is_refused_at_start() {
    let compacted_to_2 = |snapshot| {
        let mut compacted = loaded();
        compacted.compacted = Some(Compacted { index: 2, term: 1 });
        compacted.snapshot = snapshot;
        compacted.entries.drain(..2);
        restore(compacted)
    };
    assert_eq!(
        compacted_to_2(Some(snapshot_at(2, 1))).map_err(|e| e.to_string()),
        Ok(())
    );
    for snapshot in [None, Some(snapshot_at(1, 1))] {
        assert!(matches!(
            compacted_to_2(snapshot),
            Err(StartError::CompactedLog(group)) if group == g(1)
        ));
    }
}

/// A group storage returns twice is refused at start, and so is one the node already
/// hosts. Restored, the second copy replaced the first unseen, and the peers the first
/// counted were never released: the node tracked their liveness for as long as it ran.
#[test]
fn a_group_loaded_twice_is_refused_at_start() {
    let mut twice = loaded();
    twice.hard_state.term = 3;
    let mut node = new_node(1, strict());
    let restored = node.restore(vec![loaded(), loaded_other(), twice]);
    assert!(
        matches!(restored, Err(StartError::Storage(StorageError::Corrupt(_)))),
        "{restored:?}"
    );
    assert!(node.replica(g(1)).is_none() && node.replica(g(2)).is_none());
    node.restore(vec![loaded()]).unwrap();
    let again = node.restore(vec![loaded_other(), loaded()]);
    assert!(
        matches!(again, Err(StartError::Storage(StorageError::Corrupt(_)))),
        "{again:?}"
    );
    assert!(node.replica(g(2)).is_none(), "restored in part");
    assert_eq!(node.replica(g(1)).unwrap().status().term, 2);
}
