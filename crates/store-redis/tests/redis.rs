//! Behaviour particular to Redis, and the record seed's own behaviours for its Redis
//! implementation: what is stored, versions, expiry to the millisecond, waits on delete and
//! expiry, batches, globs and prefixes, limits, errors, concurrency across handles.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use store_core::{
    Backend, BackendExt, ErrorKind, GetOptions, Key, ListOptions, Record, RecordStore, Version,
};
use store_redis::{RedisError, RedisOptions, RedisRecords, RedisStore};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// A fresh prefix and a record store on it.
async fn records(url: &str, test: &str) -> RedisRecords {
    RedisRecords::connect(RedisOptions::new(url).with_key_prefix(common::run_prefix(test)))
        .await
        .unwrap()
}

async fn listed(r: &RedisRecords, pattern: &str) -> Vec<String> {
    let keys: Vec<Key> = r.list_keys(pattern).await.unwrap().try_collect().await.unwrap();
    keys.into_iter().map(|k| k.to_string()).collect()
}

/// Waits on `k` from `v` in a task of its own, for at most ten seconds (a bound on a hang,
/// not a measure of speed).
fn spawn_wait(
    r: &RedisRecords,
    k: &Key,
    v: &Version,
) -> tokio::task::JoinHandle<store_core::Result<Version>> {
    let (r, k, v) = (r.clone(), k.clone(), v.clone());
    tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(10), r.wait_for_version_change(&k, &v))
            .await
            .expect("the wait was never woken")
    })
}

#[tokio::test]
async fn create_refuses_an_existing_key_and_says_which_version_is_there() {
    let Some(url) = common::url("create_refuses_an_existing_key") else {
        return;
    };
    let r = records(&url, "create").await;
    let k = key("lease/worker");
    let v1 = r.create(&Record::new(k.clone(), "me")).await.unwrap();
    let e = r.create(&Record::new(k.clone(), "you")).await.unwrap_err();
    match &e {
        store_core::Error::AlreadyExists { version, op, .. } => {
            assert_eq!((version, *op), (&v1, "create"), "{e}");
        }
        other => panic!("expected AlreadyExists, got {other}"),
    }
    assert!(e.to_string().contains("lease/worker"), "{e}");
    assert_eq!(r.get(&k).await.unwrap().value, "me");
    common::clean_up(&url, r.options().key_prefix()).await;
}

