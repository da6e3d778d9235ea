//! `EtcdStore`: small objects in etcd, as a `Backend`.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Compare, CompareOp, EventType, GetOptions as EtcdGet, KeyValue, Txn, TxnOp, TxnOpResponse,
};
use futures::stream::{BoxStream, StreamExt};
use store_core::{
    Backend, Body, BufferedWriter, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta,
    Object, ObjectWriter, PutMode, PutOptions, Result, Version,
};

use crate::connection::{Connection, prefix_end, revision_of, version_of};
use crate::listing;
use crate::options::EtcdOptions;
use crate::watch::{first_change_after, rewatch_backoff};

/// Objects stored as plain etcd values: a [`Backend`] on an etcd cluster.
///
/// Each object is one etcd key (`key_prefix` + the store key) whose value is the object's
/// bytes, untouched, so `etcdctl get` shows your data.
///
/// - **Versions** are the key's `mod_revision`: etcd's revision counter is cluster-wide
///   and only grows, so a version is never reused for a key, also across delete and
///   re-create (no ABA).
/// - **Conditional puts** are etcd transactions: `Create` compares `create_revision == 0`,
///   `Update(v)` compares `mod_revision == v`; the comparison and the write are one atomic
///   step on the cluster, so exactly one of several racing writers wins.
/// - **Watch** is an etcd watch started right after the revision read, so no change is
///   missed and nothing polls. A broken watch (a member died) is re-established.
/// - **Small objects only.** etcd keeps every value in its Raft log and in memory-mapped
///   storage, and refuses requests over `--max-request-bytes` (1.5 MiB by default). The
///   store refuses objects over [`EtcdOptions::with_max_object_size`] (default
///   [`DEFAULT_MAX_OBJECT_SIZE`](crate::DEFAULT_MAX_OBJECT_SIZE)) with
///   `Error::InvalidInput` naming the key, before sending anything. Writers buffer in memory.
/// - **Reads** fetch the whole value: a range read is cut from it (`range_reads: false`),
///   and `head` and `list` fetch values too, to report sizes.
/// - `Meta::modified` is the time this client wrote or read the object: etcd keeps no
///   timestamps.
///
/// Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    conn: Connection,
}

impl EtcdStore {
    /// Connects to the cluster in `opts`. The connection is made lazily, so this succeeds
    /// even if no member answers yet.
    ///
    /// # Errors
    /// `InvalidInput` if no endpoint is given; a backend error if an endpoint is not a URL.
    pub async fn connect(opts: EtcdOptions) -> Result<Self> {
        Ok(EtcdStore {
            conn: Connection::connect(opts).await?,
        })
    }

    /// A store over an existing etcd client (its endpoints in `opts` are ignored).
    pub fn from_client(client: etcd_client::Client, opts: EtcdOptions) -> Self {
        EtcdStore {
            conn: Connection::from_client(client, opts),
        }
    }

    /// The same cluster connection, with every key under another prefix: separate
    /// namespaces (tenants, tests) on one connection.
    pub fn with_key_prefix(&self, prefix: impl Into<String>) -> Self {
        EtcdStore {
            conn: self.conn.with_key_prefix(prefix.into()),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &EtcdOptions {
        self.conn.options()
    }

    fn check_size(&self, key: &Key, len: usize) -> Result<()> {
        let max = self.conn.options().max_object_size;
        if len > max {
            return Err(Error::invalid_input(
                "put",
                Some(key),
                format!(
                    "object of {len} bytes exceeds the etcd store's limit of {max} bytes \
                     (see EtcdOptions::with_max_object_size and etcd's --max-request-bytes)"
                ),
            ));
        }
        Ok(())
    }

    /// The current key-value at `key` (`None` if absent) and the revision it was read at.
    async fn read(&self, op: &'static str, key: &Key, keys_only: bool) -> Result<(Option<KeyValue>, i64)> {
        let ek = self.conn.etcd_key(key);
        let opts = keys_only.then(|| EtcdGet::new().with_keys_only());
        let mut resp = self
            .conn
            .read(op, Some(key.as_str()), || {
                let mut kv = self.conn.kv();
                let (ek, opts) = (ek.clone(), opts.clone());
                async move { kv.get(ek, opts).await }
            })
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        Ok((resp.take_kvs().into_iter().next(), rev))
    }
}

fn meta(key: &Key, kv: &KeyValue) -> Meta {
    Meta {
        key: key.clone(),
        size: kv.value().len() as u64,
        version: version_of(kv.mod_revision()),
        modified: SystemTime::now(),
    }
}

fn not_found(op: &'static str, key: &Key) -> Error {
    Error::NotFound {
        op,
        key: key.to_string(),
    }
}

/// The key-value an `else` branch of `get` read, if the key exists.
fn else_kv(resp: &etcd_client::TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next(),
        _ => None,
    })
}

