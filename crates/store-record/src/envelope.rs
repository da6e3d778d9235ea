//! The stored form of a record: a small, versioned binary envelope around the value.
//!
//! ```text
//! byte 0      magic 0xD5 ("this object is a record")
//! byte 1      format version (1)
//! byte 2      flags: bit 0 = an expiry follows; every other bit must be 0
//! [8 bytes]   expiry, nanoseconds since the Unix epoch, big-endian u64 (only with bit 0)
//! rest        the value, as given
//! ```
//!
//! Three or eleven bytes of overhead, no copies on decode (the value is a slice of the
//! stored `Bytes`). Anything else — an empty object, another magic byte, an unknown format
//! version or flag, a truncated expiry — decodes to [`Error::Corrupt`] naming the key, so a
//! foreign or damaged object can never make the store panic or return garbage as a value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use store_core::{Error, Key, Result};

/// The first byte of every record envelope.
pub(crate) const MAGIC: u8 = 0xD5;
/// The envelope format this crate writes (and the only one it reads).
pub(crate) const FORMAT_VERSION: u8 = 1;
const FLAG_EXPIRY: u8 = 0b0000_0001;
const HEADER_LEN: usize = 3;
const EXPIRY_LEN: usize = 8;

/// A decoded envelope: the value and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) value: Bytes,
}

/// Bytes to read to learn a record's expiry without its value: the header and the expiry.
pub(crate) const HEAD_LEN: u64 = (HEADER_LEN + EXPIRY_LEN) as u64;

/// Encodes `value` with `expires_at` for storage at `key`, for the operation `op`.
///
/// An expiry before the Unix epoch is stored as the epoch (it has passed either way); one
/// too far in the future for 64-bit nanoseconds (after the year 2554) is
/// [`Error::InvalidInput`] naming `op` and `key`.
pub(crate) fn encode(
    op: &'static str,
    key: &Key,
    value: &Bytes,
    expires_at: Option<SystemTime>,
) -> Result<Bytes> {
    let expiry = match expires_at {
        None => None,
        Some(t) => Some(to_nanos(t).ok_or_else(|| {
            Error::invalid_input(op, Some(key), format!("expiry {t:?} is after the year 2554"))
        })?),
    };
    let header = if expiry.is_some() {
        HEADER_LEN + EXPIRY_LEN
    } else {
        HEADER_LEN
    };
    let mut out = Vec::with_capacity(header + value.len());
    match expiry {
        Some(nanos) => {
            out.extend_from_slice(&[MAGIC, FORMAT_VERSION, FLAG_EXPIRY]);
            out.extend_from_slice(&nanos.to_be_bytes());
        }
        None => out.extend_from_slice(&[MAGIC, FORMAT_VERSION, 0]),
    }
    out.extend_from_slice(value);
    Ok(Bytes::from(out))
}

/// Decodes the object stored at `key`, read by the operation `op` (both named in a
/// `Corrupt` error). The value is a slice of `data`: no copy.
pub(crate) fn decode(op: &'static str, key: &Key, mut data: Bytes) -> Result<Envelope> {
    let corrupt = |reason: String| Error::Corrupt {
        key: key.to_string(),
        reason: format!("{op}: record envelope: {reason}"),
    };
    let Some(&[magic, format, flags]) = data.get(..HEADER_LEN) else {
        return Err(corrupt(format!("{} bytes, shorter than the header", data.len())));
    };
    if magic != MAGIC {
        return Err(corrupt(format!("not a record (first byte {magic:#04x})")));
    }
    if format != FORMAT_VERSION {
        return Err(corrupt(format!(
            "unknown format version {format} (this build reads {FORMAT_VERSION})"
        )));
    }
    if flags & !FLAG_EXPIRY != 0 {
        return Err(corrupt(format!("unknown flags {flags:#010b}")));
    }
    let expires_at = if flags & FLAG_EXPIRY != 0 {
        let Some(raw) = data.get(HEADER_LEN..HEADER_LEN + EXPIRY_LEN) else {
            return Err(corrupt(format!("{} bytes, expiry truncated", data.len())));
        };
        let mut nanos = [0u8; EXPIRY_LEN];
        nanos.copy_from_slice(raw);
        data.advance(HEADER_LEN + EXPIRY_LEN);
        Some(UNIX_EPOCH + Duration::from_nanos(u64::from_be_bytes(nanos)))
    } else {
        data.advance(HEADER_LEN);
        None
    };
    Ok(Envelope {
        expires_at,
        value: data,
    })
}

