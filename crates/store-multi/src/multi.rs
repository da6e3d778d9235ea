//! `Multi`: a fan-out that is itself a `Backend`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::join_all;
use futures::stream::{BoxStream, FuturesUnordered, StreamExt};
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Merged, Meta, MultiError,
    Object, ObjectWriter, PutOptions, Result, Version, merge_listings,
};

use crate::builder::MultiBuilder;
use crate::composite::{self, Component};
use crate::fan_out::MultiWriter;
use crate::mode::ReadPolicy;
use crate::view::View;

/// How often a read starts over because the copy it chose changed under it, before it
/// gives up with [`Error::Contention`].
const READ_ATTEMPTS: u32 = 16;

/// A fan-out over several backends that is itself a [`Backend`], so it composes with
/// every other crate (records over a fan-out, a replica of a fan-out, …).
///
/// - `put`, `writer` and `delete` fan out according to the [`WriteMode`](crate::WriteMode)
///   (see the crate documentation on write modes); `put` hands the whole object to each
///   backend's own `put`, and returns once every backend answered.
/// - `get`, `head`, `list` and `watch` report a **composite version** assembled from every
///   backend (see the crate documentation), and read bodies according to the
///   [`ReadPolicy`].
/// - Failures that a `BestEffort` or `Quorum` write tolerated cannot travel through
///   `Backend::put`'s `Meta`; they go to [`MultiWriter::recent_failures`] and a
///   `tracing` warning. Use [`Multi::fan_out`] for per-backend reports.
///
/// Cloning is cheap; clones share the backends and the per-key locks.
#[derive(Clone)]
pub struct Multi {
    fan: MultiWriter,
}

impl Multi {
    /// A fan-out to `backends` in [`WriteMode::All`](crate::WriteMode::All) reading
    /// [`ReadPolicy::InOrder`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if `backends` is empty.
    pub fn new(backends: impl IntoIterator<Item = Arc<dyn Backend>>) -> Result<Multi> {
        MultiBuilder::new(backends).build()
    }

    /// A builder, to choose the write mode and read policy.
    pub fn builder(backends: impl IntoIterator<Item = Arc<dyn Backend>>) -> MultiBuilder {
        MultiBuilder::new(backends)
    }

    /// The underlying [`MultiWriter`]: writes with per-backend [`WriteReport`](crate::WriteReport)s,
    /// and the log of tolerated failures. It shares this `Multi`'s locks, so mixing both
    /// APIs on one key is safe.
    pub fn fan_out(&self) -> &MultiWriter {
        &self.fan
    }

    fn backends(&self) -> &[Arc<dyn Backend>] {
        &self.fan.shared.backends
    }

    /// The composite version of `key` now (`None` if absent), with the view it came from.
    async fn current(&self, key: &Key) -> Result<(Option<Version>, View)> {
        let mut view = View::read(self.backends(), key).await;
        if view.errors.len() == view.comps.len() {
            return Err(MultiError::new(std::mem::take(&mut view.errors)).into());
        }
        let current = view.any_present().then(|| view.version());
        Ok((current, view))
    }
}

impl From<MultiWriter> for Multi {
    fn from(fan: MultiWriter) -> Self {
        Multi { fan }
    }
}

impl fmt::Debug for Multi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Multi").field(&self.fan).finish()
    }
}

#[async_trait]
impl Backend for Multi {
    /// The intersection of the backends' capabilities, except `shared`, which is `false`:
    /// conditional writes are coordinated by locks inside this process.
    fn capabilities(&self) -> Capabilities {
        self.fan.capabilities()
    }

