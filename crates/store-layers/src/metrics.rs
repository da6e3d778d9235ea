//! `Metrics`: operation counts, bytes and durations through the `metrics` facade.

use std::fmt;
use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Capabilities, DeleteOptions, GetOptions, Key, Layer, ListOptions, Meta, Object, ObjectWriter,
    PutOptions, Result, Version,
};

use crate::counted::Counted;
use crate::outcome::{CANCELLED, outcome};

/// The layer that measures every operation through the [`metrics`] facade, so any
/// recorder the program installs (Prometheus, StatsD, OpenTelemetry …) gets:
///
/// | metric | kind | labels |
/// | --- | --- | --- |
/// | `store_ops_total` | counter | `backend`, `op`, `outcome` |
/// | `store_bytes_total` | counter | `backend`, `op` |
/// | `store_op_duration_seconds` | histogram | `backend`, `op` |
///
/// `op` is `put`, `writer`, `close`, `abort`, `get`, `head`, `delete`, `list` or `watch`;
/// `outcome` is `ok`, the error's kind in snake case (`not_found`, `conflict`, `timeout`,
/// …), or `cancelled` for a call dropped before it finished. Bytes are counted for
/// successful `put`s, `get`s (the bytes returned) and writer `close`s (the bytes
/// committed). A listing is one operation, measured from its start to its end.
///
/// With no recorder installed the facade does nothing. The example
/// `examples/prometheus.rs` exports these metrics with `metrics-exporter-prometheus`.
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_layers::Metrics;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
/// let store = MemoryStore::new().layer(Metrics::new("cache"));
/// store.put_bytes(&Key::new("a")?, "1").await?; // store_ops_total{backend="cache",op="put",outcome="ok"} += 1
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    name: &'static str,
}

impl Metrics {
    /// Metrics whose `backend` label is `name`.
    pub fn new(name: &'static str) -> Metrics {
        Metrics { name }
    }
}

impl<B: Backend> Layer<B> for Metrics {
    type Backend = MetricsStore<B>;

    fn layer(self, inner: B) -> MetricsStore<B> {
        MetricsStore {
            inner,
            name: self.name,
        }
    }
}

/// A backend whose operations are measured: see [`Metrics`].
pub struct MetricsStore<B> {
    inner: B,
    name: &'static str,
}

impl<B> MetricsStore<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for MetricsStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsStore")
            .field("inner", &self.inner)
            .field("name", &self.name)
            .finish()
    }
}

/// One operation being measured; recorded when dropped, so a cancelled call counts too.
struct Op {
    backend: &'static str,
    op: &'static str,
    started: Instant,
    outcome: &'static str,
    bytes: u64,
}

impl Op {
    fn start(backend: &'static str, op: &'static str) -> Op {
        Op {
            backend,
            op,
            started: Instant::now(),
            outcome: CANCELLED,
            bytes: 0,
        }
    }

    /// Marks the operation finished with `done`; `bytes` counts only if it succeeded.
    fn end<T>(&mut self, done: &Result<T>, bytes: u64) {
        self.outcome = outcome(done);
        if done.is_ok() {
            self.bytes = bytes;
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let (backend, op) = (self.backend, self.op);
        metrics::counter!("store_ops_total", "backend" => backend, "op" => op, "outcome" => self.outcome)
            .increment(1);
        if self.bytes > 0 {
            metrics::counter!("store_bytes_total", "backend" => backend, "op" => op).increment(self.bytes);
        }
        metrics::histogram!("store_op_duration_seconds", "backend" => backend, "op" => op)
            .record(self.started.elapsed());
    }
}

/// Runs `call` as operation `op`, counting `bytes(&reply)` bytes if it succeeds.
async fn measured<T>(
    backend: &'static str,
    op: &'static str,
    call: impl Future<Output = Result<T>>,
    bytes: impl FnOnce(&T) -> u64,
) -> Result<T> {
    let mut measure = Op::start(backend, op);
    let done = call.await;
    let n = done.as_ref().map_or(0, bytes);
    measure.end(&done, n);
    done
}

fn none<T>(_: &T) -> u64 {
    0
}

#[async_trait]
impl<B: Backend> Backend for MetricsStore<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let len = data.len() as u64;
        measured(self.name, "put", self.inner.put(key, data, opts), |_| len).await
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let inner = measured(self.name, "writer", self.inner.writer(key, opts), none).await?;
        Ok(Box::new(MetricsWriter {
            counted: Counted::new(inner),
            name: self.name,
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let call = self.inner.get(key, opts);
        measured(self.name, "get", call, |o: &Object| o.range.end - o.range.start).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        measured(self.name, "head", self.inner.head(key), none).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        measured(self.name, "delete", self.inner.delete(key, opts), none).await
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let measure = Op::start(self.name, "list");
        let items = self.inner.list(opts);
        stream::unfold(Some((items, measure)), |state| async move {
            let (mut items, mut measure) = state?;
            match items.next().await {
                Some(Ok(meta)) => Some((Ok(meta), Some((items, measure)))),
                end => {
                    let done = end.transpose().map(|_| ());
                    measure.end(&done, 0);
                    done.err().map(|e| (Err(e), None))
                }
            }
        })
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        measured(self.name, "watch", self.inner.watch(key, seen), none).await
    }
}

/// The writer of a [`MetricsStore`]: counts the bytes written, measures `close` and `abort`.
#[derive(Debug)]
struct MetricsWriter {
    counted: Counted,
    name: &'static str,
}

#[async_trait]
impl ObjectWriter for MetricsWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.counted.write(chunk).await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        let Counted { inner, written } = self.counted;
        measured(self.name, "close", inner.close(), |_| written).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        measured(self.name, "abort", self.counted.inner.abort(), none).await
    }
}
