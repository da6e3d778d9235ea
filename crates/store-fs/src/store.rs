//! `FsStore` and its `Backend` implementation (the async layer over the blocking core).

use std::fmt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Backoff, Body, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object,
    ObjectWriter, PutMode, PutOptions, Result, Version,
};

use crate::builder::{Durability, FsStoreBuilder};
use crate::confine::{check_key, io_error};
use crate::layout::{open_object, stat_object};
use crate::listing::Walker;
use crate::root::Root;
use crate::stamp;
use crate::writer::FsWriter;

/// Objects up to this size are read in one blocking call and returned as one buffer;
/// larger ones are streamed in [`READ_CHUNK`]s.
const INLINE_READ_MAX: u64 = 8 << 20;
/// Chunk size of streamed reads.
const READ_CHUNK: u64 = 1 << 20;
/// Entries a listing produces per blocking call.
const LIST_PAGE: usize = 512;
/// First delay of a watch's poll for other processes' changes.
const WATCH_FIRST_POLL: Duration = Duration::from_millis(2);

/// A [`Backend`] on a local directory: durable, atomic, confined, with compare-and-swap
/// that holds across processes sharing the directory.
///
/// See the [crate documentation](crate) for the on-disk layout, the guarantees and their
/// limits. Cloning is cheap; clones share the open root, locks and watchers.
#[derive(Clone)]
pub struct FsStore {
    root: Arc<Root>,
}

