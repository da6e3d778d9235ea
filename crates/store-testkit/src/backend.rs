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

fn key(s: &str) -> Key {
    Key::new(s).unwrap_or_else(|e| panic!("test key {s:?} is invalid: {e}"))
}

async fn get_all(b: &dyn Backend, k: &Key) -> Bytes {
    match b.get_bytes(k).await {
        Ok(data) => data,
        Err(e) => panic!("get {k}: unexpected error: {e}"),
    }
}

async fn put(b: &dyn Backend, k: &Key, data: impl Into<Bytes>) -> Meta {
    match b.put(k, data.into(), PutOptions::default()).await {
        Ok(m) => m,
        Err(e) => panic!("put {k}: unexpected error: {e}"),
    }
}

fn expect_kind<T: std::fmt::Debug>(r: store_core::Result<T>, kind: ErrorKind, what: &str) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected {kind:?}, got Ok({v:?})"),
        Err(e) if e.kind() == kind => e,
        Err(e) => panic!("{what}: expected {kind:?}, got {:?}: {e}", e.kind()),
    }
}

async fn listed(b: &dyn Backend, opts: ListOptions) -> Vec<String> {
    match b.list(opts.clone()).try_collect::<Vec<_>>().await {
        Ok(metas) => metas.into_iter().map(|m| m.key.to_string()).collect(),
        Err(e) => panic!("list {opts:?}: unexpected error: {e}"),
    }
}

/// Deterministic, position-dependent content, so a misplaced chunk is noticed.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

