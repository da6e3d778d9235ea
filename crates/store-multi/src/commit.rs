//! The commit phase of a fan-out write: the conditional check under the key's lock, the
//! per-backend commits, and the write mode's verdict on them.
//!
//! Shared by the streaming [`FanOutWriter`](crate::FanOutWriter) and by [`put_whole`], the
//! direct path of a whole-object `put` when no backend streams writes. Such backends get
//! the whole object in one `put` at commit time from the writer as well, so the direct path
//! has exactly the writer's failure points, decisions and outcomes — it only skips building
//! the writer around them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use bytes::Bytes;
use futures::future::{BoxFuture, MaybeDone, join_all, maybe_done, poll_fn};
use futures::stream::{FuturesUnordered, StreamExt};
use smallvec::SmallVec;
use store_core::{BackendExt, Error, Key, Meta, MultiError, PutMode, PutOptions, Result, Version};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::composite::{self, Component, Part};
use crate::fan_out::Shared;
use crate::locks::KeyGuard;
use crate::mode::WriteMode;
use crate::report::{Outcome, Settlement, WriteReport};
use crate::view::View;

/// One backend's commit, owned so that a quorum write can finish it in the background.
pub(crate) type Commit = BoxFuture<'static, (usize, Result<Meta>)>;

/// Writes at least this large commit on every backend in parallel tasks.
const PARALLEL_COMMIT_BYTES: u64 = 1 << 20;

/// The mode each backend's own write gets, from the put mode given to the fan-out.
/// `Update(composite)` becomes `Update(vᵢ)` where backend i held `vᵢ`, and `Create` where it
/// held nothing (so an update also heals a backend that missed the previous write).
pub(crate) enum BackendModes {
    /// `Overwrite` and `Create` are the same on every backend.
    Same(PutMode),
    /// One per backend, from the composite version of an `Update`.
    Each(Vec<PutMode>),
}

impl BackendModes {
    pub(crate) fn new(mode: &PutMode, n: usize) -> BackendModes {
        match mode {
            PutMode::Overwrite | PutMode::Create => BackendModes::Same(mode.clone()),
            PutMode::Update(v) => BackendModes::Each(match composite::decode(v, n) {
                Some(comps) => comps
                    .into_iter()
                    .map(|c| match c {
                        Component::Present(v) => PutMode::Update(v),
                        Component::Absent => PutMode::Create,
                        // Never matches: the check at close reports the conflict.
                        Component::Unknown => PutMode::Update(Version::empty()),
                    })
                    .collect(),
                None => vec![PutMode::Update(Version::empty()); n],
            }),
        }
    }

    /// Backend `i`'s mode.
    pub(crate) fn get(&self, i: usize) -> PutMode {
        match self {
            BackendModes::Same(mode) => mode.clone(),
            BackendModes::Each(modes) => modes[i].clone(),
        }
    }
}

/// The runtime to commit on in one task per backend, for a commit of `size` bytes: a large
/// commit may be CPU-bound (a memory store joining chunks, a checksum), so each backend
/// gets its own task and they use every core. Small ones stay in the caller's task, where
/// they cost no spawn.
pub(crate) fn parallel_runtime(size: u64) -> Option<Handle> {
    (size >= PARALLEL_COMMIT_BYTES)
        .then(|| Handle::try_current().ok())
        .flatten()
}

/// `commit` as it will be awaited: in its own task on `parallel` if given.
pub(crate) fn maybe_spawned(
    parallel: Option<&Handle>,
    commit: BoxFuture<'static, Result<Meta>>,
) -> BoxFuture<'static, Result<Meta>> {
    match parallel {
        Some(rt) => {
            let task = rt.spawn(commit);
            Box::pin(async move {
                task.await.unwrap_or_else(|e| {
                    Err(Error::Backend {
                        backend: "store-multi",
                        retryable: false,
                        source: Box::new(e),
                    })
                })
            })
        }
        None => commit,
    }
}

/// The result of the conditional check: what every backend held under the lock (empty —
/// every backend `Unknown` — for an `Overwrite`, which reads nothing), and the backends
/// that could not tell.
pub(crate) struct Checked {
    pub(crate) known: Vec<Component>,
    pub(crate) errors: Vec<(usize, Error)>,
}

