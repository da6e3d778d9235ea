//! The streaming writer.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use store_core::{Error, Key, Meta, ObjectWriter, PutMode, Result};

use crate::layout::remove_empty_dirs;
use crate::root::Root;
use crate::store::blocking;
use crate::temp::TempFile;

/// Chunks are collected up to this many bytes and then written in one blocking call, so a
/// stream of small chunks does not cost one thread hand-off each.
const FLUSH_AT: usize = 1 << 20;

/// An [`ObjectWriter`] streaming to a temp file next to the target; `close` renames it into
/// place atomically (applying the put mode under the key's lock).
///
/// Memory use is bounded (about 1 MiB of pending chunks) whatever the object's size.
/// Dropping the writer, or [`abort`](ObjectWriter::abort), removes the temp file (on a
/// blocking thread). A write that fails or is cancelled aborts the writer: every later call
/// fails.
pub struct FsWriter {
    root: Arc<Root>,
    key: Key,
    mode: PutMode,
    tmp: Option<TempFile>,
    pending: Vec<Bytes>,
    pending_len: usize,
    written: u64,
}

impl FsWriter {
    pub(crate) fn new(root: Arc<Root>, key: Key, mode: PutMode, tmp: TempFile) -> FsWriter {
        FsWriter {
            root,
            key,
            mode,
            tmp: Some(tmp),
            pending: Vec::new(),
            pending_len: 0,
            written: 0,
        }
    }

    fn broken(&self, op: &'static str) -> Error {
        Error::io(
            op,
            &self.key,
            std::io::Error::other("an earlier write failed or was cancelled, so this writer was aborted"),
        )
    }

    async fn flush(&mut self, op: &'static str) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let tmp = self.tmp.take().ok_or_else(|| self.broken(op))?;
        let chunks = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        // If this future is dropped mid-write, the temp file is dropped (and removed) on the
        // blocking thread when the write finishes.
        let (tmp, result) = blocking(op, &self.key, move || {
            let result = chunks.iter().try_for_each(|c| (&tmp.file).write_all(c));
            Ok((tmp, result))
        })
        .await?;
        match result {
            Ok(()) => {
                self.tmp = Some(tmp);
                Ok(())
            }
            Err(e) => {
                discard(Arc::clone(&self.root), self.key.clone(), tmp);
                Err(Error::io(op, &self.key, e))
            }
        }
    }
}

/// Removes a temp file (and the directories made for it, if now empty) off the async
/// threads when possible.
fn discard(root: Arc<Root>, key: Key, tmp: TempFile) {
    let work = move || {
        drop(tmp);
        remove_empty_dirs(std::os::fd::AsFd::as_fd(&root.fd), &key);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(work);
        }
        Err(_) => work(),
    }
}

#[async_trait]
impl ObjectWriter for FsWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if self.tmp.is_none() {
            return Err(self.broken("write"));
        }
        if chunk.is_empty() {
            return Ok(());
        }
        self.pending_len += chunk.len();
        self.written += chunk.len() as u64;
        self.pending.push(chunk);
        if self.pending_len >= FLUSH_AT {
            self.flush("write").await?;
        }
        Ok(())
    }

    async fn close(mut self: Box<Self>) -> Result<Meta> {
        self.flush("close").await?;
        let tmp = self.tmp.take().ok_or_else(|| self.broken("close"))?;
        let (root, key, mode) = (Arc::clone(&self.root), self.key.clone(), self.mode.clone());
        blocking("close", &self.key, move || root.commit(&key, tmp, &mode, "close")).await
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if let Some(tmp) = self.tmp.take() {
            let (root, key) = (Arc::clone(&self.root), self.key.clone());
            blocking("abort", &self.key, move || {
                drop(tmp);
                remove_empty_dirs(std::os::fd::AsFd::as_fd(&root.fd), &key);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            discard(Arc::clone(&self.root), self.key.clone(), tmp);
        }
    }
}

impl fmt::Debug for FsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsWriter")
            .field("key", &self.key)
            .field("mode", &self.mode)
            .field("written", &self.written)
            .field("open", &self.tmp.is_some())
            .finish()
    }
}
