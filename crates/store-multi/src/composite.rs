//! Composite versions: one [`Version`] naming the state of every backend's copy.
//!
//! Each backend numbers its own versions, so the version `Multi` hands out must name all
//! of them: `+<v0>|+<v1>|-` says backend 0 holds version `v0`, backend 1 holds `v1` and
//! backend 2 holds nothing. `?` marks a backend whose state is unknown (it failed to
//! answer, or its commit is still in flight). Backend versions are escaped (`\|`, `\\`), so
//! any version text round-trips.
//!
//! Because every component is a version its backend never reuses, a composite is never
//! reused either, and comparing composites compares every copy at once.

use std::fmt::Write as _;

use store_core::Version;

/// The state of one backend's copy, as recorded in a composite version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Component {
    /// The backend holds this version.
    Present(Version),
    /// The backend holds nothing at the key.
    Absent,
    /// Unknown: the backend failed to answer or is still committing.
    Unknown,
}

impl Component {
    /// The component as a backend-level "seen" version (`None` = absent), if known.
    pub(crate) fn as_seen(&self) -> Option<Option<&Version>> {
        match self {
            Component::Present(v) => Some(Some(v)),
            Component::Absent => Some(None),
            Component::Unknown => None,
        }
    }
}

/// Encodes one component per backend, in order, into one version.
pub(crate) fn encode(components: &[Component]) -> Version {
    let mut out = String::with_capacity(16 * components.len());
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        match c {
            Component::Present(v) => {
                out.push('+');
                match v.as_u64() {
                    // Digits need no escaping (and no text of their own).
                    Some(n) => {
                        let _ = write!(out, "{n}");
                    }
                    None => {
                        for ch in v.to_string().chars() {
                            if ch == '|' || ch == '\\' {
                                out.push('\\');
                            }
                            out.push(ch);
                        }
                    }
                }
            }
            Component::Absent => out.push('-'),
            Component::Unknown => out.push('?'),
        }
    }
    Version::parse(&out)
}

/// Decodes a version made by [`encode`] for `n` backends; `None` if it is not one (a
/// version this `Multi` never issued).
pub(crate) fn decode(version: &Version, n: usize) -> Option<Vec<Component>> {
    let text = version.to_string();
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => parts.last_mut()?.push(chars.next()?),
            '|' => parts.push(String::new()),
            c => parts.last_mut()?.push(c),
        }
    }
    if parts.len() != n {
        return None;
    }
    parts
        .into_iter()
        .map(|p| match p.as_str() {
            "-" => Some(Component::Absent),
            "?" => Some(Component::Unknown),
            _ => p.strip_prefix('+').map(|v| Component::Present(Version::parse(v))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn component() -> impl Strategy<Value = Component> {
        prop_oneof![
            any::<u64>().prop_map(|n| Component::Present(Version::from(n))),
            // Text versions, including the separator, the escape and the markers.
            "[-+?|\\\\a-z0-9\"]{0,8}".prop_map(|t| Component::Present(Version::parse(&t))),
            Just(Component::Absent),
            Just(Component::Unknown),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
        ))]

        #[test]
        fn any_components_round_trip(comps in proptest::collection::vec(component(), 1..6)) {
            let v = encode(&comps);
            prop_assert_eq!(decode(&Version::parse(&v.to_string()), comps.len()), Some(comps.clone()));
            // Decoding for another backend count never succeeds by accident.
            prop_assert_eq!(decode(&v, comps.len() + 1), None);
        }

        #[test]
        fn different_components_give_different_versions(
            a in proptest::collection::vec(component(), 3),
            b in proptest::collection::vec(component(), 3),
        ) {
            prop_assert_eq!(a == b, encode(&a) == encode(&b));
        }
    }

    #[test]
    fn round_trips_with_awkward_text() {
        let comps = vec![
            Component::Present(Version::from(42)),
            Component::Present(Version::parse("a|b\\c")),
            Component::Absent,
            Component::Unknown,
            Component::Present(Version::parse("-")),
        ];
        let v = encode(&comps);
        assert_eq!(v.to_string(), "+42|+a\\|b\\\\c|-|?|+-");
        assert_eq!(decode(&v, 5), Some(comps.clone()));
        assert_eq!(decode(&Version::parse(&v.to_string()), 5), Some(comps));
    }

    #[test]
    fn numeric_text_is_exact() {
        let short = vec![
            Component::Present(Version::from(0)),
            Component::Present(Version::from(u64::MAX)),
            Component::Absent,
            Component::Unknown,
            Component::Present(Version::from(907)),
        ];
        assert_eq!(encode(&short).to_string(), "+0|+18446744073709551615|-|?|+907");
        let long = vec![Component::Present(Version::from(u64::MAX)); 9];
        let text = ["+18446744073709551615"; 9].join("|");
        assert_eq!(encode(&long).to_string(), text);
        assert_eq!(decode(&encode(&long), 9), Some(long));
    }

    #[test]
    fn foreign_versions_do_not_decode() {
        assert_eq!(decode(&Version::empty(), 1), None);
        assert_eq!(decode(&Version::from(7), 1), None);
        assert_eq!(decode(&Version::parse("+1|+2"), 3), None);
        assert_eq!(decode(&Version::parse("+1|x"), 2), None);
        assert_eq!(decode(&Version::parse("+1\\"), 1), None);
        assert_eq!(
            decode(&Version::parse("+1"), 1),
            Some(vec![Component::Present(Version::from(1))])
        );
    }
}
