//! The expiries of record versions this handle wrote, so that a `cas_by_version` from one
//! of them can skip the read that otherwise tells "expired" (`NotFound`) from "live".
//!
//! A backend with `stable_versions` never gives one key the same version for two different
//! objects, so "version `v` of key `k` expires at `t`" stays true once learnt: an entry can
//! be missing (it was evicted, or another handle wrote the key), never wrong, and a miss
//! only costs the read.

use std::collections::HashMap;
use std::time::SystemTime;

use parking_lot::Mutex;
use store_core::{Key, Version};

/// Keys remembered per handle. A key's entry holds only its latest version written here.
pub(crate) const CAPACITY: usize = 1024;

/// Per key, the last version this handle wrote with `create` or `cas_by_version`, and that
/// version's expiry (`None`: never). At most [`CAPACITY`] keys: remembering another drops
/// an arbitrary one.
#[derive(Debug, Default)]
pub(crate) struct KnownExpiries {
    map: Mutex<HashMap<Key, (Version, Option<SystemTime>)>>,
}

impl KnownExpiries {
    /// The expiry of `version` of `key` (`Some(None)`: it never expires), if remembered.
    pub(crate) fn get(&self, key: &Key, version: &Version) -> Option<Option<SystemTime>> {
        let map = self.map.lock();
        let (known, expires_at) = map.get(key)?;
        (known == version).then_some(*expires_at)
    }

    /// Remembers that `version` of `key` expires at `expires_at`.
    pub(crate) fn remember(&self, key: &Key, version: &Version, expires_at: Option<SystemTime>) {
        let mut map = self.map.lock();
        if map.len() >= CAPACITY
            && !map.contains_key(key)
            && let Some(evicted) = map.keys().next().cloned()
        {
            map.remove(&evicted);
        }
        map.insert(key.clone(), (version.clone(), expires_at));
    }

    /// Forgets `key` (it was deleted).
    pub(crate) fn forget(&self, key: &Key) {
        self.map.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn knows_only_the_latest_remembered_version() {
        let known = KnownExpiries::default();
        let k = Key::new("k").unwrap();
        assert_eq!(known.get(&k, &Version::from(1)), None);
        known.remember(&k, &Version::from(1), at(5));
        assert_eq!(known.get(&k, &Version::from(1)), Some(at(5)));
        assert_eq!(known.get(&k, &Version::from(2)), None);
        known.remember(&k, &Version::from(2), None);
        assert_eq!(
            known.get(&k, &Version::from(1)),
            None,
            "replaced by the later version"
        );
        assert_eq!(known.get(&Key::new("k").unwrap(), &Version::from(2)), Some(None));
        known.forget(&k);
        assert_eq!(known.get(&k, &Version::from(2)), None);
    }

    #[test]
    fn holds_at_most_its_capacity() {
        let known = KnownExpiries::default();
        let keys: Vec<Key> = (0..CAPACITY + 10)
            .map(|i| Key::new(format!("k/{i}")).unwrap())
            .collect();
        for k in &keys {
            known.remember(k, &Version::from(7), at(1));
        }
        assert_eq!(known.map.lock().len(), CAPACITY);
        let last = keys.last().unwrap();
        assert_eq!(
            known.get(last, &Version::from(7)),
            Some(at(1)),
            "the newest is kept"
        );
        // Re-remembering a key that is there evicts nothing.
        known.remember(last, &Version::from(8), None);
        assert_eq!(known.map.lock().len(), CAPACITY);
        assert_eq!(known.get(last, &Version::from(8)), Some(None));
    }
}
