//! `CloudStore`: the `Backend` over any `object_store::ObjectStore`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attributes, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use store_core::{
    Backend, Backoff, Body, ByteRange, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions,
    Meta, Object, ObjectWriter, PutMode, PutOptions, Result, Version, poll_watch,
};

use crate::error::{BACKEND, map_err};
use crate::settings::{CloudSettings, Layout};
use crate::version::{CloudVersion, write_id_of};
use crate::writer::CloudWriter;

/// The first key segment `CloudStore` keeps for itself (probe objects). User keys under it
/// are refused and listings never show it.
pub(crate) const RESERVED_SEGMENT: &str = ".store-cloud";

pub(crate) const UNPROBED: u8 = 0;
pub(crate) const ENFORCED: u8 = 1;
pub(crate) const IGNORED: u8 = 2;

/// A [`Backend`] over an object store reached through the `object_store` crate: Amazon S3
/// and S3-compatible servers, Google Cloud Storage, Azure Blob Storage — or any other
/// `Arc<dyn ObjectStore>`.
///
/// Keys live under an optional prefix (`with_prefix`), so several stores can share a bucket.
/// Cloning is cheap and clones share the connection pool and the probe result.
///
/// See the [crate documentation](crate) for how versions, conditional puts, streaming
/// writes, listing and watch map to object-store requests, and for the limits of each.
///
/// **Lost replies.** Every write carries a unique write id, so a conditional put can tell
/// its own write from another: when the client re-sent it after a lost reply and the
/// server refused the copy (`If-None-Match`/`If-Match` failing against the first), the put
/// succeeds instead of reporting a conflict against itself. When it fails with a retryable
/// error, it may have been applied: the error is an
/// [`outcome_unknown`](store_core::Error::outcome_unknown) whose
/// [`WriteResolver`](store_core::WriteResolver) reads the object back (one HEAD) and
/// reports the write if the object there is still it. `store-layers`' `Retry` asks it, so a
/// retried conditional put is never applied twice.
#[derive(Clone)]
pub struct CloudStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    root: Option<String>,
    pub(crate) settings: CloudSettings,
    /// What [`CloudStore::probe`] found: `UNPROBED`, `ENFORCED` or `IGNORED`.
    pub(crate) conditional: Arc<AtomicU8>,
}

impl fmt::Debug for CloudStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudStore")
            .field("store", &self.store.to_string())
            .field("prefix", &self.root)
            .field("conditional_writes", &self.conditional_state())
            .finish()
    }
}

