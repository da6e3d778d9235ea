//! The commit phase of a fan-out write, shared by [`MultiWriter::put`](crate::MultiWriter::put)
//! (each backend's own `put` of the whole object) and the streamed
//! [`FanOutWriter`](crate::FanOutWriter) (each backend's writer commits, or gets the
//! buffered object in one `put`): the conditional check under the key's lock, every
//! backend's commit at once, and the write mode's verdict on them.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::future::{FutureExt, join_all};
use futures::stream::{FuturesUnordered, StreamExt};
use store_core::{Backend, BackendExt, Error, Key, Meta, MultiError, PutMode, Result, Version};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::composite::{self, Component};
use crate::fan_out::Shared;
use crate::locks::KeyGuard;
use crate::mode::WriteMode;
use crate::report::{Outcome, Settlement, WriteReport};
use crate::view::View;

/// Backend `backend`'s `put` of the whole object, as a commit for [`Phase::commit`].
pub(crate) fn put(
    backend: &Arc<dyn Backend>,
    key: &Key,
    data: Bytes,
    mode: PutMode,
) -> impl Future<Output = Result<Meta>> + Send + 'static {
    let (backend, key) = (Arc::clone(backend), key.clone());
    async move { (*backend).put(&key, data, mode.into()).await }
}

/// The mode each backend's own write gets, from the put mode given to the fan-out.
/// `Update(composite)` becomes `Update(vᵢ)` where backend i held `vᵢ`, and `Create` where it
/// held nothing (so an update also heals a backend that missed the previous write). A part
/// that is unknown, or a version this fan-out never issued, becomes an `Update` that never
/// matches: the conditional check reports the conflict before any backend commits.
pub(crate) fn backend_modes(mode: &PutMode, n: usize) -> Vec<PutMode> {
    let PutMode::Update(v) = mode else {
        return vec![mode.clone(); n];
    };
    match composite::decode(v, n) {
        Some(comps) => comps
            .into_iter()
            .map(|c| match c {
                Component::Present(v) => PutMode::Update(v),
                Component::Absent => PutMode::Create,
                Component::Unknown => PutMode::Update(Version::empty()),
            })
            .collect(),
        None => vec![PutMode::Update(Version::empty()); n],
    }
}

/// A write's commit phase. It holds the key's lock from the conditional check until every
/// backend has answered — after a `Quorum` write returned too, in the task that finishes
/// its slow backends (see the crate documentation on locks).
pub(crate) struct Phase {
    shared: Arc<Shared>,
    key: Key,
    mode: PutMode,
    guard: KeyGuard,
    /// What every backend held under the lock, from the check (empty for an `Overwrite`,
    /// which reads nothing).
    known: Vec<Component>,
}

/// What the commits that answered so far gave.
struct Tally {
    outcomes: Vec<Outcome>,
    committed: usize,
    errors: Vec<(usize, Error)>,
    /// The backends whose commit failed without proving it changed nothing (a lost reply):
    /// they may hold the new object.
    open: Vec<usize>,
}

impl Tally {
    fn record(&mut self, i: usize, r: Result<Meta>) {
        match r {
            Ok(meta) => {
                self.outcomes[i] = Outcome::Committed(meta);
                self.committed += 1;
            }
            Err(e) => {
                if !e.is_not_applied() {
                    self.open.push(i);
                }
                self.errors.push((i, e));
            }
        }
    }
}

impl Phase {
    /// Takes `key`'s lock and checks a conditional `mode` against the composite version.
    /// `live(i)` says whether backend `i` still takes part in the write: one that dropped
    /// out will not be written, so its state does not matter. Returns the phase, and the
    /// backends that could not tell their state: they cannot be checked, so they are not
    /// written. One `head` per backend for `Create` and `Update`; nothing for `Overwrite`.
    ///
    /// # Errors
    /// `AlreadyExists`, `Conflict` or `NotFound` as a single backend would answer.
    pub(crate) async fn begin(
        shared: &Arc<Shared>,
        key: &Key,
        mode: PutMode,
        live: impl Fn(usize) -> bool,
    ) -> Result<(Phase, Vec<(usize, Error)>)> {
        let guard = shared.locks.lock(key).await;
        let (known, unchecked) = match mode {
            PutMode::Overwrite => (Vec::new(), Vec::new()),
            // Boxed, as every path that is not an unconditional write's: the common
            // write's future stays small.
            _ => Box::pin(check(shared, key, &mode, live)).await?,
        };
        let phase = Phase {
            shared: Arc::clone(shared),
            key: key.clone(),
            mode,
            guard,
            known,
        };
        Ok((phase, unchecked))
    }

