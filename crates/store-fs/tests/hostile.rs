//! Hostile and unexpected things in a store's root, in one place: symlinks and hard
//! links planted to reach outside the root (objects, lock files, directories), files with
//! modification times at the filesystem's limits, foreign files and directories, and
//! entries that cannot be read. Each gives a clear error or is skipped as documented —
//! never a panic, never a read or write outside the root, never a repeated version.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rustix::fs::{FlockOperation, Mode};
use store_core::{
    Backend, BackendExt, DeleteOptions, ErrorKind, GetOptions, Key, ListOptions, PutOptions, Version,
};
use store_fs::FsStore;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

// ---- Symlinks planted inside the root ----

/// Every file under `dir` with its content (symlinks recorded, not followed).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                pending.push(path);
            } else if ty.is_symlink() {
                out.insert(
                    rel,
                    std::fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

struct World {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("secret"), "top secret").unwrap();
    std::fs::write(outside.join("sub/deep"), "deep secret").unwrap();
    std::fs::create_dir_all(root.join("a")).unwrap();
    // Planted before the store is opened.
    symlink(&outside, root.join("dirlink")).unwrap();
    symlink(outside.join("secret"), root.join("filelink")).unwrap();
    symlink(&outside, root.join("a/inner")).unwrap();
    World {
        _tmp: tmp,
        root,
        outside,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn symlinks_planted_before_open_are_never_followed() {
    let w = world();
    let before = snapshot(&w.outside);
    let store = FsStore::open(&w.root).await.unwrap();
    store.put_bytes(&key("a/real"), "mine").await.unwrap();

    for k in [
        "filelink",
        "dirlink/secret",
        "dirlink/sub/deep",
        "a/inner/secret",
        "dirlink",
        "a/inner",
    ] {
        let k = key(k);
        let e = store.get(&k, GetOptions::default()).await.unwrap_err();
        assert!(e.is_not_found(), "get {k}: {e}");
        assert!(store.head(&k).await.unwrap_err().is_not_found(), "head {k}");
        let e = store.delete(&k, DeleteOptions::default()).await.unwrap_err();
        assert!(e.is_not_found(), "delete {k}: {e}");
        assert_eq!(
            store.watch(&k, Some(&"v".into())).await.unwrap(),
            None,
            "watch {k}"
        );
    }
    // Writes through or onto a symlink are refused with a clear error.
    for k in [
        "filelink",
        "dirlink/new",
        "dirlink/secret",
        "a/inner/new",
        "dirlink/sub/x/y",
    ] {
        let k = key(k);
        for opts in [PutOptions::default(), PutOptions::create()] {
            let e = store
                .put(&k, Bytes::from_static(b"evil"), opts)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "put {k}: {e}");
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        let writer = store.writer(&k, PutOptions::default()).await;
        if let Ok(mut wr) = writer {
            wr.write(Bytes::from_static(b"evil")).await.unwrap();
            let e = wr.close().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "writer {k}: {e}");
        }
    }
    let listed: Vec<String> = store
        .list(ListOptions::default())
        .map_ok(|m| m.key.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["a/real"], "symlinks or their targets were listed");
    assert_eq!(snapshot(&w.outside), before, "something outside the root changed");
    assert!(
        std::fs::symlink_metadata(w.root.join("filelink"))
            .unwrap()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(w.root.join("dirlink"))
            .unwrap()
            .is_symlink()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn symlinks_swapped_in_during_operations_are_never_followed() {
    let w = world();
    let store = Arc::new(FsStore::open(&w.root).await.unwrap());
    store.put_bytes(&key("swap/k0"), "x").await.unwrap();
    store.put_bytes(&key("f"), "object f").await.unwrap();
    // `swap` (a real directory) and `swapalt` (a symlink to outside) trade places again and
    // again, and so do the object file `f` and `flink` (a symlink to outside/secret).
    symlink(&w.outside, w.root.join("swapalt")).unwrap();
    symlink(w.outside.join("secret"), w.root.join("flink")).unwrap();
    let before = snapshot(&w.outside);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, stop) = (w.root.clone(), Arc::clone(&stop));
        tokio::task::spawn_blocking(move || {
            let rootfd = std::fs::File::open(&root).unwrap();
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) || swaps % 2 == 1 {
                for (a, b) in [("swap", "swapalt"), ("f", "flink")] {
                    // Ignore failures (e.g. `f` briefly absent during a put): keep swapping.
                    let _ =
                        rustix::fs::renameat_with(&rootfd, a, &rootfd, b, rustix::fs::RenameFlags::EXCHANGE);
                }
                swaps += 1;
            }
        })
    };
    let mut workers = Vec::new();
    for t in 0..4 {
        let store = Arc::clone(&store);
        workers.push(tokio::spawn(async move {
            for i in 0..150 {
                let k = key(&format!("swap/k{}", (i + t) % 5));
                // Any error is acceptable here (the path is a symlink half the time); a
                // panic, or a change outside the root, is not.
                let _ = store
                    .put(&k, Bytes::from(format!("w{t}-{i}")), PutOptions::default())
                    .await;
                let _ = store.get(&k, GetOptions::default()).await;
                let _ = store.head(&k).await;
                if i % 7 == 0 {
                    let _ = store.delete(&k, DeleteOptions::default()).await;
                }
                let _ = store
                    .put(&key("f"), Bytes::from_static(b"new f"), PutOptions::default())
                    .await;
                let _ = store.get(&key("f"), GetOptions::default()).await;
                if i % 10 == 0 {
                    let _ = store.delete(&key("f"), DeleteOptions::default()).await;
                    let listed: Result<Vec<_>, _> = store.list(ListOptions::default()).try_collect().await;
                    if let Ok(metas) = listed {
                        for m in metas {
                            let s = m.key.as_str();
                            assert!(
                                !s.contains("secret") && !s.contains("deep"),
                                "listed outside content: {s}"
                            );
                        }
                    }
                    let _ = store.list_keys("swap").await;
                }
            }
        }));
    }
    for wk in workers {
        wk.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    swapper.await.unwrap();
    assert_eq!(snapshot(&w.outside), before, "something outside the root changed");
    // Whatever reads returned never came from outside.
    for k in ["swap/k0", "swap/k1", "f"] {
        if let Ok(data) = store.get_bytes(&key(k)).await {
            assert!(
                !data.starts_with(b"top secret") && !data.starts_with(b"deep"),
                "{k} read outside data"
            );
        }
    }
}

// ---- Hard links to files outside the root ----

#[tokio::test]
async fn a_hard_linked_object_is_never_read_nor_replaced() {
    let w = world();
    let store = FsStore::open(&w.root).await.unwrap();
    store.put_bytes(&key("ok"), "ours").await.unwrap();
    std::fs::hard_link(w.outside.join("secret"), w.root.join("stolen")).unwrap();
    std::fs::create_dir_all(w.root.join("nested/stolen")).unwrap();
    std::fs::hard_link(w.outside.join("secret"), w.root.join("nested/stolen/.store-self")).unwrap();
    let before = snapshot(&w.outside);
    for k in ["stolen", "nested/stolen"] {
        let e = store.get_bytes(&key(k)).await.unwrap_err();
        assert!(e.is_not_found(), "{k}: {e}");
        assert!(store.head(&key(k)).await.unwrap_err().is_not_found(), "{k}");
        let e = store.put_bytes(&key(k), "overwrite").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{k}: {e}");
        assert!(
            e.to_string().contains("hard link") && e.to_string().contains(k),
            "{e}"
        );
    }
    let listed: Vec<String> = store
        .list(ListOptions::default())
        .map_ok(|m| m.key.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["ok"], "hard links are not listed");
    assert_eq!(snapshot(&w.outside), before, "nothing outside changed");
}

#[tokio::test]
async fn a_hard_linked_lock_file_is_refused_at_open() {
    let w = world();
    drop(FsStore::open(&w.root).await.unwrap());
    let outside = w.outside.join("secret");
    let mtime = std::fs::metadata(&outside).unwrap().modified().unwrap();
    let lock = w.root.join(".store/locks/07");
    std::fs::remove_file(&lock).unwrap();
    std::fs::hard_link(&outside, &lock).unwrap();
    let e = FsStore::open(&w.root).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains(".store/locks/07"), "{e}");
    assert_eq!(std::fs::metadata(&outside).unwrap().modified().unwrap(), mtime);

    // A lock file that is a directory is refused the same way.
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let e = FsStore::open(&w.root).await.unwrap_err();
    assert!(e.to_string().contains(".store/locks/07"), "{e}");
    std::fs::remove_dir(&lock).unwrap();
    let store = FsStore::open(&w.root).await.unwrap();
    store.put_bytes(&key("after"), "x").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_see_an_object_throughout_its_move_under_a_directory() {
    // Making room for `a/…` links `a`'s file twice for a moment; readers must not take
    // that for a planted hard link.
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    for round in 0..50 {
        let parent = key(&format!("p{round}"));
        store.put_bytes(&parent, "parent").await.unwrap();
        let reader = {
            let (store, parent) = (store.clone(), parent.clone());
            tokio::spawn(async move {
                for _ in 0..20 {
                    assert_eq!(store.get_bytes(&parent).await.unwrap(), "parent");
                }
            })
        };
        store
            .put_bytes(&parent.join("child").unwrap(), "child")
            .await
            .unwrap();
        reader.await.unwrap();
    }
}

// ---- Modification times at the filesystem's limits ----

/// Sets `path`'s mtime to `t` (the filesystem may clamp it).
fn set_mtime(path: &Path, t: SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[tokio::test]
async fn versions_never_repeat_at_the_largest_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let k = key("k");
    store.put_bytes(&k, "same").await.unwrap();
    // Far past any filesystem's limit: ext4 stores 2446, XFS without bigtime 2038.
    set_mtime(
        &dir.path().join("k"),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40),
    );
    let mut seen: Vec<Version> = vec![store.head(&k).await.unwrap().version];
    for _ in 0..6 {
        // Same size each time, and the freed inode is reused: only a write id tells them apart.
        let v = store.put_bytes(&k, "same").await.unwrap().version;
        assert_eq!(store.head(&k).await.unwrap().version, v, "head agrees with put");
        let got = store.get(&k, GetOptions::default()).await.unwrap();
        assert_eq!(got.meta.version, v, "get agrees with put");
        assert!(!seen.contains(&v), "version {v} repeated: {seen:?}");
        seen.push(v);
    }
    for old in &seen[..seen.len() - 1] {
        let e = store.update(&k, "stale", old.clone()).await.unwrap_err();
        assert!(e.is_conflict(), "update from {old}: {e}");
    }
    // Delete and re-create at the ceiling: still new versions.
    store.delete(&k, DeleteOptions::default()).await.unwrap();
    let v = store.create(&k, "same").await.unwrap().version;
    assert!(!seen.contains(&v));
    let listed: Vec<Version> = store
        .list(ListOptions::default())
        .map_ok(|m| m.version)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, std::slice::from_ref(&v), "listing agrees");
    store.update(&k, "next", v).await.unwrap();
}

