//! Behaviour specific to MemoryStore: zero-copy reads, no leaked watchers, version counter.

use std::time::Duration;

use bytes::Bytes;
use store_core::{Backend, BackendExt, GetOptions, Key};
use store_memory::MemoryStore;

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn gets_share_the_stored_buffer() {
    let store = MemoryStore::new();
    let data = Bytes::from(vec![7u8; 4096]);
    store.put_bytes(&k("a"), data.clone()).await.unwrap();
    let got = store.get_bytes(&k("a")).await.unwrap();
    assert_eq!(got.as_ptr(), data.as_ptr(), "get copied the data");
    let part = store
        .get(&k("a"), GetOptions::default().with_range(100..200))
        .await
        .unwrap();
    let part = part.bytes().await.unwrap();
    assert_eq!(part.as_ptr(), data[100..].as_ptr(), "range get copied the data");
    assert_eq!(store.bytes_stored(), 4096);
    assert_eq!((store.len(), store.is_empty()), (1, false));
}

#[tokio::test]
async fn cancelled_watches_leave_no_state() {
    let store = MemoryStore::new();
    let key = k("watched");
    let v = store.put_bytes(&key, "1").await.unwrap().version;
    let mut handles = Vec::new();
    for _ in 0..10 {
        let (s, key, v) = (store.clone(), key.clone(), v.clone());
        handles.push(tokio::spawn(async move { s.watch(&key, Some(&v)).await }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(store.watched_keys(), 1);
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let _ = h.await;
    }
    assert_eq!(
        store.watched_keys(),
        0,
        "aborted watch futures left their slot behind"
    );
    // Timed-out watches too.
    let r = tokio::time::timeout(Duration::from_millis(5), store.watch(&key, Some(&v))).await;
    assert!(r.is_err());
    assert_eq!(store.watched_keys(), 0);
    // And completed ones.
    let (s, key2, v2) = (store.clone(), key.clone(), v.clone());
    let w = tokio::spawn(async move { s.watch(&key2, Some(&v2)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.put_bytes(&key, "2").await.unwrap();
    assert!(w.await.unwrap().unwrap().is_some());
    assert_eq!(store.watched_keys(), 0);
}

#[tokio::test]
async fn versions_increase_across_keys_and_clones_share_data() {
    let store = MemoryStore::new();
    let twin = store.clone();
    let v1 = store
        .put_bytes(&k("a"), "x")
        .await
        .unwrap()
        .version
        .as_u64()
        .unwrap();
    let v2 = twin
        .put_bytes(&k("b"), "y")
        .await
        .unwrap()
        .version
        .as_u64()
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(store.get_bytes(&k("b")).await.unwrap(), "y");
    assert_eq!(format!("{store:?}"), "MemoryStore { objects: 2 }");
    let caps = store.capabilities();
    assert!(caps.create && caps.update && caps.native_watch && !caps.durable && !caps.shared);
}