impl CloudStore {
    /// A store over `store`, at its root, with default [`CloudSettings`].
    ///
    /// Conditional writes are not yet known to be enforced, so [`Backend::capabilities`]
    /// reports `create` and `update` as `false` until [`CloudStore::probe`] has checked the
    /// server (the `connect` constructors probe for you).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        CloudStore {
            store,
            root: None,
            settings: CloudSettings::default(),
            conditional: Arc::new(AtomicU8::new(UNPROBED)),
        }
    }

    /// Keeps every key under `prefix` (`"tenant-a/objects"`): key `k` is stored at
    /// `prefix/k`, and listings see only this prefix.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if `prefix` is not a valid key (empty segments, `..`, …).
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self> {
        let trimmed = prefix.trim_matches('/');
        self.root = if trimmed.is_empty() {
            None
        } else {
            Some(Key::new(trimmed)?.as_str().to_owned())
        };
        Ok(self)
    }

    /// Replaces the tuning settings (multipart threshold, part size, watch backoff, …).
    pub fn with_settings(mut self, settings: CloudSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The prefix keys are stored under, if any.
    pub fn prefix(&self) -> Option<&str> {
        self.root.as_deref()
    }

    /// The settings in force.
    pub fn settings(&self) -> &CloudSettings {
        &self.settings
    }

    /// The underlying object store client.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Declares, without probing, that the server enforces conditional puts (or not).
    /// Use it when you know the server and want to skip [`CloudStore::probe`]'s requests.
    pub fn assume_conditional_writes(self, enforced: bool) -> Self {
        self.conditional
            .store(if enforced { ENFORCED } else { IGNORED }, Ordering::Release);
        self
    }

    pub(crate) fn conditional_state(&self) -> &'static str {
        match self.conditional.load(Ordering::Acquire) {
            ENFORCED => "enforced",
            IGNORED => "ignored by the server",
            _ => "not probed",
        }
    }

    /// Refuses a conditional put on a server known to ignore conditions: silently turning a
    /// `Create` or `Update` into an overwrite would be unsafe.
    pub(crate) fn require_conditional(&self, key: &Key) -> Result<()> {
        if self.conditional.load(Ordering::Acquire) == IGNORED {
            tracing::warn!(
                key = key.as_str(),
                "conditional put refused: the server ignores conditions"
            );
            return Err(Error::Unsupported {
                operation: "conditional put (Create/Update) on a server that ignores If-Match/If-None-Match",
                backend: BACKEND,
            });
        }
        Ok(())
    }

    /// The object-store path of `key`.
    pub(crate) fn path(&self, key: &Key) -> Result<Path> {
        if key.segments().next() == Some(RESERVED_SEGMENT) {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                reason: "the first segment \".store-cloud\" is reserved for store-cloud's probe objects",
            });
        }
        match self.settings.layout {
            Layout::Flat => self.raw_path(key.as_str()),
            Layout::Nested => {
                if key.segments().any(|s| s == Layout::LEAF) {
                    return Err(Error::InvalidKey {
                        key: key.to_string(),
                        reason: "the segment \".store-object\" is reserved by the nested layout",
                    });
                }
                self.raw_path(&format!("{key}/{}", Layout::LEAF))
            }
        }
    }

    /// The path of `rest` under the prefix, without the reserved-name check.
    pub(crate) fn raw_path(&self, rest: &str) -> Result<Path> {
        let full = match &self.root {
            Some(root) if rest.is_empty() => root.clone(),
            Some(root) => format!("{root}/{rest}"),
            None => rest.to_owned(),
        };
        Path::parse(&full).map_err(|e| Error::InvalidInput {
            op: "path",
            key: Some(rest.to_owned()),
            reason: format!("not a valid object store path: {e}"),
        })
    }

    /// The key stored at `location`, unless it is outside the prefix or reserved.
    fn key_of(&self, location: &Path) -> Option<Key> {
        let loc = location.as_ref();
        let rest = match &self.root {
            Some(root) => loc.strip_prefix(root.as_str())?.strip_prefix('/')?,
            None => loc,
        };
        let rest = match self.settings.layout {
            Layout::Flat => rest,
            Layout::Nested => rest.strip_suffix(Layout::LEAF)?.strip_suffix('/')?,
        };
        if rest == RESERVED_SEGMENT || rest.starts_with(".store-cloud/") {
            return None;
        }
        Key::new(rest).ok()
    }

    /// Metadata and version of `key` (one HEAD request).
    pub(crate) async fn head_version(
        &self,
        op: &'static str,
        key: &Key,
        path: &Path,
    ) -> Result<(Meta, CloudVersion)> {
        let opts = object_store::GetOptions {
            head: true,
            ..Default::default()
        };
        let r = self
            .store
            .get_opts(path, opts)
            .await
            .map_err(|e| map_err(op, key, e))?;
        Ok(self.meta_of(key, &r.meta, Some(&r.attributes)))
    }

    async fn get_whole(&self, key: &Key, path: &Path, opts: &GetOptions) -> Result<Object> {
        let r = self
            .store
            .get_opts(path, object_store::GetOptions::default())
            .await
            .map_err(|e| map_err("get", key, e))?;
        self.object_of(key, opts, r)
    }

    /// The object in one GET's reply, its body and version from that reply, checked
    /// against `opts`' conditions.
    fn object_of(&self, key: &Key, opts: &GetOptions, r: object_store::GetResult) -> Result<Object> {
        let (meta, _) = self.meta_of(key, &r.meta, Some(&r.attributes));
        opts.check(key, &meta.version)?;
        Ok(Object {
            meta,
            range: r.range.clone(),
            body: body_of(key, r),
        })
    }

    /// A range read: one GET of the range. Its reply carries the object's size, ETag and
    /// write id with the bytes, so the body and the version always belong to one object.
    ///
    /// Servers refuse a range that starts at or past the end of the object, and a range
    /// with nothing in it cannot be asked for; such a read is settled by a HEAD (size and
    /// version), and is empty when the range resolves to nothing at that size — as every
    /// backend resolves it. A range sent but refused for another reason stays an error.
    async fn get_range(
        &self,
        key: &Key,
        path: &Path,
        opts: &GetOptions,
        range: &ByteRange,
    ) -> Result<Object> {
        let wire = match range {
            ByteRange::Bounded(r) if r.start < r.end => Some(GetRange::Bounded(r.clone())),
            ByteRange::From(start) => Some(GetRange::Offset(*start)),
            ByteRange::Suffix(n) if *n > 0 => Some(GetRange::Suffix(*n)),
            // Empty or inverted: resolved below, after the HEAD.
            _ => None,
        };
        let mut refused = None;
        if let Some(wire) = wire {
            let os_opts = object_store::GetOptions {
                range: Some(wire),
                ..Default::default()
            };
            match self.store.get_opts(path, os_opts).await {
                Ok(r) => return self.object_of(key, opts, r),
                Err(e @ object_store::Error::NotFound { .. }) => return Err(map_err("get", key, e)),
                Err(e) => refused = Some(e),
            }
        }
        let (meta, _) = self.head_version("get", key, path).await?;
        opts.check(key, &meta.version)?;
        let wanted = range.resolve(key, meta.size)?;
        match refused {
            // Not a range past the end: the server's refusal stands.
            Some(e) if !wanted.is_empty() => Err(map_err("get", key, e)),
            // Only a range that resolves to nothing is never sent.
            _ => Ok(Object {
                meta,
                range: wanted,
                body: Body::Bytes(Bytes::new()),
            }),
        }
    }

    /// The metadata and version of the object `m` (with `attributes` when the request
    /// returned them: a HEAD or GET does, a listing does not).
    ///
    /// With write ids on, a version is `"<write id>~<object version id>~<etag>"`. With them
    /// off it is the ETag alone: every part of it is then in a listing, so a listed version
    /// equals the one `head`, `get` and a put report for the same object.
    pub(crate) fn meta_of(
        &self,
        key: &Key,
        m: &object_store::ObjectMeta,
        attributes: Option<&Attributes>,
    ) -> (Meta, CloudVersion) {
        let cv = self.version_of(
            m.e_tag.as_deref(),
            m.version.as_deref(),
            attributes.and_then(write_id_of),
        );
        let meta = Meta {
            key: key.clone(),
            size: m.size,
            version: cv.to_version(),
            modified: m.last_modified.into(),
        };
        (meta, cv)
    }

    /// The version of an object with this ETag, object version id and write id, keeping
    /// only the ETag when write ids are off (see [`CloudStore::meta_of`]).
    pub(crate) fn version_of(
        &self,
        etag: Option<&str>,
        object_version: Option<&str>,
        write_id: Option<&str>,
    ) -> CloudVersion {
        if self.settings.write_ids {
            CloudVersion::new(etag, object_version, write_id)
        } else {
            CloudVersion::new(etag, None, None)
        }
    }
}

