//! MemoryStore meets the whole backend contract.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    store_testkit::backend::run_all(|| async { store_memory::MemoryStore::new() })
        .await
        .assert_all_ran();
}
