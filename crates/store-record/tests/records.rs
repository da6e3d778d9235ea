//! Behaviour of `Records` beyond the shared suite: the race of 1000 CAS calls, prefix
//! push-down, how expired records are replaced and purged, corrupt objects, no polling while
//! waiting, and a model-based property test driven by a manual clock.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, TryStreamExt};
use parking_lot::Mutex;
use proptest::prelude::*;
use store_core::{
    Backend, BackendExt, Capabilities, DeleteOptions, Error, ErrorKind, GetOptions, Key, ListOptions, Meta,
    Object, ObjectWriter, PutMode, PutOptions, Record, RecordStore, Result, Version,
};
use store_memory::MemoryStore;
use store_record::{Clock, ManualClock, Records};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn epoch(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A MemoryStore that remembers what it was asked, and can simulate a renewal that lands
/// just before a conditional delete.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryStore,
    lists: Mutex<Vec<ListOptions>>,
    puts: Mutex<Vec<PutMode>>,
    gets: AtomicUsize,
    /// Every request of any kind (puts, gets, heads, deletes, listings, watches).
    calls: AtomicUsize,
    renew_before_conditional_delete: AtomicBool,
    /// Report versions that do not always name one content (as a fan-out does).
    unstable_versions: AtomicBool,
    /// Fail every put with an I/O error.
    failing_puts: AtomicBool,
    /// Make every get yield to the runtime once, so that overlapping gets can be counted.
    slow_gets: AtomicBool,
    gets_in_flight: AtomicUsize,
    most_gets_in_flight: AtomicUsize,
}

#[async_trait]
impl Backend for Recording {
    fn capabilities(&self) -> Capabilities {
        self.inner
            .capabilities()
            .with_stable_versions(!self.unstable_versions.load(Ordering::Relaxed))
    }
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.puts.lock().push(opts.mode.clone());
        if self.failing_puts.load(Ordering::Relaxed) {
            return Err(Error::io("put", key, std::io::Error::other("disk on fire")));
        }
        self.inner.put(key, data, opts).await
    }
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.writer(key, opts).await
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.gets.fetch_add(1, Ordering::Relaxed);
        let in_flight = self.gets_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_gets_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        if self.slow_gets.load(Ordering::Relaxed) {
            tokio::task::yield_now().await;
        }
        let got = self.inner.get(key, opts).await;
        self.gets_in_flight.fetch_sub(1, Ordering::SeqCst);
        got
    }
    async fn head(&self, key: &Key) -> Result<Meta> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.head(key).await
    }
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if opts.if_match.is_some() && self.renew_before_conditional_delete.load(Ordering::Relaxed) {
            // Somebody rewrote the record between the purger's read and its delete.
            let data = self.inner.get_bytes(key).await?;
            self.inner.put(key, data, PutOptions::default()).await?;
        }
        self.inner.delete(key, opts).await
    }
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.lists.lock().push(opts.clone());
        self.inner.list(opts)
    }
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.watch(key, seen).await
    }
}

async fn keys(records: &impl RecordStore, pattern: &str) -> Vec<String> {
    let stream = records.list_keys(pattern).await.unwrap();
    let keys: Vec<Key> = stream.try_collect().await.unwrap();
    keys.into_iter().map(|k| k.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_1000_concurrent_cas_calls_from_one_version_exactly_one_wins() {
    let records = Records::new(MemoryStore::new());
    let k = key("race/cas");
    let from = records.put(&Record::new(k.clone(), "start")).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let (records, k, from, barrier) =
                (records.clone(), k.clone(), from.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                records
                    .cas_by_version(&Record::new(k, format!("writer {i}")).with_version(from))
                    .await
                    .map(|v| (i, v))
            })
        })
        .collect();
    let (mut winners, mut conflicts) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(w) => winners.push(w),
            Err(e) if e.is_conflict() => conflicts += 1,
            Err(e) => panic!("a losing cas must be Conflict, got {e}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 999));
    let got = records.get(&k).await.unwrap();
    assert_eq!(got.value, format!("writer {}", winners[0].0));
    assert_eq!(got.version, winners[0].1);
}

