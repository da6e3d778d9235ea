//! Records and small objects on a real Redis server.
//!
//! Redis is where most programs keep leases, sessions, feature flags and other small
//! records with a time to live, and where a team that outgrows one process looks first.
//! This crate points the `store-core` traits at the Redis you already run:
//!
//! - [`RedisRecords`] implements [`RecordStore`](store_core::RecordStore): versions from a
//!   counter per key prefix (`INCR`), `create` / `cas_by_version` / `put` / `delete` as Lua
//!   scripts (atomic, one round trip each), expiry as `PXAT` plus the exact expiry in the
//!   stored value (records vanish on the millisecond), `wait_for_version_change` woken by
//!   a notification the scripts publish, and `list_keys` with `SCAN MATCH` on the glob's
//!   literal prefix.
//! - [`RedisStore`] implements [`Backend`](store_core::Backend) for *small* objects
//!   (refusing those over [`RedisOptions::with_max_object_size`] with a clear error), with
//!   native watch and the same scripts.
//!
//! # Connecting
//!
//! [`RedisOptions`] says where the server is (a `redis://` URL, with the password and the
//! database number in it; `rediss://` for TLS), how long to wait, and which key prefix is
//! yours, so several programs can share one server. The connection is the `redis` crate's
//! connection manager: shared by clones, it reconnects by itself after it is lost. A
//! request is retried, within the request timeout, like this:
//!
//! - A **read** is sent again after any retryable failure: a lost or refused connection,
//!   a timeout, a server that is loading its data after a restart.
//! - A **write** is sent again only when it provably was not run: connecting was refused,
//!   or the server answered `LOADING`, `BUSY`, `READONLY`, `MASTERDOWN` or `TRYAGAIN`
//!   (such errors, when they reach the caller, are
//!   [`is_not_applied()`](store_core::Error::is_not_applied)). A write that was sent and
//!   got no answer (the connection broke, the reply timed out) is not sent again,
//!   conditional or not: it may have been applied. Its error
//!   [`is_outcome_unknown()`](store_core::Error::is_outcome_unknown) and
//!   [`is_retryable()`](store_core::Error::is_retryable), so the caller, who can re-read,
//!   decides.
//!
//! ```
//! use store_core::{Key, Record, RecordStore};
//! use store_redis::{RedisOptions, RedisRecords};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> store_core::Result<()> {
//! # let Some(url) = std::env::var("STORE_REDIS_URL").ok() else {
//! #     assert!(std::env::var("STORE_SKIP_REDIS").is_ok_and(|v| v == "1"),
//! #         "set STORE_REDIS_URL (bash scripts/redis.sh start && eval \"$(bash scripts/redis.sh env)\") or STORE_SKIP_REDIS=1");
//! #     eprintln!("skipping: STORE_REDIS_URL is not set");
//! #     return Ok(());
//! # };
//! # let prefix = format!("doctest/{}/{:?}/", std::process::id(), std::time::SystemTime::now());
//! let records = RedisRecords::connect(RedisOptions::new(url).with_key_prefix(prefix)).await?;
//!
//! let key = Key::new("config/feature-x")?;
//! let v1 = records.create(&Record::new(key.clone(), "off")).await?;
//!
//! // Compare-and-swap: only from the version we read.
//! let on = records.cas_by_version(&Record::new(key.clone(), "on").with_version(v1.clone())).await?;
//! let lost = records.cas_by_version(&Record::new(key.clone(), "lost").with_version(v1)).await;
//! assert!(lost.unwrap_err().is_conflict());
//!
//! // Wait for somebody to change it (here: ourselves).
//! let waiter = {
//!     let (records, key, seen) = (records.clone(), key.clone(), on.clone());
//!     tokio::spawn(async move { records.wait_for_version_change(&key, &seen).await })
//! };
//! let newer = records.put(&Record::new(key.clone(), "auto")).await?;
//! assert_eq!(waiter.await.expect("waiter panicked")?, newer);
//! # records.delete(&key).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Clocks and expiry
//!
//! A record's `expires_at` is stored to the millisecond (truncated: a record read back
//! carries the truncated time). Whether a record has expired is decided by the *client's*
//! clock, by every read and every script (the scripts are handed the client's "now"), so
//! a record is absent for every operation from the millisecond it expires. Redis deletes
//! it at that millisecond by its own clock (`PXAT`); with the server's clock ahead of the
//! client's, that is early by the difference. Keep the clocks in step (NTP), as for any
//! lease.
//!
//! # Testing against Redis
//!
//! `scripts/redis.sh start` (from the repository root) installs Redis from Debian packages
//! if needed and starts a server on 127.0.0.1:26390 that fsyncs every write;
//! `eval "$(scripts/redis.sh env)"` exports `STORE_REDIS_URL` for the tests. Without it
//! the tests fail with that advice, unless `STORE_SKIP_REDIS=1` is set, when they skip.

mod changes;
mod connection;
mod envelope;
mod error;
mod listing;
mod options;
mod records;
mod store;

pub use error::RedisError;
pub use options::{DEFAULT_MAX_OBJECT_SIZE, RedisOptions};
pub use records::RedisRecords;
/// The Redis client this crate uses (its errors are in [`RedisError::client_error`]).
pub use redis;
pub use store::RedisStore;
