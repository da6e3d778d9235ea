//! The committable conformance suite: the [`Committable`] contract as named checks.
//!
//! A committable is only half of the story the trait describes: its changes are made
//! through its own API, and what it applied is visible only through its own reads. So the
//! suite talks to a [`Subject`]: your committable plus three small adapters — make a
//! numbered change inside the open session, report which numbers are applied, and restart
//! (drop all in-memory state and open the same durable state again, as a new process
//! would after a crash).
//!
//! This is how `store-commit` checks its `Staged` (in its `tests/conformance.rs`):
//!
//! ```no_run
//! use std::collections::BTreeSet;
//! use store_core::{async_trait, Key, Result};
//! use store_testkit::committable::{Change, Subject};
//!
//! /// `Staged` over a MemoryStore: change n is the object `items/n`.
//! struct StagedSubject(store_commit::Staged<store_memory::MemoryStore>);
//!
//! #[async_trait]
//! impl Subject for StagedSubject {
//!     type Committable = store_commit::Staged<store_memory::MemoryStore>;
//!     fn committable(&self) -> &Self::Committable {
//!         &self.0
//!     }
//!     async fn stage(&self, change: Change) -> Result<()> {
//!         match change {
//!             Change::Insert(n) => self.0.stage_put(&Key::new(format!("items/{n}"))?, "x"),
//!             Change::Remove(n) => self.0.stage_delete(&Key::new(format!("items/{n}"))?),
//!         }
//!     }
//!     async fn applied(&self) -> Result<BTreeSet<u32>> {
//!         use store_core::BackendExt;
//!         let keys = self.0.backend().list_keys("items/").await?;
//!         Ok(keys.iter().filter_map(|k| k.name().parse().ok()).collect())
//!     }
//!     async fn restart(self) -> Result<Self> {
//!         // The MemoryStore is the "disk"; a new Staged over it is the new process.
//!         Ok(StagedSubject(store_commit::Staged::new(self.0.backend().clone())))
//!     }
//! }
//!
//! #[tokio::test]
//! async fn staged_meets_the_committable_contract() {
//!     store_testkit::committable::run_all(|| async {
//!         StagedSubject(store_commit::Staged::new(store_memory::MemoryStore::new()))
//!     })
//!     .await;
//! }
//! ```
//!
//! The checks ([`CHECKS`]) cover what a [`MultiCommitter`]-style coordinator relies on:
//! commit applies exactly the staged changes and sessions accumulate; cancel discards the
//! open session, is harmless without one and does not undo a commit (a coordinator cancels
//! *every* committable when any one fails); ids depend only on the changes (equal changes
//! on two stores give equal ids, different changes different ids, an empty session has an
//! id too); `begin_recovery` of a session this store already committed — also after a
//! restart — returns the first id and never applies the session again (changes staged
//! during that recovery are not applied: the first id is returned, or an error);
//! `begin_recovery`
//! of a session that was cancelled, never committed before a crash, or never seen applies
//! it like a fresh session; `commit` without a session, or twice, is an error, not a panic.
//!
//! [`MultiCommitter`]: https://docs.rs/store-commit

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use store_core::{CommitId, Committable, IdempotencyKey, Result};

use crate::backend::panic_message;

/// One change the suite asks a [`Subject`] to make inside the open session: item `n`
/// becomes present (`Insert`) or absent (`Remove`). Map it to anything your store holds —
/// an object, a row, a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// Item `n` should be present once the session is committed.
    Insert(u32),
    /// Item `n` should be absent once the session is committed (absent already is fine).
    Remove(u32),
}

/// A committable under test, with the adapters the suite needs to drive and observe it.
#[async_trait]
pub trait Subject: Send + Sync + Sized + 'static {
    /// The committable being checked.
    type Committable: Committable;

    /// The committable. The suite calls `begin`, `begin_recovery`, `commit` and `cancel`
    /// on it directly.
    fn committable(&self) -> &Self::Committable;

    /// Makes `change` inside the open session (it must not be applied before `commit`
    /// returns — though the suite does not look earlier).
    async fn stage(&self, change: Change) -> Result<()>;

    /// The items applied now, read from the durable state.
    async fn applied(&self) -> Result<BTreeSet<u32>>;

    /// Simulates a crash and restart: drops every in-memory state and returns a subject
    /// over the same durable state, as a new process would open it.
    async fn restart(self) -> Result<Self>;
}