#[tokio::test]
async fn list_keys_pushes_the_literal_prefix_down() {
    let records = Records::new(Recording::default());
    for k in ["logs/2025-12-31", "logs/2026-01-01", "logs/2026-02-01", "other"] {
        records.put(&Record::new(key(k), "x")).await.unwrap();
    }
    for (pattern, prefix, want) in [
        (
            "logs/2026-*",
            Some("logs/2026-"),
            vec!["logs/2026-01-01", "logs/2026-02-01"],
        ),
        ("logs/2026-0[1]-\\*", Some("logs/2026-0"), vec![]),
        ("other", Some("other"), vec!["other"]),
        ("*/2025-*", None, vec!["logs/2025-12-31"]),
        (
            "{logs,other}/*",
            None,
            vec!["logs/2025-12-31", "logs/2026-01-01", "logs/2026-02-01"],
        ),
    ] {
        records.backend().lists.lock().clear();
        assert_eq!(keys(&records, pattern).await, want, "{pattern}");
        let lists = records.backend().lists.lock().clone();
        assert_eq!(lists.len(), 1, "{pattern}: one backend listing");
        assert_eq!(
            lists[0].prefix.as_deref(),
            prefix,
            "{pattern}: prefix pushed down"
        );
        assert!(lists[0].keys_only, "{pattern}: versions are not needed");
    }
}

/// Listing 10,000 records without expiry costs the backend's listing and nothing per
/// record; with a tenth carrying an expiry, one header read for each of those, and the
/// expired ones are left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_reads_only_the_records_that_carry_an_expiry() {
    const N: usize = 10_000;
    let clock = ManualClock::new(epoch(1_000));
    let records = Records::builder(Recording::default())
        .clock(clock.clone())
        .build();
    let names: Vec<String> = (0..N).map(|i| format!("many/{i:05}")).collect();
    // Values of every length parity, so that the padding is exercised both ways.
    for (i, name) in names.iter().enumerate() {
        records
            .put(&Record::new(key(name), "x".repeat(i % 7)))
            .await
            .unwrap();
    }
    let calls = || records.backend().calls.load(Ordering::Relaxed);
    let before = calls();
    assert_eq!(keys(&records, "many/*").await, names);
    let spent = calls() - before;
    assert!(
        spent as f64 <= 0.05 * N as f64,
        "{spent} backend requests to list {N} records without expiry"
    );
    assert_eq!(spent, 1, "one listing, no record read");

    // A tenth carry an expiry; half of those (every 20th) have passed it.
    for (i, name) in names.iter().enumerate().filter(|(i, _)| i % 10 == 0) {
        let at = if i % 20 == 0 { epoch(500) } else { epoch(5_000) };
        records
            .put(&Record::new(key(name), "y".repeat(i % 3)).with_expiry(at))
            .await
            .unwrap();
    }
    let gets = records.backend().gets.load(Ordering::Relaxed);
    let live: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 20 != 0)
        .map(|(_, n)| n.clone())
        .collect();
    assert_eq!(keys(&records, "many/*").await, live);
    let read = records.backend().gets.load(Ordering::Relaxed) - gets;
    assert_eq!(read, N / 10, "one header read per record with an expiry");
}

/// A listing reads the headers of records with an expiry several at once, a bounded
/// number, and still hands the keys on in order.
#[tokio::test]
async fn list_keys_reads_headers_concurrently_in_order() {
    let records = Records::new(Recording::default());
    let names: Vec<String> = (0..40).map(|i| format!("many/{i:02}")).collect();
    let later = SystemTime::now() + Duration::from_secs(3_600);
    for name in names.iter().rev() {
        records
            .put(&Record::new(key(name), "x").with_expiry(later))
            .await
            .unwrap();
    }
    records.backend().slow_gets.store(true, Ordering::Relaxed);
    assert_eq!(keys(&records, "many/*").await, names);
    let most = records.backend().most_gets_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=16).contains(&most),
        "{most} header reads in flight at most: want several, and a bound"
    );
}

