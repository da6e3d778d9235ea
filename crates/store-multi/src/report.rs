//! What a fan-out write did on each backend.

use std::sync::Arc;

use store_core::{Error, Meta, Version};
use tokio::sync::watch;

/// The outcome of a write on one backend.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The backend committed; its own metadata (with the backend's own version).
    Committed(Meta),
    /// The backend failed (at open, at a chunk, at the conditional check or at the commit).
    /// It holds what it held before, except that a commit whose error does not prove it
    /// changed nothing ([`Error::is_not_applied`]; a lost reply) may have applied the write:
    /// the composite version then names what the backend holds, asked once more with a
    /// `head`.
    Failed(Arc<Error>),
    /// A `Quorum` write returned before this backend finished committing; see
    /// [`WriteReport::settled`].
    Pending,
}

impl Outcome {
    /// True for [`Outcome::Committed`].
    pub fn is_committed(&self) -> bool {
        matches!(self, Outcome::Committed(_))
    }

    /// The error, for [`Outcome::Failed`].
    pub fn error(&self) -> Option<&Error> {
        match self {
            Outcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// The final state of a write, once no backend is [`Outcome::Pending`] any more.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The object's metadata, with the composite version naming every backend's final state.
    pub meta: Meta,
    /// One outcome per backend, in configuration order; none is `Pending`.
    pub outcomes: Vec<Outcome>,
}

/// What a successful fan-out write did: the composite metadata and one [`Outcome`] per
/// backend, in configuration order.
///
/// Failures that the write mode tolerated (`BestEffort`, `Quorum`) are here, never
/// dropped. A `Quorum` write returns as soon as a majority committed; the other backends
/// are then [`Outcome::Pending`] and [`WriteReport::settled`] waits for them.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub(crate) meta: Meta,
    pub(crate) outcomes: Vec<Outcome>,
    /// `None` when nothing was pending at return (the report is final).
    pub(crate) settled: Option<watch::Receiver<Option<Settlement>>>,
}

impl WriteReport {
    /// The object's metadata. Its version is the composite version of the write; while
    /// backends are pending, their part of it is unknown (`?`) — [`settled`](Self::settled)
    /// gives the final one, which is what reads report afterwards.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The composite version (see [`meta`](Self::meta)).
    pub fn version(&self) -> &Version {
        &self.meta.version
    }

    /// One outcome per backend, as they were when the write returned.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// Indices of the backends that had committed when the write returned.
    pub fn committed(&self) -> Vec<usize> {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_committed())
            .map(|(i, _)| i)
            .collect()
    }

    /// `(backend index, error)` for each backend that failed, as of the return.
    pub fn failures(&self) -> Vec<(usize, Arc<Error>)> {
        self.outcomes
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Outcome::Failed(e) => Some((i, Arc::clone(e))),
                _ => None,
            })
            .collect()
    }

    /// Indices of the backends still committing when the write returned.
    pub fn pending(&self) -> Vec<usize> {
        self.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Outcome::Pending))
            .map(|(i, _)| i)
            .collect()
    }

    /// Waits until every backend has committed or failed and returns the final state.
    /// Immediate when nothing was pending.
    pub async fn settled(&self) -> Settlement {
        let Some(rx) = &self.settled else {
            return Settlement {
                meta: self.meta.clone(),
                outcomes: self.outcomes.clone(),
            };
        };
        let mut rx = rx.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(s) => s.clone().unwrap_or_else(|| self.abandoned()),
            Err(_) => self.abandoned(),
        }
    }

    /// The final metadata, waiting for pending backends if there are any.
    pub(crate) async fn into_settled_meta(self) -> Meta {
        match self.settled {
            None => self.meta,
            Some(_) => self.settled().await.meta,
        }
    }

    /// The background commit was dropped (its runtime shut down): the pending backends'
    /// outcome is unknown, which is reported as a failure rather than hidden.
    fn abandoned(&self) -> Settlement {
        let outcomes = self
            .outcomes
            .iter()
            .map(|o| match o {
                Outcome::Pending => Outcome::Failed(Arc::new(Error::Closed { op: "commit" })),
                other => other.clone(),
            })
            .collect();
        Settlement {
            meta: self.meta.clone(),
            outcomes,
        }
    }
}
