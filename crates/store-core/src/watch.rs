//! Watching by polling, for backends without change notification.

use crate::backend::Backend;
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::version::Version;
/// Implements [`Backend::watch`] by polling [`Backend::head`] with `backoff`.
///
/// For backends with no way to be told about changes (object stores reached over HTTP).
/// The latency of noticing a change is at most `backoff.max`. A budget in `backoff`
/// (attempts or time) ends the wait with [`Error::Timeout`](crate::Error::Timeout) naming
/// the key. Needs a tokio runtime (for its timer). Cancel by dropping the future.
pub async fn poll_watch<B: Backend + ?Sized>(
    backend: &B,
    key: &Key,
    seen: Option<&Version>,
    backoff: Backoff,
) -> Result<Option<Version>> {
    let mut retries = backoff.start();
    loop {
        let current = match backend.head(key).await {
            Ok(meta) => Some(meta.version),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if current.as_ref() != seen {
            return Ok(current);
        }
        if !retries.wait().await {
            return Err(Error::Timeout {
                op: "watch",
                key: Some(key.to_string()),
                after: retries.elapsed(),
            });
        }
    }
}
