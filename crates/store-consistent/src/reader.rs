//! `Reader`: one name's content at one version, with the key to update it.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use store_core::{Body, Result};

/// The content of one name of a [`Group`](crate::Group), as read by
/// [`Group::reader`](crate::Group::reader), and its key.
///
/// The key identifies this version of the content; pass it to
/// [`Group::writer`](crate::Group::writer) to update the name only if nobody else did
/// meanwhile. An unknown name reads as empty with an empty key.
#[derive(Debug)]
pub struct Reader {
    name: String,
    key: Arc<str>,
    body: Body,
}

impl Reader {
    pub(crate) fn new(name: &str, key: Arc<str>, body: Body) -> Reader {
        Reader {
            name: name.to_owned(),
            key,
            body,
        }
    }

    /// The name read.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key of this version (empty if the name does not exist).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the name exists (its key is not empty).
    pub fn exists(&self) -> bool {
        !self.key.is_empty()
    }

    /// Collects the whole content.
    pub async fn bytes(self) -> Result<Bytes> {
        self.body.bytes().await
    }

    /// The content as a stream of chunks.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        self.body.into_stream()
    }

    /// The key, and the content as a stream of chunks.
    pub(crate) fn into_parts(self) -> (Arc<str>, Body) {
        (self.key, self.body)
    }
}
