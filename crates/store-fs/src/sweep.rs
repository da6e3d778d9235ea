//! Removing the temp files of crashed writers.
//!
//! A writer holds an exclusive `flock` on its temp file until the file is renamed into
//! place or removed (see [`temp`](crate::temp)); the kernel drops that lock when the
//! writer's process dies. So a temp file whose lock can be taken without waiting belongs to
//! nobody and is removed, while one that is locked belongs to a live writer — perhaps in
//! another process sharing the root — and is left alone.

use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Dir, FileType, FlockOperation, Mode};
use rustix::io::Errno;
use store_core::{Error, Result};

use crate::confine::{SELF_NAME, TEMP_PREFIX, kind_at, open_dir, read_flags};
use crate::root::Root;

/// Walks the whole tree under the root and removes abandoned temp files and temp
/// directories. Returns how many were removed. Symlinks are never followed nor removed.
pub(crate) fn sweep(root: &Root) -> Result<usize> {
    let io = |e: Errno| Error::io("sweep", root.path.display(), e.into());
    let mut removed = 0;
    let mut pending: Vec<OwnedFd> = vec![rustix::io::fcntl_dupfd_cloexec(&root.fd, 0).map_err(io)?];
    while let Some(dir_fd) = pending.pop() {
        let mut dir = match Dir::new(dir_fd) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "sweep: cannot read a directory; skipped");
                continue;
            }
        };
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "sweep: error reading a directory; rest skipped");
                    break;
                }
            };
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            names.push((name.to_owned(), entry.file_type()));
        }
        let Ok(fd) = dir.fd() else { continue };
        for (name, ty) in names {
            if name.starts_with(TEMP_PREFIX) {
                if remove_if_abandoned(fd, &name) {
                    removed += 1;
                }
                continue;
            }
            let is_dir = match ty {
                FileType::Directory => true,
                FileType::Unknown => matches!(kind_at(fd, &name), Ok(Some(FileType::Directory))),
                _ => false,
            };
            if is_dir {
                match open_dir(fd, &name) {
                    Ok(sub) => pending.push(sub),
                    Err(e) => tracing::warn!(name, error = %e, "sweep: cannot open a directory; skipped"),
                }
            }
        }
    }
    Ok(removed)
}

/// Removes the temp file or directory `name` in `dir` if no live writer holds it.
fn remove_if_abandoned(dir: BorrowedFd<'_>, name: &str) -> bool {
    let fd = match rustix::fs::openat(dir, name, read_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(_) => return false, // gone already, or a symlink: not ours to touch
    };
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK | Errno::INTR) => return false, // a live writer
        Err(_) => return false,
    }
    let is_dir = matches!(
        rustix::fs::fstat(&fd).map(|st| FileType::from_raw_mode(st.st_mode as _)),
        Ok(FileType::Directory)
    );
    let result = if is_dir {
        let _ = rustix::fs::unlinkat(&fd, SELF_NAME, AtFlags::empty());
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
    };
    drop(fd);
    match result {
        Ok(()) => {
            tracing::debug!(name, "sweep: removed an abandoned temp entry");
            true
        }
        Err(e) => {
            tracing::warn!(name, error = %e, "sweep: could not remove an abandoned temp entry");
            false
        }
    }
}
