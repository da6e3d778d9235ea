//! Replica: synchronous and asynchronous replicas with bounded queues.
//!
//! A [`Replica`] is a [`Backend`](store_core::Backend) that keeps several copies of every
//! object. Its stores come in two sets:
//!
//! - **Synchronous stores** are written before a put returns. The put goes to all of them at
//!   once and succeeds only if every one succeeds. Reads ask all of them at once and take
//!   the first answer.
//! - **Asynchronous stores** are written in the background. A put that succeeded on the
//!   sync stores is queued, first-in first-out, for each async store, and one task per
//!   async store applies its queue in order. A put does not wait for them — unless a queue
//!   is full: each queue holds at most `queue_len` operations not yet applied, and a put
//!   that finds no room waits (back-pressure), so a slow copy can lag behind by a bounded
//!   amount only.
//!
//! Deletes are replicated the same way. [`Replica::flush`] waits until the async stores
//! have caught up, [`Replica::health`] tells how far behind each one is, and
//! [`Replica::close`] drains the queues and stops the tasks.
//!
//! ```
//! use store_core::{BackendExt, Key};
//! use store_memory::MemoryStore;
//! use store_replica::Replica;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> store_core::Result<()> {
//! let (local, mirror, offsite) = (MemoryStore::new(), MemoryStore::new(), MemoryStore::new());
//! let replica = Replica::builder()
//!     .sync_store(local.clone())     // the primary
//!     .sync_store(mirror.clone())
//!     .async_store(offsite.clone())  // written in the background
//!     .queue_len(1024)
//!     .build()?;
//!
//! let key = Key::new("invoices/2026/0042.pdf")?;
//! replica.put_bytes(&key, "%PDF-1.7 …").await?;
//! // Both sync stores have it as soon as the put returns…
//! assert!(local.exists(&key).await? && mirror.exists(&key).await?);
//! // …and the async store once its queue has drained.
//! replica.flush().await?;
//! assert_eq!(offsite.get_bytes(&key).await?, "%PDF-1.7 …");
//! assert_eq!(replica.health().max_lag(), 0);
//! replica.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A replica is itself a `Backend`, so it composes: its stores can be fan-outs, file
//! stores, other replicas, and it can sit under a record store.
//!
//! # Versions: the primary decides
//!
//! Each store hands out its own versions, but a caller must see one version per object for
//! compare-and-swap and watch to work. The first sync store is the **primary**:
//!
//! - A put or delete returns, and every read reports, the primary's version.
//! - A conditional put (`Create`, `Update(v)`) or delete (`if_match`) is applied to the
//!   primary first; only if the primary accepts it is it copied to the other sync stores,
//!   unconditionally, and queued for the async stores. So the primary's compare-and-swap is
//!   the replica's. (The price: a conditional write costs two round trips instead of one.)
//! - Conditional reads (`if_match`, `if_none_match`) and `watch` go to the primary.
//! - An unconditional read races all sync stores. The replica remembers, for each key it
//!   wrote (up to 1024 keys per stripe of 64; beyond that an arbitrary one is forgotten,
//!   and a forgotten key is read from the primary), the version every sync store gave that
//!   write; an answer from another store
//!   wins only if it is exactly that write, and is then reported under the primary's
//!   version. Any other answer from a secondary is used only if the primary itself fails
//!   (or lacks the key), and is reported under a version of the form `~replica<i>:<v>`,
//!   which never equals a primary version — a compare-and-swap from it fails instead of
//!   silently matching.
//!
//! Writes to one key are serialised inside the replica, so they reach every store — sync
//! and async — in the same order. (The seed made no such promise.)
//!
//! # Failures: a sticky error state
//!
//! When an async store fails, the stores no longer agree, and carrying on would hide it. So
//! the replica enters an error state: every later call fails with
//! [`Error::Poisoned`](store_core::Error::Poisoned) carrying the cause, until an operator
//! repairs the store and then either calls [`Replica::repair`] (resync every store from
//! the primary and clear the error) or builds a fresh replica over the stores after a
//! [`resync`].
//!
//! ```
//! use store_core::{BackendExt, Error, Key};
//! use store_memory::MemoryStore;
//! use store_replica::Replica;
//! use store_testkit::{Fault, FaultOp, Faulty, Rule};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> store_core::Result<()> {
//! let backup = Faulty::new(MemoryStore::new()).named("backup");
//! let replica = Replica::builder().sync_store(MemoryStore::new()).async_store(backup.clone()).build()?;
//! backup.inject(Rule::new(FaultOp::Put, Fault::Fail).times(1));
//! replica.put_bytes(&Key::new("a")?, "1").await?;   // accepted: the sync store has it
//! match replica.flush().await {                       // the copy failed in the background
//!     Err(Error::Poisoned { cause }) => assert!(cause.to_string().contains("backup")),
//!     other => panic!("{other:?}"),
//! }
//! assert!(replica.get_bytes(&Key::new("a")?).await.is_err()); // every call reports it
//! replica.repair().await?;                            // copy what the backup missed
//! assert_eq!(backup.get_bytes(&Key::new("a")?).await?, "1");
//! assert_eq!(replica.get_bytes(&Key::new("a")?).await?, "1");
//! # Ok(())
//! # }
//! ```
//!
//! A failure of a *sync* store fails that call only (with an
//! [`Error::Multi`](store_core::Error::Multi) naming the store by index when there are
//! several): the caller knows and can retry.
//!
//! # Cancellation, close and drop
//!
//! - A put or delete first waits for its key's turn (writes to one key take turns, first
//!   come first served) and for a slot in **every** async queue, then writes the sync
//!   stores, then queues the operation everywhere at once. Cancelled while waiting, it has
//!   done nothing at all. Cancelled during the sync writes, some sync stores may hold the
//!   new object and nothing is queued: those writes cannot be undone (the same is true of
//!   a put that fails on one sync store). A retried put, or a [`resync`], brings the stores
//!   back in line. A put is never half-queued, and a put that fails or is cancelled gives
//!   its turn and its slots back ([`AsyncHealth::free_slots`] shows them).
//! - [`Replica::close`] refuses new calls, waits for the writes in progress and for the
//!   queues to drain, and stops the tasks.
//! - Cancelling the [`ShutdownToken`] given to the builder stops the tasks at once; queued
//!   operations are dropped and counted ([`AsyncHealth::dropped`]) and the replica enters
//!   its error state with an [`Error::Closed`](store_core::Error::Closed) cause.
//! - Dropping the last handle stops the tasks the same way (with a warning in the log if
//!   operations were still queued). Call `close` first to keep them.
//!
//! # Cost
//!
//! A put costs the sync stores' puts, all at once (a conditional put: the primary's, then
//! the others'), and nothing else on the caller's path: each async store is written by
//! its own task, one put or delete per queued operation. A delete is the same with
//! deletes. Beyond that I/O a mutation takes an in-memory lock for its key (when there is
//! more than one store to keep in step), a slot in each async queue, and sends the
//! operation down each queue, which wakes that store's task if it was idle. While a queue
//! is full, puts wait for its store to apply one operation.
//!
//! A get or head asks every sync store at once and takes the first answer it can vouch
//! for (the primary's, or a secondary's holding the last write made through the replica;
//! see above), cancelling the others: for keys written through the replica, as fast as
//! the fastest sync store. A conditional get and `watch` go to the primary only. A listing reads every
//! sync store's listing once, merged as it streams. [`Replica::flush`] and
//! [`Replica::close`] do no I/O of their own; [`Replica::repair`] lists every store and
//! reads both sides of every object present on both (see [`resync`]).
//!
//! # Deviations from the seed
//!
//! The Go `replica` package this ports had the same design; these are the fixes and
//! additions:
//!
//! - an empty sync list or a queue length of 0 is an error, not a later panic;
//! - the listing is the sorted, de-duplicated union of the sync stores (the seed's merge
//!   dropped keys when the stores overlapped unevenly: `{a, b}` and `{a}` must list `a, b`),
//!   and `start_after` is exclusive;
//! - a get fails with not-found only when every sync store says so;
//! - deletes are replicated; writes to one key stay in order on every store;
//! - a put cancelled while waiting for queue room leaves nothing queued;
//! - one version per object (the primary's), so conditional writes and watch work;
//! - `flush`, `close`, `health`, `repair` and [`resync`] are new.
//!
//! Everything reported by [`Replica::capabilities`](store_core::Backend::capabilities) is
//! what the replica really guarantees: conditional writes and watch as the primary does
//! them; range reads, durability and sharing only if every sync store has them; no
//! streaming writes (a writer buffers the object and puts it on close).

mod backend;
mod builder;
mod health;
mod queue;
mod replica;
mod resync;
mod stripes;
mod turns;

pub use builder::{DEFAULT_QUEUE_LEN, ReplicaBuilder};
pub use health::{AsyncHealth, Health};
pub use replica::Replica;
pub use resync::{ResyncReport, resync};

/// A cloneable "stop now" signal, the counterpart of the context the seed's `New` takes:
/// tokio-util's [`CancellationToken`](tokio_util::sync::CancellationToken).
///
/// Hand one to [`ReplicaBuilder::shutdown`]; cancelling it (from any clone) stops the
/// replica's asynchronous copy tasks at once. Operations still queued are dropped and
/// counted in [`AsyncHealth::dropped`], and the replica enters its error state with an
/// [`Error::Closed`](store_core::Error::Closed) cause, so nothing is lost silently.
///
/// ```
/// use store_replica::ShutdownToken;
///
/// let token = ShutdownToken::new();
/// let clone = token.clone();
/// assert!(!token.is_cancelled());
/// clone.cancel();
/// assert!(token.is_cancelled());
/// ```
pub type ShutdownToken = tokio_util::sync::CancellationToken;
