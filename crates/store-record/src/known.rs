//! The expiries of record versions this handle has written, so that a `cas_by_version`
//! from one of them can skip the read that otherwise decides "expired" (`NotFound`) before
//! the conditional write.
//!
//! A backend never gives one key the same version for two different objects (DESIGN §2:
//! versions do not repeat for a key; where a version is a content hash, the same version
//! means the same bytes, expiry included). So "version `v` of key `k` expires at `t`" stays
//! true forever once learnt: the table can be stale only by forgetting, never by being
//! wrong, and a miss just takes the slow path.
//!
//! # Layout
//!
//! A direct-mapped table: each key hashes to one slot, which holds the last version written
//! to it through this handle and that version's expiry. Another key that hashes to the same
//! slot evicts it (a miss costs the read, never correctness).
//!
//! The common case is a chain of swaps through one `Record`: the same key allocation and a
//! numeric version each time. For it a lookup takes no lock and no atomic read-modify-write
//! (a sequence lock: a lookup that overlaps a write misses instead of waiting), and an
//! update takes one atomic claim of the slot. Identity on that path is by address: a slot
//! publishes the address of its key's text (and of a textual version's text) only while it
//! owns a clone of them, so the same address is the same allocation, hence the same key.
//! A key or version that is equal but another allocation takes the slow path, which
//! compares the text under the slot's lock.

use parking_lot::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use store_core::{Key, Version};

/// Slots per handle (a power of two), allocated on the first write that remembers: about
/// 80 KiB.
pub(crate) const SLOTS: usize = 1024;

/// Tags in the low bits of a slot's key word: which kind of version it holds. The text of
/// an `Arc<str>` follows its two counters, so its address has these bits clear; a key whose
/// address does not (which no allocator in use produces) is simply never remembered.
const NUMBER: usize = 0b01;
const TEXT: usize = 0b10;
const TAGS: usize = 0b11;

/// The stored expiry of a version that never expires.
const NEVER: u64 = u64::MAX;

/// Per slot, the last version of a key written through this handle and its expiry.
#[derive(Debug, Default)]
pub(crate) struct Known {
    slots: OnceLock<Box<[Slot]>>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Even while the slot is stable, odd while a writer has claimed it.
    seq: AtomicU64,
    /// The address of the key's text, tagged with the version's kind; 0 for an empty slot.
    key: AtomicUsize,
    /// The version: the number, or the address of its text.
    version: AtomicU64,
    /// The expiry in nanoseconds since the Unix epoch, or [`NEVER`].
    expiry: AtomicU64,
    /// The key and version whose addresses the words above publish, kept alive so that no
    /// other key can be allocated at those addresses meanwhile. Changed only by a writer
    /// holding both this lock and the claim. (A numeric version here may be older than
    /// `version`: numbers need no owner, and are updated without this lock.)
    owned: Mutex<Option<(Key, Version)>>,
}

/// What a slot shows at one instant: key word, version word, expiry.
type Words = (usize, u64, u64);

impl Known {
    pub(crate) fn new() -> Self {
        Known::default()
    }

    fn slot(&self, key: &Key) -> Option<&Slot> {
        Some(&self.slots.get()?[index(key)])
    }

    fn slot_or_alloc(&self, key: &Key) -> &Slot {
        let slots = self
            .slots
            .get_or_init(|| (0..SLOTS).map(|_| Slot::default()).collect());
        &slots[index(key)]
    }

    /// The expiry of `version` of `key` in nanoseconds since the Unix epoch (`Some(None)`:
    /// it never expires), if known.
    pub(crate) fn expiry(&self, key: &Key, version: &Version) -> Option<Option<u64>> {
        let slot = self.slot(key)?;
        let (key_word, version_word) = words(key, version)?;
        let (seen_key, seen_version, expiry) = slot.read()?;
        if seen_key == key_word && seen_version == version_word {
            return Some(decode(expiry));
        }
        if seen_key == 0 {
            return None;
        }
        slot.expiry_by_text(key, version)
    }

    /// Records that `version` of `key` expires at `expiry` (nanoseconds since the Unix
    /// epoch; `None`: never).
    pub(crate) fn remember(&self, key: &Key, version: &Version, expiry: Option<u64>) {
        let (Some((key_word, version_word)), Some(expiry)) = (words(key, version), encode(expiry)) else {
            self.forget(key);
            return;
        };
        let slot = self.slot_or_alloc(key);
        if key_word & TAGS == NUMBER {
            // The slot already owns this key allocation: only the number and expiry change.
            let claim = slot.claim();
            let same_key = slot.key.load(Ordering::Relaxed) == key_word;
            if same_key {
                slot.version.store(version_word, Ordering::Relaxed);
                slot.expiry.store(expiry, Ordering::Relaxed);
            }
            slot.release(claim);
            if same_key {
                return;
            }
        }
        let fresh = Some((key.clone(), version.clone()));
        slot.replace(&mut slot.owned.lock(), (key_word, version_word, expiry), fresh);
    }

