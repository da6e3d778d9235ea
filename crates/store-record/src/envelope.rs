//! The stored form of a record: a small, versioned binary envelope around the value.
//!
//! ```text
//! byte 0      magic 0xD5 ("this object is a record")
//! byte 1      format version (2; format 1 is still read)
//! byte 2      flags: bit 0 = an expiry follows; bit 1 = a padding byte follows (format 2);
//!             every other bit must be 0
//! [8 bytes]   expiry, nanoseconds since the Unix epoch, big-endian u64 (only with bit 0)
//! [1 byte]    padding, 0 (only with bit 1)
//! rest        the value, as given
//! ```
//!
//! **The size tells the expiry.** In format 2 a record with an expiry has an odd size and
//! one without an even size; the padding byte is there when the value's length would say
//! otherwise. A listing carries every object's size, so it can tell records that never
//! expire without reading them ([`may_expire`]). The object is written whole in one put, so
//! its size and its expiry can never disagree, whatever crashes. Format 1 (no padding)
//! is still decoded, but its sizes say nothing.
//!
//! Three to twelve bytes of overhead, no copies on decode (the value is a slice of the
//! stored `Bytes`). Anything else — an empty object, another magic byte, an unknown format
//! version or flag, a truncated expiry — decodes to [`Error::Corrupt`] naming the key, so a
//! foreign or damaged object can never make the store panic or return garbage as a value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes};
use store_core::{Error, Key, Result};

/// The first byte of every record envelope.
pub(crate) const MAGIC: u8 = 0xD5;
/// The envelope format this crate writes.
pub(crate) const FORMAT_VERSION: u8 = 2;
/// The format before sizes told the expiry: read, never written.
const FORMAT_VERSION_1: u8 = 1;
const FLAG_EXPIRY: u8 = 0b0000_0001;
const FLAG_PADDED: u8 = 0b0000_0010;
const HEADER_LEN: usize = 3;
const EXPIRY_LEN: usize = 8;

/// A decoded envelope: the value and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) value: Bytes,
}

/// Bytes to read to learn a record's expiry without its value: the header, the expiry and
/// the padding byte, the longest they can be.
pub(crate) const HEAD_LEN: u64 = (HEADER_LEN + EXPIRY_LEN + 1) as u64;

