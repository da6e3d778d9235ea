//! Corrupt or unexpected things in the root give clear errors or are skipped as documented
//! — never a panic.

use std::os::unix::fs::PermissionsExt;

use futures::TryStreamExt;
use rustix::fs::{FlockOperation, Mode};
use store_core::{Backend, BackendExt, DeleteOptions, ErrorKind, GetOptions, Key, ListOptions, PutOptions};
use store_fs::FsStore;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

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
