//! `EtcdRecords`: a `RecordStore` native to etcd.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use etcd_client::{
    Compare, CompareOp, EventType, KeyValue, PutOptions as EtcdPut, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use futures::stream::{BoxStream, StreamExt};
use store_core::{Error, Key, Record, RecordStore, Result, Version};

use crate::connection::{Connection, prefix_end, revision_of, version_of};
use crate::envelope;
use crate::listing;
use crate::options::EtcdOptions;
use crate::watch::{first_change_after, rewatch_backoff};
use store_core::GlobPattern;

/// Operations per etcd transaction (etcd's `--max-txn-ops` defaults to 128).
const TXN_OPS: usize = 64;

/// How often `create` retries when the key it found expired is replaced meanwhile.
const CREATE_ATTEMPTS: u32 = 64;

/// etcd's largest lease TTL, in seconds.
const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Records on an etcd cluster: a [`RecordStore`] built on etcd's own primitives.
///
/// - **Versions** are the key's `mod_revision` ([`Version::from`]`(u64)`): cluster-wide,
///   monotonic, never reused for a key (no ABA).
/// - **`create` and `cas_by_version`** are single etcd transactions: compare
///   (`create_revision == 0`, or `mod_revision == version` *and* "not expired") and write in
///   one atomic step, so exactly one of several racing writers wins.
/// - **Expiry** is kept twice. The stored value starts with the expiry (milliseconds), so
///   every read, and every transaction's comparison, treats an expired record as absent
///   *from the exact millisecond* it expires. And the key is attached to an etcd **lease**
///   of `ceil(remaining seconds)` (at least 1 s; etcd may raise short TTLs to its minimum,
///   about 2 s by default), so etcd deletes it by itself shortly after (lease granularity:
///   whole seconds, checked by the leader about twice a second). A lease never removes a
///   record early. Each write with an expiry grants its own lease (one more round trip); the
///   lease of a write that then fails (`AlreadyExists`, `Conflict`) holds no key and simply
///   runs out.
/// - **`wait_for_version_change`** is an etcd watch from the revision it read, raced with a
///   timer for the record's expiry: woken by change, never polling.
/// - **`list_keys`** reads the etcd range of the glob's literal prefix, in pages, and
///   matches the rest with `globset`.
/// - **`get_many` and `put_many`** are transactions of up to 64 operations each, so a batch
///   that fits in one is read (or written) at a single revision.
///
/// Record values are limited like objects in [`EtcdStore`](crate::EtcdStore)
/// ([`EtcdOptions::with_max_object_size`]). Use a key prefix of its own: the stored values
/// are record envelopes, not plain bytes.
///
/// Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct EtcdRecords {
    conn: Connection,
}

impl EtcdRecords {
    /// Connects to the cluster in `opts` (lazily: this succeeds even if no member answers
    /// yet).
    ///
    /// # Errors
    /// `InvalidInput` if no endpoint is given; a backend error if an endpoint is not a URL.
    pub async fn connect(opts: EtcdOptions) -> Result<Self> {
        Ok(EtcdRecords {
            conn: Connection::connect(opts).await?,
        })
    }

    /// A record store over an existing etcd client (its endpoints in `opts` are ignored).
    pub fn from_client(client: etcd_client::Client, opts: EtcdOptions) -> Self {
        EtcdRecords {
            conn: Connection::from_client(client, opts),
        }
    }

