//! `Replica`: the running object and its `Backend` implementation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{BoxFuture, join_all};
use futures::stream::{self, BoxStream, FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use store_core::{
    Backend, BufferedWriter, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta,
    MultiError, Object, ObjectWriter, PutMode, PutOptions, Result, Version,
};
use tokio::task::JoinHandle;

use crate::builder::ReplicaBuilder;
use crate::gate::{Reservation, Room, Turn, turn_bit};
use crate::health::Health;
use crate::merge;
use crate::queue::{self, Core, Mutation, QueuedOp, Signals};
use crate::resync::{ResyncReport, resync};
use crate::shutdown::ShutdownToken;
use crate::stripes::{Stripes, foreign};

/// A store that writes to a set of synchronous stores and queues the same writes for a set
/// of asynchronous ones. See the [crate documentation](crate) for the full story.
///
/// Cloning is cheap; clones share the stores, queues and error state. When the last clone
/// is dropped the background tasks stop and anything still queued is dropped (counted, and
/// logged) — call [`close`](Replica::close) first to drain the queues.
#[derive(Clone)]
pub struct Replica {
    inner: Arc<Inner>,
}

struct Inner {
    sync: Vec<Arc<dyn Backend>>,
    async_: Vec<Arc<dyn Backend>>,
    queue_len: usize,
    core: Arc<Core>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Ends the tasks (`closing` after a drain, `dropped` at once).
    signals: Signals,
    closed: AtomicBool,
    /// The version each sync store gave the last write of a key (per-key order and the
    /// queues are the [gate](crate::gate)'s, in `core`).
    stripes: Stripes,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.signals.dropped.cancel();
    }
}

/// The largest queue length accepted: anything near `usize::MAX` is a mistake, and slot
/// counts must not overflow.
const MAX_QUEUE_LEN: usize = usize::MAX >> 3;

