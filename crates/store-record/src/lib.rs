//! Records: a [`RecordStore`] with TTL, compare-and-swap, watch and glob listing over any
//! [`Backend`].
//!
//! A *record* is a small versioned value with an optional expiry: a lease, a leader marker,
//! a configuration entry, a session. [`Records<B>`] stores each record as one object of any
//! backend — memory, a local directory, a fan-out, a replica — so it gets that backend's
//! durability and sharing, and adds what records need on top:
//!
//! - **versions** for optimistic concurrency: `cas_by_version` writes only if nobody wrote
//!   since you read;
//! - **expiry**: a record past its `expires_at` is absent for *every* operation;
//! - **watch**: `wait_for_version_change` sleeps until a record changes, is deleted or
//!   expires;
//! - **glob listing**: `list_keys("logs/2026-*")`.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use futures::TryStreamExt;
//! use store_core::{Error, Key, Record, RecordStore};
//! use store_memory::MemoryStore;
//! use store_record::Records;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let records = Records::new(MemoryStore::new());
//! let key = Key::new("config/feature-x")?;
//!
//! // create refuses to overwrite, and says which version is there.
//! let v1 = records.create(&Record::new(key.clone(), "on")).await?;
//! match records.create(&Record::new(key.clone(), "off")).await {
//!     Err(Error::AlreadyExists { version, .. }) => assert_eq!(version, v1),
//!     other => panic!("{other:?}"),
//! }
//!
//! // Compare-and-swap: only from the version you read. Writes borrow the record and
//! // return the new version; a swap that fails leaves the record with you as it was.
//! let mut current = records.get(&key).await?;
//! current.value = "off".into();
//! let v2 = records.cas_by_version(&current).await?;
//! assert!(records.cas_by_version(&current).await.unwrap_err().is_conflict());
//!
//! // A record that has expired is gone for every operation.
//! let lease = Key::new("leases/worker-1")?;
//! let past = SystemTime::now() - Duration::from_secs(1);
//! records.put(&Record::new(lease.clone(), "held").with_expiry(past)).await?;
//! assert!(records.get(&lease).await.unwrap_err().is_not_found());
//!
//! // Glob listing; the literal prefix "config/" is pushed down to the backend's list.
//! let keys: Vec<Key> = records.list_keys("config/*").await?.try_collect().await?;
//! assert_eq!(keys, [key.clone()]);
//!
//! // The version already differs from v1, so this returns at once.
//! assert_eq!(records.wait_for_version_change(&key, &v1).await?, v2);
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```
//!
//! # Watching a record
//!
//! `wait_for_version_change(key, version)` returns the new version as soon as the stored
//! one differs from `version` — at once if it already does. It fails with `NotFound` if the
//! key is absent, or is deleted or expires while waiting. It uses the backend's
//! [`watch`](Backend::watch), so a backend with native change notification (such as
//! `MemoryStore`) wakes every waiter the moment a change lands, with no polling; while the
//! watched record has an expiry, the waiter also wakes at that instant (a tokio timer, so
//! the runtime needs its time driver enabled). Cancel a wait by dropping its future (e.g.
//! with `tokio::time::timeout`); nothing is left behind.
//!
//! ```
//! # use store_core::{Key, Record, RecordStore};
//! # use store_memory::MemoryStore;
//! # use store_record::Records;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let records = Records::new(MemoryStore::new());
//! let key = Key::new("leader")?;
//! let v1 = records.put(&Record::new(key.clone(), "node-a")).await?;
//!
//! let waiter = tokio::spawn({
//!     let (records, key, v1) = (records.clone(), key.clone(), v1.clone());
//!     async move { records.wait_for_version_change(&key, &v1).await }
//! });
//! let v2 = records.put(&Record::new(key.clone(), "node-b")).await?;
//! assert_eq!(waiter.await.unwrap()?, v2);
//! # Ok::<(), store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Expiry
//!
//! Expiry is decided by a [`Clock`] — the system clock, read whenever an expiry is checked,
//! unless [`RecordsBuilder::clock`] sets another, such as a [`ManualClock`] in tests. An expired record stays in the backend until
//! something removes it: any operation that meets it deletes it, [`Records::purge_expired`]
//! sweeps the whole store, and [`Records::spawn_reaper`] does that periodically. Purging uses
//! `delete_if(version)`, so a record renewed in the meantime is never removed, and `create`
//! over an expired record replaces it with `PutMode::Update(expired version)` rather than
//! delete-then-create, so a racing renewal cannot be clobbered either.
//!
//! # Glob patterns
//!
//! `list_keys` matches whole keys against a glob (compiled by the `globset` crate): `?` one
//! character; `*` any run of characters, **including `/`**; `**` the same; `[abc]`, `[a-z]`,
//! `[!x]` classes; `{a,b}` alternatives; `\` escapes the next character. An invalid pattern
//! is `InvalidPattern` naming it. The pattern's literal prefix (everything before the first
//! metacharacter) becomes the backend listing's prefix, so `logs/2026-*` reads only the keys
//! under `logs/2026-`. Keys come in ascending order; expired records are left out.
//!
//! A listing costs **one backend listing** of keys and sizes
//! ([`ListOptions::keys_only`](store_core::ListOptions::keys_only), so a backend that would
//! need a request per object to report versions skips it). A record's size tells whether
//! it carries an expiry (see *Stored format*): a record without one is listed as it is,
//! with no read. Only records with an expiry have their envelope header read — a ranged
//! `get` of its first 12 bytes, not the value — several at once, in key order. A store whose
//! records never expire lists at its backend's listing cost; where a tenth of the records
//! carry an expiry, the listing also reads that tenth's headers.
//!
//! What is not read is not checked: an object that is not a record, but whose size is
//! even, is listed like a record without expiry (and `get` reports it `Corrupt`). Every
//! object that is read and cannot be decoded is **one error item**, `Corrupt` naming its
//! key and `list_keys`, and the listing goes on with the keys after it (so does a key
//! whose header cannot be read). A caller that collects with `try_collect` stops at the
//! first such item; one that wants every readable key skips the errors:
//!
//! ```
//! # use futures::StreamExt;
//! # use store_core::{BackendExt, Key, Record, RecordStore};
//! # use store_memory::MemoryStore;
//! # use store_record::Records;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let records = Records::new(MemoryStore::new());
//! records.put(&Record::new(Key::new("a")?, "1")).await?;
//! // 13 bytes: an odd size, which a record has only with an expiry, so it is read.
//! records.backend().put_bytes(&Key::new("b")?, "not a record!").await?;
//! records.put(&Record::new(Key::new("c")?, "3")).await?;
//! let listed: Vec<_> = records.list_keys("*").await?.collect().await;
//! assert_eq!(listed[0].as_ref().unwrap().as_str(), "a");
//! assert!(listed[1].as_ref().unwrap_err().to_string().contains("list_keys"));
//! assert_eq!(listed[2].as_ref().unwrap().as_str(), "c");
//! # Ok::<(), store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Stored format
//!
//! Each object holds a binary envelope: a magic byte, a format version, flags, the expiry
//! (8 bytes, nanoseconds since the Unix epoch) if there is one, a padding byte if needed,
//! then the value. The padding makes **the size tell the expiry**: a record with an
//! expiry has an odd size, one without an even size, so listings can leave the latter
//! unread. The record is one object written whole by one put, so its size and its expiry
//! never disagree, whatever crashes or races. An object that is not such an envelope —
//! foreign data, an unknown format version, a truncated header — is reported as `Corrupt`
//! naming the key, never a panic.
//!
//! This is format 2. Format 1, which had no padding, is still read; but its sizes say
//! nothing, so a listing could take a format-1 record with an expiry and an even size for
//! one without (it stays absent for every other operation once expired). Any write of the
//! record (`put`, `cas_by_version`) stores it in format 2.
//!
//! # Differences from the Go `Storage` this ports
//!
//! - `get_many` returns one `Option<Record>` per requested key, aligned with the input,
//!   instead of silently skipping missing keys.
//! - `create` fails with `AlreadyExists` carrying the existing *version* (read it with `get`
//!   if you need the value); `put_many` returns the new versions.
//! - Globs follow `globset` rather than `gobwas/glob`: `*` crosses `/` (as with `gobwas`
//!   without separators) and a pattern must match the whole key.
//! - Expired records are absent for every operation, including `create` (which succeeds
//!   over them), `delete` (`NotFound`) and waiting (`NotFound` at the expiry instant).
//! - `cas_by_version` is linearised at its expiry check: a record that expires in the
//!   microseconds between that check and the conditional write is still replaced.
//!
//! # Cost in round trips
//!
//! `put` is one put; `get` one `get`; `create` into an absent key one conditional put;
//! `delete` one `get` and one conditional delete. `cas_by_version` needs the expiry of the
//! version it replaces. **A cas on a remembered version is one conditional put and no
//! read**: a handle remembers the expiry of each version it wrote with `create` or
//! `cas_by_version` (the latest version of up to 1,024 keys), so a chain of swaps through
//! one handle never reads. A version cannot come back with another expiry, because versions
//! never repeat for a key — on backends whose `Capabilities::stable_versions` says a
//! version names one content; on others (a `Multi`) the handle remembers nothing. Any other
//! swap first reads the envelope header (a ranged `get` of 12 bytes) and then puts
//! conditionally.

mod clock;
mod envelope;
mod expiries;
mod listing;
mod read;
mod reaper;
mod records;

pub use clock::{Clock, ManualClock, SystemClock};
pub use reaper::Reaper;
pub use records::{Records, RecordsBuilder};

#[doc(no_inline)]
pub use store_core::{Backend, Record, RecordStore};