/// Runs blocking file-system work on tokio's blocking pool, never on an async worker.
pub(crate) async fn blocking<T, F>(op: &'static str, key: &Key, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(Error::io(op, key, std::io::Error::other(e))),
    }
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root` with the default options
    /// ([`Durability::Full`]); see [`FsStoreBuilder`] for the others.
    pub async fn open(root: impl AsRef<Path>) -> Result<FsStore> {
        FsStoreBuilder::new(root).open().await
    }

    /// Options for opening a store rooted at `root`.
    pub fn builder(root: impl AsRef<Path>) -> FsStoreBuilder {
        FsStoreBuilder::new(root)
    }

    pub(crate) fn from_root(root: Arc<Root>) -> FsStore {
        FsStore { root }
    }

    /// The root directory, as given when opening.
    pub fn root(&self) -> &Path {
        &self.root.path
    }

    /// The durability of this store's puts and deletes.
    pub fn durability(&self) -> Durability {
        self.root.durability
    }

    /// Removes temp files left by crashed writers (what opening does unless
    /// [`sweep_on_open`](FsStoreBuilder::sweep_on_open) is off). Temp files of live
    /// writers, in any process, are left alone. Returns how many were removed.
    pub async fn sweep(&self) -> Result<usize> {
        let root = Arc::clone(&self.root);
        match tokio::task::spawn_blocking(move || crate::sweep::sweep(&root)).await {
            Ok(r) => r,
            Err(e) => Err(Error::io(
                "sweep",
                self.root.path.display(),
                std::io::Error::other(e),
            )),
        }
    }

    /// Number of keys with live watchers in this process (zero once every watch returned
    /// or was dropped).
    pub fn watched_keys(&self) -> usize {
        self.root.watchers.watched_keys()
    }

    async fn current_version(&self, key: &Key) -> Result<Option<Version>> {
        let (root, k) = (Arc::clone(&self.root), key.clone());
        blocking("watch", key, move || {
            stat_object(&root, &k)
                .map(|found| found.map(|(version, _)| version))
                .map_err(|e| io_error("watch", &k, e))
        })
        .await
    }
}

fn not_found(op: &'static str, key: &Key) -> Error {
    Error::NotFound {
        op,
        key: key.to_string(),
    }
}

fn read_range(file: &std::fs::File, key: &Key, start: u64, len: u64) -> Result<Bytes> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, start).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Corrupt {
                key: key.to_string(),
                reason: "the file shrank while being read (changed outside FsStore?)".to_owned(),
            }
        } else {
            Error::io("get", key, e)
        }
    })?;
    Ok(Bytes::from(buf))
}

fn stream_file(
    file: std::fs::File,
    key: Key,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, Result<Bytes>> {
    let file = Arc::new(file);
    stream::unfold(Some(range.start), move |pos| {
        let (file, key) = (Arc::clone(&file), key.clone());
        let end = range.end;
        async move {
            let pos = pos?;
            if pos >= end {
                return None;
            }
            let len = READ_CHUNK.min(end - pos);
            let k = key.clone();
            let chunk = blocking("get", &key, move || read_range(&file, &k, pos, len)).await;
            let next = if chunk.is_ok() { Some(pos + len) } else { None };
            Some((chunk, next))
        }
    })
    .boxed()
}

#[async_trait]
impl Backend for FsStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_create(true)
            .with_update(true)
            .with_conditional_delete(true)
            .with_range_reads(true)
            .with_streaming_writes(true)
            .with_native_watch(true)
            .with_durable(self.root.durability == Durability::Full)
            .with_shared(true)
            .with_stable_versions(true)
            .with_max_object_size(None)
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        check_key(key)?;
        let (root, k) = (Arc::clone(&self.root), key.clone());
        blocking("put", key, move || {
            let tmp = root.create_temp(&k, "put")?;
            std::io::Write::write_all(&mut &tmp.file, &data).map_err(|e| Error::io("put", &k, e))?;
            root.commit(&k, tmp, &opts.mode, "put")
        })
        .await
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        check_key(key)?;
        if opts.mode == PutMode::Create {
            // Fail early when we can; the check that counts is made again at close.
            if let Ok(meta) = self.head(key).await {
                return Err(Error::AlreadyExists {
                    op: "writer",
                    key: key.to_string(),
                    version: meta.version,
                });
            }
        }
        let (root, k) = (Arc::clone(&self.root), key.clone());
        let tmp = blocking("writer", key, move || root.create_temp(&k, "writer")).await?;
        Ok(Box::new(FsWriter::new(
            Arc::clone(&self.root),
            key.clone(),
            opts.mode,
            tmp,
        )))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        check_key(key)?;
        let (root, k) = (Arc::clone(&self.root), key.clone());
        blocking("get", key, move || {
            let (file, st, version) = open_object(&root, &k)
                .map_err(|e| io_error("get", &k, e))?
                .ok_or_else(|| not_found("get", &k))?;
            let meta = stamp::meta(k.clone(), &st, version);
            tracing::trace!(key = %k, version = %meta.version, size = meta.size, "fs get");
            opts.check(&k, &meta.version)?;
            let range = match &opts.range {
                None => 0..meta.size,
                Some(r) => r.resolve(&k, meta.size)?,
            };
            let len = range.end - range.start;
            let body = if len <= INLINE_READ_MAX {
                Body::Bytes(read_range(&file, &k, range.start, len)?)
            } else {
                Body::Stream(stream_file(file, k, range.clone()))
            };
            Ok(Object { meta, range, body })
        })
        .await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        check_key(key)?;
        let (root, k) = (Arc::clone(&self.root), key.clone());
        blocking("head", key, move || {
            let (version, st) = stat_object(&root, &k)
                .map_err(|e| io_error("head", &k, e))?
                .ok_or_else(|| not_found("head", &k))?;
            tracing::trace!(key = %k, "fs head");
            Ok(stamp::meta(k, &st, version))
        })
        .await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        check_key(key)?;
        let (root, k) = (Arc::clone(&self.root), key.clone());
        blocking("delete", key, move || root.delete(&k, opts.if_match.as_ref())).await
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        tracing::trace!(prefix = ?opts.prefix, start_after = ?opts.start_after, "fs list");
        let walker = Walker::new(Arc::clone(&self.root), opts);
        stream::unfold(Some(walker), |walker| async move {
            let mut walker = walker?;
            let page = tokio::task::spawn_blocking(move || {
                let page = walker.next_page(LIST_PAGE);
                (walker, page)
            })
            .await;
            match page {
                Ok((_, Ok(page))) if page.is_empty() => None,
                Ok((walker, Ok(page))) => Some((stream::iter(page).boxed(), Some(walker))),
                Ok((_, Err(e))) => Some((stream::once(async { Err(e) }).boxed(), None)),
                Err(e) => Some((
                    stream::once(async move { Err(Error::io("list", "<root>", std::io::Error::other(e))) })
                        .boxed(),
                    None,
                )),
            }
        })
        .flatten()
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        check_key(key)?;
        let guard = self.root.watchers.register(key);
        let poll = self.root.watch_poll;
        let mut polls = Backoff::new(WATCH_FIRST_POLL.min(poll), poll).start();
        loop {
            let mut notified = pin!(guard.notify().notified());
            // Enabled before the read: a change through this process after the read wakes us.
            notified.as_mut().enable();
            let current = self.current_version(key).await?;
            if current.as_ref() != seen {
                tracing::trace!(key = %key, version = ?current, "fs watch saw a change");
                return Ok(current);
            }
            // Changes by other processes are only seen by looking again (no budget: the
            // policy always has a next delay).
            let delay = polls.next_delay().unwrap_or(poll);
            let sleep = pin!(tokio::time::sleep(delay));
            futures::future::select(notified, sleep).await;
        }
    }
}

impl fmt::Debug for FsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsStore")
            .field("root", &self.root.path)
            .field("durability", &self.root.durability)
            .finish()
    }
}