#[tokio::test]
async fn create_replaces_an_expired_record_with_update_not_delete() {
    let clock = ManualClock::new(epoch(1_000));
    let records = Records::builder(Recording::default())
        .clock(clock.clone())
        .build();
    let k = key("lease");
    let old = records
        .put(&Record::new(k.clone(), "old").with_expiry(epoch(1_010)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(10));
    records.backend().puts.lock().clear();
    let v = records.create(&Record::new(k.clone(), "new")).await.unwrap();
    assert_eq!(
        *records.backend().puts.lock(),
        [PutMode::Create, PutMode::Update(old)],
        "create over an expired record must be a conditional update of that record"
    );
    assert_eq!(records.get(&k).await.unwrap().version, v);
    // An expiry equal to now has passed; one a nanosecond later has not.
    let at = clock.now();
    records
        .put(&Record::new(k.clone(), "edge").with_expiry(at))
        .await
        .unwrap();
    assert!(records.get(&k).await.unwrap_err().is_not_found());
    records
        .put(&Record::new(k.clone(), "edge").with_expiry(at + Duration::from_nanos(1)))
        .await
        .unwrap();
    assert_eq!(records.get(&k).await.unwrap().value, "edge");
}

#[tokio::test]
async fn cas_from_a_version_this_handle_wrote_skips_the_read_but_not_the_checks() {
    let clock = ManualClock::new(epoch(1_000));
    let records = Records::builder(Recording::default())
        .clock(clock.clone())
        .build();
    let other = Records::builder(records.backend().inner.clone())
        .clock(clock.clone())
        .build();
    let k = key("counter");
    let v1 = records
        .create(&Record::new(k.clone(), "1").with_expiry(epoch(1_100)))
        .await
        .unwrap();
    // A version this handle created: the conditional put alone, no read.
    let gets = records.backend().gets.load(Ordering::Relaxed);
    let r2 = records
        .cas_by_version(
            &Record::new(k.clone(), "2")
                .with_version(v1)
                .with_expiry(epoch(1_100)),
        )
        .await
        .unwrap();
    assert_eq!(records.backend().gets.load(Ordering::Relaxed), gets);
    assert_eq!(other.get(&k).await.unwrap().value, "2");

    // Replaced through another handle: Conflict naming the version stored now.
    let r3 = other
        .put(&Record::new(k.clone(), "3").with_expiry(epoch(1_100)))
        .await
        .unwrap();
    let err = records
        .cas_by_version(&Record::new(k.clone(), "x").with_version(r2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { actual: Some(a), .. } if *a == r3),
        "{err}"
    );

    // Known but expired by the clock: NotFound, and nothing replaced.
    let r4 = records
        .cas_by_version(
            &Record::new(k.clone(), "4")
                .with_version(r3)
                .with_expiry(epoch(1_050)),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let err = records
        .cas_by_version(&Record::new(k.clone(), "5").with_version(r4))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(other.get(&k).await.unwrap_err().is_not_found());

    // Known but deleted through another handle: NotFound.
    let v6 = records.create(&Record::new(k.clone(), "6")).await.unwrap();
    other.delete(&k).await.unwrap();
    let err = records
        .cas_by_version(&Record::new(k.clone(), "7").with_version(v6))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(other.get(&k).await.unwrap_err().is_not_found());

    // Known, expiring exactly now: expired (an expiry equal to now has passed).
    let v8 = records
        .create(&Record::new(k.clone(), "8").with_expiry(clock.now() + Duration::from_secs(5)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(5));
    let err = records
        .cas_by_version(&Record::new(k.clone(), "9").with_version(v8))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // Known, and the write itself fails: that error, as is, and no read.
    let v10 = records.create(&Record::new(k.clone(), "10")).await.unwrap();
    records.backend().failing_puts.store(true, Ordering::Relaxed);
    let gets = records.backend().gets.load(Ordering::Relaxed);
    let err = records
        .cas_by_version(&Record::new(k.clone(), "11").with_version(v10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("counter"), "{err}");
    assert_eq!(records.backend().gets.load(Ordering::Relaxed), gets);
}

#[tokio::test]
async fn without_stable_versions_every_cas_reads_first() {
    let backend = Recording::default();
    backend.unstable_versions.store(true, Ordering::Relaxed);
    let records = Records::new(backend);
    let k = key("counter");
    let mut version = records.create(&Record::new(k.clone(), "0")).await.unwrap();
    for i in 1..=3 {
        let gets = records.backend().gets.load(Ordering::Relaxed);
        version = records
            .cas_by_version(&Record::new(k.clone(), i.to_string()).with_version(version))
            .await
            .unwrap();
        assert_eq!(
            records.backend().gets.load(Ordering::Relaxed),
            gets + 1,
            "a remembered expiry could belong to another copy: read it"
        );
    }
    assert_eq!(records.get(&k).await.unwrap().value, "3");
}

#[tokio::test]
async fn purging_removes_only_expired_records_and_never_a_renewed_one() {
    let clock = ManualClock::new(epoch(1_000));
    let records = Records::builder(Recording::default())
        .clock(clock.clone())
        .build();
    for (k, ttl) in [("a", Some(5)), ("b", Some(50)), ("c", None), ("d", Some(5))] {
        let mut r = Record::new(key(k), k);
        r.expires_at = ttl.map(|s| epoch(1_000 + s));
        records.put(&r).await.unwrap();
    }
    records
        .backend()
        .inner
        .put_bytes(&key("foreign"), "not a record")
        .await
        .unwrap();
    clock.advance(Duration::from_secs(10));
    // a and d expired: both are still stored until purged.
    assert_eq!(records.backend().inner.len(), 5);

    records
        .backend()
        .renew_before_conditional_delete
        .store(true, Ordering::Relaxed);
    assert_eq!(
        records.purge_expired().await.unwrap(),
        0,
        "renewed records must survive"
    );
    assert_eq!(records.backend().inner.len(), 5);

    records
        .backend()
        .renew_before_conditional_delete
        .store(false, Ordering::Relaxed);
    assert_eq!(records.purge_expired().await.unwrap(), 2);
    let left: Vec<Key> = records.backend().inner.list_keys("").await.unwrap();
    assert_eq!(
        left,
        [key("b"), key("c"), key("foreign")],
        "foreign objects are left alone"
    );
}

#[tokio::test]
async fn operations_purge_the_expired_records_they_meet() {
    let clock = ManualClock::new(epoch(1_000));
    let records = Records::builder(MemoryStore::new()).clock(clock.clone()).build();
    for k in ["x/get", "x/list"] {
        records
            .put(&Record::new(key(k), "v").with_expiry(epoch(1_001)))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(2));
    assert!(records.get(&key("x/get")).await.unwrap_err().is_not_found());
    assert!(keys(&records, "x/*").await.is_empty());
    assert!(
        records.backend().is_empty(),
        "expired records met by get and list are purged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_purges_in_the_background() {
    let clock = ManualClock::new(epoch(1_000));
    let records = Records::builder(MemoryStore::new()).clock(clock.clone()).build();
    for i in 0..10 {
        records
            .put(&Record::new(key(&format!("r/{i}")), "v").with_expiry(epoch(1_000 + i)))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_millis(4_500)); // r/0..=r/4 expired
    let reaper = records.spawn_reaper(Duration::from_millis(5));
    tokio::time::timeout(Duration::from_secs(10), async {
        while records.backend().len() != 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the reaper did not purge the expired records");
    reaper.stop();
    assert_eq!(keys(&records, "**").await, ["r/5", "r/6", "r/7", "r/8", "r/9"]);
}

/// One corrupt record does not end a listing: it is one error item naming its key, and the
/// keys after it still come. The garbage has an odd size, which only a record with an
/// expiry has, so the listing reads it.
#[tokio::test]
async fn a_corrupt_record_is_one_error_item_in_a_listing_that_goes_on() {
    let records = Records::new(MemoryStore::new());
    let raw = records.backend().clone();
    store_testkit::records::listing_goes_on_past_a_corrupt_record(&records, |k: Key| async move {
        raw.put_bytes(&k, vec![0xFF, 0x00, 0x13, 0x37, 0x42])
            .await
            .unwrap();
    })
    .await;
}

/// A listing does not read what an even size says never expires: garbage of such a size is
/// listed like a record, and reading it says `Corrupt`.
#[tokio::test]
async fn garbage_of_an_even_size_is_listed_unread_and_corrupt_when_read() {
    let records = Records::new(Recording::default());
    records.put(&Record::new(key("a"), "1")).await.unwrap();
    records
        .backend()
        .put_bytes(&key("b"), vec![0xFF, 0x00, 0x13, 0x37])
        .await
        .unwrap();
    assert_eq!(keys(&records, "*").await, ["a", "b"]);
    assert_eq!(records.backend().gets.load(Ordering::Relaxed), 0);
    let e = records.get(&key("b")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[tokio::test]
async fn garbage_in_the_backend_is_corrupt_naming_the_key() {
    let records = Records::new(MemoryStore::new());
    let k = key("junk/one");
    records.backend().put_bytes(&k, "{\"json\": true}").await.unwrap();
    let mut format_3 = vec![0xD5, 3, 0];
    format_3.extend_from_slice(b"future");
    records
        .backend()
        .put_bytes(&key("junk/two"), format_3)
        .await
        .unwrap();
    let corrupt = |r: Result<()>, what: &str, name: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
        assert!(e.to_string().contains(name), "{what}: {e}");
    };
    corrupt(records.get(&k).await.map(drop), "get", "junk/one");
    corrupt(
        records.get(&key("junk/two")).await.map(drop),
        "get of an unknown format",
        "unknown format version 3",
    );
    corrupt(
        records.get_many(std::slice::from_ref(&k)).await.map(drop),
        "get_many",
        "junk/one",
    );
    corrupt(
        records
            .cas_by_version(&Record::new(k.clone(), "x").with_version(Version::from(1)))
            .await
            .map(drop),
        "cas",
        "junk/one",
    );
    corrupt(records.delete(&k).await, "delete", "junk/one");
    corrupt(
        records.create(&Record::new(k.clone(), "x")).await.map(drop),
        "create",
        "junk/one",
    );
    corrupt(
        records
            .wait_for_version_change(&k, &Version::from(1))
            .await
            .map(drop),
        "wait",
        "junk/one",
    );
    // The listing reads only junk/two, whose size (9, odd) says it may have an expiry;
    // junk/one's (14, even) says it has none, so it is listed unread.
    let listed: Vec<Result<Key>> =
        futures::StreamExt::collect(records.list_keys("junk/*").await.unwrap()).await;
    match &listed[..] {
        [Ok(one), Err(two)] if one == &k && two.kind() == ErrorKind::Corrupt => {
            assert!(two.to_string().contains("junk/two"), "{two}");
        }
        other => panic!("{other:?}"),
    }
    // put overwrites garbage, after which everything works.
    records.put(&Record::new(k.clone(), "fixed")).await.unwrap();
    assert_eq!(records.get(&k).await.unwrap().value, "fixed");
}

#[tokio::test]
async fn the_stored_envelope_is_compact_binary() {
    let records = Records::new(MemoryStore::new());
    let plain = key("fmt/plain");
    let timed = key("fmt/timed");
    records.put(&Record::new(plain.clone(), "value")).await.unwrap();
    records
        .put(&Record::new(timed.clone(), "value").with_expiry(epoch(1) + Duration::from_nanos(2)))
        .await
        .unwrap();
    let raw = records.backend().get_bytes(&plain).await.unwrap();
    assert_eq!(&raw[..], b"\xD5\x02\x00value");
    let raw = records.backend().get_bytes(&timed).await.unwrap();
    // Header, expiry, a padding byte so that the size is odd (it has an expiry), value.
    assert_eq!(raw.len(), 3 + 8 + 1 + 5);
    assert_eq!(&raw[3..11], &1_000_000_002u64.to_be_bytes());
    assert_eq!(&raw[11..], b"\x00value");
    let got = records.get(&timed).await;
    assert!(got.unwrap_err().is_not_found(), "1970 is in the past");

    let too_late = UNIX_EPOCH + Duration::from_secs(600 * 365 * 86_400);
    let e = records
        .put(&Record::new(plain.clone(), "x").with_expiry(too_late))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("fmt/plain"), "{e}");
    // create and cas_by_version refuse it too, naming themselves and the key, and write
    // nothing.
    let v = records.get(&plain).await.unwrap().version;
    for (op, result) in [
        (
            "create",
            records
                .create(&Record::new(key("fmt/new"), "x").with_expiry(too_late))
                .await,
        ),
        (
            "cas_by_version",
            records
                .cas_by_version(
                    &Record::new(plain.clone(), "x")
                        .with_expiry(too_late)
                        .with_version(v),
                )
                .await,
        ),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{op}: {e}");
        assert!(
            e.to_string().contains(op) && e.to_string().contains("fmt/"),
            "{e}"
        );
    }
    assert!(records.get(&key("fmt/new")).await.unwrap_err().is_not_found());
    assert_eq!(records.get(&plain).await.unwrap().value, "value");
}

/// With the system clock: a swap from a version this handle wrote, whose expiry is far
/// off, skips the read; once that expiry has passed (in real time) it is `NotFound`, and
/// nothing is replaced.
#[tokio::test]
async fn known_expiries_are_checked_against_the_system_clock() {
    let records = Records::new(Recording::default());
    let k = key("sys/lease");
    let far = SystemTime::now() + Duration::from_secs(3_600);
    let v1 = records
        .create(&Record::new(k.clone(), "1").with_expiry(far))
        .await
        .unwrap();
    let gets = records.backend().gets.load(Ordering::Relaxed);
    let soon = SystemTime::now() + Duration::from_millis(200);
    let v2 = records
        .cas_by_version(&Record::new(k.clone(), "2").with_expiry(soon).with_version(v1))
        .await
        .unwrap();
    assert_eq!(
        records.backend().gets.load(Ordering::Relaxed),
        gets,
        "a read for a known expiry"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = records
        .cas_by_version(&Record::new(k.clone(), "3").with_expiry(far).with_version(v2))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(records.get(&k).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_uses_the_watch_and_leaves_nothing_behind() {
    let records = Records::new(Recording::default());
    let k = key("w");
    let v1 = records.put(&Record::new(k.clone(), "1")).await.unwrap();
    for _ in 0..10 {
        let r =
            tokio::time::timeout(Duration::from_millis(5), records.wait_for_version_change(&k, &v1)).await;
        assert!(r.is_err(), "returned without a change");
    }
    assert_eq!(
        records.backend().inner.watched_keys(),
        0,
        "a dropped wait left a watcher"
    );

    let gets_before = records.backend().gets.load(Ordering::Relaxed);
    let waiter = tokio::spawn({
        let (records, k, v1) = (records.clone(), k.clone(), v1.clone());
        async move { records.wait_for_version_change(&k, &v1).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let v2 = records.put(&Record::new(k.clone(), "2")).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), v2);
    let reads = records.backend().gets.load(Ordering::Relaxed) - gets_before;
    assert!(
        reads <= 2,
        "a wait read the record {reads} times: it polls instead of watching"
    );
    assert_eq!(records.backend().inner.watched_keys(), 0);
}

#[tokio::test]
async fn errors_name_the_record_operation() {
    let records = Records::new(MemoryStore::new());
    let k = key("named");
    let v = records.put(&Record::new(k.clone(), "1")).await.unwrap();
    records.put(&Record::new(k.clone(), "2")).await.unwrap();
    let e = records
        .cas_by_version(&Record::new(k.clone(), "3").with_version(v))
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("cas_by_version \"named\""), "{e}");
    let e = records.create(&Record::new(k.clone(), "3")).await.unwrap_err();
    assert!(e.to_string().starts_with("create \"named\""), "{e}");
    let e = records
        .wait_for_version_change(&key("nope"), &Version::from(1))
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with("wait_for_version_change \"nope\""),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Model-based property test with a manual clock.

const MODEL_KEYS: &[&str] = &["a", "b", "a/b", "ab"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u8, Option<u16>),
    Put(usize, u8, Option<u16>),
    /// Compare-and-swap from the current version (`true`) or an earlier one.
    Cas(usize, u8, Option<u16>, bool),
    Delete(usize),
    Get(usize),
    GetMany(Vec<usize>),
    List,
    WaitFromOld(usize),
    Advance(u16),
    Purge,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0..MODEL_KEYS.len();
    // Expiries in ms after the clock's now; 0 = already expired. Round values make the
    // clock land exactly on an expiry now and then (an expiry equal to now has passed).
    let ttl = proptest::option::of(prop_oneof![(0u16..6).prop_map(|n| n * 500), 0u16..3_000]);
    prop_oneof![
        2 => (k.clone(), any::<u8>(), ttl.clone()).prop_map(|(k, v, t)| Op::Create(k, v, t)),
        3 => (k.clone(), any::<u8>(), ttl.clone()).prop_map(|(k, v, t)| Op::Put(k, v, t)),
        3 => (k.clone(), any::<u8>(), ttl, any::<bool>()).prop_map(|(k, v, t, c)| Op::Cas(k, v, t, c)),
        1 => k.clone().prop_map(Op::Delete),
        2 => k.clone().prop_map(Op::Get),
        1 => proptest::collection::vec(k.clone(), 0..4).prop_map(Op::GetMany),
        1 => Just(Op::List),
        1 => k.prop_map(Op::WaitFromOld),
        3 => prop_oneof![(0u16..4).prop_map(|n| n * 500), 0u16..2_000].prop_map(Op::Advance),
        1 => Just(Op::Purge),
    ]
}

/// What the model knows of a key: the last write, expired or not.
#[derive(Debug, Clone)]
struct Stored {
    value: u8,
    version: Version,
    expires_at: Option<SystemTime>,
}

async fn run_model(ops: Vec<Op>) -> std::result::Result<(), String> {
    let clock = ManualClock::new(epoch(1_000_000));
    let records = Records::builder(MemoryStore::new()).clock(clock.clone()).build();
    let mut model: BTreeMap<&str, Stored> = BTreeMap::new();
    let mut old_versions: Vec<Version> = vec![Version::parse("never-issued")];
    let now = || clock.now();
    let live = |model: &BTreeMap<&str, Stored>, k: &str, at: SystemTime| {
        model
            .get(k)
            .filter(|s| s.expires_at.is_none_or(|t| t > at))
            .cloned()
    };
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = |what: String| format!("step {step} {op:?}: {what}");
        macro_rules! fail {
            ($($t:tt)*) => { return Err(ctx(format!($($t)*))) };
        }
        let at = now();
        let ttl = |t: &Option<u16>| t.map(|ms| at + Duration::from_millis(u64::from(ms)));
        match &op {
            Op::Create(i, value, t) | Op::Put(i, value, t) | Op::Cas(i, value, t, _) => {
                let name = MODEL_KEYS[*i];
                let current = live(&model, name, at);
                let mut record = Record::new(key(name), vec![*value]);
                record.expires_at = ttl(t);
                let (result, allowed) = match &op {
                    Op::Create(..) => (records.create(&record).await, current.is_none()),
                    Op::Put(..) => (records.put(&record).await, true),
                    Op::Cas(.., from_current) => {
                        let from = match (&current, from_current) {
                            (Some(c), true) => c.version.clone(),
                            _ => old_versions[usize::from(*value) % old_versions.len()].clone(),
                        };
                        let ok = current.as_ref().is_some_and(|c| c.version == from);
                        (records.cas_by_version(&record.with_version(from)).await, ok)
                    }
                    _ => unreachable!(),
                };
                match (allowed, result) {
                    (true, Ok(version)) => {
                        if old_versions.contains(&version) {
                            fail!("version {version} was issued before");
                        }
                        if let Some(prev) = model.get(name) {
                            old_versions.push(prev.version.clone());
                        }
                        model.insert(
                            name,
                            Stored {
                                value: *value,
                                version,
                                expires_at: ttl(t),
                            },
                        );
                    }
                    (false, Err(e)) => {
                        let want = match (&op, &current) {
                            (Op::Create(..), _) => ErrorKind::AlreadyExists,
                            (_, None) => ErrorKind::NotFound,
                            _ => ErrorKind::Conflict,
                        };
                        if e.kind() != want {
                            fail!("expected {want:?}, got {e}");
                        }
                        match (&e, &current) {
                            (Error::AlreadyExists { version, .. }, Some(c)) if version != &c.version => {
                                fail!("AlreadyExists carries {version}, current is {}", c.version)
                            }
                            _ => {}
                        }
                    }
                    (allowed, got) => fail!("allowed {allowed}, current {current:?}, got {got:?}"),
                }
            }
            Op::Delete(i) => {
                let name = MODEL_KEYS[*i];
                match (live(&model, name, at), records.delete(&key(name)).await) {
                    (Some(_), Ok(())) => {
                        model.remove(name);
                    }
                    (None, Err(e)) if e.is_not_found() => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::Get(i) => {
                let name = MODEL_KEYS[*i];
                match (live(&model, name, at), records.get(&key(name)).await) {
                    (None, Err(e)) if e.is_not_found() => {}
                    (Some(s), Ok(r))
                        if r.value[..] == [s.value]
                            && r.version == s.version
                            && r.expires_at == s.expires_at => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::GetMany(is) => {
                let keys: Vec<Key> = is.iter().map(|i| key(MODEL_KEYS[*i])).collect();
                let got: Vec<Option<Version>> = records
                    .get_many(&keys)
                    .await
                    .map_err(|e| ctx(e.to_string()))?
                    .into_iter()
                    .map(|r| r.map(|r| r.version))
                    .collect();
                let want: Vec<Option<Version>> = is
                    .iter()
                    .map(|i| live(&model, MODEL_KEYS[*i], at).map(|s| s.version))
                    .collect();
                if got != want {
                    fail!("get_many {got:?} != model {want:?}");
                }
            }
            Op::List => {
                let want: Vec<String> = model
                    .keys()
                    .filter(|k| live(&model, k, at).is_some())
                    .map(|k| k.to_string())
                    .collect();
                let got = keys(&records, "*").await;
                if got != want {
                    fail!("list {got:?} != model {want:?}");
                }
            }
            Op::WaitFromOld(i) => {
                let name = MODEL_KEYS[*i];
                let from = Version::parse("never-issued");
                let got = records.wait_for_version_change(&key(name), &from).now_or_never();
                match (live(&model, name, at), got) {
                    (Some(s), Some(Ok(v))) if v == s.version => {}
                    (None, Some(Err(e))) if e.is_not_found() => {}
                    (want, got) => fail!("model {want:?}, got {got:?} (must not block)"),
                }
            }
            Op::Advance(ms) => clock.advance(Duration::from_millis(u64::from(*ms))),
            Op::Purge => {
                records.purge_expired().await.map_err(|e| ctx(e.to_string()))?;
                model.retain(|_, s| s.expires_at.is_none_or(|t| t > at));
                let stored: Vec<String> = records
                    .backend()
                    .list_keys("")
                    .await
                    .map_err(|e| ctx(e.to_string()))?
                    .into_iter()
                    .map(|k| k.to_string())
                    .collect();
                let want: Vec<String> = model.keys().map(|k| k.to_string()).collect();
                if stored != want {
                    fail!("after purge the backend holds {stored:?}, live records are {want:?}");
                }
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn model_based_random_operations_with_a_manual_clock() {
    store_testkit::prop::check(
        "records_with_manual_clock",
        store_testkit::prop::cases(128),
        proptest::collection::vec(op_strategy(), 1..50),
        run_model,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// The shared suite catches a broken record store.

/// A record store whose `cas_by_version` ignores the version.
#[derive(Debug)]
struct BlindCas(Records<MemoryStore>);

#[async_trait]
impl RecordStore for BlindCas {
    async fn create(&self, record: &Record) -> Result<Version> {
        self.0.create(record).await
    }
    async fn get(&self, key: &Key) -> Result<Record> {
        self.0.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        self.0.get_many(keys).await
    }
    async fn put(&self, record: &Record) -> Result<Version> {
        self.0.put(record).await
    }
    async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>> {
        self.0.put_many(records).await
    }
    async fn cas_by_version(&self, record: &Record) -> Result<Version> {
        self.0.get(&record.key).await?;
        self.0.put(record).await
    }
    async fn delete(&self, key: &Key) -> Result<()> {
        self.0.delete(key).await
    }
    async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version> {
        self.0.wait_for_version_change(key, version).await
    }
    async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>> {
        self.0.list_keys(pattern).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_catches_a_cas_that_ignores_the_version() {
    use store_testkit::records::{CHECKS, run_checks};
    let cas_checks: Vec<_> = CHECKS
        .iter()
        .filter(|(name, _)| name.contains("cas"))
        .copied()
        .collect();
    assert!(cas_checks.len() >= 3);
    let outcome = AssertUnwindSafe(run_checks(
        || async { BlindCas(Records::new(MemoryStore::new())) },
        &cas_checks,
    ))
    .catch_unwind()
    .await;
    let panic = outcome.expect_err("the suite passed a store whose CAS ignores the version");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("concurrent_cas_has_one_winner"), "{msg}");
    assert!(msg.contains("cas_by_version_replaces_value_and_expiry"), "{msg}");
}
