//! The manifest: the one object whose compare-and-swap orders every update of a group.
//!
//! It maps each name to the id of its current content, plus a serial that grows by one per
//! switch (informational: the backend's version is what CAS uses). Small contents are kept
//! in the manifest itself, as hex under their id; the others are objects of their own.
//! Stored as compact JSON: `{"format":1,"serial":7,"objects":{"counter":"<id>"}}`, or with
//! inline contents `{"format":2,…,"inline":{"<id>":"3432"}}` (format 2, so that a reader
//! that predates inline contents refuses the manifest as corrupt instead of misreading it).
//!
//! In memory, names and ids are shared strings and inline contents are bytes, so that the
//! next manifest of a switch is a cheap copy of the current one. It is encoded by hand
//! (the format is small and fixed) and decoded with serde.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Deserialize;
use store_core::{Error, Key, Result, Version};

/// The manifest format without inline contents; a manifest naming an unknown format is
/// refused as corrupt rather than misread.
const FORMAT: u32 = 1;
/// The format of a manifest with inline contents.
const FORMAT_INLINE: u32 = 2;

/// Contents up to this size are kept in the manifest instead of an object of their own, so
/// an update of a small content costs one store operation (the manifest's compare-and-swap;
/// plus its read when the group's cached copy is stale) instead of three or four.
const INLINE_MAX: usize = 256;
/// Inline contents of one manifest stop growing past this total (bytes of content), so the
/// manifest that every update rewrites stays small; beyond it, contents get objects.
const INLINE_BUDGET: usize = 16 * 1024;

/// The decoded manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Number of switches so far.
    pub(crate) serial: u64,
    /// Name → its current content.
    pub(crate) objects: BTreeMap<Arc<str>, Entry>,
}

/// A name's current content: its id, and the content itself when the manifest keeps it
/// (else it is the object with that id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: Arc<str>,
    pub(crate) inline: Option<Bytes>,
}

/// The stored form, as serde reads it.
#[derive(Deserialize)]
struct Stored {
    format: u32,
    serial: u64,
    objects: BTreeMap<String, String>,
    #[serde(default)]
    inline: BTreeMap<String, String>,
}

impl Manifest {
    /// Decodes a stored manifest; garbage is [`Error::Corrupt`] naming `key`.
    pub(crate) fn decode(key: &Key, data: &[u8]) -> Result<Manifest> {
        let corrupt = |reason: String| Error::Corrupt {
            key: key.to_string(),
            reason,
        };
        let m: Stored =
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
        let mut contents: BTreeMap<String, Bytes> = BTreeMap::new();
        for (id, hex) in m.inline {
            let Some(content) = from_hex(&hex) else {
                return Err(corrupt(format!(
                    "inline content of {id:?} is not hex ({} chars)",
                    hex.len()
                )));
            };
            contents.insert(id, content);
        }
        let objects: BTreeMap<Arc<str>, Entry> = m
            .objects
            .into_iter()
            .map(|(name, id)| {
                let inline = contents.get(&id).cloned();
                (
                    Arc::from(name),
                    Entry {
                        id: Arc::from(id),
                        inline,
                    },
                )
            })
            .collect();
        if !contents.is_empty() {
            let referenced: std::collections::BTreeSet<&str> = objects.values().map(|e| &*e.id).collect();
            if let Some(id) = contents.keys().find(|id| !referenced.contains(id.as_str())) {
                return Err(corrupt(format!("inline content {id:?} belongs to no name")));
            }
        }
        Ok(Manifest {
            serial: m.serial,
            objects,
        })
    }

