//! Fault test: the server is killed with SIGKILL in the middle of a stream of writes and
//! restarted from its append-only file (`appendfsync always`). No acknowledged write is
//! lost, the clients reconnect by themselves, and waiters survive the restart and wake on
//! the next change, also one made while their subscription was down.
//!
//! One test in a binary of its own: killing the server would disturb any test running
//! beside it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use store_core::{Key, Record, RecordStore, Version};
use store_redis::{RedisOptions, RedisRecords};

const TASKS: usize = 4;
/// The server is killed once this many writes were acknowledged.
const KILL_AFTER: usize = 200;
/// After the restart, each task goes on until it has this many more acknowledged writes.
const AFTER_RESTART: usize = 50;
/// A bound on each wait for progress: a hang fails the test instead of blocking CI.
const PATIENCE: Duration = Duration::from_secs(60);

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// What one writer task saw: the writes acknowledged (key, value, version) and the errors.
#[derive(Default)]
struct Seen {
    acked: Vec<(Key, String, Version)>,
    errors: Vec<store_core::Error>,
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "no progress within {PATIENCE:?}: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_server_mid_load_loses_no_acknowledged_write() {
    let Some(url) = common::url("killing_the_server_mid_load_loses_no_acknowledged_write") else {
        return;
    };
    let prefix = common::run_prefix("fault");
    let opts = RedisOptions::new(&url)
        .with_key_prefix(&prefix)
        .with_request_timeout(Duration::from_secs(2));
    let writer = Arc::new(RedisRecords::connect(opts.clone()).await.unwrap());
    // The waiters use a handle of their own, so their subscription and reads are theirs.
    let watcher = RedisRecords::connect(opts.clone()).await.unwrap();

    // Two waiters: one woken after the restart by a change made once it is back, one by a
    // change made right away, perhaps before its subscription is renewed.
    let (quiet, hurried) = (key("watched/quiet"), key("watched/hurried"));
    let mut waiters = Vec::new();
    for k in [&quiet, &hurried] {
        let v = writer.put(&Record::new(k.clone(), "before")).await.unwrap();
        let (r, k) = (watcher.clone(), k.clone());
        waiters.push(tokio::spawn(async move {
            tokio::time::timeout(PATIENCE, r.wait_for_version_change(&k, &v)).await
        }));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let revived = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let after: Arc<Vec<AtomicUsize>> = Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (r, stop, revived, total, after) = (
                Arc::clone(&writer),
                Arc::clone(&stop),
                Arc::clone(&revived),
                Arc::clone(&total),
                Arc::clone(&after),
            );
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let (k, value) = (key(&format!("load/{t}/{n}")), n.to_string());
                    match r.create(&Record::new(k.clone(), value.clone())).await {
                        Ok(v) => {
                            seen.acked.push((k, value, v));
                            total.fetch_add(1, Ordering::SeqCst);
                            if revived.load(Ordering::SeqCst) {
                                after[t].fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            seen.errors.push(e);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                seen
            })
        })
        .collect();

    let _revive = common::ReviveOnDrop;
    wait_until("the first writes", || total.load(Ordering::SeqCst) >= KILL_AFTER).await;
    let pid = common::kill_server().await;
    eprintln!(
        "killed redis-server (pid {pid}) after {} acknowledged writes",
        total.load(Ordering::SeqCst)
    );
    // Let the writers run into the dead server for a while.
    tokio::time::sleep(Duration::from_millis(500)).await;
    common::revive();
    revived.store(true, Ordering::SeqCst);
    // At once, from a fresh connection: the hurried waiter's subscription may still be down.
    let other = RedisRecords::connect(opts.clone()).await.unwrap();
    let hurried_v = other.put(&Record::new(hurried.clone(), "after")).await.unwrap();

    wait_until("every writer reconnected by itself", || {
        after.iter().all(|n| n.load(Ordering::SeqCst) >= AFTER_RESTART)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let seen = t.await.unwrap();
        acked.extend(seen.acked);
        errors.extend(seen.errors);
    }
    let unknown = errors.iter().filter(|e| e.is_outcome_unknown()).count();
    eprintln!(
        "{} writes acknowledged, {} failed ({unknown} with an unknown outcome)",
        acked.len(),
        errors.len()
    );
    for e in &errors {
        assert!(
            e.is_retryable() && (e.is_not_applied() || e.is_outcome_unknown()),
            "a write failed for another reason than the dead server: {e}"
        );
    }

    // Every acknowledged write survived the SIGKILL, as it was acknowledged.
    let keys: Vec<Key> = acked.iter().map(|(k, _, _)| k.clone()).collect();
    let found = other.get_many(&keys).await.unwrap();
    for ((k, value, version), got) in acked.iter().zip(found) {
        let got = got.unwrap_or_else(|| panic!("acknowledged write of {k} lost"));
        assert_eq!((&got.value[..], &got.version), (value.as_bytes(), version), "{k}");
    }

    // The waiters survived the restart: the hurried one was woken by the change made while
    // it may have been resubscribing, the quiet one is still waiting and wakes on the next.
    let [quiet_waiter, hurried_waiter] = <[_; 2]>::try_from(waiters).unwrap();
    let woken = hurried_waiter
        .await
        .unwrap()
        .expect("the hurried waiter was never woken");
    assert_eq!(woken.unwrap(), hurried_v);
    assert!(
        !quiet_waiter.is_finished(),
        "the quiet waiter returned without a change"
    );
    let quiet_v = writer.put(&Record::new(quiet.clone(), "after")).await.unwrap();
    let woken = quiet_waiter
        .await
        .unwrap()
        .expect("the quiet waiter was never woken");
    assert_eq!(woken.unwrap(), quiet_v);
    common::clean_up(&url, &prefix).await;
}
