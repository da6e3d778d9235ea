//! Options for each operation, with `Default` and `with_*` builders.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::key::Key;
use crate::version::Version;

/// How a put treats an object that may already exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PutMode {
    /// Write whatever is there (the default).
    #[default]
    Overwrite,
    /// Write only if the key does not exist; otherwise [`Error::AlreadyExists`].
    Create,
    /// Write only if the key's current version is this one: compare-and-swap. Otherwise
    /// [`Error::Conflict`], or [`Error::NotFound`] if the key is absent.
    Update(Version),
}

/// Options for [`Backend::put`](crate::Backend::put) and [`Backend::writer`](crate::Backend::writer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// The put mode.
    pub mode: PutMode,
}

impl PutOptions {
    /// Sets the mode.
    pub fn with_mode(mut self, mode: PutMode) -> Self {
        self.mode = mode;
        self
    }

    /// `PutMode::Create`.
    pub fn create() -> Self {
        PutMode::Create.into()
    }

    /// `PutMode::Update(version)`.
    pub fn update(version: Version) -> Self {
        PutMode::Update(version).into()
    }
}

impl From<PutMode> for PutOptions {
    fn from(mode: PutMode) -> Self {
        PutOptions { mode }
    }
}

/// A byte range of an object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteRange {
    /// `start..end`; `end` past the object's end is clamped to it.
    Bounded(Range<u64>),
    /// From this offset to the end.
    From(u64),
    /// The last `n` bytes (the whole object if it is shorter).
    Suffix(u64),
}

impl ByteRange {
    /// The concrete range of an object of `size` bytes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `key` if the range is inverted or starts past the end.
    pub fn resolve(&self, key: &Key, size: u64) -> Result<Range<u64>> {
        let bad = |reason: String| Err(Error::invalid_input("get", Some(key), reason));
        match *self {
            ByteRange::Bounded(Range { start, end }) if start > end => {
                bad(format!("range {start}..{end} is inverted"))
            }
            ByteRange::Bounded(Range { start, .. }) | ByteRange::From(start) if start > size => bad(format!(
                "range starts at {start}, past the end of a {size}-byte object"
            )),
            ByteRange::Bounded(Range { start, end }) => Ok(start..end.min(size)),
            ByteRange::From(start) => Ok(start..size),
            ByteRange::Suffix(n) => Ok(size.saturating_sub(n)..size),
        }
    }
}

impl From<Range<u64>> for ByteRange {
    fn from(r: Range<u64>) -> Self {
        ByteRange::Bounded(r)
    }
}

impl From<std::ops::RangeFrom<u64>> for ByteRange {
    fn from(r: std::ops::RangeFrom<u64>) -> Self {
        ByteRange::From(r.start)
    }
}

/// Options for [`Backend::get`](crate::Backend::get).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// Read only this range.
    pub range: Option<ByteRange>,
    /// Fail with [`Error::Conflict`] unless the current version is this one.
    pub if_match: Option<Version>,
    /// Fail with [`Error::NotModified`] if the current version is this one.
    pub if_none_match: Option<Version>,
}

impl GetOptions {
    /// Reads only `range`.
    pub fn with_range(mut self, range: impl Into<ByteRange>) -> Self {
        self.range = Some(range.into());
        self
    }

    /// Requires the current version to be `v`.
    pub fn with_if_match(mut self, v: Version) -> Self {
        self.if_match = Some(v);
        self
    }

    /// Skips the read if the current version is `v`.
    pub fn with_if_none_match(mut self, v: Version) -> Self {
        self.if_none_match = Some(v);
        self
    }

    /// Checks the conditions against the current version, in the order HTTP does
    /// (`if_match` first). Backends call this so that every backend answers alike.
    pub fn check(&self, key: &Key, current: &Version) -> Result<()> {
        if let Some(want) = &self.if_match
            && want != current
        {
            return Err(Error::Conflict {
                op: "get",
                key: key.to_string(),
                expected: Some(want.clone()),
                actual: Some(current.clone()),
            });
        }
        if self.if_none_match.as_ref() == Some(current) {
            return Err(Error::NotModified {
                op: "get",
                key: key.to_string(),
            });
        }
        Ok(())
    }
}

/// Options for [`Backend::delete`](crate::Backend::delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeleteOptions {
    /// Delete only if the current version is this one; otherwise [`Error::Conflict`].
    pub if_match: Option<Version>,
}

impl DeleteOptions {
    /// Deletes only if the current version is `v`.
    pub fn with_if_match(mut self, v: Version) -> Self {
        self.if_match = Some(v);
        self
    }
}

