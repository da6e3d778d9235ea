//! Conditional puts whose reply is lost: CloudStore's write id tells its own write apart.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use store_cloud::CloudStore;
use store_core::{Backend, BackendExt, ErrorKind, Key};

/// Conditional puts behave normally.
const NORMAL: u8 = 0;
/// The next conditional put is applied, then its reply is lost (a reset connection).
const LOSE: u8 = 1;
/// The next conditional put is applied, then sent again, as a client retrying after a lost
/// reply does; the caller gets the server's answer to the copy.
const RESEND: u8 = 2;

/// An object store whose next conditional put misbehaves as [`LOSE`] or [`RESEND`] say.
#[derive(Debug, Default)]
struct LossyNetwork {
    inner: InMemory,
    next: AtomicU8,
}

impl fmt::Display for LossyNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LossyNetwork({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LossyNetwork {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let trouble = match opts.mode {
            PutMode::Overwrite => NORMAL,
            _ => self.next.swap(NORMAL, Ordering::SeqCst),
        };
        let first = self.inner.put_opts(location, payload.clone(), opts.clone()).await;
        match trouble {
            LOSE if first.is_ok() => Err(object_store::Error::Generic {
                store: "LossyNetwork",
                source: "connection reset by peer".into(),
            }),
            RESEND if first.is_ok() => self.inner.put_opts(location, payload, opts).await,
            _ => first,
        }
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn store() -> (Arc<LossyNetwork>, CloudStore) {
    let network = Arc::new(LossyNetwork::default());
    let store = CloudStore::new(network.clone()).assume_conditional_writes(true);
    (network, store)
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn a_resent_conditional_put_is_not_a_conflict_against_itself() {
    let (network, store) = store();
    let k = key("counter");
    network.next.store(RESEND, Ordering::SeqCst);
    let created = store.create(&k, "1").await.expect("the create landed");
    assert_eq!(store.head(&k).await.unwrap().version, created.version);

    network.next.store(RESEND, Ordering::SeqCst);
    let updated = store
        .update(&k, "2", created.version)
        .await
        .expect("the update landed");
    assert_eq!(store.head(&k).await.unwrap().version, updated.version);
    assert_eq!(store.get_bytes(&k).await.unwrap(), "2");

    // Somebody else's object is still a conflict.
    let err = store.create(&k, "3").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
}

#[tokio::test]
async fn a_lost_reply_is_an_unknown_outcome_that_the_write_id_resolves() {
    let (network, store) = store();
    let k = key("a/b");
    network.next.store(LOSE, Ordering::SeqCst);
    let err = store.create(&k, "mine").await.unwrap_err();
    assert!(err.is_outcome_unknown() && err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("a/b") && err.to_string().contains("connection reset"),
        "{err}"
    );
    let resolver = err.resolver().expect("a resolver").clone();
    let found = resolver.resolve().await.unwrap().expect("the write is there");
    assert_eq!(found.version, store.head(&k).await.unwrap().version);

    // Once another write replaced it, the resolver cannot vouch for it any more.
    store.put_bytes(&k, "theirs").await.unwrap();
    assert!(resolver.resolve().await.unwrap().is_none());
    store.delete(&k, Default::default()).await.unwrap();
    assert!(resolver.resolve().await.unwrap().is_none());

    // An update whose reply is lost resolves the same way.
    let v = store.create(&k, "1").await.unwrap().version;
    network.next.store(LOSE, Ordering::SeqCst);
    let err = store.update(&k, "2", v).await.unwrap_err();
    let found = err.resolver().unwrap().resolve().await.unwrap().unwrap();
    assert_eq!(found.version, store.head(&k).await.unwrap().version);
}
