//! The manifest switch: the one commit step of every update of a group, and the object
//! versions it refers to.

use std::sync::Arc;

use bytes::Bytes;
use store_core::{DeleteOptions, Error, Meta, PutMode, PutOptions, Result, Version};

use crate::group::Group;
use crate::manifest::{Entry, Snapshot, new_id};
use crate::retry::{conflicted, lost_race};

impl Group {
    /// Switches the manifest: checks that every name of `expect` still has the expected id
    /// (`None` = absent) — [`Error::Conflict`] naming the first that does not — then sets
    /// each name of `set` (`None` removes it) with one conditional put of the manifest.
    /// `hint` is a snapshot the caller already has, tried first; without one, the manifest
    /// is read first.
    ///
    /// A lost conditional put means some name changed: the manifest is read again (and
    /// kept as the group's last one seen) and checked again, bounded by the retry policy.
    /// When `hint` came from the group's cache (maybe stale, never checked against the
    /// current state), that first re-read is immediate and not counted.
    pub(crate) async fn switch(
        &self,
        op: &'static str,
        expect: &[(&str, Option<&str>)],
        set: &[(&str, Option<Entry>)],
        mut hint: Option<Snapshot>,
    ) -> Result<()> {
        let mut retries = None;
        loop {
            let snap = match hint.take() {
                Some(snap) => snap,
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
            let cached = snap.cached;
            if self.commit(snap, set).await? {
                return Ok(());
            }
            if !cached {
                conflicted(&mut retries, &self.shared.retry, op, &self.display_names(set)).await?;
            }
        }
    }

    /// The commit step: `snap`'s manifest with its serial bumped and the entries of `set`,
    /// encoded and written with one conditional put (`Update` of `snap`'s version, `Create`
    /// for the first manifest). On success the group keeps the new manifest as the last
    /// one seen, and the object versions it no longer refers to are
    /// [discarded](Self::discard). `false` if another switch got there first. A put that
    /// failed after it may have landed is [settled](settle) by the backend's resolver, if
    /// it offers one (one more call).
    async fn commit(&self, snap: Snapshot, set: &[(&str, Option<Entry>)]) -> Result<bool> {
        let Snapshot {
            mut manifest,
            version,
            ..
        } = snap;
        // In place when nothing else holds this manifest (a snapshot taken from the
        // group's cache); a copy otherwise.
        let next = Arc::make_mut(&mut manifest);
        next.serial += 1;
        let mut replaced = Vec::new();
        for (name, entry) in set {
            let old = match entry {
                Some(entry) => next.set(name, entry.clone()),
                None => next.objects.remove(*name),
            };
            if let Some(Entry { id, inline: None }) = old {
                replaced.push(id);
            }
        }
        let mode = version.map_or(PutMode::Create, PutMode::Update);
        let put = self
            .shared
            .backend
            .put(&self.shared.manifest_key, next.encode(), mode.into());
        let written = match put.await {
            Ok(meta) => meta,
            Err(e) if lost_race(&e) => return Ok(false),
            Err(e) => settle(e).await?,
        };
        self.remember(written.version, manifest);
        for id in replaced {
            self.discard(&id).await;
        }
        Ok(true)
    }

    /// The entry for a new content `data` of a name, in a manifest that holds
    /// `inline_bytes` of inline content: the content itself if it fits (no I/O), else a
    /// new object version, stored first with one `Create` put (nothing refers to it yet),
    /// [settled](settle) like the manifest's if it fails after it may have landed.
    pub(crate) async fn new_entry(&self, inline_bytes: usize, data: Bytes) -> Result<Entry> {
        let id = new_id();
        if self.fits_inline(inline_bytes, data.len()) {
            return Ok(Entry {
                id,
                inline: Some(data),
            });
        }
        let key = self.object_key(&id)?;
        if let Err(e) = self.shared.backend.put(&key, data, PutOptions::create()).await {
            settle(e).await?;
        }
        Ok(Entry { id, inline: None })
    }

    /// Gives up the new object versions `ids` of a write whose switch failed with `error`.
    /// A lost race or a switch refused before its put proves the manifest does not name
    /// them, and they are discarded. Any other failure may have come after the manifest put
    /// landed (a lost reply, a timeout): then the manifest is read again (one read) and only
    /// the versions it does not name are discarded; if that read fails too, they are left to
    /// [`Group::gc`] — deleting content a committed manifest names would lose it.
    pub(crate) async fn abandon(&self, ids: &[Arc<str>], error: &Error) {
        if !(lost_race(error) || error.is_not_applied() || matches!(error, Error::Contention { .. })) {
            let Ok(now) = self.load().await else { return };
            let named: std::collections::HashSet<&str> =
                now.manifest.objects.values().map(|entry| &*entry.id).collect();
            for id in ids.iter().filter(|id| !named.contains(&***id)) {
                self.discard(id).await;
            }
            return;
        }
        for id in ids {
            self.discard(id).await;
        }
    }

    /// Deletes an object version that nothing refers to any more (replaced, or never
    /// switched to), without making the caller wait for the backend: the delete starts at
    /// once and, unless the backend completes it in that first step, a background task
    /// carries it through. A reader that still holds an older
    /// manifest and finds the version gone reads the manifest again. A failed delete — or
    /// a crash or runtime shutdown before it ran — leaves the version to [`Group::gc`].
    pub(crate) async fn discard(&self, id: &str) {
        let Ok(key) = self.object_key(id) else { return };
        let backend = Arc::clone(&self.shared.backend);
        let mut delete = Box::pin(async move {
            if let Err(e) = backend.delete(&key, DeleteOptions::default()).await
                && !e.is_not_found()
            {
                tracing::debug!(%key, error = %e, "could not delete an object version");
            }
        });
        // A backend that answers in its first step (an in-memory one) needs no task.
        if futures::poll!(delete.as_mut()).is_ready() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(delete)),
            // No runtime to hand it to: finish it here.
            Err(_) => delete.await,
        }
    }

    /// The names of `set`, for messages: `<group>/<name>` or `<group>/{<a>,<b>}`.
    fn display_names(&self, set: &[(&str, Option<Entry>)]) -> String {
        match set {
            [(name, _)] => self.display(name),
            _ => format!(
                "{}/{{{}}}",
                self.name(),
                set.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(",")
            ),
        }
    }
}

