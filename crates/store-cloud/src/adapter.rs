//! Any [`Backend`] as an [`object_store::ObjectStore`]: the other direction of
//! [`CloudStore`](crate::CloudStore).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions as OsGetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode as OsPutMode, PutMultipartOptions,
    PutOptions as OsPutOptions, PutPayload, PutResult, UploadPart,
};
use store_core::{
    Backend, Body, ByteRange, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, ObjectWriter,
    PutMode, PutOptions, Version,
};
use tokio::sync::{mpsc, oneshot};

/// The name the adapter gives itself in `object_store` errors.
const STORE: &str = "ObjectStoreAdapter";

/// Puts any [`Backend`] behind the [`ObjectStore`] trait, so that programs written for
/// `object_store` (DataFusion, delta-rs, Polars, Lance, iceberg-rust …) run unchanged on
/// it — and get what the backend guarantees: `PutMode::Update` is a real compare-and-swap
/// on [`FsStore`](https://docs.rs/store-fs) across processes, where `LocalFileSystem`
/// refuses it.
///
/// ```
/// use std::sync::Arc;
/// use object_store::{ObjectStore, PutMode, PutOptions, path::Path};
/// use store_cloud::ObjectStoreAdapter;
/// use store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> object_store::Result<()> {
/// let store: Arc<dyn ObjectStore> = Arc::new(ObjectStoreAdapter::new(MemoryStore::new()));
/// let path = Path::from("_delta_log/00000000000000000000.json");
/// let first = store.put_opts(&path, "commit 0".into(), PutMode::Create.into()).await?;
/// // A second writer racing for the same commit loses cleanly:
/// let lost = store.put_opts(&path, "other".into(), PutMode::Create.into()).await;
/// assert!(matches!(lost, Err(object_store::Error::AlreadyExists { .. })));
/// // Compare-and-swap from the e_tag the first put returned:
/// store.put_opts(&path, "commit 0, amended".into(), PutMode::Update(first.into()).into()).await?;
/// # Ok(()) }
/// ```
///
/// # How the calls map
/// - **Paths** are keys: the path's text (as [`Path::as_ref`] gives it, percent-encoding
///   included) must be a valid [`Key`]; a path that is not (the empty path, or a segment
///   the backend reserves) is an error naming it.
/// - **Versions**: `e_tag` is the backend's [`Version`]; `PutMode::Update` sends it back as
///   `store_core::PutMode::Update`, so a stale e_tag is `Precondition` (and so is an update
///   of an absent object, as `object_store` expects). `version` is `None`: a backend keeps
///   only the current version of an object.
/// - **Reads**: `get_opts` passes ranges through, checks `if_match`, `if_none_match`,
///   `if_modified_since` and `if_unmodified_since` against the metadata of the read it
///   made (one read, so body and checks agree), and serves `version` only when it names
///   the current version. `head` is the backend's `head`.
/// - **Listings** come from the backend's ordered listing: `list` is one listing of the
///   prefix's subtree; `list_with_offset` passes the offset down as `start_after`;
///   `list_with_delimiter` lists objects directly under the prefix and, for each common
///   prefix, starts a new listing after its subtree (one listing per directory, not per
///   object).
/// - **Copy and rename** are a read and a put (`copy_if_not_exists`: a `Create` put),
///   then, for rename, a delete: **not atomic across the two keys** where the backend has
///   no native copy; a reader may see both keys for a moment, and a crash between the put
///   and the delete leaves both.
/// - **Multipart puts** stream through the backend's [`writer`](Backend::writer): parts
///   are appended in the order `put_part` is called (each part's future completes once it
///   is written), and `complete` commits atomically; `abort` (or dropping the upload)
///   leaves nothing behind. [`object_store::multipart::MultipartStore`] (parts by index, out of order)
///   is not offered.
/// - **Attributes and tags** are refused with `NotImplemented` when given: backends store
///   bytes and versions only.
#[derive(Debug, Clone)]
pub struct ObjectStoreAdapter<B> {
    /// Shared with the tasks of `delete_stream` and of multipart uploads. Calls go to `B`
    /// itself ([`ObjectStoreAdapter::backend`]): `Arc<B>`'s forwarding `Backend` impl would
    /// box every call's future a second time.
    inner: Arc<B>,
}

impl<B: Backend> ObjectStoreAdapter<B> {
    /// Wraps `backend`.
    pub fn new(backend: B) -> Self {
        ObjectStoreAdapter {
            inner: Arc::new(backend),
        }
    }