/// Checks a conditional `mode` against the composite version (under the key's lock).
/// `live(i)` says whether backend `i` still takes part in the write: one that dropped out
/// will not be written, so its state does not matter.
///
/// # Errors
/// `AlreadyExists`, `Conflict` or `NotFound` as a single backend would answer.
pub(crate) async fn check(
    shared: &Shared,
    key: &Key,
    mode: &PutMode,
    live: impl Fn(usize) -> bool,
) -> Result<Checked> {
    let n = shared.backends.len();
    if matches!(mode, PutMode::Overwrite) {
        return Ok(Checked {
            known: Vec::new(),
            errors: Vec::new(),
        });
    }
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
                    .all(|(i, (w, c))| !live(i) || matches!(c, Component::Unknown) || w == c)
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
        None => Ok(Checked {
            known: view.comps,
            errors: view.errors,
        }),
    }
}

/// What the commits awaited so far gave: one outcome per backend (`Pending` where none
/// came in), and the failures in the order they came.
pub(crate) struct Tally {
    outcomes: Vec<Outcome>,
    committed: usize,
    errors: Vec<(usize, Error)>,
}

impl Tally {
    /// `n` backends, of which those in `errors` already failed.
    pub(crate) fn new(n: usize, errors: Vec<(usize, Error)>) -> Tally {
        Tally {
            outcomes: vec![Outcome::Pending; n],
            committed: 0,
            errors,
        }
    }

    /// Whether backend `i` failed (so far).
    pub(crate) fn failed(&self, i: usize) -> bool {
        self.errors.iter().any(|(j, _)| *j == i)
    }

    /// Backend `i` failed before its commit.
    pub(crate) fn fail(&mut self, i: usize, e: Error) {
        self.errors.push((i, e));
    }

    /// Backend `i`'s commit finished with `r`.
    pub(crate) fn record(&mut self, i: usize, r: Result<Meta>) {
        match r {
            Ok(meta) => {
                self.outcomes[i] = Outcome::Committed(meta);
                self.committed += 1;
            }
            Err(e) => self.errors.push((i, e)),
        }
    }
}

/// One backend's commit as [`drive`] takes it: `(backend index, commit)`.
pub(crate) type Pollable<'a> = (usize, MaybeDone<BoxFuture<'a, Result<Meta>>>);

