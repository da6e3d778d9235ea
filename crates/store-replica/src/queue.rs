//! The asynchronous side: one FIFO queue and one background task per async store.
//!
//! Each async store has an unbounded `mpsc` channel and a [`Semaphore`] of `queue_len`
//! permits, the room of its queue. A mutation takes a permit from every async store's
//! semaphore before it writes anything (back-pressure), and each permit travels down its
//! channel with the queued operation; the task drops it once the operation is applied or
//! discarded. So `queue_len` bounds the operations reserved, queued or being applied, and
//! a mutation that fails or is cancelled before it is queued gives its permits back as
//! they drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use store_core::{Backend, DeleteOptions, Error, Key, MultiError, PutOptions, Result};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use crate::health::AsyncHealth;

/// A mutation to replay on an async store (cheap to clone: `Bytes` is shared).
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Overwrite the key with these bytes.
    Put(Bytes),
    /// Delete the key (absent is fine: the goal is that it is gone).
    Delete,
}

/// What a task receives, in the order it was sent.
#[derive(Debug)]
pub(crate) enum Message {
    /// Apply `mutation` to `key`. `slot` is the operation's room in the queue, given back
    /// when it is dropped: once applied or discarded, or with the message.
    Apply {
        key: Key,
        mutation: Mutation,
        slot: OwnedSemaphorePermit,
    },
    /// Answer once everything sent before has been applied or discarded.
    Flush(oneshot::Sender<()>),
    /// Apply everything sent before, then end the task.
    Close,
}

/// State shared by the replica and its background tasks. The tasks hold this, never the
/// replica itself, so dropping the last replica handle is what stops them.
#[derive(Debug)]
pub(crate) struct Shared {
    poison: RwLock<Option<Arc<Error>>>,
    pub(crate) lanes: Vec<Lane>,
}

/// One async store's queue: its room and what became of the operations sent down it.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) room: Arc<Semaphore>,
    pub(crate) enqueued: AtomicU64,
    applied: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<Arc<Error>>>,
    running: AtomicBool,
}

impl Lane {
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn health(&self, index: usize) -> AsyncHealth {
        let applied = self.applied.load(Ordering::SeqCst);
        let dropped = self.dropped.load(Ordering::SeqCst);
        AsyncHealth {
            index,
            queued: self
                .enqueued
                .load(Ordering::SeqCst)
                .saturating_sub(applied + dropped),
            applied,
            dropped,
            free_slots: self.room.available_permits(),
            last_error: self.last_error.lock().clone(),
            running: self.is_running(),
        }
    }
}

impl Shared {
    pub(crate) fn new(async_stores: usize, queue_len: usize) -> Self {
        let lane = || Lane {
            room: Arc::new(Semaphore::new(queue_len)),
            enqueued: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
            running: AtomicBool::new(true),
        };
        Shared {
            poison: RwLock::new(None),
            lanes: (0..async_stores).map(|_| lane()).collect(),
        }
    }

    /// The cause of the sticky error state, if any.
    pub(crate) fn poisoned(&self) -> Option<Arc<Error>> {
        self.poison.read().clone()
    }

    /// Enters the error state; the first cause is kept.
    fn poison(&self, cause: Arc<Error>) {
        let mut slot = self.poison.write();
        if slot.is_none() {
            tracing::error!(cause = %cause, "replica poisoned");
            *slot = Some(cause);
        }
    }

    /// Leaves the error state (after a repair).
    pub(crate) fn clear_poison(&self) {
        *self.poison.write() = None;
    }

    /// Each lane's health.
    pub(crate) fn health(&self) -> Vec<AsyncHealth> {
        self.lanes.iter().enumerate().map(|(i, l)| l.health(i)).collect()
    }
}

/// How a task learns it must stop before its queue is drained.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    /// Cancelled when the last replica handle is dropped, or by the caller's token (it
    /// is a child of that token).
    pub(crate) now: CancellationToken,
    /// The caller's token, if any: telling a shutdown (which poisons) from a drop.
    pub(crate) shutdown: Option<CancellationToken>,
}

/// The background task of async store `index`: applies its queue in FIFO order until the
/// replica is closed, dropped or shut down.
///
/// After any failure (in any lane) the replica is poisoned and operations are discarded
/// instead of applied: applying later writes after a lost one could leave the store in a
/// state no caller ever saw. A repair resynchronises the stores and clears the poison.
pub(crate) async fn run(
    index: usize,
    store: Arc<dyn Backend>,
    shared: Arc<Shared>,
    mut queue: UnboundedReceiver<Message>,
    stop: Stop,
) {
    let lane = &shared.lanes[index];
    let stopped = stop.now.cancelled();
    tokio::pin!(stopped);
    let closed = loop {
        let message = tokio::select! {
            biased;
            () = &mut stopped => break false,
            message = queue.recv() => message,
        };
        // `None`: every sender is gone, which happens only once the replica is dropped.
        let (key, mutation, slot) = match message {
            None => break false,
            Some(Message::Close) => break true,
            Some(Message::Flush(done)) => {
                let _ = done.send(());
                continue;
            }
            Some(Message::Apply { key, mutation, slot }) => (key, mutation, slot),
        };
        if shared.poisoned().is_some() {
            lane.dropped.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let result = tokio::select! {
            biased;
            () = &mut stopped => {
                lane.dropped.fetch_add(1, Ordering::SeqCst);
                break false;
            }
            r = apply(&*store, &key, &mutation) => r,
        };
        match result {
            Ok(()) => {
                lane.applied.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                tracing::warn!(store = index, key = %key, error = %e, "async replica write failed");
                let cause = Arc::new(Error::Multi(MultiError::new(vec![(index, e)])));
                *lane.last_error.lock() = Some(Arc::clone(&cause));
                lane.dropped.fetch_add(1, Ordering::SeqCst);
                shared.poison(cause);
            }
        }
        // The slot goes back only now: it was taken until the write was done.
        drop(slot);
    };
    let shut_down = !closed && stop.shutdown.as_ref().is_some_and(|t| t.is_cancelled());
    // Poisoned before the room closes, so that putters woken below report the cause.
    if shut_down {
        shared.poison(Arc::new(Error::Closed {
            op: "replica shutdown",
        }));
    }
    // Putters waiting for room wake up with an error, and no more sends succeed.
    lane.room.close();
    queue.close();
    let mut lost = 0;
    while let Ok(message) = queue.try_recv() {
        lost += u64::from(matches!(message, Message::Apply { .. }));
    }
    lane.dropped.fetch_add(lost, Ordering::SeqCst);
    if closed {
        tracing::debug!(store = index, "async replica task finished");
    } else if shut_down {
        tracing::warn!(store = index, lost, "replica shut down");
    } else if lost > 0 {
        tracing::warn!(store = index, lost, "replica dropped with queued operations");
    }
    lane.running.store(false, Ordering::SeqCst);
}

async fn apply(store: &dyn Backend, key: &Key, mutation: &Mutation) -> Result<()> {
    match mutation {
        Mutation::Put(data) => store
            .put(key, data.clone(), PutOptions::default())
            .await
            .map(drop),
        Mutation::Delete => match store.delete(key, DeleteOptions::default()).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        },
    }
}
