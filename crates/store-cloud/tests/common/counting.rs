//! Request counters, so tests and benches can say what an operation costs in requests:
//! [`CountingConnector`] counts the HTTP requests an object_store client sends (a LIST
//! page, a HEAD, a GET, …); [`Counted`] counts the calls made to any `ObjectStore`, for
//! stores without HTTP such as `InMemory`.

#![allow(dead_code, unreachable_pub)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::client::{HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService};
use object_store::path::Path;
use object_store::{
    ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Requests seen, by kind.
#[derive(Debug, Default)]
pub struct Requests {
    lists: AtomicU64,
    heads: AtomicU64,
    gets: AtomicU64,
    writes: AtomicU64,
    deletes: AtomicU64,
}

/// A snapshot of [`Requests`]; subtract two to get what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub lists: u64,
    pub heads: u64,
    pub gets: u64,
    pub writes: u64,
    pub deletes: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.lists + self.heads + self.gets + self.writes + self.deletes
    }
}

impl std::ops::Sub for Counts {
    type Output = Counts;
    fn sub(self, before: Counts) -> Counts {
        Counts {
            lists: self.lists - before.lists,
            heads: self.heads - before.heads,
            gets: self.gets - before.gets,
            writes: self.writes - before.writes,
            deletes: self.deletes - before.deletes,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} list, {} head, {} get, {} write, {} delete)",
            self.total(),
            self.lists,
            self.heads,
            self.gets,
            self.writes,
            self.deletes
        )
    }
}

impl Requests {
    pub fn snapshot(&self) -> Counts {
        Counts {
            lists: self.lists.load(Ordering::Relaxed),
            heads: self.heads.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one HTTP request: a GET with `list-type` in its query is a LIST page.
    fn http(&self, method: &str, query: Option<&str>) {
        let counter = match method {
            "GET" if query.is_some_and(|q| q.contains("list-type")) => &self.lists,
            "GET" => &self.gets,
            "HEAD" => &self.heads,
            "DELETE" => &self.deletes,
            _ => &self.writes,
        };
        Self::add(counter);
    }
}

/// An object_store HTTP connector (reqwest underneath) that counts every request sent.
#[derive(Debug, Clone, Default)]
pub struct CountingConnector(pub Arc<Requests>);

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = object_store::client::ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CountingService {
            inner,
            requests: Arc::clone(&self.0),
        }))
    }
}

#[derive(Debug)]
struct CountingService {
    inner: HttpClient,
    requests: Arc<Requests>,
}

#[async_trait]
impl HttpService for CountingService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.requests.http(req.method().as_str(), req.uri().query());
        self.inner.execute(req).await
    }
}

/// An `ObjectStore` that counts the calls made to the one it wraps (a `list` call is one
/// listing, however many pages it has).
#[derive(Debug)]
pub struct Counted<T> {
    pub inner: T,
    pub requests: Arc<Requests>,
}

impl<T> Counted<T> {
    pub fn new(inner: T) -> Self {
        Counted {
            inner,
            requests: Arc::default(),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Counted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counted({})", self.inner)
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for Counted<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Requests::add(&self.requests.writes);
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Requests::add(&self.requests.writes);
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        Requests::add(if options.head {
            &self.requests.heads
        } else {
            &self.requests.gets
        });
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        Requests::add(&self.requests.deletes);
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        Requests::add(&self.requests.lists);
        self.inner.list(prefix)
    }
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        Requests::add(&self.requests.lists);
        self.inner.list_with_offset(prefix, offset)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        Requests::add(&self.requests.lists);
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        Requests::add(&self.requests.writes);
        self.inner.copy_opts(from, to, options).await
    }
}

/// An S3 client for `cfg`'s server whose every HTTP request is counted in the returned
/// [`Requests`].
pub fn counted_s3(cfg: &store_cloud::S3Config) -> (Arc<dyn ObjectStore>, Arc<Requests>) {
    use object_store::aws::AmazonS3Builder;
    let requests = Arc::new(Requests::default());
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&cfg.bucket)
        .with_region(cfg.region.as_deref().unwrap_or("us-east-1"))
        .with_allow_http(cfg.allow_http)
        .with_http_connector(CountingConnector(Arc::clone(&requests)));
    if let Some(ep) = &cfg.endpoint {
        b = b.with_endpoint(ep);
    }
    if let Some((id, secret)) = &cfg.credentials {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
    }
    (Arc::new(b.build().expect("S3 client")), requests)
}
