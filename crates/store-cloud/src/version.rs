//! Version tokens: the server's ETag plus a write id of our own.
//!
//! S3 ETags are content hashes, so writing the same bytes twice gives the same ETag, and an
//! ETag alone would repeat (and allow ABA). Every write therefore also stores a random
//! 128-bit *write id* in the object's user metadata (`x-amz-meta-store-write-id` on S3), and
//! a [`Version`] is `"<write id>~<object version id>~<etag>"`. The ETag is what the server
//! checks on a conditional put (`If-Match`); the write id is what makes the token unique.

use object_store::{Attribute, AttributeValue, Attributes};
use store_core::{Error, Result, Version};

/// The user-metadata name under which every write stores its write id.
pub(crate) const WRITE_ID_ATTRIBUTE: &str = "store-write-id";

/// A fresh random write id (32 hex digits).
pub(crate) fn new_write_id(op: &'static str, key: &str) -> Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| Error::Backend {
        backend: "store-cloud",
        retryable: true,
        source: format!("{op} {key:?}: no randomness for a write id: {e}").into(),
    })?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// The attributes every write sends: its write id (none when write ids are off).
pub(crate) fn write_attributes(write_id: &str) -> Attributes {
    let mut attrs = Attributes::new();
    if write_id.is_empty() {
        return attrs;
    }
    attrs.insert(
        Attribute::Metadata(WRITE_ID_ATTRIBUTE.into()),
        AttributeValue::from(write_id.to_owned()),
    );
    attrs
}

/// The write id found in an object's attributes, if it was written through a `CloudStore`.
pub(crate) fn write_id_of(attrs: &Attributes) -> Option<&str> {
    attrs
        .get(&Attribute::Metadata(WRITE_ID_ATTRIBUTE.into()))
        .map(|v| v.as_ref())
}

/// The parts of a [`Version`] issued by a `CloudStore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloudVersion {
    /// Our write id, empty for an object written by another tool.
    pub(crate) write_id: String,
    /// The server's object version id (buckets with versioning), empty if none.
    pub(crate) object_version: String,
    /// The server's ETag, as the server sent it (quotes included).
    pub(crate) etag: String,
}

impl CloudVersion {
    /// The version of an object with this ETag, version id and write id.
    pub(crate) fn new(etag: Option<&str>, object_version: Option<&str>, write_id: Option<&str>) -> Self {
        CloudVersion {
            write_id: write_id.unwrap_or_default().to_owned(),
            object_version: object_version.unwrap_or_default().to_owned(),
            etag: etag.unwrap_or_default().to_owned(),
        }
    }

    /// The opaque token.
    pub(crate) fn to_version(&self) -> Version {
        Version::from(format!("{}~{}~{}", self.write_id, self.object_version, self.etag))
    }

    /// Decodes a token; `None` if `v` was not issued by a `CloudStore` (it then matches nothing).
    pub(crate) fn parse(v: &Version) -> Option<Self> {
        let text = v.as_string();
        let mut parts = text.splitn(3, '~');
        let write_id = parts.next()?;
        let object_version = parts.next()?;
        let etag = parts.next()?;
        if etag.is_empty() || !write_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(CloudVersion {
            write_id: write_id.to_owned(),
            object_version: object_version.to_owned(),
            etag: etag.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let v = CloudVersion::new(Some("\"abc~def\""), Some("v1"), Some("00ff"));
        let token = v.to_version();
        assert_eq!(token.as_string(), "00ff~v1~\"abc~def\"");
        assert_eq!(CloudVersion::parse(&token), Some(v));
        let bare = CloudVersion::new(Some("\"e\""), None, None);
        assert_eq!(CloudVersion::parse(&bare.to_version()), Some(bare));
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for text in ["", "42", "zz~~\"e\"", "ab~v", "ab~v~"] {
            assert_eq!(CloudVersion::parse(&Version::parse(text)), None, "{text:?}");
        }
    }

    #[test]
    fn write_ids_are_unique_hex() {
        let a = new_write_id("put", "k").unwrap();
        let b = new_write_id("put", "k").unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let attrs = write_attributes(&a);
        assert_eq!(write_id_of(&attrs), Some(a.as_str()));
    }
}
