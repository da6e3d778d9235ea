//! The expiries of record versions this handle has written, so that a `cas_by_version`
//! from one of them can skip the read that otherwise decides "expired" (`NotFound`) before
//! the conditional write.
//!
//! A backend never gives one key the same version for two different objects (DESIGN §2:
//! versions do not repeat for a key; where a version is a content hash, the same version
//! means the same bytes, expiry included). So "version `v` of key `k` expires at `t`" stays
//! true forever once learnt: the table can be stale only by forgetting, never by being
//! wrong, and a miss just takes the slow path.

use std::collections::HashMap;
use std::time::SystemTime;

use parking_lot::Mutex;
use store_core::{Key, Version};

const STRIPES: usize = 16;

/// FxHash: keys are hashed on every `cas_by_version`, and a flood of colliding keys costs
/// this cache some speed, never correctness.
type Table = HashMap<Key, (Version, Option<SystemTime>), rustc_hash::FxBuildHasher>;

/// Keys remembered per stripe (so at most `STRIPES × PER_STRIPE` = 4096 keys per handle).
/// Beyond that an arbitrary key is forgotten.
pub(crate) const PER_STRIPE: usize = 256;

/// Per key, the last version written through this handle and its expiry.
#[derive(Debug)]
pub(crate) struct Known {
    stripes: Box<[Mutex<Table>]>,
}

impl Known {
    pub(crate) fn new() -> Self {
        Known {
            stripes: (0..STRIPES).map(|_| Mutex::new(Table::default())).collect(),
        }
    }

    fn stripe(&self, key: &Key) -> &Mutex<Table> {
        &self.stripes[key.stripe(STRIPES)]
    }

    /// The expiry of `version` of `key` (`Some(None)`: it never expires), if known.
    pub(crate) fn expiry(&self, key: &Key, version: &Version) -> Option<Option<SystemTime>> {
        let table = self.stripe(key).lock();
        let (known, expiry) = table.get(key)?;
        (known == version).then_some(*expiry)
    }

    /// Records that `version` of `key` expires at `expires_at`.
    pub(crate) fn remember(&self, key: &Key, version: Version, expires_at: Option<SystemTime>) {
        let mut table = self.stripe(key).lock();
        if let Some(slot) = table.get_mut(key) {
            *slot = (version, expires_at);
            return;
        }
        if table.len() >= PER_STRIPE
            && let Some(victim) = table.keys().next().cloned()
        {
            table.remove(&victim);
        }
        table.insert(key.clone(), (version, expires_at));
    }

    /// Forgets `key` (it was deleted).
    pub(crate) fn forget(&self, key: &Key) {
        self.stripe(key).lock().remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.stripes.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn knows_only_the_remembered_version() {
        let known = Known::new();
        let k = Key::new("k").unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(known.expiry(&k, &Version::from(1)), None);
        known.remember(&k, Version::from(1), Some(t));
        assert_eq!(known.expiry(&k, &Version::from(1)), Some(Some(t)));
        assert_eq!(known.expiry(&k, &Version::from(2)), None);
        known.remember(&k, Version::from(2), None);
        assert_eq!(known.expiry(&k, &Version::from(1)), None);
        assert_eq!(known.expiry(&k, &Version::from(2)), Some(None));
        known.forget(&k);
        assert_eq!(known.expiry(&k, &Version::from(2)), None);
    }

    #[test]
    fn stays_bounded() {
        let known = Known::new();
        let keys: Vec<Key> = (0..STRIPES * PER_STRIPE * 3)
            .map(|i| Key::new(format!("k/{i}")).unwrap())
            .collect();
        for k in &keys {
            known.remember(k, Version::from(1), None);
        }
        assert!(known.len() <= STRIPES * PER_STRIPE);
        let last = keys.last().unwrap();
        assert_eq!(known.expiry(last, &Version::from(1)), Some(None));
    }
}
