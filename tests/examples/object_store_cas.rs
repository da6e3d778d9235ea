//! Local-disk compare-and-swap for programs written against `object_store`: hand
//! `Arc::new(ObjectStoreAdapter::new(FsStore::open(dir)?))` to anything that takes an
//! `Arc<dyn ObjectStore>` (DataFusion, delta-rs, Polars, Lance …). Two writers race to
//! commit the same table version; exactly one wins, the other sees `AlreadyExists` /
//! `Precondition` and can retry — what `LocalFileSystem` cannot offer (it refuses
//! `PutMode::Update`).
//!
//! Run: `cargo run -p store-tests --example object_store_cas`

use std::sync::Arc;

use store_cloud::ObjectStoreAdapter;
use store_cloud::object_store::path::Path;
use store_cloud::object_store::{ObjectStore, PutMode};
use store_fs::FsStore;

/// A commit protocol written for `object_store` alone: create the next log entry, or lose.
async fn try_commit(store: Arc<dyn ObjectStore>, version: u64, action: String) -> bool {
    let entry = Path::from(format!("table/_delta_log/{version:020}.json"));
    match store
        .put_opts(&entry, action.into(), PutMode::Create.into())
        .await
    {
        Ok(_) => true,
        Err(store_cloud::object_store::Error::AlreadyExists { .. }) => false,
        Err(e) => panic!("commit: {e}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(ObjectStoreAdapter::new(FsStore::open(dir.path()).await?));

    // Two writers race for table version 1.
    let a = tokio::spawn(try_commit(Arc::clone(&store), 1, r#"{"add":"a.parquet"}"#.into()));
    let b = tokio::spawn(try_commit(Arc::clone(&store), 1, r#"{"add":"b.parquet"}"#.into()));
    let (a, b) = (a.await?, b.await?);
    assert!(a ^ b, "exactly one writer commits version 1");
    println!(
        "writer {} committed version 1; the other must rebase",
        if a { "a" } else { "b" }
    );

    // Compare-and-swap on a pointer file, from the e_tag of a read.
    let pointer = Path::from("table/_last_checkpoint");
    let first = store
        .put_opts(&pointer, "1".into(), PutMode::Create.into())
        .await?;
    let second = store
        .put_opts(&pointer, "2".into(), PutMode::Update(first.clone().into()).into())
        .await?;
    let stale = store
        .put_opts(&pointer, "3".into(), PutMode::Update(first.into()).into())
        .await;
    println!("update from a stale e_tag: {}", stale.unwrap_err());
    println!("pointer now at e_tag {:?}", second.e_tag);
    Ok(())
}
