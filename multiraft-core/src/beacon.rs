//! A node's beacon: liveness beats sent for it from a thread of its own while its event loop
//! is late — one turn of it runs long, or its runtime leaves it unpolled — so that a busy
//! node is not taken for a dead one (docs/design.md §4.3).
//!
//! The loop sends its liveness beats when it serves a tick, between its turns. A turn is
//! synchronous — a call, a wake's inbound batches, a ready of every group with output — and
//! one of a hundred thousand groups' worth lasted seconds: its peers heard nothing for
//! longer than their timeout, declared the node down, and the elections that followed
//! loaded every node more (BENCHMARKS.md, "A peer's batches count from their arrival"). The
//! beacon needs nothing of the node while it beats: the batches it sends are built by the
//! loop ([`Node::beacon_batches`]) and only depend on the node's life and its peers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Clock;
use crate::message::MessageBatch;
use crate::node::Node;
use crate::transport::Transport;

/// How long the beacon speaks for a late loop that makes no progress, in liveness timeouts
/// (`Config::election_timeout_min_ticks` ticks): sixteen, as a follower holds back its
/// campaign for a leader on a live node for `DEFERRED_TIMEOUTS` (16) of the *longest*
/// election timeouts (docs/design.md §4.3), so the beacon falls silent well before that
/// hold ends. A loop that takes no ready, steps no batch and takes no
/// call for longer — stuck in one call, or unpolled — is taken for a wedged one (a
/// deadlock, a state machine that never returns, a runtime whose workers all block), and
/// the beacon falls silent, so that the node's peers declare it down within their own
/// timeout and its groups elect elsewhere; without the bound, a wedged loop whose process
/// lives would hold its groups' leadership for good. A loop that moves on, however late,
/// is beaten for.
pub const MAX_BEACON_TIMEOUTS: u32 = 16;

/// How many times the beacon's thread wakes per liveness timeout (at most once a tick): a
/// late loop's peers hear a beat at least this often within their timeout, which leaves
/// room for the beacon's own thread to wait for a core under the load that made the loop
/// late. Each wake costs a context switch whether the loop is late or not: on the idle
/// benchmark's three nodes (50 ms ticks), four wakes a timeout took 0.08 % of a core
/// (BENCHMARKS.md, 2026-12-07); woken every tick, they would wake two and a half times as
/// often.
pub const BEACON_WAKES_PER_TIMEOUT: u32 = 4;

/// The loop's side of the beacon: it marks its turns and keeps the beats current; a thread
/// beats while the loop is late. Dropped with the loop, which stops the thread and waits
/// for it.
#[derive(Default)]
pub(crate) struct Beacon {
    shared: Arc<Shared>,
    /// The node's [`Node::peers_version`] the beats were built for.
    version: Option<u64>,
    /// The running thread, with the sender that stops it: never sent on, dropped with the
    /// beacon, it ends the thread's wait at once. `None` until the thread starts.
    thread: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Drop for Beacon {
    /// Stops the thread and waits for it: a round of sends in progress ends first, so that
    /// nothing is sent for the node once its loop stopped (it detaches from its transport
    /// right after). The wait is that of one round of non-blocking sends at most.
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.thread.take() {
            drop(stop);
            if thread.join().is_err() {
                tracing::error!("the beacon's thread panicked");
            }
        }
    }
}

/// What the loop and the beacon's thread share. Times are in nanoseconds of the node's clock
/// plus one, so that zero means none.
#[derive(Default)]
struct Shared {
    /// When the loop's current turn began; zero while the loop waits for input.
    turn_began: AtomicU64,
    /// When the loop last made progress within its turn: took a ready, stepped a batch,
    /// took a call, finished a write.
    progress: AtomicU64,
    /// While the loop waits, when its next tick is due: past it, a loop not yet back is
    /// left unpolled by its runtime.
    tick_due: AtomicU64,
    /// One batch per peer ([`Node::beacon_batches`]).
    batches: Mutex<Vec<MessageBatch>>,
}

/// What the beacon's thread makes of the loop at one of its wakes.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// On time: its own beats leave at its ticks.
    OnTime,
    /// Late by a tick or more, and moving: beat for it.
    Late,
    /// No progress for longer than the bound (`stalled`): wedged, beat no more.
    Wedged { stalled: Duration },
}

impl Shared {
    /// The batches, whatever a panic elsewhere left them as (they are only ever replaced
    /// whole).
    fn held(&self) -> std::sync::MutexGuard<'_, Vec<MessageBatch>> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop at `now`, with ticks every `interval`, wedged past `bound` without progress.
    fn judge(&self, now: Duration, interval: Duration, bound: Duration) -> Verdict {
        let now = nanos(now).saturating_add(1);
        let began = self.turn_began.load(Ordering::Acquire);
        // Late since its turn began, or, waiting, since its tick came due; stalled since its
        // last progress in a turn, or as long as it is late while it waits.
        let (since, moved) = match began {
            0 => {
                let due = self.tick_due.load(Ordering::Acquire);
                (due, due)
            }
            began => (began, self.progress.load(Ordering::Acquire)),
        };
        let late = Duration::from_nanos(now.saturating_sub(since));
        let stalled = Duration::from_nanos(now.saturating_sub(moved));
        if since == 0 || late < interval {
            Verdict::OnTime
        } else if stalled > bound {
            Verdict::Wedged { stalled }
        } else {
            Verdict::Late
        }
    }
}

