//! Validated object keys.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, Result};

/// The longest key accepted, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// A validated object key: `/`-separated, non-empty segments.
///
/// Every backend accepts every valid `Key`, so validation happens once, here, and a key that
/// would mean something surprising on some backend (a path escape such as `a/../b`, an empty
/// segment, a control character) is refused up front with [`Error::InvalidKey`] naming the key
/// and the rule it breaks.
///
/// The rules:
/// - 1 to [`MAX_KEY_LEN`] bytes of UTF-8;
/// - no leading or trailing `/`, no empty segment (`a//b`);
/// - no segment equal to `.` or `..`;
/// - no NUL or other control character, no backslash.
///
/// Cloning is cheap (a reference count). Keys order by their bytes, which is also the order
/// of every listing.
///
/// ```
/// use store_core::Key;
///
/// let key = Key::new("logs/2026/11/22.txt")?;
/// assert_eq!(key.segments().collect::<Vec<_>>(), ["logs", "2026", "11", "22.txt"]);
/// assert_eq!(key.parent().unwrap().as_str(), "logs/2026/11");
/// assert_eq!(key.parent().unwrap().join("23.txt")?.as_str(), "logs/2026/11/23.txt");
///
/// assert!(Key::new("../etc/passwd").is_err());
/// assert!(Key::new("a//b").is_err());
/// # Ok::<(), store_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(Arc<str>);

/// Ordered by text, byte by byte (the order of listings). Clones of one key share their
/// text and compare equal without reading it, as they already do for `==` (`Arc`'s own
/// fast path): a lookup with the key an entry was stored under is a pointer comparison.
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Key {
    /// Validates `key` and wraps it.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] naming the key and the broken rule.
    pub fn new(key: impl AsRef<str>) -> Result<Self> {
        let key = key.as_ref();
        validate(key).map_err(|reason| Error::InvalidKey {
            key: key.to_owned(),
            reason,
        })?;
        Ok(Key(Arc::from(key)))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated segments, in order (never empty).
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0.split('/')
    }

    /// An index in `0..n` spread by the key's bytes, for striped locks and tables inside
    /// one process (FxHash: cheap, not flood-resistant — a collision only shares a stripe —
    /// and not stable across builds, so never part of anything stored). `n` must not be 0.
    #[inline]
    pub fn stripe(&self, n: usize) -> usize {
        let mut hasher = rustc_hash::FxHasher::default();
        std::hash::Hasher::write(&mut hasher, self.0.as_bytes());
        (std::hash::Hasher::finish(&hasher) % n as u64) as usize
    }

    /// The last segment (the "file name").
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The key without its last segment, or `None` for a single-segment key.
    pub fn parent(&self) -> Option<Key> {
        self.0.rfind('/').map(|i| Key(Arc::from(&self.0[..i])))
    }

    /// Appends one or more `/`-separated segments.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if the result is not a valid key.
    pub fn join(&self, rest: impl AsRef<str>) -> Result<Key> {
        Key::new(format!("{}/{}", self.0, rest.as_ref()))
    }

    /// True if this key starts with the plain string `prefix` (as `ListOptions::prefix` uses it).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

/// Why a key is refused, or `Ok`. Every call of every backend validates its key, so this
/// is on the hot path: printable ASCII takes a vectorised scan plus a split into segments,
/// anything else one careful pass over the bytes.
fn validate(key: &str) -> std::result::Result<(), &'static str> {
    let bytes = key.as_bytes();
    match bytes {
        [] => return Err("key is empty"),
        _ if bytes.len() > MAX_KEY_LEN => return Err("key is longer than 1024 bytes"),
        [b'/', ..] => return Err("key starts with '/'"),
        [.., b'/'] => return Err("key ends with '/'"),
        _ => {}
    }
    // Almost every key is printable ASCII without a backslash: a branch-free scan the
    // compiler vectorises, then only the segments are left to check.
    let unusual = bytes
        .iter()
        .fold(false, |acc, &b| acc | !(0x20..0x7F).contains(&b) | (b == b'\\'));
    if !unusual {
        return key
            .split('/')
            .find_map(|segment| check_segment(segment.as_bytes()))
            .map_or(Ok(()), Err);
    }
    let mut segment_start = 0;
    let mut control = None;
    let mut backslash = false;
    let mut segment_error = None;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => control = control.or(Some("key contains a NUL character")),
            // C0 controls and DEL are single bytes; C1 controls (U+0080..=U+009F) are
            // encoded as 0xC2 0x80..=0x9F.
            0x01..=0x1F | 0x7F => control = control.or(Some("key contains a control character")),
            0x80..=0x9F if i > 0 && bytes[i - 1] == 0xC2 => {
                control = control.or(Some("key contains a control character"))
            }
            b'\\' => backslash = true,
            b'/' => {
                segment_error = segment_error.or(check_segment(&bytes[segment_start..i]));
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    segment_error = segment_error.or(check_segment(&bytes[segment_start..]));
    // The order of precedence is fixed so each key gets one stable reason.
    if let Some(reason) = control {
        return Err(reason);
    }
    if backslash {
        return Err("key contains a backslash");
    }
    segment_error.map_or(Ok(()), Err)
}

fn check_segment(segment: &[u8]) -> Option<&'static str> {
    match segment {
        b"" => Some("key has an empty segment ('//')"),
        b"." => Some("key has a '.' segment"),
        b".." => Some("key has a '..' segment"),
        _ => None,
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Sound because `Key`'s Eq/Ord/Hash are exactly those of the underlying `str`.
impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl FromStr for Key {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Key::new(s)
    }
}

impl TryFrom<&str> for Key {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Key::new(s)
    }
}