/// A mutation admitted: its key's turn (when there is an order to keep) and the queue
/// capacity it needs. Dropping it (on error or cancellation) gives both back.
struct Admission<'a> {
    turn: Option<Turn<'a>>,
    slots: Reservation<'a>,
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
        if b.queue_len > MAX_QUEUE_LEN {
            return invalid("queue_len is too large");
        }
        let runtime = match (b.async_.is_empty(), tokio::runtime::Handle::try_current()) {
            (true, _) => None,
            (false, Ok(handle)) => Some(handle),
            (false, Err(_)) => return invalid("asynchronous stores need a tokio runtime to run on"),
        };
        let core = Arc::new(Core::new(b.async_.len(), b.queue_len));
        let signals = Signals {
            closing: ShutdownToken::new(),
            dropped: ShutdownToken::new(),
            shutdown: b.shutdown.clone(),
        };
        let mut workers = Vec::with_capacity(b.async_.len());
        if let Some(rt) = runtime {
            for (i, store) in b.async_.iter().enumerate() {
                workers.push(rt.spawn(queue::run(
                    i,
                    Arc::clone(store),
                    Arc::clone(&core),
                    signals.clone(),
                )));
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
                sync: b.sync,
                async_: b.async_,
                queue_len: b.queue_len,
                core,
                workers: Mutex::new(workers),
                signals,
                closed: AtomicBool::new(false),
                stripes: Stripes::new(),
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

    /// A snapshot of the error state and of each async store's lag.
    pub fn health(&self) -> Health {
        Health {
            poisoned: self.inner.core.poisoned(),
            closed: self.inner.closed.load(Ordering::SeqCst),
            async_stores: self.inner.core.health(),
        }
    }

    /// Waits until every operation queued before this call has reached its async store.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if an async write failed (before or during the wait),
    /// [`Error::Closed`] after [`close`](Self::close).
    pub async fn flush(&self) -> Result<()> {
        self.check("flush")?;
        let targets = self.inner.core.enqueued();
        self.inner.core.drained(&targets).await;
        self.check("flush")
    }

    /// Stops accepting calls, waits for writes in progress and for every async queue to
    /// drain, then stops the background tasks and waits for them. Idempotent.
    ///
    /// If an async store hangs, so does `close`; cancel the replica's [`ShutdownToken`] to
    /// stop at once (queued operations are then dropped and reported in [`health`](Self::health)).
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the replica is (or ends up) in its error state: the stores
    /// may differ and need a [`resync`].
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.store(true, Ordering::SeqCst);
        let quiet = self.inner.core.gate.exclusive().await;
        let targets = self.inner.core.enqueued();
        self.inner.core.drained(&targets).await;
        // The queues are empty and stay so (the gate is held exclusively): end the tasks.
        self.inner.signals.closing.cancel();
        drop(quiet);
        let workers = std::mem::take(&mut *self.inner.workers.lock());
        for (i, worker) in workers.into_iter().enumerate() {
            if let Err(e) = worker.await {
                tracing::error!(store = i, error = %e, "async replica task failed");
            }
        }
        tracing::debug!("replica closed");
        match self.inner.core.poisoned() {
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
        let _quiet = self.inner.core.gate.exclusive().await;
        let targets = self.inner.core.enqueued();
        self.inner.core.drained(&targets).await;
        if self.inner.core.lanes.iter().any(|l| !l.is_running()) {
            return Err(closed());
        }
        let primary = &self.inner.sync[0];
        let mut reports = Vec::new();
        for store in self.inner.sync[1..].iter().chain(&self.inner.async_) {
            reports.push(resync(&**primary, &**store).await?);
        }
        self.inner.core.clear_poison();
        tracing::info!(stores = reports.len(), "replica repaired");
        Ok(reports)
    }

    /// The primary, called as `dyn Backend` directly: calling through the `Arc`'s own
    /// `Backend` impl would box every future twice.
    fn primary(&self) -> &dyn Backend {
        &*self.inner.sync[0]
    }

    /// Fails if the replica is in its error state or closed.
    fn check(&self, op: &'static str) -> Result<()> {
        if !self.inner.core.is_poisoned() && !self.inner.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(cause) = self.inner.core.poisoned() {
            return Err(Error::Poisoned { cause });
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed { op });
        }
        Ok(())
    }

    /// Admits a mutation of `key`: waits for its turn on the key and for room in every async
    /// queue (back-pressure). Cancel-safe: dropping the future releases whatever it held.
    async fn admit(&self, op: &'static str, key: &Key) -> Result<Admission<'_>> {
        if let Some(adm) = self.try_admit(op, key)? {
            return Ok(adm);
        }
        // Boxed so that the common, uncontended path keeps the put future small.
        Box::pin(self.admit_waiting(op, key)).await
    }

    /// Ordering matters only when there is more than one store to keep in step.
    fn needs_order(&self) -> bool {
        self.inner.sync.len() + self.inner.async_.len() > 1
    }

    /// The uncontended case of [`admit`](Self::admit), with nothing to wait for.
    fn try_admit(&self, op: &'static str, key: &Key) -> Result<Option<Admission<'_>>> {
        let gate = &self.inner.core.gate;
        let bit = turn_bit(key);
        let mut state = gate.lock();
        // Checked under the gate: `close` sets `closed`, then takes the gate exclusively.
        self.check(op)?;
        if self.needs_order() && !state.turn_free(bit) {
            return Ok(None);
        }
        match state.try_reserve() {
            Room::Taken => {}
            Room::Full => return Ok(None),
            Room::Stopped => {
                drop(state);
                return Err(self.stopped(op));
            }
        }
        let turn = self.needs_order().then(|| state.take_turn(gate, bit));
        Ok(Some(Admission {
            turn,
            slots: Reservation::new(gate),
        }))
    }

    async fn admit_waiting(&self, op: &'static str, key: &Key) -> Result<Admission<'_>> {
        // Not waiting for a turn on a replica that is closed or failed already.
        self.check(op)?;
        let turn = if self.needs_order() {
            Some(self.inner.core.gate.turn(turn_bit(key)).await)
        } else {
            None
        };
        self.check(op)?;
        let Some(slots) = self.inner.core.gate.reserve().await else {
            return Err(self.stopped(op));
        };
        // The replica may have failed while this call waited for room.
        self.check(op)?;
        Ok(Admission { turn, slots })
    }

    /// The error for a call that found an async task stopped: the error state's cause if
    /// there is one, else closed.
    fn stopped(&self, op: &'static str) -> Error {
        match self.check(op) {
            Err(e) => e,
            Ok(()) => Error::Closed { op },
        }
    }

    /// Queues `mutation` for every async store, using the capacity `adm` reserved, and
    /// gives the key's turn back. Queuing never waits, so the operation is queued
    /// everywhere or (if a task has stopped) the call fails.
    fn enqueue(&self, op: &'static str, key: &Key, mutation: Mutation, adm: Admission<'_>) -> Result<()> {
        let core = &self.inner.core;
        let mut gate = core.gate.lock();
        let queued = core.push(
            &mut gate,
            QueuedOp {
                key: key.clone(),
                mutation,
            },
        );
        let released = adm.turn.map(|turn| turn.release(&mut gate));
        drop(gate);
        // The slots now travel with the queued operations.
        adm.slots.commit();
        if let Some(released) = released {
            released.wake();
        }
        if queued { Ok(()) } else { Err(self.stopped(op)) }
    }

    /// Joins the results of a write to several sync stores: all must succeed.
    fn all_ok<T>(&self, results: Vec<(usize, Result<T>)>) -> Result<Vec<T>> {
        let mut oks = Vec::with_capacity(results.len());
        let mut errors = Vec::new();
        for (i, r) in results {
            match r {
                Ok(v) => oks.push(v),
                Err(e) => errors.push((i, e)),
            }
        }
        match errors.len() {
            0 => Ok(oks),
            1 if self.inner.sync.len() == 1 => Err(errors.remove(0).1),
            _ => Err(MultiError::new(errors).into()),
        }
    }

    /// Writes to the sync stores. Overwrites go to all of them at once; a conditional put
    /// is decided by the primary and then copied to the others unconditionally.
    async fn put_sync(&self, key: &Key, data: &Bytes, mode: PutMode) -> Result<Vec<Meta>> {
        let sync = &self.inner.sync;
        let overwrite = || PutOptions::default();
        let rest = |from: usize| {
            join_all(
                sync.iter()
                    .enumerate()
                    .skip(from)
                    .map(|(i, s)| async move { (i, (**s).put(key, data.clone(), overwrite()).await) }),
            )
        };
        match mode {
            PutMode::Overwrite => self.all_ok(rest(0).await),
            mode => {
                let primary = (*sync[0]).put(key, data.clone(), mode.into()).await?;
                let mut results = vec![(0, Ok(primary))];
                results.extend(rest(1).await);
                self.all_ok(results)
            }
        }
    }

    /// Deletes from the sync stores: the primary first (it decides `if_match` and
    /// `NotFound`), then the others, for which absent already is fine.
    async fn delete_sync(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let sync = &self.inner.sync;
        (*sync[0]).delete(key, opts).await?;
        let results = join_all(sync.iter().enumerate().skip(1).map(|(i, s)| async move {
            match (**s).delete(key, DeleteOptions::default()).await {
                Err(e) if e.is_not_found() => (i, Ok(())),
                r => (i, r),
            }
        }))
        .await;
        let mut all = vec![(0, Ok(()))];
        all.extend(results);
        self.all_ok(all).map(drop)
    }

    /// A put to one sync store and the async ones that has to wait (for its key's turn or
    /// for queue room; see [`PutOne`]): in key order, to the sync store, then queued.
    async fn put_replicated(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let adm = self.admit("put", key).await?;
        let meta = self.primary().put(key, data.clone(), opts).await?;
        self.enqueue("put", key, Mutation::Put(data), adm)?;
        tracing::trace!(key = %key, version = %meta.version, "replica put");
        Ok(meta)
    }

    /// A put to more than one sync store: in key order, to all of them, remembering the
    /// version each gave, then the queues.
    async fn put_sync_and_queue(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let adm = self.admit("put", key).await?;
        let stripe = self.inner.stripes.get(key);
        stripe.forget(key);
        let mut metas = self.put_sync(key, &data, opts.mode).await?;
        stripe.remember(key, metas.iter().map(|m| m.version.clone()).collect());
        let meta = metas.swap_remove(0);
        self.enqueue("put", key, Mutation::Put(data), adm)?;
        tracing::trace!(key = %key, version = %meta.version, "replica put");
        Ok(meta)
    }

    /// Asks every sync store at once; see the crate docs ("Versions") for which answer wins.
    async fn race<T>(
        &self,
        key: &Key,
        reads: Vec<BoxFuture<'_, Result<T>>>,
        version: fn(&mut T) -> &mut Version,
    ) -> Result<T> {
        let stripe = self.inner.stripes.get(key);
        let mut pending: FuturesUnordered<_> = reads
            .into_iter()
            .enumerate()
            .map(|(i, read)| async move { (i, read.await) })
            .collect();
        let mut fallback: Option<(usize, T)> = None;
        let mut errors: Vec<(usize, Error)> = Vec::new();
        while let Some((i, result)) = pending.next().await {
            match result {
                Ok(found) if i == 0 => return Ok(found),
                Ok(mut found) => match stripe.vouch(key, i, version(&mut found)) {
                    Some(primary_version) => {
                        *version(&mut found) = primary_version;
                        return Ok(found);
                    }
                    None if fallback.is_none() => fallback = Some((i, found)),
                    None => {}
                },
                Err(e) => errors.push((i, e)),
            }
        }
        // The primary failed (or it would have won).
        if let Some((i, mut found)) = fallback {
            let v = version(&mut found);
            *v = foreign(i, v);
            return Ok(found);
        }
        // Every store gave the same verdict (not found, a bad range…): report the primary's.
        let kind = errors.first().map(|(_, e)| e.kind());
        if errors.iter().all(|(_, e)| Some(e.kind()) == kind) {
            let primary = errors.iter().position(|(i, _)| *i == 0).unwrap_or(0);
            return Err(errors.swap_remove(primary).1);
        }
        Err(MultiError::new(errors).into())
    }
}

#[async_trait]
impl Backend for Replica {
    /// Conditional writes and watch are the primary's; reads and durability hold only as
    /// far as every sync store provides them.
    fn capabilities(&self) -> Capabilities {
        let primary = self.primary().capabilities();
        let all_sync = self
            .inner
            .sync
            .iter()
            .map(|s| (**s).capabilities())
            .fold(primary, Capabilities::intersection);
        let max_object_size = self
            .inner
            .async_
            .iter()
            .map(|s| (**s).capabilities())
            .fold(all_sync, Capabilities::intersection)
            .max_object_size;
        Capabilities::NONE
            .with_create(primary.create)
            .with_update(primary.update)
            .with_conditional_delete(primary.conditional_delete)
            .with_range_reads(all_sync.range_reads)
            .with_native_watch(primary.native_watch)
            .with_durable(all_sync.durable)
            .with_shared(all_sync.shared)
            // A read answered by a secondary reports the primary's version only for the
            // same write, else a version of the secondary's own.
            .with_stable_versions(all_sync.stable_versions)
            .with_max_object_size(max_object_size)
    }
    /// Hand-written (not `async fn`) so that a replica of one store and no queue hands back
    /// the store's own future: one allocation per put, as with the store alone. Such a put

    /// checks for the error state and `close` when it is called rather than when it is
    /// first polled. A replica of one sync store and async ones puts through a future
    /// written out by hand (`PutOne`), which takes the replica's lock once.
    fn put<'s, 'k, 'async_trait>(
        &'s self,
        key: &'k Key,
        data: Bytes,
        opts: PutOptions,
    ) -> BoxFuture<'async_trait, Result<Meta>>
    where
        's: 'async_trait,
        'k: 'async_trait,
        Self: 'async_trait,
    {
        if self.inner.sync.len() > 1 {
            return Box::pin(self.put_sync_and_queue(key, data, opts));
        }
        if !self.inner.async_.is_empty() {
            return Box::pin(PutOne {
                replica: self,
                key,
                state: PutState::Start { data, opts },
            });
        }
        match self.check("put") {
            Ok(()) => self.primary().put(key, data, opts),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.check("writer")?;
        Ok(Box::new(BufferedWriter::new(self.clone(), key.clone(), opts)))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.check("get")?;
        // Conditions name primary versions, which only the primary can check.
        if self.inner.sync.len() == 1 || opts.if_match.is_some() || opts.if_none_match.is_some() {
            return self.primary().get(key, opts).await;
        }
        let reads = self
            .inner
            .sync
            .iter()
            .map(|s| (**s).get(key, opts.clone()))
            .collect();
        self.race(key, reads, |o: &mut Object| &mut o.meta.version).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        self.check("head")?;
        if self.inner.sync.len() == 1 {
            return self.primary().head(key).await;
        }
        let reads = self.inner.sync.iter().map(|s| (**s).head(key)).collect();
        self.race(key, reads, |m: &mut Meta| &mut m.version).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let adm = self.admit("delete", key).await?;
        if self.inner.sync.len() > 1 {
            self.inner.stripes.get(key).forget(key);
        }
        self.delete_sync(key, opts).await?;
        self.enqueue("delete", key, Mutation::Delete, adm)?;
        tracing::trace!(key = %key, "replica delete");
        Ok(())
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        if let Err(e) = self.check("list") {
            return stream::once(async move { Err(e) }).boxed();
        }
        if self.inner.sync.len() == 1 {
            return self.primary().list(opts);
        }
        merge::union(self.inner.sync.iter().map(|s| (**s).list(opts.clone())).collect())
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.check("watch")?;
        self.primary().watch(key, seen).await
    }
}
/// A put to one sync store and the async ones, written out as a future so that the common
/// case takes the [gate](crate::gate)'s lock once: on the first poll, with the lock held, it

/// checks the error state, that the key's turn is free and that every queue has room, then
/// starts the store's put and polls it. When that completes at once (an in-memory store's
/// does) the operation is queued before the lock is let go: its order among writes to the
/// key is the lock's. Otherwise the turn is marked taken until the write completes and is
/// queued. Whatever would have to wait (the turn, room) goes to
/// [`Replica::put_replicated`] instead.
///
/// The store's put is thus first polled with the gate's lock held, and other writes
/// through the replica wait for the lock meanwhile (blocking their thread, as they would
/// on the store's own lock, which an in-memory store takes for about as long). A store
/// whose put blocks the thread for long would hold them up (no store should block in
/// `poll`); one that writes through this same replica would deadlock (a cycle no
/// composition needs). Taking the lock without waiting, and going the general way when
/// it is held, measured no better with two tasks putting at once (and no worse alone).
struct PutOne<'a> {
    replica: &'a Replica,
    key: &'a Key,
    state: PutState<'a>,
}

enum PutState<'a> {
    /// Not polled yet.
    Start {
        data: Bytes,
        opts: PutOptions,
    },
    /// The store's put did not complete at once: it runs holding the key's turn and the
    /// queue slots.
    Writing {
        write: BoxFuture<'a, Result<Meta>>,
        data: Bytes,
        admitted: Admission<'a>,
    },
    /// Something had to wait: the general path.
    Waiting(BoxFuture<'a, Result<Meta>>),
    Done,
}

impl Future for PutOne<'_> {
    type Output = Result<Meta>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Meta>> {
        let this = self.get_mut();
        match &mut this.state {
            PutState::Start { .. } => this.start(cx),
            PutState::Writing { write, .. } => match write.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(written) => Poll::Ready(this.written(written)),
            },
            PutState::Waiting(general) => general.as_mut().poll(cx),
            PutState::Done => panic!("replica put polled after it completed"),
        }
    }
}

