//! The shared backend and record-store conformance suites, against a real Redis server.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use store_redis::{RedisOptions, RedisRecords, RedisStore};

/// Above the suite's 64 MiB object.
const CONFORMANCE_MAX_OBJECT: usize = 80 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_meets_the_backend_contract() {
    let Some(url) = common::url("redis_store_meets_the_backend_contract") else {
        return;
    };
    let run = common::run_prefix("backend");
    let base = RedisStore::connect(RedisOptions::new(&url).with_max_object_size(CONFORMANCE_MAX_OBJECT))
        .await
        .unwrap();
    let n = AtomicUsize::new(0);
    // Each check gets an empty store: a key prefix of its own on the shared connection.
    store_testkit::backend::run_all(|| {
        let store = base.with_key_prefix(format!("{run}{}/", n.fetch_add(1, Ordering::Relaxed)));
        async move { store }
    })
    .await
    .assert_all_ran();
    common::clean_up(&url, &run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_records_meet_the_record_store_contract() {
    let Some(url) = common::url("redis_records_meet_the_record_store_contract") else {
        return;
    };
    let run = common::run_prefix("records");
    let base = RedisRecords::connect(RedisOptions::new(&url)).await.unwrap();
    let n = AtomicUsize::new(0);
    store_testkit::records::run_all(|| {
        let records = base.with_key_prefix(format!("{run}{}/", n.fetch_add(1, Ordering::Relaxed)));
        async move { records }
    })
    .await;
    common::clean_up(&url, &run).await;
}

#[tokio::test]
async fn a_listing_goes_on_past_a_corrupt_record() {
    let Some(url) = common::url("a_listing_goes_on_past_a_corrupt_record") else {
        return;
    };
    let prefix = common::run_prefix("corrupt");
    let records = RedisRecords::connect(RedisOptions::new(&url).with_key_prefix(&prefix))
        .await
        .unwrap();
    let mut raw = common::raw(&url).await;
    store_testkit::records::listing_goes_on_past_a_corrupt_record(&records, |k| async move {
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}{k}"))
            .arg("not a record")
            .query_async(&mut raw)
            .await
            .unwrap();
    })
    .await;
    common::clean_up(&url, records.options().key_prefix()).await;
}
