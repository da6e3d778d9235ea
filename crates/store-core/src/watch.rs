//! Watching by polling, for backends without change notification.

use std::time::Duration;

use crate::backend::Backend;
use crate::error::Result;
use crate::key::Key;
use crate::version::Version;

/// Exponential backoff between polls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Each delay is the previous one times this (≥ 1).
    pub factor: f64,
}

impl Default for Backoff {
    /// 5 ms, doubling, up to 1 s: a change is seen within about one second at worst.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_secs(1),
            factor: 2.0,
        }
    }
}

impl Backoff {
    /// The delay after `delay`.
    pub fn next(&self, delay: Duration) -> Duration {
        delay.mul_f64(self.factor.max(1.0)).min(self.max)
    }
}

/// Implements [`Backend::watch`] by polling [`Backend::head`] with `backoff`.
///
/// For backends with no way to be told about changes (object stores reached over HTTP).
/// The latency of noticing a change is at most `backoff.max`. Needs a tokio runtime (for
/// its timer). Cancel by dropping the future.
pub async fn poll_watch<B: Backend + ?Sized>(
    backend: &B,
    key: &Key,
    seen: Option<&Version>,
    backoff: Backoff,
) -> Result<Option<Version>> {
    let mut delay = backoff.initial;
    loop {
        let current = match backend.head(key).await {
            Ok(meta) => Some(meta.version),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if current.as_ref() != seen {
            return Ok(current);
        }
        tokio::time::sleep(delay).await;
        delay = backoff.next(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(35),
            factor: 2.0,
        };
        assert_eq!(b.next(b.initial), Duration::from_millis(20));
        assert_eq!(b.next(Duration::from_millis(20)), Duration::from_millis(35));
        let flat = Backoff { factor: 0.5, ..b };
        assert_eq!(flat.next(Duration::from_millis(10)), Duration::from_millis(10));
    }
}
