//! Listing records: one backend listing, then each listed key's envelope header, read
//! several at once and handed on in key order.

use std::future::ready;

use futures::stream::{BoxStream, Stream, StreamExt};
use store_core::{Backend, GlobPattern, Key, ListOptions, Result};

use crate::read::Head;
use crate::records::Records;

/// Header reads a listing keeps in flight at once.
const READS_IN_FLIGHT: usize = 16;

/// What a listing found at one key.
pub(crate) enum Seen {
    Live,
    /// Past its expiry; `purged` says whether this listing removed it.
    Expired {
        purged: bool,
    },
    /// Gone between the listing and the read.
    Absent,
}

impl<B: Backend> Records<B> {
    /// For each key of the backend listing `opts` that `pattern` matches (every key without
    /// one), in key order: the key and what its envelope header says, read for the
    /// operation `op` — one ranged `get` per key, [`READS_IN_FLIGHT`] at once. An expired
    /// record is purged on the way (one conditional delete).
    ///
    /// An item's outer error is the backend listing's; the inner one is that key's read.
    pub(crate) fn scan(
        &self,
        op: &'static str,
        opts: ListOptions,
        pattern: Option<GlobPattern>,
    ) -> impl Stream<Item = Result<(Key, Result<Seen>)>> + Send + 'static {
        let this = self.clone();
        self.backend()
            .list(opts)
            .filter(move |item| {
                let wanted = match (item, &pattern) {
                    (Ok(meta), Some(pattern)) => pattern.is_match(meta.key.as_str()),
                    _ => true,
                };
                ready(wanted)
            })
            .map(move |item| {
                let this = this.clone();
                async move {
                    let key = item?.key;
                    let seen = this.seen(op, &key).await;
                    Ok((key, seen))
                }
            })
            .buffered(READS_IN_FLIGHT)
    }

    async fn seen(&self, op: &'static str, key: &Key) -> Result<Seen> {
        Ok(match self.read_head(op, key).await? {
            None => Seen::Absent,
            Some(Head { expired: false, .. }) => Seen::Live,
            Some(Head {
                version,
                expired: true,
            }) => Seen::Expired {
                purged: self.purge(key, version).await,
            },
        })
    }

    /// The keys from `opts` matching `pattern` whose records are live, for `list_keys`: a
    /// key whose read fails (a `Corrupt` record, say) is an error item, and the keys after
    /// it follow.
    pub(crate) fn list_live(
        &self,
        opts: ListOptions,
        pattern: GlobPattern,
    ) -> BoxStream<'static, Result<Key>> {
        self.scan("list_keys", opts, Some(pattern))
            .filter_map(|item| {
                ready(match item {
                    Ok((key, Ok(Seen::Live))) => Some(Ok(key)),
                    Ok((_, Ok(Seen::Expired { .. } | Seen::Absent))) => None,
                    Ok((_, Err(e))) | Err(e) => Some(Err(e)),
                })
            })
            .boxed()
    }
}
