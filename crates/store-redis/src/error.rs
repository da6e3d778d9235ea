//! Mapping Redis client errors onto `store_core::Error` kinds.

use std::fmt;

use store_core::Error;

/// The backend name in [`Error::Backend`].
pub(crate) const BACKEND: &str = "redis";

/// An error from the Redis client, with the operation and key it happened in.
///
/// It is the `source` of an [`Error::Backend`] with `backend == "redis"` (directly, or
/// under the cause of [`Error::not_applied`] / [`Error::outcome_unknown`]); look for it
/// in the source chain to see the client's own error:
///
/// ```
/// use std::error::Error as _;
/// use store_redis::RedisError;
///
/// fn explain(e: &store_core::Error) -> Option<String> {
///     let mut cause = e.source();
///     while let Some(c) = cause {
///         if let Some(redis) = c.downcast_ref::<RedisError>() {
///             return Some(format!("{} on {:?}: {}", redis.op(), redis.key(), redis.client_error()));
///         }
///         cause = c.source();
///     }
///     None
/// }
/// ```
#[derive(Debug)]
pub struct RedisError {
    op: &'static str,
    key: Option<String>,
    source: redis::RedisError,
}

impl RedisError {
    /// The operation (`"get"`, `"put"`, `"cas_by_version"`, …).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The key, if the operation was about one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The Redis client's error.
    pub fn client_error(&self) -> &redis::RedisError {
        &self.source
    }
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{} {k:?}: {}", self.op, self.source),
            None => write!(f, "{}: {}", self.op, self.source),
        }
    }
}

impl std::error::Error for RedisError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Whether a request provably never reached the server: connecting to it was refused.
/// Such a request, even a conditional write, can be sent again without risk of applying
/// twice.
pub(crate) fn never_sent(e: &redis::RedisError) -> bool {
    e.is_connection_refusal()
}

/// Whether the server refused the request without running it, for a reason that passes:
/// it is loading its data after a restart (`LOADING`), busy with a long script (`BUSY`),
/// or is a replica or cut off from its master (`READONLY`, `MASTERDOWN`, `TRYAGAIN`).
pub(crate) fn refused_for_now(e: &redis::RedisError) -> bool {
    has_code(e, &["LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN"])
}

/// Whether the server answered with an error of one of `codes`, for a single command or
/// for one of a pipeline's (whose error has no code of its own).
fn has_code(e: &redis::RedisError, codes: &[&str]) -> bool {
    e.code().is_some_and(|c| codes.contains(&c))
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, s)| codes.contains(&s.code())))
}

/// Whether a failed request may succeed if sent again: lost or refused connections,
/// timeouts, and the refusals of [`refused_for_now`].
pub(crate) fn is_retryable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || refused_for_now(e)
}

/// A key holding another type of value (a hash, a list…): not something store-redis wrote.
fn wrong_type(op: &'static str, key: Option<&str>, e: &redis::RedisError) -> Option<Error> {
    has_code(e, &["WRONGTYPE"]).then(|| Error::Corrupt {
        key: key.unwrap_or_default().to_owned(),
        reason: format!("{op}: the Redis key holds another type of value, not one store-redis wrote"),
    })
}

fn wrap(op: &'static str, key: Option<&str>, source: redis::RedisError) -> RedisError {
    RedisError {
        op,
        key: key.map(str::to_owned),
        source,
    }
}

/// Maps a client error of a request that only reads.
pub(crate) fn map_read(op: &'static str, key: Option<&str>, e: redis::RedisError) -> Error {
    if let Some(corrupt) = wrong_type(op, key, &e) {
        return corrupt;
    }
    Error::Backend {
        backend: BACKEND,
        retryable: is_retryable(&e),
        source: Box::new(wrap(op, key, e)),
    }
}

/// Maps a client error of a request that writes: [`Error::not_applied`] when the server
/// never got it or refused it unrun, [`Error::outcome_unknown`] when it was sent and no
/// answer came back (the connection broke, the reply timed out), a plain non-retryable
/// error when the server answered with another error (the scripts check everything before
/// they write, so such a call changed nothing).
pub(crate) fn map_write(op: &'static str, key: Option<&str>, e: redis::RedisError) -> Error {
    if let Some(corrupt) = wrong_type(op, key, &e) {
        return corrupt;
    }
    if never_sent(&e) || refused_for_now(&e) {
        return Error::not_applied(BACKEND, wrap(op, key, e));
    }
    if answered(&e) {
        return Error::Backend {
            backend: BACKEND,
            retryable: false,
            source: Box::new(wrap(op, key, e)),
        };
    }
    Error::outcome_unknown(BACKEND, wrap(op, key, e), None)
}

/// Whether the error is the server's own answer (an error reply), not a failure to get one.
fn answered(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_error(kind: io::ErrorKind) -> redis::RedisError {
        redis::RedisError::from(io::Error::from(kind))
    }

    fn server_error(code: &str) -> redis::RedisError {
        redis::make_extension_error(code.to_owned(), Some("from the server".into()))
    }

    #[test]
    fn a_refused_connection_was_never_sent() {
        let e = map_write("put", Some("k"), io_error(io::ErrorKind::ConnectionRefused));
        assert!(e.is_not_applied() && e.is_retryable(), "{e}");
        assert!(e.to_string().contains("put \"k\""), "{e}");
    }

    #[test]
    fn a_write_that_lost_its_connection_has_an_unknown_outcome() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::TimedOut,
        ] {
            let e = map_write("cas_by_version", Some("k"), io_error(kind));
            assert!(e.is_outcome_unknown() && e.is_retryable(), "{kind:?}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("cas_by_version \"k\"") && msg.contains("outcome unknown"),
                "{msg}"
            );
        }
    }

    #[test]
    fn passing_refusals_are_not_applied_and_retryable() {
        for code in ["LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN"] {
            let e = map_write("put", Some("k"), server_error(code));
            assert!(e.is_not_applied() && e.is_retryable(), "{code}: {e}");
            assert!(map_read("get", Some("k"), server_error(code)).is_retryable());
        }
    }

    #[test]
    fn other_answers_are_permanent_and_changed_nothing() {
        let e = map_write("put", Some("k"), server_error("NOPERM"));
        assert!(!e.is_retryable() && !e.is_outcome_unknown(), "{e}");
        assert!(!map_read("get", Some("k"), server_error("ERR")).is_retryable());
    }

    #[test]
    fn lost_connections_make_reads_retryable() {
        let e = map_read("get", Some("a/b"), io_error(io::ErrorKind::ConnectionReset));
        assert!(e.is_retryable(), "{e}");
        let redis = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<RedisError>())
            .expect("a RedisError source");
        assert_eq!((redis.op(), redis.key()), ("get", Some("a/b")));
        assert!(redis.client_error().is_io_error());
    }

    #[test]
    fn a_key_of_another_type_is_corrupt() {
        for e in [
            map_read("get", Some("h"), server_error("WRONGTYPE")),
            map_write("create", Some("h"), server_error("WRONGTYPE")),
        ] {
            assert_eq!(e.kind(), store_core::ErrorKind::Corrupt, "{e}");
            assert!(e.to_string().contains("\"h\""), "{e}");
        }
    }
}
