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

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{Stat, Timespec};
use store_core::{Key, Meta, Version};

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

/// The version of a file with this stat.
pub(crate) fn version(st: &Stat) -> Version {
    Version::from(format!("v{:x}-{:x}-{:x}", st.st_ino, mtime_ns(st), st.st_size))
}

/// The metadata of `key` stored in a file with this stat.
pub(crate) fn meta(key: Key, st: &Stat) -> Meta {
    let ns = mtime_ns(st);
    let modified = if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    } else {
        UNIX_EPOCH
    };
    Meta {
        key,
        size: u64::try_from(st.st_size).unwrap_or(0),
        version: version(st),
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
