//! Thousands of puts and deletes cancelled at random points while the async queues are
//! full: every queue slot comes back, and after `flush` the async stores hold exactly what
//! the sync stores hold.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use store_core::{Backend, BackendExt, Key, ListOptions};
use store_memory::MemoryStore;
use store_replica::Replica;
use store_testkit::{Fault, FaultOp, Faulty, Rule};

const QUEUE_LEN: usize = 3;
const KEYS: usize = 12;
const WAVES: usize = 30;
const PER_WAVE: usize = 100;

/// An async store that takes about a millisecond per write, so that the queues stay full.
fn slow_store() -> Faulty<MemoryStore> {
    let store = Faulty::new(MemoryStore::new());
    let ms = Fault::Latency(Duration::from_millis(1));
    store.inject(Rule::new(FaultOp::Put, ms.clone()));
    store.inject(Rule::new(FaultOp::Delete, ms));
    store
}

/// Every key with its content, in key order.
async fn snapshot(store: &dyn Backend) -> Vec<(Key, Bytes)> {
    let metas: Vec<_> = store.list(ListOptions::default()).try_collect().await.unwrap();
    let mut out = Vec::with_capacity(metas.len());
    for meta in metas {
        let data = store.get_bytes(&meta.key).await.unwrap();
        out.push((meta.key, data));
    }
    out
}

/// One mutation, cancelled at a random point: by a timeout, by aborting its task, or by
/// dropping it after a few polls. Some of them finish first.
async fn cancelled_mutation(replica: Replica, key: Key, value: String, how: u8, micros: u64, polls: usize) {
    let mutation = async {
        if value.ends_with('0') {
            replica.delete_if_exists(&key).await.map(drop)
        } else {
            replica.put_bytes(&key, value).await.map(drop)
        }
    };
    match how {
        0 => {
            if let Ok(done) = tokio::time::timeout(Duration::from_micros(micros), mutation).await {
                done.unwrap();
            }
        }
        _ => {
            let mut mutation = Box::pin(mutation);
            for _ in 0..polls {
                if let std::task::Poll::Ready(done) = futures::poll!(&mut mutation) {
                    done.unwrap();
                    return;
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn storm(replica: &Replica, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let keys: Vec<Key> = (0..KEYS).map(|i| Key::new(format!("k/{i}")).unwrap()).collect();
    for wave in 0..WAVES {
        let mut tasks = Vec::with_capacity(PER_WAVE);
        let mut aborts = Vec::new();
        for i in 0..PER_WAVE {
            let key = keys[rng.usize(..KEYS)].clone();
            let value = format!("{wave}-{i}");
            let task = tokio::spawn(cancelled_mutation(
                replica.clone(),
                key,
                value,
                rng.u8(0..2),
                rng.u64(0..3000),
                rng.usize(0..6),
            ));
            if rng.u8(0..4) == 0 {
                aborts.push((task.abort_handle(), rng.u64(0..2000)));
            }
            tasks.push(task);
        }
        for (abort, micros) in aborts {
            tokio::time::sleep(Duration::from_micros(micros)).await;
            abort.abort();
        }
        for task in tasks {
            if let Err(e) = task.await {
                assert!(e.is_cancelled(), "a mutation task panicked: {e}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_mutations_give_every_slot_back_and_the_stores_converge() {
    // The sync stores are in memory: their writes complete when first polled, so a
    // mutation is cancelled either before it writes anything or not at all, and the
    // async stores must end up exactly like them.
    let (primary, secondary) = (MemoryStore::new(), MemoryStore::new());
    let copies = [slow_store(), slow_store()];
    let replica = Replica::builder()
        .sync_store(primary.clone())
        .sync_store(secondary.clone())
        .async_store(copies[0].clone())
        .async_store(copies[1].clone())
        .queue_len(QUEUE_LEN)
        .build()
        .unwrap();
    storm(&replica, 19).await;
    replica.flush().await.unwrap();

    let health = replica.health();
    assert!(health.is_healthy(), "{health:?}");
    for lane in &health.async_stores {
        assert_eq!(lane.free_slots, QUEUE_LEN, "every slot is back: {lane:?}");
        assert_eq!((lane.queued, lane.dropped), (0, 0), "{lane:?}");
        assert!(lane.applied > 0, "the storm wrote something: {lane:?}");
    }
    let want = snapshot(&primary).await;
    assert!(!want.is_empty());
    assert_eq!(snapshot(&secondary).await, want);
    for copy in &copies {
        assert_eq!(snapshot(copy.inner()).await, want, "an async store differs");
    }
    replica.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutations_cancelled_during_slow_sync_writes_give_every_slot_back() {
    // A slow sync store: cancellation also lands during the sync writes, while a mutation
    // holds its key's turn and its slots. Those writes may stay on the sync stores without
    // being queued (as documented), so one more write of every key brings the stores back
    // in line.
    let primary = MemoryStore::new();
    let slow_sync = Faulty::new(MemoryStore::new());
    slow_sync.inject(Rule::new(FaultOp::Put, Fault::Latency(Duration::from_millis(1))));
    let copy = slow_store();
    let replica = Replica::builder()
        .sync_store(primary.clone())
        .sync_store(slow_sync.clone())
        .async_store(copy.clone())
        .queue_len(QUEUE_LEN)
        .build()
        .unwrap();
    storm(&replica, 7).await;
    replica.flush().await.unwrap();
    for lane in &replica.health().async_stores {
        assert_eq!(lane.free_slots, QUEUE_LEN, "every slot is back: {lane:?}");
        assert_eq!(lane.queued, 0, "{lane:?}");
    }

    for i in 0..KEYS {
        replica
            .put_bytes(&Key::new(format!("k/{i}")).unwrap(), format!("final {i}"))
            .await
            .unwrap();
    }
    replica.flush().await.unwrap();
    let want = snapshot(&primary).await;
    assert_eq!(want.len(), KEYS);
    assert_eq!(snapshot(slow_sync.inner()).await, want);
    assert_eq!(snapshot(copy.inner()).await, want);
    replica.close().await.unwrap();
}