/// The end of a backend write of the group (an object version, the manifest) that failed
/// after it may have been applied: its metadata if the backend's
/// [`WriteResolver`](store_core::WriteResolver) finds it applied (one call of the
/// resolver), so the update goes on; otherwise the error, without that resolver. A
/// resolver answers for the backend's write — an object or the manifest, with their
/// versions —, not for the group's update, so none is passed on to the group's caller: the
/// error says only that the outcome is unknown.
pub(crate) async fn settle(e: Error) -> Result<Meta> {
    let Some(resolver) = e.resolver().cloned() else {
        return Err(e);
    };
    match resolver.resolve().await {
        Ok(Some(meta)) => Ok(meta),
        _ => Err(Error::outcome_unknown("store-consistent", e, None)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use store_core::{Key, WriteResolver};

    use super::*;

    fn lost(answer: Result<Option<Meta>>) -> Error {
        let answer = std::sync::Arc::new(answer.map_err(|e| e.to_string()));
        let resolver = WriteResolver::new(move || {
            let answer = answer
                .as_ref()
                .clone()
                .map_err(|e| Error::invalid_input("resolve", None, e));
            std::future::ready(answer)
        });
        Error::outcome_unknown("memory", "reply lost", Some(resolver))
    }

    /// A write found applied goes on with its metadata; one found not applied, or whose
    /// resolver fails, is an outcome-unknown error without the backend's resolver; an
    /// error without a resolver is passed on as it is.
    #[tokio::test]
    async fn settling_a_lost_reply_never_passes_the_resolver_on() {
        let meta = Meta {
            key: Key::new("g/.manifest").unwrap(),
            size: 2,
            version: Version::from(7),
            modified: SystemTime::now(),
        };
        assert_eq!(
            settle(lost(Ok(Some(meta.clone())))).await.unwrap().version,
            meta.version
        );
        for unsettled in [
            lost(Ok(None)),
            lost(Err(Error::invalid_input("resolve", None, "down"))),
        ] {
            let e = settle(unsettled).await.unwrap_err();
            assert!(e.is_outcome_unknown() && e.is_retryable(), "{e}");
            assert!(e.resolver().is_none(), "{e}");
            assert!(e.to_string().contains("reply lost"), "{e}");
        }
        let refused = Error::not_applied("memory", "refused");
        let e = settle(refused).await.unwrap_err();
        assert!(e.is_not_applied(), "{e}");
    }
}