#[tokio::test]
async fn an_mtime_before_the_epoch_is_only_an_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let k = key("old");
    store.put_bytes(&k, "x").await.unwrap();
    set_mtime(
        &dir.path().join("old"),
        SystemTime::UNIX_EPOCH - Duration::from_secs(1 << 31),
    );
    let v0 = store.head(&k).await.unwrap().version;
    let v1 = store.put_bytes(&k, "x").await.unwrap().version;
    let v2 = store.put_bytes(&k, "x").await.unwrap().version;
    assert!(v0 != v1 && v1 != v2 && v0 != v2);
    assert!(store.update(&k, "y", v0).await.unwrap_err().is_conflict());
}

// ---- Foreign and unexpected files ----

async fn listed(store: &FsStore) -> Vec<String> {
    store
        .list(ListOptions::default())
        .map_ok(|m| m.key.to_string())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_directory_where_an_object_is_expected_is_absent_until_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("d/empty")).unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let d = key("d");
    assert!(store.get_bytes(&d).await.unwrap_err().is_not_found());
    assert!(store.head(&d).await.unwrap_err().is_not_found());
    assert!(
        store
            .delete(&d, DeleteOptions::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(listed(&store).await.is_empty(), "directories are not objects");
    // Writing it stores the object inside the directory, as documented.
    store.create(&d, "object d").await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("d/.store-self")).unwrap(),
        b"object d"
    );
    assert_eq!(listed(&store).await, ["d"]);
    assert_eq!(store.get_bytes(&d).await.unwrap(), "object d");
}

