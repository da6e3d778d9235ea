//! `Group`: a set of named objects whose updates are ordered by one manifest.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use store_core::{
    Backend, BackendExt, Body, DeleteOptions, Error, GetOptions, Key, PutMode, PutOptions, Result, Version,
};

use crate::cache::VersionCache;
use crate::manifest::{Entry, Manifest, Snapshot, new_inline_id, new_object_id};
use crate::reader::Reader;
use crate::retry::{RetryPolicy, lost_race};
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
/// layout on the backend and the guarantees.
#[derive(Clone)]
pub struct Group {
    pub(crate) shared: Arc<Shared>,
}

/// A manifest and the version it was read or written at.
pub(crate) type LastManifest = (Version, Arc<Manifest>);

/// What the handles of one group share.
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) name: String,
    pub(crate) manifest_key: Key,
    pub(crate) objects_prefix: String,
    pub(crate) locks_prefix: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) cache: Arc<VersionCache>,
    /// The last manifest this group's handles read or wrote, with its version: a read that
    /// finds the manifest still at that version skips decoding it. Only on a backend whose
    /// versions each name one content (`Capabilities::stable_versions`), so that it cannot
    /// be stale; `None` on others.
    pub(crate) last: Option<Arc<Mutex<Option<LastManifest>>>>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.shared.name)
            .field("backend", &self.shared.backend)
            .field("retry", &self.shared.retry)
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
                cache: Arc::default(),
                last: stable.then(Arc::default),
            }),
        })
    }

    /// This group with another [`RetryPolicy`] (other handles keep theirs).
    pub fn with_retry_policy(self, retry: RetryPolicy) -> Group {
        let s = &self.shared;
        Group {
            shared: Arc::new(Shared {
                backend: s.backend.clone(),
                name: s.name.clone(),
                manifest_key: s.manifest_key.clone(),
                objects_prefix: s.objects_prefix.clone(),
                locks_prefix: s.locks_prefix.clone(),
                retry,
                cache: s.cache.clone(),
                last: s.last.clone(),
            }),
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
    /// content (empty if it has none) and the content.
    ///
    /// With `optimistic`, from the manifest this group last wrote or read, if it has one,
    /// without asking the backend (the snapshot is then marked `cached`): for a read that
    /// only feeds a conditional write, which fails if the manifest moved on.
    pub(crate) async fn read_current(
        &self,
        name: &str,
        op: &'static str,
        mut optimistic: bool,
    ) -> Result<(Snapshot, Arc<str>, Body)> {
        self.check_name(op, name)?;
        let mut attempts = self.shared.retry.start();
        loop {
            let snap = match optimistic.then(|| self.cached_snapshot()).flatten() {
                Some(snap) => snap,
                None => self.load().await?,
            };
            let Some(id) = snap.id(name).map(Arc::clone) else {
                return Ok((snap, Arc::from(""), Body::Bytes(Bytes::new())));
            };
            if let Some(content) = snap.inline(name) {
                return Ok((snap, id, Body::Bytes(content)));
            }
            if let Some(content) = self.shared.cache.get(name, &id) {
                return Ok((snap, id, Body::Bytes(content)));
            }
            match self
                .shared
                .backend
                .get(&self.object_key(&id)?, GetOptions::default())
                .await
            {
                Ok(obj) => return Ok((snap, id, obj.body)),
                // A stale cached manifest: read the current one, at once.
                Err(e) if e.is_not_found() && snap.cached => optimistic = false,
                // Replaced meanwhile: its successor is in a newer manifest.
                Err(e) if e.is_not_found() => attempts.conflicted(op, &self.display(name)).await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the manifest (an absent manifest is an empty group).
    pub(crate) async fn load(&self) -> Result<Snapshot> {
        let key = &self.shared.manifest_key;
        match self.shared.backend.get(key, GetOptions::default()).await {
            Ok(obj) => {
                let version = obj.meta.version.clone();
                if let Some(manifest) = self.last_manifest(&version) {
                    return Ok(Snapshot {
                        manifest,
                        version: Some(version),
                        cached: false,
                    });
                }
                let data = obj.bytes().await?;
                let manifest = Arc::new(Manifest::decode(key, &data)?);
                self.remember_manifest(version.clone(), Arc::clone(&manifest));
                Ok(Snapshot {
                    manifest,
                    version: Some(version),
                    cached: false,
                })
            }
            Err(e) if e.is_not_found() => Ok(Snapshot::default()),
            Err(e) => Err(e),
        }
    }

    /// The manifest this group last wrote or read, as a `cached` snapshot (none if the
    /// backend's versions are not stable, or before the first read).
    fn cached_snapshot(&self) -> Option<Snapshot> {
        let last = self.shared.last.as_ref()?.lock();
        let (version, manifest) = last.as_ref()?;
        Some(Snapshot {
            manifest: Arc::clone(manifest),
            version: Some(version.clone()),
            cached: true,
        })
    }

    /// The last manifest seen, if it is at `version`.
    fn last_manifest(&self, version: &Version) -> Option<Arc<Manifest>> {
        match &*self.shared.last.as_ref()?.lock() {
            Some((v, manifest)) if v == version => Some(Arc::clone(manifest)),
            _ => None,
        }
    }

    /// Drops the group's reference to `manifest`, if it is the one kept.
    fn release_manifest(&self, manifest: &Arc<Manifest>) {
        let Some(last) = &self.shared.last else { return };
        let mut last = last.lock();
        let kept = matches!(&*last, Some((_, m)) if Arc::ptr_eq(m, manifest));
        let old = if kept { last.take() } else { None };
        drop(last);
        drop(old);
    }

    fn remember_manifest(&self, version: Version, manifest: Arc<Manifest>) {
        let Some(last) = &self.shared.last else { return };
        let old = last.lock().replace((version, manifest));
        // The old manifest is freed outside the lock.
        drop(old);
    }

    /// Stores `data` as a new object version and returns its id. Nothing refers to it yet.
    pub(crate) async fn put_object(&self, data: Bytes) -> Result<Arc<str>> {
        let id = new_object_id();
        self.shared
            .backend
            .put(&self.object_key(&id)?, data, PutOptions::create())
            .await?;
        Ok(id)
    }

    /// Deletes an object version, ignoring failures: whatever is left is garbage that
    /// [`Group::gc`] collects.
    pub(crate) async fn discard(&self, id: &str) {
        let Ok(key) = self.object_key(id) else { return };
        if let Err(e) = self.shared.backend.delete(&key, DeleteOptions::default()).await
            && !e.is_not_found()
        {
            tracing::debug!(group = %self.shared.name, %key, error = %e, "could not delete an object version");
        }
    }

    /// Switches the manifest: checks that every name of `expect` still has the expected id
    /// (`None` = absent) — [`Error::Conflict`] naming the first that does not — then sets
    /// each name of `set` (`None` removes it) with one compare-and-swap; the new ids found
    /// in `inline` have their content kept in the manifest (the others are objects already
    /// stored). A lost CAS means some name changed: re-read and check again, bounded by the
    /// retry policy. After the switch, the replaced object versions are deleted (replaced
    /// inline contents simply leave the manifest). `hint` is a snapshot the caller already
    /// has, tried first.
    pub(crate) async fn switch(
        &self,
        op: &'static str,
        expect: &[(&str, Option<&str>)],
        set: &[(&str, Option<&Arc<str>>)],
        inline: &[(&Arc<str>, Bytes)],
        mut hint: Option<Snapshot>,
    ) -> Result<()> {
        let backend = &self.shared.backend;
        let key = &self.shared.manifest_key;
        let mut attempts = self.shared.retry.start();
        loop {
            let snap = match hint.take() {
                Some(s) => s,
                None => self.load().await?,
            };
            for &(name, want) in expect {
                let have = snap.id(name).map(|id| &**id);
                if have != want {
                    return Err(Error::Conflict {
                        op,
                        key: self.display(name),
                        expected: want.map(Version::parse),
                        actual: have.map(Version::parse),
                    });
                }
            }
            let Snapshot {
                manifest: mut shared,
                version,
                cached,
            } = snap;
            // The group's copy of this manifest leaves the cache (the new one replaces it
            // after the CAS), so that the manifest is usually edited in place, in its own
            // allocation; a copy only if another call still holds it.
            self.release_manifest(&shared);
            let next = Arc::make_mut(&mut shared);
            next.serial += 1;
            let mut replaced = Vec::new();
            for &(name, id) in set {
                let old = match id {
                    Some(id) => {
                        let entry = Entry {
                            id: Arc::clone(id),
                            inline: inline
                                .iter()
                                .find(|(new, _)| *new == id)
                                .map(|(_, data)| data.clone()),
                        };
                        next.set(name, entry)
                    }
                    None => next.objects.remove(name),
                };
                if let Some(Entry { id, inline: None }) = old {
                    replaced.push(id);
                }
            }
            let data = next.encode();
            match backend.put(key, data, manifest_mode(version).into()).await {
                Ok(meta) => {
                    self.remember_manifest(meta.version, shared);
                    for id in replaced {
                        self.discard(&id).await;
                    }
                    return Ok(());
                }
                // Only the cached manifest was stale: check against the current one, at
                // once (no back-off, no attempt counted).
                Err(e) if cached && lost_race(&e) => {}
                Err(e) if lost_race(&e) => {
                    attempts.conflicted(op, &self.display_names(set)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The read of `operate`'s common case, with nothing read from the backend: if the
    /// manifest this group last saw holds `name`'s content inline (or nothing for it),
    /// takes that manifest out of the cache — so that a switch edits it in place — and
    /// returns it as a `cached` snapshot (`name`'s content is [`Snapshot::inline`]).
    /// `None`, with the cache untouched, otherwise.
    pub(crate) fn take_cached_inline(&self, name: &str) -> Option<Snapshot> {
        let mut last = self.shared.last.as_ref()?.lock();
        let (_, manifest) = last.as_ref()?;
        // Kept as an object (no `inline`): the general path reads it.
        if manifest.is_object(name) {
            return None;
        }
        let (version, manifest) = last.take()?;
        Some(Snapshot {
            manifest,
            version: Some(version),
            cached: true,
        })
    }

    /// The write of `operate`'s common case: `name` gets the inline content `data` in
    /// `snap`, a snapshot taken by [`take_cached_inline`](Self::take_cached_inline). The
    /// manifest is edited in place and written back with one conditional put; `Conflict`
    /// if it is no longer the current one.
    pub(crate) async fn switch_inline(&self, name: &str, data: Bytes, snap: Snapshot) -> Result<()> {
        let Snapshot {
            mut manifest,
            version,
            ..
        } = snap;
        // In place: the cache held the only reference, unless a reader still has it.
        let next = Arc::make_mut(&mut manifest);
        next.serial += 1;
        let entry = Entry {
            id: new_inline_id(),
            inline: Some(data),
        };
        let old = next.set(name, entry);
        let put = self.shared.backend.put(
            &self.shared.manifest_key,
            next.encode(),
            manifest_mode(version).into(),
        );
        match put.await {
            Ok(meta) => {
                self.remember_manifest(meta.version, manifest);
                // The old content, if it was an object, goes once the switch is done.
                if let Some(Entry { id, inline: None }) = &old {
                    self.discard(id).await;
                }
                Ok(())
            }
            // The manifest moved on (or went away) since this group saw it.
            Err(e) if lost_race(&e) => Err(Error::Conflict {
                op: "operate",
                key: self.display(name),
                expected: old.map(|old| Version::parse(&old.id)),
                actual: None,
            }),
            Err(e) => Err(e),
        }
    }

    /// The backend key of an object version.
    pub(crate) fn object_key(&self, id: &str) -> Result<Key> {
        Key::new(format!("{}{id}", self.shared.objects_prefix))
    }

    /// `<group>/<name>`, for messages.
    pub(crate) fn display(&self, name: &str) -> String {
        format!("{}/{name}", self.shared.name)
    }

    fn display_names(&self, set: &[(&str, Option<&Arc<str>>)]) -> String {
        match set {
            [(name, _)] => self.display(name),
            _ => format!(
                "{}/{{{}}}",
                self.shared.name,
                set.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(",")
            ),
        }
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

/// The conditional put that replaces the manifest read at `version`: `Update` of that
/// version, or `Create` if there was none yet.
fn manifest_mode(version: Option<Version>) -> PutMode {
    match version {
        Some(v) => PutMode::Update(v),
        None => PutMode::Create,
    }
}
