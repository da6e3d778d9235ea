//! [`MultiError`]: the errors of several backends at once.

use std::fmt;

use crate::error::Error;

/// Errors from several backends at once, each with the index of the backend that raised it.
///
/// Display shows the first error's message, then how many more there are:
/// `"<first> (and 2 more errors)"`; one error shows just its message, an empty list
/// `"no errors"`. `source()` is the first error. The full list, with the index of the
/// backend behind each error, is in [`MultiError::errors`].
///
/// ```
/// use store_core::{Error, MultiError};
///
/// let e = MultiError::new(vec![
///     (0, Error::Closed { op: "put" }),
///     (2, Error::Closed { op: "put" }),
/// ]);
/// assert_eq!(e.to_string(), "put: closed (and 1 more error)");
/// assert_eq!(e.errors[1].0, 2);
/// assert_eq!(MultiError::default().to_string(), "no errors");
/// ```
#[derive(Debug, Default)]
pub struct MultiError {
    /// `(backend index, error)` pairs, in the order the failures were collected.
    pub errors: Vec<(usize, Error)>,
}

impl MultiError {
    /// Wraps a list of `(backend index, error)` pairs.
    pub fn new(errors: Vec<(usize, Error)>) -> Self {
        MultiError { errors }
    }

    /// True if there are no errors.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The errors of a write that some other part (backend, store) *did* apply: each
    /// [`Error::is_not_applied`] error becomes an [`Error::outcome_unknown`] one, so that
    /// the whole is never taken for a write that changed nothing and sent again (a
    /// conditional write would then conflict with itself). `backend` names the composite.
    pub fn after_partial_apply(self, backend: &'static str) -> MultiError {
        let errors = self
            .errors
            .into_iter()
            .map(|(i, e)| match e.is_not_applied() {
                true => (
                    i,
                    Error::outcome_unknown(
                        backend,
                        format!("part {i} refused a write another part applied: {e}"),
                        None,
                    ),
                ),
                false => (i, e),
            })
            .collect();
        MultiError { errors }
    }
}

impl fmt::Display for MultiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => f.write_str("no errors"),
            [(_, e)] => write!(f, "{e}"),
            [(_, e), rest @ ..] => {
                let n = rest.len();
                write!(f, "{e} (and {n} more error{})", if n == 1 { "" } else { "s" })
            }
        }
    }
}

impl std::error::Error for MultiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .first()
            .map(|(_, e)| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Vec<(usize, Error)>> for MultiError {
    fn from(errors: Vec<(usize, Error)>) -> Self {
        MultiError { errors }
    }
}