#[tokio::test]
async fn special_files_are_skipped_and_never_block() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::File::open(dir.path()).unwrap();
    rustix::fs::mkfifoat(&root, "fifo", Mode::from_raw_mode(0o644)).unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let k = key("fifo");
    assert!(
        store.get_bytes(&k).await.unwrap_err().is_not_found(),
        "a FIFO is not an object"
    );
    assert!(store.head(&k).await.unwrap_err().is_not_found());
    assert!(
        store
            .delete(&k, DeleteOptions::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
    let e = store.put_bytes(&k, "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("fifo"), "the error names the key: {e}");
    assert!(listed(&store).await.is_empty());
    let e = store.put_bytes(&key("fifo/below"), "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn names_that_are_not_keys_are_skipped_by_listing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    store.put_bytes(&key("ok"), "1").await.unwrap();
    std::fs::write(dir.path().join("back\\slash"), "x").unwrap();
    std::fs::write(dir.path().join("ctrl\u{1}char"), "x").unwrap();
    let non_utf8 = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"bad\xffname");
    std::fs::write(dir.path().join(non_utf8), "x").unwrap();
    assert_eq!(listed(&store).await, ["ok"]);
}

#[tokio::test]
async fn an_unreadable_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let k = key("locked/away");
    store.put_bytes(&k, "data").await.unwrap();
    let path = dir.path().join("locked/away");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Privileged users (root in CI containers) can read it anyway.
    let privileged = std::fs::File::open(&path).is_ok();
    match store.get_bytes(&k).await {
        Ok(data) => assert!(privileged && data == "data"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Io, "{e}");
            let msg = e.to_string();
            assert!(msg.contains("get") && msg.contains("locked/away"), "{msg}");
        }
    }
    // Metadata needs no read permission, and listing still works.
    assert_eq!(store.head(&k).await.unwrap().size, 4);
    assert_eq!(listed(&store).await, ["locked/away"]);
}

