//! A ready-made `ObjectWriter` for backends that store whole objects.

use std::fmt;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};

use crate::backend::{Backend, ObjectWriter};
use crate::error::Result;
use crate::key::Key;
use crate::meta::Meta;
use crate::options::PutOptions;

/// An [`ObjectWriter`] that collects chunks in memory and calls [`Backend::put`] on close.
///
/// A backend without native streaming writes returns one of these from `writer()`; the put
/// mode is applied atomically by that final `put`. Dropping it discards the chunks, which is
/// all an abort needs to do. (Report `streaming_writes: false` in such a backend's
/// [`Capabilities`](crate::Capabilities).)
///
/// `B` is usually a cheap handle (`Arc<…>` or a `Clone` store).
pub struct BufferedWriter<B> {
    backend: B,
    key: Key,
    opts: PutOptions,
    chunks: Vec<Bytes>,
    len: usize,
}

impl<B: Backend> BufferedWriter<B> {
    /// A writer that will `put` to `backend` at `key` with `opts` on close.
    pub fn new(backend: B, key: Key, opts: PutOptions) -> Self {
        BufferedWriter {
            backend,
            key,
            opts,
            chunks: Vec::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Joins the chunks, without a copy when there is only one.
    fn take_body(&mut self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop().unwrap_or_default(),
            _ => {
                let mut buf = BytesMut::with_capacity(self.len);
                for c in self.chunks.drain(..) {
                    buf.extend_from_slice(&c);
                }
                buf.freeze()
            }
        }
    }
}

impl<B> fmt::Debug for BufferedWriter<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedWriter")
            .field("key", &self.key)
            .field("opts", &self.opts)
            .field("len", &self.len)
            .finish()
    }
}

#[async_trait]
impl<B: Backend> ObjectWriter for BufferedWriter<B> {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push(chunk);
        }
        Ok(())
    }

    async fn close(mut self: Box<Self>) -> Result<Meta> {
        let body = self.take_body();
        let opts = std::mem::take(&mut self.opts);
        self.backend.put(&self.key, body, opts).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
