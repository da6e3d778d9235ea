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

// ---------------------------------------------------------------------------------------
// Helpers.

fn key(s: &str) -> Key {
    Key::new(s).unwrap_or_else(|e| panic!("test key {s:?} is invalid: {e}"))
}

fn rec(k: &Key, value: &str) -> Record {
    Record::new(k.clone(), Bytes::copy_from_slice(value.as_bytes()))
}

fn past() -> SystemTime {
    SystemTime::now() - Duration::from_secs(60)
}

fn hour_ahead() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

fn expect_kind<T: std::fmt::Debug>(r: store_core::Result<T>, kind: ErrorKind, what: &str) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected {kind:?}, got Ok({v:?})"),
        Err(e) if e.kind() == kind => e,
        Err(e) => panic!("{what}: expected {kind:?}, got {:?}: {e}", e.kind()),
    }
}

/// Expiries equal to within a second (stores may keep them coarsely).
fn same_expiry(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let d = a
                .duration_since(b)
                .or_else(|_| b.duration_since(a))
                .unwrap_or_default();
            d <= Duration::from_secs(1)
        }
        _ => false,
    }
}

/// Puts `r` and returns it as stored: with the new version.
async fn put(s: &dyn RecordStore, r: Record) -> Record {
    let version = s
        .put(&r)
        .await
        .unwrap_or_else(|e| panic!("put {}: unexpected error: {e}", r.key));
    Record { version, ..r }
}

async fn get(s: &dyn RecordStore, k: &Key) -> Record {
    s.get(k)
        .await
        .unwrap_or_else(|e| panic!("get {k}: unexpected error: {e}"))
}

async fn listed(s: &dyn RecordStore, pattern: &str) -> Vec<String> {
    let stream = s
        .list_keys(pattern)
        .await
        .unwrap_or_else(|e| panic!("list_keys {pattern:?}: {e}"));
    match stream.try_collect::<Vec<Key>>().await {
        Ok(keys) => keys.into_iter().map(|k| k.to_string()).collect(),
        Err(e) => panic!("list_keys {pattern:?}: error while listing: {e}"),
    }
}

fn spawn_wait(
    s: &Arc<dyn RecordStore>,
    k: &Key,
    v: &Version,
) -> tokio::task::JoinHandle<Result<store_core::Result<Version>, tokio::time::error::Elapsed>> {
    let (s, k, v) = (Arc::clone(s), k.clone(), v.clone());
    tokio::spawn(async move { tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &v)).await })
}

// ---------------------------------------------------------------------------------------
// Single operations.

async fn create_then_get_round_trips(s: Arc<dyn RecordStore>) {
    for (name, value, expiry) in [
        ("empty", Bytes::new(), None),
        ("text", Bytes::from_static(b"hello"), None),
        ("binary", Bytes::from((0..=255u8).collect::<Vec<_>>()), None),
        ("expiring", Bytes::from_static(b"lease"), Some(hour_ahead())),
    ] {
        let k = key(&format!("round-trip/{name}"));
        let mut r = Record::new(k.clone(), value.clone());
        r.expires_at = expiry;
        let v = s.create(&r).await.unwrap_or_else(|e| panic!("create {k}: {e}"));
        assert!(!v.is_empty(), "create {k}: returned the empty version");
        let got = get(&*s, &k).await;
        assert_eq!(got.key, k, "get {k}: record names another key");
        assert_eq!(got.value, value, "get {k}: value differs from the created one");
        assert_eq!(got.version, v, "get {k}: version differs from the create's");
        assert!(
            same_expiry(got.expires_at, expiry),
            "get {k}: expiry {:?}, created with {expiry:?}",
            got.expires_at
        );
    }
}

async fn create_existing_is_already_exists_with_version(s: Arc<dyn RecordStore>) {
    let k = key("create/once");
    let v1 = s.create(&rec(&k, "first")).await.unwrap();
    let e = expect_kind(
        s.create(&rec(&k, "second")).await,
        ErrorKind::AlreadyExists,
        "create of an existing key",
    );
    match &e {
        Error::AlreadyExists { version, .. } => {
            assert_eq!(version, &v1, "AlreadyExists must carry the existing version")
        }
        other => panic!("{other}"),
    }
    assert!(
        e.to_string().contains("create/once"),
        "error does not name the key: {e}"
    );
    assert_eq!(
        get(&*s, &k).await.value,
        "first",
        "a failed create changed the record"
    );
    s.delete(&k).await.unwrap();
    s.create(&rec(&k, "again"))
        .await
        .unwrap_or_else(|e| panic!("create {k} after delete: {e}"));
    assert_eq!(get(&*s, &k).await.value, "again");
}

