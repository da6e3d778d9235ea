//! Behaviour of `Replica` beyond the backend contract: fan-out, back-pressure, the sticky
//! error state, shutdown, repair, read races and the listing union.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use store_core::{Backend, BackendExt, Error, ErrorKind, Key, ListOptions, PutOptions};
use store_memory::MemoryStore;
use store_replica::{Replica, ShutdownToken, resync};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

async fn keys(b: &dyn Backend, opts: ListOptions) -> Vec<String> {
    b.list(opts)
        .map_ok(|m| m.key.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// Polls `fut` a few times, letting other tasks run in between, and checks it is still
/// waiting. Deterministic: it can only finish if something it waits for moves.
async fn assert_pending<F: Future + Unpin>(fut: &mut F, what: &str) {
    for _ in 0..20 {
        assert!(
            futures::poll!(&mut *fut).is_pending(),
            "{what} finished too early"
        );
        tokio::task::yield_now().await;
    }
}

fn poisoned_cause(e: &Error) -> String {
    match e {
        Error::Poisoned { cause } => cause.to_string(),
        other => panic!("expected Poisoned, got {other:?}"),
    }
}

#[test]
fn bad_configurations_are_refused() {
    let mem = || -> Arc<dyn Backend> { Arc::new(MemoryStore::new()) };
    let e = Replica::new(vec![], vec![mem()], 4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("at least one synchronous store"), "{e}");
    let e = Replica::new(vec![mem()], vec![mem()], 0).unwrap_err();
    assert!(e.to_string().contains("queue_len must be at least 1"), "{e}");
    // No runtime here: async stores cannot be served, sync-only replicas can.
    let e = Replica::new(vec![mem()], vec![mem()], 4).unwrap_err();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
    assert!(Replica::new(vec![mem()], vec![], 4).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_put_reaches_every_store() {
    use proptest::prelude::*;
    let blobs = proptest::collection::vec((0usize..6, proptest::collection::vec(any::<u8>(), 0..300)), 1..40);
    store_testkit::prop::check(
        "every_acknowledged_put_reaches_every_store",
        store_testkit::prop::cases(32),
        blobs,
        |blobs| async move {
            let (a, b, c) = (MemoryStore::new(), MemoryStore::new(), MemoryStore::new());
            let replica = Replica::builder()
                .sync_store(a.clone())
                .sync_store(b.clone())
                .async_store(c.clone())
                .queue_len(4)
                .build()
                .map_err(|e| e.to_string())?;
            let mut last = std::collections::BTreeMap::new();
            for (i, data) in blobs {
                let k = key(&format!("blob/{i}"));
                replica
                    .put(&k, Bytes::from(data.clone()), PutOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                for (name, store) in [("sync 0", &a), ("sync 1", &b)] {
                    let got = store.get_bytes(&k).await.map_err(|e| e.to_string())?;
                    if got != data {
                        return Err(format!("{name} does not hold the acknowledged put of {k}"));
                    }
                }
                last.insert(k, data);
            }
            replica.flush().await.map_err(|e| e.to_string())?;
            for (k, data) in &last {
                let got = c.get_bytes(k).await.map_err(|e| e.to_string())?;
                if got != *data {
                    return Err(format!("async store holds {got:?} for {k}, want {data:?}"));
                }
            }
            if c.len() != last.len() {
                return Err(format!(
                    "async store has {} objects, want {}",
                    c.len(),
                    last.len()
                ));
            }
            replica.close().await.map_err(|e| e.to_string())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_makes_put_wait_until_the_async_store_moves() {
    const N: usize = 3;
    let sync = MemoryStore::new();
    let stalled = Faulty::new(MemoryStore::new());
    stalled.inject(Rule::new(FaultOp::Put, Fault::Hang));
    let replica = Replica::builder()
        .sync_store(sync.clone())
        .async_store(stalled.clone())
        .queue_len(N)
        .build()
        .unwrap();
    for i in 0..N {
        replica.put_bytes(&key(&format!("k{i}")), "v").await.unwrap();
    }
    assert_eq!(replica.health().async_stores[0].queued, N as u64);
    let last = key("last");
    let mut waiting = Box::pin(replica.put_bytes(&last, "v"));
    assert_pending(&mut waiting, "put n+1 with a full queue").await;
    // Waiting for room happens before any write: nothing of it is visible yet.
    assert!(!sync.exists(&last).await.unwrap());
    stalled.release();
    waiting.await.unwrap();
    replica.flush().await.unwrap();
    assert_eq!(stalled.inner().len(), N + 1);
    let h = replica.health();
    assert_eq!(
        (h.async_stores[0].queued, h.async_stores[0].applied),
        (0, N as u64 + 1)
    );
    assert!(h.is_healthy() && h.max_lag() == 0);
    replica.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_a_waiting_put_leaves_nothing_behind() {
    let sync = MemoryStore::new();
    let stalled = Faulty::new(MemoryStore::new());
    stalled.inject(Rule::new(FaultOp::Put, Fault::Hang));
    let replica = Replica::builder()
        .sync_store(sync.clone())
        .async_store(stalled.clone())
        .async_store(MemoryStore::new())
        .queue_len(1)
        .build()
        .unwrap();
    replica.put_bytes(&key("first"), "1").await.unwrap();
    let waiting = {
        let replica = replica.clone();
        tokio::spawn(async move { replica.put_bytes(&key("cancelled"), "2").await })
    };
    let probe_key = key("probe");
    let mut probe = Box::pin(replica.put_bytes(&probe_key, "3"));
    assert_pending(&mut probe, "a second waiting put").await;
    drop(probe);
    // Cancelling returns promptly even though the async store is still stuck.
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    assert!(!sync.exists(&key("cancelled")).await.unwrap());
    assert_eq!(
        replica.health().async_stores[1].queued,
        0,
        "no half-queued operation"
    );
    stalled.release();
    replica.put_bytes(&key("after"), "4").await.unwrap();
    replica.flush().await.unwrap();
    assert_eq!(
        keys(stalled.inner(), ListOptions::default()).await,
        ["after", "first"]
    );
    replica.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_async_failure_poisons_every_later_call_until_repaired() {
    let sync = MemoryStore::new();
    let flaky = Faulty::new(MemoryStore::new()).named("backup");
    let replica = Replica::builder()
        .sync_store(sync.clone())
        .async_store(flaky.clone())
        .build()
        .unwrap();
    replica.put_bytes(&key("a"), "1").await.unwrap();
    flaky.inject(Rule::new(FaultOp::Put, Fault::Fail).for_key(&key("b")));
    replica.put_bytes(&key("b"), "2").await.unwrap();
    let e = replica.flush().await.unwrap_err();
    let cause = poisoned_cause(&e);
    assert!(cause.contains("injected fault at Put \"b\""), "{cause}");
    assert!(cause.contains("backup"), "{cause}");
    // Every call reports the same cause.
    let k = key("a");
    let errors = vec![
        replica.put_bytes(&key("c"), "3").await.unwrap_err(),
        replica.get_bytes(&k).await.unwrap_err(),
        replica.head(&k).await.unwrap_err(),
        replica
            .list(ListOptions::default())
            .next()
            .await
            .unwrap()
            .unwrap_err(),
        replica.delete_if_exists(&k).await.unwrap_err(),
        replica.watch(&k, None).await.unwrap_err(),
        replica.writer(&k, PutOptions::default()).await.unwrap_err(),
    ];
    for e in &errors {
        assert_eq!(poisoned_cause(e), cause);
    }
    assert!(
        !sync.exists(&key("c")).await.unwrap(),
        "a refused put writes nothing"
    );
    let h = replica.health();
    assert!(!h.is_healthy());
    assert_eq!(h.async_stores[0].last_error.as_ref().unwrap().to_string(), cause);

    // The operator fixes the store and resyncs it: a fresh replica over the stores works.
    flaky.release();
    let report = resync(&sync, &flaky).await.unwrap();
    assert_eq!((report.copied, report.deleted, report.unchanged), (1, 0, 1));
    drop(replica);
    let fresh = Replica::builder()
        .sync_store(sync.clone())
        .async_store(flaky.clone())
        .build()
        .unwrap();
    fresh.put_bytes(&key("c"), "3").await.unwrap();
    assert_eq!(fresh.get_bytes(&key("b")).await.unwrap(), "2");
    fresh.close().await.unwrap();
    assert_eq!(keys(&flaky, ListOptions::default()).await, ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repair_resyncs_and_clears_the_error_state() {
    let sync = MemoryStore::new();
    let flaky = Faulty::new(MemoryStore::new());
    let replica = Replica::builder()
        .sync_store(sync.clone())
        .async_store(flaky.clone())
        .build()
        .unwrap();
    flaky.inject(Rule::new(FaultOp::Put, Fault::Fail).times(1));
    replica.put_bytes(&key("x"), "1").await.unwrap();
    assert_eq!(replica.flush().await.unwrap_err().kind(), ErrorKind::Poisoned);
    let reports = replica.repair().await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].copied, 1);
    assert!(replica.health().poisoned.is_none());
    replica.put_bytes(&key("y"), "2").await.unwrap();
    replica.delete(&key("x"), Default::default()).await.unwrap();
    replica.close().await.unwrap();
    assert_eq!(keys(&flaky, ListOptions::default()).await, ["y"]);
    assert_eq!(replica.repair().await.unwrap_err().kind(), ErrorKind::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_drains_the_queues_then_refuses_calls() {
    let slow = Faulty::new(MemoryStore::new());
    slow.inject(Rule::new(
        FaultOp::Put,
        Fault::Latency(std::time::Duration::from_millis(2)),
    ));
    let replica = Replica::builder()
        .sync_store(MemoryStore::new())
        .async_store(slow.clone())
        .queue_len(100)
        .build()
        .unwrap();
    for i in 0..20 {
        replica.put_bytes(&key(&format!("k{i:02}")), "v").await.unwrap();
    }
    replica.close().await.unwrap();
    assert_eq!(slow.inner().len(), 20, "close waits for the queue to drain");
    let e = replica.put_bytes(&key("late"), "v").await.unwrap_err();
    assert_eq!(e.to_string(), "put: closed");
    assert_eq!(replica.flush().await.unwrap_err().kind(), ErrorKind::Closed);
    let h = replica.health();
    assert!(h.closed && !h.async_stores[0].running);
    replica.close().await.unwrap();
}

#[tokio::test]
async fn a_replica_of_one_store_refuses_calls_after_close_too() {
    // One sync store and no queue: puts hand back the store's own future.
    let store = MemoryStore::new();
    let replica = Replica::builder().sync_store(store.clone()).build().unwrap();
    replica.put_bytes(&key("k"), "v").await.unwrap();
    replica.close().await.unwrap();
    let e = replica.put_bytes(&key("late"), "v").await.unwrap_err();
    assert_eq!(e.to_string(), "put: closed");
    assert!(
        replica
            .delete(&key("k"), Default::default())
            .await
            .unwrap_err()
            .kind()
            == ErrorKind::Closed
    );
    assert!(store.get_bytes(&key("late")).await.unwrap_err().is_not_found());
    assert_eq!(store.get_bytes(&key("k")).await.unwrap(), "v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelling_the_shutdown_token_stops_cleanly_and_reports_it() {
    let stalled = Faulty::new(MemoryStore::new());
    stalled.inject(Rule::new(FaultOp::Put, Fault::Hang));
    let token = ShutdownToken::new();
    let replica = Replica::builder()
        .sync_store(MemoryStore::new())
        .async_store(stalled.clone())
        .queue_len(2)
        .shutdown(token.clone())
        .build()
        .unwrap();
    replica.put_bytes(&key("a"), "1").await.unwrap();
    replica.put_bytes(&key("b"), "2").await.unwrap();
    let waiting = {
        let replica = replica.clone();
        tokio::spawn(async move { replica.put_bytes(&key("c"), "3").await })
    };
    token.cancel();
    // The waiting put wakes up with the error instead of hanging.
    let e = waiting.await.unwrap().unwrap_err();
    assert_eq!(poisoned_cause(&e), "replica shutdown: closed");
    // close() finishes although the store still hangs: the task is gone.
    assert_eq!(replica.close().await.unwrap_err().kind(), ErrorKind::Poisoned);
    let h = replica.health();
    let lane = &h.async_stores[0];
    assert!(!lane.running);
    assert_eq!((lane.queued, lane.applied, lane.dropped), (0, 0, 2));
    assert!(stalled.inner().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_the_replica_stops_its_tasks() {
    let stalled = Arc::new(Faulty::new(MemoryStore::new()));
    stalled.inject(Rule::new(FaultOp::Put, Fault::Hang));
    let as_backend: Arc<dyn Backend> = stalled.clone();
    let replica = Replica::new(vec![Arc::new(MemoryStore::new())], vec![as_backend], 8).unwrap();
    replica.put_bytes(&key("a"), "1").await.unwrap();
    replica.put_bytes(&key("b"), "1").await.unwrap();
    assert!(Arc::strong_count(&stalled) > 1);
    drop(replica);
    // The task held the last other reference to the store; it lets go once stopped.
    while Arc::strong_count(&stalled) > 1 {
        tokio::task::yield_now().await;
    }
    assert!(stalled.inner().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_to_one_key_reach_async_stores_in_order() {
    let (sync, copy) = (MemoryStore::new(), MemoryStore::new());
    let slow = Faulty::new(copy.clone());
    slow.inject(Rule::new(
        FaultOp::Put,
        Fault::Latency(std::time::Duration::from_micros(200)),
    ));
    let replica = Replica::builder()
        .sync_store(sync.clone())
        .async_store(slow)
        .queue_len(8)
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let replica = replica.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let k = key(&format!("k{}", i % 3));
                    replica.put_bytes(&k, format!("{t}-{i}")).await.unwrap();
                    if i % 7 == 0 {
                        replica.delete_if_exists(&k).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    replica.close().await.unwrap();
    assert_eq!(
        keys(&copy, ListOptions::default()).await,
        keys(&sync, ListOptions::default()).await
    );
    for k in keys(&sync, ListOptions::default()).await {
        let k = key(&k);
        assert_eq!(
            copy.get_bytes(&k).await.unwrap(),
            sync.get_bytes(&k).await.unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_takes_the_first_answer_with_the_primarys_version() {
    let (primary, secondary) = (Faulty::new(MemoryStore::new()), Faulty::new(MemoryStore::new()));
    let replica = Replica::builder()
        .sync_store(primary.clone())
        .sync_store(secondary.clone())
        .build()
        .unwrap();
    let k = key("k");
    let v = replica.put_bytes(&k, "data").await.unwrap().version;
    // A stuck secondary does not hold up reads…
    secondary.inject(Rule::new(FaultOp::Get, Fault::Hang));
    assert_eq!(replica.get_bytes(&k).await.unwrap(), "data");
    secondary.release();
    // …nor does a stuck primary, and the answer still carries the replica's version.
    primary.inject(Rule::new(FaultOp::Get, Fault::Hang));
    primary.inject(Rule::new(FaultOp::Head, Fault::Hang));
    let (meta, body) = replica.get_with_meta(&k).await.unwrap();
    assert_eq!((meta.version.clone(), body), (v.clone(), Bytes::from("data")));
    assert_eq!(replica.head(&k).await.unwrap().version, v);
    replica.update(&k, "next", v).await.unwrap();
    primary.release();

    // An object only a secondary has is found, under a version no conditional put accepts.
    let only = key("only-in-secondary");
    secondary.inner().put_bytes(&only, "stray").await.unwrap();
    let (meta, body) = replica.get_with_meta(&only).await.unwrap();
    assert_eq!(body, "stray");
    assert!(meta.version.to_string().starts_with("~replica1:"), "{meta:?}");
    let e = replica.update(&only, "x", meta.version).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // Not found only when every sync store says so, naming the key.
    let e = replica.get_bytes(&key("nowhere")).await.unwrap_err();
    assert_eq!(e.to_string(), "get \"nowhere\": not found");
    // A failing primary: the secondary answers.
    primary.inject(Rule::new(FaultOp::Get, Fault::Fail));
    assert_eq!(replica.get_bytes(&k).await.unwrap(), "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_is_the_union_of_uneven_sync_stores() {
    let (a, b) = (MemoryStore::new(), MemoryStore::new());
    a.put_bytes(&key("a"), "1").await.unwrap();
    a.put_bytes(&key("b"), "1").await.unwrap();
    b.put_bytes(&key("a"), "1").await.unwrap();
    b.put_bytes(&key("c"), "1").await.unwrap();
    for (x, y) in [(&a, &b), (&b, &a)] {
        let replica = Replica::builder()
            .sync_store(x.clone())
            .sync_store(y.clone())
            .build()
            .unwrap();
        assert_eq!(keys(&replica, ListOptions::default()).await, ["a", "b", "c"]);
        let after_a = ListOptions::default().with_start_after("a");
        assert_eq!(keys(&replica, after_a).await, ["b", "c"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_writes_are_decided_by_the_primary_and_copied_everywhere() {
    let (a, b, c) = (MemoryStore::new(), MemoryStore::new(), MemoryStore::new());
    let replica = Replica::builder()
        .sync_store(a.clone())
        .sync_store(b.clone())
        .async_store(c.clone())
        .build()
        .unwrap();
    let k = key("doc");
    let v1 = replica.create(&k, "one").await.unwrap().version;
    assert_eq!(
        a.head(&k).await.unwrap().version,
        v1,
        "the replica reports the primary's versions"
    );
    assert!(replica.create(&k, "again").await.unwrap_err().is_already_exists());
    let v2 = replica.update(&k, "two", v1.clone()).await.unwrap().version;
    assert!(
        replica
            .update(&k, "stale", v1.clone())
            .await
            .unwrap_err()
            .is_conflict()
    );
    assert!(replica.delete_if(&k, v1).await.unwrap_err().is_conflict());
    replica.flush().await.unwrap();
    for s in [&a, &b, &c] {
        assert_eq!(s.get_bytes(&k).await.unwrap(), "two");
    }
    replica.delete_if(&k, v2).await.unwrap();
    replica.flush().await.unwrap();
    assert!(a.is_empty() && b.is_empty() && c.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_compose() {
    let (a, b, backup) = (MemoryStore::new(), MemoryStore::new(), MemoryStore::new());
    let inner = Replica::builder()
        .sync_store(a.clone())
        .sync_store(b.clone())
        .build()
        .unwrap();
    let outer = Replica::builder()
        .sync_store(inner)
        .async_store(backup.clone())
        .build()
        .unwrap();
    let k = key("nested");
    let v = outer.put_bytes(&k, "x").await.unwrap().version;
    assert_eq!(a.head(&k).await.unwrap().version, v);
    outer.close().await.unwrap();
    for s in [&a, &b, &backup] {
        assert_eq!(s.get_bytes(&k).await.unwrap(), "x");
    }
}

#[tokio::test]
async fn resync_copies_differences_and_removes_extras() {
    let (good, stale) = (MemoryStore::new(), MemoryStore::new());
    for (k, v) in [
        ("a", "same"),
        ("b", "new!"),
        ("c", "only in good"),
        ("e/f", "deep"),
    ] {
        good.put_bytes(&key(k), v).await.unwrap();
    }
    // Same size, different content: found by comparing bytes, not sizes.
    for (k, v) in [("a", "same"), ("b", "old!"), ("d", "extra")] {
        stale.put_bytes(&key(k), v).await.unwrap();
    }
    let report = resync(&good, &stale).await.unwrap();
    assert_eq!((report.copied, report.deleted, report.unchanged), (3, 1, 1));
    assert_eq!(keys(&stale, ListOptions::default()).await, ["a", "b", "c", "e/f"]);
    assert_eq!(stale.get_bytes(&key("b")).await.unwrap(), "new!");
    let again = resync(&good, &stale).await.unwrap();
    assert_eq!((again.copied, again.deleted, again.unchanged), (0, 0, 4));
}

/// A put whose async queue closes while its sync write is in flight: the sync store keeps
/// the write (it cannot be undone, as documented), nothing is queued, and the put reports
/// the replica's state instead of success.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_that_closes_during_the_sync_write_fails_the_put() {
    let slow_sync = Faulty::new(MemoryStore::new());
    slow_sync.inject(Rule::new(FaultOp::Put, Fault::Hang));
    let async_store = MemoryStore::new();
    let token = ShutdownToken::new();
    let replica = Replica::builder()
        .sync_store(slow_sync.clone())
        .async_store(async_store.clone())
        .queue_len(4)
        .shutdown(token.clone())
        .build()
        .unwrap();
    let put = {
        let replica = replica.clone();
        tokio::spawn(async move { replica.put_bytes(&key("k"), "v").await })
    };
    // The put has its queue slot and hangs in the sync write.
    while slow_sync.calls(FaultOp::Put) == 0 {
        tokio::task::yield_now().await;
    }
    token.cancel();
    while replica.health().async_stores.iter().any(|a| a.running) {
        tokio::task::yield_now().await;
    }
    slow_sync.release();
    let e = put.await.unwrap().unwrap_err();
    assert_eq!(poisoned_cause(&e), "replica shutdown: closed");
    assert_eq!(slow_sync.inner().get_bytes(&key("k")).await.unwrap(), "v");
    assert!(async_store.is_empty());
    assert_eq!(replica.health().async_stores[0].queued, 0);
}

/// A put whose sync write does not complete at once holds its key's turn (and its queue
/// slot) until it does: a put to the same key waits, one to another key does not. Cancelled
/// meanwhile, it gives both back; completed, it queues before the next write of the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sync_write_holds_its_keys_turn_until_done_or_cancelled() {
    let sync = Faulty::new(MemoryStore::new());
    let copy = MemoryStore::new();
    let replica = Replica::builder()
        .sync_store(sync.clone())
        .async_store(copy.clone())
        .queue_len(2)
        .build()
        .unwrap();
    let k = key("k");
    let five_s = std::time::Duration::from_secs(5);

    // Cancelled: A hangs in its sync write, B waits for the key, C (another key) does not.
    sync.inject(Rule::new(FaultOp::Put, Fault::Hang).times(1));
    let mut a = Box::pin(replica.put_bytes(&k, "a"));
    assert_pending(&mut a, "a put whose sync write hangs").await;
    let mut b = Box::pin(replica.put_bytes(&k, "b"));
    assert_pending(&mut b, "a put waiting for its key's turn").await;
    replica.put_bytes(&key("other"), "c").await.unwrap();
    drop(a);
    tokio::time::timeout(five_s, b)
        .await
        .expect("the cancelled put gave the turn back")
        .unwrap();
    replica.flush().await.unwrap();
    assert_eq!(sync.inner().get_bytes(&k).await.unwrap(), "b");
    assert_eq!(copy.get_bytes(&k).await.unwrap(), "b");
    assert_eq!(copy.get_bytes(&key("other")).await.unwrap(), "c");

    // Completed: A2's slow write is queued before B2's, which waited for it.
    sync.inject(Rule::new(FaultOp::Put, Fault::Hang).times(1));
    let mut a2 = Box::pin(replica.put_bytes(&k, "a2"));
    assert_pending(&mut a2, "a put whose sync write hangs").await;
    let mut b2 = Box::pin(replica.put_bytes(&k, "b2"));
    assert_pending(&mut b2, "a put waiting for its key's turn").await;
    sync.release();
    tokio::time::timeout(five_s, a2).await.expect("released").unwrap();
    tokio::time::timeout(five_s, b2)
        .await
        .expect("the turn came back")
        .unwrap();
    replica.close().await.unwrap();
    assert_eq!(sync.inner().get_bytes(&k).await.unwrap(), "b2");
    assert_eq!(copy.get_bytes(&k).await.unwrap(), "b2");
    let health = replica.health();
    assert_eq!(
        (health.async_stores[0].queued, health.async_stores[0].applied),
        (0, 4)
    );
}

/// A sync store whose put panics (inside the replica's lock, in the common case) takes
/// nothing down with it: the lock and the queue slot are given back (the key's turn is not
/// taken on that path).
/// Run on a runtime of its own, in a thread of its own, so that a lock left held fails the
/// test instead of hanging it.
#[test]
fn a_panicking_sync_store_leaves_the_replica_usable() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(panicking_sync_store());
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the replica is usable again after a sync store's panic (no lock left held)");
}

async fn panicking_sync_store() {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A MemoryStore whose next put panics once armed.
    #[derive(Debug, Clone, Default)]
    struct Panicky {
        inner: MemoryStore,
        armed: Arc<AtomicBool>,
    }

    #[async_trait::async_trait]
    impl Backend for Panicky {
        fn capabilities(&self) -> store_core::Capabilities {
            self.inner.capabilities()
        }
        async fn put(
            &self,
            key: &Key,
            data: Bytes,
            opts: PutOptions,
        ) -> store_core::Result<store_core::Meta> {
            if self.armed.swap(false, Ordering::SeqCst) {
                panic!("injected panic in put");
            }
            self.inner.put(key, data, opts).await
        }
        async fn writer(
            &self,
            key: &Key,
            opts: PutOptions,
        ) -> store_core::Result<Box<dyn store_core::ObjectWriter>> {
            self.inner.writer(key, opts).await
        }
        async fn get(
            &self,
            key: &Key,
            opts: store_core::GetOptions,
        ) -> store_core::Result<store_core::Object> {
            self.inner.get(key, opts).await
        }
        async fn head(&self, key: &Key) -> store_core::Result<store_core::Meta> {
            self.inner.head(key).await
        }
        async fn delete(&self, key: &Key, opts: store_core::DeleteOptions) -> store_core::Result<()> {
            self.inner.delete(key, opts).await
        }
        fn list(
            &self,
            opts: ListOptions,
        ) -> futures::stream::BoxStream<'static, store_core::Result<store_core::Meta>> {
            self.inner.list(opts)
        }
        async fn watch(
            &self,
            key: &Key,
            seen: Option<&store_core::Version>,
        ) -> store_core::Result<Option<store_core::Version>> {
            self.inner.watch(key, seen).await
        }
    }

    let sync = Panicky::default();
    let copy = MemoryStore::new();
    let replica = Replica::builder()
        .sync_store(sync.clone())
        .async_store(copy.clone())
        .queue_len(1)
        .build()
        .unwrap();
    let k = key("k");
    sync.armed.store(true, Ordering::SeqCst);
    let panicked = tokio::spawn({
        let replica = replica.clone();
        let k = k.clone();
        async move { replica.put_bytes(&k, "lost").await }
    });
    let joined = tokio::time::timeout(std::time::Duration::from_secs(5), panicked)
        .await
        .expect("the panic unwound (no lock left held)");
    assert!(joined.unwrap_err().is_panic());
    // With one queue slot, this put needs the one the panicked put had taken.
    tokio::time::timeout(std::time::Duration::from_secs(5), replica.put_bytes(&k, "kept"))
        .await
        .expect("the turn and the slot came back")
        .unwrap();
    replica.flush().await.unwrap();
    assert_eq!(copy.get_bytes(&k).await.unwrap(), "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_speaks_with_the_primarys_versions_and_ends_at_an_error() {
    let (primary, secondary) = (MemoryStore::new(), Faulty::new(MemoryStore::new()));
    let replica = Replica::builder()
        .sync_store(primary.clone())
        .sync_store(secondary.clone())
        .build()
        .unwrap();
    let v = replica.put_bytes(&key("both"), "1").await.unwrap().version;
    secondary.inner().put_bytes(&key("stray"), "2").await.unwrap();
    let listed: Vec<_> = replica
        .list(ListOptions::default())
        .map_ok(|m| (m.key.to_string(), m.version.to_string()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed[0], ("both".to_string(), v.to_string()));
    assert_eq!(listed[1].0, "stray");
    assert!(listed[1].1.starts_with("~replica1:"), "{listed:?}");
    // A store whose listing fails ends the listing with its error.
    secondary.inject(Rule::new(FaultOp::List, Fault::Fail));
    let items: Vec<_> = replica.list(ListOptions::default()).collect().await;
    assert!(items.last().unwrap().is_err(), "{items:?}");
    assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
}
