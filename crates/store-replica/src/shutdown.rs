//! `ShutdownToken`: a cloneable signal that stops a replica's background tasks.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable "stop now" signal, the counterpart of the context the seed's `New` takes.
///
/// Hand one to [`ReplicaBuilder::shutdown`](crate::ReplicaBuilder::shutdown); cancelling it
/// (from any clone) stops the replica's asynchronous copy tasks at once. Operations still
/// queued are dropped and counted in [`AsyncHealth::dropped`](crate::AsyncHealth::dropped),
/// and the replica enters its error state with an [`Error::Closed`](store_core::Error::Closed)
/// cause, so nothing is lost silently.
///
/// ```
/// use store_replica::ShutdownToken;
///
/// let token = ShutdownToken::new();
/// let clone = token.clone();
/// assert!(!token.is_cancelled());
/// clone.cancel();
/// assert!(token.is_cancelled());
/// ```
#[derive(Clone)]
pub struct ShutdownToken {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        ShutdownToken {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Cancels the token. Idempotent.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once the token is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` can only end by seeing `true`.
        let _ = rx.wait_for(|cancelled| *cancelled).await;
    }
}

impl Default for ShutdownToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ShutdownToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelled_completes_for_every_clone() {
        let token = ShutdownToken::new();
        let waiter = {
            let t = token.clone();
            tokio::spawn(async move { t.cancelled().await })
        };
        token.cancel();
        waiter.await.unwrap();
        // Already cancelled: returns at once.
        token.clone().cancelled().await;
        assert!(format!("{token:?}").contains("true"));
    }
}
