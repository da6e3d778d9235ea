//! `Connection`: the etcd client shared by the stores, with timeouts, retries and the key
//! prefix.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, KvClient, LeaseClient, WatchClient};
use store_core::{Error, Key, Result};

use crate::error;
use crate::options::EtcdOptions;

/// Room for keys and framing on top of the largest object in one gRPC message.
const MESSAGE_SLACK: usize = 1 << 20;

/// The first pause before retrying a read after a retryable failure; it doubles up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(20);
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A connected etcd client and the options it was made with. Cheap to clone: the gRPC
/// channel is shared, and it reconnects by itself (to any live endpoint) after a connection
/// is lost.
#[derive(Clone)]
pub(crate) struct Connection {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    opts: EtcdOptions,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("endpoints", &self.opts.endpoints)
            .field("key_prefix", &self.opts.key_prefix)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `opts.endpoints`. The channel connects lazily, so this succeeds even if
    /// no member answers yet; operations then retry (reads) or fail retryably (writes).
    pub(crate) async fn connect(opts: EtcdOptions) -> Result<Self> {
        if opts.endpoints.is_empty() {
            return Err(Error::invalid_input("connect", None, "no etcd endpoints given"));
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            // A member cut off from the leader cancels our watches instead of leaving them
            // silent, so a waiter reconnects to a member that still has one.
            .with_require_leader(true);
        let client = Client::connect(&opts.endpoints, Some(connect))
            .await
            .map_err(|e| error::map("connect", None, e))?;
        Ok(Self::from_client(client, opts))
    }

    /// Uses an existing client.
    pub(crate) fn from_client(client: Client, opts: EtcdOptions) -> Self {
        let limit = opts.max_object_size.saturating_add(MESSAGE_SLACK).max(4 << 20);
        Connection {
            kv: client
                .kv_client()
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            watch: client.watch_client().max_decoding_message_size(limit),
            lease: client.lease_client(),
            opts,
        }
    }

    /// The same connection under another key prefix.
    pub(crate) fn with_key_prefix(&self, prefix: String) -> Self {
        let mut c = self.clone();
        c.opts.key_prefix = prefix;
        c
    }

    pub(crate) fn options(&self) -> &EtcdOptions {
        &self.opts
    }

    pub(crate) fn kv(&self) -> KvClient {
        self.kv.clone()
    }

    pub(crate) fn watch_client(&self) -> WatchClient {
        self.watch.clone()
    }

    pub(crate) fn lease(&self) -> LeaseClient {
        self.lease.clone()
    }

    /// The etcd key of `key`.
    pub(crate) fn etcd_key(&self, key: &Key) -> Vec<u8> {
        self.etcd_key_str(key.as_str())
    }

    /// The etcd key of a (possibly partial) key string.
    pub(crate) fn etcd_key_str(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.opts.key_prefix.len() + key.len());
        k.extend_from_slice(self.opts.key_prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The store key of an etcd key from a listing of our prefix. A key some other program
    /// wrote that is not a valid [`Key`] is `Corrupt`.
    pub(crate) fn store_key(&self, etcd_key: &[u8]) -> Result<Key> {
        let rest = etcd_key
            .strip_prefix(self.opts.key_prefix.as_bytes())
            .unwrap_or(etcd_key);
        let text = std::str::from_utf8(rest).map_err(|_| Error::Corrupt {
            key: String::from_utf8_lossy(etcd_key).into_owned(),
            reason: "etcd key is not UTF-8".into(),
        })?;
        Key::new(text).map_err(|e| Error::Corrupt {
            key: text.to_owned(),
            reason: format!("etcd key is not a valid store key: {e}"),
        })
    }

    /// Runs an idempotent request, retrying retryable failures (a lost connection, an
    /// election) with backoff until the request timeout has passed.
    pub(crate) async fn read<T, F, Fut>(&self, op: &'static str, key: Option<&str>, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let limit = self.opts.request_timeout;
        let deadline = Instant::now() + limit;
        let mut pause = FIRST_RETRY_PAUSE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, call()).await {
                Err(_) => return Err(timeout(op, key, limit)),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if error::is_retryable(&e) && Instant::now() + pause < deadline => {
                    tracing::debug!(op, key, error = %e, "etcd read failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                Ok(Err(e)) => return Err(error::map(op, key, e)),
            }
        }
    }

    /// Runs a request that changes something, once, under the request timeout. It is not
    /// retried here: after a lost connection nobody can tell whether it was applied, so the
    /// caller (who can re-read) decides. Its error says `is_retryable()`.
    pub(crate) async fn write<T, Fut>(&self, op: &'static str, key: Option<&str>, call: Fut) -> Result<T>
    where
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let limit = self.opts.request_timeout;
        match tokio::time::timeout(limit, call).await {
            Err(_) => Err(timeout(op, key, limit)),
            Ok(r) => r.map_err(|e| error::map(op, key, e)),
        }
    }
}

fn timeout(op: &'static str, key: Option<&str>, after: Duration) -> Error {
    Error::Timeout {
        op,
        key: key.map(str::to_owned),
        after,
    }
}

/// The end of the etcd range of keys starting with `prefix` (etcd's convention: the prefix
/// with its last byte below 0xff incremented; `"\0"` for "to the end of the keyspace").
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            let n = end.len();
            end[n - 1] = last + 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// A revision from etcd as a version.
pub(crate) fn version_of(revision: i64) -> store_core::Version {
    store_core::Version::from(u64::try_from(revision).unwrap_or(0))
}

/// A version as an etcd revision to compare with; `-1` (never matching) for versions etcd
/// cannot have produced.
pub(crate) fn revision_of(v: &store_core::Version) -> i64 {
    v.as_u64().and_then(|n| i64::try_from(n).ok()).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn versions_and_revisions() {
        assert_eq!(revision_of(&version_of(42)), 42);
        assert_eq!(revision_of(&store_core::Version::from("etag")), -1);
        assert_eq!(revision_of(&store_core::Version::from(u64::MAX)), -1);
        assert_eq!(revision_of(&store_core::Version::empty()), -1);
    }
}
