//! `Recorder<B>`: a backend wrapper that writes down every call into a shared [`Recording`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use parking_lot::Mutex;
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object, ObjectWriter,
    PutOptions, Result, Version,
};

use crate::history::{Call, History, Op, Outcome};

/// A history being recorded: the shared log every [`Recorder`] of one run writes to, and
/// the clock they all read.
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_testkit::history::Recording;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let recording = Recording::new();
/// let client = recording.backend(store_memory::MemoryStore::new(), 0);
/// client.put_bytes(&Key::new("k").unwrap(), "v").await.unwrap();
/// assert_eq!(recording.history().len(), 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Recording {
    epoch: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
    unchecked: Option<fn(&Version) -> bool>,
    torn_reads: bool,
    torn_observed: bool,
    cleared: bool,
}

impl Recording {
    /// An empty recording; its clock starts now.
    pub fn new() -> Recording {
        Recording {
            epoch: Instant::now(),
            ops: Arc::default(),
            unchecked: None,
            torn_reads: false,
            torn_observed: false,
            cleared: false,
        }
    }

    /// Records the versions reported by `get`, `head` and listings as unreported: for a
    /// backend whose reads may mix two states while a write is in flight (a fan-out reading
    /// its copies at once). Their values, absence, and every other version are still checked.
    pub fn with_torn_read_versions(mut self) -> Recording {
        self.torn_reads = true;
        self
    }

    /// As [`with_torn_read_versions`](Self::with_torn_read_versions), and also the versions
    /// that a refused conditional write (`AlreadyExists`, `Conflict`) and a watch report:
    /// for a store that reads them without the lock its writes take (records over a
    /// fan-out, which read the record to check it). Whether a write was refused, and the
    /// values and absence reads report, are still checked.
    pub fn with_torn_observed_versions(mut self) -> Recording {
        self.torn_reads = true;
        self.torn_observed = true;
        self
    }

    /// Leaves out of the check the reads (`get`, `head`, a listing) that report a version
    /// `unchecked` accepts: for a backend that documents such reads as outside its
    /// guarantee (a replica's answer from a secondary's copy, under a version of its own).
    /// So are a refused conditional write and a watch that report such a version (a store
    /// stacked on the backend read it). They are recorded as [`Outcome::Failed`], saying
    /// why.
    pub fn with_unchecked_reads(mut self, unchecked: fn(&Version) -> bool) -> Recording {
        self.unchecked = Some(unchecked);
        self
    }

    /// Records a successful unconditional delete as [`Outcome::Cleared`] (the key is absent
    /// after it) rather than [`Outcome::Deleted`] (it was present): for a backend that
    /// checks presence and deletes in two steps, so that of two racing deletes both may
    /// report success.
    pub fn with_unchecked_delete_presence(mut self) -> Recording {
        self.cleared = true;
        self
    }

    /// Wraps `inner` so that every call through it is recorded as made by `client`. A
    /// client makes one call at a time; give each concurrent task its own id.
    pub fn backend<B: Backend>(&self, inner: B, client: usize) -> Recorder<B> {
        self.shared_backend(Arc::new(inner), client)
    }

    /// Like [`Recording::backend`], for a backend several clients share.
    pub fn shared_backend<B: Backend + ?Sized>(&self, inner: Arc<B>, client: usize) -> Recorder<B> {
        Recorder {
            inner,
            client,
            recording: self.clone(),
        }
    }

    /// What was recorded so far. Calls still running appear with [`Outcome::Unknown`].
    pub fn history(&self) -> History {
        History {
            ops: self.ops.lock().clone(),
        }
    }

    /// The time on this recording's clock.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Notes an invocation; its outcome stays unknown until [`Recording::end`].
    fn begin(&self, client: usize, call: Call) -> usize {
        let mut ops = self.ops.lock();
        ops.push(Op {
            client,
            call,
            outcome: Outcome::Unknown("never returned".into()),
            invoked: self.now(),
            returned: None,
        });
        ops.len() - 1
    }

