//! `RedisRecords`: a `RecordStore` native to Redis.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use store_core::{Error, GlobPattern, Key, Record, RecordStore, Result, Version};

use crate::connection::{Connection, Mode, Outcome, WRITE_BATCH, Write};
use crate::envelope;
use crate::listing;
use crate::options::RedisOptions;

/// Keys read per `MGET` of `get_many`.
const READ_BATCH: usize = 512;

/// Records on a Redis server: a [`RecordStore`] built on Redis's own primitives.
///
/// Each record is one Redis string, `key_prefix` + the store key, holding a 41-byte text
/// header (a format byte, the version and the expiry as 20-digit numbers) and the value.
///
/// - **Versions** come from one counter per key prefix (`INCR` on `<prefix>/version`),
///   taken by every write: they never repeat for a key, also across delete and re-create
///   (no ABA), and they are ordered — of two versions of one prefix, the larger was written
///   later ([`Version::as_u64`] gives the number).
/// - **`create`, `cas_by_version`, `put` and `delete`** are each one Lua script (`EVALSHA`,
///   loading the script when the server does not have it yet): the check and the write are
///   one atomic step on the server and one round trip, so exactly one of several racing
///   writers wins. `put_many` writes up to 128 records per script call, in order, each
///   call atomic.
/// - **Expiry** is kept twice. The header holds it to the millisecond, and every read and
///   every script treats a record whose expiry has come as absent, by the client's clock
///   (the scripts are handed the client's "now"). And the key gets `PXAT` that same
///   millisecond, so Redis deletes it by itself. On one machine the two agree; across
///   machines keep the clocks in step: a server clock ahead of the client's deletes
///   records early by the difference.
/// - **`wait_for_version_change`** is woken by the scripts: each write publishes the key
///   on `<prefix>/changes`, which one connection per handle (and prefix) subscribes to,
///   from the first wait on. A wait reads the record only once that subscription is
///   confirmed, and reads it again after the subscription was lost and renewed (the
///   server restarted, say), so no change is missed. It sleeps until the record's expiry
///   if it has one. No polling.
/// - **`list_keys`** scans (`SCAN MATCH`) the keys under the glob's literal prefix, sorts
///   them and matches the rest with [`GlobPattern`], then reads the listed records' headers
///   (one script call per 256 keys) to leave out expired ones; see [`RedisStore`](crate::RedisStore)
///   for what a scan costs.
/// - **`get`** is one `GET`, **`get_many`** one `MGET` per 512 keys.
///
/// Values are limited like objects in [`RedisStore`](crate::RedisStore)
/// ([`RedisOptions::with_max_object_size`]). Use a key prefix of its own: the stored values
/// are records, and versions come from the prefix's counter (which must not be deleted).
///
/// Cheap to clone; clones share the connection and the change subscription.
#[derive(Debug, Clone)]
pub struct RedisRecords {
    conn: Connection,
}

impl RedisRecords {
    /// Connects to the server in `opts` (one round trip, to learn whether it fsyncs every
    /// write).
    ///
    /// # Errors
    /// `InvalidInput` if the URL is not usable; a retryable backend error if the server
    /// does not answer.
    pub async fn connect(opts: RedisOptions) -> Result<Self> {
        Ok(RedisRecords {
            conn: Connection::connect(opts).await?,
        })
    }

