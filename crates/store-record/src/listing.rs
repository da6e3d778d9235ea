//! Listing records: one backend listing, whose sizes tell the records that never expire;
//! only the others' envelope headers are read, several at once, handed on in key order.

use std::future::ready;

use futures::stream::{BoxStream, Stream, StreamExt};
use store_core::{Backend, GlobPattern, Key, ListOptions, Result};

use crate::envelope;
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
    /// one), in key order: the key and what it holds for the operation `op`.
    ///
    /// The listing asks for keys and sizes only ([`ListOptions::keys_only`]), and a size
    /// that says "no expiry" ([`envelope::may_expire`]) is taken as a live record without
    /// a read. Every other key's envelope header is read — one ranged `get` each,
    /// [`READS_IN_FLIGHT`] at once — and an expired record is purged on the way (one
    /// conditional delete).
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
            .list(opts.with_keys_only(true))
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
                    let meta = item?;
                    if !envelope::may_expire(meta.size) {
                        return Ok((meta.key, Ok(Seen::Live)));
                    }
                    let seen = this.seen(op, &meta.key).await;
                    Ok((meta.key, seen))
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