    fn end(&self, id: usize, mut outcome: Outcome) {
        let returned = self.now();
        if self.torn_reads {
            match &mut outcome {
                Outcome::Read { version: v, .. } | Outcome::Meta(v) => *v = Version::empty(),
                Outcome::Listed { entries, .. } => {
                    entries.iter_mut().for_each(|(_, v)| *v = Version::empty())
                }
                _ => {}
            }
        }
        if self.torn_observed {
            match &mut outcome {
                Outcome::AlreadyExists(v) | Outcome::Watched(Some(v)) => *v = Version::empty(),
                Outcome::Conflict(actual) => *actual = None,
                _ => {}
            }
        }
        if let Some(unchecked) = self.unchecked {
            let left_out = match &outcome {
                Outcome::Read { version: v, .. } | Outcome::Meta(v) => unchecked(v),
                Outcome::Listed { entries, .. } => entries.iter().any(|(_, v)| unchecked(v)),
                // The same read, seen through a store stacked on the backend (records
                // checking a conditional write or waiting).
                Outcome::AlreadyExists(v) | Outcome::Conflict(Some(v)) | Outcome::Watched(Some(v)) => {
                    unchecked(v)
                }
                _ => false,
            };
            if left_out {
                outcome = Outcome::Failed(format!("left out (a read this check does not cover): {outcome}"));
            }
        }
        let mut ops = self.ops.lock();
        ops[id].outcome = outcome;
        ops[id].returned = Some(returned);
    }

    fn set_value(&self, id: usize, data: Bytes) {
        if let Call::Put { value, .. } = &mut self.ops.lock()[id].call {
            *value = data;
        }
    }
}

impl Default for Recording {
    fn default() -> Self {
        Recording::new()
    }
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recording")
            .field("ops", &self.ops.lock().len())
            .finish_non_exhaustive()
    }
}

/// A backend wrapper that records each call, as one client, into a [`Recording`]: its
/// invocation and completion times, arguments and result.
///
/// Errors are sorted by what they say about the call's effect: `NotFound`, `AlreadyExists`
/// and `Conflict` are observations; a read's other errors, a write refused before it was
/// sent ([`Error::is_not_applied`]) and invalid input changed nothing
/// ([`Outcome::Failed`]); any other error of a write leaves its outcome open
/// ([`Outcome::Unknown`]), unless it carries a [`WriteResolver`](store_core::WriteResolver)
/// that tells (asking it is the only extra call the recorder makes). Gets with a range or a
/// condition pass through unrecorded.
pub struct Recorder<B: ?Sized> {
    inner: Arc<B>,
    client: usize,
    recording: Recording,
}

impl<B: ?Sized> fmt::Debug for Recorder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl<B: Backend + ?Sized> Recorder<B> {
    /// The recording this recorder writes to.
    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    async fn end_write(&self, id: usize, r: &Result<Meta>) {
        let outcome = match r {
            Ok(meta) => Outcome::Written(meta.version.clone()),
            Err(e) => write_error(e).await,
        };
        self.recording.end(id, outcome);
    }
}

/// What a failed write says about its effect.
async fn write_error(e: &Error) -> Outcome {
    match e {
        Error::NotFound { .. } => Outcome::NotFound,
        Error::AlreadyExists { version, .. } => Outcome::AlreadyExists(version.clone()),
        Error::Conflict { actual, .. } => Outcome::Conflict(actual.clone()),
        Error::InvalidKey { .. } | Error::InvalidInput { .. } | Error::Unsupported { .. } => {
            Outcome::Failed(e.to_string())
        }
        e if e.is_not_applied() => Outcome::Failed(e.to_string()),
        e => match e.resolver() {
            Some(resolver) => match resolver.resolve().await {
                Ok(Some(meta)) => Outcome::Written(meta.version),
                _ => Outcome::Unknown(e.to_string()),
            },
            None => Outcome::Unknown(e.to_string()),
        },
    }
}

/// What a failed read observed: absence, or nothing.
fn read_error(e: &Error) -> Outcome {
    if e.is_not_found() {
        Outcome::NotFound
    } else {
        Outcome::Failed(e.to_string())
    }
}

