//! A [`RecordStore`] seen as a [`Backend`], so the driver and the register model check it.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, BufferedWriter, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object,
    ObjectWriter, PutMode, PutOptions, Record, RecordStore, Result, Version,
};

/// A [`RecordStore`] as a [`Backend`]: each call is one call of the record store, so a
/// record store is checked for linearizability with the same driver and model.
///
/// put → `put`, `Create` → `create`, `Update(v)` → `cas_by_version`, get and head → `get`,
/// delete → `delete`, listing → `list_keys` (keys only: its versions are reported empty,
/// which the model reads as "present"), watch from a version → `wait_for_version_change`.
/// A conditional delete and a watch from "absent" are `Unsupported` (use [`Mix::records`]);
/// records never expire here.
///
/// [`Mix::records`]: super::Mix::records
///
/// ```no_run
/// use store_core::RecordStore;
/// use store_testkit::linearizability::{Config, Mix, RecordsAsBackend};
///
/// // With `records` a fresh, empty record store (store-record's `Records`, or your own):
/// async fn check_records(records: impl RecordStore) {
///     let config = Config::default().with_mix(Mix::records());
///     store_testkit::linearizability(|| async { RecordsAsBackend::new(records) }, config).await;
/// }
/// ```
pub struct RecordsAsBackend<R> {
    records: Arc<R>,
}

impl<R: RecordStore> RecordsAsBackend<R> {
    /// Wraps a record store.
    pub fn new(records: R) -> Self {
        RecordsAsBackend {
            records: Arc::new(records),
        }
    }
}

impl<R> Clone for RecordsAsBackend<R> {
    fn clone(&self) -> Self {
        RecordsAsBackend {
            records: Arc::clone(&self.records),
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for RecordsAsBackend<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RecordsAsBackend").field(&self.records).finish()
    }
}

fn meta(key: &Key, size: usize, version: Version) -> Meta {
    Meta {
        key: key.clone(),
        size: size as u64,
        version,
        modified: SystemTime::now(),
    }
}

fn unsupported(operation: &'static str) -> Error {
    Error::Unsupported {
        operation,
        backend: "RecordsAsBackend",
    }
}

/// A glob matching exactly the keys that start with `prefix`.
fn prefix_glob(prefix: &str) -> String {
    let mut glob = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if "*?[]{}\\!".contains(c) {
            glob.push('\\');
        }
        glob.push(c);
    }
    glob.push('*');
    glob
}

#[async_trait]
impl<R: RecordStore> Backend for RecordsAsBackend<R> {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.with_create(true).with_update(true)
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let size = data.len();
        let record = Record::new(key.clone(), data);
        let version = match opts.mode {
            PutMode::Overwrite => self.records.put(&record).await?,
            PutMode::Create => self.records.create(&record).await?,
            PutMode::Update(v) => self.records.cas_by_version(&record.with_version(v)).await?,
        };
        Ok(meta(key, size, version))
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(BufferedWriter::new(self.clone(), key.clone(), opts)))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        if opts != GetOptions::default() {
            return Err(unsupported("conditional or range get"));
        }
        let record = self.records.get(key).await?;
        let size = record.value.len();
        Ok(Object {
            meta: meta(key, size, record.version),
            range: 0..size as u64,
            body: record.value.into(),
        })
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        let record = self.records.get(key).await?;
        Ok(meta(key, record.value.len(), record.version))
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        match opts.if_match {
            None => self.records.delete(key).await,
            Some(_) => Err(unsupported("conditional delete")),
        }
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let records = Arc::clone(&self.records);
        let pattern = prefix_glob(opts.prefix.as_deref().unwrap_or(""));
        stream::once(async move { records.list_keys(&pattern).await })
            .flat_map(|keys| match keys {
                Ok(keys) => keys,
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            })
            .filter(move |k| std::future::ready(k.as_ref().map_or(true, |k| opts.matches(k.as_str()))))
            .map(|k| k.map(|k| meta(&k, 0, Version::empty())))
            .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let Some(seen) = seen else {
            return Err(unsupported("watch from absent"));
        };
        match self.records.wait_for_version_change(key, seen).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
