//! `MemoryStore`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use parking_lot::RwLock;
use store_core::{
    Backend, Body, BufferedWriter, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta,
    Object, ObjectWriter, PutMode, PutOptions, Result, Version,
};

use store_core::WatcherRegistry;

/// How many entries a listing copies out per acquisition of the read lock: large enough to
/// make listing fast, small enough that a listing never holds up writers for long.
const LIST_PAGE: usize = 1024;

/// An ordered, concurrent, in-memory [`Backend`].
///
/// - **Zero-copy**: a get hands out a reference-counted slice of the stored [`Bytes`]; range
///   reads slice it too.
/// - **Ordered**: objects live in a B-tree, so listings are ordered and prefix listings only
///   visit matching keys.
/// - **Concurrent**: a reader-writer lock that is only ever held for the few instructions
///   of a map operation — never across an `.await` — so tasks never wait on each other's I/O.
/// - **Versions** come from a store-wide counter: unique across keys and never repeated,
///   also across delete and re-create.
/// - **Native watch**: each change wakes the watchers of that key at once; nothing polls,
///   and a dropped watch leaves nothing behind.
///
/// Cloning is cheap and clones share the same data.
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_memory::MemoryStore;
///
/// # tokio_test_main(async {
/// let store = MemoryStore::new();
/// let key = Key::new("greeting")?;
/// let v1 = store.create(&key, "hello").await?.version;
/// let v2 = store.update(&key, "hello, world", v1.clone()).await?.version;
/// assert!(store.update(&key, "lost update", v1).await.unwrap_err().is_conflict());
/// assert_eq!(store.get_bytes(&key).await?, "hello, world");
/// assert_eq!(store.head(&key).await?.version, v2);
/// # Ok::<(), store_core::Error>(())
/// # });
/// # fn tokio_test_main<F: std::future::Future<Output = Result<(), store_core::Error>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f).unwrap()
/// # }
/// # use store_core::Backend;
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    map: RwLock<BTreeMap<Key, Entry>>,
    /// The last version handed out.
    last_version: AtomicU64,
    watchers: Arc<WatcherRegistry>,
}

#[derive(Clone)]
struct Entry {
    data: Bytes,
    version: u64,
    modified: SystemTime,
}

