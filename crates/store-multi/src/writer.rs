//! `FanOutWriter`: one streaming write to every backend.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use futures::stream::{FuturesUnordered, StreamExt};
use store_core::{
    BackendExt, Error, Key, Meta, MultiError, ObjectWriter, PutMode, PutOptions, Result, Version,
};
use tokio::sync::{OwnedMutexGuard, watch};

use crate::composite::{self, Component};
use crate::fan_out::Shared;
use crate::mode::WriteMode;
use crate::report::{Outcome, Settlement, WriteReport};
use crate::view::View;

enum Slot {
    /// A streaming backend's own writer.
    Live(Box<dyn ObjectWriter>),
    /// A backend that does not stream writes: it gets the whole object in one `put` with
    /// this mode at commit time, from the chunks the fan-out buffers once for all such
    /// backends. Its own writer would only have buffered too, so no failure point is lost.
    Buffered(PutMode),
    Failed(Error),
    /// Aborted because the write as a whole failed (not this backend's fault).
    Aborted,
}

enum State {
    Open,
    /// Closed successfully: a second close returns the same report.
    Committed(WriteReport),
    /// Closed by a failure or an abort.
    Failed,
}

type Commit = BoxFuture<'static, (usize, Result<Meta>)>;

/// Writes at least this large commit on every backend in parallel tasks.
const PARALLEL_COMMIT_BYTES: u64 = 1 << 20;

/// A write in progress on every backend of a [`MultiWriter`](crate::MultiWriter).
///
/// [`write`](Self::write) sends each chunk to every live backend concurrently and returns
/// when all of them took it (so the slowest backend sets the pace: back-pressure, not
/// unbounded buffering). Backends that do not stream writes are not sent chunks: the
/// writer keeps them once for all such backends, which each get the whole object in one
/// `put` at commit time. [`close`](Self::close) commits. Dropping the writer aborts every
/// backend's writer. Writing after close is [`Error::Closed`]; closing twice returns the
/// first close's report again (or `Closed` if the first close failed).
///
/// It is also an [`ObjectWriter`], which is what [`Multi`](crate::Multi) hands out.
pub struct FanOutWriter {
    shared: Arc<Shared>,
    key: Key,
    mode: PutMode,
    slots: Vec<Slot>,
    /// The chunks, kept once for every `Buffered` backend.
    buffer: Vec<Bytes>,
    written: u64,
    state: State,
}

/// The mode each backend's own writer gets, from the put mode given to the fan-out.
/// `Update(composite)` becomes `Update(vᵢ)` where backend i held `vᵢ`, and `Create` where it
/// held nothing (so an update also heals a backend that missed the previous write).
fn backend_modes(mode: &PutMode, n: usize) -> Vec<PutMode> {
    match mode {
        PutMode::Overwrite => vec![PutMode::Overwrite; n],
        PutMode::Create => vec![PutMode::Create; n],
        PutMode::Update(v) => match composite::decode(v, n) {
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
        },
    }
}

impl Slot {
    fn is_live(&self) -> bool {
        matches!(self, Slot::Live(_) | Slot::Buffered(_))
    }
}

/// The chunks as one buffer: a single chunk as is, several copied once.
fn join_chunks(mut chunks: Vec<Bytes>, len: u64) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut buf = BytesMut::with_capacity(len as usize);
            for c in chunks {
                buf.extend_from_slice(&c);
            }
            buf.freeze()
        }
    }
}

impl FanOutWriter {
    pub(crate) async fn open(shared: Arc<Shared>, key: &Key, opts: PutOptions) -> Result<FanOutWriter> {
        let n = shared.backends.len();
        let modes = backend_modes(&opts.mode, n);
        let opened = join_all(shared.backends.iter().zip(modes).map(|(b, m)| async move {
            if b.capabilities().streaming_writes {
                match b.writer(key, m.into()).await {
                    Ok(w) => Slot::Live(w),
                    Err(e) => Slot::Failed(e),
                }
            } else {
                Slot::Buffered(m)
            }
        }))
        .await;
        let mut w = FanOutWriter {
            shared,
            key: key.clone(),
            mode: opts.mode,
            slots: opened,
            buffer: Vec::new(),
            written: 0,
            state: State::Open,
        };
        tracing::debug!(key = %w.key, mode = ?w.shared.mode, "store-multi: writer opened");
        w.enforce().await?;
        Ok(w)
    }