#[tokio::test]
async fn records_are_text_headers_and_versions_come_from_the_prefix_counter() {
    let Some(url) = common::url("records_are_text_headers") else {
        return;
    };
    let r = records(&url, "stored").await;
    let prefix = r.options().key_prefix().to_owned();
    let at = UNIX_EPOCH + Duration::from_millis(4_102_444_800_123); // 2100-01-01
    let v1 = r
        .put(&Record::new(key("a"), "hello").with_expiry(at))
        .await
        .unwrap();
    let v2 = r.put(&Record::new(key("b"), "world")).await.unwrap();
    let v3 = r.put(&Record::new(key("a"), "again")).await.unwrap();
    let n = |v: &Version| v.as_u64().expect("numeric versions");
    assert!(
        n(&v1) < n(&v2) && n(&v2) < n(&v3),
        "versions are ordered: {v1} {v2} {v3}"
    );

    let mut raw = common::raw(&url).await;
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(format!("{prefix}b"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let text = String::from_utf8(stored).unwrap();
    assert_eq!(text, format!("1{:020}99999999999999999999world", n(&v2)));
    let counter: u64 = redis::cmd("GET")
        .arg(format!("{prefix}/version"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(counter, n(&v3));
    // The key expires in Redis at the record's own millisecond.
    let at_ms: i64 = redis::cmd("PEXPIRETIME")
        .arg(format!("{prefix}a"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(at_ms, -1, "a put without an expiry clears the key's TTL");
    r.put(&Record::new(key("a"), "x").with_expiry(at)).await.unwrap();
    let at_ms: i64 = redis::cmd("PEXPIRETIME")
        .arg(format!("{prefix}a"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(at_ms, 4_102_444_800_123);
    assert_eq!(r.get(&key("a")).await.unwrap().expires_at, Some(at));
    // The store's own names are never listed.
    assert_eq!(listed(&r, "**").await, ["a", "b"]);
    common::clean_up(&url, &prefix).await;
}

#[tokio::test]
async fn a_record_is_absent_from_the_millisecond_it_expires() {
    let Some(url) = common::url("a_record_is_absent_from_the_millisecond_it_expires") else {
        return;
    };
    let r = records(&url, "expiry").await;
    let k = key("session");
    // Whole milliseconds, so the stored expiry is exactly this one.
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let at = UNIX_EPOCH + Duration::from_millis(ms(SystemTime::now()) + 300);
    let v = r.put(&Record::new(k.clone(), "s").with_expiry(at)).await.unwrap();
    assert_eq!(r.get(&k).await.unwrap().expires_at, Some(at));
    let waiter = spawn_wait(&r, &k, &v);
    // Until the millisecond before: there. From the millisecond itself: gone, for every
    // operation, whether or not Redis has removed the key yet.
    while SystemTime::now() + Duration::from_millis(5) < at {
        if r.get(&k).await.is_err() && SystemTime::now() < at {
            panic!("the record vanished before its expiry");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(left).await;
    assert_eq!(r.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(r.get_many(std::slice::from_ref(&k)).await.unwrap()[0].is_none());
    assert!(listed(&r, "*").await.is_empty());
    assert_eq!(
        r.cas_by_version(&Record::new(k.clone(), "late").with_version(v.clone()))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(r.delete(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
    let woken = waiter.await.unwrap();
    assert_eq!(
        woken.unwrap_err().kind(),
        ErrorKind::NotFound,
        "a wait ends when the record expires"
    );
    r.create(&Record::new(k.clone(), "new")).await.unwrap();
    common::clean_up(&url, r.options().key_prefix()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_end_on_delete_and_on_expiry_and_follow_changes() {
    let Some(url) = common::url("waits_end_on_delete_and_on_expiry") else {
        return;
    };
    let r = records(&url, "wait").await;
    // Another handle (its own connection and subscription) makes the changes.
    let other = RedisRecords::connect(r.options().clone()).await.unwrap();
    let k = key("flag");
    let v1 = r.put(&Record::new(k.clone(), "1")).await.unwrap();

    let waiter = spawn_wait(&r, &k, &v1);
    let v2 = other
        .cas_by_version(&Record::new(k.clone(), "2").with_version(v1))
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), v2);

    let waiter = spawn_wait(&r, &k, &v2);
    other.delete(&k).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap_err().kind(), ErrorKind::NotFound);

    let soon = SystemTime::now() + Duration::from_millis(200);
    let v3 = other
        .put(&Record::new(k.clone(), "3").with_expiry(soon))
        .await
        .unwrap();
    let waiter = spawn_wait(&r, &k, &v3);
    assert_eq!(waiter.await.unwrap().unwrap_err().kind(), ErrorKind::NotFound);
    assert!(
        SystemTime::now() >= soon,
        "the wait ended before the record expired"
    );

    // A wait on an absent key, or from a version that is no longer there, returns at once.
    assert_eq!(
        r.wait_for_version_change(&k, &v3).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let v4 = other.put(&Record::new(k.clone(), "4")).await.unwrap();
    assert_eq!(r.wait_for_version_change(&k, &v2).await.unwrap(), v4);
    common::clean_up(&url, r.options().key_prefix()).await;
}

#[tokio::test]
async fn put_many_and_get_many_keep_order_and_alignment() {
    let Some(url) = common::url("put_many_and_get_many") else {
        return;
    };
    let r = records(&url, "many").await;
    // More than one script call's worth, with a key written twice (the later wins).
    let mut batch: Vec<Record> = (0..300)
        .map(|i| Record::new(key(&format!("k/{i:03}")), format!("v{i}")))
        .collect();
    batch.push(Record::new(key("k/007"), "later"));
    batch.push(Record::new(key("k/gone"), "x").with_expiry(SystemTime::now() - Duration::from_secs(1)));
    let versions = r.put_many(&batch).await.unwrap();
    assert_eq!(versions.len(), batch.len());
    let numbers: Vec<u64> = versions.iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "versions follow the batch's order"
    );

    let keys = [
        key("k/007"),
        key("k/missing"),
        key("k/299"),
        key("k/gone"),
        key("k/007"),
    ];
    let got = r.get_many(&keys).await.unwrap();
    let summary: Vec<Option<(String, Version)>> = got
        .into_iter()
        .map(|r| r.map(|r| (String::from_utf8(r.value.to_vec()).unwrap(), r.version)))
        .collect();
    assert_eq!(
        summary,
        [
            Some(("later".to_owned(), versions[300].clone())),
            None,
            Some(("v299".to_owned(), versions[299].clone())),
            None,
            Some(("later".to_owned(), versions[300].clone())),
        ]
    );
    let all: Vec<Key> = (0..600).map(|i| key(&format!("k/{i:03}"))).collect();
    let got = r.get_many(&all).await.unwrap();
    assert_eq!(got.iter().filter(|r| r.is_some()).count(), 300);
    assert_eq!(listed(&r, "k/*").await.len(), 300);
    common::clean_up(&url, r.options().key_prefix()).await;
}

#[tokio::test]
async fn globs_and_prefixes_match_only_themselves() {
    let Some(url) = common::url("globs_and_prefixes_match_only_themselves") else {
        return;
    };
    // Redis MATCH metacharacters in the store's prefix and in the glob's literal part must
    // not widen the scan to another store's keys.
    let run = common::run_prefix("glob");
    let base = RedisRecords::connect(RedisOptions::new(&url)).await.unwrap();
    let odd = base.with_key_prefix(format!("{run}a[b]*/"));
    let plain = base.with_key_prefix(format!("{run}ab-x/"));
    for k in ["lit*", "lit?", "litx", "x/y"] {
        odd.put(&Record::new(key(k), k)).await.unwrap();
        plain.put(&Record::new(key(k), k)).await.unwrap();
    }
    assert_eq!(listed(&odd, "**").await, ["lit*", "lit?", "litx", "x/y"]);
    assert_eq!(listed(&odd, "lit\\*").await, ["lit*"]);
    assert_eq!(listed(&odd, "lit?").await, ["lit*", "lit?", "litx"]);
    assert_eq!(listed(&plain, "x/*").await, ["x/y"]);
    common::clean_up(&url, &run).await;
}

#[tokio::test]
async fn values_over_the_limit_are_refused_naming_the_key() {
    let Some(url) = common::url("values_over_the_limit_are_refused") else {
        return;
    };
    let prefix = common::run_prefix("limit");
    let opts = RedisOptions::new(&url)
        .with_key_prefix(&prefix)
        .with_max_object_size(1024);
    let store = RedisStore::connect(opts.clone()).await.unwrap();
    assert_eq!(store.capabilities().max_object_size, Some(1024));
    store.put_bytes(&key("fits"), vec![7u8; 1024]).await.unwrap();
    let e = store
        .put_bytes(&key("too/big"), vec![7u8; 1025])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("put \"too/big\"") && msg.contains("1025") && msg.contains("1024"),
        "{msg}"
    );
    // A writer is held to the same limit when it closes, and leaves nothing behind.
    let mut w = store.writer(&key("streamed"), Default::default()).await.unwrap();
    w.write(vec![1u8; 1000].into()).await.unwrap();
    w.write(vec![1u8; 1000].into()).await.unwrap();
    assert_eq!(w.close().await.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(!store.exists(&key("streamed")).await.unwrap());

    let records = RedisRecords::connect(opts).await.unwrap();
    let big = vec![0u8; 2000];
    for e in [
        records
            .put(&Record::new(key("r"), big.clone()))
            .await
            .unwrap_err(),
        records
            .create(&Record::new(key("r"), big.clone()))
            .await
            .unwrap_err(),
        records.put_many(&[Record::new(key("r"), big)]).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("\"r\""), "{e}");
    }
    common::clean_up(&url, &prefix).await;
}

#[tokio::test]
async fn objects_and_records_share_the_stored_form() {
    let Some(url) = common::url("objects_and_records_share_the_stored_form") else {
        return;
    };
    let prefix = common::run_prefix("shared");
    let opts = RedisOptions::new(&url).with_key_prefix(&prefix);
    let store = RedisStore::connect(opts.clone()).await.unwrap();
    let records = RedisRecords::connect(opts).await.unwrap();
    assert!(
        store.capabilities().durable,
        "scripts/redis.sh runs with appendfsync always"
    );
    let m = store.put_bytes(&key("cfg"), "on").await.unwrap();
    let r = records.get(&key("cfg")).await.unwrap();
    assert_eq!(
        (r.value, r.version, r.expires_at),
        ("on".into(), m.version.clone(), None)
    );
    // A record that expired is absent as an object too.
    records
        .put(&Record::new(key("old"), "x").with_expiry(SystemTime::now() - Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(
        store.head(&key("old")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let listed: Vec<String> = store
        .list(ListOptions::default())
        .map_ok(|m| m.key.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["cfg"]);
    common::clean_up(&url, &prefix).await;
}

#[tokio::test]
async fn keys_redis_did_not_get_from_us_are_corrupt_not_panics() {
    let Some(url) = common::url("keys_redis_did_not_get_from_us_are_corrupt") else {
        return;
    };
    let prefix = common::run_prefix("foreign");
    let opts = RedisOptions::new(&url).with_key_prefix(&prefix);
    let store = RedisStore::connect(opts.clone()).await.unwrap();
    let records = RedisRecords::connect(opts).await.unwrap();
    let mut raw = common::raw(&url).await;
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}hash"))
        .arg("f")
        .arg("v")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}plain"))
        .arg("v")
        .query_async(&mut raw)
        .await
        .unwrap();
    for k in ["hash", "plain"] {
        let k = key(k);
        for e in [
            records.get(&k).await.unwrap_err(),
            records.create(&Record::new(k.clone(), "x")).await.unwrap_err(),
            records
                .cas_by_version(&Record::new(k.clone(), "x").with_version(1.into()))
                .await
                .unwrap_err(),
            store.head(&k).await.unwrap_err(),
            store.get_bytes(&k).await.unwrap_err(),
            store
                .get(&k, GetOptions::default().with_range(0..1))
                .await
                .unwrap_err(),
            store.delete_if(&k, Version::from(1)).await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{k}: {e}");
            assert!(e.to_string().contains(&format!("{k:?}")), "{e}");
        }
    }
    // An unconditional write or delete replaces what is there.
    records.put(&Record::new(key("plain"), "mine")).await.unwrap();
    assert_eq!(records.get(&key("plain")).await.unwrap().value, "mine");
    store.delete(&key("hash"), Default::default()).await.unwrap();
    common::clean_up(&url, &prefix).await;
}

#[tokio::test]
async fn connecting_reports_bad_urls_and_absent_servers() {
    let e = RedisRecords::connect(RedisOptions::new("http://:hunter2@nowhere/"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.to_string().contains("hunter2"), "the password leaked: {e}");
    // Nothing listens on port 1; TLS is compiled in, so a `rediss://` URL fails the same
    // way as a plain one: a retryable error naming the client's cause.
    for url in ["redis://127.0.0.1:1/", "rediss://127.0.0.1:1/"] {
        let opts = RedisOptions::new(url).with_connect_timeout(Duration::from_millis(500));
        let e = RedisStore::connect(opts).await.unwrap_err();
        assert!(e.is_retryable(), "{url}: {e}");
        let client = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<RedisError>());
        assert_eq!(client.map(RedisError::op), Some("connect"), "{url}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_eight_tasks_250_cas_increments_each_make_2000() {
    let Some(url) = common::url("two_handles_eight_tasks_250_cas_increments") else {
        return;
    };
    const TASKS: usize = 8;
    const EACH: u64 = 250;
    let opts = RedisOptions::new(&url).with_key_prefix(common::run_prefix("increments"));
    let handles = [
        Arc::new(RedisRecords::connect(opts.clone()).await.unwrap()),
        Arc::new(RedisRecords::connect(opts).await.unwrap()),
    ];
    let k = key("counter");
    handles[0].create(&Record::new(k.clone(), "0")).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (r, k) = (Arc::clone(&handles[t % 2]), k.clone());
            tokio::spawn(async move {
                let mut conflicts = 0u64;
                for _ in 0..EACH {
                    loop {
                        let cur = r.get(&k).await.unwrap();
                        let n: u64 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                        let next = Record::new(k.clone(), (n + 1).to_string()).with_version(cur.version);
                        match r.cas_by_version(&next).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("increment: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let total = handles[1].get(&k).await.unwrap();
    assert_eq!(
        total.value,
        (TASKS as u64 * EACH).to_string(),
        "after {conflicts} conflicts"
    );
    common::clean_up(&url, handles[0].options().key_prefix()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_published_while_the_subscription_is_down_is_not_missed() {
    let Some(url) = common::url("a_change_published_while_the_subscription_is_down") else {
        return;
    };
    let r = records(&url, "resubscribe").await;
    let prefix = r.options().key_prefix().to_owned();
    let k = key("flag");
    let v1 = r.put(&Record::new(k.clone(), "1")).await.unwrap();
    let waiter = spawn_wait(&r, &k, &v1);
    // Not a measure: time for the waiter to subscribe, read and park.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // In one transaction: drop every subscriber's connection, then write the record with
    // the store's own script, whose notification therefore reaches nobody. Only the read
    // after subscribing again can tell the waiter.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let mut raw = common::raw(&url).await;
    let (): () = redis::pipe()
        .atomic()
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .ignore()
        .cmd("EVAL")
        .arg(include_str!("../src/lua/write.lua"))
        .arg(2)
        .arg(format!("{prefix}/version"))
        .arg(format!("{prefix}{k}"))
        .arg("put")
        .arg("")
        .arg(format!("{now:020}"))
        .arg(format!("{prefix}/changes"))
        .arg("99999999999999999999")
        .arg("")
        .arg("2")
        .arg(k.as_str())
        .ignore()
        .query_async(&mut raw)
        .await
        .unwrap();
    let woken = waiter
        .await
        .unwrap()
        .expect("a change made while the subscription was down");
    let current = r.get(&k).await.unwrap();
    assert_eq!((woken, &current.value[..]), (current.version.clone(), &b"2"[..]));
    common::clean_up(&url, &prefix).await;
}
