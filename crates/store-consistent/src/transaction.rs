//! Transactions: several names read at one manifest version and written with one switch.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use store_core::{Error, GetOptions, Result, Version};

use crate::group::Group;
use crate::manifest::{Entry, Snapshot};
use crate::retry::conflicted;

/// Reads and writes of several names of a [`Group`], applied atomically by
/// [`Transaction::commit`], from [`Group::begin`] (or inside [`Group::transaction`]).
///
/// All reads see the group as it was when the transaction began (one manifest version,
/// read by [`Group::begin`]). Writes are buffered. Commit stores the written contents that
/// are too large for the manifest as new object versions (one put each), then switches the
/// manifest with one conditional put — if every name the transaction read or wrote still
/// has the version it had at the start. Otherwise commit fails with [`Error::Conflict`]
/// and nothing changes. Dropping a transaction discards it.
#[derive(Debug)]
pub struct Transaction {
    group: Group,
    snapshot: Snapshot,
    /// Names read or written, with the id they had in the snapshot.
    touched: BTreeMap<String, Option<Arc<str>>>,
    /// Pending writes (`None`: delete).
    writes: BTreeMap<String, Option<Bytes>>,
}

impl Transaction {
    /// The content of `name` as of the start of the transaction, or as written by it
    /// earlier; `None` if it does not exist.
    ///
    /// # Errors
    /// [`Error::Conflict`] if the object was replaced since the transaction began (it can
    /// no longer commit; [`Group::transaction`] starts over on this error);
    /// [`Error::InvalidInput`] for a bad name; backend errors.
    pub async fn get(&mut self, name: &str) -> Result<Option<Bytes>> {
        self.group.check_name("transaction get", name)?;
        if let Some(pending) = self.writes.get(name) {
            return Ok(pending.clone());
        }
        let entry = self.snapshot.entry(name);
        self.touched
            .insert(name.to_owned(), entry.as_ref().map(|(id, _)| Arc::clone(id)));
        let Some((id, inline)) = entry else {
            return Ok(None);
        };
        if let Some(content) = inline {
            return Ok(Some(content));
        }
        let backend = &self.group.shared.backend;
        match backend
            .get(&self.group.object_key(&id)?, GetOptions::default())
            .await
        {
            Ok(obj) => Ok(Some(obj.bytes().await?)),
            Err(e) if e.is_not_found() => Err(Error::Conflict {
                op: "transaction get",
                key: self.group.display(name),
                expected: Some(Version::parse(&id)),
                actual: None,
            }),
            Err(e) => Err(e),
        }
    }

    /// Sets `name` to `data` when the transaction commits.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or overlong name.
    pub fn put(&mut self, name: &str, data: impl Into<Bytes>) -> Result<()> {
        self.stage(name, Some(data.into()))
    }

    /// Removes `name` from the group when the transaction commits.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty or overlong name.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        self.stage(name, None)
    }

    fn stage(&mut self, name: &str, data: Option<Bytes>) -> Result<()> {
        self.group.check_name("transaction put", name)?;
        let id = self.snapshot.id(name).map(Arc::clone);
        self.touched.entry(name.to_owned()).or_insert(id);
        self.writes.insert(name.to_owned(), data);
        Ok(())
    }

    /// The names of the group as of the start of the transaction, with its own puts and
    /// deletes applied.
    pub fn names(&self) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> = self
            .snapshot
            .manifest
            .objects
            .keys()
            .map(|name| name.to_string())
            .collect();
        for (name, data) in &self.writes {
            if data.is_some() {
                names.insert(name.clone());
            } else {
                names.remove(name);
            }
        }
        names.into_iter().collect()
    }

    /// Applies every write at once.
    ///
    /// # Errors
    /// [`Error::Conflict`] (nothing changed, the new objects are deleted) if a name the
    /// transaction read or wrote was updated since it began; [`Error::Contention`] if
    /// updates of other names kept winning; backend errors.
    pub async fn commit(self) -> Result<()> {
        if self.writes.is_empty() {
            // Every read came from one manifest version: already consistent.
            return Ok(());
        }
        let group = &self.group;
        let mut set: Vec<(&str, Option<Entry>)> = Vec::new();
        let mut created = Vec::new();
        let mut inline_bytes = self.snapshot.manifest.inline_bytes();
        let mut result = Ok(());
        for (name, data) in &self.writes {
            let Some(data) = data else {
                set.push((name, None));
                continue;
            };
            match group.new_entry(inline_bytes, data.clone()).await {
                Ok(entry) => {
                    match &entry.inline {
                        Some(content) => inline_bytes += content.len(),
                        None => created.push(Arc::clone(&entry.id)),
                    }
                    set.push((name, Some(entry)));
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            let expect: Vec<(&str, Option<&str>)> = self
                .touched
                .iter()
                .map(|(name, id)| (name.as_str(), id.as_deref()))
                .collect();
            result = group.switch("commit", &expect, &set, Some(self.snapshot)).await;
        }
        if let Err(e) = &result {
            group.abandon(&created, e).await;
        }
        result
    }
}

impl Group {
    /// Starts a [`Transaction`] at the group's current state.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged manifest; backend errors.
    pub async fn begin(&self) -> Result<Transaction> {
        Ok(Transaction {
            group: self.clone(),
            snapshot: self.load().await?,
            touched: BTreeMap::new(),
            writes: BTreeMap::new(),
        })
    }

    /// Runs `f` in a [`Transaction`] and commits it, starting over (with a fresh
    /// transaction) on conflict, under the group's [`RetryPolicy`](crate::RetryPolicy).
    /// Returns what `f` returned in the attempt that committed.
    ///
    /// `f` may run several times. An error from `f` aborts without writing — except
    /// [`Error::Conflict`] (which [`Transaction::get`] returns when the transaction is
    /// stale), which starts over.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> store_core::Result<()> {
    /// use store_consistent::Group;
    /// use store_core::Error;
    ///
    /// let bank = Group::new(store_memory::MemoryStore::new(), "bank")?;
    /// bank.operate("alice", |_| Ok("100")).await?;
    /// // Move 30 from alice to bob, atomically.
    /// bank.transaction(|tx| Box::pin(async move {
    ///     let balance = |b: Option<bytes::Bytes>| -> u64 {
    ///         b.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok()).unwrap_or(0)
    ///     };
    ///     let alice = balance(tx.get("alice").await?);
    ///     let bob = balance(tx.get("bob").await?);
    ///     if alice < 30 {
    ///         return Err(Error::invalid_input("transfer", None, "insufficient funds"));
    ///     }
    ///     tx.put("alice", (alice - 30).to_string())?;
    ///     tx.put("bob", (bob + 30).to_string())?;
    ///     Ok(())
    /// })).await?;
    /// assert_eq!(bank.reader("bob").await?.bytes().await?, "30");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The error of `f`; [`Error::Contention`] when the attempts are used up; backend
    /// errors.
    pub async fn transaction<T, F>(&self, mut f: F) -> Result<T>
    where
        T: Send,
        F: for<'t> FnMut(&'t mut Transaction) -> BoxFuture<'t, Result<T>> + Send,
    {
        let mut retries = None;
        loop {
            let mut tx = self.begin().await?;
            let outcome = match f(&mut tx).await {
                Ok(value) => tx.commit().await.map(|()| value),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(e) if e.is_conflict() => {
                    conflicted(&mut retries, &self.shared.retry, "transaction", self.name()).await?
                }
                Err(e) => return Err(e),
            }
        }
    }
}
