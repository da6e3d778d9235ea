//! `Replica`: the running object, its write path and its life cycle (flush, close, repair).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::join_all;
use parking_lot::Mutex;
use store_core::{Backend, Error, Key, Result};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::{OwnedSemaphorePermit, RwLock, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::builder::ReplicaBuilder;
use crate::health::Health;
use crate::queue::{self, Message, Mutation, Shared, Stop};
use crate::resync::{ResyncReport, resync};
use crate::stripes::Stripes;
use crate::turns::Turns;

/// A store that writes to a set of synchronous stores and queues the same writes for a set
/// of asynchronous ones. See the [crate documentation](crate) for the full story.
///
/// Cloning is cheap; clones share the stores, queues and error state. When the last clone
/// is dropped the background tasks stop and anything still queued is dropped (counted, and
/// logged) — call [`close`](Replica::close) first to drain the queues.
#[derive(Clone)]
pub struct Replica {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) sync: Vec<Arc<dyn Backend>>,
    async_: Vec<Arc<dyn Backend>>,
    queue_len: usize,
    /// One sender per async store's task.
    queues: Vec<UnboundedSender<Message>>,
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Stops the tasks at once (cancelled on drop; a child of the caller's token).
    stop: CancellationToken,
    closed: AtomicBool,
    /// Mutations hold it shared; `close` and `repair` take it exclusively to wait for them.
    calls: RwLock<()>,
    /// Whether writes to one key must be put in order (more than one store to keep in step).
    ordered: bool,
    /// The per-key locks that order writes to one key.
    turns: Turns,
    /// The version each sync store gave the last write of a key.
    pub(crate) versions: Stripes,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Replica {
    /// A replica over `sync` stores (the first is the primary) and `async_` stores, each
    /// async store with a queue of `queue_len` operations. Needs a tokio runtime when there
    /// are async stores.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `sync` is empty, `queue_len` is 0 (or absurdly large), or
    /// there is no runtime to run the async tasks on.
    pub fn new(
        sync: Vec<Arc<dyn Backend>>,
        async_: Vec<Arc<dyn Backend>>,
        queue_len: usize,
    ) -> Result<Replica> {
        Replica::from_builder(ReplicaBuilder {
            sync,
            async_,
            queue_len,
            shutdown: None,
        })
    }

    /// A [`ReplicaBuilder`].
    pub fn builder() -> ReplicaBuilder {
        ReplicaBuilder::new()
    }

    pub(crate) fn from_builder(b: ReplicaBuilder) -> Result<Replica> {
        let invalid = |reason: &str| Err(Error::invalid_input("new replica", None, reason));
        if b.sync.is_empty() {
            return invalid("a replica needs at least one synchronous store");
        }
        if b.queue_len == 0 {
            return invalid("queue_len must be at least 1");
        }
        if b.queue_len > Semaphore::MAX_PERMITS {
            return invalid("queue_len is too large");
        }
        let runtime = match (b.async_.is_empty(), tokio::runtime::Handle::try_current()) {
            (true, _) => None,
            (false, Ok(handle)) => Some(handle),
            (false, Err(_)) => return invalid("asynchronous stores need a tokio runtime to run on"),
        };
        let shared = Arc::new(Shared::new(b.async_.len(), b.queue_len));
        let stop = Stop {
            now: b
                .shutdown
                .as_ref()
                .map_or_else(CancellationToken::new, |t| t.child_token()),
            shutdown: b.shutdown,
        };
        let mut queues = Vec::with_capacity(b.async_.len());
        let mut workers = Vec::with_capacity(b.async_.len());
        if let Some(rt) = runtime {
            for (i, store) in b.async_.iter().enumerate() {
                let (tx, rx) = unbounded_channel();
                queues.push(tx);
                let task = queue::run(i, Arc::clone(store), Arc::clone(&shared), rx, stop.clone());
                workers.push(rt.spawn(task));
            }
        }
        tracing::debug!(
            sync = b.sync.len(),
            async_ = b.async_.len(),
            queue_len = b.queue_len,
            "replica started"
        );
        Ok(Replica {
            inner: Arc::new(Inner {
                ordered: b.sync.len() + b.async_.len() > 1,
                sync: b.sync,
                async_: b.async_,
                queue_len: b.queue_len,
                queues,
                shared,
                workers: Mutex::new(workers),
                stop: stop.now,
                closed: AtomicBool::new(false),
                calls: RwLock::new(()),
                turns: Turns::default(),
                versions: Stripes::new(),
            }),
        })
    }

    /// The synchronous stores; index 0 is the primary.
    pub fn sync_stores(&self) -> &[Arc<dyn Backend>] {
        &self.inner.sync
    }

    /// The asynchronous stores.
    pub fn async_stores(&self) -> &[Arc<dyn Backend>] {
        &self.inner.async_
    }

    /// How many operations each async store may lag behind before puts wait.
    pub fn queue_len(&self) -> usize {
        self.inner.queue_len
    }

    /// A snapshot of the error state and of each async store's queue: its lag, and its
    /// free slots ([`AsyncHealth::free_slots`](crate::AsyncHealth::free_slots)).
    pub fn health(&self) -> Health {
        Health {
            poisoned: self.inner.shared.poisoned(),
            closed: self.inner.closed.load(Ordering::SeqCst),
            async_stores: self.inner.shared.health(),
        }
    }

    /// Waits until every operation queued before this call has reached its async store.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if an async write failed (before or during the wait),
    /// [`Error::Closed`] after [`close`](Self::close).
    pub async fn flush(&self) -> Result<()> {
        self.check("flush")?;
        self.drained().await;
        self.check("flush")
    }

    /// Stops accepting calls, waits for writes in progress and for every async queue to
    /// drain, then stops the background tasks and waits for them. Idempotent.
    ///
    /// If an async store hangs, so does `close`; cancel the replica's
    /// [`ShutdownToken`](crate::ShutdownToken) to stop at once (queued operations are then
    /// dropped and reported in [`health`](Self::health)).
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the replica is (or ends up) in its error state: the stores
    /// may differ and need a [`resync`].
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let _quiet = self.inner.calls.write().await;
        for queue in &self.inner.queues {
            // A task that has stopped already has nothing to drain.
            let _ = queue.send(Message::Close);
        }
        let workers = std::mem::take(&mut *self.inner.workers.lock());
        for (i, worker) in workers.into_iter().enumerate() {
            if let Err(e) = worker.await {
                tracing::error!(store = i, error = %e, "async replica task failed");
            }
        }
        tracing::debug!("replica closed");
        match self.inner.shared.poisoned() {
            Some(cause) => Err(Error::Poisoned { cause }),
            None => Ok(()),
        }
    }

    /// Repairs a replica in its error state and leaves it: waits for writes in progress,
    /// [`resync`]s every other store (the secondary sync stores, then the async stores) from
    /// the primary, and clears the error. Returns one report per repaired store, secondary
    /// sync stores first. Calls wait while the repair runs.
    ///
    /// Also useful on a healthy replica, to reconcile stores after an outage of which the
    /// replica knew nothing.
    ///
    /// # Errors
    /// [`Error::Closed`] after [`close`](Self::close) or a shutdown (build a fresh replica
    /// over the stores instead); the first error of a resync (the error state stays).
    pub async fn repair(&self) -> Result<Vec<ResyncReport>> {
        let closed = || Error::Closed { op: "repair" };
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(closed());
        }
        let _quiet = self.inner.calls.write().await;
        self.drained().await;
        if self.inner.shared.lanes.iter().any(|l| !l.is_running()) {
            return Err(closed());
        }
        let primary = &self.inner.sync[0];
        let mut reports = Vec::new();
        for store in self.inner.sync[1..].iter().chain(&self.inner.async_) {
            reports.push(resync(&**primary, &**store).await?);
        }
        self.inner.shared.clear_poison();
        tracing::info!(stores = reports.len(), "replica repaired");
        Ok(reports)
    }

    /// Waits until every task has dealt with what was sent to it before (or has stopped).
    async fn drained(&self) {
        let answers = self.inner.queues.iter().filter_map(|queue| {
            let (done, answer) = oneshot::channel();
            queue.send(Message::Flush(done)).ok().map(|()| answer)
        });
        // An answer that never comes (`Err`) is a task that stopped: nothing to wait for.
        join_all(answers).await;
    }

    /// The primary, called as `dyn Backend` directly: calling through the `Arc`'s own
    /// `Backend` impl would box every future twice.
    pub(crate) fn primary(&self) -> &dyn Backend {
        &*self.inner.sync[0]
    }

    /// Fails if the replica is in its error state or closed.
    pub(crate) fn check(&self, op: &'static str) -> Result<()> {
        if let Some(cause) = self.inner.shared.poisoned() {
            return Err(Error::Poisoned { cause });
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed { op });
        }
        Ok(())
    }

    /// The error for a call that found an async task stopped: the error state's cause if
    /// there is one, else closed.
    fn stopped(&self, op: &'static str) -> Error {
        match self.check(op) {
            Err(e) => e,
            Ok(()) => Error::Closed { op },
        }
    }

    /// The one write path, for every mutation and every configuration: takes the key's
    /// turn, then a slot in every async queue (back-pressure), then runs `write` (the sync
    /// stores' writes) and queues `mutation` for every async store. Cancel-safe: what was
    /// taken goes back as it is dropped; a mutation is queued everywhere or nowhere.
    pub(crate) async fn mutate<T>(
        &self,
        op: &'static str,
        key: &Key,
        mutation: Mutation,
        write: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let _call = self.inner.calls.read().await;
        self.check(op)?;
        let claim = self.inner.ordered.then(|| self.inner.turns.claim(key));
        let _turn = match &claim {
            Some(claim) => Some(claim.take().await),
            None => None,
        };
        let mut slots = Vec::with_capacity(self.inner.queues.len());
        for lane in &self.inner.shared.lanes {
            match Arc::clone(&lane.room).acquire_owned().await {
                Ok(slot) => slots.push(slot),
                Err(_) => return Err(self.stopped(op)),
            }
        }
        // The replica may have failed while this call waited.
        self.check(op)?;
        let written = write.await?;
        self.enqueue(op, key, mutation, slots)?;
        Ok(written)
    }

    /// Sends `mutation` to every async store's task, each with its slot. Sending never
    /// waits, so the operation is queued everywhere or (if a task has stopped) the call
    /// fails.
    fn enqueue(
        &self,
        op: &'static str,
        key: &Key,
        mutation: Mutation,
        slots: Vec<OwnedSemaphorePermit>,
    ) -> Result<()> {
        let mut queued = true;
        let lanes = self.inner.queues.iter().zip(&self.inner.shared.lanes);
        for ((queue, lane), slot) in lanes.zip(slots) {
            let message = Message::Apply {
                key: key.clone(),
                mutation: mutation.clone(),
                slot,
            };
            match queue.send(message) {
                Ok(()) => {
                    lane.enqueued.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => queued = false,
            }
        }
        if queued { Ok(()) } else { Err(self.stopped(op)) }
    }
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("sync", &self.inner.sync)
            .field("async", &self.inner.async_)
            .field("queue_len", &self.inner.queue_len)
            .field("poisoned", &self.inner.shared.poisoned().is_some())
            .finish_non_exhaustive()
    }
}
