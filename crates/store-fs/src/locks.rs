//! Striped key locks that hold across threads *and* processes.
//!
//! Every mutation of a key (put in any mode, delete) takes the lock of the key's stripe
//! for the few system calls between "look at the current version" and "rename/unlink":
//! an in-process mutex (so threads of one process queue cheaply and never rely on how
//! `flock` treats one descriptor shared by threads) and then an exclusive `flock` on the
//! stripe's lock file under `.store/locks/` (so processes sharing the root exclude each
//! other). Both are released when the [`KeyLock`] is dropped; a process that dies while
//! holding a lock releases it with its descriptors.
//!
//! The stripe count and the hash are part of the on-disk format: every process opening a
//! root must map a key to the same lock file, so both are fixed, and the hash is spelled
//! out here rather than taken from std (whose hasher may change between Rust versions).
//!
//! Each lock file's *mtime* also records the last modification time handed out under it,
//! which is how versions stay unique per key even if the clock steps back (see
//! [`stamp`](crate::stamp)).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use parking_lot::{Mutex, MutexGuard};
use rustix::fs::{FileType, FlockOperation, Mode, OFlags, Timestamps};

use crate::confine::{open_dir, retry};
use crate::stamp;

/// Number of lock stripes (fixed: part of the on-disk protocol).
pub(crate) const STRIPES: usize = 64;

/// The lock files of one store.
#[derive(Debug)]
pub(crate) struct LockTable {
    stripes: Vec<Stripe>,
}

#[derive(Debug)]
struct Stripe {
    mutex: Mutex<()>,
    file: OwnedFd,
}

/// A held key lock. Dropping it unlocks.
pub(crate) struct KeyLock<'a> {
    _guard: MutexGuard<'a, ()>,
    file: BorrowedFd<'a>,
}

/// FNV-1a, 64 bits: stable across builds and processes.
fn stripe_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % STRIPES as u64) as usize
}

impl LockTable {
    /// Opens (creating if needed) `.store/locks/00` … `63` under `internal`.
    /// A lock file that is not a regular file with one name is refused.
    pub(crate) fn open(internal: BorrowedFd<'_>) -> std::io::Result<LockTable> {
        match rustix::fs::mkdirat(internal, "locks", Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let dir = open_dir(internal, "locks")?;
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let stripes = (0..STRIPES)
            .map(|i| {
                let name = format!("{i:02}");
                let file =
                    retry(|| rustix::fs::openat(dir.as_fd(), &name, flags, Mode::from_raw_mode(0o666)))
                        .map_err(|e| {
                            let e = std::io::Error::from(e);
                            std::io::Error::new(e.kind(), format!("the lock file .store/locks/{name}: {e}"))
                        })?;
                check_lock_file(&file, &name)?;
                Ok(Stripe {
                    mutex: Mutex::new(()),
                    file,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(LockTable { stripes })
    }

    /// Locks `key`'s stripe, blocking until it is free. Call from a blocking thread.
    pub(crate) fn lock(&self, key: &str) -> rustix::io::Result<KeyLock<'_>> {
        let stripe = &self.stripes[stripe_of(key)];
        let guard = stripe.mutex.lock();
        retry(|| rustix::fs::flock(&stripe.file, FlockOperation::LockExclusive))?;
        Ok(KeyLock {
            _guard: guard,
            file: stripe.file.as_fd(),
        })
    }
}

/// Refuses a lock file that is not a regular file with exactly one name: a hard link to
/// a file outside the root would otherwise have its mtime (the stripe's stamp) rewritten by
/// every put. An attacker who can write `.store/` could plant one before the store opens.
fn check_lock_file(file: &OwnedFd, name: &str) -> std::io::Result<()> {
    let st = rustix::fs::fstat(file)?;
    let regular = FileType::from_raw_mode(st.st_mode as _) == FileType::RegularFile;
    if regular && st.st_nlink == 1 {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "the lock file .store/locks/{name} is not a regular file with one name ({} links{}); \
             FsStore refuses it, since writing through it could change a file outside the root \
             (remove it to let the store recreate it)",
            st.st_nlink,
            if regular { "" } else { ", not a regular file" }
        ),
    ))
}

impl KeyLock<'_> {
    /// The last modification time handed out under this stripe, in nanoseconds.
    pub(crate) fn last_stamp(&self) -> rustix::io::Result<i128> {
        Ok(stamp::mtime_ns(&rustix::fs::fstat(self.file)?))
    }

    /// Records `ns` as the last modification time handed out under this stripe.
    pub(crate) fn record_stamp(&self, ns: i128) -> rustix::io::Result<()> {
        let times = Timestamps {
            last_access: stamp::omit(),
            last_modification: stamp::timespec(ns),
        };
        rustix::fs::futimens(self.file, &times)
    }
}

impl Drop for KeyLock<'_> {
    fn drop(&mut self) {
        // Unlock before the mutex guard (a field) is released. An error here is impossible
        // for a valid descriptor; closing the process releases the lock in any case.
        let _ = rustix::fs::flock(self.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_stable_and_spread() {
        // Part of the on-disk protocol: these values must never change.
        assert_eq!(stripe_of(""), (0xcbf2_9ce4_8422_2325u64 % 64) as usize);
        assert_eq!(stripe_of("a"), stripe_of("a"));
        let used: std::collections::HashSet<usize> =
            (0..1000).map(|i| stripe_of(&format!("k/{i}"))).collect();
        assert_eq!(used.len(), STRIPES, "1000 keys should touch every stripe");
    }
}