    /// The same connection, with every key under another prefix.
    pub fn with_key_prefix(&self, prefix: impl Into<String>) -> Self {
        EtcdRecords {
            conn: self.conn.with_key_prefix(prefix.into()),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &EtcdOptions {
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
                     (see EtcdOptions::with_max_object_size)",
                    record.value.len()
                ),
            ));
        }
        Ok(())
    }

    /// A lease that ends no earlier than `expires_at` (0, no lease, for a record that never
    /// expires).
    async fn lease_for(&self, op: &'static str, key: &Key, expires_at: Option<SystemTime>) -> Result<i64> {
        let Some(at) = expires_at else { return Ok(0) };
        let left = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        let ttl = i64::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
            .unwrap_or(MAX_LEASE_TTL)
            .clamp(1, MAX_LEASE_TTL);
        // Granting twice after a lost reply only leaves a spare lease that runs out.
        let resp = self
            .conn
            .read(op, Some(key.as_str()), || {
                let mut lease = self.conn.lease();
                async move { lease.grant(ttl, None).await }
            })
            .await?;
        Ok(resp.id())
    }

    fn put_op(&self, record: &Record, lease: i64) -> TxnOp {
        let opts = (lease != 0).then(|| EtcdPut::new().with_lease(lease));
        TxnOp::put(
            self.conn.etcd_key(&record.key),
            envelope::encode(&record.value, record.expires_at),
            opts,
        )
    }

    /// Runs the transaction `build` makes as a write (built again for each try, so the
    /// value is copied once per try, not kept twice).
    async fn txn(&self, op: &'static str, key: &Key, build: impl Fn() -> Txn) -> Result<TxnResponse> {
        self.conn
            .write(op, Some(key.as_str()), || {
                let mut kv = self.conn.kv();
                let txn = build();
                async move { kv.txn(txn).await }
            })
            .await
    }

    /// The record in `kv`, or `None` if it has expired by `threshold`.
    fn live(&self, key: &Key, kv: KeyValue, threshold: &[u8]) -> Result<Option<Record>> {
        if !envelope::is_live(kv.value(), threshold) {
            // Still decode, so garbage is reported as Corrupt rather than hidden as expired.
            envelope::decode(key, kv.value().to_vec())?;
            return Ok(None);
        }
        let version = version_of(kv.mod_revision());
        let (_, stored) = kv.into_key_value();
        let (value, expires_at) = envelope::decode(key, stored)?;
        Ok(Some(Record {
            key: key.clone(),
            value,
            version,
            expires_at,
        }))
    }

    /// The current key-value at `key` and the revision it was read at.
    async fn read(&self, op: &'static str, key: &Key) -> Result<(Option<KeyValue>, i64)> {
        let ek = self.conn.etcd_key(key);
        let mut resp = self
            .conn
            .read(op, Some(key.as_str()), || {
                let mut kv = self.conn.kv();
                let ek = ek.clone();
                async move { kv.get(ek, None).await }
            })
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        Ok((resp.take_kvs().into_iter().next(), rev))
    }
}

fn not_found(op: &'static str, key: &Key) -> Error {
    Error::NotFound {
        op,
        key: key.to_string(),
    }
}

fn header_version(resp: &TxnResponse) -> Version {
    version_of(resp.header().map_or(0, |h| h.revision()))
}

/// The key-value the `else` branch's get read, if the key exists.
fn else_kv(resp: &TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next(),
        _ => None,
    })
}

