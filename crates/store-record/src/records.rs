//! `Records<B>`: the `RecordStore` over any backend.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;
use store_core::{
    Backend, BackendExt, Backoff, Error, GlobPattern, Key, ListOptions, PutMode, PutOptions, Record,
    RecordStore, Result, Version,
};

use crate::clock::{Clock, SystemClock};
use crate::envelope;
use crate::expiries::KnownExpiries;
use crate::read::{Current, Head};

/// How often a `create` or `delete` starts over because another writer changed the key
/// between its read and its conditional write, before giving up with `Contention`.
const MAX_ATTEMPTS: u32 = 1_000;

/// The retries of `create` and `delete`: at once (each one sees a key that another writer
/// just changed, so the loop makes progress), with a yield to the runtime in between.
fn retries() -> store_core::Retries {
    Backoff::new(Duration::ZERO, Duration::ZERO)
        .with_max_attempts(MAX_ATTEMPTS)
        .start()
}

/// A [`RecordStore`] over any [`Backend`]: versioned values with expiry, compare-and-swap,
/// watch and glob listing.
///
/// Each record is one backend object, so the record's version *is* the object's version:
/// `cas_by_version` is `PutMode::Update(version)`, `create` is `PutMode::Create`, and
/// `wait_for_version_change` is the backend's `watch`. The object holds a small binary
/// envelope (format version, optional expiry, value).
///
/// Cheap to clone: clones share the backend, the clock and the remembered expiries.
pub struct Records<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    backend: B,
    clock: Arc<dyn Clock>,
    /// Expiries of versions this handle wrote with `create` or `cas_by_version`; `None`
    /// when the backend's versions do not always name one content (a fan-out), where a
    /// remembered expiry could belong to another copy than the one readers see.
    known: Option<KnownExpiries>,
}

/// Configures a [`Records`]: see [`Records::builder`].
pub struct RecordsBuilder<B> {
    backend: B,
    clock: Arc<dyn Clock>,
}

impl<B: Backend> RecordsBuilder<B> {
    /// Decides expiry with `clock` instead of the system clock (tests use a
    /// [`ManualClock`](crate::ManualClock)).
    ///
    /// Waiting for an expiry (in `wait_for_version_change`) still sleeps in real time, for
    /// as long as `clock` says is left.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the store.
    pub fn build(self) -> Records<B> {
        let known = self
            .backend
            .capabilities()
            .stable_versions
            .then(KnownExpiries::default);
        Records {
            inner: Arc::new(Inner {
                backend: self.backend,
                clock: self.clock,
                known,
            }),
        }
    }
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

    /// Remembers the expiry of a version this handle just wrote.
    fn remember(&self, key: &Key, version: &Version, expires_at: Option<SystemTime>) {
        if let Some(known) = &self.inner.known {
            known.remember(key, version, expires_at);
        }
    }

