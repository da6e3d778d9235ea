//! The record-store conformance suite: every rule of the `RecordStore` contract as a named
//! check.
//!
//! Call [`run_all`] from a test of your record-store crate with a factory that makes a
//! fresh, empty store. Each check gets its own store, runs under a time limit, and a failure
//! names the check and what went wrong. Run them on a multi-threaded runtime so the
//! concurrency checks are truly parallel.
//!
//! The suite only uses the `RecordStore` trait, so it cannot set the store's clock. Most
//! expiry checks therefore write records whose expiry is already in the past (absent at
//! once) or an hour ahead (live throughout); one check, `expiry_passes_in_real_time`, waits
//! about two seconds for a one-second expiry to pass. Expiry times are compared to within
//! one second, so stores that keep them coarsely (whole-second leases) pass.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::LocalBoxFuture;
use proptest::prelude::*;
use store_core::{Error, ErrorKind, Key, Record, RecordStore, Version};

use crate::backend::panic_message;
use crate::prop;

mod basics;
mod concurrency;
mod expiry;
mod listing;
mod model;
mod seed;

use basics::*;
use concurrency::*;
use expiry::*;
pub use listing::listing_goes_on_past_a_corrupt_record;
use listing::*;
use model::*;
pub use seed::seed_records;

/// A check: takes a fresh record store, panics on failure.
pub type Check = fn(Arc<dyn RecordStore>) -> LocalBoxFuture<'static, ()>;

/// The longest a single check may run before it counts as hung.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(300);

/// How long a waiter may take to notice a change before the check fails. Generous, so that
/// polling stores pass; native-watch stores answer in microseconds.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// How long "not woken yet" is observed before changing the record.
const SETTLE: Duration = Duration::from_millis(30);

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check, by name, in the order [`run_all`] runs them.
        pub const CHECKS: &[(&str, Check)] = &[
            $((stringify!($name), |s| Box::pin($name(s)))),*
        ];
    };
}

checks![
    create_then_get_round_trips,
    create_existing_is_already_exists_with_version,
    missing_key_errors_name_the_key,
    get_many_is_aligned_with_the_input,
    put_overwrites_and_ignores_the_input_version,
    put_many_returns_aligned_versions,
    cas_by_version_replaces_value_and_expiry,
    delete_removes_the_record,
    versions_never_repeat,
    expired_records_are_absent_everywhere,
    expiry_passes_in_real_time,
    wait_returns_at_once_when_already_changed,
    wait_wakes_on_put_cas_and_delete,
    dropped_waits_leave_the_store_usable,
    concurrent_waiters_all_woken,
    list_keys_matches_globs,
    list_keys_rejects_invalid_patterns,
    concurrent_cas_has_one_winner,
    concurrent_creates_have_one_winner,
    concurrent_cas_increments_are_exact,
    model_based_random_operations,
];

/// Runs every check of the suite, each on a fresh store from `factory`, and panics with the
/// list of failed checks if any fails.
///
/// ```no_run
/// # use store_core::RecordStore;
/// # async fn demo<R: RecordStore>(new_empty_store: impl Fn() -> R) {
/// // In store-record's tests: `|| async { Records::new(MemoryStore::new()) }`.
/// store_testkit::records::run_all(|| async { new_empty_store() }).await;
/// # }
/// ```
pub async fn run_all<F, Fut, R>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = R>,
    R: RecordStore,
{
    run_checks(factory, CHECKS).await;
}

/// Runs the given checks (a subset of [`CHECKS`], or your own) like [`run_all`].
pub async fn run_checks<F, Fut, R>(factory: F, checks: &[(&str, Check)])
where
    F: Fn() -> Fut,
    Fut: Future<Output = R>,
    R: RecordStore,
{
    let mut failures = Vec::new();
    for (name, check) in checks {
        let store: Arc<dyn RecordStore> = Arc::new(factory().await);
        let started = Instant::now();
        let outcome = AssertUnwindSafe(tokio::time::timeout(CHECK_TIME_LIMIT, check(store)))
            .catch_unwind()
            .await;
        let verdict = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(format!("timed out after {CHECK_TIME_LIMIT:?}")),
            Err(panic) => Some(panic_message(&panic)),
        };
        match verdict {
            None => eprintln!("record conformance: {name} ... ok ({:.1?})", started.elapsed()),
            Some(why) => {
                eprintln!("record conformance: {name} ... FAILED: {why}");
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} record conformance checks failed:\n{}",
        failures.len(),
        checks.len(),
        failures.join("\n")
    );
}
