//! Confinement: every path is resolved one component at a time from the root's directory
//! descriptor, and no symbolic link found under the root is ever followed.
//!
//! Nothing here builds a path string and hands it to the kernel to resolve: each directory
//! is opened with `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)`, so a symlink planted
//! anywhere under the root (pointing outside or not) makes the walk stop instead of
//! leaving the root. Keys cannot contain `..` (store-core refuses them), and a key segment
//! that would collide with the store's own files is refused here ([`check_key`]).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use store_core::{Error, Key, Result};

/// The hidden directory at the root that holds lock files.
pub(crate) const INTERNAL_DIR: &str = ".store";
/// Prefix of temp files (and temp directories) of unfinished writes.
pub(crate) const TEMP_PREFIX: &str = ".store-tmp-";
/// The file holding the object of key `k` when `k` is also a directory (because keys
/// `k/…` exist too).
pub(crate) const SELF_NAME: &str = ".store-self";

/// Whether a path segment is reserved for the store's own files: `.store` itself and any
/// name starting with `.store-`.
pub(crate) fn is_reserved(segment: &str) -> bool {
    segment == INTERNAL_DIR || segment.starts_with(".store-")
}

/// Refuses keys with a reserved segment.
pub(crate) fn check_key(key: &Key) -> Result<()> {
    if key.segments().any(is_reserved) {
        return Err(Error::InvalidKey {
            key: key.to_string(),
            reason: "FsStore reserves the segment \".store\" and segments starting with \".store-\"",
        });
    }
    Ok(())
}

/// Flags for opening a directory under the root.
pub(crate) fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Flags for opening an object's file for reading. `NONBLOCK` keeps a planted FIFO from
/// blocking the open; it does nothing to regular files.
pub(crate) fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

/// Opens the directory `name` in `parent` without following a symlink.
pub(crate) fn open_dir(parent: BorrowedFd<'_>, name: &str) -> rustix::io::Result<OwnedFd> {
    retry(|| rustix::fs::openat(parent, name, dir_flags(), Mode::empty()))
}

/// A new descriptor for the root (so callers can own their parent directory uniformly).
pub(crate) fn dup(fd: BorrowedFd<'_>) -> rustix::io::Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0)
}

/// What a name in a directory is, without following symlinks.
pub(crate) fn kind_at(dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode as _))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Retries a syscall interrupted by a signal.
pub(crate) fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Opens the directory that holds `key`'s entry, for reading: `Ok(None)` if some
/// component is missing, is not a directory, or is a symlink (which is never followed,
/// so the key is simply absent).
pub(crate) fn walk_parent(root: BorrowedFd<'_>, key: &Key) -> rustix::io::Result<Option<OwnedFd>> {
    let mut dir = dup(root)?;
    let segments: Vec<&str> = key.segments().collect();
    for seg in &segments[..segments.len() - 1] {
        match open_dir(dir.as_fd(), seg) {
            Ok(next) => dir = next,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(dir))
}

/// Converts an `Errno` into the store's I/O error for `op` on `key`.
pub(crate) fn io_error(op: &'static str, key: &Key, e: Errno) -> Error {
    Error::io(op, key, std::io::Error::from(e))
}

/// The error for a write that meets a symlink, a device, FIFO or socket, or a regular file
/// with several names (a hard link) under the root: FsStore neither follows nor replaces
/// such entries.
pub(crate) fn foreign_entry(op: &'static str, key: &Key, what: &str) -> Error {
    Error::invalid_input(
        op,
        Some(key),
        format!(
            "{what:?} under the store's root is a symbolic link, a special file or a hard link \
             (a file with several names); FsStore never reads, follows nor replaces those \
             (remove it to use this key)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names() {
        for r in [".store", ".store-tmp-1", ".store-self", ".store-"] {
            assert!(is_reserved(r), "{r}");
        }
        for ok in [
            ".stores",
            ".storefront",
            "store",
            "a.store",
            "..store-x",
            ".Store-x",
        ] {
            assert!(!is_reserved(ok), "{ok}");
        }
        let e = check_key(&Key::new("a/.store-self").unwrap()).unwrap_err();
        assert!(e.to_string().contains("a/.store-self"), "{e}");
        assert!(check_key(&Key::new(".storefront/x").unwrap()).is_ok());
    }
}
