//! `Staged`: a ready-made `Committable` over any `Backend`.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use store_core::{
    Backend, BackendExt, CommitId, Committable, DeleteOptions, Error, GetOptions, IdempotencyKey, Key,
    PutOptions, Result,
};

use crate::journal::{Change, Changes, Journal, Marker, changes_id};
use crate::session_error::{no_session, other_session};

/// Where [`Staged`] keeps its journal and commit markers unless told otherwise.
pub const DEFAULT_STAGED_PREFIX: &str = ".staged";

/// A [`Committable`] that buffers puts and deletes during a session and applies them to a
/// [`Backend`] on commit.
///
/// Between `begin` and `commit`, [`stage_put`](Staged::stage_put) and
/// [`stage_delete`](Staged::stage_delete) only record the change (the last change staged
/// for a key wins); nothing touches the backend. `cancel` drops the buffer. `commit` applies
/// the changes and returns an id derived from them alone: SHA-256 over each key, whether it
/// is put or deleted, and the value, in key order — the same changes always give the same
/// id, whatever the session is called.
///
/// # What is atomic, what is only idempotent
///
/// A backend writes one object atomically, but not several. So `commit` goes through four
/// steps, each of which is a single atomic object write:
///
/// 1. the **journal** `<prefix>/journal` — the session's key and all its changes;
/// 2. the changes, one put or delete per key, in key order;
/// 3. the **marker** `<prefix>/commits/<sha256(session key)>` — the session's key and id;
/// 4. the journal is deleted.
///
/// Once the journal is written the session is *decided* for this store: if the process dies
/// during steps 2–4, the next `begin` or `begin_recovery` (of any session) finds the journal
/// and rolls it forward — re-applies every change (a put writes the same bytes again, a
/// delete of an absent key is fine), writes the marker, deletes the journal — before doing
/// anything else. If the marker is already there, the journal is simply deleted: the
/// changes are never applied again after the marker exists. So per store a session ends up
/// applied completely or not at all, but not *isolated*: a reader looking while a commit
/// (or a roll-forward) runs can see some of its changes and not others.
///
/// Re-applying a journal overwrites what another writer may have written to those keys in
/// between; a `Staged` assumes it is the only writer of the keys it stages and the only
/// `Staged` using its prefix on that backend.
///
/// # Recovery and replays
///
/// If the marker of a session exists when it begins (with `begin_recovery` after a crash,
/// or `begin` with an old key), `commit` applies nothing and returns the id stored in the
/// marker. Changes staged again in that session must be the same as the first time (or
/// none); different changes are refused with an error, never silently dropped. Markers
/// are small and kept until [`forget`](Staged::forget) removes one, so a session key is
/// applied at most once per store for as long as its marker is kept.
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use store_commit::Staged;
/// use store_core::{BackendExt, Committable, IdempotencyKey, Key};
/// use store_memory::MemoryStore;
///
/// let staged = Staged::new(MemoryStore::new());
/// let session = IdempotencyKey::from("order-17");
/// let key = Key::new("orders/17")?;
///
/// staged.begin(&session).await?;
/// staged.stage_put(&key, "paid")?;
/// assert!(!staged.backend().exists(&key).await?); // nothing applied yet
/// let id = staged.commit(&session).await?;
/// assert_eq!(staged.backend().get_bytes(&key).await?, "paid");
///
/// // The same session again (a retried request): nothing is applied twice.
/// staged.begin(&session).await?;
/// assert_eq!(staged.commit(&session).await?, id);
/// # Ok::<(), store_core::Error>(())
/// # }).unwrap();
/// ```
pub struct Staged<B> {
    backend: B,
    prefix: String,
    journal_key: Key,
    state: Mutex<Slot>,
}

/// The session state plus a generation that every transition bumps, so that an operation
/// which awaited I/O can tell whether the session it started from still exists.
struct Slot {
    state: State,
    generation: u64,
}

enum State {
    Idle,
    Beginning(IdempotencyKey),
    Open(Open),
    Committing(IdempotencyKey),
}

struct Open {
    session: IdempotencyKey,
    changes: Changes,
    /// The id in this session's marker, if the session was already applied.
    recorded: Option<CommitId>,
}

impl State {
    fn session(&self) -> Option<&IdempotencyKey> {
        match self {
            State::Idle => None,
            State::Beginning(s) | State::Committing(s) => Some(s),
            State::Open(o) => Some(&o.session),
        }
    }
}

impl<B: Backend> Staged<B> {
    /// A `Staged` over `backend`, keeping its journal and markers under
    /// [`DEFAULT_STAGED_PREFIX`].
    pub fn new(backend: B) -> Self {
        Self::build(backend, DEFAULT_STAGED_PREFIX)
            .unwrap_or_else(|_| unreachable!("the default prefix is a valid key"))
    }

