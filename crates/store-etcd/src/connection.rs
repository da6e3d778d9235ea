//! `Connection`: the etcd client shared by the stores, with timeouts, retries and the key
//! prefix.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, KvClient, LeaseClient, WatchClient};
use store_core::{Backoff, Error, Key, Result};

use crate::error;
use crate::options::EtcdOptions;

/// Room for keys and framing on top of the largest object in one gRPC message.
const MESSAGE_SLACK: usize = 1 << 20;

/// The pauses between tries of one request: from 20 ms doubling up to 500 ms, with full
/// jitter so that the clients of a member that went away do not come back in lock step.
/// [`Connection::send`] bounds it by the request timeout.
fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(20), Duration::from_millis(500)).with_jitter(true)
}

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

    /// Runs a request that only reads (or whose repetition is harmless, like granting a
    /// lease), retrying every retryable failure (a lost connection, a member that is down,
    /// an election) until the request timeout has passed.
    pub(crate) async fn read<T, F, Fut>(&self, op: &'static str, key: Option<&str>, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.send(op, key, Resend::Retryable, call).await
    }

    /// Runs a request that changes something. It is sent again only when it provably never
    /// left (connecting to the member failed), so it was applied exactly once or not at
    /// all; after a failure once sent, nobody can tell whether it was applied, and the
    /// error says that the outcome is unknown (`Error::is_outcome_unknown`) and
    /// `is_retryable()`, for the caller, who can re-read, to decide. One that never left
    /// fails with `Error::is_not_applied`.
    pub(crate) async fn write<T, F, Fut>(&self, op: &'static str, key: Option<&str>, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.send(op, key, Resend::NeverSent, call).await
    }

    /// The one retry loop under [`read`](Self::read) and [`write`](Self::write), bounded by
    /// the request timeout.
    ///
    /// A request that never left is sent again at once, up to once per other endpoint.
    /// The client's balancer picks a member at random for each request, and a member that
    /// is down stays among those it picks from (its refused connect fails the request at
    /// once), so with one member of three down each try reaches a live one two times in
    /// three. Past those tries at once, and after other retryable failures, tries are
    /// spaced by [`retry_backoff`]. A try that would start with no time left does not
    /// start: the last error is returned.
    async fn send<T, F, Fut>(
        &self,
        op: &'static str,
        key: Option<&str>,
        resend: Resend,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let limit = self.opts.request_timeout;
        let mut retries = retry_backoff().with_max_elapsed(limit).start();
        let mut at_once = self.opts.endpoints.len().saturating_sub(1);
        loop {
            let left = limit.saturating_sub(retries.elapsed());
            let e = match tokio::time::timeout(left, call()).await {
                Err(_) => return Err(timeout(op, key, limit, resend)),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
            };
            let unsent = error::never_sent(&e);
            let again = unsent || (resend == Resend::Retryable && error::is_retryable(&e));
            let fail = |e| match resend {
                Resend::Retryable => error::map(op, key, e),
                Resend::NeverSent => error::map_write(op, key, e),
            };
            if !again {
                return Err(fail(e));
            }
            tracing::debug!(op, key, error = %e, unsent, "etcd request failed; retrying");
            if unsent && at_once > 0 {
                at_once -= 1;
                continue;
            }
            // A pause that would leave no time for another try ends here, with this error.
            match retries.next_delay() {
                Some(pause) if pause < limit.saturating_sub(retries.elapsed()) => {
                    tokio::time::sleep(pause).await;
                }
                _ => return Err(fail(e)),
            }
        }
    }
}

/// Which failed requests [`Connection::send`] sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Any retryable failure: the request reads, or repeating it is harmless.
    Retryable,
    /// Only a request that provably never left: it writes.
    NeverSent,
}

/// The error of a request that ran out of time: a read's is [`Error::Timeout`]; a write's
/// says its outcome is unknown (it may have left, and been applied), with that timeout as
/// the cause.
fn timeout(op: &'static str, key: Option<&str>, after: Duration, resend: Resend) -> Error {
    let timeout = Error::Timeout {
        op,
        key: key.map(str::to_owned),
        after,
    };
    match resend {
        Resend::Retryable => timeout,
        Resend::NeverSent => Error::outcome_unknown(error::BACKEND, timeout, None),
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
    fn timeouts_of_writes_have_unknown_outcomes() {
        let read = timeout("get", Some("k"), Duration::from_secs(1), Resend::Retryable);
        assert_eq!(read.kind(), store_core::ErrorKind::Timeout);
        let write = timeout("put", Some("k"), Duration::from_secs(1), Resend::NeverSent);
        assert!(
            write.is_outcome_unknown() && write.is_retryable() && !write.is_not_applied(),
            "{write}"
        );
        assert!(write.to_string().contains("put \"k\""), "{write}");
    }

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
