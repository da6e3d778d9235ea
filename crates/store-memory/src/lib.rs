//! An in-memory [`Backend`](store_core::Backend): ordered, concurrent, zero-copy, with native
//! watch.
//!
//! [`MemoryStore`] is the embedded default of the `store` family: the fastest way to run
//! any combinator (fan-out, replicas, records, consistent groups, commit sessions) in tests
//! and single-process programs. It meets the whole backend contract of `store-core` —
//! atomic puts, `Create`/`Update` compare-and-swap, conditional get and delete, range
//! reads, ordered listing, never-repeating versions and change notification — and proves
//! it by running `store-testkit`'s conformance suite.
//!
//! ```
//! use store_core::{Backend, BackendExt, Key};
//! use store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> store_core::Result<()> {
//! let store = MemoryStore::new();
//! let key = Key::new("jobs/42/state")?;
//!
//! // Wait for a change in another task…
//! let watcher = {
//!     let (store, key) = (store.clone(), key.clone());
//!     tokio::spawn(async move { store.watch(&key, None).await })
//! };
//! // …which this put triggers at once, without polling.
//! let meta = store.put_bytes(&key, "running").await?;
//! assert_eq!(watcher.await.unwrap()?, Some(meta.version));
//!
//! // Optimistic concurrency: a ready-made read-modify-write loop.
//! store.read_modify_write(&key, |old| Ok(format!("{}+done", String::from_utf8_lossy(old.unwrap())).into())).await?;
//! assert_eq!(store.get_bytes(&key).await?, "running+done");
//! assert_eq!(store.list_keys("jobs/").await?, [key]);
//! # Ok(())
//! # }
//! ```

mod store;

pub use store::MemoryStore;
