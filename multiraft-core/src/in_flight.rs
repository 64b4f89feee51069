//! A ready whose write is in flight: the storage call the driver started off the loop, the
//! rest of the ready for when the call is durable, and the times that measure both
//! ([`crate::metrics::STORAGE_WRITE_SECONDS`], [`crate::metrics::READY_SECONDS`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::clock::Clock;
use crate::error::StorageError;
use crate::metrics::NodeMetrics;
use crate::node::Ready;
use crate::storage::Storage;

type WriteFuture = Pin<Box<dyn Future<Output = Result<(), StorageError>> + Send>>;

/// A ready whose write is in flight: what to do once it is durable.
pub(crate) struct InFlight {
    /// The storage call and when it began; none if the ready had nothing to write.
    write: Option<(WriteFuture, Duration)>,
    /// The rest of the ready (its write taken out).
    ready: Ready,
    /// When the ready was taken.
    started: Duration,
}

impl InFlight {
    /// Starts `ready`'s write on `storage` (none if it has nothing to write; `ready` was
    /// taken at `started`), and polls it once: a write that completes at once (nothing to
    /// write, or a storage that finishes without waiting) comes back done, which saves the
    /// loop a pass through its select.
    pub(crate) fn start(
        mut ready: Ready,
        started: Duration,
        storage: &Arc<dyn Storage>,
        clock: &dyn Clock,
    ) -> (InFlight, Poll<Result<(), StorageError>>) {
        let (write, done) = if ready.write.is_empty() {
            (None, Poll::Ready(Ok(())))
        } else {
            let (storage, batch) = (Arc::clone(storage), std::mem::take(&mut ready.write));
            let mut write: WriteFuture = Box::pin(async move { storage.write(batch).await });
            let began = clock.now();
            let done = write.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            (Some((write, began)), done)
        };
        let in_flight = InFlight {
            write,
            ready,
            started,
        };
        (in_flight, done)
    }

    /// The write is durable: records how long it took, to the moment the loop saw it end,
    /// and gives back the rest of the ready and when it was taken.
    pub(crate) fn durable(self, clock: &dyn Clock, metrics: &NodeMetrics) -> (Ready, Duration) {
        if let Some((_, began)) = self.write {
            let seconds = clock.now().saturating_sub(began).as_secs_f64();
            metrics.write_seconds.record(seconds);
        }
        (self.ready, self.started)
    }
}

/// Completes when the in-flight write does (at once if the ready had nothing to write);
/// pending forever when no write is in flight.
pub(crate) async fn poll_write(in_flight: &mut Option<InFlight>) -> Result<(), StorageError> {
    match in_flight {
        Some(InFlight {
            write: Some((write, _)),
            ..
        }) => write.as_mut().await,
        Some(InFlight { write: None, .. }) => Ok(()),
        None => std::future::pending().await,
    }
}
