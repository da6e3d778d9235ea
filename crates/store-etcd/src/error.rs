//! Mapping etcd client errors onto `store_core::Error` kinds.

use std::fmt;

use store_core::Error;
use tonic::Code;

/// The backend name in [`Error::Backend`] and [`Error::Unsupported`].
pub(crate) const BACKEND: &str = "etcd";

/// An error from the etcd client, with the operation and key it happened in.
///
/// It is the `source` of an [`Error::Backend`] with `backend == "etcd"`; downcast to it to
/// see the client's own error:
///
/// ```
/// use std::error::Error as _;
/// use store_etcd::EtcdError;
///
/// fn explain(e: &store_core::Error) -> Option<String> {
///     let etcd = e.source()?.downcast_ref::<EtcdError>()?;
///     Some(format!("{} on {:?}: {}", etcd.op(), etcd.key(), etcd.client_error()))
/// }
/// ```
#[derive(Debug)]
pub struct EtcdError {
    op: &'static str,
    key: Option<String>,
    source: etcd_client::Error,
}

impl EtcdError {
    /// The operation (`"get"`, `"put"`, `"cas_by_version"`, …).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The key, if the operation was about one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The etcd client's error.
    pub fn client_error(&self) -> &etcd_client::Error {
        &self.source
    }
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{} {k:?}: {}", self.op, self.source),
            None => write!(f, "{}: {}", self.op, self.source),
        }
    }
}

impl std::error::Error for EtcdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Whether an etcd client error may go away if the same call is tried again: lost or
/// refused connections, an election in progress ("leader changed", "no leader", "request
/// timed out"), an overloaded server. A full database, a request that is too large, a
/// compacted revision or a bad argument are not.
pub(crate) fn is_retryable(e: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) => true,
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable | Code::Aborted | Code::Cancelled | Code::DeadlineExceeded | Code::Unknown => {
                true
            }
            Code::ResourceExhausted => !s.message().contains("space exceeded"),
            _ => false,
        },
        _ => false,
    }
}

fn too_large(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.message().contains("request is too large")
            || (s.code() == Code::OutOfRange && s.message().contains("message length too large")))
}

/// Maps an etcd client error for `op` on `key` to a store error.
pub(crate) fn map(op: &'static str, key: Option<&str>, e: etcd_client::Error) -> Error {
    if too_large(&e) {
        return Error::InvalidInput {
            op,
            key: key.map(str::to_owned),
            reason: format!(
                "etcd refused the request as too large ({e}); raise the server's \
                 --max-request-bytes, or store smaller objects"
            ),
        };
    }
    let retryable = is_retryable(&e);
    Error::Backend {
        backend: BACKEND,
        retryable,
        source: Box::new(EtcdError {
            op,
            key: key.map(str::to_owned),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, msg: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg))
    }

    #[test]
    fn elections_and_lost_connections_are_retryable() {
        for e in [
            status(Code::Unavailable, "etcdserver: leader changed"),
            status(Code::Unavailable, "etcdserver: request timed out"),
            status(Code::ResourceExhausted, "etcdserver: too many requests"),
            etcd_client::Error::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ] {
            let mapped = map("put", Some("k"), e);
            assert!(mapped.is_retryable(), "{mapped}");
            assert!(mapped.to_string().contains("put \"k\""), "{mapped}");
        }
    }

    #[test]
    fn permanent_failures_are_not_retryable() {
        for e in [
            status(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            status(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            status(
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            etcd_client::Error::InvalidArgs("empty endpoints".into()),
        ] {
            let mapped = map("get", None, e);
            assert!(!mapped.is_retryable(), "{mapped}");
            assert_eq!(mapped.kind(), store_core::ErrorKind::Backend);
        }
    }

    #[test]
    fn too_large_is_invalid_input_naming_the_key() {
        let e = map(
            "put",
            Some("big"),
            status(Code::InvalidArgument, "etcdserver: request is too large"),
        );
        assert_eq!(e.kind(), store_core::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            msg.contains("\"big\"") && msg.contains("--max-request-bytes"),
            "{msg}"
        );
    }

    #[test]
    fn the_client_error_can_be_recovered() {
        use std::error::Error as _;
        let e = map("head", Some("a/b"), status(Code::Unavailable, "gone"));
        let etcd = e.source().and_then(|s| s.downcast_ref::<EtcdError>()).unwrap();
        assert_eq!((etcd.op(), etcd.key()), ("head", Some("a/b")));
        assert!(etcd.client_error().to_string().contains("gone"));
    }
}
