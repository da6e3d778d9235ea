//! Per-key wake-ups for `watch`, with nothing left behind when a watcher goes away.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use store_core::Key;
use tokio::sync::Notify;

/// The set of keys somebody is watching.
///
/// A slot exists only while at least one [`WatchGuard`] for its key is alive, so a watch
/// future that is dropped (cancelled) removes its slot and a store never accumulates state
/// for keys nobody watches any more.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    slots: Mutex<HashMap<Key, Arc<Notify>>>,
    /// Number of live guards: lets writers skip the map entirely when nobody watches.
    active: AtomicUsize,
}

impl Watchers {
    /// Registers interest in `key`. The caller must create and `enable` its `Notified` future
    /// *before* reading the key's current version, so a change between the read and the wait
    /// is not missed.
    pub(crate) fn register(self: &Arc<Self>, key: &Key) -> WatchGuard {
        let notify = {
            let mut slots = self.slots.lock();
            let notify = slots.entry(key.clone()).or_default().clone();
            // Incremented under `slots` and before the caller reads the map, so a writer that
            // changes the key afterwards sees `active > 0` (see `Root::wake`).
            self.active.fetch_add(1, Ordering::SeqCst);
            notify
        };
        WatchGuard {
            watchers: Arc::clone(self),
            key: key.clone(),
            notify,
        }
    }

    /// Whether anybody is watching anything. Cheap: called on every mutation.
    pub(crate) fn any(&self) -> bool {
        self.active.load(Ordering::SeqCst) > 0
    }

    /// Wakes every watcher of `key`.
    pub(crate) fn wake(&self, key: &str) {
        if let Some(notify) = self.slots.lock().get(key) {
            notify.notify_waiters();
        }
    }

    /// Number of keys with live watchers (for tests of cancellation).
    pub(crate) fn watched_keys(&self) -> usize {
        self.slots.lock().len()
    }
}

/// A live registration; dropping it unregisters.
#[derive(Debug)]
pub(crate) struct WatchGuard {
    watchers: Arc<Watchers>,
    key: Key,
    notify: Arc<Notify>,
}

impl WatchGuard {
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut slots = self.watchers.slots.lock();
        self.watchers.active.fetch_sub(1, Ordering::SeqCst);
        // Clones of a slot are only made under `slots`, so the count is stable here:
        // 2 means the map's and ours — we are the last watcher of this key.
        if Arc::strong_count(&self.notify) == 2 {
            slots.remove(&self.key);
        }
    }
}
