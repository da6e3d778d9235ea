//! The record-store contract: small versioned values with expiry, CAS and watch.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::key::Key;
use crate::version::Version;

/// A versioned value with an optional expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's key.
    pub key: Key,
    /// Its value.
    pub value: Bytes,
    /// Its version, managed by the store: ignored by `create` and `put`, the expected version
    /// for `cas_by_version`, the stored version in everything read.
    pub version: Version,
    /// When the record stops existing, if ever.
    pub expires_at: Option<SystemTime>,
}

impl Record {
    /// A record with no version yet and no expiry.
    pub fn new(key: Key, value: impl Into<Bytes>) -> Self {
        Record {
            key,
            value: value.into(),
            version: Version::empty(),
            expires_at: None,
        }
    }

    /// Sets the expiry.
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the version (the one `cas_by_version` expects).
    pub fn with_version(mut self, v: Version) -> Self {
        self.version = v;
        self
    }

    /// Whether the record has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// A store of [`Record`]s: versioned values with expiry, compare-and-swap, watch and glob
/// listing. An expired record is absent for every operation.
///
/// The writes (`create`, `put`, `put_many`, `cas_by_version`) borrow their records and
/// return the new versions: a store copies what it writes anyway, so the caller keeps the
/// record (a compare-and-swap that fails has consumed nothing, and can be retried or
/// re-based as it is) and sets `record.version` from the answer when it wants it.
#[async_trait]
pub trait RecordStore: Send + Sync + Debug + 'static {
    /// Adds a new record and returns its version; if the key exists (and has not expired),
    /// fails with [`Error::AlreadyExists`](crate::Error::AlreadyExists) carrying the existing
    /// version.
    async fn create(&self, record: &Record) -> Result<Version>;

    /// The record at `key`; `NotFound` if absent or expired.
    async fn get(&self, key: &Key) -> Result<Record>;

    /// The records at `keys`, aligned with the input (`None` where absent or expired).
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>>;

    /// Writes the record whatever is there (its version is ignored) and returns the new
    /// version.
    async fn put(&self, record: &Record) -> Result<Version>;

    /// Writes several records in order (of two with the same key, the later wins); returns
    /// their new versions, aligned with the input.
    async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>>;

    /// Replaces value *and* expiry only if the stored version equals `record.version`, and
    /// returns the new version; otherwise `Conflict` (or `NotFound` if absent or expired).
    async fn cas_by_version(&self, record: &Record) -> Result<Version>;

    /// Deletes the record; `NotFound` if absent or expired.
    async fn delete(&self, key: &Key) -> Result<()>;

    /// Returns the new version as soon as `key`'s version differs from `version` (at once if
    /// it already does); `NotFound` if the key is absent, or is deleted or expires while
    /// waiting. Cancel by dropping the future.
    async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version>;

    /// The keys matching a glob `pattern`, in order; `InvalidPattern` if it does not compile.
    async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>>;
}
macro_rules! forward_records {
    ($ptr:ident) => {
        #[async_trait]
        impl<R: RecordStore + ?Sized> RecordStore for $ptr<R> {
            async fn create(&self, record: &Record) -> Result<Version> {
                (**self).create(record).await
            }
            async fn get(&self, key: &Key) -> Result<Record> {
                (**self).get(key).await
            }
            async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>> {
                (**self).get_many(keys).await
            }
            async fn put(&self, record: &Record) -> Result<Version> {
                (**self).put(record).await
            }
            async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>> {
                (**self).put_many(records).await
            }
            async fn cas_by_version(&self, record: &Record) -> Result<Version> {
                (**self).cas_by_version(record).await
            }
            async fn delete(&self, key: &Key) -> Result<()> {
                (**self).delete(key).await
            }
            async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version> {
                (**self).wait_for_version_change(key, version).await
            }
            async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>> {
                (**self).list_keys(pattern).await
            }
        }
    };
}

forward_records!(Arc);
forward_records!(Box);