/// Polls every commit in this task — concurrently, with no task or further boxing per
/// backend — until all are done or, with `quorum`, until that many committed (the others
/// polled once more in the same pass, so only truly slow ones are left). Records the done
/// ones in `tally` and returns the rest, still running.
pub(crate) async fn drive<'a>(
    mut commits: Vec<Pollable<'a>>,
    quorum: Option<usize>,
    tally: &mut Tally,
) -> Vec<(usize, BoxFuture<'a, Result<Meta>>)> {
    let before = tally.committed;
    poll_fn(|cx| {
        let mut all_done = true;
        let mut committed = before;
        for (_, commit) in &mut commits {
            if Pin::new(&mut *commit).poll(cx).is_ready() {
                committed += usize::from(matches!(commit, MaybeDone::Done(Ok(_))));
            } else {
                all_done = false;
            }
        }
        if all_done || quorum.is_some_and(|q| committed >= q) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let mut running = Vec::new();
    for (i, commit) in commits {
        match commit {
            MaybeDone::Done(r) => tally.record(i, r),
            MaybeDone::Future(f) => running.push((i, f)),
            MaybeDone::Gone => {}
        }
    }
    running
}

/// The commits a quorum write leaves running, as one set to finish in the background.
pub(crate) fn background(
    running: Vec<(usize, BoxFuture<'static, Result<Meta>>)>,
) -> Option<FuturesUnordered<Commit>> {
    (!running.is_empty()).then(|| {
        running
            .into_iter()
            .map(|(i, f)| -> Commit { Box::pin(async move { (i, f.await) }) })
            .collect()
    })
}

/// The quorum [`drive`] waits for in `mode`: none (every commit) but for `Quorum`.
pub(crate) fn quorum(mode: WriteMode, required: usize) -> Option<usize> {
    (mode == WriteMode::Quorum).then_some(required)
}

/// The end of a commit phase, once the commits that must be awaited are in: fails (after
/// the `Create` rollback) if too few committed, else records the tolerated failures and
/// builds the report — settled now, or with `pending` quorum stragglers finishing in the
/// background (keeping the key's lock until they are done).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn conclude(
    shared: &Arc<Shared>,
    key: &Key,
    mode: &PutMode,
    size: u64,
    known: Vec<Component>,
    tally: Tally,
    pending: Option<FuturesUnordered<Commit>>,
    guard: KeyGuard,
) -> Result<WriteReport> {
    let n = shared.backends.len();
    let Tally {
        mut outcomes,
        committed,
        mut errors,
    } = tally;
    if committed < shared.mode.required(n) {
        // Nothing is pending here: a quorum write only stops early once the quorum is met.
        if *mode == PutMode::Create {
            // Boxed, like every cold path here: it keeps the hot future small.
            Box::pin(roll_back(shared, key, &outcomes, &mut errors)).await;
        }
        errors.sort_by_key(|(i, _)| *i);
        tracing::debug!(key = %key, failed = errors.len(), "store-multi: commit failed");
        return Err(MultiError::new(errors).into());
    }

    let modified = tolerate(shared, key, &mut outcomes, errors);
    let Some(pending) = pending else {
        let version = settle_version(shared, key, &outcomes, &known).await;
        drop(guard);
        return Ok(WriteReport {
            meta: Meta {
                key: key.clone(),
                size,
                version,
                modified,
            },
            outcomes,
            settled: None,
        });
    };

    // Quorum reached with backends still committing: return now, let them finish.
    let meta = Meta {
        key: key.clone(),
        size,
        version: current_version(&outcomes, &known),
        modified,
    };
    let (tx, rx) = watch::channel(None);
    let report = WriteReport {
        meta: meta.clone(),
        outcomes: outcomes.clone(),
        settled: Some(rx),
    };
    let finish = Box::pin(finish_in_background(
        Arc::clone(shared),
        key.clone(),
        meta,
        outcomes,
        known,
        pending,
        guard,
        tx,
    ));
    match Handle::try_current() {
        Ok(rt) => {
            rt.spawn(finish);
        }
        // No runtime to hand the stragglers to: finish them here.
        Err(_) => finish.await,
    }
    Ok(report)
}

/// Records the failures a successful write tolerated (in the failure log and as outcomes)
/// and returns the write's modification time (the first commit's).
fn tolerate(shared: &Shared, key: &Key, outcomes: &mut [Outcome], errors: Vec<(usize, Error)>) -> SystemTime {
    let modified = outcomes
        .iter()
        .find_map(|o| match o {
            Outcome::Committed(m) => Some(m.modified),
            _ => None,
        })
        .unwrap_or_else(SystemTime::now);
    for (i, e) in errors {
        let e = Arc::new(e);
        shared.failures.record("put", key.as_str(), i, Arc::clone(&e));
        outcomes[i] = Outcome::Failed(e);
    }
    modified
}

/// [`conclude`] without waiting for anything, in the common case: nothing left pending,
/// enough backends committed, and every backend's part of the composite version known (so
/// nobody needs asking). Gives the tally back otherwise.
///
/// A plain function so that the put future does not carry `conclude`'s state.
pub(crate) fn conclude_now(
    shared: &Shared,
    key: &Key,
    size: u64,
    known: &[Component],
    tally: Tally,
) -> std::result::Result<WriteReport, Tally> {
    let n = shared.backends.len();
    let failed_unknown = tally
        .errors
        .iter()
        .any(|(i, _)| known.get(*i).is_none_or(|c| *c == Component::Unknown));
    if tally.committed < shared.mode.required(n) || failed_unknown {
        return Err(tally);
    }
    let Tally {
        mut outcomes, errors, ..
    } = tally;
    let modified = tolerate(shared, key, &mut outcomes, errors);
    Ok(WriteReport {
        meta: Meta {
            key: key.clone(),
            size,
            version: current_version(&outcomes, known),
            modified,
        },
        outcomes,
        settled: None,
    })
}

/// A whole-object put through backends none of which streams writes: the commit phase of
/// a [`FanOutWriter`](crate::FanOutWriter) written `data` in one chunk, without the writer.
/// Each backend gets one `put` (its only failure point either way), all concurrently in
/// this task (in one task per backend from 1 MiB on, as the writer does). With `settle`,
/// a quorum write waits for every backend here, which gives the report it would settle to.
pub(crate) async fn put_whole(
    shared: &Arc<Shared>,
    key: &Key,
    data: Bytes,
    mode: PutMode,
    settle: bool,
) -> Result<WriteReport> {
    let n = shared.backends.len();
    let required = shared.mode.required(n);
    let size = data.len() as u64;
    let guard = shared.locks.lock(key).await;
    let Checked { known, errors } = if matches!(mode, PutMode::Overwrite) {
        // Nothing to check (and no check future in this one's state).
        Checked {
            known: Vec::new(),
            errors: Vec::new(),
        }
    } else {
        Box::pin(check(shared, key, &mode, |_| true)).await?
    };
    // A backend that cannot tell its state cannot be checked, so it is not written.
    if n - errors.len() < required {
        return Err(MultiError::new(errors).into());
    }
    let modes = BackendModes::new(&mode, n);
    let parallel = parallel_runtime(size);
    let mut tally = Tally::new(n, errors);
    let background_quorum = shared.mode == WriteMode::Quorum && !settle;
    let pending = if background_quorum || parallel.is_some() {
        // Owned commits: a quorum write may leave some to the background, a large one
        // runs each in its own task.
        let mut commits: Vec<Pollable<'static>> = Vec::with_capacity(n);
        for i in (0..n).filter(|&i| !tally.failed(i)) {
            let (backend, key, data, m) = (
                Arc::clone(&shared.backends[i]),
                key.clone(),
                data.clone(),
                modes.get(i),
            );
            let put: BoxFuture<'static, Result<Meta>> =
                Box::pin(async move { (*backend).put(&key, data, m.into()).await });
            commits.push((i, maybe_done(maybe_spawned(parallel.as_ref(), put))));
        }
        background(drive(commits, quorum(shared.mode, required), &mut tally).await)
    } else {
        // All and BestEffort (and a settled quorum) wait for every backend: each backend's
        // own put future, as is.
        let mut commits: Vec<Pollable<'_>> = Vec::with_capacity(n);
        for i in (0..n).filter(|&i| !tally.failed(i)) {
            let put = (*shared.backends[i]).put(key, data.clone(), modes.get(i).into());
            commits.push((i, maybe_done(put)));
        }
        // Nothing is left running without a quorum.
        drive(commits, None, &mut tally).await;
        None
    };
    let tally = match pending {
        None => match conclude_now(shared, key, size, &known, tally) {
            Ok(report) => {
                drop(guard);
                return Ok(report);
            }
            Err(tally) => tally,
        },
        Some(_) => tally,
    };
    // Boxed: failures, quorum stragglers and unknown states are the cold path.
    Box::pin(conclude(shared, key, &mode, size, known, tally, pending, guard)).await
}

/// Backends a [`put_settled`] keeps on the stack.
const INLINE_BACKENDS: usize = 4;

/// `Multi`'s `Backend::put` of a whole object, which returns only the metadata and waits
/// for every backend (in every mode). An unconditional put small enough for one task, to
/// backends none of which streams, with every backend committing — the common case — takes
/// the key's lock, runs the backends' own puts concurrently and builds the composite
/// version from their answers, with no report, tally or outcome list. Anything else, and
/// any failure, goes through [`put_whole`]'s verdict unchanged.
pub(crate) async fn put_settled(shared: &Arc<Shared>, key: &Key, data: Bytes, mode: PutMode) -> Result<Meta> {
    debug_assert!(!shared.streams, "streaming backends take the writer path");
    let size = data.len() as u64;
    if mode != PutMode::Overwrite || parallel_runtime(size).is_some() {
        // Boxed: the general path's state stays out of the common one's.
        return Box::pin(async move {
            let report = put_whole(shared, key, data, mode, true).await?;
            Ok(report.into_settled_meta().await)
        })
        .await;
    }
    let guard = shared.locks.lock(key).await;
    let mut commits: SmallVec<[MaybeDone<BoxFuture<'_, Result<Meta>>>; INLINE_BACKENDS]> = shared
        .backends
        .iter()
        .map(|b| maybe_done((**b).put(key, data.clone(), PutOptions::default())))
        .collect();
    drop(data);
    poll_fn(|cx| {
        let mut all_done = true;
        for commit in &mut commits {
            all_done &= Pin::new(commit).poll(cx).is_ready();
        }
        if all_done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    fn committed<F>(commit: &MaybeDone<F>) -> Option<&Meta>
    where
        F: Future<Output = Result<Meta>>,
    {
        match commit {
            MaybeDone::Done(Ok(meta)) => Some(meta),
            _ => None,
        }
    }
    if let Some(first) = commits.first().and_then(committed)
        && commits.iter().all(|c| committed(c).is_some())
    {
        let modified = first.modified;
        let version = composite::encode_parts(commits.iter().map(|c| match committed(c) {
            Some(meta) => Part::Present(&meta.version),
            None => Part::Unknown,
        }));
        drop(guard);
        return Ok(Meta {
            key: key.clone(),
            size,
            version,
            modified,
        });
    }
    // Boxed, like every cold path here: it keeps the hot future small.
    Box::pin(judge_failed(shared, key, size, commits, guard)).await
}

/// [`put_settled`] when some backend failed: the write mode's verdict, exactly as
/// [`put_whole`] reaches it.
async fn judge_failed<F>(
    shared: &Arc<Shared>,
    key: &Key,
    size: u64,
    commits: SmallVec<[MaybeDone<F>; INLINE_BACKENDS]>,
    guard: KeyGuard,
) -> Result<Meta>
where
    F: Future<Output = Result<Meta>>,
{
    let mut tally = Tally::new(shared.backends.len(), Vec::new());
    for (i, commit) in commits.into_iter().enumerate() {
        if let MaybeDone::Done(r) = commit {
            tally.record(i, r);
        }
    }
    let mode = PutMode::Overwrite;
    let report = conclude(shared, key, &mode, size, Vec::new(), tally, None, guard).await?;
    Ok(report.into_settled_meta().await)
}

/// Undoes the commits of a failed `Create`: deletes each new object if it is still the
/// version this write made (never someone else's).
async fn roll_back(shared: &Shared, key: &Key, outcomes: &[Outcome], errors: &mut Vec<(usize, Error)>) {
    let undo = outcomes.iter().enumerate().filter_map(|(i, o)| match o {
        Outcome::Committed(m) => Some(async move {
            let r = (*shared.backends[i]).delete_if(key, m.version.clone()).await;
            (i, r)
        }),
        _ => None,
    });
    for (i, r) in join_all(undo).await {
        if let Err(e) = r {
            errors.push((
                i,
                Error::Backend {
                    backend: "store-multi rollback",
                    retryable: false,
                    source: Box::new(e),
                },
            ));
        }
    }
}

/// Backend `i`'s part of the composite version after a write: a committed backend holds
/// its new version, a failed one what it held before (known from the conditional check —
/// `known` is empty when there was none — else `Unknown` for now), a pending one `Unknown`.
fn part<'a>(outcomes: &'a [Outcome], known: &'a [Component], i: usize) -> Part<'a> {
    match &outcomes[i] {
        Outcome::Committed(m) => Part::Present(&m.version),
        Outcome::Failed(_) => known.get(i).map_or(Part::Unknown, Component::part),
        Outcome::Pending => Part::Unknown,
    }
}

/// The composite version as of now (see [`part`]).
fn current_version(outcomes: &[Outcome], known: &[Component]) -> Version {
    composite::encode_parts((0..outcomes.len()).map(|i| part(outcomes, known, i)))
}

/// The final composite version, asking the failed backends (under the key's lock, so it
/// is stable against this `Multi`'s writers) what they hold when the check did not tell.
async fn settle_version(shared: &Shared, key: &Key, outcomes: &[Outcome], known: &[Component]) -> Version {
    let n = outcomes.len();
    if (0..n).all(|i| part(outcomes, known, i) != Part::Unknown) {
        // The common case: every part known without asking.
        return current_version(outcomes, known);
    }
    Box::pin(ask_unknown(shared, key, outcomes, known)).await
}

/// [`settle_version`] when some backends' state is unknown: asks them.
async fn ask_unknown(shared: &Shared, key: &Key, outcomes: &[Outcome], known: &[Component]) -> Version {
    let n = outcomes.len();
    let mut comps: Vec<Component> = (0..n)
        .map(|i| match part(outcomes, known, i) {
            Part::Present(v) => Component::Present(v.clone()),
            Part::Absent => Component::Absent,
            Part::Unknown => Component::Unknown,
        })
        .collect();
    let unknown: Vec<usize> = (0..n).filter(|&i| comps[i] == Component::Unknown).collect();
    let heads = join_all(unknown.iter().map(|&i| (*shared.backends[i]).head(key))).await;
    for (i, h) in unknown.into_iter().zip(heads) {
        comps[i] = match h {
            Ok(m) => Component::Present(m.version),
            Err(e) if e.is_not_found() => Component::Absent,
            Err(_) => Component::Unknown,
        };
    }
    composite::encode(&comps)
}

#[allow(clippy::too_many_arguments)]
async fn finish_in_background(
    shared: Arc<Shared>,
    key: Key,
    base: Meta,
    mut outcomes: Vec<Outcome>,
    known: Vec<Component>,
    mut commits: FuturesUnordered<Commit>,
    guard: KeyGuard,
    tx: watch::Sender<Option<Settlement>>,
) {
    while let Some((i, r)) = commits.next().await {
        outcomes[i] = match r {
            Ok(m) => Outcome::Committed(m),
            Err(e) => {
                let e = Arc::new(e);
                shared.failures.record("put", key.as_str(), i, Arc::clone(&e));
                Outcome::Failed(e)
            }
        };
    }
    let meta = Meta {
        version: settle_version(&shared, &key, &outcomes, &known).await,
        ..base
    };
    drop(guard);
    tracing::debug!(key = %key, version = %meta.version, "store-multi: quorum write settled");
    let _ = tx.send(Some(Settlement { meta, outcomes }));
}
