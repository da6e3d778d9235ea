//! What a failed write says about its effect: [`Error::not_applied`], [`Error::outcome_unknown`]
//! and the [`WriteResolver`] that can settle the latter.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use crate::error::{Error, Result};
use crate::meta::Meta;

/// The cause an [`Error::Backend`] carries, boxed.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// A retryable [`Error::Backend`] for a request the backend knows was **never applied**
    /// (refused before it was sent, rejected by a server that changed nothing). A retry layer
    /// may send such a conditional write again; see [`Error::is_not_applied`].
    ///
    /// ```
    /// use store_core::Error;
    ///
    /// let e = Error::not_applied("s3", "connection refused");
    /// assert!(e.is_not_applied() && e.is_retryable() && !e.is_outcome_unknown());
    /// assert_eq!(e.to_string(), "s3: connection refused (not applied)");
    /// ```
    pub fn not_applied(backend: &'static str, cause: impl Into<Cause>) -> Error {
        Error::Backend {
            backend,
            retryable: true,
            source: Box::new(NotApplied(cause.into())),
        }
    }

    /// Whether this error proves that the request changed nothing, so that sending it again
    /// cannot apply a write twice: an [`Error::not_applied`], or a [`MultiError`](crate::MultiError) made only
    /// of those. Any other error of a write leaves its outcome open.
    pub fn is_not_applied(&self) -> bool {
        match self {
            Error::Backend { source, .. } => source.is::<NotApplied>(),
            Error::Multi(m) => !m.errors.is_empty() && m.errors.iter().all(|(_, e)| e.is_not_applied()),
            _ => false,
        }
    }

    /// A retryable [`Error::Backend`] for a write that may or may not have been applied (its
    /// reply was lost, it timed out). Whoever gets it must not send the same conditional
    /// write again blindly: read the key first. A backend that can find out later whether
    /// its own write landed (a write id it can read back) passes a [`WriteResolver`].
    ///
    /// ```
    /// use store_core::Error;
    ///
    /// let e = Error::outcome_unknown("s3", "put \"k\": connection reset", None);
    /// assert!(e.is_outcome_unknown() && e.is_retryable() && !e.is_not_applied());
    /// assert!(e.to_string().contains("outcome unknown"), "{e}");
    /// ```
    pub fn outcome_unknown(
        backend: &'static str,
        cause: impl Into<Cause>,
        resolver: Option<WriteResolver>,
    ) -> Error {
        Error::Backend {
            backend,
            retryable: true,
            source: Box::new(OutcomeUnknown {
                cause: cause.into(),
                resolver,
            }),
        }
    }

    /// Whether this is an [`Error::outcome_unknown`]: a write that may have been applied.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::Backend { source, .. } if source.is::<OutcomeUnknown>())
    }

    /// The [`WriteResolver`] of an [`Error::outcome_unknown`], if its backend gave one.
    pub fn resolver(&self) -> Option<&WriteResolver> {
        match self {
            Error::Backend { source, .. } => source.downcast_ref::<OutcomeUnknown>()?.resolver.as_ref(),
            _ => None,
        }
    }
}

/// The source of an [`Error::not_applied`].
#[derive(Debug)]
struct NotApplied(Cause);

impl fmt::Display for NotApplied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (not applied)", self.0)
    }
}

impl std::error::Error for NotApplied {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The source of an [`Error::outcome_unknown`].
#[derive(Debug)]
struct OutcomeUnknown {
    cause: Cause,
    resolver: Option<WriteResolver>,
}

impl fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (outcome unknown: the write may have been applied; read the key before trying again)",
            self.cause
        )
    }
}

impl std::error::Error for OutcomeUnknown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// Finds out whether a write whose outcome is unknown was applied, for a backend that can
/// tell (say, one that stores a unique write id with every object and reads it back).
///
/// [`resolve`](Self::resolve) answers `Ok(Some(meta))` if the write was applied (its
/// metadata), `Ok(None)` if the backend does not hold it now (it was never applied, or was
/// and has since been replaced: which of the two cannot be established), and an error if
/// asking failed (it may be asked again). Callers rely on `None`: a rollback of the write,
/// say, then has nothing of it to undo. Cloning is cheap.
///
/// ```
/// use store_core::{Error, WriteResolver};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let resolver = WriteResolver::new(|| async { Ok(None) });
/// let e = Error::outcome_unknown("s3", "connection reset", Some(resolver));
/// assert!(e.resolver().unwrap().resolve().await.unwrap().is_none());
/// # }
/// ```
#[derive(Clone)]
pub struct WriteResolver(Arc<dyn Fn() -> BoxFuture<'static, Result<Option<Meta>>> + Send + Sync>);

impl WriteResolver {
    /// A resolver that runs `check` each time it is asked.
    pub fn new<F, Fut>(check: F) -> WriteResolver
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Meta>>> + Send + 'static,
    {
        WriteResolver(Arc::new(move || check().boxed()))
    }

    /// Whether the write was applied: its metadata if so, `None` if the backend does not
    /// hold it now.
    pub async fn resolve(&self) -> Result<Option<Meta>> {
        (self.0)().await
    }
}

impl fmt::Debug for WriteResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriteResolver(..)")
    }
}
