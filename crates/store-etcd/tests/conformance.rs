//! The shared backend and record-store conformance suites, against a real etcd.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use store_etcd::{EtcdOptions, EtcdRecords, EtcdStore};

/// Above the suite's 64 MiB object; `scripts/etcd.sh` starts etcd with
/// `--max-request-bytes` of 128 MiB.
const CONFORMANCE_MAX_OBJECT: usize = 80 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_meets_the_backend_contract() {
    let Some(eps) = common::endpoints("STORE_ETCD_ENDPOINTS", "etcd_store_meets_the_backend_contract") else {
        return;
    };
    let run = common::run_prefix("backend");
    let base = EtcdStore::connect(EtcdOptions::from_list(&eps).with_max_object_size(CONFORMANCE_MAX_OBJECT))
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
    common::clean_up(&eps, &run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_records_meet_the_record_store_contract() {
    let Some(eps) = common::endpoints(
        "STORE_ETCD_ENDPOINTS",
        "etcd_records_meet_the_record_store_contract",
    ) else {
        return;
    };
    let run = common::run_prefix("records");
    let base = EtcdRecords::connect(EtcdOptions::from_list(&eps)).await.unwrap();
    let n = AtomicUsize::new(0);
    store_testkit::records::run_all(|| {
        let records = base.with_key_prefix(format!("{run}{}/", n.fetch_add(1, Ordering::Relaxed)));
        async move { records }
    })
    .await;
    common::clean_up(&eps, &run).await;
}
