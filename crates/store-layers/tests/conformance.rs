//! Every layer, and the whole production stack, meets the backend contract.

use std::sync::Arc;
use std::time::Duration;

use store_core::{Backend, BackendExt};
use store_fs::FsStore;
use store_layers::{Limit, Metrics, Prefix, Retry, Timeout, Trace};
use store_memory::MemoryStore;
use store_testkit::backend::run_all;

/// The stack the README recommends, over `store`.
fn stack<B: Backend>(store: B) -> impl Backend {
    store
        .layer(Limit::new(8))
        .layer(Timeout::new(Duration::from_secs(60)))
        .layer(Trace::new("conformance"))
        .layer(Metrics::new("conformance"))
        .layer(Retry::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_over_memory() {
    run_all(|| async { MemoryStore::new().layer(Retry::default()) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeout_over_memory() {
    run_all(|| async { MemoryStore::new().layer(Timeout::new(Duration::from_secs(60))) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trace_over_memory() {
    run_all(|| async { MemoryStore::new().layer(Trace::new("memory")) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_over_memory() {
    run_all(|| async { MemoryStore::new().layer(Metrics::new("memory")) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limit_over_memory() {
    // Fewer permits than the suite's concurrent tasks, so they really queue.
    run_all(|| async { MemoryStore::new().layer(Limit::new(3)) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prefix_over_memory_shared_with_neighbours() {
    run_all(|| async {
        // Keys just outside the namespace, before and after it in order, must never show.
        let shared = Arc::new(MemoryStore::new());
        for outside in ["tenant", "tenanta/x", "tenant-b/y", "a", "z/z", "tenanu/x"] {
            shared
                .put_bytes(&store_core::Key::new(outside).unwrap(), "neighbour")
                .await
                .unwrap();
        }
        shared.layer(Prefix::new("tenant").unwrap())
    })
    .await
    .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_stack_over_memory() {
    run_all(|| async { stack(MemoryStore::new()) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_stack_over_fs() {
    // Each check gets a fresh directory; they are removed when the test ends.
    let dirs = std::sync::Mutex::new(Vec::new());
    run_all(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        dirs.lock().unwrap().push(dir);
        async move { stack(FsStore::open(path).await.expect("open store")) }
    })
    .await
    .assert_all_ran();
}
