//! Layers for any store [`Backend`](store_core::Backend): retries, deadlines, spans,
//! metrics, a concurrency limit, a key namespace and a read-only view.
//!
//! A program that keeps its data on a disk shared by several machines, on etcd or on S3
//! needs more around each call than the call itself: transient failures retried, deadlines,
//! spans and metrics for its operators, a cap on requests in flight. Each of those is one
//! [`Layer`](store_core::Layer) here, and a layered backend is a backend again, so layers
//! stack in any order and every combinator of the family (records, replicas, fan-out) runs
//! over a stack unchanged. Stacks read from the bottom up; the last layer added is the
//! first to see each call:
//!
//! ```
//! use std::time::Duration;
//! use store_core::{BackendExt, Key};
//! use store_layers::{Limit, Metrics, Retry, Timeout, Trace};
//! use store_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> store_core::Result<()> {
//! let store = MemoryStore::new()
//!     .layer(Limit::new(64))                       // at most 64 calls reach the store at once
//!     .layer(Timeout::new(Duration::from_secs(5))) // each attempt, queueing included, gets 5 s
//!     .layer(Trace::new("primary"))                // one span per attempt
//!     .layer(Metrics::new("primary"))              // counts and durations per attempt
//!     .layer(Retry::default());                    // tries again what is safe to try again
//!
//! let key = Key::new("orders/1")?;
//! let v1 = store.create(&key, "new").await?.version;
//! store.update(&key, "paid", v1).await?;
//! assert_eq!(store.get_bytes(&key).await?, "paid");
//! # Ok(()) }
//! ```
//!
//! | layer | what it does |
//! | --- | --- |
//! | [`Retry`] | exponential backoff with jitter, within a budget of attempts and time; resumes listings after the last key; never sends a conditional write twice |
//! | [`Timeout`] | a deadline per call, per listed item and per written chunk |
//! | [`Trace`] | a `tracing` span per operation with stable fields |
//! | [`Metrics`] | `store_ops_total`, `store_bytes_total`, `store_op_duration_seconds` through the `metrics` facade |
//! | [`Limit`] | at most N operations in flight (a tokio semaphore) |
//! | [`Prefix`] | a namespace under a key prefix |
//! | [`ReadOnly`] | reads pass, mutations are refused |
//!
//! # Retries and conditional writes
//!
//! Retrying a read is always safe. Retrying a *conditional* write is not: when its reply is
//! lost the write may have been applied, and sending it again would either apply it twice
//! or fail with a conflict against itself — the caller, seeing the conflict, would re-read
//! and apply its change a second time. [`Retry`] therefore sends a conditional put or a
//! delete again only when the error proves the attempt changed nothing
//! ([`Error::is_not_applied`](store_core::Error::is_not_applied), which a backend returns
//! for a refused connection). Otherwise it asks the backend's
//! [`WriteResolver`](store_core::WriteResolver), if the error carries one (store-cloud's
//! does: every write stores a write id it can read back), and failing that returns an
//! [`outcome_unknown`](store_core::Error::outcome_unknown) error: retryable, saying so, for
//! the caller to read the key and decide. A read-modify-write loop therefore stays exact
//! under retries — this crate's tests run 8 tasks × 250 compare-and-swap increments through
//! `Retry` over a store that fails 30% of calls, before and after applying them, and count
//! exactly 2,000.
//!
//! # Order
//!
//! - `Retry` outermost, so that every other layer sees each attempt: one span, one count
//!   and one deadline per attempt.
//! - `Timeout` above `Limit` if waiting for a permit should count towards the deadline,
//!   below it if not.
//! - `Trace` above `Limit`, so that the time waited for a permit shows in the span.
//! - `Prefix` and `ReadOnly` anywhere: they change what is asked, not how.
//!
//! # Testing a stack
//!
//! `store-testkit`'s `Faulty` (a dev-dependency, as the whole testkit is) wraps any backend
//! and injects errors before a call takes effect (`Fault::Refused`), after it
//! (`Fault::LostReply`, `Fault::LostReplyResolvable`), at random (`Rule::with_probability`),
//! mid-listing (`FaultOp::ListItem`), as well as latency and hangs — put it at the bottom of
//! your stack and check what your program sees. `store-testkit`'s conformance suite runs on
//! any stack, as it does on each layer here.

mod counted;
mod limit;
mod metrics;
mod outcome;
mod prefix;
mod read_only;
mod retry;
mod timeout;
mod trace;

pub use limit::{Limit, LimitStore};
pub use metrics::{Metrics, MetricsStore};
pub use prefix::{Prefix, PrefixStore};
pub use read_only::{ReadOnly, ReadOnlyStore};
pub use retry::{Retry, RetryStore};
pub use timeout::{Timeout, TimeoutStore};
pub use trace::{Trace, TraceStore};