async fn missing_key_errors_name_the_key(s: Arc<dyn RecordStore>) {
    let k = key("no/such/record");
    let named = |e: Error, what: &str| {
        assert!(
            e.to_string().contains("no/such/record"),
            "{what}: error does not name the key: {e}"
        )
    };
    named(expect_kind(s.get(&k).await, ErrorKind::NotFound, "get"), "get");
    named(
        expect_kind(s.delete(&k).await, ErrorKind::NotFound, "delete"),
        "delete",
    );
    named(
        expect_kind(
            s.cas_by_version(&rec(&k, "x").with_version(Version::from(1)))
                .await,
            ErrorKind::NotFound,
            "cas_by_version of an absent key",
        ),
        "cas_by_version",
    );
    named(
        expect_kind(
            tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &Version::from(1)))
                .await
                .expect("wait on an absent key must return at once"),
            ErrorKind::NotFound,
            "wait_for_version_change on an absent key",
        ),
        "wait_for_version_change",
    );
    // A parent "directory" of an existing record is not itself a record.
    put(&*s, rec(&key("parent/child"), "x")).await;
    expect_kind(
        s.get(&key("parent")).await,
        ErrorKind::NotFound,
        "get of a key's parent",
    );
}

async fn get_many_is_aligned_with_the_input(s: Arc<dyn RecordStore>) {
    let a = put(&*s, rec(&key("many/a"), "A")).await;
    let c = put(&*s, rec(&key("many/c"), "C")).await;
    put(&*s, rec(&key("many/gone"), "G").with_expiry(past())).await;
    let keys = [
        key("many/c"),
        key("many/b"),
        key("many/a"),
        key("many/gone"),
        key("many/c"),
    ];
    let got = s.get_many(&keys).await.expect("get_many");
    assert_eq!(got.len(), keys.len(), "get_many must return one entry per key");
    let summary: Vec<Option<(String, Version)>> = got
        .into_iter()
        .map(|r| r.map(|r| (String::from_utf8_lossy(&r.value).into_owned(), r.version)))
        .collect();
    assert_eq!(
        summary,
        [
            Some(("C".to_owned(), c.version.clone())),
            None,
            Some(("A".to_owned(), a.version)),
            None,
            Some(("C".to_owned(), c.version)),
        ],
        "get_many [c, missing, a, expired, c]"
    );
    assert!(s.get_many(&[]).await.expect("get_many of nothing").is_empty());
}

async fn put_overwrites_and_ignores_the_input_version(s: Arc<dyn RecordStore>) {
    let k = key("put/over");
    let absent = put(&*s, rec(&k, "one").with_version(Version::parse("bogus"))).await;
    assert!(!absent.version.is_empty(), "put returned the empty version");
    assert_eq!(absent.value, "one");
    let second = put(&*s, rec(&k, "two").with_version(Version::parse("bogus"))).await;
    assert_ne!(
        second.version, absent.version,
        "overwrite did not change the version"
    );
    let got = get(&*s, &k).await;
    assert_eq!(
        (got.value, got.version),
        (Bytes::from_static(b"two"), second.version.clone())
    );
    let same = put(&*s, rec(&k, "two")).await;
    assert_ne!(
        same.version, second.version,
        "identical content must still get a new version"
    );
}

async fn put_many_returns_aligned_versions(s: Arc<dyn RecordStore>) {
    let keys = [key("pm/x"), key("pm/y"), key("pm/z")];
    let versions = s
        .put_many(&keys.iter().map(|k| rec(k, k.as_str())).collect::<Vec<_>>())
        .await
        .expect("put_many");
    assert_eq!(versions.len(), 3, "put_many must return one version per record");
    for (k, v) in keys.iter().zip(&versions) {
        let got = get(&*s, k).await;
        assert_eq!(&got.version, v, "put_many version of {k}");
        assert_eq!(got.value, k.as_str(), "put_many value of {k}");
    }
    assert!(
        s.put_many(&Vec::new())
            .await
            .expect("put_many of nothing")
            .is_empty()
    );
}