/// The longest a single check may run before it counts as hung.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: &[&str] = &[
    "commit_applies_exactly_the_staged_changes",
    "sessions_accumulate",
    "cancel_discards_the_open_session",
    "cancel_without_a_session_is_harmless",
    "cancel_after_commit_keeps_the_commit",
    "ids_depend_only_on_the_changes",
    "empty_session_has_an_id",
    "recovering_a_committed_session_returns_its_id",
    "recovering_a_committed_session_after_a_restart",
    "a_committed_session_is_never_applied_again",
    "recovering_an_uncommitted_session_after_a_restart_applies_it",
    "recovering_a_cancelled_session_applies_it",
    "recovering_an_unknown_session_is_a_fresh_start",
    "commit_without_a_session_is_an_error",
];

/// Makes fresh subjects for the checks.
struct Fresh<'a, S> {
    make: &'a dyn Fn() -> LocalBoxFuture<'a, S>,
}

impl<S> Fresh<'_, S> {
    async fn subject(&self) -> S {
        (self.make)().await
    }
}

/// Runs every check, each on a fresh subject from `factory` (some checks take two), and
/// panics with the list of failed checks if any fails.
pub async fn run_all<F, Fut, S>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Subject,
{
    let make = || factory().boxed_local();
    let fresh = Fresh { make: &make };
    let mut failures = Vec::new();
    macro_rules! run {
        ($($name:ident),* $(,)?) => {
            $( run_one(&mut failures, stringify!($name), $name(&fresh)).await; )*
        };
    }
    run![
        commit_applies_exactly_the_staged_changes,
        sessions_accumulate,
        cancel_discards_the_open_session,
        cancel_without_a_session_is_harmless,
        cancel_after_commit_keeps_the_commit,
        ids_depend_only_on_the_changes,
        empty_session_has_an_id,
        recovering_a_committed_session_returns_its_id,
        recovering_a_committed_session_after_a_restart,
        a_committed_session_is_never_applied_again,
        recovering_an_uncommitted_session_after_a_restart_applies_it,
        recovering_a_cancelled_session_applies_it,
        recovering_an_unknown_session_is_a_fresh_start,
        commit_without_a_session_is_an_error,
    ];
    assert!(
        failures.is_empty(),
        "{} of {} committable conformance checks failed:\n{}",
        failures.len(),
        CHECKS.len(),
        failures.join("\n")
    );
}

async fn run_one(failures: &mut Vec<String>, name: &str, check: impl Future<Output = ()>) {
    let started = Instant::now();
    let outcome = AssertUnwindSafe(tokio::time::timeout(CHECK_TIME_LIMIT, check))
        .catch_unwind()
        .await;
    let verdict = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(format!("timed out after {CHECK_TIME_LIMIT:?}")),
        Err(panic) => Some(panic_message(&panic)),
    };
    match verdict {
        None => eprintln!(
            "committable conformance: {name} ... ok ({:.1?})",
            started.elapsed()
        ),
        Some(why) => {
            eprintln!("committable conformance: {name} ... FAILED: {why}");
            failures.push(format!("{name}: {why}"));
        }
    }
}

fn ok<T>(r: Result<T>, what: impl std::fmt::Display) -> T {
    r.unwrap_or_else(|e| panic!("{what}: unexpected error: {e}"))
}

fn session(name: &str) -> IdempotencyKey {
    IdempotencyKey::from(name)
}

fn set(items: &[u32]) -> BTreeSet<u32> {
    items.iter().copied().collect()
}

async fn applied<S: Subject>(s: &S) -> BTreeSet<u32> {
    ok(s.applied().await, "applied()")
}

/// begin(key), stage every change, commit(key).
async fn run_session<S: Subject>(s: &S, key: &IdempotencyKey, changes: &[Change]) -> CommitId {
    ok(s.committable().begin(key).await, format!("begin({key:?})"));
    stage_all(s, key, changes).await;
    ok(s.committable().commit(key).await, format!("commit({key:?})"))
}

async fn stage_all<S: Subject>(s: &S, key: &IdempotencyKey, changes: &[Change]) {
    for c in changes {
        ok(s.stage(*c).await, format!("stage({c:?}) in session {key:?}"));
    }
}

async fn restart<S: Subject>(s: S) -> S {
    ok(s.restart().await, "restart()")
}

use Change::{Insert, Remove};

