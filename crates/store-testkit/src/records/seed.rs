//! Writing many records quickly before a test: `put_many` in chunks, several at once.

use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use store_core::{Key, Record, RecordStore};

/// Writes a record with `value` at each of `keys` (expiring at `expires_at`, or never), in
/// `put_many` calls of at most `chunk` records with up to `concurrency` of them at once: a
/// round trip per chunk rather than per record, for tests that need thousands of records
/// in place before they measure something else.
///
/// Chunks run concurrently, so of two records with the same key in different chunks either
/// may win. A `chunk` or `concurrency` of 0 counts as 1.
///
/// # Errors
///
/// The first error of a `put_many` call, as the store reported it; the other chunks in
/// flight are dropped then, and chunks that already succeeded stay written.
pub async fn seed_records<S: RecordStore + ?Sized>(
    store: &S,
    keys: impl IntoIterator<Item = Key>,
    value: impl Into<Bytes>,
    expires_at: Option<SystemTime>,
    chunk: usize,
    concurrency: usize,
) -> store_core::Result<()> {
    let value = value.into();
    let records: Vec<Record> = keys
        .into_iter()
        .map(|key| {
            let record = Record::new(key, value.clone());
            match expires_at {
                Some(at) => record.with_expiry(at),
                None => record,
            }
        })
        .collect();
    futures::stream::iter(records.chunks(chunk.max(1)))
        .map(|chunk| store.put_many(chunk))
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use parking_lot::Mutex;
    use store_core::{Error, Result, Version};

    use super::*;

    /// Keeps the batches `put_many` is called with; refuses a batch holding `refused`.
    #[derive(Debug, Default)]
    struct Batches {
        seen: Mutex<Vec<Vec<Record>>>,
        refused: Option<Key>,
    }

    #[async_trait]
    impl RecordStore for Batches {
        async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>> {
            if let Some(bad) = records.iter().find(|r| Some(&r.key) == self.refused.as_ref()) {
                return Err(Error::invalid_input("put_many", Some(&bad.key), "refused"));
            }
            self.seen.lock().push(records.to_vec());
            Ok(records.iter().map(|_| Version::from(1)).collect())
        }

        async fn create(&self, _: &Record) -> Result<Version> {
            unreachable!("seed_records only calls put_many")
        }
        async fn get(&self, _: &Key) -> Result<Record> {
            unreachable!("seed_records only calls put_many")
        }
        async fn get_many(&self, _: &[Key]) -> Result<Vec<Option<Record>>> {
            unreachable!("seed_records only calls put_many")
        }
        async fn put(&self, _: &Record) -> Result<Version> {
            unreachable!("seed_records only calls put_many")
        }
        async fn cas_by_version(&self, _: &Record) -> Result<Version> {
            unreachable!("seed_records only calls put_many")
        }
        async fn delete(&self, _: &Key) -> Result<()> {
            unreachable!("seed_records only calls put_many")
        }
        async fn wait_for_version_change(&self, _: &Key, _: &Version) -> Result<Version> {
            unreachable!("seed_records only calls put_many")
        }
        async fn list_keys(&self, _: &str) -> Result<BoxStream<'static, Result<Key>>> {
            unreachable!("seed_records only calls put_many")
        }
    }

    fn keys(n: usize) -> Vec<Key> {
        (0..n).map(|i| Key::new(format!("k/{i:03}")).unwrap()).collect()
    }

    #[tokio::test]
    async fn writes_every_key_once_in_chunks_with_value_and_expiry() {
        let store = Batches::default();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000);
        seed_records(&store, keys(25), "v", Some(at), 10, 3)
            .await
            .unwrap();

        let batches = store.seen.lock().clone();
        let mut sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [5, 10, 10]);
        let mut written: Vec<Record> = batches.into_iter().flatten().collect();
        written.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(
            written.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
            keys(25)
        );
        assert!(written.iter().all(|r| r.value == "v" && r.expires_at == Some(at)));

        let never = Batches::default();
        seed_records(&never, keys(3), "w", None, 10, 3).await.unwrap();
        assert!(
            never.seen.lock()[0]
                .iter()
                .all(|r| r.value == "w" && r.expires_at.is_none())
        );
    }

    #[tokio::test]
    async fn zero_chunk_and_concurrency_count_as_one() {
        let store = Batches::default();
        let seeded = seed_records(&store, keys(3), "v", None, 0, 0);
        tokio::time::timeout(Duration::from_secs(10), seeded)
            .await
            .expect("seeding with 0 for chunk and concurrency finishes")
            .unwrap();
        assert_eq!(
            store.seen.lock().iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }

    #[tokio::test]
    async fn a_failed_put_many_is_returned() {
        let store = Batches {
            refused: Some(Key::new("k/007").unwrap()),
            ..Batches::default()
        };
        let err = seed_records(&store, keys(20), "v", None, 5, 2).await.unwrap_err();
        assert!(err.to_string().contains("k/007"), "{err}");
    }
}
