//! FsStore's own promises beyond the shared backend contract: the on-disk layout,
//! streaming writes, cleanup, locking between instances, versions, watch.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use store_core::{Backend, BackendExt, DeleteOptions, Key, PutOptions};
use store_fs::{Durability, FsStore};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with(".store-tmp-") {
            found.push(entry.path());
        } else if entry.file_type().unwrap().is_dir() {
            found.extend(temp_files(&entry.path()));
        }
    }
    found
}

/// Waits (boundedly) for background clean-up to finish.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test]
async fn keys_are_plain_files_and_nested_keys_coexist() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    store
        .put_bytes(&key("photos/2026/cat.jpg"), "meow")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("photos/2026/cat.jpg")).unwrap(),
        b"meow"
    );
    // `a` is an object, then keys below it appear: `a` moves into `a/.store-self`, keeping
    // its version.
    let va = store.put_bytes(&key("a"), "A").await.unwrap().version;
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"A");
    store.put_bytes(&key("a/b/c"), "C").await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("a/.store-self")).unwrap(), b"A");
    assert_eq!(store.head(&key("a")).await.unwrap().version, va);
    assert_eq!(store.get_bytes(&key("a")).await.unwrap(), "A");
    assert_eq!(store.list_keys("a").await.unwrap(), [key("a"), key("a/b/c")]);
    // CAS on the moved object still works from the version read before the move.
    store.update(&key("a"), "A2", va).await.unwrap();
    assert_eq!(store.get_bytes(&key("a")).await.unwrap(), "A2");
    store.delete_if_exists(&key("a/b/c")).await.unwrap();
    assert!(!dir.path().join("a/b").exists(), "empty directories are removed");
    store.delete_if_exists(&key("a")).await.unwrap();
    store.delete_if_exists(&key("photos/2026/cat.jpg")).await.unwrap();
    assert!(!dir.path().join("a").exists() && !dir.path().join("photos").exists());
    assert!(dir.path().exists(), "the root is never removed");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [".store"], "only the internal directory is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_streams_to_disk_and_drop_or_abort_removes_the_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let k = key("big/streamed");
    let mut w = store.writer(&k, PutOptions::default()).await.unwrap();
    for _ in 0..8 {
        w.write(Bytes::from(vec![7u8; 512 << 10])).await.unwrap();
    }
    // 4 MiB written: most of it is already in the temp file, not in memory.
    let temps = temp_files(dir.path());
    assert_eq!(temps.len(), 1, "{temps:?}");
    assert!(
        std::fs::metadata(&temps[0]).unwrap().len() >= 3 << 20,
        "the writer buffers in memory"
    );
    drop(w);
    eventually("removal of a dropped writer's temp file", || {
        temp_files(dir.path()).is_empty()
    })
    .await;
    eventually("removal of its empty directory", || {
        !dir.path().join("big").exists()
    })
    .await;

    let mut w = store.writer(&k, PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    w.abort().await.unwrap();
    assert!(temp_files(dir.path()).is_empty(), "abort leaves its temp file");
    assert!(store.head(&k).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_root_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    // Separate instances have separate lock descriptors: this exercises flock, as two
    // processes would.
    let stores: Vec<Arc<FsStore>> = futures::future::try_join_all((0..4).map(|_| FsStore::open(dir.path())))
        .await
        .unwrap()
        .into_iter()
        .map(Arc::new)
        .collect();
    let k = key("counter");
    stores[0].put_bytes(&k, "0").await.unwrap();
    let tasks: Vec<_> = stores
        .iter()
        .map(|s| {
            let (s, k) = (Arc::clone(s), k.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    s.read_modify_write(&k, |old| {
                        let n: u64 = std::str::from_utf8(old.unwrap()).unwrap().parse().unwrap();
                        Ok((n + 1).to_string().into())
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(stores[3].get_bytes(&k).await.unwrap(), "400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_never_repeat_across_fast_delete_and_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::builder(dir.path())
        .durability(Durability::None)
        .open()
        .await
        .unwrap();
    let k = key("churn");
    let mut seen = HashSet::new();
    for i in 0..300 {
        // Same size every time, and inodes get reused: only the stamped mtime differs.
        let v = store.create(&k, "same").await.unwrap().version;
        assert!(seen.insert(v.clone()), "version {v} repeated at round {i}");
        let v = store.put_bytes(&k, "same").await.unwrap().version;
        assert!(seen.insert(v.clone()), "version {v} repeated at round {i}");
        store.delete(&k, DeleteOptions::default()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_sees_other_instances_by_polling_and_own_changes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = FsStore::builder(dir.path())
        .watch_poll_interval(Duration::from_millis(20))
        .open()
        .await
        .unwrap();
    let other = FsStore::open(dir.path()).await.unwrap();
    let k = key("watched");
    let w = {
        let (watcher, k) = (watcher.clone(), k.clone());
        tokio::spawn(async move { watcher.watch(&k, None).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Written through another instance: this store's in-process wake-up never fires.
    let v = other.put_bytes(&k, "from elsewhere").await.unwrap().version;
    assert_eq!(w.await.unwrap().unwrap(), Some(v.clone()));
    let w = {
        let (watcher, k, v) = (watcher.clone(), k.clone(), v.clone());
        tokio::spawn(async move { watcher.watch(&k, Some(&v)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    watcher.delete_if_exists(&k).await.unwrap();
    assert_eq!(w.await.unwrap().unwrap(), None);
    assert_eq!(watcher.watched_keys(), 0, "finished watches leave nothing behind");
}

#[tokio::test]
async fn capabilities_and_durability_levels() {
    for d in [Durability::None, Durability::File, Durability::Full] {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::builder(dir.path()).durability(d).open().await.unwrap();
        let caps = store.capabilities();
        assert!(caps.create && caps.update && caps.conditional_delete && caps.shared);
        assert!(caps.streaming_writes && caps.range_reads && caps.native_watch);
        assert_eq!(caps.durable, d == Durability::Full);
        assert_eq!(store.durability(), d);
        store.put_bytes(&key("x/y"), "z").await.unwrap();
        assert_eq!(store.get_bytes(&key("x/y")).await.unwrap(), "z");
        assert_eq!(store.root(), dir.path());
        assert!(format!("{store:?}").contains("FsStore"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeping_spares_live_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let mut w = store
        .writer(&key("live/one"), PutOptions::default())
        .await
        .unwrap();
    w.write(Bytes::from_static(b"still writing")).await.unwrap();
    // Another instance opening meanwhile (another process would do the same) sweeps.
    let other = FsStore::open(dir.path()).await.unwrap();
    assert_eq!(other.sweep().await.unwrap(), 0);
    w.close().await.unwrap();
    assert_eq!(other.get_bytes(&key("live/one")).await.unwrap(), "still writing");
}

/// Regression: a sweep (here from a second store on the same root, as a second process
/// opening the store would do) must never remove the temp file of a put in progress, not
/// even in the instant between the temp file's creation and its writer taking the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweeps_never_break_puts_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let writer = FsStore::builder(dir.path())
        .durability(Durability::None)
        .open()
        .await
        .unwrap();
    let sweeper = FsStore::builder(dir.path())
        .durability(Durability::None)
        .open()
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sweeping = {
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let mut sweeps = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sweeper.sweep().await.unwrap();
                sweeps += 1;
            }
            sweeps
        })
    };
    let tasks: Vec<_> = (0..3)
        .map(|t| {
            let w = writer.clone();
            tokio::spawn(async move {
                for i in 0..400 {
                    // New nested keys too, which exercises the temp directories of nesting.
                    let key = Key::new(format!("t{t}/k{}", i % 20)).unwrap();
                    w.put_bytes(&key, format!("value {i}"))
                        .await
                        .unwrap_or_else(|e| panic!("put {key}: {e}"));
                    if i % 50 == 0 {
                        let parent = Key::new(format!("n{t}-{i}")).unwrap();
                        w.put_bytes(&parent, "file first").await.unwrap();
                        w.put_bytes(&parent.join("child").unwrap(), "then nested")
                            .await
                            .unwrap();
                        assert_eq!(w.get_bytes(&parent).await.unwrap(), "file first");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(sweeping.await.unwrap() > 0);
}