#[async_trait]
impl RecordStore for EtcdRecords {
    #[tracing::instrument(level = "debug", skip(self, record), fields(key = %record.key))]
    async fn create(&self, record: &Record) -> Result<Version> {
        self.check_size("create", record)?;
        let key = record.key.clone();
        let ek = self.conn.etcd_key(&key);
        let lease = self.lease_for("create", &key, record.expires_at).await?;
        // `None`: expect the key to be absent. `Some(rev)`: it holds a record that had
        // expired at revision `rev`; replace exactly that one.
        let mut expect: Option<i64> = None;
        for _ in 0..CREATE_ATTEMPTS {
            let compare = match expect {
                None => Compare::create_revision(ek.clone(), CompareOp::Equal, 0),
                Some(rev) => Compare::mod_revision(ek.clone(), CompareOp::Equal, rev),
            };
            let threshold = envelope::live_threshold(SystemTime::now());
            let resp = self
                .txn("create", &key, || {
                    Txn::new()
                        .when([compare.clone()])
                        .and_then([self.put_op(record, lease)])
                        .or_else([TxnOp::get(ek.clone(), None)])
                })
                .await?;
            if resp.succeeded() {
                return Ok(header_version(&resp));
            }
            match else_kv(&resp) {
                None => expect = None,
                Some(kv) => {
                    let rev = kv.mod_revision();
                    match self.live(&key, kv, &threshold)? {
                        Some(existing) => {
                            return Err(Error::AlreadyExists {
                                op: "create",
                                key: key.to_string(),
                                version: existing.version,
                            });
                        }
                        None => expect = Some(rev),
                    }
                }
            }
        }
        Err(Error::Contention {
            op: "create",
            key: key.to_string(),
            attempts: CREATE_ATTEMPTS,
        })
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn get(&self, key: &Key) -> Result<Record> {
        let threshold = envelope::live_threshold(SystemTime::now());
        let (kv, _) = self.read("get", key).await?;
        match kv {
            Some(kv) => self
                .live(key, kv, &threshold)?
                .ok_or_else(|| not_found("get", key)),
            None => Err(not_found("get", key)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self, keys), fields(n = keys.len()))]
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Record>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| TxnOp::get(self.conn.etcd_key(k), None))
                .collect();
            let threshold = envelope::live_threshold(SystemTime::now());
            let first = chunk.first().map(Key::as_str);
            let resp = self
                .conn
                .read("get_many", first, || {
                    let mut kv = self.conn.kv();
                    let txn = Txn::new().and_then(ops.clone());
                    async move { kv.txn(txn).await }
                })
                .await?;
            let responses = resp.op_responses();
            for (key, r) in chunk.iter().zip(responses) {
                let kv = match r {
                    TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next(),
                    _ => None,
                };
                out.push(match kv {
                    Some(kv) => self.live(key, kv, &threshold)?,
                    None => None,
                });
            }
        }
        Ok(out)
    }

    #[tracing::instrument(level = "debug", skip(self, record), fields(key = %record.key))]
    async fn put(&self, record: &Record) -> Result<Version> {
        self.check_size("put", record)?;
        let lease = self.lease_for("put", &record.key, record.expires_at).await?;
        let opts = (lease != 0).then(|| EtcdPut::new().with_lease(lease));
        let resp = self
            .conn
            .write("put", Some(record.key.as_str()), || {
                let mut kv = self.conn.kv();
                let (ek, value) = (
                    self.conn.etcd_key(&record.key),
                    envelope::encode(&record.value, record.expires_at),
                );
                let opts = opts.clone();
                async move { kv.put(ek, value, opts).await }
            })
            .await?;
        Ok(version_of(resp.header().map_or(0, |h| h.revision())))
    }

    #[tracing::instrument(level = "debug", skip(self, records), fields(n = records.len()))]
    async fn put_many(&self, records: &[Record]) -> Result<Vec<Version>> {
        for r in records {
            self.check_size("put_many", r)?;
        }
        let leases = futures::future::try_join_all(
            records
                .iter()
                .map(|r| self.lease_for("put_many", &r.key, r.expires_at)),
        )
        .await?;
        let mut versions = Vec::with_capacity(records.len());
        let mut start = 0;
        while start < records.len() {
            // One transaction per run of distinct keys (etcd refuses a key twice in one).
            let mut seen = HashSet::new();
            let mut end = start;
            while end < records.len() && end - start < TXN_OPS && seen.insert(&records[end].key) {
                end += 1;
            }
            let resp = self
                .txn("put_many", &records[start].key, || {
                    let ops: Vec<TxnOp> = (start..end)
                        .map(|i| self.put_op(&records[i], leases[i]))
                        .collect();
                    Txn::new().and_then(ops)
                })
                .await?;
            let v = header_version(&resp);
            versions.extend(std::iter::repeat_n(v, end - start));
            start = end;
        }
        Ok(versions)
    }

    #[tracing::instrument(level = "debug", skip(self, record), fields(key = %record.key))]
    async fn cas_by_version(&self, record: &Record) -> Result<Version> {
        self.check_size("cas_by_version", record)?;
        let key = record.key.clone();
        let ek = self.conn.etcd_key(&key);
        let expected = record.version.clone();
        let lease = self.lease_for("cas_by_version", &key, record.expires_at).await?;
        let threshold = envelope::live_threshold(SystemTime::now());
        let resp = self
            .txn("cas_by_version", &key, || {
                Txn::new()
                    .when([
                        Compare::mod_revision(ek.clone(), CompareOp::Equal, revision_of(&expected)),
                        Compare::value(ek.clone(), CompareOp::Greater, threshold.clone()),
                    ])
                    .and_then([self.put_op(record, lease)])
                    .or_else([TxnOp::get(ek.clone(), None)])
            })
            .await?;
        if resp.succeeded() {
            return Ok(header_version(&resp));
        }
        let current = match else_kv(&resp) {
            Some(kv) => self.live(&key, kv, &threshold)?,
            None => None,
        };
        match current {
            None => Err(not_found("cas_by_version", &key)),
            Some(cur) => Err(Error::Conflict {
                op: "cas_by_version",
                key: key.to_string(),
                expected: Some(expected),
                actual: Some(cur.version),
            }),
        }
    }

    #[tracing::instrument(level = "debug", skip(self), fields(key = %key))]
    async fn delete(&self, key: &Key) -> Result<()> {
        let ek = self.conn.etcd_key(key);
        let threshold = envelope::live_threshold(SystemTime::now());
        // Only a live record can be deleted; an expired one is absent (its lease removes it).
        let resp = self
            .txn("delete", key, || {
                Txn::new()
                    .when([Compare::value(ek.clone(), CompareOp::Greater, threshold.clone())])
                    .and_then([TxnOp::delete(ek.clone(), None)])
            })
            .await?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(not_found("delete", key))
        }
    }

    #[tracing::instrument(level = "debug", skip(self, version), fields(key = %key))]
    async fn wait_for_version_change(&self, key: &Key, version: &Version) -> Result<Version> {
        const OP: &str = "wait_for_version_change";
        let mut rewatch = rewatch_backoff().start();
        loop {
            let threshold = envelope::live_threshold(SystemTime::now());
            let (kv, rev) = self.read(OP, key).await?;
            let Some(current) = kv.map(|kv| self.live(key, kv, &threshold)).transpose()?.flatten() else {
                return Err(not_found(OP, key));
            };
            if &current.version != version {
                return Ok(current.version);
            }
            let expiry = async {
                match current.expires_at {
                    Some(at) => {
                        let left = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                        tokio::time::sleep(left).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let change = first_change_after(&self.conn, OP, key, self.conn.etcd_key(key), rev);
            tokio::select! {
                () = expiry => return Err(not_found(OP, key)),
                ev = change => match ev? {
                    Some(ev) if ev.event_type() == EventType::Put => {
                        let threshold = envelope::live_threshold(SystemTime::now());
                        let live = match ev.kv() {
                            Some(kv) => self.live(key, kv.clone(), &threshold)?,
                            None => None,
                        };
                        return live.map(|r| r.version).ok_or_else(|| not_found(OP, key));
                    }
                    Some(_) => return Err(not_found(OP, key)),
                    None => {
                        rewatch.wait().await;
                    }
                },
            }
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn list_keys(&self, pattern: &str) -> Result<BoxStream<'static, Result<Key>>> {
        let pattern = GlobPattern::new(pattern)?;
        let start = self.conn.etcd_key_str(pattern.prefix());
        let end = prefix_end(&start);
        let threshold = envelope::live_threshold(SystemTime::now());
        let conn = self.conn.clone();
        let keys = listing::range(self.conn.clone(), "list_keys", start, end).filter_map(move |kv| {
            let item = kv.and_then(|kv| {
                let key = conn.store_key(kv.key())?;
                if !pattern.is_match(key.as_str()) || !envelope::is_live(kv.value(), &threshold) {
                    return Ok(None);
                }
                Ok(Some(key))
            });
            futures::future::ready(item.transpose())
        });
        Ok(keys.boxed())
    }
}
