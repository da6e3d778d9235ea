//! `ReplicaBuilder`: the configuration of a replica, separate from the running object.

use std::sync::Arc;

use store_core::{Backend, Result};

use crate::ShutdownToken;
use crate::replica::Replica;

/// The queue length [`ReplicaBuilder`] uses unless told otherwise.
pub const DEFAULT_QUEUE_LEN: usize = 1024;

/// Configures a [`Replica`]: its sync stores (the first is the primary), its async stores,
/// the length of each async queue, and an optional [`ShutdownToken`].
///
/// ```
/// use store_memory::MemoryStore;
/// use store_replica::{Replica, ShutdownToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> store_core::Result<()> {
/// let token = ShutdownToken::new();
/// let replica = Replica::builder()
///     .sync_store(MemoryStore::new())
///     .async_store(MemoryStore::new())
///     .queue_len(64)
///     .shutdown(token.clone())
///     .build()?;
/// assert_eq!(replica.queue_len(), 64);
/// // An empty sync list or a zero queue length is refused:
/// assert!(Replica::builder().async_store(MemoryStore::new()).build().is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReplicaBuilder {
    pub(crate) sync: Vec<Arc<dyn Backend>>,
    pub(crate) async_: Vec<Arc<dyn Backend>>,
    pub(crate) queue_len: usize,
    pub(crate) shutdown: Option<ShutdownToken>,
}

impl Default for ReplicaBuilder {
    fn default() -> Self {
        ReplicaBuilder {
            sync: Vec::new(),
            async_: Vec::new(),
            queue_len: DEFAULT_QUEUE_LEN,
            shutdown: None,
        }
    }
}

impl ReplicaBuilder {
    /// An empty configuration with a queue length of [`DEFAULT_QUEUE_LEN`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a synchronous store. The first one added is the primary: its versions are the
    /// replica's versions and its compare-and-swap decides conditional writes.
    pub fn sync_store(mut self, store: impl Backend) -> Self {
        self.sync.push(Arc::new(store));
        self
    }

    /// Adds an asynchronous store.
    pub fn async_store(mut self, store: impl Backend) -> Self {
        self.async_.push(Arc::new(store));
        self
    }

    /// Sets how many operations each async store may lag behind before puts wait (≥ 1).
    pub fn queue_len(mut self, n: usize) -> Self {
        self.queue_len = n;
        self
    }

    /// Stops the async tasks when `token` is cancelled, leaving the replica in its error
    /// state with an [`Error::Closed`](store_core::Error::Closed) cause.
    pub fn shutdown(mut self, token: ShutdownToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Builds the replica and starts one background task per async store.
    ///
    /// # Errors
    /// [`Error::InvalidInput`](store_core::Error::InvalidInput) if there is no sync store,
    /// if the queue length is 0 or too large, or if there are async stores but no tokio
    /// runtime to run their tasks on.
    pub fn build(self) -> Result<Replica> {
        Replica::from_builder(self)
    }
}
