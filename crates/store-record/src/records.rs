//! `Records<B>`: the `RecordStore` over any backend.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use store_core::{
    Backend, BackendExt, Body, ByteRange, Error, GetOptions, Key, ListOptions, Meta, PutMode, PutOptions,
    Record, RecordStore, Result, Version,
};

use crate::clock::{self, Clock, SystemClock};
use crate::envelope::{self, Envelope};
use crate::known::Known;
use store_core::GlobPattern;
/// How often a `create` or `delete` starts over because another writer changed the key
/// between its read and its conditional write, before giving up with `Contention`.
const MAX_ATTEMPTS: u32 = 1_000;
/// Bytes to read to learn a record's expiry without its value (header + expiry).

const HEADER_PREFIX: u64 = 11;
/// A [`RecordStore`] over any [`Backend`]: versioned values with expiry, compare-and-swap,

/// watch and glob listing.
///
/// Each record is one backend object, so the record's version *is* the object's version:
/// `cas_by_version` is `PutMode::Update(version)`, `create` is `PutMode::Create`, and
/// `wait_for_version_change` is the backend's `watch`. The object holds a small binary
/// envelope (format version, optional expiry, value).
///
/// Cheap to clone: clones share the backend and the clock.
pub struct Records<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    backend: B,
    clock: Arc<dyn Clock>,
    /// `clock` is [`SystemClock`]: expiries in nanoseconds are checked without converting.
    system_clock: bool,
    /// Expiries of versions this handle wrote with `create` or `cas_by_version`; `None`
    /// when the backend's versions do not always name one content (a fan-out), where a
    /// remembered expiry could belong to another copy than the one readers see.
    known: Option<Known>,
}
/// Configures a [`Records`]: see [`Records::builder`].

pub struct RecordsBuilder<B> {
    backend: B,
    clock: Arc<dyn Clock>,
    system_clock: bool,
}

impl<B: Backend> RecordsBuilder<B> {
    /// Decides expiry with `clock` instead of the system clock (tests use a
    /// [`ManualClock`](crate::ManualClock)).
    ///
    /// Waiting for an expiry (in `wait_for_version_change`) still sleeps in real time, for
    /// as long as `clock` says is left.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.system_clock = (&clock as &dyn Any).is::<SystemClock>();
        self.clock = Arc::new(clock);
        self
    }
    /// Builds the store.

    pub fn build(self) -> Records<B> {
        let known = self.backend.capabilities().stable_versions.then(Known::new);
        Records {
            inner: Arc::new(Inner {
                backend: self.backend,
                clock: self.clock,
                system_clock: self.system_clock,
                known,
            }),
        }
    }
}
/// What is stored at a key, as far as records are concerned.

pub(crate) enum Current {
    Absent,
    /// Present in the backend but past its expiry: absent for every operation, and due to be
    /// purged with `delete_if(version)`.
    Expired(Version),
    Live(Record),
}

impl<B: Backend> Records<B> {
    /// Records over `backend`, with expiry by the system clock.
    pub fn new(backend: B) -> Self {
        Self::builder(backend).build()
    }
    /// A builder, to set the clock.

    pub fn builder(backend: B) -> RecordsBuilder<B> {
        RecordsBuilder {
            backend,
            clock: Arc::new(SystemClock),
            system_clock: true,
        }
    }
    /// The backend underneath.

    pub fn backend(&self) -> &B {
        &self.inner.backend
    }
    /// The time by this store's clock.

