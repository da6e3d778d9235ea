//! The contract of every `store` crate: keys, versions, errors and three traits.
//!
//! `store` is a family of small crates for storing bytes safely — in memory, on a local
//! disk, on distributed engines — and for composing those stores (fan-out, replicas,
//! compare-and-swap groups, versioned records, commit sessions). This crate holds only what
//! they share: no runtime, no I/O.
//!
//! - [`Backend`]: a store of objects. Implement it for a new backend; use it through
//!   `Arc<dyn Backend>` or generically. [`BackendExt`] adds conveniences to every backend.
//! - [`RecordStore`]: small versioned values with expiry, CAS, watch and glob listing.
//! - [`Committable`]: a datastore taking part in a commit session.
//!
//! # The model
//!
//! An object is a byte string stored under a [`Key`]. Keys are validated once, when built,
//! so every backend accepts the same keys and none can be tricked into a path escape:
//!
//! ```
//! use store_core::{Error, Key};
//!
//! let key = Key::new("photos/2026/cat.jpg")?;
//! assert_eq!(key.parent().unwrap().as_str(), "photos/2026");
//! match Key::new("photos/../../etc/passwd") {
//!     Err(Error::InvalidKey { reason, .. }) => assert_eq!(reason, "key has a '..' segment"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Error>(())
//! ```
//!
//! **Puts are atomic.** A reader sees the whole old object or the whole new one, never a
//! mix, and a failed put changes nothing. Large objects are written through an
//! [`ObjectWriter`], which makes nothing visible until `close`.
//!
//! **Every write makes a new [`Version`]**, and a version is never reused for the same key.
//! That makes versions safe to use for optimistic concurrency: read an object, compute the
//! new content, and write it back only if nobody changed it meanwhile
//! (`PutMode::Update(version)`); if somebody did, the put fails with
//! [`Error::Conflict`] and you start over. With `PutMode::Create`, exactly one of several
//! racing creators wins.
//!
//! ```
//! use store_core::{Backend, BackendExt, Key, PutMode, Result};
//!
//! /// Adds one to a decimal counter, however many tasks or processes do the same.
//! async fn increment(store: &dyn Backend, key: &Key) -> Result<u64> {
//!     loop {
//!         let (next, mode) = match store.get_with_meta(key).await {
//!             Ok((meta, bytes)) => {
//!                 let n: u64 = std::str::from_utf8(&bytes).unwrap_or("0").parse().unwrap_or(0);
//!                 (n + 1, PutMode::Update(meta.version))
//!             }
//!             Err(e) if e.is_not_found() => (1, PutMode::Create),
//!             Err(e) => return Err(e),
//!         };
//!         match store.put(key, next.to_string().into(), mode.into()).await {
//!             Ok(_) => return Ok(next),
//!             // Somebody else won this round: read again.
//!             Err(e) if e.is_conflict() || e.is_already_exists() || e.is_not_found() => continue,
//!             Err(e) => return Err(e),
//!         }
//!     }
//! }
//! ```
//!
//! [`BackendExt::read_modify_write`] is that loop, ready-made.
//!
//! **Watch instead of polling.** [`Backend::watch`] returns as soon as a key's version
//! differs from the one you have seen, so a program can react to changes without a sleep
//! loop:
//!
//! ```
//! use store_core::{Backend, Key, Result, Version};
//!
//! /// Calls `on_change` for every change of `key`, until it is deleted.
//! async fn follow(store: &dyn Backend, key: &Key, mut on_change: impl FnMut(&Version)) -> Result<()> {
//!     let mut seen = store.head(key).await.ok().map(|m| m.version);
//!     while let Some(v) = store.watch(key, seen.as_ref()).await? {
//!         on_change(&v);
//!         seen = Some(v);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Errors
//!
//! One [`Error`] enum with condition variants (`NotFound`, `AlreadyExists`, `Conflict`, …),
//! each message naming the operation and the key; [`Error::kind`] and
//! [`Error::is_retryable`] help callers decide what to do.
//!
//! # Writing a backend
//!
//! Implement [`Backend`] (seven methods and `capabilities`). A backend that cannot stream
//! writes returns a [`BufferedWriter`]; one without change notification implements
//! `watch` with [`poll_watch`]. Then prove it with `store-testkit`'s conformance suite.
//!
//! The building blocks the family's own crates share are public, for backends written
//! elsewhere too:
//! - [`WatcherRegistry`]: wakes the watchers of a key when the backend changes it (native
//!   watch without polling);
//! - [`GlobPattern`]: a glob over keys and the literal prefix to push down to a listing;
//! - [`merge_listings`]: the k-way merge of sorted listings into their ordered union;
//! - [`Backoff`] and [`Retries`]: the one backoff and retry budget of every loop that waits
//!   and tries again (polling, optimistic CAS loops, reconnects).
//!
//! A [`Layer`] wraps a backend in another (retries, spans, limits, a key prefix);
//! [`BackendExt::layer`] stacks them. `store-layers` has the common ones.

mod backend;
mod backoff;
mod body;
mod capabilities;
mod commit;
mod error;
mod ext;
mod glob;
mod key;
mod layer;
mod merge;
mod meta;
mod multi_error;
mod options;
mod outcome;
mod record;
mod version;
mod watch;
mod watchers;
mod writer;

/// Re-exported so implementers use the same versions as the traits.
pub use async_trait::async_trait;

pub use backend::{Backend, ObjectWriter};
pub use backoff::{Backoff, Retries};
pub use body::{Body, Object};
pub use bytes::Bytes;
pub use capabilities::Capabilities;
pub use commit::{CommitId, Committable, IdempotencyKey};
pub use error::{Error, ErrorKind, Result};
pub use ext::{BackendExt, DEFAULT_MAX_ATTEMPTS};
pub use futures::stream::BoxStream;
pub use glob::GlobPattern;
pub use key::{Key, MAX_KEY_LEN};
pub use layer::Layer;
pub use merge::{Merged, merge_listings};
pub use meta::Meta;
pub use multi_error::MultiError;
pub use options::{ByteRange, DeleteOptions, GetOptions, ListOptions, PutMode, PutOptions};
pub use outcome::WriteResolver;
pub use record::{Record, RecordStore};
pub use version::Version;
pub use watch::poll_watch;
pub use watchers::{WatchGuard, WatcherRegistry};
pub use writer::BufferedWriter;
