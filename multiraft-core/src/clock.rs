//! Time as an input: the driver asks a [`Clock`] when to tick.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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

/// A sleep until `deadline` that owns its clock, so it outlives the borrow.
pub(crate) fn sleep(clock: &Arc<dyn Clock>, deadline: Duration) -> Sleep {
    let clock = Arc::clone(clock);
    Box::pin(async move { clock.sleep_until(deadline).await })
}

/// A boxed [`Clock::sleep_until`].
pub(crate) type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// For a tick due at `due` and served at `now` (no earlier), with ticks every `interval`:
/// how many later ticks are also past due (a stall skipped them), and when the next one is
/// due, on the grid of the earlier ones.
pub(crate) fn late_ticks(due: Duration, now: Duration, interval: Duration) -> (u64, Duration) {
    let missed = now.saturating_sub(due).as_nanos() / interval.as_nanos().max(1);
    let missed = u32::try_from(missed).unwrap_or(u32::MAX - 1);
    let next = (interval.checked_mul(missed + 1))
        .and_then(|d| due.checked_add(d))
        .unwrap_or(now + interval);
    (u64::from(missed), next)
}

/// If the tick due at `next` is due at `now`: how many later ticks a stall skipped
/// ([`late_ticks`]), with `next` moved on to the tick due after them.
pub(crate) fn take_due_tick(next: &mut Duration, now: Duration, interval: Duration) -> Option<u64> {
    if now < *next {
        return None;
    }
    let (missed, after) = late_ticks(*next, now, interval);
    *next = after;
    Some(missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_tick_counts_the_ticks_it_skipped_and_keeps_the_grid() {
        let ms = Duration::from_millis;
        // On time, and late by less than a tick: nothing skipped.
        assert_eq!(late_ticks(ms(100), ms(100), ms(10)), (0, ms(110)));
        assert_eq!(late_ticks(ms(100), ms(109), ms(10)), (0, ms(110)));
        // A stall of 35 ms past the tick due at 100: those due at 110, 120, 130 are
        // skipped, and the next is due at 140, not 145.
        assert_eq!(late_ticks(ms(100), ms(135), ms(10)), (3, ms(140)));
        assert_eq!(late_ticks(ms(100), ms(140), ms(10)), (4, ms(150)));
    }
}