impl TryFrom<String> for Key {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Key::new(s)
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stripes_are_in_range_stable_and_spread() {
        let keys: Vec<Key> = (0..1000).map(|i| Key::new(format!("k/{i}")).unwrap()).collect();
        let mut used = [false; 64];
        for k in &keys {
            let s = k.stripe(64);
            assert_eq!(s, k.clone().stripe(64));
            used[s] = true;
        }
        assert!(used.iter().filter(|u| **u).count() > 48);
        assert_eq!(keys[0].stripe(1), 0);
    }

    /// The rules written the obvious way, to check the single-pass validator against.
    fn reference(key: &str) -> std::result::Result<(), &'static str> {
        if key.is_empty() {
            return Err("key is empty");
        }
        if key.len() > MAX_KEY_LEN {
            return Err("key is longer than 1024 bytes");
        }
        if key.starts_with('/') {
            return Err("key starts with '/'");
        }
        if key.ends_with('/') {
            return Err("key ends with '/'");
        }
        if let Some(c) = key.chars().find(|c| c.is_control()) {
            return Err(if c == '\0' {
                "key contains a NUL character"
            } else {
                "key contains a control character"
            });
        }
        if key.contains('\\') {
            return Err("key contains a backslash");
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err("key has an empty segment ('//')"),
                "." => return Err("key has a '.' segment"),
                ".." => return Err("key has a '..' segment"),
                _ => {}
            }
        }
        Ok(())
    }

    proptest! {
        /// The pointer shortcut of `Ord` changes no answer: keys order as their text does,
        /// whether they share an allocation or not.
        #[test]
        fn order_is_the_order_of_the_text(a in "[ab/]{1,4}", b in "[ab/]{1,4}") {
            if let (Ok(ka), Ok(kb)) = (Key::new(&a), Key::new(&b)) {
                prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
                prop_assert_eq!(ka.partial_cmp(&kb), Some(a.cmp(&b)));
                prop_assert_eq!(ka.cmp(&ka.clone()), std::cmp::Ordering::Equal);
                prop_assert_eq!(ka.cmp(&Key::new(&a).unwrap()), std::cmp::Ordering::Equal);
            }
        }

        #[test]
        fn single_pass_validation_agrees_with_the_reference(
            key in "([a./\\\\\u{0}\u{1f}\u{7f}\u{80}\u{9f}\u{a0}é€😀]|\\.\\.|//){0,12}"
        ) {
            prop_assert_eq!(validate(&key), reference(&key), "key {:?}", key);
        }

        /// Printable ASCII, weighted towards `/` and `.`: the fast path.
        #[test]
        fn printable_ascii_keys_agree_with_the_reference(key in "([ -\\[\\]-~]|\\.|\\.\\.|/){1,40}") {
            prop_assert_eq!(validate(&key), reference(&key), "key {:?}", key);
        }

        /// ASCII with the characters that leave the fast path (backslash, 0x1F, 0x7F).
        #[test]
        fn ascii_keys_agree_with_the_reference(key in "([a./ ~\u{1f}\u{7f}]|\\.\\.|//|\\\\){0,16}") {
            prop_assert_eq!(validate(&key), reference(&key), "key {:?}", key);
        }

        #[test]
        fn arbitrary_strings_agree_with_the_reference(key in any::<String>()) {
            prop_assert_eq!(validate(&key), reference(&key), "key {:?}", key);
        }
    }

    fn reason(s: &str) -> String {
        match Key::new(s) {
            Err(Error::InvalidKey { key, reason }) => {
                assert_eq!(key, s, "the error must name the offending key");
                reason.to_string()
            }
            other => panic!("{s:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn accepts_ordinary_keys() {
        for ok in [
            "a",
            "a/b/c",
            "with space/ünïcödé/😀",
            "...",
            ".hidden",
            "a.b/..c/d..",
            "-",
            "x=1&y=2",
        ] {
            assert_eq!(Key::new(ok).unwrap().as_str(), ok);
        }
        let max = "k".repeat(MAX_KEY_LEN);
        assert_eq!(Key::new(&max).unwrap().as_str().len(), MAX_KEY_LEN);
    }

    #[test]
    fn refuses_each_rule_with_its_reason() {
        assert_eq!(reason(""), "key is empty");
        assert_eq!(
            reason(&"k".repeat(MAX_KEY_LEN + 1)),
            "key is longer than 1024 bytes"
        );
        assert_eq!(reason("/a"), "key starts with '/'");
        assert_eq!(reason("/"), "key starts with '/'");
        assert_eq!(reason("a/"), "key ends with '/'");
        assert_eq!(reason("a//b"), "key has an empty segment ('//')");
        assert_eq!(reason("."), "key has a '.' segment");
        assert_eq!(reason("a/./b"), "key has a '.' segment");
        assert_eq!(reason(".."), "key has a '..' segment");
        assert_eq!(reason("a/../../etc/passwd"), "key has a '..' segment");
        assert_eq!(reason("a/.."), "key has a '..' segment");
        assert_eq!(reason("a\0b"), "key contains a NUL character");
        assert_eq!(reason("a\nb"), "key contains a control character");
        assert_eq!(reason("a\u{7f}"), "key contains a control character");
        assert_eq!(reason("a\\b"), "key contains a backslash");
    }

    #[test]
    fn multibyte_length_counts_bytes() {
        // 342 × 3-byte characters = 1026 bytes: over the limit though only 342 chars.
        assert_eq!(reason(&"€".repeat(342)), "key is longer than 1024 bytes");
        assert!(Key::new("€".repeat(341)).is_ok());
    }

    #[test]
    fn error_message_names_key_and_reason() {
        let msg = Key::new("a//b").unwrap_err().to_string();
        assert!(msg.contains("a//b") && msg.contains("empty segment"), "{msg}");
    }

    #[test]
    fn segments_parent_join_name() {
        let k = Key::new("a/b/c").unwrap();
        assert_eq!(k.segments().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(k.name(), "c");
        assert_eq!(k.parent().unwrap().as_str(), "a/b");
        assert_eq!(k.parent().unwrap().parent().unwrap().as_str(), "a");
        assert!(k.parent().unwrap().parent().unwrap().parent().is_none());
        assert_eq!(Key::new("solo").unwrap().name(), "solo");
        assert_eq!(k.join("d/e").unwrap().as_str(), "a/b/c/d/e");
        assert!(k.join("../x").is_err());
        assert!(k.join("").is_err());
    }

    #[test]
    fn conversions_and_ordering() {
        let k: Key = "b".parse().unwrap();
        assert_eq!(Key::try_from("b").unwrap(), k);
        assert_eq!(Key::try_from(String::from("b")).unwrap(), k);
        assert!("a/".parse::<Key>().is_err());
        assert_eq!(String::from(k.clone()), "b");
        assert_eq!(format!("{k} {k:?}"), "b \"b\"");
        let mut keys = vec![
            Key::new("b").unwrap(),
            Key::new("a/b").unwrap(),
            Key::new("a").unwrap(),
        ];
        keys.sort();
        assert_eq!(
            keys.iter().map(Key::as_str).collect::<Vec<_>>(),
            ["a", "a/b", "b"]
        );
        let set: std::collections::BTreeSet<Key> = keys.into_iter().collect();
        assert!(set.contains("a/b"));
        assert!(k.starts_with("") && k.starts_with("b") && !k.starts_with("bb"));
    }
}
