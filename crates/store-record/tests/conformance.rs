//! Records over a MemoryStore meet the whole record-store contract.

use store_memory::MemoryStore;
use store_record::Records;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_over_memory_pass_the_record_conformance_suite() {
    store_testkit::records::run_all(|| async { Records::new(MemoryStore::new()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_over_arc_dyn_backend_pass_the_record_conformance_suite() {
    // Generic over any backend, including a type-erased one.
    store_testkit::records::run_all(|| async {
        let backend: std::sync::Arc<dyn store_core::Backend> = std::sync::Arc::new(MemoryStore::new());
        Records::new(backend)
    })
    .await;
}
