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
//! A write opens a writer on every backend, sends each chunk to all of them
//! **concurrently** (one [`Bytes`](store_core::Bytes) shared by all, never copied per
//! backend), then commits on every backend concurrently. A backend that does not stream
//! writes (`capabilities().streaming_writes` is false — its writer would only buffer in
//! memory and `put` at close) gets no writer: the fan-out keeps the chunks once for all
//! such backends and hands each of them the whole object in one `put` at commit time. Its
//! only failure point is then the commit, exactly as with its own writer. Commits of 1 MiB
//! or more run in one task per backend, so CPU-bound commits use every core.
//!
//! `put` has the same failure points and guarantees as a streamed write of one chunk. When
//! no backend streams writes it skips building the writer: under the key's lock it runs the
//! same conditional check, then one `put` per backend, all polled concurrently in the
//! calling task (no task spawned below 1 MiB), judged by the same commit-phase rules below.
//! With a streaming backend among them, `put` goes through the writer.
//!
//! The [`WriteMode`] decides what counts as success, and what each failure point leaves
//! behind:
//!
//! | failure at            | `All`                                         | `BestEffort` / `Quorum`                                  |
//! |-----------------------|-----------------------------------------------|----------------------------------------------------------|
//! | open, a chunk         | every writer aborted: no backend shows the new object | the failed backend drops out; the write goes on while enough are left (≥ 1 / a majority), else every writer is aborted |
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
//!   lists a `store-multi rollback` failure for it;
//! - in the commit phase otherwise: exactly the backends *not* named in the error hold the
//!   new object.
//!
//! `Quorum` needs a strict majority of the *configured* backends (1→1, 2→2, 3→2, 4→3,
//! 5→3; [`WriteMode::required`]). [`MultiWriter`] returns as soon as the majority committed;
//! the other backends keep committing in the background and [`WriteReport::settled`]
//! reports them. The trait-level [`Multi`] `put`/`close` waits for them before returning,
//! because the `Backend` contract requires the returned version to be the one later reads
//! report (see below).
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
//! 12 and backend 2 nothing; `?` marks a backend that could not answer. It is never reused
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
//!   `Multi` (and its clones) reach all backends in the same order and the copies cannot
//!   diverge between two racing writers. Another *process* writing the same backends is not
//!   part of that agreement: `capabilities().shared` is always `false`.
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
//! one backend is not an answer while another holds it. Listing merges every backend's
//! listing (the union, in order). `watch` waits on every backend at once and, before
//! returning a change, waits for an in-flight commit of that key through this `Multi`, so
//! it reports a settled version.
//!
//! # Cost
//!
//! A fan-out writes every byte once per backend, so a small put costs at least the sum of
//! the backends' own puts. Through `Arc<dyn Backend>` each is a boxed future besides, and
//! over three in-memory stores — the cheapest backends there are, where nothing hides
//! the fixed costs — the three puts alone, joined in one boxed future with no lock,
//! version or report, take about 3.7× one put (`cargo bench -p store-benches --bench
//! multi`, the line marked "the floor"). `Multi::put` adds the key's lock and the
//! composite version, about 4.6× in all. Large objects are streamed, each chunk shared
//! (never copied) among the backends: a 4 MiB put costs about 1.4× one backend's.
//!
//! # Deviations from the seed (`multi-writer`)
//!
//! - Writes fan out concurrently, not one backend after the other.
//! - `All` aborts every backend's writer on the first failure, so no backend is left with
//!   an empty or partial object (the seed left empty objects behind).
//! - `BestEffort` returns its failures in the report instead of dropping them; all failing
//!   is an error.
//! - `Quorum` counts the *configured* backends and returns at the majority.
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
