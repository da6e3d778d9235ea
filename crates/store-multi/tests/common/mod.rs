//! Test backends shared by the integration tests.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use store_core::{
    Backend, Capabilities, DeleteOptions, GetOptions, Key, ListOptions, Meta, Object, ObjectWriter,
    PutOptions, Result, Version,
};

/// A backend that says it streams writes (like a file store writing a temp file), so the
/// fan-out uses its writer — and a `Faulty` inside can fail at open, at a chunk or at the
/// commit. Everything else is forwarded.
#[derive(Debug, Clone)]
pub(crate) struct Streaming<B>(pub(crate) B);

#[async_trait]
impl<B: Backend> Backend for Streaming<B> {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities().with_streaming_writes(true)
    }
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        self.0.put(key, data, opts).await
    }
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.0.writer(key, opts).await
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.0.get(key, opts).await
    }
    async fn head(&self, key: &Key) -> Result<Meta> {
        self.0.head(key).await
    }
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.0.delete(key, opts).await
    }
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        self.0.list(opts)
    }
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.0.watch(key, seen).await
    }
}
