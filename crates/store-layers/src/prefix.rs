//! `Prefix`: a namespace under a key prefix.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, Layer, ListOptions, Meta, Object,
    ObjectWriter, PutOptions, Result, Version,
};

/// The layer that keeps every key under a prefix: key `k` is stored as `prefix/k`, listings
/// see only the namespace and return its keys without the prefix, and `watch` watches the
/// stored key. Several programs (tenants, test runs) can so share one backend.
///
/// The stored key must be a valid key too, so a key within 1 KiB of the limit can become
/// too long under a prefix: that is an [`Error::InvalidKey`] naming the key. Errors of the
/// backend name the stored key (with the prefix), which is what an operator finds in it.
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_layers::Prefix;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
/// let shared = std::sync::Arc::new(MemoryStore::new());
/// let tenant = shared.clone().layer(Prefix::new("tenants/a")?);
/// tenant.put_bytes(&Key::new("orders/1")?, "{}").await?;
/// assert_eq!(tenant.list_keys("").await?, [Key::new("orders/1")?]);
/// assert!(shared.exists(&Key::new("tenants/a/orders/1")?).await?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    root: Key,
}

impl Prefix {
    /// A namespace under `prefix` (leading and trailing `/` ignored).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if `prefix` is not a valid key (empty, `..` segments, …).
    pub fn new(prefix: &str) -> Result<Prefix> {
        Ok(Prefix {
            root: Key::new(prefix.trim_matches('/'))?,
        })
    }
}

impl<B: Backend> Layer<B> for Prefix {
    type Backend = PrefixStore<B>;

    fn layer(self, inner: B) -> PrefixStore<B> {
        let dir = format!("{}/", self.root);
        PrefixStore {
            inner,
            root: self.root,
            dir,
        }
    }
}

/// A backend seen through a key prefix: see [`Prefix`].
pub struct PrefixStore<B> {
    inner: B,
    root: Key,
    /// `root` and a `/`: what every stored key starts with.
    dir: String,
}

impl<B> PrefixStore<B> {
    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The prefix.
    pub fn prefix(&self) -> &Key {
        &self.root
    }

    /// The stored key of `key`.
    fn stored(&self, key: &Key) -> Result<Key> {
        self.root.join(key.as_str())
    }
}

/// `meta` with its stored key turned back into the caller's key.
fn unprefixed(dir: &str, mut meta: Meta) -> Result<Meta> {
    let inner = meta.key.as_str();
    let rest = inner.strip_prefix(dir).ok_or_else(|| Error::Corrupt {
        key: inner.to_owned(),
        reason: format!("the backend returned a key outside the prefix {dir:?}"),
    })?;
    meta.key = Key::new(rest)?;
    Ok(meta)
}

impl<B: fmt::Debug> fmt::Debug for PrefixStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixStore")
            .field("inner", &self.inner)
            .field("prefix", &self.root)
            .finish()
    }
}

#[async_trait]
impl<B: Backend> Backend for PrefixStore<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let meta = self.inner.put(&self.stored(key)?, data, opts).await?;
        unprefixed(&self.dir, meta)
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let inner = self.inner.writer(&self.stored(key)?, opts).await?;
        Ok(Box::new(PrefixWriter {
            inner,
            dir: self.dir.clone(),
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let mut object = self.inner.get(&self.stored(key)?, opts).await?;
        object.meta = unprefixed(&self.dir, object.meta)?;
        Ok(object)
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        let meta = self.inner.head(&self.stored(key)?).await?;
        unprefixed(&self.dir, meta)
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.inner.delete(&self.stored(key)?, opts).await
    }

    fn list(&self, mut opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        // Every stored key starts with `dir`, so comparing stored keys orders them as the
        // caller's keys: prefixing `prefix` and `start_after` is all the translation needed.
        opts.prefix = Some(format!("{}{}", self.dir, opts.prefix.unwrap_or_default()));
        opts.start_after = opts.start_after.map(|after| format!("{}{after}", self.dir));
        let dir = self.dir.clone();
        self.inner
            .list(opts)
            .map(move |item| item.and_then(|meta| unprefixed(&dir, meta)))
            .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.inner.watch(&self.stored(key)?, seen).await
    }
}

/// The writer of a [`PrefixStore`]: returns the caller's key on `close`.
struct PrefixWriter {
    inner: Box<dyn ObjectWriter>,
    dir: String,
}

impl fmt::Debug for PrefixWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixWriter")
            .field("inner", &self.inner)
            .field("prefix", &self.dir)
            .finish()
    }
}

#[async_trait]
impl ObjectWriter for PrefixWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.write(chunk).await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        let meta = self.inner.close().await?;
        unprefixed(&self.dir, meta)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
