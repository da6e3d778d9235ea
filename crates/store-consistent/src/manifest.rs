//! The manifest: the one object whose compare-and-swap orders every update of a group.
//!
//! It maps each name to the id of its current content, plus a serial that grows by one per
//! switch (informational: the backend's version is what CAS uses). Small contents are kept
//! in the manifest itself, as hex under their id; the others are objects of their own.
//! Stored as compact JSON: `{"format":1,"serial":7,"objects":{"counter":"<id>"}}`, or with
//! inline contents `{"format":2,…,"inline":{"<id>":"3432"}}` (format 2, so that a reader
//! that predates inline contents refuses the manifest as corrupt instead of misreading it).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store_core::{Error, Key, Result, Version};

/// The manifest format without inline contents; a manifest naming an unknown format is
/// refused as corrupt rather than misread.
const FORMAT: u32 = 1;
/// The format of a manifest with inline contents.
const FORMAT_INLINE: u32 = 2;

/// Contents up to this size are kept in the manifest instead of an object of their own, so
/// an update of a small content costs two store operations (read and compare-and-swap of
/// the manifest) instead of four.
const INLINE_MAX: usize = 256;
/// Inline contents of one manifest stop growing past this total (bytes of content), so the
/// manifest that every update rewrites stays small; beyond it, contents get objects.
const INLINE_BUDGET: usize = 16 * 1024;

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    format: u32,
    /// Number of switches so far.
    pub(crate) serial: u64,
    /// Name → id of its content.
    pub(crate) objects: BTreeMap<String, String>,
    /// Id → content (hex) of the contents kept in the manifest; every other id is an object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) inline: BTreeMap<String, String>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: FORMAT,
            serial: 0,
            objects: BTreeMap::new(),
            inline: BTreeMap::new(),
        }
    }
}

impl Manifest {
    /// Decodes a stored manifest; garbage is [`Error::Corrupt`] naming `key`.
    pub(crate) fn decode(key: &Key, data: &[u8]) -> Result<Manifest> {
        let corrupt = |reason: String| Error::Corrupt {
            key: key.to_string(),
            reason,
        };
        let m: Manifest =
            serde_json::from_slice(data).map_err(|e| corrupt(format!("manifest is not valid: {e}")))?;
        match m.format {
            FORMAT if m.inline.is_empty() => {}
            FORMAT_INLINE => {}
            FORMAT => return Err(corrupt("format 1 manifest with inline contents".into())),
            other => return Err(corrupt(format!("unknown manifest format {other}"))),
        }
        if let Some((name, id)) = m.objects.iter().find(|(_, id)| !is_object_id(id)) {
            return Err(corrupt(format!(
                "name {name:?} points at a malformed object id {id:?}"
            )));
        }
        if m.inline.is_empty() {
            return Ok(m);
        }
        let referenced: std::collections::BTreeSet<&str> = m.objects.values().map(String::as_str).collect();
        if let Some((id, hex)) = m
            .inline
            .iter()
            .find(|(id, hex)| !referenced.contains(id.as_str()) || !is_hex(hex))
        {
            let why = if referenced.contains(id.as_str()) {
                format!("inline content of {id:?} is not hex ({} chars)", hex.len())
            } else {
                format!("inline content {id:?} belongs to no name")
            };
            return Err(corrupt(why));
        }
        Ok(m)
    }

    /// The stored form.
    pub(crate) fn encode(&mut self) -> Bytes {
        self.format = if self.inline.is_empty() {
            FORMAT
        } else {
            FORMAT_INLINE
        };
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default().into()
    }

    /// Bytes of content kept inline.
    pub(crate) fn inline_bytes(&self) -> usize {
        self.inline.values().map(|hex| hex.len() / 2).sum()
    }
}

/// Whether a content of `len` bytes is kept in a manifest that already holds
/// `inline_bytes` of inline content (else it becomes an object).
pub(crate) fn fits_inline(inline_bytes: usize, len: usize) -> bool {
    len <= INLINE_MAX && inline_bytes + len <= INLINE_BUDGET
}

/// Lower-case hex of `data`.
pub(crate) fn to_hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(data.len() * 2);
    for b in data {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn is_hex(text: &str) -> bool {
    text.len().is_multiple_of(2)
        && text
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// The bytes of hex `text` (checked by [`Manifest::decode`]).
fn from_hex(text: &str) -> Bytes {
    let digit = |c: u8| {
        if c.is_ascii_digit() {
            c - b'0'
        } else {
            c - b'a' + 10
        }
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| (digit(pair[0]) << 4) | digit(pair[1]))
        .collect::<Vec<u8>>()
        .into()
}

/// A manifest as read at one version (`None`: no manifest yet, i.e. an empty group).
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) manifest: Manifest,
    pub(crate) version: Option<Version>,
}