#[async_trait]
impl Backend for EtcdStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_create(true)
            .with_update(true)
            .with_conditional_delete(true)
            .with_native_watch(true)
            .with_durable(true)
            .with_shared(true)
            .with_stable_versions(true)
            .with_max_object_size(Some(self.conn.options().max_object_size as u64))
    }

    #[tracing::instrument(level = "debug", skip(self, data, opts), fields(key = %key, size = data.len()))]
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        self.check_size(key, data.len())?;
        let ek = self.conn.etcd_key(key);
        let size = data.len() as u64;
        let done = |rev: i64| Meta {
            key: key.clone(),
            size,
            version: version_of(rev),
            modified: SystemTime::now(),
        };
        let compare = match &opts.mode {
            PutMode::Overwrite => {
                let resp = self
                    .conn
                    .write("put", Some(key.as_str()), || {
                        let mut kv = self.conn.kv();
                        let (ek, value) = (ek.clone(), data.to_vec());
                        async move { kv.put(ek, value, None).await }
                    })
                    .await?;
                return Ok(done(resp.header().map_or(0, |h| h.revision())));
            }
            PutMode::Create => Compare::create_revision(ek.clone(), CompareOp::Equal, 0),
            PutMode::Update(v) => Compare::mod_revision(ek.clone(), CompareOp::Equal, revision_of(v)),
        };
        let resp = self
            .conn
            .write("put", Some(key.as_str()), || {
                let mut kv = self.conn.kv();
                let txn = Txn::new()
                    .when([compare.clone()])
                    .and_then([TxnOp::put(ek.clone(), data.to_vec(), None)])
                    .or_else([TxnOp::get(ek.clone(), Some(EtcdGet::new().with_keys_only()))]);
                async move { kv.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(done(resp.header().map_or(0, |h| h.revision())));
        }
        let current = else_kv(&resp).map(|kv| version_of(kv.mod_revision()));
        Err(match (opts.mode, current) {
            (PutMode::Create, Some(version)) => Error::AlreadyExists {
                op: "put",
                key: key.to_string(),
                version,
            },
            (PutMode::Update(_), None) => not_found("put", key),
            (PutMode::Update(expected), actual) => Error::Conflict {
                op: "put",
                key: key.to_string(),
                expected: Some(expected),
                actual,
            },
            // Cannot happen: a failed `Create` compare means the key exists, and the else
            // branch reads it in the same transaction; `Overwrite` returned above.
            (PutMode::Create | PutMode::Overwrite, _) => Error::Conflict {
                op: "put",
                key: key.to_string(),
                expected: None,
                actual: None,
            },
        })
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(BufferedWriter::new(self.clone(), key.clone(), opts)))
    }

    #[tracing::instrument(level = "debug", skip(self, opts), fields(key = %key))]
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let (kv, _) = self.read("get", key, false).await?;
        let kv = kv.ok_or_else(|| not_found("get", key))?;
        let meta = meta(key, &kv);
        opts.check(key, &meta.version)?;
        let range = match &opts.range {
            Some(r) => r.resolve(key, meta.size)?,
            None => 0..meta.size,
        };
        let (_, value) = kv.into_key_value();
        let mut body = Bytes::from(value);
        if range != (0..meta.size) {
            body = body.slice(range.start as usize..range.end as usize);
        }
        Ok(Object {
            meta,
            range,
            body: Body::Bytes(body),
        })
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn head(&self, key: &Key) -> Result<Meta> {
        let (kv, _) = self.read("head", key, false).await?;
        kv.map(|kv| meta(key, &kv)).ok_or_else(|| not_found("head", key))
    }

    #[tracing::instrument(level = "debug", skip(self, opts), fields(key = %key))]
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let ek = self.conn.etcd_key(key);
        let Some(expected) = opts.if_match else {
            let resp = self
                .conn
                .write("delete", Some(key.as_str()), || {
                    let mut kv = self.conn.kv();
                    let ek = ek.clone();
                    async move { kv.delete(ek, None).await }
                })
                .await?;
            return if resp.deleted() > 0 {
                Ok(())
            } else {
                Err(not_found("delete", key))
            };
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                ek.clone(),
                CompareOp::Equal,
                revision_of(&expected),
            )])
            .and_then([TxnOp::delete(ek.clone(), None)])
            .or_else([TxnOp::get(ek, Some(EtcdGet::new().with_keys_only()))]);
        let resp = self
            .conn
            .write("delete", Some(key.as_str()), || {
                let mut kv = self.conn.kv();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(());
        }
        match else_kv(&resp) {
            None => Err(not_found("delete", key)),
            Some(kv) => Err(Error::Conflict {
                op: "delete",
                key: key.to_string(),
                expected: Some(expected),
                actual: Some(version_of(kv.mod_revision())),
            }),
        }
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let prefix = self.conn.etcd_key_str(opts.prefix.as_deref().unwrap_or(""));
        let end = prefix_end(&prefix);
        let start = match &opts.start_after {
            Some(after) => {
                let mut s = self.conn.etcd_key_str(after);
                s.push(0);
                s.max(prefix)
            }
            None => prefix,
        };
        if start >= end && end != [0] {
            return futures::stream::empty().boxed();
        }
        let conn = self.conn.clone();
        listing::range(self.conn.clone(), "list", start, end)
            .map(move |kv| {
                let kv = kv?;
                let key = conn.store_key(kv.key())?;
                Ok(meta(&key, &kv))
            })
            .boxed()
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let mut rewatch = rewatch_backoff().start();
        loop {
            let (kv, rev) = self.read("watch", key, true).await?;
            let current = kv.map(|kv| version_of(kv.mod_revision()));
            if current.as_ref() != seen {
                return Ok(current);
            }
            // The key is as the caller saw it at `rev`; its next change is the answer.
            match first_change_after(&self.conn, "watch", key, self.conn.etcd_key(key), rev).await? {
                Some(ev) => {
                    return Ok(match ev.event_type() {
                        EventType::Put => ev.kv().map(|kv| version_of(kv.mod_revision())),
                        EventType::Delete => None,
                    });
                }
                None => {
                    rewatch.wait().await;
                }
            }
        }
    }
}
