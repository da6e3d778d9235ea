//! Prefix (a namespace) and ReadOnly (reads only): what they change and what they refuse.

use std::sync::Arc;

use futures::TryStreamExt;
use store_core::{
    Backend, BackendExt, DeleteOptions, ErrorKind, GetOptions, Key, ListOptions, MAX_KEY_LEN, Meta,
    PutOptions,
};
use store_layers::{Prefix, ReadOnly};
use store_memory::MemoryStore;

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn a_prefix_is_a_namespace() {
    let shared = Arc::new(MemoryStore::new());
    let a = shared.clone().layer(Prefix::new("/tenants/a/").unwrap());
    let b = shared.clone().layer(Prefix::new("tenants/b").unwrap());
    assert_eq!(a.prefix().as_str(), "tenants/a");

    let written = a.put_bytes(&k("x"), "from a").await.unwrap();
    assert_eq!(written.key, k("x"), "metadata carries the caller's key");
    b.put_bytes(&k("x"), "from b").await.unwrap();
    assert_eq!(a.get_bytes(&k("x")).await.unwrap(), "from a");
    assert_eq!(shared.get_bytes(&k("tenants/b/x")).await.unwrap(), "from b");
    assert_eq!(
        a.get(&k("x"), GetOptions::default()).await.unwrap().meta.key,
        k("x")
    );
    assert_eq!(a.head(&k("x")).await.unwrap().key, k("x"));

    let mut w = a.writer(&k("y"), PutOptions::create()).await.unwrap();
    w.write("streamed".into()).await.unwrap();
    assert_eq!(w.close().await.unwrap().key, k("y"));
    let keys: Vec<Key> = a
        .list(ListOptions::default())
        .map_ok(|m| m.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys, [k("x"), k("y")]);
    assert_eq!(a.list_keys("y").await.unwrap(), [k("y")]);
    let after: Vec<Meta> = a
        .list(ListOptions::default().with_start_after("x"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(after.len(), 1);

    a.delete(&k("x"), DeleteOptions::default()).await.unwrap();
    assert!(
        shared.exists(&k("tenants/b/x")).await.unwrap(),
        "b's key untouched"
    );
}

#[tokio::test]
async fn watching_under_a_prefix_sees_changes_made_outside_it() {
    let shared = Arc::new(MemoryStore::new());
    let tenant = Arc::new(shared.clone().layer(Prefix::new("t").unwrap()));
    let waiter = {
        let tenant = Arc::clone(&tenant);
        tokio::spawn(async move { tenant.watch(&k("doc"), None).await })
    };
    tokio::task::yield_now().await;
    let written = shared.put_bytes(&k("t/doc"), "v1").await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), Some(written.version));
}

#[tokio::test]
async fn bad_prefixes_and_keys_too_long_under_one_are_clear_errors() {
    for bad in ["", "/", "a//b", "a/../b"] {
        let e = Prefix::new(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidKey, "{bad:?}: {e}");
    }
    let store = MemoryStore::new().layer(Prefix::new("namespace").unwrap());
    let long = "x".repeat(MAX_KEY_LEN - 4);
    let e = store.put_bytes(&k(&long), "v").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidKey, "{e}");
    assert!(e.to_string().contains(&long), "{e}");
}

#[tokio::test]
async fn read_only_refuses_every_mutation_and_passes_reads() {
    let inner = Arc::new(MemoryStore::new());
    let v = inner.put_bytes(&k("doc"), "v1").await.unwrap().version;
    let store = inner.clone().layer(ReadOnly);

    let refusals = [
        ("put", store.put_bytes(&k("doc"), "v2").await.map(|_| ())),
        ("put", store.create(&k("new"), "x").await.map(|_| ())),
        ("put", store.update(&k("doc"), "v2", v.clone()).await.map(|_| ())),
        (
            "writer",
            store.writer(&k("new"), PutOptions::default()).await.map(|_| ()),
        ),
        ("delete", store.delete(&k("doc"), DeleteOptions::default()).await),
        ("delete", store.delete_if(&k("doc"), v.clone()).await),
    ];
    for (op, refused) in refusals {
        let e = refused.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            format!("{op} is not supported by a read-only store")
        );
    }
    assert_eq!(inner.get_bytes(&k("doc")).await.unwrap(), "v1");
    assert!(!inner.exists(&k("new")).await.unwrap());

    assert_eq!(store.get_bytes(&k("doc")).await.unwrap(), "v1");
    assert_eq!(store.head(&k("doc")).await.unwrap().version, v);
    assert_eq!(store.list_keys("").await.unwrap(), [k("doc")]);
    assert_eq!(store.watch(&k("doc"), None).await.unwrap(), Some(v));
    let caps = store.capabilities();
    assert!(!caps.create && !caps.update && !caps.conditional_delete && !caps.streaming_writes);
    assert_eq!(caps.native_watch, inner.capabilities().native_watch);
}