    /// The key being written.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Indices of the backends still taking part in the write.
    pub fn live(&self) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_live())
            .map(|(i, _)| i)
            .collect()
    }

    fn live_count(&self) -> usize {
        self.slots.iter().filter(|s| s.is_live()).count()
    }

    fn required(&self) -> usize {
        self.shared.mode.required(self.shared.backends.len())
    }

    /// If too few backends are left for the write mode, aborts the rest and fails with
    /// every backend's error. In `All` mode that is the first failure: nothing has been
    /// committed anywhere, so no backend shows the new object.
    async fn enforce(&mut self) -> Result<()> {
        if self.live_count() >= self.required() {
            return Ok(());
        }
        self.abort_live().await;
        self.state = State::Failed;
        Err(self.take_errors().into())
    }

    async fn abort_live(&mut self) {
        self.buffer.clear();
        let mut aborts = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.is_live()
                && let Slot::Live(w) = std::mem::replace(slot, Slot::Aborted)
            {
                aborts.push(async move { (i, w.abort().await) });
            }
        }
        for (i, r) in join_all(aborts).await {
            if let Err(e) = r {
                // The write is failing anyway; an abort that could not clean up is worth a
                // warning (the backend's own clean-up of stale temp files is the safety net).
                tracing::warn!(key = %self.key, backend = i, error = %e, "store-multi: abort failed");
            }
        }
    }

    /// The errors of the backends that failed, by index.
    fn take_errors(&mut self) -> MultiError {
        let mut errors = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Failed(e) = std::mem::replace(slot, Slot::Aborted) {
                errors.push((i, e));
            }
        }
        MultiError::new(errors)
    }

    /// Sends `chunk` to every live backend concurrently (each gets a clone of the same
    /// `Bytes`: no copy). A backend that fails drops out; if that leaves too few for the
    /// write mode, the whole write is aborted and this returns the errors.
    ///
    /// # Errors
    /// [`Error::Closed`] after close or after a failure ended the write;
    /// [`Error::Multi`] if this chunk's failures ended it.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if !matches!(self.state, State::Open) {
            return Err(Error::Closed { op: "write" });
        }
        let len = chunk.len() as u64;
        let writes = self.slots.iter_mut().enumerate().filter_map(|(i, s)| match s {
            Slot::Live(w) => {
                let c = chunk.clone();
                Some(async move { (i, w.write(c).await) })
            }
            Slot::Buffered(_) | Slot::Failed(_) | Slot::Aborted => None,
        });
        let failed: Vec<(usize, Error)> = join_all(writes)
            .await
            .into_iter()
            .filter_map(|(i, r)| r.err().map(|e| (i, e)))
            .collect();
        for (i, e) in failed {
            // Dropping the backend's writer aborts it.
            self.slots[i] = Slot::Failed(e);
        }
        self.enforce().await?;
        if !chunk.is_empty() && self.slots.iter().any(|s| matches!(s, Slot::Buffered(_))) {
            self.buffer.push(chunk);
        }
        self.written += len;
        Ok(())
    }

    /// Discards the write on every backend.
    pub async fn abort(&mut self) -> Result<()> {
        if matches!(self.state, State::Open) {
            self.abort_live().await;
            self.state = State::Failed;
        }
        Ok(())
    }

    /// Commits the object on every live backend and reports what happened.
    ///
    /// Under the key's lock, a `Create` or `Update` is first checked against every
    /// backend's current state (the composite version); a mismatch aborts every writer and
    /// fails with `AlreadyExists`, `Conflict` or `NotFound` as a single backend would.
    /// Then every backend commits concurrently:
    /// - `All`: every commit must succeed. If some fail, the error lists them; the others
    ///   did commit — except with `Create`, where they are rolled back (`delete_if` their
    ///   new version, best effort; a failed rollback is in the error too).
    /// - `BestEffort`: at least one commit must succeed; failures are in the report.
    /// - `Quorum`: returns once a majority committed; the rest keep committing in the
    ///   background (holding the key's lock) and [`WriteReport::settled`] reports them.
    ///   Below a majority it fails, after the `Create` rollback described above.
    ///
    /// A second close returns the first close's report (or [`Error::Closed`] if the first
    /// close failed): closing twice is harmless. Dropping the close future part-way (a
    /// timeout) leaves each backend as far as its own commit got, like any cancelled write.
    pub async fn close(&mut self) -> Result<WriteReport> {
        self.finish(true).await
    }

    /// Closes; `remember` keeps a copy of the report for a second close.
    pub(crate) async fn finish(&mut self, remember: bool) -> Result<WriteReport> {
        match &self.state {
            State::Committed(report) => return Ok(report.clone()),
            State::Failed => return Err(Error::Closed { op: "close" }),
            State::Open => {}
        }
        let result = self.commit().await;
        self.state = match &result {
            Ok(report) if remember => State::Committed(report.clone()),
            Ok(_) => State::Failed,
            Err(_) => State::Failed,
        };
        result
    }

    /// Checks a conditional mode against the composite version. Returns the state of every
    /// backend as seen under the lock (`Unknown` for an `Overwrite`, which needs no check).
    async fn check_condition(&mut self) -> Result<Vec<Component>> {
        let n = self.shared.backends.len();
        if matches!(self.mode, PutMode::Overwrite) {
            return Ok(vec![Component::Unknown; n]);
        }
        let view = View::read(&self.shared.backends, &self.key).await;
        let key = self.key.to_string();
        let verdict = match &self.mode {
            PutMode::Overwrite => None,
            PutMode::Create if view.any_present() => Some(Error::AlreadyExists {
                op: "put",
                key,
                version: view.version(),
            }),
            PutMode::Create => None,
            PutMode::Update(_) if !view.any_present() && view.errors.len() < n => {
                Some(Error::NotFound { op: "put", key })
            }
            PutMode::Update(expected) => {
                let want = composite::decode(expected, n);
                // Only backends taking part matter: one that already dropped out will not
                // be written.
                let matches = want.is_some_and(|want| {
                    self.slots
                        .iter()
                        .zip(want.iter().zip(&view.comps))
                        .all(|(s, (w, c))| !s.is_live() || matches!(c, Component::Unknown) || w == c)
                });
                (!matches).then(|| Error::Conflict {
                    op: "put",
                    key,
                    expected: Some(expected.clone()),
                    actual: Some(view.version()),
                })
            }
        };
        if let Some(e) = verdict {
            self.abort_live().await;
            self.state = State::Failed;
            return Err(e);
        }
        let comps = view.comps.clone();
        for (i, e) in view.errors {
            // A backend that cannot tell its state cannot be checked, so it is not written.
            if self.slots[i].is_live() {
                self.slots[i] = Slot::Failed(e);
            }
        }
        self.enforce().await?;
        Ok(comps)
    }

    async fn commit(&mut self) -> Result<WriteReport> {
        let guard = self.shared.locks.lock(&self.key).await;
        let known = self.check_condition().await?;
        let n = self.shared.backends.len();
        let required = self.required();
        let mut errors: Vec<(usize, Error)> = Vec::new();
        let mut committed: Vec<(usize, Meta)> = Vec::new();
        let mut indices: Vec<usize> = Vec::with_capacity(n);
        let mut futures: Vec<BoxFuture<'static, Result<Meta>>> = Vec::with_capacity(n);
        // A large commit may be CPU-bound (a memory store joining chunks, a checksum):
        // give each backend its own task so they use every core. Small ones stay in this
        // task, where they cost no spawn.
        let parallel = (self.written >= PARALLEL_COMMIT_BYTES)
            .then(|| tokio::runtime::Handle::try_current().ok())
            .flatten();
        let body = join_chunks(std::mem::take(&mut self.buffer), self.written);
        for (i, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            let commit: BoxFuture<'static, Result<Meta>> = match slot {
                Slot::Live(w) => w.close(),
                Slot::Buffered(mode) => {
                    let (backend, key, body) = (
                        Arc::clone(&self.shared.backends[i]),
                        self.key.clone(),
                        body.clone(),
                    );
                    Box::pin(async move { backend.put(&key, body, mode.into()).await })
                }
                Slot::Failed(e) => {
                    errors.push((i, e));
                    continue;
                }
                Slot::Aborted => continue,
            };
            indices.push(i);
            futures.push(match &parallel {
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
            });
        }
        let mut commits: FuturesUnordered<Commit> = FuturesUnordered::new();
        if self.shared.mode == WriteMode::Quorum {
            commits.extend(
                indices
                    .into_iter()
                    .zip(futures)
                    .map(|(i, f)| -> Commit { Box::pin(async move { (i, f.await) }) }),
            );
            while committed.len() < required {
                match commits.next().await {
                    Some((i, Ok(meta))) => committed.push((i, meta)),
                    Some((i, Err(e))) => errors.push((i, e)),
                    None => break,
                }
            }
            // Quorum reached: collect the stragglers that are done already (without
            // waiting), so that only truly slow backends go to the background.
            while let Some(Some((i, r))) = commits.next().now_or_never() {
                match r {
                    Ok(meta) => committed.push((i, meta)),
                    Err(e) => errors.push((i, e)),
                }
            }
            committed.sort_by_key(|(i, _)| *i);
        } else {
            // All and BestEffort wait for every backend.
            for (i, r) in indices.into_iter().zip(join_all(futures).await) {
                match r {
                    Ok(meta) => committed.push((i, meta)),
                    Err(e) => errors.push((i, e)),
                }
            }
        }

        if committed.len() < required {
            // Nothing is pending here: the loop only stops early once the quorum is met.
            if self.mode == PutMode::Create {
                roll_back(&self.shared, &self.key, &committed, &mut errors).await;
            }
            errors.sort_by_key(|(i, _)| *i);
            tracing::debug!(key = %self.key, failed = errors.len(), "store-multi: commit failed");
            return Err(MultiError::new(errors).into());
        }

        let mut outcomes = vec![Outcome::Pending; n];
        for (i, meta) in &committed {
            outcomes[*i] = Outcome::Committed(meta.clone());
        }
        for (i, e) in errors {
            let e = Arc::new(e);
            self.shared
                .failures
                .record("put", self.key.as_str(), i, Arc::clone(&e));
            outcomes[i] = Outcome::Failed(e);
        }
        let base = Meta {
            key: self.key.clone(),
            size: self.written,
            version: Version::empty(),
            modified: committed
                .first()
                .map_or_else(SystemTime::now, |(_, m)| m.modified),
        };
        if commits.is_empty() {
            let meta = settle_version(&self.shared, &self.key, base, &outcomes, &known).await;
            drop(guard);
            return Ok(WriteReport {
                meta,
                outcomes,
                settled: None,
            });
        }

        // Quorum reached with backends still committing: return now, let them finish.
        let mut meta = base.clone();
        meta.version = composite::encode(&components(&outcomes, &known));
        let (tx, rx) = watch::channel(None);
        let report = WriteReport {
            meta,
            outcomes: outcomes.clone(),
            settled: Some(rx),
        };
        let finish = finish_in_background(
            Arc::clone(&self.shared),
            self.key.clone(),
            base,
            outcomes,
            known,
            commits,
            guard,
            tx,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(finish);
            }
            // No runtime to hand the stragglers to: finish them here.
            Err(_) => finish.await,
        }
        Ok(report)
    }
}

