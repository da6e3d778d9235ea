//! FsStore: a durable, atomic, confined local-filesystem [`Backend`](store_core::Backend)
//! with compare-and-swap that holds across processes.
//!
//! [`FsStore`] keeps each object as a plain file under a root directory — your data stays
//! readable with `cat`, `cp` and `rsync` — and meets the whole backend contract of
//! `store-core`: atomic puts, exclusive `Create`, `Update(version)` compare-and-swap and
//! conditional deletes that are linearizable across threads *and* processes sharing the
//! root, never-repeating versions, streaming writes, range reads, ordered listing and
//! change notification.
//!
//! ```
//! use store_core::{Backend, BackendExt, Key};
//! use store_fs::FsStore;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = FsStore::open(dir.path()).await?;
//! let key = Key::new("jobs/42/state")?;
//!
//! // A put returns once the object is on disk for good (Durability::Full, the default).
//! let v1 = store.create(&key, "queued").await?.version;
//! assert_eq!(std::fs::read(dir.path().join("jobs/42/state")).unwrap(), b"queued");
//!
//! // Compare-and-swap: only one of several writers (threads or processes) from v1 wins.
//! store.update(&key, "running", v1.clone()).await?;
//! assert!(store.update(&key, "lost update", v1).await.unwrap_err().is_conflict());
//!
//! // Or let the ready-made loop retry for you.
//! store.read_modify_write(&key, |old| Ok(format!("{}+done", String::from_utf8_lossy(old.unwrap())).into())).await?;
//! assert_eq!(store.get_bytes(&key).await?, "running+done");
//! assert_eq!(store.list_keys("jobs/").await?, [key]);
//! # Ok::<(), store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # On disk
//!
//! - Key `a/b/c` is the regular file `<root>/a/b/c`; directories are made as needed and
//!   removed again (best effort, never the root) when a delete leaves them empty.
//! - Keys may nest: `a` and `a/b` can both exist. Since `a` cannot be a file and a
//!   directory at once, the object of `a` then lives in `<root>/a/.store-self`. The move
//!   happens when the first key below `a` is written; it keeps the object's inode and
//!   version and is atomic for readers (`renameat2(RENAME_EXCHANGE)`).
//! - Internal names: the directory `<root>/.store/` (lock files), temp files and temp
//!   directories `.store-tmp-*`, and `.store-self`. **A key with a segment `.store` or
//!   starting with `.store-` is refused** with [`Error::InvalidKey`](store_core::Error::InvalidKey)
//!   by every operation; such names are never listed.
//! - Names under the root that are not valid keys (not UTF-8, control characters,
//!   backslashes) and anything that is not a regular file or directory are skipped by
//!   listings and are absent to `get`/`head`.
//!
//! # Guarantees
//!
//! **Atomic puts.** Every put — [`Backend::put`](store_core::Backend::put) and the
//! streaming [`FsWriter`] alike — writes a temp file next to the target and renames it
//! into place: a reader (in any process) sees the whole old object or the whole new one.
//! A writer streams to disk (about 1 MiB is buffered), so objects of any size use little
//! memory; dropping or aborting it removes its temp file.
//!
//! **Locking.** Every mutation takes the key's lock for the few system calls between
//! checking the current version and the rename or unlink: an in-process mutex plus an
//! exclusive `flock` on one of 64 lock files under `.store/locks/` (the key's stripe by a
//! fixed hash). `Create` additionally renames with `RENAME_NOREPLACE`, so even a writer
//! that does not use FsStore cannot be overwritten by it. Data is written and fsynced
//! *before* the lock is taken, so holding it costs microseconds.
//!
//! **Versions** are `v<inode>-<mtime ns>-<size>`. FsStore stamps each new file's mtime,
//! under the key's lock, strictly above the previous file's and above the last stamp
//! handed out under the same lock stripe (kept as the lock file's mtime), so a key's
//! versions never repeat — across delete and re-create, inode reuse, processes, and a clock
//! stepping back. Opening fails with [`Error::Unsupported`](store_core::Error::Unsupported)
//! on a file system that drops the nanoseconds of mtimes. A file changed by other tools
//! shows as a new version (its size or mtime changes).
//!
//! Filesystems store mtimes only up to a limit and clamp later ones silently (ext4: 2446,
//! or 2038 with 128-byte inodes; XFS without `bigtime`: 2038). Opening a store measures
//! that limit. A stripe whose stamps reach it — a file restored with a far-future mtime, a
//! clock past the limit — can no longer make mtimes grow, so each file it writes gets a
//! random 128-bit write id in the extended attribute `user.store.id`, and the version
//! becomes `v<inode>-<mtime ns>-<size>-<id>`. That costs one `fsetxattr` and a second
//! fsync per put, and one `fgetxattr` per read of such a file; files below the limit pay
//! nothing. A filesystem without user extended attributes refuses puts on such a stripe
//! with a clear error rather than repeat a version.
//!
//! **Durability** ([`Durability`], set with [`FsStoreBuilder::durability`]):
//! `Full` (default) fsyncs the file before the rename and its directory after it, so a put
//! that returned survives a power loss; `File` fsyncs only the file; `None` never fsyncs.
//! Concurrent puts into one directory share directory fsyncs (group commit): a put waits
//! for the next fsync that starts after its rename instead of running one of its own.
//! Deletes fsync the directory under `Full` too.
//!
//! **Listings** walk the tree lazily, a page at a time, and never collect the whole tree:
//! a key that exists throughout a listing appears exactly once and in order; keys written
//! or deleted while it runs may or may not appear. A directory or file that cannot be read
//! (permissions, I/O errors) is one error item naming it, and the listing goes on with the
//! rest: one bad entry never makes the rest of the store unlistable.
//!
//! **Crashes.** A writer killed at any point leaves each key with its old or its new
//! complete content, plus perhaps a temp file. Opening a store sweeps those (see
//! [`FsStoreBuilder::sweep_on_open`] and [`FsStore::sweep`]): live writers hold an
//! `flock` on their temp file until it is renamed, so a sweep — in any process — removes
//! only temp files whose writer is gone.
//!
//! # Confinement and symlinks
//!
//! Nothing outside the root is ever read, written, listed or deleted. Paths are never
//! handed to the kernel as strings: every directory is opened from its parent's descriptor
//! with `O_NOFOLLOW`, starting at the root's descriptor, and keys cannot contain `..`.
//!
//! **A symlink inside the root is not an object and is never followed**, wherever it
//! points: `get`, `head`, `watch` and `delete` treat it (and everything "below" it) as
//! absent; listings skip it; a put onto it or through it fails with
//! [`Error::InvalidInput`](store_core::Error::InvalidInput) naming the path, and the link
//! is left as it is. (One exception, from a race no lock can prevent: a symlink that a
//! foreign process swaps in at a key's own name between FsStore's check and its rename or
//! unlink is replaced or removed — the link itself, never its target.) FIFOs, sockets and
//! devices are treated the same way, and opening a planted FIFO never blocks.
//!
//! **Hard links count as foreign too.** A regular file with more than one name may be a
//! link to a file outside the root, so it is never read (`get`, `head`, `watch` see the
//! key absent, listings skip it) nor replaced (a put fails as above). A lock file under
//! `.store/locks/` that is not a regular file with one name makes opening the store fail,
//! naming it. (Moving an object under a directory to make room for nested keys links it
//! twice for a moment; readers wait a few milliseconds for that to settle before deciding.)
//!
//! The root path given to [`FsStore::open`] is resolved normally (it may itself be a
//! symlink); confinement starts below it.
//!
//! # Watch
//!
//! [`Backend::watch`](store_core::Backend::watch) is woken at once by changes made through
//! this store (any clone of it). Changes made by other processes — or other `FsStore`
//! instances on the same root — are noticed by looking at the key again: after 2 ms, then
//! with a doubling delay up to the [watch poll interval](FsStoreBuilder::watch_poll_interval)
//! (default 100 ms, [`DEFAULT_WATCH_POLL`]). So a foreign change is seen within about
//! 100 ms plus one `stat`. A dropped watch leaves nothing behind.
//!
//! # Threads
//!
//! All file-system work runs on tokio's blocking pool (`spawn_blocking`), never on the
//! async worker threads; a store needs a tokio runtime with the blocking pool (any
//! runtime has one). [`FsStoreBuilder::open_blocking`] opens without a runtime.
//!
//! # Limits
//!
//! - Linux (uses `renameat2`, `flock`, `openat` through `rustix`). `RENAME_EXCHANGE` and
//!   `RENAME_NOREPLACE` are used where the file system has them (ext4, xfs, btrfs, tmpfs);
//!   elsewhere nesting has a short window in which the moved key reads as absent, and
//!   `Create` falls back to `link` + `unlink` (still exclusive).
//! - `flock` between processes needs a local file system (on NFS it may not exclude).
//! - Case-insensitive file systems fold keys that differ only in case onto one file.
//! - A file-name segment is limited by the file system (usually 255 bytes); longer ones
//!   fail with an I/O error naming the key.

mod builder;
mod confine;
mod group_commit;
mod layout;
mod listing;
mod locks;
mod root;
mod stamp;
mod store;
mod sweep;
mod temp;
mod writer;

pub use builder::{DEFAULT_WATCH_POLL, Durability, FsStoreBuilder};
pub use store::FsStore;
pub use writer::FsWriter;