    /// [`MultiWriter::put`]; in `Quorum` mode it then waits for every backend's answer,
    /// because the returned version names them all (see the crate documentation).
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let report = self.fan.put(key, data, opts).await?;
        Ok(report.into_settled_meta().await)
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(self.fan.writer(key, opts).await?))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        for _ in 0..READ_ATTEMPTS {
            let (meta, view) = View::read(self.backends(), key).await.meta(key, "get")?;
            opts.check(key, &meta.version)?;
            let holders: Vec<(usize, Version)> = view
                .comps
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c {
                    Component::Present(v) => Some((i, v.clone())),
                    _ => None,
                })
                .collect();
            let fetch = |(i, v): (usize, Version)| {
                let backend = &self.backends()[i];
                // `if_match` ties the body to the version in the composite.
                let mut o = GetOptions::default().with_if_match(v);
                o.range = opts.range.clone();
                async move { (i, (**backend).get(key, o).await) }
            };
            let mut errors = view.errors;
            let mut moved = false;
            let mut found = None;
            let mut consider = |i: usize, r: Result<Object>| -> Result<bool> {
                match r {
                    Ok(obj) => {
                        found = Some(obj);
                        Ok(true)
                    }
                    // The copy changed since the view was taken: take a new view.
                    Err(e) if e.is_conflict() || e.is_not_found() => {
                        moved = true;
                        Ok(false)
                    }
                    // A bad range is an answer, not a failure of this backend.
                    Err(e @ Error::InvalidInput { .. }) => Err(e),
                    Err(e) => {
                        errors.push((i, e));
                        Ok(false)
                    }
                }
            };
            match self.fan.shared.read {
                ReadPolicy::InOrder => {
                    for h in holders {
                        let (i, r) = fetch(h).await;
                        if consider(i, r)? {
                            break;
                        }
                    }
                }
                ReadPolicy::Fastest => {
                    let mut race: FuturesUnordered<_> = holders.into_iter().map(fetch).collect();
                    while let Some((i, r)) = race.next().await {
                        if consider(i, r)? {
                            break;
                        }
                    }
                }
            }
            if let Some(obj) = found {
                return Ok(Object {
                    meta: Meta {
                        size: obj.meta.size,
                        modified: obj.meta.modified,
                        ..meta
                    },
                    range: obj.range,
                    body: obj.body,
                });
            }
            if !moved {
                return Err(MultiError::new(errors).into());
            }
        }
        Err(Error::Contention {
            op: "get",
            key: key.to_string(),
            attempts: READ_ATTEMPTS,
        })
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        View::read(self.backends(), key)
            .await
            .meta(key, "head")
            .map(|(meta, _)| meta)
    }

    /// Deletes on every backend that holds the key, concurrently, under the key's lock.
    /// With `if_match`, the composite version is checked first (`Conflict` / `NotFound`
    /// as a single backend would answer) and each backend deletes only its own matching
    /// version; if too few backends can tell their state for the write mode, nothing is
    /// deleted. Deletes cannot be rolled back: the write mode decides whether the
    /// failures fail the call (`All`: any; `Quorum`: fewer than a majority without the
    /// key afterwards; `BestEffort`: none without it), and such an error does not claim
    /// that nothing changed.
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let shared = &self.fan.shared;
        let n = shared.backends.len();
        let _guard = shared.locks.lock(key).await;
        // Per backend: skip (holds nothing), or delete with this `if_match`.
        let mut targets: Vec<Option<Option<Version>>> = vec![Some(None); n];
        let mut errors: Vec<(usize, Error)> = Vec::new();
        if let Some(expected) = &opts.if_match {
            let (current, view) = self.current(key).await?;
            let Some(current) = current else {
                return Err(Error::NotFound {
                    op: "delete",
                    key: key.to_string(),
                });
            };
            let want = composite::decode(expected, n).filter(|want| {
                want.iter()
                    .zip(&view.comps)
                    .all(|(w, c)| *c == Component::Unknown || w == c)
            });
            let Some(want) = want else {
                return Err(Error::Conflict {
                    op: "delete",
                    key: key.to_string(),
                    expected: Some(expected.clone()),
                    actual: Some(current),
                });
            };
            for (i, w) in want.into_iter().enumerate() {
                targets[i] = match w {
                    Component::Present(v) => Some(Some(v)),
                    Component::Absent => None,
                    Component::Unknown => None,
                };
            }
            // A backend that could not tell its state is not deleted from; if that leaves
            // too few for the write mode, nothing is.
            if n - view.errors.len() < shared.mode.required(n) {
                return Err(MultiError::new(view.errors).into());
            }
            errors.extend(view.errors);
            for (i, _) in &errors {
                targets[*i] = None;
            }
        }
        let deletes = targets.iter().enumerate().filter_map(|(i, t)| {
            let mut opts = DeleteOptions::default();
            opts.if_match = t.clone()?;
            let backend = &shared.backends[i];
            Some(async move { (i, (**backend).delete(key, opts).await) })
        });
        let mut deleted = 0;
        let mut without = targets.iter().filter(|t| t.is_none()).count() - errors.len();
        for (i, r) in join_all(deletes).await {
            match r {
                Ok(()) => deleted += 1,
                Err(e) if e.is_not_found() => without += 1,
                Err(e) => errors.push((i, e)),
            }
        }
        if deleted == 0 {
            return Err(if errors.is_empty() {
                Error::NotFound {
                    op: "delete",
                    key: key.to_string(),
                }
            } else {
                MultiError::new(errors).into()
            });
        }
        if deleted + without < shared.mode.required(n) {
            errors.sort_by_key(|(i, _)| *i);
            // Some backends did delete: the error must not pass for one that changed nothing.
            return Err(MultiError::new(errors).after_partial_apply("Multi").into());
        }
        for (i, e) in errors {
            shared.failures.record("delete", key.as_str(), i, Arc::new(e));
        }
        Ok(())
    }

    /// A merge of every backend's listing (the union: a key held by any backend is
    /// listed once), with composite versions. A backend whose listing fails drops out
    /// (its part of later versions is unknown); if every backend fails, so does the listing.
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let n = self.backends().len();
        let sources = self.backends().iter().map(|b| (**b).list(opts.clone())).collect();
        let mut errors: Vec<(usize, Error)> = Vec::new();
        merge_listings(sources)
            .filter_map(move |step| {
                let item = match step {
                    Merged::Key(metas) => {
                        let comps: Vec<Component> = metas
                            .iter()
                            .enumerate()
                            .map(|(i, m)| match m {
                                Some(m) => Component::Present(m.version.clone()),
                                None if errors.iter().any(|(j, _)| *j == i) => Component::Unknown,
                                None => Component::Absent,
                            })
                            .collect();
                        metas.into_iter().flatten().next().map(|first| {
                            Ok(Meta {
                                version: composite::encode(&comps),
                                ..first
                            })
                        })
                    }
                    Merged::SourceFailed(i, e) => {
                        errors.push((i, e));
                        (errors.len() == n).then(|| {
                            let mut all = std::mem::take(&mut errors);
                            all.sort_by_key(|(i, _)| *i);
                            Err(MultiError::new(all).into())
                        })
                    }
                };
                futures::future::ready(item)
            })
            .boxed()
    }

    /// Waits on every backend at once (each from its own part of `seen`) and re-reads the
    /// composite on any change. Before returning a change it waits for an in-flight
    /// commit of this key through this `Multi` to finish, so it reports a settled version
    /// rather than a half-applied fan-out.
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        loop {
            let (mut current, mut view) = self.current(key).await?;
            if current.as_ref() != seen {
                let guard = self.fan.shared.locks.lock(key).await;
                (current, view) = self.current(key).await?;
                drop(guard);
                if current.as_ref() != seen {
                    return Ok(current);
                }
            }
            let mut waits: FuturesUnordered<_> = view
                .comps
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let seen_i = c.as_seen()?;
                    let backend = &self.backends()[i];
                    Some(async move { (**backend).watch(key, seen_i).await })
                })
                .collect();
            let mut failures = Vec::new();
            loop {
                match waits.next().await {
                    Some(Ok(_)) => break,
                    Some(Err(e)) => failures.push(e),
                    None => {
                        let errors = failures.into_iter().enumerate().collect();
                        return Err(MultiError::new(errors).into());
                    }
                }
            }
        }
    }
}
