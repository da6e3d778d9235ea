//! `MultiWriter`: the fan-out of writes, with per-backend reports.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use store_core::{Backend, Capabilities, Error, Key, MultiError, PutOptions, Result};

use crate::builder::MultiBuilder;
use crate::commit::{self, Phase};
use crate::failures::{FailureLog, FailureRecord};
use crate::locks::KeyLocks;
use crate::mode::{ReadPolicy, WriteMode};
use crate::report::WriteReport;
use crate::writer::FanOutWriter;

/// What a `MultiWriter` and the `Multi` built on it share.
pub(crate) struct Shared {
    pub(crate) backends: Vec<Arc<dyn Backend>>,
    pub(crate) mode: WriteMode,
    pub(crate) read: ReadPolicy,
    pub(crate) locks: KeyLocks,
    pub(crate) failures: FailureLog,
}

/// Writes the same object to several backends at once.
///
/// [`put`](Self::put) hands a whole object to each backend's own `put`, all at once. A
/// streamed write ([`writer`](Self::writer)) sends every chunk to every backend
/// **concurrently** (the same [`Bytes`] shared, never copied per backend), and commits on
/// every backend on close. The [`WriteMode`] decides when that counts as a success; the
/// [`WriteReport`] says what happened on each backend.
///
/// ```
/// use std::sync::Arc;
/// use store_core::{Backend, BackendExt, Key, PutOptions};
/// use store_memory::MemoryStore;
/// use store_multi::{MultiWriter, WriteMode};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> store_core::Result<()> {
/// let (a, b) = (MemoryStore::new(), MemoryStore::new());
/// let fan = MultiWriter::builder([Arc::new(a.clone()) as Arc<dyn Backend>, Arc::new(b.clone())])
///     .mode(WriteMode::All)
///     .build_writer()?;
/// let key = Key::new("logs/today")?;
/// let mut w = fan.writer(&key, PutOptions::default()).await?;
/// w.write("line 1\n".into()).await?;
/// w.write("line 2\n".into()).await?;
/// let report = w.close().await?;
/// assert_eq!(report.committed(), [0, 1]);
/// assert_eq!(a.get_bytes(&key).await?, "line 1\nline 2\n");
/// assert_eq!(b.get_bytes(&key).await?, "line 1\nline 2\n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MultiWriter {
    pub(crate) shared: Arc<Shared>,
}

impl MultiWriter {
    /// A fan-out to `backends` in [`WriteMode::All`] with [`ReadPolicy::InOrder`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `backends` is empty.
    pub fn new(backends: impl IntoIterator<Item = Arc<dyn Backend>>) -> Result<Self> {
        MultiBuilder::new(backends).build_writer()
    }

    /// A builder, to choose the write mode and read policy.
    pub fn builder(backends: impl IntoIterator<Item = Arc<dyn Backend>>) -> MultiBuilder {
        MultiBuilder::new(backends)
    }

    pub(crate) fn from_parts(
        backends: Vec<Arc<dyn Backend>>,
        mode: WriteMode,
        read: ReadPolicy,
    ) -> Result<Self> {
        if backends.is_empty() {
            return Err(Error::invalid_input(
                "new",
                None,
                "a fan-out needs at least one backend",
            ));
        }
        Ok(MultiWriter {
            shared: Arc::new(Shared {
                backends,
                mode,
                read,
                locks: KeyLocks::new(),
                failures: FailureLog::default(),
            }),
        })
    }

    /// The write mode.
    pub fn mode(&self) -> WriteMode {
        self.shared.mode
    }

    /// The read policy (used by [`Multi`](crate::Multi)).
    pub fn read_policy(&self) -> ReadPolicy {
        self.shared.read
    }

    /// The backends, in configuration order (the indices used in reports and errors).
    pub fn backends(&self) -> &[Arc<dyn Backend>] {
        &self.shared.backends
    }

    /// What every backend guarantees (see [`Multi`](crate::Multi)'s `capabilities`).
    pub fn capabilities(&self) -> Capabilities {
        let all = self
            .shared
            .backends
            .iter()
            .map(|b| b.capabilities())
            .reduce(Capabilities::intersection)
            .unwrap_or(Capabilities::NONE);
        // Conditional writes are coordinated by a lock inside this process: another
        // process writing the same backends is not part of that agreement. After a
        // tolerated failure, one composite version names copies that differ.
        all.with_shared(false).with_stable_versions(false)
    }

    /// Opens a writer on every backend at once, for a streamed write. `opts.mode` is
    /// applied at close, against the composite version (see the crate documentation).
    ///
    /// # Errors
    /// If too many backends fail to open a writer for the write mode, a
    /// [`MultiError`] listing them (the writers that did open are aborted).
    pub async fn writer(&self, key: &Key, opts: PutOptions) -> Result<FanOutWriter> {
        FanOutWriter::open(Arc::clone(&self.shared), key, opts).await
    }

    /// Writes `data` as the whole object: each backend gets it in one `put` of its own
    /// (streaming backend or not), all at once. Under the key's lock: for `Create` and
    /// `Update` one `head` per backend (the conditional check), then the puts, judged by
    /// the write mode as a streamed write's commit is (see
    /// [`FanOutWriter::close`]). A backend that cannot tell its state for the check is not
    /// written.
    ///
    /// # Errors
    /// As [`FanOutWriter::close`]; also a [`MultiError`] if too few backends could be
    /// checked for the write mode.
    pub async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<WriteReport> {
        let shared = &self.shared;
        let n = shared.backends.len();
        let modes = commit::backend_modes(&opts.mode, n);
        let (phase, unchecked) = Phase::begin(shared, key, opts.mode, |_| true).await?;
        if n - unchecked.len() < shared.mode.required(n) {
            return Err(MultiError::new(unchecked).into());
        }
        let size = data.len() as u64;
        let commits = modes
            .into_iter()
            .enumerate()
            .filter(|(i, _)| unchecked.iter().all(|(j, _)| j != i))
            .map(|(i, mode)| (i, commit::put(&shared.backends[i], key, data.clone(), mode)))
            .collect();
        phase.commit(size, commits, unchecked).await
    }

    /// The most recent backend failures that successful writes tolerated (at most
    /// [`FAILURE_LOG_LEN`](crate::FAILURE_LOG_LEN), oldest first), including those of
    /// `Quorum` writes' backends that answered after the write returned.
    pub fn recent_failures(&self) -> Vec<FailureRecord> {
        self.shared.failures.snapshot()
    }
}

impl fmt::Debug for MultiWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiWriter")
            .field("backends", &self.shared.backends)
            .field("mode", &self.shared.mode)
            .field("read", &self.shared.read)
            .finish()
    }
}
