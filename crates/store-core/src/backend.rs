//! The `Backend` trait implementers write, and the `ObjectWriter` it hands out.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::body::Object;
use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::key::Key;
use crate::meta::Meta;
use crate::options::{DeleteOptions, GetOptions, ListOptions, PutOptions};
use crate::version::Version;

/// A store of objects: the small trait every backend implements.
///
/// Conveniences (`put_bytes`, `get_bytes`, `create`, `update`, a read-modify-write loop …)
/// live in [`BackendExt`](crate::BackendExt), which every `Backend` gets for free. Keeping
/// them off this trait means a wrapper (a fan-out, a fault injector) can never silently
/// inherit a default that bypasses it.
///
/// # Contract
/// Every implementation must meet these rules; `store-testkit` checks each of them.
/// - **Atomic puts.** Readers see the whole old object or the whole new one, never a mix,
///   and a failed or aborted put leaves the old object untouched.
/// - **Conditional puts.** `PutMode::Create` fails with `AlreadyExists` (carrying the
///   existing version) if the key exists; `PutMode::Update(v)` fails with `Conflict` if the
///   current version is not `v` and `NotFound` if the key is absent. Of N concurrent
///   conditional writers from the same state exactly one wins.
/// - **Versions.** Every successful mutation yields a new [`Version`]; no version is ever
///   reused for a key, also across delete and re-create.
/// - **Delete.** Deleting an absent key is `NotFound`; with `if_match`, a different version
///   is `Conflict`.
/// - **Watch.** `watch(key, seen)` returns as soon as the key's version differs from `seen`
///   (`None` meaning absent): `Some(new)` or `None` if the key is now absent. It returns at
///   once if it already differs. Dropping the future cancels it and leaks nothing.
/// - **Listing** is in ascending key order, honours `prefix` and `start_after` (exclusive),
///   and never shows a backend's internal files.
///
/// Implement it with `#[async_trait]`; the trait is dyn-compatible, so `Arc<dyn Backend>`
/// is the usual way to hold "some backend". `Arc<B>` and `Box<B>` are backends too.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// What this backend supports and guarantees.
    fn capabilities(&self) -> Capabilities;

    /// Stores `data` at `key` atomically, subject to `opts.mode`.
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta>;

    /// Opens a writer for a large object. Nothing is visible until
    /// [`ObjectWriter::close`], which applies `opts.mode` atomically; dropping the writer
    /// aborts it.
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>>;

    /// Reads an object (or a range of it), subject to `opts`' conditions.
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object>;

    /// Reads an object's metadata.
    async fn head(&self, key: &Key) -> Result<Meta>;

    /// Deletes an object, subject to `opts.if_match`.
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()>;

    /// Lists objects in ascending key order. With [`ListOptions::keys_only`] a backend may
    /// report [`Version::empty`] instead of versions that would cost it a request per object.
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>>;

    /// Waits until `key`'s version differs from `seen` (`None` = absent) and returns the new
    /// version, or `None` if the key is now absent.
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>>;
}

/// A streaming write in progress. Chunks are not visible to readers until `close` commits
/// them all at once; dropping the writer without closing it aborts the write.
#[async_trait]
pub trait ObjectWriter: Send + Debug {
    /// Appends a chunk.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Commits the object atomically, applying the put mode given when the writer was opened.
    async fn close(self: Box<Self>) -> Result<Meta>;

    /// Discards everything written. Dropping the writer does the same, but `abort` reports
    /// errors and waits for clean-up to finish.
    async fn abort(self: Box<Self>) -> Result<()>;
}
macro_rules! forward_backend {
    ($ptr:ident) => {
        #[async_trait]
        impl<B: Backend + ?Sized> Backend for $ptr<B> {
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
                (**self).put(key, data, opts).await
            }
            async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
                (**self).writer(key, opts).await
            }
            async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
                (**self).get(key, opts).await
            }
            async fn head(&self, key: &Key) -> Result<Meta> {
                (**self).head(key).await
            }
            async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
                (**self).delete(key, opts).await
            }
            fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
                (**self).list(opts)
            }
            async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
                (**self).watch(key, seen).await
            }
        }
    };
}

forward_backend!(Arc);
forward_backend!(Box);
