//! Streaming writes: one buffered PUT for small or conditional objects, a multipart upload
//! for large unconditional ones.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{PutMultipartOptions, PutPayload, WriteMultipart};
use store_core::{Error, Key, Meta, ObjectWriter, PutMode, Result};

use crate::error::map_err;
use crate::store::CloudStore;
use crate::version::write_attributes;

/// The [`ObjectWriter`] of a [`CloudStore`].
///
/// - Chunks are buffered until `multipart_threshold` bytes; a write that ends below it is
///   sent as one PUT at `close` (conditional if the mode says so).
/// - An `Overwrite` that grows past the threshold becomes a multipart upload: parts of
///   `part_size` are uploaded while the caller keeps writing (`upload_concurrency` at a
///   time), and `close` completes the upload — the object appears atomically then.
///   `abort`, or dropping the writer, aborts the upload so no parts are left behind.
/// - A `Create` or `Update` write is always buffered and sent as one conditional PUT at
///   `close`, because completing a multipart upload cannot be made conditional through
///   object_store (and not on every server). It is limited to `conditional_buffer_limit`
///   bytes; a larger one fails with `InvalidInput` rather than lose its condition.
pub(crate) struct CloudWriter {
    store: CloudStore,
    key: Key,
    path: Path,
    mode: PutMode,
    buffer: Vec<Bytes>,
    buffered: usize,
    total: u64,
    upload: Option<Upload>,
}

struct Upload {
    parts: WriteMultipart,
    write_id: String,
}

impl fmt::Debug for CloudWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWriter")
            .field("key", &self.key)
            .field("mode", &self.mode)
            .field("written", &self.total)
            .field("multipart", &self.upload.is_some())
            .finish()
    }
}

impl CloudWriter {
    pub(crate) fn new(store: CloudStore, key: Key, path: Path, mode: PutMode) -> Self {
        CloudWriter {
            store,
            key,
            path,
            mode,
            buffer: Vec::new(),
            buffered: 0,
            total: 0,
            upload: None,
        }
    }

    /// Turns the buffered chunks into the start of a multipart upload.
    async fn start_multipart(&mut self) -> Result<()> {
        let write_id = self.store.new_write_id("write", &self.key)?;
        let opts = PutMultipartOptions {
            attributes: write_attributes(&write_id),
            ..Default::default()
        };
        let upload = self
            .store
            .store
            .put_multipart_opts(&self.path, opts)
            .await
            .map_err(|e| map_err("write", &self.key, e))?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, self.store.settings.part_size.max(1));
        for chunk in self.buffer.drain(..) {
            parts.put(chunk);
        }
        self.buffered = 0;
        self.upload = Some(Upload { parts, write_id });
        self.wait_for_capacity().await
    }

    async fn wait_for_capacity(&mut self) -> Result<()> {
        let concurrency = self.store.settings.upload_concurrency.max(1);
        if let Some(up) = &mut self.upload {
            up.parts
                .wait_for_capacity(concurrency)
                .await
                .map_err(|e| map_err("write", &self.key, e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for CloudWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.total += chunk.len() as u64;
        if let Some(up) = &mut self.upload {
            up.parts.put(chunk);
            return self.wait_for_capacity().await;
        }
        self.buffered += chunk.len();
        self.buffer.push(chunk);
        let conditional = !matches!(self.mode, PutMode::Overwrite);
        if conditional && self.buffered > self.store.settings.conditional_buffer_limit {
            return Err(Error::invalid_input(
                "write",
                Some(&self.key),
                format!(
                    "a conditional (Create/Update) streamed write is buffered and sent as one \
                     conditional PUT; it exceeds conditional_buffer_limit ({} bytes)",
                    self.store.settings.conditional_buffer_limit
                ),
            ));
        }
        if !conditional && self.buffered >= self.store.settings.multipart_threshold {
            self.start_multipart().await?;
        }
        Ok(())
    }

    async fn close(mut self: Box<Self>) -> Result<Meta> {
        match self.upload.take() {
            None => {
                let payload: PutPayload = std::mem::take(&mut self.buffer).into_iter().collect();
                let mode = std::mem::take(&mut self.mode);
                self.store.put_payload(&self.key, &self.path, payload, mode).await
            }
            Some(Upload { parts, write_id }) => {
                let done = parts.finish().await.map_err(|e| map_err("close", &self.key, e))?;
                self.store
                    .written(
                        &self.key,
                        &self.path,
                        self.total,
                        done.e_tag.as_deref(),
                        done.version.as_deref(),
                        &write_id,
                    )
                    .await
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        match self.upload.take() {
            Some(up) => up.parts.abort().await.map_err(|e| map_err("abort", &self.key, e)),
            None => Ok(()),
        }
    }
}

impl Drop for CloudWriter {
    fn drop(&mut self) {
        // A dropped writer must not leave an incomplete multipart upload (and its storage
        // cost) behind: abort it in the background.
        if let Some(up) = self.upload.take() {
            let key = self.key.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = up.parts.abort().await {
                            tracing::warn!(key = key.as_str(), %e, "aborting a dropped multipart upload failed");
                        }
                    });
                }
                Err(_) => tracing::warn!(
                    key = key.as_str(),
                    "writer dropped outside a tokio runtime: its multipart upload was not aborted"
                ),
            }
        }
    }
}
