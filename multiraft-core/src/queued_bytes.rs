//! The bytes of commands queued for the event loop and not yet taken
//! (`Config::max_api_queue_bytes`), counted alike for `propose`'s queue
//! ([`Submissions`](crate::submit::Submissions)) and `propose_many`'s calls ([`Held`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The count, and its limit.
#[derive(Debug)]
pub(crate) struct QueuedBytes {
    held: AtomicUsize,
    limit: usize,
}

impl QueuedBytes {
    pub(crate) fn new(limit: usize) -> QueuedBytes {
        QueuedBytes {
            held: AtomicUsize::new(0),
            limit,
        }
    }

    /// `Config::max_api_queue_bytes`.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Counts `bytes` more, unless that would pass the limit with some already counted:
    /// an empty queue takes any command `max_proposal_bytes` allows (or any one call's
    /// commands), so a large one is never refused for good.
    pub(crate) fn hold(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                (held == 0 || held.saturating_add(bytes) <= self.limit)
                    .then(|| held.saturating_add(bytes))
            })
            .is_ok()
    }

    /// `bytes` counted by [`QueuedBytes::hold`] left the queue: taken by the loop, or
    /// refused.
    pub(crate) fn release(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The bytes counted now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes of one `propose_many` call's commands, counted while the call waits for the loop
/// and released when it is dropped: taken, refused, or lost with the loop.
#[derive(Debug)]
pub(crate) struct Held {
    queued: Arc<QueuedBytes>,
    bytes: usize,
}

impl Held {
    /// Counts `bytes` on `queued`, or `None` when the limit refuses them.
    pub(crate) fn hold(queued: &Arc<QueuedBytes>, bytes: usize) -> Option<Held> {
        queued.hold(bytes).then(|| Held {
            queued: Arc::clone(queued),
            bytes,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.queued.release(self.bytes);
    }
}