    /// Runs `commits` (backend index, commit: its `put`, or its writer's `close`) all at
    /// once, with `failed` the backends that dropped out before, and judges them by the
    /// write mode. The commits are owned, so that those a quorum write does not wait for
    /// can finish in the background.
    ///
    /// - `All` / `BestEffort`: waits for every commit; succeeds if every one / at least one
    ///   committed.
    /// - `Quorum`: returns as soon as a majority committed. The others keep committing in a
    ///   task of their own, which keeps the key's lock until they answered and then
    ///   completes [`WriteReport::settled`](crate::WriteReport::settled).
    ///
    /// Too few commits is an error listing every failure, after a failed `Create` is rolled
    /// back. Tolerated failures are in the report and the failure log.
    pub(crate) async fn commit<F>(
        mut self,
        size: u64,
        commits: Vec<(usize, F)>,
        failed: Vec<(usize, Error)>,
    ) -> Result<WriteReport>
    where
        F: Future<Output = Result<Meta>> + Send + 'static,
    {
        let n = self.shared.backends.len();
        let required = self.shared.mode.required(n);
        let mut tally = Tally {
            outcomes: vec![Outcome::Pending; n],
            committed: 0,
            errors: failed,
            open: Vec::new(),
        };
        let commits = commits.into_iter().map(|(i, commit)| commit.map(move |r| (i, r)));
        let mut running = None;
        if self.shared.mode == WriteMode::Quorum {
            let mut set: FuturesUnordered<_> = commits.collect();
            while let Some((i, r)) = set.next().await {
                tally.record(i, r);
                if tally.committed >= required {
                    break;
                }
            }
            // The commits that can answer at once count too: only slow ones are left running.
            while let Some(Some((i, r))) = set.next().now_or_never() {
                tally.record(i, r);
            }
            running = Some(set).filter(|set| !set.is_empty());
        } else {
            for (i, r) in join_all(commits).await {
                tally.record(i, r);
            }
        }
        if tally.committed < required {
            // Nothing is left running: only a quorum met stops the loop early.
            return Err(Box::pin(self.fail(tally)).await);
        }
        let Tally {
            mut outcomes,
            errors,
            open,
            ..
        } = tally;
        for i in open {
            self.forget(i);
        }
        let modified = tolerate(&self.shared, &self.key, &mut outcomes, errors);
        let meta = Meta {
            key: self.key.clone(),
            size,
            version: Version::empty(),
            modified,
        };
        let Some(running) = running else {
            let version = settled_version(&self.shared, &self.key, &outcomes, &self.known).await;
            return Ok(WriteReport {
                meta: Meta { version, ..meta },
                outcomes,
                settled: None,
            });
        };
        // Quorum met with backends still committing: return now, let them finish.
        let meta = Meta {
            version: composite::encode(&parts(&outcomes, &self.known)),
            ..meta
        };
        let (tx, rx) = watch::channel(None);
        let report = WriteReport {
            meta: meta.clone(),
            outcomes: outcomes.clone(),
            settled: Some(rx),
        };
        let finish = Box::pin(self.finish(meta, outcomes, running, tx));
        match Handle::try_current() {
            Ok(rt) => drop(rt.spawn(finish)),
            // No runtime to hand the slow backends to: finish them here.
            Err(_) => finish.await,
        }
        Ok(report)
    }

