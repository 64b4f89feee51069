//! The queue proposals cross on from the API to the event loop ([`Submissions`]): one lock
//! and one push per proposal, one wake of the loop per batch, and the loop takes a batch
//! per lock rather than one channel message per proposal (docs/design.md §5).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::call::{ProposeReply, Replies};
use crate::error::ProposeError;
use crate::ids::GroupId;
use crate::metrics::ProposalCounters;
use crate::node::Node;

/// One proposal on its way to the event loop.
pub(crate) struct Submission {
    pub(crate) group: GroupId,
    pub(crate) command: Bytes,
    pub(crate) reply: ProposeReply,
}

/// Proposals submitted and not yet taken by the event loop, shared by every handle of a
/// node and its loop.
pub(crate) struct Submissions {
    queue: Mutex<Queue>,
    /// Wakes the loop when the queue turns non-empty, or when a batch taken left more.
    /// `Notify` keeps one permit, so a wake sent while the loop is busy is not lost.
    wake: Notify,
    /// At most this many wait (`Config::max_api_queue`): a proposal beyond it is refused
    /// with `Busy` at once, rather than queued behind work the loop cannot keep up with.
    limit: usize,
    /// The node's proposal outcomes: a refusal here is one too.
    counters: ProposalCounters,
}

struct Queue {
    waiting: VecDeque<Submission>,
    /// The loop stopped: nothing is taken again.
    closed: bool,
}

impl Submissions {
    pub(crate) fn new(limit: usize, counters: ProposalCounters) -> Submissions {
        Submissions {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                closed: false,
            }),
            wake: Notify::new(),
            limit,
            counters,
        }
    }

    /// A poisoned lock only means another thread panicked while holding it; every update
    /// here is a single push or drain, so the queue is whole either way.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `submission` for the loop, or says why not: `Busy` when `limit` proposals
    /// already wait, `Stopped` when the loop has stopped. Either refusal is definite.
    pub(crate) fn push(&self, submission: Submission) -> Result<(), ProposeError> {
        let mut queue = self.lock();
        if queue.closed || queue.waiting.len() >= self.limit {
            let refused = if queue.closed {
                ProposeError::Stopped
            } else {
                ProposeError::Busy {
                    limit: "max_api_queue",
                }
            };
            drop(queue);
            self.counters.refused(&refused);
            return Err(refused);
        }
        let first = queue.waiting.is_empty();
        queue.waiting.push_back(submission);
        drop(queue);
        // Only the first of a batch wakes the loop: the loop takes the rest with it.
        if first {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Moves up to `max` waiting proposals, oldest first, onto `into`. When more are
    /// left, the loop is woken again for them, so a flood is taken in bounded batches
    /// between the loop's other work.
    fn take_into(&self, max: usize, into: &mut Vec<Submission>) {
        let mut queue = self.lock();
        let count = queue.waiting.len().min(max);
        into.extend(queue.waiting.drain(..count));
        let more = !queue.waiting.is_empty();
        drop(queue);
        if more {
            self.wake.notify_one();
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
        } in self.taken.drain(..)
        {
            match node.propose(group, command) {
                Ok(request) => replies.wait_proposal(request, reply),
                Err(e) => drop(reply.send(Err(e))),
            }
        }
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
        };
        (submission, rx)
    }

    /// A proposal the loop never took is refused with `Stopped` when the loop's end goes,
    /// however the loop ended (an aborted loop never calls `refuse_waiting` itself), and so
    /// is every later one.
    #[test]
    fn proposals_left_waiting_by_a_loop_that_died_are_refused_as_stopped() {
        let submissions = Arc::new(Submissions::new(8, ProposalCounters::default()));
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
}
