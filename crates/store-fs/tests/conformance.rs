//! FsStore meets the whole backend contract, at every durability level.

use store_fs::{Durability, FsStore};

async fn suite(durability: Durability) {
    // Each check gets a fresh directory; they are removed when the test ends.
    let dirs = std::sync::Mutex::new(Vec::new());
    store_testkit::backend::run_all(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        dirs.lock().unwrap().push(dir);
        async move {
            FsStore::builder(path)
                .durability(durability)
                .open()
                .await
                .expect("open store")
        }
    })
    .await
    .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_passes_the_conformance_suite_durably() {
    suite(Durability::Full).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_passes_the_conformance_suite_without_fsync() {
    suite(Durability::None).await;
}
