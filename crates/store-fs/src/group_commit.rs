//! Group commit of directory fsyncs.
//!
//! Under `Durability::Full` a put is durable only once the directory holding the renamed
//! file has been fsynced. Concurrent puts into one directory need not each pay for their
//! own fsync: any fsync of the directory that *starts after* a put's rename makes that
//! rename durable. So each directory has sync epochs: a put notes the number of the next
//! epoch to start (`started + 1`) after its rename, and then either runs that epoch's fsync
//! itself (if none is running) or waits for it. While one fsync runs, every put that
//! renamed meanwhile queues for the next one, which a single waiter then runs for all of
//! them.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::confine::retry;

/// Directory fsyncs shared between the threads of one store.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    /// Keyed by (device, inode): a directory removed and re-created under the same name is
    /// another directory, and must not share the old one's fsyncs.
    dirs: Mutex<HashMap<(u64, u64), Arc<Epochs>>>,
}

#[derive(Debug, Default)]
struct Epochs {
    state: Mutex<EpochState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct EpochState {
    /// Number of the last epoch whose fsync started.
    started: u64,
    /// Number of the last epoch whose fsync finished.
    completed: u64,
    running: bool,
    /// The most recent failed epoch and its error. A waiter for epoch `n` reports a failure
    /// of any epoch `>= n`: possibly a later one, which errs on the safe side.
    failed: Option<(u64, std::io::ErrorKind, String)>,
}

impl GroupCommit {
    /// Makes every change made in `dir` before this call durable. Blocking.
    pub(crate) fn sync(&self, dir: BorrowedFd<'_>) -> std::io::Result<()> {
        let st = rustix::fs::fstat(dir)?;
        let id = (st.st_dev as u64, st.st_ino as u64);
        let epochs = {
            let mut dirs = self.dirs.lock();
            Arc::clone(dirs.entry(id).or_default())
        };
        let result = epochs.sync(dir);
        let mut dirs = self.dirs.lock();
        // Only the map and we hold it: nobody else is syncing this directory.
        if Arc::strong_count(&epochs) == 2 {
            dirs.remove(&id);
        }
        result
    }
}

impl Epochs {
    fn sync(&self, dir: BorrowedFd<'_>) -> std::io::Result<()> {
        let mut st = self.state.lock();
        let needed = st.started + 1;
        loop {
            if st.completed >= needed {
                return match &st.failed {
                    Some((epoch, kind, msg)) if *epoch >= needed => Err(std::io::Error::new(
                        *kind,
                        format!("fsync of directory failed: {msg}"),
                    )),
                    _ => Ok(()),
                };
            }
            if !st.running {
                st.running = true;
                st.started += 1;
                let mine = st.started;
                drop(st);
                let result = retry(|| rustix::fs::fsync(dir));
                st = self.state.lock();
                st.running = false;
                st.completed = mine;
                if let Err(e) = &result {
                    let e = std::io::Error::from(*e);
                    st.failed = Some((mine, e.kind(), e.to_string()));
                }
                self.done.notify_all();
                continue;
            }
            self.done.wait(&mut st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn concurrent_syncs_all_return_and_leave_no_state() {
        let dir = tempfile::tempdir().unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let gc = Arc::new(GroupCommit::default());
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (gc, fd) = (Arc::clone(&gc), &fd);
                s.spawn(move || {
                    for _ in 0..20 {
                        gc.sync(fd.as_fd()).unwrap();
                    }
                });
            }
        });
        assert!(gc.dirs.lock().is_empty());
    }
}