    /// A `Staged` over `backend` keeping its journal and markers under `prefix` (a valid
    /// key). Keys equal to `prefix` or below it cannot be staged.
    pub fn with_prefix(backend: B, prefix: &str) -> Result<Self> {
        Self::build(backend, prefix)
    }

    fn build(backend: B, prefix: &str) -> Result<Self> {
        let journal_key = Key::new(prefix)?.join("journal")?;
        Ok(Staged {
            backend,
            prefix: prefix.to_owned(),
            journal_key,
            state: Mutex::new(Slot {
                state: State::Idle,
                generation: 0,
            }),
        })
    }

    /// The backend the changes are applied to.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The prefix of the journal and the markers.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The session currently open (or beginning, or committing), if any.
    pub fn session(&self) -> Option<IdempotencyKey> {
        self.state.lock().state.session().cloned()
    }

    /// How many keys have a change staged in the open session.
    pub fn staged_len(&self) -> usize {
        match &self.state.lock().state {
            State::Open(o) => o.changes.len(),
            _ => 0,
        }
    }

    /// Stages a put of `data` at `key` in the open session.
    ///
    /// Fails if no session is open, or if `key` is reserved (the prefix or below it).
    pub fn stage_put(&self, key: &Key, data: impl Into<Bytes>) -> Result<()> {
        self.stage("stage_put", key, Change::Put(data.into()))
    }

    /// Stages a delete of `key` in the open session. Deleting a key that does not exist when
    /// the session is applied is not an error.
    pub fn stage_delete(&self, key: &Key) -> Result<()> {
        self.stage("stage_delete", key, Change::Delete)
    }