    /// Backend `i`'s commit failed without proving it changed nothing (a lost reply): what
    /// the check saw there no longer tells what it holds.
    fn forget(&mut self, i: usize) {
        if let Some(part) = self.known.get_mut(i) {
            *part = Component::Unknown;
        }
    }

    /// The error of a write that too few backends committed, after rolling back a `Create`.
    async fn fail(self, tally: Tally) -> Error {
        let Tally {
            outcomes,
            mut errors,
            open,
            ..
        } = tally;
        let rolled_back = self.mode == PutMode::Create;
        if rolled_back {
            roll_back(&self.shared, &self.key, &outcomes, &open, &mut errors).await;
        }
        errors.sort_by_key(|(i, _)| *i);
        tracing::debug!(key = %self.key, failed = errors.len(), "store-multi: commit failed");
        let applied = outcomes.iter().any(|o| matches!(o, Outcome::Committed(_)));
        let errors = MultiError::new(errors);
        // Backends that committed (and were not rolled back) hold the write: the error must
        // not pass for one that changed nothing.
        if applied && !rolled_back {
            errors.after_partial_apply("Multi").into()
        } else {
            errors.into()
        }
    }

    /// Finishes the commits a quorum write left running, then reports the settled state.
    async fn finish(
        mut self,
        base: Meta,
        mut outcomes: Vec<Outcome>,
        mut running: FuturesUnordered<impl Future<Output = (usize, Result<Meta>)>>,
        tx: watch::Sender<Option<Settlement>>,
    ) {
        while let Some((i, r)) = running.next().await {
            outcomes[i] = match r {
                Ok(m) => Outcome::Committed(m),
                Err(e) => {
                    if !e.is_not_applied() {
                        self.forget(i);
                    }
                    let e = Arc::new(e);
                    self.shared
                        .failures
                        .record("put", self.key.as_str(), i, Arc::clone(&e));
                    Outcome::Failed(e)
                }
            };
        }
        let meta = Meta {
            version: settled_version(&self.shared, &self.key, &outcomes, &self.known).await,
            ..base
        };
        tracing::debug!(key = %self.key, version = %meta.version, "store-multi: quorum write settled");
        let _ = tx.send(Some(Settlement { meta, outcomes }));
        // Only now may the next write of the key go ahead.
        drop(self.guard);
    }
}

/// Checks a conditional `mode` (under the key's lock); see [`Phase::begin`]. Returns what
/// every backend holds, and the backends that could not tell.
async fn check(
    shared: &Shared,
    key: &Key,
    mode: &PutMode,
    live: impl Fn(usize) -> bool,
) -> Result<(Vec<Component>, Vec<(usize, Error)>)> {
    let n = shared.backends.len();
    let view = View::read(&shared.backends, key).await;
    let verdict = match mode {
        PutMode::Overwrite => None,
        PutMode::Create if view.any_present() => Some(Error::AlreadyExists {
            op: "put",
            key: key.to_string(),
            version: view.version(),
        }),
        PutMode::Create => None,
        PutMode::Update(_) if !view.any_present() && view.errors.len() < n => Some(Error::NotFound {
            op: "put",
            key: key.to_string(),
        }),
        PutMode::Update(expected) => {
            let want = composite::decode(expected, n);
            let matches = want.is_some_and(|want| {
                want.iter()
                    .zip(&view.comps)
                    .enumerate()
                    .all(|(i, (w, c))| !live(i) || *c == Component::Unknown || w == c)
            });
            (!matches).then(|| Error::Conflict {
                op: "put",
                key: key.to_string(),
                expected: Some(expected.clone()),
                actual: Some(view.version()),
            })
        }
    };
    match verdict {
        Some(e) => Err(e),
        None => Ok((view.comps, view.errors)),
    }
}

/// Records the failures a successful write tolerated (in the failure log and as outcomes,
/// by backend index) and returns the write's modification time (the first commit's).
fn tolerate(
    shared: &Shared,
    key: &Key,
    outcomes: &mut [Outcome],
    mut errors: Vec<(usize, Error)>,
) -> SystemTime {
    let modified = outcomes
        .iter()
        .find_map(|o| match o {
            Outcome::Committed(m) => Some(m.modified),
            _ => None,
        })
        .unwrap_or_else(SystemTime::now);
    errors.sort_by_key(|(i, _)| *i);
    for (i, e) in errors {
        let e = Arc::new(e);
        shared.failures.record("put", key.as_str(), i, Arc::clone(&e));
        outcomes[i] = Outcome::Failed(e);
    }
    modified
}