    /// Forgets `key` (it was deleted).
    pub(crate) fn forget(&self, key: &Key) {
        let Some(slot) = self.slot(key) else {
            return;
        };
        let mut owned = slot.owned.lock();
        if owned.as_ref().is_none_or(|(k, _)| k != key) {
            return;
        }
        slot.replace(&mut owned, (0, 0, NEVER), None);
    }
}

impl Slot {
    /// Shows `words` and owns `fresh` instead of what it had (the caller holds `owned`, this
    /// slot's lock). The old owned pair is dropped after the claim is released.
    fn replace(&self, owned: &mut Option<(Key, Version)>, words: Words, fresh: Option<(Key, Version)>) {
        let claim = self.claim();
        self.key.store(words.0, Ordering::Relaxed);
        self.version.store(words.1, Ordering::Relaxed);
        self.expiry.store(words.2, Ordering::Relaxed);
        let old = std::mem::replace(owned, fresh);
        self.release(claim);
        drop(old);
    }

    /// What the slot shows, if no writer was changing it meanwhile.
    fn read(&self) -> Option<Words> {
        let seq = self.seq.load(Ordering::Acquire);
        if seq & 1 == 1 {
            return None;
        }
        let words = (
            self.key.load(Ordering::Relaxed),
            self.version.load(Ordering::Relaxed),
            self.expiry.load(Ordering::Relaxed),
        );
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == seq).then_some(words)
    }

    /// What the slot shows, waiting out a writer (which never blocks while it holds its
    /// claim, so this is a short wait).
    fn read_settled(&self) -> Words {
        let mut spins = 0u32;
        loop {
            if let Some(words) = self.read() {
                return words;
            }
            backoff(&mut spins);
        }
    }

    /// The slow path of [`Known::expiry`]: `key` and `version` equal to what the slot holds
    /// but other allocations.
    fn expiry_by_text(&self, key: &Key, version: &Version) -> Option<Option<u64>> {
        let owned = self.owned.lock();
        let (owned_key, owned_version) = owned.as_ref()?;
        if owned_key != key {
            return None;
        }
        // The key cannot change while the lock is held; a numeric version can.
        let (key_word, version_word, expiry) = self.read_settled();
        let same = match version.as_u64() {
            Some(n) => key_word & TAGS == NUMBER && version_word == n,
            None => key_word & TAGS == TEXT && owned_version == version,
        };
        same.then(|| decode(expiry))
    }

    /// Takes the slot for writing; returns the (odd) sequence number to release with.
    fn claim(&self) -> u64 {
        let mut spins = 0u32;
        loop {
            let seq = self.seq.load(Ordering::Relaxed);
            if seq & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                // The writes that follow are ordered after the odd sequence number.
                fence(Ordering::Release);
                return seq + 1;
            }
            backoff(&mut spins);
        }
    }

    fn release(&self, claim: u64) {
        self.seq.store(claim + 1, Ordering::Release);
    }
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// The slot of `key` (its stripe: FxHash, cheap on every `cas_by_version`; a flood of
/// colliding keys costs this cache some speed, never correctness).
fn index(key: &Key) -> usize {
    key.stripe(SLOTS)
}

/// The identity of `key` and `version` as a slot shows it; `None` for the empty version,
/// which is never remembered.
fn words(key: &Key, version: &Version) -> Option<(usize, u64)> {
    let key_address = key.as_str().as_ptr() as usize;
    if key_address & TAGS != 0 {
        return None;
    }
    if let Some(n) = version.as_u64() {
        return Some((key_address | NUMBER, n));
    }
    let text = version.as_text()?;
    Some((key_address | TEXT, text.as_ptr() as usize as u64))
}

/// `expiry` as a slot stores it; `None` for the one expiry it cannot tell from "never"
/// (`u64::MAX` nanoseconds, in the year 2554).
fn encode(expiry: Option<u64>) -> Option<u64> {
    match expiry {
        None => Some(NEVER),
        Some(nanos) => (nanos != NEVER).then_some(nanos),
    }
}

