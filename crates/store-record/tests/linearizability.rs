//! Records are linearizable: recorded histories of concurrent clients calling create, get,
//! put, cas_by_version, delete, wait_for_version_change and list_keys (through the
//! testkit's `RecordsAsBackend`), checked against the versioned register model — over a
//! MemoryStore, over a FsStore, and over a backend that fails under them.

use store_fs::FsStore;
use store_memory::MemoryStore;
use store_record::Records;
use store_testkit::Faulty;
use store_testkit::linearizability::{Config, Mix, RecordsAsBackend};

fn config(seed: u64) -> Config {
    Config::default().with_seed(seed).with_mix(Mix::records())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_over_a_memory_store_are_linearizable() {
    let records = || async { RecordsAsBackend::new(Records::new(MemoryStore::new())) };
    store_testkit::linearizability(records, config(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_over_a_fs_store_are_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let records = || async { RecordsAsBackend::new(Records::new(FsStore::open(dir.path()).await.unwrap())) };
    store_testkit::linearizability(records, config(2).scaled(0.5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_over_a_failing_backend_are_linearizable() {
    let faults = Config::default().with_random_faults(0.1).faults;
    let records = || async {
        let below = Faulty::new(MemoryStore::new());
        for rule in faults {
            below.inject(rule);
        }
        RecordsAsBackend::new(Records::new(below))
    };
    store_testkit::linearizability(records, config(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_are_linearizable_with_faults_in_front() {
    let records = || async { RecordsAsBackend::new(Records::new(MemoryStore::new())) };
    store_testkit::linearizability(records, config(4).with_random_faults(0.1)).await;
}
