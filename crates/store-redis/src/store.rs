//! `RedisStore`: small objects in Redis, as a `Backend`.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Body, BufferedWriter, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta,
    Object, ObjectWriter, PutMode, PutOptions, Result, Version,
};

use crate::connection::{Connection, Head, Mode, Outcome, Write};
use crate::envelope;
use crate::listing;
use crate::options::RedisOptions;

/// Objects on a Redis server: a [`Backend`] for small objects.
///
/// Each object is one Redis string, `key_prefix` + the store key, holding a 41-byte text
/// header (a format byte, the version, and an expiry that objects do not use) and the
/// object's bytes. It is the same form [`RedisRecords`](crate::RedisRecords) stores, and
/// every write goes through the same scripts.
///
/// - **Versions** come from one counter per key prefix (`INCR`), taken by every write: a
///   version is never reused for a key, also across delete and re-create (no ABA), and the
///   versions of one prefix are ordered by the time they were written.
/// - **Puts and deletes** are Lua scripts (`EVALSHA`, loading the script when the server
///   does not have it yet): `Create`, `Update(v)` and `if_match` are checked and the write
///   done in one atomic step and one round trip, so exactly one of several racing
///   writers wins. A write whose reply is lost (the connection broke, the reply timed out)
///   fails with [`Error::is_outcome_unknown`]: read before trying it again.
/// - **Watch** is woken by the scripts: each write publishes the key on the prefix's
///   channel (see [`RedisRecords`](crate::RedisRecords) for how a wait never misses one,
///   also across a lost connection). No polling.
/// - **Listing** uses `SCAN MATCH` on the prefix, which is unordered: every key under the
///   listed prefix is collected and sorted before the first is returned, and `SCAN` visits
///   the whole database to find them (one round trip per 1000 keys of the *database*, not
///   of the prefix). Then the objects' sizes and versions are read, one script call per
///   256 keys, as the listing is consumed. Fine for the thousands of keys small objects
///   come in; a store of millions of keys per prefix wants a backend with ordered keys.
/// - **Small objects only.** Objects over [`RedisOptions::with_max_object_size`] (default
///   [`DEFAULT_MAX_OBJECT_SIZE`](crate::DEFAULT_MAX_OBJECT_SIZE)) are refused with
///   `Error::InvalidInput` naming the key, before anything is sent. Writers buffer in
///   memory. A whole read is one `GET`; a range read fetches the header, the length and
///   the range only (one round trip: `GETRANGE`, `STRLEN`, `GETRANGE` in a `MULTI`
///   block); `head` reads the header and the length only (one script call).
/// - **Durable** (in [`Capabilities`]) only if the server said at connect that it fsyncs
///   every write to its append-only file (`appendonly yes`, `appendfsync always`).
/// - `Meta::modified` is the time this client wrote or read the object: the store keeps
///   no timestamps.
///
/// Cheap to clone; clones share the connection and the change subscription.
#[derive(Debug, Clone)]
pub struct RedisStore {
    conn: Connection,
}

impl RedisStore {
    /// Connects to the server in `opts` (one round trip, to learn whether it fsyncs every
    /// write).
    ///
    /// # Errors
    /// `InvalidInput` if the URL is not usable; a retryable backend error if the server
    /// does not answer.
    pub async fn connect(opts: RedisOptions) -> Result<Self> {
        Ok(RedisStore {
            conn: Connection::connect(opts).await?,
        })
    }

