//! `Timeout`: a deadline per operation, per listed item and per written chunk.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, Layer, ListOptions, Meta, Object,
    ObjectWriter, PutOptions, Result, Version,
};

/// The layer that gives every operation a deadline. A call still running at its deadline
/// is dropped (cancelled) and fails with [`Error::Timeout`] naming the operation, the key
/// and the deadline.
///
/// - `put`, `get`, `head`, `delete`, opening a writer: the whole call.
/// - A listing: each item (a listing of a million keys is not one deadline); the prefix
///   is the error's key. The listing ends after a timeout.
/// - A writer: each `write`, the `close` and the `abort`.
/// - `watch` waits for somebody else's change, which may rightly take hours: it has no
///   deadline unless [`Timeout::with_watch`] sets one.
///
/// A timeout is retryable, so a [`Retry`](crate::Retry) layer above tries again — except a
/// conditional write, whose outcome a timeout leaves unknown. Cancelling a call cancels
/// what the backend does in the caller's task; work a backend hands to threads of its own
/// (a blocking file write) may still finish after the deadline.
///
/// ```
/// use std::time::Duration;
/// use store_core::{BackendExt, Key};
/// use store_layers::Timeout;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
/// let store = MemoryStore::new().layer(Timeout::new(Duration::from_secs(5)));
/// store.put_bytes(&Key::new("a")?, "1").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    after: Duration,
    watch: Option<Duration>,
}

impl Timeout {
    /// A deadline of `after` for each operation (watch excepted).
    pub fn new(after: Duration) -> Timeout {
        Timeout { after, watch: None }
    }

    /// Gives `watch` a deadline too (`None`: none, the default).
    pub fn with_watch(mut self, after: Option<Duration>) -> Timeout {
        self.watch = after;
        self
    }
}

impl<B: Backend> Layer<B> for Timeout {
    type Backend = TimeoutStore<B>;

    fn layer(self, inner: B) -> TimeoutStore<B> {
        TimeoutStore { inner, limits: self }
    }
}

/// A backend whose operations have deadlines: see [`Timeout`].
pub struct TimeoutStore<B> {
    inner: B,
    limits: Timeout,
}

impl<B> TimeoutStore<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for TimeoutStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutStore")
            .field("inner", &self.inner)
            .field("after", &self.limits.after)
            .field("watch", &self.limits.watch)
            .finish()
    }
}

/// `call`, or [`Error::Timeout`] for `op` on `key` once `after` has passed.
async fn within<T>(
    after: Duration,
    op: &'static str,
    key: Option<&str>,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(after, call).await {
        Ok(done) => done,
        Err(_) => {
            tracing::debug!(op, key, ?after, "deadline passed: call cancelled");
            Err(Error::Timeout {
                op,
                key: key.map(str::to_owned),
                after,
            })
        }
    }
}

#[async_trait]
impl<B: Backend> Backend for TimeoutStore<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        within(
            self.limits.after,
            "put",
            Some(key.as_str()),
            self.inner.put(key, data, opts),
        )
        .await
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let inner = within(
            self.limits.after,
            "writer",
            Some(key.as_str()),
            self.inner.writer(key, opts),
        )
        .await?;
        Ok(Box::new(TimeoutWriter {
            inner,
            key: key.clone(),
            after: self.limits.after,
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        within(
            self.limits.after,
            "get",
            Some(key.as_str()),
            self.inner.get(key, opts),
        )
        .await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        within(
            self.limits.after,
            "head",
            Some(key.as_str()),
            self.inner.head(key),
        )
        .await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        within(
            self.limits.after,
            "delete",
            Some(key.as_str()),
            self.inner.delete(key, opts),
        )
        .await
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let after = self.limits.after;
        let prefix = opts.prefix.clone();
        let items = self.inner.list(opts);
        stream::unfold(Some((items, prefix)), move |state| async move {
            let (mut items, prefix) = state?;
            let item = within(after, "list", prefix.as_deref(), async {
                items.next().await.transpose()
            })
            .await
            .transpose()?;
            let rest = item.is_ok().then_some((items, prefix));
            Some((item, rest))
        })
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        match self.limits.watch {
            Some(after) => within(after, "watch", Some(key.as_str()), self.inner.watch(key, seen)).await,
            None => self.inner.watch(key, seen).await,
        }
    }
}

/// The writer of a [`TimeoutStore`]: a deadline per chunk, for the close and for the abort.
struct TimeoutWriter {
    inner: Box<dyn ObjectWriter>,
    key: Key,
    after: Duration,
}

impl fmt::Debug for TimeoutWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutWriter")
            .field("key", &self.key)
            .field("after", &self.after)
            .finish()
    }
}

#[async_trait]
impl ObjectWriter for TimeoutWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        within(
            self.after,
            "write",
            Some(self.key.as_str()),
            self.inner.write(chunk),
        )
        .await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        within(self.after, "close", Some(self.key.as_str()), self.inner.close()).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        within(self.after, "abort", Some(self.key.as_str()), self.inner.abort()).await
    }
}
