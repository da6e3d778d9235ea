//! `MultiCommitter`: one commit session over several committables.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use store_core::{
    Backend, BackendExt, CommitId, Committable, Error, GetOptions, IdempotencyKey, Key, PutOptions, Result,
};

use crate::commit_id::session_id;
use crate::session_error::{SessionError, no_session, other_session};

/// Where a [`MultiCommitter`] stores the key of its session unless told otherwise.
pub const DEFAULT_SESSION_KEY: &str = ".multi-committer/session";

/// How a session began: see [`MultiCommitter::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStart {
    /// No session was pending: every committable's `begin` was called.
    Fresh,
    /// The same key was pending (a crash or a failure interrupted it): every committable's
    /// `begin_recovery` was called.
    Recovery,
}

/// Runs commit sessions over several [`Committable`]s, remembering the session in a
/// key-value [`Backend`] so that a crashed session can be recovered.
///
/// Not itself a `Committable`: it is the coordinator. See the crate docs for the protocol
/// and what it guarantees.
pub struct MultiCommitter<K> {
    kv: K,
    session_key: Key,
    committables: BTreeMap<String, Arc<dyn Committable>>,
    phase: Mutex<Phase>,
}

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    /// `begin`, `commit` or `cancel` is running for this session.
    Busy(IdempotencyKey),
    Open(IdempotencyKey, SessionStart),
}

/// Puts the committer back to idle if a `begin`/`commit`/`cancel` future is dropped
/// half-way (its caller gave up): the session is then as after a crash, and beginning it
/// again with the same key recovers it.
struct Reset<'a>(&'a Mutex<Phase>);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        let mut phase = self.0.lock();
        if matches!(*phase, Phase::Busy(_)) {
            *phase = Phase::Idle;
        }
    }
}

impl<K: Backend> MultiCommitter<K> {
    /// A committer storing its session in `kv` at [`DEFAULT_SESSION_KEY`], over
    /// `committables` (name → committable). A name given twice is an error naming it.
    pub fn new<N: Into<String>>(
        kv: K,
        committables: impl IntoIterator<Item = (N, Arc<dyn Committable>)>,
    ) -> Result<Self> {
        let mut committer = Self::empty(kv);
        for (name, c) in committables {
            committer.register(name, c)?;
        }
        Ok(committer)
    }

    /// A committer without committables yet; add them with [`register`](Self::register).
    pub fn empty(kv: K) -> Self {
        MultiCommitter {
            kv,
            session_key: Key::new(DEFAULT_SESSION_KEY)
                .unwrap_or_else(|_| unreachable!("the default session key is a valid key")),
            committables: BTreeMap::new(),
            phase: Mutex::new(Phase::Idle),
        }
    }

    /// Stores the session at `key` instead of [`DEFAULT_SESSION_KEY`]. Committers sharing
    /// one kv store need a key each.
    pub fn with_session_key(mut self, key: Key) -> Self {
        self.session_key = key;
        self
    }

    /// Adds a committable under `name`. Names order the commits (ascending) and the id.
    /// A name already registered is an error naming it.
    pub fn register(&mut self, name: impl Into<String>, committable: impl Committable) -> Result<()> {
        let name = name.into();
        if self.committables.contains_key(&name) {
            return Err(Error::InvalidInput {
                op: "register",
                key: Some(name.clone()),
                reason: format!("a committable named {name:?} is already registered"),
            });
        }
        self.committables.insert(name, Arc::new(committable));
        Ok(())
    }