/// Undoes the commits of a failed `Create`: deletes each new object if it is still the
/// version this write made (never someone else's). A backend in `open` (its commit failed
/// without proving it changed nothing: a lost reply) is asked first: its error's
/// [`WriteResolver`](store_core::WriteResolver), when it has one, tells whether the write
/// landed and at which version; otherwise a `head` (under the key's lock, so no writer of
/// this `Multi` came between: what the backend holds is taken for this write's, which a
/// writer from outside could have replaced). A rollback that fails is an error too.
async fn roll_back(
    shared: &Shared,
    key: &Key,
    outcomes: &[Outcome],
    open: &[usize],
    errors: &mut Vec<(usize, Error)>,
) {
    let resolver = |i: usize| {
        errors
            .iter()
            .find(|(j, _)| *j == i)
            .and_then(|(_, e)| e.resolver().cloned())
    };
    let undo = (0..outcomes.len()).filter_map(|i| {
        let made = match &outcomes[i] {
            Outcome::Committed(m) => Some(m.version.clone()),
            _ => None,
        };
        let resolver = resolver(i);
        (made.is_some() || open.contains(&i)).then_some(async move {
            let backend = &shared.backends[i];
            let made = match (made, resolver) {
                (Some(v), _) => v,
                (None, Some(resolver)) => match resolver.resolve().await {
                    Ok(Some(m)) => m.version,
                    // The backend does not hold this write now (the resolver's contract):
                    // nothing to undo.
                    Ok(None) => return (i, Ok(())),
                    Err(e) => return (i, Err(e)),
                },
                (None, None) => match (**backend).head(key).await {
                    Ok(m) => m.version,
                    Err(e) if e.is_not_found() => return (i, Ok(())),
                    Err(e) => return (i, Err(e)),
                },
            };
            (i, (**backend).delete_if(key, made).await)
        })
    });
    for (i, r) in join_all(undo).await {
        match r {
            // Gone already: as wanted.
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push((
                i,
                Error::Backend {
                    backend: "store-multi rollback",
                    retryable: false,
                    source: Box::new(e),
                },
            )),
        }
    }
}

/// Every backend's part of the composite version after a write: a committed backend holds
/// its new version, a failed one what it held before (known from the conditional check —
/// `known` is empty when there was none, and `Unknown` where a commit failed without
/// proving it changed nothing), a pending one `Unknown`.
fn parts(outcomes: &[Outcome], known: &[Component]) -> Vec<Component> {
    outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| match o {
            Outcome::Committed(m) => Component::Present(m.version.clone()),
            Outcome::Failed(_) => known.get(i).cloned().unwrap_or(Component::Unknown),
            Outcome::Pending => Component::Unknown,
        })
        .collect()
}

/// The composite version once every backend answered. A failed backend whose state the
/// check did not tell is asked (one `head`; under the key's lock, so stable against this
/// `Multi`'s writers); a write where every backend committed asks nothing.
async fn settled_version(shared: &Shared, key: &Key, outcomes: &[Outcome], known: &[Component]) -> Version {
    let mut comps = parts(outcomes, known);
    let unknown: Vec<usize> = (0..comps.len())
        .filter(|&i| comps[i] == Component::Unknown)
        .collect();
    if !unknown.is_empty() {
        let heads = Box::pin(join_all(unknown.iter().map(|&i| (*shared.backends[i]).head(key)))).await;
        for (i, h) in unknown.into_iter().zip(heads) {
            comps[i] = match h {
                Ok(m) => Component::Present(m.version),
                Err(e) if e.is_not_found() => Component::Absent,
                Err(_) => Component::Unknown,
            };
        }
    }
    composite::encode(&comps)
}