    /// The same connection, with every key under another prefix: separate namespaces
    /// (tenants, tests) on one connection.
    pub fn with_key_prefix(&self, prefix: impl Into<String>) -> Self {
        RedisStore {
            conn: self.conn.with_key_prefix(prefix.into()),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        self.conn.options()
    }

    fn check_size(&self, key: &Key, len: usize) -> Result<()> {
        let max = self.conn.options().max_object_size;
        if len > max {
            return Err(Error::invalid_input(
                "put",
                Some(key),
                format!(
                    "object of {len} bytes exceeds the Redis store's limit of {max} bytes \
                     (see RedisOptions::with_max_object_size)"
                ),
            ));
        }
        Ok(())
    }

    /// The live object's head at `key`, if any.
    async fn head_of(&self, op: &'static str, key: &Key) -> Result<Option<Head>> {
        let now = envelope::now_ms();
        let head = self
            .conn
            .heads(op, std::slice::from_ref(key))
            .await?
            .pop()
            .unwrap_or(Ok(None))?;
        Ok(head.filter(|h| h.header.is_live(now)))
    }
}

fn meta(key: &Key, head: &Head) -> Meta {
    Meta {
        key: key.clone(),
        size: head.size,
        version: head.header.version(),
        modified: SystemTime::now(),
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

#[async_trait]
impl Backend for RedisStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_create(true)
            .with_update(true)
            .with_conditional_delete(true)
            .with_range_reads(true)
            .with_native_watch(true)
            .with_durable(self.conn.durable())
            .with_shared(true)
            .with_stable_versions(true)
            .with_max_object_size(Some(self.conn.options().max_object_size as u64))
    }

    #[tracing::instrument(level = "debug", skip(self, data, opts), fields(key = %key, size = data.len()))]
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        self.check_size(key, data.len())?;
        let mode = match &opts.mode {
            PutMode::Overwrite => Mode::Put,
            PutMode::Create => Mode::Create,
            PutMode::Update(v) => Mode::Cas(v),
        };
        let write = Write {
            key,
            expires_at: None,
            value: &data,
        };
        let outcome = self
            .conn
            .write_script("put", mode, std::slice::from_ref(&write))
            .await?;
        match outcome {
            Outcome::Done(versions) => {
                let version = versions.into_iter().next().ok_or_else(|| corrupt("put", key))?;
                Ok(Meta {
                    key: key.clone(),
                    size: data.len() as u64,
                    version,
                    modified: SystemTime::now(),
                })
            }
            Outcome::Exists(version) => Err(Error::AlreadyExists {
                op: "put",
                key: key.to_string(),
                version,
            }),
            Outcome::Conflict(actual) => Err(Error::Conflict {
                op: "put",
                key: key.to_string(),
                expected: match opts.mode {
                    PutMode::Update(v) => Some(v),
                    PutMode::Create | PutMode::Overwrite => None,
                },
                actual: Some(actual),
            }),
            Outcome::Absent => Err(not_found("put", key)),
            Outcome::Corrupt => Err(corrupt("put", key)),
        }
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(BufferedWriter::new(self.clone(), key.clone(), opts)))
    }

    #[tracing::instrument(level = "debug", skip(self, opts), fields(key = %key))]
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        // A whole object is one GET; a range reads the header, the size and the range only.
        let (head, body) = match &opts.range {
            None => {
                let stored = self
                    .conn
                    .get("get", key)
                    .await?
                    .ok_or_else(|| not_found("get", key))?;
                let (header, body) = envelope::split("get", key.as_str(), stored)?;
                let size = body.len() as u64;
                (Head { header, size }, body)
            }
            Some(range) => self
                .conn
                .get_range("get", key, range)
                .await?
                .ok_or_else(|| not_found("get", key))?,
        };
        if !head.header.is_live(envelope::now_ms()) {
            return Err(not_found("get", key));
        }
        let meta = meta(key, &head);
        opts.check(key, &meta.version)?;
        let range = match &opts.range {
            Some(r) => r.resolve(key, meta.size)?,
            None => 0..meta.size,
        };
        // A suffix longer than the object came with header bytes in front.
        let want = (range.end - range.start) as usize;
        let body = body.slice(body.len().saturating_sub(want)..);
        Ok(Object {
            meta,
            range,
            body: Body::Bytes(body),
        })
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn head(&self, key: &Key) -> Result<Meta> {
        match self.head_of("head", key).await? {
            Some(head) => Ok(meta(key, &head)),
            None => Err(not_found("head", key)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, opts), fields(key = %key))]
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        match self
            .conn
            .delete_script("delete", key, opts.if_match.as_ref())
            .await?
        {
            Outcome::Done(_) => Ok(()),
            Outcome::Conflict(actual) => Err(Error::Conflict {
                op: "delete",
                key: key.to_string(),
                expected: opts.if_match,
                actual: Some(actual),
            }),
            Outcome::Corrupt => Err(corrupt("delete", key)),
            Outcome::Absent | Outcome::Exists(_) => Err(not_found("delete", key)),
        }
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let conn = self.conn.clone();
        let listing = async move {
            let keys = listing::sorted_keys(&conn, "list", opts.prefix.as_deref().unwrap_or("")).await?;
            let keys: Vec<Result<Key>> = keys
                .into_iter()
                .filter(|k| k.as_ref().map_or(true, |k| opts.matches(k.as_str())))
                .collect();
            let now = envelope::now_ms();
            Ok::<_, Error>(listing::heads(conn, "list", keys).filter_map(move |item| {
                futures::future::ready(match item {
                    Ok((key, Some(head))) if head.header.is_live(now) => Some(Ok(meta(&key, &head))),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
            }))
        };
        stream::once(listing)
            .flat_map(|found| match found {
                Ok(metas) => metas.boxed(),
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            })
            .boxed()
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let current = self.conn.wait_change("watch", key, seen).await?;
        Ok(current.map(|h| h.header.version()))
    }
}