    /// The wrapped backend.
    pub fn backend(&self) -> &B {
        &self.inner
    }
}

impl<B: Backend> fmt::Display for ObjectStoreAdapter<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE}({:?})", self.inner)
    }
}

/// The key a path names.
fn key_of(path: &Path) -> object_store::Result<Key> {
    Key::new(path.as_ref()).map_err(|e| generic(format!("path {:?} is not a valid key: {e}", path.as_ref())))
}

/// The path of a key.
fn path_of(key: &Key) -> object_store::Result<Path> {
    Path::parse(key.as_str()).map_err(object_store::Error::from)
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: message.into(),
    }
}

/// An `object_store` error for `e`, met at `path`: the conditions a caller of
/// `object_store` matches on keep their meaning.
fn os_error(e: Error, path: &str) -> object_store::Error {
    let path = path.to_owned();
    match e {
        Error::NotFound { .. } => object_store::Error::NotFound {
            path,
            source: Box::new(e),
        },
        Error::AlreadyExists { .. } => object_store::Error::AlreadyExists {
            path,
            source: Box::new(e),
        },
        Error::Conflict { .. } => object_store::Error::Precondition {
            path,
            source: Box::new(e),
        },
        Error::NotModified { .. } => object_store::Error::NotModified {
            path,
            source: Box::new(e),
        },
        Error::Unsupported { .. } => object_store::Error::NotSupported { source: Box::new(e) },
        e => object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        },
    }
}

/// As [`os_error`], for a conditional put: an update of an absent object fails its
/// precondition (what `object_store` callers expect), it is not "not found".
fn put_error(e: Error, path: &str, mode: &PutMode) -> object_store::Error {
    match (e, mode) {
        (e @ Error::NotFound { .. }, PutMode::Update(_)) => object_store::Error::Precondition {
            path: path.to_owned(),
            source: Box::new(e),
        },
        (e, _) => os_error(e, path),
    }
}

fn not_implemented(operation: &str) -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: operation.to_owned(),
        implementer: STORE.to_owned(),
    }
}

fn object_meta(meta: &Meta, location: Path) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: meta.modified.into(),
        size: meta.size,
        e_tag: Some(meta.version.to_string()),
        version: None,
    }
}

fn put_result(meta: &Meta) -> PutResult {
    PutResult {
        e_tag: Some(meta.version.to_string()),
        version: None,
        extensions: Default::default(),
    }
}

fn byte_range(range: GetRange) -> ByteRange {
    match range {
        GetRange::Bounded(r) => ByteRange::Bounded(r),
        GetRange::Offset(start) => ByteRange::From(start),
        GetRange::Suffix(n) => ByteRange::Suffix(n),
    }
}

/// The listing prefix for an `object_store` prefix: whole segments only (`a` lists `a/…`,
/// not `ab`).
fn list_prefix(prefix: Option<&Path>) -> Option<String> {
    prefix
        .filter(|p| !p.as_ref().is_empty())
        .map(|p| format!("{}/", p.as_ref()))
}

fn listing<B: Backend>(inner: &B, opts: ListOptions) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    inner
        .list(opts)
        .map(|item| {
            let meta = item.map_err(|e| os_error(e, ""))?;
            Ok(object_meta(&meta, path_of(&meta.key)?))
        })
        .boxed()
}