    pub fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }
    /// Whether a version expiring at `expiry` (nanoseconds since the Unix epoch; `None`:

    /// never) is still live by this store's clock.
    fn live_until(&self, expiry: Option<u64>) -> bool {
        match expiry {
            None => true,
            Some(nanos) if self.inner.system_clock => !clock::system_reached_nanos(nanos),
            Some(nanos) => !self.inner.clock.reached(envelope::from_nanos(nanos)),
        }
    }
    /// Reads the record at `key`.

    async fn read(&self, key: &Key) -> Result<Current> {
        let obj = match self.inner.backend.get(key, GetOptions::default()).await {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => return Ok(Current::Absent),
            Err(e) => return Err(e),
        };
        let Meta {
            key: stored_key,
            version,
            ..
        } = obj.meta;
        let data = match obj.body {
            // The common case, without another state machine around it.
            Body::Bytes(data) => data,
            body => match body.bytes().await {
                Ok(data) => data,
                Err(e) if e.is_not_found() => return Ok(Current::Absent),
                Err(e) => return Err(e),
            },
        };
        let env = envelope::decode(key, data)?;
        if !self.live_until(env.expiry) {
            return Ok(Current::Expired(version));
        }
        let expires_at = env.expires_at();
        let Envelope { value, .. } = env;
        Ok(Current::Live(Record {
            // The key the backend handed back is this one: reuse it rather than clone
            // (and drop) another reference.
            key: if stored_key == *key {
                stored_key
            } else {
                key.clone()
            },
            value,
            version,
            expires_at,
        }))
    }
    /// Reads only the envelope header of `key` (a range read of its first bytes): its

    /// version and whether it has expired. `None` if absent.
    pub(crate) async fn read_expiry(&self, key: &Key) -> Result<Option<(Version, bool)>> {
        let opts = GetOptions::default().with_range(ByteRange::from(0..HEADER_PREFIX));
        let obj = match self.inner.backend.get(key, opts).await {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let version = obj.meta.version;
        let head = match obj.body {
            Body::Bytes(head) => head,
            body => match body.bytes().await {
                Ok(head) => head,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let expired = !self.live_until(envelope::decode(key, head)?.expiry);
        Ok(Some((version, expired)))
    }
    /// Removes an expired record, unless it was renewed (its version changed) meanwhile.

    /// Returns whether it removed it. Failures are logged, not returned: purging is
    /// housekeeping, and the record is absent for every operation either way.
    ///
    /// Boxed: it is the cold path of every operation, and keeping its state out of their
    /// futures keeps the hot path small.
    pub(crate) fn purge<'a>(&'a self, key: &'a Key, version: Version) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            match self.inner.backend.delete_if(key, version.clone()).await {
                Ok(()) => {
                    tracing::debug!(key = %key, version = %version, "purged expired record");
                    true
                }
                Err(e) if e.is_not_found() || e.is_conflict() => false,
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "could not purge expired record");
                    false
                }
            }
        })
    }
    /// The live record at `key`, purging it if it has expired.

    async fn live(&self, key: &Key) -> Result<Option<Record>> {
        match self.read(key).await? {
            Current::Live(r) => Ok(Some(r)),
            Current::Expired(v) => {
                self.purge(key, v).await;
                Ok(None)
            }
            Current::Absent => Ok(None),
        }
    }
    /// Lists the keys from `opts` whose records have not expired.

    pub(crate) fn list_live(
        &self,
        opts: ListOptions,
        pattern: Option<Arc<GlobPattern>>,
    ) -> BoxStream<'static, Result<Key>> {
        let this = self.clone();
        self.inner
            .backend
            .list(opts)
            .try_filter_map(move |meta| {
                let this = this.clone();
                let wanted = pattern.as_ref().is_none_or(|p| p.is_match(meta.key.as_str()));
                async move {
                    if !wanted {
                        return Ok(None);
                    }
                    Ok(match this.read_expiry(&meta.key).await? {
                        Some((_, false)) => Some(meta.key),
                        Some((version, true)) => {
                            this.purge(&meta.key, version).await;
                            None
                        }
                        None => None,
                    })
                }
            })
            .boxed()
    }
}

