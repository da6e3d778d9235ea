//! Object bodies: whole buffers or streams of chunks.

use std::fmt;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};

use crate::error::Result;
use crate::meta::Meta;

/// The content of an object being read: either already in memory or a stream of chunks.
///
/// In-memory backends hand out [`Body::Bytes`] (a reference-counted buffer, no copy);
/// backends that read from disk or the network may stream.
pub enum Body {
    /// The whole body, in memory.
    Bytes(Bytes),
    /// A stream of chunks; an error mid-stream is reported as an item.
    Stream(BoxStream<'static, Result<Bytes>>),
}

impl Body {
    /// Collects the whole body. Free for [`Body::Bytes`]; for a stream of one chunk no copy is
    /// made either.
    pub async fn bytes(self) -> Result<Bytes> {
        match self {
            Body::Bytes(b) => Ok(b),
            Body::Stream(mut s) => {
                let Some(first) = s.next().await.transpose()? else {
                    return Ok(Bytes::new());
                };
                let Some(second) = s.next().await.transpose()? else {
                    return Ok(first);
                };
                let mut buf = BytesMut::with_capacity(first.len() + second.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&second);
                while let Some(chunk) = s.next().await.transpose()? {
                    buf.extend_from_slice(&chunk);
                }
                Ok(buf.freeze())
            }
        }
    }

    /// The body as a stream of chunks (a single chunk for [`Body::Bytes`]).
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        match self {
            Body::Bytes(b) => stream::once(async move { Ok(b) }).boxed(),
            Body::Stream(s) => s,
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Body::Stream(..)"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Bytes(b)
    }
}

/// An object read from a backend: its metadata, the byte range returned and the body.
#[derive(Debug)]
pub struct Object {
    /// Metadata of the whole object (its `size` is the full size, not the range's).
    pub meta: Meta,
    /// The byte range of the object that `body` holds (`0..size` unless a range was asked for).
    pub range: Range<u64>,
    /// The content.
    pub body: Body,
}

impl Object {
    /// Collects the body (see [`Body::bytes`]).
    pub async fn bytes(self) -> Result<Bytes> {
        self.body.bytes().await
    }

    /// The body as a stream of chunks.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        self.body.into_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn chunks(parts: Vec<Result<Bytes>>) -> Body {
        Body::Stream(stream::iter(parts).boxed())
    }

    #[tokio::test]
    async fn collects_streams() {
        assert_eq!(chunks(vec![]).bytes().await.unwrap(), Bytes::new());
        let one = Bytes::from_static(b"abc");
        let got = chunks(vec![Ok(one.clone())]).bytes().await.unwrap();
        assert_eq!(
            got.as_ptr(),
            one.as_ptr(),
            "a single chunk is returned without a copy"
        );
        let many = chunks(vec![Ok("ab".into()), Ok("c".into()), Ok("de".into())]);
        assert_eq!(many.bytes().await.unwrap(), Bytes::from("abcde"));
    }

    #[tokio::test]
    async fn stream_errors_surface() {
        for at in 0..3 {
            let mut parts: Vec<Result<Bytes>> = vec![Ok("a".into()), Ok("b".into()), Ok("c".into())];
            parts[at] = Err(Error::Closed { op: "read" });
            let err = chunks(parts).bytes().await.unwrap_err();
            assert_eq!(err.to_string(), "read: closed");
        }
    }

    #[tokio::test]
    async fn bytes_into_stream() {
        let b = Body::from(Bytes::from("xyz"));
        assert_eq!(format!("{b:?}"), "Body::Bytes(3 bytes)");
        let items: Vec<_> = b.into_stream().collect().await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap(), &Bytes::from("xyz"));
        assert_eq!(format!("{:?}", chunks(vec![])), "Body::Stream(..)");
    }
}
