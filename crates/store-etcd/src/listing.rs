//! Paged, ordered range reads: the listing under both stores.

use std::collections::VecDeque;

use etcd_client::{GetOptions, KeyValue};
use futures::stream::{self, BoxStream, StreamExt};
use store_core::Result;

use crate::connection::Connection;

/// Keys asked for per page. A page whose values are too large for one gRPC message is
/// retried with half as many keys, down to one.
const PAGE: i64 = 512;

/// The key-values in `[start, end)` in ascending key order, read a page at a time (each page
/// at the cluster's latest revision, so a long listing is not one snapshot; every key
/// present throughout appears exactly once).
pub(crate) fn range(
    conn: Connection,
    op: &'static str,
    start: Vec<u8>,
    end: Vec<u8>,
) -> BoxStream<'static, Result<KeyValue>> {
    struct State {
        conn: Connection,
        next: Option<Vec<u8>>,
        end: Vec<u8>,
        page: i64,
        buffered: VecDeque<KeyValue>,
    }
    let state = State {
        conn,
        next: Some(start),
        end,
        page: PAGE,
        buffered: VecDeque::new(),
    };
    stream::try_unfold(state, move |mut s| async move {
        loop {
            if let Some(kv) = s.buffered.pop_front() {
                return Ok(Some((kv, s)));
            }
            let Some(from) = s.next.take() else {
                return Ok(None);
            };
            let opts = GetOptions::new().with_range(s.end.clone()).with_limit(s.page);
            let got = s
                .conn
                .read(op, None, || {
                    let mut kv = s.conn.kv();
                    let (from, opts) = (from.clone(), opts.clone());
                    async move { kv.get(from, Some(opts)).await }
                })
                .await;
            let mut resp = match got {
                Ok(r) => r,
                // Too many large values for one message: ask for fewer.
                Err(e) if s.page > 1 && is_too_large(&e) => {
                    s.page /= 2;
                    s.next = Some(from);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let kvs = resp.take_kvs();
            if resp.more()
                && let Some(last) = kvs.last()
            {
                let mut after = last.key().to_vec();
                after.push(0);
                s.next = Some(after);
            }
            s.buffered.extend(kvs);
        }
    })
    .boxed()
}

fn is_too_large(e: &store_core::Error) -> bool {
    e.kind() == store_core::ErrorKind::InvalidInput
}
