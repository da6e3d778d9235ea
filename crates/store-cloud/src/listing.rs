//! Listing: a plain-string prefix and an exclusive `start_after` over object-store listings.

use std::future::ready;

use futures::TryFutureExt;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use store_core::{ListOptions, Meta, Result, Version};

use crate::settings::Layout;
use crate::store::CloudStore;

/// Lists `store` in ascending key order.
///
/// object_store prefixes are whole path segments while ours are plain string prefixes
/// (`"log"` matches `"logbook"`), so the listing runs under the deepest whole segment of the
/// prefix and the rest is filtered here. In the flat layout the server lists in key order
/// and `start_after` is pushed down to it (`list_with_offset`, S3's `start-after`); in the
/// nested layout the listing under that segment is collected and sorted here.
///
/// What a version costs depends on where its parts are:
/// - write ids off: a version is the ETag, which the listing carries — no request per
///   object;
/// - write ids on and [`ListOptions::keys_only`]: the caller does not want versions, so
///   none are read and each is [`Version::empty`] — no request per object;
/// - write ids on otherwise: a listing does not carry user metadata, so each listed
///   object's version comes from a HEAD (`CloudSettings::list_concurrency` at a time,
///   order kept); an object deleted between the listing and its HEAD is left out.
pub(crate) fn list(store: CloudStore, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
    let prefix = opts.prefix.clone().unwrap_or_default();
    let dir = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
    // A prefix whose whole segments are no valid key path (say "a//b") matches no key.
    if !dir.is_empty() && store_core::Key::new(dir).is_err() {
        return stream::empty().boxed();
    }
    let raw = match store.raw_list(dir, opts.start_after.as_deref()) {
        Ok(raw) => raw,
        Err(e) => return stream::once(async move { Err(e) }).boxed(),
    };
    let raw = match store.settings.layout {
        Layout::Flat => raw,
        // A file-system tree is listed depth-first ("a/b" before "a-z"): sort here.
        Layout::Nested => raw
            .try_collect::<Vec<_>>()
            .map_ok(|mut all| {
                all.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
                stream::iter(all.into_iter().map(Ok))
            })
            .try_flatten_stream()
            .boxed(),
    };
    let keys_only = opts.keys_only;
    let listed = raw.try_filter(move |(key, _)| ready(opts.matches(key.as_str())));
    if !store.settings.write_ids || keys_only {
        return listed
            .map_ok(move |(key, m)| {
                let (mut meta, _) = store.meta_of(&key, &m, None);
                if store.settings.write_ids {
                    meta.version = Version::empty();
                }
                meta
            })
            .boxed();
    }
    let concurrency = store.settings.list_concurrency.max(1);
    listed
        .map_ok(move |(key, _)| {
            let store = store.clone();
            async move {
                let path = store.path(&key)?;
                match store.head_version("list", &key, &path).await {
                    Ok((meta, _)) => Ok(Some(meta)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .try_buffered(concurrency)
        .try_filter_map(|m| ready(Ok(m)))
        .boxed()
}