fn decode(expiry: u64) -> Option<u64> {
    (expiry != NEVER).then_some(expiry)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn at(secs: u64) -> u64 {
        secs * 1_000_000_000
    }

    #[test]
    fn knows_only_the_remembered_version() {
        let known = Known::new();
        let k = Key::new("k").unwrap();
        assert_eq!(known.expiry(&k, &Version::from(1)), None);
        known.remember(&k, &Version::from(1), Some(at(5)));
        assert_eq!(known.expiry(&k, &Version::from(1)), Some(Some(at(5))));
        assert_eq!(known.expiry(&k, &Version::from(2)), None);
        known.remember(&k, &Version::from(2), None);
        assert_eq!(known.expiry(&k, &Version::from(1)), None);
        assert_eq!(known.expiry(&k, &Version::from(2)), Some(None));
        known.forget(&k);
        assert_eq!(known.expiry(&k, &Version::from(2)), None);
    }

    #[test]
    fn equal_keys_and_versions_in_other_allocations_are_known_too() {
        let known = Known::new();
        let k = Key::new("a/key").unwrap();
        let v = Version::from("etag-7");
        known.remember(&k, &v, Some(at(9)));
        let (k2, v2) = (Key::new("a/key").unwrap(), Version::from("etag-7"));
        assert_ne!(k.as_str().as_ptr(), k2.as_str().as_ptr());
        assert_eq!(known.expiry(&k, &v), Some(Some(at(9))));
        assert_eq!(known.expiry(&k2, &v2), Some(Some(at(9))));
        assert_eq!(known.expiry(&k2, &Version::from("etag-8")), None);
        assert_eq!(known.expiry(&k2, &Version::from(7)), None);
        // A numeric chain through one allocation, then a look-up through another.
        known.remember(&k, &Version::from(3), Some(at(10)));
        known.remember(&k, &Version::from(4), None);
        assert_eq!(known.expiry(&k2, &Version::from(4)), Some(None));
        assert_eq!(known.expiry(&k2, &Version::from(3)), None);
        // Forgetting through an equal key forgets.
        known.forget(&k2);
        assert_eq!(known.expiry(&k, &Version::from(4)), None);
    }

    #[test]
    fn a_key_that_shares_the_slot_evicts_the_other() {
        let known = Known::new();
        let a = Key::new("slot/a").unwrap();
        let b = (0..)
            .map(|i| Key::new(format!("slot/{i}")).unwrap())
            .find(|b| *b != a && index(b) == index(&a))
            .unwrap();
        known.remember(&a, &Version::from(1), None);
        known.remember(&b, &Version::from(1), Some(at(3)));
        assert_eq!(known.expiry(&a, &Version::from(1)), None);
        assert_eq!(known.expiry(&b, &Version::from(1)), Some(Some(at(3))));
        known.forget(&a);
        assert_eq!(known.expiry(&b, &Version::from(1)), Some(Some(at(3))));
    }

    #[test]
    fn the_empty_version_and_far_expiries_are_not_remembered() {
        let known = Known::new();
        let k = Key::new("k").unwrap();
        known.remember(&k, &Version::from(1), None);
        known.remember(&k, &Version::empty(), None);
        assert_eq!(known.expiry(&k, &Version::from(1)), None);
        assert_eq!(known.expiry(&k, &Version::empty()), None);
        known.remember(&k, &Version::from(2), Some(at(5)));
        known.remember(&k, &Version::from(3), Some(u64::MAX));
        assert_eq!(known.expiry(&k, &Version::from(2)), None);
        assert_eq!(known.expiry(&k, &Version::from(3)), None);
        known.remember(&k, &Version::from(4), Some(0));
        assert_eq!(known.expiry(&k, &Version::from(4)), Some(Some(0)));
    }

    /// The expiry every (key, version) pair of the stress test is remembered with, so any
    /// answer can be checked.
    fn expiry_of(key: usize, version: u64) -> Option<u64> {
        (!version.is_multiple_of(3)).then(|| key as u64 * 1_000_000 + version)
    }

    /// Threads remember and look up a few keys that share slots, through numeric and textual
    /// versions and through several allocations of each key: an answer, when there is one,
    /// is always the expiry remembered for exactly that version.
    #[test]
    fn concurrent_writers_and_readers_never_see_a_torn_slot() {
        const ROUNDS: u64 = 300_000;
        let known = Arc::new(Known::new());
        let base = Key::new("stress/0").unwrap();
        let mut names: Vec<String> = (1..)
            .map(|i| format!("stress/{i}"))
            .filter(|n| index(&Key::new(n.as_str()).unwrap()) == index(&base))
            .take(2)
            .collect();
        names.push("stress/0".into());
        names.push("stress/other".into());
        let names = Arc::new(names);
        let start = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (known, names, start) = (Arc::clone(&known), Arc::clone(&names), Arc::clone(&start));
                std::thread::spawn(move || {
                    let keys: Vec<Key> = names.iter().map(|n| Key::new(n.as_str()).unwrap()).collect();
                    start.wait();
                    let mut hits = 0u32;
                    let mut state: u64 = t + 1;
                    for round in 0..ROUNDS {
                        // A small LCG: which key, which version, and whether to write.
                        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        let pick = state >> 33;
                        let i = (pick % keys.len() as u64) as usize;
                        let n = (pick >> 8) % 6;
                        let version = if n == 5 {
                            Version::from(format!("t{n}"))
                        } else {
                            Version::from(n)
                        };
                        if (pick >> 16).is_multiple_of(2) {
                            known.remember(&keys[i], &version, expiry_of(i, n));
                        } else if let Some(expiry) = known.expiry(&keys[i], &version) {
                            hits += 1;
                            assert_eq!(expiry, expiry_of(i, n), "key {} version {version}", names[i]);
                        }
                        if round % 997 == 0 {
                            known.forget(&keys[i]);
                        }
                    }
                    hits
                })
            })
            .collect();
        let hits: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(hits > 0, "no look-up ever hit: the test checked nothing");
    }
}
