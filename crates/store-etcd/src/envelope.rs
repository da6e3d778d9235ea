//! The stored form of a record: a format byte, the expiry, the value.
//!
//! ```text
//! [FORMAT = 1] [expiry: u64 big-endian, milliseconds since the Unix epoch; u64::MAX = never] [value …]
//! ```
//!
//! The expiry comes first and big-endian so that byte order is time order: etcd can then
//! tell inside a transaction whether a record is live, by comparing the stored value with
//! [`live_threshold`] (`value > threshold` ⇔ `expiry > now`). That is what makes `cas`,
//! `create` and `delete` on an expired-but-not-yet-deleted record behave as on an absent
//! one, atomically and in one round trip.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use store_core::{Error, Key, Result};

const FORMAT: u8 = 1;
const HEADER: usize = 9;
const NEVER: u64 = u64::MAX;

/// Encodes a value and its expiry.
pub(crate) fn encode(value: &[u8], expires_at: Option<SystemTime>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.push(FORMAT);
    out.extend_from_slice(&expires_at.map_or(NEVER, millis).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Decodes a stored record; anything else is `Corrupt`, never a panic.
pub(crate) fn decode(key: &Key, stored: Vec<u8>) -> Result<(Bytes, Option<SystemTime>)> {
    let corrupt = |reason: String| Error::Corrupt {
        key: key.to_string(),
        reason,
    };
    match stored.first() {
        Some(&FORMAT) if stored.len() >= HEADER => {}
        Some(&FORMAT) => return Err(corrupt(format!("record of {} bytes is truncated", stored.len()))),
        Some(other) => return Err(corrupt(format!("unknown record format {other}"))),
        None => return Err(corrupt("empty value is not a record".into())),
    }
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&stored[1..HEADER]);
    let expiry = match u64::from_be_bytes(ms) {
        NEVER => None,
        ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
    };
    let value = Bytes::from(stored).slice(HEADER..);
    Ok((value, expiry))
}

/// The bytes a live record's stored value is greater than, at `now`.
pub(crate) fn live_threshold(now: SystemTime) -> Vec<u8> {
    let mut t = Vec::with_capacity(HEADER);
    t.push(FORMAT);
    t.extend_from_slice(&millis(now).to_be_bytes());
    t
}

/// Whether a stored value is a live record by `threshold`: the same test etcd makes in a
/// transaction, so the client and the server always agree.
pub(crate) fn is_live(stored: &[u8], threshold: &[u8]) -> bool {
    stored > threshold
}

/// Milliseconds since the epoch (0 before it, `NEVER - 1` at the far end).
fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(NEVER - 1).min(NEVER - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k() -> Key {
        Key::new("k").unwrap()
    }

    #[test]
    fn round_trips() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let (v, e) = decode(&k(), encode(b"hello", Some(at))).unwrap();
        assert_eq!((&v[..], e), (&b"hello"[..], Some(at)));
        let (v, e) = decode(&k(), encode(b"", None)).unwrap();
        assert_eq!((&v[..], e), (&b""[..], None));
    }

    #[test]
    fn garbage_is_corrupt() {
        for bad in [vec![], vec![1, 2, 3], vec![7; 20]] {
            let e = decode(&k(), bad).unwrap_err();
            assert_eq!(e.kind(), store_core::ErrorKind::Corrupt, "{e}");
            assert!(e.to_string().contains("\"k\""), "{e}");
        }
    }

    #[test]
    fn liveness_follows_the_expiry() {
        let now = SystemTime::now();
        let t = live_threshold(now);
        assert!(is_live(&encode(b"x", None), &t));
        assert!(is_live(&encode(b"", Some(now + Duration::from_secs(1))), &t));
        assert!(!is_live(&encode(b"x", Some(now - Duration::from_secs(1))), &t));
        assert!(!is_live(&encode(b"", Some(now)), &t));
        assert!(!is_live(&[0, 0], &t), "garbage is never live");
    }

    proptest! {
        #[test]
        fn byte_order_is_time_order(a in 0u64..1 << 45, b in 0u64..1 << 45, v in proptest::collection::vec(any::<u8>(), 0..8)) {
            let ta = UNIX_EPOCH + Duration::from_millis(a);
            let tb = UNIX_EPOCH + Duration::from_millis(b);
            // A record expiring at `a` is live at `b` exactly when a > b (ignoring the
            // tie with a non-empty value, which counts as live for at most one millisecond).
            let live = is_live(&encode(&v, Some(ta)), &live_threshold(tb));
            if a != b {
                prop_assert_eq!(live, a > b);
            } else {
                prop_assert_eq!(live, !v.is_empty());
            }
        }
    }
}
