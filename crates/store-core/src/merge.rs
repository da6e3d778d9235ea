//! The k-way merge of sorted listings.

use futures::future::join_all;
use futures::stream::{self, BoxStream, StreamExt};

use crate::error::Error;
use crate::meta::Meta;

/// One step of [`merge_listings`].
#[derive(Debug)]
pub enum Merged {
    /// The next key in ascending order, with what each source listed for it: entry `i` is
    /// source `i`'s metadata, `None` where that source does not hold the key (or has
    /// failed or ended). At least one entry is `Some`.
    Key(Vec<Option<Meta>>),
    /// Source `i` failed with this error; it contributes nothing more, and the merge goes on
    /// with the others. A caller that wants the first error to end the listing stops here.
    SourceFailed(usize, Error),
}

impl Merged {
    /// The first source's metadata for the key (the lowest index holding it), with that
    /// index.
    pub fn first(&self) -> Option<(usize, &Meta)> {
        match self {
            Merged::Key(metas) => metas.iter().enumerate().find_map(|(i, m)| Some((i, m.as_ref()?))),
            Merged::SourceFailed(..) => None,
        }
    }
}

/// Merges listings that are each in ascending key order into one ascending listing of
/// their union, with each key once.
///
/// Every source keeps its own head: each step yields the smallest key among the heads and
/// advances *every* source that holds it, so sources that overlap unevenly lose nothing.
/// Sources whose heads are used up are pulled concurrently, so a merge over remote stores
/// waits for the slowest page, not the sum of them. It is the listing of fan-outs and
/// replicas, and of any backend that keeps its objects in several sorted places.
///
/// ```
/// use futures::{StreamExt, stream};
/// use store_core::{Key, Merged, Meta, Version, merge_listings};
///
/// fn meta(key: &str) -> store_core::Result<Meta> {
///     Ok(Meta { key: Key::new(key)?, size: 0, version: Version::from(1), modified: std::time::SystemTime::UNIX_EPOCH })
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let a = stream::iter(vec![meta("a"), meta("c")]).boxed();
/// let b = stream::iter(vec![meta("b"), meta("c")]).boxed();
/// let keys: Vec<(String, usize)> = merge_listings(vec![a, b])
///     .filter_map(|step| async move {
///         let (_, m) = step.first()?;
///         let holders = match &step { Merged::Key(metas) => metas.iter().flatten().count(), _ => 0 };
///         Some((m.key.to_string(), holders))
///     })
///     .collect()
///     .await;
/// assert_eq!(keys, [("a".to_string(), 1), ("b".to_string(), 1), ("c".to_string(), 2)]);
/// # }
/// ```
pub fn merge_listings(sources: Vec<BoxStream<'static, crate::Result<Meta>>>) -> BoxStream<'static, Merged> {
    let n = sources.len();
    let state = Merge {
        sources: sources.into_iter().map(Some).collect(),
        heads: vec![None; n],
        failures: Vec::new(),
    };
    stream::unfold(state, Merge::step).boxed()
}

struct Merge {
    /// `None` once a source has ended or failed.
    sources: Vec<Option<BoxStream<'static, crate::Result<Meta>>>>,
    heads: Vec<Option<Meta>>,
    /// Failures seen but not yet yielded.
    failures: Vec<(usize, Error)>,
}

impl Merge {
    async fn step(mut self) -> Option<(Merged, Merge)> {
        let heads = &self.heads;
        let pulls = self
            .sources
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| heads[*i].is_none())
            .filter_map(|(i, s)| s.as_mut().map(|s| async move { (i, s.next().await) }));
        for (i, item) in join_all(pulls).await {
            match item {
                Some(Ok(meta)) => self.heads[i] = Some(meta),
                Some(Err(e)) => {
                    self.sources[i] = None;
                    self.failures.push((i, e));
                }
                None => self.sources[i] = None,
            }
        }
        if let Some((i, e)) = self.failures.pop() {
            return Some((Merged::SourceFailed(i, e), self));
        }
        let next = self.heads.iter().flatten().map(|m| &m.key).min()?.clone();
        let metas = self
            .heads
            .iter_mut()
            .map(|head| {
                if head.as_ref().is_some_and(|m| m.key == next) {
                    head.take()
                } else {
                    None
                }
            })
            .collect();
        Some((Merged::Key(metas), self))
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::{Key, Version};

    fn listing(keys: &[(&str, u64)]) -> BoxStream<'static, crate::Result<Meta>> {
        let metas: Vec<crate::Result<Meta>> = keys
            .iter()
            .map(|(k, v)| {
                Ok(Meta {
                    key: Key::new(k).unwrap(),
                    size: 0,
                    version: Version::from(*v),
                    modified: SystemTime::UNIX_EPOCH,
                })
            })
            .collect();
        stream::iter(metas).boxed()
    }

    /// Each step as (key, version of every source, "-" where absent), or "!i" for a failure.
    async fn steps(sources: Vec<BoxStream<'static, crate::Result<Meta>>>) -> Vec<String> {
        merge_listings(sources)
            .map(|step| match step {
                Merged::Key(metas) => {
                    let key = metas.iter().flatten().next().unwrap().key.to_string();
                    let versions: Vec<String> = metas
                        .iter()
                        .map(|m| m.as_ref().map_or("-".to_string(), |m| m.version.to_string()))
                        .collect();
                    format!("{key}:{}", versions.join(","))
                }
                Merged::SourceFailed(i, _) => format!("!{i}"),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn uneven_overlap_keeps_every_key() {
        // A = {a, b}, B = {a} lists [a, b] in either order (a merge that advanced only the
        // smaller head lost keys here).
        let ab = || listing(&[("a", 1), ("b", 2)]);
        let a = || listing(&[("a", 9)]);
        assert_eq!(steps(vec![ab(), a()]).await, ["a:1,9", "b:2,-"]);
        assert_eq!(steps(vec![a(), ab()]).await, ["a:9,1", "b:-,2"]);
    }

    #[tokio::test]
    async fn interleaved_sources_merge_in_order() {
        let got = steps(vec![
            listing(&[("b", 1), ("d", 1)]),
            listing(&[("a", 2), ("d", 2), ("e", 2)]),
            listing(&[]),
            listing(&[("c", 3), ("e", 3), ("f", 3)]),
        ])
        .await;
        assert_eq!(
            got,
            [
                "a:-,2,-,-",
                "b:1,-,-,-",
                "c:-,-,-,3",
                "d:1,2,-,-",
                "e:-,2,-,3",
                "f:-,-,-,3"
            ]
        );
        assert!(steps(vec![]).await.is_empty());
    }

    #[tokio::test]
    async fn a_failed_source_is_reported_once_and_the_rest_go_on() {
        let failing = || {
            stream::iter(vec![
                Ok(Meta {
                    key: Key::new("a").unwrap(),
                    size: 0,
                    version: Version::from(7),
                    modified: SystemTime::UNIX_EPOCH,
                }),
                Err(Error::Closed { op: "list" }),
            ])
            .boxed()
        };
        let got = steps(vec![listing(&[("a", 1), ("b", 1), ("c", 1)]), failing()]).await;
        assert_eq!(got, ["a:1,7", "!1", "b:1,-", "c:1,-"]);
    }
}
