//! [`ManualClock`]: time that moves only when a test moves it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiraft_core::Clock;
use tokio::sync::watch;

/// A [`Clock`] whose time moves only when [`advance_by`](ManualClock::advance_by) or
/// [`set`](ManualClock::set) is called.
///
/// Starts at zero. Cloning is cheap and every clone shares the same time, so a test keeps
/// one handle and gives clones to the nodes it drives. Time never goes backwards:
/// `set` to an earlier time is ignored.
///
/// Every [`sleep_until`](Clock::sleep_until) whose deadline is reached is woken by the call
/// that moves time past it, and no other: nothing here looks at the real clock, so a test
/// using it needs no real sleeps and no paused tokio runtime.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<Duration>>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        ManualClock {
            now: Arc::new(watch::Sender::new(Duration::ZERO)),
        }
    }

    /// Moves time forward by `by` (saturating at [`Duration::MAX`]) and wakes every sleeper
    /// whose deadline is now reached. Returns the new time.
    pub fn advance_by(&self, by: Duration) -> Duration {
        let mut now = Duration::ZERO;
        self.now.send_if_modified(|t| {
            *t = t.saturating_add(by);
            now = *t;
            !by.is_zero()
        });
        now
    }

    /// Moves time to `to` if that is later than now, waking every sleeper whose deadline is
    /// reached; an earlier `to` is ignored. Returns the new time.
    pub fn set(&self, to: Duration) -> Duration {
        let mut now = Duration::ZERO;
        self.now.send_if_modified(|t| {
            let later = to > *t;
            if later {
                *t = to;
            }
            now = *t;
            later
        });
        now
    }

    /// How many calls to [`sleep_until`](Clock::sleep_until) exist and have not returned:
    /// those waiting, and those whose deadline a move of time reached that have not run
    /// since. It does not say a driver is idle: a node's event loop keeps the sleep for its
    /// next tick across its turns, so the count stays one while the loop works (review: the
    /// doc said a test could wait for it to know the driver slept). To know a node took
    /// what time brought, wait on what it did (a status call) with a bounded timeout.
    pub fn sleeper_count(&self) -> usize {
        self.now.receiver_count()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline: Duration) {
        let mut rx = self.now.subscribe();
        // The sender lives as long as `self`, which this future borrows, so `wait_for` cannot
        // see it closed.
        let _ = rx.wait_for(|now| *now >= deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    const BOUND: Duration = Duration::from_secs(5);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn starts_at_zero_and_never_goes_back() {
        let clock = ManualClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        assert_eq!(clock.advance_by(10 * MS), 10 * MS);
        assert_eq!(clock.set(5 * MS), 10 * MS, "set to the past is ignored");
        assert_eq!(clock.set(20 * MS), 20 * MS);
        assert_eq!(clock.clone().now(), 20 * MS, "clones share the time");
        assert_eq!(
            clock.advance_by(Duration::MAX),
            Duration::MAX,
            "advance saturates"
        );
    }

    #[tokio::test]
    async fn deadline_already_reached_returns_at_once() {
        let clock = ManualClock::new();
        clock.advance_by(10 * MS);
        timeout(BOUND, clock.sleep_until(10 * MS))
            .await
            .expect("deadline in the past must not wait");
        timeout(BOUND, clock.sleep_until(Duration::ZERO))
            .await
            .expect("deadline zero must not wait");
    }

    /// `Clock` contract: `sleep_until` returns once `now() >= deadline`, never earlier.
    #[tokio::test]
    async fn sleep_wakes_only_after_advance_reaches_deadline() {
        let clock = ManualClock::new();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep_until(100 * MS).await;
                clock.now()
            })
        };
        // Wait (yielding, not sleeping) until the task is parked in `sleep_until`.
        timeout(BOUND, async {
            while clock.sleeper_count() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("sleeper never started");

        clock.advance_by(99 * MS);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!sleeper.is_finished(), "woke before its deadline");

        clock.advance_by(MS);
        let woke_at = timeout(BOUND, sleeper)
            .await
            .expect("not woken by advance")
            .unwrap();
        assert!(woke_at >= 100 * MS);
        assert_eq!(clock.sleeper_count(), 0);
    }

    #[tokio::test]
    async fn one_advance_wakes_every_passed_deadline_and_only_those() {
        let clock = ManualClock::new();
        let spawn = |deadline| {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(deadline).await })
        };
        let early = spawn(10 * MS);
        let middle = spawn(20 * MS);
        let late = spawn(30 * MS);
        timeout(BOUND, async {
            while clock.sleeper_count() < 3 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("sleepers never started");

        clock.set(25 * MS);
        timeout(BOUND, early).await.expect("early").unwrap();
        timeout(BOUND, middle).await.expect("middle").unwrap();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!late.is_finished());
        clock.advance_by(5 * MS);
        timeout(BOUND, late).await.expect("late").unwrap();
    }
}
