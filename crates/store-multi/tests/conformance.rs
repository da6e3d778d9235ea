//! `Multi` over three `MemoryStore`s meets the whole backend contract, in every write mode.

use std::sync::Arc;
use std::time::Duration;

use store_core::Backend;
use store_memory::MemoryStore;
use store_multi::{Multi, ReadPolicy, WriteMode};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

mod common;

use common::Streaming;

fn three(mode: WriteMode, read: ReadPolicy) -> Multi {
    let backends: Vec<Arc<dyn Backend>> = (0..3).map(|_| Arc::new(MemoryStore::new()) as _).collect();
    Multi::builder(backends)
        .mode(mode)
        .read_policy(read)
        .build()
        .expect("three backends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_mode_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async { three(WriteMode::All, ReadPolicy::InOrder) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_effort_mode_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async { three(WriteMode::BestEffort, ReadPolicy::Fastest) })
        .await
        .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_mode_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async { three(WriteMode::Quorum, ReadPolicy::InOrder) })
        .await
        .assert_all_ran();
}

/// The same through the backends' own writers (stores that stream writes, as a file store
/// does), rather than the fan-out's shared buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_path_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async {
        let backends: Vec<Arc<dyn Backend>> = (0..3)
            .map(|_| Arc::new(Streaming(MemoryStore::new())) as _)
            .collect();
        Multi::builder(backends)
            .mode(WriteMode::Quorum)
            .build()
            .expect("three backends")
    })
    .await
    .assert_all_ran();
}

/// With one backend slower than the others, a quorum is met before it answers. `Multi`'s
/// `Backend::put` still returns the version that reads report afterwards (it names every
/// backend's version), as the contract requires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_mode_over_a_slow_backend_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async {
        let slow = Faulty::new(MemoryStore::new());
        slow.inject(Rule::new(FaultOp::Put, Fault::Latency(Duration::from_millis(1))));
        let backends: Vec<Arc<dyn Backend>> = vec![
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryStore::new()),
            Arc::new(slow),
        ];
        Multi::builder(backends)
            .mode(WriteMode::Quorum)
            .build()
            .expect("three backends")
    })
    .await
    .assert_all_ran();
}
