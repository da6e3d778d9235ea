//! `Group`: a set of named objects whose updates are ordered by one manifest.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use store_core::{Backend, BackendExt, Body, Error, GetOptions, Key, Result, Version};

use crate::cache::{MAX_CACHED, VersionCache};
use crate::manifest::{DEFAULT_INLINE_LIMIT, INLINE_BUDGET, Manifest, Snapshot};
use crate::reader::Reader;
use crate::retry::{RetryPolicy, conflicted};
use crate::writer::Writer;

/// The longest name of an object or mutex in a group, in bytes.
pub const MAX_NAME_LEN: usize = 512;

/// A collection of named objects on one [`Backend`] that can be updated consistently.
///
/// Every update of every name switches the group's manifest with a compare-and-swap, so
/// the objects of a group contend with each other for updates (as in the seed); that is
/// the price of atomic multi-name [`transaction`](Group::transaction)s. Use several groups
/// for unrelated data.
///
/// Cloning is cheap (a shared handle). See the [crate documentation](crate) for the
/// layout on the backend, the cost of each operation in round trips, and the guarantees.
#[derive(Clone)]
pub struct Group {
    pub(crate) shared: Arc<Shared>,
}

/// A manifest and the version it was read or written at.
pub(crate) type LastManifest = (Version, Arc<Manifest>);

/// What the handles of one group share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) name: String,
    pub(crate) manifest_key: Key,
    pub(crate) objects_prefix: String,
    pub(crate) locks_prefix: String,
    pub(crate) retry: RetryPolicy,
    /// Contents up to this size are kept in the manifest (within [`INLINE_BUDGET`]).
    pub(crate) inline_limit: usize,
    pub(crate) cache: Arc<VersionCache>,
    /// The last manifest this group's handles read or wrote, with its version: `operate`
    /// starts from it without reading the manifest, and a read that finds the manifest
    /// still at that version skips decoding it. Only on a backend whose versions each name
    /// one content (`Capabilities::stable_versions`), so that a version never names
    /// another content than the one kept; `None` on others.
    pub(crate) last: Option<Arc<Mutex<Option<LastManifest>>>>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.shared.name)
            .field("backend", &self.shared.backend)
            .field("retry", &self.shared.retry)
            .field("inline_limit", &self.shared.inline_limit)
            .finish()
    }
}

impl Group {
    /// A group called `name` on `backend`. `name` must be a valid [`Key`]: the group's
    /// objects live under `<name>/` (see the [crate documentation](crate)). Creating a
    /// handle does no I/O; an absent group reads as empty.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if `name` is not a valid key.
    pub fn new(backend: impl Backend, name: &str) -> Result<Group> {
        let root = Key::new(name)?;
        let stable = backend.capabilities().stable_versions;
        Ok(Group {
            shared: Arc::new(Shared {
                backend: Arc::new(backend),
                manifest_key: root.join(".manifest")?,
                objects_prefix: format!("{root}/.objects/"),
                locks_prefix: format!("{root}/.locks/"),
                name: root.to_string(),
                retry: RetryPolicy::default(),
                inline_limit: DEFAULT_INLINE_LIMIT,
                cache: Arc::default(),
                last: stable.then(Arc::default),
            }),
        })
    }

    /// This group with another [`RetryPolicy`] (other handles keep theirs).
    pub fn with_retry_policy(self, retry: RetryPolicy) -> Group {
        self.reconfigured(|s| s.retry = retry)
    }

