//! What listings cost in requests: 10,000 objects listed without a request per object,
//! counted on object_store's `InMemory` (calls) and on SeaweedFS (HTTP requests), so a
//! return to per-object round trips fails here.

mod common;

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::memory::InMemory;
use store_cloud::{CloudSettings, CloudStore};
use store_core::{Backend, BackendExt, ByteRange, GetOptions, Key, ListOptions, Meta, Version};
use store_record::Records;

use common::counting::{Counted, Counts, Requests, counted_s3};
use common::many::{N, count_keys, names, write_records};
use common::{s3_config, unique_prefix};

/// At most this many requests per listed object for a plain listing.
const LISTING_BUDGET: f64 = 0.01;
/// At most this many requests per listed record for `Records::list_keys` without expiries.
const RECORDS_BUDGET: f64 = 0.05;

/// A probed store over `InMemory` whose every call is counted.
fn counted_in_memory(settings: CloudSettings) -> (CloudStore, Arc<Requests>) {
    let counted = Counted::new(InMemory::new());
    let requests = Arc::clone(&counted.requests);
    let store = CloudStore::new(Arc::new(counted))
        .with_settings(settings)
        .assume_conditional_writes(true);
    (store, requests)
}

async fn list(store: &CloudStore, opts: ListOptions) -> Vec<Meta> {
    store.list(opts).try_collect().await.unwrap()
}

fn per_object(spent: Counts) -> f64 {
    spent.total() as f64 / N as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_only_listing_reads_no_object() {
    let (store, requests) = counted_in_memory(CloudSettings::default());
    write_records(&Records::new(store.clone()), 0, false).await;
    let before = requests.snapshot();
    let listed = list(&store, ListOptions::default().with_keys_only(true)).await;
    let spent = requests.snapshot() - before;
    assert!(
        per_object(spent) <= LISTING_BUDGET,
        "keys-only listing of {N}: {spent}"
    );
    assert_eq!((spent.heads, spent.gets), (0, 0), "{spent}");
    let keys: Vec<String> = listed.iter().map(|m| m.key.to_string()).collect();
    assert_eq!(keys, names());
    // Sizes are the objects' own; versions were not asked for and match nothing.
    let sample = &listed[1234];
    assert_eq!(sample.size, store.head(&sample.key).await.unwrap().size);
    assert!(listed.iter().all(|m| m.version == Version::empty()));
}

/// With write ids on, a listing that wants versions needs one HEAD per object: the write
/// id is in user metadata, which listings do not carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_with_write_id_versions_heads_each_object() {
    let (store, requests) = counted_in_memory(CloudSettings::default());
    write_records(&Records::new(store.clone()), 0, false).await;
    let before = requests.snapshot();
    let listed = list(&store, ListOptions::default()).await;
    let spent = requests.snapshot() - before;
    assert_eq!(
        (spent.lists, spent.heads, spent.gets),
        (1, N as u64, 0),
        "{spent}"
    );
    let sample = &listed[4321];
    assert_eq!(sample.version, store.head(&sample.key).await.unwrap().version);
}

/// Without write ids a version is the ETag, which the listing carries: no request per
/// object, and every listed version is the one `head`, `get` and the put reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_write_ids_listed_versions_cost_nothing_and_match_head_get_and_put() {
    let (store, requests) = counted_in_memory(CloudSettings::default().with_write_ids(false));
    let mut put = Vec::with_capacity(N);
    for name in names() {
        put.push(store.put_bytes(&Key::new(name).unwrap(), "v").await.unwrap());
    }
    let before = requests.snapshot();
    let listed = list(&store, ListOptions::default()).await;
    let spent = requests.snapshot() - before;
    assert!(per_object(spent) <= LISTING_BUDGET, "listing of {N}: {spent}");
    assert_eq!(listed.len(), N);
    for (listed, put) in listed.iter().zip(&put).step_by(97) {
        assert_eq!(listed.version, put.version, "{}", listed.key);
        assert_eq!(listed.version, store.head(&listed.key).await.unwrap().version);
        let obj = store.get(&listed.key, GetOptions::default()).await.unwrap();
        assert_eq!(obj.meta.version, listed.version);
        // A compare-and-swap from the listed version succeeds, and only once.
        let next = store
            .update(&listed.key, "w", listed.version.clone())
            .await
            .unwrap();
        assert_ne!(next.version, listed.version);
        let stale = store.update(&listed.key, "x", listed.version.clone()).await;
        assert!(stale.unwrap_err().is_conflict());
    }
}

