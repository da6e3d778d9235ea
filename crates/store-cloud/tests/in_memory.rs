//! CloudStore over object_store's `InMemory`, and over a fake that ignores conditions —
//! no server needed.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use store_cloud::{CloudSettings, CloudStore};
use store_core::{Backend, BackendExt, ErrorKind, Key};

/// A test double for a server that accepts `If-None-Match` / `If-Match` and ignores them:
/// every put becomes an overwrite.
#[derive(Debug, Default)]
struct IgnoresConditions(InMemory);

impl fmt::Display for IgnoresConditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IgnoresConditions({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for IgnoresConditions {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let opts = PutOptions {
            mode: PutMode::Overwrite,
            ..opts
        };
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloud_store_over_in_memory_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async {
        CloudStore::new(Arc::new(InMemory::new()))
            .with_prefix("some/prefix")
            .unwrap()
            .assume_conditional_writes(true)
    })
    .await
    .assert_all_ran();
}

#[tokio::test]
async fn probe_reports_conditions_enforced_by_in_memory() {
    let store = CloudStore::new(Arc::new(InMemory::new()));
    let found = store.probe().await.unwrap();
    assert!(found.create && found.update && found.enforced());
    assert!(store.capabilities().create && store.capabilities().update);
}

#[tokio::test]
async fn probe_detects_a_server_that_ignores_conditions() {
    let store = CloudStore::new(Arc::new(IgnoresConditions::default()));
    let found = store.probe().await.unwrap();
    assert!(!found.create && !found.update && !found.enforced(), "{found:?}");
    let caps = store.capabilities();
    assert!(!caps.create && !caps.update);
    // Conditional puts are refused rather than silently overwriting.
    let k = key("k");
    store.put_bytes(&k, "first").await.unwrap();
    let err = store.create(&k, "second").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let v = store.head(&k).await.unwrap().version;
    let err = store.update(&k, "third", v).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    let err = store
        .writer(&k, store_core::PutOptions::create())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert_eq!(store.get_bytes(&k).await.unwrap(), "first");
}

#[tokio::test]
async fn conditional_writers_past_their_buffer_limit_fail_clearly() {
    let store = CloudStore::new(Arc::new(InMemory::new()))
        .with_settings(CloudSettings::default().with_conditional_buffer_limit(8))
        .assume_conditional_writes(true);
    let k = key("big/conditional");
    let mut w = store.writer(&k, store_core::PutOptions::create()).await.unwrap();
    w.write(Bytes::from_static(b"12345678")).await.unwrap();
    let err = w.write(Bytes::from_static(b"9")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("big/conditional"), "{err}");
    drop(w);
    assert!(store.head(&k).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn multipart_writes_commit_on_close_and_vanish_on_abort() {
    let store = CloudStore::new(Arc::new(InMemory::new())).with_settings(
        CloudSettings::default()
            .with_multipart_threshold(16)
            .with_part_size(16),
    );
    let k = key("multi/part");
    let mut w = store.writer(&k, Default::default()).await.unwrap();
    for i in 0..10u8 {
        w.write(Bytes::from(vec![i; 7])).await.unwrap();
    }
    assert!(store.head(&k).await.unwrap_err().is_not_found());
    let meta = w.close().await.unwrap();
    assert_eq!(meta.size, 70);
    assert_eq!(store.head(&k).await.unwrap().version, meta.version);
    let want: Vec<u8> = (0..10u8).flat_map(|i| vec![i; 7]).collect();
    assert_eq!(store.get_bytes(&k).await.unwrap(), want);
    let mut w = store.writer(&k, Default::default()).await.unwrap();
    w.write(Bytes::from(vec![9; 40])).await.unwrap();
    w.abort().await.unwrap();
    assert_eq!(store.head(&k).await.unwrap().version, meta.version);
}

#[tokio::test]
async fn reserved_keys_and_bad_urls_are_refused() {
    let store = CloudStore::new(Arc::new(InMemory::new()));
    let err = store.put_bytes(&key(".store-cloud/x"), "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidKey);
    let err = CloudStore::from_url("nonsense", Vec::<(String, String)>::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = CloudStore::from_url("ftp://host/x", Vec::<(String, String)>::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        CloudStore::new(Arc::new(InMemory::new()))
            .with_prefix("a/../b")
            .is_err()
    );
}
