//! What a replica reports about itself: its error state and the lag of each async store.

use std::sync::Arc;

use store_core::Error;

/// A snapshot of a [`Replica`](crate::Replica)'s state, from [`Replica::health`](crate::Replica::health).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Health {
    /// The cause of the sticky error state, if the replica is in it.
    pub poisoned: Option<Arc<Error>>,
    /// Whether [`Replica::close`](crate::Replica::close) was called.
    pub closed: bool,
    /// One entry per asynchronous store, in the order they were given.
    pub async_stores: Vec<AsyncHealth>,
}

impl Health {
    /// True when the replica accepts calls and no async store has failed.
    pub fn is_healthy(&self) -> bool {
        self.poisoned.is_none() && !self.closed && self.async_stores.iter().all(|a| a.running)
    }

    /// The largest number of operations waiting in any async queue.
    pub fn max_lag(&self) -> u64 {
        self.async_stores.iter().map(|a| a.queued).max().unwrap_or(0)
    }
}

/// The state of one asynchronous store's queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AsyncHealth {
    /// The store's index among the asynchronous stores.
    pub index: usize,
    /// Operations queued (or being applied) but not yet applied: the replica's lag.
    pub queued: u64,
    /// Operations applied successfully since the replica was built.
    pub applied: u64,
    /// Operations that were queued but never applied: discarded after a failure put the
    /// replica in its error state, or left in the queue when it was shut down.
    pub dropped: u64,
    /// Slots of the queue not taken: the queue length less the operations queued, being
    /// applied, or reserved by a put or delete in progress. Equal to
    /// [`Replica::queue_len`](crate::Replica::queue_len) when no mutation is in progress and
    /// the store has caught up (after [`Replica::flush`](crate::Replica::flush), say); a
    /// mutation that fails or is cancelled gives its slots back.
    pub free_slots: usize,
    /// The last error this store returned, if any.
    pub last_error: Option<Arc<Error>>,
    /// Whether the store's background task is still running.
    pub running: bool,
}