/// The requests of `Records<CloudStore>::list_keys` over the [`N`] records, every tenth
/// with an expiry when `tenth_expiring`.
async fn records_listing(tenth_expiring: bool) -> Counts {
    let (store, requests) = counted_in_memory(CloudSettings::default());
    let records = Records::new(store);
    write_records(&records, 0, tenth_expiring).await;
    let before = requests.snapshot();
    assert_eq!(count_keys(&records).await, N);
    requests.snapshot() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_list_without_reading_records_that_never_expire() {
    let spent = records_listing(false).await;
    assert!(
        per_object(spent) <= RECORDS_BUDGET,
        "list_keys of {N} records: {spent}"
    );
    assert_eq!((spent.heads, spent.gets), (0, 0), "{spent}");
}

/// With a tenth of the records carrying an expiry, each of those costs one GET of its
/// header (a range read is one request), and nothing else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_with_an_expiry_cost_one_get_each_in_a_listing() {
    let spent = records_listing(true).await;
    assert_eq!(
        (spent.lists, spent.heads, spent.gets),
        (1, 0, N as u64 / 10),
        "{spent}"
    );
}

#[tokio::test]
async fn a_range_read_is_one_get_and_a_range_past_the_end_is_settled_by_a_head() {
    let (store, requests) = counted_in_memory(CloudSettings::default());
    let k = Key::new("ranged").unwrap();
    let put = store.put_bytes(&k, "0123456789").await.unwrap();
    for (range, want) in [
        (ByteRange::from(2..5), "234"),
        (ByteRange::from(8..50), "89"),
        (ByteRange::from(7..), "789"),
        (ByteRange::Suffix(3), "789"),
        (ByteRange::Suffix(30), "0123456789"),
    ] {
        let before = requests.snapshot();
        let obj = store
            .get(&k, GetOptions::default().with_range(range.clone()))
            .await
            .unwrap();
        assert_eq!(obj.meta.version, put.version, "{range:?}");
        assert_eq!(obj.meta.size, 10, "{range:?}");
        assert_eq!(obj.bytes().await.unwrap(), want, "{range:?}");
        let spent = requests.snapshot() - before;
        assert_eq!((spent.gets, spent.heads), (1, 0), "{range:?}: {spent}");
    }
    for range in [
        ByteRange::from(10..12),
        ByteRange::from(10..),
        ByteRange::from(3..3),
        ByteRange::Suffix(0),
    ] {
        let obj = store
            .get(&k, GetOptions::default().with_range(range.clone()))
            .await
            .unwrap();
        assert_eq!(obj.meta.version, put.version, "{range:?}");
        assert!(obj.range.is_empty(), "{range:?}: {:?}", obj.range);
        assert!(obj.bytes().await.unwrap().is_empty(), "{range:?}");
    }
    for range in [ByteRange::from(11..12), ByteRange::from(11..)] {
        let e = store
            .get(&k, GetOptions::default().with_range(range.clone()))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), store_core::ErrorKind::InvalidInput, "{range:?}: {e}");
    }
    let absent = Key::new("absent").unwrap();
    let e = store
        .get(&absent, GetOptions::default().with_range(ByteRange::from(0..3)))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

/// On SeaweedFS, counting the HTTP requests themselves: listing 10,000 objects costs
/// LIST pages, not requests per object.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_seaweedfs_listing_10000_objects_costs_pages_not_objects() {
    let Some(cfg) = s3_config("on_seaweedfs_listing_10000_objects_costs_pages_not_objects") else {
        return;
    };
    let (client, requests) = counted_s3(&cfg);
    let store = CloudStore::new(client)
        .with_settings(cfg.settings.clone())
        .with_prefix(&unique_prefix("listing"))
        .unwrap();
    store.probe().await.unwrap();
    let records = Records::new(store.clone());
    write_records(&records, 0, false).await;

    let before = requests.snapshot();
    let listed = list(&store, ListOptions::default().with_keys_only(true)).await;
    let spent = requests.snapshot() - before;
    assert_eq!(listed.len(), N);
    eprintln!("CloudStore::list, keys only, {N} objects: {spent}");
    assert!(
        per_object(spent) <= LISTING_BUDGET,
        "keys-only listing of {N}: {spent}"
    );

    let before = requests.snapshot();
    assert_eq!(count_keys(&records).await, N);
    let spent = requests.snapshot() - before;
    eprintln!("Records::list_keys, {N} records without expiry: {spent}");
    assert!(
        per_object(spent) <= RECORDS_BUDGET,
        "list_keys of {N} records: {spent}"
    );

    let before = requests.snapshot();
    assert_eq!(store.list_keys("many/").await.unwrap().len(), N);
    let spent = requests.snapshot() - before;
    assert!(
        per_object(spent) <= LISTING_BUDGET,
        "BackendExt::list_keys of {N}: {spent}"
    );
}
