//! How optimistic loops retry: the family's [`Backoff`], with full jitter and a bound on
//! attempts.

use std::time::Duration;

use store_core::{Backoff, Error, Result, Retries};

/// Bounds every optimistic loop of a [`Group`](crate::Group): `operate*`, `transaction`,
/// and the internal retries of a writer whose manifest switch lost to an update of another
/// name.
///
/// After the `n`-th conflict the loop sleeps a random time in
/// `0..=min(max_backoff, initial_backoff × 2ⁿ⁻¹)` ("full jitter": contenders spread out
/// instead of retrying in lock step). After `max_attempts` conflicting attempts it gives up
/// with [`Error::Contention`]. It is the configuration of a [`store_core::Backoff`]
/// ([`RetryPolicy::backoff`]), the retry policy of every crate of the family.
///
/// ```
/// use std::time::Duration;
/// use store_consistent::RetryPolicy;
///
/// let patient = RetryPolicy::default()
///     .with_max_attempts(1_000)
///     .with_backoff(Duration::from_micros(100), Duration::from_millis(50));
/// assert_eq!(patient.max_attempts, 1_000);
/// assert_eq!(patient.backoff().max_attempts, Some(1_000));
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

    /// This policy as a [`Backoff`]: delays doubling from `initial_backoff` to
    /// `max_backoff`, full jitter, `max_attempts` attempts.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.initial_backoff, self.max_backoff)
            .with_jitter(true)
            .with_max_attempts(self.max_attempts)
    }

    /// The attempts of one optimistic loop; the first is under way.
    pub(crate) fn start(&self) -> Retries {
        self.backoff().start()
    }
}

/// After a conflicting attempt of a loop under `policy`: sleeps the jittered backoff before
/// the next one, or fails with [`Error::Contention`] naming `op` and `key` when the
/// attempts are used up. `retries` is the loop's [`Retries`], started at its first conflict
/// (so that an uncontended loop does not read the clock).
pub(crate) async fn conflicted(
    retries: &mut Option<Retries>,
    policy: &RetryPolicy,
    op: &'static str,
    key: &str,
) -> Result<()> {
    let retries = retries.get_or_insert_with(|| policy.start());
    if retries.wait().await {
        return Ok(());
    }
    Err(Error::Contention {
        op,
        key: key.to_owned(),
        attempts: retries.attempts(),
    })
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
    fn the_policy_is_a_jittered_bounded_backoff() {
        let p = RetryPolicy::default().with_backoff(Duration::from_millis(2), Duration::from_millis(10));
        let b = p.backoff();
        assert_eq!(
            (b.initial, b.max, b.jitter),
            (p.initial_backoff, p.max_backoff, true)
        );
        assert_eq!(b.max_attempts, Some(100));
        assert_eq!(RetryPolicy::default().with_max_attempts(0).max_attempts, 1);
    }

    #[tokio::test]
    async fn exhaustion_is_contention() {
        let policy = RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::ZERO, Duration::ZERO);
        let mut a = None;
        conflicted(&mut a, &policy, "operate", "g/x").await.unwrap();
        conflicted(&mut a, &policy, "operate", "g/x").await.unwrap();
        let e = conflicted(&mut a, &policy, "operate", "g/x").await.unwrap_err();
        assert!(matches!(e, Error::Contention { attempts: 3, .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "operate \"g/x\": gave up after 3 conflicting attempts"
        );
    }
}
