//! `Retry`: tries again what is safe to try again, and never applies a conditional write twice.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Backoff, Capabilities, DeleteOptions, Error, GetOptions, Key, Layer, ListOptions, Meta, Object,
    ObjectWriter, PutMode, PutOptions, Result, Retries, Version,
};

tokio::task_local! {
    /// The attempt a [`RetryStore`] is making, for the layers below it (a span per attempt).
    static ATTEMPT: u32;
}

/// The number of the attempt under way (1 for the first), as set by the nearest
/// [`RetryStore`] above; 1 outside one.
pub(crate) fn current_attempt() -> u32 {
    ATTEMPT.try_with(|a| *a).unwrap_or(1)
}

/// The layer that retries failed operations with exponential backoff and jitter, within a
/// budget of attempts and of total time (a [`Backoff`]).
///
/// What is tried again, and when:
/// - `get`, `head`, `watch`, opening a writer, and unconditional (`Overwrite`) puts: on any
///   [retryable](Error::is_retryable) error. (A get whose body then fails mid-read is not
///   resumed: the caller reads again.)
/// - A listing that fails mid-stream starts again *after the last key it yielded*
///   (`start_after`), so no key is yielded twice or skipped. Its budget starts afresh each
///   time a key comes through, so a long listing survives many scattered failures.
/// - Conditional puts (`Create`, `Update`) and deletes are sent again only after an error
///   that proves the attempt changed nothing ([`Error::is_not_applied`], e.g. a refused
///   connection). After any other retryable error the write may have been applied, and
///   sending it again could apply it twice (or report a conflict against itself): if the
///   backend gave a [`WriteResolver`](store_core::WriteResolver) it is asked whether the
///   write landed (success then, with the write's metadata); otherwise the caller gets an
///   [`Error::outcome_unknown`] (retryable, "outcome unknown" in its text) and should read
///   the key before deciding. A delete is treated so even without a condition: sent again
///   after it was applied, it would answer `NotFound`.
/// - Streamed writers are not retried chunk by chunk (the chunks are the caller's stream,
///   gone once written). A failed `close` of a conditional writer is settled as a
///   conditional put's error is (resolver, or outcome unknown); it is never sent again.
///
/// When the budget is spent the last error is returned as it was. Each retry is a `debug`
/// event; a [`Trace`](crate::Trace) layer below `Retry` shows every attempt as its own span
/// (with its `attempt` number), one above it shows the number of attempts made.
///
/// ```
/// use std::time::Duration;
/// use store_core::{Backoff, BackendExt, Key};
/// use store_layers::Retry;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
/// let policy = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
///     .with_jitter(true)
///     .with_max_attempts(4)
///     .with_max_elapsed(Duration::from_secs(10));
/// let store = MemoryStore::new().layer(Retry::new(policy));
/// store.put_bytes(&Key::new("a")?, "1").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    backoff: Backoff,
}

impl Retry {
    /// Retries under `backoff`.
    pub fn new(backoff: Backoff) -> Retry {
        Retry { backoff }
    }

    /// The policy.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

impl Default for Retry {
    /// 50 ms doubling to 2 s, full jitter, at most 5 attempts and 30 s in all.
    fn default() -> Self {
        Retry::new(
            Backoff::new(Duration::from_millis(50), Duration::from_secs(2))
                .with_jitter(true)
                .with_max_attempts(5)
                .with_max_elapsed(Duration::from_secs(30)),
        )
    }
}

impl<B: Backend> Layer<B> for Retry {
    type Backend = RetryStore<B>;

    fn layer(self, inner: B) -> RetryStore<B> {
        RetryStore {
            inner: Arc::new(inner),
            backoff: self.backoff,
        }
    }
}

/// A backend whose failed operations are retried: see [`Retry`].
pub struct RetryStore<B> {
    inner: Arc<B>,
    backoff: Backoff,
}

impl<B> RetryStore<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for RetryStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryStore")
            .field("inner", &self.inner)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl<B: Backend> RetryStore<B> {
    /// Runs `call` until it succeeds, fails for good, or the budget is spent. A `write`
    /// (its metadata into `T`) is sent again only after an error proving it was not
    /// applied, and otherwise [settled](settle).
    async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        key: &Key,
        write: Option<fn(Meta) -> T>,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retries = self.backoff.start();
        loop {
            let attempt = retries.attempts();
            tracing::Span::current().record("attempt", attempt);
            let e = match ATTEMPT.scope(attempt, call()).await {
                Err(e) if e.is_retryable() => e,
                done => return done,
            };
            if let Some(applied) = write
                && !e.is_not_applied()
            {
                return settle(op, key, e, &mut retries).await.map(applied);
            }
            if !retries.wait().await {
                tracing::debug!(op, key = key.as_str(), attempt, error = %e, "retry budget spent");
                return Err(e);
            }
            tracing::debug!(op, key = key.as_str(), attempt, error = %e, "retrying");
        }
    }
}

