//! `Replica`'s `Backend` implementation: writes to the sync stores, reads raced over them,
//! the listing union.

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{self, BoxFuture, join_all};
use futures::stream::{self, BoxStream, FuturesUnordered, StreamExt};
use store_core::{
    Backend, BufferedWriter, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Merged, Meta,
    MultiError, Object, ObjectWriter, PutMode, PutOptions, Result, Version, merge_listings,
};

use crate::queue::Mutation;
use crate::replica::Replica;
use crate::stripes::foreign;

/// Joins the results of a write to the sync stores: all must succeed, or the error names
/// each store that failed by index. Returns what the primary (0) and the others (`copies`,
/// in order) answered.
///
/// Once any store has applied the write, the error must not say "not applied" (a retry
/// would then re-send a conditional write that already landed): a store's
/// [`Error::is_not_applied`] refusal is reported as an outcome-unknown error instead.
fn all_ok<T>(primary: Result<T>, copies: Vec<(usize, Result<T>)>) -> Result<(T, Vec<T>)> {
    let mut errors = Vec::new();
    let primary = primary.map_err(|e| errors.push((0, e))).ok();
    let mut oks = Vec::with_capacity(copies.len());
    for (i, r) in copies {
        match r {
            Ok(v) => oks.push(v),
            Err(e) => errors.push((i, e)),
        }
    }
    match primary {
        Some(p) if errors.is_empty() => Ok((p, oks)),
        _ if primary.is_some() || !oks.is_empty() => {
            Err(MultiError::new(errors).after_partial_apply("Replica").into())
        }
        _ => Err(MultiError::new(errors).into()),
    }
}

impl Replica {
    /// Writes to the sync stores and returns the primary's answer. An overwrite goes to
    /// all of them at once; a conditional put is decided by the primary and then copied to
    /// the others unconditionally. With one sync store there is nothing to copy or to
    /// remember: its put is the replica's.
    async fn put_sync(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let sync = &self.inner.sync;
        if sync.len() == 1 {
            return self.primary().put(key, data, opts).await;
        }
        let stripe = self.inner.versions.get(key);
        stripe.forget(key);
        let copies = join_all(sync.iter().enumerate().skip(1).map(|(i, s)| {
            let (data, opts) = (data.clone(), opts.clone().with_mode(PutMode::Overwrite));
            async move { (i, (**s).put(key, data, opts).await) }
        }));
        let conditional = !matches!(opts.mode, PutMode::Overwrite);
        let primary = self.primary().put(key, data, opts);
        let (primary, copies) = if conditional {
            let primary = primary.await?;
            (Ok(primary), copies.await)
        } else {
            futures::join!(primary, copies)
        };
        let (meta, copies) = all_ok(primary, copies)?;
        let versions = std::iter::once(&meta).chain(&copies).map(|m| m.version.clone());
        stripe.remember(key, versions.collect());
        Ok(meta)
    }

    /// Deletes from the sync stores: the primary first (it decides `if_match` and
    /// `NotFound`), then the others, for which absent already is fine.
    async fn delete_sync(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let sync = &self.inner.sync;
        if sync.len() > 1 {
            self.inner.versions.get(key).forget(key);
        }
        self.primary().delete(key, opts).await?;
        let results = join_all(sync.iter().enumerate().skip(1).map(|(i, s)| async move {
            match (**s).delete(key, DeleteOptions::default()).await {
                Err(e) if e.is_not_found() => (i, Ok(())),
                r => (i, r),
            }
        }))
        .await;
        all_ok(Ok(()), results).map(drop)
    }

    /// Asks every sync store at once; see the crate docs ("Versions") for which answer wins.
    async fn race<T>(
        &self,
        key: &Key,
        reads: Vec<BoxFuture<'_, Result<T>>>,
        version: fn(&mut T) -> &mut Version,
    ) -> Result<T> {
        let stripe = self.inner.versions.get(key);
        let mut pending: FuturesUnordered<_> = reads
            .into_iter()
            .enumerate()
            .map(|(i, read)| async move { (i, read.await) })
            .collect();
        let mut fallback: Option<(usize, T)> = None;
        let mut errors: Vec<(usize, Error)> = Vec::new();
        while let Some((i, result)) = pending.next().await {
            match result {
                Ok(found) if i == 0 => return Ok(found),
                Ok(mut found) => match stripe.vouch(key, i, version(&mut found)) {
                    Some(primary_version) => {
                        *version(&mut found) = primary_version;
                        return Ok(found);
                    }
                    None if fallback.is_none() => fallback = Some((i, found)),
                    None => {}
                },
                Err(e) => errors.push((i, e)),
            }
        }
        // The primary failed (or it would have won).
        if let Some((i, mut found)) = fallback {
            let v = version(&mut found);
            *v = foreign(i, v);
            return Ok(found);
        }
        // Every store gave the same verdict (not found, a bad range…): report the primary's.
        let kind = errors.first().map(|(_, e)| e.kind());
        if errors.iter().all(|(_, e)| Some(e.kind()) == kind) {
            let primary = errors.iter().position(|(i, _)| *i == 0).unwrap_or(0);
            return Err(errors.swap_remove(primary).1);
        }
        Err(MultiError::new(errors).into())
    }
}

