//! Records and objects on a real etcd cluster.
//!
//! When a program outgrows one machine, its records must live on a distributed engine.
//! etcd is the standard one for exactly the semantics `store` promises: a cluster-wide
//! revision counter (versions that never repeat), multi-key transactions (create and
//! compare-and-swap), leases (expiry) and watches (wake on change). This crate maps the
//! `store-core` traits onto those primitives directly:
//!
//! - [`EtcdRecords`] implements [`RecordStore`](store_core::RecordStore): versions are
//!   `mod_revision`s, `create` and `cas_by_version` are etcd transactions, expiry is a lease
//!   (plus an exact expiry in the value, so records vanish on the millisecond),
//!   `wait_for_version_change` is an etcd watch and `list_keys` reads the range of the
//!   glob's literal prefix.
//! - [`EtcdStore`] implements [`Backend`](store_core::Backend) for *small* objects (etcd
//!   refuses requests over `--max-request-bytes`, 1.5 MiB by default; the store refuses
//!   objects over [`EtcdOptions::with_max_object_size`] with a clear error first), with
//!   native watch.
//!
//! # Connecting
//!
//! [`EtcdOptions`] says where the cluster is, how long to wait, and which key prefix is
//! yours, so several programs can share one cluster. The connection is shared by clones
//! and reconnects by itself. Every request goes through etcd-client's balancer, which
//! picks one of the endpoints at random for each request; an endpoint whose member is
//! down stays in its pool, and a request sent its way fails at once, before it leaves
//! this process, with a connect error. So a request is retried, within the request
//! timeout, like this:
//!
//! - A request that **never left** (connecting to the member failed: refused,
//!   unreachable, connect timeout) is sent again at once, and so goes to another member
//!   the balancer picks; it is sent again at once up to once per other endpoint, then
//!   after growing pauses ([`store_core::Backoff`], 20 ms doubling up to 500 ms, full
//!   jitter). This holds for every request, conditional writes included: a request no
//!   member received cannot have been applied. A cluster that keeps a quorum keeps taking
//!   writes while a member is down; each request the balancer sends to the dead member
//!   costs one more try (no extra round trip to etcd).
//! - A **read** (and a lease grant, which is harmless to repeat) is retried after any
//!   retryable failure: a lost connection, an election, an overloaded member.
//! - A **write that was sent** and then failed retryably (the connection broke, the
//!   leader changed, the member lost its leader) is not sent again, conditional or not:
//!   nobody can tell whether it was applied. Its error
//!   [`is_retryable()`](store_core::Error::is_retryable) and
//!   [`is_outcome_unknown()`](store_core::Error::is_outcome_unknown) (and its [`EtcdError`]
//!   says [`outcome_unknown()`](EtcdError::outcome_unknown)), so the caller, who can
//!   re-read, decides. A write that never left, even after the retries at once, fails with
//!   [`is_not_applied()`](store_core::Error::is_not_applied): a retry layer may send it
//!   again. (This is etcd's own client policy for mutations; re-sending even an
//!   unconditional put could let it land a second time after a later write by someone
//!   else.) A write that runs out of request timeout fails like a write that was sent:
//!   outcome unknown, with the `Error::Timeout` as its cause. A read that runs out of it
//!   fails with `Error::Timeout`.
//!
//! ```
//! use store_core::{Key, Record, RecordStore};
//! use store_etcd::{EtcdOptions, EtcdRecords};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> store_core::Result<()> {
//! # let Some(endpoints) = std::env::var("STORE_ETCD_ENDPOINTS").ok() else {
//! #     assert!(std::env::var("STORE_SKIP_ETCD").is_ok_and(|v| v == "1"),
//! #         "set STORE_ETCD_ENDPOINTS (bash scripts/etcd.sh start && eval \"$(bash scripts/etcd.sh env)\") or STORE_SKIP_ETCD=1");
//! #     eprintln!("skipping: STORE_ETCD_ENDPOINTS is not set");
//! #     return Ok(());
//! # };
//! # let prefix = format!("doctest/{}/", std::process::id());
//! let records = EtcdRecords::connect(EtcdOptions::from_list(&endpoints).with_key_prefix(prefix)).await?;
//!
//! let key = Key::new("config/feature-x")?;
//! let v1 = records.create(&Record::new(key.clone(), "off")).await?;
//!
//! // Compare-and-swap: only from the version we read.
//! let on = records.cas_by_version(&Record::new(key.clone(), "on").with_version(v1.clone())).await?;
//! let lost = records.cas_by_version(&Record::new(key.clone(), "lost").with_version(v1)).await;
//! assert!(lost.unwrap_err().is_conflict());
//!
//! // Wait for somebody to change it (here: ourselves, at once).
//! let waiter = {
//!     let (records, key, seen) = (records.clone(), key.clone(), on.clone());
//!     tokio::spawn(async move { records.wait_for_version_change(&key, &seen).await })
//! };
//! let newer = records.put(&Record::new(key.clone(), "auto")).await?;
//! let woken = waiter.await.expect("waiter panicked")?;
//! assert!(woken == newer || records.get(&key).await?.version == woken);
//! # records.delete(&key).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Expiry granularity
//!
//! A record's `expires_at` is stored to the millisecond (truncated: the store may treat a
//! record as expired up to a millisecond before the caller's own copy says, and a record
//! read back carries the truncated time) and honoured exactly by every
//! operation (reads compare it with the client's clock; transactions compare it inside
//! etcd). The physical deletion is etcd's lease, in whole seconds and never early: a record
//! stays on disk up to about two seconds past its expiry (etcd's minimum lease TTL and the
//! leader's lease checks), invisible to every operation meanwhile.
//!
//! # Testing against etcd
//!
//! `scripts/etcd.sh start` (from the repository root) installs etcd from Debian packages if
//! needed and starts a single node and a three-node cluster on loopback ports;
//! `eval "$(scripts/etcd.sh env)"` exports `STORE_ETCD_ENDPOINTS` and
//! `STORE_ETCD_CLUSTER_ENDPOINTS` for the tests. Without them the tests fail with that
//! advice, unless `STORE_SKIP_ETCD=1` is set, when they skip.

mod connection;
mod envelope;
mod error;
mod listing;
mod options;
mod records;
mod store;
mod watch;

pub use error::EtcdError;
/// The etcd client this crate uses, for [`EtcdStore::from_client`] and
/// [`EtcdRecords::from_client`].
pub use etcd_client;
pub use options::{DEFAULT_MAX_OBJECT_SIZE, ETCD_DEFAULT_MAX_REQUEST_BYTES, EtcdOptions};
pub use records::EtcdRecords;
pub use store::EtcdStore;