    fn stage(&self, op: &'static str, key: &Key, change: Change) -> Result<()> {
        if self.is_reserved(key) {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                reason: "key is reserved for Staged's journal and commit markers",
            });
        }
        let mut slot = self.state.lock();
        match &mut slot.state {
            State::Open(open) => {
                open.changes.insert(key.clone(), change);
                Ok(())
            }
            State::Idle => Err(no_session(op, Some(key.to_string()))),
            State::Beginning(s) | State::Committing(s) => Err(Error::InvalidInput {
                op,
                key: Some(key.to_string()),
                reason: format!("session {s:?} is not open for changes (it is beginning or committing)"),
            }),
        }
    }

    fn is_reserved(&self, key: &Key) -> bool {
        key.as_str()
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The id this store recorded for `session`, if it applied that session and still keeps
    /// its marker.
    pub async fn committed(&self, session: &IdempotencyKey) -> Result<Option<CommitId>> {
        self.read_marker(session).await
    }

    /// Deletes the marker of `session`, returning whether there was one. Afterwards a
    /// session with that key applies its changes again. Only forget sessions that no
    /// committer can still be recovering.
    pub async fn forget(&self, session: &IdempotencyKey) -> Result<bool> {
        self.backend.delete_if_exists(&self.marker_key(session)?).await
    }

    fn marker_key(&self, session: &IdempotencyKey) -> Result<Key> {
        // Hashed: an idempotency key may be any bytes, of any length.
        let digest = CommitId::new(Sha256::digest(session.as_bytes()).to_vec());
        Key::new(format!("{}/commits/{}", self.prefix, digest.to_hex()))
    }

    async fn read_marker(&self, session: &IdempotencyKey) -> Result<Option<CommitId>> {
        let at = self.marker_key(session)?;
        let bytes = match self.backend.get(&at, GetOptions::default()).await {
            Ok(obj) => obj.bytes().await?,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let marker = Marker::decode(&at, &bytes)?;
        if &marker.session != session {
            return Err(Error::Corrupt {
                key: at.to_string(),
                reason: format!("marker names session {:?}, expected {session:?}", marker.session),
            });
        }
        Ok(Some(marker.id))
    }

    /// Finishes a commit that a crash interrupted, if the journal says there is one.
    async fn roll_forward(&self) -> Result<()> {
        let bytes = match self.backend.get(&self.journal_key, GetOptions::default()).await {
            Ok(obj) => obj.bytes().await?,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let journal = Journal::decode(&self.journal_key, &bytes)?;
        if self.read_marker(&journal.session).await?.is_some() {
            tracing::debug!(session = ?journal.session, "staged: journal of an applied session removed");
            self.delete_journal().await
        } else {
            tracing::info!(session = ?journal.session, changes = journal.changes.len(), "staged: rolling an interrupted commit forward");
            self.apply(&journal, &changes_id(&journal.changes)).await
        }
    }

    /// Steps 2–4 of a commit: changes, marker, journal removal. Idempotent.
    async fn apply(&self, journal: &Journal, id: &CommitId) -> Result<()> {
        for (key, change) in &journal.changes {
            match change {
                Change::Put(data) => {
                    self.backend.put(key, data.clone(), PutOptions::default()).await?;
                }
                Change::Delete => match self.backend.delete(key, DeleteOptions::default()).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                },
            }
        }
        let marker = Marker {
            session: journal.session.clone(),
            id: id.clone(),
        };
        let at = self.marker_key(&journal.session)?;
        self.backend
            .put(&at, marker.encode(), PutOptions::default())
            .await?;
        self.delete_journal().await
    }

    async fn delete_journal(&self) -> Result<()> {
        self.backend.delete_if_exists(&self.journal_key).await.map(drop)
    }

    async fn start(&self, session: &IdempotencyKey, op: &'static str) -> Result<()> {
        let generation = {
            let mut slot = self.state.lock();
            match slot.state.session() {
                // The same session again: a restart (the caller lost track of it, say a
                // dropped future); its buffer is dropped and it begins anew.
                Some(open) if open != session => return Err(other_session(op, open, session)),
                _ => {}
            }
            slot.generation += 1;
            slot.state = State::Beginning(session.clone());
            slot.generation
        };
        let outcome = async {
            self.roll_forward().await?;
            self.read_marker(session).await
        }
        .await;
        let mut slot = self.state.lock();
        if slot.generation != generation {
            return Err(Error::InvalidInput {
                op,
                key: Some(session.to_string()),
                reason: "the session was cancelled or restarted while it was beginning".to_owned(),
            });
        }
        match outcome {
            Ok(recorded) => {
                slot.state = State::Open(Open {
                    session: session.clone(),
                    changes: Changes::new(),
                    recorded,
                });
                Ok(())
            }
            Err(e) => {
                slot.state = State::Idle;
                Err(e)
            }
        }
    }

    async fn finish(&self, open: Open) -> Result<CommitId> {
        let id = changes_id(&open.changes);
        if let Some(recorded) = open.recorded {
            if !open.changes.is_empty() && id != recorded {
                return Err(Error::InvalidInput {
                    op: "commit",
                    key: Some(open.session.to_string()),
                    reason: format!(
                        "the session was already applied with id {recorded}; the {} changes staged \
                         now have id {id}, differ, and were not applied",
                        open.changes.len()
                    ),
                });
            }
            return Ok(recorded);
        }
        if open.changes.is_empty() {
            // Nothing to apply, nothing to remember: the id is the same every time anyway.
            return Ok(id);
        }
        let journal = Journal {
            session: open.session,
            changes: open.changes,
        };
        self.backend
            .put(&self.journal_key, journal.encode(), PutOptions::default())
            .await?;
        self.apply(&journal, &id).await?;
        Ok(id)
    }
}

#[async_trait]
impl<B: Backend> Committable for Staged<B> {
    /// Opens a session. First finishes any commit a crash interrupted (see the type's
    /// docs), then looks for this session's marker. Beginning the session that is already
    /// open restarts it with an empty buffer; any other open session is an error.
    async fn begin(&self, key: &IdempotencyKey) -> Result<()> {
        self.start(key, "begin").await
    }

    /// Like [`begin`](Staged::begin): a `Staged` recovers the same way whether or not it is
    /// told a crash happened, because the journal and the marker say what it needs.
    async fn begin_recovery(&self, key: &IdempotencyKey) -> Result<()> {
        self.start(key, "begin_recovery").await
    }

    /// Applies the staged changes (or, if this session was already applied, returns the
    /// recorded id) and ends the session, successful or not.
    async fn commit(&self, key: &IdempotencyKey) -> Result<CommitId> {
        let (open, generation) = {
            let mut slot = self.state.lock();
            let open = match std::mem::replace(&mut slot.state, State::Committing(key.clone())) {
                State::Open(o) if &o.session == key => o,
                other => {
                    let err = match other.session() {
                        None => no_session("commit", Some(key.to_string())),
                        Some(open) => other_session("commit", open, key),
                    };
                    slot.state = other;
                    return Err(err);
                }
            };
            slot.generation += 1;
            (open, slot.generation)
        };
        let outcome = self.finish(open).await;
        let mut slot = self.state.lock();
        if slot.generation == generation {
            slot.state = State::Idle;
        }
        outcome
    }

    /// Drops the buffer and ends the session. A no-op when no session is open — also after
    /// a commit, which stays applied.
    async fn cancel(&self) -> Result<()> {
        let mut slot = self.state.lock();
        slot.generation += 1;
        slot.state = State::Idle;
        Ok(())
    }
}

impl<B: fmt::Debug> fmt::Debug for Staged<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.state.lock();
        f.debug_struct("Staged")
            .field("backend", &self.backend)
            .field("prefix", &self.prefix)
            .field("session", &slot.state.session())
            .finish()
    }
}
