//! `Limit`: at most N operations in flight.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, Layer, ListOptions, Meta, Object,
    ObjectWriter, PutOptions, Result, Version,
};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The layer that lets at most `n` operations reach the backend at once (a tokio
/// [`Semaphore`]); the others wait their turn, first come first served.
///
/// A listing takes a permit for each item it reads and a writer one for each `write`,
/// `close` and `abort`, so a slow reader of a listing or an idle writer holds none.
/// `watch` takes none: it waits for somebody else's change, and watchers holding permits
/// would starve the writes they wait for.
///
/// The time spent waiting is recorded in the current span's `limit_wait_us` field, which
/// is the operation's span when a [`Trace`](crate::Trace) layer is above this one.
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_layers::Limit;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
/// let store = MemoryStore::new().layer(Limit::new(64));
/// store.put_bytes(&Key::new("a")?, "1").await?;
/// assert_eq!(store.available_permits(), 64);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    permits: usize,
}

impl Limit {
    /// At most `permits` operations in flight (at least 1).
    pub fn new(permits: usize) -> Limit {
        Limit {
            permits: permits.max(1),
        }
    }
}

impl<B: Backend> Layer<B> for Limit {
    type Backend = LimitStore<B>;

    fn layer(self, inner: B) -> LimitStore<B> {
        LimitStore {
            inner,
            permits: Arc::new(Semaphore::new(self.permits)),
        }
    }
}

/// A backend with a cap on operations in flight: see [`Limit`].
pub struct LimitStore<B> {
    inner: B,
    permits: Arc<Semaphore>,
}

impl<B> LimitStore<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Permits not taken right now (all of them when nothing is in flight).
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }
}

impl<B: fmt::Debug> fmt::Debug for LimitStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitStore")
            .field("inner", &self.inner)
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

/// Waits for a permit and records the wait in the current span.
async fn permit<'a>(permits: &'a Semaphore, op: &'static str) -> Result<SemaphorePermit<'a>> {
    let started = Instant::now();
    // The semaphore is never closed; the error is for completeness, not a panic.
    let permit = permits.acquire().await.map_err(|_| Error::Closed { op })?;
    let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::Span::current().record("limit_wait_us", waited);
    Ok(permit)
}

/// Runs `call` holding a permit.
async fn limited<T>(
    permits: &Semaphore,
    op: &'static str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let _permit = permit(permits, op).await?;
    call.await
}

#[async_trait]
impl<B: Backend> Backend for LimitStore<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        limited(&self.permits, "put", self.inner.put(key, data, opts)).await
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let inner = limited(&self.permits, "writer", self.inner.writer(key, opts)).await?;
        Ok(Box::new(LimitWriter {
            inner,
            permits: Arc::clone(&self.permits),
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        limited(&self.permits, "get", self.inner.get(key, opts)).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        limited(&self.permits, "head", self.inner.head(key)).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        limited(&self.permits, "delete", self.inner.delete(key, opts)).await
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let items = self.inner.list(opts);
        let permits = Arc::clone(&self.permits);
        stream::unfold(Some((items, permits)), |state| async move {
            let (mut items, permits) = state?;
            let item = limited(&permits, "list", async { items.next().await.transpose() })
                .await
                .transpose()?;
            let rest = item.is_ok().then_some((items, permits));
            Some((item, rest))
        })
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.inner.watch(key, seen).await
    }
}

/// The writer of a [`LimitStore`]: a permit per `write`, `close` and `abort`.
struct LimitWriter {
    inner: Box<dyn ObjectWriter>,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for LimitWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitWriter").field("inner", &self.inner).finish()
    }
}

#[async_trait]
impl ObjectWriter for LimitWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        limited(&self.permits, "write", self.inner.write(chunk)).await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        limited(&self.permits, "close", self.inner.close()).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        limited(&self.permits, "abort", self.inner.abort()).await
    }
}
