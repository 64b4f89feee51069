//! What a cycle of a replica reads first, read ahead by a node about to work on many
//! groups (docs/design.md §4.9).

use super::Replica;
use crate::message::Message;

impl Replica {
    /// Reads what a cycle of this replica reads first, `depth` pointers away from the
    /// replica (0: its own lines; 1: what it points at; 2: what those point at), returning
    /// a value that depends on all of it (for `std::hint::black_box`). A node about to work
    /// on many groups warms them all at depth 0, then all at 1, then at 2: the misses of
    /// one depth overlap, where working on each group in turn meets them one at a time.
    pub(crate) fn warm(&self, depth: u8) -> u64 {
        match depth {
            0 => {
                let marks = self.log.committed ^ self.log.persisted ^ self.log.applied;
                let timers = u64::from(self.election_elapsed) ^ u64::from(self.idle_ticks);
                let sizes = self.forward.len() ^ self.uncommitted_bytes;
                // `has_ready` asks whether a restore is under way, and a step whether a
                // leader is known, first: in the compiler's layout those lie in a line
                // none of the fields above is on (BENCHMARKS.md, "A replica's first line
                // and a stored record read ahead").
                let first = u64::from(self.leader.is_some()) ^ u64::from(self.restoring.is_none());
                self.term ^ marks ^ timers ^ sizes as u64 ^ self.out_written as u64 ^ first
            }
            1 => {
                let out = self.out.as_ref().map_or(0, |o| o.send_now.len() as u64);
                self.log.warm(0) ^ self.progress.warm(0) ^ out
            }
            _ => {
                // The first message of each list: a follower's acknowledgement waits in
                // `send_after_write` from the step of an append to the ready after it.
                let first = |list: &[Message]| list.first().map_or(0, |m| m.term);
                let out = self
                    .out
                    .as_ref()
                    .map_or(0, |o| first(&o.send_now) ^ first(&o.send_after_write));
                self.log.warm(1) ^ self.progress.warm(1) ^ out
            }
        }
    }
}
