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
    /// Proposals applied since the last tick.
    applied: u64,
    /// Of those, the ones that had waited longer than `limit` ticks.
    past: u64,
    /// Of those, the ones that had waited longer than half of `limit`.
    past_half: u64,
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
        self.applied += 1;
        self.past += u64::from(waited > self.limit);
        self.past_half += u64::from(2 * waited > self.limit);
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
    /// since the last one. The node becomes overloaded when most of them waited past the
    /// limit, and stays so while most waited past half of it: holding what it applies in
    /// the limit keeps waits about the limit, so a rule that ended the overload as soon as
    /// most were within it let the refused clients all back in at the next tick, with the
    /// backlog. While overloaded it holds at most what it applied in the last tick times
    /// the limit.
    /// - Most, not any: a burst's last proposals wait their turn behind its first. Nor all:
    ///   one that a ready happened to reach first comes through quickly whatever the
    ///   backlog.
    /// - A tick with nothing applied keeps the cap while the node holds proposals (a loop
    ///   whose turn outlasted a tick applied nothing in it, and is no less loaded), and
    ///   ends the overload when it holds none: a node that refused everything could
    ///   otherwise never measure a rate again.
    /// - A group that cannot commit (no quorum) holds its proposals until they time out;
    ///   they count only once applied.
    pub(super) fn tick(&mut self, pending: usize) {
        let (applied, past, past_half) = (self.applied, self.past, self.past_half);
        (self.applied, self.past, self.past_half) = (0, 0, 0);
        if applied == 0 {
            if pending == 0 {
                self.cap = None;
            }
            return;
        }
        let still = self.cap.is_some() && 2 * past_half > applied;
        let overloaded = 2 * past > applied || still;
        self.cap = overloaded.then(|| applied.saturating_mul(self.limit));
    }
}
