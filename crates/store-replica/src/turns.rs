//! Per-key write order: one async lock per key that some mutation holds or waits for.
//!
//! A mutation holds its key's lock from its sync writes until it is queued for the async
//! stores, so two writes to one key reach every store, sync and async, in the same order.
//! Waiters are served first come, first served (tokio's `Mutex` is fair). A key's entry
//! exists only while a mutation holds or waits for it.

use std::sync::Arc;

use dashmap::DashMap;
use store_core::Key;
use tokio::sync::{Mutex, MutexGuard};

/// The locks of the keys being written.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    locks: DashMap<Key, Arc<Mutex<()>>>,
}

/// A mutation's claim on its key's lock, held or waited for. Dropping it removes the
/// key's entry if no other mutation holds or waits for the key.
pub(crate) struct Claim<'a> {
    turns: &'a Turns,
    key: &'a Key,
    lock: Arc<Mutex<()>>,
}

impl Turns {
    /// Claims `key`'s lock; take it with [`Claim::take`].
    pub(crate) fn claim<'a>(&'a self, key: &'a Key) -> Claim<'a> {
        let lock = Arc::clone(self.locks.entry(key.clone()).or_default().value());
        Claim {
            turns: self,
            key,
            lock,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.len()
    }
}

impl Claim<'_> {
    /// Waits for the key's turn. The guard borrows the claim, so it always goes first.
    pub(crate) async fn take(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().await
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // Entries are cloned only under their shard's lock, which `remove_if` holds: two
        // references (the map's and this claim's) mean nobody else holds or waits.
        self.turns
            .locks
            .remove_if(self.key, |_, lock| Arc::strong_count(lock) == 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_waits_for_its_holder_and_entries_go_with_their_last_claim() {
        let turns = Turns::default();
        let (a, b) = (Key::new("a").unwrap(), Key::new("b").unwrap());
        let first = turns.claim(&a);
        let held = first.take().await;
        // Another key is not held up.
        let other = turns.claim(&b);
        drop(other.take().await);
        drop(other);
        assert_eq!(turns.len(), 1);

        let second = turns.claim(&a);
        let mut waiting = Box::pin(second.take());
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(held);
        drop(first);
        assert_eq!(turns.len(), 1, "the waiter keeps the entry");
        drop(waiting.await);
        drop(second);
        assert_eq!(turns.len(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_entry_behind() {
        let turns = Turns::default();
        let k = Key::new("k").unwrap();
        let holder = turns.claim(&k);
        let held = holder.take().await;
        {
            let waiter = turns.claim(&k);
            let mut waiting = Box::pin(waiter.take());
            assert!(futures::poll!(&mut waiting).is_pending());
            // Dropped while waiting: the future, then the claim.
        }
        drop(held);
        drop(holder);
        assert_eq!(turns.len(), 0);
    }
}
