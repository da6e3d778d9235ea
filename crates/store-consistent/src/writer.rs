//! `Writer`: a conditional update of one name, committed by a manifest switch.

use std::sync::Arc;

use bytes::Bytes;
use store_core::{ObjectWriter, PutOptions, Result};

use crate::group::Group;
use crate::manifest::{Entry, Snapshot, new_id};
use crate::switch::settle;

/// A pending update of one name of a [`Group`], from
/// [`Group::writer`](crate::Group::writer).
///
/// Chunks go to a new object version that nothing refers to yet; [`Writer::close`] then
/// switches the group's manifest to it if — and only if — the name still has the key the
/// writer was opened with. Dropping the writer (or [`Writer::abort`]) discards everything.
#[derive(Debug)]
pub struct Writer {
    group: Group,
    name: String,
    expected: Option<String>,
    id: Arc<str>,
    inner: Box<dyn ObjectWriter>,
    hint: Option<Snapshot>,
}

impl Writer {
    pub(crate) async fn open(group: Group, name: &str, key: &str, hint: Option<Snapshot>) -> Result<Writer> {
        let id = new_id();
        let inner = group
            .shared
            .backend
            .writer(&group.object_key(&id)?, PutOptions::create())
            .await?;
        Ok(Writer {
            name: name.to_owned(),
            expected: (!key.is_empty()).then(|| key.to_owned()),
            id,
            inner,
            hint,
            group,
        })
    }

    /// The name being written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends a chunk.
    ///
    /// # Errors
    /// The backend's writer errors.
    pub async fn write(&mut self, chunk: impl Into<Bytes>) -> Result<()> {
        self.inner.write(chunk.into()).await
    }

    /// Commits: the name now holds what was written, and the new key is returned.
    ///
    /// A concurrent update of *another* name of the group is retried internally (bounded
    /// by the group's [`RetryPolicy`](crate::RetryPolicy), then [`Error::Contention`](store_core::Error::Contention)).
    /// The replaced version is deleted, off the caller's path. Costs the backend's commit
    /// of the written object and one conditional put of the manifest (plus a read of it if
    /// the writer was opened by [`Group::writer`](crate::Group::writer), and again after a
    /// lost race).
    ///
    /// # Errors
    /// [`Error::Conflict`](store_core::Error::Conflict) if the name no longer has the key this writer was opened with
    /// (nothing is changed and the written data is deleted); backend errors — an object
    /// commit or manifest put whose reply was lost is first settled by the backend's
    /// [`WriteResolver`](store_core::WriteResolver), if it offers one, and that resolver is
    /// never passed on (see the [crate documentation](crate#how-it-works)).
    pub async fn close(self) -> Result<String> {
        let Writer {
            group,
            name,
            expected,
            id,
            inner,
            hint,
        } = self;
        if let Err(e) = inner.close().await {
            settle(e).await?;
        }
        let expect = [(name.as_str(), expected.as_deref())];
        let entry = Entry {
            id: Arc::clone(&id),
            inline: None,
        };
        match group
            .switch("close", &expect, &[(&name, Some(entry))], hint)
            .await
        {
            Ok(()) => Ok(id.to_string()),
            Err(e) => {
                group.abandon(std::slice::from_ref(&id), &e).await;
                Err(e)
            }
        }
    }

    /// Discards the write.
    ///
    /// # Errors
    /// The backend's abort errors.
    pub async fn abort(self) -> Result<()> {
        self.inner.abort().await
    }
}
