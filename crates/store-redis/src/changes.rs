//! Waiting for changes: the scripts publish each changed key on the prefix's channel, one
//! subscription per prefix and handle follows it, and waiters are woken through a
//! [`WatcherRegistry`] (no polling).

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use store_core::{Backoff, Error, Key, Result, Version, WatcherRegistry};
use tokio::sync::watch;

use crate::connection::{Connection, Head};
use crate::envelope;

/// How often the subscription's connection is checked with a `PING`, so that a connection
/// that went silent (a network partition, not a closed socket) is noticed and replaced.
const PING_EVERY: Duration = Duration::from_secs(5);

/// The pauses between attempts to subscribe again: from 50 ms doubling up to 1 s, with
/// full jitter, so the subscribers of a server that restarted do not come back in lock
/// step. No budget: the subscription is kept as long as its handle lives.
fn resubscribe_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_secs(1)).with_jitter(true)
}

/// The subscription to one prefix's change channel, followed by a task of its own on a
/// connection of its own, and the waiters it wakes.
///
/// The task ends when the last handle (and the last wait) is gone: it holds the sending
/// end of `link`, and stops when nobody holds a receiving end.
#[derive(Debug)]
pub(crate) struct Changes {
    registry: Arc<WatcherRegistry>,
    /// `true` while the subscription is confirmed by the server. Every change of state is
    /// a new value, so a waiter that saw it up notices any loss in between.
    link: watch::Receiver<bool>,
}

impl Changes {
    /// Subscribes to `conn`'s change channel in a new task.
    pub(crate) fn start(conn: &Connection) -> Changes {
        let registry = Arc::new(WatcherRegistry::default());
        let (link, receiver) = watch::channel(false);
        tokio::spawn(follow(
            conn.client().clone(),
            conn.channel(),
            Arc::clone(&registry),
            link,
            conn.options().connect_timeout,
            conn.options().request_timeout,
        ));
        Changes {
            registry,
            link: receiver,
        }
    }
}

/// Subscribes to `channel`, wakes the watchers of each key published on it, and
/// subscribes again whenever the connection is lost, until nobody listens to `link`.
async fn follow(
    client: redis::Client,
    channel: String,
    registry: Arc<WatcherRegistry>,
    link: watch::Sender<bool>,
    connect_timeout: Duration,
    ping_timeout: Duration,
) {
    let mut pauses = resubscribe_backoff().start();
    loop {
        let subscribed = tokio::select! {
            () = link.closed() => return,
            s = tokio::time::timeout(connect_timeout, subscribe(&client, &channel)) => s,
        };
        let (mut sink, mut messages) = match subscribed {
            Ok(Ok(s)) => s,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("timed out after {connect_timeout:?}"),
                };
                tracing::debug!(%channel, %error, "redis subscription failed; trying again");
                tokio::select! {
                    () = link.closed() => return,
                    _ = pauses.wait() => continue,
                }
            }
        };
        pauses = resubscribe_backoff().start();
        link.send_replace(true);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                () = link.closed() => return,
                message = messages.next() => match message {
                    Some(m) => {
                        if let Some(key) = std::str::from_utf8(m.get_payload_bytes()).ok().and_then(|k| Key::new(k).ok()) {
                            registry.wake(&key);
                        }
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(ping_timeout, sink.ping::<redis::Value>()).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::debug!(%channel, "redis subscription lost; subscribing again");
        link.send_replace(false);
    }
}

/// A connection subscribed to `channel` (the server has confirmed it).
async fn subscribe(client: &redis::Client, channel: &str) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let (mut sink, messages) = client.get_async_pubsub().await?.split();
    sink.subscribe(channel).await?;
    Ok((sink, messages))
}

impl Connection {
    /// Waits until the version of the live value at `key` differs from `seen` (`None` =
    /// absent) and returns its head (`None` if it is now absent or expired): at once if it
    /// already differs.
    ///
    /// The wait registers with the prefix's subscription and makes sure it is up *before*
    /// each read of the key (one head-script round trip), so a change after the read is
    /// published to a subscription that is listening; when the subscription is lost, the
    /// wait reads the key again once it is back, so a change made while it was down is not
    /// missed either. A value with an expiry is read again when it expires.
    pub(crate) async fn wait_change(
        &self,
        op: &'static str,
        key: &Key,
        seen: Option<&Version>,
    ) -> Result<Option<Head>> {
        let changes = self.changes();
        let guard = changes.registry.register(key);
        let mut link = changes.link.clone();
        loop {
            if link.wait_for(|up| *up).await.is_err() {
                return Err(Error::Closed { op });
            }
            let mut notified = pin!(guard.notify().notified());
            notified.as_mut().enable();
            let now = envelope::now_ms();
            let current = self
                .heads(op, std::slice::from_ref(key))
                .await?
                .pop()
                .unwrap_or(Ok(None))?
                .filter(|h| h.header.is_live(now));
            if current.map(|h| h.header.version()).as_ref() != seen {
                return Ok(current);
            }
            let expiry = async {
                match current.and_then(|h| h.header.expires_at()) {
                    Some(at) => {
                        let left = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                        tokio::time::sleep(left).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = notified => {}
                // Lost (or renewed): wait until it is up again, then read again.
                _ = link.changed() => {}
                () = expiry => {}
            }
        }
    }
}
