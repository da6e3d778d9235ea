//! Read-modify-write loops: `operate`, `operate_json`, `operate_stream`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use store_core::{Error, Result};

use crate::group::Group;
use crate::manifest::Snapshot;
use crate::retry::conflicted;
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
    /// # Cost in round trips
    /// An attempt starts from the manifest this group handle (or a clone of it) last wrote
    /// or read, without reading it again. Uncontended, a content kept in the manifest (up
    /// to the [inline limit](Group::with_inline_limit)) costs one conditional put of the
    /// manifest and no read. A larger content costs one put of a new object version, then
    /// that conditional put; the version it replaces is deleted afterwards, off the
    /// caller's path (see the [crate documentation](crate)). Reading a larger content
    /// costs nothing more when this group handle wrote or read that version last (up to
    /// 64 KiB), else one read.
    ///
    /// If another handle or process switched the manifest meanwhile, the conditional put
    /// fails and the manifest is read again at once (no back-off): if `name` did not
    /// change, the put is made again as it was; otherwise `f` runs again on the current
    /// content, from that read, and only that result is written. Likewise an error from
    /// `f` on the content of a manifest not read for this call is not returned: the
    /// manifest is read, `f` runs again on the current content, and its answer there
    /// counts. That first, optimistic try is not one of the policy's attempts (it never
    /// saw the current state), so even `max_attempts(1)` gets one attempt on the current
    /// state.
    ///
    /// # Errors
    /// The error of `f`; [`Error::Contention`] when the attempts are used up; backend
    /// errors.
    pub async fn operate<F, R>(&self, name: &str, mut f: F) -> Result<Bytes>
    where
        F: FnMut(&[u8]) -> Result<R> + Send,
        R: Into<Bytes>,
    {
        let mut retries = None;
        // Each try starts from the group's cached manifest (after a conflict, the one the
        // failed switch read), unless `f` refused a cached content.
        let mut optimistic = true;
        // The first try from the cache may have met a stale manifest: not an attempt.
        let mut free_try = true;
        loop {
            let (snap, key, old) = self.read_current(name, "operate", optimistic).await?;
            let old = old.bytes().await?;
            let cached = snap.cached;
            let new: Bytes = match f(&old) {
                Ok(new) => new.into(),
                // Refusing a content that may be stale is not the answer: `f` decides
                // again on the current one.
                Err(_) if cached => {
                    optimistic = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            optimistic = true;
            match self.write_whole(name, &key, new.clone(), snap).await {
                Ok(()) => return Ok(new),
                Err(e) if e.is_conflict() && cached && std::mem::take(&mut free_try) => {}
                Err(e) if e.is_conflict() => {
                    conflicted(&mut retries, &self.shared.retry, "operate", &self.display(name)).await?
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the whole new content `data` of `name`, read from `snap` with `key` (empty:
    /// absent): in the manifest if it fits, else as a new object version first. On failure
    /// the new version is discarded.
    async fn write_whole(&self, name: &str, key: &str, data: Bytes, snap: Snapshot) -> Result<()> {
        let expect = [(name, (!key.is_empty()).then_some(key))];
        let entry = self.new_entry(snap.manifest.inline_bytes(), data.clone()).await?;
        let object = entry.inline.is_none().then(|| Arc::clone(&entry.id));
        let result = self
            .switch("operate", &expect, &[(name, Some(entry))], Some(snap))
            .await;
        if let Some(id) = object {
            match &result {
                Ok(()) => self.shared.cache.put(name, &id, &data),
                Err(e) => self.abandon(&[id], e).await,
            }
        }
        result
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
        let mut retries = None;
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
                Err(e) if e.is_conflict() => {
                    conflicted(&mut retries, &self.shared.retry, "operate", &self.display(name)).await?
                }
                Err(e) => return Err(e),
            }
        }
    }
}
