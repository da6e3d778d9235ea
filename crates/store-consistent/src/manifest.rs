//! The manifest: the one object whose compare-and-swap orders every update of a group.
//!
//! It maps each name to the id of its current content, plus a serial that grows by one per
//! switch (informational: the backend's version is what CAS uses). Small contents are kept
//! in the manifest itself, as lower-case hex under their id; the others are objects of
//! their own.
//!
//! # Stored format
//! Compact JSON, written and read with serde. Format 1 has no inline contents:
//! `{"format":1,"serial":7,"objects":{"counter":"<id>"}}`. Format 2 adds them:
//! `{"format":2,…,"inline":{"<id>":"3432"}}` — a distinct number, so that a reader that
//! predates inline contents refuses such a manifest as corrupt instead of misreading it.
//! A manifest is written in format 1 when it holds no inline content, else in format 2;
//! both are read. Any other format number is refused as corrupt.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};
use store_core::{Error, Key, Result, Version};

/// The manifest format without inline contents.
const FORMAT: u32 = 1;
/// The format of a manifest with inline contents.
const FORMAT_INLINE: u32 = 2;

/// Contents up to this size are kept in the manifest by default
/// ([`Group::with_inline_limit`](crate::Group::with_inline_limit)).
pub const DEFAULT_INLINE_LIMIT: usize = 1024;
/// Inline contents of one manifest stop growing past this total (bytes of content), so the
/// manifest that every update rewrites stays small; beyond it, contents get objects.
pub const INLINE_BUDGET: usize = 16 * 1024;

/// The decoded manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Number of switches so far.
    pub(crate) serial: u64,
    /// Name → its current content.
    pub(crate) objects: BTreeMap<String, Entry>,
}

/// A name's current content: its id, and the content itself when the manifest keeps it
/// (else it is the object with that id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: Arc<str>,
    pub(crate) inline: Option<Bytes>,
}

/// The stored form, as read (see the module documentation).
#[derive(Deserialize)]
struct Stored {
    format: u32,
    serial: u64,
    /// Name → id.
    objects: BTreeMap<String, String>,
    /// Id → content, in hex.
    #[serde(default)]
    inline: BTreeMap<String, String>,
}

/// The stored form of a manifest, as written: the same fields, serialised straight from
/// the manifest's entries.
#[derive(Serialize)]
struct Encoded<'a> {
    format: u32,
    serial: u64,
    objects: Ids<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline: Option<InlineContents<'a>>,
}

/// Name → id.
struct Ids<'a>(&'a BTreeMap<String, Entry>);

impl Serialize for Ids<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(name, e)| (name, &*e.id)))
    }
}

/// Id → inline content, in lower-case hex.
struct InlineContents<'a>(&'a BTreeMap<String, Entry>);

impl Serialize for InlineContents<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .values()
                .filter_map(|e| Some((&*e.id, Hex(e.inline.as_ref()?)))),
        )
    }
}

