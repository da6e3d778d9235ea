//! A bounded log of the backend failures that did not fail a write.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use store_core::Error;

/// How many failures [`MultiWriter::recent_failures`](crate::MultiWriter::recent_failures)
/// keeps.
pub const FAILURE_LOG_LEN: usize = 256;

/// A backend failure that a successful `BestEffort` or `Quorum` write tolerated.
///
/// Through [`MultiWriter`](crate::MultiWriter) the failure is also in the
/// [`WriteReport`](crate::WriteReport); through the `Backend` trait (which can only return
/// a `Meta`) this log and a `tracing` warning are where it goes — never nowhere.
#[derive(Debug, Clone)]
pub struct FailureRecord {
    /// The operation (`"put"`, `"delete"`).
    pub op: &'static str,
    /// The key written.
    pub key: String,
    /// The index of the backend that failed.
    pub backend: usize,
    /// What went wrong.
    pub error: Arc<Error>,
}

#[derive(Default)]
pub(crate) struct FailureLog {
    records: Mutex<VecDeque<FailureRecord>>,
}

impl FailureLog {
    pub(crate) fn record(&self, op: &'static str, key: &str, backend: usize, error: Arc<Error>) {
        tracing::warn!(op, key, backend, error = %error, "store-multi: a backend failed; the write succeeded without it");
        let mut records = self.records.lock();
        if records.len() == FAILURE_LOG_LEN {
            records.pop_front();
        }
        records.push_back(FailureRecord {
            op,
            key: key.to_owned(),
            backend,
            error,
        });
    }

    pub(crate) fn snapshot(&self) -> Vec<FailureRecord> {
        self.records.lock().iter().cloned().collect()
    }
}
