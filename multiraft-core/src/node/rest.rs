//! Followers left unticked while their ticks would only count their election timers
//! (docs/design.md §4.10).
//!
//! A busy group's followers hear from their leader many times an election timeout, and
//! each of their ticks until the timer nears its minimum does nothing but add one to it.
//! Visiting every such follower on every tick was a cache miss or more per group per tick
//! at a thousand busy groups. So a tick that finds a follower with `n` such ticks ahead
//! ([`Replica::quiet_ticks`](crate::group::Replica::quiet_ticks)) takes it out of the
//! ticked set (`Node::active`) for those `n` ticks: it *rests*. Whatever reaches a resting
//! group first counts the ticks it missed (`Slot::settle`), so the group sees exactly what
//! ticking it would have shown; if that input ends its quiet ticks (it campaigns, it learns
//! of a snapshot, its leader goes quiet), it is ticked again at once (`Slot::keep_ticking`).
//! A rest ends by itself on its last quiet tick, when the timer is due a real tick.

use std::collections::BTreeMap;

use crate::ids::GroupId;

use super::Slot;

/// A rest shorter than this is not taken: taking one costs about what a tick of the group
/// does (a removal from and an insertion into the ticked set, a place in [`Rests`]).
pub(super) const MIN_REST_TICKS: u32 = 2;

/// A group's rest: its election timer is counted up to the served tick `since`, and it must
/// be ticked again at the served tick `due`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rest {
    since: u64,
    due: u64,
}

/// When resting groups are due to be ticked again, by served tick. A group keeps its place
/// (`Slot::parked`) when its rest ends early and it rests again: a rest never ends before an
/// earlier one of the same group would have (its timer grows only by ticks), so the place
/// comes up first and the rest takes a later one then. So each group holds at most one
/// place, due within `election_timeout_min_ticks`, and this map holds no more entries than
/// the node hosts groups.
#[derive(Debug, Default)]
pub(super) struct Rests {
    due: BTreeMap<u64, Vec<GroupId>>,
    /// Groups resting now (`Slot::rest` set): not ticked, yet not quiesced.
    resting: usize,
    /// Rests taken since the node started, and whether none may be (for tests comparing
    /// a node's outputs with and without them).
    #[cfg(test)]
    pub(super) taken: u64,
    #[cfg(test)]
    pub(super) off: bool,
}

impl Rests {
    /// Groups resting now.
    pub(super) fn resting(&self) -> usize {
        self.resting
    }

    /// The groups whose place comes up at served tick `tick` (or before, a place no tick
    /// took), in the order they took them.
    pub(super) fn take_due(&mut self, tick: u64) -> Vec<GroupId> {
        let mut due = Vec::new();
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() > tick {
                break;
            }
            due.append(&mut entry.remove());
        }
        due
    }

    fn park(&mut self, id: GroupId, slot: &mut Slot, due: u64) {
        if slot.parked.is_none_or(|p| p > due) {
            self.due.entry(due).or_default().push(id);
            slot.parked = Some(due);
        }
    }
}

impl Slot {
    /// After the group's tick at served tick `tick`: rests it for its quiet ticks, if there
    /// are enough. Returns whether it rests (the caller takes it out of the ticked set).
    pub(super) fn try_rest(&mut self, id: GroupId, tick: u64, rests: &mut Rests) -> bool {
        let quiet = self.group.quiet_ticks();
        if quiet < MIN_REST_TICKS || self.rest.is_some() {
            return false;
        }
        #[cfg(test)]
        {
            if rests.off {
                return false;
            }
            rests.taken += 1;
        }
        let due = tick + u64::from(quiet) + 1;
        self.rest = Some(Rest { since: tick, due });
        self.ticking = false;
        rests.resting += 1;
        rests.park(id, self, due);
        true
    }

    /// Counts the ticks served while the group rested, up to `served`: before anything
    /// else reaches a resting group, so that it sees its election timer where ticking
    /// would have left it.
    pub(super) fn settle(&mut self, served: u64) {
        if let Some(rest) = &mut self.rest {
            let missed = served.saturating_sub(rest.since);
            self.group
                .count_quiet_ticks(u32::try_from(missed).unwrap_or(u32::MAX));
            rest.since = served;
        }
    }

    /// After input reached the group: whether it must join the ticked set — woken from
    /// quiescence, or its rest ended since the input ended its quiet ticks. A resting
    /// group whose ticks are still quiet keeps resting.
    pub(super) fn keep_ticking(&mut self, served: u64, rests: &mut Rests) -> bool {
        if self.ticking {
            return false;
        }
        if self.group.is_quiesced() {
            self.end_rest(served, rests);
            return false;
        }
        if self.rest.is_some() && self.group.quiet_ticks() > 0 {
            return false;
        }
        self.end_rest(served, rests);
        self.ticking = true;
        true
    }

    /// The place of group `id` came up at served tick `tick`, before the group's tick:
    /// whether its rest ends now (the caller puts it back in the ticked set). A rest due
    /// later takes a place again; a group that no longer rests has nothing to do.
    pub(super) fn place_due(&mut self, id: GroupId, tick: u64, rests: &mut Rests) -> bool {
        if self.parked.is_some_and(|p| p <= tick) {
            self.parked = None;
        }
        match self.rest {
            Some(rest) if rest.due <= tick => {
                // Its ticks up to the one before this; this one it takes with the others.
                self.end_rest(tick - 1, rests);
                self.ticking = true;
                true
            }
            Some(rest) => {
                rests.park(id, self, rest.due);
                false
            }
            None => false,
        }
    }

    /// The group is being removed: it rests no more.
    pub(super) fn forget_rest(&mut self, rests: &mut Rests) {
        if self.rest.take().is_some() {
            rests.resting -= 1;
        }
    }

    fn end_rest(&mut self, served: u64, rests: &mut Rests) {
        self.settle(served);
        self.forget_rest(rests);
    }
}
