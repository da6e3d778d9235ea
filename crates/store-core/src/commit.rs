//! The commit-session contract.

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// The caller-chosen key naming one commit session. Restarting a crashed session with the
/// same key recovers it instead of applying it twice.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Bytes);

impl IdempotencyKey {
    /// Wraps the key's bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        IdempotencyKey(bytes.into())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => write!(f, "IdempotencyKey({s:?})"),
            Err(_) => write!(f, "IdempotencyKey(0x{})", hex(&self.0)),
        }
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => f.write_str(s),
            Err(_) => write!(f, "0x{}", hex(&self.0)),
        }
    }
}

impl From<&str> for IdempotencyKey {
    fn from(s: &str) -> Self {
        IdempotencyKey(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Vec<u8>> for IdempotencyKey {
    fn from(v: Vec<u8>) -> Self {
        IdempotencyKey(v.into())
    }
}

/// An identifier of the changes a commit applied, derived deterministically from them: the
/// same changes always give the same id.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CommitId(Bytes);

impl CommitId {
    /// Wraps the id's bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        CommitId(bytes.into())
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({})", self.to_hex())
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A datastore that takes part in a commit session.
///
/// A session is `begin` (or `begin_recovery` after a crash), then `commit`, or `cancel` at
/// any point, which returns the store to its state before `begin`.
#[async_trait]
pub trait Committable: Send + Sync + Debug + 'static {
    /// A session named `key` starts: the store should begin accepting its writes.
    async fn begin(&self, key: &IdempotencyKey) -> Result<()>;

    /// The session named `key` was interrupted by a crash and is being resumed: called
    /// instead of `begin`. A store that already committed this session must not apply it
    /// again; its `commit` then returns the id it returned the first time.
    async fn begin_recovery(&self, key: &IdempotencyKey) -> Result<()>;

    /// Applies the session and returns an id derived deterministically from its changes.
    async fn commit(&self, key: &IdempotencyKey) -> Result<CommitId>;

    /// Abandons the session, returning to the state before `begin`.
    async fn cancel(&self) -> Result<()>;
}

macro_rules! forward_committable {
    ($ptr:ident) => {
        #[async_trait]
        impl<C: Committable + ?Sized> Committable for $ptr<C> {
            async fn begin(&self, key: &IdempotencyKey) -> Result<()> {
                (**self).begin(key).await
            }
            async fn begin_recovery(&self, key: &IdempotencyKey) -> Result<()> {
                (**self).begin_recovery(key).await
            }
            async fn commit(&self, key: &IdempotencyKey) -> Result<CommitId> {
                (**self).commit(key).await
            }
            async fn cancel(&self) -> Result<()> {
                (**self).cancel().await
            }
        }
    };
}

forward_committable!(Arc);
forward_committable!(Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug() {
        let k = IdempotencyKey::from("session-1");
        assert_eq!(k.to_string(), "session-1");
        assert_eq!(format!("{k:?}"), "IdempotencyKey(\"session-1\")");
        let b = IdempotencyKey::from(vec![0xff, 0x00]);
        assert_eq!(b.to_string(), "0xff00");
        assert_eq!(b.as_bytes(), &[0xff, 0x00]);
        let id = CommitId::new(vec![0xab, 0x01]);
        assert_eq!(id.to_hex(), "ab01");
        assert_eq!(format!("{id} {id:?}"), "ab01 CommitId(ab01)");
        assert_eq!(id.as_bytes(), &[0xab, 0x01]);
    }
}
