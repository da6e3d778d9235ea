//! Waiting for the next change of one key with an etcd watch (no polling).

use std::time::Duration;

use etcd_client::{Event, WatchOptions};
use store_core::{Backoff, Key, Result};

use crate::connection::Connection;
use crate::error;

/// The pauses before re-reading after a broken watch stream (a member went away, the
/// cluster is electing a leader, the revision was compacted): from 50 ms doubling up to
/// 500 ms, with full jitter, so a wait does not spin while a cluster has no leader and the
/// waiters of a member that went away do not come back in lock step. No budget: a wait
/// lasts as long as its caller waits.
pub(crate) fn rewatch_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(500)).with_jitter(true)
}

/// Waits for the first change of `etcd_key` after `revision` and returns its event, or
/// `None` when the watch could not be kept (the stream broke because a member died or lost
/// its leader, or the revision was compacted). On `None` the caller re-reads the key and
/// watches again from the new revision, so no change is ever missed: the watch starts
/// right after the revision the caller's read saw.
///
/// Dropping the future drops the watch stream, which cancels the watch on the server.
pub(crate) async fn first_change_after(
    conn: &Connection,
    op: &'static str,
    key: &Key,
    etcd_key: Vec<u8>,
    revision: i64,
) -> Result<Option<Event>> {
    let opts = WatchOptions::new().with_start_revision(revision + 1);
    let mut stream = match conn.watch_client().watch(etcd_key, Some(opts)).await {
        Ok(s) => s,
        Err(e) if error::is_retryable(&e) => return Ok(None),
        Err(e) => return Err(error::map(op, Some(key.as_str()), e)),
    };
    loop {
        match stream.message().await {
            Ok(Some(resp)) => {
                if resp.canceled() {
                    tracing::debug!(op, key = %key, reason = resp.cancel_reason(), "etcd watch canceled");
                    return Ok(None);
                }
                if let Some(ev) = resp.events().first() {
                    return Ok(Some(ev.clone()));
                }
            }
            Ok(None) => return Ok(None),
            Err(e) if error::is_retryable(&e) => {
                tracing::debug!(op, key = %key, error = %e, "etcd watch broke");
                return Ok(None);
            }
            Err(e) => return Err(error::map(op, Some(key.as_str()), e)),
        }
    }
}
