//! Where a key lives on disk.
//!
//! Key `a/b/c` is the regular file `<root>/a/b/c`. Keys may also nest (`a` and `a/b` can
//! both exist), and a path cannot be a file and a directory at once; so when `a` must
//! become a directory while it holds an object, the object moves — same inode, same
//! version, atomically for readers — to `<root>/a/.store-self`:
//!
//! 1. under key `a`'s lock, make a temp directory and hard-link the file into it as
//!    `.store-self`;
//! 2. swap the temp directory and the file with `renameat2(RENAME_EXCHANGE)` — a reader
//!    opening `a` sees the file or the directory, and both hold the same object;
//! 3. unlink the old name (now the temp name).
//!
//! A directory never turns back into a file (the `.store-self` stays when `a/b` is
//! deleted); empty directories are removed after deletes.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, RenameFlags, Stat};
use rustix::io::Errno;
use store_core::{Error, Key, Result, Version};

use crate::builder::Durability;
use crate::confine::{
    SELF_NAME, dup, foreign_entry, io_error, kind_at, open_dir, read_flags, retry, walk_parent,
};
use crate::locks::LockTable;
use crate::root::Root;
use crate::stamp::Ceiling;
use crate::temp::{still_linked, unique_name};

/// How often a path operation retries when a concurrent writer changes the path under it
/// (a directory created or removed meanwhile) before giving up.
pub(crate) const RACE_RETRIES: usize = 64;

/// Whether `st` is a regular file with one name (or none: a file opened for reading and
/// replaced since): the only files FsStore treats as objects. A hard link to a file
/// outside the root must never be read through the store.
fn is_object_file(st: &Stat) -> bool {
    is(st, FileType::RegularFile) && st.st_nlink <= 1
}

/// Runs a reader's `look`, and once more under `key`'s lock if it met a regular file with
/// several names (its flag): moving an object into `.store-self` (see the module docs)
/// links it twice while holding that lock, so the second answer is settled — a file still
/// linked twice then is a hard link planted from outside, and foreign.
fn settled<T>(
    locks: &LockTable,
    key: &str,
    mut look: impl FnMut() -> rustix::io::Result<(T, bool)>,
) -> rustix::io::Result<T> {
    let (found, linked) = look()?;
    if !linked {
        return Ok(found);
    }
    let _lock = locks.lock(key)?;
    look().map(|(found, _)| found)
}

/// Whether `st` is a regular file with several names.
fn is_linked_file(st: &Stat) -> bool {
    is(st, FileType::RegularFile) && st.st_nlink > 1
}

/// What is at a key's leaf name in its parent directory.
#[derive(Debug)]
pub(crate) enum Located {
    /// Nothing.
    Absent,
    /// A regular file: the object.
    File(Stat),
    /// A directory (keys below it exist or existed); the object, if any, is its
    /// `.store-self`.
    Nested(OwnedFd, Option<Stat>),
    /// A symlink, a special file, or a regular file with several names (a hard link):
    /// not an object, never read, followed nor replaced.
    Foreign,
}

impl Located {
    /// The version and stat of the object, if there is one; `parent` and `leaf` are what
    /// was located.
    pub(crate) fn version(
        &self,
        parent: BorrowedFd<'_>,
        leaf: &str,
        ceiling: Ceiling,
    ) -> rustix::io::Result<Option<(Version, Stat)>> {
        match self {
            Located::File(st) => ceiling.version_at(parent, leaf, st).map(Some),
            Located::Nested(dir, Some(st)) => ceiling.version_at(dir.as_fd(), SELF_NAME, st).map(Some),
            Located::Nested(_, None) | Located::Absent | Located::Foreign => Ok(None),
        }
    }
}

fn is(st: &Stat, ty: FileType) -> bool {
    FileType::from_raw_mode(st.st_mode as _) == ty
}

/// Looks at `leaf` in `parent` without following symlinks. Call it holding the key's lock
/// (writers do), or through [`locate_settled`].
pub(crate) fn locate(parent: BorrowedFd<'_>, leaf: &str) -> rustix::io::Result<Located> {
    locate_once(parent, leaf).map(|(located, _)| located)
}

/// [`locate`] for a reader, which holds no lock: a file linked twice is looked at again under
/// the lock of `key` (whose leaf is `leaf`), see [`settled`].
pub(crate) fn locate_settled(
    locks: &LockTable,
    key: &str,
    parent: BorrowedFd<'_>,
    leaf: &str,
) -> rustix::io::Result<Located> {
    settled(locks, key, || locate_once(parent, leaf))
}

