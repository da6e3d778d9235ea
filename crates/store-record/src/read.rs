//! Reading what is stored at a key: the whole record, or only its envelope header.

use std::time::SystemTime;

use bytes::Bytes;
use store_core::{Backend, BackendExt, ByteRange, GetOptions, Key, Record, Result, Version};

use crate::envelope::{self, Envelope};
use crate::records::Records;

/// What is stored at a key, as far as records are concerned.
pub(crate) enum Current {
    Absent,
    /// Present in the backend but past its expiry: absent for every operation, and due to be
    /// purged with `delete_if(version)`.
    Expired(Version),
    Live(Record),
}

/// What the envelope header of a key says: its version and whether it has expired.
pub(crate) struct Head {
    pub(crate) version: Version,
    pub(crate) expired: bool,
}

impl<B: Backend> Records<B> {
    /// Whether a version expiring at `expires_at` (`None`: never) is live by this store's
    /// clock. An expiry equal to now has passed.
    pub(crate) fn is_live(&self, expires_at: Option<SystemTime>) -> bool {
        expires_at.is_none_or(|t| t > self.now())
    }

    /// The version and bytes of `key` read with `opts`; `None` if absent (also when it
    /// vanishes while its body is read).
    async fn fetch(&self, key: &Key, opts: GetOptions) -> Result<Option<(Version, Bytes)>> {
        let obj = match self.backend().get(key, opts).await {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let version = obj.meta.version.clone();
        match obj.bytes().await {
            Ok(data) => Ok(Some((version, data))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the record at `key` for the operation `op`: one backend `get`.
    pub(crate) async fn read(&self, op: &'static str, key: &Key) -> Result<Current> {
        let Some((version, data)) = self.fetch(key, GetOptions::default()).await? else {
            return Ok(Current::Absent);
        };
        let Envelope { expires_at, value } = envelope::decode(op, key, data)?;
        if !self.is_live(expires_at) {
            return Ok(Current::Expired(version));
        }
        Ok(Current::Live(Record {
            key: key.clone(),
            value,
            version,
            expires_at,
        }))
    }

    /// Reads only the envelope header of `key` for the operation `op`: one ranged `get` of
    /// its first bytes, not of the value. `None` if absent.
    pub(crate) async fn read_head(&self, op: &'static str, key: &Key) -> Result<Option<Head>> {
        let opts = GetOptions::default().with_range(ByteRange::from(0..envelope::HEAD_LEN));
        let Some((version, head)) = self.fetch(key, opts).await? else {
            return Ok(None);
        };
        let expired = !self.is_live(envelope::decode(op, key, head)?.expires_at);
        Ok(Some(Head { version, expired }))
    }

    /// The live record at `key` (one `get`), purging it if it has expired (one more
    /// conditional delete).
    pub(crate) async fn live(&self, op: &'static str, key: &Key) -> Result<Option<Record>> {
        match self.read(op, key).await? {
            Current::Live(r) => Ok(Some(r)),
            Current::Expired(v) => {
                self.purge(key, v).await;
                Ok(None)
            }
            Current::Absent => Ok(None),
        }
    }

    /// Removes an expired record, unless it was renewed (its version changed) meanwhile:
    /// one conditional delete. Returns whether it removed it. Failures are logged, not
    /// returned: purging is housekeeping, and the record is absent for every operation
    /// either way.
    pub(crate) async fn purge(&self, key: &Key, version: Version) -> bool {
        match self.backend().delete_if(key, version.clone()).await {
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
    }
}