    /// The same connection, with every key under another prefix.
    pub fn with_key_prefix(&self, prefix: impl Into<String>) -> Self {
        RedisRecords {
            conn: self.conn.with_key_prefix(prefix.into()),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        self.conn.options()
    }

    fn check_size(&self, op: &'static str, record: &Record) -> Result<()> {
        let max = self.conn.options().max_object_size;
        if record.value.len() > max {
            return Err(Error::invalid_input(
                op,
                Some(&record.key),
                format!(
                    "record value of {} bytes exceeds the limit of {max} bytes \
                     (see RedisOptions::with_max_object_size)",
                    record.value.len()
                ),
            ));
        }
        Ok(())
    }

    /// The live record in a stored value read for `op`, or `None` if it has expired.
    fn live(op: &'static str, key: &Key, stored: Bytes) -> Result<Option<Record>> {
        let (header, value) = envelope::split(op, key.as_str(), stored)?;
        if !header.is_live(envelope::now_ms()) {
            return Ok(None);
        }
        Ok(Some(Record {
            key: key.clone(),
            value,
            version: header.version(),
            expires_at: header.expires_at(),
        }))
    }

    /// Runs the write script for one record.
    async fn write_one(&self, op: &'static str, mode: Mode<'_>, record: &Record) -> Result<Outcome> {
        self.check_size(op, record)?;
        let write = Write {
            key: &record.key,
            expires_at: record.expires_at,
            value: &record.value,
        };
        self.conn
            .write_script(op, mode, std::slice::from_ref(&write))
            .await
    }
}

fn not_found(op: &'static str, key: &Key) -> Error {
    Error::NotFound {
        op,
        key: key.to_string(),
    }
}

fn corrupt(op: &'static str, key: &Key) -> Error {
    Error::Corrupt {
        key: key.to_string(),
        reason: format!("{op}: the stored value was not written by store-redis"),
    }
}

/// The one version a single-record write returns.
fn written(op: &'static str, key: &Key, outcome: Outcome) -> Result<Version> {
    match outcome {
        Outcome::Done(versions) => versions.into_iter().next().ok_or_else(|| corrupt(op, key)),
        Outcome::Exists(version) => Err(Error::AlreadyExists {
            op,
            key: key.to_string(),
            version,
        }),
        Outcome::Conflict(actual) => Err(Error::Conflict {
            op,
            key: key.to_string(),
            expected: None,
            actual: Some(actual),
        }),
        Outcome::Absent => Err(not_found(op, key)),
        Outcome::Corrupt => Err(corrupt(op, key)),
    }
}

#[async_trait]
impl RecordStore for RedisRecords {
    #[tracing::instrument(level = "debug", skip(self, record), fields(key = %record.key))]
    async fn create(&self, record: &Record) -> Result<Version> {
        let outcome = self.write_one("create", Mode::Create, record).await?;
        written("create", &record.key, outcome)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn get(&self, key: &Key) -> Result<Record> {
        match self.conn.get("get", key).await? {
            Some(stored) => Self::live("get", key, stored)?.ok_or_else(|| not_found("get", key)),
            None => Err(not_found("get", key)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, keys), fields(n = keys.len()))]
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(READ_BATCH) {
            let values = self.conn.get_many("get_many", chunk).await?;
            for (key, stored) in chunk.iter().zip(values) {
                out.push(match stored {
                    Some(stored) => Self::live("get_many", key, stored)?,
                    None => None,
                });
            }
        }
        Ok(out)
    }

    #[tracing::instrument(level = "debug", skip(self, record), fields(key = %record.key))]
    async fn put(&self, record: &Record) -> Result<Version> {
        let outcome = self.write_one("put", Mode::Put, record).await?;
        written("put", &record.key, outcome)
    }

    #[tracing::instrument(level = "debug", skip(self, records), fields(n = records.len()))]
    async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>> {
        for r in records {
            self.check_size("put_many", r)?;
        }
        let mut versions = Vec::with_capacity(records.len());
        for chunk in records.chunks(WRITE_BATCH) {
            let writes: Vec<Write<'_>> = chunk
                .iter()
                .map(|r| Write {
                    key: &r.key,
                    expires_at: r.expires_at,
                    value: &r.value,
                })
                .collect();
            match self.conn.write_script("put_many", Mode::Put, &writes).await? {
                Outcome::Done(v) if v.len() == chunk.len() => versions.extend(v),
                _ => return Err(corrupt("put_many", &chunk[0].key)),
            }
        }
        Ok(versions)
    }

    #[tracing::instrument(level = "debug", skip(self, record), fields(key = %record.key))]
    async fn cas_by_version(&self, record: &Record) -> Result<Version> {
        const OP: &str = "cas_by_version";
        let outcome = self.write_one(OP, Mode::Cas(&record.version), record).await?;
        written(OP, &record.key, outcome).map_err(|e| match e {
            Error::Conflict { op, key, actual, .. } => Error::Conflict {
                op,
                key,
                expected: Some(record.version.clone()),
                actual,
            },
            e => e,
        })
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn delete(&self, key: &Key) -> Result<()> {
        match self.conn.delete_script("delete", key, None).await? {
            Outcome::Done(_) => Ok(()),
            Outcome::Corrupt => Err(corrupt("delete", key)),
            _ => Err(not_found("delete", key)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, version), fields(key = %key))]
    async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version> {
        const OP: &str = "wait_for_version_change";
        match self.conn.wait_change(OP, key, Some(version)).await? {
            Some(head) => Ok(head.header.version()),
            None => Err(not_found(OP, key)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>> {
        const OP: &str = "list_keys";
        let pattern = GlobPattern::new(pattern)?;
        let keys: Vec<Result<Key>> = listing::sorted_keys(&self.conn, OP, pattern.prefix())
            .await?
            .into_iter()
            .filter(|k| k.as_ref().map_or(true, |k| pattern.is_match(k.as_str())))
            .collect();
        let now = envelope::now_ms();
        let live = listing::heads(self.conn.clone(), OP, keys).filter_map(move |item| {
            futures::future::ready(match item {
                Ok((key, Some(head))) if head.header.is_live(now) => Some(Ok(key)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
        });
        Ok(live.boxed())
    }
}
