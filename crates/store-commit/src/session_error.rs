//! Errors about the session itself (as opposed to a store's own errors), shared by
//! `MultiCommitter` and `Staged`, plus [`SessionError`], which says which committable of a
//! session failed.

use std::fmt;

use store_core::{Error, IdempotencyKey};

/// `op` was called while no session is open.
pub(crate) fn no_session(op: &'static str, key: Option<String>) -> Error {
    Error::InvalidInput {
        op,
        key,
        reason: "no commit session is open; call begin first".to_owned(),
    }
}

/// `op` was called for session `given` while session `open` is open.
pub(crate) fn other_session(op: &'static str, open: &IdempotencyKey, given: &IdempotencyKey) -> Error {
    Error::InvalidInput {
        op,
        key: Some(given.to_string()),
        reason: format!("session {open:?} is open, not {given:?}; commit or cancel it first"),
    }
}

/// A failure of one committable during a session: which session, which committable, which
/// step, and the committable's own error.
///
/// [`MultiCommitter`](crate::MultiCommitter) returns it inside
/// [`Error::Backend`] (backend `"store-commit"`, retryable when the cause is); get it back
/// with `source().downcast_ref::<SessionError>()`.
#[derive(Debug)]
pub struct SessionError {
    /// The session's idempotency key.
    pub session: IdempotencyKey,
    /// The name the failing committable is registered under.
    pub committable: String,
    /// The step that failed: `"begin"`, `"begin_recovery"` or `"commit"`.
    pub step: &'static str,
    /// The committable's error.
    pub source: Error,
}

impl SessionError {
    pub(crate) fn into_error(self) -> Error {
        Error::Backend {
            backend: "store-commit",
            retryable: self.source.is_retryable(),
            source: Box::new(self),
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session {:?}: {} of committable {:?} failed (every committable was cancelled): {}",
            self.session, self.step, self.committable, self.source
        )
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
