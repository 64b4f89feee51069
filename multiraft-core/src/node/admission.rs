//! Admission control (docs/design.md §5): how long this node's proposals wait, from being
//! queued for the node to being applied here, and whether it takes new ones.
//!
//! The node's queues are bounded by counts (`max_api_queue`, `max_pending_proposals`),
//! which bound memory, not latency: a node offered more than it can serve fills them, its
//! proposals wait seconds, and many end `Indeterminate` at the proposal timeout. Here the
//! node caps the proposals it holds at what it applies in `limit` ticks while most of what
//! it applies waited longer than that, so that by Little's law what it takes waits about
//! `limit` ticks, and refuses the rest with a definite `Busy`.

/// How many limits (at least; the ring rounds up to a power of two) a proposal may be
/// held after the node took it before it stops counting against the cap: one held that
/// long is stuck (forwarded to a leader that lost it, in a group without a quorum), not
/// queued behind the others, and it would otherwise hold the cap until its proposal
/// timeout. Within the cap what the node takes waits about one limit, so four leave room
/// for a slow one; and what leaks past the cap this way is at most a cap's worth every
/// four limits, a quarter of the rate the node applies.
const STALE_LIMITS: u64 = 4;

/// The most ticks a proposal's age is told apart for: bounds the ring of counts
/// ([`Admission::young`]) whatever `limit` is configured. A proposal older than that counts
/// as stale. A power of two, as every ring's length is (four limits, rounded up).
const MAX_AGE_TICKS: u64 = 4096;

/// Past half the cap, the most even shares of it (the cap over the groups holding
/// proposals) one group may hold. More than one, because groups' loads vary about the
/// average: with one share, a node evenly overloaded refused about half its groups'
/// proposals in the loop, after a turn in the queue, where before the queue refused them
/// at once (it cannot tell groups apart), and its loop spent its turns refusing
/// (BENCHMARKS.md, "Admission by group"). Four leave room for a group four times as
/// loaded as the average, and still bound one slow group among many.
const SHARES_HELD: u64 = 4;

/// A group's part in the node's proposals, for [`Admission::admits`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Share {
    /// The proposals the group holds.
    pub(super) held: usize,
    /// The groups that hold proposals, counting this one.
    pub(super) groups: usize,
}

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
    /// The node's tick, as of the last [`Admission::tick`].
    now: u64,
    /// Proposals held, by the tick the node took them at, for the last `young.len()` ticks
    /// ([`STALE_LIMITS`] limits rounded up to a power of two, at most [`MAX_AGE_TICKS`]):
    /// a ring indexed by the tick. By the tick taken, not queued: a proposal that waited
    /// long in the queue before the node took it is not stuck, and judged from its queueing
    /// a backlog taken once the cap was set went stale as it was taken, counted against
    /// nothing, and came in whole (review).
    young: Vec<u64>,
    /// Proposals held that were taken before that: stale, not counted against the cap.
    stale: u64,
}

impl Admission {
    /// Proposals that wait more than `limit` ticks count as late.
    pub(super) fn new(limit: u64) -> Admission {
        // A power of two, so that finding a tick's slot is a mask, not a division.
        let window = limit
            .saturating_mul(STALE_LIMITS)
            .clamp(1, MAX_AGE_TICKS)
            .next_power_of_two();
        Admission {
            limit,
            young: vec![0; window as usize],
            ..Admission::default()
        }
    }

    /// The count a proposal taken at tick `taken_at` is kept in: its tick's, or the stale
    /// one's (always, for an admission without a ring: one never configured).
    fn count_of(&mut self, taken_at: u64) -> &mut u64 {
        let window = self.young.len() as u64;
        let taken_at = taken_at.min(self.now);
        if window == 0 || self.now - taken_at >= window {
            return &mut self.stale;
        }
        &mut self.young[(taken_at & (window - 1)) as usize]
    }

    /// The node's tick, as of the last [`Admission::tick`]: when a proposal taken now was
    /// taken, for [`Admission::taken`] and [`Admission::ended`].
    pub(super) fn now(&self) -> u64 {
        self.now
    }

    /// The node took a proposal at tick `taken_at` ([`Admission::now`] then).
    pub(super) fn taken(&mut self, taken_at: u64) {
        *self.count_of(taken_at) += 1;
    }

