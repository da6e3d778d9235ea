//! MemoryStore is linearizable: recorded histories of concurrent clients, with and without
//! injected faults, checked against the versioned register model.

use std::time::Duration;

use store_memory::MemoryStore;
use store_testkit::linearizability::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_is_linearizable() {
    store_testkit::linearizability(|| async { MemoryStore::new() }, Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_is_linearizable_with_lost_replies_and_refusals() {
    let config = Config::default().with_seed(2).with_random_faults(0.1);
    store_testkit::linearizability(|| async { MemoryStore::new() }, config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_is_linearizable_with_stalled_calls() {
    let config = Config::default()
        .with_seed(3)
        .with_stalls(0.002, Duration::from_millis(50));
    store_testkit::linearizability(|| async { MemoryStore::new() }, config).await;
}