async fn cas_by_version_replaces_value_and_expiry(s: Arc<dyn RecordStore>) {
    let k = key("cas/one");
    let first = put(&*s, rec(&k, "one").with_expiry(hour_ahead())).await;
    let second = s
        .cas_by_version(&rec(&k, "two").with_version(first.version.clone()))
        .await
        .unwrap_or_else(|e| panic!("cas from the current version: {e}"));
    assert_ne!(second, first.version, "cas did not change the version");
    let got = get(&*s, &k).await;
    assert_eq!(got.value, "two");
    assert_eq!(got.version, second, "cas returned a version get does not show");
    assert_eq!(got.expires_at, None, "cas without expiry must remove the expiry");

    let e = expect_kind(
        s.cas_by_version(&rec(&k, "stale").with_version(first.version.clone()))
            .await,
        ErrorKind::Conflict,
        "cas from a stale version",
    );
    assert!(
        e.to_string().contains("cas/one"),
        "error does not name the key: {e}"
    );
    if let Error::Conflict { expected, actual, .. } = &e {
        assert_eq!(expected.as_ref(), Some(&first.version), "Conflict.expected");
        if let Some(actual) = actual {
            assert_eq!(actual, &second, "Conflict.actual must be the current version");
        }
    }
    expect_kind(
        s.cas_by_version(&rec(&k, "bogus")).await,
        ErrorKind::Conflict,
        "cas from the empty version",
    );
    assert_eq!(get(&*s, &k).await.value, "two", "a failed cas changed the record");

    let at = hour_ahead();
    let third = s
        .cas_by_version(&rec(&k, "three").with_version(second).with_expiry(at))
        .await
        .unwrap();
    let got = get(&*s, &k).await;
    assert!(
        same_expiry(got.expires_at, Some(at)),
        "cas must set the new expiry: {:?} vs {at:?}",
        got.expires_at
    );
    assert_eq!(got.version, third);
}

async fn delete_removes_the_record(s: Arc<dyn RecordStore>) {
    let k = key("del/me");
    put(&*s, rec(&k, "x")).await;
    s.delete(&k).await.unwrap_or_else(|e| panic!("delete {k}: {e}"));
    expect_kind(s.get(&k).await, ErrorKind::NotFound, "get after delete");
    expect_kind(s.delete(&k).await, ErrorKind::NotFound, "second delete");
    assert!(
        listed(&*s, "del/*").await.is_empty(),
        "a deleted key is still listed"
    );
}

async fn versions_never_repeat(s: Arc<dyn RecordStore>) {
    let k = key("aba");
    let mut seen = HashSet::new();
    let mut current: Option<Version> = None;
    for round in 0..30 {
        let v = match round % 3 {
            0 => s
                .create(&rec(&k, "same"))
                .await
                .unwrap_or_else(|e| panic!("create round {round}: {e}")),
            1 => put(&*s, rec(&k, "same")).await.version,
            _ => {
                let from = current.clone().expect("a version from the previous round");
                s.cas_by_version(&rec(&k, "same").with_version(from))
                    .await
                    .unwrap_or_else(|e| panic!("cas round {round}: {e}"))
            }
        };
        assert!(
            seen.insert(v.clone()),
            "round {round}: version {v} was issued before for {k}"
        );
        current = Some(v);
        if round % 3 == 2 {
            s.delete(&k).await.unwrap();
            current = None;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Expiry.

async fn expired_records_are_absent_everywhere(s: Arc<dyn RecordStore>) {
    let k = key("expired/a");
    let r = put(&*s, rec(&k, "old").with_expiry(past())).await;
    expect_kind(s.get(&k).await, ErrorKind::NotFound, "get of an expired record");
    let many = s.get_many(std::slice::from_ref(&k)).await.unwrap();
    assert!(many[0].is_none(), "get_many shows an expired record");
    expect_kind(
        s.cas_by_version(&rec(&k, "new").with_version(r.version.clone()))
            .await,
        ErrorKind::NotFound,
        "cas on an expired record (even with its version)",
    );
    expect_kind(
        s.delete(&k).await,
        ErrorKind::NotFound,
        "delete of an expired record",
    );
    let waited = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &r.version))
        .await
        .expect("wait on an expired record must return at once");
    expect_kind(waited, ErrorKind::NotFound, "wait on an expired record");

    put(&*s, rec(&key("expired/b"), "old").with_expiry(past())).await;
    put(&*s, rec(&key("expired/live"), "live").with_expiry(hour_ahead())).await;
    assert_eq!(
        listed(&*s, "expired/*").await,
        ["expired/live"],
        "listing shows expired records"
    );

    let b = key("expired/b");
    let v = s
        .create(&rec(&b, "reborn"))
        .await
        .unwrap_or_else(|e| panic!("create over an expired record must succeed: {e}"));
    let got = get(&*s, &b).await;
    assert_eq!(
        (got.value, got.version, got.expires_at),
        (Bytes::from_static(b"reborn"), v, None)
    );

    // Writing an already-expired record over a live one makes it absent.
    let live = key("expired/live");
    put(&*s, rec(&live, "bye").with_expiry(past())).await;
    expect_kind(
        s.get(&live).await,
        ErrorKind::NotFound,
        "get after put with a past expiry",
    );
    assert_eq!(listed(&*s, "expired/*").await, ["expired/b"]);
}

async fn expiry_passes_in_real_time(s: Arc<dyn RecordStore>) {
    const TTL: Duration = Duration::from_millis(1000);
    let soon = SystemTime::now() + TTL;
    let doomed = put(&*s, rec(&key("ttl/doomed"), "d").with_expiry(soon)).await;
    let renewed = put(&*s, rec(&key("ttl/renewed"), "r").with_expiry(soon)).await;
    let forever = put(&*s, rec(&key("ttl/forever"), "f").with_expiry(soon)).await;
    let waiter = spawn_wait(&s, &doomed.key, &doomed.version);
    s.cas_by_version(&renewed.clone().with_expiry(hour_ahead()))
        .await
        .expect("renew by cas");
    s.cas_by_version(&Record {
        expires_at: None,
        ..forever.clone()
    })
    .await
    .expect("cas to no expiry");
    assert_eq!(
        get(&*s, &doomed.key).await.value,
        "d",
        "record gone before its expiry"
    );
    assert!(
        !waiter.is_finished(),
        "wait returned before the record changed or expired"
    );

    let outcome = waiter
        .await
        .unwrap()
        .expect("a waiter must wake when the record expires");
    expect_kind(
        outcome,
        ErrorKind::NotFound,
        "wait on a record that expires while waiting",
    );
    // The waiter may wake a little before the store's own check agrees; give it the margin
    // a coarse store needs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    expect_kind(s.get(&doomed.key).await, ErrorKind::NotFound, "get after expiry");
    assert_eq!(
        get(&*s, &renewed.key).await.value,
        "r",
        "a record renewed by cas expired"
    );
    assert_eq!(
        get(&*s, &forever.key).await.value,
        "f",
        "a record made permanent by cas expired"
    );
    assert_eq!(listed(&*s, "ttl/**").await, ["ttl/forever", "ttl/renewed"]);
    s.create(&rec(&doomed.key, "again"))
        .await
        .expect("create over a record that expired in real time");
}

// ---------------------------------------------------------------------------------------
// Waiting for changes.

async fn wait_returns_at_once_when_already_changed(s: Arc<dyn RecordStore>) {
    let k = key("wait/now");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    let v2 = put(&*s, rec(&k, "2")).await.version;
    let got = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &v1))
        .await
        .expect("wait from a stale version must return at once");
    assert_eq!(got.unwrap(), v2);
    let got = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &Version::empty()))
        .await
        .expect("wait from the empty version must return at once");
    assert_eq!(got.unwrap(), v2);
}

