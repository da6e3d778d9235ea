//! The asynchronous side: one FIFO queue and one background task per async store.
//!
//! The queues and their room are the [`Gate`]'s (see there for how room is counted): each
//! queue is a `VecDeque` under the gate's short lock, not a channel, since the put that
//! queues an operation holds that lock anyway. A task is woken only when it is idle
//! (waiting for work).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use store_core::{Backend, DeleteOptions, Error, Key, MultiError, PutOptions, Result};
use tokio::sync::Notify;

use crate::gate::{Gate, GateState};
use crate::health::AsyncHealth;
use crate::shutdown::ShutdownToken;

/// A mutation to replay on an async store (cheap to clone: `Bytes` is shared).
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Overwrite the key with these bytes.
    Put(Bytes),
    /// Delete the key (absent is fine: the goal is that it is gone).
    Delete,
}

/// One queued operation. Its slot of the queue (see
/// [`Reservation`](crate::gate::Reservation)) is given back by the task once the operation
/// is applied or discarded.
#[derive(Debug, Clone)]
pub(crate) struct QueuedOp {
    pub(crate) key: Key,
    pub(crate) mutation: Mutation,
}

/// The shared state of one async store's queue (the queue itself is under the
/// [`Gate`]'s lock).
#[derive(Debug)]
pub(crate) struct Lane {
    /// Wakes an idle task.
    work: Notify,
    applied: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<Arc<Error>>>,
    running: AtomicBool,
}

impl Lane {
    fn new() -> Self {
        Lane {
            work: Notify::new(),
            applied: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
            running: AtomicBool::new(true),
        }
    }

    /// Wakes the task, which found its queue empty. (If it has not begun waiting yet, a
    /// permit is stored: no wake-up is lost.)
    #[inline]
    pub(crate) fn wake(&self) {
        self.work.notify_one();
    }

    fn finished(&self) -> u64 {
        self.applied.load(Ordering::SeqCst) + self.dropped.load(Ordering::SeqCst)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn health(&self, index: usize, enqueued: u64) -> AsyncHealth {
        let applied = self.applied.load(Ordering::SeqCst);
        let dropped = self.dropped.load(Ordering::SeqCst);
        AsyncHealth {
            index,
            queued: enqueued.saturating_sub(applied + dropped),
            applied,
            dropped,
            last_error: self.last_error.lock().clone(),
            running: self.is_running(),
        }
    }
}

/// State shared by the replica and its background tasks. The tasks hold this, never the
/// replica itself, so dropping the last replica handle is what stops them.
#[derive(Debug)]
pub(crate) struct Core {
    poison: RwLock<Option<Arc<Error>>>,
    /// Mirrors `poison.is_some()`, so the check every call makes takes no lock.
    poisoned_flag: AtomicBool,
    /// Woken after every applied or discarded operation and when a task stops.
    progress: Notify,
    pub(crate) lanes: Vec<Lane>,
    /// The queues, their room and the keys' turns.
    pub(crate) gate: Gate,
}

impl Core {
    pub(crate) fn new(async_stores: usize, queue_len: usize) -> Self {
        Core {
            poison: RwLock::new(None),
            poisoned_flag: AtomicBool::new(false),
            progress: Notify::new(),
            lanes: (0..async_stores).map(|_| Lane::new()).collect(),
            gate: Gate::new(async_stores, queue_len),
        }
    }

    /// Whether the replica is in its error state (lock-free).
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned_flag.load(Ordering::SeqCst)
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
            self.poisoned_flag.store(true, Ordering::SeqCst);
        }
        drop(slot);
        self.progress.notify_waiters();
    }

    /// Leaves the error state (after a repair).
    pub(crate) fn clear_poison(&self) {
        let mut slot = self.poison.write();
        *slot = None;
        self.poisoned_flag.store(false, Ordering::SeqCst);
    }

    /// How many operations each lane has been given so far.
    pub(crate) fn enqueued(&self) -> Vec<u64> {
        let gate = self.gate.lock();
        (0..self.lanes.len()).map(|i| gate.enqueued(i)).collect()
    }

    /// Each lane's health.
    pub(crate) fn health(&self) -> Vec<AsyncHealth> {
        let enqueued = self.enqueued();
        self.lanes
            .iter()
            .zip(enqueued)
            .enumerate()
            .map(|(i, (lane, enqueued))| lane.health(i, enqueued))
            .collect()
    }

    /// Queues `op` for every lane's task. False if a task has stopped (the operation is
    /// then queued only for the others).
    #[inline]
    pub(crate) fn push(&self, gate: &mut GateState, op: QueuedOp) -> bool {
        gate.push(op, |i| self.lanes[i].wake())
    }

    /// The next operation for lane `index`; waits while its queue is empty.
    async fn next(&self, index: usize) -> QueuedOp {
        loop {
            if let Some(op) = self.gate.lock().pop(index) {
                return op;
            }
            self.lanes[index].work.notified().await;
        }
    }

    /// Waits until each lane has applied or discarded `targets[i]` operations, or stopped.
    pub(crate) async fn drained(&self, targets: &[u64]) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            // Enabled before the check, so progress made right after it still wakes us.
            notified.as_mut().enable();
            let done = self
                .lanes
                .iter()
                .zip(targets)
                .all(|(lane, target)| !lane.is_running() || lane.finished() >= *target);
            if done {
                return;
            }
            notified.await;
        }
    }
}

