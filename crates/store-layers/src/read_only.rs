//! `ReadOnly`: reads pass through, every mutation is refused.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, Layer, ListOptions, Meta, Object,
    ObjectWriter, PutOptions, Result, Version,
};

/// The layer that refuses every mutation (`put`, `writer`, `delete`) with
/// [`Error::Unsupported`] — "put is not supported by a read-only store" — before it
/// reaches the backend, and passes every read (`get`, `head`, `list`, `watch`) through.
/// Hand it to code that must not write: a report, an audit, a replica's reader.
///
/// Its capabilities say so: no create, update, conditional delete or streaming writes.
///
/// ```
/// use store_core::{BackendExt, ErrorKind, Key};
/// use store_layers::ReadOnly;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
/// let store = MemoryStore::new();
/// let key = Key::new("report")?;
/// store.put_bytes(&key, "v1").await?;
/// let reader = store.layer(ReadOnly);
/// assert_eq!(reader.get_bytes(&key).await?, "v1");
/// let refused = reader.put_bytes(&key, "v2").await.unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::Unsupported);
/// assert_eq!(refused.to_string(), "put is not supported by a read-only store");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOnly;

impl<B: Backend> Layer<B> for ReadOnly {
    type Backend = ReadOnlyStore<B>;

    fn layer(self, inner: B) -> ReadOnlyStore<B> {
        ReadOnlyStore { inner }
    }
}

/// A backend that can only be read: see [`ReadOnly`].
pub struct ReadOnlyStore<B> {
    inner: B,
}

impl<B> ReadOnlyStore<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for ReadOnlyStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyStore")
            .field("inner", &self.inner)
            .finish()
    }
}

/// The refusal of `op` on `key`.
fn refused(op: &'static str, key: &Key) -> Error {
    tracing::debug!(op, key = key.as_str(), "mutation of a read-only store refused");
    Error::Unsupported {
        operation: op,
        backend: "a read-only store",
    }
}

#[async_trait]
impl<B: Backend> Backend for ReadOnlyStore<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner
            .capabilities()
            .with_create(false)
            .with_update(false)
            .with_conditional_delete(false)
            .with_streaming_writes(false)
    }

    async fn put(&self, key: &Key, _data: Bytes, _opts: PutOptions) -> Result<Meta> {
        Err(refused("put", key))
    }

    async fn writer(&self, key: &Key, _opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Err(refused("writer", key))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.inner.get(key, opts).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        self.inner.head(key).await
    }

    async fn delete(&self, key: &Key, _opts: DeleteOptions) -> Result<()> {
        Err(refused("delete", key))
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        self.inner.list(opts)
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.inner.watch(key, seen).await
    }
}
