//! Conformance suites, model-based property tests and fault injection for `store` backends.
//!
//! Add it as a dev-dependency of a backend crate and run the whole backend contract of
//! `store-core` against your backend from one test:
//!
//! ```no_run
//! // tests/conformance.rs of your backend crate
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn memory_store_meets_the_backend_contract() {
//!     store_testkit::backend::run_all(|| async { store_memory::MemoryStore::new() }).await;
//! }
//! ```
//!
//! The factory is called once per check and must return a fresh, *empty* backend (for a
//! network store: a fresh bucket or key prefix). The suite then runs each rule as a named
//! check ([`backend::CHECKS`]) and fails with the list of checks that did not pass:
//!
//! - round trips, overwrite, head, errors that name the key;
//! - `Create` exclusivity, `Update` compare-and-swap, conditional get and delete, range reads;
//! - versions never repeat for a key, also across delete and re-create;
//! - ordered listing with prefix and exclusive `start_after`, over thousands of keys;
//! - streaming writers: nothing visible before `close`, drop = abort, put modes checked at
//!   close, a 64 MiB object in 1 MiB chunks;
//! - watch: immediate when already changed, woken by puts and deletes, cancellation-safe,
//!   16 watchers woken by one change;
//! - concurrency: exactly one of 16 racing creates wins; 8 tasks × 250 CAS increments end
//!   at exactly 2000; readers never see a partial put;
//! - a model-based property test: random sequences of put/create/update/delete/get/head/
//!   list/watch compared step by step with a `BTreeMap` model (case count from
//!   `PROPTEST_CASES`, default 48).
//!
//! To run only some checks (say, while developing), pass a subset of [`backend::CHECKS`] to
//! [`backend::run_checks`].
//!
//! [`records::run_all`] does the same for a [`RecordStore`](store_core::RecordStore)
//! (`store-record`'s `Records`, or a store on a distributed engine): create/get/put/cas/
//! delete semantics and the errors that name the key, `get_many` alignment, versions that
//! never repeat, expired records absent for every operation (with a one-second real expiry,
//! since a clock cannot be injected through the trait), waits that return at once, wake on
//! put/cas/delete/expiry and cancel cleanly, glob listing, exactly one winner among racing
//! `cas_by_version` and `create` calls, and a model-based property test.
//!
//! [`committable::run_all`] checks a [`Committable`](store_core::Committable) — `store-commit`'s
//! `Staged` or your own — through a small [`committable::Subject`] adapter (stage a numbered
//! change, read what is applied, restart over the same durable state): commit applies
//! exactly the staged changes, cancel discards an open session but never a commit, ids
//! depend only on the changes, and `begin_recovery` returns the first id for a session
//! already committed (also after a restart) and applies one that was not.
//!
//! [`Faulty`] wraps any backend and injects errors, latency and hangs at chosen operations,
//! on every call or at random — the tool for testing combinators (fan-out, replicas) and
//! layer stacks (retries, timeouts) against failing backends. Errors come before the call
//! takes effect ([`Fault::Refused`] says so, as a refused connection would;
//! [`Fault::DroppedResolvable`] does not, as a timeout would not) or after it
//! ([`Fault::LostReply`]: the write was applied, the reply lost), and listings can fail
//! mid-stream ([`FaultOp::ListItem`]).
//! [`prop::check`] runs proptest strategies against an `async` test body with shrinking.
//!
//! [`linearizability()`] checks a backend for linearizability under concurrency and faults:
//! `K` clients make a seeded random mix of calls on a few hot keys through a
//! [`history::Recorder`], optionally with [`Faulty`] faults, and the recorded history is
//! checked against a versioned register per key ([`linearizability::check`]). A failure
//! prints the operations that cannot be ordered and the seed that replays the schedule:
//!
//! ```no_run
//! // tests/linearizability.rs of your backend crate
//! use store_testkit::linearizability::Config;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn memory_store_is_linearizable() {
//!     let config = Config::default().with_random_faults(0.05);
//!     store_testkit::linearizability(|| async { store_memory::MemoryStore::new() }, config).await;
//! }
//! ```
//!
//! For tests that measure a client rather than check it: [`wire::CountingProxy`] counts what
//! a client sends to a server at the wire (requests, commands by name), through a protocol
//! parser the test supplies, and [`records::seed_records`] writes thousands of records in
//! concurrent `put_many` chunks.

pub mod backend;
pub mod committable;
mod faulty;
pub mod history;
pub mod linearizability;
pub mod prop;
mod recorder;
pub mod records;
pub mod wire;

pub use faulty::{Fault, FaultOp, Faulty, Rule};
pub use linearizability::linearizability;
