//! How optimistic loops retry: bounded attempts, exponential backoff with full jitter.

use std::time::Duration;

use store_core::{Error, Result};

/// Bounds every optimistic loop of a [`Group`](crate::Group): `operate*`, `transaction`,
/// and the internal retries of a writer whose manifest switch lost to an update of another
/// name.
///
/// After the `n`-th conflict the loop sleeps a random time in
/// `0..=min(max_backoff, initial_backoff × 2ⁿ⁻¹)` ("full jitter": contenders spread out
/// instead of retrying in lock step). After `max_attempts` conflicting attempts it gives up
/// with [`Error::Contention`].
///
/// ```
/// use std::time::Duration;
/// use store_consistent::RetryPolicy;
///
/// let patient = RetryPolicy::default()
///     .with_max_attempts(1_000)
///     .with_backoff(Duration::from_micros(100), Duration::from_millis(50));
/// assert_eq!(patient.max_attempts, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up with [`Error::Contention`] (at least 1).
    pub max_attempts: u32,
    /// The backoff cap after the first conflict.
    pub initial_backoff: Duration,
    /// The largest backoff cap.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 100 attempts, backoff from 1 ms doubling up to 100 ms.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    /// Sets the number of attempts (0 is taken as 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first and the largest backoff cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The backoff cap after `conflicts` conflicts (≥ 1).
    pub(crate) fn cap(&self, conflicts: u32) -> Duration {
        let doublings = conflicts.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }

    /// A fresh attempt counter.
    pub(crate) fn start(&self) -> Attempts {
        Attempts {
            policy: *self,
            conflicts: 0,
        }
    }
}

/// The attempts of one optimistic loop.
#[derive(Debug)]
pub(crate) struct Attempts {
    policy: RetryPolicy,
    conflicts: u32,
}

impl Attempts {
    /// Records a conflict: sleeps a jittered backoff, or fails with [`Error::Contention`]
    /// naming `op` and `key` when the attempts are used up.
    pub(crate) async fn conflicted(&mut self, op: &'static str, key: &str) -> Result<()> {
        self.count(op, key)?;
        let cap = self.policy.cap(self.conflicts);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        let pause = Duration::from_nanos(fastrand::u64(0..=nanos));
        if pause.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// Counts a conflict, or fails with [`Error::Contention`] when the attempts are used
    /// up. Apart from the pause: that keeps `conflicted`, whose state every optimistic
    /// loop's future carries, small (measurably faster `operate`).
    fn count(&mut self, op: &'static str, key: &str) -> Result<()> {
        self.conflicts += 1;
        if self.conflicts >= self.policy.max_attempts.max(1) {
            return Err(Error::Contention {
                op,
                key: key.to_owned(),
                attempts: self.conflicts,
            });
        }
        Ok(())
    }
}

/// Whether a conditional write failed because another writer got there first (the
/// version it expected was replaced, was created meanwhile, or is gone): a lost race, to
/// be retried, as opposed to a failure.
pub(crate) fn lost_race(e: &Error) -> bool {
    e.is_conflict() || e.is_already_exists() || e.is_not_found()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_double_up_to_the_maximum() {
        let p = RetryPolicy::default().with_backoff(Duration::from_millis(2), Duration::from_millis(10));
        assert_eq!(p.cap(1), Duration::from_millis(2));
        assert_eq!(p.cap(2), Duration::from_millis(4));
        assert_eq!(p.cap(3), Duration::from_millis(8));
        assert_eq!(p.cap(4), Duration::from_millis(10));
        assert_eq!(p.cap(u32::MAX), Duration::from_millis(10));
        assert_eq!(RetryPolicy::default().with_max_attempts(0).max_attempts, 1);
    }

    #[tokio::test]
    async fn exhaustion_is_contention() {
        let mut a = RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::ZERO, Duration::ZERO)
            .start();
        a.conflicted("operate", "g/x").await.unwrap();
        a.conflicted("operate", "g/x").await.unwrap();
        let e = a.conflicted("operate", "g/x").await.unwrap_err();
        assert!(matches!(e, Error::Contention { attempts: 3, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "operate \"g/x\": gave up after 3 conflicting attempts"
        );
    }
}