async fn wait_wakes_on_put_cas_and_delete(s: Arc<dyn RecordStore>) {
    let k = key("wait/wake");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    let waiting = spawn_wait(&s, &k, &v1);
    tokio::time::sleep(SETTLE).await;
    assert!(
        !waiting.is_finished(),
        "wait returned though the version had not changed"
    );
    let v2 = put(&*s, rec(&k, "2")).await.version;
    let got = waiting.await.unwrap().expect("wait was not woken by a put");
    assert_eq!(got.unwrap(), v2);

    let waiting = spawn_wait(&s, &k, &v2);
    tokio::time::sleep(SETTLE).await;
    let v3 = s.cas_by_version(&rec(&k, "3").with_version(v2)).await.unwrap();
    let got = waiting.await.unwrap().expect("wait was not woken by a cas");
    assert_eq!(got.unwrap(), v3);

    let waiting = spawn_wait(&s, &k, &v3);
    tokio::time::sleep(SETTLE).await;
    s.delete(&k).await.unwrap();
    let got = waiting.await.unwrap().expect("wait was not woken by a delete");
    expect_kind(got, ErrorKind::NotFound, "wait on a record deleted while waiting");

    // Replaced by an already-expired record: that is a deletion for the waiter.
    let v4 = put(&*s, rec(&k, "4")).await.version;
    let waiting = spawn_wait(&s, &k, &v4);
    tokio::time::sleep(SETTLE).await;
    put(&*s, rec(&k, "5").with_expiry(past())).await;
    let got = waiting
        .await
        .unwrap()
        .expect("wait was not woken by an expired put");
    expect_kind(
        got,
        ErrorKind::NotFound,
        "wait on a record replaced by an expired one",
    );
}

async fn dropped_waits_leave_the_store_usable(s: Arc<dyn RecordStore>) {
    let k = key("wait/dropped");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    for _ in 0..20 {
        let r = tokio::time::timeout(Duration::from_millis(2), s.wait_for_version_change(&k, &v1)).await;
        assert!(r.is_err(), "wait returned without a change");
    }
    let waiting = spawn_wait(&s, &k, &v1);
    tokio::time::sleep(SETTLE).await;
    let v2 = put(&*s, rec(&k, "2")).await.version;
    assert_eq!(
        waiting.await.unwrap().expect("live waiter not woken").unwrap(),
        v2
    );
}