impl Beacon {
    /// Starts the beacon's thread for `node`, beating through `transport` at each of its
    /// wakes (`BEACON_WAKES_PER_TIMEOUT` a liveness timeout, at most one a tick) while
    /// the loop is late by a tick or more — a turn of it has lasted that long, or it waits
    /// unpolled that long past its tick — unless it has made no progress for
    /// `MAX_BEACON_TIMEOUTS` liveness timeouts. Called on the loop's runtime, which the
    /// thread enters: the clock and the transport may need its context (a paused test
    /// clock, a transport's own tasks). A node whose thread cannot be started goes without a
    /// beacon (logged), as before it had one.
    pub(crate) fn start(
        &mut self,
        node: &Node,
        clock: &Arc<dyn Clock>,
        transport: &Arc<dyn Transport>,
    ) {
        // Before the first turn, which may be a long one (a restart's first ready).
        self.rebuild(node);
        let sent = node.metrics().beacon_batches.clone();
        let (stop, stopped) = mpsc::channel();
        let (id, config) = (node.id(), node.config());
        let interval = config.tick_interval;
        let timeout = interval.saturating_mul(config.election_timeout_min_ticks);
        let bound = timeout.saturating_mul(MAX_BEACON_TIMEOUTS);
        let period = interval.max(timeout / BEACON_WAKES_PER_TIMEOUT);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (beats, clock, transport) = (
            Arc::clone(&self.shared),
            Arc::clone(clock),
            Arc::clone(transport),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("multiraft-beacon-{}", id.0))
            .spawn(move || {
                let _runtime = runtime.as_ref().map(|r| r.enter());
                let mut wedged = false;
                // Every period, until the loop's side is dropped.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    // No peer, nothing to judge: nor is the clock read (a test counts it).
                    if beats.held().is_empty() {
                        continue;
                    }
                    match beats.judge(clock.now(), interval, bound) {
                        Verdict::OnTime => wedged = false,
                        Verdict::Wedged { stalled } => {
                            if !std::mem::replace(&mut wedged, true) {
                                tracing::error!(node = %id, ?stalled, "the event loop made no progress for longer than the beacon's bound: its peers will declare this node down");
                            }
                        }
                        Verdict::Late => {
                            wedged = false;
                            let batches = beats.held().clone();
                            for batch in batches {
                                transport.send(batch);
                                sent.increment(1);
                            }
                        }
                    }
                }
            });
        match spawned {
            Ok(thread) => self.thread = Some((stop, thread)),
            Err(error) => tracing::warn!(node = %id, %error, "no beacon: its thread did not start"),
        }
    }

    /// The loop made progress at `now` (its clock's time) in a turn, which began now unless
    /// it had already.
    pub(crate) fn busy(&self, now: Duration) {
        let now = nanos(now).saturating_add(1);
        self.shared.progress.store(now, Ordering::Release);
        if self.shared.turn_began.load(Ordering::Relaxed) == 0 {
            self.shared.turn_began.store(now, Ordering::Release);
        }
    }

    /// The loop waits for input, its next tick due at `tick_due` (none once it stops, and
    /// serves ticks no more): its turn ended. Builds the beats again if `node`'s peers
    /// changed since they were built.
    pub(crate) fn idle(&mut self, node: &Node, tick_due: Option<Duration>) {
        let due = tick_due.map_or(0, |due| nanos(due).saturating_add(1));
        self.shared.tick_due.store(due, Ordering::Release);
        self.shared.turn_began.store(0, Ordering::Release);
        self.rebuild(node);
    }

    /// Builds the beats again if `node`'s peers changed since they were built.
    fn rebuild(&mut self, node: &Node) {
        let version = node.peers_version();
        if self.version != Some(version) {
            self.version = Some(version);
            let batches = node.beacon_batches();
            *self.shared.held() = batches;
        }
    }
}

/// `d` in whole nanoseconds, saturating (585 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn shared(turn_began: u64, progress: u64, tick_due: u64) -> Shared {
        let at = |ms: u64| if ms == 0 { 0 } else { ms * 1_000_000 + 1 };
        Shared {
            turn_began: AtomicU64::new(at(turn_began)),
            progress: AtomicU64::new(at(progress)),
            tick_due: AtomicU64::new(at(tick_due)),
            batches: Mutex::new(Vec::new()),
        }
    }

    /// Ticks every 10 ms, wedged past 1 s without progress: a turn or a wait is late from
    /// a tick on; a turn that moves on is late however long, one that stops is wedged past
    /// the bound, and so is a wait that long past its tick.
    #[test]
    fn a_loop_is_late_from_a_tick_on_and_wedged_past_the_bound_without_progress() {
        let (interval, bound) = (MS * 10, MS * 1000);
        let judge = |s: Shared, now: u64| s.judge(MS * now as u32, interval, bound);
        // In a turn that began at 100 ms.
        assert_eq!(judge(shared(100, 100, 0), 109), Verdict::OnTime);
        assert_eq!(judge(shared(100, 100, 0), 110), Verdict::Late);
        assert_eq!(judge(shared(100, 5_000, 0), 5_100), Verdict::Late);
        let stalled = MS * 1001;
        assert_eq!(
            judge(shared(100, 100, 0), 1_101),
            Verdict::Wedged { stalled }
        );
        // Waiting, its tick due at 100 ms.
        assert_eq!(judge(shared(0, 0, 100), 50), Verdict::OnTime);
        assert_eq!(judge(shared(0, 0, 100), 109), Verdict::OnTime);
        assert_eq!(judge(shared(0, 0, 100), 110), Verdict::Late);
        assert_eq!(judge(shared(0, 0, 100), 1_101), Verdict::Wedged { stalled });
        // Not started: nothing owed.
        assert_eq!(judge(shared(0, 0, 0), 10_000), Verdict::OnTime);
    }
}
