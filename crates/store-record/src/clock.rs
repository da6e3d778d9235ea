//! Where `Records` gets the time that decides whether a record has expired.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::envelope::{from_nanos, to_nanos};

/// A source of wall-clock time. Expiry is decided by comparing a record's `expires_at` with
/// [`Clock::now`].
///
/// [`SystemClock`] is the default; [`ManualClock`] is for tests; any
/// `Fn() -> SystemTime + Send + Sync` closure is a clock too.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Whether `t` has been reached (`now() >= t`): the test that decides a record with
    /// expiry `t` has expired.
    ///
    /// Provided as exactly that. A clock may answer more cheaply than by reading the exact
    /// time, but must give the same answer; [`SystemClock`] does so for times well in the
    /// future.
    fn reached(&self, t: SystemTime) -> bool {
        self.now() >= t
    }
}

impl<F> Clock for F
where
    F: Fn() -> SystemTime + Send + Sync + 'static,
{
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The operating system's clock, [`SystemTime::now`].
///
/// On Linux, [`reached`](Clock::reached) first reads the kernel's coarse wall clock
/// (`CLOCK_REALTIME_COARSE`: the exact clock as of the last timer tick, and several times
/// cheaper to read). A time more than [`COARSE_SLACK`] past it is taken as not reached;
/// anything closer is decided by the exact clock. So checking a record whose expiry is
/// more than that away costs no exact clock read.
///
/// This rests on one assumption: that the coarse clock is never more than [`COARSE_SLACK`]
/// behind the exact one. The kernel keeps it within a few timer ticks (milliseconds) while
/// any CPU runs; no kernel promises a bound, and a virtual machine whose timekeeping CPU the
/// hypervisor stops for longer than the slack, while another of its CPUs runs, could break
/// it (for a record that expired less than the slack ago). To decide every expiry by the
/// exact clock, give [`RecordsBuilder::clock`](crate::RecordsBuilder::clock) the closure
/// `|| SystemTime::now()` instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// How far behind the exact clock [`SystemClock`] assumes the coarse one can be: ten
/// seconds, thousands of timer ticks (the kernel keeps it within a few).
pub const COARSE_SLACK: Duration = Duration::from_secs(10);

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn reached(&self, t: SystemTime) -> bool {
        match to_nanos(t) {
            // Exact: nanoseconds since the epoch convert back to `t` itself.
            Some(nanos) if nanos > 0 => system_reached_nanos(nanos),
            // Before the epoch (stored as 0), or after 2554.
            _ => SystemTime::now() >= t,
        }
    }
}

/// [`SystemClock::reached`] for a time given in nanoseconds since the Unix epoch, without
/// converting it unless it is close.
pub(crate) fn system_reached_nanos(nanos: u64) -> bool {
    if coarse_far_from(nanos) {
        return false;
    }
    SystemTime::now() >= from_nanos(nanos)
}

/// Whether `nanos` is more than [`COARSE_SLACK`] past the coarse clock (so certainly not
/// reached yet).
fn coarse_far_from(nanos: u64) -> bool {
    const SLACK: u64 = COARSE_SLACK.as_nanos() as u64;
    coarse_nanos().is_some_and(|coarse| coarse.saturating_add(SLACK) < nanos)
}

/// The coarse wall clock in nanoseconds since the Unix epoch, where the platform has one.
#[cfg(target_os = "linux")]
fn coarse_nanos() -> Option<u64> {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(not(target_os = "linux"))]
fn coarse_nanos() -> Option<u64> {
    None
}

/// A clock that stands still until told to move: for deterministic tests of expiry.
///
/// Clones share the same time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use store_record::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(100));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(105));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.now.lock() += by;
    }

    /// Sets the clock to `to` (which may be in its past).
    pub fn set(&self, to: SystemTime) {
        *self.now.lock() = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    /// `reached` with the coarse shortcut gives the exact clock's answer, at every distance
    /// from now: far past, just past, just ahead, either side of the slack, far ahead.
    #[test]
    fn system_clock_reached_is_the_exact_answer() {
        let offsets_ms: [i64; 12] = [
            -3_600_000, -1_500, -1, 0, 1, 10, 900, 9_999, 10_001, 15_000, 60_000, 3_600_000,
        ];
        for ms in offsets_ms {
            let now = SystemTime::now();
            let t = if ms < 0 {
                now - Duration::from_millis(ms.unsigned_abs())
            } else {
                now + Duration::from_millis(ms.unsigned_abs())
            };
            let nanos = to_nanos(t).unwrap();
            let got = [SystemClock.reached(t), system_reached_nanos(nanos)];
            // The exact clock only moves forward between the two reads around the calls
            // (barring a step of the wall clock): `t` reached before means reached after.
            let after = SystemTime::now() >= t;
            if now >= t {
                assert_eq!(
                    got, [true; 2],
                    "{ms} ms from now: not reached, but the time is past it"
                );
            }
            if !after {
                assert_eq!(
                    got, [false; 2],
                    "{ms} ms from now: reached, but the time is before it"
                );
            }
        }
        assert!(SystemClock.reached(UNIX_EPOCH));
        assert!(SystemClock.reached(UNIX_EPOCH - Duration::from_secs(86_400)));
        let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert!(!SystemClock.reached(far));
        assert!(!system_reached_nanos(to_nanos(far).unwrap()));
        assert!(system_reached_nanos(0));
        assert!(!SystemClock.reached(UNIX_EPOCH + Duration::from_nanos(u64::MAX) + Duration::from_secs(1)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_coarse_clock_is_close_behind_the_exact_one() {
        let coarse = from_nanos(coarse_nanos().expect("Linux has a coarse clock"));
        let exact = SystemTime::now();
        let behind = exact.duration_since(coarse).unwrap_or_default();
        // Within a few ticks in practice; the slack allows far more.
        assert!(behind < Duration::from_secs(1), "coarse clock {behind:?} behind");
        let ahead = coarse.duration_since(exact).unwrap_or_default();
        assert!(ahead < Duration::from_millis(50), "coarse clock {ahead:?} ahead");
    }

    #[test]
    fn a_clock_without_its_own_reached_compares_now() {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(100));
        assert!(!clock.reached(UNIX_EPOCH + Duration::from_secs(101)));
        assert!(clock.reached(UNIX_EPOCH + Duration::from_secs(100)));
        assert!(clock.reached(UNIX_EPOCH + Duration::from_secs(99)));
        let closure = || UNIX_EPOCH + Duration::from_secs(5);
        assert!(closure.reached(UNIX_EPOCH + Duration::from_secs(5)));
        assert!(!closure.reached(UNIX_EPOCH + Duration::from_secs(6)));
    }
}