/// One look at `leaf`; the flag says a regular file with several names was found (and
/// reported as foreign).
fn locate_once(parent: BorrowedFd<'_>, leaf: &str) -> rustix::io::Result<(Located, bool)> {
    for _ in 0..RACE_RETRIES {
        let st = match rustix::fs::statat(parent, leaf, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok((Located::Absent, false)),
            Err(e) => return Err(e),
        };
        if is_object_file(&st) {
            return Ok((Located::File(st), false));
        }
        if !is(&st, FileType::Directory) {
            return Ok((Located::Foreign, is_linked_file(&st)));
        }
        let dir = match open_dir(parent, leaf) {
            Ok(d) => d,
            // Changed since the stat: look again.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
            Err(e) => return Err(e),
        };
        return match rustix::fs::statat(&dir, SELF_NAME, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if is_object_file(&st) => Ok((Located::Nested(dir, Some(st)), false)),
            Ok(st) => Ok((Located::Foreign, is_linked_file(&st))),
            Err(Errno::NOENT) => Ok((Located::Nested(dir, None), false)),
            Err(e) => Err(e),
        };
    }
    Err(Errno::AGAIN)
}

/// The version and stat of `key`'s object, or `None` if absent (symlinks, special files
/// and hard links count as absent).
pub(crate) fn stat_object(root: &Root, key: &Key) -> rustix::io::Result<Option<(Version, Stat)>> {
    let Some(parent) = walk_parent(root.fd.as_fd(), key)? else {
        return Ok(None);
    };
    locate_settled(&root.locks, key.as_str(), parent.as_fd(), key.name())?.version(
        parent.as_fd(),
        key.name(),
        root.ceiling,
    )
}

/// Opens `key`'s object for reading, with its stat and version taken from the open
/// descriptor (so content and version always belong together).
pub(crate) fn open_object(
    root: &Root,
    key: &Key,
) -> rustix::io::Result<Option<(std::fs::File, Stat, Version)>> {
    let ceiling = root.ceiling;
    let Some(parent) = walk_parent(root.fd.as_fd(), key)? else {
        return Ok(None);
    };
    let open = |dir: BorrowedFd<'_>, name: &str| match retry(|| {
        rustix::fs::openat(dir, name, read_flags(), Mode::empty())
    }) {
        Ok(fd) => Ok(Some(fd)),
        // Absent, a symlink (O_NOFOLLOW), or a socket.
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::NXIO) => Ok(None),
        Err(e) => Err(e),
    };
    let opened = settled(&root.locks, key.as_str(), || {
        let Some(fd) = open(parent.as_fd(), key.name())? else {
            return Ok((None, false));
        };
        let st = rustix::fs::fstat(&fd)?;
        let (fd, st) = if is(&st, FileType::Directory) {
            let Some(inner) = open(fd.as_fd(), SELF_NAME)? else {
                return Ok((None, false));
            };
            let st = rustix::fs::fstat(&inner)?;
            (inner, st)
        } else {
            (fd, st)
        };
        if is_object_file(&st) {
            Ok((Some((fd, st)), false))
        } else {
            Ok((None, is_linked_file(&st)))
        }
    })?;
    let Some((fd, st)) = opened else {
        return Ok(None);
    };
    let version = ceiling.version(fd.as_fd(), &st)?;
    Ok(Some((std::fs::File::from(fd), st, version)))
}

/// Opens (creating as needed) the parent directory of `key` for a write, converting
/// object files that stand where a directory is needed.
pub(crate) fn prepare_parent(root: &Root, key: &Key, op: &'static str) -> Result<OwnedFd> {
    let io = |e| io_error(op, key, e);
    // The directories above the leaf; the root itself is only borrowed (no `dup`) unless the
    // key lives directly in it.
    let parents = key.as_str().rsplit_once('/').map(|(parents, _)| parents);
    let mut opened: Option<OwnedFd> = None;
    let mut end = 0;
    for seg in parents.into_iter().flat_map(|p| p.split('/')) {
        // The key's prefix up to and including this segment.
        end = if end == 0 { seg.len() } else { end + 1 + seg.len() };
        let rel = &key.as_str()[..end];
        let mut tries = 0;
        let next = loop {
            let dir = opened.as_ref().map_or(root.fd.as_fd(), |d| d.as_fd());
            tries += 1;
            if tries > RACE_RETRIES {
                return Err(io(Errno::AGAIN));
            }
            match open_dir(dir, seg) {
                Ok(next) => break next,
                Err(Errno::NOENT) => match rustix::fs::mkdirat(dir, seg, Mode::from_raw_mode(0o777)) {
                    Ok(()) => {
                        if root.durability == Durability::Full {
                            root.group.sync(dir).map_err(|e| Error::io(op, key, e))?;
                        }
                    }
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(io(e)),
                },
                Err(Errno::NOTDIR | Errno::LOOP) => match kind_at(dir, seg).map_err(io)? {
                    Some(FileType::RegularFile) => nest(root, dir, &Key::new(rel)?, op)?,
                    Some(FileType::Directory) | None => {}
                    Some(_) => return Err(foreign_entry(op, key, rel)),
                },
                Err(e) => return Err(io(e)),
            }
        };
        opened = Some(next);
    }
    match opened {
        Some(dir) => Ok(dir),
        None => dup(root.fd.as_fd()).map_err(io),
    }
}

