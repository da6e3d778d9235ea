//! The asynchronous side: one FIFO queue and one background task per async store.
//!
//! Capacity is a semaphore per store rather than a bound on the queue itself: a put takes one
//! permit from *every* async store before it writes anything, and the task gives a permit
//! back only when an operation has been applied (or discarded). So `queue_len` counts
//! operations not yet applied, including the one in flight, and a put that is cancelled
//! while waiting for room simply drops the permits it already holds: it is queued
//! everywhere or nowhere.
//!
//! The queue itself is a `VecDeque` under a short lock, not a channel: pushing is a lock,
//! a push and an unlock, and the task is woken only when it is idle (waiting for work).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use store_core::{Backend, DeleteOptions, Error, Key, MultiError, PutOptions, Result};
use tokio::sync::{Notify, Semaphore, TryAcquireError};

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

/// One queued operation. Its slot of the queue (see [`Reservation`]) is given back by the
/// task once the operation is applied or discarded.
#[derive(Debug)]
pub(crate) struct QueuedOp {
    pub(crate) key: Key,
    pub(crate) mutation: Mutation,
}

/// The operations of one lane not yet taken by its task.
#[derive(Debug)]
struct Pending {
    ops: VecDeque<QueuedOp>,
    /// Operations ever pushed.
    enqueued: u64,
    /// The task found the queue empty and waits on [`Lane::work`].
    idle: bool,
    /// The task has stopped: pushes fail.
    closed: bool,
}

/// The shared state of one async store's queue.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) permits: Semaphore,
    pending: Mutex<Pending>,
    /// Wakes an idle task.
    work: Notify,
    applied: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<Arc<Error>>>,
    running: AtomicBool,
}

impl Lane {
    fn new(queue_len: usize) -> Self {
        Lane {
            permits: Semaphore::new(queue_len),
            pending: Mutex::new(Pending {
                // Room for the common case up front (at most 1024 operations, about 56 KiB), so
                // a burst of puts does not reallocate the queue as it grows.
                ops: VecDeque::with_capacity(queue_len.min(1024)),
                enqueued: 0,
                idle: false,
                closed: false,
            }),
            work: Notify::new(),
            applied: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
            running: AtomicBool::new(true),
        }
    }

    /// Queues `op` for the task (its slot was reserved before). False if the task has
    /// stopped.
    pub(crate) fn push(&self, op: QueuedOp) -> bool {
        let mut pending = self.pending.lock();
        if pending.closed {
            return false;
        }
        pending.ops.push_back(op);
        pending.enqueued += 1;
        let wake = std::mem::take(&mut pending.idle);
        drop(pending);
        if wake {
            // Stores a permit if the task has not begun waiting yet: no wake-up is lost.
            self.work.notify_one();
        }
        true
    }

    /// The next operation; waits while the queue is empty.
    async fn next(&self) -> QueuedOp {
        loop {
            {
                let mut pending = self.pending.lock();
                if let Some(op) = pending.ops.pop_front() {
                    pending.idle = false;
                    return op;
                }
                pending.idle = true;
            }
            self.work.notified().await;
        }
    }

    /// Stops accepting operations; returns how many were still queued (now dropped).
    fn close(&self) -> u64 {
        let mut pending = self.pending.lock();
        pending.closed = true;
        let lost = std::mem::take(&mut pending.ops);
        drop(pending);
        lost.len() as u64
    }

    fn enqueued(&self) -> u64 {
        self.pending.lock().enqueued
    }

    fn finished(&self) -> u64 {
        self.applied.load(Ordering::SeqCst) + self.dropped.load(Ordering::SeqCst)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    pub(crate) fn health(&self, index: usize) -> AsyncHealth {
        let applied = self.applied.load(Ordering::SeqCst);
        let dropped = self.dropped.load(Ordering::SeqCst);
        AsyncHealth {
            index,
            queued: self.enqueued().saturating_sub(applied + dropped),
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
}

impl Core {
    pub(crate) fn new(async_stores: usize, queue_len: usize) -> Self {
        Core {
            poison: RwLock::new(None),
            poisoned_flag: AtomicBool::new(false),
            progress: Notify::new(),
            lanes: (0..async_stores).map(|_| Lane::new(queue_len)).collect(),
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
        self.lanes.iter().map(Lane::enqueued).collect()
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

    /// Takes one slot in every lane without waiting. `Err(true)` if a lane has stopped,
    /// `Err(false)` if one is full (or has putters waiting for room).
    pub(crate) fn try_reserve(&self) -> Result<Reservation<'_>, bool> {
        let mut r = Reservation {
            lanes: &self.lanes,
            taken: 0,
        };
        for lane in &self.lanes {
            match lane.permits.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    r.taken += 1;
                }
                Err(TryAcquireError::Closed) => return Err(true),
                Err(TryAcquireError::NoPermits) => return Err(false),
            }
        }
        Ok(r)
    }

    /// Takes one slot in every lane, in lane order, waiting for room. Cancel-safe: slots
    /// already taken are given back if the future is dropped. `None` if a lane has stopped.
    pub(crate) async fn reserve(&self) -> Option<Reservation<'_>> {
        let mut r = Reservation {
            lanes: &self.lanes,
            taken: 0,
        };
        for lane in &self.lanes {
            lane.permits.acquire().await.ok()?.forget();
            r.taken += 1;
        }
        Some(r)
    }
}

/// One slot taken in each of the first `taken` lanes. Dropped uncommitted (an error, a
/// cancelled put), it gives them back; committed, the slots travel with the queued
/// operations and the tasks give them back once those are done.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    lanes: &'a [Lane],
    taken: usize,
}

impl Reservation<'_> {
    /// The operation was queued in every lane.
    pub(crate) fn commit(mut self) {
        self.taken = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        for lane in &self.lanes[..self.taken] {
            lane.permits.add_permits(1);
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
            op = lane.next() => op,
        };
        if core.is_poisoned() {
            lane.dropped.fetch_add(1, Ordering::SeqCst);
            lane.permits.add_permits(1);
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
        lane.permits.add_permits(1);
        core.progress.notify_waiters();
    };
    // Poisoned before the queue closes, so that putters woken below report the cause.
    if let Stop::Shutdown = stop {
        core.poison(Arc::new(Error::Closed {
            op: "replica shutdown",
        }));
    }
    // No more sends can succeed, and putters waiting for room wake up with an error.
    let lost = lane.close();
    lane.permits.close();
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