    /// The stored form: compact JSON, written directly (no intermediate values).
    pub(crate) fn encode(&self) -> Bytes {
        let mut names = 0;
        let mut inline = 0;
        for (name, entry) in &self.objects {
            names += name.len() + entry.id.len() + 6;
            if let Some(content) = &entry.inline {
                inline += entry.id.len() + 2 * content.len() + 6;
            }
        }
        let format = if inline == 0 { FORMAT } else { FORMAT_INLINE };
        let mut out = Vec::with_capacity(64 + names + inline);
        out.extend_from_slice(b"{\"format\":");
        push_decimal(&mut out, u64::from(format));
        out.extend_from_slice(b",\"serial\":");
        push_decimal(&mut out, self.serial);
        out.extend_from_slice(b",\"objects\":{");
        for (i, (name, entry)) in self.objects.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_string(&mut out, name);
            out.push(b':');
            push_id(&mut out, &entry.id);
        }
        out.push(b'}');
        if inline > 0 {
            out.extend_from_slice(b",\"inline\":{");
            let mut first = true;
            for entry in self.objects.values() {
                let Some(content) = &entry.inline else { continue };
                if !first {
                    out.push(b',');
                }
                first = false;
                push_id(&mut out, &entry.id);
                out.extend_from_slice(b":\"");
                push_hex(&mut out, content);
                out.push(b'"');
            }
            out.push(b'}');
        }
        out.push(b'}');
        out.into()
    }

    /// Whether `name`'s content is kept as an object of its own (not inline, and not
    /// absent).
    pub(crate) fn is_object(&self, name: &str) -> bool {
        self.objects.get(name).is_some_and(|e| e.inline.is_none())
    }

    /// Gives `name` the content `entry`, returning the one it replaces. An existing entry
    /// is replaced in place, so the name's string stays shared with earlier manifests.
    pub(crate) fn set(&mut self, name: &str, entry: Entry) -> Option<Entry> {
        match self.objects.get_mut(name) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => self.objects.insert(Arc::from(name), entry),
        }
    }

    /// Bytes of content kept inline.
    pub(crate) fn inline_bytes(&self) -> usize {
        self.objects
            .values()
            .filter_map(|e| e.inline.as_ref())
            .map(Bytes::len)
            .sum()
    }
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// An object id as a JSON string: ids are hex digits and one `-` (checked on decode, and
/// made by [`new_object_id`]), so there is nothing to escape.
fn push_id(out: &mut Vec<u8>, id: &str) {
    debug_assert!(is_object_id(id), "{id:?} is not an object id");
    out.push(b'"');
    out.extend_from_slice(id.as_bytes());
    out.push(b'"');
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped, everything
/// else (UTF-8 included) as is.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    // Names are nearly always plain: one scan, one copy.
    if !bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'"' && b != b'\\' && b >= 0x20 {
            continue;
        }
        out.extend_from_slice(&bytes[plain..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                DIGITS[usize::from(b >> 4)],
                DIGITS[usize::from(b & 0xf)],
            ]),
        }
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// Whether a content of `len` bytes is kept in a manifest that already holds
/// `inline_bytes` of inline content (else it becomes an object).
pub(crate) fn fits_inline(inline_bytes: usize, len: usize) -> bool {
    len <= INLINE_MAX && inline_bytes + len <= INLINE_BUDGET
}

/// Lower-case hex of `data`.
pub(crate) fn to_hex(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len() * 2);
    push_hex(&mut out, data);
    // Only ASCII hex digits were written.
    String::from_utf8(out).unwrap_or_default()
}

fn push_hex(out: &mut Vec<u8>, data: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in data {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]);
    }
}

/// The bytes of lower-case hex `text`; `None` if it is not that.
fn from_hex(text: &str) -> Option<Bytes> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .map(Bytes::from)
}

/// A manifest as read at one version (`None`: no manifest yet, i.e. an empty group).
/// Shared: the group keeps the last one it saw, and a snapshot costs no copy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) version: Option<Version>,
    /// Taken from the group's cache without asking the backend: the last manifest this
    /// group wrote or read, maybe no longer the current one. A write against it is
    /// optimistic; its conditional put failing means only that the cache was stale.
    pub(crate) cached: bool,
}

impl Snapshot {
    /// The id currently recorded for `name`.
    pub(crate) fn id(&self, name: &str) -> Option<&Arc<str>> {
        self.manifest.objects.get(name).map(|e| &e.id)
    }

