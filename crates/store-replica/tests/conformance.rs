//! A Replica meets the whole backend contract: with one sync store, with two (reads raced,
//! versions from the primary), and with an async store that — after a flush — holds exactly
//! what the sync store holds.

use std::sync::Arc;

use futures::TryStreamExt;
use parking_lot::Mutex;
use store_core::{Backend, BackendExt, ListOptions};
use store_memory::MemoryStore;
use store_replica::Replica;

fn mem() -> Arc<dyn Backend> {
    Arc::new(MemoryStore::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_with_one_sync_store_passes_the_conformance_suite() {
    store_testkit::backend::run_all(|| async { Replica::new(vec![mem()], vec![], 1).unwrap() })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_with_two_sync_stores_passes_the_conformance_suite() {
    store_testkit::backend::run_all(|| async { Replica::new(vec![mem(), mem()], vec![], 1).unwrap() })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_with_an_async_store_passes_and_the_async_copy_matches_after_flush() {
    // Keep every replica alive past its check: dropping the last handle would stop its task.
    let built: Arc<Mutex<Vec<(Replica, MemoryStore, MemoryStore)>>> = Arc::default();
    let keep = Arc::clone(&built);
    store_testkit::backend::run_all(move || {
        let keep = Arc::clone(&keep);
        async move {
            let (sync, copy) = (MemoryStore::new(), MemoryStore::new());
            let replica = Replica::builder()
                .sync_store(sync.clone())
                .async_store(copy.clone())
                .queue_len(64)
                .build()
                .unwrap();
            keep.lock().push((replica.clone(), sync, copy));
            replica
        }
    })
    .await
    .assert_all_ran();
    let built = std::mem::take(&mut *built.lock());
    assert_eq!(built.len(), store_testkit::backend::CHECKS.len());
    for (replica, sync, copy) in built {
        replica.flush().await.unwrap();
        let want: Vec<_> = sync
            .list(ListOptions::default())
            .map_ok(|m| m.key)
            .try_collect()
            .await
            .unwrap();
        let got: Vec<_> = copy
            .list(ListOptions::default())
            .map_ok(|m| m.key)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got, want, "the async store lists what the sync store lists");
        for key in &want {
            assert_eq!(
                copy.get_bytes(key).await.unwrap(),
                sync.get_bytes(key).await.unwrap(),
                "content of {key}"
            );
        }
        replica.close().await.unwrap();
        assert_eq!(replica.health().async_stores[0].dropped, 0);
    }
}
