//! `Connection`: the Redis client shared by the stores, with timeouts, retries, the key
//! prefix, and the scripts every write goes through.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use store_core::{Backoff, ByteRange, Error, Key, Result, Version};

use crate::changes::Changes;
use crate::envelope::{self, HEADER, Header};
use crate::error;
use crate::options::{RedisOptions, redacted};

/// create, cas and put, with their checks, in one atomic step (see `lua/write.lua`).
static WRITE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/write.lua")));
/// delete, with its checks (see `lua/delete.lua`).
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/delete.lua")));
/// The headers and sizes of several values (see `lua/head.lua`).
static HEAD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/head.lua")));

/// Records written by one call of the write script, at most: a script holds up every
/// other client of the server while it runs.
pub(crate) const WRITE_BATCH: usize = 128;

/// The pauses between tries of one request: from 20 ms doubling up to 500 ms, with full
/// jitter so that the clients of a server that restarted do not come back in lock step.
/// [`Connection::send`] bounds it by the request timeout.
fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(20), Duration::from_millis(500)).with_jitter(true)
}

/// A connected Redis client and the options it was made with. Cheap to clone: clones share
/// the connection, which reconnects by itself after it is lost, and the subscription to
/// the prefix's changes.
#[derive(Clone)]
pub(crate) struct Connection {
    client: redis::Client,
    manager: ConnectionManager,
    opts: RedisOptions,
    /// Whether the server said at connect that it fsyncs every write to its append-only file.
    durable: bool,
    /// The subscription to this prefix's change channel, made at the first wait.
    changes: Arc<OnceLock<Changes>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &redacted(&self.opts.url))
            .field("key_prefix", &self.opts.key_prefix)
            .finish_non_exhaustive()
    }
}

/// What a write or delete script answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written (or deleted): the new versions, one per record written.
    Done(Vec<Version>),
    /// `create` found a live record with this version.
    Exists(Version),
    /// `cas` or a version-checked delete found this version instead.
    Conflict(Version),
    /// `cas` or delete found no live record.
    Absent,
    /// The key holds a value store-redis did not write.
    Corrupt,
}

/// What the write script does with the records it is given.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// Writes whatever is there.
    Put,
    /// Writes only if there is no live record.
    Create,
    /// Writes only if the live record has this version.
    Cas(&'a Version),
}

/// One value to write: its key, expiry and bytes.
pub(crate) struct Write<'a> {
    pub(crate) key: &'a Key,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) value: &'a [u8],
}

/// A value's header and size, as the head script reads them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub(crate) header: Header,
    /// The value's size, without the header.
    pub(crate) size: u64,
}