async fn commit_applies_exactly_the_staged_changes<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    assert_eq!(applied(&s).await, set(&[]), "a fresh subject must start empty");
    run_session(
        &s,
        &session("c-1"),
        &[Insert(1), Insert(2), Insert(3), Remove(2), Insert(2)],
    )
    .await;
    assert_eq!(applied(&s).await, set(&[1, 2, 3]), "after committing session c-1");
}

async fn sessions_accumulate<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    let a = run_session(&s, &session("acc-1"), &[Insert(1), Insert(2)]).await;
    let b = run_session(&s, &session("acc-2"), &[Remove(1), Insert(3), Remove(9)]).await;
    assert_eq!(applied(&s).await, set(&[2, 3]), "after sessions acc-1 and acc-2");
    assert_ne!(a, b, "two sessions with different changes returned the same id");
}

async fn cancel_discards_the_open_session<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    run_session(&s, &session("keep"), &[Insert(1)]).await;
    let k = session("discarded");
    ok(s.committable().begin(&k).await, "begin(\"discarded\")");
    stage_all(&s, &k, &[Insert(2), Remove(1)]).await;
    ok(s.committable().cancel().await, "cancel() of an open session");
    assert_eq!(
        applied(&s).await,
        set(&[1]),
        "a cancelled session changed the store"
    );
    // The store is usable again, and the cancelled changes do not come back.
    run_session(&s, &session("after-cancel"), &[Insert(3)]).await;
    assert_eq!(
        applied(&s).await,
        set(&[1, 3]),
        "after a session following a cancel"
    );
}

async fn cancel_without_a_session_is_harmless<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    ok(
        s.committable().cancel().await,
        "cancel() with no session ever opened",
    );
    run_session(&s, &session("x"), &[Insert(1)]).await;
    ok(
        s.committable().cancel().await,
        "cancel() after a completed session",
    );
    ok(s.committable().cancel().await, "a second cancel()");
    run_session(&s, &session("y"), &[Insert(2)]).await;
    assert_eq!(applied(&s).await, set(&[1, 2]));
}

async fn cancel_after_commit_keeps_the_commit<S: Subject>(fresh: &Fresh<'_, S>) {
    // A coordinator cancels every committable when a later one fails to commit: a
    // committable that already committed must keep its commit.
    let s = fresh.subject().await;
    run_session(&s, &session("committed"), &[Insert(7)]).await;
    ok(s.committable().cancel().await, "cancel() after commit");
    assert_eq!(applied(&s).await, set(&[7]), "cancel() undid a committed session");
}

async fn ids_depend_only_on_the_changes<S: Subject>(fresh: &Fresh<'_, S>) {
    let changes = [Insert(1), Insert(5), Remove(3)];
    let a = fresh.subject().await;
    let b = fresh.subject().await;
    let c = fresh.subject().await;
    let id_a = run_session(&a, &session("one-name"), &changes).await;
    let id_b = run_session(&b, &session("another-name"), &changes).await;
    assert_eq!(
        id_a, id_b,
        "the same changes on two fresh stores gave different ids"
    );
    let id_c = run_session(&c, &session("one-name"), &[Insert(1), Insert(5)]).await;
    assert_ne!(id_a, id_c, "different changes gave the same id");
}

async fn empty_session_has_an_id<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    run_session(&s, &session("before"), &[Insert(1)]).await;
    let id = run_session(&s, &session("empty"), &[]).await;
    assert!(!id.as_bytes().is_empty(), "an empty session's id is empty");
    assert_eq!(applied(&s).await, set(&[1]), "an empty session changed the store");
    let again = run_session(&fresh.subject().await, &session("empty-too"), &[]).await;
    assert_eq!(id, again, "two empty sessions gave different ids");
}

async fn recovering_a_committed_session_returns_its_id<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    let k = session("rec-committed");
    let changes = [Insert(1), Insert(2)];
    let first = run_session(&s, &k, &changes).await;
    // The coordinator died before recording that the session completed: it runs the
    // session again, in recovery, with the same changes.
    ok(
        s.committable().begin_recovery(&k).await,
        "begin_recovery of a committed session",
    );
    stage_all(&s, &k, &changes).await;
    let second = ok(s.committable().commit(&k).await, "commit of a recovered session");
    assert_eq!(
        second, first,
        "recovering a committed session returned another id"
    );
    assert_eq!(applied(&s).await, set(&[1, 2]));
}

