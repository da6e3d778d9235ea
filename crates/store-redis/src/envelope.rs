//! The stored form of a record or object: a format byte, the version, the expiry, the value.
//!
//! ```text
//! [b'1'] [version: 20 decimal digits] [expiry: 20 decimal digits, ms since the Unix epoch;
//!                                      twenty 9s = never] [value …]
//! ```
//!
//! Both numbers are zero-padded decimal text of one width, so that comparing them as
//! strings compares them as numbers. That is what lets the Lua scripts (which see strings,
//! and numbers only as doubles) check a version and a record's liveness with a plain `==`
//! and `>` on substrings of the stored value, exactly as the client does here: a record is
//! live while its expiry is greater than "now", to the millisecond. The header is 41 bytes;
//! `redis-cli get` shows it as text in front of the value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use store_core::{Error, Result, Version};

/// The format byte.
const FORMAT: u8 = b'1';
/// Width of each number in the header.
const DIGITS: usize = 20;
/// Format byte, version, expiry.
pub(crate) const HEADER: usize = 1 + 2 * DIGITS;
/// The expiry of a record that never expires: greater than every time in milliseconds.
const NEVER: &str = "99999999999999999999";

/// What the header of a stored value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The version the scripts gave the value when they wrote it.
    pub(crate) version: u64,
    /// When the value stops existing (milliseconds since the epoch), if ever.
    pub(crate) expires_ms: Option<u64>,
}

impl Header {
    /// Parses the first [`HEADER`] bytes of a stored value, read by the operation `op`;
    /// anything else is `Corrupt` naming `key` and `op`, never a panic.
    pub(crate) fn parse(op: &str, key: &str, stored: &[u8]) -> Result<Header> {
        let corrupt = |reason: String| Error::Corrupt {
            key: key.to_owned(),
            reason: format!("{op}: {reason}"),
        };
        match stored.first() {
            Some(&FORMAT) if stored.len() >= HEADER => {}
            Some(&FORMAT) => return Err(corrupt(format!("value of {} bytes is truncated", stored.len()))),
            Some(_) => {
                return Err(corrupt(
                    "value was not written by store-redis (unknown format)".into(),
                ));
            }
            None => return Err(corrupt("empty value was not written by store-redis".into())),
        }
        let number = |field: &[u8]| -> Option<u64> {
            if field.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(field).ok()?.parse().ok()
            } else {
                None
            }
        };
        let version = number(&stored[1..=DIGITS]).ok_or_else(|| corrupt("version is not a number".into()))?;
        let expiry = &stored[1 + DIGITS..HEADER];
        let expires_ms = if expiry == NEVER.as_bytes() {
            None
        } else {
            Some(number(expiry).ok_or_else(|| corrupt("expiry is not a number".into()))?)
        };
        Ok(Header { version, expires_ms })
    }

    /// Whether the value exists at `now_ms`: the same test the scripts make.
    pub(crate) fn is_live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|at| at > now_ms)
    }

    /// The version as a store version.
    pub(crate) fn version(&self) -> Version {
        Version::from(self.version)
    }

    /// The expiry as a time.
    pub(crate) fn expires_at(&self) -> Option<SystemTime> {
        self.expires_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
    }
}

/// Splits a stored value into its header and its value, without copying the value.
pub(crate) fn split(op: &str, key: &str, stored: Bytes) -> Result<(Header, Bytes)> {
    let header = Header::parse(op, key, &stored)?;
    Ok((header, stored.slice(HEADER..)))
}

/// Milliseconds since the epoch (0 before it), as the header and the scripts count time.
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// "Now" as the scripts take it: the client's clock, to the millisecond.
pub(crate) fn now_ms() -> u64 {
    millis(SystemTime::now())
}

/// A number as the header writes it.
pub(crate) fn digits(n: u64) -> String {
    format!("{n:020}")
}

/// An expiry as the header writes it.
pub(crate) fn expiry_digits(expires_at: Option<SystemTime>) -> String {
    match expires_at {
        Some(at) => digits(millis(at)),
        None => NEVER.to_owned(),
    }
}

/// A version as the scripts compare it: its header digits, or (for a version store-redis
/// cannot have made, like the empty one) a string no stored version equals.
pub(crate) fn version_digits(v: &Version) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stored value as the write script makes it.
    fn stored(version: u64, expires_at: Option<SystemTime>, value: &[u8]) -> Bytes {
        let mut s = vec![FORMAT];
        s.extend_from_slice(digits(version).as_bytes());
        s.extend_from_slice(expiry_digits(expires_at).as_bytes());
        s.extend_from_slice(value);
        s.into()
    }

    #[test]
    fn round_trips() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let (h, v) = split("get", "k", stored(42, Some(at), b"hello")).unwrap();
        assert_eq!(
            (h.version(), h.expires_at(), &v[..]),
            (Version::from(42), Some(at), &b"hello"[..])
        );
        let (h, v) = split("get", "k", stored(u64::MAX, None, b"")).unwrap();
        assert_eq!((h.version, h.expires_ms, v.len()), (u64::MAX, None, 0));
        assert_eq!(HEADER, stored(1, None, b"").len());
    }

    #[test]
    fn garbage_is_corrupt_naming_the_key() {
        let mut bad_version = stored(1, None, b"x").to_vec();
        bad_version[5] = b'x';
        for bad in [&b""[..], b"1234", b"plain value", &bad_version] {
            let e = Header::parse("list_keys", "a/b", bad).unwrap_err();
            assert_eq!(e.kind(), store_core::ErrorKind::Corrupt, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("\"a/b\"") && msg.contains("list_keys"), "{msg}");
        }
    }

    #[test]
    fn versions_the_scripts_cannot_have_made_never_match() {
        assert_eq!(version_digits(&Version::from(7)), "00000000000000000007");
        for v in [Version::empty(), Version::parse("etag")] {
            assert_eq!(version_digits(&v).len(), 1);
        }
    }

    #[test]
    fn liveness_is_to_the_millisecond() {
        let h = |ms| Header {
            version: 1,
            expires_ms: ms,
        };
        assert!(h(None).is_live(u64::MAX));
        assert!(h(Some(1000)).is_live(999));
        assert!(!h(Some(1000)).is_live(1000));
        assert!(!h(Some(1000)).is_live(1001));
    }

    proptest! {
        /// The scripts compare the header's digits as strings; that must agree with the
        /// numbers the client compares.
        #[test]
        fn string_order_is_number_order(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(digits(a).cmp(&digits(b)), a.cmp(&b));
            prop_assert!(NEVER > digits(a).as_str());
        }
    }
}
