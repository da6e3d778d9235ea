//! Read-modify-write loops: `operate`, `operate_json`, `operate_stream`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use store_core::{Error, Result};

use crate::group::Group;
use crate::manifest::{Snapshot, fits_inline};
use crate::writer::Writer;

impl Group {
    /// Reads `name` (empty if unknown), computes its new content with `f`, and writes it
    /// back if nobody updated `name` meanwhile; otherwise starts over. Returns the content
    /// written.
    ///
    /// `f` may run several times, so it should be a pure function of its input. An error
    /// from `f` aborts without writing. Conflicts are retried under the group's
    /// [`RetryPolicy`](crate::RetryPolicy).
    ///
    /// The first attempt starts from the manifest this group handle (or a clone of it) last
    /// wrote or read, without reading it again: uncontended, a small content (kept in the
    /// manifest) costs one conditional write of the manifest and no read. If another handle
    /// or process switched the manifest meanwhile, that write fails, and `operate` reads
    /// the current state at once (no back-off) and runs `f` again on it; only that result
    /// is written. Likewise an error from `f` on the cached content is not returned: `f`
    /// runs again on the current content, and its answer there counts. That optimistic
    /// first try is not one of the policy's attempts (it never saw the current state), so
    /// even `max_attempts(1)` gets one attempt on the current state.
    ///
    /// # Errors
    /// The error of `f`; [`Error::Contention`] when the attempts are used up; backend
    /// errors.
    pub async fn operate<F, R>(&self, name: &str, mut f: F) -> Result<Bytes>
    where
        F: FnMut(&[u8]) -> Result<R> + Send,
        R: Into<Bytes>,
    {
        self.check_name("operate", name)?;
        // The common case: a small content, from the manifest this group last saw (not
        // read again), written back with one conditional put of that manifest.
        let Some(snap) = self.take_cached_inline(name) else {
            // Boxed, like the rest of the general path: its state stays out of this future.
            return Box::pin(self.operate_loop(name, f, true, None)).await;
        };
        // `f` refusing a content that may be stale is not the answer: the general path
        // decides again on the current content.
        let new: Bytes = match f(snap.inline_ref(name).map_or(&[][..], |old| &old[..])) {
            Ok(new) => new.into(),
            Err(_) => return Box::pin(self.operate_loop(name, f, false, None)).await,
        };
        if !fits_inline(snap.manifest.inline_bytes(), new.len()) {
            // Too large to keep inline now: written as an object, against the same manifest.
            let key = snap.id(name).map_or_else(|| Arc::from(""), Arc::clone);
            return Box::pin(self.operate_loop(name, f, false, Some((snap, key, new)))).await;
        }
        match self.switch_inline(name, new.clone(), snap).await {
            Ok(()) => Ok(new),
            // Maybe only the cached manifest was stale: read the current one, at once (not
            // an attempt of the retry policy: this try never saw the current state).
            Err(e) if e.is_conflict() => Box::pin(self.operate_loop(name, f, false, None)).await,
            Err(e) => Err(e),
        }
    }

    /// The general path of [`operate`](Group::operate): read (from the group's cached
    /// manifest first if `optimistic`), apply `f`, write; retried on conflicts. `first`:
    /// a content `f` already computed from a cached snapshot, to write before anything else.
    async fn operate_loop<F, R>(
        &self,
        name: &str,
        mut f: F,
        mut optimistic: bool,
        mut first: Option<(Snapshot, Arc<str>, Bytes)>,
    ) -> Result<Bytes>
    where
        F: FnMut(&[u8]) -> Result<R> + Send,
        R: Into<Bytes>,
    {
        let mut attempts = self.shared.retry.start();
        loop {
            let (snap, key, new) = match first.take() {
                Some(first) => first,
                None => {
                    let (snap, key, body) = self.read_current(name, "operate", optimistic).await?;
                    let old = body.bytes().await?;
                    // Contents kept in the manifest need no caching.
                    if snap.manifest.is_object(name) {
                        self.shared.cache.put(name, &key, &old);
                    }
                    match f(&old) {
                        Ok(new) => (snap, key, new.into()),
                        // `f` refused a content that may be stale: it decides again on the
                        // current one, and only that decision is returned.
                        Err(_) if snap.cached => {
                            optimistic = false;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let stale_possible = snap.cached;
            match self.write_whole(name, &key, new.clone(), Some(snap)).await {
                Ok((id, inline)) => {
                    if !inline {
                        self.shared.cache.put(name, &id, &new);
                    }
                    return Ok(new);
                }
                // Maybe only the cached manifest was stale: read the current one, at once
                // (not an attempt: it never saw the current state).
                Err(e) if e.is_conflict() && stale_possible => optimistic = false,
                Err(e) if e.is_conflict() => attempts.conflicted("operate", &self.display(name)).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// [`operate`](Group::operate) on a JSON value: `f` gets the decoded value
    /// (`T::default()` if `name` is unknown or empty) and returns the value to store.
    /// Returns the value written.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `<group>/<name>` if the stored content is not a `T`;
    /// otherwise as [`operate`](Group::operate).
    pub async fn operate_json<T, F>(&self, name: &str, mut f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Default + Send,
        F: FnMut(T) -> Result<T> + Send,
    {
        let shown = self.display(name);
        let mut written = None;
        self.operate(name, |old| {
            let value = if old.is_empty() {
                T::default()
            } else {
                serde_json::from_slice(old).map_err(|e| Error::Corrupt {
                    key: shown.clone(),
                    reason: format!("not the expected JSON: {e}"),
                })?
            };
            let next = f(value)?;
            let data = serde_json::to_vec(&next).map_err(|e| {
                Error::invalid_input(
                    "operate_json",
                    None,
                    format!("{shown}: cannot encode the value: {e}"),
                )
            })?;
            written = Some(next);
            Ok(data)
        })
        .await?;
        written.ok_or_else(|| {
            Error::invalid_input("operate_json", None, format!("{shown}: no value was written"))
        })
    }

    /// [`operate`](Group::operate) for large content: `f` gets the current content as a
    /// stream and returns the stream to store, which is written through a [`Writer`]
    /// chunk by chunk.
    ///
    /// The returned stream is read until its end or its first error; an error aborts
    /// without writing and is returned.
    ///
    /// # Errors
    /// As [`operate`](Group::operate), plus errors from either stream.
    pub async fn operate_stream<F>(&self, name: &str, mut f: F) -> Result<()>
    where
        F: FnMut(BoxStream<'static, Result<Bytes>>) -> Result<BoxStream<'static, Result<Bytes>>> + Send,
    {
        let mut attempts = self.shared.retry.start();
        loop {
            let (snap, reader) = self.read(name, "operate").await?;
            let (key, body) = reader.into_parts();
            let mut out = f(body.into_stream())?;
            let mut writer = Writer::open(self.clone(), name, &key, Some(snap)).await?;
            while let Some(chunk) = out.next().await {
                match chunk {
                    Ok(chunk) => writer.write(chunk).await?,
                    Err(e) => {
                        // Dropping would abort too; aborting explicitly waits for clean-up.
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                }
            }
            match writer.close().await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => attempts.conflicted("operate", &self.display(name)).await?,
                Err(e) => return Err(e),
            }
        }
    }
}