/// Turns the object file `prefix` (in `parent`) into a directory
/// holding the same file as `.store-self` (see the module docs).
fn nest(root: &Root, parent: BorrowedFd<'_>, prefix: &Key, op: &'static str) -> Result<()> {
    let io = |e| io_error(op, prefix, e);
    let name = prefix.name();
    let _lock = root.locks.lock(prefix.as_str()).map_err(io)?;
    if kind_at(parent, name).map_err(io)? != Some(FileType::RegularFile) {
        return Ok(()); // someone else converted (or removed) it meanwhile
    }
    // A fresh, locked temp directory. As with temp files, a sweep may remove the directory
    // between its creation and our lock; `still_linked` notices and we take another name.
    let (tmp, tdir) = loop {
        let tmp = unique_name();
        rustix::fs::mkdirat(parent, &tmp, Mode::from_raw_mode(0o777)).map_err(io)?;
        let tdir = match open_dir(parent, &tmp) {
            Ok(d) => d,
            Err(Errno::NOENT) => continue,
            Err(e) => {
                let _ = rustix::fs::unlinkat(parent, &tmp, AtFlags::REMOVEDIR);
                return Err(io(e));
            }
        };
        if let Err(e) = retry(|| rustix::fs::flock(&tdir, FlockOperation::LockExclusive)) {
            let _ = rustix::fs::unlinkat(parent, &tmp, AtFlags::REMOVEDIR);
            return Err(io(e));
        }
        if still_linked(parent, &tmp, tdir.as_fd()).map_err(io)? {
            break (tmp, tdir);
        }
    };
    let undo = |tdir: Option<&OwnedFd>| {
        if let Some(tdir) = tdir {
            let _ = rustix::fs::unlinkat(tdir, SELF_NAME, AtFlags::empty());
        }
        let _ = rustix::fs::unlinkat(parent, &tmp, AtFlags::REMOVEDIR);
    };
    let prepared = rustix::fs::linkat(parent, name, &tdir, SELF_NAME, AtFlags::empty()).and_then(|()| {
        if root.durability == Durability::Full {
            retry(|| rustix::fs::fsync(&tdir))
        } else {
            Ok(())
        }
    });
    if let Err(e) = prepared {
        undo(Some(&tdir));
        return Err(io(e));
    }
    match rustix::fs::renameat_with(parent, &tmp, parent, name, RenameFlags::EXCHANGE) {
        Ok(()) => {
            // `tmp` now names the old link of the file; the object lives on in the directory.
            let _ = rustix::fs::unlinkat(parent, &tmp, AtFlags::empty());
        }
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            // No RENAME_EXCHANGE on this filesystem: a short window in which readers of
            // `prefix` see it absent (documented). The data stays linked throughout.
            let swapped = rustix::fs::unlinkat(parent, name, AtFlags::empty())
                .and_then(|()| rustix::fs::renameat(parent, &tmp, parent, name));
            if let Err(e) = swapped {
                return Err(io(e));
            }
        }
        Err(e) => {
            undo(Some(&tdir));
            return Err(io(e));
        }
    }
    if root.durability == Durability::Full {
        root.group.sync(parent).map_err(|e| Error::io(op, prefix, e))?;
    }
    tracing::debug!(key = %prefix, "moved object into {}/{SELF_NAME} to make room for nested keys", prefix);
    Ok(())
}

/// Removes the directories of `key` that are now empty, deepest first (best effort; the
/// root itself is never removed).
pub(crate) fn remove_empty_dirs(root: BorrowedFd<'_>, key: &Key) {
    let segments: Vec<&str> = key.segments().collect();
    let Ok(first) = dup(root) else { return };
    let mut stack = vec![first];
    for seg in &segments {
        match open_dir(stack[stack.len() - 1].as_fd(), seg) {
            Ok(d) => stack.push(d),
            Err(_) => break,
        }
    }
    for i in (0..stack.len() - 1).rev() {
        if rustix::fs::unlinkat(&stack[i], segments[i], AtFlags::REMOVEDIR).is_err() {
            break;
        }
    }
}
