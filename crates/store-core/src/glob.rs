//! Glob patterns for key listings, with the literal prefix a backend can push down.

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

/// A compiled glob pattern over keys, as `RecordStore::list_keys` takes them, and the
/// literal prefix every matching key starts with, so a backend lists only that range
/// (one listing request for `logs/2026-*`, not a scan of the store).
///
/// Syntax (the `globset` crate's): `?` one character, `*` any run of characters *including*
/// `/`, `**` the same, `[abc]` / `[a-z]` / `[!x]` classes, `{a,b}` alternatives, `\`
/// escapes the next character. The whole key must match.
///
/// ```
/// use store_core::GlobPattern;
///
/// let p = GlobPattern::new("logs/2026-*.json")?;
/// assert_eq!(p.prefix(), "logs/2026-");
/// assert!(p.is_match("logs/2026-01/02.json"));
/// assert!(!p.is_match("logs/2025-12.json"));
/// assert!(GlobPattern::new("[").unwrap_err().to_string().contains("\"[\""));
/// # Ok::<(), store_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GlobPattern {
    matcher: GlobMatcher,
    prefix: String,
}

impl GlobPattern {
    /// Compiles `pattern`; [`Error::InvalidPattern`] naming it if it does not compile.
    pub fn new(pattern: &str) -> Result<GlobPattern> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::InvalidPattern {
                pattern: pattern.to_owned(),
                reason: e.kind().to_string(),
            })?;
        Ok(GlobPattern {
            matcher: glob.compile_matcher(),
            prefix: literal_prefix(pattern),
        })
    }

    /// Whether the whole `key` matches.
    pub fn is_match(&self, key: &str) -> bool {
        self.matcher.is_match(key)
    }

    /// A plain prefix every matching key starts with (possibly empty): the range to list.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// The characters of `pattern` before its first unescaped metacharacter, with escapes
/// resolved: `logs/2026-*` → `logs/2026-`, `a\*b?` → `a*b`.
///
/// Stopping early is always safe (a shorter prefix only reads more), so every character
/// with a meaning anywhere in the syntax ends the prefix, also `]`, `}` and `,`.
fn literal_prefix(pattern: &str) -> String {
    let mut prefix = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => prefix.push(escaped),
                None => break,
            },
            '*' | '?' | '[' | ']' | '{' | '}' | ',' => break,
            c => prefix.push(c),
        }
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefixes() {
        for (pattern, prefix) in [
            ("logs/2026-*", "logs/2026-"),
            ("exact/key", "exact/key"),
            ("*", ""),
            ("a\\*b?", "a*b"),
            ("a\\\\b*", "a\\b"),
            ("x/[ab]", "x/"),
            ("x/{a,b}", "x/"),
            ("x?y", "x"),
            ("dangling\\", "dangling"),
            ("", ""),
        ] {
            assert_eq!(literal_prefix(pattern), prefix, "pattern {pattern:?}");
        }
    }

    #[test]
    fn syntax() {
        let m = |p: &str, k: &str| GlobPattern::new(p).unwrap().is_match(k);
        assert!(m("a/*", "a/b/c"), "* crosses /");
        assert!(m("**", "a/b") && m("a/**", "a/b/c") && m("**/c", "a/b/c"));
        assert!(m("a?c", "abc") && !m("a?c", "ac"));
        assert!(m("[abc]x", "bx") && !m("[abc]x", "dx"));
        assert!(m("[a-c]x", "bx") && !m("[!b]x", "bx") && m("[!b]x", "cx"));
        assert!(m("{foo,bar}/z", "bar/z") && !m("{foo,bar}/z", "baz/z"));
        assert!(m("a\\*", "a*") && !m("a\\*", "ab"));
        assert!(!m("a", "ab") && !m("b", "ab"), "whole-key match");
    }

    #[test]
    fn invalid_patterns_name_themselves() {
        for bad in ["[", "a{b", "x[z-a]"] {
            let e = GlobPattern::new(bad).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidPattern { pattern, .. } if pattern == bad),
                "{bad:?}: {e}"
            );
        }
    }

    proptest! {
        /// The pushed-down prefix never hides a match.
        #[test]
        fn every_match_starts_with_the_prefix(
            pattern in "[ab/*?\\\\]{0,6}",
            key in "[ab/*?\\\\]{1,6}",
        ) {
            if let Ok(p) = GlobPattern::new(&pattern)
                && p.is_match(&key)
            {
                prop_assert!(key.starts_with(p.prefix()), "{pattern:?} matched {key:?}");
            }
        }
    }
}