/// Bytes serialised as a string of lower-case hex.
struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut text = vec![0; 2 * self.0.len()];
        // `text` is exactly twice as long as the input, and hex digits are ASCII.
        let _ = hex::encode_to_slice(self.0, &mut text);
        s.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl Manifest {
    /// Decodes a stored manifest; garbage is [`Error::Corrupt`] naming `key`.
    pub(crate) fn decode(key: &Key, data: &[u8]) -> Result<Manifest> {
        let corrupt = |reason: String| Error::Corrupt {
            key: key.to_string(),
            reason,
        };
        let stored: Stored =
            serde_json::from_slice(data).map_err(|e| corrupt(format!("manifest is not valid: {e}")))?;
        match stored.format {
            FORMAT if stored.inline.is_empty() => {}
            FORMAT_INLINE => {}
            FORMAT => return Err(corrupt("format 1 manifest with inline contents".into())),
            other => return Err(corrupt(format!("unknown manifest format {other}"))),
        }
        if let Some((name, id)) = stored.objects.iter().find(|(_, id)| !is_object_id(id)) {
            return Err(corrupt(format!(
                "name {name:?} points at a malformed object id {id:?}"
            )));
        }
        let referenced: BTreeSet<&String> = stored.objects.values().collect();
        if let Some(id) = stored.inline.keys().find(|id| !referenced.contains(id)) {
            return Err(corrupt(format!("inline content {id:?} belongs to no name")));
        }
        let mut contents = BTreeMap::new();
        for (id, text) in &stored.inline {
            let content = hex::decode(text)
                .map_err(|e| corrupt(format!("inline content of {id:?} is not hex: {e}")))?;
            contents.insert(id.as_str(), Bytes::from(content));
        }
        let objects = stored
            .objects
            .into_iter()
            .map(|(name, id)| {
                let inline = contents.get(id.as_str()).cloned();
                let id = Arc::from(id);
                (name, Entry { id, inline })
            })
            .collect();
        Ok(Manifest {
            serial: stored.serial,
            objects,
        })
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Bytes {
        let inline = self.objects.values().any(|e| e.inline.is_some());
        let encoded = Encoded {
            format: if inline { FORMAT_INLINE } else { FORMAT },
            serial: self.serial,
            objects: Ids(&self.objects),
            inline: inline.then_some(InlineContents(&self.objects)),
        };
        // Room for the whole manifest (unless names need escapes): one allocation.
        let size: usize = self
            .objects
            .iter()
            .map(|(name, e)| name.len() + 2 * e.id.len() + 2 * e.inline.as_ref().map_or(0, Bytes::len) + 12)
            .sum();
        let mut out = Vec::with_capacity(64 + size);
        // Strings and integers always serialise.
        let _ = serde_json::to_writer(&mut out, &encoded);
        out.into()
    }

    /// Gives `name` the content `entry`, returning the one it replaces (in place: no new
    /// copy of the name).
    pub(crate) fn set(&mut self, name: &str, entry: Entry) -> Option<Entry> {
        match self.objects.get_mut(name) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => self.objects.insert(name.to_owned(), entry),
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

    /// The id of `name`'s content and the content itself if the manifest holds it inline
    /// (else it is an object); `None` if `name` has none.
    pub(crate) fn entry(&self, name: &str) -> Option<(Arc<str>, Option<Bytes>)> {
        let entry = self.manifest.objects.get(name)?;
        Some((Arc::clone(&entry.id), entry.inline.clone()))
    }
}

/// A fresh, unique id: `<creation time, ns since the epoch, 16 hex>-<64 random bits, 16
/// hex>`. The time lets `gc` spare objects younger than its grace period; the random part
/// makes ids unique without coordination, so an id — which is also the "key" handed to
/// readers — is never reused (no ABA). Inline contents get ids of the same shape.
pub(crate) fn new_id() -> Arc<str> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut text = [b'-'; 33];
    // 16 hex digits each side of the `-`: the slices are exactly the right length.
    let _ = hex::encode_to_slice(nanos.to_be_bytes(), &mut text[..16]);
    let _ = hex::encode_to_slice(fastrand::u64(..).to_be_bytes(), &mut text[17..]);
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

/// Whether `id` has the shape [`new_id`] makes (so that it is safe in a key).
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

    fn key() -> Key {
        Key::new("g/.manifest").unwrap()
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let mut m = Manifest {
            serial: 3,
            ..Manifest::default()
        };
        m.objects.insert(
            "a".into(),
            Entry {
                id: new_id(),
                inline: None,
            },
        );
        let plain = m.encode();
        assert!(
            plain.starts_with(br#"{"format":1,"#),
            "no inline contents: format 1"
        );
        assert_eq!(Manifest::decode(&key(), &plain).unwrap(), m);
        let small = new_id();
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
        let back = Manifest::decode(&key(), &with_inline).unwrap();
        assert_eq!(back, m);
        let snap = Snapshot {
            manifest: Arc::new(back),
            version: None,
            cached: false,
        };
        let (id, inline) = snap.entry("b").unwrap();
        assert_eq!(
            (id, inline.unwrap()),
            (small.clone(), Bytes::from_static(&[0, 0x7f, 0xff, b'4']))
        );
        assert_eq!(snap.entry("a").unwrap().1, None);
        assert_eq!(snap.entry("c"), None);
        assert_eq!(snap.manifest.inline_bytes(), 4);
        let orphan = format!(r#"{{"format":2,"serial":1,"objects":{{}},"inline":{{"{small}":"00"}}}}"#);
        let odd =
            format!(r#"{{"format":2,"serial":1,"objects":{{"b":"{small}"}},"inline":{{"{small}":"0"}}}}"#);
        let not_hex =
            format!(r#"{{"format":2,"serial":1,"objects":{{"b":"{small}"}},"inline":{{"{small}":"xy"}}}}"#);
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
            (not_hex.as_bytes(), "not hex"),
            (old_format.as_bytes(), "format 1 manifest with inline"),
        ] {
            let e = Manifest::decode(&key(), bad).unwrap_err();
            assert!(e.to_string().contains(why), "{e} should say {why:?}");
            assert!(matches!(e, Error::Corrupt { .. }), "{e}");
            assert!(e.to_string().contains("g/.manifest"), "{e}");
        }
    }

    /// Manifests written by the hand-written encoder that preceded serde (literal
    /// samples of its output) decode to what was encoded, and the serde encoder writes the
    /// same bytes for them: stored groups keep working, and older readers read new
    /// manifests.
    #[test]
    fn manifests_of_the_earlier_encoder_decode() {
        let name = "report \"q\"\\\u{1}é";
        let format_1 = r#"{"format":1,"serial":42,"objects":{"report \"q\"\\\u0001é":"17f0000000000001-00ff00ff00ff00ff"}}"#;
        let m = Manifest::decode(&key(), format_1.as_bytes()).unwrap();
        assert_eq!(m.serial, 42);
        assert_eq!(&*m.objects[name].id, "17f0000000000001-00ff00ff00ff00ff");
        assert_eq!(m.objects[name].inline, None);
        assert_eq!(m.encode(), format_1.as_bytes());

        let format_2 = r#"{"format":2,"serial":42,"objects":{"bin":"0000000000000007-0000000000000008","counter":"0000000000001234-000000000000abcd","report \"q\"\\\u0001é":"17f0000000000001-00ff00ff00ff00ff"},"inline":{"0000000000000007-0000000000000008":"007fff","0000000000001234-000000000000abcd":"3137"}}"#;
        let m = Manifest::decode(&key(), format_2.as_bytes()).unwrap();
        assert_eq!(m.objects.len(), 3);
        assert_eq!(m.objects["counter"].inline.as_deref(), Some(&b"17"[..]));
        assert_eq!(m.objects["bin"].inline.as_deref(), Some(&[0, 0x7f, 0xff][..]));
        assert_eq!(m.objects[name].inline, None);
        assert_eq!(m.encode(), format_2.as_bytes());
    }

    proptest::proptest! {
        /// The encoding decodes to the same manifest, whatever the names hold: quotes,
        /// backslashes, control characters, any Unicode.
        #[test]
        fn encoding_round_trips(
            serial in proptest::prelude::any::<u64>(),
            entries in proptest::collection::btree_map("(?s).{1,12}", proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8)), 0..6),
        ) {
            let mut m = Manifest { serial, ..Manifest::default() };
            for (name, inline) in entries {
                let entry = Entry { id: new_id(), inline: inline.map(Bytes::from) };
                m.objects.insert(name, entry);
            }
            let encoded = m.encode();
            let generic: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
            proptest::prop_assert!(generic.is_object());
            proptest::prop_assert_eq!(Manifest::decode(&key(), &encoded).unwrap(), m);
        }
    }

    #[test]
    fn ids_are_unique_and_dated() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(is_object_id(&a) && is_object_id(&b));
        let age = SystemTime::now()
            .duration_since(object_created(&a).unwrap())
            .unwrap();
        assert!(age < Duration::from_secs(3600));
        assert_eq!(object_created("readme.txt"), None);
        assert!(!is_object_id("0123456789ABCDEF-fedcba9876543210"));
    }
}
