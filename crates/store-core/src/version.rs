//! Opaque version tokens.

use std::fmt;
use std::sync::Arc;

/// An opaque version token for one state of one key.
///
/// Every successful mutation of a key produces a new version, and a backend never hands out
/// the same version twice for the same key — not even after the key is deleted and
/// re-created — so a compare-and-swap from a remembered version can never succeed against a
/// different object that happens to look the same (no ABA).
///
/// Versions are compared only for equality. Their text form ([`Version::as_string`] /
/// [`Display`](fmt::Display)) round-trips through [`Version::parse`], so a version can be
/// stored (a manifest, a record envelope) and compared later. A backend with numeric
/// versions (a counter, an etcd revision) uses [`Version::from`]`(u64)`, which costs no
/// allocation.
///
/// ```
/// use store_core::Version;
///
/// let v = Version::from(42u64);
/// assert_eq!(Version::parse(&v.as_string()), v);
/// assert_ne!(Version::parse("\"etag-1\""), Version::parse("\"etag-2\""));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// [`Version::empty`]: a variant of its own, so that making one allocates nothing.
    Empty,
    Number(u64),
    Text(Arc<str>),
}

impl Version {
    /// A version from its text form. Canonical decimal numbers (`"0"`, `"42"`, not `"042"`)
    /// become numeric versions, so `Version::parse(&Version::from(n).as_string())` equals
    /// `Version::from(n)`.
    pub fn parse(text: &str) -> Version {
        if text.is_empty() {
            return Version::empty();
        }
        let canonical_number = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        if canonical_number && let Ok(n) = text.parse::<u64>() {
            return Version(Repr::Number(n));
        }
        Version(Repr::Text(Arc::from(text)))
    }

    /// The text form of this version (see [`Version::parse`]).
    pub fn as_string(&self) -> String {
        self.to_string()
    }

    /// The number, if this is a numeric version.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            Repr::Number(n) => Some(n),
            Repr::Empty | Repr::Text(_) => None,
        }
    }

    /// The text, if this is a textual version (not a number, not empty). Clones of one
    /// version share this text: the same address means the same version.
    pub fn as_text(&self) -> Option<&str> {
        match &self.0 {
            Repr::Text(text) => Some(text),
            Repr::Empty | Repr::Number(_) => None,
        }
    }

    /// The empty version, which no backend ever produces. It stands for "no version yet"
    /// (for example in a [`Record`](crate::Record) about to be created) and never matches a
    /// stored object.
    pub fn empty() -> Version {
        Version(Repr::Empty)
    }

    /// True for [`Version::empty`].
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Empty)
    }
}

impl From<u64> for Version {
    fn from(n: u64) -> Version {
        Version(Repr::Number(n))
    }
}

impl From<&str> for Version {
    fn from(s: &str) -> Version {
        Version::parse(s)
    }
}

impl From<String> for Version {
    fn from(s: String) -> Version {
        Version::parse(&s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Empty => Ok(()),
            Repr::Number(n) => write!(f, "{n}"),
            Repr::Text(t) => f.write_str(t),
        }
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_textual_versions_have_text_and_clones_share_it() {
        let v = Version::from("etag-1");
        assert_eq!(v.as_text(), Some("etag-1"));
        let copy = v.clone();
        assert_eq!(copy.as_text().map(str::as_ptr), v.as_text().map(str::as_ptr));
        assert_eq!(Version::from(7).as_text(), None);
        assert_eq!(Version::parse("7").as_text(), None);
        assert_eq!(Version::empty().as_text(), None);
    }

    #[test]
    fn numbers_round_trip_and_compare() {
        for n in [0u64, 1, 9, 10, 1 << 40, u64::MAX] {
            let v = Version::from(n);
            assert_eq!(Version::parse(&v.as_string()), v);
            assert_eq!(v.as_u64(), Some(n));
        }
        assert_ne!(Version::from(1), Version::from(2));
    }

    #[test]
    fn non_canonical_numbers_stay_text() {
        let v = Version::parse("007");
        assert_eq!(v.as_u64(), None);
        assert_ne!(v, Version::from(7));
        assert_eq!(v.as_string(), "007");
        // Too large for u64: text, but still round-trips.
        let big = "18446744073709551616";
        assert_eq!(Version::parse(big).as_string(), big);
        assert_eq!(Version::parse(big).as_u64(), None);
    }

    #[test]
    fn text_versions() {
        let v: Version = "\"abc\"".into();
        assert_eq!(v, Version::from(String::from("\"abc\"")));
        assert_eq!(format!("{v:?}"), "Version(\"abc\")");
        assert!(!v.is_empty());
        assert!(Version::empty().is_empty());
        assert_eq!(Version::parse(""), Version::empty());
        assert!(Version::parse("").is_empty());
        assert_eq!(Version::empty().as_string(), "");
        assert_eq!(Version::empty().as_u64(), None);
        assert_ne!(Version::empty(), Version::from(0));
    }
}
