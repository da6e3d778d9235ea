//! Commit sessions across several stores, with idempotency keys and crash recovery.
//!
//! A *session* is a batch of changes to several stores — files in one, records in another —
//! that should all be applied, exactly once, even if the process dies half-way. The session
//! is named by an [`IdempotencyKey`] the caller chooses (a request id, an order number), so
//! that running it again after a crash *recovers* it instead of applying it twice.
//!
//! - [`MultiCommitter`] coordinates a session over named [`Committable`]s and remembers
//!   the session in a key-value [`Backend`](store_core::Backend) of your choice (use a
//!   durable one, such as `store-fs`'s `FsStore`).
//! - [`Staged`] is a ready-made `Committable` over any backend: it buffers puts and deletes
//!   during the session and applies them on commit, through a journal, so each store ends
//!   up with the whole session or none of it.
//!
//! # A session
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use store_commit::{MultiCommitter, SessionStart, Staged};
//! use store_core::{BackendExt, IdempotencyKey, Key};
//! use store_memory::MemoryStore;
//!
//! let files = Arc::new(Staged::new(MemoryStore::new()));
//! let index = Arc::new(Staged::new(MemoryStore::new()));
//! let mut committer = MultiCommitter::empty(MemoryStore::new());
//! committer.register("files", files.clone())?;
//! committer.register("index", index.clone())?;
//!
//! let session = IdempotencyKey::from("upload-42");
//! assert_eq!(committer.begin(&session).await?, SessionStart::Fresh);
//! files.stage_put(&Key::new("photos/cat.jpg")?, "…jpeg…")?;
//! index.stage_put(&Key::new("by-name/cat")?, "photos/cat.jpg")?;
//! let id = committer.commit(&session).await?;
//!
//! assert_eq!(index.backend().get_bytes(&Key::new("by-name/cat")?).await?, "photos/cat.jpg");
//! assert_eq!(id.as_bytes().len(), 32); // SHA-256 over ("files", id₁), ("index", id₂)
//! # Ok::<(), store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # The protocol
//!
//! 1. [`begin(key)`](MultiCommitter::begin) stores `key` in the kv store *before* any
//!    committable is touched. If the very same key is already stored, the previous run of
//!    this session was interrupted: every committable gets `begin_recovery` instead of
//!    `begin`. If a different key is stored, `begin` refuses and names both keys — one
//!    session at a time, and an interrupted one must be recovered (or explicitly
//!    [abandoned](MultiCommitter::abandon)) first.
//! 2. The caller makes its changes through the committables (with `Staged`:
//!    [`stage_put`](Staged::stage_put), [`stage_delete`](Staged::stage_delete)).
//! 3. [`commit(key)`](MultiCommitter::commit) commits every committable in ascending name
//!    order and returns a [`CommitId`]: SHA-256 over the length-prefixed `(name, id)` pairs
//!    in name order ([`session_id`]) — the same changes give the same id, and different
//!    splits of names and ids can never collide. Then the stored key is removed.
//!
//! Any failure in `begin`, `begin_recovery` or `commit` cancels every committable and ends
//! the session; the error ([`SessionError`], inside `Error::Backend`) says which committable
//! failed at which step. `commit` without `begin` is an error, and so is a key that is not
//! the open session's.
//!
//! # Crashes
//!
//! Say the process dies during `commit`, after `files` committed and before `index` did.
//! The stored key survives. On restart, run the same session again — `begin` with the same
//! key, stage the same changes, `commit`:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! # use std::sync::Arc;
//! # use store_commit::{MultiCommitter, SessionStart, Staged};
//! # use store_core::{BackendExt, Committable, IdempotencyKey, Key};
//! # use store_memory::MemoryStore;
//! let (kv, disk_a, disk_b) = (MemoryStore::new(), MemoryStore::new(), MemoryStore::new());
//! let session = IdempotencyKey::from("upload-42");
//! let k = Key::new("k")?;
//!
//! // The first run: the key is stored and "a" commits, then the process dies.
//! let a = Arc::new(Staged::new(disk_a.clone()));
//! let b = Arc::new(Staged::new(disk_b.clone()));
//! let mut first = MultiCommitter::empty(kv.clone());
//! first.register("a", a.clone())?;
//! first.register("b", b.clone())?;
//! first.begin(&session).await?;
//! a.stage_put(&k, "v")?;
//! b.stage_put(&k, "v")?;
//! a.commit(&session).await?; // what the committer had got to
//! drop((first, a, b)); // the crash
//!
//! // The restart: the same session again, over the same stores.
//! let a = Arc::new(Staged::new(disk_a.clone()));
//! let b = Arc::new(Staged::new(disk_b.clone()));
//! let mut again = MultiCommitter::empty(kv.clone());
//! again.register("a", a.clone())?;
//! again.register("b", b.clone())?;
//! assert_eq!(again.begin(&session).await?, SessionStart::Recovery);
//! a.stage_put(&k, "v")?; // "a" already has it: it will not apply it again
//! b.stage_put(&k, "v")?;
//! again.commit(&session).await?;
//! assert_eq!(disk_b.get_bytes(&k).await?, "v");
//! assert_eq!(again.pending().await?, None);
//! # Ok::<(), store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! What makes that work is on the committables' side: a committable must remember, per
//! session, that it already committed, and then return the id it returned the first time
//! (see [`Committable::begin_recovery`]). [`Staged`] writes a marker object holding the id
//! and rolls half-applied commits forward from a journal; its docs say exactly what is
//! atomic and what is only idempotent. For your own committables, `store-testkit`'s
//! `committable::run_all` checks this contract.
//!
//! What the protocol does *not* give: atomicity across stores at any instant. Between a
//! crash and the recovery, one store may have the session and another not; the guarantee
//! is that running the session again with its key converges every store to "applied once".
//! Only one committer may use a session key location at a time (two processes racing to
//! `begin` are told apart by a `Create` put: one of them is refused).

mod commit_id;
mod committer;
mod journal;
mod session_error;
mod staged;

pub use commit_id::session_id;
pub use committer::{DEFAULT_SESSION_KEY, MultiCommitter, SessionStart};
pub use session_error::SessionError;
pub use staged::{DEFAULT_STAGED_PREFIX, Staged};

pub use store_core::{CommitId, Committable, IdempotencyKey};
