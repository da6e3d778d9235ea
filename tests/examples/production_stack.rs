//! The README's production stack: records over a replica over a retried, traced store.
//!
//! `cargo run -p store-tests --example production_stack`
//!
//! The primary is an `FsStore` in a temporary directory and the asynchronous copy a
//! `MemoryStore`, so the example needs nothing; the README shows the same stack with S3 as
//! the primary (only the bottom of the stack changes).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use store_core::{BackendExt, Error, Key, Record, Result};
use store_fs::FsStore;
use store_layers::{Limit, Metrics, Retry, Timeout, Trace};
use store_memory::MemoryStore;
use store_record::Records;
use store_replica::Replica;

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "", e))?;

    // The primary: each call retried if it may be, traced, measured, given a deadline,
    // and at most 64 of them in flight.
    let primary = FsStore::open(dir.path())
        .await?
        .layer(Limit::new(64))
        .layer(Timeout::new(Duration::from_secs(10)))
        .layer(Trace::new("primary"))
        .layer(Metrics::new("primary"))
        .layer(Retry::default());
    // A copy written in the background, traced under its own name.
    let copy = MemoryStore::new();
    let replica = Arc::new(
        Replica::builder()
            .sync_store(primary)
            .async_store(copy.clone().layer(Trace::new("copy")))
            .queue_len(1024)
            .build()?,
    );
    let records = Records::new(Arc::clone(&replica));
    println!(
        "stack: Records over a Replica of Retry/Metrics/Trace/Timeout/Limit over FsStore, + an async MemoryStore"
    );

    let key = Key::new("config/feature-x")?;
    let v1 = records.create(&Record::new(key.clone(), "off")).await?;
    println!("create {key} -> version {v1}");

    let mut current = records.get(&key).await?;
    current.value = "on".into();
    let v2 = records.cas_by_version(&current).await?;
    println!("cas {key} from {v1} -> version {v2}");
    match records.cas_by_version(&current).await {
        Err(e) => println!("cas {key} from the stale version {v1} -> refused: {e}"),
        Ok(v) => println!("unexpected: stale cas applied as {v}"),
    }

    let lease = Key::new("leases/worker-1")?;
    let expiry = SystemTime::now() + Duration::from_secs(30);
    records
        .put(&Record::new(lease.clone(), "held").with_expiry(expiry))
        .await?;
    println!("put {lease} with a 30 s expiry");

    replica.flush().await?;
    println!(
        "after flush the async copy holds {} records",
        copy.list_keys("").await?.len()
    );
    println!(
        "{key} = {:?}",
        String::from_utf8_lossy(&records.get(&key).await?.value)
    );
    replica.close().await?;
    Ok(())
}
