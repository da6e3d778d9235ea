//! `Layer`: a wrapper that turns one backend into another (retry, tracing, limits, …).

use crate::backend::Backend;

/// Something that wraps a backend in another backend: a retry policy, a span per
/// operation, a concurrency limit, a key prefix. `store-layers` has the common ones.
///
/// A layer is configuration; [`layer`](Self::layer) consumes it and the backend it wraps,
/// and returns the wrapping backend. With [`BackendExt::layer`](crate::BackendExt::layer)
/// a stack reads from the bottom up, the last layer being the outermost (the first to see
/// each call):
///
/// ```text
/// let store = FsStore::open(dir).await?
///     .layer(Trace::new("primary"))   // a span per attempt
///     .layer(Retry::default());       // retries around the traced store
/// ```
///
/// Writing one takes a type for the configuration and one for the wrapping backend:
///
/// ```
/// use std::sync::Arc;
/// use store_core::{Backend, BackendExt, Layer};
///
/// /// Shares a backend between tasks: the "wrapping backend" is just `Arc<B>`.
/// struct Shared;
///
/// impl<B: Backend> Layer<B> for Shared {
///     type Backend = Arc<B>;
///     fn layer(self, inner: B) -> Arc<B> {
///         Arc::new(inner)
///     }
/// }
///
/// /// Any backend, layered: `Arc<B>` is a backend too, so stacks keep composing.
/// fn shared<B: Backend>(store: B) -> Arc<B> {
///     store.layer(Shared)
/// }
/// # fn main() {}
/// ```
pub trait Layer<B: Backend> {
    /// The backend this layer makes of `B`.
    type Backend: Backend;

    /// Wraps `inner`.
    fn layer(self, inner: B) -> Self::Backend;
}