#[async_trait]
impl<B: Backend> ObjectStore for ObjectStoreAdapter<B> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: OsPutOptions,
    ) -> object_store::Result<PutResult> {
        if !opts.attributes.is_empty() || !opts.tags.is_empty() {
            return Err(not_implemented("put with attributes or tags"));
        }
        let key = key_of(location)?;
        let mode = match opts.mode {
            OsPutMode::Overwrite => PutMode::Overwrite,
            OsPutMode::Create => PutMode::Create,
            OsPutMode::Update(v) => {
                let tag = v.e_tag.ok_or_else(|| {
                    generic(format!(
                        "put {:?}: PutMode::Update needs the e_tag",
                        location.as_ref()
                    ))
                })?;
                PutMode::Update(Version::from(tag))
            }
        };
        let meta = self
            .backend()
            .put(
                &key,
                // One chunk (the common case) is handed over without a copy.
                Bytes::from(payload),
                PutOptions::default().with_mode(mode.clone()),
            )
            .await
            .map_err(|e| put_error(e, location.as_ref(), &mode))?;
        Ok(put_result(&meta))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if !opts.attributes.is_empty() || !opts.tags.is_empty() {
            return Err(not_implemented("multipart put with attributes or tags"));
        }
        let key = key_of(location)?;
        let writer = self
            .backend()
            .writer(&key, PutOptions::default())
            .await
            .map_err(|e| os_error(e, location.as_ref()))?;
        Ok(Box::new(Upload::start(writer, location.to_string())))
    }

    async fn get_opts(&self, location: &Path, options: OsGetOptions) -> object_store::Result<GetResult> {
        let key = key_of(location)?;
        let shown = location.as_ref();
        if options.head {
            let meta = self.backend().head(&key).await.map_err(|e| os_error(e, shown))?;
            let meta_os = object_meta(&meta, location.clone());
            check(&options, &meta_os)?;
            return Ok(GetResult {
                payload: GetResultPayload::Stream(stream::empty().boxed()),
                range: 0..meta.size,
                meta: meta_os,
                attributes: Default::default(),
                extensions: Default::default(),
            });
        }
        let mut get = GetOptions::default();
        if let Some(range) = options.range.clone() {
            get = get.with_range(byte_range(range));
        }
        let object = self
            .backend()
            .get(&key, get)
            .await
            .map_err(|e| os_error(e, shown))?;
        let meta = object_meta(&object.meta, location.clone());
        check(&options, &meta)?;
        let range: Range<u64> = object.range.clone();
        let body = match object.body {
            // Already in memory (small objects, in-memory stores): one chunk, nothing to map.
            Body::Bytes(bytes) => stream::once(async move { Ok(bytes) }).boxed(),
            streamed => {
                let path = shown.to_owned();
                streamed
                    .into_stream()
                    .map_err(move |e| os_error(e, &path))
                    .boxed()
            }
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(body),
            meta,
            range,
            attributes: Default::default(),
            extensions: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = Arc::clone(&self.inner);
        locations
            .then(move |location| {
                let inner = Arc::clone(&inner);
                async move {
                    let location = location?;
                    let key = key_of(&location)?;
                    B::delete(&inner, &key, DeleteOptions::default())
                        .await
                        .map_err(|e| os_error(e, location.as_ref()))?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let mut opts = ListOptions::default();
        opts.prefix = list_prefix(prefix);
        listing(self.backend(), opts)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let mut opts = ListOptions::default().with_start_after(offset.as_ref());
        opts.prefix = list_prefix(prefix);
        listing(self.backend(), opts)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let base = list_prefix(prefix).unwrap_or_default();
        let mut objects = Vec::new();
        let mut common_prefixes = Vec::new();
        let mut start_after: Option<String> = None;
        // The common prefix last found: a listing restarted after it may still meet keys
        // below it that sort after the restart point (`dir/` followed by `char::MAX`).
        let mut last_dir: Option<String> = None;
        'listings: loop {
            let mut opts = ListOptions::default().with_prefix(base.clone());
            opts.start_after = start_after.take();
            let mut entries = self.backend().list(opts);
            while let Some(meta) = entries.try_next().await.map_err(|e| os_error(e, &base))? {
                if last_dir
                    .as_deref()
                    .is_some_and(|d| meta.key.as_str().starts_with(d))
                {
                    continue;
                }
                let rest = &meta.key.as_str()[base.len()..];
                match rest.split_once('/') {
                    None => objects.push(object_meta(&meta, path_of(&meta.key)?)),
                    Some((dir, _)) => {
                        let dir = format!("{base}{dir}");
                        common_prefixes.push(Path::parse(&dir)?);
                        // Every key below `dir/` sorts before this one, but for keys that
                        // continue past `char::MAX` (skipped above): go on after them.
                        start_after = Some(format!("{dir}/{}", char::MAX));
                        last_dir = Some(format!("{dir}/"));
                        continue 'listings;
                    }
                }
            }
            break;
        }
        Ok(ListResult {
            common_prefixes,
            objects,
            extensions: Default::default(),
        })
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        let (source, target) = (key_of(from)?, key_of(to)?);
        let object = self
            .backend()
            .get(&source, GetOptions::default())
            .await
            .map_err(|e| os_error(e, from.as_ref()))?;
        let data = object.bytes().await.map_err(|e| os_error(e, from.as_ref()))?;
        let mode = match options.mode {
            CopyMode::Overwrite => PutMode::Overwrite,
            CopyMode::Create => PutMode::Create,
        };
        self.backend()
            .put(&target, data, PutOptions::default().with_mode(mode))
            .await
            .map_err(|e| os_error(e, to.as_ref()))?;
        Ok(())
    }
}

/// `object_store`'s checks of `options` against `meta`, and the one version a backend
/// keeps.
fn check(options: &OsGetOptions, meta: &ObjectMeta) -> object_store::Result<()> {
    if let Some(version) = &options.version
        && meta.e_tag.as_ref() != Some(version)
    {
        return Err(object_store::Error::NotFound {
            path: meta.location.to_string(),
            source: format!("version {version} is not the current one, and no other is kept").into(),
        });
    }
    options.check_preconditions(meta)
}

/// A part handed to [`Upload::put_part`], and where to say it has been written.
type Part = (PutPayload, oneshot::Sender<object_store::Result<()>>);

/// A multipart upload streamed through a backend's writer by a task that appends the parts
/// in the order they were handed over.
#[derive(Debug)]
struct Upload {
    parts: Option<mpsc::UnboundedSender<Part>>,
    /// Commit (`true`) or abort (`false`); dropping it aborts.
    decision: Option<oneshot::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<object_store::Result<Option<Meta>>>>,
    path: String,
}

impl Upload {
    fn start(writer: Box<dyn ObjectWriter>, path: String) -> Upload {
        let (parts, received) = mpsc::unbounded_channel();
        let (decision, decided) = oneshot::channel();
        let task = tokio::spawn(Upload::run(writer, received, decided, path.clone()));
        Upload {
            parts: Some(parts),
            decision: Some(decision),
            task: Some(task),
            path,
        }
    }

    async fn run(
        mut writer: Box<dyn ObjectWriter>,
        mut parts: mpsc::UnboundedReceiver<Part>,
        decided: oneshot::Receiver<bool>,
        path: String,
    ) -> object_store::Result<Option<Meta>> {
        let mut failed = None;
        while let Some((payload, written)) = parts.recv().await {
            if failed.is_some() {
                let _ = written.send(Err(generic(format!(
                    "multipart put {path:?}: an earlier part failed"
                ))));
                continue;
            }
            let mut result = Ok(());
            for chunk in payload {
                if let Err(e) = writer.write(chunk).await {
                    result = Err(e);
                    break;
                }
            }
            let reply = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(generic(format!("multipart put {path:?}: {e}"))),
            };
            let _ = written.send(reply);
            failed = result.err();
        }
        match (failed, decided.await) {
            (None, Ok(true)) => writer.close().await.map(Some).map_err(|e| os_error(e, &path)),
            (Some(e), Ok(true)) => {
                let _ = writer.abort().await;
                Err(os_error(e, &path))
            }
            (_, _) => writer
                .abort()
                .await
                .map(|()| None)
                .map_err(|e| os_error(e, &path)),
        }
    }

    async fn finish(&mut self, commit: bool) -> object_store::Result<Option<Meta>> {
        self.parts.take();
        if let Some(decision) = self.decision.take() {
            let _ = decision.send(commit);
        }
        let task = self
            .task
            .take()
            .ok_or_else(|| generic(format!("multipart put {:?} already finished", self.path)))?;
        task.await?
    }
}

#[async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (written, done) = oneshot::channel();
        let path = self.path.clone();
        match &self.parts {
            Some(parts) if parts.send((data, written)).is_ok() => Box::pin(async move {
                done.await
                    .unwrap_or_else(|_| Err(generic(format!("multipart put {path:?} was aborted"))))
            }),
            _ => Box::pin(async move { Err(generic(format!("multipart put {path:?} already finished"))) }),
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let meta = self.finish(true).await?;
        let meta = meta.ok_or_else(|| generic(format!("multipart put {:?} was aborted", self.path)))?;
        Ok(put_result(&meta))
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.finish(false).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use store_memory::MemoryStore;

    use super::*;

    /// A payload of several chunks is stored as one object, in order; an empty one as an
    /// empty object.
    #[tokio::test]
    async fn put_joins_the_chunks_of_a_payload() {
        let store = ObjectStoreAdapter::new(MemoryStore::new());
        let path = Path::from("chunks");
        let payload: PutPayload = ["ab", "c", "def"].map(Bytes::from).into_iter().collect();
        assert_eq!(payload.as_ref().len(), 3);
        store.put(&path, payload).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "abcdef");
        store.put(&path, PutPayload::new()).await.unwrap();
        assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "");
    }
}