async fn recovering_a_committed_session_after_a_restart<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    let k = session("rec-restart");
    let changes = [Insert(4), Remove(1)];
    let first = run_session(&s, &k, &changes).await;
    let s = restart(s).await;
    assert_eq!(applied(&s).await, set(&[4]), "a restart lost or changed a commit");
    ok(
        s.committable().begin_recovery(&k).await,
        "begin_recovery after a restart",
    );
    stage_all(&s, &k, &changes).await;
    let second = ok(s.committable().commit(&k).await, "commit after a restart");
    assert_eq!(second, first, "after a restart, recovering returned another id");
    assert_eq!(applied(&s).await, set(&[4]));
}

async fn a_committed_session_is_never_applied_again<S: Subject>(fresh: &Fresh<'_, S>) {
    // Re-applying the same changes would look the same, so recovery stages *other* changes:
    // a store that remembers the session applies none of them (its commit returns the
    // first id, or refuses the changes with an error); one that forgot applies them.
    let s = fresh.subject().await;
    let k = session("once");
    let first = run_session(&s, &k, &[Insert(1)]).await;
    let s = restart(s).await;
    ok(
        s.committable().begin_recovery(&k).await,
        "begin_recovery of a committed session",
    );
    stage_all(&s, &k, &[Insert(2), Remove(1)]).await;
    // Refusing the differing changes with an error is fine too.
    if let Ok(id) = s.committable().commit(&k).await {
        assert_eq!(id, first, "recovering a committed session returned another id");
    }
    assert_eq!(
        applied(&s).await,
        set(&[1]),
        "a session that was already committed was applied again on recovery"
    );
}

async fn recovering_an_uncommitted_session_after_a_restart_applies_it<S: Subject>(fresh: &Fresh<'_, S>) {
    let changes = [Insert(5), Insert(6)];
    let reference = run_session(&fresh.subject().await, &session("ref"), &changes).await;
    let s = fresh.subject().await;
    let k = session("rec-uncommitted");
    ok(s.committable().begin(&k).await, "begin");
    stage_all(&s, &k, &changes).await;
    let s = restart(s).await; // the crash came before commit
    assert_eq!(
        applied(&s).await,
        set(&[]),
        "an uncommitted session survived a restart"
    );
    ok(
        s.committable().begin_recovery(&k).await,
        "begin_recovery of an uncommitted session",
    );
    stage_all(&s, &k, &changes).await;
    let id = ok(
        s.committable().commit(&k).await,
        "commit of the recovered session",
    );
    assert_eq!(
        applied(&s).await,
        set(&[5, 6]),
        "the recovered session was not applied"
    );
    assert_eq!(
        id, reference,
        "the recovered session's id differs from the same changes' id"
    );
}

async fn recovering_a_cancelled_session_applies_it<S: Subject>(fresh: &Fresh<'_, S>) {
    // Another committable failed, so the coordinator cancelled this one before it
    // committed, and then retried the session in recovery.
    let s = fresh.subject().await;
    let k = session("rec-cancelled");
    ok(s.committable().begin(&k).await, "begin");
    stage_all(&s, &k, &[Insert(1)]).await;
    ok(s.committable().cancel().await, "cancel");
    ok(
        s.committable().begin_recovery(&k).await,
        "begin_recovery of a cancelled session",
    );
    stage_all(&s, &k, &[Insert(1)]).await;
    ok(
        s.committable().commit(&k).await,
        "commit of the recovered session",
    );
    assert_eq!(applied(&s).await, set(&[1]));
}

async fn recovering_an_unknown_session_is_a_fresh_start<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    let k = session("never-seen");
    ok(
        s.committable().begin_recovery(&k).await,
        "begin_recovery of an unknown session",
    );
    stage_all(&s, &k, &[Insert(8)]).await;
    ok(s.committable().commit(&k).await, "commit");
    assert_eq!(applied(&s).await, set(&[8]));
}

async fn commit_without_a_session_is_an_error<S: Subject>(fresh: &Fresh<'_, S>) {
    let s = fresh.subject().await;
    let k = session("nope");
    assert!(
        s.committable().commit(&k).await.is_err(),
        "commit without begin succeeded"
    );
    run_session(&s, &session("done"), &[Insert(1)]).await;
    assert!(
        s.committable().commit(&session("done")).await.is_err(),
        "a second commit of a finished session succeeded without a new begin"
    );
    assert_eq!(applied(&s).await, set(&[1]));
}
