//! CloudStore: S3, GCS and Azure through the [`object_store`] crate, as a store
//! [`Backend`](store_core::Backend).
//!
//! Users who outgrow a local disk keep their objects in S3-compatible storage, Google Cloud
//! Storage or Azure Blob Storage. [`CloudStore`] adapts any `Arc<dyn ObjectStore>` to the
//! `Backend` trait, so every combinator of this workspace — fan-out, replicas, records,
//! consistent groups, commit sessions — runs on cloud storage unchanged.
//!
//! # Getting a store
//!
//! - [`CloudStore::connect`]`("s3://bucket/prefix", options)` builds the client from a URL
//!   and object_store's configuration keys, then [probes](CloudStore::probe) the bucket.
//! - [`S3Config`] is the typed way for S3 and S3-compatible servers (endpoint, region,
//!   credentials, plain HTTP for a local server).
//! - [`CloudStore::new`] wraps a client you built yourself (any `ObjectStore`, including
//!   object_store's `InMemory`, as below).
//!
//! Cargo features pick the clouds: `s3` (default), `gcs`, `azure`.
//!
//! # The other direction: any store as an `ObjectStore`
//!
//! [`ObjectStoreAdapter`] implements `object_store::ObjectStore` for any `Backend`, so
//! programs written for `object_store` (DataFusion, delta-rs, Polars, Lance, iceberg-rust)
//! run on `FsStore` — with compare-and-swap across processes, which `LocalFileSystem`
//! refuses —, on a `Multi`, a `Replica`, or a layered stack. Its docs say how each call
//! maps. It is checked with object_store's own integration suite (`tests/object_store_suite.rs`,
//! over `MemoryStore`, `FsStore`, a `Multi` of two `FsStore`s and a `Replica`):
//! `put_get_delete_list`, `get_opts`, `put_opts` (with `supports_update`),
//! `list_uses_directories_correctly`, `list_with_delimiter`, `list_with_offset_exclusivity`,
//! `rename_and_copy`, `copy_if_not_exists`, `copy_rename_nonexistent_object`,
//! `get_nonexistent_object` and `stream_get` run and pass. Not run:
//! `put_get_attributes` (backends keep no attributes; the adapter refuses them with
//! `NotImplemented`), the `multipart*` functions (they need `object_store::MultipartStore`,
//! parts by index and out of order, which the adapter does not offer: its multipart puts
//! stream through the backend's writer), and `list_paginated` (`PaginatedListStore`, not
//! offered). `CloudStore` over the adapter over `FsStore` (with
//! [`CloudSettings::write_ids`] off) passes this workspace's conformance suite.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::memory::InMemory;
//! use store_cloud::CloudStore;
//! use store_core::{Backend, BackendExt, Key, PutOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = CloudStore::new(Arc::new(InMemory::new())).with_prefix("app")?;
//! // Check once that the server enforces conditional puts; capabilities say so afterwards.
//! assert!(store.probe().await?.enforced());
//! assert!(store.capabilities().update);
//!
//! let key = Key::new("counters/visits")?;
//! let v1 = store.create(&key, "1").await?.version;
//! // Compare-and-swap: only from the version we read.
//! let v2 = store.put(&key, "2".into(), PutOptions::update(v1.clone())).await?.version;
//! assert!(store.put(&key, "3".into(), PutOptions::update(v1)).await.unwrap_err().is_conflict());
//! assert_eq!(store.get_bytes(&key).await?, "2");
//! assert_eq!(store.head(&key).await?.version, v2);
//! # Ok::<(), store_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # How the contract maps to an object store
//!
//! **Versions.** An S3 ETag is a hash of the content, so writing the same bytes twice gives
//! the same ETag: on its own it would repeat, and a compare-and-swap from an old version
//! could succeed against a newer object that merely looks the same (ABA). So every write
//! also stores a random 128-bit *write id* in the object's user metadata
//! (`x-amz-meta-store-write-id`), and a [`Version`](store_core::Version) is
//! `"<write id>~<object version id>~<etag>"`. Versions therefore never repeat for a key,
//! also across delete and re-create. User data is stored unmodified. For a store whose
//! ETags never repeat, [`CloudSettings::write_ids`] can be turned off: a version is then
//! the ETag alone (see *Listing and versions* below for when that is right).
//!
//! **Conditional puts.** `Create` is a PUT with `If-None-Match: *`; `Update(v)` first reads
//! the current version (HEAD) and fails with `Conflict` unless it is exactly `v`, write id
//! included, and then sends a PUT with `If-Match: <etag of v>`, which the server enforces
//! atomically. *Residual limitation:* between that HEAD and the PUT, another writer may
//! store **byte-identical content** (same ETag, new write id); the server's `If-Match`
//! cannot tell the two apart, so the update then succeeds and replaces that write. The
//! content it replaced was identical to what the updater had read, so no read-modify-write
//! result is computed from data it did not see, but the other write's version is
//! superseded without a `Conflict`. Closing this fully would need the server to compare
//! metadata (or a unique ETag), which S3 does not offer; storing user data modified to make
//! it unique is not an option.
//!
//! **Contention.** Servers differ in how they handle many conditional writes to one key at
//! once. SeaweedFS 4.48 serialises them: 16 concurrent creates of one key take seconds,
//! and of 64 concurrent compare-and-swaps some are answered only after the client's 30 s
//! request timeout (a retryable `Backend` error, not a `Conflict`). Keep the writers of one
//! key few, or spread hot data over several keys.
//!
//! **Servers that ignore conditions.** Some S3-compatible servers accept `If-None-Match`
//! and `If-Match` and then ignore them. [`CloudStore::probe`] finds out with a few requests
//! on a reserved object: until it ran, [`capabilities`](store_core::Backend::capabilities)
//! report `create: false, update: false`; after it, they say what the server enforces, and
//! on a server that ignores conditions every `Create`/`Update` is refused with `Unsupported`
//! rather than silently turned into an overwrite.
//!
//! **Range reads** are one GET: its reply carries the object's size, ETag and write id
//! with the bytes, so a range and its version always belong to one object. A range that
//! starts at the end of the object or past it (which servers refuse) is settled by a HEAD.
//!
//! **Streaming writes.** A writer buffers up to [`CloudSettings::multipart_threshold`]
//! (8 MiB) and then, for an `Overwrite`, switches to a multipart upload whose parts upload
//! while you write; `close` completes it (the object appears atomically), `abort` or drop
//! aborts it. Completing a multipart upload cannot be made conditional through
//! object_store, so a `Create`/`Update` writer buffers the whole object and sends one
//! conditional PUT at `close`, up to [`CloudSettings::conditional_buffer_limit`] (256 MiB);
//! a larger conditional write fails with `InvalidInput` rather than lose its condition.
//!
//! **Servers that keep objects in a directory tree** (SeaweedFS) need
//! [`Layout::Nested`]: there a key with other keys nested under it (`a` beside `a/b`) is
//! also a directory, such a server refuses `If-None-Match: *` on a directory name (so a
//! `Create` of `a` would fail while `a/b` exists) and lists depth-first rather than in key
//! order. The nested layout stores key `k` as the object `k/.store-object`, so no object
//! name is ever a directory, and sorts listings itself. The default [`Layout::Flat`]
//! stores `k` as `k`, for S3, GCS, Azure, MinIO and other flat key spaces.
//!
//! **Listing** runs under the deepest whole segment of the prefix with `start_after` pushed
//! down to the server (`list_with_offset`; in the nested layout it is collected, sorted and
//! filtered here instead) and filters the rest: one LIST request per page of 1,000 keys.
//!
//! # Listing and versions
//!
//! A listing as object_store requests it (S3's ListObjectsV2, the same XML listing on GCS,
//! List Blobs on Azure) carries each object's key, size, modification time and ETag — not
//! its user metadata, and not its object version id or generation. What a listed [`Meta`](store_core::Meta)'s version costs follows:
//!
//! | settings | listed version | requests per listed object |
//! |---|---|---|
//! | write ids on (default), [`ListOptions::keys_only`](store_core::ListOptions::keys_only) | [`Version::empty`](store_core::Version::empty) (matches nothing) | none |
//! | write ids off | the ETag: equal to what `head`, `get` and puts report | none |
//! | write ids on, versions wanted | the full version, from a HEAD per object ([`CloudSettings::list_concurrency`] at a time, order kept) | one HEAD |
//!
//! Callers that need keys and sizes only say so with `keys_only`; `BackendExt::list_keys`
//! and `store-record`'s listings do, and list at the cost of the pages alone.
//!
//! No scheme gives never-repeating versions visible in an S3 listing through object_store
//! without a request per object: the ETag is a content hash (it repeats when bytes are
//! written again), the modification time has one-second resolution (A, B, A within one
//! second repeats it), the write id lives in user metadata that listings omit, the S3
//! version id of a versioned bucket is missing from ListObjectsV2 (object_store does not
//! offer ListObjectVersions), and carrying the write id in the object's name would make
//! each write two objects, with no atomic replace and no conditional put on one name.
//! Making the content unique would change user data. Per provider:
//!
//! - **Amazon S3, MinIO, R2 and other S3-compatible servers**: ETags are MD5-based and
//!   repeat, so keep write ids on; a listing that wants versions costs a HEAD per object,
//!   one with `keys_only` does not.
//! - **SeaweedFS**: as S3 (MD5 ETags), with [`Layout::Nested`]; its listing is collected and
//!   sorted here before the first key is handed on.
//! - **Google Cloud Storage**: object_store uses its XML API, whose ETag is the content's
//!   MD5 (it repeats) and whose listing carries no generation, while a conditional put needs
//!   the generation (`x-goog-if-generation-match`, read by HEAD or GET). Keep write ids on:
//!   listing with versions costs a HEAD per object, with `keys_only` nothing.
//! - **Azure Blob Storage**: the ETag changes with every write (it is not a content hash) and
//!   is in the listing, and a conditional put is `If-Match` on it. Turning write ids off
//!   makes every listed version the full version at no request per object. The price: a
//!   conditional put whose reply was lost can no longer be recognised as ours (its error
//!   says the outcome is unknown, with no resolver), and blob version ids are left out of
//!   versions.
//! - **`ObjectStoreAdapter`** over one of our backends: its ETag is that backend's version,
//!   which never repeats, so write ids off is right, as for Azure.
//!
//! **Watch** polls HEAD with exponential backoff ([`CloudSettings::watch_backoff`], 5 ms
//! doubling to 1 s by default): a change is noticed within about one second at worst, at
//! the cost of one request per poll.
//!
//! **Deletes** are a HEAD (S3 deletes of absent objects succeed, but the contract wants
//! `NotFound`, and `if_match` needs the version) followed by the DELETE. object_store's
//! delete takes no condition on any provider, so `if_match` is checked, not enforced by the
//! server: `capabilities().conditional_delete` is `false`. The guarantee is weaker than the
//! contract's: a delete's `NotFound` and `Conflict` are exact, and after a successful
//! delete the key is absent, but the DELETE removes whatever object is there when it runs.
//! Another client's write between the HEAD and the DELETE — a put of any mode, even an
//! `Update` from the very version `if_match` names — is deleted without anyone being told,
//! and of two racing deletes (conditional or not) both may report success. A conditional
//! delete is a check followed by a delete, not a compare-and-delete (see
//! [`CloudStore`]'s `delete`).
//!
//! Keys under the first segment `.store-cloud` are reserved (the probe's object) and
//! refused with `InvalidKey`.

mod adapter;
mod connect;
mod error;
mod listing;
mod probe;
mod put;
mod settings;
mod store;
mod version;
mod writer;

pub use adapter::ObjectStoreAdapter;
#[cfg(feature = "s3")]
pub use connect::S3Config;
pub use probe::ConditionalWrites;
pub use settings::{CloudSettings, Layout};
pub use store::CloudStore;

/// The object_store crate this store is built on, re-exported so callers can build clients
/// of the same version.
pub use object_store;