fn body_of(key: &Key, r: object_store::GetResult) -> Body {
    let key = key.clone();
    Body::Stream(r.into_stream().map_err(move |e| map_err("get", &key, e)).boxed())
}

#[async_trait]
impl Backend for CloudStore {
    fn capabilities(&self) -> Capabilities {
        let enforced = self.conditional.load(Ordering::Acquire) == ENFORCED;
        Capabilities::NONE
            .with_create(enforced)
            .with_update(enforced)
            // object_store has no conditional delete: `if_match` is checked, then the
            // object deleted, in two requests.
            .with_conditional_delete(false)
            .with_range_reads(true)
            .with_streaming_writes(true)
            .with_native_watch(false)
            .with_durable(true)
            .with_shared(true)
            // A version is the object's ETag or its write id: one content each.
            .with_stable_versions(true)
            // S3's limit for one object (GCS and Azure allow the same or more).
            .with_max_object_size(Some(5 << 40))
    }

    #[tracing::instrument(level = "debug", skip(self, data, opts), fields(key = key.as_str(), len = data.len()))]
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let path = self.path(key)?;
        self.put_payload(key, &path, PutPayload::from_bytes(data), opts.mode)
            .await
    }

    #[tracing::instrument(level = "debug", skip(self, opts), fields(key = key.as_str()))]
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let path = self.path(key)?;
        if !matches!(opts.mode, PutMode::Overwrite) {
            self.require_conditional(key)?;
        }
        Ok(Box::new(CloudWriter::new(
            self.clone(),
            key.clone(),
            path,
            opts.mode,
        )))
    }

    #[tracing::instrument(level = "debug", skip(self, opts), fields(key = key.as_str()))]
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let path = self.path(key)?;
        match &opts.range {
            Some(range) => self.get_range(key, &path, &opts, range).await,
            None => self.get_whole(key, &path, &opts).await,
        }
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = key.as_str()))]
    async fn head(&self, key: &Key) -> Result<Meta> {
        let path = self.path(key)?;
        Ok(self.head_version("head", key, &path).await?.0)
    }

    /// Deletes `key`: two requests, a HEAD, then the DELETE. object_store's delete takes no
    /// condition, on any provider, so `if_match` is checked by that HEAD and not enforced
    /// by the server (`capabilities().conditional_delete` is `false`). What a delete
    /// guarantees follows:
    ///
    /// - `NotFound`, and for `if_match` a `Conflict` (with the version found), are exact:
    ///   the HEAD found the key absent, or at another version, and nothing was deleted.
    /// - Success means that at the HEAD the key was present (at the `if_match` version, if
    ///   one was given), and that the DELETE then removed **whatever object was there when
    ///   it ran**: the key is absent right after it, until the next write.
    /// - Between the two requests (one round trip) another client may write or delete the
    ///   key. Of two racing deletes, conditional or not, both may report success. A put
    ///   that lands in between — any mode, also an `Update` from the version `if_match`
    ///   names, which succeeds and returns its new version — is deleted by a delete that
    ///   never saw it and that reports success. So a conditional delete is a check, then an
    ///   unconditional delete; it is no compare-and-delete, and a lost update of this kind
    ///   is not reported to anyone.
    #[tracing::instrument(level = "debug", skip(self, opts), fields(key = key.as_str()))]
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let path = self.path(key)?;
        // S3 deletes are idempotent (deleting nothing succeeds), but the contract wants
        // NotFound for an absent key, and `if_match` needs the current version: one HEAD.
        let (meta, _) = self.head_version("delete", key, &path).await?;
        if let Some(want) = opts.if_match.filter(|want| *want != meta.version) {
            return Err(Error::Conflict {
                op: "delete",
                key: key.to_string(),
                expected: Some(want),
                actual: Some(meta.version),
            });
        }
        self.store
            .delete(&path)
            .await
            .map_err(|e| map_err("delete", key, e))
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        crate::listing::list(self.clone(), opts)
    }

    #[tracing::instrument(level = "debug", skip(self, seen), fields(key = key.as_str()))]
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.path(key)?;
        let backoff: Backoff = self.settings.watch_backoff;
        poll_watch(self, key, seen, backoff).await
    }
}

