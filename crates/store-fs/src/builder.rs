//! Opening a store: [`FsStoreBuilder`] and [`Durability`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use store_core::{Error, Result};

use crate::root::Root;
use crate::store::FsStore;

/// How much a successful put (or delete) guarantees about surviving a crash or power loss.
///
/// Every level is equally *atomic*: a reader never sees a partial object, whatever
/// happens. They differ in what is still there after the machine goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// No fsync at all. A crash of the *process* loses nothing (the kernel has the data);
    /// a power loss may lose recent puts (each key then shows an older complete version,
    /// or is absent). The fastest.
    None,
    /// The file's content is fsynced before it is renamed into place, so an object that
    /// survives a power loss is complete — but the rename itself may be lost (the key
    /// shows its previous version).
    File,
    /// The default: fsync the file, rename it, then fsync its directory, before the put
    /// returns. A put that returned survives a power loss. Directory fsyncs of concurrent
    /// puts into one directory are shared (group commit).
    #[default]
    Full,
}

/// Options for opening an [`FsStore`].
///
/// ```
/// use std::time::Duration;
/// use store_fs::{Durability, FsStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = FsStore::builder(dir.path())
///     .durability(Durability::File)
///     .watch_poll_interval(Duration::from_millis(50))
///     .open()
///     .await?;
/// assert_eq!(store.durability(), Durability::File);
/// # Ok::<(), store_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FsStoreBuilder {
    pub(crate) root: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) create_root: bool,
    pub(crate) sweep: bool,
    pub(crate) watch_poll: Duration,
}

/// The default longest delay between two looks at a watched key for changes made by other
/// processes.
pub const DEFAULT_WATCH_POLL: Duration = Duration::from_millis(100);

impl FsStoreBuilder {
    /// Options for a store rooted at `root`, with the defaults: [`Durability::Full`],
    /// create the root directory if missing, sweep crashed writers' temp files on open,
    /// and poll watched keys for other processes' changes at least every 100 ms.
    pub fn new(root: impl AsRef<Path>) -> Self {
        FsStoreBuilder {
            root: root.as_ref().to_path_buf(),
            durability: Durability::default(),
            create_root: true,
            sweep: true,
            watch_poll: DEFAULT_WATCH_POLL,
        }
    }

    /// Sets the durability of puts and deletes.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether `open` creates the root directory (and its parents) if missing; if not, a
    /// missing root is an error. Default `true`.
    pub fn create_root(mut self, create: bool) -> Self {
        self.create_root = create;
        self
    }

    /// Whether `open` walks the whole tree to remove temp files left by crashed writers.
    /// Default `true`. Turn it off for huge trees and call [`FsStore::sweep`] when
    /// convenient instead. Temp files of writers that are still alive (in any process) are
    /// never removed.
    pub fn sweep_on_open(mut self, sweep: bool) -> Self {
        self.sweep = sweep;
        self
    }

    /// The longest delay between two looks at a watched key (see [`FsStore`]'s section on
    /// watch): changes by *other processes* are noticed within about this long. Changes
    /// made through this store wake watchers at once regardless. Default 100 ms; at least
    /// 1 ms.
    pub fn watch_poll_interval(mut self, interval: Duration) -> Self {
        self.watch_poll = interval.max(Duration::from_millis(1));
        self
    }

    /// Opens the store (on a blocking thread: creating the root, the lock files and the
    /// sweep do I/O).
    ///
    /// # Errors
    /// [`Error::Io`] naming the root if it cannot be created or opened, or if `.store`
    /// under it is not a directory; [`Error::Unsupported`] if the filesystem does not keep
    /// nanosecond modification times (versions could repeat).
    pub async fn open(self) -> Result<FsStore> {
        tokio::task::spawn_blocking(move || self.open_blocking())
            .await
            .map_err(|e| Error::io("open", "<root>", std::io::Error::other(e)))?
    }

    /// [`open`](Self::open) without a runtime, blocking the calling thread.
    pub fn open_blocking(self) -> Result<FsStore> {
        let root = Root::open(&self)?;
        let root = Arc::new(root);
        if self.sweep {
            let removed = crate::sweep::sweep(&root)?;
            if removed > 0 {
                tracing::info!(root = %self.root.display(), removed, "removed temp files of crashed writers");
            }
        }
        Ok(FsStore::from_root(root))
    }
}
