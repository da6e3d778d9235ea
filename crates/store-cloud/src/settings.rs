//! Tuning knobs of a `CloudStore`.

use store_core::Backoff;

/// How a [`CloudStore`](crate::CloudStore) uses the object store. `Default` suits S3.
///
/// ```
/// use store_cloud::CloudSettings;
///
/// let s = CloudSettings::default().with_multipart_threshold(16 << 20);
/// assert_eq!(s.multipart_threshold, 16 << 20);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CloudSettings {
    /// A streamed `Overwrite` write switches from one buffered PUT to a multipart upload once
    /// it holds this many bytes. Default 8 MiB.
    pub multipart_threshold: usize,
    /// The size of each multipart part (S3 wants at least 5 MiB, except the last). Default 8 MiB.
    pub part_size: usize,
    /// Parts uploaded at once by one writer. Default 4.
    pub upload_concurrency: usize,
    /// The largest streamed write with a condition (`Create` / `Update`). Such a write is
    /// buffered and sent as one conditional PUT, because completing a multipart upload cannot
    /// be made conditional through object_store; past this size it fails with
    /// `InvalidInput` instead of silently losing its condition. Default 256 MiB.
    pub conditional_buffer_limit: usize,
    /// HEAD requests in flight while listing with write ids on and versions wanted (each
    /// listed object's version then needs one; see the crate docs on listing). Default 16.
    pub list_concurrency: usize,
    /// How keys map to object names and how listings are ordered. Default [`Layout::Flat`].
    pub layout: Layout,
    /// Polling backoff of `watch`: a change is noticed within `watch_backoff.max` at worst.
    /// Default: 5 ms doubling up to 1 s.
    pub watch_backoff: Backoff,
    /// Whether every write stores a random write id in the object's metadata (see the
    /// [crate docs](crate) on versions and listing). Default `true`: S3's, SeaweedFS' and
    /// GCS' ETags are content hashes and repeat, so the write id is what keeps versions
    /// unique. Turn it off only for an object store whose ETag names one write and never
    /// repeats — Azure Blob Storage, or [`ObjectStoreAdapter`](crate::ObjectStoreAdapter),
    /// which stores no metadata. A version is then the ETag alone, which every listing
    /// carries, so a listing costs no request per object. Without write ids, a conditional
    /// write whose reply was lost cannot be recognised as our own, so its error says the
    /// outcome is unknown instead of settling it.
    pub write_ids: bool,
}

impl Default for CloudSettings {
    fn default() -> Self {
        CloudSettings {
            multipart_threshold: 8 << 20,
            part_size: 8 << 20,
            upload_concurrency: 4,
            conditional_buffer_limit: 256 << 20,
            list_concurrency: 16,
            layout: Layout::Flat,
            watch_backoff: Backoff::default(),
            write_ids: true,
        }
    }
}

impl CloudSettings {
    /// Sets [`multipart_threshold`](Self::multipart_threshold).
    pub fn with_multipart_threshold(mut self, bytes: usize) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    /// Sets [`part_size`](Self::part_size).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    /// Sets [`upload_concurrency`](Self::upload_concurrency).
    pub fn with_upload_concurrency(mut self, n: usize) -> Self {
        self.upload_concurrency = n;
        self
    }

    /// Sets [`conditional_buffer_limit`](Self::conditional_buffer_limit).
    pub fn with_conditional_buffer_limit(mut self, bytes: usize) -> Self {
        self.conditional_buffer_limit = bytes;
        self
    }

    /// Sets [`list_concurrency`](Self::list_concurrency).
    pub fn with_list_concurrency(mut self, n: usize) -> Self {
        self.list_concurrency = n;
        self
    }

    /// Sets [`layout`](Self::layout).
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets [`watch_backoff`](Self::watch_backoff).
    pub fn with_watch_backoff(mut self, backoff: Backoff) -> Self {
        self.watch_backoff = backoff;
        self
    }

    /// Sets [`write_ids`](Self::write_ids).
    pub fn with_write_ids(mut self, on: bool) -> Self {
        self.write_ids = on;
        self
    }
}

/// How keys map to object names, chosen for the kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Key `k` is the object `prefix/k`, readable as such with any S3 tool, and the server
    /// lists in key order with `start_after` pushed down. Right for Amazon S3, GCS, Azure,
    /// MinIO and other servers with a flat key space.
    #[default]
    Flat,
    /// Key `k` is the object `prefix/k/.store-object`, listings are sorted here and
    /// `start_after` is applied here. For servers that keep objects in a file-system tree
    /// (SeaweedFS): there a key with other keys nested under it (`a` beside `a/b`) is also a
    /// directory, and such servers refuse `If-None-Match: *` on a directory name, so a
    /// `Create` of `a` would fail while `a/b` exists; they also list depth-first, not in key
    /// order. In this layout no object name is ever a directory. Keys with a
    /// `.store-object` segment are refused.
    Nested,
}

impl Layout {
    /// The last path segment of every object in the nested layout.
    pub(crate) const LEAF: &'static str = ".store-object";
}