#[async_trait]
impl<B: Backend + ?Sized> Backend for Recorder<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let call = Call::Put {
            key: key.clone(),
            value: data.clone(),
            mode: opts.mode.clone(),
        };
        let id = self.recording.begin(self.client, call);
        let r = self.inner.put(key, data, opts).await;
        self.end_write(id, &r).await;
        r
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let call = Call::Put {
            key: key.clone(),
            value: Bytes::new(),
            mode: opts.mode.clone(),
        };
        let id = self.recording.begin(self.client, call);
        match self.inner.writer(key, opts).await {
            Ok(inner) => Ok(Box::new(RecordingWriter {
                owner: Recorder {
                    inner: Arc::clone(&self.inner),
                    client: self.client,
                    recording: self.recording.clone(),
                },
                id,
                inner: Some(inner),
                data: BytesMut::new(),
                closing: false,
            })),
            Err(e) => {
                self.recording.end(id, write_error(&e).await);
                Err(e)
            }
        }
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        if opts.range.is_some() || opts.if_match.is_some() || opts.if_none_match.is_some() {
            return self.inner.get(key, opts).await;
        }
        let id = self.recording.begin(self.client, Call::Get { key: key.clone() });
        let read = async {
            let obj = self.inner.get(key, opts).await?;
            let meta = obj.meta;
            let range = obj.range;
            let value = obj.body.bytes().await?;
            Ok((meta, range, value))
        };
        match read.await {
            Ok((meta, range, value)) => {
                let outcome = Outcome::Read {
                    value: value.clone(),
                    version: meta.version.clone(),
                };
                self.recording.end(id, outcome);
                Ok(Object {
                    meta,
                    range,
                    body: value.into(),
                })
            }
            Err(e) => {
                self.recording.end(id, read_error(&e));
                Err(e)
            }
        }
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        let id = self.recording.begin(self.client, Call::Head { key: key.clone() });
        let r = self.inner.head(key).await;
        let outcome = match &r {
            Ok(meta) => Outcome::Meta(meta.version.clone()),
            Err(e) => read_error(e),
        };
        self.recording.end(id, outcome);
        r
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let opts_unconditional = opts.if_match.is_none();
        let call = Call::Delete {
            key: key.clone(),
            if_match: opts.if_match.clone(),
        };
        let id = self.recording.begin(self.client, call);
        let r = self.inner.delete(key, opts).await;
        let outcome = match &r {
            Ok(()) if self.recording.cleared && opts_unconditional => Outcome::Cleared,
            Ok(()) => Outcome::Deleted,
            Err(e) => write_error(e).await,
        };
        self.recording.end(id, outcome);
        r
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let call = Call::List {
            prefix: opts.prefix.clone(),
            start_after: opts.start_after.clone(),
        };
        let listing = Listing {
            recording: self.recording.clone(),
            id: self.recording.begin(self.client, call),
            entries: Vec::new(),
            done: false,
        };
        stream::unfold(
            (self.inner.list(opts), listing),
            |(mut items, mut listing)| async move {
                // After an error the items still pass, but the listing's record ends there.
                let item = items.next().await;
                match &item {
                    Some(Ok(meta)) if !listing.done => {
                        listing.entries.push((meta.key.clone(), meta.version.clone()))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) => listing.finish(false),
                    None => listing.finish(true),
                }
                Some((item?, (items, listing)))
            },
        )
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let call = Call::Watch {
            key: key.clone(),
            seen: seen.cloned(),
        };
        let id = self.recording.begin(self.client, call);
        let r = self.inner.watch(key, seen).await;
        let outcome = match &r {
            Ok(v) => Outcome::Watched(v.clone()),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.recording.end(id, outcome);
        r
    }
}

/// A listing in progress; a listing dropped before its end is recorded with what it read.
struct Listing {
    recording: Recording,
    id: usize,
    entries: Vec<(Key, Version)>,
    done: bool,
}

impl Listing {
    fn finish(&mut self, complete: bool) {
        if !self.done {
            self.done = true;
            let entries = std::mem::take(&mut self.entries);
            self.recording.end(self.id, Outcome::Listed { entries, complete });
        }
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// A streaming write, recorded as one put from open to close.
struct RecordingWriter<B: ?Sized> {
    owner: Recorder<B>,
    id: usize,
    inner: Option<Box<dyn ObjectWriter>>,
    data: BytesMut,
    /// Set once `close` has started: from then on a drop leaves the outcome unknown.
    closing: bool,
}

impl<B: ?Sized> fmt::Debug for RecordingWriter<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<B: Backend + ?Sized> ObjectWriter for RecordingWriter<B> {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.data.extend_from_slice(&chunk);
        self.inner.as_mut().expect("writer in use").write(chunk).await
    }

    async fn close(mut self: Box<Self>) -> Result<Meta> {
        self.closing = true;
        let data = std::mem::take(&mut self.data).freeze();
        self.owner.recording.set_value(self.id, data);
        let inner = self.inner.take().expect("writer in use");
        let r = inner.close().await;
        self.owner.end_write(self.id, &r).await;
        r
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.inner.take().expect("writer in use").abort().await
    }
}

impl<B: ?Sized> Drop for RecordingWriter<B> {
    fn drop(&mut self) {
        // Nothing of an aborted or dropped writer is visible; a close that was dropped
        // half-way may have committed, and keeps its unknown outcome.
        if !self.closing {
            self.owner
                .recording
                .end(self.id, Outcome::Failed("writer aborted".into()));
        }
    }
}
