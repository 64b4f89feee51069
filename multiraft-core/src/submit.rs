//! The queue proposals cross on from the API to the event loop ([`Submissions`]): one lock
//! and one push per proposal, one wake of the loop per batch, and the loop takes a batch
//! per lock rather than one channel message per proposal (docs/design.md §5).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use bytes::Bytes;
use futures_util::task::AtomicWaker;

use crate::call::{ProposeReply, Replies};
use crate::config::Config;
use crate::error::ProposeError;
use crate::ids::GroupId;
use crate::metrics::ProposalCounters;
use crate::node::Node;
use crate::queued_bytes::{QueuedBytes, queued_size};

/// One proposal on its way to the event loop.
pub(crate) struct Submission {
    pub(crate) group: GroupId,
    pub(crate) command: Bytes,
    pub(crate) reply: ProposeReply,
    /// The node's tick when it was queued ([`Submissions::ticks`]), set by `push`.
    pub(crate) queued_at: u64,
}

/// Proposals submitted and not yet taken by the event loop, shared by every handle of a
/// node and its loop.
pub(crate) struct Submissions {
    queue: Mutex<Queue>,
    /// Wakes the loop when the queue turns non-empty, or when a batch taken left more.
    wake: Wake,
    /// At most this many wait (`Config::max_api_queue`): a proposal beyond it is refused
    /// with `Busy` at once, rather than queued behind work the loop cannot keep up with.
    limit: usize,
    /// Bytes of commands queued for the loop and not yet taken, here and in
    /// `propose_many`'s calls alike, and their limit (`Config::max_api_queue_bytes`): a
    /// count alone let 65,536 proposals of up to a MiB each wait, 64 GiB.
    bytes: Arc<QueuedBytes>,
    /// `Config::max_proposal_bytes`: a larger command is refused before it queues.
    max_proposal_bytes: usize,
    /// The node's proposal outcomes: a refusal here is one too.
    counters: ProposalCounters,
    /// The node's tick count ([`Node::ticks`]), published by the loop at every tick. A
    /// proposal is stamped with it when queued, so that admission control
    /// (`Config::max_commit_wait_ticks`) counts the wait in this queue too: under overload
    /// that is where proposals wait longest.
    ticks: AtomicU64,
    /// The node's proposals pending and its admission cap ([`Node::admission_cap`];
    /// `u64::MAX` for none), published by the loop as they change. A proposal that would
    /// take the queue and the pending past the cap is refused at once: refused only once
    /// taken, it would have waited its turn in the queue first, and clients that retry at
    /// once keep the queue full of such turns. (Past half the cap the node also refuses a
    /// group that holds its most of it, which the queue cannot tell: those are refused
    /// when taken.)
    pending: AtomicU64,
    cap: AtomicU64,
}

/// The loop's wake-up: a flag, which keeps a wake sent while the loop is busy, and the
/// loop's waker, registered without a lock. (`Notify` keeps its waiters in a list under a
/// mutex, which every turn of the loop took twice, to register and to drop its wait.)
#[derive(Default)]
struct Wake {
    flag: AtomicBool,
    waker: AtomicWaker,
}

impl Wake {
    fn notify(&self) {
        self.flag.store(true, Ordering::Release);
        self.waker.wake();
    }

