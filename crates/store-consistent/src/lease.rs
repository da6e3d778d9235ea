//! The stored state of a mutex: who holds it, until when, and the fencing token.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store_core::{Error, Key, Result};

/// The lock object of a mutex, stored as compact JSON. It is never deleted: an unlocked
/// mutex keeps its last token (with `released: true`), so the next holder's token
/// continues from it and tokens only ever grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    /// The holder: unique per acquisition.
    pub(crate) holder: String,
    /// The fencing token of this acquisition.
    pub(crate) token: u64,
    /// Milliseconds since the Unix epoch after which the lease is void.
    pub(crate) expires_at_ms: u64,
    /// Unlocked by its holder.
    pub(crate) released: bool,
}

impl Lease {
    /// Whether another holder may take the mutex at `now_ms`.
    pub(crate) fn is_free(&self, now_ms: u64) -> bool {
        self.released || self.expires_at_ms <= now_ms
    }

    /// Whether this is the lease of `holder`'s acquisition `token`, still held.
    pub(crate) fn is_held_by(&self, holder: &str, token: u64) -> bool {
        !self.released && self.holder == holder && self.token == token
    }

    pub(crate) fn decode(key: &Key, data: &[u8]) -> Result<Lease> {
        serde_json::from_slice(data).map_err(|e| Error::Corrupt {
            key: key.to_string(),
            reason: format!("not a mutex lease: {e}"),
        })
    }

    pub(crate) fn encode(&self) -> Bytes {
        // A struct of strings, integers and a bool always serialises.
        serde_json::to_vec(self).unwrap_or_default().into()
    }
}

/// Wall-clock milliseconds since the Unix epoch: lease expiry must mean the same to every
/// process sharing the backend, which a monotonic clock cannot offer.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A holder id unique across processes and acquisitions.
pub(crate) fn new_holder() -> String {
    format!("{}-{:016x}", std::process::id(), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freedom_and_ownership() {
        let l = Lease {
            holder: "a".into(),
            token: 3,
            expires_at_ms: 100,
            released: false,
        };
        assert!(!l.is_free(99));
        assert!(l.is_free(100));
        assert!(l.is_held_by("a", 3));
        assert!(!l.is_held_by("a", 2));
        assert!(!l.is_held_by("b", 3));
        let r = Lease {
            released: true,
            ..l.clone()
        };
        assert!(r.is_free(0));
        assert!(!r.is_held_by("a", 3));
        let key = Key::new("g/.locks/m").unwrap();
        assert_eq!(Lease::decode(&key, &l.encode()).unwrap(), l);
        let e = Lease::decode(&key, b"{}").unwrap_err();
        assert!(e.to_string().contains("g/.locks/m"), "{e}");
    }
}
