//! The bytes of commands queued for the event loop and not yet taken
//! (`Config::max_api_queue_bytes`), counted alike for `propose`'s queue
//! ([`Submissions`](crate::submit::Submissions)) and `propose_many`'s calls ([`Held`]).
//!
//! The count is kept under the submission queue's lock, beside the queue, rather than in
//! an atomic of its own: every `propose` takes that lock anyway, and an atomic counter was
//! one more line that the clients of both cores and the loop each wrote at every proposal
//! (BENCHMARKS.md, "The queue's byte count under its lock").

use std::sync::Arc;

/// What a queued command counts besides its payload: its `Bytes` handle (32 bytes), its
/// place in the queue or the call, and the slot of its answer. Counted so that the limit
/// bounds commands that carry nothing: counting payloads alone, empty commands in
/// `propose_many`'s calls (`Config::max_api_queue` calls of
/// [`MAX_COMMANDS_PER_CALL`](crate::MAX_COMMANDS_PER_CALL)) could hold about 2 GiB of
/// handles under a limit of 64 MiB (review). At 64 bytes each, the default 64 MiB holds a
/// million empty commands.
pub const COMMAND_OVERHEAD_BYTES: usize = 64;

/// The bytes a queued command counts for: its payload and [`COMMAND_OVERHEAD_BYTES`].
pub(crate) fn queued_size(command: &bytes::Bytes) -> usize {
    command.len().saturating_add(COMMAND_OVERHEAD_BYTES)
}

/// The count, and its limit. Not shared by itself: it lives under the lock of the queue
/// it counts for.
#[derive(Debug)]
pub(crate) struct QueuedBytes {
    held: usize,
    limit: usize,
}

impl QueuedBytes {
    pub(crate) fn new(limit: usize) -> QueuedBytes {
        QueuedBytes { held: 0, limit }
    }

    /// `Config::max_api_queue_bytes`.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Counts `bytes` more, unless that would pass the limit with some already counted:
    /// an empty queue takes any command `max_proposal_bytes` allows (or any one call's
    /// commands), so a large one is never refused for good.
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        let fits = self.held == 0 || self.held.saturating_add(bytes) <= self.limit;
        if fits {
            self.held = self.held.saturating_add(bytes);
        }
        fits
    }

    /// `bytes` counted by [`QueuedBytes::hold`] left the queue: taken by the loop, or
    /// refused.
    pub(crate) fn release(&mut self, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
    }

    /// The bytes counted now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

/// What holds a count of queued bytes ([`Held`] gives its bytes back to it).
pub(crate) trait Release: Send + Sync {
    /// `bytes` counted earlier left the queue.
    fn release(&self, bytes: usize);
}

/// Bytes of one `propose_many` call's commands, counted while the call waits for the loop
/// and released when it is dropped: taken, refused, or lost with the loop.
pub(crate) struct Held {
    queue: Arc<dyn Release>,
    bytes: usize,
}

impl Held {
    /// `bytes` already counted on `queue`, to give back when dropped.
    pub(crate) fn new(queue: Arc<dyn Release>, bytes: usize) -> Held {
        Held { queue, bytes }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.queue.release(self.bytes);
    }
}