impl Entry {
    fn meta(&self, key: &Key) -> Meta {
        Meta {
            key: key.clone(),
            size: self.data.len() as u64,
            version: Version::from(self.version),
            modified: self.modified,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of objects stored.
    pub fn len(&self) -> usize {
        self.inner.map.read().len()
    }

    /// True if no object is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.map.read().is_empty()
    }

    /// Total bytes of object data stored (shared buffers counted once per object).
    pub fn bytes_stored(&self) -> u64 {
        self.inner.map.read().values().map(|e| e.data.len() as u64).sum()
    }

    /// Number of keys that currently have live watchers. Zero once every watch future has
    /// returned or been dropped.
    pub fn watched_keys(&self) -> usize {
        self.inner.watchers.watched_keys()
    }

    fn next_version(&self) -> u64 {
        self.inner.last_version.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Called with the write lock held, after a change to `key`. Reading `any()` under the
    /// lock is what makes a concurrent `watch` race-free: a watcher either registered before
    /// this point (and is woken) or reads the map after this change (and sees it).
    fn must_wake(&self) -> bool {
        self.inner.watchers.any()
    }

    fn current_version(&self, key: &Key) -> Option<Version> {
        self.inner.map.read().get(key).map(|e| Version::from(e.version))
    }
}

fn version_matches(expected: &Version, actual: u64) -> bool {
    expected.as_u64() == Some(actual)
}

#[async_trait]
impl Backend for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_create(true)
            .with_update(true)
            .with_conditional_delete(true)
            .with_range_reads(true)
            .with_native_watch(true)
            .with_stable_versions(true)
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let modified = SystemTime::now();
        let (meta, wake) = {
            let mut map = self.inner.map.write();
            match (&opts.mode, map.get(key)) {
                (PutMode::Overwrite, _) | (PutMode::Create, None) => {}
                (PutMode::Create, Some(existing)) => {
                    return Err(Error::AlreadyExists {
                        op: "put",
                        key: key.to_string(),
                        version: Version::from(existing.version),
                    });
                }
                (PutMode::Update(_), None) => {
                    return Err(Error::NotFound {
                        op: "put",
                        key: key.to_string(),
                    });
                }
                (PutMode::Update(expected), Some(existing)) => {
                    if !version_matches(expected, existing.version) {
                        return Err(Error::Conflict {
                            op: "put",
                            key: key.to_string(),
                            expected: Some(expected.clone()),
                            actual: Some(Version::from(existing.version)),
                        });
                    }
                }
            }
            let entry = Entry {
                data,
                version: self.next_version(),
                modified,
            };
            let meta = entry.meta(key);
            map.insert(key.clone(), entry);
            (meta, self.must_wake())
        };
        if wake {
            self.inner.watchers.wake(key);
        }
        tracing::trace!(key = %key, version = %meta.version, size = meta.size, "memory put");
        Ok(meta)
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(BufferedWriter::new(self.clone(), key.clone(), opts)))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let entry = self.inner.map.read().get(key).cloned();
        let Some(entry) = entry else {
            return Err(Error::NotFound {
                op: "get",
                key: key.to_string(),
            });
        };
        let meta = entry.meta(key);
        opts.check(key, &meta.version)?;
        let (range, data) = match &opts.range {
            None => (0..meta.size, entry.data),
            Some(r) => {
                let range = r.resolve(key, meta.size)?;
                let data = entry.data.slice(range.start as usize..range.end as usize);
                (range, data)
            }
        };
        Ok(Object {
            meta,
            range,
            body: Body::Bytes(data),
        })
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        match self.inner.map.read().get(key) {
            Some(entry) => Ok(entry.meta(key)),
            None => Err(Error::NotFound {
                op: "head",
                key: key.to_string(),
            }),
        }
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let wake = {
            let mut map = self.inner.map.write();
            let Some(existing) = map.get(key) else {
                return Err(Error::NotFound {
                    op: "delete",
                    key: key.to_string(),
                });
            };
            if let Some(expected) = &opts.if_match
                && !version_matches(expected, existing.version)
            {
                return Err(Error::Conflict {
                    op: "delete",
                    key: key.to_string(),
                    expected: Some(expected.clone()),
                    actual: Some(Version::from(existing.version)),
                });
            }
            map.remove(key);
            self.must_wake()
        };
        if wake {
            self.inner.watchers.wake(key);
        }
        tracing::trace!(key = %key, "memory delete");
        Ok(())
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let inner = Arc::clone(&self.inner);
        let prefix = opts.prefix.unwrap_or_default();
        // Start at whichever is later: the prefix itself (inclusive) or start_after (exclusive).
        let start = match opts.start_after {
            Some(after) if after.as_str() >= prefix.as_str() => Some((after, false)),
            _ => Some((prefix.clone(), true)),
        };
        stream::unfold(start, move |cursor| {
            let inner = Arc::clone(&inner);
            let prefix = prefix.clone();
            async move {
                let (from, inclusive) = cursor?;
                let page: Vec<Meta> = {
                    let map = inner.map.read();
                    let lower = if inclusive {
                        Bound::Included(from.as_str())
                    } else {
                        Bound::Excluded(from.as_str())
                    };
                    map.range::<str, _>((lower, Bound::Unbounded))
                        .take_while(|(k, _)| k.starts_with(&prefix))
                        .take(LIST_PAGE)
                        .map(|(k, e)| e.meta(k))
                        .collect()
                };
                let next = match page.last() {
                    Some(last) if page.len() == LIST_PAGE => Some((last.key.as_str().to_owned(), false)),
                    _ => None,
                };
                if page.is_empty() {
                    None
                } else {
                    Some((stream::iter(page.into_iter().map(Ok)), next))
                }
            }
        })
        .flatten()
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let guard = self.inner.watchers.register(key);
        loop {
            let notified = guard.notify().notified();
            tokio::pin!(notified);
            // Enabled before the read: a change after the read wakes this future.
            notified.as_mut().enable();
            let current = self.current_version(key);
            if current.as_ref() != seen {
                return Ok(current);
            }
            notified.await;
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("objects", &self.len())
            .finish()
    }
}
