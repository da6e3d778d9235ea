//! Versions and the modification times that make them unique.
//!
//! A version is `inode-mtime-size` of the object's file (`v<ino>-<mtime ns>-<size>` in
//! hex). Inode numbers are reused after a delete and the kernel's own timestamps are
//! coarse (a few milliseconds), so that alone could repeat. FsStore therefore sets every
//! new file's mtime itself, while holding the key's lock, to a value strictly greater than
//! both the mtime of the file it replaces and the last mtime handed out under the same
//! lock stripe (recorded in the lock file's own mtime). A key's versions are thus strictly
//! increasing in their mtime part — across threads, processes, delete and re-create, and a
//! clock that steps back — as long as every writer goes through FsStore.
//!
//! **The ceiling.** A filesystem stores modification times only up to some limit (ext4:
//! the year 2446, or 2038 with 128-byte inodes; XFS without `bigtime`: 2038) and clamps
//! anything later without an error. Once a stripe's stamps reach that limit (a file
//! restored with a far-future mtime, or a clock past the limit), mtimes can no longer
//! increase, and inode reuse would repeat versions. So [`Ceiling::probe`] measures the
//! limit when a root is opened, and a file written at the ceiling gets a random 128-bit
//! *write id* in its extended attribute `user.store.id`, which becomes part of its version
//! (`v<ino>-<mtime>-<size>-<id>`). Only files at the ceiling cost the extra read of that
//! attribute; everywhere else a version is still read from one `stat`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;
use store_core::{Key, Meta, Version};

use crate::confine::{read_flags, retry};
use crate::temp::unique_name;

/// The last stamp this process proposed (nanoseconds since the epoch, low 63 bits).
static LAST: AtomicI64 = AtomicI64::new(0);

/// Nanoseconds since the Unix epoch of `st`'s mtime.
pub(crate) fn mtime_ns(st: &Stat) -> i128 {
    i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec)
}

/// The current time in nanoseconds, strictly greater than any earlier call in this process.
pub(crate) fn propose() -> i128 {
    let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX - 1),
        Err(_) => 0,
    };
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    i128::from(now.max(prev + 1))
}

/// A timespec for `ns` nanoseconds since the epoch.
pub(crate) fn timespec(ns: i128) -> Timespec {
    Timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as _,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

/// "Leave this timestamp alone" for `futimens`.
pub(crate) fn omit() -> Timespec {
    Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    }
}

/// The extended attribute that holds the write id of a file written at the ceiling.
const WRITE_ID_ATTR: &str = "user.store.id";

/// The largest modification time a root's filesystem stores, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ceiling(i128);

impl Ceiling {
    /// Measures the limit on a scratch file in `internal` (the probe sets a far-future
    /// mtime and reads back what was stored). A filesystem that refuses such a time
    /// instead of clamping it never clamps silently, so it has no ceiling to guard.
    pub(crate) fn probe(internal: BorrowedFd<'_>) -> rustix::io::Result<Ceiling> {
        let far = i128::from(1_u64 << 40) * 1_000_000_000;
        Ok(Ceiling(stored_mtime(internal, far)?.unwrap_or(i128::MAX)))
    }

    /// `ns` capped at the ceiling.
    pub(crate) fn cap(self, ns: i128) -> i128 {
        ns.min(self.0)
    }

    /// Whether a file with this stat sits at the ceiling, where its mtime no longer makes
    /// its version unique and its write id (if FsStore wrote it) does.
    pub(crate) fn reached(self, st: &Stat) -> bool {
        self.reached_ns(mtime_ns(st))
    }

    /// Whether a stamp of `ns` sits at the ceiling.
    pub(crate) fn reached_ns(self, ns: i128) -> bool {
        ns >= self.0
    }

    /// The version of the open file `fd` whose stat is `st`: one `fgetxattr` more at the
    /// ceiling, nothing more below it.
    pub(crate) fn version(self, fd: BorrowedFd<'_>, st: &Stat) -> rustix::io::Result<Version> {
        let id = if self.reached(st) {
            read_write_id(fd)?
        } else {
            None
        };
        Ok(version(st, id.as_deref()))
    }

    /// The version of the file `name` in `dir`, whose stat (taken without following
    /// symlinks) is `st`. At the ceiling the file is opened to read its write id; if
    /// `name` was replaced since `st` was taken, the version and stat of the file now there
    /// are returned.
    pub(crate) fn version_at(
        self,
        dir: BorrowedFd<'_>,
        name: &str,
        st: &Stat,
    ) -> rustix::io::Result<(Version, Stat)> {
        if !self.reached(st) {
            return Ok((version(st, None), *st));
        }
        let fd = retry(|| rustix::fs::openat(dir, name, read_flags(), Mode::empty()))?;
        let now = rustix::fs::fstat(&fd)?;
        Ok((self.version(fd.as_fd(), &now)?, now))
    }
}

/// What the filesystem under `dir` stores when a file's mtime is set to `ns` (tried on a
/// scratch file, removed afterwards); `None` if it refuses that time.
pub(crate) fn stored_mtime(dir: BorrowedFd<'_>, ns: i128) -> rustix::io::Result<Option<i128>> {
    let name = unique_name();
    let fd = rustix::fs::openat(
        dir,
        &name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o666),
    )?;
    let times = Timestamps {
        last_access: omit(),
        last_modification: timespec(ns),
    };
    let stored = match rustix::fs::futimens(&fd, &times) {
        Ok(()) => rustix::fs::fstat(&fd).map(|st| Some(mtime_ns(&st))),
        Err(_) => Ok(None),
    };
    let _ = rustix::fs::unlinkat(dir, &name, AtFlags::empty());
    stored
}

/// A fresh write id: 128 random bits, hex.
pub(crate) fn new_write_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Gives the (temp) file `fd` the write id `id`.
pub(crate) fn set_write_id(fd: BorrowedFd<'_>, id: &str) -> rustix::io::Result<()> {
    rustix::fs::fsetxattr(fd, WRITE_ID_ATTR, id.as_bytes(), rustix::fs::XattrFlags::empty())
}

/// The write id of `fd`, if it has one.
fn read_write_id(fd: BorrowedFd<'_>) -> rustix::io::Result<Option<String>> {
    let mut buf = [0u8; 64];
    match rustix::fs::fgetxattr(fd, WRITE_ID_ATTR, &mut buf) {
        Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
        Err(Errno::NODATA | Errno::OPNOTSUPP | Errno::RANGE) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The version of a file with this stat and write id.
pub(crate) fn version(st: &Stat, write_id: Option<&str>) -> Version {
    match write_id {
        None => Version::from(format!("v{:x}-{:x}-{:x}", st.st_ino, mtime_ns(st), st.st_size)),
        Some(id) => Version::from(format!(
            "v{:x}-{:x}-{:x}-{id}",
            st.st_ino,
            mtime_ns(st),
            st.st_size
        )),
    }
}

/// The metadata of `key` stored in a file with this stat and version.
pub(crate) fn meta(key: Key, st: &Stat, version: Version) -> Meta {
    let ns = mtime_ns(st);
    let modified = if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    } else {
        UNIX_EPOCH
    };
    Meta {
        key,
        size: u64::try_from(st.st_size).unwrap_or(0),
        version,
        modified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_increase_and_round_trip() {
        let a = propose();
        let b = propose();
        assert!(b > a);
        let ts = timespec(1_700_000_000_123_456_789);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (1_700_000_000, 123_456_789));
        let neg = timespec(-1);
        assert_eq!((neg.tv_sec, neg.tv_nsec), (-1, 999_999_999));
    }
}
