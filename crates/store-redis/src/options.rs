//! `RedisOptions`: where the server is, how long to wait, and which part of it is ours.

use std::fmt;
use std::time::Duration;

/// The default largest object (or record value) a store accepts: 1 MiB.
///
/// Redis itself takes values up to 512 MiB (`proto-max-bulk-len`), but it serves every
/// client from one thread: a large value holds all of them up while it is copied, written
/// to the append-only file and sent. Raise the limit with
/// [`RedisOptions::with_max_object_size`] when that is acceptable.
pub const DEFAULT_MAX_OBJECT_SIZE: usize = 1 << 20;

/// How to reach a Redis server and how to use it.
///
/// Built with [`RedisOptions::new`] (or `Default`, for `redis://127.0.0.1:6379/`) and
/// `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use store_redis::RedisOptions;
///
/// let opts = RedisOptions::new("redis://:secret@10.0.0.5:6379/2")
///     .with_key_prefix("app-a/")
///     .with_request_timeout(Duration::from_secs(2));
/// assert_eq!(opts.key_prefix(), "app-a/");
/// assert_eq!(RedisOptions::default().url(), "redis://127.0.0.1:6379/");
/// ```
///
/// The URL is the `redis` crate's: `redis://[user][:password@]host[:port][/db]`, or
/// `rediss://…` for TLS (checked against the platform's root certificates), or
/// `redis+unix:///path/to/socket`. Authentication and the database number come from it.
/// One server: Redis Cluster and Sentinel are not supported (the scripts touch a record
/// and its prefix's version counter together, which a cluster would spread over nodes).
///
/// Its `Debug` output hides the URL's password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    pub(crate) url: String,
    pub(crate) key_prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_object_size: usize,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &redacted(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_object_size", &self.max_object_size)
            .finish()
    }
}

/// `url` with the password of its user information (`user:password@`) replaced by `***`,
/// for messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split_once(':').map_or(&rest[..at], |(user, _)| user);
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions::new("redis://127.0.0.1:6379/")
    }
}

impl RedisOptions {
    /// Options for the server at `url`. Defaults: no key prefix, 5 s connect timeout,
    /// 10 s request timeout, values up to [`DEFAULT_MAX_OBJECT_SIZE`].
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
        }
    }

    /// Sets the server's URL.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Stores every key under this Redis key prefix, so several stores (or programs) can
    /// share one server without seeing each other's keys. The prefix is used as given (end
    /// it with `/` to keep `redis-cli` output readable). Each prefix has its own version
    /// counter, so two stores must not use prefixes one of which starts with the other:
    /// they would write the same Redis keys with versions from different counters. Without
    /// a prefix the store takes the whole database as its own: a listing shows (or reports
    /// as corrupt) every key in it.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long connecting to the server may take, each time the client connects.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one request may take, including its retries (reads after a lost
    /// connection, any request that could not connect); past it the request fails with
    /// `Error::Timeout` (a write: with its outcome unknown). Waits for changes are not
    /// limited by it (they wait as long as the caller does).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The largest object (or record value) accepted. Larger writes fail with
    /// `Error::InvalidInput` naming the key before anything is sent.
    pub fn with_max_object_size(mut self, bytes: usize) -> Self {
        self.max_object_size = bytes;
        self
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Redis key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The largest object accepted.
    pub fn max_object_size(&self) -> usize {
        self.max_object_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redacted("redis://:s3cret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redacted("rediss://app:s3cret@h/"), "rediss://app:***@h/");
        assert_eq!(redacted("redis://h:1/"), "redis://h:1/");
        assert_eq!(
            redacted("redis+unix:///run/redis.sock"),
            "redis+unix:///run/redis.sock"
        );
        let shown = format!("{:?}", RedisOptions::new("redis://u:pw@h/").with_key_prefix("p/"));
        assert!(!shown.contains("pw") && shown.contains("p/"), "{shown}");
    }
}