impl CloudStore {
    /// Lists object-store entries under the deepest whole segment of `prefix`, starting
    /// after `start_after`, as (key, object meta) pairs in key order.
    pub(crate) fn raw_list(
        &self,
        dir: &str,
        start_after: Option<&str>,
    ) -> Result<BoxStream<'static, Result<(Key, object_store::ObjectMeta)>>> {
        let list_root = match (&self.root, dir.is_empty()) {
            (None, true) => None,
            _ => Some(self.raw_path(dir)?),
        };
        // Only a flat layout lists in key order, so only there can the server skip ahead.
        let offset = match self.settings.layout {
            Layout::Flat => start_after.map(|s| self.raw_path(s)),
            Layout::Nested => None,
        };
        let raw = match offset {
            Some(Ok(offset)) => self.store.list_with_offset(list_root.as_ref(), &offset),
            // A start_after that is no valid path is filtered on our side.
            _ => self.store.list(list_root.as_ref()),
        };
        let this = self.clone();
        Ok(raw
            .try_filter_map(move |m| {
                let key = this.key_of(&m.location);
                futures::future::ready(Ok(key.map(|k| (k, m))))
            })
            .map_err(|e| Error::Backend {
                backend: BACKEND,
                retryable: true,
                source: format!("list: {e}").into(),
            })
            .boxed())
    }
}
