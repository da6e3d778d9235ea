//! `Trace`: one `tracing` span per operation, with stable field names.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Capabilities, DeleteOptions, GetOptions, Key, Layer, ListOptions, Meta, Object, ObjectWriter,
    PutOptions, Result, Version,
};
use tracing::field::{Empty, display};
use tracing::{Instrument, Span};

use crate::counted::Counted;
use crate::outcome::outcome;
use crate::retry::current_attempt;

/// The layer that opens one [`tracing`] span per operation, named `store`, at `DEBUG`
/// level, with these fields:
///
/// | field | value |
/// | --- | --- |
/// | `op` | `put`, `writer`, `close`, `abort`, `get`, `head`, `delete`, `list`, `watch` |
/// | `key` | the key (for `list`, the prefix) |
/// | `backend` | the name given to [`Trace::new`] |
/// | `attempt` | 1, or the attempt number under a [`Retry`](crate::Retry) above |
/// | `bytes` | bytes written (`put`, `close`) or returned (`get`) |
/// | `version` | the version written or read |
/// | `outcome` | `ok` or the error's kind in snake case (`not_found`, `conflict`, `timeout`, …) |
/// | `items` | keys a listing yielded |
/// | `limit_wait_us` | microseconds spent waiting for a [`Limit`](crate::Limit) below |
///
/// Each finished operation is a `DEBUG` event in its span, each failure a `WARN` event with
/// the error. Under a [`Retry`](crate::Retry) every attempt has its own span; above one, the
/// span's `attempt` is the number of attempts made. A listing's span lasts as long as the
/// listing is read; a writer's chunks are counted into its `close` span.
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_layers::Trace;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
/// let store = MemoryStore::new().layer(Trace::new("cache"));
/// store.put_bytes(&Key::new("a")?, "1").await?; // span store{op="put" key="a" backend="cache" …}
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    name: &'static str,
}

impl Trace {
    /// Spans whose `backend` field is `name`.
    pub fn new(name: &'static str) -> Trace {
        Trace { name }
    }
}

impl<B: Backend> Layer<B> for Trace {
    type Backend = TraceStore<B>;

    fn layer(self, inner: B) -> TraceStore<B> {
        TraceStore {
            inner,
            name: self.name,
        }
    }
}

/// A backend whose operations are traced: see [`Trace`].
pub struct TraceStore<B> {
    inner: B,
    name: &'static str,
}

impl<B> TraceStore<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for TraceStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceStore")
            .field("inner", &self.inner)
            .field("name", &self.name)
            .finish()
    }
}

/// A new span for `op` on `key`.
fn span(backend: &'static str, op: &'static str, key: Option<&str>) -> Span {
    tracing::debug_span!(
        "store",
        op,
        key,
        backend,
        attempt = current_attempt(),
        bytes = Empty,
        version = Empty,
        outcome = Empty,
        items = Empty,
        limit_wait_us = Empty,
    )
}

/// Runs `call` in `span`, then records its outcome (and, on success, what `describe`
/// says) and reports it as an event.
async fn traced<T>(span: Span, call: impl Future<Output = Result<T>>, describe: fn(&Span, &T)) -> Result<T> {
    let done = call.instrument(span.clone()).await;
    finish(&span, &done, describe);
    done
}

fn finish<T>(span: &Span, done: &Result<T>, describe: fn(&Span, &T)) {
    span.record("outcome", outcome(done));
    match done {
        Ok(value) => {
            describe(span, value);
            tracing::debug!(parent: span, "done");
        }
        Err(e) => tracing::warn!(parent: span, error = %e, "failed"),
    }
}

fn written(span: &Span, meta: &Meta) {
    span.record("version", display(&meta.version));
}

fn read(span: &Span, object: &Object) {
    span.record("version", display(&object.meta.version));
    span.record("bytes", object.range.end - object.range.start);
}

fn nothing<T>(_: &Span, _: &T) {}

#[async_trait]
impl<B: Backend> Backend for TraceStore<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let span = span(self.name, "put", Some(key.as_str()));
        span.record("bytes", data.len());
        traced(span, self.inner.put(key, data, opts), written).await
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let span = span(self.name, "writer", Some(key.as_str()));
        let inner = traced(span, self.inner.writer(key, opts), nothing).await?;
        Ok(Box::new(TraceWriter {
            counted: Counted::new(inner),
            key: key.clone(),
            name: self.name,
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let span = span(self.name, "get", Some(key.as_str()));
        traced(span, self.inner.get(key, opts), read).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        let span = span(self.name, "head", Some(key.as_str()));
        traced(span, self.inner.head(key), written).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let span = span(self.name, "delete", Some(key.as_str()));
        traced(span, self.inner.delete(key, opts), nothing).await
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let span = span(self.name, "list", opts.prefix.as_deref());
        let items = span.in_scope(|| self.inner.list(opts));
        stream::unfold(Some((items, span, 0u64)), |state| async move {
            let (mut items, span, n) = state?;
            match items.next().instrument(span.clone()).await {
                Some(Ok(meta)) => Some((Ok(meta), Some((items, span, n + 1)))),
                end => {
                    span.record("items", n);
                    let done = end.transpose().map(|_| ());
                    finish(&span, &done, nothing);
                    done.err().map(|e| (Err(e), None))
                }
            }
        })
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let span = span(self.name, "watch", Some(key.as_str()));
        traced(span, self.inner.watch(key, seen), |span, now| {
            if let Some(v) = now {
                span.record("version", display(v));
            }
        })
        .await
    }
}

/// The writer of a [`TraceStore`]: counts the bytes written, traces `close` and `abort`.
#[derive(Debug)]
struct TraceWriter {
    counted: Counted,
    key: Key,
    name: &'static str,
}

#[async_trait]
impl ObjectWriter for TraceWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.counted.write(chunk).await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        let span = span(self.name, "close", Some(self.key.as_str()));
        span.record("bytes", self.counted.written);
        traced(span, self.counted.inner.close(), written).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let span = span(self.name, "abort", Some(self.key.as_str()));
        traced(span, self.counted.inner.abort(), nothing).await
    }
}
