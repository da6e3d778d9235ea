//! Turning `object_store` errors into store errors that name the operation and the key.

use store_core::{Error, Key};

/// The backend name used in [`Error::Backend`] and [`Error::Unsupported`].
pub(crate) const BACKEND: &str = "store-cloud";

/// Maps an `object_store` error from `op` on `key`.
///
/// Conditions a caller matches on keep their meaning (`NotFound`, `NotModified`, a failed
/// precondition becomes `Conflict`); everything else is an [`Error::Backend`] whose message
/// names the operation and key. `AlreadyExists` is mapped by the caller, which knows the
/// existing version.
pub(crate) fn map_err(op: &'static str, key: &Key, e: object_store::Error) -> Error {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Error::NotFound {
            op,
            key: key.to_string(),
        },
        E::NotModified { .. } => Error::NotModified {
            op,
            key: key.to_string(),
        },
        E::Precondition { .. } => Error::Conflict {
            op,
            key: key.to_string(),
            expected: None,
            actual: None,
        },
        E::NotImplemented { .. } | E::NotSupported { .. } => Error::Unsupported {
            operation: op,
            backend: BACKEND,
        },
        other => {
            // Network and server errors were already retried by object_store's own policy;
            // a generic error may still be transient (a connection reset), the rest is not.
            let retryable = matches!(other, E::Generic { .. } | E::JoinError { .. });
            Error::Backend {
                backend: BACKEND,
                retryable,
                source: format!("{op} {:?}: {other}", key.as_str()).into(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_their_meaning_and_name_the_key() {
        let k = Key::new("a/b").unwrap();
        let nf = map_err(
            "get",
            &k,
            object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            },
        );
        assert!(nf.is_not_found());
        assert!(nf.to_string().contains("\"a/b\""), "{nf}");
        let pre = map_err(
            "put",
            &k,
            object_store::Error::Precondition {
                path: "x".into(),
                source: "412".into(),
            },
        );
        assert!(pre.is_conflict());
        let other = map_err(
            "put",
            &k,
            object_store::Error::Generic {
                store: "S3",
                source: "connection refused".into(),
            },
        );
        let msg = other.to_string();
        assert!(
            msg.contains("put \"a/b\"") && msg.contains("connection refused"),
            "{msg}"
        );
        assert!(other.is_retryable());
    }
}