    /// The registered names, in commit order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.committables.keys().map(String::as_str)
    }

    /// The kv store holding the session.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// Where in the kv store the session is kept.
    pub fn session_key(&self) -> &Key {
        &self.session_key
    }

    /// The session open in this committer, if any.
    pub fn session(&self) -> Option<IdempotencyKey> {
        match &*self.phase.lock() {
            Phase::Idle => None,
            Phase::Busy(k) | Phase::Open(k, _) => Some(k.clone()),
        }
    }

    /// The session recorded in the kv store: one that began and has not completed (it
    /// crashed, failed, or is open right now), if any.
    pub async fn pending(&self) -> Result<Option<IdempotencyKey>> {
        match self.kv.get(&self.session_key, GetOptions::default()).await {
            Ok(obj) => Ok(Some(IdempotencyKey::new(obj.bytes().await?))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Begins a session named `key`.
    ///
    /// First the key is stored in the kv store (durably, as durable as that store is),
    /// before any committable is touched. If that exact key was already stored — the
    /// session was interrupted — every committable's `begin_recovery` is called instead of
    /// `begin`, and the result says [`SessionStart::Recovery`]. If a *different* session is
    /// pending, it is refused with an error naming both: recover that one first (begin it
    /// with its own key) or [`abandon`](Self::abandon) it.
    ///
    /// Committables begin in ascending name order. If one fails, every committable is
    /// cancelled and the session ends. After a failed *fresh* begin the key is removed again
    /// (nothing can have committed); after a failed recovery it stays stored, so retrying
    /// with the same key recovers. Beginning while a session is open is an error.
    pub async fn begin(&self, key: &IdempotencyKey) -> Result<SessionStart> {
        {
            let mut phase = self.phase.lock();
            match &*phase {
                Phase::Idle => *phase = Phase::Busy(key.clone()),
                Phase::Busy(open) | Phase::Open(open, _) => return Err(other_session("begin", open, key)),
            }
        }
        let _reset = Reset(&self.phase);
        let start = self.record(key).await?;
        let step = match start {
            SessionStart::Fresh => "begin",
            SessionStart::Recovery => "begin_recovery",
        };
        tracing::debug!(session = ?key, ?start, "multi-committer: session begins");
        for (name, c) in &self.committables {
            let outcome = match start {
                SessionStart::Fresh => c.begin(key).await,
                SessionStart::Recovery => c.begin_recovery(key).await,
            };
            if let Err(source) = outcome {
                let err = self.fail(key, name, step, source).await;
                if start == SessionStart::Fresh {
                    // Nothing can have committed a session that never fully began, so it
                    // need not stay pending and block other sessions.
                    if let Err(e) = self.kv.delete_if_exists(&self.session_key).await {
                        tracing::warn!(session = ?key, error = %e, "multi-committer: could not clear the failed session");
                    }
                }
                return Err(err);
            }
        }
        *self.phase.lock() = Phase::Open(key.clone(), start);
        Ok(start)
    }

    /// Stores `key` as the pending session, or finds it already there.
    async fn record(&self, key: &IdempotencyKey) -> Result<SessionStart> {
        let refuse = |stored: &IdempotencyKey| Error::InvalidInput {
            op: "begin",
            key: Some(key.to_string()),
            reason: format!(
                "session {stored:?} is pending in {:?} (interrupted before it completed); \
                 begin it again with its own key to recover it, or abandon it",
                self.session_key.as_str()
            ),
        };
        match self.pending().await? {
            Some(stored) if &stored == key => return Ok(SessionStart::Recovery),
            Some(stored) => return Err(refuse(&stored)),
            None => {}
        }
        let data = bytes::Bytes::copy_from_slice(key.as_bytes());
        match self.kv.put(&self.session_key, data, PutOptions::create()).await {
            Ok(_) => Ok(SessionStart::Fresh),
            // Another committer (another process) stored a session in between.
            Err(e) if e.is_already_exists() => match self.pending().await? {
                Some(stored) if &stored == key => Ok(SessionStart::Recovery),
                Some(stored) => Err(refuse(&stored)),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Cancels every committable after `name` failed at `step`; the session ends.
    async fn fail(&self, key: &IdempotencyKey, name: &str, step: &'static str, source: Error) -> Error {
        tracing::warn!(session = ?key, committable = name, step, error = %source, "multi-committer: session failed; cancelling");
        self.cancel_all(key).await;
        SessionError {
            session: key.clone(),
            committable: name.to_owned(),
            step,
            source,
        }
        .into_error()
    }

    /// Cancels every committable; their errors are logged, not returned, because the
    /// caller is already handling the failure that made us cancel.
    async fn cancel_all(&self, key: &IdempotencyKey) -> Vec<(String, Error)> {
        let mut errors = Vec::new();
        for (name, c) in &self.committables {
            if let Err(e) = c.cancel().await {
                tracing::warn!(session = ?key, committable = %name, error = %e, "multi-committer: cancel failed");
                errors.push((name.clone(), e));
            }
        }
        errors
    }

    /// Commits the open session: every committable commits, in ascending name order, and
    /// the session's id is [`session_id`] over the `(name, id)` pairs in that order.
    ///
    /// `key` must be the open session's key: another key is refused with an error naming
    /// both, and the session stays open. Without an open session it is an error. If a
    /// committable fails, every committable is cancelled (those that already committed
    /// stay committed), the session ends, and its key stays stored: begin it again with the
    /// same key to recover — committables that already committed return their recorded ids
    /// and the rest apply. The key is removed only once every committable has committed;
    /// if removing it fails, the error is returned and a retry recovers the same id.
    pub async fn commit(&self, key: &IdempotencyKey) -> Result<CommitId> {
        {
            let mut phase = self.phase.lock();
            match &*phase {
                Phase::Open(open, _) if open == key => *phase = Phase::Busy(key.clone()),
                Phase::Idle => return Err(no_session("commit", Some(key.to_string()))),
                Phase::Open(open, _) | Phase::Busy(open) => return Err(other_session("commit", open, key)),
            }
        }
        let _reset = Reset(&self.phase);
        let mut ids = Vec::with_capacity(self.committables.len());
        for (name, c) in &self.committables {
            match c.commit(key).await {
                Ok(id) => ids.push((name.as_str(), id)),
                Err(source) => return Err(self.fail(key, name, "commit", source).await),
            }
        }
        let id = session_id(ids.iter().map(|(n, id)| (*n, id)));
        self.kv.delete_if_exists(&self.session_key).await?;
        tracing::debug!(session = ?key, id = %id, "multi-committer: session committed");
        Ok(id)
    }

    /// Cancels the open session: every committable is cancelled and the session ends. A
    /// session that began fresh is forgotten (nothing was committed); a recovered one stays
    /// pending, because some committables may have committed it before the interruption.
    /// Without an open session this does nothing. The first cancel error is returned after
    /// every committable was asked.
    pub async fn cancel(&self) -> Result<()> {
        let (key, start) = {
            let mut phase = self.phase.lock();
            match phase.clone() {
                Phase::Open(key, start) => {
                    *phase = Phase::Busy(key.clone());
                    (key, start)
                }
                Phase::Idle => return Ok(()),
                Phase::Busy(open) => {
                    return Err(Error::InvalidInput {
                        op: "cancel",
                        key: Some(open.to_string()),
                        reason: "the session is beginning or committing".to_owned(),
                    });
                }
            }
        };
        let _reset = Reset(&self.phase);
        let mut errors = self.cancel_all(&key).await;
        if start == SessionStart::Fresh {
            self.kv.delete_if_exists(&self.session_key).await?;
        }
        match errors.is_empty() {
            true => Ok(()),
            false => {
                let (name, source) = errors.swap_remove(0);
                Err(SessionError {
                    session: key,
                    committable: name,
                    step: "cancel",
                    source,
                }
                .into_error())
            }
        }
    }

    /// Forgets the pending session, if any, and returns its key. Committables that already
    /// committed it stay committed and the others never will: use this only to give up on
    /// a session that cannot be recovered. Refused while a session is open here.
    pub async fn abandon(&self) -> Result<Option<IdempotencyKey>> {
        if let Some(open) = self.session() {
            return Err(Error::InvalidInput {
                op: "abandon",
                key: Some(open.to_string()),
                reason: "the session is open in this committer; commit or cancel it".to_owned(),
            });
        }
        let pending = self.pending().await?;
        if let Some(key) = &pending {
            tracing::warn!(session = ?key, "multi-committer: abandoning a pending session");
            self.kv.delete_if_exists(&self.session_key).await?;
        }
        Ok(pending)
    }
}

impl<K: fmt::Debug> fmt::Debug for MultiCommitter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiCommitter")
            .field("kv", &self.kv)
            .field("session_key", &self.session_key)
            .field("committables", &self.committables.keys().collect::<Vec<_>>())
            .field("phase", &*self.phase.lock())
            .finish()
    }
}
