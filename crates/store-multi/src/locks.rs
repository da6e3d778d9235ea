//! Per-key serialisation of the commit phase.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use store_core::Key;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Number of lock stripes. Keys share a stripe by hash: two keys on one stripe only wait
/// for each other's commit phase, never for each other's chunk uploads.
const STRIPES: usize = 64;

/// Striped async locks, one held across each commit phase (conditional check + the
/// per-backend commits).
///
/// Why: the backends each check `Create`/`Update` on their own, so two fan-out writers of
/// one key could each win on a different backend and leave the copies diverged. Holding
/// the key's lock from the composite version check until every backend settled makes the
/// writes of one `Multi` reach all backends in the same order.
pub(crate) struct KeyLocks {
    stripes: Vec<Arc<Mutex<()>>>,
}

impl KeyLocks {
    pub(crate) fn new() -> Self {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
        }
    }

    /// Locks `key`'s stripe. The guard is owned so that a background task can keep it
    /// while slow backends of a quorum write finish.
    pub(crate) async fn lock(&self, key: &Key) -> OwnedMutexGuard<()> {
        let mut h = DefaultHasher::new();
        key.as_str().hash(&mut h);
        let stripe = (h.finish() % STRIPES as u64) as usize;
        Arc::clone(&self.stripes[stripe]).lock_owned().await
    }
}