/// Options for [`Backend::list`](crate::Backend::list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// List only keys starting with this plain string (not necessarily a whole segment:
    /// `"log"` matches `"logs/a"` and `"logbook"`).
    pub prefix: Option<String>,
    /// List only keys strictly greater than this one (pagination).
    pub start_after: Option<String>,
    /// The caller needs each object's key, size and modification time, not its version.
    ///
    /// A backend whose listing does not carry versions, and would need a request per object
    /// to learn them (`CloudStore` with write ids: one HEAD each), then skips those requests
    /// and reports [`Version::empty`] — which matches no stored object, so a conditional
    /// write from it fails with `Conflict`. Backends whose listings carry versions anyway
    /// report them as usual. Default `false`: every listed version is the object's own.
    pub keys_only: bool,
}

impl ListOptions {
    /// Only keys starting with `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Only keys strictly after `key`.
    pub fn with_start_after(mut self, key: impl Into<String>) -> Self {
        self.start_after = Some(key.into());
        self
    }

    /// Sets [`keys_only`](Self::keys_only): versions may be left out (as
    /// [`Version::empty`]) where they would cost a request per object.
    pub fn with_keys_only(mut self, keys_only: bool) -> Self {
        self.keys_only = keys_only;
        self
    }

    /// Whether `key` belongs in this listing.
    pub fn matches(&self, key: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.start_after.as_deref().is_none_or(|s| key > s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve() {
        let k = Key::new("k").unwrap();
        assert_eq!(ByteRange::from(2..5).resolve(&k, 10).unwrap(), 2..5);
        assert_eq!(ByteRange::from(2..50).resolve(&k, 10).unwrap(), 2..10);
        assert_eq!(ByteRange::from(10..12).resolve(&k, 10).unwrap(), 10..10);
        assert_eq!(ByteRange::from(3..).resolve(&k, 10).unwrap(), 3..10);
        assert_eq!(ByteRange::Suffix(4).resolve(&k, 10).unwrap(), 6..10);
        assert_eq!(ByteRange::Suffix(40).resolve(&k, 10).unwrap(), 0..10);
        let e = ByteRange::from(11..12).resolve(&k, 10).unwrap_err();
        assert!(
            e.to_string().contains("past the end") && e.to_string().contains("\"k\""),
            "{e}"
        );
        #[allow(clippy::reversed_empty_ranges)]
        let e = ByteRange::Bounded(5..2).resolve(&k, 10).unwrap_err();
        assert!(e.to_string().contains("inverted"), "{e}");
        assert!(ByteRange::From(11).resolve(&k, 10).is_err());
    }

    #[test]
    fn listings_want_versions_unless_told_otherwise() {
        let opts = ListOptions::default().with_prefix("a");
        assert!(!opts.keys_only);
        let keys_only = opts.clone().with_keys_only(true);
        assert!(keys_only.keys_only);
        // Which keys belong is the same either way.
        assert_eq!(keys_only.matches("ab"), opts.matches("ab"));
        assert_eq!(keys_only.matches("b"), opts.matches("b"));
    }

    #[test]
    fn get_conditions() {
        let k = Key::new("k").unwrap();
        let v1 = Version::from(1);
        let v2 = Version::from(2);
        assert!(GetOptions::default().check(&k, &v1).is_ok());
        assert!(
            GetOptions::default()
                .with_if_match(v1.clone())
                .check(&k, &v1)
                .is_ok()
        );
        let e = GetOptions::default()
            .with_if_match(v2.clone())
            .check(&k, &v1)
            .unwrap_err();
        assert!(e.is_conflict());
        let e = GetOptions::default()
            .with_if_none_match(v1.clone())
            .check(&k, &v1)
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotModified);
        assert!(
            GetOptions::default()
                .with_if_none_match(v2)
                .check(&k, &v1)
                .is_ok()
        );
    }

    #[test]
    fn list_matching() {
        let o = ListOptions::default().with_prefix("a/").with_start_after("a/b");
        assert!(!o.matches("a/a") && !o.matches("a/b") && o.matches("a/c") && !o.matches("b"));
        assert!(ListOptions::default().matches("anything"));
    }

    #[test]
    fn put_options_builders() {
        assert_eq!(PutOptions::default().mode, PutMode::Overwrite);
        assert_eq!(PutOptions::create().mode, PutMode::Create);
        assert_eq!(PutOptions::update(3.into()).mode, PutMode::Update(3.into()));
        assert_eq!(
            PutOptions::default().with_mode(PutMode::Create),
            PutOptions::create()
        );
        assert_eq!(
            DeleteOptions::default().with_if_match(1.into()).if_match,
            Some(1.into())
        );
    }
}