/// The end of a write that failed after it may have been applied: its metadata if the
/// backend's resolver finds it applied (asking again, within the budget, if asking
/// fails), and otherwise an outcome-unknown error.
async fn settle(op: &'static str, key: &Key, e: Error, retries: &mut Retries) -> Result<Meta> {
    if let Some(resolver) = e.resolver().cloned() {
        loop {
            match resolver.resolve().await {
                Ok(Some(meta)) => {
                    tracing::debug!(op, key = key.as_str(), "write whose reply was lost found applied");
                    return Ok(meta);
                }
                Ok(None) => break,
                Err(r) if r.is_retryable() && retries.wait().await => continue,
                Err(_) => break,
            }
        }
    }
    tracing::debug!(op, key = key.as_str(), error = %e, "write outcome unknown: not sent again");
    if e.is_outcome_unknown() {
        return Err(e);
    }
    Err(Error::outcome_unknown("retry", e, None))
}

fn meta(m: Meta) -> Meta {
    m
}

fn unit(_: Meta) {}

#[async_trait]
impl<B: Backend> Backend for RetryStore<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let write = match opts.mode {
            PutMode::Overwrite => None,
            _ => Some(meta as fn(Meta) -> Meta),
        };
        self.run("put", key, write, || {
            self.inner.put(key, data.clone(), opts.clone())
        })
        .await
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let conditional = opts.mode != PutMode::Overwrite;
        let inner = self
            .run("writer", key, None, || self.inner.writer(key, opts.clone()))
            .await?;
        Ok(Box::new(RetryWriter {
            inner,
            key: key.clone(),
            conditional,
            backoff: self.backoff,
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.run("get", key, None, || self.inner.get(key, opts.clone()))
            .await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        self.run("head", key, None, || self.inner.head(key)).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.run("delete", key, Some(unit as fn(Meta)), || {
            self.inner.delete(key, opts.clone())
        })
        .await
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let listing = Listing {
            items: self.inner.list(opts.clone()),
            inner: Arc::clone(&self.inner),
            opts,
            backoff: self.backoff,
            retries: None,
        };
        stream::unfold(Some(listing), |state| async move {
            let mut s = state?;
            loop {
                match s.items.next().await {
                    None => return None,
                    Some(Ok(meta)) => {
                        s.opts.start_after = Some(meta.key.to_string());
                        s.retries = None;
                        return Some((Ok(meta), Some(s)));
                    }
                    Some(Err(e)) => {
                        let retries = s.retries.get_or_insert_with(|| s.backoff.start());
                        if !e.is_retryable() || !retries.wait().await {
                            return Some((Err(e), None));
                        }
                        let attempt = retries.attempts();
                        tracing::debug!(
                            op = "list",
                            after = s.opts.start_after.as_deref(),
                            attempt,
                            error = %e,
                            "listing failed mid-stream: resuming after the last key"
                        );
                        let (inner, opts) = (&s.inner, s.opts.clone());
                        s.items = ATTEMPT.sync_scope(attempt, || inner.list(opts));
                    }
                }
            }
        })
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.run("watch", key, None, || self.inner.watch(key, seen)).await
    }
}

/// A listing in progress: the options to resume with (`start_after` = the last key
/// yielded) and the retry budget since the last key came through.
struct Listing<B> {
    items: BoxStream<'static, Result<Meta>>,
    inner: Arc<B>,
    opts: ListOptions,
    backoff: Backoff,
    retries: Option<Retries>,
}

/// The writer of a [`RetryStore`]: chunks pass straight through; a failed `close` of a
/// conditional write is settled like a conditional put, never sent again.
struct RetryWriter {
    inner: Box<dyn ObjectWriter>,
    key: Key,
    conditional: bool,
    backoff: Backoff,
}

impl fmt::Debug for RetryWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryWriter")
            .field("key", &self.key)
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait]
impl ObjectWriter for RetryWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.write(chunk).await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        match self.inner.close().await {
            Err(e) if self.conditional && e.is_retryable() && !e.is_not_applied() => {
                settle("close", &self.key, e, &mut self.backoff.start()).await
            }
            done => done,
        }
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
