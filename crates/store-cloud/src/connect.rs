//! Building a `CloudStore` from a URL and options, or from typed S3 settings.

use std::sync::Arc;

use object_store::ObjectStore;
use store_core::{Error, Result};

#[cfg(feature = "s3")]
use crate::error::BACKEND;
#[cfg(feature = "s3")]
use crate::settings::CloudSettings;
use crate::store::CloudStore;

impl CloudStore {
    /// A store for a URL such as `s3://bucket/prefix`, `gs://bucket/prefix` or
    /// `az://container/prefix`, configured by `options` (object_store's configuration keys:
    /// `aws_endpoint`, `aws_region`, `aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_allow_http`, `google_service_account`, `azure_storage_account_name`, …). The
    /// URL's path becomes the store's prefix. Schemes whose cargo feature (`s3`, `gcs`,
    /// `azure`) is off are refused.
    ///
    /// Not probed: call [`CloudStore::probe`] (or use [`CloudStore::connect`]) before relying
    /// on `Create` / `Update`.
    ///
    /// ```
    /// # #[cfg(feature = "s3")] {
    /// use store_cloud::CloudStore;
    ///
    /// let store = CloudStore::from_url(
    ///     "s3://my-bucket/app/objects",
    ///     [("aws_endpoint", "http://127.0.0.1:9000"), ("aws_allow_http", "true"),
    ///      ("aws_region", "us-east-1"), ("aws_access_key_id", "k"), ("aws_secret_access_key", "s")],
    /// )?;
    /// assert_eq!(store.prefix(), Some("app/objects"));
    /// # }
    /// # Ok::<(), store_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that does not parse, an unknown scheme, a scheme
    /// whose feature is off, or a bad option.
    pub fn from_url<I, K, V>(url: &str, options: I) -> Result<CloudStore>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let bad = |reason: String| Error::invalid_input("from_url", None, format!("{url:?}: {reason}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let (store, path) = object_store::parse_url_opts(&parsed, options).map_err(|e| bad(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = Arc::from(store);
        CloudStore::new(store).with_prefix(path.as_ref())
    }

    /// [`CloudStore::from_url`], then [`CloudStore::probe`]: a store whose capabilities say
    /// whether the server enforces conditional puts.
    ///
    /// # Errors
    /// As `from_url`, plus any error of the probe's requests (wrong credentials, no bucket,
    /// server unreachable).
    pub async fn connect<I, K, V>(url: &str, options: I) -> Result<CloudStore>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let store = CloudStore::from_url(url, options)?;
        store.probe().await?;
        Ok(store)
    }
}

/// Typed settings for Amazon S3 or an S3-compatible server, with `with_*` builders.
///
/// ```
/// use store_cloud::S3Config;
///
/// let cfg = S3Config::new("my-bucket")
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_credentials("access", "secret")
///     .with_prefix("tests/run-1");
/// let store = cfg.build()?;
/// assert_eq!(store.prefix(), Some("tests/run-1"));
/// # Ok::<(), store_core::Error>(())
/// ```
#[cfg(feature = "s3")]
#[derive(Clone, Default)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Keys are stored under this prefix (none by default).
    pub prefix: Option<String>,
    /// The endpoint URL of an S3-compatible server (`http://127.0.0.1:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`).
    pub region: Option<String>,
    /// Static credentials (access key id, secret key); `None` uses the environment /
    /// instance credentials as object_store finds them.
    pub credentials: Option<(String, String)>,
    /// Allow plain `http://` endpoints. Set automatically for an `http://` endpoint.
    pub allow_http: bool,
    /// The store's settings (layout, multipart sizes, watch backoff, …).
    pub settings: CloudSettings,
}

#[cfg(feature = "s3")]
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, _)| (id, "<secret>")),
            )
            .field("allow_http", &self.allow_http)
            .field("settings", &self.settings)
            .finish()
    }
}

#[cfg(feature = "s3")]
impl S3Config {
    /// Settings for `bucket`, everything else default.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            ..Default::default()
        }
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Sets the endpoint (and allows plain HTTP if it is an `http://` URL).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        self.allow_http |= endpoint.starts_with("http://");
        self.endpoint = Some(endpoint);
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Sets static credentials.
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_key.into()));
        self
    }

    /// Sets the store's settings.
    pub fn with_settings(mut self, settings: CloudSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the key layout (use [`Layout::Nested`](crate::Layout::Nested) for SeaweedFS).
    pub fn with_layout(mut self, layout: crate::Layout) -> Self {
        self.settings.layout = layout;
        self
    }

    /// Allows (or forbids) plain HTTP.
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The raw object_store client for these settings (for comparisons and tools).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if object_store refuses the settings.
    pub fn object_store(&self) -> Result<Arc<dyn ObjectStore>> {
        use object_store::aws::AmazonS3Builder;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(self.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(self.allow_http);
        if let Some(ep) = &self.endpoint {
            b = b.with_endpoint(ep);
        }
        if let Some((id, secret)) = &self.credentials {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        let s3 = b
            .build()
            .map_err(|e| Error::invalid_input("S3Config::build", None, format!("{BACKEND}: {e}")))?;
        Ok(Arc::new(s3))
    }

    /// A (not yet probed) store for these settings.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if object_store refuses the settings or the prefix is not a
    /// valid key.
    pub fn build(&self) -> Result<CloudStore> {
        let store = CloudStore::new(self.object_store()?).with_settings(self.settings.clone());
        match &self.prefix {
            Some(p) => store.with_prefix(p),
            None => Ok(store),
        }
    }

    /// [`S3Config::build`], then [`CloudStore::probe`].
    ///
    /// # Errors
    /// As `build`, plus any error of the probe's requests.
    pub async fn connect(&self) -> Result<CloudStore> {
        let store = self.build()?;
        store.probe().await?;
        Ok(store)
    }
}
