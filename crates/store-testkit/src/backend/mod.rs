//! The backend conformance suite: every rule of the `Backend` contract as a named check.
//!
//! Call [`run_all`] from a test of your backend crate with a factory that makes a fresh,
//! empty backend. Each check gets its own backend, runs under a time limit, and a failure
//! names the check and what went wrong. Run them on a multi-threaded runtime so the
//! concurrency checks are truly parallel.
//!
//! Some checks test operations the contract lets a backend refuse, and say so ([`needs`]):
//! exclusive create, compare-and-swap, objects of 64 MiB. A backend whose
//! [`capabilities`](Backend::capabilities) lack one gets those checks reported as skipped,
//! by name and with the missing capability, in the printed log and in the returned
//! [`SuiteReport`] — never silently — and every other check still runs. The other flags
//! describe *how* a backend serves an operation every backend must serve: watch without
//! `native_watch` polls, a range without `range_reads` reads the whole object, a delete
//! without `conditional_delete` checks `if_match` and then deletes; their checks always
//! run. Assert the report's `skipped` list in your own test, so that a capability reported
//! wrongly cannot quietly switch checks off.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use futures::stream::TryStreamExt;
use proptest::prelude::*;
use store_core::{
    Backend, BackendExt, ByteRange, DeleteOptions, Error, ErrorKind, GetOptions, Key, ListOptions, Meta,
    PutMode, PutOptions, Version,
};

use crate::prop;

mod basics;
mod concurrency;
mod model;
mod writers;

use basics::*;
use concurrency::*;
use model::*;
use writers::*;

/// A check: takes a fresh backend, panics on failure.
pub type Check = fn(Arc<dyn Backend>) -> LocalBoxFuture<'static, ()>;

/// The longest a single check may run before it counts as hung.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(300);

/// How long a watch may take to notice a change before the check fails. Generous, so that
/// polling backends pass; native-watch backends answer in microseconds.
const WATCH_LIMIT: Duration = Duration::from_secs(10);

/// A capability a check needs: an operation the contract lets a backend refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Need {
    /// `PutMode::Create` ([`Capabilities::create`](store_core::Capabilities::create)).
    Create,
    /// `PutMode::Update` ([`Capabilities::update`](store_core::Capabilities::update)).
    Update,
    /// Objects of 64 MiB and more
    /// ([`Capabilities::max_object_size`](store_core::Capabilities::max_object_size)).
    LargeObjects,
}

impl Need {
    /// Whether `caps` offer it.
    pub fn met_by(self, caps: &store_core::Capabilities) -> bool {
        match self {
            Need::Create => caps.create,
            Need::Update => caps.update,
            Need::LargeObjects => caps.max_object_size.is_none_or(|max| max >= LARGE_OBJECT),
        }
    }
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Need::Create => "create",
            Need::Update => "update",
            Need::LargeObjects => "max_object_size of at least 64 MiB",
        })
    }
}

/// The size of the streaming check's object.
const LARGE_OBJECT: u64 = 64 << 20;

macro_rules! checks {
    ($($name:ident $(=> [$($need:ident),*])?),* $(,)?) => {
        /// Every check, by name, in the order [`run_all`] runs them.
        pub const CHECKS: &[(&str, Check)] = &[
            $((stringify!($name), |b| Box::pin($name(b)))),*
        ];

        /// What the check called `name` needs of a backend's capabilities (nothing for a
        /// check not in [`CHECKS`]).
        pub fn needs(name: &str) -> &'static [Need] {
            match name {
                $(stringify!($name) => &[$($(Need::$need),*)?],)*
                _ => &[],
            }
        }
    };
}

checks![
    put_get_round_trip,
    overwrite_replaces_and_changes_version,
    head_agrees_with_get,
    missing_key_errors_name_the_key,
    create_is_exclusive => [Create],
    update_is_compare_and_swap => [Update],
    conditional_delete,
    versions_never_repeat => [Create],
    range_reads,
    conditional_get,
    list_is_ordered_and_filtered,
    list_many_keys_pages_in_order,
    unusual_keys_round_trip,
    writer_commits_atomically_on_close,
    writer_drop_and_abort_leave_no_trace,
    writer_applies_put_mode_at_close => [Create, Update],
    streaming_64_mib_in_1_mib_chunks => [LargeObjects],
    watch_returns_at_once_when_already_changed,
    watch_wakes_on_put_and_delete,
    dropped_watch_leaves_store_usable,
    concurrent_watchers_all_woken,
    concurrent_creates_have_one_winner => [Create],
    concurrent_cas_increments_are_exact => [Update],
    readers_never_see_a_partial_put,
    model_based_random_operations => [Create, Update],
];

/// What a suite run did: the checks that passed, and those skipped with the capability
/// the backend lacked. (A failure panics instead, listing every failed check.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "assert which checks were skipped (`assert_all_ran`), or a capability reported wrongly goes unnoticed"]
pub struct SuiteReport {
    /// The checks that ran and passed.
    pub passed: Vec<String>,
    /// The checks not run, each with the capability the backend lacks.
    pub skipped: Vec<(String, Need)>,
}

impl SuiteReport {
    /// Panics, naming them, if any check was skipped: for a backend that claims every
    /// capability the suite asks about.
    pub fn assert_all_ran(&self) {
        assert!(
            self.skipped.is_empty(),
            "conformance checks skipped for lack of a capability: {:?}",
            self.skipped
        );
    }
}

/// Runs every check of the suite, each on a fresh backend from `factory`, and panics with
/// the list of failed checks if any fails. Checks whose [`needs`] the backend's
/// capabilities lack are skipped and reported.
///
/// ```no_run
/// # async fn demo() {
/// store_testkit::backend::run_all(|| async { store_memory::MemoryStore::new() }).await;
/// # }
/// ```
pub async fn run_all<F, Fut, B>(factory: F) -> SuiteReport
where
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
    B: Backend,
{
    run_checks(factory, CHECKS).await
}

/// Runs the given checks (a subset of [`CHECKS`], or your own) like [`run_all`].
pub async fn run_checks<F, Fut, B>(factory: F, checks: &[(&str, Check)]) -> SuiteReport
where
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
    B: Backend,
{
    let mut failures = Vec::new();
    let mut report = SuiteReport::default();
    for (name, check) in checks {
        let backend: Arc<dyn Backend> = Arc::new(factory().await);
        let caps = backend.capabilities();
        if let Some(lacking) = needs(name).iter().find(|need| !need.met_by(&caps)) {
            eprintln!("conformance: {name} ... skipped: the backend lacks {lacking}");
            report.skipped.push(((*name).to_owned(), *lacking));
            continue;
        }
        let started = Instant::now();
        let outcome = AssertUnwindSafe(tokio::time::timeout(CHECK_TIME_LIMIT, check(backend)))
            .catch_unwind()
            .await;
        let verdict = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(format!("timed out after {CHECK_TIME_LIMIT:?}")),
            Err(panic) => Some(panic_message(&panic)),
        };
        match verdict {
            None => {
                eprintln!("conformance: {name} ... ok ({:.1?})", started.elapsed());
                report.passed.push((*name).to_owned());
            }
            Some(why) => {
                eprintln!("conformance: {name} ... FAILED: {why}");
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance checks failed:\n{}",
        failures.len(),
        checks.len(),
        failures.join("\n")
    );
    report
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "panicked".to_owned()
    }
}
