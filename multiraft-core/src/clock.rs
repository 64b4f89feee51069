//! Time as an input: the driver asks a [`Clock`] when to tick.

use std::time::Duration;

use async_trait::async_trait;

/// A monotonic clock the driver ticks by.
///
/// # To ensure correctness
///
/// `now` never goes backwards. `sleep_until` returns once `now() >= deadline` (it may return
/// later, never earlier). Raft's safety does not depend on clocks; liveness does, so a clock
/// that runs far slow delays elections, and one that runs far fast causes needless ones.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// Time since an arbitrary fixed origin.
    fn now(&self) -> Duration;

    /// Waits until `now() >= deadline`.
    async fn sleep_until(&self, deadline: Duration);
}

/// The real clock, on tokio's timer.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn sleep_until(&self, deadline: Duration) {
        tokio::time::sleep_until(self.origin + deadline).await
    }
}
