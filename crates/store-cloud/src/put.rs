//! Single-request puts and what a conditional one learns when it fails: the write id that
//! tells a client's own re-sent write from another's, and the outcome of a lost reply.

use std::time::SystemTime;

use object_store::path::Path;
use object_store::{PutPayload, UpdateVersion};
use store_core::{Error, Key, Meta, PutMode, Result, Version, WriteResolver};

use crate::error::{BACKEND, map_err};
use crate::store::CloudStore;
use crate::version::{CloudVersion, new_write_id, write_attributes};

/// How often a `Create` that found the key, but then could not read its version because it
/// was deleted meanwhile, is tried again before giving up with `Contention`.
const CREATE_ATTEMPTS: u32 = 8;

impl CloudStore {
    /// Stores `payload` at `key` with `mode`: the single-request put behind `put` and behind
    /// writers that stayed below the multipart threshold or carry a condition.
    pub(crate) async fn put_payload(
        &self,
        key: &Key,
        path: &Path,
        payload: PutPayload,
        mode: PutMode,
    ) -> Result<Meta> {
        let size = payload.content_length() as u64;
        let write_id = self.new_write_id("put", key)?;
        let os_mode = match &mode {
            PutMode::Overwrite => object_store::PutMode::Overwrite,
            PutMode::Create => {
                self.require_conditional(key)?;
                object_store::PutMode::Create
            }
            PutMode::Update(expected) => {
                self.require_conditional(key)?;
                let want = self.check_expected(key, path, expected).await?;
                object_store::PutMode::Update(UpdateVersion {
                    e_tag: Some(want.etag),
                    version: (!want.object_version.is_empty()).then_some(want.object_version),
                })
            }
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let opts = object_store::PutOptions {
                mode: os_mode.clone(),
                attributes: write_attributes(&write_id),
                ..Default::default()
            };
            match self.store.put_opts(path, payload.clone(), opts).await {
                Ok(done) => {
                    return self
                        .written(
                            key,
                            path,
                            size,
                            done.e_tag.as_deref(),
                            done.version.as_deref(),
                            &write_id,
                        )
                        .await;
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    match self.head_version("put", key, path).await {
                        // Our own write: the client re-sent a create whose reply was lost,
                        // and the server refused the copy.
                        Ok((meta, found)) if is_own(&found, &write_id) => return Ok(meta),
                        Ok((meta, _)) => {
                            return Err(Error::AlreadyExists {
                                op: "put",
                                key: key.to_string(),
                                version: meta.version,
                            });
                        }
                        // Deleted between our attempt and the head: try to create again.
                        Err(e) if e.is_not_found() && attempts < CREATE_ATTEMPTS => continue,
                        Err(e) if e.is_not_found() => {
                            return Err(Error::Contention {
                                op: "put",
                                key: key.to_string(),
                                attempts,
                            });
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    return match (&mode, e) {
                        (
                            PutMode::Update(expected),
                            e @ (object_store::Error::Precondition { .. }
                            | object_store::Error::NotFound { .. }),
                        ) => self.update_failed(key, path, expected, &write_id, e).await,
                        (PutMode::Overwrite, e) => Err(map_err("put", key, e)),
                        (_, e) => Err(self.unsettled(key, path, &write_id, map_err("put", key, e))),
                    };
                }
            }
        }
    }

    /// Checks an `Update`'s expected version against the current one before sending the
    /// conditional put. The server's `If-Match` compares only the ETag, which repeats when
    /// the same bytes are written again; this check also compares the write id, so a stale
    /// version is refused even when the content looks the same.
    pub(crate) async fn check_expected(
        &self,
        key: &Key,
        path: &Path,
        expected: &Version,
    ) -> Result<CloudVersion> {
        let (meta, current) = self.head_version("put", key, path).await?;
        match CloudVersion::parse(expected) {
            Some(want) if meta.version == *expected => Ok(want),
            _ => Err(Error::Conflict {
                op: "put",
                key: key.to_string(),
                expected: Some(expected.clone()),
                actual: Some(current.to_version()),
            }),
        }
    }

    /// The answer to a conditional put the server refused: `NotFound` if the key is gone,
    /// otherwise `Conflict` carrying the version now there — unless the object there is
    /// this very write (`write_id`), which the client re-sent after its reply was lost: then
    /// the write succeeded, and it is not reported as a conflict against itself.
    pub(crate) async fn update_failed(
        &self,
        key: &Key,
        path: &Path,
        expected: &Version,
        write_id: &str,
        cause: object_store::Error,
    ) -> Result<Meta> {
        tracing::debug!(key = key.as_str(), %cause, "conditional put refused by the server");
        match self.head_version("put", key, path).await {
            Ok((meta, found)) if is_own(&found, write_id) => Ok(meta),
            Ok((meta, _)) => Err(Error::Conflict {
                op: "put",
                key: key.to_string(),
                expected: Some(expected.clone()),
                actual: Some(meta.version),
            }),
            Err(e) if e.is_not_found() => Err(Error::NotFound {
                op: "put",
                key: key.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The error of a conditional put that failed in a way that may have come after the
    /// server applied it (a reset connection, a timeout): a retryable error becomes an
    /// [`Error::outcome_unknown`] whose [`WriteResolver`] reads the object back (one HEAD)
    /// and reports the write if the object there carries its write id. Others stay as they
    /// are.
    fn unsettled(&self, key: &Key, path: &Path, write_id: &str, e: Error) -> Error {
        let Error::Backend {
            retryable: true,
            source,
            ..
        } = e
        else {
            return e;
        };
        if write_id.is_empty() {
            return Error::outcome_unknown(BACKEND, source, None);
        }
        let (this, key, path, write_id) = (self.clone(), key.clone(), path.clone(), write_id.to_owned());
        let resolver = WriteResolver::new(move || {
            let (this, key, path, write_id) = (this.clone(), key.clone(), path.clone(), write_id.clone());
            async move { this.own_write(&key, &path, &write_id).await }
        });
        Error::outcome_unknown(BACKEND, source, Some(resolver))
    }

    /// The metadata of the object at `path` if it is the write `write_id` (one HEAD);
    /// `None` if another object, or none, is there — that write may then never have landed,
    /// or landed and since been replaced: it cannot be told.
    async fn own_write(&self, key: &Key, path: &Path, write_id: &str) -> Result<Option<Meta>> {
        match self.head_version("put", key, path).await {
            Ok((meta, found)) if is_own(&found, write_id) => Ok(Some(meta)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A fresh write id, or the empty one when [`CloudSettings::write_ids`] is off.
    pub(crate) fn new_write_id(&self, op: &'static str, key: &Key) -> Result<String> {
        if self.settings.write_ids {
            new_write_id(op, key.as_str())
        } else {
            Ok(String::new())
        }
    }

    /// The metadata of a write that just succeeded.
    pub(crate) async fn written(
        &self,
        key: &Key,
        path: &Path,
        size: u64,
        etag: Option<&str>,
        object_version: Option<&str>,
        write_id: &str,
    ) -> Result<Meta> {
        let version = match etag {
            Some(_) => self.version_of(etag, object_version, Some(write_id)),
            None => {
                // A server that does not return ETags on PUT: read it back, and keep it only
                // if the object there is still ours (same write id).
                let (_, now) = self.head_version("put", key, path).await?;
                if is_own(&now, write_id) {
                    now
                } else {
                    // Someone wrote after us: an ETag-less version can never match, so a
                    // later Update from it fails safely with Conflict.
                    self.version_of(None, object_version, Some(write_id))
                }
            }
        };
        Ok(Meta {
            key: key.clone(),
            size,
            version: version.to_version(),
            modified: SystemTime::now(),
        })
    }
}

/// Whether the object whose version is `found` is the write `write_id` (never, without
/// write ids).
fn is_own(found: &CloudVersion, write_id: &str) -> bool {
    !write_id.is_empty() && found.write_id == write_id
}
