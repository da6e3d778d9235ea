//! Ordered listings: `SCAN` the keys under a prefix, sort them, then read their heads a
//! batch at a time. The listing under both stores.

use std::collections::VecDeque;

use futures::stream::{self, BoxStream, StreamExt};
use store_core::{Key, Result};

use crate::connection::{Connection, Head};

/// Keys `SCAN` is asked to visit per round trip.
const SCAN_COUNT: usize = 1000;
/// Heads read per script call while a listing is consumed.
const HEAD_BATCH: usize = 256;

/// `text` with the metacharacters of Redis's `MATCH` patterns escaped, so that it matches
/// only itself.
pub(crate) fn escape_match(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The store keys starting with `prefix` (a plain string), in ascending order, each once;
/// an item for a Redis key under the store's prefix that is not a valid store key is a
/// `Corrupt` error, in the place of its name.
///
/// `SCAN` walks the whole database (one round trip per [`SCAN_COUNT`] keys of it, whatever
/// the prefix) and returns names in no order, so every name under `prefix` is collected
/// and sorted before the first is handed on: memory and time grow with the number of keys
/// listed.
pub(crate) async fn sorted_keys(
    conn: &Connection,
    op: &'static str,
    prefix: &str,
) -> Result<Vec<Result<Key>>> {
    let pattern = format!(
        "{}*",
        escape_match(&format!("{}{prefix}", conn.options().key_prefix))
    );
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = conn
            .read(op, None, |mut c| {
                let pattern = &pattern;
                async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        names.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // A key may be returned twice (SCAN's guarantee is "at least once").
    names.sort_unstable();
    names.dedup();
    Ok(names.iter().filter_map(|name| conn.store_key(op, name)).collect())
}

/// For each of `keys`, in order, its head (`None` if it vanished since it was listed),
/// read [`HEAD_BATCH`] at a time as the stream is consumed. An error reading a batch ends
/// the stream; a value that is not one store-redis wrote is an error item in its place.
pub(crate) fn heads(
    conn: Connection,
    op: &'static str,
    keys: Vec<Result<Key>>,
) -> BoxStream<'static, Result<(Key, Option<Head>)>> {
    struct State {
        conn: Connection,
        keys: VecDeque<Result<Key>>,
        ready: VecDeque<Result<(Key, Option<Head>)>>,
        failed: bool,
    }
    let state = State {
        conn,
        keys: keys.into(),
        ready: VecDeque::new(),
        failed: false,
    };
    stream::unfold(state, move |mut s| async move {
        loop {
            if let Some(item) = s.ready.pop_front() {
                return Some((item, s));
            }
            if s.failed {
                return None;
            }
            // An invalid name is an error in its place; valid ones are read together.
            let mut batch = match s.keys.pop_front()? {
                Err(e) => return Some((Err(e), s)),
                Ok(first) => vec![first],
            };
            while batch.len() < HEAD_BATCH
                && let Some(Ok(_)) = s.keys.front()
            {
                if let Some(Ok(k)) = s.keys.pop_front() {
                    batch.push(k);
                }
            }
            match s.conn.heads(op, &batch).await {
                Ok(heads) => s
                    .ready
                    .extend(batch.into_iter().zip(heads).map(|(k, h)| h.map(|h| (k, h)))),
                Err(e) => {
                    s.failed = true;
                    s.ready.push_back(Err(e));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_metacharacters_are_escaped() {
        assert_eq!(escape_match("plain/key-1"), "plain/key-1");
        assert_eq!(escape_match("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
    }
}