    /// A proposal taken at tick `taken_at` ended, however.
    pub(super) fn ended(&mut self, taken_at: u64) {
        let count = self.count_of(taken_at);
        *count = count.saturating_sub(1);
    }

    /// A proposal of this node was applied after waiting `waited` ticks.
    pub(super) fn applied(&mut self, waited: u64) {
        self.applied += 1;
        self.past += u64::from(waited > self.limit);
        self.past_half += u64::from(2 * waited > self.limit);
    }

    /// Whether a new proposal of a group holding `share` is taken while the node holds
    /// `pending` in all. While overloaded, counting only the proposals not yet stale
    /// ([`STALE_LIMITS`]) against the cap: none at the cap; past half of it, none of a group
    /// that holds [`SHARES_HELD`] even shares of it (the cap over the groups holding
    /// proposals) or half of it, whichever is less, but at least one share (a group alone
    /// may fill the cap).
    ///
    /// The node judges its load on all the proposals it applies, so one group whose
    /// commits are slow for reasons of its own (a slow follower, a far quorum) can make
    /// the node overloaded and hold most of the cap: without a group's limit every other
    /// group was refused `Busy` with it (docs/design.md §5). Not from the first proposal:
    /// a group busier than the others may use the room they leave, up to half the cap.
    /// A group's count includes its stale proposals, and groups holding only stale ones
    /// share the cap too: stuck groups shrink the others' shares, never below what half
    /// the cap leaves them.
    pub(super) fn admits(&self, pending: usize, share: Share) -> bool {
        self.cap.is_none_or(|cap| {
            let young = (pending as u64).saturating_sub(self.stale);
            let held = share.held as u64;
            let even = cap / share.groups.max(1) as u64;
            let most = even.saturating_mul(SHARES_HELD).min(cap / 2).max(even);
            young < cap && (2 * young < cap || held < most)
        })
    }

    /// While overloaded, the proposals the node may hold: the cap, and the stale ones
    /// ([`STALE_LIMITS`]) on top, which do not count against it.
    pub(super) fn cap(&self) -> Option<u64> {
        self.cap.map(|cap| cap.saturating_add(self.stale))
    }

    /// A tick, with the node holding `pending` proposals: judges the proposals applied
    /// since the last one. The node becomes overloaded when most of them waited past the
    /// limit, and stays so while most waited past half of it: holding what it applies in
    /// the limit keeps waits about the limit, so a rule that ended the overload as soon as
    /// most were within it let the refused clients all back in at the next tick, with the
    /// backlog. While overloaded it holds at most what it applies in the limit: what it
    /// applied since the last tick, over the ticks that passed since (more than one when
    /// the tick is served late), times the limit, rounded up.
    /// - Most, not any: a burst's last proposals wait their turn behind its first. Nor all:
    ///   one that a ready happened to reach first comes through quickly whatever the
    ///   backlog.
    /// - A tick with nothing applied keeps the cap while the node holds proposals (a loop
    ///   whose turn outlasted a tick applied nothing in it, and is no less loaded), and
    ///   ends the overload when it holds none: a node that refused everything could
    ///   otherwise never measure a rate again.
    /// - A group that cannot commit (no quorum) holds its proposals until they time out;
    ///   they count only once applied, and stop counting against the cap once stale
    ///   ([`STALE_LIMITS`]).
    pub(super) fn tick(&mut self, now: u64, pending: usize) {
        // A tick served late counts for every tick that passed (`Node::tick_late`): the
        // applies judged here took that long, and waits are counted in those ticks. At
        // most a limit's worth: a stall longer than that is a pause (the process stopped,
        // the loop woke to this tick first), not a rate, and dividing by all of it left a
        // cap near one for a tick after it (review).
        let elapsed = now.saturating_sub(self.now).clamp(1, self.limit.max(1));
        self.age_to(now);
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
        self.cap = overloaded.then(|| applied.saturating_mul(self.limit).div_ceil(elapsed));
    }