impl<B> Clone for Records<B> {
    fn clone(&self) -> Self {
        Records {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for Records<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl<B: fmt::Debug> fmt::Debug for RecordsBuilder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordsBuilder")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn not_found(op: &'static str, key: &Key) -> Error {
    Error::NotFound {
        op,
        key: key.to_string(),
    }
}
/// Renames the operation in a backend's condition error to the record operation that

/// caused it, so messages say `cas_by_version "k"`, not `put "k"`.
fn retag(op: &'static str, e: Error) -> Error {
    match e {
        Error::NotFound { key, .. } => Error::NotFound { op, key },
        Error::AlreadyExists { key, version, .. } => Error::AlreadyExists { op, key, version },
        Error::Conflict {
            key,
            expected,
            actual,
            ..
        } => Error::Conflict {
            op,
            key,
            expected,
            actual,
        },
        other => other,
    }
}

fn contention(op: &'static str, key: &Key) -> Error {
    Error::Contention {
        op,
        key: key.to_string(),
        attempts: MAX_ATTEMPTS,
    }
}
/// The record operations, callable without the trait object's boxing: [`RecordStore`] for

/// `Records<B>` forwards to these, so both behave identically.
impl<B: Backend> Records<B> {
    /// Creates a new record; `AlreadyExists` (with the live version) if one is there. An expired
    /// record counts as absent. See [`RecordStore::create`].
    pub async fn create(&self, record: &Record) -> Result<Version> {
        const OP: &str = "create";
        let key = &record.key;
        let expiry = envelope::expiry_nanos(OP, key, record.expires_at)?;
        let data = envelope::encode_nanos(&record.value, expiry);
        let mut mode = PutMode::Create;
        for _ in 0..MAX_ATTEMPTS {
            match self
                .inner
                .backend
                .put(key, data.clone(), PutOptions::from(mode))
                .await
            {
                Ok(meta) => {
                    tracing::trace!(key = %key, version = %meta.version, "record created");
                    if let Some(known) = &self.inner.known {
                        known.remember(key, &meta.version, expiry);
                    }
                    return Ok(meta.version);
                }
                // Create found an object, or the expired object we meant to replace changed.
                Err(e) if e.is_already_exists() || e.is_conflict() || e.is_not_found() => {}
                Err(e) => return Err(retag(OP, e)),
            }
            mode = match self.read(key).await? {
                Current::Live(existing) => {
                    return Err(Error::AlreadyExists {
                        op: OP,
                        key: key.to_string(),
                        version: existing.version,
                    });
                }
                // Replace the expired object only if it is still the same one: a delete
                // followed by a create could clobber a renewal that lands in between.
                Current::Expired(version) => PutMode::Update(version),
                Current::Absent => PutMode::Create,
            };
        }
        Err(contention(OP, key))
    }
    /// The live record at `key`; `NotFound` if absent or expired. See [`RecordStore::get`].

    pub async fn get(&self, key: &Key) -> Result<Record> {
        // `read` inlined by hand: the record is built once, in place, instead of being
        // moved through `Current` and out again (this is the hottest read path).
        let obj = match self.inner.backend.get(key, GetOptions::default()).await {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => return Err(not_found("get", key)),
            Err(e) => return Err(e),
        };
        let data = match obj.body {
            Body::Bytes(data) => data,
            body => match body.bytes().await {
                Ok(data) => data,
                Err(e) if e.is_not_found() => return Err(not_found("get", key)),
                Err(e) => return Err(e),
            },
        };
        let env = envelope::decode(key, data)?;
        if !self.live_until(env.expiry) {
            self.purge(key, obj.meta.version).await;
            return Err(not_found("get", key));
        }
        Ok(Record {
            key: if obj.meta.key == *key {
                obj.meta.key
            } else {
                key.clone()
            },
            expires_at: env.expires_at(),
            value: env.value,
            version: obj.meta.version,
        })
    }
    /// The live records at `keys`, aligned with them (`None` where absent or expired). See

    /// [`RecordStore::get_many`].
    pub async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        futures::future::try_join_all(keys.iter().map(|k| self.live(k))).await
    }
    /// Writes `record` unconditionally (its version is ignored) and returns the new version.

    /// See [`RecordStore::put`].
    pub async fn put(&self, record: &Record) -> Result<Version> {
        const OP: &str = "put";
        let data = envelope::encode(OP, &record.key, &record.value, record.expires_at)?;
        match self
            .inner
            .backend
            .put(&record.key, data, PutOptions::default())
            .await
        {
            Ok(meta) => {
                tracing::trace!(key = %record.key, version = %meta.version, "record put");
                Ok(meta.version)
            }
            Err(e) => Err(retag(OP, e)),
        }
    }
    /// Writes `records` in order (of two with the same key, the later wins). See

    /// [`RecordStore::put_many`].
    pub async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>> {
        // One after another, so that of two records with the same key the later one wins.
        let mut versions = Vec::with_capacity(records.len());
        for record in records {
            versions.push(self.put(record).await?);
        }
        Ok(versions)
    }
    /// Replaces value and expiry only if the stored version is `record.version`: `Conflict`

    /// otherwise, `NotFound` if absent or expired. See [`RecordStore::cas_by_version`].
    pub async fn cas_by_version(&self, record: &Record) -> Result<Version> {
        const OP: &str = "cas_by_version";
        let key = &record.key;
        let expiry = envelope::expiry_nanos(OP, key, record.expires_at)?;
        let data = envelope::encode_nanos(&record.value, expiry);
        // A version this handle wrote, known to be live: the conditional put alone decides.
        // (It is written out here and the read path is boxed: this is the common case, and
        // a state machine fewer around it is measurably faster.)
        let known_live = self
            .inner
            .known
            .as_ref()
            .and_then(|known| known.expiry(key, &record.version))
            .is_some_and(|stored| self.live_until(stored));
        if !known_live {
            return Box::pin(self.read_then_swap(record, data, expiry)).await;
        }
        match self
            .inner
            .backend
            .put(key, data, PutOptions::update(record.version.clone()))
            .await
        {
            Ok(meta) => {
                self.swapped(key, &meta.version, expiry);
                Ok(meta.version)
            }
            // Absent, expired or replaced meanwhile: the read tells which.
            Err(e) if e.is_conflict() || e.is_not_found() => {
                let data = envelope::encode_nanos(&record.value, expiry);
                Box::pin(self.read_then_swap(record, data, expiry)).await
            }
            Err(e) => Err(retag(OP, e)),
        }
    }
    /// `cas_by_version` of a version whose expiry this handle does not know: the read

    /// decides "absent or expired" (NotFound) versus "another version" (Conflict); the
    /// conditional put then guarantees nobody wrote in between. Only the envelope header is
    /// read: the value is not needed to decide.
    async fn read_then_swap(&self, record: &Record, data: Bytes, expiry: Option<u64>) -> Result<Version> {
        const OP: &str = "cas_by_version";
        let key = &record.key;
        match self.read_expiry(key).await? {
            None => return Err(not_found(OP, key)),
            Some((version, true)) => {
                self.purge(key, version).await;
                return Err(not_found(OP, key));
            }
            Some((version, false)) if version != record.version => {
                return Err(Error::Conflict {
                    op: OP,
                    key: key.to_string(),
                    expected: Some(record.version.clone()),
                    actual: Some(version),
                });
            }
            Some(_) => {}
        }
        let meta = self
            .inner
            .backend
            .put(key, data, PutOptions::update(record.version.clone()))
            .await
            .map_err(|e| retag(OP, e))?;
        self.swapped(key, &meta.version, expiry);
        Ok(meta.version)
    }
    /// After a swap: remembers the new version's expiry (`expiry`, in nanoseconds).

    fn swapped(&self, key: &Key, version: &Version, expiry: Option<u64>) {
        tracing::trace!(key = %key, version = %version, "record swapped");
        if let Some(known) = &self.inner.known {
            known.remember(key, version, expiry);
        }
    }
    /// Deletes the live record at `key`; `NotFound` if absent or expired. See

    /// [`RecordStore::delete`].
    pub async fn delete(&self, key: &Key) -> Result<()> {
        const OP: &str = "delete";
        for _ in 0..MAX_ATTEMPTS {
            let version = match self.read(key).await? {
                Current::Live(r) => r.version,
                Current::Expired(version) => {
                    self.purge(key, version).await;
                    return Err(not_found(OP, key));
                }
                Current::Absent => return Err(not_found(OP, key)),
            };
            // Conditional, so that the delete removes exactly the live record just read; if
            // the key changed meanwhile, look again (it may now hold an expired record, which
            // counts as absent).
            match self.inner.backend.delete_if(key, version).await {
                Ok(()) => {
                    tracing::trace!(key = %key, "record deleted");
                    if let Some(known) = &self.inner.known {
                        known.forget(key);
                    }
                    return Ok(());
                }
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(retag(OP, e)),
            }
        }
        Err(contention(OP, key))
    }
    /// Waits until the version at `key` differs from `version` and returns the new one; `NotFound`

    /// if the record is (or becomes) absent or expired. See
    /// [`RecordStore::wait_for_version_change`].
    pub async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version> {
        const OP: &str = "wait_for_version_change";
        loop {
            let current = match self.read(key).await? {
                Current::Live(r) => r,
                Current::Expired(v) => {
                    self.purge(key, v).await;
                    return Err(not_found(OP, key));
                }
                Current::Absent => return Err(not_found(OP, key)),
            };
            if &current.version != version {
                return Ok(current.version);
            }
            // Whatever the watch reports, the loop reads again: the new object may be
            // absent, expired already, or live with a new version.
            let changed = self.inner.backend.watch(key, Some(&current.version));
            match current.expires_at {
                None => {
                    changed.await?;
                }
                Some(at) => {
                    let left = at.duration_since(self.now()).unwrap_or_default();
                    tokio::select! {
                        r = changed => { r?; }
                        () = tokio::time::sleep(left) => {}
                    }
                }
            }
        }
    }
    /// The keys of live records matching the glob `pattern`, in key order. See

    /// [`RecordStore::list_keys`].
    pub async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>> {
        let pattern = GlobPattern::new(pattern)?;
        let opts = match pattern.prefix() {
            "" => ListOptions::default(),
            prefix => ListOptions::default().with_prefix(prefix),
        };
        Ok(self.list_live(opts, Some(Arc::new(pattern))))
    }
}

#[async_trait]
impl<B: Backend> RecordStore for Records<B> {
    async fn create(&self, record: &Record) -> Result<Version> {
        Records::create(self, record).await
    }

    async fn get(&self, key: &Key) -> Result<Record> {
        Records::get(self, key).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        Records::get_many(self, keys).await
    }

    async fn put(&self, record: &Record) -> Result<Version> {
        Records::put(self, record).await
    }

    async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>> {
        Records::put_many(self, records).await
    }

    async fn cas_by_version(&self, record: &Record) -> Result<Version> {
        Records::cas_by_version(self, record).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        Records::delete(self, key).await
    }

    async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version> {
        Records::wait_for_version_change(self, key, version).await
    }

    async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>> {
        Records::list_keys(self, pattern).await
    }
}
