//! `Mutex`: a lease lock with fencing tokens, stored in a group.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use store_core::{Backend, Backoff, Error, GetOptions, Key, PutMode, PutOptions, Result, Version};
use tokio::task::JoinHandle;

use crate::group::Group;
use crate::lease::{Lease, new_holder, now_ms};
use crate::retry::lost_race;

/// How long a lease lasts unless renewed: ten seconds. A holder that disappears blocks the
/// mutex for at most this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The shortest lease [`Mutex::with_lease`] accepts.
pub const MIN_LEASE: Duration = Duration::from_millis(30);

/// A mutual-exclusion lock shared by every process using the same group, from
/// [`Group::mutex`].
///
/// Locking stores a *lease* in the lock object `<group>/.locks/<hex of the name>`: the
/// holder, an expiry time and a fencing token. While the [`MutexGuard`] lives, a background
/// task renews the lease every third of its length; a holder that crashes stops renewing,
/// and once its lease expires the next `lock` takes over. Waiting is woken by the backend's
/// [`watch`](store_core::Backend::watch) (or by the lease running out), not by fixed polling.
///
/// # Fencing
/// Each acquisition gets a token one greater than the previous one
/// ([`MutexGuard::token`]). A holder that stalls past its lease (a long pause, a
/// partition) may still *believe* it holds the lock while a successor does: pass the token
/// to the resource you protect and have it refuse tokens older than the newest it has seen.
///
/// # Clocks
/// Expiry is wall-clock time (milliseconds since the Unix epoch), compared by whoever reads
/// the lease. Processes on different machines must have clocks that agree to well within
/// the lease length; a clock running ahead takes over leases early.
///
/// # Lost replies
/// Every change of the lease — taking it, renewing it, releasing it — is one conditional
/// put of the lock object. When that put fails after it may have landed (a lost reply, a
/// timeout: any error but a refusal or one that [proves nothing was
/// applied](store_core::Error::is_not_applied)), the lock object is read back (one `get`).
/// Its holder id is unique to the acquisition, and its expiry or released flag to the put,
/// so the lease read tells whether the put landed, on any backend. A lease found written
/// counts: `lock` and `try_lock` return the guard, the renewal holds and `unlock` succeeds.
/// Otherwise `lock` and `try_lock` fail with the put's error (a retryable one as an
/// [`Error::outcome_unknown`](store_core::Error::outcome_unknown) without a resolver). Only a
/// put still in flight when the lease was read (a timeout) can land after that: its lease
/// then holds the mutex for nobody until it expires (at most the lease length). A renewal
/// or a release that did not land is tried again every tenth of the lease until the lease
/// runs out (each try conditional on the version just read, so at most one lands); then
/// the guard [is lost](MutexGuard::is_lost), or `unlock` fails with the last error.
///
/// # Deviations from the seed
/// Only the holder can unlock (the seed lets anyone clear a lock), a crashed holder does
/// not block forever, and waiters are woken by change instead of polling every second.
#[derive(Clone)]
pub struct Mutex {
    group: Group,
    name: String,
    key: Key,
    lease: Duration,
}

impl fmt::Debug for Mutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Group {
    /// The mutex called `name` in this group (no I/O until [`Mutex::lock`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or overlong name.
    pub fn mutex(&self, name: &str) -> Result<Mutex> {
        self.check_name("mutex", name)?;
        let hex = hex::encode(name);
        Ok(Mutex {
            group: self.clone(),
            name: name.to_owned(),
            key: Key::new(format!("{}{hex}", self.shared.locks_prefix))?,
            lease: DEFAULT_LEASE,
        })
    }
}

/// One look at the lock object.
enum Attempt {
    Acquired(MutexGuard),
    /// Held by someone else: wait for a change or for the lease to run out.
    Held {
        version: Version,
        expires_at_ms: u64,
    },
    /// Lost a race for the lock object: look again.
    Raced,
}

impl Mutex {
    /// This mutex with another lease length (at least [`MIN_LEASE`]).
    pub fn with_lease(mut self, lease: Duration) -> Mutex {
        self.lease = lease.max(MIN_LEASE);
        self
    }

    /// The mutex's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Waits until the mutex is free and takes it.
    ///
    /// Must run inside a tokio runtime (the guard renews its lease on it).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the lock object is not a lease; backend errors — a lease put
    /// that failed after it may have landed, and whose lease the lock object does not hold
    /// when read back, is an [`Error::outcome_unknown`](store_core::Error::outcome_unknown)
    /// without a resolver (see [lost replies](Mutex#lost-replies)).
    pub async fn lock(&self) -> Result<MutexGuard> {
        loop {
            match self.attempt().await? {
                Attempt::Acquired(guard) => return Ok(guard),
                Attempt::Raced => tokio::task::yield_now().await,
                Attempt::Held {
                    version,
                    expires_at_ms,
                } => {
                    // +1 ms: expiry is "<= now", at millisecond resolution.
                    let left = Duration::from_millis(expires_at_ms.saturating_sub(now_ms()) + 1);
                    let backend = &self.group.shared.backend;
                    tokio::select! {
                        changed = backend.watch(&self.key, Some(&version)) => { changed?; }
                        () = tokio::time::sleep(left) => {}
                    }
                }
            }
        }
    }