/// What makes a lane's task stop.
#[derive(Debug, Clone)]
pub(crate) struct Signals {
    /// Cancelled by `close` once the queues are drained.
    pub(crate) closing: ShutdownToken,
    /// Cancelled when the last replica handle is dropped.
    pub(crate) dropped: ShutdownToken,
    /// The caller's token, if any.
    pub(crate) shutdown: Option<ShutdownToken>,
}

/// How a lane's task ended.
enum Stop {
    /// `close` drained the queue and asked the task to end.
    Closed,
    /// The replica was dropped.
    Dropped,
    /// The caller's shutdown token was cancelled.
    Shutdown,
}

/// The background task of async store `index`: applies its queue in FIFO order until the
/// replica is closed, dropped or shut down.
///
/// After any failure (in any lane) the replica is poisoned and operations are discarded
/// instead of applied: applying later writes after a lost one could leave the store in a
/// state no caller ever saw. A repair resynchronises the stores and clears the poison.
pub(crate) async fn run(index: usize, store: Arc<dyn Backend>, core: Arc<Core>, signals: Signals) {
    let lane = &core.lanes[index];
    let stopping = async {
        let shutdown = async {
            match &signals.shutdown {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signals.closing.cancelled() => Stop::Closed,
            () = signals.dropped.cancelled() => Stop::Dropped,
            () = shutdown => Stop::Shutdown,
        }
    };
    tokio::pin!(stopping);
    let stop = loop {
        let op = tokio::select! {
            biased;
            stop = &mut stopping => break stop,
            op = core.next(index) => op,
        };
        if core.is_poisoned() {
            lane.dropped.fetch_add(1, Ordering::SeqCst);
            core.gate.release_slot(index);
            core.progress.notify_waiters();
            continue;
        }
        let result = tokio::select! {
            biased;
            stop = &mut stopping => {
                lane.dropped.fetch_add(1, Ordering::SeqCst);
                break stop;
            }
            r = apply(&*store, &op) => r,
        };
        match result {
            Ok(()) => {
                lane.applied.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                tracing::warn!(store = index, key = %op.key, error = %e, "async replica write failed");
                let cause = Arc::new(Error::Multi(MultiError::new(vec![(index, e)])));
                *lane.last_error.lock() = Some(Arc::clone(&cause));
                lane.dropped.fetch_add(1, Ordering::SeqCst);
                core.poison(cause);
            }
        }
        // The slot goes back only now: it was taken until the write was done.
        core.gate.release_slot(index);
        core.progress.notify_waiters();
    };
    // Poisoned before the queue closes, so that putters woken below report the cause.
    if let Stop::Shutdown = stop {
        core.poison(Arc::new(Error::Closed {
            op: "replica shutdown",
        }));
    }
    // No more sends can succeed, and putters waiting for room wake up with an error.
    let lost = core.gate.close(index);
    lane.dropped.fetch_add(lost, Ordering::SeqCst);
    match stop {
        Stop::Closed => tracing::debug!(store = index, "async replica task finished"),
        Stop::Dropped => {
            if lost > 0 {
                tracing::warn!(store = index, lost, "replica dropped with queued operations");
            }
        }
        Stop::Shutdown => tracing::warn!(store = index, lost, "replica shut down"),
    }
    lane.running.store(false, Ordering::SeqCst);
    core.progress.notify_waiters();
}

async fn apply(store: &dyn Backend, op: &QueuedOp) -> Result<()> {
    match &op.mutation {
        Mutation::Put(data) => store
            .put(&op.key, data.clone(), PutOptions::default())
            .await
            .map(drop),
        Mutation::Delete => match store.delete(&op.key, DeleteOptions::default()).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        },
    }
}
