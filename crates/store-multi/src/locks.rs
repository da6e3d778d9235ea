//! Per-key serialisation of the commit phase.

use std::sync::Arc;

use store_core::Key;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The lock of a key, held across a commit phase (owned: a quorum write's background task
/// keeps it until the slow backends finish).
pub(crate) type KeyGuard = OwnedMutexGuard<()>;

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

    /// Locks `key`'s stripe: first come, first served (tokio's mutex is fair, so a busy
    /// writer cannot starve a waiting one, or a `watch`). The guard is owned so that the
    /// task finishing a quorum write's slow backends can keep it.
    pub(crate) async fn lock(&self, key: &Key) -> KeyGuard {
        Arc::clone(&self.stripes[stripe(key)]).lock_owned().await
    }
}

/// The stripe of `key` (a collision only shares a lock).
fn stripe(key: &Key) -> usize {
    key.stripe(STRIPES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_the_stripes() {
        let mut used = [false; STRIPES];
        for i in 0..1000 {
            used[stripe(&Key::new(format!("some/key-{i}")).unwrap())] = true;
        }
        assert!(used.iter().filter(|u| **u).count() > STRIPES * 3 / 4);
    }
}