    /// Takes the mutex if it is free now; `None` if someone holds it.
    ///
    /// # Errors
    /// As [`Mutex::lock`].
    pub async fn try_lock(&self) -> Result<Option<MutexGuard>> {
        loop {
            match self.attempt().await? {
                Attempt::Acquired(guard) => return Ok(Some(guard)),
                Attempt::Held { .. } => return Ok(None),
                Attempt::Raced => {}
            }
        }
    }

    async fn attempt(&self) -> Result<Attempt> {
        let backend = &*self.group.shared.backend;
        let current = read_lease(backend, &self.key).await?;
        let now = now_ms();
        let (token, mode) = match current {
            None => (1, PutMode::Create),
            Some((version, lease)) if lease.is_free(now) => {
                (lease.token.saturating_add(1), PutMode::Update(version))
            }
            Some((version, lease)) => {
                return Ok(Attempt::Held {
                    version,
                    expires_at_ms: lease.expires_at_ms,
                });
            }
        };
        let lease = Lease {
            holder: new_holder(),
            token,
            expires_at_ms: now.saturating_add(millis(self.lease)),
            released: false,
        };
        let written = match backend.put(&self.key, lease.encode(), mode.into()).await {
            Ok(meta) => meta.version,
            Err(e) if lost_race(&e) => return Ok(Attempt::Raced),
            // The lease may have landed: found written, it is ours.
            Err(e) => landed(backend, &self.key, &lease, e).await?,
        };
        tracing::debug!(key = %self.key, token, "mutex locked");
        Ok(Attempt::Acquired(MutexGuard::start(self, lease, written)))
    }
}

