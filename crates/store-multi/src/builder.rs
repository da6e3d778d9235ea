//! `MultiBuilder`: configuration of a fan-out.

use std::sync::Arc;

use store_core::{Backend, Result};

use crate::fan_out::MultiWriter;
use crate::mode::{ReadPolicy, WriteMode};
use crate::multi::Multi;

/// Configures a fan-out: its backends, [`WriteMode`] (default `All`) and [`ReadPolicy`]
/// (default `InOrder`).
///
/// ```
/// use std::sync::Arc;
/// use store_core::Backend;
/// use store_memory::MemoryStore;
/// use store_multi::{Multi, ReadPolicy, WriteMode};
///
/// let backends: Vec<Arc<dyn Backend>> = (0..3).map(|_| Arc::new(MemoryStore::new()) as _).collect();
/// let multi = Multi::builder(backends)
///     .mode(WriteMode::Quorum)
///     .read_policy(ReadPolicy::Fastest)
///     .build()?;
/// assert_eq!(multi.fan_out().mode(), WriteMode::Quorum);
/// assert!(Multi::new(Vec::new()).is_err(), "an empty fan-out is refused");
/// # Ok::<(), store_core::Error>(())
/// ```
#[derive(Debug)]
pub struct MultiBuilder {
    backends: Vec<Arc<dyn Backend>>,
    mode: WriteMode,
    read: ReadPolicy,
}

impl MultiBuilder {
    /// A builder for a fan-out to `backends` (indices in reports follow this order).
    pub fn new(backends: impl IntoIterator<Item = Arc<dyn Backend>>) -> Self {
        MultiBuilder {
            backends: backends.into_iter().collect(),
            mode: WriteMode::default(),
            read: ReadPolicy::default(),
        }
    }

    /// Sets the write mode.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the read policy.
    pub fn read_policy(mut self, read: ReadPolicy) -> Self {
        self.read = read;
        self
    }

    /// Builds a [`MultiWriter`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`](store_core::Error::InvalidInput) if there are no backends.
    pub fn build_writer(self) -> Result<MultiWriter> {
        MultiWriter::from_parts(self.backends, self.mode, self.read)
    }

    /// Builds a [`Multi`] (a `Backend`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](store_core::Error::InvalidInput) if there are no backends.
    pub fn build(self) -> Result<Multi> {
        self.build_writer().map(Multi::from)
    }
}