async fn put_get_round_trip(b: Arc<dyn Backend>) {
    for (name, data) in [
        ("empty", Bytes::new()),
        ("one", Bytes::from_static(b"x")),
        ("binary", Bytes::from((0..=255u8).collect::<Vec<_>>())),
        ("one-mib", pattern(1 << 20, 7)),
    ] {
        let k = key(&format!("round-trip/{name}"));
        let meta = put(&*b, &k, data.clone()).await;
        assert_eq!(meta.key, k, "put {k}: returned meta names another key");
        assert_eq!(meta.size, data.len() as u64, "put {k}: returned size");
        let obj = b
            .get(&k, GetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert_eq!(
            obj.meta.version, meta.version,
            "get {k}: version differs from the put's"
        );
        assert_eq!(obj.range, 0..data.len() as u64, "get {k}: range of a whole read");
        let got = obj.bytes().await.unwrap_or_else(|e| panic!("get {k}: body: {e}"));
        assert!(
            got == data,
            "get {k}: content differs from what was put ({} vs {} bytes)",
            got.len(),
            data.len()
        );
    }
}

async fn overwrite_replaces_and_changes_version(b: Arc<dyn Backend>) {
    let k = key("overwrite");
    let m1 = put(&*b, &k, "first version, longer").await;
    let m2 = put(&*b, &k, "second").await;
    assert_ne!(m1.version, m2.version, "overwrite {k}: version did not change");
    assert_eq!(
        get_all(&*b, &k).await,
        "second",
        "overwrite {k}: old content still visible"
    );
    assert_eq!(
        b.head(&k).await.unwrap().size,
        6,
        "overwrite {k}: size not updated"
    );
    let m3 = put(&*b, &k, "second").await;
    assert_ne!(
        m2.version, m3.version,
        "rewriting identical content must still make a new version"
    );
}

async fn head_agrees_with_get(b: Arc<dyn Backend>) {
    let k = key("dir/head");
    let m = put(&*b, &k, "12345").await;
    let h = b.head(&k).await.unwrap_or_else(|e| panic!("head {k}: {e}"));
    assert_eq!(
        (h.key.clone(), h.size, h.version.clone()),
        (k.clone(), 5, m.version.clone())
    );
    let g = b.get(&k, GetOptions::default()).await.unwrap();
    assert_eq!(g.meta.version, h.version);
    assert_eq!(g.meta.size, h.size);
}

async fn missing_key_errors_name_the_key(b: Arc<dyn Backend>) {
    let k = key("no/such/key");
    let e = expect_kind(
        b.get(&k, GetOptions::default()).await,
        ErrorKind::NotFound,
        "get of a missing key",
    );
    assert!(
        e.to_string().contains("no/such/key"),
        "error does not name the key: {e}"
    );
    let e = expect_kind(b.head(&k).await, ErrorKind::NotFound, "head of a missing key");
    assert!(
        e.to_string().contains("no/such/key"),
        "error does not name the key: {e}"
    );
    let e = expect_kind(
        b.delete(&k, DeleteOptions::default()).await,
        ErrorKind::NotFound,
        "delete of a missing key",
    );
    assert!(
        e.to_string().contains("no/such/key"),
        "error does not name the key: {e}"
    );
    // A parent "directory" of an existing key is not itself an object.
    put(&*b, &key("parent/child"), "x").await;
    expect_kind(
        b.head(&key("parent")).await,
        ErrorKind::NotFound,
        "head of a key's parent",
    );
    expect_kind(
        b.get(&key("parent"), GetOptions::default()).await,
        ErrorKind::NotFound,
        "get of a key's parent",
    );
}

async fn create_is_exclusive(b: Arc<dyn Backend>) {
    let k = key("create/once");
    let m = b
        .create(&k, "first")
        .await
        .unwrap_or_else(|e| panic!("create {k} when absent: {e}"));
    let e = expect_kind(
        b.create(&k, "second").await,
        ErrorKind::AlreadyExists,
        "create of an existing key",
    );
    match e {
        Error::AlreadyExists { version, .. } => {
            assert_eq!(
                version, m.version,
                "AlreadyExists must carry the existing version"
            )
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        get_all(&*b, &k).await,
        "first",
        "a failed create changed the object"
    );
    b.delete(&k, DeleteOptions::default()).await.unwrap();
    b.create(&k, "again")
        .await
        .unwrap_or_else(|e| panic!("create {k} after delete: {e}"));
    assert_eq!(get_all(&*b, &k).await, "again");
}

async fn update_is_compare_and_swap(b: Arc<dyn Backend>) {
    let k = key("cas");
    let absent = expect_kind(
        b.update(&k, "x", Version::from(1)).await,
        ErrorKind::NotFound,
        "update of an absent key",
    );
    assert!(absent.to_string().contains("cas"), "{absent}");
    let v1 = put(&*b, &k, "one").await.version;
    let v2 = b
        .update(&k, "two", v1.clone())
        .await
        .unwrap_or_else(|e| panic!("update from current: {e}"))
        .version;
    assert_ne!(v1, v2);
    let e = expect_kind(
        b.update(&k, "stale", v1.clone()).await,
        ErrorKind::Conflict,
        "update from a stale version",
    );
    if let Error::Conflict { expected, actual, .. } = &e {
        assert_eq!(expected.as_ref(), Some(&v1), "Conflict.expected");
        if let Some(actual) = actual {
            assert_eq!(
                actual, &v2,
                "Conflict.actual must be the current version when known"
            );
        }
    }
    expect_kind(
        b.update(&k, "bogus", Version::empty()).await,
        ErrorKind::Conflict,
        "update from the empty version",
    );
    assert_eq!(
        get_all(&*b, &k).await,
        "two",
        "a failed update changed the object"
    );
}

async fn conditional_delete(b: Arc<dyn Backend>) {
    let k = key("cond-delete");
    let v1 = put(&*b, &k, "one").await.version;
    let v2 = put(&*b, &k, "two").await.version;
    expect_kind(
        b.delete_if(&k, v1).await,
        ErrorKind::Conflict,
        "delete with a stale version",
    );
    assert_eq!(
        get_all(&*b, &k).await,
        "two",
        "a failed conditional delete removed the object"
    );
    b.delete_if(&k, v2.clone())
        .await
        .unwrap_or_else(|e| panic!("delete with the current version: {e}"));
    expect_kind(b.head(&k).await, ErrorKind::NotFound, "head after delete");
    expect_kind(
        b.delete_if(&k, v2).await,
        ErrorKind::NotFound,
        "conditional delete of an absent key",
    );
    assert!(!b.delete_if_exists(&k).await.unwrap());
    put(&*b, &k, "three").await;
    assert!(b.delete_if_exists(&k).await.unwrap());
}

async fn versions_never_repeat(b: Arc<dyn Backend>) {
    let k = key("aba");
    let mut seen = HashSet::new();
    for round in 0..50 {
        // Same content, same size, every time: the version must still be new.
        let m = if round % 2 == 0 {
            b.create(&k, "same")
                .await
                .unwrap_or_else(|e| panic!("create round {round}: {e}"))
        } else {
            put(&*b, &k, "same").await
        };
        assert!(
            seen.insert(m.version.clone()),
            "version {} repeated for {k} in round {round}",
            m.version
        );
        if round % 2 == 1 {
            b.delete(&k, DeleteOptions::default()).await.unwrap();
        }
    }
}

async fn range_reads(b: Arc<dyn Backend>) {
    let k = key("ranges");
    let data = pattern(1000, 3);
    put(&*b, &k, data.clone()).await;
    let cases: [(ByteRange, std::ops::Range<usize>); 6] = [
        (ByteRange::Bounded(10..20), 10..20),
        (ByteRange::Bounded(990..2000), 990..1000),
        (ByteRange::Bounded(1000..1000), 1000..1000),
        (ByteRange::From(500), 500..1000),
        (ByteRange::Suffix(100), 900..1000),
        (ByteRange::Suffix(5000), 0..1000),
    ];
    for (range, want) in cases {
        let obj = b
            .get(&k, GetOptions::default().with_range(range.clone()))
            .await
            .unwrap_or_else(|e| panic!("get {k} {range:?}: {e}"));
        assert_eq!(
            obj.meta.size, 1000,
            "{range:?}: meta.size must be the whole object's"
        );
        assert_eq!(
            obj.range,
            want.start as u64..want.end as u64,
            "{range:?}: returned range"
        );
        assert!(
            obj.bytes().await.unwrap() == data.slice(want.clone()),
            "{range:?}: content"
        );
    }
    let e = expect_kind(
        b.get(&k, GetOptions::default().with_range(1001..1002)).await,
        ErrorKind::InvalidInput,
        "range starting past the end",
    );
    assert!(
        e.to_string().contains("ranges"),
        "error does not name the key: {e}"
    );
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = ByteRange::Bounded(20..10);
    expect_kind(
        b.get(&k, GetOptions::default().with_range(inverted)).await,
        ErrorKind::InvalidInput,
        "inverted range",
    );
}

async fn conditional_get(b: Arc<dyn Backend>) {
    let k = key("cond-get");
    let v1 = put(&*b, &k, "one").await.version;
    let v2 = put(&*b, &k, "two").await.version;
    let ok = b
        .get(&k, GetOptions::default().with_if_match(v2.clone()))
        .await
        .unwrap();
    assert_eq!(ok.bytes().await.unwrap(), "two");
    expect_kind(
        b.get(&k, GetOptions::default().with_if_match(v1.clone())).await,
        ErrorKind::Conflict,
        "if_match stale",
    );
    expect_kind(
        b.get(&k, GetOptions::default().with_if_none_match(v2.clone()))
            .await,
        ErrorKind::NotModified,
        "if_none_match current",
    );
    let changed = b
        .get(&k, GetOptions::default().with_if_none_match(v1))
        .await
        .unwrap();
    assert_eq!(changed.meta.version, v2);
}

async fn list_is_ordered_and_filtered(b: Arc<dyn Backend>) {
    let keys = [
        "b", "a/c", "a/b/c", "a", "ab", "a/b", "c/d/e", "a-z", "a.b", "bb", "a0",
    ];
    for k in keys {
        put(&*b, &key(k), k.to_owned()).await;
    }
    let mut all: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(
        listed(&*b, ListOptions::default()).await,
        all,
        "full listing must be sorted"
    );
    let prefixed = |p: &str| {
        all.iter()
            .filter(|k| k.starts_with(p))
            .cloned()
            .collect::<Vec<_>>()
    };
    for p in ["a", "a/", "a/b", "ab", "b", "c/d/", "zzz", ""] {
        assert_eq!(
            listed(&*b, ListOptions::default().with_prefix(p)).await,
            prefixed(p),
            "prefix {p:?}"
        );
    }
    for after in ["a", "a/b", "a/b/d", "ab", "0", "zzz", "a\u{7f}"] {
        let want: Vec<_> = all.iter().filter(|k| k.as_str() > after).cloned().collect();
        let got = listed(&*b, ListOptions::default().with_start_after(after)).await;
        assert_eq!(got, want, "start_after {after:?} (exclusive)");
    }
    let got = listed(
        &*b,
        ListOptions::default().with_prefix("a/").with_start_after("a/b"),
    )
    .await;
    assert_eq!(got, ["a/b/c", "a/c"], "prefix a/ with start_after a/b");
    let got = listed(
        &*b,
        ListOptions::default().with_prefix("a/").with_start_after("0"),
    )
    .await;
    assert_eq!(got, prefixed("a/"), "start_after before the prefix");
    let metas: Vec<Meta> = b
        .list(ListOptions::default().with_prefix("c/"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(
        (metas[0].size, &metas[0].version),
        (5, &b.head(&key("c/d/e")).await.unwrap().version)
    );
}

async fn list_many_keys_pages_in_order(b: Arc<dyn Backend>) {
    // More keys than any reasonable page size; written out of order.
    let n = 2500usize;
    let mut keys: Vec<String> = (0..n).map(|i| format!("many/{:05}", (i * 7919) % n)).collect();
    let store = Arc::clone(&b);
    let batches: Vec<Vec<String>> = keys.chunks(250).map(|c| c.to_vec()).collect();
    let mut tasks = Vec::new();
    for batch in batches {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for k in batch {
                put(&*store, &key(&k), Bytes::new()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    keys.sort();
    assert_eq!(listed(&*b, ListOptions::default()).await, keys);
    let after = &keys[1234];
    assert_eq!(
        listed(&*b, ListOptions::default().with_start_after(after.clone())).await,
        keys[1235..].to_vec()
    );
}

async fn unusual_keys_round_trip(b: Arc<dyn Backend>) {
    let odd = [
        "with space/and tab-less name",
        "ünïcödé/日本語/😀",
        "percent%20encoded%2F",
        "...",
        "..a/b..",
        ".hidden/.file",
        "quote\"and'apostrophe",
        "a+b=c&d?e#f",
        "colon:semi;comma,",
    ];
    for k in odd {
        put(&*b, &key(k), format!("content of {k}")).await;
    }
    for k in odd {
        assert_eq!(
            get_all(&*b, &key(k)).await,
            format!("content of {k}"),
            "round trip of {k:?}"
        );
    }
    let mut want: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed(&*b, ListOptions::default()).await, want);
    let long = "k".repeat(200) + "/" + &"l".repeat(200);
    put(&*b, &key(&long), "long").await;
    assert_eq!(get_all(&*b, &key(&long)).await, "long");
}

async fn writer_commits_atomically_on_close(b: Arc<dyn Backend>) {
    let k = key("writer/atomic");
    put(&*b, &k, "old").await;
    let fresh = key("writer/fresh");
    let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
    let mut w2 = b.writer(&fresh, PutOptions::default()).await.unwrap();
    for i in 0..5 {
        w.write(Bytes::from(format!("part{i};"))).await.unwrap();
        w2.write(Bytes::from(format!("part{i};"))).await.unwrap();
        assert_eq!(
            get_all(&*b, &k).await,
            "old",
            "a writer's chunks became visible before close"
        );
        expect_kind(
            b.head(&fresh).await,
            ErrorKind::NotFound,
            "head of a key being written",
        );
        assert_eq!(
            listed(&*b, ListOptions::default()).await,
            ["writer/atomic"],
            "listing shows an unfinished write"
        );
    }
    w.write(Bytes::new()).await.unwrap();
    let m = w.close().await.unwrap();
    assert_eq!(m.size, 30);
    assert_eq!(get_all(&*b, &k).await, "part0;part1;part2;part3;part4;");
    assert_eq!(b.head(&k).await.unwrap().version, m.version);
    w2.close().await.unwrap();
    assert_eq!(get_all(&*b, &fresh).await, "part0;part1;part2;part3;part4;");
    let empty = b
        .writer(&key("writer/empty"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(empty.close().await.unwrap().size, 0);
    assert_eq!(get_all(&*b, &key("writer/empty")).await, "");
}

async fn writer_drop_and_abort_leave_no_trace(b: Arc<dyn Backend>) {
    let k = key("writer/dropped");
    put(&*b, &k, "old").await;
    let v = b.head(&k).await.unwrap().version;
    {
        let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
        w.write(Bytes::from_static(b"never visible")).await.unwrap();
    }
    let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"never visible")).await.unwrap();
    w.abort().await.unwrap();
    let fresh = key("writer/never");
    let mut w = b.writer(&fresh, PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"x")).await.unwrap();
    drop(w);
    // Give a backend that cleans up in the background a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get_all(&*b, &k).await, "old");
    assert_eq!(
        b.head(&k).await.unwrap().version,
        v,
        "an aborted writer changed the version"
    );
    expect_kind(
        b.head(&fresh).await,
        ErrorKind::NotFound,
        "head of an aborted new key",
    );
    assert_eq!(
        listed(&*b, ListOptions::default()).await,
        ["writer/dropped"],
        "aborted writes left something listed"
    );
}

async fn writer_applies_put_mode_at_close(b: Arc<dyn Backend>) {
    let k = key("writer/modes");
    let v1 = put(&*b, &k, "v1").await.version;
    // Create on an existing key fails (at open or at close) and leaves the object alone.
    let created = async {
        let mut w = b.writer(&k, PutOptions::create()).await?;
        w.write(Bytes::from_static(b"create")).await?;
        w.close().await
    }
    .await;
    expect_kind(
        created,
        ErrorKind::AlreadyExists,
        "writer with Create on an existing key",
    );
    // Update from a version that went stale while the writer was open.
    let mut w = b.writer(&k, PutOptions::update(v1.clone())).await.unwrap();
    w.write(Bytes::from_static(b"from v1")).await.unwrap();
    let v2 = put(&*b, &k, "v2").await.version;
    expect_kind(
        w.close().await,
        ErrorKind::Conflict,
        "writer with Update whose version went stale before close",
    );
    assert_eq!(get_all(&*b, &k).await, "v2");
    let mut w = b.writer(&k, PutOptions::update(v2)).await.unwrap();
    w.write(Bytes::from_static(b"from v2")).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(get_all(&*b, &k).await, "from v2");
    // Create racing a put that lands while the writer is open.
    let late = key("writer/late");
    let mut w = b.writer(&late, PutOptions::create()).await.unwrap();
    w.write(Bytes::from_static(b"loser")).await.unwrap();
    put(&*b, &late, "winner").await;
    expect_kind(
        w.close().await,
        ErrorKind::AlreadyExists,
        "writer with Create when the key appeared meanwhile",
    );
    assert_eq!(get_all(&*b, &late).await, "winner");
}

async fn streaming_64_mib_in_1_mib_chunks(b: Arc<dyn Backend>) {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 64;
    let k = key("big/64mib");
    let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
    for i in 0..CHUNKS {
        w.write(pattern(CHUNK, i as u8))
            .await
            .unwrap_or_else(|e| panic!("write chunk {i}: {e}"));
    }
    expect_kind(
        b.head(&k).await,
        ErrorKind::NotFound,
        "head of a 64 MiB object before close",
    );
    let m = w.close().await.unwrap();
    assert_eq!(m.size, (CHUNK * CHUNKS) as u64);
    let obj = b.get(&k, GetOptions::default()).await.unwrap();
    let mut stream = obj.into_stream();
    let mut buf = BytesMut::new();
    let mut next = 0usize;
    while let Some(part) = stream.try_next().await.unwrap() {
        buf.extend_from_slice(&part);
        while buf.len() >= CHUNK {
            let chunk = buf.split_to(CHUNK);
            assert!(
                chunk[..] == pattern(CHUNK, next as u8)[..],
                "chunk {next} of the 64 MiB object differs"
            );
            next += 1;
        }
    }
    assert!(buf.is_empty(), "trailing bytes after 64 MiB");
    assert_eq!(next, CHUNKS, "chunks read back");
    let tail = b
        .get(&k, GetOptions::default().with_range(ByteRange::Suffix(10)))
        .await
        .unwrap();
    assert!(tail.bytes().await.unwrap() == pattern(CHUNK, 63).slice(CHUNK - 10..));
}

async fn watch_returns_at_once_when_already_changed(b: Arc<dyn Backend>) {
    let k = key("watch/now");
    let within = |f| tokio::time::timeout(WATCH_LIMIT, f);
    let v1 = put(&*b, &k, "1").await.version;
    let got = within(b.watch(&k, None))
        .await
        .expect("watch(None) on an existing key must return at once");
    assert_eq!(got.unwrap(), Some(v1.clone()));
    let v2 = put(&*b, &k, "2").await.version;
    let got = within(b.watch(&k, Some(&v1)))
        .await
        .expect("watch from a stale version must return at once");
    assert_eq!(got.unwrap(), Some(v2.clone()));
    b.delete(&k, DeleteOptions::default()).await.unwrap();
    let got = within(b.watch(&k, Some(&v2)))
        .await
        .expect("watch of a deleted key must return at once");
    assert_eq!(got.unwrap(), None);
}

async fn watch_wakes_on_put_and_delete(b: Arc<dyn Backend>) {
    let k = key("watch/wake");
    let spawn_watch = |seen: Option<Version>| {
        let (b, k) = (Arc::clone(&b), k.clone());
        tokio::spawn(async move { tokio::time::timeout(WATCH_LIMIT, b.watch(&k, seen.as_ref())).await })
    };
    let waiting = spawn_watch(None);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !waiting.is_finished(),
        "watch(None) on an absent key returned without a change"
    );
    let v1 = put(&*b, &k, "1").await.version;
    let got = waiting.await.unwrap().expect("watch was not woken by a put");
    assert_eq!(got.unwrap(), Some(v1.clone()));

    let waiting = spawn_watch(Some(v1.clone()));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !waiting.is_finished(),
        "watch returned though the version had not changed"
    );
    b.delete(&k, DeleteOptions::default()).await.unwrap();
    let got = waiting.await.unwrap().expect("watch was not woken by a delete");
    assert_eq!(got.unwrap(), None);
}

async fn dropped_watch_leaves_store_usable(b: Arc<dyn Backend>) {
    let k = key("watch/dropped");
    let v1 = put(&*b, &k, "1").await.version;
    for _ in 0..20 {
        // Cancelled by the timeout: the future is dropped mid-wait.
        let r = tokio::time::timeout(Duration::from_millis(2), b.watch(&k, Some(&v1))).await;
        assert!(r.is_err(), "watch returned without a change");
    }
    let waiting = {
        let (b, k, v1) = (Arc::clone(&b), k.clone(), v1.clone());
        tokio::spawn(async move { tokio::time::timeout(WATCH_LIMIT, b.watch(&k, Some(&v1))).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v2 = put(&*b, &k, "2").await.version;
    assert_eq!(
        waiting.await.unwrap().expect("live watcher not woken").unwrap(),
        Some(v2)
    );
}

async fn concurrent_watchers_all_woken(b: Arc<dyn Backend>) {
    let k = key("watch/many");
    let v1 = put(&*b, &k, "1").await.version;
    let watchers: Vec<_> = (0..16)
        .map(|_| {
            let (b, k, v1) = (Arc::clone(&b), k.clone(), v1.clone());
            tokio::spawn(async move { tokio::time::timeout(WATCH_LIMIT, b.watch(&k, Some(&v1))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v2 = put(&*b, &k, "2").await.version;
    for (i, w) in watchers.into_iter().enumerate() {
        let got = w
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("watcher {i} of 16 was not woken"));
        assert_eq!(got.unwrap(), Some(v2.clone()), "watcher {i}");
    }
}

async fn concurrent_creates_have_one_winner(b: Arc<dyn Backend>) {
    for round in 0..5 {
        let k = key(&format!("race/create-{round}"));
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (b, k, barrier) = (Arc::clone(&b), k.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    b.create(&k, format!("creator {i}")).await.map(|m| (i, m))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(w) => winners.push(w),
                Err(e) if e.is_already_exists() => {}
                Err(e) => panic!("create race: unexpected error {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of 16 concurrent creates succeeded",
            winners.len()
        );
        let (i, m) = &winners[0];
        assert_eq!(
            get_all(&*b, &k).await,
            format!("creator {i}"),
            "the winner's content is not what is stored"
        );
        assert_eq!(b.head(&k).await.unwrap().version, m.version);
    }
}

async fn concurrent_cas_increments_are_exact(b: Arc<dyn Backend>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 250;
    let k = key("race/counter");
    put(&*b, &k, "0").await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (b, k) = (Arc::clone(&b), k.clone());
            tokio::spawn(async move {
                let mut conflicts = 0u64;
                for _ in 0..INCREMENTS {
                    loop {
                        let (meta, data) = b.get_with_meta(&k).await.expect("get counter");
                        let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
                        match b.update(&k, (n + 1).to_string(), meta.version).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("update counter: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = get_all(&*b, &k).await;
    assert_eq!(
        total,
        (TASKS * INCREMENTS).to_string(),
        "lost updates: {TASKS} × {INCREMENTS} CAS increments"
    );
}

async fn readers_never_see_a_partial_put(b: Arc<dyn Backend>) {
    const LEN: usize = 256 * 1024;
    let k = key("atomic/swap");
    let a = Bytes::from(vec![b'a'; LEN]);
    let z = Bytes::from(vec![b'z'; LEN]);
    put(&*b, &k, a.clone()).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (b, k, done) = (Arc::clone(&b), k.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    let got = get_all(&*b, &k).await;
                    assert_eq!(got.len(), LEN, "a reader saw a {}-byte object", got.len());
                    let first = got[0];
                    assert!(got.iter().all(|&c| c == first), "a reader saw a mix of two puts");
                    reads += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for i in 0..40 {
        let data = if i % 2 == 0 { z.clone() } else { a.clone() };
        if i % 4 == 0 {
            let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
            for part in 0..4 {
                w.write(data.slice(part * LEN / 4..(part + 1) * LEN / 4))
                    .await
                    .unwrap();
            }
            w.close().await.unwrap();
        } else {
            put(&*b, &k, data).await;
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Model-based property test.

const MODEL_KEYS: &[&str] = &["a", "b", "a/b", "a/c", "ab", "b/a/c"];
const MODEL_PREFIXES: &[&str] = &["", "a", "a/", "b", "zz"];

#[derive(Debug, Clone)]
enum VersionPick {
    Current,
    /// Some earlier version of any key (by index into the history), or a bogus one.
    Old(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>),
    Create(usize, Vec<u8>),
    Update(usize, Vec<u8>, VersionPick),
    Delete(usize, Option<VersionPick>),
    Get(usize, Option<(u8, u8)>),
    Head(usize),
    List(usize, Option<usize>),
    WatchOld(usize, usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0..MODEL_KEYS.len();
    let v = proptest::collection::vec(any::<u8>(), 0..12);
    let pick = prop_oneof![
        Just(VersionPick::Current),
        any::<usize>().prop_map(VersionPick::Old)
    ];
    prop_oneof![
        3 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Create(k, v)),
        3 => (k.clone(), v, pick.clone()).prop_map(|(k, v, p)| Op::Update(k, v, p)),
        2 => (k.clone(), proptest::option::of(pick)).prop_map(|(k, p)| Op::Delete(k, p)),
        2 => (k.clone(), proptest::option::of((any::<u8>(), any::<u8>()))).prop_map(|(k, r)| Op::Get(k, r)),
        1 => k.clone().prop_map(Op::Head),
        2 => (0..MODEL_PREFIXES.len(), proptest::option::of(0..MODEL_KEYS.len())).prop_map(|(p, s)| Op::List(p, s)),
        1 => (k, any::<usize>()).prop_map(|(k, i)| Op::WatchOld(k, i)),
    ]
}

/// Runs one sequence of operations against the backend (under a fresh key prefix) and a
/// `BTreeMap` model, comparing every result.
async fn run_model(b: &dyn Backend, prefix: &str, ops: Vec<Op>) -> Result<(), String> {
    let mut model: BTreeMap<String, (Bytes, Version)> = BTreeMap::new();
    let mut history: Vec<Version> = Vec::new();
    let mut per_key: BTreeMap<String, HashSet<Version>> = BTreeMap::new();
    let full = |i: usize| format!("{prefix}{}", MODEL_KEYS[i]);
    let pick_version = |pick: &VersionPick, current: Option<&Version>, history: &[Version]| match pick {
        VersionPick::Current => current.cloned().unwrap_or_else(|| Version::parse("never-issued")),
        VersionPick::Old(i) if history.is_empty() => Version::parse(&format!("never-issued-{i}")),
        VersionPick::Old(i) => history[i % history.len()].clone(),
    };
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = |what: String| format!("step {step} {op:?}: {what}");
        macro_rules! fail {
            ($($t:tt)*) => { return Err(ctx(format!($($t)*))) };
        }
        match &op {
            Op::Put(i, data) | Op::Create(i, data) | Op::Update(i, data, _) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v)| v.clone());
                let mode = match &op {
                    Op::Put(..) => PutMode::Overwrite,
                    Op::Create(..) => PutMode::Create,
                    Op::Update(_, _, p) => PutMode::Update(pick_version(p, current.as_ref(), &history)),
                    _ => unreachable!(),
                };
                let expect: Result<(), ErrorKind> = match (&mode, &current) {
                    (PutMode::Overwrite, _) | (PutMode::Create, None) => Ok(()),
                    (PutMode::Create, Some(_)) => Err(ErrorKind::AlreadyExists),
                    (PutMode::Update(_), None) => Err(ErrorKind::NotFound),
                    (PutMode::Update(want), Some(cur)) if want == cur => Ok(()),
                    (PutMode::Update(_), Some(_)) => Err(ErrorKind::Conflict),
                };
                let got = b.put(&key(&k), Bytes::from(data.clone()), mode.into()).await;
                match (expect, got) {
                    (Ok(()), Ok(meta)) => {
                        if meta.size != data.len() as u64 {
                            fail!("size {} != {}", meta.size, data.len());
                        }
                        let v = meta.version;
                        if !per_key.entry(k.clone()).or_default().insert(v.clone()) {
                            fail!("version {v} was issued before for {k}");
                        }
                        history.push(v.clone());
                        model.insert(k, (Bytes::from(data.clone()), v));
                    }
                    (Err(kind), Err(e)) if e.kind() == kind => {
                        if let (Error::AlreadyExists { version, .. }, Some(cur)) = (&e, &current)
                            && version != cur
                        {
                            fail!("AlreadyExists carries {version}, current is {cur}");
                        }
                    }
                    (want, got) => fail!("expected {want:?}, got {:?}", got.map(|m| m.version)),
                }
            }
            Op::Delete(i, pick) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v)| v.clone());
                let if_match = pick.as_ref().map(|p| pick_version(p, current.as_ref(), &history));
                let expect: Result<(), ErrorKind> = match (&current, &if_match) {
                    (None, _) => Err(ErrorKind::NotFound),
                    (Some(cur), Some(want)) if cur != want => Err(ErrorKind::Conflict),
                    _ => Ok(()),
                };
                let opts = match if_match {
                    Some(v) => DeleteOptions::default().with_if_match(v),
                    None => DeleteOptions::default(),
                };
                let got = b.delete(&key(&k), opts).await;
                match (expect, got) {
                    (Ok(()), Ok(())) => {
                        model.remove(&k);
                    }
                    (Err(kind), Err(e)) if e.kind() == kind => {}
                    (want, got) => fail!("expected {want:?}, got {got:?}"),
                }
            }
            Op::Get(i, range) => {
                let k = full(*i);
                let mut opts = GetOptions::default();
                if let Some((s, e)) = range {
                    opts = opts.with_range(u64::from(*s % 16)..u64::from(*e % 16));
                }
                let got = b.get(&key(&k), opts.clone()).await;
                match (model.get(&k), got) {
                    (None, Err(e)) if e.is_not_found() => {}
                    (Some((data, v)), got) => {
                        let want_range = match &opts.range {
                            None => Ok(0..data.len()),
                            Some(r) => r
                                .resolve(&key(&k), data.len() as u64)
                                .map(|r| r.start as usize..r.end as usize),
                        };
                        match (want_range, got) {
                            (Ok(r), Ok(obj)) => {
                                if &obj.meta.version != v {
                                    fail!("version {} != model {v}", obj.meta.version);
                                }
                                let body = obj.bytes().await.map_err(|e| ctx(e.to_string()))?;
                                if body != data.slice(r.clone()) {
                                    fail!("content {body:?} != model {:?}", data.slice(r));
                                }
                            }
                            (Err(want), Err(e)) if e.kind() == want.kind() => {}
                            (want, got) => fail!("expected {want:?}, got {:?}", got.map(|o| o.range)),
                        }
                    }
                    (None, got) => fail!("expected NotFound, got {:?}", got.map(|o| o.meta)),
                }
            }
            Op::Head(i) => {
                let k = full(*i);
                match (model.get(&k), b.head(&key(&k)).await) {
                    (None, Err(e)) if e.is_not_found() => {}
                    (Some((data, v)), Ok(m)) if &m.version == v && m.size == data.len() as u64 => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::List(p, after) => {
                let list_prefix = format!("{prefix}{}", MODEL_PREFIXES[*p]);
                let mut opts = ListOptions::default().with_prefix(list_prefix.clone());
                if let Some(a) = after {
                    opts = opts.with_start_after(full(*a));
                }
                let want: Vec<(String, Version)> = model
                    .iter()
                    .filter(|(k, _)| opts.matches(k))
                    .map(|(k, (_, v))| (k.clone(), v.clone()))
                    .collect();
                let got: Vec<(String, Version)> = b
                    .list(opts)
                    .map_ok(|m| (m.key.to_string(), m.version))
                    .try_collect()
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                if got != want {
                    fail!("listing {got:?} != model {want:?}");
                }
            }
            Op::WatchOld(i, h) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v)| v.clone());
                let seen = if history.is_empty() {
                    None
                } else {
                    Some(history[h % history.len()].clone())
                };
                if seen == current {
                    continue; // would (correctly) block
                }
                match tokio::time::timeout(WATCH_LIMIT, b.watch(&key(&k), seen.as_ref())).await {
                    Ok(Ok(v)) if v == current => {}
                    other => fail!("watch from {seen:?} should return {current:?} at once, got {other:?}"),
                }
            }
        }
    }
    Ok(())
}

async fn model_based_random_operations(b: Arc<dyn Backend>) {
    let case = std::sync::atomic::AtomicU64::new(0);
    prop::check(
        "model_based_random_operations",
        prop::cases(48),
        proptest::collection::vec(op_strategy(), 1..40),
        |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let b = Arc::clone(&b);
            async move { run_model(&*b, &format!("model/{n}/"), ops).await }
        },
    )
    .await;
}
