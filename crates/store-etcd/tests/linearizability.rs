//! EtcdStore and EtcdRecords on the three-node cluster are linearizable: recorded histories
//! of concurrent clients checked against the versioned register model, also with the
//! cluster's leader killed in the middle of the run (its clients fail over; the calls
//! caught in the switch have an unknown outcome, and the history must still be
//! linearizable). Needs `STORE_ETCD_CLUSTER_ENDPOINTS` (see `scripts/etcd.sh env`), or
//! `STORE_SKIP_ETCD=1` to skip.

mod common;

use std::sync::Arc;
use std::time::Duration;

use store_core::Backend;
use store_etcd::{EtcdOptions, EtcdRecords, EtcdStore};
use store_testkit::linearizability::{Config, Mix, RecordsAsBackend, check, drive};

const VAR: &str = "STORE_ETCD_CLUSTER_ENDPOINTS";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_is_linearizable_on_the_cluster() {
    let Some(eps) = common::endpoints(VAR, "etcd_store_is_linearizable_on_the_cluster") else {
        return;
    };
    let prefix = common::run_prefix("linearizability-store");
    let opts = EtcdOptions::from_list(&eps).with_key_prefix(&prefix);
    store_testkit::linearizability(
        || async { EtcdStore::connect(opts).await.unwrap() },
        Config::default(),
    )
    .await;
    common::clean_up(&eps, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_records_are_linearizable_on_the_cluster() {
    let Some(eps) = common::endpoints(VAR, "etcd_records_are_linearizable_on_the_cluster") else {
        return;
    };
    let prefix = common::run_prefix("linearizability-records");
    let opts = EtcdOptions::from_list(&eps).with_key_prefix(&prefix);
    let records = || async { RecordsAsBackend::new(EtcdRecords::connect(opts).await.unwrap()) };
    let config = Config::default().with_seed(2).with_mix(Mix::records());
    store_testkit::linearizability(records, config).await;
    common::clean_up(&eps, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_is_linearizable_with_the_leader_killed_mid_run() {
    let Some(eps) = common::endpoints(VAR, "etcd_store_is_linearizable_with_the_leader_killed_mid_run")
    else {
        return;
    };
    let prefix = common::run_prefix("linearizability-kill");
    let opts = EtcdOptions::from_list(&eps)
        .with_key_prefix(&prefix)
        .with_request_timeout(Duration::from_secs(2));
    let endpoints = opts.endpoints().to_vec();
    let store: Arc<dyn Backend> = Arc::new(EtcdStore::connect(opts).await.unwrap());
    let config = Config::default().with_seed(3);
    let run = tokio::spawn(async move { drive(&[store], &config).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _revive = common::ReviveOnDrop;
    let leader = common::leader_index(&endpoints).await;
    common::kill_member(leader).await;
    let history = run.await.unwrap();
    let checked = check(&history).unwrap_or_else(|v| panic!("seed 3: {v}"));
    eprintln!(
        "leader m{} killed mid-run: {} calls, {} operations checked",
        leader + 1,
        history.len(),
        checked.ops
    );
    common::clean_up(&eps, &prefix).await;
}
