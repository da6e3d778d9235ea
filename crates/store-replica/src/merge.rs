//! The listing of a replica: the sorted, de-duplicated union of its sync stores' listings.
//!
//! The seed merged by advancing whichever store had the smaller key and lost keys when the
//! stores overlapped unevenly. Here every store keeps its own head; each step emits the
//! smallest key among the heads and advances *every* store that holds it.

use futures::stream::{self, BoxStream, StreamExt};
use store_core::{Meta, Result};

use crate::stripes::foreign;

struct Merge {
    sources: Vec<BoxStream<'static, Result<Meta>>>,
    heads: Vec<Option<Meta>>,
    exhausted: Vec<bool>,
}

/// Merges ascending listings. A key held by the primary (source 0) is reported with the
/// primary's metadata; a key only secondaries hold carries a [`foreign`] version. The first
/// error from any source ends the listing.
pub(crate) fn union(sources: Vec<BoxStream<'static, Result<Meta>>>) -> BoxStream<'static, Result<Meta>> {
    let n = sources.len();
    let state = Merge {
        sources,
        heads: vec![None; n],
        exhausted: vec![false; n],
    };
    stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        for i in 0..st.sources.len() {
            if st.heads[i].is_none() && !st.exhausted[i] {
                match st.sources[i].next().await {
                    Some(Ok(meta)) => st.heads[i] = Some(meta),
                    Some(Err(e)) => return Some((Err(e), None)),
                    None => st.exhausted[i] = true,
                }
            }
        }
        let smallest = st.heads.iter().flatten().map(|m| m.key.clone()).min()?;
        let mut winner: Option<(usize, Meta)> = None;
        for (i, head) in st.heads.iter_mut().enumerate() {
            if head.as_ref().is_some_and(|m| m.key == smallest) {
                let meta = head.take()?;
                if winner.is_none() {
                    winner = Some((i, meta));
                }
            }
        }
        let (i, mut meta) = winner?;
        if i != 0 {
            meta.version = foreign(i, &meta.version);
        }
        Some((Ok(meta), Some(st)))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use futures::TryStreamExt;
    use store_core::{Error, Key, Version};

    use super::*;

    fn listing(keys: &[(&str, u64)]) -> BoxStream<'static, Result<Meta>> {
        let metas: Vec<Result<Meta>> = keys
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

    async fn keys_of(s: BoxStream<'static, Result<Meta>>) -> Vec<(String, String)> {
        s.map_ok(|m| (m.key.to_string(), m.version.to_string()))
            .try_collect()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn uneven_overlap_keeps_every_key() {
        // The seed's case: A = {a, b}, B = {a} must list [a, b], in either order.
        let ab = || listing(&[("a", 1), ("b", 2)]);
        let a = || listing(&[("a", 9)]);
        let got = keys_of(union(vec![ab(), a()])).await;
        assert_eq!(got, [("a".into(), "1".into()), ("b".into(), "2".into())]);
        let got = keys_of(union(vec![a(), ab()])).await;
        assert_eq!(
            got,
            [("a".into(), "9".into()), ("b".into(), "~replica1:2".into())]
        );
    }

    #[tokio::test]
    async fn interleaved_sources_merge_in_order() {
        let got = keys_of(union(vec![
            listing(&[("b", 1), ("d", 1)]),
            listing(&[("a", 2), ("d", 2), ("e", 2)]),
            listing(&[]),
            listing(&[("c", 3), ("e", 3), ("f", 3)]),
        ]))
        .await;
        let keys: Vec<_> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(got[3].1, "1", "the primary's metadata wins for a shared key");
    }

    #[tokio::test]
    async fn an_error_ends_the_listing() {
        let failing = stream::iter(vec![Err(Error::Closed { op: "list" })]).boxed();
        let items: Vec<_> = union(vec![listing(&[("a", 1)]), failing]).collect().await;
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }
}