/// The lock object at `key` and its version, if any.
async fn read_lease(backend: &dyn Backend, key: &Key) -> Result<Option<(Version, Lease)>> {
    match backend.get(key, GetOptions::default()).await {
        Ok(obj) => {
            let version = obj.meta.version.clone();
            Ok(Some((version, Lease::decode(key, &obj.bytes().await?)?)))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The end of a put of `lease` that failed with `e`: an error that proves nothing was
/// applied is returned as it is; otherwise the lock object is read back (one `get`), and
/// the version at which it holds exactly `lease` (a holder id no other put writes) means
/// the put landed. If it holds anything else, or cannot be read, `e` is returned, a
/// retryable one as an outcome-unknown error without the backend's resolver (which answers
/// for the lock object, not for the mutex).
async fn landed(backend: &dyn Backend, key: &Key, lease: &Lease, e: Error) -> Result<Version> {
    if e.is_not_applied() {
        return Err(e);
    }
    match read_lease(backend, key).await {
        Ok(Some((version, found))) if found == *lease => Ok(version),
        _ if e.is_retryable() => Err(Error::outcome_unknown("store-consistent", e, None)),
        _ => Err(e),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Proof of holding a [`Mutex`]. Unlock with [`MutexGuard::unlock`]; dropping the guard
/// releases the mutex too (in the background, if a tokio runtime is running).
pub struct MutexGuard {
    state: Arc<Held>,
    renewer: Option<JoinHandle<()>>,
    done: bool,
}

/// What the guard and its renewal task share.
struct Held {
    backend: Arc<dyn Backend>,
    key: Key,
    holder: String,
    token: u64,
    lease: Duration,
    /// The lock object's version after our last write.
    version: parking_lot::Mutex<Version>,
    expires_at_ms: AtomicU64,
    lost: AtomicBool,
}

impl fmt::Debug for MutexGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("key", &self.state.key)
            .field("token", &self.state.token)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl MutexGuard {
    fn start(mutex: &Mutex, lease: Lease, version: Version) -> MutexGuard {
        let state = Arc::new(Held {
            backend: mutex.group.shared.backend.clone(),
            key: mutex.key.clone(),
            holder: lease.holder,
            token: lease.token,
            lease: mutex.lease,
            version: parking_lot::Mutex::new(version),
            expires_at_ms: AtomicU64::new(lease.expires_at_ms),
            lost: AtomicBool::new(false),
        });
        let renewer = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(renew(state.clone())));
        MutexGuard {
            state,
            renewer,
            done: false,
        }
    }

    /// The fencing token of this acquisition: greater than that of every earlier holder.
    pub fn token(&self) -> u64 {
        self.state.token
    }

    /// True once the lease may have passed to someone else: its renewal failed (another
    /// holder took over, or the backend failed until the lease ran out) or it expired.
    pub fn is_lost(&self) -> bool {
        self.state.lost.load(Ordering::Acquire)
            || now_ms() >= self.state.expires_at_ms.load(Ordering::Acquire)
    }

    /// Releases the mutex.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the lease was lost and someone else holds the mutex now (their
    /// lock is left alone); backend errors — a release that failed retryably and did not land
    /// is sent again while the lease lasts, and once it has run out the last error is
    /// returned, an [`Error::outcome_unknown`](store_core::Error::outcome_unknown) without a
    /// resolver if the release may still land (see [lost replies](Mutex#lost-replies)).
    pub async fn unlock(mut self) -> Result<()> {
        self.done = true;
        if let Some(task) = self.renewer.take() {
            task.abort();
            let _ = task.await;
        }
        release(&self.state).await
    }
}

impl Drop for MutexGuard {
    fn drop(&mut self) {
        if let Some(task) = self.renewer.take() {
            task.abort();
        }
        if !self.done
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let state = self.state.clone();
            rt.spawn(async move {
                if let Err(e) = release(&state).await {
                    tracing::debug!(key = %state.key, error = %e, "releasing a dropped mutex guard failed");
                }
            });
        }
    }
}

/// Renews the lease every third of its length until the guard goes or the lease is lost.
async fn renew(state: Arc<Held>) {
    let every = state.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        if !renew_once(&state).await {
            state.lost.store(true, Ordering::Release);
            tracing::warn!(key = %state.key, token = state.token, "mutex lease lost");
            return;
        }
    }
}

/// One renewal; false if the lease is lost.
async fn renew_once(state: &Held) -> bool {
    loop {
        let expires_at_ms = now_ms().saturating_add(millis(state.lease));
        let lease = Lease {
            holder: state.holder.clone(),
            token: state.token,
            expires_at_ms,
            released: false,
        };
        let version = state.version.lock().clone();
        let put = state
            .backend
            .put(&state.key, lease.encode(), PutOptions::update(version))
            .await;
        let written = match put {
            Ok(meta) => Some(meta.version),
            // Our version is stale (a write of ours raced, or someone took over): look.
            Err(e) if e.is_conflict() || e.is_not_found() => {
                match read_lease(&*state.backend, &state.key).await {
                    Ok(Some((version, lease))) if lease.is_held_by(&state.holder, state.token) => {
                        *state.version.lock() = version;
                        continue;
                    }
                    Ok(_) => return false,
                    Err(_) => None,
                }
            }
            // The renewal may have landed: found written, it counts.
            Err(e) => landed(&*state.backend, &state.key, &lease, e).await.ok(),
        };
        if let Some(version) = written {
            *state.version.lock() = version;
            state.expires_at_ms.store(expires_at_ms, Ordering::Release);
            return true;
        }
        if now_ms() >= state.expires_at_ms.load(Ordering::Acquire) {
            return false;
        }
        tokio::time::sleep(state.lease / 10).await;
    }
}

/// Marks the lease released, if it is still ours. The lock object stays (with its token).
/// A release that failed retryably and did not land is sent again every tenth of the lease
/// while the lease lasts: each try is conditional on the version just read, so at most one
/// lands, and a later read that finds the released lease knows it did.
async fn release(state: &Held) -> Result<()> {
    let released = Lease {
        holder: state.holder.clone(),
        token: state.token,
        expires_at_ms: 0,
        released: true,
    };
    let left = state
        .expires_at_ms
        .load(Ordering::Acquire)
        .saturating_sub(now_ms());
    let pause = state.lease / 10;
    let mut retries = Backoff::new(pause, pause)
        .with_max_elapsed(Duration::from_millis(left))
        .start();
    loop {
        let version = match read_lease(&*state.backend, &state.key).await? {
            Some((version, lease)) if lease.is_held_by(&state.holder, state.token) => version,
            // An earlier try landed after all.
            Some((_, lease)) if lease == released => break,
            other => {
                return Err(Error::Conflict {
                    op: "unlock",
                    key: state.key.to_string(),
                    expected: Some(Version::from(state.token)),
                    actual: other.map(|(_, lease)| Version::from(lease.token)),
                });
            }
        };
        let put = state
            .backend
            .put(&state.key, released.encode(), PutOptions::update(version))
            .await;
        match put {
            Ok(_) => break,
            // A renewal of ours landed meanwhile: look again.
            Err(e) if e.is_conflict() => continue,
            // The release may have landed: found written, the mutex is free.
            Err(e) => match landed(&*state.backend, &state.key, &released, e).await {
                Ok(_) => break,
                Err(e) if e.is_retryable() && retries.wait().await => {
                    tracing::debug!(key = %state.key, error = %e, "mutex release failed; trying again");
                }
                Err(e) => return Err(e),
            },
        }
    }
    tracing::debug!(key = %state.key, token = state.token, "mutex unlocked");
    Ok(())
}
