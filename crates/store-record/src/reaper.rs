//! Purging expired records: on demand, or by a background task.

use std::future::ready;
use std::time::Duration;

use futures::TryStreamExt;
use store_core::{Backend, ListOptions, Result};
use tokio::task::JoinHandle;

use crate::listing::Seen;
use crate::records::Records;

impl<B: Backend> Records<B> {
    /// Deletes every expired record from the backend and returns how many it deleted.
    ///
    /// Expired records are already absent for every operation, and each operation that meets
    /// one deletes it; this reclaims the space of those nobody touches. A record is deleted
    /// only if its version is still the expired one (`delete_if`), so a record renewed
    /// between the scan and the delete survives. Objects that are not records (they fail to
    /// decode) are left alone.
    ///
    /// One backend listing of keys and sizes, then a ranged `get` of the envelope header of
    /// each object whose size says it may have an expiry (several at once) and a
    /// conditional delete of each expired one; records without an expiry are not read.
    /// Fails only if the listing does.
    pub async fn purge_expired(&self) -> Result<usize> {
        self.scan("purge_expired", ListOptions::default(), None)
            .try_fold(0, |purged, (key, seen)| {
                ready(Ok(match seen {
                    Ok(Seen::Expired { purged: true }) => purged + 1,
                    Ok(_) => purged,
                    Err(e) => {
                        tracing::debug!(key = %key, error = %e, "purge: skipping object");
                        purged
                    }
                }))
            })
            .await
    }

    /// Starts a background task that calls [`purge_expired`](Self::purge_expired) every
    /// `every` (at least one millisecond) until the returned [`Reaper`] is dropped.
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn_reaper(&self, every: Duration) -> Reaper {
        let records = self.clone();
        let every = every.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match records.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(purged = n, "reaper pass"),
                    Err(e) => tracing::warn!(error = %e, "reaper pass failed"),
                }
            }
        });
        Reaper { task }
    }
}

/// The background purge started by [`Records::spawn_reaper`]; dropping it stops the task.
#[derive(Debug)]
pub struct Reaper {
    task: JoinHandle<()>,
}

impl Reaper {
    /// Stops the task (same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