    /// This group keeping contents of up to `limit` bytes in the manifest (other handles
    /// keep theirs); the default is [`DEFAULT_INLINE_LIMIT`](crate::DEFAULT_INLINE_LIMIT).
    ///
    /// The trade-off, in round trips: an update of a content kept in the manifest is one
    /// conditional put (of the manifest), and reading it costs nothing more than the
    /// manifest; a larger content costs an object write before that put (and a delete of
    /// the replaced version, off the caller's path), and a read of its own. But the
    /// manifest is rewritten, whole, by every update of every name of the group, so each
    /// inline byte (two in hex) is written again by every update. The manifest holds at
    /// most [`INLINE_BUDGET`](crate::INLINE_BUDGET) bytes of inline content whatever the
    /// limit; beyond that, contents become objects. A limit of 0 keeps every non-empty
    /// content in an object. Handles with different limits work on one group.
    pub fn with_inline_limit(self, limit: usize) -> Group {
        self.reconfigured(|s| s.inline_limit = limit)
    }

    /// A handle with other settings, sharing the backend and the caches.
    fn reconfigured(self, change: impl FnOnce(&mut Shared)) -> Group {
        let mut shared = Shared::clone(&self.shared);
        change(&mut shared);
        Group {
            shared: Arc::new(shared),
        }
    }

