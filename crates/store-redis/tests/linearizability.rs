//! RedisStore and RedisRecords on the Redis server are linearizable: recorded histories of
//! concurrent clients (puts in every mode, streaming writers, deletes with and without a
//! version, gets, heads, listings and watches; for records, the calls of a record store
//! through the testkit's `RecordsAsBackend`) checked against the versioned register model —
//! through one connection, through two connections (as two processes would), and with
//! faults injected in front of the store (refused writes, lost replies, failed reads,
//! listings cut short, latency). Needs `STORE_REDIS_URL` (see `scripts/redis.sh env`), or
//! `STORE_SKIP_REDIS=1` to skip.

mod common;

use std::sync::Arc;

use store_core::Backend;
use store_redis::{RedisOptions, RedisRecords, RedisStore};
use store_testkit::linearizability::{Config, Mix, RecordsAsBackend, linearizability_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_is_linearizable() {
    let Some(url) = common::url("redis_store_is_linearizable") else {
        return;
    };
    let prefix = common::run_prefix("linearizability-store");
    let opts = RedisOptions::new(&url).with_key_prefix(&prefix);
    store_testkit::linearizability(
        || async { RedisStore::connect(opts).await.unwrap() },
        Config::default(),
    )
    .await;
    common::clean_up(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_records_are_linearizable() {
    let Some(url) = common::url("redis_records_are_linearizable") else {
        return;
    };
    let prefix = common::run_prefix("linearizability-records");
    let opts = RedisOptions::new(&url).with_key_prefix(&prefix);
    let records = || async { RecordsAsBackend::new(RedisRecords::connect(opts).await.unwrap()) };
    let config = Config::default().with_seed(2).with_mix(Mix::records());
    store_testkit::linearizability(records, config).await;
    common::clean_up(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_is_linearizable_with_faults_in_front() {
    let Some(url) = common::url("redis_store_is_linearizable_with_faults_in_front") else {
        return;
    };
    let prefix = common::run_prefix("linearizability-faults");
    let opts = RedisOptions::new(&url).with_key_prefix(&prefix);
    let config = Config::default().with_seed(3).with_random_faults(0.1);
    store_testkit::linearizability(|| async { RedisStore::connect(opts).await.unwrap() }, config).await;
    common::clean_up(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_records_are_linearizable_with_faults_in_front() {
    let Some(url) = common::url("redis_records_are_linearizable_with_faults_in_front") else {
        return;
    };
    let prefix = common::run_prefix("linearizability-records-faults");
    let opts = RedisOptions::new(&url).with_key_prefix(&prefix);
    let records = || async { RecordsAsBackend::new(RedisRecords::connect(opts).await.unwrap()) };
    let config = Config::default()
        .with_seed(4)
        .with_mix(Mix::records())
        .with_random_faults(0.1);
    store_testkit::linearizability(records, config).await;
    common::clean_up(&url, &prefix).await;
}

/// Two stores with connections of their own on one key prefix: the clients' commands
/// reach the server on two sockets, in whichever order they arrive, and each store's
/// watches are woken through its own subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_through_two_connections_is_linearizable() {
    let Some(url) = common::url("redis_store_through_two_connections_is_linearizable") else {
        return;
    };
    let prefix = common::run_prefix("linearizability-two");
    let mut stores: Vec<Arc<dyn Backend>> = Vec::new();
    for _ in 0..2 {
        let opts = RedisOptions::new(&url).with_key_prefix(&prefix);
        stores.push(Arc::new(RedisStore::connect(opts).await.unwrap()));
    }
    linearizability_of(&stores, Config::default().with_seed(5)).await;
    common::clean_up(&url, &prefix).await;
}