/// `t` in nanoseconds since the Unix epoch: 0 before it, `None` after the year 2554.
fn to_nanos(t: SystemTime) -> Option<u64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => u64::try_from(d.as_nanos()).ok(),
        Err(_) => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k() -> Key {
        Key::new("env/key").unwrap()
    }

    #[test]
    fn layout_is_compact() {
        let plain = encode("put", &k(), &Bytes::from_static(b"v"), None).unwrap();
        assert_eq!(&plain[..], &[MAGIC, FORMAT_VERSION, 0, b'v']);
        let at = UNIX_EPOCH + Duration::from_nanos(0x0102_0304_0506_0708);
        let timed = encode("put", &k(), &Bytes::from_static(b"v"), Some(at)).unwrap();
        assert_eq!(
            &timed[..],
            &[MAGIC, FORMAT_VERSION, 1, 1, 2, 3, 4, 5, 6, 7, 8, b'v']
        );
    }

    #[test]
    fn garbage_is_corrupt_naming_the_key() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "shorter than the header"),
            (b"{\"json\":1}", "not a record"),
            (&[MAGIC, 2, 0], "unknown format version 2"),
            (&[MAGIC, FORMAT_VERSION, 0b10], "unknown flags"),
            (&[MAGIC, FORMAT_VERSION, 1, 0, 0], "expiry truncated"),
        ];
        for (data, why) in cases {
            let e = decode("get", &k(), Bytes::copy_from_slice(data)).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::Corrupt { .. }), "{msg}");
            assert!(
                msg.contains("env/key") && msg.contains("get:") && msg.contains(why),
                "{msg} should say {why:?}"
            );
        }
    }

    #[test]
    fn expiry_edges() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(5);
        let e = encode("put", &k(), &Bytes::new(), Some(before_epoch)).unwrap();
        assert_eq!(decode("get", &k(), e).unwrap().expires_at, Some(UNIX_EPOCH));
        let too_late = UNIX_EPOCH + Duration::from_secs(u64::MAX / 1_000_000_000 + 1);
        let e = encode("put", &k(), &Bytes::new(), Some(too_late)).unwrap_err();
        assert!(
            e.to_string().contains("2554") && e.to_string().contains("env/key"),
            "{e}"
        );
    }

    fn cases() -> ProptestConfig {
        ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(512),
        )
    }

    proptest! {
        #![proptest_config(cases())]

        /// Arbitrary bytes never panic the decoder: they decode or are `Corrupt`.
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            match decode("get", &k(), Bytes::from(data)) {
                Ok(env) => prop_assert!(env.value.len() <= 64),
                Err(e) => prop_assert_eq!(e.kind(), store_core::ErrorKind::Corrupt),
            }
        }

        /// Bytes that look almost right (valid header, random rest) never panic either, and
        /// whatever decodes re-encodes to the same bytes.
        #[test]
        fn near_valid_input_decodes_consistently(
            flags in 0u8..4,
            rest in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let mut data = vec![MAGIC, FORMAT_VERSION, flags];
            data.extend_from_slice(&rest);
            if let Ok(env) = decode("get", &k(), Bytes::from(data.clone())) {
                let again = encode("put", &k(), &env.value, env.expires_at).unwrap();
                prop_assert_eq!(&again[..], &data[..]);
            }
        }

        /// Every value and expiry round-trips exactly.
        #[test]
        fn round_trips(
            value in proptest::collection::vec(any::<u8>(), 0..64),
            nanos in proptest::option::of(any::<u64>()),
        ) {
            let at = nanos.map(|n| UNIX_EPOCH + Duration::from_nanos(n));
            let value = Bytes::from(value);
            let data = encode("put", &k(), &value, at).unwrap();
            let env = decode("get", &k(), data).unwrap();
            prop_assert_eq!(env, Envelope { expires_at: at, value });
        }
    }
}