/// A listing entry of the union: the lowest-indexed store holding the key speaks for it,
/// under a [`foreign`] version unless that store is the primary.
fn union_entry(merged: Merged) -> Option<Result<Meta>> {
    match merged {
        Merged::SourceFailed(_, e) => Some(Err(e)),
        Merged::Key(metas) => {
            let (i, mut meta) = metas.into_iter().enumerate().find_map(|(i, m)| Some((i, m?)))?;
            if i != 0 {
                meta.version = foreign(i, &meta.version);
            }
            Some(Ok(meta))
        }
    }
}

#[async_trait]
impl Backend for Replica {
    /// Conditional writes and watch are the primary's; reads and durability hold only as
    /// far as every sync store provides them.
    fn capabilities(&self) -> Capabilities {
        let primary = self.primary().capabilities();
        let all_sync = self
            .inner
            .sync
            .iter()
            .map(|s| (**s).capabilities())
            .fold(primary, Capabilities::intersection);
        let max_object_size = self
            .async_stores()
            .iter()
            .map(|s| (**s).capabilities())
            .fold(all_sync, Capabilities::intersection)
            .max_object_size;
        Capabilities::NONE
            .with_create(primary.create)
            .with_update(primary.update)
            .with_conditional_delete(primary.conditional_delete)
            .with_range_reads(all_sync.range_reads)
            .with_native_watch(primary.native_watch)
            .with_durable(all_sync.durable)
            .with_shared(all_sync.shared)
            // A read answered by a secondary reports the primary's version only for the
            // same write, else a version of the secondary's own.
            .with_stable_versions(all_sync.stable_versions)
            .with_max_object_size(max_object_size)
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let queued = Mutation::Put(data.clone());
        let meta = self
            .mutate("put", key, queued, self.put_sync(key, data, opts))
            .await?;
        tracing::trace!(key = %key, version = %meta.version, "replica put");
        Ok(meta)
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.check("writer")?;
        Ok(Box::new(BufferedWriter::new(self.clone(), key.clone(), opts)))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.check("get")?;
        // Conditions name primary versions, which only the primary can check.
        if opts.if_match.is_some() || opts.if_none_match.is_some() {
            return self.primary().get(key, opts).await;
        }
        let reads = self
            .inner
            .sync
            .iter()
            .map(|s| (**s).get(key, opts.clone()))
            .collect();
        self.race(key, reads, |o: &mut Object| &mut o.meta.version).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        self.check("head")?;
        let reads = self.inner.sync.iter().map(|s| (**s).head(key)).collect();
        self.race(key, reads, |m: &mut Meta| &mut m.version).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.mutate("delete", key, Mutation::Delete, self.delete_sync(key, opts))
            .await?;
        tracing::trace!(key = %key, "replica delete");
        Ok(())
    }

    /// The sorted, de-duplicated union of the sync stores' listings; the first error from
    /// any store ends it.
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        if let Err(e) = self.check("list") {
            return stream::once(future::ready(Err(e))).boxed();
        }
        let listings = self.inner.sync.iter().map(|s| (**s).list(opts.clone())).collect();
        merge_listings(listings)
            .filter_map(|merged| future::ready(union_entry(merged)))
            .scan(false, |failed, entry| {
                let next = (!*failed).then_some(entry);
                *failed |= next.as_ref().is_some_and(Result::is_err);
                future::ready(next)
            })
            .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.check("watch")?;
        self.primary().watch(key, seen).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_applied_somewhere_is_never_reported_as_not_applied() {
        let refused = || Error::not_applied("test", "connection refused");
        let none: Result<((), Vec<()>)> = all_ok(Err(refused()), vec![(1, Err(refused()))]);
        assert!(
            none.unwrap_err().is_not_applied(),
            "nothing applied: safe to send again"
        );
        let partial = all_ok(Ok(()), vec![(1, Err(refused()))]).unwrap_err();
        assert!(!partial.is_not_applied() && partial.is_retryable(), "{partial}");
        let copy_only = all_ok(Err(refused()), vec![(1, Ok(()))]).unwrap_err();
        assert!(!copy_only.is_not_applied(), "{copy_only}");
    }
}
