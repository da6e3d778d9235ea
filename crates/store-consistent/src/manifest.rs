//! The manifest: the one object whose compare-and-swap orders every update of a group.
//!
//! It maps each name to the id of the object holding its current content, plus a serial
//! that grows by one per switch (informational: the backend's version is what CAS uses).
//! Stored as compact JSON: `{"format":1,"serial":7,"objects":{"counter":"<id>"}}`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store_core::{Error, Key, Result, Version};

/// The only manifest format so far; a manifest naming another one is refused as corrupt
/// rather than misread.
const FORMAT: u32 = 1;

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    format: u32,
    /// Number of switches so far.
    pub(crate) serial: u64,
    /// Name → id of the object holding its content.
    pub(crate) objects: BTreeMap<String, String>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: FORMAT,
            serial: 0,
            objects: BTreeMap::new(),
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
        if m.format != FORMAT {
            return Err(corrupt(format!("unknown manifest format {}", m.format)));
        }
        if let Some((name, id)) = m.objects.iter().find(|(_, id)| !is_object_id(id)) {
            return Err(corrupt(format!(
                "name {name:?} points at a malformed object id {id:?}"
            )));
        }
        Ok(m)
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Bytes {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default().into()
    }
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
        assert_eq!(Manifest::decode(&key, &m.encode()).unwrap(), m);
        for bad in [
            &b"not json"[..],
            br#"{"format":2,"serial":1,"objects":{}}"#,
            br#"{"format":1,"serial":1,"objects":{"a":"../../etc"}}"#,
        ] {
            let e = Manifest::decode(&key, bad).unwrap_err();
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