/// Undoes the commits of a failed `Create`: deletes each new object if it is still the
/// version this write made (never someone else's).
async fn roll_back(
    shared: &Shared,
    key: &Key,
    committed: &[(usize, Meta)],
    errors: &mut Vec<(usize, Error)>,
) {
    let undo = committed.iter().map(|(i, m)| async move {
        let r = shared.backends[*i].delete_if(key, m.version.clone()).await;
        (*i, r)
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

/// Components of the composite version after a write: committed backends hold their new
/// version, failed ones what they held before (known from the conditional check, else
/// `Unknown` for now), pending ones `Unknown`.
fn components(outcomes: &[Outcome], known: &[Component]) -> Vec<Component> {
    outcomes
        .iter()
        .zip(known)
        .map(|(o, k)| match o {
            Outcome::Committed(m) => Component::Present(m.version.clone()),
            Outcome::Failed(_) => k.clone(),
            Outcome::Pending => Component::Unknown,
        })
        .collect()
}

/// The final composite version, asking the failed backends (under the key's lock, so it
/// is stable against this `Multi`'s writers) what they hold when the check did not tell.
async fn settle_version(
    shared: &Shared,
    key: &Key,
    mut meta: Meta,
    outcomes: &[Outcome],
    known: &[Component],
) -> Meta {
    let mut comps = components(outcomes, known);
    let unknown: Vec<usize> = (0..comps.len())
        .filter(|&i| comps[i] == Component::Unknown)
        .collect();
    let heads = join_all(unknown.iter().map(|&i| shared.backends[i].head(key))).await;
    for (i, h) in unknown.into_iter().zip(heads) {
        comps[i] = match h {
            Ok(m) => Component::Present(m.version),
            Err(e) if e.is_not_found() => Component::Absent,
            Err(_) => Component::Unknown,
        };
    }
    meta.version = composite::encode(&comps);
    meta
}

#[allow(clippy::too_many_arguments)]
async fn finish_in_background(
    shared: Arc<Shared>,
    key: Key,
    base: Meta,
    mut outcomes: Vec<Outcome>,
    known: Vec<Component>,
    mut commits: FuturesUnordered<Commit>,
    guard: OwnedMutexGuard<()>,
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
    let meta = settle_version(&shared, &key, base, &outcomes, &known).await;
    drop(guard);
    tracing::debug!(key = %key, version = %meta.version, "store-multi: quorum write settled");
    let _ = tx.send(Some(Settlement { meta, outcomes }));
}

impl fmt::Debug for FanOutWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOutWriter")
            .field("key", &self.key)
            .field("mode", &self.mode)
            .field("live", &self.live())
            .field("written", &self.written)
            .finish()
    }
}

#[async_trait]
impl ObjectWriter for FanOutWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        FanOutWriter::write(self, chunk).await
    }

    /// Commits; in `Quorum` mode waits for the stragglers too, because the `Backend`
    /// contract needs the returned version to be the one reads report.
    async fn close(mut self: Box<Self>) -> Result<Meta> {
        let report = self.finish(false).await?;
        Ok(report.into_settled_meta().await)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        FanOutWriter::abort(&mut self).await
    }
}
