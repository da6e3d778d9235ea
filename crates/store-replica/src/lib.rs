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
//! - A put first waits for its key's turn and for room in **every** async queue, then
//!   writes the sync stores, then queues the operation everywhere at once. Cancelled while
//!   waiting for room, it has done nothing at all. Cancelled during the sync writes, some
//!   sync stores may hold the new object and nothing is queued: those writes cannot be
//!   undone (the same is true of a put that fails on one sync store). A retried put, or a
//!   [`resync`], brings the stores back in line. A put is never half-queued.
//! - Callers waiting for a turn or for room are served in order, as by a fair semaphore:
//!   what is given back is handed to the first waiter at once, and a put that is polled,
//!   then kept but never polled again, holds what it was handed (its key's turn, its
//!   slots) until it is dropped. Other writes to that key, and `close`, wait for it.
//! - [`Replica::close`] refuses new calls, waits for those in progress and for the queues to
//!   drain, and stops the tasks. (A replica of one sync store and no async ones has nothing
//!   to drain: its calls are the store's own, and `close` only refuses new ones.)
//! - Cancelling the [`ShutdownToken`] given to the builder stops the tasks at once; queued
//!   operations are dropped and counted ([`AsyncHealth::dropped`]) and the replica enters
//!   its error state with an [`Error::Closed`](store_core::Error::Closed) cause.
//! - Dropping the last handle stops the tasks the same way (with a warning in the log if
//!   operations were still queued). Call `close` first to keep them.
//!
//! # Cost
//!
//! A replica with only sync stores, one of them, is that store: its put costs the same
//! (1.01× in `cargo bench -p store-benches --bench replica`). With async stores each
//! mutation also takes the key's turn (so that the sync stores and every queue see the
//! writes to one key in one order), a slot in every queue (back-pressure), and is queued.
//! Turns, slots and queues sit under one short lock, and a put takes it once: it checks
//! the turn and the room, starts the store's put and, when that completes at once (as an
//! in-memory store's does), queues the operation before letting go. A 1 KiB put to one
//! `MemoryStore` with one slow async store costs about 1.27× the store alone while the
//! queue has room. What is left is what any such replica does: the lock, a second
//! reference to the key and to the data for the queue, and a future around the store's.
//!
//! The store's put is thus first polled with that lock held, so writes through one
//! replica from several threads take turns for it: with two tasks putting at once the
//! replica costs 1.1–1.2× the store alone (which has a lock of its own), against 1.0–1.1×
//! for the previous design (a lock per stripe, taken without the store's put under it),
//! which cost 1.43× for a single task. A sync store that blocks the thread in `poll` (none
//! should) holds up the replica's other writes meanwhile.
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

mod builder;
mod gate;
mod health;
mod merge;
mod queue;
mod replica;
mod resync;
mod shutdown;
mod stripes;

pub use builder::{DEFAULT_QUEUE_LEN, ReplicaBuilder};
pub use health::{AsyncHealth, Health};
pub use replica::Replica;
pub use resync::{ResyncReport, resync};
pub use shutdown::ShutdownToken;