impl Snapshot {
    /// The id currently recorded for `name`.
    pub(crate) fn id(&self, name: &str) -> Option<&String> {
        self.manifest.objects.get(name)
    }

    /// The content of `id` if the manifest holds it inline (else it is an object).
    pub(crate) fn inline(&self, id: &str) -> Option<Bytes> {
        self.manifest.inline.get(id).map(|hex| from_hex(hex))
    }
}

/// A fresh, unique object id: `<creation time, ns since the epoch, 16 hex>-<64 random bits,
/// 16 hex>`. The time lets `gc` spare objects younger than its grace period; the random
/// part makes ids unique without coordination, so an id — which is also the "key" handed
/// to readers — is never reused (no ABA).
pub(crate) fn new_object_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    format!("{nanos:016x}-{:016x}", fastrand::u64(..))
}

/// When the object with this id was created, if `id` is one of ours.
pub(crate) fn object_created(id: &str) -> Option<SystemTime> {
    if !is_object_id(id) {
        return None;
    }
    let nanos = u64::from_str_radix(&id[..16], 16).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

/// Whether `id` has the shape [`new_object_id`] makes.
pub(crate) fn is_object_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 33
        && b[16] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 16 || c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let key = Key::new("g/.manifest").unwrap();
        let mut m = Manifest {
            serial: 3,
            ..Manifest::default()
        };
        m.objects.insert("a".into(), new_object_id());
        let plain = m.encode();
        assert!(
            plain.starts_with(br#"{"format":1,"#),
            "no inline contents: format 1"
        );
        assert_eq!(Manifest::decode(&key, &plain).unwrap(), m);
        let small = new_object_id();
        m.objects.insert("b".into(), small.clone());
        m.inline.insert(small.clone(), to_hex(&[0, 0x7f, 0xff, b'4']));
        let with_inline = m.encode();
        assert!(
            with_inline.starts_with(br#"{"format":2,"#),
            "inline contents: format 2"
        );
        let back = Manifest::decode(&key, &with_inline).unwrap();
        assert_eq!(back, m);
        let snap = Snapshot {
            manifest: back,
            version: None,
        };
        assert_eq!(snap.inline(&small).unwrap(), &[0, 0x7f, 0xff, b'4'][..]);
        assert_eq!(snap.inline(snap.id("a").unwrap()), None);
        assert_eq!(snap.manifest.inline_bytes(), 4);
        let orphan = format!(r#"{{"format":2,"serial":1,"objects":{{}},"inline":{{"{small}":"00"}}}}"#);
        let odd =
            format!(r#"{{"format":2,"serial":1,"objects":{{"b":"{small}"}},"inline":{{"{small}":"0"}}}}"#);
        let upper =
            format!(r#"{{"format":2,"serial":1,"objects":{{"b":"{small}"}},"inline":{{"{small}":"AB"}}}}"#);
        let old_format =
            format!(r#"{{"format":1,"serial":1,"objects":{{"b":"{small}"}},"inline":{{"{small}":"00"}}}}"#);
        for (bad, why) in [
            (&b"not json"[..], "not valid"),
            (
                br#"{"format":3,"serial":1,"objects":{}}"#,
                "unknown manifest format 3",
            ),
            (
                br#"{"format":1,"serial":1,"objects":{"a":"../../etc"}}"#,
                "malformed object id",
            ),
            (orphan.as_bytes(), "belongs to no name"),
            (odd.as_bytes(), "not hex"),
            (upper.as_bytes(), "not hex"),
            (old_format.as_bytes(), "format 1 manifest with inline"),
        ] {
            let e = Manifest::decode(&key, bad).unwrap_err();
            assert!(e.to_string().contains(why), "{e} should say {why:?}");
            assert!(matches!(e, Error::Corrupt { .. }), "{e}");
            assert!(e.to_string().contains("g/.manifest"), "{e}");
        }
    }

    #[test]
    fn ids_are_unique_and_dated() {
        let a = new_object_id();
        let b = new_object_id();
        assert_ne!(a, b);
        assert!(is_object_id(&a));
        let age = SystemTime::now()
            .duration_since(object_created(&a).unwrap())
            .unwrap();
        assert!(age < Duration::from_secs(3600));
        assert_eq!(object_created("readme.txt"), None);
    }
}
