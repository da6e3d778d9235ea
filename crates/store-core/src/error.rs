//! The one error type of every store crate.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::multi_error::MultiError;
use crate::version::Version;

/// `Result<T, store_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, as *conditions* a caller can match on.
///
/// Messages name the operation and the key. Use [`Error::kind`] for a `Copy` discriminant,
/// and [`Error::is_retryable`] to decide whether trying the same call again can help.
///
/// A failed *write* says more when its backend knows more: [`Error::not_applied`] proves
/// nothing changed (sending it again is safe), [`Error::outcome_unknown`] says it may have
/// been applied (a conditional write must not be sent again blindly), optionally with a
/// [`WriteResolver`](crate::WriteResolver) that finds out. Both are retryable [`Error::Backend`]s, so code that
/// only asks [`Error::is_retryable`] keeps working.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key does not exist (or, for records, has expired).
    #[error("{op} {key:?}: not found")]
    NotFound {
        /// The operation that failed (`"get"`, `"put"`, …).
        op: &'static str,
        /// The key.
        key: String,
    },

    /// A `Create` found the key already there.
    #[error("{op} {key:?}: already exists (version {version})")]
    AlreadyExists {
        /// The operation that failed.
        op: &'static str,
        /// The key.
        key: String,
        /// The version of the object that is there.
        version: Version,
    },

    /// A conditional operation found a different version than it expected.
    #[error(
        "{op} {key:?}: version conflict (expected {}, found {})",
        show(expected),
        show(actual)
    )]
    Conflict {
        /// The operation that failed.
        op: &'static str,
        /// The key.
        key: String,
        /// The version the caller expected, if it named one.
        expected: Option<Version>,
        /// The version actually found, if known.
        actual: Option<Version>,
    },

    /// An `if_none_match` read found exactly the version the caller already has.
    #[error("{op} {key:?}: not modified")]
    NotModified {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
    },

    /// A key that breaks one of the [`Key`](crate::Key) rules, or that a backend reserves.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key, as given.
        key: String,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// An argument that is not a key is invalid (a range past the end, an empty backend list…).
    #[error("{op}{}: invalid input: {reason}", show_key(key))]
    InvalidInput {
        /// The operation.
        op: &'static str,
        /// The key concerned, if any.
        key: Option<String>,
        /// What is wrong.
        reason: String,
    },

    /// A glob pattern that cannot be compiled.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern, as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The backend cannot do this (see [`Capabilities`](crate::Capabilities)).
    #[error("{operation} is not supported by {backend}")]
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// The backend's name.
        backend: &'static str,
    },

    /// Stored data that cannot be decoded: never a panic.
    #[error("corrupt data at {key:?}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The store is in a sticky error state (for example a replica whose asynchronous copy
    /// failed); every call reports the original cause until an operator repairs it.
    #[error("store is poisoned: {cause}")]
    Poisoned {
        /// The failure that poisoned the store.
        cause: Arc<Error>,
    },

    /// The store or writer was closed.
    #[error("{op}: closed")]
    Closed {
        /// The operation attempted.
        op: &'static str,
    },

    /// The operation did not complete in time.
    #[error("{op}{}: timed out after {after:?}", show_key(key))]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The key concerned, if any.
        key: Option<String>,
        /// How long it was given.
        after: Duration,
    },

    /// An optimistic-concurrency loop gave up after too many conflicts.
    #[error("{op} {key:?}: gave up after {attempts} conflicting attempts")]
    Contention {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// Several backends failed (fan-out writes, replicas).
    #[error(transparent)]
    Multi(#[from] MultiError),

    /// A local I/O error.
    #[error("{op} {key:?}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The key (or path) concerned.
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An error from a backend's own client (a network store, a database).
    #[error("{backend}: {source}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// Whether the same call may succeed if tried again.
        retryable: bool,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

fn show(v: &Option<Version>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "none".to_owned(),
    }
}

fn show_key(k: &Option<String>) -> String {
    match k {
        Some(k) => format!(" {k:?}"),
        None => String::new(),
    }
}

/// The kind of an [`Error`], without its data. `Copy`, for matching and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // one per Error variant, documented there
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    NotModified,
    InvalidKey,
    InvalidInput,
    InvalidPattern,
    Unsupported,
    Corrupt,
    Poisoned,
    Closed,
    Timeout,
    Contention,
    Multi,
    Io,
    Backend,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::NotModified { .. } => ErrorKind::NotModified,
            Error::InvalidKey { .. } => ErrorKind::InvalidKey,
            Error::InvalidInput { .. } => ErrorKind::InvalidInput,
            Error::InvalidPattern { .. } => ErrorKind::InvalidPattern,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Poisoned { .. } => ErrorKind::Poisoned,
            Error::Closed { .. } => ErrorKind::Closed,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Contention { .. } => ErrorKind::Contention,
            Error::Multi(_) => ErrorKind::Multi,
            Error::Io { .. } => ErrorKind::Io,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Conflict`] (a compare-and-swap lost).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// True for [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    /// Whether trying the same call again may succeed: timeouts, contention, transient I/O,
    /// backend errors marked retryable, and a [`MultiError`] whose every error is retryable.
    /// Conflicts are *not* retryable as such: the caller must re-read first.
    pub fn is_retryable(&self) -> bool {
        use std::io::ErrorKind as Io;
        match self {
            Error::Timeout { .. } | Error::Contention { .. } => true,
            Error::Backend { retryable, .. } => *retryable,
            Error::Io { source, .. } => matches!(
                source.kind(),
                Io::Interrupted | Io::TimedOut | Io::WouldBlock | Io::ConnectionReset | Io::ConnectionAborted
            ),
            Error::Multi(m) => !m.errors.is_empty() && m.errors.iter().all(|(_, e)| e.is_retryable()),
            _ => false,
        }
    }

    /// An [`Error::Io`] for `op` on `key`.
    pub fn io(op: &'static str, key: impl fmt::Display, source: std::io::Error) -> Error {
        Error::Io {
            op,
            key: key.to_string(),
            source,
        }
    }

    /// An [`Error::InvalidInput`] for `op` on `key`.
    pub fn invalid_input(op: &'static str, key: Option<&crate::Key>, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            op,
            key: key.map(|k| k.to_string()),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Meta, WriteResolver};
    use std::error::Error as _;

    #[test]
    fn messages_name_operation_and_key() {
        let cases: Vec<(Error, &[&str])> = vec![
            (
                Error::NotFound {
                    op: "get",
                    key: "a/b".into(),
                },
                &["get", "a/b", "not found"],
            ),
            (
                Error::AlreadyExists {
                    op: "put",
                    key: "k".into(),
                    version: Version::from(3),
                },
                &["put", "\"k\"", "already exists", "3"],
            ),
            (
                Error::Conflict {
                    op: "put",
                    key: "k".into(),
                    expected: Some(1.into()),
                    actual: None,
                },
                &["put", "\"k\"", "expected 1", "found none"],
            ),
            (
                Error::NotModified {
                    op: "get",
                    key: "k".into(),
                },
                &["get", "\"k\"", "not modified"],
            ),
            (
                Error::InvalidInput {
                    op: "get",
                    key: Some("k".into()),
                    reason: "range".into(),
                },
                &["get \"k\"", "range"],
            ),
            (
                Error::InvalidInput {
                    op: "new",
                    key: None,
                    reason: "empty".into(),
                },
                &["new: invalid input: empty"],
            ),
            (
                Error::InvalidPattern {
                    pattern: "[".into(),
                    reason: "open".into(),
                },
                &["\"[\"", "open"],
            ),
            (
                Error::Unsupported {
                    operation: "watch",
                    backend: "x",
                },
                &["watch is not supported by x"],
            ),
            (
                Error::Corrupt {
                    key: "k".into(),
                    reason: "bad".into(),
                },
                &["\"k\"", "bad"],
            ),
            (Error::Closed { op: "write" }, &["write: closed"]),
            (
                Error::Timeout {
                    op: "get",
                    key: Some("k".into()),
                    after: Duration::from_secs(1),
                },
                &["get \"k\"", "1s"],
            ),
            (
                Error::Contention {
                    op: "operate",
                    key: "k".into(),
                    attempts: 7,
                },
                &["operate", "\"k\"", "7"],
            ),
            (
                Error::io("put", "k", std::io::Error::other("disk")),
                &["put \"k\"", "disk"],
            ),
            (
                Error::Backend {
                    backend: "etcd",
                    retryable: true,
                    source: "gone".into(),
                },
                &["etcd: gone"],
            ),
        ];
        for (e, needles) in cases {
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "{msg:?} should contain {n:?}");
            }
        }
        let p = Error::Poisoned {
            cause: Arc::new(Error::Closed { op: "put" }),
        };
        assert_eq!(p.to_string(), "store is poisoned: put: closed");
    }

    #[test]
    fn kinds_and_predicates() {
        let nf = Error::NotFound {
            op: "get",
            key: "k".into(),
        };
        assert_eq!(nf.kind(), ErrorKind::NotFound);
        assert!(nf.is_not_found() && !nf.is_conflict() && !nf.is_retryable());
        let c = Error::Conflict {
            op: "put",
            key: "k".into(),
            expected: None,
            actual: None,
        };
        assert!(c.is_conflict() && !c.is_retryable());
        assert_eq!(c.kind(), ErrorKind::Conflict);
        let ae = Error::AlreadyExists {
            op: "put",
            key: "k".into(),
            version: 1.into(),
        };
        assert!(ae.is_already_exists() && ae.kind() == ErrorKind::AlreadyExists);
        assert!(
            Error::Timeout {
                op: "x",
                key: None,
                after: Duration::ZERO
            }
            .is_retryable()
        );
        assert!(
            Error::Contention {
                op: "x",
                key: "k".into(),
                attempts: 1
            }
            .is_retryable()
        );
        assert!(
            Error::Backend {
                backend: "b",
                retryable: true,
                source: "x".into()
            }
            .is_retryable()
        );
        assert!(
            !Error::Backend {
                backend: "b",
                retryable: false,
                source: "x".into()
            }
            .is_retryable()
        );
        let transient = std::io::Error::from(std::io::ErrorKind::Interrupted);
        assert!(Error::io("put", "k", transient).is_retryable());
        assert!(!Error::io("put", "k", std::io::Error::other("x")).is_retryable());
        let all_retry = MultiError::new(vec![(
            0,
            Error::Timeout {
                op: "x",
                key: None,
                after: Duration::ZERO,
            },
        )]);
        assert!(Error::from(all_retry).is_retryable());
        let mixed = MultiError::new(vec![
            (
                0,
                Error::Timeout {
                    op: "x",
                    key: None,
                    after: Duration::ZERO,
                },
            ),
            (1, Error::Closed { op: "x" }),
        ]);
        assert!(!Error::Multi(mixed).is_retryable());
        assert!(!Error::Multi(MultiError::default()).is_retryable());
    }

    #[test]
    fn write_outcomes() {
        let refused = Error::not_applied("b", "refused");
        assert!(refused.is_not_applied() && refused.is_retryable() && refused.kind() == ErrorKind::Backend);
        assert_eq!(refused.source().unwrap().source().unwrap().to_string(), "refused");
        assert!(Error::Multi(MultiError::new(vec![(0, Error::not_applied("b", "x"))])).is_not_applied());
        let mixed = MultiError::new(vec![
            (0, Error::not_applied("b", "x")),
            (1, Error::outcome_unknown("b", "y", None)),
        ]);
        assert!(!Error::Multi(mixed).is_not_applied());
        assert!(!Error::Multi(MultiError::default()).is_not_applied());
        let plain = Error::Backend {
            backend: "b",
            retryable: true,
            source: "reset".into(),
        };
        assert!(!plain.is_not_applied() && !plain.is_outcome_unknown() && plain.resolver().is_none());

        let cause = Error::Timeout {
            op: "put",
            key: Some("k".into()),
            after: Duration::from_secs(1),
        };
        let unknown = Error::outcome_unknown("retry", cause, None);
        assert!(unknown.is_outcome_unknown() && unknown.is_retryable() && !unknown.is_not_applied());
        assert!(unknown.resolver().is_none());
        let msg = unknown.to_string();
        assert!(
            msg.starts_with("retry: put \"k\": timed out") && msg.contains("outcome unknown"),
            "{msg}"
        );
        assert_eq!(
            unknown.source().unwrap().source().unwrap().to_string(),
            "put \"k\": timed out after 1s"
        );
    }

    #[tokio::test]
    async fn resolvers_answer_each_time_they_are_asked() {
        let meta = Meta {
            key: crate::Key::new("k").unwrap(),
            size: 1,
            version: Version::from(7),
            modified: std::time::SystemTime::UNIX_EPOCH,
        };
        let answer = meta.clone();
        let e = Error::outcome_unknown(
            "b",
            "lost",
            Some(WriteResolver::new(move || {
                let answer = answer.clone();
                async move { Ok(Some(answer)) }
            })),
        );
        let r = e.resolver().expect("a resolver").clone();
        assert_eq!(format!("{r:?}"), "WriteResolver(..)");
        for _ in 0..2 {
            assert_eq!(r.resolve().await.unwrap().unwrap().version, meta.version);
        }
    }

    #[test]
    fn multi_error_display_and_source() {
        let one = MultiError::new(vec![(1, Error::Closed { op: "put" })]);
        assert_eq!(one.to_string(), "put: closed");
        let three = MultiError::new(vec![
            (0, Error::Closed { op: "a" }),
            (1, Error::Closed { op: "b" }),
            (2, Error::Closed { op: "c" }),
        ]);
        assert_eq!(three.to_string(), "a: closed (and 2 more errors)");
        assert_eq!(three.source().unwrap().to_string(), "a: closed");
        assert_eq!(three.len(), 3);
        assert!(MultiError::default().source().is_none() && MultiError::default().is_empty());
        let wrapped: Error = three.into();
        assert_eq!(wrapped.kind(), ErrorKind::Multi);
        assert_eq!(wrapped.to_string(), "a: closed (and 2 more errors)");
    }
}