impl<'a> PutOne<'a> {
    fn start(&mut self, cx: &mut Context<'_>) -> Poll<Result<Meta>> {
        let PutState::Start { data, opts } = std::mem::replace(&mut self.state, PutState::Done) else {
            unreachable!("start is only called in the Start state");
        };
        let replica = self.replica;
        let core = &replica.inner.core;
        let bit = turn_bit(self.key);
        // Declared before the lock so that, should the store's put panic, the lock is let
        // go before the slots are given back (which takes it again) and before the store's
        // future is dropped (which might call into the replica).
        let slots;
        let mut write;
        let mut gate = core.gate.lock();
        // Checked under the gate: `close` sets `closed`, then takes the gate exclusively.
        replica.check("put")?;
        if !gate.turn_free(bit) {
            drop(gate);
            return self.wait(data, opts, cx);
        }
        match gate.try_reserve() {
            Room::Taken => {}
            Room::Full => {
                drop(gate);
                return self.wait(data, opts, cx);
            }
            Room::Stopped => {
                drop(gate);
                return Poll::Ready(Err(replica.stopped("put")));
            }
        }
        slots = Reservation::new(&core.gate);
        write = replica.primary().put(self.key, data.clone(), opts);
        // The store's answer is handed back as it is (not taken apart and rebuilt): it is
        // the larger part of the work, and moving it costs.
        let polled = write.as_mut().poll(cx);
        match &polled {
            Poll::Ready(Ok(meta)) => {
                let queued = core.push(
                    &mut gate,
                    QueuedOp {
                        key: self.key.clone(),
                        mutation: Mutation::Put(data),
                    },
                );
                drop(gate);
                slots.commit();
                if !queued {
                    return Poll::Ready(Err(replica.stopped("put")));
                }
                tracing::trace!(key = %self.key, version = %meta.version, "replica put");
            }
            Poll::Ready(Err(_)) => {
                // The slots go back as they are dropped, which takes the lock.
                drop(gate);
                drop(slots);
            }
            Poll::Pending => {
                let turn = gate.take_turn(&core.gate, bit);
                drop(gate);
                self.state = PutState::Writing {
                    write,
                    data,
                    admitted: Admission {
                        turn: Some(turn),
                        slots,
                    },
                };
            }
        }
        polled
    }
    /// The store's put, started under the gate, has completed.
    fn written(&mut self, written: Result<Meta>) -> Result<Meta> {
        let PutState::Writing { data, admitted, .. } = std::mem::replace(&mut self.state, PutState::Done)
        else {
            unreachable!("written is only called in the Writing state");
        };
        // On an error the turn and the slots go back as they are dropped.
        let meta = written?;
        self.replica
            .enqueue("put", self.key, Mutation::Put(data), admitted)?;
        tracing::trace!(key = %self.key, version = %meta.version, "replica put");
        Ok(meta)
    }
    /// Goes the general way, [`Replica::put_replicated`].
    fn wait(&mut self, data: Bytes, opts: PutOptions, cx: &mut Context<'_>) -> Poll<Result<Meta>> {
        let mut general = Box::pin(self.replica.put_replicated(self.key, data, opts));
        let polled = general.as_mut().poll(cx);
        if polled.is_pending() {
            self.state = PutState::Waiting(general);
        }
        polled
    }
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("sync", &self.inner.sync)
            .field("async", &self.inner.async_)
            .field("queue_len", &self.inner.queue_len)
            .field("poisoned", &self.inner.core.poisoned().is_some())
            .finish_non_exhaustive()
    }
}
