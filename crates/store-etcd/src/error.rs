//! Mapping etcd client errors onto `store_core::Error` kinds.

use std::fmt;

use store_core::Error;
use tonic::Code;

/// The backend name in [`Error::Backend`] and [`Error::Unsupported`].
pub(crate) const BACKEND: &str = "etcd";

/// An error from the etcd client, with the operation and key it happened in.
///
/// It is the `source` of an [`Error::Backend`] with `backend == "etcd"` (directly, or under
/// the cause of a write's [`Error::not_applied`] / [`Error::outcome_unknown`]; a write that
/// timed out has an [`Error::Timeout`] there instead); look for it in the source chain to
/// see the client's own error:
///
/// ```
/// use std::error::Error as _;
/// use store_etcd::EtcdError;
///
/// fn explain(e: &store_core::Error) -> Option<String> {
///     let mut cause = e.source();
///     while let Some(c) = cause {
///         if let Some(etcd) = c.downcast_ref::<EtcdError>() {
///             return Some(format!("{} on {:?}: {}", etcd.op(), etcd.key(), etcd.client_error()));
///         }
///         cause = c.source();
///     }
///     None
/// }
/// ```
#[derive(Debug)]
pub struct EtcdError {
    op: &'static str,
    key: Option<String>,
    source: etcd_client::Error,
    outcome_unknown: bool,
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

    /// Whether this is a write that was sent but whose reply never came (the connection
    /// broke, the member lost its leader): it may or may not have been applied. Re-read
    /// before trying it again; a conditional write tried again blindly could apply twice.
    /// The store error around it then says the same
    /// ([`Error::is_outcome_unknown`]).
    pub fn outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{} {k:?}: {}", self.op, self.source)?,
            None => write!(f, "{}: {}", self.op, self.source)?,
        }
        if self.outcome_unknown {
            f.write_str(" (outcome unknown: the request was sent and no reply came back, so it may or may not have been applied; read before trying again)")?;
        }
        Ok(())
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

/// Whether a request provably never left this client: connecting to the member failed
/// (refused, unreachable, timed out), so no member received it. tonic reports that as
/// `Unavailable` with its [`tonic::ConnectError`] in the status's source chain. Such a
/// request, even a conditional write, can be sent again without risk of applying twice.
pub(crate) fn never_sent(e: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return false;
    };
    if status.code() != Code::Unavailable {
        return false;
    }
    let mut cause = std::error::Error::source(status);
    while let Some(c) = cause {
        if c.is::<tonic::ConnectError>() {
            return true;
        }
        cause = c.source();
    }
    false
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
    Error::Backend {
        backend: BACKEND,
        retryable: is_retryable(&e),
        source: Box::new(etcd_error(op, key, e, false)),
    }
}

/// Maps the error of a write for `op` on `key` onto store-core's write outcomes: a
/// retryable failure of a request that [never left](never_sent) is an
/// [`Error::not_applied`] (safe to send again, even conditional), any other retryable
/// failure an [`Error::outcome_unknown`] (it left, so it may have been applied: re-read
/// first). Both keep the [`EtcdError`] as their cause. An answer from etcd (a refusal) is a
/// plain error: it changed nothing.
pub(crate) fn map_write(op: &'static str, key: Option<&str>, e: etcd_client::Error) -> Error {
    if too_large(&e) || !is_retryable(&e) {
        return map(op, key, e);
    }
    if never_sent(&e) {
        return Error::not_applied(BACKEND, etcd_error(op, key, e, false));
    }
    Error::outcome_unknown(BACKEND, etcd_error(op, key, e, true), None)
}

fn etcd_error(
    op: &'static str,
    key: Option<&str>,
    source: etcd_client::Error,
    outcome_unknown: bool,
) -> EtcdError {
    EtcdError {
        op,
        key: key.map(str::to_owned),
        source,
        outcome_unknown,
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

    /// What tonic gives when connecting to the member failed: `Unavailable`, with its
    /// `ConnectError` in the source chain.
    fn refused() -> etcd_client::Error {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let connect = tonic::ConnectError(Box::new(io));
        etcd_client::Error::GRpcStatus(tonic::Status::from_error(Box::new(connect)))
    }

    #[test]
    fn only_a_failed_connect_is_never_sent() {
        let e = refused();
        assert!(never_sent(&e), "{e}");
        assert!(is_retryable(&e));
        for e in [
            status(Code::Unavailable, "tcp connect error"),
            status(Code::Unavailable, "etcdserver: leader changed"),
            status(Code::Unknown, "h2 protocol error: connection reset"),
            etcd_client::Error::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert!(!never_sent(&e), "{e}");
        }
    }

    #[test]
    fn a_write_that_was_sent_has_an_unknown_outcome() {
        use std::error::Error as _;
        let etcd = |e: &Error| {
            let mut cause = e.source();
            while let Some(c) = cause {
                if let Some(etcd) = c.downcast_ref::<EtcdError>() {
                    return Some(etcd.outcome_unknown());
                }
                cause = c.source();
            }
            None
        };

        let lost = map_write(
            "cas_by_version",
            Some("k"),
            status(Code::Unavailable, "etcdserver: leader changed"),
        );
        assert!(
            lost.is_retryable() && lost.is_outcome_unknown() && !lost.is_not_applied(),
            "{lost}"
        );
        assert_eq!(etcd(&lost), Some(true));
        let msg = lost.to_string();
        assert!(
            msg.contains("cas_by_version \"k\"") && msg.contains("outcome unknown"),
            "{msg}"
        );

        let unsent = map_write("cas_by_version", Some("k"), refused());
        assert!(unsent.is_retryable() && unsent.is_not_applied(), "{unsent}");
        assert_eq!(etcd(&unsent), Some(false));
        assert!(!unsent.to_string().contains("outcome unknown"), "{unsent}");

        // A refusal is an answer: nothing unknown about it.
        let refusal = map_write("put", Some("k"), status(Code::InvalidArgument, "etcdserver: bad"));
        assert_eq!(etcd(&refusal), Some(false));
        assert!(!refusal.is_outcome_unknown() && !refusal.is_not_applied() && !refusal.is_retryable());
        // Reads have no outcome to speak of.
        let read = map(
            "get",
            Some("k"),
            status(Code::Unavailable, "etcdserver: leader changed"),
        );
        assert_eq!(etcd(&read), Some(false));
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
