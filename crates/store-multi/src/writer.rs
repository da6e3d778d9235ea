//! `FanOutWriter`: one streaming write to every backend.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, join_all};
use store_core::{Error, Key, Meta, MultiError, ObjectWriter, PutMode, PutOptions, Result};

use crate::commit::{self, Phase};
use crate::fan_out::Shared;
use crate::report::WriteReport;

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
        let modes = commit::backend_modes(&opts.mode, n);
        let opened = join_all(shared.backends.iter().zip(modes).map(|(b, m)| async move {
            if b.capabilities().streaming_writes {
                match (**b).writer(key, m.into()).await {
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
    /// - `Quorum`: returns once a majority committed; the rest keep committing in a task
    ///   of their own (holding the key's lock) and [`WriteReport::settled`] reports them.
    ///   Below a majority it fails, after the `Create` rollback described above.
    ///
    /// A second close returns the first close's report (or [`Error::Closed`] if the first
    /// close failed): closing twice is harmless. Dropping the close future part-way (a
    /// timeout) leaves each backend as far as its own commit got, like any cancelled write.
    pub async fn close(&mut self) -> Result<WriteReport> {
        match &self.state {
            State::Committed(report) => return Ok(report.clone()),
            State::Failed => return Err(Error::Closed { op: "close" }),
            State::Open => {}
        }
        let result = self.commit().await;
        self.state = match &result {
            Ok(report) => State::Committed(report.clone()),
            Err(_) => State::Failed,
        };
        result
    }

    /// The commit phase (see [`close`](Self::close)).
    async fn commit(&mut self) -> Result<WriteReport> {
        // Not the slots themselves: they are not `Sync`, and this future must be `Send`.
        let live: Vec<bool> = self.slots.iter().map(Slot::is_live).collect();
        let begun = Phase::begin(&self.shared, &self.key, self.mode.clone(), |i| live[i]).await;
        let (phase, unchecked) = match begun {
            Ok(begun) => begun,
            Err(e) => {
                self.abort_live().await;
                self.state = State::Failed;
                return Err(e);
            }
        };
        for (i, e) in unchecked {
            // A backend that cannot tell its state cannot be checked, so it is not written.
            if self.slots[i].is_live() {
                self.slots[i] = Slot::Failed(e);
            }
        }
        self.enforce().await?;
        let body = join_chunks(std::mem::take(&mut self.buffer), self.written);
        let mut commits: Vec<(usize, BoxFuture<'static, Result<Meta>>)> = Vec::new();
        let mut failed = Vec::new();
        for (i, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            match slot {
                Slot::Live(w) => commits.push((i, w.close())),
                Slot::Buffered(mode) => {
                    let put = commit::put(&self.shared.backends[i], &self.key, body.clone(), mode);
                    commits.push((i, Box::pin(put)));
                }
                Slot::Failed(e) => failed.push((i, e)),
                Slot::Aborted => {}
            }
        }
        phase.commit(self.written, commits, failed).await
    }
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

    /// Commits; in `Quorum` mode waits for every backend's answer too, because the
    /// returned version names them all (see the crate documentation).
    async fn close(mut self: Box<Self>) -> Result<Meta> {
        let report = FanOutWriter::close(&mut self).await?;
        Ok(report.into_settled_meta().await)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        FanOutWriter::abort(&mut self).await
    }
}
