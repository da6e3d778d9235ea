//! `resync`: bring a store that missed writes back in line with a good one.

use std::cmp::Ordering;

use futures::TryStreamExt;
use store_core::{
    Backend, BackendExt, DeleteOptions, GetOptions, Key, ListOptions, Meta, PutOptions, Result,
};

/// What [`resync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResyncReport {
    /// Objects written to the target (missing there, or different).
    pub copied: u64,
    /// Objects deleted from the target because the source does not have them.
    pub deleted: u64,
    /// Objects that were already identical.
    pub unchanged: u64,
}

/// Makes `target` hold exactly what `source` holds: copies every object that is missing or
/// different in `target` and deletes every object `source` does not have.
///
/// This is how an operator brings a failed or lagging replica back: once the store works
/// again, resync it from a sync store (usually the primary), then clear the error state —
/// [`Replica::repair`](crate::Replica::repair) does both, or build a fresh
/// [`Replica`](crate::Replica) over the repaired stores.
///
/// Versions are per store and cannot be compared across stores, so objects present on both
/// sides are compared by size, then by content. Objects are copied as streams through the
/// target's [`writer`](Backend::writer). Writes that reach `source` while this runs may or
/// may not be copied: quiesce writers first (as `Replica::repair` does) for an exact copy.
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_memory::MemoryStore;
/// use store_replica::resync;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> store_core::Result<()> {
/// let (good, stale) = (MemoryStore::new(), MemoryStore::new());
/// good.put_bytes(&Key::new("a")?, "new").await?;
/// stale.put_bytes(&Key::new("a")?, "old").await?;
/// stale.put_bytes(&Key::new("gone")?, "x").await?;
/// let report = resync(&good, &stale).await?;
/// assert_eq!((report.copied, report.deleted), (1, 1));
/// assert_eq!(stale.get_bytes(&Key::new("a")?).await?, "new");
/// # Ok(())
/// # }
/// ```
pub async fn resync<S, T>(source: &S, target: &T) -> Result<ResyncReport>
where
    S: Backend + ?Sized,
    T: Backend + ?Sized,
{
    let wanted: Vec<Meta> = source.list(ListOptions::default()).try_collect().await?;
    let present: Vec<Meta> = target.list(ListOptions::default()).try_collect().await?;
    let mut report = ResyncReport::default();
    let (mut w, mut p) = (wanted.iter().peekable(), present.iter().peekable());
    loop {
        let order = match (w.peek(), p.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.key.cmp(&b.key),
        };
        match order {
            Ordering::Less => {
                let Some(m) = w.next() else { break };
                report.copied += u64::from(copy(source, target, &m.key).await?);
            }
            Ordering::Greater => {
                let Some(m) = p.next() else { break };
                match target.delete(&m.key, DeleteOptions::default()).await {
                    Ok(()) => report.deleted += 1,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Ordering::Equal => {
                let (Some(a), Some(b)) = (w.next(), p.next()) else {
                    break;
                };
                if a.size == b.size && same_content(source, target, &a.key).await? {
                    report.unchanged += 1;
                } else {
                    report.copied += u64::from(copy(source, target, &a.key).await?);
                }
            }
        }
    }
    tracing::info!(
        copied = report.copied,
        deleted = report.deleted,
        unchanged = report.unchanged,
        "resync done"
    );
    Ok(report)
}

async fn same_content<S, T>(source: &S, target: &T, key: &Key) -> Result<bool>
where
    S: Backend + ?Sized,
    T: Backend + ?Sized,
{
    let (a, b) = futures::join!(source.get_bytes(key), target.get_bytes(key));
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(a == b),
        // Vanished on either side meanwhile: let `copy` sort it out.
        (Err(e), _) | (_, Err(e)) if e.is_not_found() => Ok(false),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// Streams `key` from `source` to `target`. `false` if `source` no longer has it.
async fn copy<S, T>(source: &S, target: &T, key: &Key) -> Result<bool>
where
    S: Backend + ?Sized,
    T: Backend + ?Sized,
{
    let object = match source.get(key, GetOptions::default()).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut writer = target.writer(key, PutOptions::default()).await?;
    let mut chunks = object.into_stream();
    while let Some(chunk) = chunks.try_next().await? {
        writer.write(chunk).await?;
    }
    writer.close().await?;
    Ok(true)
}
