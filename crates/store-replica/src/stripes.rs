//! The table that lets a secondary sync store answer reads.
//!
//! The version table maps, for each key last written through this replica, the version
//! each sync store gave that write. A read answered by a secondary is reported with the
//! primary's version only if the table vouches for it; see [`Stripe::vouch`].

use std::collections::HashMap;

use parking_lot::Mutex;
use store_core::{Key, Version};

const STRIPES: usize = 64;

/// How many keys each stripe's version table remembers (so the whole table holds at most
/// `STRIPES × VOUCH_CAPACITY` = 65,536 keys: a few MiB for short keys, at most about
/// 70 MiB for keys of the maximum length). The table is only a cache: a key
/// it has forgotten is read from the primary, so evicting costs speed, never correctness.
pub(crate) const VOUCH_CAPACITY: usize = 1024;

#[derive(Debug)]
pub(crate) struct Stripes {
    stripes: Box<[Stripe]>,
}

/// The keys of one stripe (keys are spread over stripes by hash, so that writes to
/// different keys rarely share a lock).
#[derive(Debug, Default)]
pub(crate) struct Stripe {
    /// Per key: the version of the last replicated write in each sync store (index 0 is
    /// the primary).
    versions: Mutex<HashMap<Key, Box<[Version]>>>,
}

impl Stripes {
    pub(crate) fn new() -> Self {
        Stripes {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
        }
    }

    pub(crate) fn get(&self, key: &Key) -> &Stripe {
        // `STRIPES`, not the slice's length: a constant divisor is a mask, not a division.
        &self.stripes[key.stripe(STRIPES)]
    }
}

impl Stripe {
    /// Forgets `key` before a mutation starts, so no read vouches for a secondary while the
    /// stores may disagree.
    pub(crate) fn forget(&self, key: &Key) {
        self.versions.lock().remove(key);
    }

    /// Records the versions of a mutation that succeeded on every sync store.
    /// When the stripe already remembers [`VOUCH_CAPACITY`] other keys, an arbitrary one
    /// is forgotten first, so the table stays bounded however many keys are written.
    pub(crate) fn remember(&self, key: &Key, versions: Box<[Version]>) {
        let mut table = self.versions.lock();
        if table.len() >= VOUCH_CAPACITY
            && !table.contains_key(key)
            && let Some(victim) = table.keys().next().cloned()
        {
            table.remove(&victim);
        }
        table.insert(key.clone(), versions);
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.versions.lock().len()
    }

    /// The primary's version for the object that sync store `store` returned with `version`,
    /// if the last replicated write of `key` produced exactly that object there.
    pub(crate) fn vouch(&self, key: &Key, store: usize, version: &Version) -> Option<Version> {
        let versions = self.versions.lock();
        let known = versions.get(key)?;
        (known.get(store) == Some(version)).then(|| known[0].clone())
    }
}

/// The version under which an object is reported when only sync store `store` (not the
/// primary) vouches for it. The `~replica<i>:` prefix keeps it from ever equalling a primary
/// version, so a conditional put or get using it fails instead of matching by accident.
pub(crate) fn foreign(store: usize, version: &Version) -> Version {
    Version::parse(&format!("~replica{store}:{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vouches_only_for_the_remembered_write() {
        let stripes = Stripes::new();
        let k = Key::new("k").unwrap();
        let s = stripes.get(&k);
        assert!(std::ptr::eq(s, stripes.get(&k)));
        assert_eq!(s.vouch(&k, 1, &Version::from(7)), None);
        s.remember(&k, vec![Version::from(3), Version::from(7)].into());
        assert_eq!(s.vouch(&k, 1, &Version::from(7)), Some(Version::from(3)));
        assert_eq!(s.vouch(&k, 1, &Version::from(8)), None);
        assert_eq!(s.vouch(&k, 2, &Version::from(7)), None);
        s.forget(&k);
        assert_eq!(s.vouch(&k, 1, &Version::from(7)), None);
        assert_eq!(foreign(2, &Version::from(5)).to_string(), "~replica2:5");
    }

    #[test]
    fn the_table_stays_bounded() {
        let stripe = Stripe::default();
        let versions = || -> Box<[Version]> { vec![Version::from(1), Version::from(2)].into() };
        let keys: Vec<Key> = (0..VOUCH_CAPACITY * 3)
            .map(|i| Key::new(format!("k/{i}")).unwrap())
            .collect();
        for k in &keys {
            stripe.remember(k, versions());
        }
        assert_eq!(stripe.remembered(), VOUCH_CAPACITY);
        // The latest write is always remembered; rewriting a remembered key evicts nothing.
        let last = keys.last().unwrap();
        assert_eq!(stripe.vouch(last, 1, &Version::from(2)), Some(Version::from(1)));
        stripe.remember(last, versions());
        assert_eq!(stripe.remembered(), VOUCH_CAPACITY);
    }
}
