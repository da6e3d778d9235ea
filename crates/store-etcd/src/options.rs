//! `EtcdOptions`: where the cluster is, how long to wait, and which part of it is ours.

use std::time::Duration;

/// etcd's default limit on one request (`--max-request-bytes`): 1.5 MiB.
pub const ETCD_DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// The default largest object an [`EtcdStore`](crate::EtcdStore) accepts: 1.5 MiB minus 8 KiB
/// for the key and the request's framing, so that a default etcd server accepts every
/// object the store accepts.
pub const DEFAULT_MAX_OBJECT_SIZE: usize = ETCD_DEFAULT_MAX_REQUEST_BYTES - 8 * 1024;

/// How to reach an etcd cluster and how to use it.
///
/// Built with [`EtcdOptions::new`] and `with_*` methods:
///
/// ```
/// use std::time::Duration;
/// use store_etcd::EtcdOptions;
///
/// let opts = EtcdOptions::new(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
///     .with_key_prefix("app-a/")
///     .with_request_timeout(Duration::from_secs(2));
/// assert_eq!(opts.key_prefix(), "app-a/");
///
/// // A comma-separated list, as in an environment variable:
/// let opts = EtcdOptions::from_list("http://127.0.0.1:2379, http://127.0.0.1:22379");
/// assert_eq!(opts.endpoints().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    pub(crate) endpoints: Vec<String>,
    pub(crate) key_prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_object_size: usize,
}

impl EtcdOptions {
    /// Options for the cluster at `endpoints` (`http://host:port` URLs; one is enough, more
    /// let the client fail over between members). Defaults: no key prefix, 5 s connect
    /// timeout, 10 s request timeout, objects up to [`DEFAULT_MAX_OBJECT_SIZE`].
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            key_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
        }
    }

    /// Options for a comma-separated list of endpoints (blank entries are ignored), the
    /// form environment variables use.
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    /// Stores every key under this etcd key prefix, so several stores (or programs) can
    /// share one cluster without seeing each other's keys. The prefix is used as given
    /// (end it with `/` to keep things readable in `etcdctl`).
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long connecting to one endpoint may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one request may take, including its retries (reads after a lost
    /// connection, any request that could not connect to a member); past it the request
    /// fails with `Error::Timeout` (a write: with its outcome unknown, the timeout as the
    /// cause), or with the last retryable error if no time is left for another try.
    /// Watches and waits are not limited by it (they wait as long as the caller does).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The largest object (or record value) accepted. Larger puts fail with
    /// `Error::InvalidInput` before anything is sent. The server must accept requests of
    /// this size too: etcd's `--max-request-bytes` defaults to 1.5 MiB
    /// ([`ETCD_DEFAULT_MAX_REQUEST_BYTES`]); raise both together.
    pub fn with_max_object_size(mut self, bytes: usize) -> Self {
        self.max_object_size = bytes;
        self
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The etcd key prefix.
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