async fn concurrent_waiters_all_woken(s: Arc<dyn RecordStore>) {
    let k = key("wait/many");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    let waiters: Vec<_> = (0..32).map(|_| spawn_wait(&s, &k, &v1)).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v2 = put(&*s, rec(&k, "2")).await.version;
    for (i, w) in waiters.into_iter().enumerate() {
        let got = w
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("waiter {i} of 32 was not woken"));
        assert_eq!(got.unwrap(), v2, "waiter {i}");
    }
}

// ---------------------------------------------------------------------------------------
// Listing.

async fn list_keys_matches_globs(s: Arc<dyn RecordStore>) {
    let keys = [
        "logs/2025-12-31",
        "logs/2026-01-01",
        "logs/2026-01-02/part",
        "logs/2026x",
        "logs/a",
        "logs/b",
        "logs/c",
        "logs/lit*",
        "logs/litx",
        "logs/x",
        "other/a",
        "other/b/c",
        "top",
    ];
    // Written out of order: listing must sort.
    for k in keys.iter().rev() {
        put(&*s, rec(&key(k), k)).await;
    }
    let all: Vec<&str> = keys.to_vec();
    let cases: &[(&str, &[&str])] = &[
        ("**", &all),
        ("*", &all),
        ("logs/2026-*", &["logs/2026-01-01", "logs/2026-01-02/part"]),
        ("logs/*", &all[..10]),
        ("*/c", &["logs/c", "other/b/c"]),
        ("other/**", &["other/a", "other/b/c"]),
        ("logs/?", &["logs/a", "logs/b", "logs/c", "logs/x"]),
        ("logs/[abc]", &["logs/a", "logs/b", "logs/c"]),
        ("logs/[a-b]", &["logs/a", "logs/b"]),
        ("logs/[!a-l]", &["logs/x"]),
        ("{top,other/a}", &["other/a", "top"]),
        ("logs/{a,x}", &["logs/a", "logs/x"]),
        ("logs/lit\\*", &["logs/lit*"]),
        ("logs/lit?", &["logs/lit*", "logs/litx"]),
        ("logs", &[]),
        ("top", &["top"]),
        ("to", &[]),
        ("nothing/*", &[]),
    ];
    for (pattern, want) in cases {
        assert_eq!(listed(&*s, pattern).await, *want, "list_keys {pattern:?}");
    }
}

async fn list_keys_rejects_invalid_patterns(s: Arc<dyn RecordStore>) {
    put(&*s, rec(&key("x"), "x")).await;
    for bad in ["[", "logs/{a,b", "a[z-a]"] {
        let e = match s.list_keys(bad).await {
            Ok(stream) => match stream.try_collect::<Vec<_>>().await {
                Ok(keys) => panic!("list_keys {bad:?}: expected InvalidPattern, got {keys:?}"),
                Err(e) => e,
            },
            Err(e) => e,
        };
        match &e {
            Error::InvalidPattern { pattern, .. } => assert_eq!(pattern, bad, "InvalidPattern names it"),
            other => panic!("list_keys {bad:?}: expected InvalidPattern, got {other}"),
        }
        assert!(e.to_string().contains(bad), "{e}");
    }
}

