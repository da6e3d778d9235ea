//! Multi and MultiWriter: fan-out writes to several backends (All / BestEffort / Quorum).
//!
//! Write the same object to several stores at once — a local disk and a remote bucket, two
//! providers, a store and its backup — and read it back from whichever answers. Two types:
//!
//! - [`MultiWriter`] writes to every backend and tells you, per backend, what happened
//!   (a [`WriteReport`]).
//! - [`Multi`] is the same fan-out as a [`Backend`](store_core::Backend), so it composes
//!   with everything else in the `store` family (records, replicas, groups over a fan-out).
//!
//! ```
//! use std::sync::Arc;
//! use store_core::{Backend, BackendExt, Key};
//! use store_memory::MemoryStore;
//! use store_multi::{Multi, WriteMode};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> store_core::Result<()> {
//! let local = MemoryStore::new();
//! let remote = MemoryStore::new();
//! let multi = Multi::builder([Arc::new(local.clone()) as Arc<dyn Backend>, Arc::new(remote.clone())])
//!     .mode(WriteMode::All)
//!     .build()?;
//!
//! let key = Key::new("data/file.json")?;
//! let meta = multi.put_bytes(&key, r#"{"key": "value"}"#).await?;
//! assert_eq!(local.get_bytes(&key).await?, remote.get_bytes(&key).await?);
//!
//! // One version for the whole fan-out, usable for compare-and-swap like any other.
//! multi.update(&key, r#"{"key": "new"}"#, meta.version).await?;
//! assert_eq!(remote.get_bytes(&key).await?, r#"{"key": "new"}"#);
//! # Ok(())
//! # }
//! ```
//!
//! # Write modes
//!
//! A whole object handed to `put` goes to each backend's own `put`, all at once — streaming
//! backend or not: for a small object a writer per backend would cost a round trip of its
//! own (on a file store, each of open, write and close is a trip to the blocking pool).
//! Its one failure point is the commit.
//!
//! A streamed write ([`MultiWriter::writer`], `Backend::writer`) opens a writer on every
//! backend that streams writes (`capabilities().streaming_writes`) and sends each chunk to
//! all of them **concurrently** (one [`Bytes`](store_core::Bytes) shared by all, never
//! copied per backend). A backend that does not stream gets no writer — its own would only
//! buffer in memory and `put` at close: the fan-out keeps the chunks once for all such
//! backends and hands each of them the whole object in one `put` at commit time.
//!
//! Both end in the same commit phase: under the key's lock, the conditional check (one
//! `head` per backend for `Create` and `Update`, nothing for `Overwrite`), then every
//! backend's commit (its `put`, or its writer's close) at once.
//!
//! The [`WriteMode`] decides what counts as success, and what each failure point leaves
//! behind:
//!
//! | failure at            | `All`                                         | `BestEffort` / `Quorum`                                  |
//! |-----------------------|-----------------------------------------------|----------------------------------------------------------|
//! | open, a chunk (streamed) | every writer aborted: no backend shows the new object | the failed backend drops out; the write goes on while enough are left (≥ 1 / a majority), else every writer is aborted |
//! | the conditional check | nothing written anywhere (`AlreadyExists` / `Conflict` / `NotFound`) | same                                       |
//! | commit                | error listing the failed backends; the others **did** commit (see below) | success if ≥ 1 / a majority committed, failures in the report; otherwise an error |
//!
//! A commit-phase failure cannot be made invisible in general: the other backends may have
//! committed already, and an `Overwrite` or `Update` cannot be undone (the old content is
//! gone). For `Create`, a failed write **is** rolled back: each backend that committed
//! deletes the new object if it is still the version this write made (`delete_if`), and a
//! rollback that fails is listed in the error too. So after an error:
//! - before the commit phase, in every mode: no backend changed;
//! - in the commit phase with `Create`: no backend holds the object, unless the error
//!   lists a `store-multi rollback` failure for it. A backend whose reply was lost is
//!   asked, and rolled back too if it holds the new object: through the error's
//!   [`WriteResolver`](store_core::WriteResolver) where the backend gives one, else with a
//!   `head`, which takes whatever the backend holds for the new object (so a create by a
//!   writer outside this `Multi` that landed there meanwhile is deleted too);
//! - in the commit phase otherwise: the backends *not* named in the error hold the new
//!   object, and so may those named with an error that leaves the outcome open (a lost
//!   reply: anything but [`Error::is_not_applied`](store_core::Error::is_not_applied)).
//!
//! `Quorum` needs a strict majority of the *configured* backends (1→1, 2→2, 3→2, 4→3,
//! 5→3; [`WriteMode::required`]). [`MultiWriter`]'s `put` and `close` return as soon as the
//! majority committed: the report shows the other backends as [`Outcome::Pending`] and the
//! version names them `?`; they keep committing in a task of their own (returning does not
//! cancel them), and [`WriteReport::settled`] gives their outcomes and the final version.
//! [`Multi`]'s `Backend::put` and its writer's `close` wait for every backend's answer
//! before returning the version: the version names every backend's own version (below),
//! and the `Backend` contract wants what the write returns to be what reads report — from
//! this `Multi`, another one over the same backends, or after a restart. A backend's
//! version is known only once it answered, so no earlier return can keep that promise.
//!
//! Failures never vanish: errors are a [`MultiError`] (`(backend index, error)` pairs);
//! tolerated failures are in the [`WriteReport`], and — for writes through the `Backend`
//! trait, whose `put` can only return a `Meta` — in [`MultiWriter::recent_failures`] and a
//! `tracing` warning.
//!
//! # One version for several copies
//!
//! Each backend numbers its own versions, so `Multi` presents a **composite version**
//! naming every copy: `+7|+12|-` means backend 0 holds its version 7, backend 1 its version
//! 12 and backend 2 nothing; `?` marks a backend that could not answer (or, in a
//! [`MultiWriter`] report, was still committing when the write returned). It is never reused
//! (no component is), and `head`, `get`, `list` and `watch` all report it.
//!
//! - `Create` succeeds if no backend holds the key; otherwise `AlreadyExists` carrying the
//!   composite of what is there.
//! - `Update(composite)` succeeds if every backend taking part still holds its part of it;
//!   each backend then gets `Update(its own version)`, or `Create` where it held nothing —
//!   so updating from a version read after a partial `BestEffort` write also brings the
//!   backend that missed it up to date. Otherwise `Conflict` (with the current composite),
//!   or `NotFound` if no backend holds the key. A version `Multi` never issued never matches.
//! - The check and the commits run under a per-key lock, so the conditional writes of one
//!   `Multi` (and its clones, and its [`MultiWriter`]) reach all backends in the same order
//!   and the copies cannot diverge between two racing writers. A write keeps the lock
//!   until every backend answered — a `Quorum` write that returned early keeps it in the
//!   task finishing its slow backends. So a later write of the key waits for them (it
//!   never reaches a backend before an earlier write's late commit does), its check sees
//!   what they left, and `delete` and `watch` (before it reports a change) wait for them
//!   too. Keys share the lock by hash (64 stripes): a write may also wait for the slow
//!   backends of a write of another key. Another *process* writing the same backends is
//!   not part of that agreement: `capabilities().shared` is always `false`.
//! - If backends diverge anyway (a tolerated failure, someone writing a backend directly),
//!   the composite shows it, and a conditional write from it is checked against every part.
//!
//! # Reads
//!
//! A read asks every backend for its version (concurrently) to build the composite, then
//! fetches the body according to the [`ReadPolicy`]: from the first backend in order that
//! holds the object ([`ReadPolicy::InOrder`], the default), or from whichever answers first
//! ([`ReadPolicy::Fastest`]). A backend that fails falls through to the next; a key is
//! absent (`NotFound`) only if every backend that answered lacks it — a copy missing from
//! one backend is not an answer while another holds it. Reads take no lock: a read racing
//! a write may report a composite version that mixes the two states (the new part from
//! one backend, the old from another). Such a version is never issued by a write, so a
//! conditional write from it fails with `Conflict` rather than succeeding wrongly; the
//! body and the presence a read reports are those of a state before or after the write.
//! After a failure inside the fan-out that leaves the backends diverging (a write or
//! delete one backend refused, in any mode), reads take whichever backend answers and no
//! longer behave as one register until a write of the key brings them together again.
//!
//! Listing merges every backend's listing (the union, in order). `watch` waits on every
//! backend at once and, before returning a change, waits for an in-flight commit of that
//! key through this `Multi`, so it reports a settled version.
//!
//! # Cost
//!
//! An unconditional put is one `put` per backend, all at once; a `Create` or `Update`
//! adds one `head` per backend first (the check). A streamed write is one writer per
//! streaming backend, each chunk sent to them all at once (shared, never copied), and one
//! commit each. A write that some backend failed asks that backend for its state once more
//! (`head`), to name it in the version, when the check did not tell it or its commit failed
//! without proving it changed nothing (a lost reply). A read is one `head`
//! per backend (the composite version) and one `get` of the body; a listing merges every
//! backend's listing.
//!
//! # Deviations from the seed (`multi-writer`)
//!
//! - Writes fan out concurrently, not one backend after the other.
//! - `All` aborts every backend's writer on the first failure, so no backend is left with
//!   an empty or partial object (the seed left empty objects behind).
//! - `BestEffort` returns its failures in the report instead of dropping them; all failing
//!   is an error.
//! - `Quorum` counts the *configured* backends; [`MultiWriter`] returns at the majority.
//! - The fan-out is itself a backend, with conditional writes and one version.
//!
//! [`MultiError`] is `store_core::MultiError`, re-exported: its `Display` shows the first
//! error's message, `"<first> (and 2 more errors)"` (just the message for one error), and
//! `"no errors"` when empty; `source()` is the first error; `errors` lists every
//! `(backend index, error)` pair.

mod builder;
mod commit;
mod composite;
mod failures;
mod fan_out;
mod locks;
mod mode;
mod multi;
mod report;
mod view;
mod writer;

pub use builder::MultiBuilder;
pub use failures::{FAILURE_LOG_LEN, FailureRecord};
pub use fan_out::MultiWriter;
pub use mode::{ReadPolicy, WriteMode};
pub use multi::Multi;
pub use report::{Outcome, Settlement, WriteReport};
pub use store_core::MultiError;
pub use writer::FanOutWriter;
