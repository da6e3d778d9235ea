//! One backoff and retry policy for every loop that waits and tries again.

use std::time::{Duration, Instant};

/// How a loop waits between attempts: exponential delays from `initial` up to `max`,
/// optionally with full jitter, within an optional budget of attempts and of total time.
///
/// It is the policy of every retrying loop in the family — polling watches, optimistic
/// compare-and-swap loops, reconnects, retry layers — so each is tuned the same way.
/// [`start`](Self::start) begins one loop's [`Retries`].
///
/// With `jitter`, each pause is drawn uniformly from `0..=delay` ("full jitter"), so
/// contenders that conflicted at the same moment spread out instead of retrying in
/// lock step.
///
/// ```
/// use std::time::Duration;
/// use store_core::Backoff;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let policy = Backoff::new(Duration::from_millis(1), Duration::from_millis(4)).with_max_attempts(3);
/// let mut retries = policy.start();
/// let mut attempts = 0;
/// loop {
///     attempts += 1;                    // try the operation here; on a retryable failure:
///     if !retries.wait().await {        // sleeps 1 ms, then 2 ms, then gives up
///         break;
///     }
/// }
/// assert_eq!(attempts, 3);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Each delay is the previous one times this (taken as at least 1).
    pub factor: f64,
    /// Whether each pause is drawn uniformly from `0..=delay` (full jitter).
    pub jitter: bool,
    /// Attempts in all, the first included, before [`Retries`] gives up (`None`: no limit).
    pub max_attempts: Option<u32>,
    /// Time since [`start`](Self::start) after which [`Retries`] gives up (`None`: no
    /// limit). A pause is cut short so that it never ends past this budget.
    pub max_elapsed: Option<Duration>,
}

impl Default for Backoff {
    /// 5 ms, doubling, up to 1 s, no jitter, no budget: a polling watch sees a change
    /// within about one second at worst.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(5), Duration::from_secs(1))
    }
}

impl Backoff {
    /// Delays from `initial` doubling up to `max` (at least `initial`), no jitter, no budget.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            factor: 2.0,
            jitter: false,
            max_attempts: None,
            max_elapsed: None,
        }
    }

    /// Sets the growth factor (taken as at least 1).
    pub fn with_factor(mut self, factor: f64) -> Backoff {
        self.factor = factor;
        self
    }

    /// Turns full jitter on or off.
    pub fn with_jitter(mut self, jitter: bool) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// Limits the attempts, the first included (0 is taken as 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Backoff {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// Limits the total time from the first attempt.
    pub fn with_max_elapsed(mut self, budget: Duration) -> Backoff {
        self.max_elapsed = Some(budget);
        self
    }

    /// The delay after `delay`, without jitter.
    pub fn next(&self, delay: Duration) -> Duration {
        // `mul_f64` panics past `Duration::MAX` (a huge or infinite factor): saturate.
        Duration::try_from_secs_f64(delay.as_secs_f64() * self.factor.max(1.0))
            .map_or(self.max, |next| next.min(self.max))
    }

    /// Starts one loop's attempts; the first attempt is under way.
    pub fn start(&self) -> Retries {
        Retries {
            policy: *self,
            attempts: 1,
            delay: self.initial,
            started: Instant::now(),
        }
    }
}

/// The attempts of one retrying loop under a [`Backoff`].
#[derive(Debug, Clone)]
pub struct Retries {
    policy: Backoff,
    attempts: u32,
    delay: Duration,
    started: Instant,
}

impl Retries {
    /// Attempts made so far (the first included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time since the loop started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The pause before the next attempt, counting that attempt, or `None` when the budget
    /// is spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.policy.max_attempts.is_some_and(|max| self.attempts >= max) {
            return None;
        }
        let mut pause = self.delay;
        if self.policy.jitter {
            let nanos = u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX);
            pause = Duration::from_nanos(fastrand::u64(0..=nanos));
        }
        if let Some(budget) = self.policy.max_elapsed {
            let left = budget.checked_sub(self.started.elapsed())?;
            pause = pause.min(left);
        }
        self.delay = self.policy.next(self.delay);
        // Saturating: a loop without a budget (a watch's poll) may run for months.
        self.attempts = self.attempts.saturating_add(1);
        Some(pause)
    }

    /// Sleeps the pause before the next attempt and returns `true`, or returns `false` at
    /// once when the budget is spent. A zero pause yields to the runtime instead. Needs a
    /// tokio runtime (for its timer).
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(pause) if pause.is_zero() => {
                tokio::task::yield_now().await;
                true
            }
            Some(pause) => {
                tokio::time::sleep(pause).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_their_cap() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(35));
        assert_eq!(b.next(b.initial), Duration::from_millis(20));
        assert_eq!(b.next(Duration::from_millis(20)), Duration::from_millis(35));
        let flat = b.with_factor(0.5);
        assert_eq!(flat.next(Duration::from_millis(10)), Duration::from_millis(10));
        let wild = b.with_factor(f64::INFINITY);
        assert_eq!(wild.next(Duration::from_millis(10)), Duration::from_millis(35));
        let nan = b.with_factor(f64::NAN);
        assert_eq!(
            nan.next(Duration::from_millis(10)),
            Duration::from_millis(10),
            "NaN is taken as 1"
        );
        let mut r = b.start();
        let pauses: Vec<_> = (0..4).map_while(|_| r.next_delay()).collect();
        assert_eq!(pauses, [10, 20, 35, 35].map(Duration::from_millis));
        assert_eq!(r.attempts(), 5);
    }

    #[test]
    fn attempts_budget_counts_the_first() {
        let mut r = Backoff::new(Duration::ZERO, Duration::ZERO)
            .with_max_attempts(3)
            .start();
        assert!(r.next_delay().is_some());
        assert!(r.next_delay().is_some());
        assert_eq!(r.next_delay(), None, "three attempts made");
        assert_eq!(r.attempts(), 3);
        let mut once = Backoff::default().with_max_attempts(0).start();
        assert_eq!(once.next_delay(), None, "0 attempts is taken as 1");
    }

    #[test]
    fn a_loop_without_a_budget_never_runs_out_of_attempts() {
        let mut r = Backoff::default().start();
        r.attempts = u32::MAX - 1;
        for _ in 0..3 {
            assert!(r.next_delay().is_some());
        }
        assert_eq!(r.attempts(), u32::MAX);
    }

    #[test]
    fn jitter_stays_within_the_delay() {
        let b = Backoff::new(Duration::from_millis(8), Duration::from_millis(8)).with_jitter(true);
        let mut r = b.start();
        let mut seen_less = false;
        for _ in 0..200 {
            let d = r.next_delay().unwrap();
            assert!(d <= Duration::from_millis(8));
            seen_less |= d < Duration::from_millis(8);
        }
        assert!(seen_less, "jitter drew something below the delay");
    }

    #[test]
    fn time_budget_cuts_the_last_pause_and_then_stops() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10))
            .with_max_elapsed(Duration::from_millis(50));
        let mut r = b.start();
        let first = r.next_delay().unwrap();
        assert!(first <= Duration::from_millis(50), "{first:?}");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(r.next_delay(), None);
    }
}
