//! Bringing many groups' state into the caches together, before the node works on each
//! (docs/design.md §4.9).
//!
//! At thousands of busy groups a group's replica, its newest run of entries and its
//! followers' records are out of the caches when its turn comes, and working on the groups
//! one after the other meets each miss alone: the loads of one group's cycle depend on
//! each other (the replica, then the run list it points at, then the run's entries). Read
//! first for a stretch of groups — every replica, then everything they point at, then what
//! that points at — the misses of a stretch are independent and overlap, and the cycles
//! that follow find their lines in the caches.

use rustc_hash::FxHashMap;

use crate::group::Replica;
use crate::ids::GroupId;

use super::Slot;

/// Groups read ahead at once: a stretch's lines (about ten per group, 20 KiB) stay in the
/// first- and second-level caches of this kind of machine until the stretch is worked on,
/// and enough misses are in flight to overlap. 16 and 64 measured the same (BENCHMARKS.md,
/// "Many groups' state read together"). The driver's state machines are looked up in
/// stretches of the same length (`Machines::apply_all`).
pub(crate) const AHEAD: usize = 32;

/// Reads the state of the first [`AHEAD`] of `ids` hosted in `groups` (the rest of `ids`
/// is not looked at), one pointer depth at a time ([`Replica::warm`]).
pub(super) fn replicas(groups: &FxHashMap<GroupId, Box<Slot>>, ids: impl Iterator<Item = GroupId>) {
    let mut replicas: [Option<&Replica>; AHEAD] = [None; AHEAD];
    let mut read = 0;
    for (r, id) in replicas.iter_mut().zip(ids) {
        if let Some(slot) = groups.get(&id) {
            // The slot's flags, past the replica's lines: a step asks `ticking` first.
            read ^= u64::from(slot.ticking) ^ u64::from(slot.queued);
            *r = Some(&slot.group);
        }
    }
    for depth in 0..3 {
        for r in replicas.iter().flatten() {
            read ^= r.warm(depth);
        }
    }
    // What was read must count, or the reads are optimized away.
    std::hint::black_box(read);
}