    /// Whether `version` of `key` was written by this handle with an expiry that has not
    /// passed: then the conditional put alone decides a swap from it.
    fn known_live(&self, key: &Key, version: &Version) -> bool {
        let known = self
            .inner
            .known
            .as_ref()
            .and_then(|known| known.get(key, version));
        known.is_some_and(|expires_at| self.is_live(expires_at))
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
    /// Creates a new record; `AlreadyExists` (with the live version) if one is there. An
    /// expired record counts as absent. See [`RecordStore::create`].
    ///
    /// Into an absent key: one conditional put. Over an existing key: one more `get`.
    pub async fn create(&self, record: &Record) -> Result<Version> {
        const OP: &str = "create";
        let key = &record.key;
        let data = envelope::encode(OP, key, &record.value, record.expires_at)?;
        let mut mode = PutMode::Create;
        let mut retries = retries();
        loop {
            match self
                .inner
                .backend
                .put(key, data.clone(), PutOptions::from(mode))
                .await
            {
                Ok(meta) => {
                    tracing::trace!(key = %key, version = %meta.version, "record created");
                    self.remember(key, &meta.version, record.expires_at);
                    return Ok(meta.version);
                }
                // Create found an object, or the expired object we meant to replace changed.
                Err(e) if e.is_already_exists() || e.is_conflict() || e.is_not_found() => {}
                Err(e) => return Err(retag(OP, e)),
            }
            mode = match self.read(OP, key).await? {
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
            if !retries.wait().await {
                return Err(contention(OP, key));
            }
        }
    }

    /// The live record at `key`; `NotFound` if absent or expired. See [`RecordStore::get`].
    ///
    /// One `get` (and a conditional delete of a record found expired).
    pub async fn get(&self, key: &Key) -> Result<Record> {
        const OP: &str = "get";
        self.live(OP, key).await?.ok_or_else(|| not_found(OP, key))
    }

    /// The live records at `keys`, aligned with them (`None` where absent or expired): one
    /// `get` per key, all at once. See [`RecordStore::get_many`].
    pub async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        futures::future::try_join_all(keys.iter().map(|k| self.live("get_many", k))).await
    }

    /// Writes `record` unconditionally (its version is ignored) and returns the new version:
    /// one put. See [`RecordStore::put`].
    pub async fn put(&self, record: &Record) -> Result<Version> {
        const OP: &str = "put";
        let data = envelope::encode(OP, &record.key, &record.value, record.expires_at)?;
        let meta = self
            .inner
            .backend
            .put(&record.key, data, PutOptions::default())
            .await
            .map_err(|e| retag(OP, e))?;
        tracing::trace!(key = %record.key, version = %meta.version, "record put");
        Ok(meta.version)
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
    ///
    /// A swap from a version this handle wrote (with `create` or `cas_by_version`), whose
    /// remembered expiry has not passed, is one conditional put and no read. From any other
    /// version it first reads the envelope header (a ranged `get` of a few bytes, to tell
    /// an expired record, `NotFound`, from a live one), then puts conditionally, also when
    /// the read shows another version: the backend's own check answers `Conflict` (a read
    /// racing a write on a fan-out may show a version no write made, so it cannot decide).
    pub async fn cas_by_version(&self, record: &Record) -> Result<Version> {
        const OP: &str = "cas_by_version";
        let key = &record.key;
        let data = envelope::encode(OP, key, &record.value, record.expires_at)?;
        let swap = PutOptions::update(record.version.clone());
        if self.known_live(key, &record.version) {
            match self.inner.backend.put(key, data.clone(), swap.clone()).await {
                Ok(meta) => return Ok(self.swapped(record, meta.version)),
                // Absent, expired or replaced meanwhile: the read below tells which.
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => return Err(retag(OP, e)),
            }
        }
        match self.read_head(OP, key).await? {
            None => return Err(not_found(OP, key)),
            Some(Head {
                version,
                expired: true,
            }) => {
                self.purge(key, version).await;
                return Err(not_found(OP, key));
            }
            // Live: whether it is still at `record.version` is the conditional put's to say,
            // under the backend's own check (a read racing a write, on a fan-out, may report
            // a version no write made).
            Some(_) => {}
        }
        let meta = self
            .inner
            .backend
            .put(key, data, swap)
            .await
            .map_err(|e| retag(OP, e))?;
        Ok(self.swapped(record, meta.version))
    }

    /// After a swap of `record` to `version`: remembers the new version's expiry.
    fn swapped(&self, record: &Record, version: Version) -> Version {
        tracing::trace!(key = %record.key, version = %version, "record swapped");
        self.remember(&record.key, &version, record.expires_at);
        version
    }

    /// Deletes the live record at `key`; `NotFound` if absent or expired: one `get` and
    /// one conditional delete. See [`RecordStore::delete`].
    pub async fn delete(&self, key: &Key) -> Result<()> {
        const OP: &str = "delete";
        let mut retries = retries();
        loop {
            let version = match self.read(OP, key).await? {
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
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => return Err(retag(OP, e)),
            }
            if !retries.wait().await {
                return Err(contention(OP, key));
            }
        }
    }

    /// Waits until the version at `key` differs from `version` and returns the new one;
    /// `NotFound` if the record is (or becomes) absent or expired. See
    /// [`RecordStore::wait_for_version_change`].
    ///
    /// One `get`, then the backend's `watch` (and one more `get` per change it reports).
    /// A `get` that already shows another version is confirmed by the backend's `watch`
    /// from `version`, which answers at once when the change is real: on a fan-out, a read
    /// racing a write may show a version no write made, and the fan-out's `watch` reports
    /// settled versions.
    pub async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version> {
        const OP: &str = "wait_for_version_change";
        loop {
            let Some(current) = self.live(OP, key).await? else {
                return Err(not_found(OP, key));
            };
            if &current.version != version {
                match self.inner.backend.watch(key, Some(version)).await? {
                    Some(settled) if settled == current.version => return Ok(settled),
                    // Changed again, or gone meanwhile: the next read says what is there.
                    _ => continue,
                }
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
    ///
    /// One backend listing of keys and sizes, with the pattern's literal prefix pushed
    /// down. A matching record whose size says it has no expiry is listed without a read;
    /// each other one's envelope header is read (a ranged `get`, several at once, the order
    /// kept). A record read that cannot be decoded is one `Corrupt` error item naming its
    /// key and `list_keys`, and the listing goes on with the keys after it; so does a key
    /// whose header read fails. A record found expired is left out (and purged).
    pub async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>> {
        let pattern = GlobPattern::new(pattern)?;
        let opts = match pattern.prefix() {
            "" => ListOptions::default(),
            prefix => ListOptions::default().with_prefix(prefix),
        };
        Ok(self.list_live(opts, pattern))
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
