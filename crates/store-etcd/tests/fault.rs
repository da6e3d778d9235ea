//! Fault test: a three-node cluster loses its leader in the middle of a stream of CAS
//! increments, and no acknowledged increment is lost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use store_core::{Error, Key, Record, RecordStore};
use store_etcd::{EtcdOptions, EtcdRecords};

const TASKS: usize = 4;
const PER_TASK: u64 = 40;
/// The member is killed once this many increments were acknowledged.
const KILL_AFTER: u64 = 30;

/// Reads the counter, retrying through the election.
async fn read_counter(records: &EtcdRecords, k: &Key) -> Record {
    loop {
        match records.get(k).await {
            Ok(r) => return r,
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("reading the counter: {e}"),
        }
    }
}

fn value(r: &Record) -> u64 {
    std::str::from_utf8(&r.value).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_loses_no_acknowledged_increment() {
    let Some(eps) = common::endpoints(
        "STORE_ETCD_CLUSTER_ENDPOINTS",
        "killing_the_leader_loses_no_acknowledged_increment",
    ) else {
        return;
    };
    let prefix = common::run_prefix("fault");
    let opts = EtcdOptions::from_list(&eps)
        .with_key_prefix(&prefix)
        .with_request_timeout(Duration::from_secs(3));
    let endpoints = opts.endpoints().to_vec();
    assert_eq!(
        endpoints.len(),
        3,
        "STORE_ETCD_CLUSTER_ENDPOINTS must list three members"
    );
    let records = Arc::new(EtcdRecords::connect(opts).await.unwrap());
    let k = Key::new("counter").unwrap();
    records.create(&Record::new(k.clone(), "0")).await.unwrap();

    // A waiter that must survive the failover, whichever member its watch is on.
    let watched = Key::new("watched").unwrap();
    let v0 = records
        .put(&Record::new(watched.clone(), "before"))
        .await
        .unwrap();
    let waiter = {
        let (records, watched, v0) = (records.clone(), watched.clone(), v0.clone());
        tokio::spawn(async move { records.wait_for_version_change(&watched, &v0).await })
    };

    let acked = Arc::new(AtomicU64::new(0));
    let uncertain = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (records, k, acked, uncertain) = (records.clone(), k.clone(), acked.clone(), uncertain.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_TASK {
                loop {
                    let cur = read_counter(&records, &k).await;
                    let next =
                        Record::new(k.clone(), (value(&cur) + 1).to_string()).with_version(cur.version);
                    match records.cas_by_version(&next).await {
                        Ok(_) => {
                            acked.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Err(Error::Conflict { .. }) => {}
                        // The reply was lost: the increment may or may not have happened.
                        Err(e) if e.is_retryable() => {
                            uncertain.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("increment failed: {e}"),
                    }
                }
            }
        }));
    }

    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _revive = common::ReviveOnDrop;
    let leader = common::leader_index(&endpoints).await;
    let pid = common::kill_member(leader).await;
    let acked_at_kill = acked.load(Ordering::SeqCst);
    eprintln!(
        "killed member m{} (pid {pid}) after {acked_at_kill} increments",
        leader + 1
    );

    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("increments stalled after the leader was killed");

    let acked = acked.load(Ordering::SeqCst);
    let uncertain = uncertain.load(Ordering::SeqCst);
    assert_eq!(acked, TASKS as u64 * PER_TASK);
    assert!(acked > acked_at_kill, "no increment succeeded after the kill");
    let total = value(&read_counter(&records, &k).await);
    assert!(
        total >= acked && total <= acked + uncertain,
        "counter is {total}: {acked} increments acknowledged, {uncertain} uncertain"
    );
    eprintln!("counter {total}: {acked} acknowledged, {uncertain} uncertain");

    // The waiter is woken by a change made after the failover.
    let v1 = loop {
        match records.put(&Record::new(watched.clone(), "after")).await {
            Ok(v) => break v,
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    };
    let woke = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter was not woken after the failover")
        .unwrap()
        .unwrap();
    assert!(
        woke == v1 || woke != v0,
        "waiter returned the version it waited on"
    );

    drop(_revive);
    common::clean_up(&eps, &prefix).await;
}
