//! The outcome label of an operation, shared by spans and metrics.

use store_core::{ErrorKind, Result};

/// `"ok"`, or the error's kind in snake case (`"not_found"`, `"conflict"`, `"timeout"`, …):
/// the `outcome` field of a span and label of `store_ops_total`.
pub(crate) fn outcome<T>(r: &Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => kind_label(e.kind()),
    }
}

/// The label of an operation dropped before it finished (a caller's own timeout, a `select!`).
pub(crate) const CANCELLED: &str = "cancelled";

fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::AlreadyExists => "already_exists",
        ErrorKind::Conflict => "conflict",
        ErrorKind::NotModified => "not_modified",
        ErrorKind::InvalidKey => "invalid_key",
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::InvalidPattern => "invalid_pattern",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Corrupt => "corrupt",
        ErrorKind::Poisoned => "poisoned",
        ErrorKind::Closed => "closed",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Contention => "contention",
        ErrorKind::Multi => "multi",
        ErrorKind::Io => "io",
        ErrorKind::Backend => "backend",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use store_core::Error;

    use super::*;

    #[test]
    fn labels_are_snake_case_kinds() {
        assert_eq!(outcome(&Ok(())), "ok");
        let nf: Result<()> = Err(Error::NotFound {
            op: "get",
            key: "k".into(),
        });
        assert_eq!(outcome(&nf), "not_found");
        let t: Result<()> = Err(Error::Closed { op: "put" });
        assert_eq!(outcome(&t), "closed");
    }
}
