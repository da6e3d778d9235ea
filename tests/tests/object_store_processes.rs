//! Two OS processes racing `PutMode::Update` through `ObjectStoreAdapter<FsStore>` on one
//! directory — what a delta-rs or DataFusion user gets on local disk, where
//! `object_store::local::LocalFileSystem` refuses `PutMode::Update`: every race has exactly
//! one winner, so no increment is lost.
//!
//! The child processes are this test binary itself, re-run with `STORE_OS_CHILD_ROOT` set.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use store_cloud::ObjectStoreAdapter;
use store_cloud::object_store::path::Path;
use store_cloud::object_store::{Error, ObjectStore, ObjectStoreExt, PutMode, UpdateVersion};
use store_fs::FsStore;

const ROOT_VAR: &str = "STORE_OS_CHILD_ROOT";
const INCREMENTS: u64 = 200;

/// Adds one to the counter at `path` with a compare-and-swap loop written against
/// `object_store` alone; returns how many times it lost a race.
async fn increment(store: &dyn ObjectStore, path: &Path) -> u64 {
    let mut lost = 0;
    loop {
        let current = store.get(path).await.expect("get counter");
        let version = UpdateVersion {
            e_tag: current.meta.e_tag.clone(),
            version: current.meta.version.clone(),
        };
        let n: u64 = std::str::from_utf8(&current.bytes().await.unwrap())
            .unwrap()
            .parse()
            .unwrap();
        match store
            .put_opts(path, (n + 1).to_string().into(), PutMode::Update(version).into())
            .await
        {
            Ok(_) => return lost,
            Err(Error::Precondition { .. }) => lost += 1,
            Err(e) => panic!("update: {e}"),
        }
    }
}

/// Not a test of its own: the entry point of child processes (does nothing otherwise).
#[test]
fn child_entry() {
    let Ok(root) = std::env::var(ROOT_VAR) else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store: Arc<dyn ObjectStore> = Arc::new(ObjectStoreAdapter::new(
            FsStore::open(PathBuf::from(root)).await.unwrap(),
        ));
        let path = Path::from("table/_counter");
        let mut lost = 0;
        for _ in 0..INCREMENTS {
            lost += increment(&*store, &path).await;
        }
        println!("lost races: {lost}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_updates_through_object_store_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStoreAdapter::new(FsStore::open(dir.path()).await.unwrap());
    let path = Path::from("table/_counter");
    store
        .put_opts(&path, "0".into(), PutMode::Create.into())
        .await
        .unwrap();

    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
                .env(ROOT_VAR, dir.path())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    let mut lost = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed");
        let text = String::from_utf8_lossy(&out.stdout);
        lost += text
            .lines()
            .find_map(|l| l.split("lost races: ").nth(1))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .expect("child reports its lost races");
    }
    let total: u64 = std::str::from_utf8(&store.get(&path).await.unwrap().bytes().await.unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, 2 * INCREMENTS, "every increment landed exactly once");
    eprintln!("{lost} races lost and retried across the two processes");
}