/// Whether an object of `size` bytes may be a record with an expiry: false means that, if
/// it is a record written in format 2, it never expires — a listing need not read it.
pub(crate) fn may_expire(size: u64) -> bool {
    size % 2 == 1
}

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
    let unpadded = match expiry {
        Some(_) => HEADER_LEN + EXPIRY_LEN,
        None => HEADER_LEN,
    } + value.len();
    // Pad so that the size is odd exactly when there is an expiry.
    let padded = may_expire(unpadded as u64) != expiry.is_some();
    let mut flags = 0;
    if expiry.is_some() {
        flags |= FLAG_EXPIRY;
    }
    if padded {
        flags |= FLAG_PADDED;
    }
    let mut out = Vec::with_capacity(unpadded + 1);
    out.extend_from_slice(&[MAGIC, FORMAT_VERSION, flags]);
    if let Some(nanos) = expiry {
        out.extend_from_slice(&nanos.to_be_bytes());
    }
    if padded {
        out.push(0);
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
    let known_flags = match format {
        FORMAT_VERSION => FLAG_EXPIRY | FLAG_PADDED,
        FORMAT_VERSION_1 => FLAG_EXPIRY,
        _ => {
            return Err(corrupt(format!(
                "unknown format version {format} (this build reads {FORMAT_VERSION_1} and {FORMAT_VERSION})"
            )));
        }
    };
    if flags & !known_flags != 0 {
        return Err(corrupt(format!("unknown flags {flags:#010b}")));
    }
    data.advance(HEADER_LEN);
    let expires_at = if flags & FLAG_EXPIRY != 0 {
        let Some(raw) = data.get(..EXPIRY_LEN) else {
            return Err(corrupt(format!(
                "{} bytes, expiry truncated",
                HEADER_LEN + data.len()
            )));
        };
        let mut nanos = [0u8; EXPIRY_LEN];
        nanos.copy_from_slice(raw);
        data.advance(EXPIRY_LEN);
        Some(UNIX_EPOCH + Duration::from_nanos(u64::from_be_bytes(nanos)))
    } else {
        None
    };
    if flags & FLAG_PADDED != 0 {
        match data.first() {
            Some(0) => data.advance(1),
            Some(b) => return Err(corrupt(format!("padding byte {b:#04x}, not 0"))),
            None => return Err(corrupt("padding truncated".to_owned())),
        }
    }
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
    fn layout_is_compact_and_the_size_tells_the_expiry() {
        let plain = encode("put", &k(), &Bytes::from_static(b"v"), None).unwrap();
        assert_eq!(&plain[..], &[MAGIC, FORMAT_VERSION, 0, b'v']);
        let plain = encode("put", &k(), &Bytes::from_static(b"vw"), None).unwrap();
        assert_eq!(&plain[..], &[MAGIC, FORMAT_VERSION, 0b10, 0, b'v', b'w']);
        let at = UNIX_EPOCH + Duration::from_nanos(0x0102_0304_0506_0708);
        let timed = encode("put", &k(), &Bytes::from_static(b"v"), Some(at)).unwrap();
        assert_eq!(
            &timed[..],
            &[MAGIC, FORMAT_VERSION, 0b11, 1, 2, 3, 4, 5, 6, 7, 8, 0, b'v']
        );
        let timed = encode("put", &k(), &Bytes::from_static(b"vw"), Some(at)).unwrap();
        assert_eq!(
            &timed[..],
            &[MAGIC, FORMAT_VERSION, 1, 1, 2, 3, 4, 5, 6, 7, 8, b'v', b'w']
        );
        assert!(!may_expire(4) && may_expire(13));
    }

    #[test]
    fn format_1_is_still_read() {
        let v1 = [MAGIC, FORMAT_VERSION_1, 0, b'v'];
        let env = decode("get", &k(), Bytes::copy_from_slice(&v1)).unwrap();
        assert_eq!(
            env,
            Envelope {
                expires_at: None,
                value: Bytes::from_static(b"v")
            }
        );
        let v1 = [MAGIC, FORMAT_VERSION_1, 1, 0, 0, 0, 0, 0, 0, 0, 9, b'v', b'w'];
        let env = decode("get", &k(), Bytes::copy_from_slice(&v1)).unwrap();
        assert_eq!(env.expires_at, Some(UNIX_EPOCH + Duration::from_nanos(9)));
        assert_eq!(env.value, "vw");
        // Format 1 had no padding.
        let e = decode(
            "get",
            &k(),
            Bytes::copy_from_slice(&[MAGIC, FORMAT_VERSION_1, 0b10, 0]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown flags"), "{e}");
    }

    #[test]
    fn a_header_read_covers_the_longest_header() {
        let at = UNIX_EPOCH + Duration::from_secs(7);
        for len in 0..4 {
            let data = encode("put", &k(), &Bytes::from(vec![1u8; len]), Some(at)).unwrap();
            let head = data.slice(..data.len().min(HEAD_LEN as usize));
            assert_eq!(
                decode("get", &k(), head).unwrap().expires_at,
                Some(at),
                "value of {len} bytes"
            );
        }
    }

    #[test]
    fn garbage_is_corrupt_naming_the_key() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "shorter than the header"),
            (b"{\"json\":1}", "not a record"),
            (&[MAGIC, 3, 0], "unknown format version 3"),
            (&[MAGIC, FORMAT_VERSION, 0b100], "unknown flags"),
            (&[MAGIC, FORMAT_VERSION, 1, 0, 0], "expiry truncated"),
            (&[MAGIC, FORMAT_VERSION, 0b10], "padding truncated"),
            (&[MAGIC, FORMAT_VERSION, 0b10, 7], "padding byte 0x07"),
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

        /// Bytes that look almost right (valid header, random rest) never panic either;
        /// whatever decodes re-encodes to the same envelope, and does so in the same bytes
        /// whenever its size already told its expiry.
        #[test]
        fn near_valid_input_decodes_consistently(
            format in 1u8..3,
            flags in 0u8..8,
            rest in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let mut data = vec![MAGIC, format, flags];
            data.extend_from_slice(&rest);
            if let Ok(env) = decode("get", &k(), Bytes::from(data.clone())) {
                let again = encode("put", &k(), &env.value, env.expires_at).unwrap();
                prop_assert_eq!(decode("get", &k(), again.clone()).unwrap(), env.clone());
                prop_assert_eq!(may_expire(again.len() as u64), env.expires_at.is_some());
                // A padding byte flips the parity, so a right parity means it was needed.
                if format == FORMAT_VERSION && may_expire(data.len() as u64) == env.expires_at.is_some() {
                    prop_assert_eq!(&again[..], &data[..]);
                }
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
            prop_assert_eq!(may_expire(data.len() as u64), at.is_some());
            prop_assert!(data.len() <= value.len() + HEAD_LEN as usize);
            let env = decode("get", &k(), data).unwrap();
            prop_assert_eq!(env, Envelope { expires_at: at, value });
        }
    }
}
