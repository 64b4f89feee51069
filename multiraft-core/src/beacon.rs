//! A node's beacon: liveness beats sent for it from a thread of its own while one turn of
//! its event loop runs long, so that a busy node is not taken for a dead one
//! (docs/design.md §4.3).
//!
//! The loop sends its liveness beats when it serves a tick, between its turns. A turn is
//! synchronous — a call, a wake's inbound batches, a ready of every group with output — and
//! one of a hundred thousand groups' worth lasted seconds: its peers heard nothing for
//! longer than their timeout, declared the node down, and the elections that followed
//! loaded every node more (BENCHMARKS.md, "An overloaded node's outputs, bounded"). The
//! beacon needs nothing of the node while it beats: the batches it sends are built by the
//! loop ([`Node::beacon_batches`]) and only depend on the node's life and its peers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::clock::Clock;
use crate::message::MessageBatch;
use crate::node::Node;
use crate::transport::Transport;

/// How long the beacon speaks for one turn of the loop, in liveness timeouts
/// (`Config::election_timeout_min_ticks` ticks): as long as a follower holds back its
/// campaign for a leader on a live node (`DEFERRED_TIMEOUTS`, docs/design.md §4.3). A turn
/// that lasts longer is taken for a wedged loop — a deadlock, a state machine that never
/// returns — and the beacon falls silent, so that the node's peers declare it down within
/// their own timeout and its groups elect elsewhere; without the bound, a wedged loop
/// whose process lives would hold its groups' leadership for good.
pub const MAX_BEACON_TIMEOUTS: u32 = 16;

/// The loop's side of the beacon: it marks its turns and keeps the beats current; a thread
/// beats while a turn runs long. Dropped with the loop, which stops the thread.
pub(crate) struct Beacon {
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    /// The node's [`Node::peers_version`] the beats were built for.
    version: Option<u64>,
    /// Never sent on: dropped with the beacon, it ends the thread's wait.
    _stop: mpsc::Sender<()>,
}

/// What the loop and the beacon's thread share.
struct Shared {
    /// When the loop's current turn began, in nanoseconds of its clock plus one; zero while
    /// the loop waits for input.
    turn_began: AtomicU64,
    /// One batch per peer ([`Node::beacon_batches`]).
    batches: Mutex<Vec<MessageBatch>>,
}

impl Beacon {
    /// Starts the beacon's thread for `node`, beating through `transport` every tick while
    /// a turn of the loop has lasted a tick or more, up to `MAX_BEACON_TIMEOUTS` liveness
    /// timeouts. A node whose thread cannot be started goes without a beacon (logged), as
    /// before it had one.
    pub(crate) fn start(
        node: &Node,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
    ) -> Beacon {
        let sent = node.metrics().beacon_batches.clone();
        let shared = Arc::new(Shared {
            turn_began: AtomicU64::new(0),
            batches: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = mpsc::channel();
        let config = node.config();
        let interval = config.tick_interval;
        let timeout = interval.saturating_mul(config.election_timeout_min_ticks);
        let bound = timeout.saturating_mul(MAX_BEACON_TIMEOUTS);
        // The loop's runtime, entered by the thread: the clock and the transport may need
        // its context (a paused test clock, a transport's own tasks).
        let runtime = tokio::runtime::Handle::try_current().ok();
        let beats = Arc::clone(&shared);
        let beat_clock = Arc::clone(&clock);
        let spawned = std::thread::Builder::new()
            .name(format!("multiraft-beacon-{}", node.id().0))
            .spawn(move || {
                let _runtime = runtime.as_ref().map(|r| r.enter());
                // Every tick, until the loop's side is dropped.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let began = beats.turn_began.load(Ordering::Acquire);
                    let now = nanos(beat_clock.now()).saturating_add(1);
                    let turn = Duration::from_nanos(now.saturating_sub(began));
                    if began == 0 || turn < interval || turn > bound {
                        continue;
                    }
                    let held = beats.batches.lock();
                    let batches = held.unwrap_or_else(PoisonError::into_inner).clone();
                    for batch in batches {
                        transport.send(batch);
                        sent.increment(1);
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(node = %node.id(), %error, "no beacon: its thread did not start");
        }
        Beacon {
            shared,
            clock,
            version: None,
            _stop: stop,
        }
    }

    /// A turn of the loop is under way: it began now, unless it had already.
    pub(crate) fn busy(&self) {
        if self.shared.turn_began.load(Ordering::Relaxed) == 0 {
            let now = nanos(self.clock.now()).saturating_add(1);
            self.shared.turn_began.store(now, Ordering::Release);
        }
    }

    /// The loop waits for input: its turn ended. Builds the beats again if `node`'s peers
    /// changed since they were built.
    pub(crate) fn idle(&mut self, node: &Node) {
        self.shared.turn_began.store(0, Ordering::Release);
        let version = node.peers_version();
        if self.version != Some(version) {
            self.version = Some(version);
            let batches = node.beacon_batches();
            let mut held = (self.shared.batches.lock()).unwrap_or_else(PoisonError::into_inner);
            *held = batches;
        }
    }
}

/// `d` in whole nanoseconds, saturating (585 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
