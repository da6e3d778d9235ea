//! Conveniences every backend gets for free.

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::layer::Layer;
use crate::meta::Meta;
use crate::options::{DeleteOptions, GetOptions, ListOptions, PutMode, PutOptions};
use crate::version::Version;

/// How many conflicting attempts [`BackendExt::read_modify_write`] makes before giving up
/// with [`Error::Contention`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10_000;

/// Conveniences over [`Backend`], implemented for every backend (including
/// `dyn Backend`). Each is a thin composition of the trait's methods.
#[async_trait]
pub trait BackendExt: Backend {
    /// Wraps this backend in `layer` (see [`Layer`]): `store.layer(a).layer(b)` is `b`
    /// around `a` around `store`, and is itself a backend.
    fn layer<L: Layer<Self>>(self, layer: L) -> L::Backend
    where
        Self: Sized,
    {
        layer.layer(self)
    }

    /// Overwrites `key` with `data`.
    async fn put_bytes(&self, key: &Key, data: impl Into<Bytes> + Send) -> Result<Meta> {
        self.put(key, data.into(), PutOptions::default()).await
    }

    /// Reads the whole object at `key`.
    async fn get_bytes(&self, key: &Key) -> Result<Bytes> {
        self.get(key, GetOptions::default()).await?.bytes().await
    }

    /// Reads the whole object and its metadata.
    async fn get_with_meta(&self, key: &Key) -> Result<(Meta, Bytes)> {
        let obj = self.get(key, GetOptions::default()).await?;
        let meta = obj.meta.clone();
        Ok((meta, obj.bytes().await?))
    }

    /// Creates `key`; [`Error::AlreadyExists`] if it exists.
    async fn create(&self, key: &Key, data: impl Into<Bytes> + Send) -> Result<Meta> {
        self.put(key, data.into(), PutOptions::create()).await
    }

    /// Replaces `key` only if its version is `version` (compare-and-swap).
    async fn update(&self, key: &Key, data: impl Into<Bytes> + Send, version: Version) -> Result<Meta> {
        self.put(key, data.into(), PutOptions::update(version)).await
    }

    /// Deletes `key` only if its version is `version`.
    async fn delete_if(&self, key: &Key, version: Version) -> Result<()> {
        self.delete(key, DeleteOptions::default().with_if_match(version))
            .await
    }

    /// Deletes `key`, returning whether it existed.
    async fn delete_if_exists(&self, key: &Key) -> Result<bool> {
        match self.delete(key, DeleteOptions::default()).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The metadata of `key`, or `None` if absent.
    async fn head_opt(&self, key: &Key) -> Result<Option<Meta>> {
        match self.head(key).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `key` exists.
    async fn exists(&self, key: &Key) -> Result<bool> {
        Ok(self.head_opt(key).await?.is_some())
    }

    /// All keys starting with `prefix`, in order. Versions are not asked for
    /// ([`ListOptions::keys_only`]), so a backend that would need a request per object to
    /// learn them skips those requests.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<Key>> {
        self.list(ListOptions::default().with_prefix(prefix).with_keys_only(true))
            .map_ok(|m| m.key)
            .try_collect()
            .await
    }

    /// Collects a whole listing.
    async fn list_all(&self, opts: ListOptions) -> Result<Vec<Meta>> {
        self.list(opts).try_collect().await
    }

    /// The optimistic-concurrency loop: read `key` (absent = `None`), compute the new content
    /// with `f`, write it back with `Create` or `Update(version)`, and start over if another
    /// writer got there first. An error from `f` aborts without writing. Gives up with
    /// [`Error::Contention`] after [`DEFAULT_MAX_ATTEMPTS`] conflicts.
    async fn read_modify_write<F>(&self, key: &Key, mut f: F) -> Result<Meta>
    where
        F: FnMut(Option<&Bytes>) -> Result<Bytes> + Send,
    {
        for _ in 0..DEFAULT_MAX_ATTEMPTS {
            let (current, mode) = match self.get(key, GetOptions::default()).await {
                Ok(obj) => {
                    let version = obj.meta.version.clone();
                    (Some(obj.bytes().await?), PutMode::Update(version))
                }
                Err(e) if e.is_not_found() => (None, PutMode::Create),
                Err(e) => return Err(e),
            };
            let next = f(current.as_ref())?;
            match self.put(key, next, mode.into()).await {
                Ok(meta) => return Ok(meta),
                Err(e) if e.is_conflict() || e.is_already_exists() || e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Contention {
            op: "read_modify_write",
            key: key.to_string(),
            attempts: DEFAULT_MAX_ATTEMPTS,
        })
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}
