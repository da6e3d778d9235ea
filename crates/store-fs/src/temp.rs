//! Temp files of writes in progress.
//!
//! A put first writes the whole object to `.store-tmp-<pid>-<n>-<nanos>` in the directory
//! of the target, then renames it into place. While it exists, the writer holds an
//! exclusive `flock` on it: that is how [`sweep`](crate::sweep) tells the temp file of a
//! crashed writer (lock free, removed) from one a live writer in another process is still
//! filling (locked, left alone). Dropping an armed [`TempFile`] unlinks it.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use crate::confine::{TEMP_PREFIX, retry};
use crate::stamp;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh name, unique among live processes (pid + counter) and unlikely to meet a
/// crashed writer's leftover (nanoseconds). Creation uses `O_EXCL` anyway.
pub(crate) fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{TEMP_PREFIX}{:x}-{n:x}-{nanos:x}", std::process::id())
}

/// Whether `name` in `dir` is still the inode behind `fd`: a temp entry a writer has just
/// locked may have been removed by a sweep that found it unlocked a moment earlier.
pub(crate) fn still_linked(dir: BorrowedFd<'_>, name: &str, fd: BorrowedFd<'_>) -> rustix::io::Result<bool> {
    let ours = rustix::fs::fstat(fd)?;
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(st.st_ino == ours.st_ino && st.st_dev == ours.st_dev),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A temp file in the directory `dir`.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) dir: OwnedFd,
    pub(crate) name: String,
    pub(crate) file: File,
    armed: bool,
}

impl TempFile {
    /// Creates and locks a new temp file. `NOENT` means `dir` was removed meanwhile.
    pub(crate) fn create(dir: OwnedFd) -> rustix::io::Result<TempFile> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        loop {
            let name = unique_name();
            let fd = match retry(|| rustix::fs::openat(dir.as_fd(), &name, flags, Mode::from_raw_mode(0o666)))
            {
                Ok(fd) => fd,
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e),
            };
            // Only a sweep can hold this lock, and only for an instant.
            if let Err(e) = retry(|| rustix::fs::flock(&fd, FlockOperation::LockExclusive)) {
                let _ = rustix::fs::unlinkat(&dir, &name, AtFlags::empty());
                return Err(e);
            }
            // Between the create and the lock, a sweep (in any process) may have found the
            // file unlocked and removed it: then start over, or the write would fill an
            // unlinked inode and fail at the rename.
            if still_linked(dir.as_fd(), &name, fd.as_fd())? {
                return Ok(TempFile {
                    dir,
                    name,
                    file: File::from(fd),
                    armed: true,
                });
            }
        }
    }

    /// Sets the file's mtime to `ns` nanoseconds since the epoch.
    pub(crate) fn set_mtime(&self, ns: i128) -> rustix::io::Result<()> {
        let times = Timestamps {
            last_access: stamp::omit(),
            last_modification: stamp::timespec(ns),
        };
        rustix::fs::futimens(&self.file, &times)
    }

    /// The file was renamed into place: nothing to clean up any more.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(e) = rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty()) {
            tracing::warn!(name = %self.name, error = %e, "could not remove a temp file; the next open sweeps it");
        }
    }
}