    /// The content of `name` if the manifest holds it inline (else it is an object, or
    /// `name` has none).
    pub(crate) fn inline(&self, name: &str) -> Option<Bytes> {
        self.inline_ref(name).cloned()
    }

    /// [`inline`](Self::inline), borrowed.
    pub(crate) fn inline_ref(&self, name: &str) -> Option<&Bytes> {
        self.manifest.objects.get(name)?.inline.as_ref()
    }
}

/// A fresh, unique object id: `<creation time, ns since the epoch, 16 hex>-<64 random bits,
/// 16 hex>`. The time lets `gc` spare objects younger than its grace period; the random
/// part makes ids unique without coordination, so an id — which is also the "key" handed
/// to readers — is never reused (no ABA).
pub(crate) fn new_object_id() -> Arc<str> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    id_from(nanos, fastrand::u64(..))
}

/// A fresh, unique id for a content kept inline: the shape of an object id, all 128 bits
/// random. Only objects need their creation time (for `gc`, which never sees inline
/// contents), and an inline content never becomes an object under the same id.
pub(crate) fn new_inline_id() -> Arc<str> {
    id_from(fastrand::u64(..), fastrand::u64(..))
}

/// `<high, 16 hex>-<low, 16 hex>`, formatted on the stack (the id's own allocation is
/// the only one).
fn id_from(high: u64, low: u64) -> Arc<str> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b'-'; 33];
    for (i, shift) in (0..16).map(|i| (i, 60 - 4 * i)) {
        text[i] = DIGITS[((high >> shift) & 0xf) as usize];
        text[17 + i] = DIGITS[((low >> shift) & 0xf) as usize];
    }
    // Only ASCII was written.
    Arc::from(std::str::from_utf8(&text).unwrap_or_default())
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
        m.objects.insert(
            "a".into(),
            Entry {
                id: new_object_id(),
                inline: None,
            },
        );
        let plain = m.encode();
        assert!(
            plain.starts_with(br#"{"format":1,"#),
            "no inline contents: format 1"
        );
        assert_eq!(Manifest::decode(&key, &plain).unwrap(), m);
        let small = new_inline_id();
        m.objects.insert(
            "b".into(),
            Entry {
                id: small.clone(),
                inline: Some(Bytes::from_static(&[0, 0x7f, 0xff, b'4'])),
            },
        );
        let with_inline = m.encode();
        assert!(
            with_inline.starts_with(br#"{"format":2,"#),
            "inline contents: format 2"
        );
        let back = Manifest::decode(&key, &with_inline).unwrap();
        assert_eq!(back, m);
        let snap = Snapshot {
            manifest: Arc::new(back),
            version: None,
            cached: false,
        };
        assert_eq!(snap.inline("b").unwrap(), &[0, 0x7f, 0xff, b'4'][..]);
        assert_eq!(snap.id("b"), Some(&small));
        assert_eq!(snap.inline("a"), None);
        assert_eq!(snap.inline("c"), None);
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

    proptest::proptest! {
        /// The hand-written encoder writes JSON that decodes (with serde) to the same
        /// manifest, whatever the names hold: quotes, backslashes, control characters,
        /// any Unicode.
        #[test]
        fn encoding_round_trips(
            serial in proptest::prelude::any::<u64>(),
            entries in proptest::collection::btree_map("(?s).{1,12}", proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8)), 0..6),
        ) {
            let key = Key::new("g/.manifest").unwrap();
            let mut m = Manifest { serial, ..Manifest::default() };
            for (name, inline) in entries {
                let entry = Entry { id: new_object_id(), inline: inline.map(Bytes::from) };
                m.objects.insert(name.into(), entry);
            }
            let encoded = m.encode();
            let generic: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
            proptest::prop_assert!(generic.is_object());
            proptest::prop_assert_eq!(Manifest::decode(&key, &encoded).unwrap(), m);
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
        assert_eq!(
            &*id_from(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
            "0123456789abcdef-fedcba9876543210"
        );
        let inline = new_inline_id();
        assert!(is_object_id(&inline) && inline != new_inline_id());
    }
}
