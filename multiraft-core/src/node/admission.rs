//! Admission control (docs/design.md §5): how long this node's proposals wait, from being
//! queued for the node to being applied here, and whether it takes new ones.
//!
//! The node's queues are bounded by counts (`max_api_queue`, `max_pending_proposals`),
//! which bound memory, not latency: a node offered more than it can serve fills them, its
//! proposals wait seconds, and many end `Indeterminate` at the proposal timeout. Here the
//! node caps the proposals it holds at what it applies in `limit` ticks while most of what
//! it applies waited longer than that, so that by Little's law what it takes waits about
//! `limit` ticks, and refuses the rest with a definite `Busy`.

/// The admission state of one node, judged once a tick.
#[derive(Debug, Default)]
pub(super) struct Admission {
    /// `Config::max_commit_wait_ticks`.
    limit: u64,
    /// Proposals applied since the last tick that had waited at most `limit` ticks.
    within: u64,
    /// Proposals applied since the last tick that had waited longer.
    past: u64,
    /// While the node is overloaded: the proposals it may hold, taken and not yet ended,
    /// before it refuses new ones.
    cap: Option<u64>,
}

impl Admission {
    /// Proposals that wait more than `limit` ticks count as late.
    pub(super) fn new(limit: u64) -> Admission {
        Admission {
            limit,
            ..Admission::default()
        }
    }

    /// A proposal of this node was applied after waiting `waited` ticks.
    pub(super) fn applied(&mut self, waited: u64) {
        if waited > self.limit {
            self.past += 1;
        } else {
            self.within += 1;
        }
    }

    /// Whether a new proposal is taken while the node holds `pending` others.
    pub(super) fn admits(&self, pending: usize) -> bool {
        self.cap.is_none_or(|cap| (pending as u64) < cap)
    }

    /// While overloaded, the proposals the node may hold.
    pub(super) fn cap(&self) -> Option<u64> {
        self.cap
    }

    /// A tick, with the node holding `pending` proposals: judges the proposals applied
    /// since the last one. The node is overloaded if most of them waited past the limit, or
    /// if it was and still holds at least half its cap (so that the clients it refused do
    /// not all come back in the first tick the waits are within the limit again, and bring
    /// the backlog back with them: waits within the limit mean it holds at most its cap,
    /// and a demand below what it serves leaves it well under). While overloaded it holds
    /// at most what it applied in the last tick times the limit.
    /// - Most, not any: a burst's last proposals wait their turn behind its first. Nor all:
    ///   one that a ready happened to reach first comes through quickly whatever the
    ///   backlog.
    /// - A group that cannot commit (no quorum) holds its proposals, which count only once
    ///   applied, but are held, until they time out.
    /// - A tick with nothing applied ends the overload: without a rate there is no cap to
    ///   set, and a node that refused everything could never measure one again.
    pub(super) fn tick(&mut self, pending: usize) {
        let applied = self.within + self.past;
        let held = self.cap.is_some_and(|cap| 2 * pending as u64 >= cap);
        let overloaded = applied > 0 && (self.past > self.within || held);
        self.cap = overloaded.then(|| applied.saturating_mul(self.limit));
        (self.within, self.past) = (0, 0);
    }
}
