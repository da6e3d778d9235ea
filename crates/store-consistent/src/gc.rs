//! Collecting object versions that no manifest refers to.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use store_core::{DeleteOptions, Result};

use crate::group::Group;
use crate::manifest::object_created;

/// A grace period for [`Group::gc`] that no sane writer comes near: ten minutes.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(600);

/// What [`Group::gc`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Object versions the manifest refers to (kept).
    pub live: usize,
    /// Unreferenced object versions younger than the grace period (kept).
    pub recent: usize,
    /// Unreferenced object versions deleted.
    pub deleted: usize,
}

impl Group {
    /// Deletes the object versions that the manifest does not refer to and that were
    /// created more than `grace` ago: leftovers of writers that crashed between storing a
    /// new version and switching the manifest, or before the background delete of the
    /// version a switch replaced ran (or whose delete failed). Costs one read of the
    /// manifest, a listing of the group's objects and one delete per version collected.
    ///
    /// # Why a grace period
    /// A writer stores its new object version *before* it switches the manifest to it, so
    /// an unreferenced version may be one that a live writer is about to switch to.
    /// Deleting it would make that switch point at nothing. So `gc` spares versions younger
    /// than `grace`, judged by the creation time in the version's id (the writer's clock).
    /// This is safe as long as no writer takes longer than `grace` from storing its version
    /// to switching the manifest, and clocks of the machines involved differ by less than
    /// `grace`; [`DEFAULT_GC_GRACE`] leaves a wide margin. Files under the objects prefix
    /// that are not object versions are left alone.
    ///
    /// # Errors
    /// [`Error::Corrupt`](store_core::Error::Corrupt) for a damaged manifest; listing
    /// errors. Failures to delete single versions are not errors (the next `gc` retries).
    pub async fn gc(&self, grace: Duration) -> Result<GcReport> {
        // The manifest first: a version switched in after this read is younger than the
        // listing below, hence protected by the grace period.
        let snap = self.load().await?;
        let live: BTreeSet<&str> = snap.manifest.objects.values().map(|e| &*e.id).collect();
        let now = SystemTime::now();
        let mut report = GcReport::default();
        for meta in self.stored_objects().await? {
            let id = meta.key.name();
            if live.contains(id) {
                report.live += 1;
                continue;
            }
            let Some(created) = object_created(id) else {
                continue;
            };
            if now.duration_since(created).unwrap_or_default() < grace {
                report.recent += 1;
                continue;
            }
            // Object versions are never rewritten, so no version condition is needed.
            match self
                .shared
                .backend
                .delete(&meta.key, DeleteOptions::default())
                .await
            {
                Ok(()) => report.deleted += 1,
                Err(e) => {
                    tracing::debug!(key = %meta.key, error = %e, "gc could not delete an object version")
                }
            }
        }
        tracing::debug!(group = %self.name(), ?report, "gc");
        Ok(report)
    }
}