    /// Moves the node's tick to `now`: proposals taken more than the ring's length ago
    /// become stale. A tick served late after missed ones moves several at once.
    fn age_to(&mut self, now: u64) {
        let window = self.young.len() as u64;
        let steps = now.saturating_sub(self.now).min(window);
        for t in now - steps + 1..=now {
            // The slot of tick `t` held tick `t - window`'s proposals, stale from now on.
            let slot = &mut self.young[(t & (window - 1)) as usize];
            self.stale += std::mem::take(slot);
        }
        self.now = self.now.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cap is the rate over the ticks that passed since the last, times the limit: a
    /// tick served four late divides by four; a stall longer than the limit divides by the
    /// limit only (a pause, not a rate).
    #[test]
    fn the_cap_is_the_rate_over_the_ticks_that_passed_up_to_a_limit() {
        let mut a = Admission::new(10);
        let overloaded = |a: &mut Admission, now| {
            for _ in 0..100 {
                a.applied(20);
            }
            a.tick(now, 100);
            a.cap
        };
        assert_eq!(overloaded(&mut a, 1), Some(1_000));
        assert_eq!(overloaded(&mut a, 5), Some(250));
        assert_eq!(overloaded(&mut a, 105), Some(100));
    }

    /// A proposal turns stale the ring's length (`STALE_LIMITS` limits, rounded up to a
    /// power of two) after it was taken, also when the
    /// ticks that take it there come at once (a loop serving a tick late); one that ends
    /// stale leaves the stale count, one that ends young leaves its tick's.
    #[test]
    fn proposals_turn_stale_after_four_limits_and_leave_where_they_are() {
        let limit = 3;
        let window = (limit * STALE_LIMITS).next_power_of_two();
        let mut a = Admission::new(limit);
        a.tick(5, 0);
        a.taken(5);
        a.taken(5);
        a.taken(4);
        a.tick(5 + window - 1, 3);
        assert_eq!(a.stale, 1, "taken at 4: {window} ticks old");
        a.tick(5 + window, 3);
        assert_eq!(a.stale, 3);
        a.ended(5);
        assert_eq!(a.stale, 2);
        a.taken(5 + window);
        a.tick(5 + 10 * window, 3);
        assert_eq!(a.stale, 3, "a late tick ages every slot");
        assert!(a.young.iter().all(|&n| n == 0));
        a.taken(5 + 10 * window);
        a.ended(5 + 10 * window);
        assert_eq!((a.stale, a.young.iter().sum::<u64>()), (3, 0));
    }

    /// Overloaded with a cap of 1,200: under half of it, anything; past half, a group may
    /// hold four even shares or half the cap, whichever is less, but at least one share;
    /// at the cap, nothing. Stale proposals count in neither.
    #[test]
    fn past_half_the_cap_a_group_holds_at_most_its_shares() {
        let mut a = Admission::new(1);
        a.applied(2);
        a.tick(1, 0);
        assert_eq!(a.cap(), Some(1));
        a.cap = Some(1_200);
        let admits = |pending, held, groups| a.admits(pending, Share { held, groups });
        assert!(admits(599, 599, 1), "under half the cap");
        assert!(admits(1_199, 1_199, 1), "alone: the whole cap");
        assert!(!admits(1_200, 0, 2), "at the cap");
        assert!(
            admits(700, 599, 2) && !admits(700, 600, 2),
            "two: half the cap"
        );
        assert!(!admits(700, 600, 8), "eight: half the cap");
        assert!(
            admits(700, 47, 100) && !admits(700, 48, 100),
            "many: four shares"
        );
        // Stale proposals count neither towards the cap nor towards its half.
        a.stale = 1_000;
        let admits = |pending, held, groups| a.admits(pending, Share { held, groups });
        assert!(admits(1_599, 1_599, 2), "599 young: under half the cap");
        assert!(
            admits(1_700, 599, 2) && !admits(1_700, 600, 2),
            "700 young: half"
        );
        assert!(!admits(2_200, 0, 2), "1,200 young: at the cap");
    }

    /// However large the limit, the ring stays bounded.
    #[test]
    fn the_ring_is_bounded() {
        assert_eq!(Admission::new(u64::MAX).young.len() as u64, MAX_AGE_TICKS);
        assert_eq!(Admission::new(1).young.len() as u64, STALE_LIMITS);
        assert_eq!(
            Admission::new(3).young.len(),
            16,
            "twelve ticks, rounded up"
        );
    }
}
