//! Checking once whether a server really enforces conditional puts.

use std::sync::atomic::Ordering;

use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use store_core::{Key, Result};

use crate::error::{BACKEND, map_err};
use crate::store::{CloudStore, ENFORCED, IGNORED, RESERVED_SEGMENT};
use crate::version::new_write_id;

/// What [`CloudStore::probe`] found out about a server's conditional puts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionalWrites {
    /// A second `If-None-Match: *` put of an existing object was refused.
    pub create: bool,
    /// An `If-Match` put with a wrong ETag was refused, and one with the right ETag accepted.
    pub update: bool,
}

impl ConditionalWrites {
    /// True if both kinds of condition are enforced: `Create` and `Update` are safe.
    pub fn enforced(&self) -> bool {
        self.create && self.update
    }
}

impl CloudStore {
    /// Probes the bucket once: writes a small object under the reserved prefix
    /// `.store-cloud/`, checks that the server refuses a second create and an update from a
    /// wrong ETag (and accepts one from the right ETag), then deletes the object.
    ///
    /// The answer is remembered by this store and its clones: if conditions are enforced,
    /// [`capabilities`](store_core::Backend::capabilities) reports `create` and `update`;
    /// if not, they stay `false` and every `Create` / `Update` put is refused with
    /// [`Error::Unsupported`](store_core::Error::Unsupported) instead of silently overwriting.
    ///
    /// # Errors
    /// A request that fails for another reason (no permission, no network) is returned as
    /// is, and the store stays unprobed.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn probe(&self) -> Result<ConditionalWrites> {
        let id = Key::new(format!(
            "{RESERVED_SEGMENT}/probe-{}",
            new_write_id("probe", "store-cloud probe")?
        ))?;
        let path = self.raw_path(id.as_str())?;
        let store = &self.store;
        let put = |mode: PutMode, body: &'static str| {
            let path = path.clone();
            async move {
                store
                    .put_opts(
                        &path,
                        PutPayload::from_static(body.as_bytes()),
                        PutOptions::from(mode),
                    )
                    .await
            }
        };
        let outcome = async {
            let first = put(PutMode::Create, "probe 1")
                .await
                .map_err(|e| map_err("probe", &id, e))?;
            let create = match put(PutMode::Create, "probe 2").await {
                Err(object_store::Error::AlreadyExists { .. }) => true,
                Ok(_) => false,
                Err(e) => return Err(map_err("probe", &id, e)),
            };
            let current = store.head(&path).await.map_err(|e| map_err("probe", &id, e))?;
            let wrong = UpdateVersion {
                e_tag: Some("\"store-cloud-probe-no-such-etag\"".to_owned()),
                version: None,
            };
            let refuses_wrong = match put(PutMode::Update(wrong), "probe 3").await {
                Err(object_store::Error::Precondition { .. }) => true,
                Ok(_) => false,
                Err(e) => return Err(map_err("probe", &id, e)),
            };
            let current = if refuses_wrong {
                current
            } else {
                store.head(&path).await.map_err(|e| map_err("probe", &id, e))?
            };
            let right = UpdateVersion {
                e_tag: current.e_tag.clone().or(first.e_tag),
                version: current.version.clone(),
            };
            let accepts_right = match put(PutMode::Update(right), "probe 4").await {
                Ok(_) => true,
                Err(object_store::Error::Precondition { .. }) => false,
                Err(e) => return Err(map_err("probe", &id, e)),
            };
            Ok(ConditionalWrites {
                create,
                update: refuses_wrong && accepts_right,
            })
        }
        .await;
        // Clean up whatever happened above.
        let cleanup = store.delete(&path).await;
        let found = outcome?;
        if let Err(e) = cleanup.or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(e),
        }) {
            return Err(map_err("probe", &id, e));
        }
        self.conditional.store(
            if found.enforced() { ENFORCED } else { IGNORED },
            Ordering::Release,
        );
        if !found.enforced() {
            tracing::warn!(
                store = %self.store,
                ?found,
                "{BACKEND}: the server ignores conditional puts; Create and Update will be refused"
            );
        }
        Ok(found)
    }
}
