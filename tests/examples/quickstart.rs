//! The README's first command: a real end-to-end run on the embedded default store.
//!
//! `cargo run -p store-tests --example quickstart`

use std::sync::Arc;

use futures::TryStreamExt;
use store_core::{Backend, BackendExt, Key, ListOptions, PutOptions, Result};
use store_memory::MemoryStore;

#[tokio::main]
async fn main() -> Result<()> {
    let store = MemoryStore::new();
    println!("store: {store:?}, capabilities: {:?}", store.capabilities());

    // Atomic puts and versions.
    let key = Key::new("greetings/en")?;
    let v1 = store.put_bytes(&key, "hello").await?.version;
    println!("put {key} -> version {v1}");

    // Create is exclusive.
    match store.create(&key, "hello again").await {
        Err(e) => println!("create {key} again -> refused: {e}"),
        Ok(m) => println!("unexpected: created {m:?}"),
    }

    // Compare-and-swap: an update from a stale version loses.
    let v2 = store.update(&key, "hello, world", v1.clone()).await?.version;
    println!("update {key} from {v1} -> version {v2}");
    if let Err(e) = store.update(&key, "lost update", v1).await {
        println!("update {key} from the stale version -> refused: {e}");
    }

    // Concurrent read-modify-write: 8 tasks × 25 increments through the CAS loop.
    let counter = Key::new("counters/visits")?;
    let shared = Arc::new(store.clone());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, k) = (Arc::clone(&shared), counter.clone());
            tokio::spawn(async move {
                for _ in 0..25 {
                    s.read_modify_write(&k, |old| {
                        let n: u64 = old
                            .map(|b| String::from_utf8_lossy(b).parse().unwrap_or(0))
                            .unwrap_or(0);
                        Ok((n + 1).to_string().into())
                    })
                    .await?;
                }
                Ok::<_, store_core::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task panicked")?;
    }
    println!(
        "8 tasks × 25 CAS increments -> {}",
        String::from_utf8_lossy(&store.get_bytes(&counter).await?)
    );

    // Streaming write: nothing is visible until close.
    let big = Key::new("blobs/big")?;
    let mut w = store.writer(&big, PutOptions::default()).await?;
    for i in 0..4u8 {
        w.write(vec![i; 1 << 20].into()).await?;
    }
    println!(
        "while writing, head {big} -> {}",
        store.head(&big).await.unwrap_err()
    );
    let meta = w.close().await?;
    println!(
        "closed writer: {big} is {} bytes, version {}",
        meta.size, meta.version
    );

    // Watch: woken by the next change, no polling.
    let watcher = {
        let (s, k, v) = (store.clone(), key.clone(), v2.clone());
        tokio::spawn(async move { s.watch(&k, Some(&v)).await })
    };
    let v3 = store.put_bytes(&key, "hello, watchers").await?.version;
    println!(
        "watch {key} from {v2} -> woken with {:?} (put made {v3})",
        watcher.await.expect("watch task")?
    );

    // Ordered listing with a prefix.
    let listed: Vec<String> = store
        .list(ListOptions::default().with_prefix("greetings/"))
        .map_ok(|m| format!("{} ({} bytes, v{})", m.key, m.size, m.version))
        .try_collect()
        .await?;
    println!("list greetings/ -> {listed:?}");
    println!("all keys -> {:?}", store.list_keys("").await?);
    Ok(())
}
