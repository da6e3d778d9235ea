//! Nothing outside the root is ever read, written, listed or deleted — also through
//! symlinks planted inside the root, before or during operations.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::TryStreamExt;
use store_core::{Backend, BackendExt, DeleteOptions, ErrorKind, GetOptions, Key, ListOptions, PutOptions};
use store_fs::FsStore;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

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
