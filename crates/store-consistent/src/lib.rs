//! Consistent groups over any [`Backend`](store_core::Backend) with compare-and-swap:
//! read-modify-write, multi-name transactions and a lease mutex.
//!
//! A [`Group`] is a set of named objects — counters, small JSON documents, configuration,
//! job state — that many tasks and processes update concurrently without losing an update.
//! It works on every backend of the `store` family (memory, a local directory shared by
//! several processes, distributed engines), because it needs nothing but the backend
//! contract: `PutMode::Create`, `PutMode::Update(version)` and `watch`.
//!
//! # Read, modify, write
//!
//! [`Group::operate`] reads a name (an unknown name reads as empty), calls your function
//! and writes the result back — only if nobody updated the name meanwhile; otherwise it
//! reads again and retries, with exponential backoff and jitter, bounded by a
//! [`RetryPolicy`]. [`Group::operate_json`] does the same on a serde value, starting from
//! `T::default()`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use store_consistent::Group;
//! use store_memory::MemoryStore;
//!
//! #[derive(Debug, Default, Serialize, Deserialize)]
//! struct Stats {
//!     runs: u64,
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> store_core::Result<()> {
//! let group = Group::new(MemoryStore::new(), "jobs")?;
//!
//! // Eight tasks count to 80 without losing an increment.
//! let tasks: Vec<_> = (0..8)
//!     .map(|_| {
//!         let group = group.clone();
//!         tokio::spawn(async move {
//!             for _ in 0..10 {
//!                 group
//!                     .operate("counter", |old| {
//!                         let n: u64 = std::str::from_utf8(old).unwrap_or("0").parse().unwrap_or(0);
//!                         Ok((n + 1).to_string())
//!                     })
//!                     .await?;
//!             }
//!             Ok::<_, store_core::Error>(())
//!         })
//!     })
//!     .collect();
//! for t in tasks {
//!     t.await.unwrap()?;
//! }
//! assert_eq!(group.reader("counter").await?.bytes().await?, "80");
//!
//! let stats = group.operate_json("stats", |mut s: Stats| { s.runs += 1; Ok(s) }).await?;
//! assert_eq!(stats.runs, 1);
//! assert_eq!(group.list().await?, ["counter", "stats"]);
//! # Ok(()) }
//! ```
//!
//! For explicit control, [`Group::reader`] returns the content with its *key* (a version
//! token) and [`Group::writer`]`(name, key)` writes a new content whose [`Writer::close`]
//! succeeds only if the name still has that key — it fails with
//! [`Error::Conflict`](store_core::Error::Conflict) otherwise:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> store_core::Result<()> {
//! # let group = store_consistent::Group::new(store_memory::MemoryStore::new(), "docs")?;
//! let key = group.reader("readme").await?.key().to_owned(); // "" : absent
//! let mut first = group.writer("readme", &key).await?;
//! let mut second = group.writer("readme", &key).await?;
//! first.write("hello").await?;
//! second.write("world").await?;
//! first.close().await?;
//! assert!(second.close().await.unwrap_err().is_conflict());
//! # Ok(()) }
//! ```
//!
//! [`Group::operate_stream`] is the streaming form for large contents, and
//! [`Group::transaction`] reads and writes several names atomically (see its example: a
//! transfer between two accounts).
//!
//! # Mutex
//!
//! [`Group::mutex`] gives a [`Mutex`] shared by every process using the group. A holder
//! keeps a lease, renewed in the background while its [`MutexGuard`] lives; a holder that
//! crashes is superseded once its lease runs out. Every acquisition carries a fencing token
//! greater than all earlier ones, waiting is woken by the backend's `watch`, only the holder
//! can unlock, and dropping the guard unlocks.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> store_core::Result<()> {
//! # let group = store_consistent::Group::new(store_memory::MemoryStore::new(), "jobs")?;
//! let mutex = group.mutex("nightly-report")?;
//! let guard = mutex.lock().await?;
//! assert_eq!(guard.token(), 1);
//! assert!(mutex.try_lock().await?.is_none());
//! guard.unlock().await?;
//! assert_eq!(mutex.lock().await?.token(), 2);
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! A group called `g` keeps, on its backend:
//!
//! - `g/.manifest`: the group's state — a serial, the map name → id, and the small contents
//!   themselves — as compact JSON (format 1, or 2 once it holds contents; see below). Every
//!   update of the group is one compare-and-swap of this object (`PutMode::Update(version)`,
//!   or `Create` for the first).
//! - `g/.objects/<id>`: one object per *version* of a larger content (over the
//!   [inline limit](Group::with_inline_limit), 1 KiB by default, or once the manifest
//!   holds [`INLINE_BUDGET`] bytes of small ones), written once with `PutMode::Create` and
//!   never changed. Its id is `<creation time in ns, hex>-<64 random bits, hex>`, unique
//!   without coordination (the time lets [`Group::gc`] spare young objects). A small
//!   content's id has the same shape. A name's id is its reader key.
//! - `g/.locks/<hex of the mutex name>`: each mutex's lease, as JSON.
//!
//! A small content is written by the manifest switch itself. A larger write stores the new
//! content as a new object version first, then switches the manifest to it if the name
//! still has the expected id. A lost compare-and-swap means some name changed: the writer
//! re-reads the manifest and, if its own name is unchanged, tries again; otherwise it
//! deletes its object version and reports the conflict.
//!
//! After a successful switch the replaced object version is deleted *off the caller's
//! path*: the delete starts before the call returns, and unless the backend completes it
//! at once (an in-memory store does), a background task on the tokio runtime finishes it.
//! A reader that read the manifest earlier and then finds its object version gone re-reads
//! the manifest. So readers always see a complete, committed content, and a crash at any
//! point — before the background delete, too — leaves the group consistent, at worst with
//! unreferenced object versions, which [`Group::gc`] deletes (it spares young ones, which
//! may belong to a writer about to switch; see its documentation for the grace period).
//!
//! A backend write of the group (an object version, the manifest) whose reply was lost is
//! settled by the backend's [`WriteResolver`](store_core::WriteResolver) when its error
//! carries one: found applied, the update goes on as if the reply had come; otherwise it
//! fails with an [`Error::outcome_unknown`](store_core::Error::outcome_unknown) without a
//! resolver. A mutex's lease needs no resolver: its lock object is read back, and the lease
//! there (a holder id unique to the acquisition, an expiry or released flag unique to the
//! put) tells whether the put landed (see [`Mutex`]). A group's error never
//! carries the backend's resolver: it answers for an object, the manifest or a lock object,
//! with their versions, not for the name's update or the mutex.
//!
//! # Cost in round trips
//!
//! The handles of a group (clones of one [`Group`]) keep the last manifest they read or
//! wrote, decoded, and `operate` starts from it without reading it again (a stale one only
//! makes the manifest's compare-and-swap fail, and the next attempt reads). That cannot be
//! stale on a backend whose versions each name one content (`Capabilities::stable_versions`:
//! every store of this workspace but a `Multi`, whose copies can differ under one
//! composite version); on others nothing is kept, and every attempt reads the manifest
//! first. A handle also remembers the last version of each name it read or wrote (up to
//! 64 KiB) and skips reading it again while the manifest still names it: object versions
//! never change and their ids are never reused.
//!
//! So, uncontended, on the caller's path:
//!
//! | operation | round trips |
//! |---|---|
//! | `operate` on a small content (kept in the manifest) | 1: the manifest's compare-and-swap |
//! | `operate` on a larger content | 2: the object put, the compare-and-swap (the replaced version's delete runs in the background) |
//! | `reader` | 1 (the manifest), plus 1 for a larger content this handle has not cached |
//! | a `transaction` | 1 read of the manifest, 1 put per larger content written, 1 compare-and-swap |
//!
//! A conflict adds a read of the manifest and the attempt again, after a back-off.
//! Since every update of a group switches the one manifest, updates of different names of
//! a group contend with each other (as in the seed): keep unrelated data in different
//! groups. The manifest is rewritten whole by every update, so its inline contents are
//! bounded ([`INLINE_BUDGET`]).
//!
//! # Manifest format
//!
//! Format 1, `{"format":1,"serial":7,"objects":{"counter":"<id>"}}`, has no inline
//! contents; format 2 adds them, in lower-case hex under their id:
//! `{"format":2,"serial":8,"objects":{"counter":"<id>"},"inline":{"<id>":"3432"}}`. A
//! manifest is written in format 1 when it holds no inline content, else in format 2, and
//! both are read (a reader older than inline contents refuses format 2 as corrupt rather
//! than misreading it).
//!
//! # Deviations from the seed
//!
//! The seed (`consistent`, built on B2 bucket metadata) is generalised to any backend with
//! compare-and-swap, one manifest object per group. Beyond it: retries are bounded by a
//! [`RetryPolicy`] with exponential backoff and jitter and end in
//! [`Error::Contention`](store_core::Error::Contention) instead of looping forever; a
//! missing JSON object starts from `T::default()`; multi-name transactions; old versions
//! and crash leftovers are cleaned up ([`Group::gc`]); the mutex has leases, fencing tokens,
//! wake-on-change and holder-only unlock (the seed polls every second and lets anyone clear
//! a lock).
//!
//! # Clocks
//!
//! Mutex leases and the `gc` grace period use wall-clock time. Processes on different
//! machines need clocks that agree to well within the lease length (and the grace period).

mod cache;
mod gc;
mod group;
mod lease;
mod manifest;
mod mutex;
mod operate;
mod reader;
mod retry;
mod switch;
mod transaction;
mod writer;

pub use gc::{DEFAULT_GC_GRACE, GcReport};
pub use group::{Group, MAX_NAME_LEN};
pub use manifest::{DEFAULT_INLINE_LIMIT, INLINE_BUDGET};
pub use mutex::{DEFAULT_LEASE, MIN_LEASE, Mutex, MutexGuard};
pub use reader::Reader;
pub use retry::RetryPolicy;
pub use transaction::Transaction;
pub use writer::Writer;