/// Checks that one record that cannot be decoded does not end a listing: with records `a`
/// and `c` written through `store` and garbage planted at `b` by `plant_garbage` (through
/// the raw backend underneath), `list_keys("*")` yields `Ok(a)`, then one `Corrupt` error
/// naming `b` and the operation `list_keys`, then `Ok(c)`, in that order.
///
/// Not part of [`CHECKS`]: the suite sees only the `RecordStore` trait, and planting
/// garbage needs the store underneath. Call it with a fresh, empty store.
///
/// ```no_run
/// # use store_core::{Backend, BackendExt, Key, RecordStore};
/// // In store-record's tests, `records` is `Records::new(raw.clone())` over a fresh store.
/// # async fn demo(records: impl RecordStore, raw: impl Backend) {
/// store_testkit::records::listing_goes_on_past_a_corrupt_record(&records, |k: Key| async move {
///     raw.put_bytes(&k, "not a record").await.unwrap();
/// })
/// .await;
/// # }
/// ```
pub async fn listing_goes_on_past_a_corrupt_record<R, P, Fut>(store: &R, plant_garbage: P)
where
    R: RecordStore,
    P: FnOnce(Key) -> Fut,
    Fut: Future<Output = ()>,
{
    let check = async {
        put(store, rec(&key("a"), "a")).await;
        plant_garbage(key("b")).await;
        put(store, rec(&key("c"), "c")).await;
        let stream = store
            .list_keys("*")
            .await
            .unwrap_or_else(|e| panic!("list_keys \"*\": {e}"));
        let items: Vec<store_core::Result<Key>> = futures::StreamExt::collect(stream).await;
        let shown: Vec<String> = items
            .iter()
            .map(|item| match item {
                Ok(k) => format!("Ok({k})"),
                Err(e) => format!("Err({e})"),
            })
            .collect();
        let [Ok(a), Err(b), Ok(c)] = &items[..] else {
            panic!("list_keys \"*\" over a, corrupt b, c: expected Ok(a), Err(b), Ok(c), got {shown:?}");
        };
        assert_eq!((a.as_str(), c.as_str()), ("a", "c"), "{shown:?}");
        assert_eq!(b.kind(), ErrorKind::Corrupt, "{b}");
        let msg = b.to_string();
        assert!(
            msg.contains("\"b\"") && msg.contains("list_keys"),
            "the error must name the key and the operation: {msg}"
        );
    };
    if tokio::time::timeout(CHECK_TIME_LIMIT, check).await.is_err() {
        panic!("listing_goes_on_past_a_corrupt_record: timed out after {CHECK_TIME_LIMIT:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Concurrency.

async fn concurrent_cas_has_one_winner(s: Arc<dyn RecordStore>) {
    // As wide as the create race. Wider races say little more, and servers that serialise
    // contended conditional writes to one key (SeaweedFS 4.48 answers some of 64 only after
    // more than 30 s) would fail on their request timeouts, not on the property.
    const TASKS: usize = 16;
    let k = key("race/cas");
    let from = put(&*s, rec(&k, "start")).await.version;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (s, k, from, barrier) = (Arc::clone(&s), k.clone(), from.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                s.cas_by_version(&rec(&k, &format!("writer {i}")).with_version(from))
                    .await
                    .map(|v| (i, v))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(w) => winners.push(w),
            Err(e) if e.is_conflict() => {}
            Err(e) => panic!("cas race: expected Conflict for the losers, got {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{} of {TASKS} concurrent cas calls succeeded",
        winners.len()
    );
    let (i, v) = &winners[0];
    let got = get(&*s, &k).await;
    assert_eq!((got.value, &got.version), (Bytes::from(format!("writer {i}")), v));
}

async fn concurrent_creates_have_one_winner(s: Arc<dyn RecordStore>) {
    for round in 0..4 {
        let k = key(&format!("race/create-{round}"));
        if round % 2 == 1 {
            // Racing over an expired record: still exactly one winner.
            put(&*s, rec(&k, "expired").with_expiry(past())).await;
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (s, k, barrier) = (Arc::clone(&s), k.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.create(&rec(&k, &format!("creator {i}"))).await.map(|v| (i, v))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(w) => winners.push(w),
                Err(e) if e.is_already_exists() => {}
                Err(e) => panic!("create race round {round}: unexpected error {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of 16 concurrent creates succeeded",
            winners.len()
        );
        let (i, v) = &winners[0];
        let got = get(&*s, &k).await;
        assert_eq!(
            (got.value, &got.version),
            (Bytes::from(format!("creator {i}")), v)
        );
    }
}

async fn concurrent_cas_increments_are_exact(s: Arc<dyn RecordStore>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 100;
    let k = key("race/counter");
    put(&*s, rec(&k, "0")).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (s, k) = (Arc::clone(&s), k.clone());
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    loop {
                        let cur = s.get(&k).await.expect("get counter");
                        let n: u64 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                        match s
                            .cas_by_version(&rec(&k, &(n + 1).to_string()).with_version(cur.version))
                            .await
                        {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => {}
                            Err(e) => panic!("cas counter: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        get(&*s, &k).await.value,
        (TASKS * INCREMENTS).to_string(),
        "lost updates"
    );
}

// ---------------------------------------------------------------------------------------
// Model-based property test.

const MODEL_KEYS: &[&str] = &["a", "b", "a/b", "a/c", "ab", "b/a/c"];

/// Glob patterns (after the case's key prefix) and the keys (after the prefix) they match.
/// Whether a key (after the case's prefix) matches a model pattern.
type Matches = fn(&str) -> bool;

const MODEL_PATTERNS: &[(&str, Matches)] = &[
    ("*", |_| true),
    ("a*", |k| k.starts_with('a')),
    ("a/?", |k| k.len() == 3 && k.starts_with("a/")),
    ("[ab]", |k| k == "a" || k == "b"),
    ("{a,b}/*", |k| k.starts_with("a/") || k.starts_with("b/")),
    ("*c", |k| k.ends_with('c')),
    ("b/**", |k| k.starts_with("b/")),
];

#[derive(Debug, Clone, Copy)]
enum Expiry {
    Never,
    /// Already passed when written: the record is absent at once.
    Past,
    /// An hour ahead: live for the whole case.
    Later,
}

impl Expiry {
    fn at(self) -> Option<SystemTime> {
        match self {
            Expiry::Never => None,
            Expiry::Past => Some(past()),
            Expiry::Later => Some(hour_ahead()),
        }
    }
}

#[derive(Debug, Clone)]
enum VersionPick {
    Current,
    /// Some earlier version of any key (by index into the history), or a never-issued one.
    Old(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u8, Expiry),
    Put(usize, u8, Expiry),
    PutMany(Vec<(usize, u8, Expiry)>),
    Cas(usize, u8, Expiry, VersionPick),
    Delete(usize),
    Get(usize),
    GetMany(Vec<usize>),
    List(usize),
    WaitFrom(usize, VersionPick),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0..MODEL_KEYS.len();
    let expiry = prop_oneof![
        3 => Just(Expiry::Never),
        1 => Just(Expiry::Past),
        1 => Just(Expiry::Later),
    ];
    let pick = prop_oneof![
        2 => Just(VersionPick::Current),
        1 => any::<usize>().prop_map(VersionPick::Old)
    ];
    let write = (k.clone(), any::<u8>(), expiry.clone());
    prop_oneof![
        2 => write.clone().prop_map(|(k, v, e)| Op::Create(k, v, e)),
        3 => write.clone().prop_map(|(k, v, e)| Op::Put(k, v, e)),
        1 => proptest::collection::vec(write, 0..4).prop_map(Op::PutMany),
        3 => (k.clone(), any::<u8>(), expiry, pick.clone()).prop_map(|(k, v, e, p)| Op::Cas(k, v, e, p)),
        2 => k.clone().prop_map(Op::Delete),
        2 => k.clone().prop_map(Op::Get),
        1 => proptest::collection::vec(k.clone(), 0..5).prop_map(Op::GetMany),
        2 => (0..MODEL_PATTERNS.len()).prop_map(Op::List),
        1 => (k, pick).prop_map(|(k, p)| Op::WaitFrom(k, p)),
    ]
}

/// A live record in the model: value, version, whether it has an expiry.
type Live = (Bytes, Version, bool);

/// Every version issued so far, and each key's, to catch reuse.
#[derive(Default)]
struct Issued {
    history: Vec<Version>,
    per_key: HashSet<(String, Version)>,
}

impl Issued {
    /// Records a successful write of `k` in the model.
    fn wrote(
        &mut self,
        model: &mut BTreeMap<String, Live>,
        k: String,
        value: u8,
        e: Expiry,
        v: Version,
    ) -> Result<(), String> {
        if !self.per_key.insert((k.clone(), v.clone())) {
            return Err(format!("version {v} was issued before for {k}"));
        }
        self.history.push(v.clone());
        match e {
            Expiry::Past => model.remove(&k),
            Expiry::Never | Expiry::Later => {
                model.insert(k, (Bytes::from(vec![value]), v, matches!(e, Expiry::Later)))
            }
        };
        Ok(())
    }

    fn old(&self, h: usize) -> Version {
        if self.history.is_empty() {
            Version::parse("never-issued")
        } else {
            self.history[h % self.history.len()].clone()
        }
    }
}

/// Runs one sequence of operations against the store (under a fresh key prefix) and a
/// `BTreeMap` of live records, comparing every result.
async fn run_model(s: &dyn RecordStore, prefix: &str, ops: Vec<Op>) -> Result<(), String> {
    let mut model: BTreeMap<String, Live> = BTreeMap::new();
    let mut issued = Issued::default();
    let full = |i: usize| format!("{prefix}{}", MODEL_KEYS[i]);
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = |what: String| format!("step {step} {op:?}: {what}");
        macro_rules! fail {
            ($($t:tt)*) => { return Err(ctx(format!($($t)*))) };
        }
        match &op {
            Op::Create(i, value, e) => {
                let k = full(*i);
                let r = Record {
                    expires_at: e.at(),
                    ..Record::new(key(&k), vec![*value])
                };
                match (model.get(&k).cloned(), s.create(&r).await) {
                    (None, Ok(v)) => issued.wrote(&mut model, k, *value, *e, v).map_err(ctx)?,
                    (Some((_, cur, _)), Err(Error::AlreadyExists { version, .. })) if version == cur => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::Put(i, value, e) => {
                let k = full(*i);
                let r = Record {
                    expires_at: e.at(),
                    ..Record::new(key(&k), vec![*value])
                };
                match s.put(&r).await {
                    Ok(v) => issued.wrote(&mut model, k, *value, *e, v).map_err(ctx)?,
                    Err(e) => fail!("put failed: {e}"),
                }
            }
            Op::PutMany(writes) => {
                let records: Vec<Record> = writes
                    .iter()
                    .map(|(i, value, e)| Record {
                        expires_at: e.at(),
                        ..Record::new(key(&full(*i)), vec![*value])
                    })
                    .collect();
                let versions = s
                    .put_many(&records)
                    .await
                    .map_err(|e| ctx(format!("put_many: {e}")))?;
                if versions.len() != writes.len() {
                    fail!("{} versions for {} records", versions.len(), writes.len());
                }
                for ((i, value, e), v) in writes.iter().zip(versions) {
                    issued.wrote(&mut model, full(*i), *value, *e, v).map_err(ctx)?;
                }
            }
            Op::Cas(i, value, e, pick) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v, _)| v.clone());
                let from = match (pick, &current) {
                    (VersionPick::Current, Some(v)) => v.clone(),
                    (VersionPick::Current, None) => Version::parse("never-issued"),
                    (VersionPick::Old(h), _) => issued.old(*h),
                };
                let r = Record {
                    expires_at: e.at(),
                    ..Record::new(key(&k), vec![*value]).with_version(from.clone())
                };
                let got = s.cas_by_version(&r).await;
                match (&current, got) {
                    (Some(cur), Ok(v)) if *cur == from => {
                        issued.wrote(&mut model, k, *value, *e, v).map_err(ctx)?
                    }
                    (Some(cur), Err(e)) if *cur != from && e.is_conflict() => {}
                    (None, Err(e)) if e.is_not_found() => {}
                    (cur, got) => fail!("current {cur:?}, from {from:?}: got {got:?}"),
                }
            }
            Op::Delete(i) => {
                let k = full(*i);
                match (model.remove(&k), s.delete(&key(&k)).await) {
                    (Some(_), Ok(())) => {}
                    (None, Err(e)) if e.is_not_found() => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::Get(i) => {
                let k = full(*i);
                match (model.get(&k), s.get(&key(&k)).await) {
                    (None, Err(e)) if e.is_not_found() => {}
                    (Some((value, v, expiring)), Ok(r))
                        if r.value == *value && r.version == *v && r.expires_at.is_some() == *expiring => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::GetMany(is) => {
                let keys: Vec<Key> = is.iter().map(|i| key(&full(*i))).collect();
                let got = s
                    .get_many(&keys)
                    .await
                    .map_err(|e| ctx(format!("get_many: {e}")))?;
                let got: Vec<Option<(Bytes, Version)>> =
                    got.into_iter().map(|r| r.map(|r| (r.value, r.version))).collect();
                let want: Vec<Option<(Bytes, Version)>> = keys
                    .iter()
                    .map(|k| {
                        model
                            .get(k.as_str())
                            .map(|(value, v, _)| (value.clone(), v.clone()))
                    })
                    .collect();
                if got != want {
                    fail!("get_many {got:?} != model {want:?}");
                }
            }
            Op::List(p) => {
                let (glob, matches) = MODEL_PATTERNS[*p];
                let want: Vec<String> = model
                    .keys()
                    .filter(|k| matches(&k[prefix.len()..]))
                    .cloned()
                    .collect();
                let got = listed(s, &format!("{prefix}{glob}")).await;
                if got != want {
                    fail!("listing {got:?} != model {want:?}");
                }
            }
            Op::WaitFrom(i, pick) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v, _)| v.clone());
                let from = match pick {
                    VersionPick::Old(h) => issued.old(*h),
                    VersionPick::Current => Version::parse("never-issued"),
                };
                if current.as_ref() == Some(&from) {
                    continue; // would (correctly) block
                }
                let got = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&key(&k), &from))
                    .await
                    .map_err(|_| ctx("wait did not return at once".to_owned()))?;
                match (current, got) {
                    (Some(cur), Ok(v)) if cur == v => {}
                    (None, Err(e)) if e.is_not_found() => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
        }
    }
    Ok(())
}

async fn model_based_random_operations(s: Arc<dyn RecordStore>) {
    let case = std::sync::atomic::AtomicU64::new(0);
    prop::check(
        "records::model_based_random_operations",
        prop::cases(48),
        proptest::collection::vec(op_strategy(), 1..40),
        |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let s = Arc::clone(&s);
            async move { run_model(&*s, &format!("model/{n}/"), ops).await }
        },
    )
    .await;
}