    /// The group's name (its key prefix on the backend).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The retry policy of this handle.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.shared.retry
    }

    /// The inline limit of this handle ([`Group::with_inline_limit`]).
    pub fn inline_limit(&self) -> usize {
        self.shared.inline_limit
    }

    /// The backend the group lives on.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.shared.backend
    }

    /// The current content of `name` and its key (the version token to pass to
    /// [`Group::writer`]). An unknown name reads as empty, with an empty key.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or overlong name; [`Error::Corrupt`] for a
    /// damaged manifest; backend errors.
    pub async fn reader(&self, name: &str) -> Result<Reader> {
        Ok(self.read(name, "read").await?.1)
    }

    /// Prepares a write of `name` that will succeed only if `name` still has `key` (from a
    /// [`Reader`]; the empty key means "absent"). Nothing is visible until
    /// [`Writer::close`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or overlong name; backend errors.
    pub async fn writer(&self, name: &str, key: &str) -> Result<Writer> {
        self.check_name("write", name)?;
        Writer::open(self.clone(), name, key, None).await
    }

    /// The names in the group, in ascending order.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged manifest; backend errors.
    pub async fn list(&self) -> Result<Vec<String>> {
        Ok(self
            .load()
            .await?
            .manifest
            .objects
            .keys()
            .map(|name| name.to_string())
            .collect())
    }

    /// Reads the manifest and the current object of `name` from it, reloading when the
    /// object was replaced (and deleted) between the two reads.
    pub(crate) async fn read(&self, name: &str, op: &'static str) -> Result<(Snapshot, Reader)> {
        let (snap, id, body) = self.read_current(name, op, false).await?;
        Ok((snap, Reader::new(name, id, body)))
    }

    /// [`read`](Self::read) without building a [`Reader`]: the snapshot, the id of `name`'s
    /// content (empty if it has none) and the content. Costs one read of the manifest and,
    /// for a content kept as an object that this group has not cached, one of the object
    /// (which is then cached, up to 64 KiB).
    ///
    /// With `optimistic`, from the manifest this group last wrote or read, if it has one,
    /// without asking the backend (the snapshot is then marked `cached`, and the group's
    /// copy is taken out so that a switch edits it in place): for a read that only feeds a
    /// conditional write, which fails if the manifest moved on.
    pub(crate) async fn read_current(
        &self,
        name: &str,
        op: &'static str,
        mut optimistic: bool,
    ) -> Result<(Snapshot, Arc<str>, Body)> {
        self.check_name(op, name)?;
        let mut retries = None;
        loop {
            let snap = match optimistic.then(|| self.take_cached()).flatten() {
                Some(snap) => snap,
                None => self.load().await?,
            };
            let Some((id, inline)) = snap.entry(name) else {
                return Ok((snap, Arc::from(""), Body::Bytes(Bytes::new())));
            };
            if let Some(content) = inline.or_else(|| self.shared.cache.get(name, &id)) {
                return Ok((snap, id, Body::Bytes(content)));
            }
            match self
                .shared
                .backend
                .get(&self.object_key(&id)?, GetOptions::default())
                .await
            {
                // Remembered: the version never changes, so it is the content for as long
                // as the manifest names it.
                Ok(obj) if obj.meta.size <= MAX_CACHED => {
                    let content = obj.bytes().await?;
                    self.shared.cache.put(name, &id, &content);
                    return Ok((snap, id, Body::Bytes(content)));
                }
                Ok(obj) => return Ok((snap, id, obj.body)),
                // A stale cached manifest: read the current one, at once.
                Err(e) if e.is_not_found() && snap.cached => optimistic = false,
                // Replaced meanwhile: its successor is in a newer manifest.
                Err(e) if e.is_not_found() => {
                    conflicted(&mut retries, &self.shared.retry, op, &self.display(name)).await?
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the manifest (an absent manifest is an empty group): one read.
    pub(crate) async fn load(&self) -> Result<Snapshot> {
        let key = &self.shared.manifest_key;
        let obj = match self.shared.backend.get(key, GetOptions::default()).await {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => return Ok(Snapshot::default()),
            Err(e) => return Err(e),
        };
        let version = obj.meta.version.clone();
        let kept = self.shared.last.as_ref().and_then(|last| match &*last.lock() {
            Some((v, manifest)) if *v == version => Some(Arc::clone(manifest)),
            _ => None,
        });
        let manifest = match kept {
            Some(manifest) => manifest,
            None => {
                let manifest = Arc::new(Manifest::decode(key, &obj.bytes().await?)?);
                self.remember(version.clone(), Arc::clone(&manifest));
                manifest
            }
        };
        Ok(Snapshot {
            manifest,
            version: Some(version),
            cached: false,
        })
    }

    /// Takes the manifest this group last wrote or read out of its cache, as a `cached`
    /// snapshot (none if the backend's versions are not stable, or none is kept).
    fn take_cached(&self) -> Option<Snapshot> {
        let (version, manifest) = self.shared.last.as_ref()?.lock().take()?;
        Some(Snapshot {
            manifest,
            version: Some(version),
            cached: true,
        })
    }

    /// Keeps `manifest`, at `version`, as the last one seen.
    pub(crate) fn remember(&self, version: Version, manifest: Arc<Manifest>) {
        let Some(last) = &self.shared.last else { return };
        let old = last.lock().replace((version, manifest));
        // The old manifest is freed outside the lock.
        drop(old);
    }

    /// Whether a content of `len` bytes is kept in a manifest that already holds
    /// `inline_bytes` of inline content (else it becomes an object).
    pub(crate) fn fits_inline(&self, inline_bytes: usize, len: usize) -> bool {
        len <= self.shared.inline_limit && inline_bytes + len <= INLINE_BUDGET
    }

    /// The backend key of an object version.
    pub(crate) fn object_key(&self, id: &str) -> Result<Key> {
        Key::new(format!("{}{id}", self.shared.objects_prefix))
    }

    /// `<group>/<name>`, for messages.
    pub(crate) fn display(&self, name: &str) -> String {
        format!("{}/{name}", self.shared.name)
    }

    /// Refuses empty and overlong names.
    pub(crate) fn check_name(&self, op: &'static str, name: &str) -> Result<()> {
        let reason = if name.is_empty() {
            "a name must not be empty".to_owned()
        } else if name.len() > MAX_NAME_LEN {
            format!("name {name:?} is longer than {MAX_NAME_LEN} bytes")
        } else {
            return Ok(());
        };
        Err(Error::InvalidInput {
            op,
            key: Some(self.display(name)),
            reason,
        })
    }

    /// Every object version stored for this group, referenced or not.
    pub(crate) async fn stored_objects(&self) -> Result<Vec<store_core::Meta>> {
        self.shared
            .backend
            .list_all(store_core::ListOptions::default().with_prefix(self.shared.objects_prefix.clone()))
            .await
    }
}