    async fn notified(&self) {
        std::future::poll_fn(|cx| {
            if self.flag.swap(false, Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A wake between the first look and the registration found no waker.
            if self.flag.swap(false, Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

struct Queue {
    waiting: VecDeque<Submission>,
    /// The loop stopped: nothing is taken again.
    closed: bool,
}

impl Submissions {
    /// The queue of a node configured with `config`.
    pub(crate) fn new(config: &Config, counters: ProposalCounters) -> Submissions {
        Submissions {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                closed: false,
            }),
            wake: Wake::default(),
            limit: config.max_api_queue,
            bytes: Arc::new(QueuedBytes::new(config.max_api_queue_bytes)),
            max_proposal_bytes: config.max_proposal_bytes,
            counters,
            ticks: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            cap: AtomicU64::new(u64::MAX),
        }
    }

    /// Publishes what the queue needs of `node`: its tick count, its proposals pending and
    /// its admission cap. Called by the loop at every tick, after each take and after the
    /// applies of each ready.
    pub(crate) fn publish(&self, node: &Node) {
        self.ticks.store(node.ticks(), Ordering::Relaxed);
        self.publish_load(node.pending_proposals(), node.admission_cap());
    }

    /// The node holds `pending` proposals, and may hold at most `cap`.
    fn publish_load(&self, pending: usize, cap: Option<u64>) {
        self.pending.store(pending as u64, Ordering::Relaxed);
        self.cap.store(cap.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The node's tick count as last published.
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// A poisoned lock only means another thread panicked while holding it; every update
    /// here is a single push or drain, so the queue is whole either way.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `submission` for the loop, or says why not: `TooLarge` past
    /// `max_proposal_bytes`, `Busy` when `limit` proposals or `byte_limit` bytes already
    /// wait, `Stopped` when the loop has stopped. Every refusal is definite.
    pub(crate) fn push(&self, mut submission: Submission) -> Result<(), ProposeError> {
        submission.queued_at = self.ticks();
        let bytes = queued_size(&submission.command);
        let mut queue = self.lock();
        let held = queue.waiting.len() as u64 + self.pending.load(Ordering::Relaxed);
        let capped = held >= self.cap.load(Ordering::Relaxed);
        let refused = if queue.closed {
            Some(ProposeError::Stopped)
        } else if submission.command.len() > self.max_proposal_bytes {
            Some(ProposeError::TooLarge {
                max: self.max_proposal_bytes,
            })
        } else if capped {
            Some(ProposeError::Busy {
                limit: "max_commit_wait_ticks",
            })
        } else if queue.waiting.len() >= self.limit {
            Some(ProposeError::Busy {
                limit: "max_api_queue",
            })
        } else if !self.bytes.hold(bytes) {
            Some(ProposeError::Busy {
                limit: "max_api_queue_bytes",
            })
        } else {
            None
        };
        if let Some(refused) = refused {
            drop(queue);
            self.counters.refused(&refused);
            return Err(refused);
        }
        let first = queue.waiting.is_empty();
        queue.waiting.push_back(submission);
        drop(queue);
        // Only the first of a batch wakes the loop: the loop takes the rest with it.
        if first {
            self.wake.notify();
        }
        Ok(())
    }

    /// The bytes of commands queued, which `propose_many`'s calls count too.
    pub(crate) fn queued_bytes(&self) -> &Arc<QueuedBytes> {
        &self.bytes
    }

    /// Counts a proposal refused before it was queued.
    pub(crate) fn refused(&self, error: &ProposeError) {
        self.counters.refused(error);
    }

    /// The most bytes of commands one `propose_many` call carries, and the most one
    /// command may have (`max_proposal_bytes`). A quarter of the queue's limit (but room for
    /// any one command): a call that took the whole limit would fit only an empty queue,
    /// and under steady `propose` traffic a bulk batch would be refused whole (review).
    pub(crate) fn call_limits(&self) -> (usize, usize) {
        let call = (self.bytes.limit() / 4).max(self.max_proposal_bytes);
        (call, self.max_proposal_bytes)
    }

    /// Moves up to `max` waiting proposals, oldest first, onto `into`. When more are
    /// left, the loop is woken again for them, so a flood is taken in bounded batches
    /// between the loop's other work.
    fn take_into(&self, max: usize, into: &mut Vec<Submission>) {
        let mut queue = self.lock();
        let count = queue.waiting.len().min(max);
        let first = into.len();
        into.extend(queue.waiting.drain(..count));
        let more = !queue.waiting.is_empty();
        drop(queue);
        self.bytes
            .release(into[first..].iter().map(|s| queued_size(&s.command)).sum());
        if more {
            self.wake.notify();
        }
    }

    /// Completes when a proposal may be waiting.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    /// The loop stops: every later push is refused with `Stopped`, and so is every
    /// proposal still waiting (never taken, so the refusal is definite), counted as such.
    /// Called when the loop stops, and again, finding nothing, when its end is dropped.
    pub(crate) fn refuse_waiting(&self) {
        let waiting = {
            let mut queue = self.lock();
            queue.closed = true;
            std::mem::take(&mut queue.waiting)
        };
        self.bytes
            .release(waiting.iter().map(|s| queued_size(&s.command)).sum());
        self.counters.stopped.increment(waiting.len() as u64);
        for submission in waiting {
            let _ = submission.reply.send(Err(ProposeError::Stopped));
        }
    }
}

/// The event loop's end of [`Submissions`]. Dropping it closes the queue, so a loop that
/// ends any way at all (even aborted mid-ready) leaves no proposal waiting for ever: the
/// waiting ones, which the node never took, are refused with `Stopped`, a definite answer.
pub(crate) struct Taker {
    submissions: Arc<Submissions>,
    /// The proposals of one take, kept to be reused: no allocation per wake.
    taken: Vec<Submission>,
}

impl Taker {
    pub(crate) fn new(submissions: Arc<Submissions>) -> Taker {
        Taker {
            submissions,
            taken: Vec::new(),
        }
    }

    /// Hands up to `max` waiting proposals, oldest first, to `node`; the answer to each it
    /// takes waits in `replies`, and each it refuses is answered at once.
    pub(crate) fn take(&mut self, max: usize, node: &mut Node, replies: &mut Replies) {
        self.submissions.take_into(max, &mut self.taken);
        for Submission {
            group,
            command,
            reply,
            queued_at,
        } in self.taken.drain(..)
        {
            match node.propose_queued(group, command, queued_at) {
                Ok(request) => replies.wait_proposal(request, reply),
                Err(e) => drop(reply.send(Err(e))),
            }
        }
        self.submissions.publish(node);
    }
}

impl std::ops::Deref for Taker {
    type Target = Submissions;

    fn deref(&self) -> &Submissions {
        &self.submissions
    }
}

impl Drop for Taker {
    /// Once the loop is gone nothing takes a proposal again. Those still waiting were
    /// never taken, so they are refused with `Stopped`, counted as such: dropping them
    /// told their callers `Indeterminate(NodeStopped)` (outcome unknown), and a test that
    /// proposed to an aborted node in the moment between its loop's calls closing and this
    /// drop got that instead of `Stopped`.
    fn drop(&mut self) {
        self.submissions.refuse_waiting();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queued_bytes::Held;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Counts(AtomicU64);

    impl std::task::Wake for Counts {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The loop's wake-up: one sent while the loop is busy is kept for its next wait, one
    /// sent while it waits wakes it, and several before it looks again are one.
    #[test]
    fn a_wake_is_kept_until_the_loop_waits_and_wakes_it_once() {
        let wake = Wake::default();
        let counts = Arc::new(Counts::default());
        let waker = std::task::Waker::from(Arc::clone(&counts));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut poll = || std::pin::pin!(wake.notified()).poll(&mut cx);
        // Sent before the loop waits: the wait ends at once, and takes it.
        wake.notify();
        assert_eq!(poll(), Poll::Ready(()));
        assert_eq!(poll(), Poll::Pending);
        // Sent while it waits: its waker is woken once for two.
        wake.notify();
        wake.notify();
        assert_eq!(counts.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(), Poll::Ready(()));
        assert_eq!(poll(), Poll::Pending);
    }

    /// A queue of at most `limit` proposals, with the default limits otherwise.
    fn queue(limit: usize) -> Submissions {
        let config = Config {
            max_api_queue: limit,
            ..Config::default()
        };
        Submissions::new(&config, ProposalCounters::default())
    }

    fn submission(
        group: u64,
    ) -> (
        Submission,
        tokio::sync::oneshot::Receiver<Result<Bytes, ProposeError>>,
    ) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let submission = Submission {
            group: GroupId(group),
            command: Bytes::from_static(b"x"),
            reply,
            queued_at: 0,
        };
        (submission, rx)
    }

    /// A proposal the loop never took is refused with `Stopped` when the loop's end goes,
    /// however the loop ended (an aborted loop never calls `refuse_waiting` itself), and so
    /// is every later one.
    #[test]
    fn proposals_left_waiting_by_a_loop_that_died_are_refused_as_stopped() {
        let submissions = Arc::new(queue(8));
        let taker = Taker::new(Arc::clone(&submissions));
        let (waiting, mut waiting_rx) = submission(1);
        submissions.push(waiting).unwrap();
        drop(taker);
        assert_eq!(waiting_rx.try_recv(), Ok(Err(ProposeError::Stopped)));
        let (later, _rx) = submission(2);
        assert!(matches!(
            submissions.push(later),
            Err(ProposeError::Stopped)
        ));
    }

    /// A proposal of `len` bytes to group 1.
    fn sized(len: usize) -> Submission {
        let (mut s, _rx) = submission(1);
        s.command = Bytes::from(vec![7u8; len]);
        s
    }

    /// The queue's bytes are bounded by `max_api_queue_bytes`, by `propose` and
    /// `propose_many`'s calls together: past it a proposal is refused `Busy` at once,
    /// taking frees the room, an empty queue takes one of any allowed size, and a command
    /// over `max_proposal_bytes` is refused `TooLarge` before it queues.
    #[test]
    fn queued_bytes_are_bounded_and_freed_when_taken() {
        // Room for 100 bytes of payload in two commands, each counted with its handle.
        const O: usize = crate::COMMAND_OVERHEAD_BYTES;
        let config = Config {
            max_api_queue_bytes: 100 + 2 * O,
            max_proposal_bytes: 100,
            ..Config::default()
        };
        let submissions = Arc::new(Submissions::new(&config, ProposalCounters::default()));
        let busy = Some(ProposeError::Busy {
            limit: "max_api_queue_bytes",
        });
        submissions.push(sized(60)).unwrap();
        assert_eq!(submissions.push(sized(60)).err(), busy);
        submissions.push(sized(40)).unwrap();
        assert_eq!(submissions.push(sized(1)).err(), busy);
        let mut taken = Vec::new();
        submissions.take_into(1, &mut taken);
        submissions.push(sized(50)).unwrap();
        let held = Held::hold(submissions.queued_bytes(), 20);
        assert!(
            held.is_none(),
            "90 bytes and two handles queued: 20 more pass"
        );
        submissions.take_into(8, &mut taken);
        assert_eq!(taken.len(), 3);
        let held = Held::hold(submissions.queued_bytes(), 100 + 2 * O).unwrap();
        assert_eq!(submissions.push(sized(1)).err(), busy);
        drop(held);
        submissions.push(sized(100)).unwrap();
        let too_large = Some(ProposeError::TooLarge { max: 100 });
        assert_eq!(submissions.push(sized(101)).err(), too_large);
        submissions.take_into(8, &mut taken);
        assert_eq!(taken.len(), 4, "the refused ones were never queued");
        assert_eq!(submissions.queued_bytes().held(), 0);
        // An empty queue takes any one call, however large: it could never pass otherwise.
        drop(Held::hold(submissions.queued_bytes(), 1_000).unwrap());
    }

    /// Empty commands count their handles (`COMMAND_OVERHEAD_BYTES`): a byte limit of ten
    /// handles queues ten and refuses the eleventh. Regression (review): counting payloads
    /// alone, empty commands passed any byte limit.
    #[test]
    fn empty_commands_count_their_handles() {
        let config = Config {
            max_api_queue_bytes: 10 * crate::COMMAND_OVERHEAD_BYTES,
            ..Config::default()
        };
        let submissions = Arc::new(Submissions::new(&config, ProposalCounters::default()));
        for _ in 0..10 {
            submissions.push(sized(0)).unwrap();
        }
        let busy = Some(ProposeError::Busy {
            limit: "max_api_queue_bytes",
        });
        assert_eq!(submissions.push(sized(0)).err(), busy);
        let mut taken = Vec::new();
        submissions.take_into(10, &mut taken);
        assert_eq!(submissions.queued_bytes().held(), 0, "all released");
    }

    /// Under an admission cap, a proposal that would take the queue and the node's pending
    /// proposals to the cap is refused at push, before it waits in the queue.
    #[test]
    fn a_proposal_past_the_admission_cap_is_refused_before_it_queues() {
        let submissions = queue(8);
        submissions.publish_load(2, Some(3));
        let (first, _rx) = submission(1);
        submissions.push(first).unwrap();
        let (second, _rx) = submission(1);
        let busy = ProposeError::Busy {
            limit: "max_commit_wait_ticks",
        };
        assert_eq!(submissions.push(second).err(), Some(busy));
        submissions.publish_load(2, None);
        let (third, _rx) = submission(1);
        submissions.push(third).unwrap();
    }

    /// A proposal's wait counts from the tick published when it was queued, not from when
    /// the loop took it: one that waited four ticks in the queue of a loop running behind,
    /// then applied at once, overloads a node with a limit of three (it then holds at most
    /// three); one that waited two does not.
    #[test]
    fn a_proposal_waits_from_the_tick_it_was_queued_at() {
        let config = crate::Config {
            max_commit_wait_ticks: 3,
            ..crate::Config::default()
        };
        let mut node = Node::new(crate::NodeId(1), config, 7).unwrap();
        node.create_group(GroupId(1), crate::Membership::voters([1]))
            .unwrap();
        node.campaign(GroupId(1)).unwrap();
        crate::testing::settle(&mut node, &mut crate::testing::Recorder::default()).unwrap();
        let submissions = Arc::new(queue(16));
        let mut taker = Taker::new(Arc::clone(&submissions));
        let mut replies = Replies::new(node.metrics().commit_latency.clone());
        let mut loop_ = (&mut node, &mut taker, &mut replies);

        // Queues one, lets `ticks` pass before the loop takes it, applies it, and ticks.
        fn queue_for(l: &mut (&mut Node, &mut Taker, &mut Replies), ticks: u32) {
            l.1.publish(l.0);
            let (queued, _rx) = submission(1);
            l.1.push(queued).unwrap();
            for _ in 0..ticks {
                l.0.tick();
            }
            l.1.publish(l.0);
            l.1.take(16, l.0, l.2);
            crate::testing::settle(l.0, &mut crate::testing::Recorder::default()).unwrap();
            l.0.tick();
        }
        // Proposes `count` through the queue; returns how many were refused `Busy`.
        fn refused(l: &mut (&mut Node, &mut Taker, &mut Replies), count: usize) -> usize {
            let mut answers = Vec::new();
            for _ in 0..count {
                let (s, rx) = submission(1);
                l.1.push(s).unwrap();
                answers.push(rx);
            }
            l.1.take(16, l.0, l.2);
            let busy = Ok(Err(ProposeError::Busy {
                limit: "max_commit_wait_ticks",
            }));
            answers
                .iter_mut()
                .map(|rx| rx.try_recv())
                .filter(|r| *r == busy)
                .count()
        }

        queue_for(&mut loop_, 4);
        assert_eq!(refused(&mut loop_, 4), 1);
        crate::testing::settle(loop_.0, &mut crate::testing::Recorder::default()).unwrap();
        loop_.0.tick(); // the three applied, one refused: still overloaded
        loop_.0.tick(); // nothing applied: the overload ends

        queue_for(&mut loop_, 2);
        assert_eq!(refused(&mut loop_, 10), 0);
    }
}
