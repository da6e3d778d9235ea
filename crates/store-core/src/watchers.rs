//! A registry of watched keys, for backends that know when they change a key.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::key::Key;

/// The keys somebody is watching, and how to wake them: a building block for
/// [`Backend::watch`](crate::Backend::watch) in backends that see their own changes.
///
/// A watcher [`register`](Self::register)s its key, enables a `Notified` future from the
/// guard *before* reading the key's current version (so a change between the read and the
/// wait cannot be missed), and waits. Every mutation calls [`wake`](Self::wake) after it has
/// taken effect. A key has an entry only while a [`WatchGuard`] for it is alive, so a
/// cancelled watch leaves nothing behind; `wake` costs one atomic load while nobody watches.
///
/// ```
/// use std::sync::Arc;
/// use store_core::{Key, WatcherRegistry};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let registry = Arc::new(WatcherRegistry::default());
/// let key = Key::new("k").unwrap();
/// let guard = registry.register(&key);
/// {
///     let mut notified = std::pin::pin!(guard.notify().notified());
///     notified.as_mut().enable(); // before reading the current version
///     registry.wake(&key);        // a writer changed the key
///     notified.await;             // returns at once
/// }
/// assert_eq!(registry.watched_keys(), 1);
/// drop(guard);
/// assert_eq!(registry.watched_keys(), 0);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct WatcherRegistry {
    slots: Mutex<HashMap<Key, Arc<Notify>>>,
    /// Number of live guards: lets writers skip the map entirely when nobody watches.
    active: AtomicUsize,
}

impl WatcherRegistry {
    /// Registers interest in `key` until the returned guard is dropped.
    pub fn register(self: &Arc<Self>, key: &Key) -> WatchGuard {
        let notify = {
            let mut slots = self.slots.lock();
            let notify = slots.entry(key.clone()).or_default().clone();
            // Incremented under `slots`, before the caller reads the key's version, so a
            // writer that changes the key afterwards sees `active > 0` in `wake`.
            self.active.fetch_add(1, Ordering::SeqCst);
            notify
        };
        WatchGuard {
            registry: Arc::clone(self),
            key: key.clone(),
            notify,
        }
    }

    /// Wakes every watcher of `key`. Call it after a change to `key` has taken effect.
    pub fn wake(&self, key: &Key) {
        if self.active.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(notify) = self.slots.lock().get(key.as_str()) {
            notify.notify_waiters();
        }
    }

    /// Whether anybody watches any key.
    pub fn any(&self) -> bool {
        self.active.load(Ordering::SeqCst) > 0
    }

    /// Number of keys with live watchers (zero once every watch has returned or been
    /// cancelled): for tests that check nothing leaks.
    pub fn watched_keys(&self) -> usize {
        self.slots.lock().len()
    }
}

/// A live registration in a [`WatcherRegistry`]; dropping it unregisters.
#[derive(Debug)]
pub struct WatchGuard {
    registry: Arc<WatcherRegistry>,
    key: Key,
    notify: Arc<Notify>,
}

impl WatchGuard {
    /// The notification woken by [`WatcherRegistry::wake`] for this key.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut slots = self.registry.slots.lock();
        self.registry.active.fetch_sub(1, Ordering::SeqCst);
        // Clones of a slot are only made under `slots`, so the count is stable here:
        // 2 means the map's and ours — this was the key's last watcher.
        if Arc::strong_count(&self.notify) == 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_as_long_as_their_guards() {
        let r = Arc::new(WatcherRegistry::default());
        let (a, b) = (Key::new("a").unwrap(), Key::new("b").unwrap());
        let g1 = r.register(&a);
        let g2 = r.register(&a);
        let g3 = r.register(&b);
        assert!(r.any());
        assert_eq!(r.watched_keys(), 2);
        drop(g1);
        assert_eq!(r.watched_keys(), 2, "a still has a watcher");
        drop(g2);
        assert_eq!(r.watched_keys(), 1);
        drop(g3);
        assert_eq!(r.watched_keys(), 0);
        assert!(!r.any());
    }

    #[tokio::test]
    async fn wake_reaches_only_the_keys_watchers() {
        let r = Arc::new(WatcherRegistry::default());
        let (a, b) = (Key::new("a").unwrap(), Key::new("b").unwrap());
        let ga = r.register(&a);
        let gb = r.register(&b);
        let mut na = std::pin::pin!(ga.notify().notified());
        let mut nb = std::pin::pin!(gb.notify().notified());
        na.as_mut().enable();
        nb.as_mut().enable();
        r.wake(&a);
        na.await;
        let woken = tokio::time::timeout(std::time::Duration::from_millis(20), nb).await;
        assert!(woken.is_err(), "b was not changed");
    }
}