impl Connection {
    /// Connects to the server in `opts` and asks it whether every write is fsynced (one
    /// round trip; a server that refuses `CONFIG GET` counts as not durable).
    pub(crate) async fn connect(opts: RedisOptions) -> Result<Self> {
        let client = redis::Client::open(opts.url.as_str()).map_err(|e| {
            Error::invalid_input(
                "connect",
                None,
                format!("Redis URL {:?} is not usable: {e}", redacted(&opts.url)),
            )
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.connect_timeout))
            .set_response_timeout(Some(opts.request_timeout))
            // The manager's own reconnect loop is kept short: requests are retried (or
            // reported) by `send`, which knows which of them may be sent again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| error::map_read("connect", None, e))?;
        let mut c = manager.clone();
        let fsync: RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut c)
            .await;
        let durable = fsync.is_ok_and(|pairs| {
            let get = |name: &str| {
                pairs
                    .chunks(2)
                    .find(|p| p[0] == name)
                    .and_then(|p| p.get(1).cloned())
            };
            get("appendonly").as_deref() == Some("yes") && get("appendfsync").as_deref() == Some("always")
        });
        Ok(Connection {
            client,
            manager,
            opts,
            durable,
            changes: Arc::default(),
        })
    }

    /// The same connection under another key prefix (with its own change subscription).
    pub(crate) fn with_key_prefix(&self, prefix: String) -> Self {
        let mut c = self.clone();
        c.opts.key_prefix = prefix;
        c.changes = Arc::default();
        c
    }

    pub(crate) fn options(&self) -> &RedisOptions {
        &self.opts
    }

    pub(crate) fn durable(&self) -> bool {
        self.durable
    }

    /// The Redis key of `key`.
    pub(crate) fn redis_key(&self, key: &Key) -> String {
        format!("{}{key}", self.opts.key_prefix)
    }

    /// The Redis name of something of this store's own: the prefix, `/` and `name`. No
    /// store key starts with `/`, so no store key ever has such a name.
    fn internal(&self, name: &str) -> String {
        format!("{}/{name}", self.opts.key_prefix)
    }

    /// The prefix's version counter.
    fn counter(&self) -> String {
        self.internal("version")
    }

    /// The channel the scripts publish each changed key on.
    pub(crate) fn channel(&self) -> String {
        self.internal("changes")
    }

    /// The store key of a Redis key from a listing of our prefix: `None` for the store's own
    /// names, `Corrupt` for a key some other program wrote that is not a valid [`Key`].
    pub(crate) fn store_key(&self, op: &'static str, name: &[u8]) -> Option<Result<Key>> {
        let rest = name.strip_prefix(self.opts.key_prefix.as_bytes()).unwrap_or(name);
        if rest.starts_with(b"/") {
            return None;
        }
        let corrupt = |reason: String| Error::Corrupt {
            key: String::from_utf8_lossy(rest).into_owned(),
            reason: format!("{op}: {reason}"),
        };
        Some(match std::str::from_utf8(rest) {
            Ok(text) => {
                Key::new(text).map_err(|e| corrupt(format!("Redis key is not a valid store key: {e}")))
            }
            Err(_) => Err(corrupt("Redis key is not UTF-8".into())),
        })
    }

    /// The client for a connection of its own (the change subscription's).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The change subscription of this prefix, started at the first call.
    pub(crate) fn changes(&self) -> &Changes {
        self.changes.get_or_init(|| Changes::start(self))
    }

    /// Runs a request that only reads, retrying every retryable failure (a lost
    /// connection, a server that is restarting or loading its data) until the request
    /// timeout has passed.
    pub(crate) async fn read<T, F, Fut>(&self, op: &'static str, key: Option<&str>, call: F) -> Result<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.send(op, key, Resend::Retryable, call).await
    }

    /// Runs a request that changes something. It is sent again only when it provably was
    /// not run (the connection was refused, or the server answered that it is loading or
    /// busy), so it is applied exactly once or not at all; after a failure once sent,
    /// nobody can tell whether it was applied, and the error says so
    /// ([`Error::is_outcome_unknown`]) and is retryable, for the caller, who can re-read,
    /// to decide.
    pub(crate) async fn write<T, F, Fut>(&self, op: &'static str, key: Option<&str>, call: F) -> Result<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.send(op, key, Resend::NotRun, call).await
    }

    /// The one retry loop under [`read`](Self::read) and [`write`](Self::write), bounded by
    /// the request timeout. Tries are spaced by [`retry_backoff`]; a try that would start
    /// with no time left does not start: the last error is returned.
    async fn send<T, F, Fut>(
        &self,
        op: &'static str,
        key: Option<&str>,
        resend: Resend,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let limit = self.opts.request_timeout;
        let mut retries = retry_backoff().with_max_elapsed(limit).start();
        loop {
            let left = limit.saturating_sub(retries.elapsed());
            let e = match tokio::time::timeout(left, call(self.manager.clone())).await {
                Err(_) => return Err(timeout(op, key, limit, resend)),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
            };
            let again = match resend {
                Resend::Retryable => error::is_retryable(&e),
                Resend::NotRun => error::never_sent(&e) || error::refused_for_now(&e),
            };
            let fail = |e| match resend {
                Resend::Retryable => error::map_read(op, key, e),
                Resend::NotRun => error::map_write(op, key, e),
            };
            if !again {
                return Err(fail(e));
            }
            tracing::debug!(op, key, error = %e, "redis request failed; retrying");
            match retries.next_delay() {
                Some(pause) if pause < limit.saturating_sub(retries.elapsed()) => {
                    tokio::time::sleep(pause).await;
                }
                _ => return Err(fail(e)),
            }
        }
    }

    /// The stored value at `key`, if any: one `GET`.
    pub(crate) async fn get(&self, op: &'static str, key: &Key) -> Result<Option<Bytes>> {
        let name = self.redis_key(key);
        self.read(op, Some(key.as_str()), |mut c| {
            let name = &name;
            async move { redis::cmd("GET").arg(name).query_async(&mut c).await }
        })
        .await
    }

    /// Part of the stored value at `key`: its header, its size and the bytes of `range`
    /// (offsets into the value, after the header), read at one instant — one round trip
    /// (`GETRANGE`, `STRLEN`, `GETRANGE` in a `MULTI` block), without reading the rest.
    /// `None` if the key is absent. The bytes are those of `range` clamped to the value,
    /// except that a suffix longer than the value also brings header bytes, which the
    /// caller cuts off once it knows the size.
    pub(crate) async fn get_range(
        &self,
        op: &'static str,
        key: &Key,
        range: &ByteRange,
    ) -> Result<Option<(Head, Bytes)>> {
        const H: i64 = HEADER as i64;
        let offset = |n: u64| i64::try_from(n).unwrap_or(i64::MAX / 2).min(i64::MAX / 2);
        // GETRANGE's ends are inclusive and clamped to the string; negative ones count
        // from its end.
        let (start, end) = match *range {
            ByteRange::Bounded(ref r) => (H + offset(r.start), H + offset(r.end) - 1),
            ByteRange::From(s) => (H + offset(s), -1),
            ByteRange::Suffix(0) => (1, 0),
            ByteRange::Suffix(n) => (-offset(n), -1),
        };
        let name = self.redis_key(key);
        let (header, len, bytes): (Vec<u8>, u64, Bytes) = self
            .read(op, Some(key.as_str()), |mut c| {
                let name = &name;
                async move {
                    redis::pipe()
                        .atomic()
                        .cmd("GETRANGE")
                        .arg(name)
                        .arg(0)
                        .arg(H - 1)
                        .cmd("STRLEN")
                        .arg(name)
                        .cmd("GETRANGE")
                        .arg(name)
                        .arg(start)
                        .arg(end)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        if header.is_empty() {
            return Ok(None);
        }
        let header = Header::parse(op, key.as_str(), &header)?;
        let head = Head {
            header,
            size: len.saturating_sub(HEADER as u64),
        };
        Ok(Some((head, bytes)))
    }

    /// The stored values at `keys`, aligned with them: one `MGET`.
    pub(crate) async fn get_many(&self, op: &'static str, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        self.read(op, keys.first().map(Key::as_str), |mut c| {
            let names = &names;
            async move { redis::cmd("MGET").arg(names).query_async(&mut c).await }
        })
        .await
    }

    /// The headers and sizes of the values at `keys`, aligned with them (`None` where
    /// absent; an inner error where a value is not one store-redis wrote): one script call.
    pub(crate) async fn heads(&self, op: &'static str, keys: &[Key]) -> Result<Vec<Result<Option<Head>>>> {
        let mut invocation = HEAD.prepare_invoke();
        for k in keys {
            invocation.key(self.redis_key(k));
        }
        let replies: Vec<(Vec<u8>, u64)> = self
            .read(op, keys.first().map(Key::as_str), |mut c| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        Ok(keys
            .iter()
            .zip(replies)
            .map(|(key, (header, len))| {
                if header.is_empty() {
                    return Ok(None);
                }
                let header = Header::parse(op, key.as_str(), &header)?;
                Ok(Some(Head {
                    header,
                    size: len.saturating_sub(HEADER as u64),
                }))
            })
            .collect())
    }

    /// Runs the write script over `writes` (at most [`WRITE_BATCH`]; exactly one unless
    /// `mode` is [`Mode::Put`]) with the client's clock as "now": one round trip, atomic.
    pub(crate) async fn write_script(
        &self,
        op: &'static str,
        mode: Mode<'_>,
        writes: &[Write<'_>],
    ) -> Result<Outcome> {
        let (mode_name, expected) = match mode {
            Mode::Put => ("put", String::new()),
            Mode::Create => ("create", String::new()),
            Mode::Cas(v) => ("cas", envelope::version_digits(v)),
        };
        let mut invocation = WRITE.key(self.counter());
        invocation
            .arg(mode_name)
            .arg(expected)
            .arg(envelope::digits(envelope::now_ms()))
            .arg(self.channel());
        for w in writes {
            let pxat = w
                .expires_at
                .map_or_else(String::new, |at| envelope::millis(at).to_string());
            invocation
                .key(self.redis_key(w.key))
                .arg(envelope::expiry_digits(w.expires_at))
                .arg(pxat)
                .arg(w.value)
                .arg(w.key.as_str());
        }
        let first = writes.first().map(|w| w.key.as_str());
        let reply: Vec<String> = self
            .write(op, first, |mut c| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        outcome(op, first, reply)
    }

    /// Runs the delete script on `key`, checking its version if `expected` is given.
    pub(crate) async fn delete_script(
        &self,
        op: &'static str,
        key: &Key,
        expected: Option<&Version>,
    ) -> Result<Outcome> {
        let mut invocation = DELETE.key(self.redis_key(key));
        invocation
            .arg(expected.map_or_else(String::new, envelope::version_digits))
            .arg(envelope::digits(envelope::now_ms()))
            .arg(self.channel())
            .arg(key.as_str());
        let reply: Vec<String> = self
            .write(op, Some(key.as_str()), |mut c| {
                let invocation = &invocation;
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        outcome(op, Some(key.as_str()), reply)
    }
}

/// Decodes a script's reply.
fn outcome(op: &'static str, key: Option<&str>, reply: Vec<String>) -> Result<Outcome> {
    let version = |s: &String| -> Result<Version> {
        s.parse::<u64>().map(Version::from).map_err(|_| Error::Corrupt {
            key: key.unwrap_or_default().to_owned(),
            reason: format!("{op}: the script answered with a version that is not a number: {s:?}"),
        })
    };
    match reply.split_first() {
        Some((status, rest)) => match (status.as_str(), rest) {
            ("ok", versions) => Ok(Outcome::Done(
                versions.iter().map(version).collect::<Result<_>>()?,
            )),
            ("exists", [v]) => Ok(Outcome::Exists(version(v)?)),
            ("conflict", [v]) => Ok(Outcome::Conflict(version(v)?)),
            ("absent", []) => Ok(Outcome::Absent),
            ("corrupt", []) => Ok(Outcome::Corrupt),
            _ => Err(unexpected(op, key, &reply)),
        },
        None => Err(unexpected(op, key, &reply)),
    }
}

fn unexpected(op: &'static str, key: Option<&str>, reply: &[String]) -> Error {
    Error::Backend {
        backend: error::BACKEND,
        retryable: false,
        source: format!(
            "{op}{}: unexpected reply from the script: {reply:?}",
            key.map(|k| format!(" {k:?}")).unwrap_or_default()
        )
        .into(),
    }
}

/// Which failed requests [`Connection::send`] sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Any retryable failure: the request reads.
    Retryable,
    /// Only a request that provably was not run: it writes.
    NotRun,
}

/// The error of a request that ran out of time: a read's is [`Error::Timeout`]; a write's
/// says its outcome is unknown, with that timeout as the cause.
fn timeout(op: &'static str, key: Option<&str>, after: Duration, resend: Resend) -> Error {
    let timeout = Error::Timeout {
        op,
        key: key.map(str::to_owned),
        after,
    };
    match resend {
        Resend::Retryable => timeout,
        Resend::NotRun => Error::outcome_unknown(error::BACKEND, timeout, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn script_replies() {
        let v = |n| Version::from(n);
        let cases = [
            (
                reply(&["ok", "00000000000000000007", "00000000000000000008"]),
                Outcome::Done(vec![v(7), v(8)]),
            ),
            (reply(&["ok"]), Outcome::Done(vec![])),
            (reply(&["exists", "00000000000000000003"]), Outcome::Exists(v(3))),
            (
                reply(&["conflict", "00000000000000000004"]),
                Outcome::Conflict(v(4)),
            ),
            (reply(&["absent"]), Outcome::Absent),
            (reply(&["corrupt"]), Outcome::Corrupt),
        ];
        for (r, want) in cases {
            assert_eq!(outcome("put", Some("k"), r).unwrap(), want);
        }
        for bad in [
            reply(&[]),
            reply(&["what"]),
            reply(&["exists"]),
            reply(&["ok", "x"]),
        ] {
            let e = outcome("put", Some("k"), bad).unwrap_err();
            assert!(e.to_string().contains("\"k\""), "{e}");
        }
    }

    #[test]
    fn timeouts_of_writes_have_unknown_outcomes() {
        let read = timeout("get", Some("k"), Duration::from_secs(1), Resend::Retryable);
        assert_eq!(read.kind(), store_core::ErrorKind::Timeout);
        let write = timeout("put", Some("k"), Duration::from_secs(1), Resend::NotRun);
        assert!(write.is_outcome_unknown() && write.is_retryable(), "{write}");
        assert!(write.to_string().contains("put \"k\""), "{write}");
    }
}
