//! The state a store shares between its clones and blocking tasks, and the blocking
//! operations that mutate it: committing a temp file under the key's lock, and deleting.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use store_core::{Error, Key, Meta, PutMode, Result, Version};

use crate::builder::{Durability, FsStoreBuilder};
use crate::confine::{INTERNAL_DIR, SELF_NAME, foreign_entry, io_error, open_dir, retry, walk_parent};
use crate::group_commit::GroupCommit;
use crate::layout::{Located, RACE_RETRIES, locate, prepare_parent, remove_empty_dirs};
use crate::locks::LockTable;
use crate::stamp::{self, Ceiling};
use crate::temp::TempFile;
use store_core::WatcherRegistry;

/// One open store root.
#[derive(Debug)]
pub(crate) struct Root {
    pub(crate) fd: OwnedFd,
    pub(crate) path: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) locks: LockTable,
    pub(crate) group: GroupCommit,
    pub(crate) watchers: Arc<WatcherRegistry>,
    pub(crate) watch_poll: Duration,
    /// The largest mtime the filesystem stores (see [`stamp`](crate::stamp)).
    pub(crate) ceiling: Ceiling,
}

impl Root {
    pub(crate) fn open(opts: &FsStoreBuilder) -> Result<Root> {
        let shown = opts.root.display().to_string();
        let io = |e: std::io::Error| Error::io("open", &shown, e);
        if opts.create_root {
            std::fs::create_dir_all(&opts.root).map_err(io)?;
        }
        let fd = rustix::fs::open(
            &opts.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(e.into()))?;
        match rustix::fs::mkdirat(&fd, INTERNAL_DIR, Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io(e.into())),
        }
        let internal = open_dir(fd.as_fd(), INTERNAL_DIR).map_err(|e| {
            io(std::io::Error::new(
                std::io::Error::from(e).kind(),
                format!("{INTERNAL_DIR} under the root is not a directory FsStore can use: {e}"),
            ))
        })?;
        check_nanosecond_mtimes(internal.as_fd()).map_err(|e| io(e.into()))?.then_some(()).ok_or(
            Error::Unsupported {
                operation: "open (this filesystem drops nanoseconds of modification times, so versions could repeat)",
                backend: "FsStore",
            },
        )?;
        let ceiling = Ceiling::probe(internal.as_fd()).map_err(|e| io(e.into()))?;
        let locks = LockTable::open(internal.as_fd()).map_err(io)?;
        Ok(Root {
            fd,
            path: opts.root.clone(),
            durability: opts.durability,
            locks,
            group: GroupCommit::default(),
            watchers: Arc::new(WatcherRegistry::default()),
            watch_poll: opts.watch_poll,
            ceiling,
        })
    }

    fn sync_dir(&self, dir: BorrowedFd<'_>, op: &'static str, key: &Key) -> Result<()> {
        if self.durability == Durability::Full {
            self.group.sync(dir).map_err(|e| Error::io(op, key, e))?;
        }
        Ok(())
    }

    fn wake(&self, key: &Key) {
        self.watchers.wake(key);
    }

    /// Creates a temp file in `key`'s directory (creating directories as needed).
    pub(crate) fn create_temp(&self, key: &Key, op: &'static str) -> Result<TempFile> {
        for _ in 0..RACE_RETRIES {
            let dir = prepare_parent(self, key, op)?;
            match TempFile::create(dir) {
                Ok(t) => return Ok(t),
                // The directory was removed (emptied by a delete) between opening and
                // creating: prepare it again.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(io_error(op, key, e)),
            }
        }
        Err(io_error(op, key, Errno::AGAIN))
    }

    /// Renames a fully written temp file into place as `key`'s object, if `mode` allows,
    /// and makes that durable as configured.
    pub(crate) fn commit(
        &self,
        key: &Key,
        mut tmp: TempFile,
        mode: &PutMode,
        op: &'static str,
    ) -> Result<Meta> {
        let io = |e| io_error(op, key, e);
        let fsync = |tmp: &TempFile| -> Result<()> {
            if self.durability != Durability::None {
                tmp.file.sync_all().map_err(|e| Error::io(op, key, e))?;
            }
            Ok(())
        };
        // The mtime (part of the version) is proposed and the data fsynced before taking
        // the lock, so the lock is held only for a few metadata calls. Under the lock the
        // stamp is checked against the stripe's last one and bumped in the rare case it is
        // not newer; at the filesystem's mtime ceiling, where it cannot grow, the file gets
        // a write id instead (see `stamp`).
        let mut stamp = self.ceiling.cap(stamp::propose());
        let mut write_id: Option<String> = None;
        tmp.set_mtime(stamp).map_err(io)?;
        fsync(&tmp)?;
        let leaf = key.name();
        let mut tries = 0;
        // The directory the object now lives in, when it is not the temp file's.
        let nested = loop {
            tries += 1;
            if tries > RACE_RETRIES {
                return Err(io(Errno::AGAIN));
            }
            let lock = self.locks.lock(key.as_str()).map_err(io)?;
            let located = locate(tmp.dir.as_fd(), leaf).map_err(io)?;
            if matches!(located, Located::Foreign) {
                return Err(foreign_entry(op, key, key.as_str()));
            }
            let current = located.version(tmp.dir.as_fd(), leaf, self.ceiling).map_err(io)?;
            check_mode(mode, current.as_ref().map(|(v, _)| v), key, op)?;
            let floor = lock
                .last_stamp()
                .map_err(io)?
                .max(current.as_ref().map_or(i128::MIN, |(_, st)| stamp::mtime_ns(st)));
            let mut changed = false;
            if stamp <= floor {
                stamp = self.ceiling.cap(floor + 1);
                tmp.set_mtime(stamp).map_err(io)?;
                changed = true;
            }
            // At the ceiling the mtime no longer tells versions apart: the write id does.
            if self.ceiling.reached_ns(stamp) && write_id.is_none() {
                let id = stamp::new_write_id();
                stamp::set_write_id(tmp.file.as_fd(), &id).map_err(|e| ceiling_error(op, key, e))?;
                write_id = Some(id);
                changed = true;
            }
            if changed {
                fsync(&tmp)?;
            }
            lock.record_stamp(stamp).map_err(io)?;
            let flags = if matches!(mode, PutMode::Create) {
                RenameFlags::NOREPLACE
            } else {
                RenameFlags::empty()
            };
            let (target_dir, target_name): (BorrowedFd<'_>, &str) = match &located {
                Located::Nested(d, _) => (d.as_fd(), SELF_NAME),
                _ => (tmp.dir.as_fd(), leaf),
            };
            let renamed =
                match rustix::fs::renameat_with(&tmp.dir, &tmp.name, target_dir, target_name, flags) {
                    Err(Errno::INVAL) if !flags.is_empty() => {
                        // No RENAME_NOREPLACE here: link() never replaces either.
                        rustix::fs::linkat(&tmp.dir, &tmp.name, target_dir, target_name, AtFlags::empty())
                            .map(|()| {
                                let _ = rustix::fs::unlinkat(&tmp.dir, &tmp.name, AtFlags::empty());
                            })
                    }
                    other => other,
                };
            match renamed {
                Ok(()) => {
                    tmp.disarm();
                    break match located {
                        Located::Nested(d, _) => Some(d),
                        _ => None,
                    };
                }
                // Something appeared at the leaf since `locate` (a directory made by a put
                // of a nested key, or a file by a foreign process): look again.
                Err(Errno::EXIST | Errno::ISDIR | Errno::NOTDIR | Errno::NOTEMPTY) => continue,
                Err(e) => return Err(io(e)),
            }
        };
        let st = rustix::fs::fstat(&tmp.file).map_err(io)?;
        self.wake(key);
        // The temp file (now the object) and its directory stay open until the directory
        // is synced: no descriptor to duplicate.
        let dir = nested.as_ref().map_or(tmp.dir.as_fd(), |d| d.as_fd());
        self.sync_dir(dir, op, key)?;
        drop(tmp);
        let meta = stamp::meta(key.clone(), &st, stamp::version(&st, write_id.as_deref()));
        tracing::trace!(key = %key, version = %meta.version, size = meta.size, "fs put");
        Ok(meta)
    }

    /// Deletes `key`'s object, if `if_match` allows.
    pub(crate) fn delete(&self, key: &Key, if_match: Option<&Version>) -> Result<()> {
        let op = "delete";
        let io = |e| io_error(op, key, e);
        let not_found = || Error::NotFound {
            op,
            key: key.to_string(),
        };
        let parent = walk_parent(self.fd.as_fd(), key)
            .map_err(io)?
            .ok_or_else(not_found)?;
        let dir = {
            let _lock = self.locks.lock(key.as_str()).map_err(io)?;
            let located = locate(parent.as_fd(), key.name()).map_err(io)?;
            let Some((actual, _)) = located
                .version(parent.as_fd(), key.name(), self.ceiling)
                .map_err(io)?
            else {
                return Err(not_found());
            };
            if let Some(want) = if_match
                && want != &actual
            {
                return Err(Error::Conflict {
                    op,
                    key: key.to_string(),
                    expected: Some(want.clone()),
                    actual: Some(actual),
                });
            }
            match located {
                Located::Nested(d, _) => {
                    retry(|| rustix::fs::unlinkat(&d, SELF_NAME, AtFlags::empty())).map_err(io)?;
                    d
                }
                _ => {
                    retry(|| rustix::fs::unlinkat(&parent, key.name(), AtFlags::empty())).map_err(io)?;
                    parent
                }
            }
        };
        self.wake(key);
        self.sync_dir(dir.as_fd(), op, key)?;
        remove_empty_dirs(self.fd.as_fd(), key);
        tracing::trace!(key = %key, "fs delete");
        Ok(())
    }
}
/// The error for a put that needs a write id (at the mtime ceiling) on a filesystem that
/// cannot store one: refusing is the only way not to repeat a version.
fn ceiling_error(op: &'static str, key: &Key, e: Errno) -> Error {
    Error::io(
        op,
        key,
        std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!(
                "this key's lock stripe has reached the largest modification time the filesystem \
                 stores, so FsStore marks new versions with the extended attribute user.store.id, \
                 which this filesystem refused ({e})"
            ),
        ),
    )
}

/// Applies a put mode to the current object's version (`None` = absent).
fn check_mode(mode: &PutMode, current: Option<&Version>, key: &Key, op: &'static str) -> Result<()> {
    match (mode, current) {
        (PutMode::Overwrite, _) | (PutMode::Create, None) => Ok(()),
        (PutMode::Create, Some(actual)) => Err(Error::AlreadyExists {
            op,
            key: key.to_string(),
            version: actual.clone(),
        }),
        (PutMode::Update(_), None) => Err(Error::NotFound {
            op,
            key: key.to_string(),
        }),
        (PutMode::Update(want), Some(actual)) => {
            if want == actual {
                Ok(())
            } else {
                Err(Error::Conflict {
                    op,
                    key: key.to_string(),
                    expected: Some(want.clone()),
                    actual: Some(actual.clone()),
                })
            }
        }
    }
}

/// Whether the filesystem keeps the nanoseconds of an mtime we set.
fn check_nanosecond_mtimes(internal: BorrowedFd<'_>) -> rustix::io::Result<bool> {
    let probe = 1_600_000_000_123_456_789i128;
    Ok(stamp::stored_mtime(internal, probe)? == Some(probe))
}
