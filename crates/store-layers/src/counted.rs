//! A writer that counts the bytes written through it, for layers that report them at close.

use bytes::Bytes;
use store_core::{ObjectWriter, Result};

/// The inner writer of a layer's writer, and the bytes it accepted so far.
#[derive(Debug)]
pub(crate) struct Counted {
    pub(crate) inner: Box<dyn ObjectWriter>,
    pub(crate) written: u64,
}

impl Counted {
    pub(crate) fn new(inner: Box<dyn ObjectWriter>) -> Counted {
        Counted { inner, written: 0 }
    }

    /// Writes `chunk`, counting it once the inner writer has accepted it.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let len = chunk.len() as u64;
        self.inner.write(chunk).await?;
        self.written += len;
        Ok(())
    }
}