#[tokio::test]
async fn stray_temp_files_are_hidden_refused_and_swept_unless_alive() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/.store-tmp-dead"), "half an object").unwrap();
    std::fs::create_dir_all(dir.path().join(".store-tmp-deaddir")).unwrap();
    std::fs::write(dir.path().join(".store-tmp-deaddir/.store-self"), "x").unwrap();
    // A temp file whose writer is alive (holds its lock) — as another process would.
    std::fs::write(dir.path().join("a/.store-tmp-alive"), "being written").unwrap();
    let alive = std::fs::File::open(dir.path().join("a/.store-tmp-alive")).unwrap();
    rustix::fs::flock(&alive, FlockOperation::LockExclusive).unwrap();

    let store = FsStore::builder(dir.path())
        .sweep_on_open(false)
        .open()
        .await
        .unwrap();
    store.put_bytes(&key("a/real"), "real").await.unwrap();
    assert_eq!(listed(&store).await, ["a/real"], "temp files are never listed");
    for reserved in ["a/.store-tmp-dead", ".store/locks/00", "x/.store-self", ".store"] {
        let e = store.get_bytes(&key(reserved)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKey, "{reserved}: {e}");
        let e = store.put_bytes(&key(reserved), "x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKey, "{reserved}: {e}");
        assert!(e.to_string().contains(reserved), "{e}");
    }
    assert_eq!(
        store.sweep().await.unwrap(),
        2,
        "the dead temp file and temp directory"
    );
    assert!(!dir.path().join("a/.store-tmp-dead").exists());
    assert!(!dir.path().join(".store-tmp-deaddir").exists());
    assert!(
        dir.path().join("a/.store-tmp-alive").exists(),
        "a live writer's temp file was swept"
    );
    drop(alive);
    drop(store);
    FsStore::open(dir.path()).await.unwrap();
    assert!(
        !dir.path().join("a/.store-tmp-alive").exists(),
        "re-open sweeps it once its writer is gone"
    );
}

#[tokio::test]
async fn an_unusable_internal_directory_fails_open_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".store"), "not a directory").unwrap();
    let e = FsStore::open(dir.path()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains(".store"), "{e}");

    let missing = dir.path().join("missing");
    let e = FsStore::builder(&missing)
        .create_root(false)
        .open()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
}

#[tokio::test]
async fn a_file_changed_outside_the_store_is_seen_as_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    let k = key("edited");
    let v1 = store.put_bytes(&k, "ours").await.unwrap().version;
    std::fs::write(dir.path().join("edited"), "edited by hand, longer").unwrap();
    let obj = store.get(&k, GetOptions::default()).await.unwrap();
    assert_ne!(obj.meta.version, v1);
    assert_eq!(obj.bytes().await.unwrap(), "edited by hand, longer");
    let e = store
        .put(&k, "stale".into(), PutOptions::update(v1))
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
}

// ---- Entries that cannot be read ----

/// Runs the rest of the calling test as user `nobody` when the tests run as root (for
/// whom permissions do not apply): re-runs this test binary, filtered to `test`, under
/// `setpriv`. Returns `true` in the process that should go on.
fn without_privileges(test: &str) -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::fs::set_permissions(probe.path(), std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(probe.path()).is_err() {
        return true; // permissions apply to us
    }
    if std::env::var_os("STORE_HOSTILE_UNPRIVILEGED").is_some() {
        panic!("still root after dropping privileges");
    }
    let status = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("STORE_HOSTILE_UNPRIVILEGED", "1")
        .env("TMPDIR", std::env::temp_dir())
        .status()
        .expect("setpriv (util-linux) runs the test as nobody");
    assert!(status.success(), "{test} failed as user nobody");
    false
}

#[tokio::test]
async fn an_unreadable_directory_is_one_error_item_and_the_listing_goes_on() {
    if !without_privileges("an_unreadable_directory_is_one_error_item_and_the_listing_goes_on") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    for k in ["a/1", "b/1", "b/2", "c/1"] {
        store.put_bytes(&key(k), "x").await.unwrap();
    }
    std::fs::set_permissions(dir.path().join("b"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let items: Vec<Result<String, String>> = store
        .list(ListOptions::default())
        .map(|r| r.map(|m| m.key.to_string()).map_err(|e| e.to_string()))
        .collect()
        .await;
    std::fs::set_permissions(dir.path().join("b"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0].as_deref(), Ok("a/1"));
    let e = items[1].as_ref().unwrap_err();
    assert!(e.contains("list") && e.contains("\"b/\""), "{e}");
    assert_eq!(items[2].as_deref(), Ok("c/1"));
}
